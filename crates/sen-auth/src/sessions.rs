//! Sessions and refresh tokens. A session is one refresh-token family:
//! each refresh bumps the session's generation and hands out the token of
//! the new one ([`crate::refresh_token`]), so the presented token stops
//! working. Presenting an older generation again means it was stolen or
//! replayed, so the whole family (the session) is revoked.

use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::{AppContext, AppError};

use crate::crypto::sha256_hex;
use crate::refresh_token::Presented;
use crate::state::AuthState;
use crate::users::{USER_COLUMNS, UserRow, grants_column, parse_grants};
use sen_core::principal::Grant;

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

/// The token of `session_id`'s `generation`. Every session id Sen makes is
/// a UUID, so failing here is a bug, not bad input.
fn refresh_token(state: &AuthState, session_id: &str, generation: i64) -> Result<String, AppError> {
    state.refresh.token(session_id, generation).ok_or_else(|| {
        AppError::internal(anyhow::anyhow!("session id {session_id:?} is not a UUID"))
    })
}

/// Ends every refresh token of `session_id` handed out so far and returns
/// the token of its next generation (on `conn`, the caller's transaction).
pub async fn restart_refresh(
    ctx: &AppContext,
    state: &AuthState,
    conn: &impl ConnectionTrait,
    session_id: &str,
) -> Result<String, AppError> {
    let db = ctx.db();
    // Tokens of the earlier scheme, if the session is that old.
    conn.execute_raw(db.statement(
        "UPDATE sen_refresh_tokens SET used_at = ? WHERE session_id = ? AND used_at IS NULL",
        [now_ms().into(), session_id.into()],
    ))
    .await?;
    let generation: i64 = conn
        .query_one_raw(db.statement(
            "UPDATE sen_sessions SET refresh_gen = refresh_gen + 1 WHERE id = ? RETURNING refresh_gen",
            [session_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("session {session_id} vanished")))?
        .try_get("", "refresh_gen")?;
    refresh_token(state, session_id, generation)
}

/// The session a refresh token belongs to (any generation), or `None` for a
/// token that is not ours.
pub async fn session_of_refresh(
    ctx: &AppContext,
    presented: &str,
) -> Result<Option<String>, AppError> {
    let state = AuthState::of(ctx)?;
    match state.refresh.open(presented) {
        None => Ok(None),
        Some(Presented::Generation { session_id, .. }) => Ok(Some(session_id)),
        Some(Presented::Legacy) => {
            let db = ctx.db();
            Ok(db
                .orm()
                .query_one_raw(db.statement(
                    "SELECT session_id FROM sen_refresh_tokens WHERE token_hash = ?",
                    [sha256_hex(presented.as_bytes()).into()],
                ))
                .await?
                .map(|r| r.try_get::<String>("", "session_id"))
                .transpose()?)
        }
    }
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

/// The statement that opens a session (its row, at refresh generation 1)
/// and what it issues.
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
        "INSERT INTO sen_sessions (id, user_id, created_at, expires_at, last_used_at, user_agent, ip, client_id, scope, refresh_gen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
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
    let refresh_token = refresh_token(state, &id, 1)?;
    let issued = Issued {
        user_id: user_id.to_string(),
        session_id: id,
        refresh_token,
        expires_at,
        client_id: client.0.to_string(),
        scope: client.1.to_string(),
        user: None,
    };
    Ok((vec![session], issued))
}

fn refresh_error(code: &'static str, detail: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, code).with_detail(detail.to_string())
}

/// Exchanges a refresh token for its successor. Errors: 401
/// `invalid_refresh_token` (not ours, unknown session, expired, revoked,
/// disabled user, another client's) or `token_reused` (an older
/// generation, or the loser of two refreshes racing with one token: the
/// family is revoked).
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
    let state = AuthState::of(ctx)?;
    if presented.len() > 128 {
        return Err(invalid());
    }
    let Some(kind) = state.refresh.open(presented) else {
        return Err(invalid());
    };
    let db = ctx.db();
    let columns = format!(
        "s.id AS session_id, s.refresh_gen, s.user_id, s.revoked_at, s.expires_at, s.client_id, s.scope, {USER_COLUMNS}, {}",
        grants_column(db.backend())
    );
    let tx = db.begin_write().await?;
    let row = match &kind {
        Presented::Generation { session_id, .. } => {
            tx.query_one_raw(db.statement(
                &format!("SELECT {columns} FROM sen_sessions s JOIN sen_users u ON u.id = s.user_id WHERE s.id = ?"),
                [session_id.as_str().into()],
            ))
            .await?
        }
        Presented::Legacy => {
            tx.query_one_raw(db.statement(
                &format!("SELECT t.id AS token_id, t.used_at, {columns}
                 FROM sen_refresh_tokens t
                 JOIN sen_sessions s ON s.id = t.session_id
                 JOIN sen_users u ON u.id = s.user_id
                 WHERE t.token_hash = ?"),
                [sha256_hex(presented.as_bytes()).into()],
            ))
            .await?
        }
    };
    let Some(row) = row else {
        return Err(invalid());
    };
    let session_id: String = row.try_get("", "session_id")?;
    let current: i64 = row.try_get("", "refresh_gen")?;
    let user_id: String = row.try_get("", "user_id")?;
    let revoked_at: Option<i64> = row.try_get("", "revoked_at")?;
    let expires_at: i64 = row.try_get("", "expires_at")?;
    let user = UserRow::from_row(&row)?;
    let grants = parse_grants(row.try_get::<Option<String>>("", "grants")?.as_deref());
    let session_client: String = row.try_get("", "client_id")?;
    let scope: String = row.try_get("", "scope")?;
    let now = now_ms();
    if revoked_at.is_some()
        || expires_at <= now
        || user.disabled_at.is_some()
        || session_client != client_id
    {
        return Err(invalid());
    }
    // The next generation, claimed only if nobody moved past `current`
    // since the read: of two refreshes racing with one token, one wins.
    let bump = || async {
        let r = tx
            .execute_raw(db.statement(
                "UPDATE sen_sessions SET refresh_gen = ?, last_used_at = ? WHERE id = ? AND refresh_gen = ?",
                [
                    (current + 1).into(),
                    now.into(),
                    session_id.as_str().into(),
                    current.into(),
                ],
            ))
            .await?;
        Ok::<bool, sea_orm::DbErr>(r.rows_affected() == 1)
    };
    let claimed = match kind {
        // Never handed out: a copy of the database restored from before
        // it was. Not a replay, so nothing is revoked.
        Presented::Generation { generation, .. } if generation > current => {
            return Err(invalid());
        }
        Presented::Generation { generation, .. } => generation == current && bump().await?,
        Presented::Legacy => {
            let used_at: Option<i64> = row.try_get("", "used_at")?;
            let token_id: String = row.try_get("", "token_id")?;
            used_at.is_none()
                && tx
                    .execute_raw(db.statement(
                        "UPDATE sen_refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL",
                        [now.into(), token_id.into()],
                    ))
                    .await?
                    .rows_affected()
                    == 1
                && bump().await?
        }
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
    let refresh_token = refresh_token(&state, &session_id, current + 1)?;
    tx.commit().await?;
    Ok(Issued {
        refresh_token,
        user_id,
        session_id,
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
