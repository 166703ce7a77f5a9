//! `GET/POST /oauth/authorize`: the server-rendered sign-in and consent
//! pages. The client and redirect URI are checked first and exactly; when
//! either is wrong the user sees an error page and is never redirected.
//! Every other error goes back to the (verified) redirect URI.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use sea_orm::ConnectionTrait;
use sen_core::{AppContext, AppResult, Principal};
use serde::Deserialize;

use super::{Client, normalise_scope};
use crate::crypto::{random_token, sha256_hex};
use crate::request_meta::Meta;
use crate::state::AuthState;

/// How long a code may wait for redemption.
pub const CODE_TTL_MS: i64 = 60_000;

/// The authorization request parameters (unknown ones are ignored, as
/// RFC 6749 asks).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    prompt: Option<String>,
    // Form-only fields.
    action: Option<String>,
    email: Option<String>,
    password: Option<String>,
    totp: Option<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title>\
<style>body{{font:16px system-ui;max-width:28rem;margin:3rem auto;padding:0 1rem}}input,button{{font:inherit;padding:.5rem;margin:.25rem 0;width:100%}}</style></head>\
<body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn error_page(detail: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        &format!(
            "<p>{}</p><p>Nothing was sent to the application.</p>",
            esc(detail)
        ),
    )
}

fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            Redirect::to(u.as_str()).into_response()
        }
        Err(_) => error_page("The redirect address is malformed."),
    }
}

/// A validated request: the client, its exact redirect URI, and the rest.
struct Valid {
    client: Client,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    challenge: String,
    nonce: Option<String>,
}

/// Checks the request; `Err` is the response to send (error page or
/// error redirect).
async fn validate(ctx: &AppContext, p: &AuthorizeParams) -> Result<Valid, Response> {
    let Some(client_id) = p.client_id.as_deref() else {
        return Err(error_page("The request names no application."));
    };
    let client = match super::client(ctx, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(error_page("The application is unknown.")),
        Err(_) => {
            return Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again shortly",
                "<p>The service is unavailable.</p>",
            ));
        }
    };
    let Some(redirect_uri) = p.redirect_uri.clone() else {
        return Err(error_page("The request names no redirect address."));
    };
    // Exact, byte-for-byte: no prefix, case or trailing-slash tolerance.
    if !client.redirect_uris.contains(&redirect_uri) {
        return Err(error_page(
            "The redirect address is not registered for this application.",
        ));
    }
    let state = p.state.clone();
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = state.as_deref() {
            pairs.push(("state", s));
        }
        redirect_with(&redirect_uri, &pairs)
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "only the authorization code flow (response_type=code) is supported",
        ));
    }
    let challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => c.to_string(),
        _ => {
            return Err(fail(
                "invalid_request",
                "PKCE is required with code_challenge_method=S256",
            ));
        }
    };
    let Some(scope) = normalise_scope(ctx, p.scope.as_deref().unwrap_or("openid")) else {
        return Err(fail("invalid_scope", "a requested scope is unknown"));
    };
    Ok(Valid {
        client,
        redirect_uri: redirect_uri.clone(),
        scope,
        state,
        challenge,
        nonce: p.nonce.clone().filter(|n| n.len() <= 256),
    })
}

/// The signed-in user from the cookie, or none (an invalid cookie counts
/// as none, and so does an operator's impersonation: only the user may
/// let a client into their account).
async fn current_user(ctx: &AppContext, parts: &Parts) -> Option<Principal> {
    let a = ctx.authenticator()?;
    a.authenticate(ctx, parts)
        .await
        .ok()
        .flatten()
        .filter(|p| p.impersonator.is_none())
}

fn hidden_fields(p: &AuthorizeParams) -> String {
    let mut out = String::new();
    for (k, v) in [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
        ("nonce", &p.nonce),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                esc(v)
            ));
        }
    }
    out
}

