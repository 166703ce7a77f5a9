//! Signing in and out of the pages: `/login` (password, then the TOTP step
//! for accounts with two factors), `POST /web/logout`, and the language
//! switch. Sign-in goes through the same `sign_in` as the API, so limits,
//! audit rows and sessions are the same.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sen_auth::request_meta::Meta;
use sen_core::extract::Query;
use sen_core::{AppContext, AppResult, Principal};
use serde::Deserialize;

use crate::i18n::{COOKIE, Lang};
use crate::page::{Frame, PRE_SESSION, csrf_ok, html, local, see_other};

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Frame.
    pub f: Frame,
    /// Where to go after.
    pub next: String,
    /// The email typed.
    pub email: String,
    /// Ask for the code.
    pub need_totp: bool,
    /// What went wrong.
    pub error: Option<&'static str>,
    /// Configured OpenID Connect providers: (name, button title).
    pub providers: Vec<(String, String)>,
}

/// The sign-in buttons of the configured OpenID Connect providers.
fn providers(ctx: &AppContext) -> Vec<(String, String)> {
    ctx.config()
        .auth_oidc_providers
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.title.clone().unwrap_or_else(|| p.name.clone()),
            )
        })
        .collect()
}

/// `?next=`.
#[derive(Debug, Deserialize)]
pub struct Next {
    /// Local path to return to.
    #[serde(default)]
    pub next: Option<String>,
}

fn pre_cookie(value: &str, secure: bool) -> HeaderValue {
    let s = format!(
        "{PRE_SESSION}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// `GET /login`.
pub async fn login_page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    Query(q): Query<Next>,
    mut headers: HeaderMap,
) -> Response {
    let next = local(q.next.as_deref().unwrap_or("/me"));
    if who.is_some() {
        return see_other(&next);
    }
    let mut set = None;
    if sen_auth::cookies::read_headers(&headers, PRE_SESSION).is_none() {
        let v = sen_auth::crypto::random_token::<16>().unwrap_or_default();
        // The token below must be computed from the cookie the browser will hold.
        if let Ok(c) = HeaderValue::from_str(&format!("{PRE_SESSION}={v}")) {
            headers.append(header::COOKIE, c);
        }
        set = Some(pre_cookie(&v, ctx.config().auth_cookie_secure));
    }
    let f = Frame::new(&ctx, &headers, None, "/login");
    let mut r = html(
        StatusCode::OK,
        &LoginPage {
            f,
            next,
            email: String::new(),
            need_totp: false,
            error: None,
            providers: providers(&ctx),
        },
    );
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// `POST /web/login`.
pub async fn login(
    State(ctx): State<AppContext>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    let f = Frame::new(&ctx, &headers, None, "/login");
    let tx = f.tx;
    let next = local(if form.next.is_empty() {
        "/me"
    } else {
        &form.next
    });
    if !csrf_ok(&ctx, None, &headers, &form.csrf) {
        return Ok(html(
            StatusCode::FORBIDDEN,
            &LoginPage {
                f,
                next,
                email: form.email,
                need_totp: false,
                error: Some(tx.forbidden_text),
                providers: providers(&ctx),
            },
        ));
    }
    let state = sen_auth::state::AuthState::of(&ctx)?;
    let totp = form
        .totp
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match sen_auth::sign_in::sign_in(&ctx, &state, &form.email, form.password, totp, &meta).await {
        Ok(issued) => {
            let api = sen_auth::routes::auth::issue(&ctx, &state, &issued, false).await?;
            let mut r = see_other(&next);
            for c in api.headers().get_all(header::SET_COOKIE) {
                r.headers_mut().append(header::SET_COOKIE, c.clone());
            }
            Ok(r)
        }
        Err(e) => {
            let (status, need_totp, error) = match e.code() {
                "mfa_required" => (StatusCode::UNAUTHORIZED, true, None),
                "mfa_invalid" => (StatusCode::UNAUTHORIZED, true, Some(tx.bad_credentials)),
                "rate_limited" => (
                    StatusCode::TOO_MANY_REQUESTS,
                    totp.is_some(),
                    Some(tx.rate_limited),
                ),
                "invalid_credentials" => {
                    (StatusCode::UNAUTHORIZED, false, Some(tx.bad_credentials))
                }
                _ => return Err(e),
            };
            Ok(html(
                status,
                &LoginPage {
                    f,
                    next,
                    email: form.email,
                    need_totp,
                    error,
                    providers: providers(&ctx),
                },
            ))
        }
    }
}

/// A form with only its token.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    /// The CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /web/logout`: ends this session and clears the cookies.
pub async fn logout(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let Some(me) = who else {
        return Ok(see_other("/login"));
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok((StatusCode::FORBIDDEN, "bad form token").into_response());
    }
    let state = sen_auth::state::AuthState::of(&ctx)?;
    if let Some(sid) = &me.session_id {
        let db = ctx.db();
        let tx = db.begin_write().await?;
        sen_auth::sessions::revoke_in(&ctx, &tx, sid, "logout").await?;
        tx.commit().await?;
    }
    let mut r = see_other("/login");
    for c in sen_auth::cookies::clear(state.cookie_secure) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// The language switch.
#[derive(Debug, Deserialize)]
pub struct LangForm {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    #[allow(dead_code)]
    csrf: String,
}

/// `POST /web/lang`: remembers the language for a year (a preference, so
/// no token is needed) and goes back.
pub async fn set_lang(State(ctx): State<AppContext>, Form(form): Form<LangForm>) -> Response {
    let lang = Lang::parse(&form.lang).code();
    let mut r = see_other(if form.back.is_empty() {
        "/me"
    } else {
        &form.back
    });
    let c = format!(
        "{COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Lax{}",
        if ctx.config().auth_cookie_secure {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
