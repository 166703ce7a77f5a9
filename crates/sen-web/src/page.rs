//! What every page shares: the frame (language, CSRF token, who is
//! signed in), the response headers (a CSP with no inline script or style,
//! `no-store`), redirects, and the CSRF check of form posts.
//!
//! CSRF: the auth cookies are `SameSite`, the authenticator refuses
//! cookie-authenticated writes without our origin, and every form carries
//! a token bound to the session (HMAC of the session id under a key
//! derived from `SEN_SECRET_KEY`), checked in constant time; htmx requests
//! send the same token as `X-CSRF-Token`.

use askama::Template;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sen_core::{AppContext, Principal};
use sha2::Sha256;

use crate::i18n::{Lang, Texts};

/// The policy of every page: scripts and styles only from our own files.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The shared part of a page's context.
pub struct Frame {
    /// Language code for `<html lang>`.
    pub lang: &'static str,
    /// Words.
    pub tx: &'static Texts,
    /// Form token ("" when signed out: the sign-in form uses the pre-session token).
    pub csrf: String,
    /// Show the dashboard links.
    pub operator: bool,
    /// Show the profile and sign-out links.
    pub signed_in: bool,
    /// Where the brand links to.
    pub home: &'static str,
    /// This page's path (the language switch comes back here).
    pub path: String,
    /// The signed-in user's id (for the notification badge's topic).
    pub user_id: String,
    /// While an operator acts as this user: the user's email (the banner).
    pub impersonating: Option<String>,
}

impl Frame {
    /// The frame of a page at `path` for `who`.
    pub fn new(ctx: &AppContext, headers: &HeaderMap, who: Option<&Principal>, path: &str) -> Self {
        let lang = Lang::of(headers);
        Self {
            lang: lang.code(),
            tx: lang.tx(),
            csrf: token(ctx, &anchor(who, headers)),
            operator: who.is_some_and(|p| p.operator),
            signed_in: who.is_some(),
            home: if who.is_some_and(|p| p.operator) {
                "/admin/apps"
            } else {
                "/me"
            },
            path: path.to_string(),
            user_id: who.map(|p| p.user_id.clone()).unwrap_or_default(),
            impersonating: who.filter(|p| p.impersonator.is_some()).map(|p| {
                p.extra::<sen_auth::users::UserRow>()
                    .map(|u| u.email.clone())
                    .unwrap_or_else(|| p.user_id.clone())
            }),
        }
    }
}

/// The cookie that anchors the token of signed-out forms (sign-in).
pub const PRE_SESSION: &str = "sen_pre";

/// What a token is bound to: the session, or before sign-in the
/// `sen_pre` cookie.
fn anchor(who: Option<&Principal>, headers: &HeaderMap) -> String {
    match who.and_then(|p| p.session_id.clone()) {
        Some(s) => format!("session:{s}"),
        None => format!(
            "pre:{}",
            sen_auth::cookies::read_headers(headers, PRE_SESSION).unwrap_or_default()
        ),
    }
}

fn key(ctx: &AppContext) -> Vec<u8> {
    let secret = ctx
        .config()
        .secret_key
        .as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default();
    mac(secret.as_bytes(), b"sen-web csrf v1")
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn token(ctx: &AppContext, anchor: &str) -> String {
    hex::encode(&mac(&key(ctx), anchor.as_bytes())[..16])
}

/// Whether `presented` is the token of this session (constant time).
pub fn csrf_ok(
    ctx: &AppContext,
    who: Option<&Principal>,
    headers: &HeaderMap,
    presented: &str,
) -> bool {
    let want = token(ctx, &anchor(who, headers));
    let (a, b) = (want.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A rendered page with the page headers.
pub fn html(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => {
            let mut r = (status, axum::response::Html(body)).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
        }
    }
}

/// `303 See Other` to a local path (never another origin).
pub fn see_other(path: &str) -> Response {
    Redirect::to(&local(path)).into_response()
}

/// `path` when it is a local absolute path, else `/`.
pub fn local(path: &str) -> String {
    if path.starts_with('/') && !path.starts_with("//") && !path.contains(['\\', '\r', '\n']) {
        path.to_string()
    } else {
        "/".into()
    }
}

/// What a refused change says on the page: each field's message, or the
/// problem's detail, or its code.
pub fn describe(e: &sen_core::AppError) -> String {
    let fields: Vec<String> = e
        .field_errors()
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    if fields.is_empty() {
        e.to_problem()
            .detail
            .unwrap_or_else(|| e.code().to_string())
    } else {
        fields.join("; ")
    }
}

/// The 403 page.
#[derive(Template)]
#[template(path = "forbidden.html")]
pub struct Forbidden {
    /// Frame.
    pub f: Frame,
}

/// Renders the 403 page.
pub fn forbidden(f: Frame) -> Response {
    html(StatusCode::FORBIDDEN, &Forbidden { f })
}

/// The 404 page.
#[derive(Template)]
#[template(path = "not_found.html")]
pub struct NotFound {
    /// Frame.
    pub f: Frame,
}

/// Renders the 404 page.
pub fn not_found(f: Frame) -> Response {
    html(StatusCode::NOT_FOUND, &NotFound { f })
}
