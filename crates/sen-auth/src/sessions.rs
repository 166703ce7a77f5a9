//! Sessions and refresh tokens. A session is one refresh-token family:
//! every refresh marks the presented token used and issues its successor
//! in one write transaction. Presenting a used token again means it was
//! stolen or replayed, so the whole family (the session) is revoked.

use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::{AppContext, AppError};

use crate::crypto::{random_token, sha256_hex};
use crate::state::AuthState;
use crate::users::{USER_COLUMNS, UserRow, grants_column, parse_grants};
use sen_core::principal::Grant;

/// Prefix of refresh tokens, so leaked ones are recognisable by scanners.
const REFRESH_PREFIX: &str = "senr_";

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

/// A new refresh token of `session_id` and the row that stores its hash.
pub async fn insert_refresh(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    session_id: &str,
) -> Result<String, AppError> {
    let (insert, token) = refresh_insert(ctx, session_id)?;
    conn.execute_raw(insert).await?;
    Ok(token)
}

/// A new refresh token of `session_id` and the statement that stores it.
fn refresh_insert(
    ctx: &AppContext,
    session_id: &str,
) -> Result<(sea_orm::Statement, String), AppError> {
    let token = format!("{REFRESH_PREFIX}{}", random_token::<32>()?);
    let insert = ctx.db().statement(
        "INSERT INTO sen_refresh_tokens (id, session_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
        [
            uuid::Uuid::now_v7().to_string().into(),
            session_id.into(),
            sha256_hex(token.as_bytes()).into(),
            now_ms().into(),
        ],
    );
    Ok((insert, token))
}

/// A session just opened or refreshed.
pub struct Issued {
    /// The user.
    pub user_id: String,
    /// The session.
    pub session_id: String,
    /// The new refresh token (shown to the client once).
    pub refresh_token: String,
    /// When the session ends regardless of refreshes (ms).
    pub expires_at: i64,
    /// The client the session belongs to (`sen` for first-party sign-in).
    pub client_id: String,
    /// Scopes granted to that client (empty for first-party).
    pub scope: String,
    /// The user's row and grants, when the code that opened the session
    /// read them anyway: answering with tokens then needs no query.
    pub user: Option<(UserRow, Vec<Grant>)>,
}

