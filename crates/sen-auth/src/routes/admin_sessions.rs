//! Operator actions on one user's sign-in: see and end their sessions,
//! reset their two-factor authentication, and act as them.
//!
//! Impersonation opens a short session for the user that remembers the
//! operator and the operator's own session. While it lasts the user's
//! credentials cannot be changed through it (`Principal::require_self`),
//! operators cannot be impersonated (no climbing from `admin` to `owner`),
//! and ending it revokes it and, when the operator's session is still
//! live, hands that session back, so the operator need not sign in again.
//! Start and end are audited with both ids.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path};
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, Entry};
use crate::request_meta::Meta;
use crate::routes::me::{SessionList, SessionView};
use crate::sessions::{self, Issued};
use crate::state::AuthState;
use crate::users::{self, ms_to_iso};

type Problem = sen_core::error::Problem;

/// How long an impersonation may last at most.
pub const IMPERSONATION_TTL_MS: i64 = 60 * 60 * 1000;

/// The routes of this file.
pub fn routes() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_user_sessions, revoke_user_sessions))
        .routes(routes!(revoke_user_session))
        .routes(routes!(reset_mfa))
        .routes(routes!(impersonate))
        .routes(routes!(end_impersonation))
}

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

/// The live sessions of `user_id`, newest first (`current` marks `mine`).
pub async fn live_sessions(
    ctx: &AppContext,
    user_id: &str,
    mine: Option<&str>,
) -> AppResult<Vec<SessionView>> {
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT id, created_at, last_used_at, expires_at, user_agent, ip, impersonator_id FROM sen_sessions
             WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 200",
            [user_id.into(), now_ms().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("", "id")?;
            Ok(SessionView {
                current: mine == Some(id.as_str()),
                id,
                created_at: ms_to_iso(r.try_get("", "created_at")?),
                last_used_at: ms_to_iso(r.try_get("", "last_used_at")?),
                expires_at: ms_to_iso(r.try_get("", "expires_at")?),
                user_agent: r.try_get("", "user_agent")?,
                ip: r.try_get("", "ip")?,
                impersonator_id: r.try_get("", "impersonator_id")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        .map_err(Into::into)
}

async fn user_exists(ctx: &AppContext, id: &str) -> AppResult<()> {
    users::by_id(ctx, ctx.db().orm(), id)
        .await?
        .map(|_| ())
        .ok_or_else(AppError::not_found)
}

/// A user's live sessions.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Live sessions, newest first", body = SessionList),
        (status = 403, description = "Lacks `auth:users.read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_user_sessions(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<SessionList>> {
    me.require("auth:users.read")?;
    user_exists(&ctx, &id).await?;
    let items = live_sessions(&ctx, &id, me.session_id.as_deref()).await?;
    Ok(Json(SessionList { items }))
}

/// How many sessions an action ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    /// Sessions ended.
    pub ended: u64,
}

/// Ends every session of a user (they must sign in again).
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Ended", body = Ended),
        (status = 403, description = "Lacks `auth:users.write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_user_sessions(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<Json<Ended>> {
    me.require("auth:users.write")?;
    user_exists(&ctx, &id).await?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let ended = sessions::revoke_all_but(&ctx, &tx, &id, None, "operator").await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "user.sessions.revoke",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"ended": ended}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Ended { ended }))
}

