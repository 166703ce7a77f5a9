//! The worker service under real failures, with real `sen worker`
//! processes (the `sen-test-jobs` binary: `sen` plus diagnostic jobs) on
//! PostgreSQL: kill -9, SIGTERM, SIGSTOP past the lease, handlers that
//! panic or abort the process, two schedulers, a killed dispatcher, and a
//! PostgreSQL crash-restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::process::Child;
use std::time::{Duration, Instant};

use common::procs::*;
use sea_orm::ConnectionTrait;
use sen_core::jobs::{Event, NewJob};
use sen_core::{AppContext, Apps, Config};

struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    ctx: AppContext,
}

async fn cluster_on(
    admin: &sen_testkit::postgres::PgServer,
    extra: &[(&'static str, &str)],
) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db = admin.create_database().await;
    let mut env = vec![
        ("DATABASE_URL", db.clone()),
        ("SEN_JOB_LEASE_MS", "1500".to_string()),
        ("SEN_JOB_POLL_MS", "100".to_string()),
        ("RUST_LOG", "info".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let out = run_exe(SEN_TEST_JOBS, dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut config = Config::default();
    config.database_url = sen_core::config::Secret::new(db);
    config.db_max_connections = 3;
    let apps = Apps::new().register(sen_core::system::SystemApp).unwrap();
    let ctx = AppContext::connect(config, vec![], apps).await.unwrap();
    Cluster { dir, env, ctx }
}

async fn cluster(extra: &[(&'static str, &str)]) -> Cluster {
    cluster_on(sen_testkit::postgres::shared(), extra).await
}

impl Cluster {
    fn worker(&self, args: &[&str], log: &str) -> Child {
        spawn_exe(SEN_TEST_JOBS, self.dir.path(), args, &self.env, log)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.err"))).unwrap_or_default()
    }

    async fn enqueue(&self, kind: &str, args: serde_json::Value, max_attempts: i32) -> String {
        let job = NewJob::raw(kind, &args).max_attempts(max_attempts);
        self.ctx
            .jobs()
            .enqueue(self.ctx.db().orm(), job)
            .await
            .unwrap()
            .id
    }

    async fn state(&self, id: &str) -> (String, i32) {
        let db = self.ctx.db();
        let row = db
            .orm()
            .query_one_raw(db.statement(
                "SELECT state, attempt FROM sen_jobs WHERE id = ?",
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        (
            row.try_get("", "state").unwrap(),
            row.try_get("", "attempt").unwrap(),
        )
    }

    async fn count(&self, sql: &str) -> i64 {
        let db = self.ctx.db();
        let row = db
            .orm()
            .query_one_raw(db.statement(sql, []))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    async fn wait_state(&self, id: &str, want: &str, limit: Duration) -> (String, i32) {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.state(id).await;
            if s.0 == want {
                return s;
            }
            assert!(Instant::now() < deadline, "job {id} is {s:?}, never {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_reruns_after_the_lease_with_one_effect() {
    let c = cluster(&[]).await;
    let mut a = c.worker(&["worker", "--normal"], "a");
    let id = c
        .enqueue(
            "chaos.effect",
            serde_json::json!({"tag": "k9", "sleep_ms": 2000}),
            5,
        )
        .await;
    c.wait_state(&id, "running", Duration::from_secs(20)).await;
    signal(&a, "KILL");
    let _ = wait_exit(&mut a, Duration::from_secs(5));
    let mut b = c.worker(&["worker", "--normal"], "b");
    let (_, attempt) = c
        .wait_state(&id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(attempt, 2, "rerun after the lease expired");
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM chaos_effects WHERE effect_key = '{id}'"
        ))
        .await,
        1
    );
    sigterm(&b);
    assert!(wait_exit(&mut b, Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_job_finishes_within_grace() {
    let c = cluster(&[("SEN_SHUTDOWN_GRACE_MS", "5000")]).await;
    let mut w = c.worker(&["worker", "--normal"], "w");
    let id = c
        .enqueue(
            "chaos.effect",
            serde_json::json!({"tag": "term", "sleep_ms": 800}),
            5,
        )
        .await;
    c.wait_state(&id, "running", Duration::from_secs(20)).await;
    sigterm(&w);
    assert!(wait_exit(&mut w, Duration::from_secs(15)).success());
    assert_eq!(c.state(&id).await, ("completed".to_string(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_a_job_that_outlasts_grace() {
    let c = cluster(&[("SEN_SHUTDOWN_GRACE_MS", "300")]).await;
    let mut w = c.worker(&["worker", "--normal"], "w");
    let id = c
        .enqueue(
            "chaos.effect",
            serde_json::json!({"tag": "long", "sleep_ms": 60000}),
            5,
        )
        .await;
    c.wait_state(&id, "running", Duration::from_secs(20)).await;
    let started = Instant::now();
    sigterm(&w);
    assert!(wait_exit(&mut w, Duration::from_secs(15)).success());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        c.state(&id).await,
        ("available".to_string(), 0),
        "released, attempt refunded: nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_past_its_lease_cannot_complete() {
    let c = cluster(&[]).await;
    let mut a = c.worker(&["worker", "--normal"], "a");
    let id = c
        .enqueue(
            "chaos.effect",
            serde_json::json!({"tag": "stop", "sleep_ms": 2500}),
            5,
        )
        .await;
    c.wait_state(&id, "running", Duration::from_secs(20)).await;
    signal(&a, "STOP");
    let mut b = c.worker(&["worker", "--normal"], "b");
    let (_, attempt) = c
        .wait_state(&id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(attempt, 2);
    signal(&a, "CONT");
    eventually(
        "the zombie's completion to be rejected",
        Duration::from_secs(20),
        || async { c.log("a").contains("completion rejected") },
    )
    .await;
    assert_eq!(
        c.state(&id).await,
        ("completed".to_string(), 2),
        "the zombie overwrote nothing"
    );
    let pid_b = i64::from(b.id());
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM chaos_effects WHERE effect_key = '{id}'"
        ))
        .await,
        1
    );
    assert_eq!(
        c.count(&format!(
            "SELECT pid FROM chaos_effects WHERE effect_key = '{id}'"
        ))
        .await,
        pid_b
    );
    for w in [&mut a, &mut b] {
        sigterm(w);
        assert!(wait_exit(w, Duration::from_secs(15)).success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_aborting_handlers_end_dead_while_other_jobs_flow() {
    let c = cluster(&[]).await;
    let panics = c.enqueue("chaos.panic", serde_json::json!(null), 3).await;
    let aborts = c.enqueue("chaos.abort", serde_json::json!(null), 3).await;
    let mut fine = Vec::new();
    for i in 0..20 {
        fine.push(
            c.enqueue(
                "chaos.effect",
                serde_json::json!({"tag": format!("ok{i}"), "sleep_ms": 10}),
                10,
            )
            .await,
        );
    }
    // A supervisor, as systemd or Kubernetes would be: restart on exit.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut worker = c.worker(&["worker", "--normal"], "w0");
    let mut restarts = 0;
    loop {
        if c.state(&aborts).await.0 == "dead" && c.state(&panics).await.0 == "dead" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {:?} {:?}",
            c.state(&panics).await,
            c.state(&aborts).await
        );
        if worker.try_wait().unwrap().is_some() {
            restarts += 1;
            assert!(
                restarts <= 6,
                "crash loop: the aborting job must go dead after its attempts"
            );
            worker = c.worker(&["worker", "--normal"], &format!("w{restarts}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.state(&panics).await, ("dead".to_string(), 3));
    assert_eq!(c.state(&aborts).await, ("dead".to_string(), 3));
    assert!(
        restarts >= 2,
        "the abort really killed workers ({restarts} restarts)"
    );
    for id in &fine {
        c.wait_state(id, "completed", Duration::from_secs(30)).await;
    }
    assert_eq!(
        c.count("SELECT COUNT(*) FROM chaos_effects WHERE tag LIKE 'ok%'")
            .await,
        20,
        "each effect once"
    );
    sigterm(&worker);
    assert!(wait_exit(&mut worker, Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scheduler_processes_fire_each_tick_once() {
    let seconds: u64 = std::env::var("SEN_CHAOS_SCHEDULE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let c = cluster(&[("CHAOS_SCHEDULE", "1")]).await;
    let mut s1 = c.worker(&["worker", "--schedule"], "s1");
    let mut s2 = c.worker(&["worker", "--schedule"], "s2");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    sigterm(&s1);
    sigterm(&s2);
    assert!(wait_exit(&mut s1, Duration::from_secs(15)).success());
    assert!(wait_exit(&mut s2, Duration::from_secs(15)).success());
    let ticks = common::cron_ticks(&c.ctx, "chaos.tick").await;
    let expected = seconds as usize;
    assert!(
        ticks.len() + 3 >= expected,
        "{} ticks in {seconds} s",
        ticks.len()
    );
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1_000_000, "a tick missed or doubled");
    }
    let jobs = c
        .count("SELECT COUNT(*) FROM sen_jobs WHERE kind = 'chaos.effect' AND args LIKE '%tick%'")
        .await;
    assert_eq!(
        jobs,
        ticks.len() as i64,
        "one job per tick with two schedulers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_dispatcher_loses_and_doubles_nothing() {
    let c = cluster(&[]).await;
    let mut ids = Vec::new();
    for batch in 0..4 {
        let tx = c.ctx.db().begin_write().await.unwrap();
        for i in 0..100 {
            let ev = Event::new("chaos.created", serde_json::json!({"n": batch * 100 + i}));
            ids.push(c.ctx.events().publish(&tx, ev).await.unwrap());
        }
        tx.commit().await.unwrap();
    }
    let mut w = c.worker(&["worker", "--normal"], "w1");
    eventually("some deliveries", Duration::from_secs(30), || async {
        c.count("SELECT COUNT(*) FROM chaos_effects").await > 0
    })
    .await;
    signal(&w, "KILL");
    let _ = wait_exit(&mut w, Duration::from_secs(5));
    let mut w = c.worker(&["worker", "--normal"], "w2");
    eventually("every delivery", Duration::from_secs(60), || async {
        c.count("SELECT COUNT(*) FROM chaos_effects").await >= 400
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.count("SELECT COUNT(*) FROM chaos_effects").await,
        400,
        "each event once per subscriber"
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM sen_jobs WHERE kind = 'sen.event'")
            .await,
        400,
        "one delivery job each"
    );
    sigterm(&w);
    assert!(wait_exit(&mut w, Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_postgres_crash_restart() {
    let pg = sen_testkit::postgres::PgServer::start_dedicated().unwrap();
    let c = cluster_on(&pg, &[]).await;
    let mut w = c.worker(&["worker", "--normal"], "w");
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(
            c.enqueue(
                "chaos.effect",
                serde_json::json!({"tag": format!("pg{i}"), "sleep_ms": 5}),
                10,
            )
            .await,
        );
    }
    eventually("work under way", Duration::from_secs(30), || async {
        c.count("SELECT COUNT(*) FROM chaos_effects").await > 20
    })
    .await;
    pg.restart_immediate().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let db = c.ctx.db();
        let states = db
            .orm()
            .query_all_raw(db.statement(
                "SELECT state, COUNT(*) FROM sen_jobs GROUP BY state ORDER BY state",
                [],
            ))
            .await
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let state = r.try_get_by_index::<String>(0).unwrap_or_default();
                        let n = r.try_get_by_index::<i64>(1).unwrap_or(0);
                        (state, n)
                    })
                    .collect::<Vec<_>>()
            });
        if let Ok(s) = &states
            && s == &[("completed".to_string(), 300)]
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs never all completed after the restart: {states:?}\n{}",
            c.log("w")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker process survived"
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM sen_jobs WHERE state = 'running'")
            .await,
        0
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM chaos_effects WHERE tag LIKE 'pg%'")
            .await,
        300
    );
    let log = c.log("w");
    assert!(!log.contains("panicked"), "{log}");
    sigterm(&w);
    assert!(wait_exit(&mut w, Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_listed_and_run_on_demand() {
    let c = cluster(&[("CHAOS_SCHEDULE", "1")]).await;
    let out = run_exe(SEN_TEST_JOBS, c.dir.path(), &["jobs", "schedules"], &c.env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tick = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chaos.tick")
        .unwrap_or_else(|| panic!("chaos.tick in {list}"));
    assert_eq!(tick["cron"], "* * * * * *");
    assert!(tick["last_fire_at"].is_null(), "never fired yet");
    assert!(tick["next_fire_at"].as_str().unwrap().ends_with('Z'));
    let out = run_exe(
        SEN_TEST_JOBS,
        c.dir.path(),
        &["jobs", "run-now", "chaos.tick"],
        &c.env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout)
        .trim()
        .strip_prefix("enqueued ")
        .unwrap()
        .to_string();
    assert_eq!(c.state(&id).await.0, "available");
    let out = run_exe(
        SEN_TEST_JOBS,
        c.dir.path(),
        &["jobs", "run-now", "nope"],
        &c.env,
    );
    assert_clean_failure(&out, "no schedule named `nope`");
}

/// A pooled PostgreSQL connection whose server process died while it sat
/// idle for less than the pool's ping threshold (1 s) fails its next query
/// as a connection error, which callers answer with 503, and the query
/// after that runs on a fresh connection. One idle for longer is pinged
/// and replaced before use, so its query succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pooled_connections_fail_as_unavailable_once() {
    broken_connections_fail_once(false).await;
}

/// The same for the hot path's connections (`Db::fetch_optional` and
/// friends, which skip sqlx's ping on release and keep their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_hot_connections_fail_as_unavailable_once() {
    broken_connections_fail_once(true).await;
}

/// Ends the server process behind a pooled connection and checks it
/// fails one query as a connection error, then is replaced; and that one
/// idle past the ping threshold is replaced unseen. `hot`: through the hot
/// path's connections, else SeaORM's pool.
async fn broken_connections_fail_once(hot: bool) {
    use sen_core::db::{Db, DbOptions, is_connection_error};
    let url = sen_testkit::postgres::shared().admin_url().to_string();
    let opts = DbOptions {
        max_connections: 1,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::ZERO,
    };
    let db = Db::connect(&url, &opts).await.unwrap();
    let killer = Db::connect(&url, &opts).await.unwrap();
    let one_row = |db: Db, stmt: sea_orm::Statement| async move {
        let row = if hot {
            db.fetch_optional(stmt).await?
        } else {
            db.orm().query_one_raw(stmt).await?
        };
        Ok::<_, sea_orm::DbErr>(row.expect("one row"))
    };
    let backend_pid = |db: Db| async move {
        let stmt = db.statement("SELECT pg_backend_pid() AS pid", []);
        one_row(db, stmt).await?.try_get::<i32>("", "pid")
    };
    let terminate = |pid: i32| {
        let killer = killer.clone();
        async move {
            let stmt =
                killer.statement("SELECT pg_terminate_backend(?, 5000) AS gone", [pid.into()]);
            let row = one_row(killer, stmt).await.unwrap();
            assert!(
                row.try_get::<bool>("", "gone").unwrap(),
                "backend {pid} ended"
            );
        }
    };
    // sqlx pings a connection as it goes back to SeaORM's pool, in a task
    // of its own; the backend is ended only once that ping is over and the
    // connection sits idle, or the ping (not the query) would meet it. The
    // hot path hands a connection back as the statement returns.
    let settled = |db: Db| async move {
        if hot {
            return;
        }
        let sen_core::db::Pool::Postgres(pool) = db.pool() else {
            unreachable!("a PostgreSQL pool")
        };
        for _ in 0..2000 {
            if pool.num_idle() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the connection went back to the pool");
    };

    // Used a moment ago: no ping, so the query meets the dead connection.
    // On a loaded machine the termination itself can outlast the ping
    // threshold; such a round proves nothing here and is tried again.
    let mut second = None;
    for _ in 0..20 {
        // Taken before the query, so it over-states the idle time.
        let used = Instant::now();
        let first = backend_pid(db.clone()).await.unwrap();
        settled(db.clone()).await;
        terminate(first).await;
        let next = backend_pid(db.clone()).await;
        if used.elapsed() >= Duration::from_millis(900) {
            assert_ne!(next.unwrap(), first, "pinged and replaced");
            continue;
        }
        let err = next.expect_err("the terminated connection fails its query");
        assert!(is_connection_error(&err), "{err:?}");
        let fresh = backend_pid(db.clone()).await.unwrap();
        assert_ne!(fresh, first, "a fresh connection");
        second = Some(fresh);
        break;
    }
    let second = second.expect("a round within the ping threshold");

    // Idle past the threshold: pinged, found dead and replaced unseen.
    settled(db.clone()).await;
    terminate(second).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let third = backend_pid(db.clone()).await.unwrap();
    assert_ne!(third, second);
}
