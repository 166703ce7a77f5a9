//! `/.well-known/jwks.json`: the public signing keys.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use sen_core::{AppContext, AppResult};

use crate::keys::jwks_body;
use crate::state::AuthState;

/// The public keys that verify our tokens (current, next, and retiring).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses(
    (status = 200, description = "JSON Web Key Set", content_type = "application/json", body = Object),
))]
pub async fn jwks(State(ctx): State<AppContext>) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let body = jwks_body(&state.keys)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
        ],
        body,
    )
        .into_response())
}
