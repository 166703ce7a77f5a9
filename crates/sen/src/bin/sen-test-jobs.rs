//! `sen` with diagnostic jobs, for the multi-process tests of the worker
//! service: the real command line and runtime, plus an app whose jobs
//! record idempotent effects, sleep, panic or abort the process.
//! Not for production use.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, ColumnDef, Table};
use sen_core::jobs::{
    Backoff, Event, EventContext, Job, JobContext, JobError, JobHandler, JobOptions, NewJob,
    Schedule, Subscriber,
};
use sen_core::migrate::{Migration, SchemaMigration};
use sen_core::{App, Apps};
use serde::{Deserialize, Serialize};

/// Sleeps, then records one effect row per job (a rerun adds nothing).
#[derive(Serialize, Deserialize)]
struct Effect {
    tag: String,
    sleep_ms: u64,
}

async fn record(
    ctx: &sen_core::AppContext,
    key: &str,
    tag: &str,
    attempt: i32,
) -> Result<(), JobError> {
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO chaos_effects (effect_key, tag, attempt, pid) VALUES (?, ?, ?, ?) ON CONFLICT (effect_key) DO NOTHING",
            [key.into(), tag.into(), attempt.into(), i64::from(std::process::id()).into()],
        ))
        .await?;
    Ok(())
}

impl Job for Effect {
    const KIND: &'static str = "chaos.effect";
    fn options() -> JobOptions {
        JobOptions {
            max_attempts: 5,
            backoff: Backoff::Fixed(Duration::from_millis(100)),
            ..JobOptions::default()
        }
    }
    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        record(&ctx.app, &ctx.id, &self.tag, ctx.attempt).await
    }
}

/// Panics on every attempt.
#[derive(Serialize, Deserialize)]
struct Panics;

impl Job for Panics {
    const KIND: &'static str = "chaos.panic";
    fn options() -> JobOptions {
        JobOptions {
            max_attempts: 3,
            backoff: Backoff::Fixed(Duration::from_millis(100)),
            ..JobOptions::default()
        }
    }
    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        panic!("chaos: panic on purpose")
    }
}

/// Kills its worker process on every attempt.
#[derive(Serialize, Deserialize)]
struct Aborts;

impl Job for Aborts {
    const KIND: &'static str = "chaos.abort";
    fn options() -> JobOptions {
        JobOptions {
            max_attempts: 3,
            backoff: Backoff::Fixed(Duration::from_millis(100)),
            ..JobOptions::default()
        }
    }
    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        std::process::abort()
    }
}

struct Chaos;

impl App for Chaos {
    fn name(&self) -> &'static str {
        "chaos"
    }
    fn title(&self) -> &'static str {
        "Chaos"
    }
    fn description(&self) -> &'static str {
        "Diagnostic jobs for the worker service's multi-process tests"
    }
    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        let effects = Table::create()
            .table(Alias::new("chaos_effects"))
            .col(
                ColumnDef::new(Alias::new("effect_key"))
                    .string()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(Alias::new("tag")).string().not_null())
            .col(ColumnDef::new(Alias::new("attempt")).integer().not_null())
            .col(ColumnDef::new(Alias::new("pid")).big_integer().not_null())
            .to_owned();
        vec![Box::new(
            SchemaMigration::new("0001_effects").statement(effects),
        )]
    }
    fn topics(&self) -> Vec<sen_core::realtime::TopicDecl> {
        vec![sen_core::realtime::TopicDecl::new(
            "chaos:{id}",
            |_, _, _| Box::pin(async { Ok(true) }),
        )]
    }
    fn routes(&self) -> sen_core::routes::Routes {
        sen_core::routes::Routes::new()
            .routes(utoipa_axum::routes!(publish))
            .routes(utoipa_axum::routes!(notify_me))
    }
    fn jobs(&self) -> Vec<JobHandler> {
        vec![
            JobHandler::of::<Effect>(),
            JobHandler::of::<Panics>(),
            JobHandler::of::<Aborts>(),
        ]
    }
    fn schedules(&self) -> Vec<Schedule> {
        let tick = Effect {
            tag: "tick".into(),
            sleep_ms: 0,
        };
        match NewJob::of(&tick) {
            Ok(job) if std::env::var_os("CHAOS_SCHEDULE").is_some() => {
                vec![Schedule::new("chaos.tick", "* * * * * *", job)]
            }
            _ => Vec::new(),
        }
    }
    fn subscribers(&self) -> Vec<Subscriber> {
        vec![Subscriber::new(
            "chaos.sub",
            "chaos.*",
            |ctx: EventContext, ev: Event| async move {
                let key = format!("{}:chaos.sub", ctx.event_id);
                record(&ctx.job.app, &key, &ev.name, ctx.job.attempt).await
            },
        )]
    }
}

fn apps() -> anyhow::Result<Apps> {
    Ok(sen::platform_apps()?.register(Chaos)?)
}

/// An event to publish.
#[derive(Deserialize, utoipa::ToSchema)]
struct Publish {
    topic: String,
    name: String,
    data: serde_json::Value,
}

/// Publishes an event on any topic (signed-in callers; diagnostics only).
#[utoipa::path(post, path = "/publish", request_body = Publish, responses((status = 200)))]
async fn publish(
    axum::extract::State(ctx): axum::extract::State<sen_core::AppContext>,
    _me: sen_core::Principal,
    sen_core::extract::Json(p): sen_core::extract::Json<Publish>,
) -> sen_core::AppResult<sen_core::extract::Json<serde_json::Value>> {
    let id = ctx.realtime().publish(&p.topic, &p.name, p.data).await?;
    Ok(sen_core::extract::Json(serde_json::json!({ "id": id })))
}

/// Sends the caller a notification.
#[utoipa::path(post, path = "/notify-me", responses((status = 200)))]
async fn notify_me(
    axum::extract::State(ctx): axum::extract::State<sen_core::AppContext>,
    me: sen_core::Principal,
) -> sen_core::AppResult<sen_core::extract::Json<sen_realtime::Notification>> {
    let n = sen_realtime::notify(
        &ctx,
        &me.user_id,
        sen_realtime::NewNotification {
            kind: "chaos.hello".into(),
            title: "Hello".into(),
            body: String::new(),
            data: serde_json::json!({}),
        },
    )
    .await?;
    Ok(sen_core::extract::Json(n))
}

fn main() -> std::process::ExitCode {
    sen::main_with(apps)
}
