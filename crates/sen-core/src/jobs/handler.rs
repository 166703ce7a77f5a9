//! What an app declares to run background work: a `Job` type (its kind,
//! options and `run`), registered as a type-erased `JobHandler`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::AppContext;

/// How long to wait before attempt `n + 1` after attempt `n` failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// `base * 2^(attempt-1)`, capped at `max`, with ±25 % jitter.
    Exponential {
        /// Delay after the first failure.
        base: Duration,
        /// Largest delay.
        max: Duration,
    },
    /// The same delay every time (no jitter).
    Fixed(Duration),
}

impl Backoff {
    /// The delay after `attempt` (1-based) failed; `jitter` in `[0, 1)`.
    pub fn delay(&self, attempt: i32, jitter: f64) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { base, max } => {
                let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
                let raw = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
                raw.mul_f64(0.75 + jitter.clamp(0.0, 1.0) * 0.5)
            }
        }
    }
}

/// Per-kind settings; `Job::options` overrides the defaults.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Queue name; workers are configured per queue.
    pub queue: &'static str,
    /// Lower runs first.
    pub priority: i32,
    /// Attempts before the job is dead.
    pub max_attempts: i32,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Delay between attempts.
    pub backoff: Backoff,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            queue: "default",
            priority: 0,
            max_attempts: 20,
            timeout: Duration::from_secs(60),
            backoff: Backoff::Exponential {
                base: Duration::from_secs(1),
                max: Duration::from_secs(3600),
            },
        }
    }
}

/// Why an attempt failed.
#[derive(Debug)]
pub struct JobError {
    message: String,
    retry: bool,
    snooze: Option<Duration>,
}

impl JobError {
    /// A failure worth retrying (the default).
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self {
            message: e.to_string(),
            retry: true,
            snooze: None,
        }
    }

    /// Not a failure: run this job again after `delay` without counting
    /// the attempt (a rate limit said "not yet").
    pub fn snooze(delay: Duration, why: impl std::fmt::Display) -> Self {
        Self {
            message: why.to_string(),
            retry: true,
            snooze: Some(delay),
        }
    }

    /// The delay asked for by [`JobError::snooze`].
    pub fn snoozed_for(&self) -> Option<Duration> {
        self.snooze
    }

    /// A failure that no retry can fix: the job goes straight to `dead`.
    pub fn discard(e: impl std::fmt::Display) -> Self {
        Self {
            message: e.to_string(),
            retry: false,
            snooze: None,
        }
    }

    /// What went wrong (stored with the attempt).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retry
    }
}

impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(e: E) -> Self {
        Self::retry(format!("{:#}", e.into()))
    }
}

/// What a running job knows about itself.
#[derive(Clone)]
pub struct JobContext {
    /// The instance's shared state.
    pub app: AppContext,
    /// The job id; with `attempt`, an idempotency key for effects.
    pub id: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The job kind.
    pub kind: String,
}

/// A typed background job. Arguments are the value itself (serde).
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored with each job (`mail.send`, `report.refresh`).
    const KIND: &'static str;

    /// Settings for this kind.
    fn options() -> JobOptions {
        JobOptions::default()
    }

    /// Does the work. Must be idempotent: a crash after the effect and
    /// before completion runs it again (use `ctx.id` as an idempotency key).
    fn run(self, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

type RunFn = dyn Fn(JobContext, &str) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>
    + Send
    + Sync;

/// A job kind as the worker runtime sees it: name, options, and how to run
/// serialised arguments.
#[derive(Clone)]
pub struct JobHandler {
    kind: &'static str,
    options: JobOptions,
    run: Arc<RunFn>,
}

impl JobHandler {
    /// The handler of `J`.
    pub fn of<J: Job>() -> Self {
        Self {
            kind: J::KIND,
            options: J::options(),
            run: Arc::new(|ctx, args| match serde_json::from_str::<J>(args) {
                Ok(job) => Box::pin(job.run(ctx)),
                Err(e) => Box::pin(std::future::ready(Err(JobError::discard(format!(
                    "arguments do not decode: {e}"
                ))))),
            }),
        }
    }

    /// The kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The options.
    pub fn options(&self) -> &JobOptions {
        &self.options
    }

    /// Runs one attempt with `args` (JSON).
    pub fn run(
        &self,
        ctx: JobContext,
        args: &str,
    ) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>> {
        (self.run)(ctx, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_grows_caps_and_jitters() {
        let b = Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(4));
        assert_eq!(b.delay(30, 0.5), Duration::from_secs(10));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(750));
        assert!(b.delay(1, 0.999) < Duration::from_millis(1250));
        assert_eq!(
            Backoff::Fixed(Duration::from_millis(5)).delay(9, 0.3),
            Duration::from_millis(5)
        );
    }
}
