//! The queue's statements, both dialects side by side: claim a batch
//! (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite `UPDATE … RETURNING` in an
//! immediate transaction), complete and fail fenced by the lock token,
//! extend leases, rescue expired leases, retry and cancel.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use sen_core::jobs::db_now;
use sen_core::{Backend, Db};

/// Errors kept per job (the oldest are dropped).
const MAX_ERRORS: usize = 25;

/// A job a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Job id.
    pub id: String,
    /// Queue.
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// JSON arguments.
    pub args: String,
    /// This attempt (counted at claim).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Time limit of this attempt.
    pub timeout_ms: i64,
    /// Errors of earlier attempts (JSON array).
    pub errors: String,
    /// The token fencing this claim.
    pub lock_token: String,
    /// When it became due (µs since the epoch).
    pub run_at: i64,
}

const RETURNING: &str =
    "id, queue, kind, args, attempt, max_attempts, timeout_ms, errors, lock_token, run_at";

/// `RETURNING` of a PostgreSQL claim, which updates `sen_jobs AS j` from
/// the picked ids (`id` alone would be ambiguous).
const RETURNING_J: &str = "j.id, j.queue, j.kind, j.args, j.attempt, j.max_attempts, j.timeout_ms, j.errors, j.lock_token, j.run_at";

fn claimed(row: &QueryResult) -> Result<ClaimedJob, DbErr> {
    Ok(ClaimedJob {
        id: row.try_get("", "id")?,
        queue: row.try_get("", "queue")?,
        kind: row.try_get("", "kind")?,
        args: row.try_get("", "args")?,
        attempt: row.try_get("", "attempt")?,
        max_attempts: row.try_get("", "max_attempts")?,
        timeout_ms: row.try_get("", "timeout_ms")?,
        errors: row.try_get("", "errors")?,
        lock_token: row.try_get("", "lock_token")?,
        run_at: row.try_get("", "run_at")?,
    })
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The ready jobs of queue `?` in claim order, as a `SELECT id` (the
/// caller appends `LIMIT ?` and, on PostgreSQL, the row lock).
fn ready_ids(now: &str) -> String {
    // Ordered jobs wait while an earlier job of their key is unfinished.
    format!(
        "SELECT id FROM sen_jobs
         WHERE queue = ? AND state IN ('available', 'scheduled', 'retryable') AND run_at <= {now}
           AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM sen_jobs e
                WHERE e.order_key = sen_jobs.order_key AND e.order_seq < sen_jobs.order_seq
                AND e.state IN ('available', 'scheduled', 'retryable', 'running')))
         ORDER BY priority, run_at, id"
    )
}

/// The claim's assignments (lease `?`, token `?`).
fn claim_set(now: &str) -> String {
    format!(
        "state = 'running', attempt = attempt + 1, lease_until = {now} + ?, lock_token = ?, attempted_at = {now}"
    )
}

