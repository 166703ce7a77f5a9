//! The files API: upload (`POST /api/v1/files?purpose=…`), metadata
//! (`GET /api/v1/files/{id}`), the caller's files (`GET /api/v1/files`),
//! delete, and the avatar of `/me` (`PUT|GET|DELETE /api/v1/me/avatar`).
//! Another user's private file answers 404 whatever the operation.

use axum::body::Body;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use sea_orm::{ConnectionTrait, Value};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::FilesState;
use crate::records::{COLUMNS, FileRow, WRITE};

type Problem = sen_core::error::Problem;

/// A thumbnail as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThumbView {
    /// Size asked for.
    pub size: u32,
    /// Real width.
    pub width: u32,
    /// Real height.
    pub height: u32,
    /// Where to get it.
    pub url: String,
}

/// A file as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    /// Id.
    pub id: String,
    /// Sanitised name.
    pub name: String,
    /// Type sniffed from the bytes.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Upload purpose.
    pub purpose: String,
    /// Who uploaded it.
    pub owner_id: String,
    /// Served to anyone with the link.
    pub public: bool,
    /// Download path (relative to the public URL).
    pub url: String,
    /// Strong validator of the bytes (SHA-256).
    pub etag: String,
    /// Thumbnails made so far (made by a job after upload).
    pub thumbnails: Vec<ThumbView>,
    /// Upload time.
    pub created_at: Option<String>,
}

impl From<&FileRow> for FileView {
    fn from(r: &FileRow) -> Self {
        let url = r.url();
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            content_type: r.content_type.clone(),
            size: r.size,
            purpose: r.purpose.clone(),
            owner_id: r.owner_id.clone(),
            public: r.public,
            etag: r.sha256.clone(),
            thumbnails: r
                .thumbnails
                .iter()
                .map(|t| ThumbView {
                    size: t.size,
                    width: t.width,
                    height: t.height,
                    url: format!("{url}?thumb={}", t.size),
                })
                .collect(),
            url,
            created_at: chrono::DateTime::from_timestamp_millis(r.created_at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        }
    }
}

/// Upload parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// What the file is for (`attachment`, `image`, or an app's purpose).
    pub purpose: Option<String>,
}

/// Uploads a file: `multipart/form-data` with the bytes in a part named `file`.
#[utoipa::path(post, path = "/api/v1/files", tag = "files", params(UploadQuery),
    request_body(content_type = "multipart/form-data", description = "A part named `file`"),
    responses(
        (status = 201, description = "Stored", body = FileView),
        (status = 400, description = "`malformed_multipart` (e.g. truncated)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`file_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_file_type` or `unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown purpose, empty file, `image_too_large`, `file_rejected`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn upload(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<(StatusCode, Json<FileView>)> {
    let state = FilesState::of(&ctx)?;
    let name = q.purpose.unwrap_or_else(|| "attachment".into());
    let purpose = state.purpose(&name).ok_or_else(|| {
        AppError::validation(vec![FieldError::new(
            "purpose",
            "invalid_value",
            format!(
                "unknown purpose; one of {}",
                state.purpose_names().join(", ")
            ),
        )])
    })?;
    let row = crate::upload::receive(&ctx, &state, &me.user_id, &purpose, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(FileView::from(&row))))
}

