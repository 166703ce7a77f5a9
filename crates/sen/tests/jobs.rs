//! The job queue on both backends: enqueue inside the caller's
//! transaction, unique and once keys, delays, claims that count attempts,
//! fenced completion, lease rescue, the dead-letter state, and the worker
//! runtime running real handlers (success, retry, panic, timeout).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use sen_core::jobs::{
    Backoff, Event, EventContext, Job, JobContext, JobError, JobHandler, JobOptions, NewJob,
    Schedule, Subscriber,
};
use sen_core::migrate::{Migration, SchemaMigration};
use sen_core::{App, Apps, Backend};
use sen_jobs::queue::{self, FailOutcome};
use sen_testkit::TestApp;
use serde::{Deserialize, Serialize};

/// The order in which the ordered subscriber ran its deliveries.
static SEQ: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Writes one effect row per job id (idempotent: a rerun changes nothing).
#[derive(Serialize, Deserialize)]
struct Record {
    tag: String,
}

impl Job for Record {
    const KIND: &'static str = "test.record";
    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let db = ctx.app.db();
        db.orm()
            .execute_raw(db.statement(
                "INSERT INTO test_effects (job_id, tag, attempt) VALUES (?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                [ctx.id.clone().into(), self.tag.into(), ctx.attempt.into()],
            ))
            .await?;
        Ok(())
    }
}

/// Fails on its first attempt, succeeds after.
#[derive(Serialize, Deserialize)]
struct Flaky;

impl Job for Flaky {
    const KIND: &'static str = "test.flaky";
    fn options() -> JobOptions {
        JobOptions {
            backoff: Backoff::Fixed(Duration::from_millis(10)),
            ..JobOptions::default()
        }
    }
    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        if ctx.attempt == 1 {
            return Err(JobError::retry("first attempt always fails"));
        }
        Record {
            tag: "flaky".into(),
        }
        .run(ctx)
        .await
    }
}

/// Panics every time.
#[derive(Serialize, Deserialize)]
struct Explodes;

impl Job for Explodes {
    const KIND: &'static str = "test.explodes";
    fn options() -> JobOptions {
        JobOptions {
            max_attempts: 3,
            backoff: Backoff::Fixed(Duration::from_millis(10)),
            ..JobOptions::default()
        }
    }
    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        panic!("handler exploded")
    }
}

/// Sleeps past its time limit.
#[derive(Serialize, Deserialize)]
struct Sleeper;

impl Job for Sleeper {
    const KIND: &'static str = "test.sleeper";
    fn options() -> JobOptions {
        JobOptions {
            max_attempts: 2,
            timeout: Duration::from_millis(100),
            backoff: Backoff::Fixed(Duration::from_millis(10)),
            ..JobOptions::default()
        }
    }
    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

/// Sleeps `ms`, then records its effect.
#[derive(Serialize, Deserialize)]
struct Nap {
    ms: u64,
}

impl Job for Nap {
    const KIND: &'static str = "test.nap";
    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Record { tag: "nap".into() }.run(ctx).await
    }
}

struct TestJobs;

impl App for TestJobs {
    fn name(&self) -> &'static str {
        "testjobs"
    }
    fn title(&self) -> &'static str {
        "Test jobs"
    }
    fn description(&self) -> &'static str {
        "Jobs the tests run"
    }
    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        use sea_orm::sea_query::{Alias, ColumnDef, Table};
        let effects = Table::create()
            .table(Alias::new("test_effects"))
            .col(
                ColumnDef::new(Alias::new("job_id"))
                    .string()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(Alias::new("tag")).string().not_null())
            .col(ColumnDef::new(Alias::new("attempt")).integer().not_null())
            .to_owned();
        vec![Box::new(
            SchemaMigration::new("0001_effects").statement(effects),
        )]
    }
    fn subscribers(&self) -> Vec<Subscriber> {
        let record = |sub: &'static str| {
            move |ctx: EventContext, ev: Event| async move {
                let db = ctx.job.app.db();
                db.orm()
                    .execute_raw(db.statement(
                        "INSERT INTO test_effects (job_id, tag, attempt) VALUES (?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                        [format!("{}:{sub}", ctx.event_id).into(), format!("{sub}:{}", ev.name).into(), ctx.job.attempt.into()],
                    ))
                    .await?;
                Ok(())
            }
        };
        vec![
            Subscriber::new("posts", "post.*", record("posts")),
            Subscriber::new("created", "post.created", record("created")),
            Subscriber::new("ordered", "seq.*", |ctx: EventContext, ev: Event| async move {
                let n = ev.payload["n"].as_i64().unwrap_or(0);
                // Later events would finish first if they ran side by side.
                tokio::time::sleep(Duration::from_millis(20 - n as u64)).await;
                if n == 3 && ctx.job.attempt == 1 {
                    return Err(JobError::retry("the third event fails once"));
                }
                let order = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let db = ctx.job.app.db();
                db.orm()
                    .execute_raw(db.statement(
                        "INSERT INTO test_effects (job_id, tag, attempt) VALUES (?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                        [
                            format!("{}:ordered", ctx.event_id).into(),
                            format!("ord:{}:{order:06}:{n:03}", ev.key.clone().unwrap_or_default()).into(),
                            ctx.job.attempt.into(),
                        ],
                    ))
                    .await?;
                Ok(())
            })
            .ordered(),
        ]
    }
    fn schedules(&self) -> Vec<Schedule> {
        vec![Schedule::new(
            "test.every-second",
            "* * * * * *",
            NewJob::of(&Record { tag: "tick".into() }).unwrap(),
        )]
    }
    fn jobs(&self) -> Vec<JobHandler> {
        vec![
            JobHandler::of::<Record>(),
            JobHandler::of::<Flaky>(),
            JobHandler::of::<Explodes>(),
            JobHandler::of::<Sleeper>(),
            JobHandler::of::<Nap>(),
        ]
    }
}

