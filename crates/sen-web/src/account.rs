//! Operator actions on one user's sign-in, from the user's page: end one
//! or every session, turn two-factor off, act as the user (and come back)
//! — each through its `/api/v1/admin` handler, so the page and the API
//! authorise and audit the same way.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use sen_auth::request_meta::Meta;
use sen_auth::routes::admin_sessions as api;
use sen_core::extract::Path;
use sen_core::{AppContext, AppResult, Principal};

use crate::admin::gate;
use crate::login::TokenForm;
use crate::page::{csrf_ok, describe, forbidden, see_other};

/// Copies the `Set-Cookie` headers of an API answer onto a redirect.
fn with_cookies(mut to: Response, from: &Response) -> Response {
    for c in from.headers().get_all(header::SET_COOKIE) {
        to.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    to
}

/// Passes operators holding `permission` who sent this session's token.
fn allowed(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    csrf: &str,
    permission: &str,
) -> Result<Principal, Box<Response>> {
    let (me, f) = gate(ctx, headers, who, "/admin/apps/users")?;
    if !csrf_ok(ctx, Some(&me), headers, csrf) || !me.has(permission) {
        return Err(Box::new(forbidden(f)));
    }
    Ok(me)
}

/// Shows a refused change on the user's page, or fails the request.
async fn refused(
    ctx: &AppContext,
    headers: &HeaderMap,
    me: Principal,
    id: String,
    e: sen_core::AppError,
) -> AppResult<Response> {
    if !e.status().is_client_error() {
        return Err(e);
    }
    let f = crate::page::Frame::new(ctx, headers, Some(&me), "/admin/apps/users");
    crate::people::render(ctx, me, f, id, e.status(), Some(describe(&e))).await
}

/// `POST /admin/apps/users/{id}/sessions/revoke`: ends every session.
pub async fn revoke_all(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = match allowed(&ctx, &headers, who, &form.csrf, "auth:users.write") {
        Ok(m) => m,
        Err(r) => return Ok(*r),
    };
    match api::revoke_user_sessions(State(ctx.clone()), me.clone(), meta, Path(id.clone())).await {
        Ok(_) => Ok(see_other(&format!("/admin/apps/users/{id}"))),
        Err(e) => refused(&ctx, &headers, me, id, e).await,
    }
}

/// `POST /admin/apps/users/{id}/sessions/{sid}/revoke`: ends one session.
pub async fn revoke_one(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path((id, sid)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = match allowed(&ctx, &headers, who, &form.csrf, "auth:users.write") {
        Ok(m) => m,
        Err(r) => return Ok(*r),
    };
    match api::revoke_user_session(
        State(ctx.clone()),
        me.clone(),
        meta,
        Path((id.clone(), sid)),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!("/admin/apps/users/{id}"))),
        Err(e) => refused(&ctx, &headers, me, id, e).await,
    }
}

/// `POST /admin/apps/users/{id}/mfa/reset`: turns two-factor off.
pub async fn reset_mfa(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = match allowed(&ctx, &headers, who, &form.csrf, "auth:users.write") {
        Ok(m) => m,
        Err(r) => return Ok(*r),
    };
    match api::reset_mfa(State(ctx.clone()), me.clone(), meta, Path(id.clone())).await {
        Ok(_) => Ok(see_other(&format!("/admin/apps/users/{id}"))),
        Err(e) => refused(&ctx, &headers, me, id, e).await,
    }
}

/// `POST /admin/apps/users/{id}/impersonate`: the browser becomes the
/// user (banner on every page) until "back to my account".
pub async fn impersonate(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = match allowed(&ctx, &headers, who, &form.csrf, "auth:users.impersonate") {
        Ok(m) => m,
        Err(r) => return Ok(*r),
    };
    match api::impersonate(State(ctx.clone()), me.clone(), meta, Path(id.clone())).await {
        Ok(r) => Ok(with_cookies(see_other("/me"), &r)),
        Err(e) => refused(&ctx, &headers, me, id, e).await,
    }
}

/// `POST /web/impersonation/end`: back to the operator's own session (or
/// to sign-in when it has ended meanwhile).
pub async fn end(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let Some(me) = who else {
        return Ok(see_other("/login"));
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok((StatusCode::FORBIDDEN, "bad form token").into_response());
    }
    let target = format!("/admin/apps/users/{}", me.user_id);
    let r = api::end_impersonation(State(ctx), me, meta).await?;
    let to = if r.status() == StatusCode::OK {
        target
    } else {
        "/login".into()
    };
    Ok(with_cookies(see_other(&to), &r))
}
