//! Enqueueing inside the caller's transaction: the job commits or rolls
//! back with the domain rows it belongs to.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use tokio::sync::Notify;

use super::handler::Job;
use super::{db_now, micros};
use crate::Backend;
use crate::db::placeholders;

/// Rows per multi-row INSERT in `enqueue_many` on SQLite (11 parameters a
/// row stays well under its parameter limit).
const BATCH_ROWS: usize = 500;

/// Rows per statement of `enqueue_many` on PostgreSQL, where the rows
/// travel as one JSON parameter.
const PG_BATCH_ROWS: usize = 5000;

/// `enqueue_many` on PostgreSQL: one statement text whatever the batch size
/// (prepared once and cached, where a multi-row VALUES list is a new
/// statement for every row count and its thousands of parameters are
/// parsed, planned and bound each time), the rows as one JSON array, and
/// one database clock reading for the whole batch (jobs of one batch keep
/// their input order through their time-ordered ids).
const PG_INSERT_MANY: &str = "INSERT INTO sen_jobs (id, queue, kind, args, state, run_at, priority, max_attempts, timeout_ms, created_at)
    SELECT x.id, x.queue, x.kind, x.args,
        CASE WHEN COALESCE(x.run_at, n.now + x.delay_us) > n.now THEN 'scheduled' ELSE 'available' END,
        COALESCE(x.run_at, n.now + x.delay_us), x.priority, x.max_attempts, x.timeout_ms, n.now
    FROM (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) AS now) AS n,
        jsonb_to_recordset(CAST(CAST(? AS TEXT) AS jsonb)) AS x(id TEXT, queue TEXT, kind TEXT, args TEXT,
            run_at BIGINT, delay_us BIGINT, priority INTEGER, max_attempts INTEGER, timeout_ms BIGINT)";

/// A job about to be enqueued.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: String,
    queue: String,
    args: String,
    priority: i32,
    max_attempts: i32,
    timeout_ms: i64,
    run_at: Option<i64>,
    delay_us: i64,
    unique_key: Option<String>,
    once_key: Option<String>,
    order: Option<(String, String)>,
}

impl NewJob {
    /// `job` with its kind's options.
    pub fn of<J: Job>(job: &J) -> Result<Self, serde_json::Error> {
        let o = J::options();
        Ok(Self {
            kind: J::KIND.to_string(),
            queue: o.queue.to_string(),
            args: serde_json::to_string(job)?,
            priority: o.priority,
            max_attempts: o.max_attempts,
            timeout_ms: i64::try_from(o.timeout.as_millis()).unwrap_or(i64::MAX),
            run_at: None,
            delay_us: 0,
            unique_key: None,
            once_key: None,
            order: None,
        })
    }

    /// A job of `kind` with JSON `args` and default options (for tools and
    /// other binaries that do not link the job type).
    pub fn raw(kind: impl Into<String>, args: &serde_json::Value) -> Self {
        let o = super::JobOptions::default();
        Self {
            kind: kind.into(),
            queue: o.queue.to_string(),
            args: args.to_string(),
            priority: o.priority,
            max_attempts: o.max_attempts,
            timeout_ms: i64::try_from(o.timeout.as_millis()).unwrap_or(i64::MAX),
            run_at: None,
            delay_us: 0,
            unique_key: None,
            once_key: None,
            order: None,
        }
    }

