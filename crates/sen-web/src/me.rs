//! `/me`: the user's own page — profile (name, mood), avatar, sessions
//! with "sign out" for the others — through the same handlers as the
//! `/api/v1/me` API, so the rules are the same.

use askama::Template;
use axum::Form;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppResult, Principal};
use serde::Deserialize;

use crate::login::TokenForm;
use crate::page::{Frame, csrf_ok, describe, forbidden, html, see_other};

/// One session row.
pub struct SessionLine {
    /// Id.
    pub id: String,
    /// Browser or client.
    pub device: String,
    /// Address.
    pub ip: String,
    /// Last use.
    pub last_seen: String,
    /// This request's session.
    pub current: bool,
}

/// The profile page.
#[derive(Template)]
#[template(path = "me.html")]
pub struct MePage {
    /// Frame.
    pub f: Frame,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Mood.
    pub mood: String,
    /// Avatar thumbnail (or original) URL.
    pub avatar: Option<String>,
    /// Live sessions.
    pub sessions: Vec<SessionLine>,
    /// A success line.
    pub notice: Option<&'static str>,
    /// What went wrong.
    pub error: Option<String>,
    /// Tabs apps add (`App::me_pages`): (path, title).
    pub tabs: Vec<(String, &'static str)>,
}

/// The tabs every app adds to `/me`.
pub fn app_tabs(ctx: &AppContext) -> Vec<(String, &'static str)> {
    ctx.apps()
        .iter()
        .flat_map(|a| {
            a.me_pages()
                .into_iter()
                .map(move |r| (format!("/me/apps/{}/{}", a.name(), r.name), r.title))
        })
        .collect()
}

/// `?saved=1`.
#[derive(Debug, Deserialize)]
pub struct Flash {
    #[serde(default)]
    saved: Option<String>,
}

async fn render(
    ctx: &AppContext,
    me: Principal,
    headers: &HeaderMap,
    status: StatusCode,
    notice: bool,
    error: Option<String>,
) -> AppResult<Response> {
    let f = Frame::new(ctx, headers, Some(&me), "/me");
    let Json(user) = sen_auth::routes::me::get_me(State(ctx.clone()), me.clone()).await?;
    let Json(list) = sen_auth::routes::me::list_sessions(State(ctx.clone()), me.clone()).await?;
    let avatar = match sen_files::routes::get_avatar(State(ctx.clone()), me.clone()).await {
        Ok(Json(file)) => Some(
            file.thumbnails
                .iter()
                .find(|t| t.size >= 96)
                .map(|t| t.url.clone())
                .unwrap_or(file.url),
        ),
        Err(e) if e.status() == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    let notice = notice.then_some(f.tx.saved);
    Ok(html(
        status,
        &MePage {
            tabs: app_tabs(ctx),
            f,
            email: user.email,
            name: user.name,
            mood: user.mood.unwrap_or_default(),
            avatar,
            sessions: list
                .items
                .into_iter()
                .map(|s| SessionLine {
                    id: s.id,
                    device: s.user_agent.unwrap_or_default().chars().take(80).collect(),
                    ip: s.ip.unwrap_or_default(),
                    last_seen: s.last_used_at,
                    current: s.current,
                })
                .collect(),
            notice,
            error,
        },
    ))
}

fn signed_in(who: Option<Principal>) -> Result<Principal, Box<Response>> {
    who.ok_or_else(|| Box::new(crate::refresh::via_refresh("/me")))
}

/// `GET /me`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<Flash>,
) -> AppResult<Response> {
    let me = match signed_in(who) {
        Ok(p) => p,
        Err(r) => return Ok(*r),
    };
    render(&ctx, me, &headers, StatusCode::OK, q.saved.is_some(), None).await
}

/// The profile form.
#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    mood: String,
}

/// `POST /web/me/profile`.
pub async fn save_profile(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Form(form): Form<ProfileForm>,
) -> AppResult<Response> {
    let me = match signed_in(who) {
        Ok(p) => p,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me")));
    }
    let body = sen_auth::routes::me::PatchMe {
        name: Some(form.name),
        mood: Some(form.mood),
    };
    match sen_auth::routes::me::patch_me(State(ctx.clone()), me.clone(), Json(body)).await {
        Ok(_) => Ok(see_other("/me?saved=1")),
        Err(e) if e.status().is_client_error() => {
            render(&ctx, me, &headers, e.status(), false, Some(describe(&e))).await
        }
        Err(e) => Err(e),
    }
}

/// The token of a multipart form (it travels in the URL: the body is the file).
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    csrf: String,
}

/// `POST /web/me/avatar?csrf=…` (multipart with a `file` part).
pub async fn upload_avatar(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
    body: Body,
) -> AppResult<Response> {
    let me = match signed_in(who) {
        Ok(p) => p,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &q.csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me")));
    }
    match sen_files::routes::put_avatar(State(ctx.clone()), me.clone(), headers.clone(), body).await
    {
        Ok(_) => Ok(see_other("/me?saved=1")),
        Err(e) if e.status().is_client_error() => {
            let detail = e
                .to_problem()
                .detail
                .unwrap_or_else(|| e.code().to_string());
            let mut r = render(&ctx, me, &headers, e.status(), false, Some(detail)).await?;
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

/// `POST /web/me/sessions/revoke-others`: "sign out all other sessions".
pub async fn revoke_others(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = match signed_in(who) {
        Ok(p) => p,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me")));
    }
    sen_auth::routes::me::revoke_other_sessions(State(ctx.clone()), me, meta).await?;
    Ok(see_other("/me?saved=1"))
}

/// `POST /web/me/sessions/{id}/revoke`.
pub async fn revoke_session(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = match signed_in(who) {
        Ok(p) => p,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me")));
    }
    match sen_auth::routes::me::delete_session(State(ctx.clone()), me.clone(), meta, Path(id)).await
    {
        Ok(_) => Ok(see_other("/me?saved=1")),
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            render(
                &ctx,
                me,
                &headers,
                StatusCode::NOT_FOUND,
                false,
                Some(e.code().to_string()),
            )
            .await
        }
        Err(e) => Err(e),
    }
}
