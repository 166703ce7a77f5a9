//! `/api/v1/me/api-keys`: personal API keys. A key is shown once, stored as
//! a SHA-256 digest (it carries 256 random bits, so a slow hash would add
//! nothing but a per-request cost), limited to a subset of its owner's
//! permissions, optionally expiring, and revocable.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path};
use sen_core::principal::AuthMethod;
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Entry};
use crate::crypto::{random_token, sha256_hex};
use crate::request_meta::Meta;
use crate::users::ms_to_iso;

type Problem = sen_core::error::Problem;

/// Every API key starts with this, so scanners and people recognise one.
pub const KEY_PREFIX: &str = "sen_";

/// `POST /api/v1/me/api-keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for (1–100 characters).
    pub name: String,
    /// Permissions the key may use; each must be one the owner holds.
    pub permissions: Vec<String>,
    /// When it stops working (RFC 3339, in the future); absent = never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A key as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The visible start of the key, to recognise it.
    pub prefix: String,
    /// Permissions it may use.
    pub permissions: Vec<String>,
    /// When created.
    pub created_at: String,
    /// When it expires, if ever.
    pub expires_at: Option<String>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<String>,
}

impl KeyView {
    /// Reads the columns `id, name, prefix, permissions, created_at,
    /// expires_at, last_used_at`.
    pub fn from_row(r: &sea_orm::QueryResult) -> Result<Self, sea_orm::DbErr> {
        Ok(Self {
            id: r.try_get("", "id")?,
            name: r.try_get("", "name")?,
            prefix: r.try_get("", "prefix")?,
            permissions: serde_json::from_str(&r.try_get::<String>("", "permissions")?)
                .unwrap_or_default(),
            created_at: ms_to_iso(r.try_get("", "created_at")?),
            expires_at: r.try_get::<Option<i64>>("", "expires_at")?.map(ms_to_iso),
            last_used_at: r.try_get::<Option<i64>>("", "last_used_at")?.map(ms_to_iso),
        })
    }
}

/// A new key: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// Id.
    pub id: String,
    /// The key itself; store it now, it is not shown again.
    pub key: String,
    /// Its listing.
    #[serde(flatten)]
    pub view: KeyView,
}

/// The caller's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Live keys, newest first.
    pub items: Vec<KeyView>,
}

fn needs_session(me: &Principal) -> AppResult<()> {
    if me.method == AuthMethod::ApiKey {
        return Err(AppError::new(StatusCode::FORBIDDEN, "session_required")
            .with_detail("API keys are managed from a signed-in session, not with another key."));
    }
    Ok(())
}

/// Creates a key limited to some of the caller's permissions.
#[utoipa::path(post, path = "/api/v1/me/api-keys", tag = "me", request_body = NewKey, responses(
    (status = 201, description = "Created; the key is shown once", body = CreatedKey),
    (status = 422, description = "Unknown or unheld permission, bad expiry", body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_key(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<NewKey>,
) -> AppResult<Response> {
    me.require_self()?;
    needs_session(&me)?;
    let mut errors = Vec::new();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "invalid_name",
            "must be 1–100 characters",
        ));
    }
    if body.permissions.len() > 200 {
        errors.push(FieldError::new("permissions", "too_many", "at most 200"));
    }
    for (i, p) in body.permissions.iter().enumerate() {
        if !me.has(p) {
            errors.push(FieldError::new(
                format!("permissions[{i}]"),
                "not_held",
                format!("you do not hold `{p}`, so a key of yours cannot either"),
            ));
        }
    }
    let now = sen_core::clock::now();
    let expires_at = match &body.expires_at {
        None => None,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(at) if at > now => Some(at.timestamp_millis()),
            _ => {
                errors.push(FieldError::new(
                    "expires_at",
                    "invalid_time",
                    "must be an RFC 3339 time in the future",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    let mut permissions = body.permissions.clone();
    permissions.sort();
    permissions.dedup();
    let id = uuid::Uuid::now_v7().to_string();
    let secret = random_token::<32>()?;
    let prefix = format!("{KEY_PREFIX}{}", &secret[..8]);
    let key = format!("{prefix}_{}", &secret[8..]);
    let db = ctx.db();
    let tx = db.begin_write().await?;
    tx.execute_raw(db.statement(
        "INSERT INTO sen_api_keys (id, user_id, name, prefix, key_hash, permissions, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            id.clone().into(),
            me.user_id.clone().into(),
            name.clone().into(),
            prefix.clone().into(),
            sha256_hex(key.as_bytes()).into(),
            serde_json::to_string(&permissions).unwrap_or_else(|_| "[]".into()).into(),
            now.timestamp_millis().into(),
            expires_at.into(),
        ],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "api_key.create",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"permissions": permissions}),
        },
    )
    .await?;
    tx.commit().await?;
    let mut resp = (
        StatusCode::CREATED,
        Json(CreatedKey {
            id: id.clone(),
            key,
            view: KeyView {
                id,
                name,
                prefix,
                permissions,
                created_at: ms_to_iso(now.timestamp_millis()),
                expires_at: expires_at.map(ms_to_iso),
                last_used_at: None,
            },
        }),
    )
        .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// Lists the caller's live keys, without secrets.
#[utoipa::path(get, path = "/api/v1/me/api-keys", tag = "me", responses(
    (status = 200, description = "Keys", body = KeyList),
))]
pub async fn list_keys(State(ctx): State<AppContext>, me: Principal) -> AppResult<Json<KeyList>> {
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT id, name, prefix, permissions, created_at, expires_at, last_used_at FROM sen_api_keys
             WHERE user_id = ? AND revoked_at IS NULL ORDER BY id DESC LIMIT 500",
            [me.user_id.clone().into()],
        ))
        .await?;
    let items = rows
        .iter()
        .map(KeyView::from_row)
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(Json(KeyList { items }))
}

/// Revokes one of the caller's keys (another user's id: 404).
#[utoipa::path(delete, path = "/api/v1/me/api-keys/{id}", tag = "me",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key of yours", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_key(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    needs_session(&me)?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let n = tx
        .execute_raw(db.statement(
            "UPDATE sen_api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            [
                sen_core::clock::now().timestamp_millis().into(),
                id.clone().into(),
                me.user_id.clone().into(),
            ],
        ))
        .await?
        .rows_affected();
    if n == 0 {
        return Err(AppError::not_found());
    }
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "api_key.revoke",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
