//! `AppError`: every failure as an RFC 9457 `application/problem+json` body
//! with a stable `code`. Each error kind knows its HTTP meaning here, in one
//! place; handlers never build error responses by hand.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the field in the request body, such as `items[2].qty`.
    pub field: String,
    /// Stable machine-readable reason, such as `too_short` or `invalid_type`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The RFC 9457 body as it goes on the wire (also the OpenAPI schema of every error).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type (`/problems/{code}`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Explanation of this occurrence; never internals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code; clients switch on this.
    pub code: String,
    /// Per-field validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id, to quote when reporting the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Problem-specific extension members (RFC 9457 §3.2).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// An error a handler or service returns; converted to problem+json once.
/// Boxed so `Result<T, AppError>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct AppError {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Option<String>,
    errors: Vec<FieldError>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    extensions: serde_json::Map<String, serde_json::Value>,
    /// Logged on the server, never sent.
    source: Option<anyhow::Error>,
}

impl AppError {
    /// An error with a status and stable code.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                status,
                code: code.into(),
                detail: None,
                errors: Vec::new(),
                headers: Vec::new(),
                extensions: serde_json::Map::new(),
                source: None,
            }),
        }
    }

    /// Adds a human-readable explanation (must not contain internals).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    /// Adds a response header (for example `Retry-After` or `Allow`).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.push((name, value));
        self
    }

    /// Adds an RFC 9457 extension member to the body.
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.inner.extensions.insert(key.to_string(), value);
        self
    }

    /// 400 `bad_request`-style errors with a specific code.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code).with_detail(detail)
    }

    /// 404 `not_found`: also what a caller without access to an object gets.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found")
            .with_detail("The requested resource does not exist.")
    }

    /// 409 with a specific code such as `email_taken`.
    pub fn conflict(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code).with_detail(detail)
    }

    /// 422 `validation_failed` with per-field errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            .with_detail("The request body did not pass validation.");
        e.inner.errors = errors;
        e
    }

    /// 503 `dependency_unavailable`: a backing service (database, Redis) is down.
    pub fn unavailable(what: &str, source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable")
            .with_detail(format!(
                "A backing service ({what}) is unavailable; try again shortly."
            ))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
        e.inner.source = Some(source.into());
        e
    }

    /// 500 `internal_error`: the cause is logged with the request id, never sent.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            .with_detail("An unexpected error occurred; quote the request id when reporting it.");
        e.inner.source = Some(source.into());
        e
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.inner.code
    }

    /// The per-field errors.
    pub fn field_errors(&self) -> &[FieldError] {
        &self.inner.errors
    }

    /// The body as it would be sent.
    pub fn to_problem(&self) -> Problem {
        Problem {
            kind: format!("/problems/{}", self.inner.code),
            title: self
                .inner
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.inner.status.as_u16(),
            detail: self.inner.detail.clone(),
            code: self.inner.code.to_string(),
            errors: self.inner.errors.clone(),
            request_id: request_id::current(),
            extensions: self.inner.extensions.clone(),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.inner.status.as_u16(), self.inner.code)?;
        if let Some(d) = &self.inner.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        if crate::db::is_connection_error(&e) {
            Self::unavailable("database", e)
        } else {
            Self::internal(e)
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => Self::unavailable("database", e),
            other => Self::internal(other),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.inner.source {
            if self.inner.status.is_server_error() {
                tracing::error!(code = %self.inner.code, error = format!("{source:#}"), "request failed");
            } else {
                tracing::debug!(code = %self.inner.code, error = format!("{source:#}"), "request rejected");
            }
        }
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut response = (self.inner.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.inner.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// A handler's result.
pub type AppResult<T> = Result<T, AppError>;
