//! Direct uploads with a presigned URL: `POST /api/v1/files/uploads`
//! declares name, type and size and answers the URL (see `presign`); the
//! client PUTs the bytes to it (S3 itself, or `PUT /files/uploads/{id}` on
//! local storage); `POST /api/v1/files/{id}/complete` then checks what
//! arrived — the size, the type sniffed from the bytes against the one
//! declared and the purpose, the pixel limit, the scan hook — before the
//! file becomes `ready`. Uploads never completed are removed by the
//! cleanup job after an hour.

use std::collections::BTreeMap;

use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use object_store::{ObjectStoreExt, WriteMultipart};
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::FilesState;
use crate::names::{SNIFF_BYTES, sanitize, sniff};
use crate::presign::local_verify;
use crate::records::FileRow;
use crate::routes::FileView;

type Problem = sen_core::error::Problem;

/// `POST /api/v1/files/uploads` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The file's name (sanitised).
    pub name: String,
    /// Its type; the bytes must be of this type.
    pub content_type: String,
    /// Its exact size in bytes.
    pub size: u64,
    /// Upload purpose (default `attachment`).
    #[serde(default)]
    pub purpose: Option<String>,
}

/// Where and how to upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicket {
    /// The file's id (complete it with `POST /api/v1/files/{id}/complete`).
    pub file_id: String,
    /// Where to send the bytes.
    pub upload_url: String,
    /// Always `PUT`.
    pub method: String,
    /// Headers the PUT must carry exactly (they are signed).
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: String,
}

/// Asks for a presigned upload URL bound to a size and a type.
#[utoipa::path(post, path = "/api/v1/files/uploads", tag = "files", request_body = NewUpload, responses(
    (status = 201, description = "Upload here", body = UploadTicket),
    (status = 413, description = "`file_too_large`", body = Problem, content_type = "application/problem+json"),
    (status = 415, description = "`unsupported_file_type`", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Bad name, size or purpose", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "`presign_unavailable`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_upload(
    State(ctx): State<AppContext>,
    me: Principal,
    Json(body): Json<NewUpload>,
) -> AppResult<(StatusCode, Json<UploadTicket>)> {
    let state = FilesState::of(&ctx)?;
    let purpose_name = body.purpose.unwrap_or_else(|| "attachment".into());
    let purpose = state.purpose(&purpose_name).ok_or_else(|| {
        AppError::validation(vec![FieldError::new(
            "purpose",
            "invalid_value",
            format!(
                "unknown purpose; one of {}",
                state.purpose_names().join(", ")
            ),
        )])
    })?;
    let ct = body.content_type.trim().to_ascii_lowercase();
    let mut errors = Vec::new();
    if body.size == 0 {
        errors.push(FieldError::new("size", "too_small", "The file is empty."));
    }
    if ct.is_empty() || ct.len() > 100 || !ct.contains('/') || ct.contains([';', ' ', '\r', '\n']) {
        errors.push(FieldError::new(
            "content_type",
            "invalid",
            "A type such as image/png.",
        ));
    }
    if body.name.chars().count() > 255 {
        errors.push(FieldError::new(
            "name",
            "too_long",
            "At most 255 characters.",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    if body.size > purpose.max_bytes {
        return Err(crate::upload::too_large(purpose.max_bytes));
    }
    if !purpose.allowed_types.is_empty() && !purpose.allowed_types.contains(&ct.as_str()) {
        return Err(
            AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type").with_detail(
                format!(
                    "{} accepts {}.",
                    purpose.name,
                    purpose.allowed_types.join(", ")
                ),
            ),
        );
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = sen_core::clock::now();
    let signed = state
        .signer
        .sign(
            &id,
            crate::records::original_key(&id).as_ref(),
            body.size,
            &ct,
            now,
        )
        .map_err(|why| {
            AppError::new(StatusCode::SERVICE_UNAVAILABLE, "presign_unavailable").with_detail(why)
        })?;
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO sen_files (id, owner_id, purpose, name, content_type, size, sha256, state, public, created_at)
             VALUES (?, ?, ?, ?, ?, ?, '', 'pending', ?, ?)",
            [
                id.clone().into(),
                me.user_id.clone().into(),
                purpose.name.into(),
                sanitize(&body.name).into(),
                ct.into(),
                i64::try_from(body.size).unwrap_or(i64::MAX).into(),
                purpose.public.into(),
                now.timestamp_millis().into(),
            ],
        ))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadTicket {
            file_id: id,
            upload_url: signed.url,
            method: "PUT".into(),
            headers: signed
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            expires_at: signed
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    ))
}

/// The signature of a local upload URL.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LocalSignature {
    /// Unix time the URL stops working.
    pub expires: i64,
    /// HMAC of id, size, type and expiry.
    pub sig: String,
}

fn refused(detail: &str) -> AppError {
    AppError::new(StatusCode::FORBIDDEN, "signature_invalid")
        .with_detail(detail.to_string())
        .with_header(header::CONNECTION, http::HeaderValue::from_static("close"))
}

