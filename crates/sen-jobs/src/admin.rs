//! The `jobs` app: the operator's HTTP API over the queue, the dead-letter
//! state and the schedules (`/api/v1/admin/jobs`, `/api/v1/admin/queues`,
//! `/api/v1/admin/schedules`), behind `jobs:read` and `jobs:write`. The
//! same operations as `sen jobs …`, for the dashboard and for scripts.

use axum::extract::State;
use http::StatusCode;
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path, Query};
use sen_core::rbac::PermissionDecl;
use sen_core::{App, AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::queue::{self, JobFilter, JobRow, QueueStats};

type Problem = sen_core::error::Problem;

/// Reading the queue.
pub const READ: &str = "jobs:read";
/// Retrying, cancelling and running jobs and schedules.
pub const WRITE: &str = "jobs:write";

/// The built-in `jobs` app (its tables belong to `system`).
pub struct JobsApp;

impl App for JobsApp {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn title(&self) -> &'static str {
        "Jobs"
    }

    fn description(&self) -> &'static str {
        "Queues, failed and dead jobs, and cron schedules."
    }

    fn icon(&self) -> &'static str {
        "layers"
    }

    fn topics(&self) -> Vec<sen_core::realtime::TopicDecl> {
        vec![
            sen_core::realtime::TopicDecl::permission(JOBS_TOPIC, READ),
            // Queue depths for the dashboard, polled only while watched.
            sen_core::realtime::TopicDecl::permission(QUEUES_TOPIC, READ).with_feed(
                std::time::Duration::from_secs(2),
                "queues",
                |ctx| {
                    Box::pin(async move {
                        let items: Vec<QueueView> = queue::stats(ctx.db())
                            .await?
                            .into_iter()
                            .map(QueueView::from)
                            .collect();
                        Ok(Some(
                            serde_json::to_value(QueueList { items }).unwrap_or_default(),
                        ))
                    })
                },
            ),
        ]
    }

    fn permissions(&self) -> Vec<PermissionDecl> {
        vec![
            PermissionDecl::read(
                "read",
                "See queues, jobs with their arguments and errors, and schedules",
            ),
            PermissionDecl::write("write", "Retry and cancel jobs; run schedules now"),
        ]
    }

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .routes(routes!(list_jobs))
            .routes(routes!(get_job))
            .routes(routes!(retry_job))
            .routes(routes!(cancel_job))
            .routes(routes!(retry_jobs))
            .routes(routes!(list_queues))
            .routes(routes!(list_schedules))
            .routes(routes!(run_schedule))
    }
}

fn check_state(field: &str, state: &Option<String>, allowed: &[&str]) -> AppResult<()> {
    match state {
        Some(s) if !allowed.contains(&s.as_str()) => {
            Err(AppError::validation(vec![FieldError::new(
                field,
                "invalid_value",
                format!("must be one of {}", allowed.join(", ")),
            )]))
        }
        _ => Ok(()),
    }
}

/// Filters and page of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only this state.
    pub state: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Jobs.
    pub items: Vec<JobRow>,
    /// Pass as `cursor` for older jobs; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lists jobs by state, queue and kind (the dead-letter view is `state=dead`).
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "jobs", params(JobQuery), responses(
    (status = 200, description = "A page of jobs", body = JobPage),
    (status = 403, description = "Lacks `jobs:read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_jobs(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<JobQuery>,
) -> AppResult<Json<JobPage>> {
    me.require(READ)?;
    check_state("state", &q.state, &sen_core::jobs::state::ALL)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let filter = JobFilter {
        state: q.state,
        queue: q.queue,
        kind: q.kind,
    };
    let mut items = queue::list(ctx.db(), &filter, q.cursor.as_deref(), limit + 1).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|j| j.id.clone())
    } else {
        None
    };
    Ok(Json(JobPage { items, next_cursor }))
}

/// One job with its arguments and every attempt's error.
#[utoipa::path(get, path = "/api/v1/admin/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobRow),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_job(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<JobRow>> {
    me.require(READ)?;
    queue::get(ctx.db(), &id)
        .await?
        .map(Json)
        .ok_or_else(AppError::not_found)
}

