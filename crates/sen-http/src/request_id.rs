//! Request ids: a plain `x-request-id` from the client is kept, anything
//! else is replaced by a UUIDv7. The edge middleware echoes it and makes
//! it current for error bodies and log lines.

use axum::http::{HeaderMap, HeaderName};
use sen_core::request_id::RequestId;

/// The header carrying the id both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's id when it is acceptable, else a fresh UUIDv7.
pub fn for_request(headers: &HeaderMap) -> RequestId {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate)
}
