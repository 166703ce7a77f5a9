//! The outermost middleware, one layer for what every request needs: the
//! request id (echoed, on the span, current for error bodies), the tracing
//! span, the metrics record and the security headers. One layer instead of
//! four: each `from_fn` layer clones the inner service and boxes a future
//! per request, which the HTTP benchmark showed on a 2-core machine.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::request_id::X_REQUEST_ID;
use crate::{metrics, request_id, security_headers};

/// What the edge needs, built once at start-up.
#[derive(Clone)]
pub struct Edge {
    /// The security headers to add.
    pub security_headers: security_headers::SecurityHeaders,
    /// Per-minute counts for the dashboard charts.
    pub activity: std::sync::Arc<sen_core::activity::Activity>,
}

/// The middleware function (`from_fn_with_state(Edge { .. }, edge)`).
pub async fn edge(State(cfg): State<Edge>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id::for_request(req.headers());
    let header = HeaderValue::from_str(&id).ok();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    // Only the id on the span: every field is formatted at span creation,
    // per request, so the path goes on the debug line below instead.
    let span = tracing::info_span!("request", request_id = id.as_str());
    let path = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_owned());
    let mut response = sen_core::request_id::scope(id, next.run(req))
        .instrument(span.clone())
        .await;
    let elapsed = start.elapsed();
    metrics::record(&method, route.as_ref(), response.status(), elapsed);
    cfg.activity.record(sen_core::activity::Kind::Request);
    if response.status().is_server_error() {
        cfg.activity.record(sen_core::activity::Kind::ServerError);
    }
    span.in_scope(|| {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(
            method = method.as_str(),
            path = path.as_deref(),
            status = response.status().as_u16(),
            micros,
            "request finished"
        );
    });
    let headers = response.headers_mut();
    if let Some(header) = header {
        headers.insert(X_REQUEST_ID.clone(), header);
    }
    cfg.security_headers.apply(headers);
    response
}
