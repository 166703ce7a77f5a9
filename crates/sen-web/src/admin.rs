//! `/admin/apps`: the dashboard home (one card per app, a health strip)
//! and users (search, disable/enable). Signed-out visitors are sent to sign in; signed-in users
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
    /// The app's icon name (a hook for themes).
    pub icon: &'static str,
    /// The title's first letter, drawn as the icon.
    pub initial: char,
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
    /// Share of 5xx answers over the last hour.
    pub error_rate: String,
    /// The last hour's charts.
    pub charts: Vec<crate::charts::Chart>,
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
    let (queued, dead) = match queue_stats(ctx).await {
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

/// Whether `me` holds a global operator role (every app) or `app`'s own
/// admin or viewer role.
pub fn may_administer(me: &Principal, app: &str) -> bool {
    me.grants.iter().any(|g| {
        g.scope.is_empty()
            && (sen_core::rbac::OPERATOR_ROLES.contains(&g.role.as_str())
                || g.role
                    .strip_prefix(app)
                    .is_some_and(|r| r == ".admin" || r == ".viewer"))
    })
}

/// Per-queue counts, read at most every [`HEALTH_TTL`] per process:
/// counting 100,000 jobs costs more than the pages that show them. Job
/// actions on this instance forget them ([`forget_queue_stats`]).
#[derive(Default)]
struct StatsCache(std::sync::Mutex<Option<(std::time::Instant, Vec<sen_jobs::queue::QueueStats>)>>);

fn stats_cache(ctx: &AppContext) -> std::sync::Arc<StatsCache> {
    ctx.extension::<StatsCache>().unwrap_or_else(|| {
        let c = std::sync::Arc::new(StatsCache::default());
        ctx.insert_extension(c.clone());
        c
    })
}

/// The queues' counts (at most [`HEALTH_TTL`] old).
pub async fn queue_stats(ctx: &AppContext) -> AppResult<Vec<sen_jobs::queue::QueueStats>> {
    let cache = stats_cache(ctx);
    if let Some((at, stats)) = &*cache
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        && at.elapsed() < HEALTH_TTL
    {
        return Ok(stats.clone());
    }
    let stats = sen_jobs::queue::stats(ctx.db()).await?;
    *cache
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some((std::time::Instant::now(), stats.clone()));
    Ok(stats)
}

/// Drops the cached counts (after this instance changed jobs).
pub fn forget_queue_stats(ctx: &AppContext) {
    *stats_cache(ctx)
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

/// `GET /admin/apps`.
pub async fn home(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
) -> Response {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let h = health(&ctx).await;
    let (charts, error_rate) = crate::charts::last_hour(&ctx, f.tx).await;
    let apps = ctx
        .apps()
        .iter()
        .filter(|a| may_administer(&me, a.name()))
        .map(|a| Card {
            name: a.name(),
            title: a.title(),
            description: a.description(),
            icon: a.icon(),
            initial: a.title().chars().next().unwrap_or('·'),
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
            error_rate,
            charts,
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
    /// Only holders of this role ("" = everyone).
    pub role: String,
    /// `active`, `disabled`, or "" for both.
    pub status: &'static str,
    /// This page.
    pub users: Vec<UserLine>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
    /// Show disable/enable and the create form.
    pub can_write: bool,
    /// Why the last create failed.
    pub error: Option<String>,
}

/// `?q=&role=&status=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct UserSearch {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    /// `active`, `disabled`, or anything else for both.
    #[serde(default)]
    status: String,
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
    use sen_auth::routes::admin::UserStatus;
    let status = match s.status.as_str() {
        "active" => Some(UserStatus::Active),
        "disabled" => Some(UserStatus::Disabled),
        _ => None,
    };
    let query = sen_auth::routes::admin::UserQuery {
        q: Some(s.q.clone()),
        role: Some(s.role.clone()),
        status,
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
            role: s.role,
            status: match status {
                Some(UserStatus::Active) => "active",
                Some(UserStatus::Disabled) => "disabled",
                None => "",
            },
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

/// A form with its token and the local page to return to.
#[derive(Debug, Deserialize)]
pub struct BackForm {
    /// The CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Where to go afterwards (a local path; default the users list).
    #[serde(default)]
    pub back: String,
}

/// `POST /admin/apps/users/{id}/disable|enable`.
pub async fn user_action(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<BackForm>,
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
    Ok(see_other(if form.back.is_empty() {
        "/admin/apps/users"
    } else {
        &form.back
    }))
}
