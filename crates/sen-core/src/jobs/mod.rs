//! The job contract: what an app declares (`Job`, `JobHandler`), how code
//! enqueues work inside its own transaction (`Jobs::enqueue`), and the
//! table both sides share. Running jobs (claiming, leases, retries, the
//! dead-letter state, cron, the outbox dispatcher) is `sen-jobs`' business.
//!
//! Times in the queue are integer microseconds since the Unix epoch, read
//! from the database clock (`db_now`), so leases mean the same on every
//! host and compare cheaply on both backends.

mod enqueue;
mod events;
mod handler;
mod schedule;
pub mod schema;

pub use enqueue::{Enqueued, Jobs, NewJob};
pub use events::{Event, EventContext, Events, Subscriber};
pub use handler::{Backoff, Job, JobContext, JobError, JobHandler, JobOptions};
pub use schedule::{Missed, Overlap, Schedule};

/// The states of a job. `Dead` is the dead-letter queue.
pub mod state {
    /// Enqueued for later (`run_at` in the future).
    pub const SCHEDULED: &str = "scheduled";
    /// Ready to run.
    pub const AVAILABLE: &str = "available";
    /// Claimed by a worker holding the lease.
    pub const RUNNING: &str = "running";
    /// Failed; will run again at `run_at`.
    pub const RETRYABLE: &str = "retryable";
    /// Finished successfully.
    pub const COMPLETED: &str = "completed";
    /// Failed `max_attempts` times (or discarded): the dead-letter queue.
    pub const DEAD: &str = "dead";
    /// Cancelled by an operator.
    pub const CANCELLED: &str = "cancelled";
    /// Every state, for validation of filters.
    pub const ALL: [&str; 7] = [
        SCHEDULED, AVAILABLE, RUNNING, RETRYABLE, COMPLETED, DEAD, CANCELLED,
    ];
}

/// SQL for "now" in microseconds since the epoch, from the database clock.
pub fn db_now(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => "CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
        crate::Backend::Postgres => {
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
        }
    }
}

/// Microseconds since the epoch of a chrono time.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// A chrono time from microseconds since the epoch.
pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}