/// Receives the bytes of a presigned upload on local storage.
#[utoipa::path(put, path = "/files/uploads/{id}", tag = "files",
    params(("id" = String, Path, description = "File id"), LocalSignature),
    request_body(content_type = "application/octet-stream", description = "The bytes"),
    responses(
        (status = 200, description = "Stored; now complete the upload"),
        (status = 400, description = "`size_mismatch`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`signature_invalid` (expired, or another size or type)", body = Problem, content_type = "application/problem+json"),
))]
pub async fn put_local(
    State(ctx): State<AppContext>,
    Path(id): Path<String>,
    Query(q): Query<LocalSignature>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<StatusCode> {
    let mut stream = body.into_data_stream();
    let outcome = receive_local(&ctx, &id, &q, &headers, &mut stream).await;
    if outcome.is_err() {
        sen_core::linger::linger(&headers, &mut stream).await;
    }
    outcome
}

async fn receive_local(
    ctx: &AppContext,
    id: &str,
    q: &LocalSignature,
    headers: &HeaderMap,
    stream: &mut BodyDataStream,
) -> AppResult<StatusCode> {
    let state = FilesState::of(ctx)?;
    let crate::presign::Signer::Local { key, .. } = &state.signer else {
        return Err(AppError::not_found());
    };
    let row = FileRow::load(ctx, id)
        .await?
        .filter(|r| r.state == "pending")
        .ok_or_else(AppError::not_found)?;
    let size = u64::try_from(row.size).unwrap_or(0);
    if !local_verify(key, id, size, &row.content_type, q.expires, &q.sig) {
        return Err(refused("The upload URL's signature does not match."));
    }
    if sen_core::clock::now().timestamp() > q.expires {
        return Err(refused("The upload URL has expired."));
    }
    let header_is = |name: header::HeaderName, want: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
    };
    if !header_is(header::CONTENT_TYPE, &row.content_type) {
        return Err(refused("Content-Type differs from the one signed."));
    }
    if !header_is(header::CONTENT_LENGTH, &size.to_string()) {
        return Err(refused("Content-Length differs from the size signed."));
    }
    let upload = state
        .store
        .put_multipart(&row.original_key())
        .await
        .map_err(|e| AppError::unavailable("file storage", e))?;
    let mut writer = WriteMultipart::new(upload);
    let mut got: u64 = 0;
    let outcome: AppResult<()> = async {
        while let Some(chunk) = stream.next().await {
            let c = chunk.map_err(|e| AppError::bad_request("body_incomplete", e.to_string()))?;
            got += c.len() as u64;
            if got > size {
                return Err(AppError::bad_request(
                    "size_mismatch",
                    "More bytes than signed.",
                ));
            }
            writer
                .wait_for_capacity(2)
                .await
                .map_err(|e| AppError::unavailable("file storage", e))?;
            writer.put(c);
        }
        if got != size {
            return Err(AppError::bad_request(
                "size_mismatch",
                "Fewer bytes than signed.",
            ));
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
            Ok(StatusCode::OK)
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// Checks a direct upload and makes the file visible.
#[utoipa::path(post, path = "/api/v1/files/{id}/complete", tag = "files",
    params(("id" = String, Path, description = "File id")),
    responses(
        (status = 200, description = "Ready", body = FileView),
        (status = 404, description = "No such upload, or not yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`upload_missing` (nothing was uploaded yet)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_file_type` (the bytes are not the declared type)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`size_mismatch`, `image_too_large`, `file_rejected`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn complete(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<FileView>> {
    let state = FilesState::of(&ctx)?;
    let mut row = FileRow::load(&ctx, &id)
        .await?
        .filter(|r| r.state == "pending" && r.owner_id == me.user_id)
        .ok_or_else(AppError::not_found)?;
    let purpose = state
        .purpose(&row.purpose)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("purpose {} vanished", row.purpose)))?;
    let got = match state.store.get(&row.original_key()).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(AppError::conflict(
                "upload_missing",
                "Nothing was uploaded for this file yet.",
            ));
        }
        Err(e) => return Err(AppError::unavailable("file storage", e)),
    };
    let mut head: Vec<u8> = Vec::new();
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let c = chunk.map_err(|e| AppError::unavailable("file storage", e))?;
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(c.len());
            head.extend_from_slice(&c[..take]);
        }
        size += c.len() as u64;
        hasher.update(&c);
    }
    let reject = |e: AppError| {
        let ctx = ctx.clone();
        let state = state.clone();
        let id = id.clone();
        async move {
            crate::upload::discard(&ctx, &state, &id).await;
            Err::<Json<FileView>, AppError>(e)
        }
    };
    if size != u64::try_from(row.size).unwrap_or(0) {
        return reject(
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "size_mismatch")
                .with_detail(format!("{size} bytes arrived; {} were declared.", row.size)),
        )
        .await;
    }
    let sniffed = sniff(&head);
    if sniffed != row.content_type
        || (!purpose.allowed_types.is_empty() && !purpose.allowed_types.contains(&sniffed))
    {
        return reject(
            AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type").with_detail(
                format!(
                    "The bytes are {sniffed}; {} was declared.",
                    row.content_type
                ),
            ),
        )
        .await;
    }
    row.sha256 = hex::encode(hasher.finalize());
    let row = crate::upload::finalize(&ctx, &state, &purpose, row).await?;
    Ok(Json(FileView::from(&row)))
}
