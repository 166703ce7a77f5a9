//! Password sign-in, shared by `POST /api/v1/auth/login` and the OAuth
//! authorize page: attempt limits, one argon2 verification whether or not
//! the account exists, the second factor, the audit row, the session.

use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::{AppContext, AppError, AppResult};

use crate::audit::{self, Entry};
use crate::limits;
use crate::request_meta::Meta;
use crate::sessions::{self, Issued};
use crate::state::AuthState;
use crate::users::{USER_COLUMNS, UserRow, grants_column, parse_grants};

/// 401 `invalid_credentials`.
pub fn invalid_credentials() -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "invalid_credentials")
        .with_detail("The email or password is wrong.")
}

/// Checks `email`/`password` (and `totp` for accounts with MFA) and opens a
/// first-party session. Errors: 429 `rate_limited`, 401
/// `invalid_credentials`, `mfa_required`, `mfa_invalid`.
pub async fn sign_in(
    ctx: &AppContext,
    state: &AuthState,
    email: &str,
    password: String,
    totp: Option<&str>,
    meta: &Meta,
) -> AppResult<Issued> {
    let email = email.trim().to_lowercase();
    limits::guard(
        ctx,
        &[
            (
                limits::ip_key("login", meta.ip.as_deref()),
                limits::LOGIN_IP,
            ),
            (limits::account_key("login", &email), limits::LOGIN_ACCOUNT),
        ],
    )
    .await?;
    let db = ctx.db();
    let sql = format!(
        "SELECT {USER_COLUMNS}, u.password_hash, {} FROM sen_users u WHERE u.email = ?",
        grants_column(db.backend())
    );
    // The account, its password hash and its grants.
    type Found = Option<(UserRow, Option<String>, Option<String>)>;
    let inline: Option<Found> = db.sqlite_read(|c| {
        let mut stmt = c.prepare_cached(&sql)?;
        let mut rows = stmt.query([&email])?;
        rows.next()?
            .map(|r| {
                Ok((
                    UserRow::from_lite(r)?,
                    r.get("password_hash")?,
                    r.get("grants")?,
                ))
            })
            .transpose()
    });
    let found = match inline {
        Some(found) => found,
        None => db
            .fetch_optional(db.statement(&sql, [email.clone().into()]))
            .await?
            .map(|r| {
                Ok::<_, sea_orm::DbErr>((
                    UserRow::from_row(&r)?,
                    r.try_get("", "password_hash")?,
                    r.try_get("", "grants")?,
                ))
            })
            .transpose()?,
    };
    let (user, hash) = match found {
        Some((user, hash, grants)) => (Some((user, parse_grants(grants.as_deref()))), hash),
        None => (None, None),
    };
    // Always one full argon2 verification, account or not: same timing.
    let ok = state.passwords.verify(password, hash).await?;
    let Some((user, grants)) = user.filter(|(u, _)| ok && u.disabled_at.is_none()) else {
        audit::record(
            db,
            db.orm(),
            Entry {
                actor: None,
                action: "login.failure",
                target: None,
                ip: meta.ip.as_deref(),
                detail: serde_json::json!({"reason": "invalid_credentials"}),
            },
        )
        .await?;
        return Err(invalid_credentials());
    };
    if user.mfa_enabled {
        crate::mfa::check_login_code(ctx, state, &user.id, totp, meta.ip.as_deref()).await?;
    }
    let mut issued = sessions::open_standalone(
        ctx,
        state,
        &user.id,
        meta.user_agent.as_deref(),
        meta.ip.as_deref(),
        "login.success",
    )
    .await?;
    issued.user = Some((user, grants));
    Ok(issued)
}

/// Whether `password` is `user_id`'s current password (one argon2
/// verification), for changes that ask for it again.
pub async fn password_matches(
    ctx: &AppContext,
    state: &AuthState,
    user_id: &str,
    password: String,
) -> AppResult<bool> {
    let db = ctx.db();
    let hash: Option<String> = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT password_hash FROM sen_users WHERE id = ?",
            [user_id.into()],
        ))
        .await?
        .map(|r| r.try_get("", "password_hash"))
        .transpose()?
        .flatten();
    state.passwords.verify(password, hash).await
}
