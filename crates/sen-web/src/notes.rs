//! `/me/notifications`: the user's notifications, newest first, marked
//! read one by one or all at once (the header's badge and this list
//! follow `user:{id}` live).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppResult, Principal};

use crate::login::TokenForm;
use crate::page::{Frame, csrf_ok, forbidden, html, see_other};

/// One notification.
pub struct Note {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// When.
    pub created_at: String,
    /// Read already.
    pub read: bool,
}

/// The page.
#[derive(Template)]
#[template(path = "notifications.html")]
pub struct NotesPage {
    /// Frame.
    pub f: Frame,
    /// Unread count.
    pub unread: i64,
    /// Newest first.
    pub items: Vec<Note>,
}

/// `GET /me/notifications`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let Some(me) = who else {
        return Ok(crate::refresh::via_refresh("/me/notifications"));
    };
    let f = Frame::new(&ctx, &headers, Some(&me), "/me/notifications");
    let q = sen_realtime::notifications::ListQuery {
        unread: false,
        cursor: None,
        limit: Some(100),
    };
    let Json(page) = sen_realtime::notifications::list(State(ctx.clone()), me, Query(q)).await?;
    Ok(html(
        StatusCode::OK,
        &NotesPage {
            f,
            unread: page.unread,
            items: page
                .items
                .into_iter()
                .map(|n| Note {
                    read: n.read_at.is_some(),
                    id: n.id,
                    title: n.title,
                    body: n.body,
                    created_at: n.created_at,
                })
                .collect(),
        },
    ))
}

/// `POST /web/me/notifications/{id}/read`.
pub async fn read_one(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let Some(me) = who else {
        return Ok(crate::refresh::via_refresh("/me/notifications"));
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(
            &ctx,
            &headers,
            Some(&me),
            "/me/notifications",
        )));
    }
    sen_realtime::notifications::read_one(State(ctx.clone()), me, Path(id)).await?;
    Ok(see_other("/me/notifications"))
}

/// `POST /web/me/notifications/read-all`.
pub async fn read_all(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let Some(me) = who else {
        return Ok(crate::refresh::via_refresh("/me/notifications"));
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(
            &ctx,
            &headers,
            Some(&me),
            "/me/notifications",
        )));
    }
    sen_realtime::notifications::read_all(State(ctx.clone()), me).await?;
    Ok(see_other("/me/notifications"))
}
