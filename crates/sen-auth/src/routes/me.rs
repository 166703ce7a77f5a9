//! `/api/v1/me`: the signed-in user's own account: profile, password,
//! sessions, two-factor authentication.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path};
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Entry};
use crate::mfa;
use crate::password::check_policy;
use crate::request_meta::Meta;
use crate::sessions;
use crate::sign_in::password_matches;
use crate::state::AuthState;
use crate::users::{self, UserRow, UserView, check_name};

type Problem = sen_core::error::Problem;

fn me_row(p: &Principal) -> AppResult<&UserRow> {
    p.extra::<UserRow>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("principal without user row")))
}

/// The signed-in user, from the row the authenticator already read (no
/// second round trip).
#[utoipa::path(get, path = "/api/v1/me", tag = "me", responses(
    (status = 200, description = "The signed-in user", body = UserView),
    (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_me(State(ctx): State<AppContext>, me: Principal) -> AppResult<Json<UserView>> {
    Ok(Json(UserView::new(&ctx, me_row(&me)?, &me.grants)))
}

/// `PATCH /api/v1/me` body: only these fields; anything else is a 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMe {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Mood line (≤ 140 characters; empty clears it).
    #[serde(default)]
    pub mood: Option<String>,
}

/// Changes the user's name or mood.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", request_body = PatchMe, responses(
    (status = 200, description = "Updated", body = UserView),
    (status = 422, description = "Invalid or unknown field", body = Problem, content_type = "application/problem+json"),
))]
pub async fn patch_me(
    State(ctx): State<AppContext>,
    me: Principal,
    Json(body): Json<PatchMe>,
) -> AppResult<Json<UserView>> {
    let mut errors = Vec::new();
    let name = match &body.name {
        Some(n) => check_name("name", n).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    let mood = match &body.mood {
        Some(m) if m.chars().count() > 140 || m.chars().any(char::is_control) => {
            errors.push(FieldError::new(
                "mood",
                "invalid_mood",
                "must be at most 140 characters without control characters",
            ));
            None
        }
        Some(m) => Some(m.trim().to_string()),
        None => None,
    };
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    let db = ctx.db();
    let now = sen_core::clock::now().timestamp_millis();
    let tx = db.begin_write().await?;
    if let Some(name) = name {
        tx.execute_raw(db.statement(
            "UPDATE sen_users SET name = ?, updated_at = ? WHERE id = ?",
            [name.into(), now.into(), me.user_id.clone().into()],
        ))
        .await?;
    }
    if let Some(mood) = mood {
        let mood = (!mood.is_empty()).then_some(mood);
        tx.execute_raw(db.statement(
            "UPDATE sen_users SET mood = ?, updated_at = ? WHERE id = ?",
            [mood.into(), now.into(), me.user_id.clone().into()],
        ))
        .await?;
    }
    let (user, grants) = users::by_id(&ctx, &tx, &me.user_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(Json(UserView::new(&ctx, &user, &grants)))
}

/// `POST /api/v1/me/password` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The password now.
    pub current_password: String,
    /// The new one (8–128, not common).
    pub new_password: String,
}

/// Changes the password and ends every other session.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", request_body = ChangePassword, responses(
    (status = 204, description = "Changed; other sessions ended"),
    (status = 401, description = "`invalid_credentials`: current password wrong", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "New password rejected", body = Problem, content_type = "application/problem+json"),
))]
pub async fn change_password(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<ChangePassword>,
) -> AppResult<StatusCode> {
    me.require_self()?;
    let state = AuthState::of(&ctx)?;
    check_policy("new_password", &body.new_password)?;
    let db = ctx.db();
    if !password_matches(&ctx, &state, &me.user_id, body.current_password).await? {
        return Err(
            AppError::new(StatusCode::UNAUTHORIZED, "invalid_credentials")
                .with_detail("The current password is wrong."),
        );
    }
    let new_hash = state.passwords.hash(body.new_password).await?;
    let tx = db.begin_write().await?;
    tx.execute_raw(db.statement(
        "UPDATE sen_users SET password_hash = ?, updated_at = ? WHERE id = ?",
        [
            new_hash.into(),
            sen_core::clock::now().timestamp_millis().into(),
            me.user_id.clone().into(),
        ],
    ))
    .await?;
    let ended = sessions::revoke_all_but(
        &ctx,
        &tx,
        &me.user_id,
        me.session_id.as_deref(),
        "password_changed",
    )
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "password.change",
            target: Some(&me.user_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"sessions_ended": ended}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One of the user's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// When it began.
    pub created_at: String,
    /// Last refresh.
    pub last_used_at: String,
    /// When it ends at the latest.
    pub expires_at: String,
    /// Browser or client.
    pub user_agent: Option<String>,
    /// Address it began from.
    pub ip: Option<String>,
    /// Whether it is the one making this request.
    pub current: bool,
    /// The operator acting as the user in it, for an impersonation.
    pub impersonator_id: Option<String>,
}

