//! Work that must not stop half-way when its caller goes away.
//!
//! A request's future is dropped when its client disconnects or a timeout
//! fires. For a write transaction that would leave the work stopped at
//! any await point: on SQLite with the transaction, and the database's
//! write lock, still held. Spawning the work as a task avoids that but
//! costs every call a task and a hand-off to it and back, even though
//! callers almost never go away. [`finish`]
//! instead runs the work inline in the caller's task and spawns only what
//! is left of it, and only if the caller is dropped before it is done.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `work` in the calling task; if that task drops the returned future
/// before `work` finishes, the rest of `work` is spawned on the current
/// Tokio runtime and runs to its end, its result discarded. Outside a
/// runtime (only while one shuts down) the rest is dropped, as a spawned
/// task would be.
pub fn finish<F>(work: F) -> Finish<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Finish {
        work: Some(Box::pin(work)),
    }
}

/// The future [`finish`] returns.
pub struct Finish<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// `None` once `work` has finished.
    work: Option<Pin<Box<F>>>,
}

impl<F> Future for Finish<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Polled again after it finished: a caller bug; it never wakes.
        let Some(work) = self.work.as_mut() else {
            return Poll::Pending;
        };
        let out = work.as_mut().poll(cx);
        if out.is_ready() {
            self.work = None;
        }
        out
    }
}

impl<F> Drop for Finish<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn runs_inline_and_answers() {
        let steps = Arc::new(AtomicUsize::new(0));
        let counted = steps.clone();
        let out = finish(async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            counted.fetch_add(1, Ordering::SeqCst);
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(steps.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn dropped_half_way_the_rest_still_runs() {
        let gate = Arc::new(Notify::new());
        let done = Arc::new(Notify::new());
        let steps = Arc::new(AtomicUsize::new(0));
        let mut work = Box::pin(finish({
            let (gate, done, steps) = (gate.clone(), done.clone(), steps.clone());
            async move {
                steps.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                steps.fetch_add(1, Ordering::SeqCst);
                done.notify_one();
            }
        }));
        // First poll runs up to the gate, in this task.
        assert!(futures::poll!(work.as_mut()).is_pending());
        assert_eq!(steps.load(Ordering::SeqCst), 1);
        drop(work);
        gate.notify_one();
        tokio::time::timeout(std::time::Duration::from_secs(5), done.notified())
            .await
            .expect("the dropped work never finished");
        assert_eq!(steps.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn finished_work_is_not_run_again_on_drop() {
        let steps = Arc::new(AtomicUsize::new(0));
        let counted = steps.clone();
        let mut work = Box::pin(finish(async move {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(futures::poll!(work.as_mut()).is_ready());
        drop(work);
        tokio::task::yield_now().await;
        assert_eq!(steps.load(Ordering::SeqCst), 1);
    }
}
