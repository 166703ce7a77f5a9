//! `/admin/apps`: the dashboard home (one card per app, a health strip),
//! users (search, disable/enable) and jobs (by state, the dead-letter
//! queue, retry). Signed-out visitors are sent to sign in; signed-in users
//! without an operator role get the 403 page on every `/admin` URL; each
//! section also needs the permission its API needs.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppResult, Principal};
use serde::Deserialize;

use crate::login::TokenForm;
use crate::page::{Frame, csrf_ok, forbidden, html, see_other};

/// Lets operators through; others get a redirect to sign in or the 403 page.
pub fn gate(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    path: &str,
) -> Result<(Principal, Frame), Box<Response>> {
    match who {
        None => Err(Box::new(crate::refresh::via_refresh(path))),
        Some(p) => {
            let f = Frame::new(ctx, headers, Some(&p), path);
            if p.operator {
                Ok((p, f))
            } else {
                Err(Box::new(forbidden(f)))
            }
        }
    }
}

/// Percent-encodes a path for a `next=` parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /admin/apps/login`: the shared sign-in page, back to the dashboard.
pub async fn login_redirect() -> Response {
    see_other("/login?next=/admin/apps")
}

/// One app's card.
pub struct Card {
    /// URL-safe name.
    pub name: &'static str,
    /// Title.
    pub title: &'static str,
    /// One sentence.
    pub description: &'static str,
}

/// The dashboard home.
#[derive(Template)]
#[template(path = "home.html")]
pub struct Home {
    /// Frame.
    pub f: Frame,
    /// Cards.
    pub apps: Vec<Card>,
    /// Binary version.
    pub version: &'static str,
    /// The database answers.
    pub db_ok: bool,
    /// Redis answers (None: not configured).
    pub redis_ok: Option<bool>,
    /// Jobs waiting.
    pub queued: i64,
    /// Jobs dead.
    pub dead: i64,
}

/// The health strip's numbers, read at most every [`HEALTH_TTL`]: counting
/// a large queue on every page view would cost more than the page.
#[derive(Clone, Copy)]
struct Health {
    db_ok: bool,
    redis_ok: Option<bool>,
    queued: i64,
    dead: i64,
}

/// How stale the health strip may be.
const HEALTH_TTL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Default)]
struct HealthCache(std::sync::Mutex<Option<(std::time::Instant, Health)>>);

async fn health(ctx: &AppContext) -> Health {
    let cache = match ctx.extension::<HealthCache>() {
        Some(c) => c,
        None => {
            let c = std::sync::Arc::new(HealthCache::default());
            ctx.insert_extension(c.clone());
            c
        }
    };
    let cached = *cache
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, h)) = cached
        && at.elapsed() < HEALTH_TTL
    {
        return h;
    }
    let ready = ctx.readiness().await;
    let (queued, dead) = match sen_jobs::queue::stats(ctx.db()).await {
        Ok(stats) => stats.iter().fold((0, 0), |(q, d), s| {
            let n = |k: &str| s.states.get(k).copied().unwrap_or(0);
            (
                q + n("available") + n("retryable") + n("scheduled"),
                d + n("dead"),
            )
        }),
        Err(_) => (0, 0),
    };
    let h = Health {
        db_ok: ready.database.ok,
        redis_ok: ready.redis.map(|c| c.ok),
        queued,
        dead,
    };
    *cache
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((std::time::Instant::now(), h));
    h
}

/// `GET /admin/apps`.
pub async fn home(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
) -> Response {
    let (_, f) = match gate(&ctx, &headers, who, "/admin/apps") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let h = health(&ctx).await;
    let apps = ctx
        .apps()
        .iter()
        .map(|a| Card {
            name: a.name(),
            title: a.title(),
            description: a.description(),
        })
        .collect();
    html(
        StatusCode::OK,
        &Home {
            f,
            apps,
            version: env!("CARGO_PKG_VERSION"),
            db_ok: h.db_ok,
            redis_ok: h.redis_ok,
            queued: h.queued,
            dead: h.dead,
        },
    )
}

/// One user row.
pub struct UserLine {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Disabled.
    pub disabled: bool,
}

/// The users page.
#[derive(Template)]
#[template(path = "users.html")]
pub struct Users {
    /// Frame.
    pub f: Frame,
    /// The search.
    pub q: String,
    /// This page.
    pub users: Vec<UserLine>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
    /// Show disable/enable and the create form.
    pub can_write: bool,
    /// Why the last create failed.
    pub error: Option<String>,
}

/// `?q=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct UserSearch {
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /admin/apps/users`.
pub async fn users(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(s): Query<UserSearch>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/users") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has("auth:users.read") {
        return Ok(forbidden(f));
    }
    let query = sen_auth::routes::admin::UserQuery {
        q: Some(s.q.clone()),
        limit: Some(50),
        cursor: s.cursor,
    };
    let Json(page) =
        sen_auth::routes::admin::list_users(State(ctx.clone()), me.clone(), Query(query)).await?;
    Ok(html(
        StatusCode::OK,
        &Users {
            f,
            q: s.q,
            users: page
                .items
                .into_iter()
                .map(|u| UserLine {
                    id: u.id,
                    email: u.email,
                    name: u.name,
                    disabled: u.disabled,
                })
                .collect(),
            next_cursor: page.next_cursor,
            can_write: me.has("auth:users.write"),
            error: None,
        },
    ))
}

/// `POST /admin/apps/users/{id}/disable|enable`.
pub async fn user_action(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/users") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) || !me.has("auth:users.write") {
        return Ok(forbidden(f));
    }
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Ok(forbidden(f)),
    };
    let body = sen_auth::routes::admin::PatchUser {
        disabled: Some(disabled),
        name: None,
    };
    sen_auth::routes::admin::patch_user(State(ctx.clone()), me, meta, Path(id), Json(body)).await?;
    Ok(see_other("/admin/apps/users"))
}

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

/// The jobs page.
#[derive(Template)]
#[template(path = "jobs.html")]
pub struct Jobs {
    /// Frame.
    pub f: Frame,
    /// The state shown.
    pub state: String,
    /// Every state.
    pub states: &'static [&'static str],
    /// The jobs.
    pub jobs: Vec<JobLine>,
    /// Show retry.
    pub can_write: bool,
}

/// `?state=`.
#[derive(Debug, Deserialize)]
pub struct JobState {
    #[serde(default)]
    state: Option<String>,
}

/// `GET /admin/apps/jobs` (dead jobs unless another state is asked for).
pub async fn jobs(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<JobState>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/jobs") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has(sen_jobs::admin::READ) {
        return Ok(forbidden(f));
    }
    let states = &sen_core::jobs::state::ALL;
    let state = q
        .state
        .filter(|s| states.contains(&s.as_str()))
        .unwrap_or_else(|| "dead".into());
    let filter = sen_jobs::queue::JobFilter {
        state: Some(state.clone()),
        queue: None,
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
    Ok(html(
        StatusCode::OK,
        &Jobs {
            f,
            state,
            states,
            jobs,
            can_write: me.has(sen_jobs::admin::WRITE),
        },
    ))
}

/// `POST /admin/apps/jobs/{id}/retry`.
pub async fn retry_job(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/jobs") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) || !me.has(sen_jobs::admin::WRITE) {
        return Ok(forbidden(f));
    }
    sen_jobs::admin::retry_job(State(ctx.clone()), me, Path(id)).await?;
    Ok(see_other("/admin/apps/jobs?state=dead"))
}