async fn after_change(
    ctx: &AppContext,
    id: &str,
    changed: bool,
    code: &'static str,
    what: &str,
) -> AppResult<Json<JobRow>> {
    let job = queue::get(ctx.db(), id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if !changed {
        return Err(AppError::conflict(
            code,
            format!("The job is `{}`; it cannot be {what} now.", job.state),
        ));
    }
    announce(
        ctx,
        &format!("job.{what}"),
        serde_json::json!({ "id": job.id, "kind": job.kind, "queue": job.queue, "state": job.state }),
    )
    .await;
    Ok(Json(job))
}

/// The realtime topic operators' dashboards watch for job changes.
pub const JOBS_TOPIC: &str = "admin:jobs";
/// The realtime topic with queue depth snapshots (every 2 s while watched).
pub const QUEUES_TOPIC: &str = "admin:queues";

/// Publishes a job change on [`JOBS_TOPIC`] (best effort: the change is
/// already committed, and the dashboard also reloads on reconnect).
pub async fn announce(ctx: &AppContext, name: &str, data: serde_json::Value) {
    if let Err(e) = ctx.realtime().publish(JOBS_TOPIC, name, data).await {
        tracing::debug!(error = %e, name, "job change not published");
    }
}

/// Runs a dead, cancelled or finished job again with a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Queued again", body = JobRow),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`job_not_retryable` (running)", body = Problem, content_type = "application/problem+json"),
))]
pub async fn retry_job(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<Json<JobRow>> {
    me.require(WRITE)?;
    let changed = change(&ctx, &id, JobChange::Retry, Operator::api(&me, &meta)).await?;
    after_change(&ctx, &id, changed, "job_not_retryable", "retried").await
}

/// Cancels a job that has not finished (a running one stops counting:
/// its completion is fenced out).
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled", body = JobRow),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`job_finished`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn cancel_job(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
) -> AppResult<Json<JobRow>> {
    me.require(WRITE)?;
    let changed = change(&ctx, &id, JobChange::Cancel, Operator::api(&me, &meta)).await?;
    after_change(&ctx, &id, changed, "job_finished", "cancelled").await
}

/// Who makes an operator change, for its audit entry.
pub struct Operator<'a> {
    /// The acting user (none from the command line).
    pub actor: Option<&'a str>,
    /// The client address (none from the command line).
    pub ip: Option<&'a str>,
    /// `api` or `cli`.
    pub via: &'static str,
}

impl<'a> Operator<'a> {
    /// An operator calling the admin API.
    pub fn api(me: &'a Principal, meta: &'a Meta) -> Self {
        Self {
            actor: Some(&me.user_id),
            ip: meta.ip.as_deref(),
            via: "api",
        }
    }

    /// Someone at the server's command line (`sen jobs …`).
    pub fn cli() -> Self {
        Self {
            actor: None,
            ip: None,
            via: "cli",
        }
    }
}

/// Writes an operator's change to the audit log on `tx`.
async fn audit(
    ctx: &AppContext,
    tx: &sea_orm::DatabaseTransaction,
    by: &Operator<'_>,
    action: &str,
    target: Option<&str>,
    mut detail: serde_json::Value,
) -> Result<(), sea_orm::DbErr> {
    detail["via"] = by.via.into();
    sen_auth::audit::record(
        ctx.db(),
        tx,
        sen_auth::audit::Entry {
            actor: by.actor,
            action,
            target,
            ip: by.ip,
            detail,
        },
    )
    .await
}

/// An operator's change to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// Run it again with a fresh attempt budget (`queue::retry`).
    Retry,
    /// Cancel it (`queue::cancel`).
    Cancel,
}

/// Applies `change` to job `id` for `by` and writes its audit entry
/// (`job.retry` or `job.cancel`) in the same transaction. False when the
/// job is unknown or in a state the change does not apply to.
pub async fn change(
    ctx: &AppContext,
    id: &str,
    change: JobChange,
    by: Operator<'_>,
) -> Result<bool, sea_orm::DbErr> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let (changed, action) = match change {
        JobChange::Retry => (queue::retry(db, &tx, id).await?, "job.retry"),
        JobChange::Cancel => (queue::cancel(db, &tx, id).await?, "job.cancel"),
    };
    if changed {
        audit(ctx, &tx, &by, action, Some(id), serde_json::json!({})).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Which jobs a bulk retry takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFilter {
    /// `dead` (default), `cancelled` or `retryable`.
    #[serde(default)]
    pub state: Option<String>,
    /// Only this queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
}

/// `POST /api/v1/admin/jobs/retry` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRetry {
    /// Which jobs.
    pub filter: RetryFilter,
}

/// How many jobs a bulk retry queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    /// Count (at most 10,000 per call).
    pub retried: u64,
}

