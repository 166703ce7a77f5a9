//! `/me/security`: change the password (the other sessions end), turn
//! TOTP on (QR code and secret, confirmed with a code, then ten recovery
//! codes shown once) or off — through the `/api/v1/me` handlers.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Query};
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::Deserialize;

use crate::page::{Frame, csrf_ok, describe, forbidden, html, see_other};

/// A TOTP secret being enrolled.
pub struct Setup {
    /// Base32 secret.
    pub secret: String,
    /// QR code (SVG made by the server from the otpauth URL).
    pub qr_svg: String,
}

/// The security page.
#[derive(Template)]
#[template(path = "security.html")]
pub struct SecurityPage {
    /// Frame.
    pub f: Frame,
    /// TOTP is on.
    pub mfa_enabled: bool,
    /// A pending enrolment.
    pub setup: Option<Setup>,
    /// Recovery codes to show once.
    pub recovery: Vec<String>,
    /// A success line.
    pub notice: Option<&'static str>,
    /// What went wrong.
    pub error: Option<String>,
}

/// Flash flags.
#[derive(Debug, Deserialize)]
pub struct Flash {
    #[serde(default)]
    changed: Option<String>,
    #[serde(default)]
    saved: Option<String>,
}

struct View {
    setup: Option<Setup>,
    recovery: Vec<String>,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
}

async fn render(
    ctx: &AppContext,
    me: Principal,
    headers: &HeaderMap,
    v: View,
) -> AppResult<Response> {
    let f = Frame::new(ctx, headers, Some(&me), "/me/security");
    let Json(user) = sen_auth::routes::me::get_me(State(ctx.clone()), me).await?;
    Ok(html(
        v.status,
        &SecurityPage {
            f,
            mfa_enabled: user.mfa_enabled,
            setup: v.setup,
            recovery: v.recovery,
            notice: v.notice,
            error: v.error,
        },
    ))
}

fn plain(status: StatusCode) -> View {
    View {
        setup: None,
        recovery: Vec::new(),
        notice: None,
        error: None,
        status,
    }
}

fn refused(e: &AppError) -> View {
    View {
        error: Some(describe(e)),
        ..plain(e.status())
    }
}

async fn body_json(r: Response) -> AppResult<serde_json::Value> {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .map_err(AppError::internal)?;
    serde_json::from_slice(&bytes).map_err(AppError::internal)
}

macro_rules! signed_in {
    ($who:expr) => {
        match $who {
            Some(p) => p,
            None => return Ok(crate::refresh::via_refresh("/me/security")),
        }
    };
}

macro_rules! checked {
    ($ctx:expr, $me:expr, $headers:expr, $csrf:expr) => {
        if !csrf_ok(&$ctx, Some(&$me), &$headers, $csrf) {
            return Ok(forbidden(Frame::new(
                &$ctx,
                &$headers,
                Some(&$me),
                "/me/security",
            )));
        }
    };
}

/// `GET /me/security`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<Flash>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    let f = Frame::new(&ctx, &headers, Some(&me), "/me/security");
    let notice = if q.changed.is_some() {
        Some(f.tx.password_changed)
    } else if q.saved.is_some() {
        Some(f.tx.saved)
    } else {
        None
    };
    render(
        &ctx,
        me,
        &headers,
        View {
            notice,
            ..plain(StatusCode::OK)
        },
    )
    .await
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /web/me/password`.
pub async fn change_password(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    checked!(ctx, me, headers, &form.csrf);
    let body = sen_auth::routes::me::ChangePassword {
        current_password: form.current_password,
        new_password: form.new_password,
    };
    match sen_auth::routes::me::change_password(State(ctx.clone()), me.clone(), meta, Json(body))
        .await
    {
        Ok(_) => Ok(see_other("/me/security?changed=1")),
        Err(e) if e.status().is_client_error() => render(&ctx, me, &headers, refused(&e)).await,
        Err(e) => Err(e),
    }
}

/// A form with only its token.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /web/me/totp/begin`: shows the QR code and secret to confirm.
pub async fn totp_begin(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    checked!(ctx, me, headers, &form.csrf);
    match sen_auth::routes::me::totp_begin(State(ctx.clone()), me.clone()).await {
        Ok(r) => {
            let v = body_json(r).await?;
            let setup = Setup {
                secret: v["secret"].as_str().unwrap_or_default().to_string(),
                qr_svg: v["qr_svg"].as_str().unwrap_or_default().to_string(),
            };
            render(
                &ctx,
                me,
                &headers,
                View {
                    setup: Some(setup),
                    ..plain(StatusCode::OK)
                },
            )
            .await
        }
        Err(e) if e.status().is_client_error() => render(&ctx, me, &headers, refused(&e)).await,
        Err(e) => Err(e),
    }
}

/// The code form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `POST /web/me/totp/confirm`: turns TOTP on and shows the recovery codes once.
pub async fn totp_confirm(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    checked!(ctx, me, headers, &form.csrf);
    let body = sen_auth::routes::me::CodeBody {
        code: form.code.trim().to_string(),
    };
    match sen_auth::routes::me::totp_confirm(State(ctx.clone()), me.clone(), meta, Json(body)).await
    {
        Ok(r) => {
            let v = body_json(r).await?;
            let recovery = v["recovery_codes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            render(
                &ctx,
                me,
                &headers,
                View {
                    recovery,
                    ..plain(StatusCode::OK)
                },
            )
            .await
        }
        Err(e) if e.status().is_client_error() => render(&ctx, me, &headers, refused(&e)).await,
        Err(e) => Err(e),
    }
}

/// The turn-off form.
#[derive(Debug, Deserialize)]
pub struct DisableForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// `POST /web/me/totp/disable`.
pub async fn totp_disable(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<DisableForm>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    checked!(ctx, me, headers, &form.csrf);
    let body = sen_auth::routes::me::DisableTotp {
        password: form.password,
        code: form.code.trim().to_string(),
    };
    match sen_auth::routes::me::totp_disable(State(ctx.clone()), me.clone(), meta, Json(body)).await
    {
        Ok(_) => Ok(see_other("/me/security?saved=1")),
        Err(e) if e.status().is_client_error() => render(&ctx, me, &headers, refused(&e)).await,
        Err(e) => Err(e),
    }
}
