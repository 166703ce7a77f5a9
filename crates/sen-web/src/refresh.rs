//! Keeping page visitors signed in: access cookies live minutes, so a page
//! that finds none sends the browser to `/api/v1/auth/web/refresh?next=…`,
//! the one place the refresh cookie (`Path=/api/v1/auth`, `SameSite=Strict`)
//! is sent. It rotates the refresh token like `POST /api/v1/auth/refresh`
//! (reuse still ends the session) and goes back; without a usable refresh
//! cookie it goes to the sign-in page. Cross-site requests never carry
//! the Strict cookie, so this GET cannot be driven by another site.

use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, header};
use sen_auth::request_meta::Meta;
use sen_core::extract::Query;
use sen_core::{AppContext, AppResult};

use crate::login::Next;
use crate::page::{local, see_other};

/// Where a signed-out page visitor is sent to come back to `path`.
pub fn via_refresh(path: &str) -> Response {
    see_other(&format!("{PATH}?next={}", crate::admin::urlencode(path)))
}

/// The route.
pub const PATH: &str = "/api/v1/auth/web/refresh";

/// `GET /api/v1/auth/web/refresh?next=`.
pub async fn refresh(
    State(ctx): State<AppContext>,
    meta: Meta,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> AppResult<Response> {
    let next = local(q.next.as_deref().unwrap_or("/me"));
    let to_login = || see_other(&format!("/login?next={}", crate::admin::urlencode(&next)));
    let Some(token) = sen_auth::cookies::read_headers(&headers, sen_auth::cookies::REFRESH) else {
        return Ok(to_login());
    };
    let state = sen_auth::state::AuthState::of(&ctx)?;
    match sen_auth::sessions::rotate(&ctx, token, "sen", meta.ip.as_deref()).await {
        Ok(issued) => {
            let api = sen_auth::routes::auth::issue(&ctx, &state, &issued, false).await?;
            let mut r = see_other(&next);
            for c in api.headers().get_all(header::SET_COOKIE) {
                r.headers_mut().append(header::SET_COOKIE, c.clone());
            }
            Ok(r)
        }
        Err(_) => {
            let mut r = to_login();
            for c in sen_auth::cookies::clear(state.cookie_secure) {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            Ok(r)
        }
    }
}
