//! The tables of the job system, created by the `system` app's migrations:
//! `sen_jobs` (the queue, including its dead-letter state) and
//! `sen_job_keys` (keys that may be enqueued once ever, for cron ticks and
//! event deliveries) and `sen_cron_state` (the last tick of each schedule).

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use crate::migrate::Migration;

/// Creates the job tables and their indexes (SQL both dialects accept).
pub struct CreateJobTables;

const STATEMENTS: &[&str] = &[
    "CREATE TABLE sen_jobs (
        id TEXT NOT NULL PRIMARY KEY,
        queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        args TEXT NOT NULL,
        state TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        run_at BIGINT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        timeout_ms BIGINT NOT NULL,
        lease_until BIGINT,
        lock_token TEXT,
        errors TEXT NOT NULL DEFAULT '[]',
        unique_key TEXT,
        created_at BIGINT NOT NULL,
        attempted_at BIGINT,
        finished_at BIGINT
    )",
    // What workers claim: ready states of one queue by priority then age.
    "CREATE INDEX sen_jobs_fetch ON sen_jobs (queue, priority, run_at, id)
        WHERE state IN ('available', 'scheduled', 'retryable')",
    // What the rescuer scans: running jobs by lease.
    "CREATE INDEX sen_jobs_running ON sen_jobs (lease_until) WHERE state = 'running'",
    // Admin listings by state (replaced by `sen_jobs_state_id`, see
    // `OneStateIndex`; migrations are never edited once released).
    "CREATE INDEX sen_jobs_state ON sen_jobs (state, queue, id)",
    // Idempotent enqueue: one live job per key.
    "CREATE UNIQUE INDEX sen_jobs_unique_live ON sen_jobs (unique_key)
        WHERE unique_key IS NOT NULL AND state NOT IN ('completed', 'dead', 'cancelled')",
    // The last tick each schedule fired, for catching up after downtime.
    "CREATE TABLE sen_cron_state (
        name TEXT NOT NULL PRIMARY KEY,
        last_fire_at BIGINT NOT NULL
    )",
    // The transactional outbox: events written with the change they describe.
    "CREATE TABLE sen_outbox (
        id TEXT NOT NULL PRIMARY KEY,
        name TEXT NOT NULL,
        payload TEXT NOT NULL,
        aggregate_key TEXT,
        created_at BIGINT NOT NULL,
        dispatched_at BIGINT
    )",
    "CREATE INDEX sen_outbox_pending ON sen_outbox (id) WHERE dispatched_at IS NULL",
    "CREATE TABLE sen_job_keys (
        key TEXT NOT NULL PRIMARY KEY,
        job_id TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
];

#[async_trait]
impl Migration for CreateJobTables {
    fn name(&self) -> &'static str {
        "0002_jobs"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in STATEMENTS {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Lists of one state newest first (the dead-letter view) read an index
/// in order instead of sorting every job of that state.
pub struct IndexJobsByState;

#[async_trait]
impl Migration for IndexJobsByState {
    fn name(&self) -> &'static str {
        "0005_jobs_state_id"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared("CREATE INDEX sen_jobs_state_id ON sen_jobs (state, id)")
            .await?;
        Ok(())
    }
}

/// Drops `sen_jobs_state (state, queue, id)`: `sen_jobs_state_id (state, id)`
/// serves every state listing and count it served (a queue filter reads
/// the state's entries in id order and skips other queues), and every
/// state change of a job is a non-HOT update that writes one entry into
/// each index on `state`, so the second one cost each transition an
/// index insert for nothing.
pub struct OneStateIndex;

#[async_trait]
impl Migration for OneStateIndex {
    fn name(&self) -> &'static str {
        "0008_jobs_one_state_index"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared("DROP INDEX sen_jobs_state").await?;
        Ok(())
    }
}

/// Per-key ordering of jobs (ordered event subscribers).
pub struct AddJobOrdering;

#[async_trait]
impl Migration for AddJobOrdering {
    fn name(&self) -> &'static str {
        "0003_job_ordering"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in [
            "ALTER TABLE sen_jobs ADD COLUMN order_key TEXT",
            "ALTER TABLE sen_jobs ADD COLUMN order_seq TEXT",
            // What the claim's "nothing earlier unfinished" check reads.
            "CREATE INDEX sen_jobs_order ON sen_jobs (order_key, order_seq) WHERE order_key IS NOT NULL",
        ] {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
