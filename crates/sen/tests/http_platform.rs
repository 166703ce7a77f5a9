//! Platform endpoints and middleware on both backends: system info, health,
//! metrics, OpenAPI and docs, request ids, security headers, compression,
//! CORS, graceful shutdown with a request in flight, and the interactive-load
//! count password hashing steers by.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::spawn;
use reqwest::Method;
use sen_testkit::{Backend, TestApp, assert_problem};
use serde_json::Value;

async fn system_info_reports_backends_roles_and_instance(app: TestApp) {
    let r = app.get("/api/v1/system/info").await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    let db = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(info["backends"]["database"], db);
    assert_eq!(info["backends"]["cache"], "memory");
    assert_eq!(info["backends"]["pubsub"], "local");
    assert_eq!(
        info["roles"],
        serde_json::json!(["web", "scheduler", "worker"])
    );
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let names: Vec<&str> = info["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "system", "auth", "jobs", "realtime", "mail", "files", "web", "probe"
        ]
    );
    let me = info["instance_id"].as_str().unwrap();
    assert_problem(
        app.get("/api/v1/system/instances").await,
        401,
        "unauthenticated",
    )
    .await;
    let token = common::owner_token(&app).await;
    let list: Value = app
        .request(Method::GET, "/api/v1/system/instances")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = list["items"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|i| i["id"] == me
                && i["roles"] == serde_json::json!(["web", "scheduler", "worker"])),
        "{list}"
    );
}

async fn health_and_readiness(app: TestApp) {
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["ok"], true);
    assert_eq!(body["checks"]["schema"]["ok"], true);
    assert!(
        body["checks"].get("redis").is_none(),
        "no redis configured: {body}"
    );
}

async fn readiness_fails_when_schema_is_behind(app: TestApp) {
    // Forget that a migration ran: the binary now knows one the database lacks.
    let db = app.ctx.db();
    sea_orm::ConnectionTrait::execute_raw(
        db.orm(),
        db.statement(
            "DELETE FROM sen_migrations WHERE app = ?",
            ["system".into()],
        ),
    )
    .await
    .unwrap();
    let body = assert_problem(app.get("/readyz").await, 503, "not_ready").await;
    assert_eq!(body["checks"]["schema"]["ok"], false, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("schema"),
        "{body}"
    );
}

async fn readiness_fails_when_database_is_gone(app: TestApp) {
    let token = common::owner_token(&app).await;
    app.ctx.db().close().await;
    let body = assert_problem(app.get("/readyz").await, 503, "not_ready").await;
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the database"
    );
    let body = assert_problem(
        app.request(Method::GET, "/api/v1/system/instances")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        503,
        "dependency_unavailable",
    )
    .await;
    assert!(!body.to_string().contains("pool"), "no internals: {body}");
}

async fn metrics_count_requests_by_route_and_status(app: TestApp) {
    for _ in 0..3 {
        app.get("/api/v1/system/info").await;
    }
    app.get("/api/v1/nothing-here").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let count = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // Other tests in this process share the registry: counts are lower bounds.
    assert!(
        count(r#"http_requests_total{method="GET",route="/api/v1/system/info",status="200"}"#)
            >= 3.0,
        "{text}"
    );
    assert!(
        count(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#) >= 1.0,
        "{text}"
    );
    assert!(text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/system/info",status="200",le="0.005"}"#), "{text}");
    assert!(
        text.contains("db_pool_connections{state=\"idle\"}")
            && text.contains("db_pool_max_connections"),
        "{text}"
    );
    assert!(
        !text.contains("/api/v1/nothing-here"),
        "raw paths must not become labels"
    );
}

async fn openapi_document_lists_app_routes(app: TestApp) {
    let r = app.get("/api/openapi.json").await;
    assert_eq!(r.status(), 200);
    let spec: Value = r.json().await.unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    for path in [
        "/api/v1/system/info",
        "/api/v1/probe/items",
        "/healthz",
        "/readyz",
    ] {
        assert!(spec["paths"].get(path).is_some(), "missing {path}");
    }
    assert!(spec["components"]["schemas"].get("Problem").is_some());
    assert!(spec["components"]["schemas"].get("NewItem").is_some());
}

async fn app_routes_mount_at_their_full_path(app: TestApp) {
    // `/` mounts at the app's own path, a path without a leading slash
    // under it, and the handler sees the request's real URI and template.
    let r = app.get("/api/v1/probe").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "probe root");
    let r = app.get("/api/v1/probe/where/7?x=1").await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["uri"], "/api/v1/probe/where/7?x=1");
    assert_eq!(seen["matched"], "/api/v1/probe/where/{id}");
    assert_problem(app.get("/api/v1/probe/where").await, 404, "not_found").await;
    // Documented routes carry the full path in the OpenAPI document, once.
    let spec: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/probe/items"));
    assert!(paths.contains_key("/api/v1/auth/login"));
    assert!(
        !paths.keys().any(|p| p.contains("//") || p == "/items"),
        "{:?}",
        paths.keys()
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"route="/api/v1/probe/where/{id}""#),
        "{metrics}"
    );
}

async fn docs_ui_is_self_contained(app: TestApp) {
    let r = app.get("/api/docs/").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(
                !url.starts_with("http") && !url.starts_with("//"),
                "external asset {url}"
            );
            assets.push(url.trim_start_matches("./").to_string());
        }
    }
    assert!(!assets.is_empty());
    for asset in assets {
        let r = app.get(&format!("/api/docs/{asset}")).await;
        assert_eq!(r.status(), 200, "embedded asset {asset}");
    }
    let init = app
        .get("/api/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    let compact: String = init.split_whitespace().collect();
    assert!(compact.contains("/api/openapi.json"), "{init}");
    assert!(
        compact.contains("\"validatorUrl\":\"none\""),
        "no online validator: {init}"
    );
}