fn apps() -> Apps {
    Apps::new()
        .register(sen_core::system::SystemApp)
        .unwrap()
        .register(TestJobs)
        .unwrap()
}

async fn spawn(backend: Backend) -> TestApp {
    TestApp::builder(backend).apps(apps()).spawn().await
}

async fn spawn_with_workers(backend: Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(apps())
        .config(|c| {
            c.job_poll_ms = 50;
            c.job_lease_ms = 2_000;
        })
        .workers()
        .spawn()
        .await
}

async fn job_state(app: &TestApp, id: &str) -> (String, i32, String) {
    let db = app.ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT state, attempt, errors FROM sen_jobs WHERE id = ?",
            [id.into()],
        ))
        .await
        .unwrap()
        .expect("job row");
    (
        row.try_get("", "state").unwrap(),
        row.try_get("", "attempt").unwrap(),
        row.try_get("", "errors").unwrap(),
    )
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = app.ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(sql, []))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn wait_state(app: &TestApp, id: &str, want: &str) -> (String, i32, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = job_state(app, id).await;
        if s.0 == want {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} stuck in {s:?}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn enqueue(app: &TestApp, job: NewJob) -> String {
    app.ctx
        .jobs()
        .enqueue(app.ctx.db().orm(), job)
        .await
        .unwrap()
        .id
}

async fn enqueue_commits_and_rolls_back_with_the_caller(app: TestApp) {
    let jobs = app.ctx.jobs();
    let tx = app.ctx.db().begin_write().await.unwrap();
    let rolled = jobs
        .enqueue(&tx, NewJob::of(&Record { tag: "x".into() }).unwrap())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let tx = app.ctx.db().begin_write().await.unwrap();
    let kept = jobs
        .enqueue(&tx, NewJob::of(&Record { tag: "y".into() }).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let db = app.ctx.db();
    let gone = db
        .orm()
        .query_one_raw(db.statement("SELECT id FROM sen_jobs WHERE id = ?", [rolled.id.into()]))
        .await
        .unwrap();
    assert!(gone.is_none(), "a rolled-back enqueue leaves no job");
    assert_eq!(job_state(&app, &kept.id).await.0, "available");
}

async fn unique_keys_dedupe_live_jobs_and_once_keys_forever(app: TestApp) {
    let a = app
        .ctx
        .jobs()
        .enqueue(
            app.ctx.db().orm(),
            NewJob::of(&Record { tag: "u".into() })
                .unwrap()
                .unique("k1"),
        )
        .await
        .unwrap();
    let b = app
        .ctx
        .jobs()
        .enqueue(
            app.ctx.db().orm(),
            NewJob::of(&Record { tag: "u".into() })
                .unwrap()
                .unique("k1"),
        )
        .await
        .unwrap();
    assert!(!a.duplicate && b.duplicate);
    assert_eq!(a.id, b.id);
    // Once the job finished, the unique key is free again.
    let claimed = queue::claim(app.ctx.db(), "default", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(queue::complete(app.ctx.db(), &claimed[0]).await.unwrap());
    let c = app
        .ctx
        .jobs()
        .enqueue(
            app.ctx.db().orm(),
            NewJob::of(&Record { tag: "u".into() })
                .unwrap()
                .unique("k1"),
        )
        .await
        .unwrap();
    assert!(!c.duplicate && c.id != a.id);
    // A once key never enqueues twice, finished or not.
    let o1 = app
        .ctx
        .jobs()
        .enqueue(
            app.ctx.db().orm(),
            NewJob::of(&Record { tag: "o".into() })
                .unwrap()
                .once("cron:t:1"),
        )
        .await
        .unwrap();
    let o2 = app
        .ctx
        .jobs()
        .enqueue(
            app.ctx.db().orm(),
            NewJob::of(&Record { tag: "o".into() })
                .unwrap()
                .once("cron:t:1"),
        )
        .await
        .unwrap();
    assert!(!o1.duplicate && o2.duplicate && o1.id == o2.id);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sen_jobs WHERE args LIKE '%\"o\"%'"
        )
        .await,
        1
    );
}

async fn enqueue_many_answers_in_input_order(app: TestApp) {
    let first = app
        .ctx
        .jobs()
        .enqueue(
            app.ctx.db().orm(),
            NewJob::of(&Record { tag: "m".into() })
                .unwrap()
                .unique("m1"),
        )
        .await
        .unwrap();
    let jobs = vec![
        NewJob::of(&Record { tag: "p1".into() }).unwrap(),
        NewJob::of(&Record { tag: "m".into() })
            .unwrap()
            .unique("m1"),
        NewJob::of(&Record { tag: "p2".into() }).unwrap(),
    ];
    let out = app
        .ctx
        .jobs()
        .enqueue_many(app.ctx.db().orm(), jobs)
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    assert!(!out[0].duplicate && out[1].duplicate && !out[2].duplicate);
    assert_eq!(out[1].id, first.id, "the keyed job answers in its own slot");
    let db = app.ctx.db();
    for (slot, tag) in [(0, "p1"), (2, "p2")] {
        let row = db
            .orm()
            .query_one_raw(db.statement(
                "SELECT args FROM sen_jobs WHERE id = ?",
                [out[slot].id.clone().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(row.try_get::<String>("", "args").unwrap().contains(tag));
    }
}

async fn enqueue_many_keeps_every_option(app: TestApp) {
    let tag = "quote \" backslash \\ comma , brace { é 🦀";
    let at = chrono::Utc::now() + chrono::Duration::hours(2);
    let jobs = vec![
        NewJob::of(&Record { tag: tag.into() })
            .unwrap()
            .queue("mail")
            .priority(-3)
            .max_attempts(7)
            .timeout(Duration::from_millis(1234)),
        NewJob::of(&Record {
            tag: "later".into(),
        })
        .unwrap()
        .delay(Duration::from_secs(3600)),
        NewJob::of(&Record { tag: "at".into() }).unwrap().at(at),
    ];
    let out = app
        .ctx
        .jobs()
        .enqueue_many(app.ctx.db().orm(), jobs)
        .await
        .unwrap();
    let db = app.ctx.db();
    let row = |id: String| async move {
        db.orm()
            .query_one_raw(db.statement(
                "SELECT queue, args, state, priority, max_attempts, timeout_ms, run_at, created_at FROM sen_jobs WHERE id = ?",
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap()
    };
    let r = row(out[0].id.clone()).await;
    assert_eq!(r.try_get::<String>("", "queue").unwrap(), "mail");
    let args: serde_json::Value =
        serde_json::from_str(&r.try_get::<String>("", "args").unwrap()).unwrap();
    assert_eq!(args["tag"], tag, "args survive byte for byte");
    assert_eq!(r.try_get::<String>("", "state").unwrap(), "available");
    assert_eq!(r.try_get::<i32>("", "priority").unwrap(), -3);
    assert_eq!(r.try_get::<i32>("", "max_attempts").unwrap(), 7);
    assert_eq!(r.try_get::<i64>("", "timeout_ms").unwrap(), 1234);
    let r = row(out[1].id.clone()).await;
    assert_eq!(r.try_get::<String>("", "state").unwrap(), "scheduled");
    let wait =
        r.try_get::<i64>("", "run_at").unwrap() - r.try_get::<i64>("", "created_at").unwrap();
    assert!((3_599_000_000..=3_601_000_000).contains(&wait), "{wait}");
    let r = row(out[2].id.clone()).await;
    assert_eq!(r.try_get::<String>("", "state").unwrap(), "scheduled");
    assert_eq!(
        r.try_get::<i64>("", "run_at").unwrap(),
        sen_core::jobs::micros(at)
    );
}

async fn delayed_jobs_wait_for_their_time(app: TestApp) {
    let id = enqueue(
        &app,
        NewJob::of(&Record {
            tag: "later".into(),
        })
        .unwrap()
        .delay(Duration::from_millis(2_000)),
    )
    .await;
    assert_eq!(job_state(&app, &id).await.0, "scheduled");
    assert!(
        queue::claim(app.ctx.db(), "default", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let claimed = queue::claim(app.ctx.db(), "default", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1, "the attempt counts at claim");
}

async fn stale_completion_is_fenced_out(app: TestApp) {
    let id = enqueue(&app, NewJob::of(&Record { tag: "f".into() }).unwrap()).await;
    let first = queue::claim(app.ctx.db(), "default", 1, Duration::from_millis(1))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        queue::rescue_expired(app.ctx.db(), 10).await.unwrap(),
        1,
        "expired lease rescued"
    );
    let (state, attempt, errors) = job_state(&app, &id).await;
    assert_eq!((state.as_str(), attempt), ("retryable", 1));
    assert!(errors.contains("lease expired"), "{errors}");
    let second = queue::claim(app.ctx.db(), "default", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempt, 2);
    assert!(
        !queue::complete(app.ctx.db(), &first).await.unwrap(),
        "zombie completion rejected"
    );
    assert_eq!(
        queue::fail(app.ctx.db(), &first, "late", true, Duration::ZERO)
            .await
            .unwrap(),
        FailOutcome::Stale
    );
    assert!(queue::complete(app.ctx.db(), &second).await.unwrap());
    assert_eq!(job_state(&app, &id).await.0, "completed");
}

/// `complete_and_claim` completes a job and takes the next ready one under
/// the same token in one step; a stale claim completes nothing; an ordered
/// job never starts before its predecessor has completed.
async fn complete_and_claim_takes_the_next_job_in_one_step(app: TestApp) {
    let a = enqueue(&app, NewJob::of(&Record { tag: "c1".into() }).unwrap()).await;
    let b = enqueue(&app, NewJob::of(&Record { tag: "c2".into() }).unwrap()).await;
    let lease = Duration::from_secs(30);
    let first = queue::claim(app.ctx.db(), "default", 1, lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.id, a, "claims in order");
    let (held, next) = queue::complete_and_claim(app.ctx.db(), &first, lease)
        .await
        .unwrap();
    assert!(held);
    let next = next.expect("the second job is claimed with the completion");
    assert_eq!((next.id.as_str(), next.attempt), (b.as_str(), 1));
    assert_eq!(next.lock_token, first.lock_token, "same token");
    assert_eq!(job_state(&app, &a).await.0, "completed");
    assert_eq!(job_state(&app, &b).await.0, "running");
    // A stale claim (already completed) records nothing; nothing is left.
    let (held, none) = queue::complete_and_claim(app.ctx.db(), &first, lease)
        .await
        .unwrap();
    assert!(!held, "second completion of the same claim rejected");
    assert!(none.is_none());
    let (held, none) = queue::complete_and_claim(app.ctx.db(), &next, lease)
        .await
        .unwrap();
    assert!(held && none.is_none());
    assert_eq!(job_state(&app, &b).await.0, "completed");

    // Ordered: o2 waits for o1, even when o1's completion claims.
    let o1 = enqueue(
        &app,
        NewJob::of(&Record { tag: "o1".into() })
            .unwrap()
            .ordered("k", "1"),
    )
    .await;
    let o2 = enqueue(
        &app,
        NewJob::of(&Record { tag: "o2".into() })
            .unwrap()
            .ordered("k", "2"),
    )
    .await;
    let first = queue::claim(app.ctx.db(), "default", 5, lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "o2 waits while o1 runs");
    assert_eq!(first[0].id, o1);
    let (held, next) = queue::complete_and_claim(app.ctx.db(), &first[0], lease)
        .await
        .unwrap();
    assert!(held);
    // PostgreSQL's one statement still sees o1 running (o2 comes with the
    // next claim); SQLite's transaction sees it completed. Either way o2
    // starts only after o1 completed.
    let second = match next {
        Some(job) => job,
        None => queue::claim(app.ctx.db(), "default", 5, lease)
            .await
            .unwrap()
            .remove(0),
    };
    assert_eq!(second.id, o2);
    assert_eq!(job_state(&app, &o1).await.0, "completed");
}

async fn back_dated_running_rows_are_rescued_or_dead(app: TestApp) {
    let db = app.ctx.db();
    for (id, attempt, max) in [("r-retry", 1, 5), ("r-dead", 5, 5)] {
        db.orm()
            .execute_raw(db.statement(
                "INSERT INTO sen_jobs (id, queue, kind, args, state, run_at, attempt, max_attempts, timeout_ms, lease_until, lock_token, created_at)
                 VALUES (?, 'default', 'test.record', '{\"tag\":\"r\"}', 'running', 0, ?, ?, 1000, 1, 'old-token', 0)",
                [id.into(), attempt.into(), max.into()],
            ))
            .await
            .unwrap();
    }
    assert_eq!(queue::rescue_expired(db, 10).await.unwrap(), 2);
    assert_eq!(job_state(&app, "r-retry").await.0, "retryable");
    let (state, _, errors) = job_state(&app, "r-dead").await;
    assert_eq!(state, "dead", "attempts exhausted: dead-letter queue");
    assert!(errors.contains("lease expired"));
}

async fn exhausted_attempts_end_dead_with_every_error(app: TestApp) {
    let id = enqueue(
        &app,
        NewJob::of(&Record { tag: "d".into() })
            .unwrap()
            .max_attempts(2),
    )
    .await;
    for attempt in 1..=2 {
        let job = queue::claim(app.ctx.db(), "default", 1, Duration::from_secs(30))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(job.attempt, attempt);
        let outcome = queue::fail(
            app.ctx.db(),
            &job,
            &format!("boom {attempt}"),
            true,
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert_eq!(
            outcome,
            if attempt == 1 {
                FailOutcome::Retrying
            } else {
                FailOutcome::Dead
            }
        );
    }
    let (state, attempt, errors) = job_state(&app, &id).await;
    assert_eq!((state.as_str(), attempt), ("dead", 2));
    let errors: Vec<serde_json::Value> = serde_json::from_str(&errors).unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1]["error"], "boom 2");
    // Replay from the dead-letter queue.
    assert!(
        queue::retry(app.ctx.db(), app.ctx.db().orm(), &id)
            .await
            .unwrap()
    );
    let job = queue::claim(app.ctx.db(), "default", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.attempt, 1, "a retried job gets a fresh budget");
    assert!(
        queue::cancel(app.ctx.db(), app.ctx.db().orm(), &id)
            .await
            .unwrap()
    );
    assert!(
        !queue::complete(app.ctx.db(), &job).await.unwrap(),
        "a cancelled job's completion is fenced out"
    );
    assert_eq!(job_state(&app, &id).await.0, "cancelled");
}

async fn workers_run_handlers_to_their_outcomes(app: TestApp) {
    let ok = enqueue(&app, NewJob::of(&Record { tag: "ok".into() }).unwrap()).await;
    let flaky = enqueue(&app, NewJob::of(&Flaky).unwrap()).await;
    let boom = enqueue(&app, NewJob::of(&Explodes).unwrap()).await;
    let slow = enqueue(&app, NewJob::of(&Sleeper).unwrap()).await;
    let unknown = enqueue(
        &app,
        NewJob::raw("test.nobody", &serde_json::json!({})).max_attempts(1),
    )
    .await;
    let bad_args = enqueue(
        &app,
        NewJob::raw("test.record", &serde_json::json!({"nope": 1})),
    )
    .await;
    wait_state(&app, &ok, "completed").await;
    let (_, attempt, _) = wait_state(&app, &flaky, "completed").await;
    assert_eq!(attempt, 2);
    let (_, attempt, errors) = wait_state(&app, &boom, "dead").await;
    assert_eq!(
        attempt, 3,
        "a panicking handler ends dead after max attempts"
    );
    assert!(errors.contains("panicked: handler exploded"), "{errors}");
    let (_, _, errors) = wait_state(&app, &slow, "dead").await;
    assert!(errors.contains("timed out after 100 ms"), "{errors}");
    let (_, _, errors) = wait_state(&app, &unknown, "dead").await;
    assert!(
        errors.contains("no handler for job kind `test.nobody`"),
        "{errors}"
    );
    let (_, attempt, errors) = wait_state(&app, &bad_args, "dead").await;
    assert_eq!(attempt, 1, "arguments that cannot decode are not retried");
    assert!(errors.contains("arguments do not decode"), "{errors}");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM test_effects WHERE tag IN ('ok', 'flaky')"
        )
        .await,
        2
    );
    // Other jobs keep flowing after all that.
    let after = enqueue(
        &app,
        NewJob::of(&Record {
            tag: "after".into(),
        })
        .unwrap(),
    )
    .await;
    wait_state(&app, &after, "completed").await;
    // What the workers did is on /metrics (the process's one recorder, so
    // other tests' jobs may add to the counts: these are lower bounds).
    let text = app.get("/metrics").await.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
    };
    assert!(value("jobs_completed_total{kind=\"test.record\"}") >= 2.0);
    assert!(value("jobs_completed_total{kind=\"test.flaky\"}") >= 1.0);
    assert!(value("job_run_duration_seconds_count{kind=\"test.explodes\"}") >= 3.0);
    assert!(value("job_queue_wait_seconds_count{queue=\"default\"}") >= 8.0);
}

/// Enqueues `n` `Record` jobs tagged `{prefix}{i}` in one transaction.
async fn enqueue_records(app: &TestApp, prefix: &str, n: usize) -> Vec<sen_core::jobs::Enqueued> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            NewJob::of(&Record {
                tag: format!("{prefix}{i}"),
            })
            .unwrap()
        })
        .collect();
    let tx = app.ctx.db().begin_write().await.unwrap();
    let out = app.ctx.jobs().enqueue_many(&tx, jobs).await.unwrap();
    tx.commit().await.unwrap();
    out
}