/// Opens a first-party session for `user_id` on `conn` (the caller's transaction).
pub async fn open(
    ctx: &AppContext,
    state: &AuthState,
    conn: &impl ConnectionTrait,
    user_id: &str,
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> Result<Issued, AppError> {
    open_for(ctx, state, conn, user_id, ("sen", ""), user_agent, ip).await
}

/// Opens a session of `client` = `(client_id, scope)` for `user_id` on `conn`.
pub async fn open_for(
    ctx: &AppContext,
    state: &AuthState,
    conn: &impl ConnectionTrait,
    user_id: &str,
    client: (&str, &str),
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> Result<Issued, AppError> {
    let (inserts, issued) = open_inserts(ctx, state, user_id, client, user_agent, ip)?;
    ctx.db().execute_all(conn, inserts).await?;
    Ok(issued)
}

/// The statements that open a session (the session and its first refresh
/// token) and what they issue.
fn open_inserts(
    ctx: &AppContext,
    state: &AuthState,
    user_id: &str,
    client: (&str, &str),
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> Result<(Vec<sea_orm::Statement>, Issued), AppError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let expires_at = now + state.session_ttl.as_millis() as i64;
    let session = ctx.db().statement(
        "INSERT INTO sen_sessions (id, user_id, created_at, expires_at, last_used_at, user_agent, ip, client_id, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            id.clone().into(),
            user_id.into(),
            now.into(),
            expires_at.into(),
            now.into(),
            user_agent.map(str::to_string).into(),
            ip.map(str::to_string).into(),
            client.0.into(),
            client.1.into(),
        ],
    );
    let (refresh, refresh_token) = refresh_insert(ctx, &id)?;
    let issued = Issued {
        user_id: user_id.to_string(),
        session_id: id,
        refresh_token,
        expires_at,
        client_id: client.0.to_string(),
        scope: client.1.to_string(),
        user: None,
    };
    Ok((vec![session, refresh], issued))
}

fn refresh_error(code: &'static str, detail: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, code).with_detail(detail.to_string())
}

/// Exchanges a refresh token for its successor. Errors: 401
/// `invalid_refresh_token` (unknown, expired, revoked, disabled user) or
/// `token_reused` (replay: the family is revoked).
pub async fn rotate(
    ctx: &AppContext,
    presented: &str,
    client_id: &str,
    ip: Option<&str>,
) -> Result<Issued, AppError> {
    let invalid = || {
        refresh_error(
            "invalid_refresh_token",
            "The refresh token is not valid; sign in again.",
        )
    };
    if !presented.starts_with(REFRESH_PREFIX) || presented.len() > 128 {
        return Err(invalid());
    }
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let row = tx
        .query_one_raw(db.statement(
            &format!("SELECT t.id AS token_id, t.used_at, s.id AS session_id, s.user_id, s.revoked_at, s.expires_at, s.client_id, s.scope, {USER_COLUMNS}, {}
             FROM sen_refresh_tokens t
             JOIN sen_sessions s ON s.id = t.session_id
             JOIN sen_users u ON u.id = s.user_id
             WHERE t.token_hash = ?", grants_column(db.backend())),
            [sha256_hex(presented.as_bytes()).into()],
        ))
        .await?;
    let Some(row) = row else {
        return Err(invalid());
    };
    let token_id: String = row.try_get("", "token_id")?;
    let used_at: Option<i64> = row.try_get("", "used_at")?;
    let session_id: String = row.try_get("", "session_id")?;
    let user_id: String = row.try_get("", "user_id")?;
    let revoked_at: Option<i64> = row.try_get("", "revoked_at")?;
    let expires_at: i64 = row.try_get("", "expires_at")?;
    let user = UserRow::from_row(&row)?;
    let grants = parse_grants(row.try_get::<Option<String>>("", "grants")?.as_deref());
    let disabled_at = user.disabled_at;
    let session_client: String = row.try_get("", "client_id")?;
    let scope: String = row.try_get("", "scope")?;
    let now = now_ms();
    if revoked_at.is_some()
        || expires_at <= now
        || disabled_at.is_some()
        || session_client != client_id
    {
        return Err(invalid());
    }
    let claimed = if used_at.is_none() {
        tx.execute_raw(db.statement(
            "UPDATE sen_refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL",
            [now.into(), token_id.into()],
        ))
        .await?
        .rows_affected()
            == 1
    } else {
        false
    };
    if !claimed {
        // A used token again, or a concurrent refresh that lost the race:
        // either way two parties hold this family. End it for both.
        revoke_in(ctx, &tx, &session_id, "token_reused").await?;
        crate::audit::record(
            db,
            &tx,
            crate::audit::Entry {
                actor: Some(&user_id),
                action: "session.token_reused",
                target: Some(&session_id),
                ip,
                detail: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(refresh_error(
            "token_reused",
            "This refresh token was already used; the session has been ended. Sign in again.",
        ));
    }
    tx.execute_raw(db.statement(
        "UPDATE sen_sessions SET last_used_at = ? WHERE id = ?",
        [now.into(), session_id.clone().into()],
    ))
    .await?;
    let refresh_token = insert_refresh(ctx, &tx, &session_id).await?;
    tx.commit().await?;
    Ok(Issued {
        user_id,
        session_id,
        refresh_token,
        expires_at,
        client_id: session_client,
        scope,
        user: Some((user, grants)),
    })
}

/// Revokes one session on `conn`.
pub async fn revoke_in(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    session_id: &str,
    reason: &str,
) -> Result<bool, sea_orm::DbErr> {
    let db = ctx.db();
    let r = conn
        .execute_raw(db.statement(
            "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
            [now_ms().into(), reason.into(), session_id.into()],
        ))
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Revokes every live session of `user_id` except `keep`.
pub async fn revoke_all_but(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
) -> Result<u64, sea_orm::DbErr> {
    let db = ctx.db();
    let r = conn
        .execute_raw(db.statement(
            "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = ? WHERE user_id = ? AND revoked_at IS NULL AND id <> ?",
            [
                now_ms().into(),
                reason.into(),
                user_id.into(),
                keep.unwrap_or("").into(),
            ],
        ))
        .await?;
    Ok(r.rows_affected())
}

/// Opens a session in its own transaction (login), with its audit row:
/// one write transaction ([`sen_core::Db::write_batch`]: on SQLite one command).
pub async fn open_standalone(
    ctx: &AppContext,
    state: &AuthState,
    user_id: &str,
    user_agent: Option<&str>,
    ip: Option<&str>,
    audit_action: &str,
) -> Result<Issued, AppError> {
    let db = ctx.db();
    let (mut inserts, issued) = open_inserts(ctx, state, user_id, ("sen", ""), user_agent, ip)?;
    inserts.push(crate::audit::insert(
        db,
        crate::audit::Entry {
            actor: Some(user_id),
            action: audit_action,
            target: Some(&issued.session_id),
            ip,
            detail: serde_json::json!({}),
        },
    ));
    db.write_batch(inserts).await?;
    Ok(issued)
}
