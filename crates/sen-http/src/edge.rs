//! The outermost layer, one for what every request needs: the request id
//! (echoed, current for error bodies and log lines), the metrics record,
//! the dashboard's activity count, the interactive-load count and the
//! security headers.
//!
//! Hand-written as a `tower` service rather than `axum::middleware::from_fn`:
//! `from_fn` boxes the inner service's clone and the request's future on
//! every call, and the profile of the HTTP benchmark showed that boxing
//! and the moves it implies among the top costs of Sen's own code. Here
//! the future is one struct polled in place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use axum::http::{HeaderValue, Method};
use sen_core::request_id::RequestId;
use tokio::task::futures::TaskLocalFuture;

use crate::request_id::X_REQUEST_ID;
use crate::{metrics, request_id, security_headers};

/// What the edge needs, built once at start-up.
#[derive(Clone)]
pub struct Edge {
    /// The security headers to add.
    pub security_headers: security_headers::SecurityHeaders,
    /// Per-minute counts for the dashboard charts.
    pub activity: Arc<sen_core::activity::Activity>,
}

impl<S> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            inner,
            edge: Arc::new(self.clone()),
        }
    }
}

/// The edge around the rest of the stack.
#[derive(Clone)]
pub struct EdgeService<S> {
    inner: S,
    edge: Arc<Edge>,
}

impl<S, B> tower::Service<Request> for EdgeService<S>
where
    S: tower::Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let id = request_id::for_request(req.headers());
        let header = HeaderValue::from_str(id.as_str()).ok();
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let path = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_owned());
        EdgeFuture {
            // The id is the request's task-local for everything inside,
            // log lines included (see sen's logging set-up).
            inner: sen_core::request_id::scoped(id, self.inner.call(req)),
            done: Some(Done {
                start,
                id,
                header,
                method,
                route,
                path,
                edge: self.edge.clone(),
            }),
        }
    }
}

/// What the edge does once the response is there.
struct Done {
    start: Instant,
    id: RequestId,
    header: Option<HeaderValue>,
    method: Method,
    route: Option<MatchedPath>,
    path: Option<String>,
    edge: Arc<Edge>,
}

impl Done {
    fn finish<B>(self, mut response: Response<B>) -> Response<B> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.start);
        // Tells password hashing whether interactive requests are flowing
        // (it then keeps off some cores: see `sen_auth::hash_cores`).
        sen_core::interactive::answered(now);
        let status = response.status();
        metrics::record(&self.method, self.route.as_ref(), status, elapsed);
        self.edge.activity.record(sen_core::activity::Kind::Request);
        if status.is_server_error() {
            self.edge
                .activity
                .record(sen_core::activity::Kind::ServerError);
        }
        if self.path.is_some() {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            sen_core::request_id::sync_scope(self.id, || {
                tracing::debug!(
                    method = self.method.as_str(),
                    path = self.path.as_deref(),
                    status = status.as_u16(),
                    micros,
                    "request finished"
                )
            });
        }
        let headers = response.headers_mut();
        if let Some(header) = self.header {
            headers.insert(X_REQUEST_ID.clone(), header);
        }
        self.edge.security_headers.apply(headers);
        response
    }
}

pin_project_lite::pin_project! {
    /// The request's future with the edge's work on completion.
    pub struct EdgeFuture<F: Future> {
        #[pin]
        inner: TaskLocalFuture<RequestId, F>,
        done: Option<Done>,
    }
}

impl<F, B, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        Poll::Ready(match (result, this.done.take()) {
            (Ok(response), Some(done)) => Ok(done.finish(response)),
            (other, _) => other,
        })
    }
}
