//! The real `sen` binary as separate processes: start-up failures, the
//! migration gate of `serve`, the roles of `worker`, graceful SIGTERM,
//! `dev` on a fresh directory, config check, openapi, JSON logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::procs::*;

#[test]
fn unreachable_database_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = sen_testkit::free_port();
    let env = [
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/sen"),
        ),
        ("SEN_DB_CONNECT_TIMEOUT_MS", "1000".into()),
        ("RUST_BACKTRACE", "1".into()),
    ];
    let out = run(dir.path(), &["serve"], &env);
    assert_clean_failure(&out, "cannot connect to PostgreSQL");
}

#[test]
fn unreachable_redis_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "SEN_DATABASE_URL",
            format!("sqlite://{}/x.db", dir.path().display()),
        ),
        (
            "REDIS_URL",
            format!("redis://127.0.0.1:{}", sen_testkit::free_port()),
        ),
        ("RUST_BACKTRACE", "1".into()),
    ];
    let out = run(dir.path(), &["serve"], &env);
    assert_clean_failure(&out, "cannot connect to Redis");
}

#[test]
fn bad_config_names_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["config", "check"],
        &[("SEN_PORT", "eighty".into())],
    );
    assert_clean_failure(&out, "`port`");
    assert!(text(&out.stderr).contains("SEN_PORT"));
    std::fs::write(dir.path().join("sen.toml"), "body_limit_bytes = -5\n").unwrap();
    let out = run(dir.path(), &["config", "check"], &[]);
    assert_clean_failure(&out, "body_limit_bytes");
    assert!(text(&out.stderr).contains("sen.toml"));
}

#[test]
fn config_check_never_prints_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "DATABASE_URL",
            "postgres://app:db-pass-123@127.0.0.1/app".to_string(),
        ),
        (
            "REDIS_URL",
            "redis://:redis-pass-456@127.0.0.1:6379".to_string(),
        ),
        ("SEN_SECRET_KEY", "k".repeat(40)),
    ];
    let out = run(dir.path(), &["config", "check"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for secret in ["db-pass-123", "redis-pass-456", &"k".repeat(40)] {
        assert!(!shown.contains(secret), "leaked {secret}: {shown}");
    }
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["database_url"], "postgres://app:***@127.0.0.1/app");
}

#[test]
fn openapi_command_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["openapi"], &[]);
    assert!(out.status.success());
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/api/v1/system/info"]["get"].is_object());
    assert!(
        !dir.path().join("data").exists(),
        "openapi touches no database"
    );
}

