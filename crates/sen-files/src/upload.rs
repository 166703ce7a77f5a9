//! Receiving an upload: `multipart/form-data` streamed part by part into
//! storage (never whole in memory: one storage part of 5 MiB is the most
//! held), the type sniffed from the first bytes and checked against the
//! purpose, the size counted against its limit, images measured against
//! the pixel limit, then the scan hook — and only then is the file `ready`.
//! Whatever is rejected, the stored bytes are deleted and the row removed;
//! an upload cut off by a crash stays `pending` and the cleanup job removes
//! it.

use axum::body::{Body, BodyDataStream};
use futures::TryStreamExt;
use http::{HeaderMap, StatusCode, header};
use object_store::{ObjectStoreExt, WriteMultipart};
use sea_orm::ConnectionTrait;
use sen_core::files::{FilePurpose, IMAGE_TYPES};
use sen_core::jobs::NewJob;
use sen_core::{AppContext, AppError, AppResult};
use sha2::{Digest, Sha256};

use crate::FilesState;
use crate::names::{SNIFF_BYTES, sanitize, sniff};
use crate::records::{FileRow, original_key};

/// Multipart framing and small fields allowed beyond the file itself.
const OVERHEAD: u64 = 64 * 1024;

/// 413 `file_too_large`.
pub fn too_large(max: u64) -> AppError {
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large")
        .with_detail(format!("The file is larger than {max} bytes."))
}

fn malformed(detail: impl Into<String>) -> AppError {
    AppError::bad_request("malformed_multipart", detail)
}

/// Receives the `file` part of a multipart body for `purpose`, owned by
/// `owner`; answers the stored, `ready` row. A refusal reads out a bounded
/// rest of the body (so the client gets to read it, see [`crate::linger`])
/// and closes the connection: the rest of a body we stopped reading must
/// not be taken for the next request.
pub async fn receive(
    ctx: &AppContext,
    state: &FilesState,
    owner: &str,
    purpose: &FilePurpose,
    headers: &HeaderMap,
    body: Body,
) -> AppResult<FileRow> {
    let mut stream = body.into_data_stream();
    match receive_inner(ctx, state, owner, purpose, headers, &mut stream).await {
        Ok(row) => Ok(row),
        Err(e) => {
            sen_core::linger::linger(headers, &mut stream).await;
            Err(e.with_header(header::CONNECTION, http::HeaderValue::from_static("close")))
        }
    }
}

async fn receive_inner(
    ctx: &AppContext,
    state: &FilesState,
    owner: &str,
    purpose: &FilePurpose,
    headers: &HeaderMap,
    stream: &mut BodyDataStream,
) -> AppResult<FileRow> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(ct).map_err(|_| {
        AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            .with_detail("Send the file as multipart/form-data in a part named `file`.")
    })?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > purpose.max_bytes + OVERHEAD) {
        return Err(too_large(purpose.max_bytes));
    }
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(purpose.max_bytes + OVERHEAD)
            .per_field(purpose.max_bytes + 1),
    );
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(AppError::validation(vec![sen_core::FieldError::new(
                    "file",
                    "required",
                    "Send the file in a part named `file`.",
                )]));
            }
            Err(e) => return Err(multipart_error(e, purpose.max_bytes)),
        };
        if field.name() != Some("file") {
            continue; // other parts are drained by the next `next_field`
        }
        let name = sanitize(field.file_name().unwrap_or("file"));
        return store_field(ctx, state, owner, purpose, name, field).await;
    }
}

fn multipart_error(e: multer::Error, max: u64) -> AppError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(max)
        }
        other => malformed(format!("The multipart body is malformed: {other}")),
    }
}

async fn store_field(
    ctx: &AppContext,
    state: &FilesState,
    owner: &str,
    purpose: &FilePurpose,
    name: String,
    mut field: multer::Field<'_>,
) -> AppResult<FileRow> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = sen_core::clock::now().timestamp_millis();
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO sen_files (id, owner_id, purpose, name, content_type, size, sha256, state, public, created_at)
             VALUES (?, ?, ?, ?, 'application/octet-stream', 0, '', 'pending', ?, ?)",
            [
                id.clone().into(),
                owner.into(),
                purpose.name.into(),
                name.clone().into(),
                purpose.public.into(),
                now.into(),
            ],
        ))
        .await?;
    let key = original_key(&id);
    let result = stream_to_store(state, purpose, &key, &mut field).await;
    let (content_type, size, sha) = match result {
        Ok(v) => v,
        Err(e) => {
            discard(ctx, state, &id).await;
            return Err(e);
        }
    };
    let row = FileRow {
        id: id.clone(),
        owner_id: owner.to_string(),
        purpose: purpose.name.to_string(),
        name,
        content_type: content_type.to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        sha256: sha,
        state: "pending".into(),
        public: purpose.public,
        created_at: now,
        thumbnails: Vec::new(),
        error: None,
    };
    finalize(ctx, state, purpose, row).await
}

