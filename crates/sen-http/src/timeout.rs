//! Time limit for handlers: a handler that has not produced its response
//! head within the limit is dropped and the client gets 503
//! `request_timeout` as problem+json. Only the head is limited: a
//! WebSocket session, an SSE stream or a download runs after its head and
//! is not cut.
//!
//! A hand-written `tower` layer (not `axum::middleware::from_fn`, which
//! boxes a clone of the inner service and the future per request; see
//! `edge`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sen_core::AppError;

/// The layer: every wrapped route answers within `limit`.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    /// The time limit.
    pub limit: Duration,
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

/// A route under the time limit.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> tower::Service<Request> for Timeout<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        TimeoutFuture {
            inner: tokio::time::timeout(self.limit, self.inner.call(req)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future, or 503 when it overruns.
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
    }
}

impl<F, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match std::task::ready!(self.project().inner.poll(cx)) {
            Ok(result) => result,
            Err(_) => Ok(
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "request_timeout")
                    .with_detail("The server did not finish the request in time.")
                    .into_response(),
            ),
        })
    }
}
