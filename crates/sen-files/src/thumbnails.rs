//! Image work: measuring an image from its header (the pixel limit that
//! rejects decompression bombs before anything decodes them), and the
//! `files.thumbnails` job that decodes under memory limits and stores one
//! JPEG (or lossless WebP) per configured size beside the original. Thumbnails are re-encoded
//! pixels, so no EXIF or other metadata of the original survives in them.

use std::io::Cursor;
use std::time::Duration;

use http::StatusCode;
use image::{ImageReader, Limits};
use object_store::{GetOptions, GetRange, ObjectStoreExt};
use sea_orm::ConnectionTrait;
use sen_core::jobs::{Backoff, Job, JobContext, JobError, JobOptions};
use sen_core::{AppError, AppResult};
use serde::{Deserialize, Serialize};

use crate::FilesState;
use crate::records::{FileRow, Thumb, thumb_key};

/// Header bytes read to measure an image (JPEG headers follow EXIF).
const HEADER_BYTES: u64 = 256 * 1024;

/// Width and height of a stored image, from its header alone.
pub async fn dimensions(state: &FilesState, row: &FileRow) -> AppResult<(u32, u32)> {
    let end = u64::try_from(row.size).unwrap_or(0).min(HEADER_BYTES);
    let opts = GetOptions {
        range: Some(GetRange::Bounded(0..end)),
        ..GetOptions::default()
    };
    let head = state
        .store
        .get_opts(&row.original_key(), opts)
        .await
        .map_err(|e| AppError::unavailable("file storage", e))?
        .bytes()
        .await
        .map_err(|e| AppError::unavailable("file storage", e))?;
    ImageReader::new(Cursor::new(head))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok())
        .ok_or_else(|| {
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "image_unreadable")
                .with_detail("The image's header cannot be read.")
        })
}

/// Makes the thumbnails of file `id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MakeThumbnails {
    /// The file.
    pub id: String,
}

impl Job for MakeThumbnails {
    const KIND: &'static str = "files.thumbnails";

    fn options() -> JobOptions {
        JobOptions {
            max_attempts: 5,
            timeout: Duration::from_secs(120),
            backoff: Backoff::Exponential {
                base: Duration::from_secs(5),
                max: Duration::from_secs(600),
            },
            ..JobOptions::default()
        }
    }

    async fn run(self, job: JobContext) -> Result<(), JobError> {
        let ctx = &job.app;
        let state = FilesState::of(ctx).map_err(|e| JobError::retry(e.code().to_string()))?;
        let Some(row) = FileRow::load(ctx, &self.id).await? else {
            return Ok(()); // deleted since
        };
        if row.state != "ready" {
            return Ok(());
        }
        let bytes = state.store.get(&row.original_key()).await?.bytes().await?;
        let max_pixels = ctx.config().files_max_pixels;
        let sizes = ctx.config().files_thumbnail_sizes.clone();
        let format = if ctx.config().files_thumbnail_format == "webp" {
            Format::WebP
        } else {
            Format::Jpeg
        };
        // Decoding is CPU work: off the async threads.
        let made = tokio::task::spawn_blocking(move || render(&bytes, max_pixels, &sizes, format))
            .await
            .map_err(JobError::retry)?
            .map_err(JobError::discard)?;
        let mut thumbs = Vec::new();
        for (thumb, jpeg) in made {
            state
                .store
                .put(
                    &thumb_key(&row.id, thumb.size, &thumb.content_type),
                    jpeg.into(),
                )
                .await?;
            thumbs.push(thumb);
        }
        let db = ctx.db();
        let kept = db
            .orm()
            .execute_raw(db.statement(
                "UPDATE sen_files SET thumbnails = ? WHERE id = ? AND state = 'ready'",
                [
                    serde_json::to_string(&thumbs)?.into(),
                    row.id.clone().into(),
                ],
            ))
            .await?
            .rows_affected();
        if kept == 0 {
            // Deleted while we worked: take our thumbnails with it.
            crate::upload::delete_objects(&state, &row.id).await?;
            return Ok(());
        }
        metrics::counter!("files_thumbnails_total").increment(thumbs.len() as u64);
        Ok(())
    }
}