/// The common end of every upload, once the bytes are stored: the checks
/// that need them, then `ready` (and the thumbnail job) in one
/// transaction. A refusal deletes the bytes and the row.
pub async fn finalize(
    ctx: &AppContext,
    state: &FilesState,
    purpose: &FilePurpose,
    mut row: FileRow,
) -> AppResult<FileRow> {
    if let Err(e) = check_stored(ctx, state, &row).await {
        discard(ctx, state, &row.id).await;
        return Err(e);
    }
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let updated = tx
        .execute_raw(db.statement(
            "UPDATE sen_files SET content_type = ?, size = ?, sha256 = ?, state = 'ready' WHERE id = ? AND state = 'pending'",
            [
                row.content_type.clone().into(),
                row.size.into(),
                row.sha256.clone().into(),
                row.id.clone().into(),
            ],
        ))
        .await?
        .rows_affected();
    if updated != 1 {
        return Err(AppError::conflict(
            "upload_not_pending",
            "The upload was already completed or removed.",
        ));
    }
    if purpose.thumbnails && IMAGE_TYPES.contains(&row.content_type.as_str()) {
        let job = NewJob::of(&crate::thumbnails::MakeThumbnails { id: row.id.clone() })
            .map_err(AppError::internal)?;
        ctx.jobs().enqueue(&tx, job).await?;
    }
    tx.commit().await?;
    row.state = "ready".into();
    metrics::counter!("files_uploaded_total", "purpose" => purpose.name).increment(1);
    metrics::counter!("files_uploaded_bytes_total").increment(u64::try_from(row.size).unwrap_or(0));
    Ok(row)
}

/// Streams the field into storage; answers (type, size, sha256 hex).
async fn stream_to_store(
    state: &FilesState,
    purpose: &FilePurpose,
    key: &object_store::path::Path,
    field: &mut multer::Field<'_>,
) -> AppResult<(&'static str, u64, String)> {
    let max = purpose.max_bytes;
    let mut head: Vec<u8> = Vec::new();
    let mut pending: Option<bytes::Bytes> = None;
    // The first bytes decide the type before anything is stored.
    while head.len() < SNIFF_BYTES {
        match field.chunk().await {
            Ok(Some(c)) => {
                let take = (SNIFF_BYTES - head.len()).min(c.len());
                head.extend_from_slice(&c[..take]);
                if take < c.len() {
                    pending = Some(c.slice(take..));
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, max)),
        }
    }
    if head.is_empty() {
        return Err(AppError::validation(vec![sen_core::FieldError::new(
            "file",
            "empty",
            "The file is empty.",
        )]));
    }
    let content_type = sniff(&head);
    if !purpose.allowed_types.is_empty() && !purpose.allowed_types.contains(&content_type) {
        return Err(
            AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type").with_detail(
                format!(
                    "This file is {content_type}; {} accepts {}.",
                    purpose.name,
                    purpose.allowed_types.join(", ")
                ),
            ),
        );
    }
    let upload = state
        .store
        .put_multipart(key)
        .await
        .map_err(|e| AppError::unavailable("file storage", e))?;
    let mut writer = WriteMultipart::new(upload);
    let mut hasher = Sha256::new();
    let mut size = head.len() as u64;
    hasher.update(&head);
    writer.write(&head);
    let outcome: AppResult<()> = async {
        if let Some(c) = pending.take() {
            size += c.len() as u64;
            if size > max {
                return Err(too_large(max));
            }
            hasher.update(&c);
            writer.put(c);
        }
        loop {
            let chunk = field.chunk().await.map_err(|e| multipart_error(e, max))?;
            let Some(c) = chunk else { break };
            size += c.len() as u64;
            if size > max {
                return Err(too_large(max));
            }
            hasher.update(&c);
            // Bounded memory: wait while earlier parts are still uploading.
            writer
                .wait_for_capacity(2)
                .await
                .map_err(|e| AppError::unavailable("file storage", e))?;
            writer.put(c);
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|e| AppError::unavailable("file storage", e))?;
            Ok((content_type, size, hex::encode(hasher.finalize())))
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// Checks that need the stored bytes: the pixel limit of images, then the
/// scan hook.
pub(crate) async fn check_stored(
    ctx: &AppContext,
    state: &FilesState,
    row: &FileRow,
) -> AppResult<()> {
    if IMAGE_TYPES.contains(&row.content_type.as_str()) {
        let (w, h) = crate::thumbnails::dimensions(state, row).await?;
        if u64::from(w) * u64::from(h) > ctx.config().files_max_pixels {
            return Err(
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large").with_detail(
                    format!(
                        "The image is {w}×{h} pixels; at most {} pixels are accepted.",
                        ctx.config().files_max_pixels
                    ),
                ),
            );
        }
    }
    state
        .scanner
        .scan(ctx, &state.store, row)
        .await
        .map_err(|why| {
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "file_rejected").with_detail(why)
        })
}

/// Removes a rejected upload's bytes and row (best effort: the cleanup job
/// retries whatever stays `pending`).
pub async fn discard(ctx: &AppContext, state: &FilesState, id: &str) {
    let _ = state.store.delete(&original_key(id)).await;
    let db = ctx.db();
    let _ = db
        .orm()
        .execute_raw(db.statement(
            "DELETE FROM sen_files WHERE id = ? AND state = 'pending'",
            [id.into()],
        ))
        .await;
}

/// Deletes every stored object of file `id` (original and thumbnails).
pub async fn delete_objects(state: &FilesState, id: &str) -> Result<(), object_store::Error> {
    let prefix = object_store::path::Path::from(id);
    let keys: Vec<_> = state
        .store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    for k in keys {
        match state.store.delete(&k).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
