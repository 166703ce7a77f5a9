//! The two auth cookies. The access cookie carries the access JWT for
//! browser calls; the refresh cookie is `SameSite=Strict` and sent only to
//! `/api/v1/auth`, so no other route (and no cross-site request) sees it.

use http::HeaderValue;
use http::header::COOKIE;
use http::request::Parts;

/// Name of the access-token cookie.
pub const ACCESS: &str = "sen_access";
/// Name of the refresh-token cookie.
pub const REFRESH: &str = "sen_refresh";
/// Path the refresh cookie is limited to.
pub const REFRESH_PATH: &str = "/api/v1/auth";

fn build(
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: i64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    );
    // Values are base64url/JWT characters and fixed names, always valid.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` for the access token.
pub fn access(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    build(ACCESS, token, "/", "Lax", max_age_secs, secure)
}

/// `Set-Cookie` for the refresh token.
pub fn refresh(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    build(REFRESH, token, REFRESH_PATH, "Strict", max_age_secs, secure)
}

/// `Set-Cookie` values that delete both cookies.
pub fn clear(secure: bool) -> [HeaderValue; 2] {
    [
        build(ACCESS, "", "/", "Lax", 0, secure),
        build(REFRESH, "", REFRESH_PATH, "Strict", 0, secure),
    ]
}

/// The value of cookie `name` in the request, if sent.
pub fn read<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    read_headers(&parts.headers, name)
}

/// The value of cookie `name` among `headers`.
pub fn read_headers<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}