    /// Another queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Another priority (lower runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Another attempt limit (at least 1).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Another time limit per attempt.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout_ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1);
        self
    }

    /// Runs no earlier than `at`.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(micros(at));
        self
    }

    /// Runs no earlier than `delay` from now (database clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay_us = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
        self
    }

    /// At most one live (not finished) job with this key: enqueueing again
    /// while one is live returns the existing job.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// This key is enqueued once ever (within key retention): cron ticks and
    /// event deliveries, where a finished job must not run again either.
    pub fn once(mut self, key: impl Into<String>) -> Self {
        self.once_key = Some(key.into());
        self
    }

    /// Runs only after every unfinished job with the same `key` and a
    /// smaller `seq` has finished (completed, dead or cancelled): per-key
    /// ordering, e.g. an aggregate's events to one subscriber.
    pub fn ordered(mut self, key: impl Into<String>, seq: impl Into<String>) -> Self {
        self.order = Some((key.into(), seq.into()));
        self
    }

    /// The live-uniqueness key, if any.
    pub fn unique_key(&self) -> Option<&str> {
        self.unique_key.as_deref()
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// One row of [`PG_INSERT_MANY`].
    fn json_row(&self, id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "queue": self.queue,
            "kind": self.kind,
            "args": self.args,
            "run_at": self.run_at,
            "delay_us": self.delay_us,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "timeout_ms": self.timeout_ms,
        })
    }

    /// The parameters of one row of [`values_sql`], in its order:
    /// id, queue, kind, args, (run_at, delay) for the state, (run_at, delay)
    /// for run_at, priority, max_attempts, timeout_ms.
    fn values(&self, id: &str) -> Vec<Value> {
        vec![
            id.into(),
            self.queue.clone().into(),
            self.kind.clone().into(),
            self.args.clone().into(),
            self.run_at.into(),
            self.delay_us.into(),
            self.run_at.into(),
            self.delay_us.into(),
            self.priority.into(),
            self.max_attempts.into(),
            self.timeout_ms.into(),
        ]
    }
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id (the existing job's when `duplicate`).
    pub id: String,
    /// A job with the same unique or once key already existed.
    pub duplicate: bool,
}

/// Enqueues jobs; `ctx.jobs()`. Wakes this process's workers after each
/// enqueue (other processes learn through NOTIFY on PostgreSQL, or poll).
#[derive(Clone)]
pub struct Jobs {
    backend: Backend,
    wake: Arc<Notify>,
}

/// One row of `INSERT INTO sen_jobs (id, queue, kind, args, state, run_at,
/// priority, max_attempts, timeout_ms, created_at[, unique_key, order_key,
/// order_seq])`; the
/// state and times come from the database clock.
fn values_sql(backend: Backend, with_unique_key: bool) -> String {
    let now = db_now(backend);
    let unique = if with_unique_key { ", ?, ?, ?" } else { "" };
    format!(
        "(?, ?, ?, ?, \
         CASE WHEN COALESCE(?, {now} + ?) > {now} THEN 'scheduled' ELSE 'available' END, \
         COALESCE(?, {now} + ?), ?, ?, ?, {now}{unique})"
    )
}

impl Jobs {
    /// A handle for `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notified after every enqueue in this process.
    pub fn wake_signal(&self) -> &Notify {
        &self.wake
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        let db = match self.backend {
            Backend::Sqlite => sea_orm::DbBackend::Sqlite,
            Backend::Postgres => sea_orm::DbBackend::Postgres,
        };
        Statement::from_sql_and_values(db, placeholders(self.backend, sql), values)
    }

