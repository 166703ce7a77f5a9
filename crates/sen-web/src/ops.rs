//! More operator sections: the audit log (filter by actor, action, time),
//! cron schedules (last and next run, run now) and the mail outbox with
//! previews — each behind the permission of its API.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppResult};
use serde::Deserialize;

use crate::admin::gate;
use crate::login::TokenForm;
use crate::page::{Frame, csrf_ok, describe, forbidden, html, see_other};

macro_rules! gated {
    ($ctx:expr, $headers:expr, $who:expr, $path:expr, $perm:expr) => {
        match gate(&$ctx, &$headers, $who, $path) {
            Ok((me, f)) if me.has($perm) => (me, f),
            Ok((_, f)) => return Ok(forbidden(f)),
            Err(r) => return Ok(*r),
        }
    };
}

/// One audit line.
pub struct AuditLine {
    /// When.
    pub at: String,
    /// What.
    pub action: String,
    /// Who.
    pub actor: String,
    /// To what.
    pub target: String,
    /// From where.
    pub ip: String,
}

/// The audit page.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    /// Frame.
    pub f: Frame,
    /// Filter: actor id.
    pub actor: String,
    /// Filter: action.
    pub action: String,
    /// Filter: since.
    pub since: String,
    /// Entries.
    pub entries: Vec<AuditLine>,
    /// Older entries.
    pub next_cursor: Option<String>,
    /// A bad filter.
    pub error: Option<String>,
}

/// Audit filters.
#[derive(Debug, Deserialize)]
pub struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    cursor: Option<String>,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// `GET /admin/apps/audit`.
pub async fn audit(
    State(ctx): State<AppContext>,
    who: Option<sen_core::Principal>,
    headers: HeaderMap,
    Query(q): Query<AuditFilter>,
) -> AppResult<Response> {
    let (me, f) = gated!(ctx, headers, who, "/admin/apps/audit", "auth:audit.read");
    let query = sen_auth::routes::admin::AuditQuery {
        actor: opt(&q.actor),
        action: opt(&q.action),
        target: None,
        since: opt(&q.since),
        until: None,
        limit: Some(100),
        cursor: q.cursor,
    };
    let (entries, next_cursor, error, status) =
        match sen_auth::routes::admin::list_audit(State(ctx.clone()), me, Query(query)).await {
            Ok(Json(page)) => (
                page.items
                    .into_iter()
                    .map(|e| AuditLine {
                        at: e.at,
                        action: e.action,
                        actor: e.actor_id.unwrap_or_default(),
                        target: e.target.unwrap_or_default(),
                        ip: e.ip.unwrap_or_default(),
                    })
                    .collect(),
                page.next_cursor,
                None,
                StatusCode::OK,
            ),
            Err(e) if e.status().is_client_error() => {
                (Vec::new(), None, Some(describe(&e)), e.status())
            }
            Err(e) => return Err(e),
        };
    Ok(html(
        status,
        &AuditPage {
            f,
            actor: q.actor,
            action: q.action,
            since: q.since,
            entries,
            next_cursor,
            error,
        },
    ))
}

/// One schedule line.
pub struct ScheduleLine {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Last fire.
    pub last: String,
    /// Next fire.
    pub next: String,
}

/// The schedules page.
#[derive(Template)]
#[template(path = "schedules.html")]
pub struct SchedulesPage {
    /// Frame.
    pub f: Frame,
    /// Schedules.
    pub schedules: Vec<ScheduleLine>,
    /// Show "run now".
    pub can_write: bool,
    /// A success line.
    pub notice: Option<&'static str>,
}

/// `?queued=1`.
#[derive(Debug, Deserialize)]
pub struct Queued {
    #[serde(default)]
    queued: Option<String>,
}

