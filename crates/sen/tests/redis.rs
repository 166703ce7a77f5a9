//! Redis-backed cache and pub/sub: shared across instances, and surviving
//! a Redis crash and restart (readiness says so, requests that need Redis
//! get 503 problems, the process stays up, subscriptions come back).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use sen_testkit::redis::RedisServer;
use sen_testkit::{Backend, TestApp, assert_problem};
use serde_json::Value;

async fn with_redis(backend: Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .shared_redis()
        .spawn()
        .await
}

async fn redis_backs_cache_and_pubsub(app: TestApp) {
    let info: Value = app.get("/api/v1/system/info").await.json().await.unwrap();
    assert_eq!(info["backends"]["cache"], "redis");
    assert_eq!(info["backends"]["pubsub"], "redis");
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["ok"], true, "{ready}");
    let r = app.get("/api/v1/probe/cache").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["value"], 42);
}

async fn two_instances_share_cache_and_messages(backend: Backend) {
    let prefix = format!("shared{}:", uuid::Uuid::now_v7().simple());
    let p1 = prefix.clone();
    let a = TestApp::builder(backend)
        .shared_redis()
        .config(move |c| c.redis_prefix = p1)
        .spawn()
        .await;
    let b = TestApp::builder(backend)
        .shared_redis()
        .config(move |c| c.redis_prefix = prefix)
        .spawn()
        .await;
    let mut sub = b.ctx.pubsub().subscribe("room:1").await.unwrap();
    let mut other = b.ctx.pubsub().subscribe("room:2").await.unwrap();
    a.ctx
        .pubsub()
        .publish("room:1", Bytes::from_static(b"hello from a"))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("delivered across instances")
        .unwrap();
    assert_eq!(got, Bytes::from_static(b"hello from a"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.recv())
            .await
            .is_err(),
        "other channel got nothing"
    );
    a.ctx.cache().set_json("k", &"v", None).await.unwrap();
    assert_eq!(
        b.ctx
            .cache()
            .get_json::<String>("k")
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
}

async fn wait_for(app: &TestApp, path: &str, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get(path).await;
        if r.status().as_u16() == status {
            return r.json().await.unwrap_or(Value::Null);
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn survives_redis_restart(backend: Backend) {
    let mut redis = RedisServer::start().unwrap();
    let app = TestApp::builder(backend)
        .apps(common::apps())
        .redis(redis.url())
        .spawn()
        .await;
    let mut sub = app.ctx.pubsub().subscribe("events").await.unwrap();

    redis.stop();
    let body = wait_for(&app, "/readyz", 503).await;
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    assert_problem(
        app.get("/api/v1/probe/cache").await,
        503,
        "dependency_unavailable",
    )
    .await;
    assert!(
        app.ctx
            .pubsub()
            .publish("events", Bytes::from_static(b"lost"))
            .await
            .is_err()
    );
    assert_eq!(app.get("/healthz").await.status(), 200, "process survives");
    assert_eq!(
        app.get("/api/v1/system/info").await.status(),
        200,
        "requests that do not need Redis still work"
    );

    redis.restart().unwrap();
    wait_for(&app, "/readyz", 200).await;
    let r = app.get("/api/v1/probe/cache").await;
    assert_eq!(r.status(), 200);
    // The subscription made before the crash receives again (resubscribed).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        app.ctx
            .pubsub()
            .publish("events", Bytes::from_static(b"after restart"))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(300), sub.recv()).await {
            Ok(Ok(msg)) => {
                assert_eq!(msg, Bytes::from_static(b"after restart"));
                break;
            }
            _ => assert!(Instant::now() < deadline, "subscription never came back"),
        }
    }
}

sen_testkit::both_backends!(with_redis; redis_backs_cache_and_pubsub);

mod sqlite_multi {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_share_cache_and_messages_sqlite() {
        two_instances_share_cache_and_messages(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_share_cache_and_messages_postgres() {
        two_instances_share_cache_and_messages(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_redis_restart_sqlite() {
        survives_redis_restart(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn survives_redis_restart_postgres() {
        survives_redis_restart(Backend::Postgres).await
    }
}
