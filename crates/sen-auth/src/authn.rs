//! The authenticator: turns an access JWT (Bearer header or cookie) into a
//! `Principal` with one database round trip that reads the user, checks the
//! session is live and the user enabled, and collects role grants. So a
//! logout, a revoked session or a disabled user takes effect on the next
//! request, not when the access token expires.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use http::request::Parts;
use http::{Method, StatusCode, header};
use sea_orm::ConnectionTrait;
use sen_core::principal::{AuthMethod, Authenticator, Principal};
use sen_core::realtime::Revocations;
use sen_core::{AppContext, AppError, Backend};

use crate::cookies;
use crate::jwt;
use crate::routes::api_keys::KEY_PREFIX;
use crate::state::AuthState;
use crate::users::{USER_COLUMNS, UserRow, grants_column, parse_grants};

/// 401 for credentials that were sent and are not valid.
pub fn invalid_token() -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "invalid_token")
        .with_detail("The access token or API key is not valid, has expired, or was revoked.")
        .with_header(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        )
}

/// The `Authenticator` Sen installs.
pub struct SenAuthenticator;

/// Cookie-authenticated unsafe requests must prove they come from our own
/// pages: a custom header no cross-site form can set, or our own origin.
fn csrf_ok(ctx: &AppContext, parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if parts.headers.contains_key("x-requested-with") || parts.headers.contains_key("x-csrf-token")
    {
        return true;
    }
    if let Some(site) = parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        && site == "same-origin"
    {
        return true;
    }
    match parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        Some(origin) => {
            origin == ctx.config().public_url()
                || ctx.config().cors_origins.iter().any(|o| o == origin)
        }
        None => false,
    }
}

/// The user, their grants and the session, for an access token: one query.
const SESSION_SQL: &str = "SELECT {cols}, s.revoked_at, s.expires_at, s.impersonator_id, {grants}
    FROM sen_users u JOIN sen_sessions s ON s.user_id = u.id WHERE u.id = ? AND s.id = ?";

#[async_trait::async_trait]
impl Authenticator for SenAuthenticator {
    async fn authenticate(
        &self,
        ctx: &AppContext,
        parts: &Parts,
    ) -> Result<Option<Principal>, AppError> {
        let (token, method) = if let Some(h) = parts.headers.get(header::AUTHORIZATION) {
            let s = h.to_str().map_err(|_| invalid_token())?;
            let (scheme, rest) = s.split_once(' ').ok_or_else(invalid_token)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(invalid_token());
            }
            let rest = rest.trim();
            if rest.starts_with(KEY_PREFIX) {
                return api_key(ctx, rest).await.map(Some);
            }
            (rest, AuthMethod::Bearer)
        } else if let Some(k) = parts.headers.get("x-api-key") {
            let k = k.to_str().map_err(|_| invalid_token())?;
            return api_key(ctx, k.trim()).await.map(Some);
        } else if let Some(c) = cookies::read(parts, cookies::ACCESS) {
            if !csrf_ok(ctx, parts) {
                return Err(AppError::new(StatusCode::FORBIDDEN, "csrf_rejected").with_detail(
                    "Cookie-authenticated changes need an X-Requested-With header or a same-origin Origin.",
                ));
            }
            (c, AuthMethod::Cookie)
        } else {
            return Ok(None);
        };
        let state = AuthState::of(ctx)?;
        let claims = match state.verified.get(token).await {
            Some(c) if c.exp > sen_core::clock::now().timestamp() => c,
            _ => {
                let c = Arc::new(
                    jwt::verify_fresh(ctx, &state.keys, token, &state.issuer, &state.audience)
                        .await
                        .map_err(|_| invalid_token())?,
                );
                if token.len() <= 4096 {
                    state.verified.insert(token.to_string(), c.clone()).await;
                }
                c
            }
        };
        let db = ctx.db();
        let sql = &queries(db.backend()).session;
        let (sub, sid) = (claims.sub.as_str(), claims.sid.as_str());
        let inline = db.sqlite_read(|c| {
            let mut stmt = c.prepare_cached(sql)?;
            let mut rows = stmt.query([sub, sid])?;
            rows.next()?
                .map(|r| {
                    Ok(SessionRow {
                        user: UserRow::from_lite(r)?,
                        revoked_at: r.get("revoked_at")?,
                        expires_at: r.get("expires_at")?,
                        grants: r.get("grants")?,
                        impersonator: r.get("impersonator_id")?,
                    })
                })
                .transpose()
        });
        let found = match inline {
            Some(found) => found,
            None => db
                .fetch_optional(db.statement(sql, [sub.into(), sid.into()]))
                .await?
                .map(|r| {
                    Ok::<_, sea_orm::DbErr>(SessionRow {
                        user: UserRow::from_row(&r)?,
                        revoked_at: r.try_get("", "revoked_at")?,
                        expires_at: r.try_get("", "expires_at")?,
                        grants: r.try_get("", "grants")?,
                        impersonator: r.try_get("", "impersonator_id")?,
                    })
                })
                .transpose()?,
        };
        let SessionRow {
            user,
            revoked_at,
            expires_at,
            grants: agg,
            impersonator,
        } = found.ok_or_else(invalid_token)?;
        let now = sen_core::clock::now().timestamp_millis();
        if user.disabled_at.is_some() || revoked_at.is_some() || expires_at <= now {
            return Err(invalid_token());
        }
        let grants = parse_grants(agg.as_deref());
        let mut p = principal(
            ctx,
            user,
            grants,
            Some(claims.sid.clone()),
            None,
            method,
            None,
        );
        p.impersonator = impersonator;
        Ok(Some(p))
    }

    async fn revoked_since(
        &self,
        ctx: &AppContext,
        since_ms: i64,
    ) -> Result<Revocations, AppError> {
        let db = ctx.db();
        let now = sen_core::clock::now().timestamp_millis();
        let ids = |sql: &'static str, values: Vec<sea_orm::Value>| async move {
            let rows = db.orm().query_all_raw(db.statement(sql, values)).await?;
            rows.iter()
                .map(|r| r.try_get::<String>("", "id"))
                .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        };
        Ok(Revocations {
            sessions: ids(
                "SELECT id FROM sen_sessions WHERE revoked_at >= ?
                 UNION SELECT id FROM sen_sessions WHERE expires_at >= ? AND expires_at <= ?",
                vec![since_ms.into(), since_ms.into(), now.into()],
            )
            .await?,
            users: ids(
                "SELECT id FROM sen_users WHERE disabled_at >= ?",
                vec![since_ms.into()],
            )
            .await?,
            api_keys: ids(
                "SELECT id FROM sen_api_keys WHERE revoked_at >= ?
                 UNION SELECT id FROM sen_api_keys WHERE expires_at >= ? AND expires_at <= ?",
                vec![since_ms.into(), since_ms.into(), now.into()],
            )
            .await?,
        })
    }
}