/// Waits (at most 60 s) until `n` jobs are completed.
async fn wait_completed(app: &TestApp, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(
        app,
        "SELECT COUNT(*) FROM sen_jobs WHERE state = 'completed'",
    )
    .await
        < n
    {
        assert!(Instant::now() < deadline, "{n} jobs never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn batch_enqueue_drains_completely(app: TestApp) {
    assert_eq!(enqueue_records(&app, "b", 600).await.len(), 600);
    wait_completed(&app, 600).await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM test_effects").await,
        600,
        "each job's effect exactly once"
    );
    let stats = queue::stats(app.ctx.db()).await.unwrap();
    assert_eq!(stats[0].states.get("completed"), Some(&600));
}

/// A worker that claims one job per statement and writes each completion
/// on its own (`batch = 1`, `complete_batch = 1`: no batching at all),
/// with four claim loops side by side, still runs every job exactly once.
async fn unbatched_worker_drains_every_job_once(app: TestApp) {
    enqueue_records(&app, "u", 40).await;
    let mut config = sen_jobs::WorkerConfig::from_context(&app.ctx);
    config.batch = 1;
    config.complete_batch = 1;
    config.claimers = 4;
    let worker = sen_jobs::start(app.ctx.clone(), config).unwrap();
    wait_completed(&app, 40).await;
    worker.stop().await;
    assert_eq!(
        count(&app, "SELECT COUNT(DISTINCT tag) FROM test_effects").await,
        40
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM test_effects").await, 40);
}

/// The heartbeat renews the leases of running jobs, under however many
/// lock tokens (one per claim here): jobs that run four times as long as
/// their lease, next to a rescuer that looks every ~100 ms, are never
/// taken back and finish on their first attempt. A token's lease renewal
/// leaves other tokens' jobs alone.
async fn heartbeat_keeps_long_jobs_leased(app: TestApp) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(enqueue(&app, NewJob::of(&Nap { ms: 1_600 }).unwrap()).await);
    }
    let mut config = sen_jobs::WorkerConfig::from_context(&app.ctx);
    config.lease = Duration::from_millis(400);
    config.batch = 1;
    config.claimers = 3;
    let worker = sen_jobs::start(app.ctx.clone(), config).unwrap();
    for id in &ids {
        wait_state(&app, id, "completed").await;
    }
    worker.stop().await;
    for id in &ids {
        let (state, attempt, errors) = job_state(&app, id).await;
        assert_eq!((state.as_str(), attempt), ("completed", 1), "{errors}");
        assert_eq!(errors, "[]", "never rescued");
    }

    // One statement renews exactly the named tokens' running jobs.
    let a = enqueue(&app, NewJob::of(&Record { tag: "l1".into() }).unwrap()).await;
    let b = enqueue(&app, NewJob::of(&Record { tag: "l2".into() }).unwrap()).await;
    let short = Duration::from_millis(1);
    let db = app.ctx.db();
    let ja = queue::claim(db, "default", 1, short)
        .await
        .unwrap()
        .remove(0);
    let jb = queue::claim(db, "default", 1, short)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((ja.id.as_str(), jb.id.as_str()), (a.as_str(), b.as_str()));
    let renewed = queue::extend_leases(
        db,
        std::slice::from_ref(&ja.lock_token),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(renewed, 1);
    assert_eq!(queue::extend_leases(db, &[], short).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        queue::rescue_expired(db, 10).await.unwrap(),
        1,
        "only b expired"
    );
    assert_eq!(job_state(&app, &a).await.0, "running");
    assert_eq!(job_state(&app, &b).await.0, "retryable");
}

async fn shutdown_lets_running_jobs_finish_within_grace(mut app: TestApp) {
    let id = enqueue(&app, NewJob::of(&Nap { ms: 300 }).unwrap()).await;
    wait_state(&app, &id, "running").await;
    app.stop().await.unwrap();
    assert_eq!(
        job_state(&app, &id).await.0,
        "completed",
        "finished during the grace period"
    );
}

async fn shutdown_releases_jobs_that_outlast_grace(mut app: TestApp) {
    let id = enqueue(&app, NewJob::of(&Nap { ms: 20_000 }).unwrap()).await;
    wait_state(&app, &id, "running").await;
    let started = Instant::now();
    app.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop is bounded by the grace period"
    );
    let (state, attempt, _) = job_state(&app, &id).await;
    assert_eq!(
        (state.as_str(), attempt),
        ("available", 0),
        "released for another worker; the attempt does not count"
    );
}

