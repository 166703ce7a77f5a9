//! Client registration by a signed-in developer, and the user's consents.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path};
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Entry};
use crate::crypto::{random_token, sha256_hex};
use crate::request_meta::Meta;
use crate::users::ms_to_iso;

type Problem = sen_core::error::Problem;

/// `POST /api/v1/oauth/clients` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Shown on the consent page.
    pub name: String,
    /// Where codes may be sent; matched exactly (https, or http on loopback).
    pub redirect_uris: Vec<String>,
    /// Whether the client can keep a secret (server-side apps).
    pub confidential: bool,
}

/// A registered client; the secret is shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    /// The client id.
    pub client_id: String,
    /// The secret (confidential clients only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Name.
    pub name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
}

fn valid_redirect(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    if u.fragment().is_some() || uri.len() > 512 {
        return false;
    }
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match u.scheme() {
        "https" => true,
        "http" => loopback,
        // Private-use schemes for native apps (RFC 8252 §7.1): reverse domain.
        s => s.contains('.') && !matches!(s, "javascript" | "data" | "file"),
    }
}

/// Registers a client owned by the caller.
#[utoipa::path(post, path = "/api/v1/oauth/clients", tag = "oauth", request_body = NewClient, responses(
    (status = 201, description = "Registered", body = CreatedClient),
    (status = 422, description = "Bad name or redirect URI", body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_client(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<NewClient>,
) -> AppResult<Response> {
    me.require_self()?;
    let mut errors = Vec::new();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new(
            "name",
            "invalid_name",
            "must be 1–100 characters",
        ));
    }
    if body.redirect_uris.is_empty() || body.redirect_uris.len() > 10 {
        errors.push(FieldError::new(
            "redirect_uris",
            "invalid_length",
            "1 to 10 URIs",
        ));
    }
    for (i, u) in body.redirect_uris.iter().enumerate() {
        if !valid_redirect(u) {
            errors.push(FieldError::new(
                format!("redirect_uris[{i}]"),
                "invalid_redirect_uri",
                "must be an absolute https URL without a fragment (http only on loopback)",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    let client_id = format!("senc_{}", random_token::<16>()?);
    let secret = if body.confidential {
        Some(format!("sens_{}", random_token::<32>()?))
    } else {
        None
    };
    let db = ctx.db();
    let tx = db.begin_write().await?;
    tx.execute_raw(db.statement(
        "INSERT INTO sen_oauth_clients (client_id, owner_id, name, redirect_uris, confidential, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            client_id.clone().into(),
            me.user_id.clone().into(),
            name.clone().into(),
            serde_json::to_string(&body.redirect_uris).unwrap_or_default().into(),
            body.confidential.into(),
            secret.as_ref().map(|s| sha256_hex(s.as_bytes())).into(),
            sen_core::clock::now().timestamp_millis().into(),
        ],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "oauth.client.create",
            target: Some(&client_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"confidential": body.confidential}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        [(http::header::CACHE_CONTROL, "no-store")],
        Json(CreatedClient {
            client_id,
            client_secret: secret,
            name,
            redirect_uris: body.redirect_uris,
        }),
    )
        .into_response())
}

/// A consent the user gave a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// The client.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// Scopes granted.
    pub scope: String,
    /// When granted.
    pub created_at: String,
}

/// The user's consents.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentList {
    /// Consents.
    pub items: Vec<ConsentView>,
}

/// Clients the user has let in.
#[utoipa::path(get, path = "/api/v1/me/consents", tag = "me", responses(
    (status = 200, description = "Consents", body = ConsentList),
))]
pub async fn list_consents(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<ConsentList>> {
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT c.client_id, k.name, c.scope, c.created_at FROM sen_oauth_consents c
             JOIN sen_oauth_clients k ON k.client_id = c.client_id WHERE c.user_id = ? ORDER BY c.created_at",
            [me.user_id.clone().into()],
        ))
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(ConsentView {
                client_id: r.try_get("", "client_id")?,
                client_name: r.try_get("", "name")?,
                scope: r.try_get("", "scope")?,
                created_at: ms_to_iso(r.try_get("", "created_at")?),
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(Json(ConsentList { items }))
}

/// Withdraws a consent and ends the client's sessions for this user.
#[utoipa::path(delete, path = "/api/v1/me/consents/{client_id}", tag = "me",
    params(("client_id" = String, Path, description = "Client id")),
    responses(
        (status = 204, description = "Withdrawn; the client's tokens stop working"),
        (status = 404, description = "No such consent", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_consent(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(client_id): Path<String>,
) -> AppResult<StatusCode> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let n = tx
        .execute_raw(db.statement(
            "DELETE FROM sen_oauth_consents WHERE user_id = ? AND client_id = ?",
            [me.user_id.clone().into(), client_id.clone().into()],
        ))
        .await?
        .rows_affected();
    if n == 0 {
        return Err(AppError::not_found());
    }
    tx.execute_raw(db.statement(
        "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = 'consent_withdrawn' WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
        [
            sen_core::clock::now().timestamp_millis().into(),
            me.user_id.clone().into(),
            client_id.clone().into(),
        ],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "oauth.consent.revoke",
            target: Some(&client_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
