//! `/api/v1/admin/api-keys` and `/api/v1/admin/oauth/clients`: every
//! user's API keys and every registered OAuth client, for operators who
//! must find and cut off a leaked credential. Secrets are never shown
//! (only hashes are stored); revoking a client also ends every session
//! and code issued to it.

use axum::extract::State;
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, Entry};
use crate::request_meta::Meta;
use crate::routes::api_keys::KeyView;
use crate::users::ms_to_iso;

type Problem = sen_core::error::Problem;

/// Permission to list.
pub const READ: &str = "auth:credentials.read";
/// Permission to revoke and register.
pub const WRITE: &str = "auth:credentials.write";

/// The routes of this file.
pub fn routes() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_all_keys))
        .routes(routes!(revoke_any_key))
        .routes(routes!(list_clients))
        .routes(routes!(revoke_client))
}

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

/// Filters for the key list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Only this user's keys.
    pub user_id: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A key with its owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnedKey {
    /// The key.
    #[serde(flatten)]
    pub key: KeyView,
    /// The owner's id.
    pub user_id: String,
    /// The owner's email.
    pub user_email: String,
}

/// A page of keys, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    /// Live keys.
    pub items: Vec<OwnedKey>,
    /// Pass as `cursor` for older keys.
    pub next_cursor: Option<String>,
}

/// Every user's live API keys.
#[utoipa::path(get, path = "/api/v1/admin/api-keys", tag = "admin", params(KeyQuery), responses(
    (status = 200, description = "A page of keys", body = KeyPage),
    (status = 403, description = "Lacks `auth:credentials.read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_all_keys(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<KeyQuery>,
) -> AppResult<Json<KeyPage>> {
    me.require(READ)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let mut sql = String::from(
        "SELECT k.id, k.name, k.prefix, k.permissions, k.created_at, k.expires_at, k.last_used_at, u.id AS user_id, u.email
         FROM sen_api_keys k JOIN sen_users u ON u.id = k.user_id
         WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)",
    );
    let mut values: Vec<sea_orm::Value> = vec![now_ms().into()];
    if let Some(u) = q.user_id {
        sql.push_str(" AND k.user_id = ?");
        values.push(u.into());
    }
    if let Some(c) = q.cursor {
        sql.push_str(" AND k.id < ?");
        values.push(c.into());
    }
    sql.push_str(" ORDER BY k.id DESC LIMIT ?");
    values.push(i64::from(limit + 1).into());
    let db = ctx.db();
    let rows = db.orm().query_all_raw(db.statement(&sql, values)).await?;
    let mut items = rows
        .iter()
        .map(|r| {
            Ok(OwnedKey {
                key: KeyView::from_row(r)?,
                user_id: r.try_get("", "user_id")?,
                user_email: r.try_get("", "email")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|k| k.key.id.clone())
    } else {
        None
    };
    Ok(Json(KeyPage { items, next_cursor }))
}

/// Revokes any user's key at once.
#[utoipa::path(delete, path = "/api/v1/admin/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Lacks `auth:credentials.write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live key", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_any_key(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    me.require(WRITE)?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let owner = tx
        .query_one_raw(db.statement(
            "SELECT user_id FROM sen_api_keys WHERE id = ? AND revoked_at IS NULL",
            [id.clone().into()],
        ))
        .await?
        .ok_or_else(AppError::not_found)?
        .try_get::<String>("", "user_id")?;
    tx.execute_raw(db.statement(
        "UPDATE sen_api_keys SET revoked_at = ? WHERE id = ?",
        [now_ms().into(), id.clone().into()],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "api_key.revoke",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"owner": owner}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A registered OAuth client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Name shown on the consent page.
    pub name: String,
    /// Who registered it.
    pub owner_id: String,
    /// Their email.
    pub owner_email: String,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// Holds a secret.
    pub confidential: bool,
    /// When registered.
    pub created_at: String,
    /// Sessions it holds now.
    pub live_sessions: i64,
}

/// Every live client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    /// Newest first (at most 500).
    pub items: Vec<ClientView>,
}

/// Every registered client that is not revoked.
#[utoipa::path(get, path = "/api/v1/admin/oauth/clients", tag = "admin", responses(
    (status = 200, description = "Clients", body = ClientList),
    (status = 403, description = "Lacks `auth:credentials.read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_clients(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<ClientList>> {
    me.require(READ)?;
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT c.client_id, c.name, c.owner_id, u.email, c.redirect_uris, c.confidential, c.created_at,
                (SELECT COUNT(*) FROM sen_sessions s WHERE s.client_id = c.client_id AND s.revoked_at IS NULL AND s.expires_at > ?) AS live
             FROM sen_oauth_clients c JOIN sen_users u ON u.id = c.owner_id
             WHERE c.revoked_at IS NULL ORDER BY c.created_at DESC LIMIT 500",
            [now_ms().into()],
        ))
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(ClientView {
                client_id: r.try_get("", "client_id")?,
                name: r.try_get("", "name")?,
                owner_id: r.try_get("", "owner_id")?,
                owner_email: r.try_get("", "email")?,
                redirect_uris: serde_json::from_str(&r.try_get::<String>("", "redirect_uris")?)
                    .unwrap_or_default(),
                confidential: r.try_get("", "confidential")?,
                created_at: ms_to_iso(r.try_get("", "created_at")?),
                live_sessions: r.try_get("", "live")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(Json(ClientList { items }))
}

/// Revokes a client: it can no longer sign anyone in, and every session
/// and unredeemed code it holds ends now.
#[utoipa::path(delete, path = "/api/v1/admin/oauth/clients/{id}", tag = "admin",
    params(("id" = String, Path, description = "Client id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Lacks `auth:credentials.write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live client", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_client(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    me.require(WRITE)?;
    let db = ctx.db();
    let now = now_ms();
    let tx = db.begin_write().await?;
    let n = tx
        .execute_raw(db.statement(
            "UPDATE sen_oauth_clients SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
            [now.into(), id.clone().into()],
        ))
        .await?
        .rows_affected();
    if n == 0 {
        return Err(AppError::not_found());
    }
    let ended = tx
        .execute_raw(db.statement(
            "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = 'client_revoked' WHERE client_id = ? AND revoked_at IS NULL",
            [now.into(), id.clone().into()],
        ))
        .await?
        .rows_affected();
    tx.execute_raw(db.statement(
        "DELETE FROM sen_oauth_codes WHERE client_id = ?",
        [id.clone().into()],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "oauth.client.revoke",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"sessions_ended": ended}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
