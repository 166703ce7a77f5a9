//! Password reset. The request always answers 202 after one queue insert,
//! whether or not the account exists (no enumeration by answer or timing);
//! a worker job makes the single-use token and queues the mail (in the
//! request's language) in the same transaction. Confirming
//! needs the TOTP code on accounts that have one: a reset never bypasses
//! the second factor.

use axum::extract::State;
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::Json;
use sen_core::jobs::{Job, JobContext, JobError, NewJob};
use sen_core::{AppContext, AppError, AppResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Entry};
use crate::crypto::{random_token, sha256_hex};
use crate::limits;
use crate::password::check_policy;
use crate::request_meta::Meta;
use crate::state::AuthState;

type Problem = sen_core::error::Problem;

/// How long a reset link works.
pub const RESET_TTL_MS: i64 = 30 * 60 * 1000;

/// `POST /api/v1/auth/password-reset` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The account's email.
    pub email: String,
}

/// Asks for a reset link. Always 202 (429 when asked too often).
#[utoipa::path(post, path = "/password-reset", tag = "auth", request_body = ResetRequest, responses(
    (status = 202, description = "If the account exists, a link is on its way"),
    (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn request_reset(
    State(ctx): State<AppContext>,
    meta: Meta,
    headers: http::HeaderMap,
    Json(body): Json<ResetRequest>,
) -> AppResult<StatusCode> {
    let email: String = body.email.trim().to_lowercase().chars().take(254).collect();
    limits::guard(
        &ctx,
        &[
            (
                limits::ip_key("reset", meta.ip.as_deref()),
                limits::RESET_IP,
            ),
            (limits::account_key("reset", &email), limits::RESET_ACCOUNT),
        ],
    )
    .await?;
    let locale = sen_core::mail::locale_from_accept_language(
        headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let job = NewJob::of(&SendReset {
        email,
        ip: meta.ip,
        locale: Some(locale.to_string()),
    })
    .map_err(AppError::internal)?;
    ctx.jobs().enqueue(ctx.db().orm(), job).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The job behind a reset request.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendReset {
    /// Normalised email as asked.
    pub email: String,
    /// Where the request came from.
    pub ip: Option<String>,
    /// Language of the mail (from the request's `Accept-Language`).
    #[serde(default)]
    pub locale: Option<String>,
}

impl Job for SendReset {
    const KIND: &'static str = "auth.password_reset";

    async fn run(self, job: JobContext) -> Result<(), JobError> {
        let ctx = &job.app;
        let db = ctx.db();
        let tx = db.begin_write().await?;
        let user = tx
            .query_one_raw(db.statement(
                "SELECT id FROM sen_users WHERE email = ? AND disabled_at IS NULL",
                [self.email.clone().into()],
            ))
            .await?;
        let Some(user) = user else {
            return Ok(());
        };
        let user_id: String = user.try_get("", "id")?;
        let token = random_token::<32>().map_err(JobError::retry)?;
        let now = sen_core::clock::now().timestamp_millis();
        // Keyed by the job id: a rerun after a crash adds nothing.
        let inserted = tx
            .execute_raw(db.statement(
                "INSERT INTO sen_password_resets (id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [
                    job.id.clone().into(),
                    user_id.clone().into(),
                    sha256_hex(token.as_bytes()).into(),
                    now.into(),
                    (now + RESET_TTL_MS).into(),
                ],
            ))
            .await?
            .rows_affected();
        if inserted == 0 {
            return Ok(());
        }
        let link = format!("{}/reset-password?token={token}", ctx.config().public_url());
        let mail = sen_core::mail::Mail::new(crate::mail_templates::PASSWORD_RESET, &self.email)
            .locale(self.locale.as_deref().unwrap_or("en"))
            .vars(serde_json::json!({ "link": link, "minutes": RESET_TTL_MS / 60_000 }));
        ctx.mail().send(&tx, mail).await.map_err(JobError::retry)?;
        audit::record(
            db,
            &tx,
            Entry {
                actor: None,
                action: "password.reset_requested",
                target: Some(&user_id),
                ip: self.ip.as_deref(),
                detail: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `POST /api/v1/auth/password-reset/confirm` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The token from the link.
    pub token: String,
    /// The new password.
    pub new_password: String,
    /// TOTP or recovery code, for accounts with MFA.
    #[serde(default)]
    pub totp: Option<String>,
}

fn bad_token() -> AppError {
    AppError::bad_request(
        "invalid_reset_token",
        "The reset link is not valid, was already used, or has expired.",
    )
}

/// Sets a new password with a reset token; ends every session.
#[utoipa::path(post, path = "/password-reset/confirm", tag = "auth", request_body = ResetConfirm, responses(
    (status = 204, description = "Password changed; every session ended"),
    (status = 400, description = "`invalid_reset_token`", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "`mfa_required` or `mfa_invalid`", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Password rejected", body = Problem, content_type = "application/problem+json"),
))]
pub async fn confirm_reset(
    State(ctx): State<AppContext>,
    meta: Meta,
    Json(body): Json<ResetConfirm>,
) -> AppResult<StatusCode> {
    let state = AuthState::of(&ctx)?;
    limits::guard(
        &ctx,
        &[(
            limits::ip_key("reset-confirm", meta.ip.as_deref()),
            limits::RESET_CONFIRM_IP,
        )],
    )
    .await?;
    check_policy("new_password", &body.new_password)?;
    if body.token.len() > 128 {
        return Err(bad_token());
    }
    let hash = sha256_hex(body.token.as_bytes());
    let db = ctx.db();
    let now = sen_core::clock::now().timestamp_millis();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT r.id, r.user_id, u.mfa_enabled FROM sen_password_resets r JOIN sen_users u ON u.id = r.user_id
             WHERE r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > ? AND u.disabled_at IS NULL",
            [hash.into(), now.into()],
        ))
        .await?
        .ok_or_else(bad_token)?;
    let reset_id: String = row.try_get("", "id")?;
    let user_id: String = row.try_get("", "user_id")?;
    let mfa: bool = row.try_get("", "mfa_enabled")?;
    if mfa {
        crate::mfa::check_login_code(
            &ctx,
            &state,
            &user_id,
            body.totp.as_deref(),
            meta.ip.as_deref(),
        )
        .await?;
    }
    let new_hash = state.passwords.hash(body.new_password).await?;
    let tx = db.begin_write().await?;
    let claimed = tx
        .execute_raw(db.statement(
            "UPDATE sen_password_resets SET used_at = ? WHERE id = ? AND used_at IS NULL",
            [now.into(), reset_id.into()],
        ))
        .await?
        .rows_affected();
    if claimed != 1 {
        return Err(bad_token());
    }
    tx.execute_raw(db.statement(
        "UPDATE sen_users SET password_hash = ?, updated_at = ? WHERE id = ?",
        [new_hash.into(), now.into(), user_id.clone().into()],
    ))
    .await?;
    crate::sessions::revoke_all_but(&ctx, &tx, &user_id, None, "password_reset").await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&user_id),
            action: "password.reset",
            target: Some(&user_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