async fn spawn_with_short_grace(backend: Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(apps())
        .config(|c| {
            c.job_poll_ms = 50;
            c.shutdown_grace_ms = 500;
        })
        .workers()
        .spawn()
        .await
}

async fn two_schedulers_fire_each_tick_exactly_once(app: TestApp) {
    let a = sen_jobs::scheduler::start(app.ctx.clone()).unwrap();
    let b = sen_jobs::scheduler::start(app.ctx.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    a.stop().await;
    b.stop().await;
    let ticks = common::cron_ticks(&app.ctx, "test.every-second").await;
    assert!(ticks.len() >= 4, "a tick per second: {ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1_000_000,
            "consecutive seconds, none missed or doubled: {ticks:?}"
        );
    }
    let jobs = count(
        &app,
        "SELECT COUNT(*) FROM sen_jobs WHERE kind = 'test.record' AND args LIKE '%tick%'",
    )
    .await;
    assert_eq!(
        jobs,
        ticks.len() as i64,
        "one job per tick although two schedulers ran"
    );
    let last = count(
        &app,
        "SELECT last_fire_at FROM sen_cron_state WHERE name = 'test.every-second'",
    )
    .await;
    assert_eq!(last, *ticks.last().unwrap());
}

async fn committed_events_reach_every_subscriber_once(app: TestApp) {
    let events = app.ctx.events();
    let tx = app.ctx.db().begin_write().await.unwrap();
    events
        .publish(
            &tx,
            Event::new("post.created", serde_json::json!({"id": "rolled-back"})),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let tx = app.ctx.db().begin_write().await.unwrap();
    let created = events
        .publish(
            &tx,
            Event::new("post.created", serde_json::json!({"id": 1})).key("post:1"),
        )
        .await
        .unwrap();
    let deleted = events
        .publish(
            &tx,
            Event::new("post.deleted", serde_json::json!({"id": 1})).key("post:1"),
        )
        .await
        .unwrap();
    events
        .publish(&tx, Event::new("order.paid", serde_json::json!({})))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(
        &app,
        "SELECT COUNT(*) FROM test_effects WHERE tag LIKE 'posts:%' OR tag LIKE 'created:%'",
    )
    .await
        < 3
    {
        assert!(Instant::now() < deadline, "events never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let any stray duplicate surface before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let effects = |sql: String| {
        let app = &app;
        async move { count(app, &sql).await }
    };
    assert_eq!(
        effects(format!(
            "SELECT COUNT(*) FROM test_effects WHERE job_id = '{created}:posts'"
        ))
        .await,
        1
    );
    assert_eq!(
        effects(format!(
            "SELECT COUNT(*) FROM test_effects WHERE job_id = '{created}:created'"
        ))
        .await,
        1
    );
    assert_eq!(
        effects(format!(
            "SELECT COUNT(*) FROM test_effects WHERE job_id = '{deleted}:posts'"
        ))
        .await,
        1
    );
    assert_eq!(
        effects(format!(
            "SELECT COUNT(*) FROM test_effects WHERE job_id = '{deleted}:created'"
        ))
        .await,
        0,
        "exact pattern"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sen_jobs WHERE kind = 'sen.event'"
        )
        .await,
        3,
        "one delivery job per match"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM test_effects WHERE tag LIKE '%rolled%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sen_outbox WHERE dispatched_at IS NULL"
        )
        .await,
        0
    );
}

