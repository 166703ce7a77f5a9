//! `GET /files/{id}/{name}`: the bytes of a file (or `?thumb=128` for a
//! thumbnail) streamed from storage, to whoever may read it (others get
//! 404, as if it did not exist). Strong ETags from the content hash with
//! `If-None-Match` → 304; one `Range` → 206, unsatisfiable → 416; public
//! files are cacheable for a year (their bytes never change under an id),
//! private ones are `private, no-store`. Only images are shown inline:
//! anything else is an attachment, so an uploaded page can never run as
//! ours.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use object_store::{GetOptions, GetRange};
use sen_core::extract::{Path, Query};
use sen_core::files::IMAGE_TYPES;
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::FilesState;
use crate::records::{FileRow, encode_segment, thumb_key};

/// Which variant to send.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DownloadQuery {
    /// A thumbnail size instead of the original.
    pub thumb: Option<u32>,
}

/// A single byte range, resolved against a length.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: answer the whole body (allowed)
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end: u64 = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse().ok()?
            };
            if start >= len || end < start {
                return Some(Err(()));
            }
            (start, end.min(len - 1))
        }
        (true, true) => return None,
    };
    Some(Ok(r))
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Downloads a file or one of its thumbnails.
#[utoipa::path(get, path = "/files/{id}/{name}", tag = "files",
    params(("id" = String, Path, description = "File id"), ("name" = String, Path, description = "Any name (the stored one is used)"), DownloadQuery),
    responses(
        (status = 200, description = "The bytes"),
        (status = 206, description = "The requested range"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such file, or not yours", body = sen_core::error::Problem, content_type = "application/problem+json"),
        (status = 416, description = "Range not satisfiable"),
))]
pub async fn download(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    Path((id, _name)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let row = FileRow::load(&ctx, &id)
        .await?
        .filter(|r| r.readable_by(who.as_ref()))
        .ok_or_else(AppError::not_found)?;
    let state = FilesState::of(&ctx)?;
    let (key, len, content_type, etag) = match q.thumb {
        None => (
            row.original_key(),
            u64::try_from(row.size).unwrap_or(0),
            row.content_type.clone(),
            format!("\"{}\"", row.sha256),
        ),
        Some(size) => {
            let t = row
                .thumbnails
                .iter()
                .find(|t| t.size == size)
                .ok_or_else(AppError::not_found)?;
            (
                thumb_key(&row.id, size, &t.content_type),
                t.bytes,
                t.content_type.clone(),
                format!("\"{}-{size}\"", row.sha256),
            )
        }
    };
    let mut out = HeaderMap::new();
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    out.insert(header::ETAG, hv(&etag));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if row.public {
            "public, max-age=31536000, immutable"
        } else {
            "private, no-store"
        }),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let inline = IMAGE_TYPES.contains(&content_type.as_str());
    out.insert(header::CONTENT_TYPE, hv(&content_type));
    out.insert(
        header::CONTENT_DISPOSITION,
        hv(&format!(
            "{}; filename*=UTF-8''{}",
            if inline { "inline" } else { "attachment" },
            encode_segment(&row.name)
        )),
    );
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, len));
    let (status, get_range) = match range {
        None => (StatusCode::OK, None),
        Some(Err(())) => {
            out.insert(header::CONTENT_RANGE, hv(&format!("bytes */{len}")));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response());
        }
        Some(Ok((a, b))) => {
            out.insert(header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{len}")));
            (StatusCode::PARTIAL_CONTENT, Some((a, b)))
        }
    };
    let opts = GetOptions {
        range: get_range.map(|(a, b)| GetRange::Bounded(a..b + 1)),
        ..GetOptions::default()
    };
    let got = state
        .store
        .get_opts(&key, opts)
        .await
        .map_err(|e| AppError::unavailable("file storage", e))?;
    let body_len = get_range.map(|(a, b)| b - a + 1).unwrap_or(len);
    out.insert(header::CONTENT_LENGTH, hv(&body_len.to_string()));
    let stream = got.into_stream().map(|c| c.map_err(std::io::Error::other));
    Ok((status, out, Body::from_stream(stream)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
