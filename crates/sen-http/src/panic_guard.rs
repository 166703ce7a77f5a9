//! No panic reaches a client: a handler that panics (while being called or
//! while its future is polled) answers 500 problem+json and the server
//! stays up.
//!
//! Hand-written rather than `tower_http::catch_panic`: that layer boxes
//! every response body into an `UnsyncBoxBody`, which axum then boxes
//! again into its own `Body`, two allocations per request that the HTTP
//! benchmark's profile showed. This one keeps axum's `Body` as it is.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;

use crate::fallback::panic_response;

/// The layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PanicGuardLayer;

impl<S> tower::Layer<S> for PanicGuardLayer {
    type Service = PanicGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PanicGuard { inner }
    }
}

/// A service whose panics become 500 responses.
#[derive(Debug, Clone)]
pub struct PanicGuard<S> {
    inner: S,
}

impl<S> tower::Service<Request> for PanicGuard<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let state = match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => State::Running { inner },
            Err(payload) => State::Panicked {
                payload: Some(payload),
            },
        };
        GuardedFuture { state }
    }
}

pin_project_lite::pin_project! {
    /// The inner future, or the 500 of a panic.
    pub struct GuardedFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] inner: F },
        Panicked { payload: Option<Box<dyn Any + Send + 'static>> },
    }
}

impl<F, E> Future for GuardedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running { inner } => {
                match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                    Ok(poll) => poll,
                    Err(payload) => Poll::Ready(Ok(panic_response(payload))),
                }
            }
            StateProj::Panicked { payload } => {
                let payload = payload
                    .take()
                    .unwrap_or_else(|| Box::new("panic guard polled after completion"));
                Poll::Ready(Ok(panic_response(payload)))
            }
        }
    }
}