/// A file's metadata.
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 200, description = "The file", body = FileView),
        (status = 404, description = "No such file, or not yours", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_file(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    Path(id): Path<String>,
) -> AppResult<Json<FileView>> {
    let row = FileRow::load(&ctx, &id)
        .await?
        .filter(|r| r.readable_by(who.as_ref()))
        .ok_or_else(AppError::not_found)?;
    Ok(Json(FileView::from(&row)))
}

/// Which files to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `me` (default), or `all` with `files:read`.
    pub owner: Option<String>,
    /// Only this purpose.
    pub purpose: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of files, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilePage {
    /// Files.
    pub items: Vec<FileView>,
    /// Pass as `cursor` for older files; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lists the caller's files (or everyone's, for operators).
#[utoipa::path(get, path = "/api/v1/files", tag = "files", params(ListQuery), responses(
    (status = 200, description = "A page of files", body = FilePage),
    (status = 403, description = "`owner=all` without `files:read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_files(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<FilePage>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let mut sql = format!("SELECT {COLUMNS} FROM sen_files WHERE state = 'ready'");
    let mut values: Vec<Value> = Vec::new();
    match q.owner.as_deref() {
        None | Some("me") => {
            sql.push_str(" AND owner_id = ?");
            values.push(me.user_id.clone().into());
        }
        Some("all") => me.require(crate::records::READ)?,
        Some(_) => {
            return Err(AppError::validation(vec![FieldError::new(
                "owner",
                "invalid_value",
                "must be me or all",
            )]));
        }
    }
    if let Some(p) = q.purpose {
        sql.push_str(" AND purpose = ?");
        values.push(p.into());
    }
    if let Some(c) = q.cursor {
        sql.push_str(" AND id < ?");
        values.push(c.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::from(limit + 1).into());
    let db = ctx.db();
    let rows = db.orm().query_all_raw(db.statement(&sql, values)).await?;
    let mut items = rows
        .iter()
        .map(|r| FileRow::from_row(r).map(|f| FileView::from(&f)))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|f| f.id.clone())
    } else {
        None
    };
    Ok(Json(FilePage { items, next_cursor }))
}

/// Deletes `row` and its stored objects. `operator`: someone deleting a
/// file that is not theirs (by `files:write`), written to the audit log
/// in the same transaction.
async fn remove(
    ctx: &AppContext,
    state: &FilesState,
    row: &FileRow,
    operator: Option<(&Principal, &Meta)>,
) -> AppResult<()> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    tx.execute_raw(db.statement(
        "DELETE FROM sen_files WHERE id = ?",
        [row.id.clone().into()],
    ))
    .await?;
    tx.execute_raw(db.statement(
        "DELETE FROM sen_avatars WHERE file_id = ?",
        [row.id.clone().into()],
    ))
    .await?;
    if let Some((me, meta)) = operator {
        sen_auth::audit::record(
            db,
            &tx,
            sen_auth::audit::Entry {
                actor: Some(&me.user_id),
                action: "file.delete",
                target: Some(&row.id),
                ip: meta.ip.as_deref(),
                detail: serde_json::json!({
                    "owner_id": row.owner_id, "purpose": row.purpose, "size": row.size,
                }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    crate::upload::delete_objects(state, &row.id)
        .await
        .map_err(|e| AppError::unavailable("file storage", e))
}

/// Deletes a file (its owner, or `files:write`).
#[utoipa::path(delete, path = "/api/v1/files/{id}", tag = "files",
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 204, description = "Deleted with its thumbnails"),
        (status = 404, description = "No such file, or not yours", body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_file(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let state = FilesState::of(&ctx)?;
    let row = FileRow::load(&ctx, &id)
        .await?
        .filter(|r| r.state == "ready" && (r.owner_id == me.user_id || me.has(WRITE)))
        .ok_or_else(AppError::not_found)?;
    let operator = (row.owner_id != me.user_id).then_some((&me, &meta));
    remove(&ctx, &state, &row, operator).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the caller's avatar: an image (JPEG, PNG, WebP, GIF; 5 MiB) in a
/// multipart part named `file`. Thumbnails follow from a job; the old
/// avatar is deleted.
#[utoipa::path(put, path = "/api/v1/me/avatar", tag = "me",
    request_body(content_type = "multipart/form-data", description = "A part named `file`"),
    responses(
        (status = 200, description = "The new avatar", body = FileView),
        (status = 413, description = "`file_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_file_type`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn put_avatar(
    State(ctx): State<AppContext>,
    me: Principal,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<FileView>> {
    let state = FilesState::of(&ctx)?;
    let purpose = state
        .purpose(crate::AVATAR)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("avatar purpose missing")))?;
    let row = crate::upload::receive(&ctx, &state, &me.user_id, &purpose, &headers, body).await?;
    let old = current_avatar(&ctx, &me.user_id).await?;
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO sen_avatars (user_id, file_id, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET file_id = excluded.file_id, updated_at = excluded.updated_at",
            [
                me.user_id.clone().into(),
                row.id.clone().into(),
                sen_core::clock::now().timestamp_millis().into(),
            ],
        ))
        .await?;
    if let Some(old) = old {
        remove(&ctx, &state, &old, None).await?;
    }
    Ok(Json(FileView::from(&row)))
}

async fn current_avatar(ctx: &AppContext, user: &str) -> AppResult<Option<FileRow>> {
    let db = ctx.db();
    let id = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT file_id FROM sen_avatars WHERE user_id = ?",
            [user.into()],
        ))
        .await?;
    match id {
        Some(r) => Ok(FileRow::load(ctx, &r.try_get::<String>("", "file_id")?).await?),
        None => Ok(None),
    }
}

/// The caller's avatar.
#[utoipa::path(get, path = "/api/v1/me/avatar", tag = "me", responses(
    (status = 200, description = "The avatar", body = FileView),
    (status = 404, description = "No avatar", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_avatar(State(ctx): State<AppContext>, me: Principal) -> AppResult<Json<FileView>> {
    current_avatar(&ctx, &me.user_id)
        .await?
        .map(|r| Json(FileView::from(&r)))
        .ok_or_else(AppError::not_found)
}

/// Removes the caller's avatar.
#[utoipa::path(delete, path = "/api/v1/me/avatar", tag = "me", responses(
    (status = 204, description = "Removed"),
    (status = 404, description = "No avatar", body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_avatar(State(ctx): State<AppContext>, me: Principal) -> AppResult<StatusCode> {
    let state = FilesState::of(&ctx)?;
    let row = current_avatar(&ctx, &me.user_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    remove(&ctx, &state, &row, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
