//! The id of the request being served, visible to any code running inside
//! the request's task (error bodies quote it; the log format adds it to each line).

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// `fut` with `id` as its current request id, as a nameable future (for
/// hand-written services).
pub fn scoped<F: std::future::Future>(
    id: String,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<String, F> {
    REQUEST_ID.scope(id, fut)
}

/// Runs `f` with `id` as the current request id (for a log line written
/// after the request's own future has finished).
pub fn sync_scope<R>(id: String, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// The current request id, when called inside a request.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Accepts a client-supplied id only when it is short and plain (so it can be
/// logged and echoed safely); otherwise the server makes its own.
pub fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
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

    #[tokio::test]
    async fn scope_makes_id_current() {
        assert_eq!(current(), None);
        let seen = scope("rid-1".into(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("rid-1"));
    }
}
