//! TOTP (RFC 6238, SHA-1, 6 digits, 30 s, ±1 step) with replay protection
//! and single-use recovery codes. The secret is sealed at rest; the last
//! accepted step is stored so a code is accepted once, even by two
//! concurrent requests (the step advances with a conditional UPDATE).

use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::{AppContext, AppError};
use totp_rs::{Builder, Secret, Totp};

use crate::crypto::{random_bytes, sha256_hex};
use crate::state::AuthState;

/// How many recovery codes a user gets.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP for `secret` labelled for `account`.
pub fn totp(secret: &[u8], account: &str) -> Result<Totp, AppError> {
    Builder::new()
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_account_name(account.to_string())
        .with_issuer(Some("Sen"))
        .build()
        .map_err(|e| AppError::internal(anyhow::anyhow!("totp: {e:?}")))
}

/// A fresh 160-bit secret.
pub fn new_secret() -> Result<Vec<u8>, AppError> {
    Ok(random_bytes::<20>()?.to_vec())
}

/// Ten fresh recovery codes, `xxxxx-xxxxx` in an unambiguous alphabet.
pub fn new_recovery_codes() -> Result<Vec<String>, AppError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let raw = random_bytes::<10>()?;
        let chars: String = raw
            .iter()
            .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
            .collect();
        codes.push(format!("{}-{}", &chars[..5], &chars[5..]));
    }
    Ok(codes)
}

/// Normalises a recovery code as typed (case, spaces).
pub fn normalise_recovery(code: &str) -> String {
    code.trim().to_lowercase().replace(' ', "")
}

fn unix_now() -> u64 {
    sen_core::clock::now().timestamp().max(0) as u64
}

/// Checks `code` against the user's sealed secret and consumes its step.
/// Returns false when wrong or already used.
pub async fn consume_totp(
    ctx: &AppContext,
    state: &AuthState,
    conn: &impl ConnectionTrait,
    user_id: &str,
    code: &str,
) -> Result<bool, AppError> {
    let db = ctx.db();
    let row = conn
        .query_one_raw(db.statement(
            "SELECT email, mfa_secret, mfa_last_step FROM sen_users WHERE id = ?",
            [user_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(false) };
    let Some(sealed) = row.try_get::<Option<String>>("", "mfa_secret")? else {
        return Ok(false);
    };
    let email: String = row.try_get("", "email")?;
    let last: i64 = row.try_get("", "mfa_last_step")?;
    let secret = state
        .sealer
        .open(&sealed)
        .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Ok(false);
    }
    let Some(step) = totp(&secret, &email)?.check(&code, unix_now()) else {
        return Ok(false);
    };
    let step = step as i64;
    if step <= last {
        return Ok(false);
    }
    let advanced = conn
        .execute_raw(db.statement(
            "UPDATE sen_users SET mfa_last_step = ? WHERE id = ? AND mfa_last_step < ?",
            [step.into(), user_id.into(), step.into()],
        ))
        .await?
        .rows_affected();
    Ok(advanced == 1)
}

/// Uses up one recovery code; false when it is unknown or used.
pub async fn consume_recovery(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    user_id: &str,
    code: &str,
) -> Result<bool, AppError> {
    let db = ctx.db();
    let hash = sha256_hex(normalise_recovery(code).as_bytes());
    let n = conn
        .execute_raw(db.statement(
            "UPDATE sen_recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
            [
                sen_core::clock::now().timestamp_millis().into(),
                user_id.into(),
                hash.into(),
            ],
        ))
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// A TOTP code or, failing that, a recovery code.
pub async fn consume_any(
    ctx: &AppContext,
    state: &AuthState,
    conn: &impl ConnectionTrait,
    user_id: &str,
    code: &str,
) -> Result<bool, AppError> {
    if consume_totp(ctx, state, conn, user_id, code).await? {
        return Ok(true);
    }
    consume_recovery(ctx, conn, user_id, code).await
}

/// Counts one code attempt against the account (429 when spent).
pub async fn guard_codes(ctx: &AppContext, user_id: &str) -> Result<(), AppError> {
    crate::limits::guard(
        ctx,
        &[(
            crate::limits::account_key("totp", user_id),
            crate::limits::TOTP_ACCOUNT,
        )],
    )
    .await
}

/// The second login step: 401 `mfa_required` without a code, `mfa_invalid`
/// with a wrong or replayed one.
pub async fn check_login_code(
    ctx: &AppContext,
    state: &AuthState,
    user_id: &str,
    code: Option<&str>,
    ip: Option<&str>,
) -> Result<(), AppError> {
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Err(AppError::new(StatusCode::UNAUTHORIZED, "mfa_required")
            .with_detail("This account uses two-factor authentication: send `totp`."));
    };
    guard_codes(ctx, user_id).await?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let ok = consume_any(ctx, state, &tx, user_id, code).await?;
    if !ok {
        crate::audit::record(
            db,
            &tx,
            crate::audit::Entry {
                actor: Some(user_id),
                action: "login.failure",
                target: Some(user_id),
                ip,
                detail: serde_json::json!({"reason": "mfa_invalid"}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    if ok {
        Ok(())
    } else {
        Err(AppError::new(StatusCode::UNAUTHORIZED, "mfa_invalid")
            .with_detail("The code is wrong, expired or already used."))
    }
}
