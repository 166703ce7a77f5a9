//! The built-in `system` app: proves the app mechanism end to end with
//! `GET /api/v1/system/info`, and keeps `sen_instances`, a heartbeat row per
//! running process, so any instance can tell which roles run where.

use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse as _;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, ColumnDef, Index, Table};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::app::App;
use crate::context::AppContext;
use crate::error::AppResult;
use crate::extract::Json;
use crate::migrate::{Migration, SchemaMigration};
use crate::role::Role;

/// How often a process refreshes its `sen_instances` row.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A row older than this belongs to a process that is gone.
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(35);

/// The built-in `system` app.
pub struct SystemApp;

impl App for SystemApp {
    fn name(&self) -> &'static str {
        "system"
    }

    fn title(&self) -> &'static str {
        "System"
    }

    fn description(&self) -> &'static str {
        "Version, backends and the processes running this deployment."
    }

    fn icon(&self) -> &'static str {
        "server"
    }

    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        let instances = Table::create()
            .table(Alias::new("sen_instances"))
            .col(
                ColumnDef::new(Alias::new("id"))
                    .string()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(Alias::new("roles")).string().not_null())
            .col(ColumnDef::new(Alias::new("version")).string().not_null())
            .col(ColumnDef::new(Alias::new("started_at")).string().not_null())
            .col(
                ColumnDef::new(Alias::new("last_seen_at"))
                    .string()
                    .not_null(),
            )
            .to_owned();
        let by_last_seen = Index::create()
            .name("sen_instances_last_seen")
            .table(Alias::new("sen_instances"))
            .col(Alias::new("last_seen_at"))
            .to_owned();
        vec![
            Box::new(
                SchemaMigration::new("0001_instances")
                    .statement(instances)
                    .statement(by_last_seen),
            ),
            Box::new(crate::jobs::schema::CreateJobTables),
            Box::new(crate::jobs::schema::AddJobOrdering),
            Box::new(crate::mail::CreateMailTables),
            Box::new(crate::jobs::schema::IndexJobsByState),
            Box::new(crate::activity::CreateActivity),
            Box::new(crate::settings::CreateSettings),
            Box::new(crate::jobs::schema::OneStateIndex),
        ]
    }

    fn permissions(&self) -> Vec<crate::rbac::PermissionDecl> {
        use crate::rbac::PermissionDecl;
        vec![PermissionDecl::read(
            "instances.read",
            "See the processes of this deployment",
        )]
    }

    fn routes(&self) -> crate::routes::Routes {
        crate::routes::Routes::new()
            .routes(routes!(info))
            .routes(routes!(instances))
    }
}

/// Backends in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backends {
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// `memory` or `redis`.
    pub cache: &'static str,
    /// `local` or `redis`.
    pub pubsub: &'static str,
}

/// A running Sen process, from its heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instance {
    /// Process id (UUIDv7).
    pub id: String,
    /// Roles it plays.
    pub roles: Vec<String>,
    /// Its version.
    pub version: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its last heartbeat (RFC 3339).
    pub last_seen_at: String,
}

/// An installed app.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppSummary {
    /// URL name.
    pub name: &'static str,
    /// Title.
    pub title: &'static str,
}

/// What `GET /api/v1/system/info` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemInfo {
    /// Sen's version.
    pub version: &'static str,
    /// This process's id.
    pub instance_id: String,
    /// Roles this process plays.
    pub roles: Vec<Role>,
    /// Backends this process uses.
    pub backends: Backends,
    /// Installed apps.
    pub apps: Vec<AppSummary>,
}

/// Version, backends, roles and apps of the answering process. Answered
/// from memory: no database round trip.
#[utoipa::path(get, path = "/info", tag = "system", responses(
    (status = 200, description = "About this deployment", body = SystemInfo),
))]
async fn info(State(ctx): State<AppContext>) -> axum::response::Response {
    // Nothing in it changes while the process runs: serialise once.
    let body = ctx.system_info_json().get_or_init(|| {
        let info = SystemInfo {
            version: env!("CARGO_PKG_VERSION"),
            instance_id: ctx.instance_id().to_string(),
            roles: ctx.roles().to_vec(),
            backends: Backends {
                database: ctx.db().backend().as_str(),
                cache: ctx.cache().kind(),
                pubsub: ctx.pubsub().kind(),
            },
            apps: ctx
                .apps()
                .iter()
                .map(|a| AppSummary {
                    name: a.name(),
                    title: a.title(),
                })
                .collect(),
        };
        bytes::Bytes::from(serde_json::to_vec(&info).unwrap_or_default())
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body.clone(),
    )
        .into_response()
}

/// The running processes of this deployment and their roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instances {
    /// Processes with a recent heartbeat, oldest first.
    pub items: Vec<Instance>,
}

/// Processes of this deployment with a recent heartbeat, and their roles.
#[utoipa::path(get, path = "/instances", tag = "system", responses(
    (status = 200, description = "Live processes", body = Instances),
    (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "Lacks `system:instances.read`", body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 503, description = "Database unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
))]
async fn instances(
    State(ctx): State<AppContext>,
    me: crate::principal::Principal,
) -> AppResult<Json<Instances>> {
    me.require("system:instances.read")?;
    Ok(Json(Instances {
        items: live_instances(&ctx).await?,
    }))
}

/// Processes whose heartbeat is recent.
pub async fn live_instances(ctx: &AppContext) -> AppResult<Vec<Instance>> {
    let cutoff = crate::clock::iso(crate::clock::now() - STALE_AFTER);
    let rows = ctx
        .db()
        .orm()
        .query_all_raw(ctx.db().statement(
            "SELECT id, roles, version, started_at, last_seen_at FROM sen_instances WHERE last_seen_at > ? ORDER BY started_at",
            [cutoff.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Instance {
                id: r.try_get("", "id")?,
                roles: r
                    .try_get::<String>("", "roles")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                version: r.try_get("", "version")?,
                started_at: r.try_get("", "started_at")?,
                last_seen_at: r.try_get("", "last_seen_at")?,
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(Into::into)
}

/// Writes this process's heartbeat row and prunes rows of processes gone.
pub async fn beat(ctx: &AppContext) -> Result<(), sea_orm::DbErr> {
    let now = crate::clock::now();
    let roles = ctx
        .roles()
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO sen_instances (id, roles, version, started_at, last_seen_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
            [
                ctx.instance_id().to_string().into(),
                roles.into(),
                env!("CARGO_PKG_VERSION").into(),
                crate::clock::iso(ctx.started_at()).into(),
                crate::clock::iso(now).into(),
            ],
        ))
        .await?;
    let stale = crate::clock::iso(now - STALE_AFTER * 10);
    db.orm()
        .execute_raw(db.statement(
            "DELETE FROM sen_instances WHERE last_seen_at < ?",
            [stale.into()],
        ))
        .await?;
    Ok(())
}

/// Removes this process's row (on clean shutdown).
pub async fn leave(ctx: &AppContext) {
    let db = ctx.db();
    let _ = db
        .orm()
        .execute_raw(db.statement(
            "DELETE FROM sen_instances WHERE id = ?",
            [ctx.instance_id().to_string().into()],
        ))
        .await;
}

/// Heartbeats until the process ends; failures are logged and retried.
pub async fn run_heartbeat(ctx: AppContext) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(e) = beat(&ctx).await {
            tracing::warn!(error = %e, "instance heartbeat failed");
        }
        if let Err(e) = ctx.activity().flush(&ctx).await {
            tracing::warn!(error = %e, "activity counts not written");
        }
    }
}