#[test]
fn help_documents_commands_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"], &[]);
    let help = text(&out.stdout);
    for needle in [
        "dev",
        "serve",
        "worker",
        "migrate",
        "openapi",
        "config",
        "DATABASE_URL",
        "REDIS_URL",
        "SEN_PORT",
        "SEN_LOG_FORMAT",
        "RUST_LOG",
        "SEN_CONFIG",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    let out = run(dir.path(), &["worker", "--help"], &[]);
    let help = text(&out.stdout);
    assert!(
        help.contains("--schedule") && help.contains("--normal"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_roles_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = sen_testkit::postgres::shared().create_database().await;
    let port = sen_testkit::free_port();
    let env = vec![
        ("DATABASE_URL", db.clone()),
        ("PORT", port.to_string()),
        ("RUST_LOG", "info,sen_http=debug".into()),
    ];

    // A fresh database: serve refuses, status lists what is pending.
    let out = run(dir.path(), &["serve"], &env);
    assert_clean_failure(&out, "pending");
    assert!(text(&out.stderr).contains("sen migrate"));
    let out = run(dir.path(), &["migrate", "status"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("pending  system/0001_instances"));
    let out = run(dir.path(), &["worker"], &env);
    assert_clean_failure(&out, "pending");

    let out = run(dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("applied system/0001_instances"));
    let out = run(dir.path(), &["migrate", "up"], &env);
    assert!(text(&out.stdout).contains("nothing to apply"));
    let out = run(dir.path(), &["migrate", "status"], &env);
    assert_eq!(out.status.code(), Some(0));

    // No default credentials: the first owner comes from the CLI, with the
    // password on standard input (too weak a password is refused).
    let out = run_with_input(
        dir.path(),
        &["admin", "create", "--email", "Ops@Example.com"],
        &env,
        "password\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("common"),
        "{}",
        text(&out.stderr)
    );
    let out = run_with_input(
        dir.path(),
        &["admin", "create", "--email", "Ops@Example.com"],
        &env,
        "ops pass phrase\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("created owner ops@example.com"),
        "{}",
        text(&out.stdout)
    );

    let out = run(dir.path(), &["keys", "rotate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("published key"),
        "{}",
        text(&out.stdout)
    );

    let mut web = spawn(dir.path(), &["serve"], &env, "web");
    let mut scheduler = spawn(dir.path(), &["worker", "--schedule"], &env, "scheduler");
    let mut normal = spawn(dir.path(), &["worker", "--normal"], &env, "normal");
    let info_url = format!("http://127.0.0.1:{port}/api/v1/system/info");
    let instances_url = format!("http://127.0.0.1:{port}/api/v1/system/instances");
    wait_http(&info_url).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let login: Value = client
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "ops@example.com", "password": "ops pass phrase"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        client.get(&instances_url).send().await.unwrap().status(),
        401,
        "the process list is for operators"
    );
    let roles_seen = |list: &Value| -> Vec<Value> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["roles"].clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .get(&info_url)
            .header("x-request-id", "proc-test-1")
            .send()
            .await
            .unwrap();
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["roles"], serde_json::json!(["web"]));
        let info: Value = client
            .get(&instances_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let seen = roles_seen(&info);
        if seen.contains(&serde_json::json!(["scheduler"]))
            && seen.contains(&serde_json::json!(["worker"]))
        {
            assert!(seen.contains(&serde_json::json!(["web"])));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers never registered: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGTERM: each process exits cleanly and leaves the instance table.
    sigterm(&normal);
    assert!(wait_exit(&mut normal, Duration::from_secs(15)).success());
    sigterm(&scheduler);
    assert!(wait_exit(&mut scheduler, Duration::from_secs(15)).success());
    let info: Value = client
        .get(&instances_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        roles_seen(&info),
        vec![serde_json::json!(["web"])],
        "stopped workers deregistered: {info}"
    );
    sigterm(&web);
    assert!(wait_exit(&mut web, Duration::from_secs(15)).success());

    // serve logs JSON lines carrying the request id.
    let log = std::fs::read_to_string(dir.path().join("web.err")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("proc-test-1"))
        .unwrap_or_else(|| panic!("no log line with the request id: {log}"));
    let json: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(json["request_id"], "proc-test-1", "{json}");
    let worker_log = std::fs::read_to_string(dir.path().join("scheduler.err")).unwrap();
    assert!(
        worker_log.contains("active roles: scheduler"),
        "{worker_log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_everything_on_a_fresh_directory() {
    let dir = tempfile::tempdir().unwrap();
    let port = sen_testkit::free_port();
    let mut dev = spawn(
        dir.path(),
        &["dev"],
        &[("SEN_PORT", port.to_string())],
        "dev",
    );
    let r = wait_http(&format!("http://127.0.0.1:{port}/api/v1/system/info")).await;
    let info: Value = r.json().await.unwrap();
    assert_eq!(
        info["roles"],
        serde_json::json!(["web", "scheduler", "worker"])
    );
    assert_eq!(info["backends"]["database"], "sqlite");
    assert!(
        dir.path().join("data/sen.db").exists(),
        "default SQLite file under ./data"
    );
    let ready = wait_http(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!(ready.status(), 200, "dev applied migrations");
    sigterm(&dev);
    assert!(wait_exit(&mut dev, Duration::from_secs(15)).success());
    let out = std::fs::read_to_string(dir.path().join("dev.out")).unwrap();
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/api/docs")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cli_lists_shows_cancels_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/jobs.db", dir.path().display());
    let env = vec![("DATABASE_URL", url.clone())];
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    let mut config = sen_core::Config::default();
    config.database_url = sen_core::config::Secret::new(url);
    let apps = sen_core::Apps::new()
        .register(sen_core::system::SystemApp)
        .unwrap();
    let ctx = sen_core::AppContext::connect(config, vec![], apps)
        .await
        .unwrap();
    let job = sen_core::jobs::NewJob::raw("demo.kind", &serde_json::json!({"n": 1}));
    let id = ctx.jobs().enqueue(ctx.db().orm(), job).await.unwrap().id;

    let out = run(dir.path(), &["jobs", "list", "--state", "available"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["id"].as_str(), line["kind"].as_str()),
        (Some(id.as_str()), Some("demo.kind"))
    );
    let out = run(dir.path(), &["jobs", "cancel", &id], &env);
    assert!(out.status.success());
    let out = run(dir.path(), &["jobs", "cancel", &id], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a finished job cannot be cancelled again"
    );
    let shown: Value =
        serde_json::from_slice(&run(dir.path(), &["jobs", "show", &id], &env).stdout).unwrap();
    assert_eq!(shown["state"], "cancelled");
    assert_eq!(shown["args"]["n"], 1);
    assert!(
        run(dir.path(), &["jobs", "retry", &id], &env)
            .status
            .success()
    );
    // Both changes are in the audit log, made from the command line; the
    // refused second cancel wrote nothing.
    use sea_orm::ConnectionTrait as _;
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT action, actor_id, detail FROM sen_audit WHERE target = ? ORDER BY id",
            [id.clone().into()],
        ))
        .await
        .unwrap();
    let audit: Vec<(String, Option<String>, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "action").unwrap(),
                r.try_get("", "actor_id").unwrap(),
                r.try_get("", "detail").unwrap(),
            )
        })
        .collect();
    let via_cli = r#"{"via":"cli"}"#.to_string();
    assert_eq!(
        audit,
        vec![
            ("job.cancel".into(), None, via_cli.clone()),
            ("job.retry".into(), None, via_cli)
        ]
    );
    let stats: Value =
        serde_json::from_slice(&run(dir.path(), &["jobs", "stats"], &env).stdout).unwrap();
    assert_eq!(stats[0]["states"]["available"], 1, "{stats}");
    let out = run(dir.path(), &["jobs", "list", "--state", "bogus"], &env);
    assert_clean_failure(&out, "--state must be one of");
    assert_eq!(
        run(dir.path(), &["jobs", "show", "nope"], &env)
            .status
            .code(),
        Some(1)
    );
}