    /// Enqueues `job` on `conn` (pass the caller's transaction).
    pub async fn enqueue(
        &self,
        conn: &impl ConnectionTrait,
        job: NewJob,
    ) -> Result<Enqueued, DbErr> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = db_now(self.backend);
        if let Some(key) = &job.once_key {
            let claimed = conn
                .execute_raw(self.stmt(
                    &format!("INSERT INTO sen_job_keys (key, job_id, created_at) VALUES (?, ?, {now}) ON CONFLICT (key) DO NOTHING"),
                    vec![key.clone().into(), id.clone().into()],
                ))
                .await?
                .rows_affected();
            if claimed == 0 {
                let row = conn
                    .query_one_raw(self.stmt(
                        "SELECT job_id FROM sen_job_keys WHERE key = ?",
                        vec![key.clone().into()],
                    ))
                    .await?
                    .ok_or_else(|| DbErr::RecordNotFound(format!("job key {key}")))?;
                return Ok(Enqueued {
                    id: row.try_get("", "job_id")?,
                    duplicate: true,
                });
            }
        }
        let mut values = job.values(&id);
        values.push(job.unique_key.clone().into());
        values.push(job.order.as_ref().map(|o| o.0.clone()).into());
        values.push(job.order.as_ref().map(|o| o.1.clone()).into());
        let sql = format!(
            "INSERT INTO sen_jobs (id, queue, kind, args, state, run_at, priority, max_attempts, timeout_ms, created_at, unique_key, order_key, order_seq) \
             VALUES {} ",
            values_sql(self.backend, true)
        );
        let sql = if job.unique_key.is_some() {
            format!(
                "{sql} ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL \
                 AND state NOT IN ('completed', 'dead', 'cancelled') DO NOTHING"
            )
        } else {
            sql
        };
        let inserted = conn
            .execute_raw(self.stmt(&sql, values))
            .await?
            .rows_affected();
        if inserted == 0 {
            let key = job.unique_key.unwrap_or_default();
            let row = conn
                .query_one_raw(self.stmt(
                    "SELECT id FROM sen_jobs WHERE unique_key = ? AND state NOT IN ('completed', 'dead', 'cancelled')",
                    vec![key.clone().into()],
                ))
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(format!("live job with unique key {key}")))?;
            return Ok(Enqueued {
                id: row.try_get("", "id")?,
                duplicate: true,
            });
        }
        self.after_insert(conn).await?;
        Ok(Enqueued {
            id,
            duplicate: false,
        })
    }

    /// Enqueues many jobs in few statements, answering in input order; jobs
    /// with unique, once or order keys go one by one so their keys are honoured.
    pub async fn enqueue_many(
        &self,
        conn: &impl ConnectionTrait,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, DbErr> {
        let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
        let (keyed, plain): (Vec<_>, Vec<_>) = jobs.into_iter().enumerate().partition(|(_, j)| {
            j.unique_key.is_some() || j.once_key.is_some() || j.order.is_some()
        });
        match self.backend {
            Backend::Postgres => {
                for chunk in plain.chunks(PG_BATCH_ROWS) {
                    let rows: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|(i, job)| {
                            let id = uuid::Uuid::now_v7().to_string();
                            let row = job.json_row(&id);
                            out[*i] = Some(Enqueued {
                                id,
                                duplicate: false,
                            });
                            row
                        })
                        .collect();
                    let rows = serde_json::Value::Array(rows).to_string();
                    conn.execute_raw(self.stmt(PG_INSERT_MANY, vec![rows.into()]))
                        .await?;
                }
            }
            Backend::Sqlite => {
                for chunk in plain.chunks(BATCH_ROWS) {
                    let mut values = Vec::with_capacity(chunk.len() * 11);
                    let mut rows = Vec::with_capacity(chunk.len());
                    for (i, job) in chunk {
                        let id = uuid::Uuid::now_v7().to_string();
                        values.extend(job.values(&id));
                        rows.push(values_sql(self.backend, false));
                        out[*i] = Some(Enqueued {
                            id,
                            duplicate: false,
                        });
                    }
                    let sql = format!(
                        "INSERT INTO sen_jobs (id, queue, kind, args, state, run_at, priority, max_attempts, timeout_ms, created_at) VALUES {}",
                        rows.join(", ")
                    );
                    conn.execute_raw(self.stmt(&sql, values)).await?;
                }
            }
        }
        if !plain.is_empty() {
            self.after_insert(conn).await?;
        }
        for (i, job) in keyed {
            out[i] = Some(self.enqueue(conn, job).await?);
        }
        // Every slot was filled by exactly one of the two loops above.
        Ok(out.into_iter().flatten().collect())
    }

    async fn after_insert(&self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        if self.backend == Backend::Postgres {
            // Delivered at commit, to every listening worker process.
            conn.execute_unprepared("NOTIFY sen_jobs").await?;
        }
        self.wake.notify_waiters();
        Ok(())
    }
}
