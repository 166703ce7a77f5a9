//! `/admin/apps/files`: every stored file, newest first, by purpose, with
//! a link to download it and a delete button (through the files API:
//! `files:read` to browse, `files:write` to delete).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppResult, Principal};
use sen_files::routes::{self as api, FileView, ListQuery};
use serde::Deserialize;

use crate::admin::{BackForm, gate};
use crate::page::{Frame, csrf_ok, forbidden, html, local, see_other};

/// The files page.
#[derive(Template)]
#[template(path = "files.html")]
pub struct FilesPage {
    /// Frame.
    pub f: Frame,
    /// The purpose shown ("" = all).
    pub purpose: String,
    /// Every declared purpose.
    pub purposes: Vec<&'static str>,
    /// This page of files.
    pub files: Vec<FileView>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
    /// This page's URL (delete comes back here).
    pub here: String,
    /// Show delete.
    pub can_write: bool,
}

/// `?purpose=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct FilesQuery {
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    cursor: Option<String>,
}

/// Bytes in words: "512 B", "3.4 KiB", "12.0 MiB".
pub fn bytes(n: &i64) -> String {
    let n = *n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.1} GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

/// `GET /admin/apps/files`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<FilesQuery>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/files") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has(sen_files::records::READ) {
        return Ok(forbidden(f));
    }
    let purposes: Vec<&'static str> = ctx
        .apps()
        .iter()
        .flat_map(|a| a.file_purposes())
        .map(|p| p.name)
        .collect();
    let purpose = if purposes.contains(&q.purpose.as_str()) {
        q.purpose
    } else {
        String::new()
    };
    let query = ListQuery {
        owner: Some("all".into()),
        purpose: (!purpose.is_empty()).then(|| purpose.clone()),
        limit: Some(50),
        cursor: q.cursor.clone(),
    };
    let Json(list) = api::list_files(State(ctx.clone()), me.clone(), Query(query)).await?;
    let mut here = format!(
        "/admin/apps/files?purpose={}",
        crate::admin::urlencode(&purpose)
    );
    if let Some(c) = &q.cursor {
        here.push_str(&format!("&cursor={}", crate::admin::urlencode(c)));
    }
    Ok(html(
        StatusCode::OK,
        &FilesPage {
            f,
            purpose,
            purposes,
            files: list.items,
            next_cursor: list.next_cursor,
            here,
            can_write: me.has(sen_files::records::WRITE),
        },
    ))
}

/// `POST /admin/apps/files/{id}/delete`.
pub async fn delete(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<BackForm>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/files") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) || !me.has(sen_files::records::WRITE) {
        return Ok(forbidden(f));
    }
    api::delete_file(State(ctx.clone()), me, meta, Path(id)).await?;
    let back = local(&form.back);
    Ok(see_other(if back.starts_with("/admin/apps/files") {
        &back
    } else {
        "/admin/apps/files"
    }))
}
