//! Request id middleware: accepts a plain `x-request-id` from the client or
//! makes a UUIDv7, echoes it on the response, opens the request's tracing
//! span with it (so every log line of the request carries it) and makes it
//! current for error bodies.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The header carrying the id both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware function (`axum::middleware::from_fn`).
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sen_core::request_id::is_acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let header = HeaderValue::from_str(&id).ok();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let start = std::time::Instant::now();
    let mut response = sen_core::request_id::scope(id, next.run(req))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(
            status = response.status().as_u16(),
            micros,
            "request finished"
        );
    });
    if let Some(header) = header {
        response.headers_mut().insert(X_REQUEST_ID.clone(), header);
    }
    response
}