fn login_page(p: &AuthorizeParams, client: &Client, message: Option<&str>) -> Response {
    let msg = message
        .map(|m| format!("<p role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "<p>{} wants to use your account.</p>{msg}<form method=\"post\" action=\"/oauth/authorize\">{}\
<input type=\"hidden\" name=\"action\" value=\"login\">\
<label>Email<input name=\"email\" type=\"email\" autocomplete=\"username\" required></label>\
<label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<label>Code (if you use two-factor authentication)<input name=\"totp\" autocomplete=\"one-time-code\"></label>\
<button>Sign in</button></form>",
            esc(&client.name),
            hidden_fields(p)
        ),
    )
}

fn consent_page(p: &AuthorizeParams, v: &Valid) -> Response {
    let scopes: String = v
        .scope
        .split(' ')
        .map(|s| format!("<li>{}</li>", esc(s)))
        .collect();
    page(
        StatusCode::OK,
        "Allow access?",
        &format!(
            "<p><strong>{}</strong> asks for:</p><ul>{scopes}</ul>\
<form method=\"post\" action=\"/oauth/authorize\">{}<button name=\"action\" value=\"approve\">Allow</button>\
<button name=\"action\" value=\"deny\">Deny</button></form>",
            esc(&v.client.name),
            hidden_fields(p)
        ),
    )
}

async fn has_consent(ctx: &AppContext, user_id: &str, v: &Valid) -> bool {
    let db = ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT scope FROM sen_oauth_consents WHERE user_id = ? AND client_id = ?",
            [user_id.into(), v.client.client_id.clone().into()],
        ))
        .await
        .ok()
        .flatten();
    let Some(granted) = row.and_then(|r| r.try_get::<String>("", "scope").ok()) else {
        return false;
    };
    let granted: Vec<&str> = granted.split(' ').collect();
    v.scope.split(' ').all(|s| granted.contains(&s))
}

