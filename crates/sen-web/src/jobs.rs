//! `/admin/apps/jobs`: queues with depth and age, jobs by state and queue
//! (the dead-letter view by default), one job with its arguments and
//! every attempt's error, retry or cancel one job, the ticked ones, or
//! every dead job at once. The list re-reads itself when a job changes
//! (realtime topic `admin:jobs`); the queue counts are at most two
//! seconds old (`admin::queue_stats`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppError, AppResult, Principal};
use sen_jobs::admin::{self as api, QueueView};
use serde::Deserialize;

use crate::admin::{gate, urlencode};
use crate::page::{Frame, csrf_ok, describe, forbidden, html, local, see_other};

/// One job row.
pub struct JobLine {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// State.
    pub state: String,
    /// Attempts made.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The newest error.
    pub last_error: String,
    /// Retry is possible.
    pub retryable: bool,
}

/// One queue's line.
pub struct QueueLine {
    /// Name.
    pub queue: String,
    /// Waiting (available, scheduled, retryable).
    pub waiting: i64,
    /// How long the oldest ready job has waited, in words.
    pub oldest: String,
    /// Running.
    pub running: i64,
    /// Dead.
    pub dead: i64,
}

/// The jobs page.
#[derive(Template)]
#[template(path = "jobs.html")]
pub struct Jobs {
    /// Frame.
    pub f: Frame,
    /// The queues.
    pub queues: Vec<QueueLine>,
    /// The state shown.
    pub state: String,
    /// The queue shown ("" = every queue).
    pub queue: String,
    /// Every state.
    pub states: &'static [&'static str],
    /// The jobs.
    pub jobs: Vec<JobLine>,
    /// This page's URL (bulk actions come back here).
    pub here: String,
    /// Show retry and cancel.
    pub can_write: bool,
    /// What the last bulk action did or why it failed.
    pub notice: Option<String>,
}

/// `?state=&queue=&done=`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

/// "45 s", "12 min", "3 h", "2 d".
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// `GET /admin/apps/jobs` (dead jobs unless another state is asked for).
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<JobsQuery>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/jobs") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has(api::READ) {
        return Ok(forbidden(f));
    }
    let states = &sen_core::jobs::state::ALL;
    let state = q
        .state
        .filter(|s| states.contains(&s.as_str()))
        .unwrap_or_else(|| "dead".into());
    let queues: Vec<QueueView> = crate::admin::queue_stats(&ctx)
        .await?
        .into_iter()
        .map(QueueView::from)
        .collect();
    let queue = q
        .queue
        .filter(|n| queues.iter().any(|v| &v.queue == n))
        .unwrap_or_default();
    let filter = sen_jobs::queue::JobFilter {
        state: Some(state.clone()),
        queue: (!queue.is_empty()).then(|| queue.clone()),
        kind: None,
    };
    let rows = sen_jobs::queue::list(ctx.db(), &filter, None, 100).await?;
    let jobs = rows
        .into_iter()
        .map(|j| JobLine {
            last_error: j
                .errors
                .as_array()
                .and_then(|a| a.last())
                .and_then(|e| e["error"].as_str())
                .unwrap_or_default()
                .to_string(),
            retryable: sen_jobs::queue::RETRYABLE_STATES.contains(&j.state.as_str()),
            id: j.id,
            kind: j.kind,
            queue: j.queue,
            state: j.state,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
        })
        .collect();
    let here = format!(
        "/admin/apps/jobs?state={}&queue={}",
        urlencode(&state),
        urlencode(&queue)
    );
    Ok(html(
        StatusCode::OK,
        &Jobs {
            f,
            queues: queues.into_iter().map(queue_line).collect(),
            state,
            queue,
            states,
            jobs,
            here,
            can_write: me.has(api::WRITE),
            notice: q.done.filter(|d| d.len() <= 200),
        },
    ))
}

fn queue_line(v: QueueView) -> QueueLine {
    QueueLine {
        oldest: v.oldest_age_ms.map(age).unwrap_or_else(|| "–".into()),
        queue: v.queue,
        waiting: v.depth,
        running: v.running,
        dead: v.dead,
    }
}

/// One attempt's error.
pub struct Attempt {
    /// Attempt number.
    pub attempt: String,
    /// When.
    pub at: String,
    /// What went wrong.
    pub error: String,
}

/// One job's page.
#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    /// Frame.
    pub f: Frame,
    /// The job.
    pub job: sen_jobs::queue::JobRow,
    /// Its arguments, pretty-printed.
    pub args: String,
    /// Every attempt's error, oldest first.
    pub attempts: Vec<Attempt>,
    /// Retry is possible.
    pub retryable: bool,
    /// Cancel is possible.
    pub cancellable: bool,
    /// Show the buttons.
    pub can_write: bool,
    /// Why the last action failed.
    pub error: Option<String>,
}

