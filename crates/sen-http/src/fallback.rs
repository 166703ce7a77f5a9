//! What the router answers when nothing else does: unknown path (404),
//! wrong method (405), and a handler that panicked (500), all problem+json.

use std::any::Any;

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sen_core::AppError;

/// 404 for any path no route matches.
pub async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "not_found")
        .with_detail(format!("No route for {method} {}.", uri.path()))
}

/// 405 for a known path with a method it does not accept.
pub async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        .with_detail(format!("{} does not accept {method}.", uri.path()))
}

/// Turns a handler panic into a 500 problem; the panic message is logged
/// with the request id and never sent.
pub fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(panic = %message, "handler panicked");
    AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        .with_detail("An unexpected error occurred; quote the request id when reporting it.")
        .into_response()
}