/// Issues a code for `user` and redirects to the client.
async fn issue_code(
    ctx: &AppContext,
    user: &Principal,
    v: &Valid,
    remember: bool,
) -> AppResult<Response> {
    // Permission scopes the user does not hold are dropped, never granted.
    let scope: Vec<&str> = v
        .scope
        .split(' ')
        .filter(|s| !ctx.rbac().is_permission(s) || user.has(s))
        .collect();
    let scope = scope.join(" ");
    let code = random_token::<32>()?;
    let now = sen_core::clock::now().timestamp_millis();
    let db = ctx.db();
    let tx = db.begin_write().await?;
    tx.execute_raw(db.statement(
        "INSERT INTO sen_oauth_codes (code_hash, client_id, user_id, redirect_uri, scope, code_challenge, nonce, auth_time, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            sha256_hex(code.as_bytes()).into(),
            v.client.client_id.clone().into(),
            user.user_id.clone().into(),
            v.redirect_uri.clone().into(),
            scope.clone().into(),
            v.challenge.clone().into(),
            v.nonce.clone().into(),
            now.into(),
            now.into(),
            (now + CODE_TTL_MS).into(),
        ],
    ))
    .await?;
    if remember {
        tx.execute_raw(db.statement(
            "INSERT INTO sen_oauth_consents (user_id, client_id, scope, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
            [
                user.user_id.clone().into(),
                v.client.client_id.clone().into(),
                scope.clone().into(),
                now.into(),
            ],
        ))
        .await?;
        crate::audit::record(
            db,
            &tx,
            crate::audit::Entry {
                actor: Some(&user.user_id),
                action: "oauth.consent",
                target: Some(&v.client.client_id),
                ip: None,
                detail: serde_json::json!({"scope": scope}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    let issuer = ctx.config().public_url();
    let mut pairs = vec![("code", code.as_str()), ("iss", issuer.as_str())];
    if let Some(s) = v.state.as_deref() {
        pairs.push(("state", s));
    }
    Ok(redirect_with(&v.redirect_uri, &pairs))
}

/// The authorization endpoint: sign-in, then consent, then a code.
pub async fn authorize_get(
    State(ctx): State<AppContext>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> AppResult<Response> {
    let p: AuthorizeParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let v = match validate(&ctx, &p).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let Some(user) = current_user(&ctx, &parts).await else {
        return Ok(login_page(&p, &v.client, None));
    };
    if p.prompt.as_deref() != Some("consent") && has_consent(&ctx, &user.user_id, &v).await {
        return issue_code(&ctx, &user, &v, false).await;
    }
    Ok(consent_page(&p, &v))
}

fn same_origin(ctx: &AppContext, headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "same-origin")
    {
        return true;
    }
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o == ctx.config().public_url())
}

/// The sign-in and consent forms post here.
pub async fn authorize_post(
    State(ctx): State<AppContext>,
    meta: Meta,
    parts: Parts,
    body: Bytes,
) -> AppResult<Response> {
    if !same_origin(&ctx, &parts.headers) {
        return Ok(page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "<p>This form must be sent from this site.</p>",
        ));
    }
    let p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let v = match validate(&ctx, &p).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    match p.action.as_deref() {
        Some("login") => login(&ctx, &meta, &p, &v).await,
        Some("approve") => match current_user(&ctx, &parts).await {
            Some(user) => issue_code(&ctx, &user, &v, true).await,
            None => Ok(login_page(
                &p,
                &v.client,
                Some("Your session ended; sign in again."),
            )),
        },
        Some("deny") => {
            let mut pairs = vec![
                ("error", "access_denied"),
                ("error_description", "the user said no"),
            ];
            if let Some(s) = v.state.as_deref() {
                pairs.push(("state", s));
            }
            Ok(redirect_with(&v.redirect_uri, &pairs))
        }
        _ => Ok(error_page("The form was incomplete.")),
    }
}

/// Signs in from the authorize page, sets the session cookies, and comes
/// back to the same request (now with a user) for consent.
async fn login(
    ctx: &AppContext,
    meta: &Meta,
    p: &AuthorizeParams,
    v: &Valid,
) -> AppResult<Response> {
    let state = AuthState::of(ctx)?;
    let signed_in = crate::sign_in::sign_in(
        ctx,
        &state,
        p.email.as_deref().unwrap_or_default(),
        p.password.clone().unwrap_or_default(),
        p.totp.as_deref(),
        meta,
    )
    .await;
    let issued = match signed_in {
        Ok(issued) => issued,
        Err(e) if e.code() == "invalid_credentials" => {
            return Ok(login_page(
                p,
                &v.client,
                Some("The email or password is wrong."),
            ));
        }
        Err(e) if e.code().starts_with("mfa_") => {
            return Ok(login_page(
                p,
                &v.client,
                Some("Enter a valid two-factor code."),
            ));
        }
        Err(e) => return Err(e),
    };
    let tokens = crate::routes::auth::issue(ctx, &state, &issued, false).await?;
    let mut back = url::Url::parse(&format!("{}/oauth/authorize", ctx.config().public_url()))
        .map_err(sen_core::AppError::internal)?;
    {
        let mut q = back.query_pairs_mut();
        for (k, val) in [
            ("response_type", &p.response_type),
            ("client_id", &p.client_id),
            ("redirect_uri", &p.redirect_uri),
            ("scope", &p.scope),
            ("state", &p.state),
            ("code_challenge", &p.code_challenge),
            ("code_challenge_method", &p.code_challenge_method),
            ("nonce", &p.nonce),
        ] {
            if let Some(val) = val {
                q.append_pair(k, val);
            }
        }
    }
    let path = format!("/oauth/authorize?{}", back.query().unwrap_or_default());
    let mut resp = Redirect::to(&path).into_response();
    for c in tokens.headers().get_all(header::SET_COOKIE) {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    Ok(resp)
}