async fn render_job(
    ctx: &AppContext,
    me: Principal,
    f: Frame,
    id: String,
    status: StatusCode,
    error: Option<String>,
) -> AppResult<Response> {
    let can_write = me.has(api::WRITE);
    let Json(job) = api::get_job(State(ctx.clone()), me, Path(id)).await?;
    let attempts = job
        .errors
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Attempt {
                    attempt: e["attempt"].to_string(),
                    at: e["at"].as_str().unwrap_or_default().to_string(),
                    error: e["error"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(html(
        status,
        &JobPage {
            f,
            args: serde_json::to_string_pretty(&job.args).unwrap_or_default(),
            attempts,
            retryable: sen_jobs::queue::RETRYABLE_STATES.contains(&job.state.as_str()),
            cancellable: matches!(
                job.state.as_str(),
                "available" | "scheduled" | "retryable" | "running"
            ),
            can_write,
            error,
            job,
        },
    ))
}

/// `GET /admin/apps/jobs/{id}`.
pub async fn job(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/jobs") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has(api::READ) {
        return Ok(forbidden(f));
    }
    render_job(&ctx, me, f, id, StatusCode::OK, None).await
}

/// A form's fields, repeated ones kept (`id` may come many times).
fn fields(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// `POST /admin/apps/jobs/{id}/{retry|cancel}`: back to `back` (the list
/// by default), or the job's page with the reason it was refused.
pub async fn act(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/jobs") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let form = fields(&body);
    if !csrf_ok(&ctx, Some(&me), &headers, field(&form, "csrf")) || !me.has(api::WRITE) {
        return Ok(forbidden(f));
    }
    let done = match action.as_str() {
        "retry" => api::retry_job(State(ctx.clone()), me.clone(), meta, Path(id.clone())).await,
        "cancel" => api::cancel_job(State(ctx.clone()), me.clone(), meta, Path(id.clone())).await,
        _ => return Err(AppError::not_found()),
    };
    crate::admin::forget_queue_stats(&ctx);
    match done {
        Ok(_) => {
            let back = field(&form, "back");
            Ok(see_other(if back.is_empty() {
                "/admin/apps/jobs?state=dead"
            } else {
                back
            }))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            render_job(&ctx, me, f, id, e.status(), Some(describe(&e))).await
        }
        Err(e) => Err(e),
    }
}

/// How many jobs one bulk action may touch (the page shows at most 100).
const BULK_MAX: usize = 100;

/// `POST /admin/apps/jobs/bulk`: `op=retry|cancel` with repeated `id`, or
/// `op=retry-dead` (every dead job, of `queue` when given).
pub async fn bulk(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/jobs") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let form = fields(&body);
    if !csrf_ok(&ctx, Some(&me), &headers, field(&form, "csrf")) || !me.has(api::WRITE) {
        return Ok(forbidden(f));
    }
    let tx = f.tx;
    let ids: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .take(BULK_MAX)
        .collect();
    let (mut changed, mut refused) = (0u64, 0u64);
    match field(&form, "op") {
        op @ ("retry" | "cancel") => {
            for id in ids {
                let r = if op == "retry" {
                    api::retry_job(
                        State(ctx.clone()),
                        me.clone(),
                        meta.clone(),
                        Path(id.to_string()),
                    )
                    .await
                } else {
                    api::cancel_job(
                        State(ctx.clone()),
                        me.clone(),
                        meta.clone(),
                        Path(id.to_string()),
                    )
                    .await
                };
                match r {
                    Ok(_) => changed += 1,
                    Err(e) if e.status().is_client_error() => refused += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        "retry-dead" => {
            let queue = field(&form, "queue");
            let body = api::BulkRetry {
                filter: api::RetryFilter {
                    state: Some("dead".into()),
                    queue: (!queue.is_empty()).then(|| queue.to_string()),
                    kind: None,
                },
            };
            let Json(r) = api::retry_jobs(State(ctx.clone()), me.clone(), meta, Json(body)).await?;
            changed = r.retried;
        }
        _ => return Ok(forbidden(f)),
    }
    crate::admin::forget_queue_stats(&ctx);
    let back = local(field(&form, "back"));
    let back = if back.starts_with("/admin/apps/jobs") {
        back
    } else {
        "/admin/apps/jobs".into()
    };
    let sep = if back.contains('?') { '&' } else { '?' };
    let done = format!(
        "{changed} {} · {refused} {}",
        tx.done_count, tx.refused_count
    );
    Ok(see_other(&format!("{back}{sep}done={}", urlencode(&done))))
}
