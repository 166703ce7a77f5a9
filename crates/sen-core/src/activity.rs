//! What the dashboard charts draw: requests, server errors, jobs completed
//! and jobs failed, per minute, summed over every process of the
//! deployment.
//!
//! Each process counts in four atomics (one relaxed add per request or
//! job: nothing on the hot path waits) and, with its heartbeat, adds what
//! it counted since the last flush to the current minute's row of
//! `sen_activity` (`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`,
//! the same on SQLite and PostgreSQL). So the charts show the whole
//! deployment whichever instance renders them, for the cost of one small
//! write per process every heartbeat. Rows older than two days are pruned.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use crate::context::AppContext;
use crate::migrate::Migration;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP request answered.
    Request = 0,
    /// An HTTP request answered with a 5xx status.
    ServerError = 1,
    /// A job that completed.
    JobDone = 2,
    /// A job attempt that failed (retried or dead).
    JobFailed = 3,
}

/// The counters of one process.
#[derive(Debug, Default)]
pub struct Activity {
    counts: [AtomicU64; 4],
    flushed: Mutex<[u64; 4]>,
}

/// One minute of the deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Unix time of the minute's start, in minutes.
    pub minute: i64,
    /// Requests answered.
    pub requests: i64,
    /// 5xx answers.
    pub errors: i64,
    /// Jobs completed.
    pub jobs_done: i64,
    /// Job attempts failed.
    pub jobs_failed: i64,
}

/// How long rows are kept.
const KEEP_MINUTES: i64 = 2 * 24 * 60;

fn now_minute() -> i64 {
    crate::clock::now().timestamp().div_euclid(60)
}

impl Activity {
    /// Counts one event.
    pub fn record(&self, kind: Kind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what was counted since the last flush to the current minute
    /// (nothing is lost when the write fails: the next flush carries it).
    pub async fn flush(&self, ctx: &AppContext) -> Result<(), DbErr> {
        let now: [u64; 4] = std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed));
        let before = *self
            .flushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let delta: [i64; 4] =
            std::array::from_fn(|i| i64::try_from(now[i].saturating_sub(before[i])).unwrap_or(0));
        if delta.iter().all(|d| *d == 0) {
            return Ok(());
        }
        let db = ctx.db();
        let minute = now_minute();
        db.orm()
            .execute_raw(db.statement(
                "INSERT INTO sen_activity (minute, requests, errors, jobs_done, jobs_failed) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (minute) DO UPDATE SET requests = sen_activity.requests + excluded.requests,
                   errors = sen_activity.errors + excluded.errors,
                   jobs_done = sen_activity.jobs_done + excluded.jobs_done,
                   jobs_failed = sen_activity.jobs_failed + excluded.jobs_failed",
                [
                    minute.into(),
                    delta[0].into(),
                    delta[1].into(),
                    delta[2].into(),
                    delta[3].into(),
                ],
            ))
            .await?;
        *self
            .flushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        if minute % 60 == 0 {
            db.orm()
                .execute_raw(db.statement(
                    "DELETE FROM sen_activity WHERE minute < ?",
                    [(minute - KEEP_MINUTES).into()],
                ))
                .await?;
        }
        Ok(())
    }
}

/// The last `minutes` minutes, oldest first, every minute present (zero
/// when nothing happened).
pub async fn recent(ctx: &AppContext, minutes: i64) -> Result<Vec<Minute>, DbErr> {
    let end = now_minute();
    let start = end - minutes + 1;
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT minute, requests, errors, jobs_done, jobs_failed FROM sen_activity WHERE minute >= ? ORDER BY minute",
            [start.into()],
        ))
        .await?;
    let mut out: Vec<Minute> = (start..=end)
        .map(|minute| Minute {
            minute,
            ..Minute::default()
        })
        .collect();
    for r in rows {
        let minute: i64 = r.try_get("", "minute")?;
        if let Some(slot) = usize::try_from(minute - start)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot = Minute {
                minute,
                requests: r.try_get("", "requests")?,
                errors: r.try_get("", "errors")?,
                jobs_done: r.try_get("", "jobs_done")?,
                jobs_failed: r.try_get("", "jobs_failed")?,
            };
        }
    }
    Ok(out)
}

/// Creates `sen_activity`.
pub struct CreateActivity;

#[async_trait]
impl Migration for CreateActivity {
    fn name(&self) -> &'static str {
        "0006_activity"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared(
            "CREATE TABLE sen_activity (
                minute BIGINT NOT NULL PRIMARY KEY,
                requests BIGINT NOT NULL,
                errors BIGINT NOT NULL,
                jobs_done BIGINT NOT NULL,
                jobs_failed BIGINT NOT NULL
            )",
        )
        .await?;
        Ok(())
    }
}