/// `GET /admin/apps/schedules`.
pub async fn schedules(
    State(ctx): State<AppContext>,
    who: Option<sen_core::Principal>,
    headers: HeaderMap,
    Query(q): Query<Queued>,
) -> AppResult<Response> {
    let (me, f) = gated!(
        ctx,
        headers,
        who,
        "/admin/apps/schedules",
        sen_jobs::admin::READ
    );
    let can_write = me.has(sen_jobs::admin::WRITE);
    let Json(list) = sen_jobs::admin::list_schedules(State(ctx.clone()), me).await?;
    let notice = q.queued.is_some().then_some(f.tx.queued_now);
    Ok(html(
        StatusCode::OK,
        &SchedulesPage {
            f,
            schedules: list
                .items
                .into_iter()
                .map(|s| ScheduleLine {
                    name: s.name,
                    cron: s.cron,
                    last: s.last_fire_at.unwrap_or_default(),
                    next: s.next_fire_at.unwrap_or_default(),
                })
                .collect(),
            can_write,
            notice,
        },
    ))
}

/// `POST /admin/apps/schedules/{name}/run`.
pub async fn run_schedule(
    State(ctx): State<AppContext>,
    who: Option<sen_core::Principal>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let (me, f) = gated!(
        ctx,
        headers,
        who,
        "/admin/apps/schedules",
        sen_jobs::admin::WRITE
    );
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(f));
    }
    sen_jobs::admin::run_schedule(State(ctx.clone()), me, Path(name)).await?;
    Ok(see_other("/admin/apps/schedules?queued=1"))
}

/// One outbox line.
pub struct MailLine {
    /// Id.
    pub id: String,
    /// To.
    pub recipient: String,
    /// Subject (or the template before rendering).
    pub subject: String,
    /// State.
    pub state: String,
    /// Attempts.
    pub attempts: i32,
    /// Last error.
    pub error: String,
}

/// The outbox page.
#[derive(Template)]
#[template(path = "mail.html")]
pub struct MailPage {
    /// Frame.
    pub f: Frame,
    /// Newest first.
    pub messages: Vec<MailLine>,
}

/// `GET /admin/apps/mail`.
pub async fn mail(
    State(ctx): State<AppContext>,
    who: Option<sen_core::Principal>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let (me, f) = gated!(
        ctx,
        headers,
        who,
        "/admin/apps/mail",
        sen_mail::routes::READ
    );
    let q = sen_mail::routes::MailQuery {
        state: None,
        recipient: None,
        limit: Some(100),
        cursor: None,
    };
    let Json(page) = sen_mail::routes::list_mail(State(ctx.clone()), me, Query(q)).await?;
    Ok(html(
        StatusCode::OK,
        &MailPage {
            f,
            messages: page
                .items
                .into_iter()
                .map(|m| MailLine {
                    subject: m.subject.unwrap_or(m.template),
                    id: m.id,
                    recipient: m.recipient,
                    state: m.state,
                    attempts: m.attempts,
                    error: m.last_error.unwrap_or_default(),
                })
                .collect(),
        },
    ))
}

/// One message's preview.
#[derive(Template)]
#[template(path = "mail_one.html")]
pub struct MailOne {
    /// Frame.
    pub f: Frame,
    /// To.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// State.
    pub state: String,
    /// Text part.
    pub text: String,
    /// HTML part (shown in a sandboxed frame).
    pub html: String,
}

/// `GET /admin/apps/mail/{id}`.
pub async fn mail_one(
    State(ctx): State<AppContext>,
    who: Option<sen_core::Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (me, f) = gated!(
        ctx,
        headers,
        who,
        "/admin/apps/mail",
        sen_mail::routes::READ
    );
    let Json(m) = sen_mail::routes::get_mail(State(ctx.clone()), me, Path(id)).await?;
    Ok(html(
        StatusCode::OK,
        &MailOne {
            f,
            recipient: m.recipient,
            subject: m.subject.unwrap_or_default(),
            state: m.state,
            text: m.text.unwrap_or_default(),
            html: m.html.unwrap_or_default(),
        },
    ))
}