async fn a_repeated_dispatch_enqueues_nothing_twice(app: TestApp) {
    let tx = app.ctx.db().begin_write().await.unwrap();
    let id = app
        .ctx
        .events()
        .publish(&tx, Event::new("post.created", serde_json::json!({})))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let subs = sen_jobs::outbox::subscribers(&app.ctx);
    assert_eq!(
        sen_jobs::outbox::dispatch_batch(&app.ctx, &subs)
            .await
            .unwrap(),
        1
    );
    // As if the dispatcher died after enqueueing but its progress was lost.
    let db = app.ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "UPDATE sen_outbox SET dispatched_at = NULL WHERE id = ?",
            [id.into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        sen_jobs::outbox::dispatch_batch(&app.ctx, &subs)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM sen_jobs WHERE kind = 'sen.event'"
        )
        .await,
        2,
        "posts + created, once each"
    );
}

/// Manual vacuums of `sen_jobs` so far (autovacuum counts elsewhere).
async fn vacuums(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'sen_jobs'",
    )
    .await
}

/// PostgreSQL: a worker vacuums the job table once it has claimed
/// `vacuum_after` jobs (every claim leaves a dead claim-index entry that
/// later claims would walk past), and never when that is 0.
#[tokio::test]
async fn worker_vacuums_the_job_table_after_churn() {
    let app = spawn(Backend::Postgres).await;
    let mut config = sen_jobs::WorkerConfig::from_context(&app.ctx);
    config.vacuum_after = 0;
    let worker = sen_jobs::start(app.ctx.clone(), config.clone()).unwrap();
    enqueue_records(&app, "n", 100).await;
    wait_completed(&app, 100).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    worker.stop().await;
    assert_eq!(vacuums(&app).await, 0, "vacuum_after 0: never");

    config.vacuum_after = 50;
    let worker = sen_jobs::start(app.ctx.clone(), config).unwrap();
    // The first round vacuums what earlier workers left.
    let deadline = Instant::now() + Duration::from_secs(20);
    while vacuums(&app).await < 1 {
        assert!(Instant::now() < deadline, "no vacuum at start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = vacuums(&app).await;
    enqueue_records(&app, "v", 120).await;
    wait_completed(&app, 220).await;
    while vacuums(&app).await <= before {
        assert!(Instant::now() < deadline, "no vacuum after 120 claims");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    let idle = vacuums(&app).await;
    // The claim index holds no dead entries any more: an empty queue's
    // claim reads one index page.
    let db = app.ctx.db();
    let plan = db
        .orm()
        .query_all_raw(db.statement(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM sen_jobs
             WHERE queue = 'default' AND state IN ('available', 'scheduled', 'retryable')
             ORDER BY priority, run_at, id LIMIT 1",
            [],
        ))
        .await
        .unwrap();
    let plan: serde_json::Value = plan[0].try_get_by_index(0).unwrap();
    let hits = plan[0]["Plan"]["Shared Hit Blocks"].as_i64().unwrap();
    assert!(
        hits <= 3,
        "claim on an empty queue read {hits} pages: {plan}"
    );
    assert!(idle > before);
}

#[tokio::test]
async fn bad_schedules_fail_at_start() {
    struct BadCron;
    impl App for BadCron {
        fn name(&self) -> &'static str {
            "badcron"
        }
        fn title(&self) -> &'static str {
            "t"
        }
        fn description(&self) -> &'static str {
            "d"
        }
        fn schedules(&self) -> Vec<Schedule> {
            vec![
                Schedule::new(
                    "bad.tz",
                    "0 * * * *",
                    NewJob::raw("x", &serde_json::json!({})),
                )
                .time_zone("Mars/Olympus"),
            ]
        }
    }
    let app = TestApp::builder(Backend::Sqlite)
        .apps(Apps::new().register(BadCron).unwrap())
        .spawn()
        .await;
    let err = sen_jobs::scheduler::start(app.ctx.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("Mars/Olympus"), "{err}");
}