/// Retries every job matching a filter (at most 10,000 per call).
#[utoipa::path(post, path = "/api/v1/admin/jobs/retry", tag = "jobs", request_body = BulkRetry, responses(
    (status = 200, description = "Queued again", body = Retried),
    (status = 422, description = "State that cannot be retried", body = Problem, content_type = "application/problem+json"),
))]
pub async fn retry_jobs(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<BulkRetry>,
) -> AppResult<Json<Retried>> {
    me.require(WRITE)?;
    check_state("filter.state", &body.filter.state, &queue::RETRYABLE_STATES)?;
    let filter = JobFilter {
        state: body.filter.state,
        queue: body.filter.queue,
        kind: body.filter.kind,
    };
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let retried = queue::retry_many(db, &tx, &filter).await?;
    if retried > 0 {
        let detail = serde_json::json!({
            "count": retried, "state": filter.state, "queue": filter.queue, "kind": filter.kind,
        });
        let by = Operator::api(&me, &meta);
        audit(&ctx, &tx, &by, "jobs.retry", None, detail).await?;
    }
    tx.commit().await?;
    if retried > 0 {
        announce(
            &ctx,
            "jobs.retried",
            serde_json::json!({ "count": retried, "queue": filter.queue, "kind": filter.kind }),
        )
        .await;
    }
    Ok(Json(Retried { retried }))
}

/// One queue's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// Queue name.
    pub queue: String,
    /// Jobs ready to run now or later (available, scheduled, retryable).
    pub depth: i64,
    /// Age of the oldest job ready to run, in milliseconds.
    pub oldest_age_ms: Option<i64>,
    /// Running now.
    pub running: i64,
    /// Failed at least once and waiting to retry.
    pub failed: i64,
    /// In the dead-letter state.
    pub dead: i64,
    /// Every state's count.
    pub states: std::collections::BTreeMap<String, i64>,
}

/// Every queue's depth, oldest age, running, failed and dead counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// Queues by name.
    pub items: Vec<QueueView>,
}

impl From<QueueStats> for QueueView {
    fn from(q: QueueStats) -> Self {
        let n = |s: &str| q.states.get(s).copied().unwrap_or(0);
        Self {
            depth: n("available") + n("scheduled") + n("retryable"),
            running: n("running"),
            failed: n("retryable"),
            dead: n("dead"),
            oldest_age_ms: q.oldest_ready_ms,
            queue: q.queue,
            states: q.states,
        }
    }
}

/// Per-queue statistics.
#[utoipa::path(get, path = "/api/v1/admin/queues", tag = "jobs", responses(
    (status = 200, description = "Queues", body = QueueList),
))]
pub async fn list_queues(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<QueueList>> {
    me.require(READ)?;
    let items = queue::stats(ctx.db())
        .await?
        .into_iter()
        .map(QueueView::from)
        .collect();
    Ok(Json(QueueList { items }))
}

/// One schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Time zone.
    pub time_zone: String,
    /// Last tick enqueued (RFC 3339).
    pub last_fire_at: Option<String>,
    /// Next tick (RFC 3339).
    pub next_fire_at: Option<String>,
}

/// Every schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// Schedules.
    pub items: Vec<ScheduleView>,
}

/// Cron schedules with their last and next tick.
#[utoipa::path(get, path = "/api/v1/admin/schedules", tag = "jobs", responses(
    (status = 200, description = "Schedules", body = ScheduleList),
))]
pub async fn list_schedules(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<ScheduleList>> {
    me.require(READ)?;
    let items = crate::scheduler::list(&ctx)
        .await
        .map_err(|e| AppError::unavailable("database", e))?
        .into_iter()
        .map(|s| ScheduleView {
            name: s.name.to_string(),
            cron: s.cron,
            time_zone: s.time_zone,
            last_fire_at: s.last_fire_at,
            next_fire_at: s.next_fire_at,
        })
        .collect();
    Ok(Json(ScheduleList { items }))
}

/// The job a manual run enqueued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enqueued {
    /// Job id.
    pub job_id: String,
}

/// Enqueues a schedule's job now, outside its cadence.
#[utoipa::path(post, path = "/api/v1/admin/schedules/{name}/run", tag = "jobs",
    params(("name" = String, Path, description = "Schedule name")),
    responses(
        (status = 202, description = "Enqueued", body = Enqueued),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
))]
pub async fn run_schedule(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(name): Path<String>,
) -> AppResult<(StatusCode, Json<Enqueued>)> {
    me.require(WRITE)?;
    let known = crate::scheduler::list(&ctx)
        .await
        .map_err(|e| AppError::unavailable("database", e))?
        .iter()
        .any(|s| s.name == name);
    if !known {
        return Err(AppError::not_found());
    }
    let job_id = crate::scheduler::run_now(&ctx, &name)
        .await
        .map_err(|e| AppError::unavailable("database", e))?;
    Ok((StatusCode::ACCEPTED, Json(Enqueued { job_id })))
}