/// Ends one session of a user (a session of someone else: 404).
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/sessions/{sid}", tag = "admin",
    params(
        ("id" = String, Path, description = "User id"),
        ("sid" = String, Path, description = "Session id"),
    ),
    responses(
        (status = 204, description = "Ended"),
        (status = 403, description = "Lacks `auth:users.write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live session of this user", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_user_session(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path((id, sid)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    me.require("auth:users.write")?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let n = tx
        .execute_raw(db.statement(
            "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = 'operator' WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            [now_ms().into(), sid.clone().into(), id.clone().into()],
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
            action: "user.session.revoke",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"session": sid}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns a user's two-factor authentication off (they lost their device):
/// the secret and recovery codes are deleted; the password still applies.
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/mfa", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Two-factor authentication is off"),
        (status = 403, description = "Lacks `auth:users.write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_not_enabled`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn reset_mfa(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    me.require("auth:users.write")?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let (user, _) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if !user.mfa_enabled {
        return Err(AppError::conflict(
            "mfa_not_enabled",
            "Two-factor authentication is already off for this user.",
        ));
    }
    tx.execute_raw(db.statement(
        "UPDATE sen_users SET mfa_enabled = ?, mfa_secret = NULL, updated_at = ? WHERE id = ?",
        [false.into(), now_ms().into(), id.clone().into()],
    ))
    .await?;
    tx.execute_raw(db.statement(
        "DELETE FROM sen_recovery_codes WHERE user_id = ?",
        [id.clone().into()],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "user.mfa.reset",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Opens a session for user `id` on behalf of operator `me` (the checks
/// and the audit record included). Pages call this and set the cookies.
pub async fn start(ctx: &AppContext, me: &Principal, meta: &Meta, id: &str) -> AppResult<Issued> {
    me.require("auth:users.impersonate")?;
    me.require_self()?;
    let Some(operator_session) = me.session_id.as_deref() else {
        return Err(AppError::new(StatusCode::FORBIDDEN, "session_required")
            .with_detail("Impersonation starts from a signed-in session, not an API key."));
    };
    if id == me.user_id {
        return Err(AppError::conflict(
            "cannot_impersonate_self",
            "You are already yourself.",
        ));
    }
    let state = AuthState::of(ctx)?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let (user, grants) = users::by_id(ctx, &tx, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if user.disabled_at.is_some() {
        return Err(AppError::conflict(
            "user_disabled",
            "This user is disabled; enable them first.",
        ));
    }
    let global = grants
        .iter()
        .filter(|g| g.scope.is_empty())
        .map(|g| g.role.as_str());
    if ctx.rbac().admits_to_dashboard(global) {
        return Err(
            AppError::new(StatusCode::FORBIDDEN, "cannot_impersonate_operator")
                .with_detail("Users who may enter the dashboard cannot be impersonated."),
        );
    }
    let mut issued = sessions::open(
        ctx,
        &state,
        &tx,
        id,
        meta.user_agent.as_deref(),
        meta.ip.as_deref(),
    )
    .await?;
    issued.expires_at = issued.expires_at.min(now_ms() + IMPERSONATION_TTL_MS);
    tx.execute_raw(db.statement(
        "UPDATE sen_sessions SET impersonator_id = ?, impersonator_session = ?, expires_at = ? WHERE id = ?",
        [
            me.user_id.clone().into(),
            operator_session.into(),
            issued.expires_at.into(),
            issued.session_id.clone().into(),
        ],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "user.impersonate",
            target: Some(id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"session": issued.session_id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Ends the impersonation `me` is and, when the operator's own session
/// is still live, returns it with a fresh refresh token (older unused
/// ones are spent, so a copy presented later reads as a replay).
pub async fn end(ctx: &AppContext, me: &Principal, meta: &Meta) -> AppResult<Option<Issued>> {
    let (Some(operator), Some(sid)) = (me.impersonator.as_deref(), me.session_id.as_deref()) else {
        return Err(AppError::conflict(
            "not_impersonating",
            "This session is not an impersonation.",
        ));
    };
    let state = crate::state::AuthState::of(ctx)?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    sessions::revoke_in(ctx, &tx, sid, "impersonation_end").await?;
    let back = tx
        .query_one_raw(db.statement(
            "SELECT o.id, o.expires_at, o.client_id, o.scope FROM sen_sessions s
             JOIN sen_sessions o ON o.id = s.impersonator_session
             JOIN sen_users u ON u.id = o.user_id
             WHERE s.id = ? AND o.user_id = ? AND o.revoked_at IS NULL AND o.expires_at > ? AND u.disabled_at IS NULL",
            [sid.into(), operator.into(), now_ms().into()],
        ))
        .await?;
    let issued = match back {
        Some(r) => {
            let session_id: String = r.try_get("", "id")?;
            Some(Issued {
                user_id: operator.to_string(),
                refresh_token: sessions::restart_refresh(ctx, &state, &tx, &session_id).await?,
                session_id,
                expires_at: r.try_get("", "expires_at")?,
                client_id: r.try_get("", "client_id")?,
                scope: r.try_get("", "scope")?,
                user: None,
            })
        }
        None => None,
    };
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(operator),
            action: "user.impersonate.end",
            target: Some(&me.user_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"session": sid}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Acts as a user: answers like login (access token in the body, cookies
/// for browsers) with a session of at most an hour.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/impersonate", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Signed in as the user", body = crate::routes::auth::TokenResponse),
        (status = 403, description = "Lacks `auth:users.impersonate`, `cannot_impersonate_operator`, `session_required` or `impersonation_restricted`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_impersonate_self` or `user_disabled`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn impersonate(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let issued = start(&ctx, &me, &meta, &id).await?;
    let state = AuthState::of(&ctx)?;
    crate::routes::auth::issue(&ctx, &state, &issued, false).await
}

/// Ends an impersonation: the session is revoked and, for browsers, the
/// operator's own session comes back in the cookies (204 when it has
/// ended meanwhile: sign in again).
#[utoipa::path(post, path = "/api/v1/auth/impersonation/end", tag = "auth",
    responses(
        (status = 200, description = "Back as the operator", body = crate::routes::auth::TokenResponse),
        (status = 204, description = "Ended; the operator's session is gone"),
        (status = 409, description = "`not_impersonating`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn end_impersonation(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    match end(&ctx, &me, &meta).await? {
        Some(issued) => crate::routes::auth::issue(&ctx, &state, &issued, false).await,
        None => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            for c in crate::cookies::clear(state.cookie_secure) {
                r.headers_mut().append(http::header::SET_COOKIE, c);
            }
            Ok(r)
        }
    }
}