/// The user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub items: Vec<SessionView>,
}

/// Lists the user's live sessions.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "me", responses(
    (status = 200, description = "Live sessions", body = SessionList),
))]
pub async fn list_sessions(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<SessionList>> {
    let items =
        crate::routes::admin_sessions::live_sessions(&ctx, &me.user_id, me.session_id.as_deref())
            .await?;
    Ok(Json(SessionList { items }))
}

/// Ends every session of the user but this one ("sign out others").
#[utoipa::path(delete, path = "/api/v1/me/sessions", tag = "me", responses(
    (status = 200, description = "How many ended", body = crate::routes::admin_sessions::Ended),
    (status = 403, description = "`session_required` (an API key has no session to keep)", body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_other_sessions(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
) -> AppResult<Json<crate::routes::admin_sessions::Ended>> {
    let Some(keep) = me.session_id.as_deref() else {
        return Err(AppError::new(StatusCode::FORBIDDEN, "session_required")
            .with_detail("Sign in to end your other sessions."));
    };
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let ended = sessions::revoke_all_but(&ctx, &tx, &me.user_id, Some(keep), "user").await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "session.revoke_others",
            target: Some(&me.user_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({"ended": ended}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(crate::routes::admin_sessions::Ended { ended }))
}

/// Ends one of the user's own sessions (another user's id: 404).
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "me",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such session of yours", body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_session(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let n = tx
        .execute_raw(db.statement(
            "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = 'user' WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
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
            action: "session.revoke",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What enrolling in TOTP returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetup {
    /// The secret in base32, for manual entry.
    pub secret: String,
    /// `otpauth://` URL for authenticator apps.
    pub otpauth_url: String,
    /// The URL as a QR code (SVG).
    pub qr_svg: String,
}

fn mfa_conflict() -> AppError {
    AppError::conflict(
        "mfa_already_enabled",
        "Two-factor authentication is already on; turn it off first.",
    )
}

/// Starts TOTP enrolment: a new secret, pending until confirmed with a code.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "me", responses(
    (status = 200, description = "Secret to enrol", body = TotpSetup),
    (status = 409, description = "`mfa_already_enabled`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn totp_begin(State(ctx): State<AppContext>, me: Principal) -> AppResult<Response> {
    me.require_self()?;
    let state = AuthState::of(&ctx)?;
    let user = me_row(&me)?;
    if user.mfa_enabled {
        return Err(mfa_conflict());
    }
    let secret = mfa::new_secret()?;
    let totp = mfa::totp(&secret, &user.email)?;
    let url = totp
        .to_url()
        .map_err(|e| AppError::internal(anyhow::anyhow!("otpauth url: {e:?}")))?;
    let qr = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| AppError::internal(anyhow::anyhow!("qr: {e}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let sealed = state
        .sealer
        .seal(&secret)
        .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let db = ctx.db();
    let n = db
        .orm()
        .execute_raw(db.statement(
            "UPDATE sen_users SET mfa_secret = ?, mfa_last_step = 0 WHERE id = ? AND mfa_enabled = ?",
            [sealed.into(), me.user_id.clone().into(), false.into()],
        ))
        .await?
        .rows_affected();
    if n == 0 {
        return Err(mfa_conflict());
    }
    let mut resp = Json(TotpSetup {
        secret: totp_rs::Secret::new(secret.into_boxed_slice()).to_base32(),
        otpauth_url: url,
        qr_svg: qr,
    })
    .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// A one-time code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The 6-digit code from the authenticator app.
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes.
    pub recovery_codes: Vec<String>,
}

/// Confirms enrolment with a code; answers ten recovery codes, once.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/confirm", tag = "me", request_body = CodeBody, responses(
    (status = 200, description = "MFA on", body = RecoveryCodes),
    (status = 401, description = "`mfa_invalid`", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "No pending enrolment, or already on", body = Problem, content_type = "application/problem+json"),
))]
pub async fn totp_confirm(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<CodeBody>,
) -> AppResult<Response> {
    me.require_self()?;
    let state = AuthState::of(&ctx)?;
    if me_row(&me)?.mfa_enabled {
        return Err(mfa_conflict());
    }
    mfa::guard_codes(&ctx, &me.user_id).await?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    if !mfa::consume_totp(&ctx, &state, &tx, &me.user_id, &body.code).await? {
        return Err(AppError::new(StatusCode::UNAUTHORIZED, "mfa_invalid")
            .with_detail("The code is wrong or expired; start enrolment again if needed."));
    }
    let n = tx
        .execute_raw(db.statement(
            "UPDATE sen_users SET mfa_enabled = ? WHERE id = ? AND mfa_enabled = ?",
            [true.into(), me.user_id.clone().into(), false.into()],
        ))
        .await?
        .rows_affected();
    if n == 0 {
        return Err(mfa_conflict());
    }
    tx.execute_raw(db.statement(
        "DELETE FROM sen_recovery_codes WHERE user_id = ?",
        [me.user_id.clone().into()],
    ))
    .await?;
    let codes = mfa::new_recovery_codes()?;
    for c in &codes {
        tx.execute_raw(db.statement(
            "INSERT INTO sen_recovery_codes (id, user_id, code_hash) VALUES (?, ?, ?)",
            [
                uuid::Uuid::now_v7().to_string().into(),
                me.user_id.clone().into(),
                crate::crypto::sha256_hex(mfa::normalise_recovery(c).as_bytes()).into(),
            ],
        ))
        .await?;
    }
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "mfa.enable",
            target: Some(&me.user_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    let mut resp = Json(RecoveryCodes {
        recovery_codes: codes,
    })
    .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// `DELETE /api/v1/me/mfa/totp` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    /// The account password.
    pub password: String,
    /// A current TOTP or recovery code.
    pub code: String,
}

/// Turns TOTP off (needs the password and a code).
#[utoipa::path(delete, path = "/api/v1/me/mfa/totp", tag = "me", request_body = DisableTotp, responses(
    (status = 204, description = "MFA off"),
    (status = 401, description = "`invalid_credentials` or `mfa_invalid`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn totp_disable(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<DisableTotp>,
) -> AppResult<StatusCode> {
    me.require_self()?;
    let state = AuthState::of(&ctx)?;
    if !me_row(&me)?.mfa_enabled {
        return Err(AppError::conflict(
            "mfa_not_enabled",
            "Two-factor authentication is off.",
        ));
    }
    let db = ctx.db();
    if !password_matches(&ctx, &state, &me.user_id, body.password).await? {
        return Err(
            AppError::new(StatusCode::UNAUTHORIZED, "invalid_credentials")
                .with_detail("The password is wrong."),
        );
    }
    let tx = db.begin_write().await?;
    if !mfa::consume_any(&ctx, &state, &tx, &me.user_id, &body.code).await? {
        return Err(AppError::new(StatusCode::UNAUTHORIZED, "mfa_invalid")
            .with_detail("The code is wrong, expired or already used."));
    }
    tx.execute_raw(db.statement(
        "UPDATE sen_users SET mfa_enabled = ?, mfa_secret = NULL WHERE id = ?",
        [false.into(), me.user_id.clone().into()],
    ))
    .await?;
    tx.execute_raw(db.statement(
        "DELETE FROM sen_recovery_codes WHERE user_id = ?",
        [me.user_id.clone().into()],
    ))
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "mfa.disable",
            target: Some(&me.user_id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