#[tokio::test]
async fn duplicate_job_kinds_fail_at_start() {
    struct Twice;
    impl App for Twice {
        fn name(&self) -> &'static str {
            "twice"
        }
        fn title(&self) -> &'static str {
            "t"
        }
        fn description(&self) -> &'static str {
            "d"
        }
        fn jobs(&self) -> Vec<JobHandler> {
            vec![JobHandler::of::<Record>()]
        }
    }
    let app = TestApp::builder(Backend::Sqlite)
        .apps(apps().register(Twice).unwrap())
        .spawn()
        .await;
    let err = sen_jobs::start(
        app.ctx.clone(),
        sen_jobs::WorkerConfig::from_context(&app.ctx),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("test.record"), "{err}");
}

/// One index on `state` serves the state listings (the dead-letter view
/// newest first, with or without a queue), so a job's state change writes
/// one state index entry, not two.
async fn state_listings_read_the_one_state_index(app: TestApp) {
    let db = app.ctx.db();
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sen_jobs' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'sen_jobs' ORDER BY indexname"
        }
    };
    let names: Vec<String> = db
        .orm()
        .query_all_raw(db.statement(sql, []))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "name").unwrap())
        .collect();
    let state_indexes: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("sen_jobs_state"))
        .collect();
    assert_eq!(state_indexes, ["sen_jobs_state_id"], "{names:?}");
    if db.backend() == Backend::Sqlite {
        for filter in ["", " AND queue = 'default'"] {
            let plan: Vec<String> = db
                .orm()
                .query_all_raw(db.statement(
                    &format!(
                        "EXPLAIN QUERY PLAN SELECT id FROM sen_jobs WHERE state = 'dead'{filter} ORDER BY id DESC LIMIT 50"
                    ),
                    [],
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get("", "detail").unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(
                plan.contains("sen_jobs_state_id") && !plan.contains("TEMP B-TREE"),
                "state listing{filter} sorts instead of reading the index: {plan}"
            );
        }
    }
}

sen_testkit::both_backends!(spawn;
    enqueue_commits_and_rolls_back_with_the_caller,
    state_listings_read_the_one_state_index,
    unique_keys_dedupe_live_jobs_and_once_keys_forever,
    delayed_jobs_wait_for_their_time,
    stale_completion_is_fenced_out,
    complete_and_claim_takes_the_next_job_in_one_step,
    back_dated_running_rows_are_rescued_or_dead,
    exhausted_attempts_end_dead_with_every_error,
    two_schedulers_fire_each_tick_exactly_once,
    a_repeated_dispatch_enqueues_nothing_twice,
    enqueue_many_answers_in_input_order,
    enqueue_many_keeps_every_option,
    unbatched_worker_drains_every_job_once,
    heartbeat_keeps_long_jobs_leased,
);

mod with_workers {
    use super::*;
    sen_testkit::both_backends!(spawn_with_workers;
        workers_run_handlers_to_their_outcomes,
        batch_enqueue_drains_completely,
        committed_events_reach_every_subscriber_once,
    );
}

/// The platform apps (auth, jobs) beside the test jobs, with workers.
async fn spawn_admin(backend: Backend) -> TestApp {
    let apps = Apps::new()
        .register(sen_core::system::SystemApp)
        .unwrap()
        .register(sen_auth::AuthApp)
        .unwrap()
        .register(sen_jobs::JobsApp)
        .unwrap()
        .register(sen_realtime::RealtimeApp)
        .unwrap()
        .register(TestJobs)
        .unwrap();
    TestApp::builder(backend)
        .apps(apps)
        .config(|c| {
            c.job_poll_ms = 50;
            c.job_lease_ms = 2_000;
        })
        .workers()
        .spawn()
        .await
}

async fn admin_api_lists_shows_retries_and_cancels_jobs(app: TestApp) {
    use reqwest::Method;
    use sen_testkit::assert_problem;
    use serde_json::{Value, json};
    let owner = common::owner_token(&app).await;
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ann@example.com", "password": "a long pass phrase", "name": "Ann"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let ann = common::login_token(&app, "ann@example.com", "a long pass phrase").await;
    let get = |path: String, token: String| {
        let app = &app;
        async move {
            app.request(Method::GET, &path)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let post = |path: String, token: String, body: Value| {
        let app = &app;
        async move {
            app.request(Method::POST, &path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_problem(app.get("/api/v1/admin/jobs").await, 401, "unauthenticated").await;
    let body = assert_problem(
        get("/api/v1/admin/jobs".into(), ann.clone()).await,
        403,
        "forbidden",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("jobs:read"));

    // Operators watch job changes live; other users may not.
    let mut watch = common::rt::connect_token(app.addr, &owner).await;
    assert_eq!(
        watch.subscribe("admin:jobs", None).await["type"],
        "subscribed"
    );
    let mut nosy = common::rt::connect_token(app.addr, &ann).await;
    let refused = nosy.subscribe("admin:jobs", None).await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );

    let dead = enqueue(&app, NewJob::of(&Explodes).unwrap()).await;
    let done = enqueue(&app, NewJob::of(&Record { tag: "a".into() }).unwrap()).await;
    wait_state(&app, &dead, "dead").await;
    wait_state(&app, &done, "completed").await;
    let ev = watch.next().await;
    assert_eq!(
        (ev["type"].as_str(), ev["name"].as_str()),
        (Some("event"), Some("job.dead")),
        "{ev}"
    );
    assert_eq!(ev["data"]["id"], dead.as_str());
    // Queue depths arrive as snapshots while someone watches.
    assert_eq!(
        watch.subscribe("admin:queues", None).await["type"],
        "subscribed"
    );
    let snap = watch.next().await;
    assert_eq!(
        (snap["name"].as_str(), snap["id"].as_str()),
        (Some("queues"), Some("snapshot")),
        "{snap}"
    );
    let default_q = snap["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "default")
        .unwrap()
        .clone();
    assert_eq!(default_q["dead"], 1, "{snap}");
    let refused = nosy.subscribe("admin:queues", None).await;
    assert_eq!(refused["code"], "forbidden");

    let page: Value = get("/api/v1/admin/jobs?state=dead".into(), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], dead.as_str(), "{page}");
    assert_problem(
        get("/api/v1/admin/jobs?state=bogus".into(), owner.clone()).await,
        422,
        "validation_failed",
    )
    .await;
    let first: Value = get("/api/v1/admin/jobs?limit=1".into(), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more than one job")
        .to_string();
    let second: Value = get(
        format!("/api/v1/admin/jobs?limit=1&cursor={cursor}"),
        owner.clone(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);

    let job: Value = get(format!("/api/v1/admin/jobs/{dead}"), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "dead");
    assert_eq!(job["errors"].as_array().unwrap().len(), 3, "{job}");
    assert_problem(
        get("/api/v1/admin/jobs/nope".into(), owner.clone()).await,
        404,
        "not_found",
    )
    .await;

    let queues: Value = get("/api/v1/admin/queues".into(), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    let default = queues["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "default")
        .unwrap();
    assert_eq!(default["dead"], 1, "{queues}");
    assert!(default["states"]["completed"].as_i64().unwrap() >= 1);

    // Writes need jobs:write.
    assert_problem(
        post(
            format!("/api/v1/admin/jobs/{dead}/retry"),
            ann.clone(),
            json!({}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        post(
            format!("/api/v1/admin/jobs/{done}/cancel"),
            owner.clone(),
            json!({}),
        )
        .await,
        409,
        "job_finished",
    )
    .await;
    let r = post(
        format!("/api/v1/admin/jobs/{dead}/retry"),
        owner.clone(),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, attempt, _) = wait_state(&app, &dead, "dead").await;
    assert_eq!(attempt, 3, "a fresh attempt budget, spent again");
    let r = post(
        "/api/v1/admin/jobs/retry".into(),
        owner.clone(),
        json!({"filter": {"state": "completed"}}),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r: Value = post(
        "/api/v1/admin/jobs/retry".into(),
        owner.clone(),
        json!({"filter": {"state": "dead", "kind": "test.explodes"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["retried"], 1, "{r}");
    let later = enqueue(
        &app,
        NewJob::of(&Record {
            tag: "later".into(),
        })
        .unwrap()
        .delay(Duration::from_secs(600)),
    )
    .await;
    let r = post(
        format!("/api/v1/admin/jobs/{later}/cancel"),
        owner.clone(),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Every change an operator made is in the audit log, with who and how;
    // refused ones (403, 409) wrote nothing.
    let me = common::get_json(&app, "/api/v1/me", &owner).await;
    let audit = |query: String| {
        let (app, owner) = (&app, owner.clone());
        async move {
            let page = common::get_json(app, &format!("/api/v1/admin/audit?{query}"), &owner).await;
            page["items"].as_array().unwrap().clone()
        }
    };
    let retried = audit(format!("action=job.retry&target={dead}")).await;
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0]["actor_id"], me["id"]);
    assert_eq!(retried[0]["detail"]["via"], "api");
    let cancelled = audit(format!("action=job.cancel&target={later}")).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["actor_id"], me["id"]);
    assert!(
        audit(format!("target={done}")).await.is_empty(),
        "refused cancel"
    );
    let bulk = audit("action=jobs.retry".into()).await;
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert_eq!(
        (
            bulk[0]["detail"]["count"].as_i64(),
            bulk[0]["detail"]["kind"].as_str()
        ),
        (Some(1), Some("test.explodes"))
    );

    let schedules: Value = get("/api/v1/admin/schedules".into(), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        schedules["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "test.every-second" && s["cron"] == "* * * * * *"),
        "{schedules}"
    );
    let r = post(
        "/api/v1/admin/schedules/test.every-second/run".into(),
        owner.clone(),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&app, &id, "completed").await;
    assert_problem(
        post("/api/v1/admin/schedules/nope/run".into(), owner, json!({})).await,
        404,
        "not_found",
    )
    .await;
}

mod admin_api {
    use super::*;
    sen_testkit::both_backends!(spawn_admin;
        admin_api_lists_shows_retries_and_cancels_jobs,
    );
}

/// An ordered subscriber gets each aggregate's events one at a time in
/// publish order, even with ten concurrent workers, a slower earlier
/// event and a failed attempt in between.
async fn ordered_subscribers_see_each_aggregate_in_order(app: TestApp) {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    for n in 0..12 {
        for key in ["a", "b"] {
            let tx = app.ctx.db().begin_write().await.unwrap();
            app.ctx
                .events()
                .publish(
                    &tx,
                    Event::new("seq.step", serde_json::json!({"n": n})).key(format!("{tag}-{key}")),
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let like = format!("ord:{tag}-%");
    loop {
        let db = app.ctx.db();
        let rows = db
            .orm()
            .query_all_raw(db.statement(
                "SELECT tag FROM test_effects WHERE tag LIKE ? ORDER BY tag",
                [like.clone().into()],
            ))
            .await
            .unwrap();
        if rows.len() == 24 {
            for key in ["a", "b"] {
                let prefix = format!("ord:{tag}-{key}:");
                let seen: Vec<i64> = rows
                    .iter()
                    .map(|r| r.try_get::<String>("", "tag").unwrap())
                    .filter(|t| t.starts_with(&prefix))
                    .map(|t| t.rsplit(':').next().unwrap().parse().unwrap())
                    .collect();
                assert_eq!(seen, (0..12).collect::<Vec<_>>(), "aggregate {key}");
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 24 delivered",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod ordering {
    use super::*;
    sen_testkit::both_backends!(spawn_with_workers; ordered_subscribers_see_each_aggregate_in_order);
}

mod graceful {
    use super::*;
    sen_testkit::both_backends!(spawn_with_short_grace;
        shutdown_lets_running_jobs_finish_within_grace,
        shutdown_releases_jobs_that_outlast_grace,
    );
}
