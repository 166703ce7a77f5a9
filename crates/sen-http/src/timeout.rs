//! Time limit for REST handlers (not WebSocket or SSE, which live outside
//! the routes this wraps). A handler that overruns is dropped and the
//! client gets 503 `request_timeout` as problem+json.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sen_core::AppError;

/// The middleware function (`from_fn_with_state(limit, timeout)`).
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => AppError::new(StatusCode::SERVICE_UNAVAILABLE, "request_timeout")
            .with_detail("The server did not finish the request in time.")
            .into_response(),
    }
}
