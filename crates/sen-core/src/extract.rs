//! Request extractors whose rejections are problem+json: `Json<T>` (415 on a
//! wrong content type, 413 on an oversized body, 400 on malformed JSON, 422
//! with the field path on a body of the wrong shape) and `Valid<T>` (422 with
//! one entry per field that fails its `garde` rules).

use axum::body::{Bytes, HttpBody as _};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::AppContext;
use crate::error::{AppError, FieldError};

/// A JSON body in, or a JSON response out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    AppContext: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !is_json(req.headers()) {
            return Err(refuse_unread(
                req,
                AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                    .with_detail("Send the body as application/json."),
            )
            .await);
        }
        let limit = AppContext::from_ref(state).config().body_limit_bytes;
        let bytes = read_limited(req, limit).await?;
        parse(&bytes).map(Json)
    }
}

fn too_large() -> AppError {
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        .with_detail("The request body is larger than this server accepts.")
}

/// Answers `error` to a request whose body is not read: the rest of the
/// body is read out first (bounded, see `linger`) and the connection is
/// closed, so a client still sending gets the answer instead of a reset.
async fn refuse_unread(req: Request, error: AppError) -> AppError {
    let declared_empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    if declared_empty || req.body().is_end_stream() {
        return error;
    }
    let (parts, body) = req.into_parts();
    crate::linger::linger(&parts.headers, &mut body.into_data_stream()).await;
    error.with_header(header::CONNECTION, HeaderValue::from_static("close"))
}

/// The body, at most `limit` bytes. Over the limit (declared or sent) the
/// answer is 413 `payload_too_large`, given only after the rest of the
/// body was read out (see [`refuse_unread`]): axum's own limit answers
/// before reading, and a client still writing a large body then sees a
/// reset instead of the 413.
async fn read_limited(req: Request, limit: usize) -> Result<Bytes, AppError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(refuse_unread(req, too_large()).await);
    }
    let mut stream = req.into_body().into_data_stream();
    let unreadable =
        || AppError::bad_request("unreadable_body", "The request body could not be read.");
    // Most bodies arrive as one chunk: that one is handed on without a copy.
    let mut single: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0;
    while let Some(chunk) = stream.next().await.transpose().map_err(|_| unreadable())? {
        len += chunk.len();
        if len > limit {
            // The body is being sent (any `100 Continue` went out when it
            // was first read): read out the rest before answering.
            crate::linger::discard(&mut stream).await;
            return Err(
                too_large().with_header(header::CONNECTION, HeaderValue::from_static("close"))
            );
        }
        match single.take() {
            None if buf.is_empty() => single = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    buf.reserve(declared.map_or(0, |n| n as usize).max(len));
                    buf.extend_from_slice(&earlier);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(single.unwrap_or_else(|| buf.freeze()))
}

/// Parses a JSON body into `T`, classifying failures as 400 or 422.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                AppError::validation(vec![field_error(&path, &inner)])
            }
            _ => AppError::bad_request(
                "malformed_json",
                format!("The body is not valid JSON: {inner}"),
            ),
        }
    })?;
    de.end().map_err(|e| {
        AppError::bad_request("malformed_json", format!("The body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

fn field_error(path: &str, e: &serde_json::Error) -> FieldError {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    let join = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = || msg.split('`').nth(1).unwrap_or_default().to_string();
    let (field, code) = if msg.starts_with("missing field") {
        (join(&quoted()), "required")
    } else if msg.starts_with("unknown field") {
        (path.to_string(), "unknown_field")
    } else if msg.starts_with("invalid type") {
        (path.to_string(), "invalid_type")
    } else if msg.starts_with("invalid length") {
        (path.to_string(), "invalid_length")
    } else if msg.starts_with("unknown variant") || msg.starts_with("invalid value") {
        (path.to_string(), "invalid_value")
    } else {
        (path.to_string(), "invalid")
    };
    let field = if field == "." || field.is_empty() {
        "body".to_string()
    } else {
        field
    };
    FieldError::new(field, code, msg)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query string parameters; a malformed query is 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let field = e.path().to_string();
                AppError::bad_request(
                    "invalid_query",
                    format!("The query string is invalid: {}", e.inner()),
                )
                .with_extension("field", serde_json::Value::String(field))
            })
    }
}

/// Path parameters; a segment of the wrong shape is 400 `invalid_path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| AppError::bad_request("invalid_path", e.body_text()))
    }
}

/// A JSON body that must also pass its `garde` validation rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Valid<T>(pub T);

impl<S, T> FromRequest<S> for Valid<T>
where
    S: Send + Sync,
    AppContext: FromRef<S>,
    T: DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        validate(&value)?;
        Ok(Valid(value))
    }
}

/// Runs `garde` rules, turning the report into 422 field errors.
pub fn validate<T: garde::Validate>(value: &T) -> Result<(), AppError>
where
    T::Context: Default,
{
    value.validate().map_err(|report| {
        AppError::validation(
            report
                .iter()
                .map(|(path, err)| {
                    let field = path.to_string();
                    FieldError::new(
                        if field.is_empty() {
                            "body".into()
                        } else {
                            field
                        },
                        "invalid",
                        err.message().to_string(),
                    )
                })
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        qty: u32,
        tags: Vec<String>,
    }

    #[test]
    fn classifies_body_errors() {
        let e = parse::<Item>(b"{\"name\":").unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (400, "malformed_json"));
        let e = parse::<Item>(b"{\"name\":\"a\",\"qty\":1,\"tags\":[]} trailing").unwrap_err();
        assert_eq!(e.code(), "malformed_json");
        let e = parse::<Item>(b"{\"name\":\"a\",\"qty\":\"many\",\"tags\":[]}").unwrap_err();
        assert_eq!(
            (
                e.status().as_u16(),
                e.field_errors()[0].field.as_str(),
                e.field_errors()[0].code.as_str()
            ),
            (422, "qty", "invalid_type")
        );
        let e = parse::<Item>(b"{\"name\":\"a\",\"tags\":[]}").unwrap_err();
        assert_eq!(
            (
                e.field_errors()[0].field.as_str(),
                e.field_errors()[0].code.as_str()
            ),
            ("qty", "required")
        );
        let e = parse::<Item>(b"{\"name\":\"a\",\"qty\":1,\"tags\":[1]}").unwrap_err();
        assert_eq!(e.field_errors()[0].field, "tags[0]");
        let e =
            parse::<Item>(b"{\"name\":\"a\",\"qty\":1,\"tags\":[],\"admin\":true}").unwrap_err();
        assert_eq!(
            (
                e.field_errors()[0].field.as_str(),
                e.field_errors()[0].code.as_str()
            ),
            ("admin", "unknown_field")
        );
    }
}