/// What thumbnails are encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG, quality 82.
    Jpeg,
    /// Lossless WebP (the `image` crate encodes WebP losslessly only).
    WebP,
}

/// Decodes `bytes` (refusing more than `max_pixels` or a matching amount
/// of memory) and encodes one thumbnail per size.
pub fn render(
    bytes: &[u8],
    max_pixels: u64,
    sizes: &[u32],
    format: Format,
) -> Result<Vec<(Thumb, Vec<u8>)>, String> {
    let (w, h) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable image: {e}"))?
        .into_dimensions()
        .map_err(|e| format!("unreadable image: {e}"))?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!(
            "image of {w}×{h} pixels is over the limit of {max_pixels}"
        ));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable image: {e}"))?;
    let mut limits = Limits::default();
    let side = u32::try_from(max_pixels.min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("cannot decode: {e}"))?;
    let mut out = Vec::new();
    for &size in sizes {
        let t = img.thumbnail(size, size).into_rgb8();
        let mut buf = Vec::new();
        let content_type = match format {
            Format::Jpeg => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 82)
                    .encode_image(&t)
                    .map_err(|e| format!("cannot encode: {e}"))?;
                "image/jpeg"
            }
            Format::WebP => {
                image::codecs::webp::WebPEncoder::new_lossless(&mut buf)
                    .encode(
                        t.as_raw(),
                        t.width(),
                        t.height(),
                        image::ExtendedColorType::Rgb8,
                    )
                    .map_err(|e| format!("cannot encode: {e}"))?;
                "image/webp"
            }
        };
        out.push((
            Thumb {
                size,
                width: t.width(),
                height: t.height(),
                bytes: buf.len() as u64,
                content_type: content_type.into(),
            },
            buf,
        ));
    }
    Ok(out)
}

/// Removes uploads left `pending` for over an hour (a crash mid-upload)
/// with whatever bytes they stored. Runs every 10 minutes.
#[derive(Debug, Serialize, Deserialize)]
pub struct CleanupPending;

impl Job for CleanupPending {
    const KIND: &'static str = "files.cleanup";

    async fn run(self, job: JobContext) -> Result<(), JobError> {
        let ctx = &job.app;
        let state = FilesState::of(ctx).map_err(|e| JobError::retry(e.code().to_string()))?;
        let cutoff = sen_core::clock::now().timestamp_millis() - 3_600_000;
        let db = ctx.db();
        let rows = db
            .orm()
            .query_all_raw(db.statement(
                "SELECT id FROM sen_files WHERE state = 'pending' AND created_at < ? LIMIT 500",
                [cutoff.into()],
            ))
            .await?;
        for r in rows {
            let id: String = r.try_get("", "id")?;
            crate::upload::delete_objects(&state, &id).await?;
            db.orm()
                .execute_raw(db.statement(
                    "DELETE FROM sen_files WHERE id = ? AND state = 'pending'",
                    [id.into()],
                ))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn thumbnails_fit_the_box_and_bombs_are_refused() {
        let made = render(&png(400, 200), 1_000_000, &[128, 64], Format::Jpeg).unwrap();
        assert_eq!((made[0].0.width, made[0].0.height), (128, 64));
        assert_eq!((made[1].0.width, made[1].0.height), (64, 32));
        assert_eq!(&made[0].1[..3], b"\xff\xd8\xff", "JPEG");
        let webp = render(&png(400, 200), 1_000_000, &[128], Format::WebP).unwrap();
        assert_eq!(&webp[0].1[8..12], b"WEBP");
        assert_eq!(webp[0].0.content_type, "image/webp");
        let back = image::load_from_memory(&webp[0].1).unwrap();
        assert_eq!((back.width(), back.height()), (128, 64));
        let err = render(&png(400, 200), 10_000, &[128], Format::Jpeg).unwrap_err();
        assert!(err.contains("over the limit"), "{err}");
        assert!(render(b"not an image", 1_000, &[128], Format::Jpeg).is_err());
    }
}
