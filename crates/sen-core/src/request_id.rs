//! The id of the request being served, visible to any code running inside
//! the request's task (error bodies quote it; the log format adds it to each line).
//!
//! The id is held inline in a fixed buffer rather than a `String`: it is
//! made for every request, and the HTTP benchmark counts each allocation.

use std::fmt;

/// The longest id accepted from a client.
pub const MAX_LEN: usize = 128;

/// A request id: a client's plain id (see [`is_acceptable`]) or a UUIDv7,
/// stored without allocating.
#[derive(Clone, Copy)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl RequestId {
    /// `id` when it is acceptable from a client, else `None`.
    pub fn parse(id: &str) -> Option<Self> {
        if !is_acceptable(id) {
            return None;
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Some(Self {
            len: u8::try_from(id.len()).ok()?,
            bytes,
        })
    }

    /// A fresh UUIDv7 (time-ordered, so ids sort by arrival).
    pub fn generate() -> Self {
        let mut bytes = [0; MAX_LEN];
        // A context per thread rather than `Uuid::now_v7()`'s one global
        // mutex, which every core's requests would contend on: ids stay
        // ordered per thread and unique (the counter is seeded randomly
        // each millisecond), which is all a request id needs.
        thread_local! {
            static CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
        }
        let uuid = CONTEXT.with(|c| uuid::Uuid::new_v7(uuid::Timestamp::now(c)));
        let len = uuid
            .hyphenated()
            .encode_lower(&mut bytes[..uuid::fmt::Hyphenated::LENGTH])
            .len();
        Self {
            // A hyphenated UUID is 36 bytes.
            len: len as u8,
            bytes,
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever filled from a `&str` or a UUID's ASCII form.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: RequestId, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// `fut` with `id` as its current request id, as a nameable future (for
/// hand-written services).
pub fn scoped<F: std::future::Future>(
    id: RequestId,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<RequestId, F> {
    REQUEST_ID.scope(id, fut)
}

/// Runs `f` with `id` as the current request id (for a log line written
/// after the request's own future has finished).
pub fn sync_scope<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// The current request id, when called inside a request.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.as_str().to_owned()).ok()
}

/// Calls `f` with the current request id (without copying it out), or
/// with `None` outside a request.
pub fn with_current<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    match REQUEST_ID.try_with(|id| *id) {
        Ok(id) => f(Some(id.as_str())),
        Err(_) => f(None),
    }
}

/// Accepts a client-supplied id only when it is short and plain (so it can be
/// logged and echoed safely); otherwise the server makes its own.
pub fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids_only() {
        assert!(is_acceptable("0192f3a0-7c1e-7b9e-8d1a-3f0c2b1a9e77"));
        assert!(is_acceptable("abc_DEF.1:2"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable("line\nbreak"));
        assert!(!is_acceptable(&"x".repeat(129)));
    }

    #[test]
    fn ids_are_kept_or_generated() {
        let id = RequestId::parse("abc_DEF.1:2").unwrap();
        assert_eq!(id.as_str(), "abc_DEF.1:2");
        assert_eq!(
            RequestId::parse(&"x".repeat(128)).unwrap().as_str().len(),
            128
        );
        assert!(RequestId::parse("has space").is_none());
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_eq!(a.as_str().len(), 36);
        assert!(uuid::Uuid::parse_str(a.as_str()).is_ok(), "{a}");
        assert!(a.as_str() < b.as_str(), "time-ordered: {a} then {b}");
        assert_eq!(with_current(|id| id.map(str::to_owned)), None);
        let seen = sync_scope(a, || with_current(|id| id.map(str::to_owned)));
        assert_eq!(seen.as_deref(), Some(a.as_str()));
    }

    #[tokio::test]
    async fn scope_makes_id_current() {
        assert_eq!(current(), None);
        let seen = scope(RequestId::parse("rid-1").unwrap(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("rid-1"));
    }
}