async fn request_id_is_echoed_or_generated(app: TestApp) {
    let r = app
        .request(Method::GET, "/healthz")
        .header("x-request-id", "client-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-id-1");
    let r = app
        .request(Method::GET, "/healthz")
        .header("x-request-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "bad id\twith tab");
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "generated id is a UUID: {id}"
    );
    let a = app.get("/healthz").await.headers()["x-request-id"].clone();
    let b = app.get("/healthz").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
}

async fn security_headers_on_every_response(app: TestApp) {
    for r in [
        app.get("/healthz").await,
        app.get("/api/v1/nope").await,
        app.get("/api/v1/probe/panic").await,
    ] {
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS unless configured"
        );
    }
}

async fn responses_are_compressed_on_request(app: TestApp) {
    let r = app
        .request(Method::GET, "/api/v1/probe/big")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let gz = r.bytes().await.unwrap().len();
    let r = app
        .request(Method::GET, "/api/v1/probe/big")
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    // The wildcard accepts ours too.
    let r = app
        .request(Method::GET, "/api/v1/probe/big")
        .header("accept-encoding", "*")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_some(), "*");
    // Encodings we do not make, or gzip refused with q=0: identity.
    for accept in ["identity", "deflate, zstd", "gzip;q=0"] {
        let r = app
            .request(Method::GET, "/api/v1/probe/big")
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("content-encoding").is_none(), "{accept}");
    }
    let plain = app.get("/api/v1/probe/big").await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap().len();
    assert!(gz * 3 < plain, "gzip {gz} vs plain {plain}");
}

async fn cors_allows_only_configured_origins(app: TestApp) {
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/api/v1/probe/items")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let simple = app
        .request(Method::GET, "/healthz")
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

async fn in_flight_request_finishes_on_shutdown(mut app: TestApp) {
    let url = app.url("/api/v1/probe/slow?ms=1500");
    let client = app.client.clone();
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.begin_shutdown();
    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), app.wait_stopped())
        .await
        .expect("stops after in-flight work")
        .unwrap();
    assert!(
        reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

async fn spawn_with_cors(backend: Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.cors_origins = vec!["https://app.example".into()])
        .spawn()
        .await
}

sen_testkit::both_backends!(spawn;
    system_info_reports_backends_roles_and_instance,
    health_and_readiness,
    readiness_fails_when_schema_is_behind,
    readiness_fails_when_database_is_gone,
    metrics_count_requests_by_route_and_status,
    openapi_document_lists_app_routes,
    app_routes_mount_at_their_full_path,
    docs_ui_is_self_contained,
    request_id_is_echoed_or_generated,
    security_headers_on_every_response,
    responses_are_compressed_on_request,
    in_flight_request_finishes_on_shutdown,
);

mod cors {
    use super::*;
    sen_testkit::both_backends!(spawn_with_cors; cors_allows_only_configured_origins);
}

/// The edge counts answered requests for `sen_core::interactive`, which
/// password hashing steers by (it keeps to half the cores while requests
/// flow): a stream of requests through the real server makes it say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_count_as_interactive_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let app = std::sync::Arc::new(spawn(Backend::Sqlite).await);
    // Looks at every window as it closes, so one busy window is enough.
    let seen = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let seen = seen.clone();
        async move {
            while !sen_core::interactive::flowing() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen.store(true, Ordering::Relaxed);
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
        let batch: Vec<_> = (0..16)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        assert_eq!(app.get("/healthz").await.status(), 200);
                    }
                })
            })
            .collect();
        for task in batch {
            task.await.unwrap();
        }
    }
    tokio::time::sleep(sen_core::interactive::WINDOW).await;
    watcher.abort();
    assert!(
        seen.load(Ordering::Relaxed),
        "15 s of requests never counted as flowing"
    );
}