/// An API key with its owner and the owner's grants: one query.
const KEY_SQL: &str = "SELECT {cols}, k.id AS key_id, k.permissions AS key_permissions, k.expires_at AS key_expires_at, k.revoked_at AS key_revoked_at, k.last_used_at AS key_last_used_at, {grants}
    FROM sen_api_keys k JOIN sen_users u ON u.id = k.user_id WHERE k.key_hash = ?";

/// The authenticator's two queries for one backend, filled in once: they
/// run on every authenticated request.
struct Queries {
    session: String,
    key: String,
}

/// What the session query reads for a bearer token.
struct SessionRow {
    user: UserRow,
    revoked_at: Option<i64>,
    expires_at: i64,
    grants: Option<String>,
    impersonator: Option<String>,
}

fn queries(backend: Backend) -> &'static Queries {
    fn fill(backend: Backend) -> Queries {
        let fill = |template: &str| {
            template
                .replace("{cols}", USER_COLUMNS)
                .replace("{grants}", grants_column(backend))
        };
        Queries {
            session: fill(SESSION_SQL),
            key: fill(KEY_SQL),
        }
    }
    static SQLITE: LazyLock<Queries> = LazyLock::new(|| fill(Backend::Sqlite));
    static POSTGRES: LazyLock<Queries> = LazyLock::new(|| fill(Backend::Postgres));
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// How stale `last_used_at` may get before a request refreshes it: one
/// write a minute per key, not one per request.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// Authenticates a personal API key (one read; the owner's current roles
/// bound what the key may do, so a demoted owner's keys shrink with them).
async fn api_key(ctx: &AppContext, key: &str) -> Result<Principal, AppError> {
    if key.len() > 128 || !key.starts_with(KEY_PREFIX) {
        return Err(invalid_token());
    }
    let db = ctx.db();
    let sql = &queries(db.backend()).key;
    let row = db
        .fetch_optional(db.statement(sql, [crate::crypto::sha256_hex(key.as_bytes()).into()]))
        .await?
        .ok_or_else(invalid_token)?;
    let user = UserRow::from_row(&row)?;
    let key_id: String = row.try_get("", "key_id")?;
    let expires_at: Option<i64> = row.try_get("", "key_expires_at")?;
    let revoked_at: Option<i64> = row.try_get("", "key_revoked_at")?;
    let last_used: Option<i64> = row.try_get("", "key_last_used_at")?;
    let now = sen_core::clock::now().timestamp_millis();
    if user.disabled_at.is_some() || revoked_at.is_some() || expires_at.is_some_and(|e| e <= now) {
        return Err(invalid_token());
    }
    let limit: BTreeSet<String> =
        serde_json::from_str(&row.try_get::<String>("", "key_permissions")?).unwrap_or_default();
    let agg: Option<String> = row.try_get("", "grants")?;
    if last_used.is_none_or(|t| now - t > LAST_USED_EVERY_MS) {
        let ctx = ctx.clone();
        let id = key_id.clone();
        tokio::spawn(async move {
            let db = ctx.db();
            let _ = db
                .execute(db.statement(
                    "UPDATE sen_api_keys SET last_used_at = ? WHERE id = ?",
                    [now.into(), id.into()],
                ))
                .await;
        });
    }
    Ok(principal(
        ctx,
        user,
        parse_grants(agg.as_deref()),
        None,
        Some(key_id),
        AuthMethod::ApiKey,
        Some(limit),
    ))
}

/// Builds the principal for `user` holding `grants`, optionally narrowed to
/// an API key's permissions.
pub fn principal(
    ctx: &AppContext,
    user: UserRow,
    grants: Vec<sen_core::principal::Grant>,
    session_id: Option<String>,
    api_key_id: Option<String>,
    method: AuthMethod,
    key_limit: Option<BTreeSet<String>>,
) -> Principal {
    let rbac = ctx.rbac();
    let global = grants
        .iter()
        .filter(|g| g.scope.is_empty())
        .map(|g| g.role.as_str());
    let mut permissions = rbac.permissions_of(global.clone());
    if let Some(limit) = &key_limit {
        permissions.retain(|p| limit.contains(p));
    }
    let operator = key_limit.is_none() && rbac.admits_to_dashboard(global);
    Principal {
        user_id: user.id.clone(),
        session_id,
        api_key_id,
        method,
        grants: grants.into(),
        permissions: Arc::new(permissions),
        key_limit: key_limit.map(Arc::new),
        operator,
        impersonator: None,
        extra: Some(Arc::new(user)),
    }
}
