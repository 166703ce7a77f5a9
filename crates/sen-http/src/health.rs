//! `/healthz`: the process is alive (no dependency checked, so a database
//! outage never makes an orchestrator restart healthy processes).
//! `/readyz`: the database and Redis answer and the schema is current;
//! otherwise 503 problem+json naming what is wrong.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sen_core::context::Readiness;
use sen_core::extract::Json;
use sen_core::{AppContext, AppError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of a healthy answer.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The body of a ready answer.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: &'static str,
    /// Each dependency's check.
    pub checks: Readiness,
}

/// Readiness.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Every dependency answers and the schema is current", body = Ready),
    (status = 503, description = "A dependency is down or the schema is behind", body = sen_core::error::Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(State(ctx): State<AppContext>) -> Response {
    let checks = ctx.readiness().await;
    if checks.is_ready() {
        return Json(Ready {
            status: "ready",
            checks,
        })
        .into_response();
    }
    let failing: Vec<String> = [
        ("database", Some(&checks.database)),
        ("redis", checks.redis.as_ref()),
        ("schema", Some(&checks.schema)),
    ]
    .into_iter()
    .filter_map(|(name, c)| {
        c.filter(|c| !c.ok)
            .map(|c| format!("{name}: {}", c.detail.as_deref().unwrap_or("failing")))
    })
    .collect();
    AppError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        .with_detail(failing.join("; "))
        .with_extension("checks", serde_json::to_value(&checks).unwrap_or_default())
        .into_response()
}
