//! Sen's worker service: claims jobs from the `sen_jobs` table with leases,
//! runs them with time limits and panic isolation, retries with backoff,
//! moves exhausted jobs to the dead-letter state, and rescues jobs of
//! workers that died.
//!
//! Invariants: a job's effects are never recorded by a worker whose lease
//! was lost (every write is fenced by the lock token); the attempt counts
//! at claim, so a job that crashes its worker still reaches `dead`.

pub mod admin;
pub mod outbox;
pub mod queue;
pub mod scheduler;
pub mod worker;

pub use admin::JobsApp;
pub use worker::{RunningWorker, WorkerConfig, start};
