//! Every error class answers problem+json with a stable code, on both
//! backends, through the real router and middleware.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::spawn;
use reqwest::Method;
use sen_testkit::{TestApp, assert_problem};
use serde_json::json;

async fn unknown_api_path_is_404(app: TestApp) {
    let body = assert_problem(app.get("/api/v1/nope/items").await, 404, "not_found").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1/nope/items")
    );
    assert_problem(app.get("/api/v1/probe/items/extra").await, 404, "not_found").await;
}

async fn wrong_method_is_405_with_allow(app: TestApp) {
    let r = app
        .request(Method::DELETE, "/api/v1/system/info")
        .send()
        .await
        .unwrap();
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    assert_problem(r, 405, "method_not_allowed").await;
    assert!(allow.unwrap_or_default().contains("GET"));
}

async fn malformed_json_is_400(app: TestApp) {
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .header("content-type", "application/json")
        .body("{\"name\": \"a\",")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_json").await;
}

async fn wrong_content_type_is_415(app: TestApp) {
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .header("content-type", "text/plain")
        .body("name=a")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
}

async fn validation_is_422_per_field(app: TestApp) {
    let body = assert_problem(
        app.post_json("/api/v1/probe/items", &json!({"name": "", "qty": 0}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"name") && fields.contains(&"qty"),
        "{body}"
    );
    for e in body["errors"].as_array().unwrap() {
        assert!(e["code"].is_string() && e["message"].is_string(), "{e}");
    }
    let body = assert_problem(
        app.post_json("/api/v1/probe/items", &json!({"name": "a", "qty": "x"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "qty");
    assert_eq!(body["errors"][0]["code"], "invalid_type");
    let body = assert_problem(
        app.post_json(
            "/api/v1/probe/items",
            &json!({"name": "a", "qty": 1, "admin": true}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "admin");
    assert_eq!(body["errors"][0]["code"], "unknown_field");
    let r = app
        .post_json("/api/v1/probe/items", &json!({"name": "a", "qty": 3}))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"name": "a", "qty": 3})
    );
}

async fn oversized_body_is_413(app: TestApp) {
    let limit = app.ctx.config().body_limit_bytes;
    let huge = format!("{{\"name\":\"{}\",\"qty\":1}}", "a".repeat(limit + 10));
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_problem(r, 413, "payload_too_large").await;

    // Far larger than the socket buffers, so the client is still writing
    // when the server decides: it must read the 413, not a reset, whether
    // the size was declared or only discovered while streaming.
    let huge = format!(
        "{{\"name\":\"{}\",\"qty\":1}}",
        "a".repeat(limit + 16 * 1024 * 1024)
    );
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .expect("the 413 arrives instead of a reset");
    assert_eq!(r.headers()["connection"], "close");
    assert_problem(r, 413, "payload_too_large").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("the 413 arrives instead of a reset");
    assert_problem(r, 413, "payload_too_large").await;
    // A body of the wrong type is refused the same way.
    let r = app
        .request(Method::POST, "/api/v1/probe/items")
        .header("content-type", "text/plain")
        .body(vec![b'x'; 8 * 1024 * 1024])
        .send()
        .await
        .expect("the 415 arrives instead of a reset");
    assert_problem(r, 415, "unsupported_media_type").await;
    // The server still answers a good body.
    let r = app
        .post_json("/api/v1/probe/items", &json!({"name": "b", "qty": 1}))
        .await;
    assert_eq!(r.status(), 201);
}

async fn internal_error_is_500_without_internals(app: TestApp) {
    let r = app
        .request(Method::GET, "/api/v1/probe/boom")
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    let raw = assert_problem(r, 500, "internal_error").await;
    assert_eq!(raw["request_id"], "trace-me-123");
    assert!(
        !raw.to_string().contains("hunter2"),
        "internals leaked: {raw}"
    );
}

async fn panic_is_500_and_server_survives(app: TestApp) {
    let body = assert_problem(app.get("/api/v1/probe/panic").await, 500, "internal_error").await;
    assert!(
        !body.to_string().contains("exploded"),
        "panic message leaked: {body}"
    );
    assert_problem(app.get("/api/v1/probe/panic").await, 500, "internal_error").await;
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "server still up after panics"
    );
}

async fn slow_handler_times_out_as_problem(app: TestApp) {
    let r = app.get("/api/v1/probe/slow?ms=5000").await;
    assert_problem(r, 503, "request_timeout").await;
    let r = app.get("/api/v1/probe/slow?ms=1").await;
    assert_eq!(r.status(), 200);
}

async fn bad_query_is_400_problem(app: TestApp) {
    let body = assert_problem(
        app.get("/api/v1/probe/slow?ms=soon").await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(body["field"], "ms");
    assert_problem(app.get("/api/v1/probe/slow").await, 400, "invalid_query").await;
}

async fn spawn_with_short_timeout(backend: sen_testkit::Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.request_timeout_ms = 300)
        .spawn()
        .await
}

sen_testkit::both_backends!(spawn;
    unknown_api_path_is_404,
    wrong_method_is_405_with_allow,
    malformed_json_is_400,
    wrong_content_type_is_415,
    validation_is_422_per_field,
    oversized_body_is_413,
    internal_error_is_500_without_internals,
    panic_is_500_and_server_survives,
    bad_query_is_400_problem,
);

mod timeouts {
    use super::*;
    sen_testkit::both_backends!(spawn_with_short_timeout; slow_handler_times_out_as_problem);
}