/// Claims up to `limit` ready jobs of `queue`, counting the attempt and
/// taking a lease of `lease` (database clock).
pub async fn claim(
    db: &Db,
    queue: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, DbErr> {
    let now = db_now(db.backend());
    let token = uuid::Uuid::now_v7().to_string();
    let (ready, set) = (ready_ids(now), claim_set(now));
    match db.backend() {
        Backend::Postgres => {
            let sql = format!(
                "WITH picked AS ({ready} LIMIT ? FOR UPDATE SKIP LOCKED)
                 UPDATE sen_jobs AS j SET {set}
                 FROM picked WHERE j.id = picked.id
                 RETURNING {RETURNING_J}"
            );
            let rows = db
                .orm()
                .query_all_raw(db.statement(
                    &sql,
                    [
                        queue.into(),
                        i64::from(limit).into(),
                        us(lease).into(),
                        token.into(),
                    ],
                ))
                .await?;
            rows.iter().map(claimed).collect()
        }
        Backend::Sqlite => {
            let sql = format!(
                "UPDATE sen_jobs SET {set} WHERE id IN ({ready} LIMIT ?) RETURNING {RETURNING}"
            );
            let tx = db.begin_write().await?;
            let rows = tx
                .query_all_raw(db.statement(
                    &sql,
                    [
                        us(lease).into(),
                        token.into(),
                        queue.into(),
                        i64::from(limit).into(),
                    ],
                ))
                .await?;
            tx.commit().await?;
            rows.iter().map(claimed).collect()
        }
    }
}

/// Completes `job` and claims the next ready job of its queue under the
/// same lock token, in one transaction (on PostgreSQL one statement): a
/// worker that takes one job at a time pays one round trip and one commit
/// per job instead of two. Returns whether the completion held (false: the
/// claim was stale) and the next job, if any.
pub async fn complete_and_claim(
    db: &Db,
    job: &ClaimedJob,
    lease: Duration,
) -> Result<(bool, Option<ClaimedJob>), DbErr> {
    let now = db_now(db.backend());
    let (ready, set) = (ready_ids(now), claim_set(now));
    let complete = format!(
        "UPDATE sen_jobs SET state = 'completed', finished_at = {now}, lease_until = NULL, lock_token = NULL
         WHERE id = ? AND lock_token = ? AND state = 'running'"
    );
    match db.backend() {
        Backend::Postgres => {
            // Every part sees the statement's snapshot: the job completed
            // here still reads as running to the pick, so an ordered
            // successor of it waits for the next claim (never jumps ahead).
            let sql = format!(
                "WITH done AS ({complete} RETURNING 1),
                 picked AS ({ready} LIMIT 1 FOR UPDATE SKIP LOCKED),
                 next AS (UPDATE sen_jobs AS j SET {set} FROM picked WHERE j.id = picked.id
                    RETURNING {RETURNING_J})
                 SELECT (SELECT COUNT(*) FROM done) AS completed, next.*
                 FROM (SELECT 1) AS one LEFT JOIN next ON true"
            );
            let row = db
                .orm()
                .query_one_raw(db.statement(
                    &sql,
                    [
                        job.id.clone().into(),
                        job.lock_token.clone().into(),
                        job.queue.clone().into(),
                        us(lease).into(),
                        job.lock_token.clone().into(),
                    ],
                ))
                .await?
                .ok_or_else(|| {
                    DbErr::RecordNotFound("complete_and_claim returned no row".into())
                })?;
            let completed = row.try_get::<i64>("", "completed")? == 1;
            let next = match row.try_get::<Option<String>>("", "id")? {
                Some(_) => Some(claimed(&row)?),
                None => None,
            };
            Ok((completed, next))
        }
        Backend::Sqlite => {
            let claim = format!(
                "UPDATE sen_jobs SET {set} WHERE id IN ({ready} LIMIT 1) RETURNING {RETURNING}"
            );
            let tx = db.begin_write().await?;
            let done = tx
                .execute_raw(db.statement(
                    &complete,
                    [job.id.clone().into(), job.lock_token.clone().into()],
                ))
                .await?;
            let next = tx
                .query_one_raw(db.statement(
                    &claim,
                    [
                        us(lease).into(),
                        job.lock_token.clone().into(),
                        job.queue.clone().into(),
                    ],
                ))
                .await?;
            tx.commit().await?;
            Ok((
                done.rows_affected() == 1,
                next.as_ref().map(claimed).transpose()?,
            ))
        }
    }
}

/// Marks a claimed job completed; false when the claim is stale (the lease
/// expired and someone else took the job, or it was cancelled).
pub async fn complete(db: &Db, job: &ClaimedJob) -> Result<bool, DbErr> {
    let now = db_now(db.backend());
    let sql = format!(
        "UPDATE sen_jobs SET state = 'completed', finished_at = {now}, lease_until = NULL, lock_token = NULL
         WHERE id = ? AND lock_token = ? AND state = 'running'"
    );
    let done = db
        .orm()
        .execute_raw(db.statement(&sql, [job.id.clone().into(), job.lock_token.clone().into()]))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Where a failed job went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will run again after the backoff.
    Retrying,
    /// Attempts exhausted (or the error was final): dead-letter queue.
    Dead,
    /// The claim was stale; nothing written.
    Stale,
}

/// Appends `error` of attempt `attempt` to the JSON array `errors`.
pub fn append_error(errors: &str, attempt: i32, error: &str) -> String {
    let mut list: Vec<serde_json::Value> = serde_json::from_str(errors).unwrap_or_default();
    list.push(serde_json::json!({
        "attempt": attempt,
        "at": sen_core::clock::now_iso(),
        "error": error.chars().take(4000).collect::<String>(),
    }));
    if list.len() > MAX_ERRORS {
        let extra = list.len() - MAX_ERRORS;
        list.drain(..extra);
    }
    serde_json::Value::Array(list).to_string()
}

/// Records a failed attempt: retry after `backoff`, or dead when attempts
/// are exhausted or `retry` is false. Fenced by the lock token.
pub async fn fail(
    db: &Db,
    job: &ClaimedJob,
    error: &str,
    retry: bool,
    backoff: Duration,
) -> Result<FailOutcome, DbErr> {
    let now = db_now(db.backend());
    let dead = !retry || job.attempt >= job.max_attempts;
    let errors = append_error(&job.errors, job.attempt, error);
    let sql = if dead {
        format!(
            "UPDATE sen_jobs SET state = 'dead', errors = ?, finished_at = {now}, lease_until = NULL, lock_token = NULL
             WHERE id = ? AND lock_token = ? AND state = 'running'"
        )
    } else {
        format!(
            "UPDATE sen_jobs SET state = 'retryable', errors = ?, run_at = {now} + ?, lease_until = NULL, lock_token = NULL
             WHERE id = ? AND lock_token = ? AND state = 'running'"
        )
    };
    let values: Vec<Value> = if dead {
        vec![
            errors.into(),
            job.id.clone().into(),
            job.lock_token.clone().into(),
        ]
    } else {
        vec![
            errors.into(),
            us(backoff).into(),
            job.id.clone().into(),
            job.lock_token.clone().into(),
        ]
    };
    let done = db.orm().execute_raw(db.statement(&sql, values)).await?;
    Ok(match (done.rows_affected(), dead) {
        (0, _) => FailOutcome::Stale,
        (_, true) => FailOutcome::Dead,
        (_, false) => FailOutcome::Retrying,
    })
}

/// Extends the lease of every job still running under one of `tokens`, in
/// one statement whatever their number (a worker taking one job per claim
/// holds a token per running job).
pub async fn extend_leases(db: &Db, tokens: &[String], lease: Duration) -> Result<u64, DbErr> {
    if tokens.is_empty() {
        return Ok(0);
    }
    let now = db_now(db.backend());
    let list = match db.backend() {
        Backend::Postgres => "SELECT jsonb_array_elements_text(CAST(CAST(? AS TEXT) AS jsonb))",
        Backend::Sqlite => "SELECT value FROM json_each(?)",
    };
    let sql = format!(
        "UPDATE sen_jobs SET lease_until = {now} + ? WHERE state = 'running' AND lock_token IN ({list})"
    );
    let tokens = serde_json::to_string(tokens).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(db
        .orm()
        .execute_raw(db.statement(&sql, [us(lease).into(), tokens.into()]))
        .await?
        .rows_affected())
}

/// Puts a running job back for later without counting the attempt (a
/// rate limit said "not yet"). Fenced by the lock token.
pub async fn snooze(db: &Db, job: &ClaimedJob, delay: Duration) -> Result<bool, DbErr> {
    let now = db_now(db.backend());
    let sql = format!(
        "UPDATE sen_jobs SET state = 'scheduled', attempt = attempt - 1, run_at = {now} + ?, lease_until = NULL, lock_token = NULL
         WHERE id = ? AND lock_token = ? AND state = 'running'"
    );
    let done = db
        .orm()
        .execute_raw(db.statement(
            &sql,
            [
                us(delay).into(),
                job.id.clone().into(),
                job.lock_token.clone().into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up the jobs still running under `token` (at shutdown): they become
/// available again and the attempt does not count.
pub async fn release(db: &Db, token: &str) -> Result<u64, DbErr> {
    let now = db_now(db.backend());
    let sql = format!(
        "UPDATE sen_jobs SET state = 'available', attempt = attempt - 1, run_at = {now}, lease_until = NULL, lock_token = NULL
         WHERE lock_token = ? AND state = 'running'"
    );
    Ok(db
        .orm()
        .execute_raw(db.statement(&sql, [token.into()]))
        .await?
        .rows_affected())
}

/// Returns jobs whose lease expired (their worker died or hung) to the
/// queue, or to `dead` when their attempts are exhausted. Returns how many.
pub async fn rescue_expired(db: &Db, limit: u32) -> Result<u64, DbErr> {
    let now = db_now(db.backend());
    let sql = format!(
        "SELECT {RETURNING} FROM sen_jobs WHERE state = 'running' AND lease_until < {now} ORDER BY lease_until LIMIT ?"
    );
    let rows = db
        .orm()
        .query_all_raw(db.statement(&sql, [i64::from(limit).into()]))
        .await?;
    let mut rescued = 0;
    for row in &rows {
        let job = claimed(row)?;
        let error = "lease expired: the worker stopped heartbeating (crashed, killed or hung)";
        if fail(db, &job, error, true, Duration::ZERO).await? != FailOutcome::Stale {
            rescued += 1;
        }
    }
    Ok(rescued)
}

/// Puts a finished or waiting job back in the queue with a fresh attempt
/// budget (its error history is kept), on `conn` (an operator's change:
/// the caller's transaction also writes the audit entry). False when it
/// is running or unknown.
pub async fn retry(db: &Db, conn: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    let now = db_now(db.backend());
    let sql = format!(
        "UPDATE sen_jobs SET state = 'available', attempt = 0, run_at = {now}, finished_at = NULL
         WHERE id = ? AND state IN ('dead', 'cancelled', 'completed', 'retryable', 'scheduled')"
    );
    Ok(conn
        .execute_raw(db.statement(&sql, [id.into()]))
        .await?
        .rows_affected()
        == 1)
}

/// States a bulk retry may take jobs from.
pub const RETRYABLE_STATES: [&str; 3] = ["dead", "cancelled", "retryable"];

/// Retries up to 10,000 jobs matching `filter` (its state must be one of
/// [`RETRYABLE_STATES`]; `dead` when absent) on `conn`. Returns how many.
pub async fn retry_many(
    db: &Db,
    conn: &impl ConnectionTrait,
    filter: &JobFilter,
) -> Result<u64, DbErr> {
    let now = db_now(db.backend());
    let state = filter.state.clone().unwrap_or_else(|| "dead".into());
    let mut inner = String::from("SELECT id FROM sen_jobs WHERE state = ?");
    let mut values: Vec<Value> = vec![state.into()];
    for (column, value) in [("queue", &filter.queue), ("kind", &filter.kind)] {
        if let Some(v) = value {
            inner.push_str(&format!(" AND {column} = ?"));
            values.push(v.clone().into());
        }
    }
    inner.push_str(" ORDER BY id LIMIT 10000");
    let sql = format!(
        "UPDATE sen_jobs SET state = 'available', attempt = 0, run_at = {now}, finished_at = NULL
         WHERE id IN ({inner}) AND state IN ('dead', 'cancelled', 'retryable')"
    );
    Ok(conn
        .execute_raw(db.statement(&sql, values))
        .await?
        .rows_affected())
}

/// Cancels a job that has not finished, on `conn`; a running one's
/// completion is then fenced out. False when it already finished or is
/// unknown.
pub async fn cancel(db: &Db, conn: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    let now = db_now(db.backend());
    let sql = format!(
        "UPDATE sen_jobs SET state = 'cancelled', finished_at = {now}, lease_until = NULL, lock_token = NULL
         WHERE id = ? AND state IN ('available', 'scheduled', 'retryable', 'running')"
    );
    Ok(conn
        .execute_raw(db.statement(&sql, [id.into()]))
        .await?
        .rows_affected()
        == 1)
}

/// Counts of one queue by state, and the age of its oldest ready job.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Jobs per state.
    pub states: std::collections::BTreeMap<String, i64>,
    /// Age in milliseconds of the oldest job ready to run.
    pub oldest_ready_ms: Option<i64>,
}

/// Per-queue statistics.
pub async fn stats(db: &Db) -> Result<Vec<QueueStats>, DbErr> {
    let now = db_now(db.backend());
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT queue, state, COUNT(*) AS n FROM sen_jobs GROUP BY queue, state ORDER BY queue",
            [],
        ))
        .await?;
    let mut out: Vec<QueueStats> = Vec::new();
    for row in &rows {
        let queue: String = row.try_get("", "queue")?;
        let st: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        if out.last().is_none_or(|q| q.queue != queue) {
            out.push(QueueStats {
                queue: queue.clone(),
                ..Default::default()
            });
        }
        if let Some(q) = out.last_mut() {
            q.states.insert(st, n);
        }
    }
    let sql = format!(
        "SELECT queue, ({now} - MIN(run_at)) / 1000 AS age FROM sen_jobs
         WHERE state IN ('available', 'retryable', 'scheduled') AND run_at <= {now} GROUP BY queue"
    );
    for row in db.orm().query_all_raw(db.statement(&sql, [])).await? {
        let queue: String = row.try_get("", "queue")?;
        let age: i64 = row.try_get("", "age")?;
        if let Some(q) = out.iter_mut().find(|q| q.queue == queue) {
            q.oldest_ready_ms = Some(age);
        }
    }
    Ok(out)
}

/// One job as listings and the CLI show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Queue.
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// State.
    pub state: String,
    /// Attempts made.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it runs or ran (RFC 3339).
    pub run_at: String,
    /// Arguments (JSON).
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    /// Every attempt's error.
    #[schema(value_type = Vec<Object>)]
    pub errors: serde_json::Value,
}

fn job_row(r: &QueryResult) -> Result<JobRow, DbErr> {
    let args: String = r.try_get("", "args")?;
    let errors: String = r.try_get("", "errors")?;
    Ok(JobRow {
        id: r.try_get("", "id")?,
        queue: r.try_get("", "queue")?,
        kind: r.try_get("", "kind")?,
        state: r.try_get("", "state")?,
        attempt: r.try_get("", "attempt")?,
        max_attempts: r.try_get("", "max_attempts")?,
        run_at: sen_core::clock::iso(sen_core::jobs::from_micros(r.try_get("", "run_at")?)),
        args: serde_json::from_str(&args).unwrap_or(serde_json::Value::Null),
        errors: serde_json::from_str(&errors).unwrap_or(serde_json::Value::Null),
    })
}

/// Filters for [`list`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

const ROW: &str = "id, queue, kind, state, attempt, max_attempts, run_at, args, errors";

/// Jobs matching `filter`, newest first, after the cursor `before` (an id).
pub async fn list(
    db: &Db,
    filter: &JobFilter,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<JobRow>, DbErr> {
    let mut sql = format!("SELECT {ROW} FROM sen_jobs WHERE 1 = 1");
    let mut values: Vec<Value> = Vec::new();
    for (column, value) in [
        ("state", &filter.state),
        ("queue", &filter.queue),
        ("kind", &filter.kind),
    ] {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            values.push(v.clone().into());
        }
    }
    if let Some(cursor) = before {
        sql.push_str(" AND id < ?");
        values.push(cursor.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::from(limit.clamp(1, 1000)).into());
    db.orm()
        .query_all_raw(db.statement(&sql, values))
        .await?
        .iter()
        .map(job_row)
        .collect()
}

/// One job with its arguments and every attempt's error.
pub async fn get(db: &Db, id: &str) -> Result<Option<JobRow>, DbErr> {
    let row = db
        .orm()
        .query_one_raw(db.statement(
            &format!("SELECT {ROW} FROM sen_jobs WHERE id = ?"),
            [id.into()],
        ))
        .await?;
    row.as_ref().map(job_row).transpose()
}

/// Completes many claimed jobs in one statement; returns the ids that were
/// still held (the others' claims were stale).
pub async fn complete_many(db: &Db, jobs: &[(String, String)]) -> Result<Vec<String>, DbErr> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let now = db_now(db.backend());
    let done = match db.backend() {
        // One statement text whatever the batch size (prepared once, where
        // a VALUES list of 2n parameters is a new statement to parse and
        // plan for every n), the pairs as one JSON parameter.
        Backend::Postgres => {
            let pairs = serde_json::Value::Array(
                jobs.iter()
                    .map(|(id, token)| serde_json::json!([id, token]))
                    .collect(),
            )
            .to_string();
            let sql = format!(
                "UPDATE sen_jobs AS j SET state = 'completed', finished_at = {now}, lease_until = NULL, lock_token = NULL
                 FROM jsonb_array_elements(CAST(CAST(? AS TEXT) AS jsonb)) AS x(pair)
                 WHERE j.id = x.pair->>0 AND j.lock_token = x.pair->>1 AND j.state = 'running'
                 RETURNING j.id"
            );
            db.orm()
                .query_all_raw(db.statement(&sql, [pairs.into()]))
                .await?
        }
        Backend::Sqlite => {
            let rows = vec!["(?, ?)"; jobs.len()].join(", ");
            let sql = format!(
                "UPDATE sen_jobs SET state = 'completed', finished_at = {now}, lease_until = NULL, lock_token = NULL
                 WHERE state = 'running' AND (id, lock_token) IN (VALUES {rows})
                 RETURNING id"
            );
            let values: Vec<Value> = jobs
                .iter()
                .flat_map(|(id, token)| [id.clone().into(), token.clone().into()])
                .collect();
            db.orm().query_all_raw(db.statement(&sql, values)).await?
        }
    };
    done.iter().map(|r| r.try_get::<String>("", "id")).collect()
}
