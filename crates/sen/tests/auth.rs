//! Identity and access through the real router on both backends:
//! registration, login, cookies, refresh rotation with reuse detection,
//! logout, the profile, sessions (with another user's ids), password
//! change, TOTP with replay and recovery codes, forged tokens, CSRF,
//! admin user management, roles and the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, Response};
use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
use sen_testkit::{TestApp, assert_problem};
use serde_json::{Value, json};

/// A server with the platform apps, the probe app and workers (password
/// reset mail is made by a job).
async fn spawn(backend: sen_testkit::Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .workers()
        .spawn()
        .await
}

const PW: &str = "a long pass phrase";

async fn register(app: &TestApp, email: &str) -> Value {
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": PW, "name": "Ann"}),
        )
        .await;
    assert_eq!(r.status(), 201, "register {email}");
    r.json::<Value>().await.unwrap()["user"].clone()
}

async fn login(app: &TestApp, email: &str, extra: Value) -> Response {
    let mut body = json!({"email": email, "password": PW});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.post_json("/api/v1/auth/login", &body).await
}

/// Logs in as a native client: (access, refresh).
async fn native(app: &TestApp, email: &str) -> (String, String) {
    let r = login(app, email, json!({"client": "native"})).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    (
        b["access_token"].as_str().unwrap().into(),
        b["refresh_token"].as_str().unwrap().into(),
    )
}

async fn get_auth(app: &TestApp, path: &str, token: &str) -> Response {
    app.request(Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn send_auth(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> Response {
    app.request(method, path)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn refresh_native(app: &TestApp, refresh: &str) -> Response {
    app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await
}

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

async fn register_validates_and_normalises(app: TestApp) {
    let user = register(&app, "  Ann@Example.COM ").await;
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann");
    assert_eq!(user["mfa_enabled"], false);
    assert!(user.get("password_hash").is_none());
    let dup = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ANN@example.com", "password": PW, "name": "B"}),
        )
        .await;
    assert_problem(dup, 409, "email_taken").await;
    for (password, code) in [
        ("short", "too_short"),
        ("Password123", "too_common"),
        (&"x".repeat(129)[..], "too_long"),
    ] {
        let r = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": "new@example.com", "password": password, "name": "N"}),
            )
            .await;
        let body = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "password", "{body}");
        assert_eq!(body["errors"][0]["code"], code, "{body}");
    }
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "nope", "password": PW, "name": "", "role": "owner"}),
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "unknown_field", "{body}");
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "nope", "password": PW, "name": ""}),
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name"], "{body}");
    let count = app
        .ctx
        .db()
        .orm()
        .query_one_raw(
            app.ctx
                .db()
                .statement("SELECT COUNT(*) AS n FROM sen_users", []),
        )
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, 1, "rejected registrations wrote nothing");
}

async fn login_sets_cookies_and_me_works_with_either(app: TestApp) {
    register(&app, "ann@example.com").await;
    assert_problem(
        login(
            &app,
            "ann@example.com",
            json!({"password": "wrong password!"}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        login(&app, "nobody@example.com", json!({})).await,
        401,
        "invalid_credentials",
    )
    .await;
    let r = login(&app, "ANN@example.com", json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&r);
    let access_cookie = cookies
        .iter()
        .find(|c| c.starts_with("sen_access="))
        .unwrap();
    assert!(access_cookie.contains("HttpOnly") && access_cookie.contains("Secure"));
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("sen_refresh="))
        .unwrap();
    assert!(refresh_cookie.contains("HttpOnly"), "{refresh_cookie}");
    assert!(
        refresh_cookie.contains("SameSite=Strict"),
        "{refresh_cookie}"
    );
    assert!(
        refresh_cookie.contains("Path=/api/v1/auth;"),
        "{refresh_cookie}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(
        body.get("refresh_token").is_none(),
        "browsers get only the cookie"
    );
    let token = body["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());

    let me: Value = get_auth(&app, "/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ann@example.com");
    for key in [
        "id",
        "name",
        "avatar_url",
        "mood",
        "roles",
        "permissions",
        "mfa_enabled",
        "created_at",
    ] {
        assert!(me.get(key).is_some(), "{key} in {me}");
    }
    let by_cookie = app
        .request(Method::GET, "/api/v1/me")
        .header(
            "cookie",
            format!("sen_access={}", cookie_value(&cookies, "sen_access")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
    assert_problem(app.get("/api/v1/me").await, 401, "unauthenticated").await;
    assert_problem(
        get_auth(&app, "/api/v1/me", "not-a-token").await,
        401,
        "invalid_token",
    )
    .await;
    let r = login(&app, "ann@example.com", json!({"client": "native"})).await;
    let body: Value = r.json().await.unwrap();
    assert!(body["refresh_token"].as_str().unwrap().starts_with("senr_"));
}

async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (access0, refresh0) = native(&app, "ann@example.com").await;
    let r = refresh_native(&app, &refresh0).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let refresh1 = b["refresh_token"].as_str().unwrap().to_string();
    let access1 = b["access_token"].as_str().unwrap().to_string();
    assert_ne!(refresh0, refresh1);
    assert_eq!(get_auth(&app, "/api/v1/me", &access1).await.status(), 200);
    // Replaying the rotated token: 401 and the whole family dies.
    assert_problem(refresh_native(&app, &refresh0).await, 401, "token_reused").await;
    assert_problem(
        refresh_native(&app, &refresh1).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    for t in [&access0, &access1] {
        assert_problem(get_auth(&app, "/api/v1/me", t).await, 401, "invalid_token").await;
    }
    assert_problem(
        refresh_native(&app, "senr_made-up").await,
        401,
        "invalid_refresh_token",
    )
    .await;
    // The browser flow: the refresh cookie alone.
    let r = login(&app, "ann@example.com", json!({})).await;
    let cookies = set_cookies(&r);
    let r = app
        .request(Method::POST, "/api/v1/auth/refresh")
        .header(
            "cookie",
            format!("sen_refresh={}", cookie_value(&cookies, "sen_refresh")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(cookie_value(&set_cookies(&r), "sen_refresh") != cookie_value(&cookies, "sen_refresh"));
    let audit = audit_actions(&app).await;
    assert!(
        audit.contains(&"session.token_reused".to_string()),
        "{audit:?}"
    );
}

async fn concurrent_refreshes_of_one_token_let_at_most_one_through(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (_, refresh) = native(&app, "ann@example.com").await;
    let attempts = (0..8).map(|_| refresh_native(&app, &refresh));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok <= 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

/// The first column (`v`) of the one row `sql` returns.
async fn scalar<T: sea_orm::TryGetable>(
    app: &TestApp,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> T {
    let db = app.ctx.db();
    db.orm()
        .query_one_raw(db.statement(sql, values))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "v")
        .unwrap()
}

/// One integer column of a session's row.
async fn session_value(app: &TestApp, session_id: &str, column: &str) -> Option<i64> {
    let sql = format!("SELECT {column} AS v FROM sen_sessions WHERE id = ?");
    scalar(app, &sql, vec![session_id.into()]).await
}

async fn newest_session(app: &TestApp) -> String {
    let sql = "SELECT id AS v FROM sen_sessions ORDER BY created_at DESC, id DESC LIMIT 1";
    scalar(app, sql, vec![]).await
}

async fn refresh_rows(app: &TestApp) -> i64 {
    scalar(app, "SELECT COUNT(*) AS v FROM sen_refresh_tokens", vec![]).await
}

/// The refresh token of a successful refresh's answer.
async fn refreshed(r: Response) -> String {
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn refresh_tokens_are_session_generations_and_forgeries_end_nothing(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (_, first) = native(&app, "ann@example.com").await;
    let sid = newest_session(&app).await;
    assert_eq!(session_value(&app, &sid, "refresh_gen").await, Some(1));
    let second = refreshed(refresh_native(&app, &first).await).await;
    assert_eq!(session_value(&app, &sid, "refresh_gen").await, Some(2));
    assert_eq!(refresh_rows(&app).await, 0, "no token needs a row");

    // Forgeries of this session's tokens, old and current: each is refused
    // as invalid, not as a replay, and the session lives on.
    let other =
        sen_auth::refresh_token::RefreshKey::new("another instance's secret key, 32+ chars");
    let mut altered = URL_SAFE_NO_PAD.decode(&second["senr_".len()..]).unwrap();
    *altered.last_mut().unwrap() ^= 1;
    for forged in [
        other.token(&sid, 1).unwrap(),
        other.token(&sid, 2).unwrap(),
        format!("senr_{}", URL_SAFE_NO_PAD.encode(&altered)),
        format!("senr_{}", &second["senr_".len() + 2..]),
    ] {
        assert_problem(
            refresh_native(&app, &forged).await,
            401,
            "invalid_refresh_token",
        )
        .await;
    }
    assert_eq!(session_value(&app, &sid, "revoked_at").await, None);
    // The real current token still refreshes.
    let third = refreshed(refresh_native(&app, &second).await).await;
    // The real older generation is a replay: the family ends.
    assert_problem(refresh_native(&app, &first).await, 401, "token_reused").await;
    assert!(session_value(&app, &sid, "revoked_at").await.is_some());
    assert_problem(
        refresh_native(&app, &third).await,
        401,
        "invalid_refresh_token",
    )
    .await;
}

/// A refresh token of the earlier scheme (a random token stored hashed in
/// `sen_refresh_tokens`), as a session opened before migration 0009 has.
async fn legacy_refresh_token(app: &TestApp, session_id: &str) -> String {
    let token = format!(
        "senr_{}",
        URL_SAFE_NO_PAD.encode(uuid::Uuid::now_v7().as_bytes().repeat(2))
    );
    let db = app.ctx.db();
    for (sql, values) in [
        (
            "UPDATE sen_sessions SET refresh_gen = 0 WHERE id = ?",
            vec![session_id.into()],
        ),
        (
            "INSERT INTO sen_refresh_tokens (id, session_id, token_hash, created_at) VALUES (?, ?, ?, 0)",
            vec![
                uuid::Uuid::now_v7().to_string().into(),
                session_id.into(),
                sen_auth::crypto::sha256_hex(token.as_bytes()).into(),
            ],
        ),
    ] {
        db.orm()
            .execute_raw(db.statement(sql, values))
            .await
            .unwrap();
    }
    token
}

async fn refresh_tokens_from_before_generations_refresh_once(app: TestApp) {
    register(&app, "ann@example.com").await;
    native(&app, "ann@example.com").await;
    let sid = newest_session(&app).await;
    let legacy = legacy_refresh_token(&app, &sid).await;
    let next = refreshed(refresh_native(&app, &legacy).await).await;
    assert_eq!(session_value(&app, &sid, "refresh_gen").await, Some(1));
    // Its successor is of the new scheme and refreshes too.
    let last = refreshed(refresh_native(&app, &next).await).await;
    assert_problem(refresh_native(&app, &legacy).await, 401, "token_reused").await;
    assert_problem(
        refresh_native(&app, &last).await,
        401,
        "invalid_refresh_token",
    )
    .await;

    // Logging out with such a token ends its session.
    native(&app, "ann@example.com").await;
    let sid = newest_session(&app).await;
    let legacy = legacy_refresh_token(&app, &sid).await;
    let r = app
        .post_json("/api/v1/auth/logout", &json!({"refresh_token": legacy}))
        .await;
    assert_eq!(r.status(), 204);
    assert!(session_value(&app, &sid, "revoked_at").await.is_some());
}

/// On SQLite, a sign-in's account read and session write and each bearer
/// token's session check run on the inline lane (the calling thread), and
/// what they read there is right: the user, and a session that stops
/// working once logged out. On PostgreSQL there is no lane and the same
/// requests answer the same.
async fn sign_in_and_token_checks_run_on_the_inline_lane(app: TestApp) {
    let db = app.ctx.db().clone();
    register(&app, "ann@example.com").await;
    let lane = || db.inline_reads().zip(db.inline_counts());
    let before = lane();
    assert_eq!(
        before.is_some(),
        app.backend == sen_testkit::Backend::Sqlite
    );
    let (access, _) = native(&app, "ann@example.com").await;
    if let (Some(((r0, rp0), (w0, wp0))), Some(((r1, rp1), (w1, wp1)))) = (before, lane()) {
        assert_eq!((r1 - r0, rp1 - rp0), (1, 0), "the account read");
        assert_eq!((w1 - w0, wp1 - wp0), (1, 0), "the session write");
    }
    let before = lane();
    for _ in 0..3 {
        let r = get_auth(&app, "/api/v1/me", &access).await;
        assert_eq!(r.status(), 200);
        let me: Value = r.json().await.unwrap();
        assert_eq!(me["email"], "ann@example.com");
        assert_eq!(me["mfa_enabled"], false);
    }
    let r = app
        .request(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(
        get_auth(&app, "/api/v1/me", &access).await,
        401,
        "invalid_token",
    )
    .await;
    if let (Some(((r0, rp0), _)), Some(((r1, rp1), _))) = (before, lane()) {
        assert_eq!(
            (r1 - r0, rp1 - rp0),
            (5, 0),
            "three profile reads, the logout's check and the revoked one"
        );
    }
}

async fn logout_ends_the_session(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (access, refresh) = native(&app, "ann@example.com").await;
    let r = app
        .request(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = set_cookies(&r);
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    assert_problem(
        get_auth(&app, "/api/v1/me", &access).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        refresh_native(&app, &refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_problem(
        app.request(Method::POST, "/api/v1/auth/logout")
            .send()
            .await
            .unwrap(),
        401,
        "unauthenticated",
    )
    .await;
}

async fn profile_patch_accepts_only_name_and_mood(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (access, _) = native(&app, "ann@example.com").await;
    let r = send_auth(
        &app,
        Method::PATCH,
        "/api/v1/me",
        &access,
        json!({"name": "Ann B", "mood": "sunny"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        (me["name"].as_str(), me["mood"].as_str()),
        (Some("Ann B"), Some("sunny"))
    );
    for body in [
        json!({"name": "X", "email": "evil@example.com"}),
        json!({"roles": ["owner"]}),
        json!({"mood": "x".repeat(141)}),
        json!({"name": ""}),
    ] {
        let r = send_auth(&app, Method::PATCH, "/api/v1/me", &access, body.clone()).await;
        assert_problem(r, 422, "validation_failed").await;
    }
    let me: Value = get_auth(&app, "/api/v1/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Ann B", "rejected patches changed nothing");
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["roles"], json!([]));
}

async fn cookie_writes_need_a_same_origin_proof(app: TestApp) {
    register(&app, "ann@example.com").await;
    let r = login(&app, "ann@example.com", json!({})).await;
    let cookie = format!(
        "sen_access={}",
        cookie_value(&set_cookies(&r), "sen_access")
    );
    let r = app
        .request(Method::PATCH, "/api/v1/me")
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&json!({"mood": "hacked"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "csrf_rejected").await;
    let r = app
        .request(Method::PATCH, "/api/v1/me")
        .header("cookie", &cookie)
        .header("x-requested-with", "fetch")
        .json(&json!({"mood": "fine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .request(Method::PATCH, "/api/v1/me")
        .header("cookie", &cookie)
        .header("origin", app.url(""))
        .json(&json!({"mood": "same origin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn sessions_are_listed_and_only_ones_own_can_be_ended(app: TestApp) {
    register(&app, "ann@example.com").await;
    register(&app, "bob@example.com").await;
    let (ann1, _) = native(&app, "ann@example.com").await;
    let (ann2, _) = native(&app, "ann@example.com").await;
    let (bob, _) = native(&app, "bob@example.com").await;
    let list: Value = get_auth(&app, "/api/v1/me/sessions", &ann1)
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let ann_other = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_list: Value = get_auth(&app, "/api/v1/me/sessions", &bob)
        .await
        .json()
        .await
        .unwrap();
    let bob_session = bob_list["items"][0]["id"].as_str().unwrap().to_string();
    // Ann cannot see or end Bob's session: 404, and Bob stays signed in.
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v1/me/sessions/{bob_session}"),
        )
        .bearer_auth(&ann1)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    assert_eq!(get_auth(&app, "/api/v1/me", &bob).await.status(), 200);
    let r = app
        .request(Method::DELETE, &format!("/api/v1/me/sessions/{ann_other}"))
        .bearer_auth(&ann1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(
        get_auth(&app, "/api/v1/me", &ann2).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(get_auth(&app, "/api/v1/me", &ann1).await.status(), 200);
}

async fn password_change_ends_every_other_session(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (here, _) = native(&app, "ann@example.com").await;
    let (elsewhere, elsewhere_refresh) = native(&app, "ann@example.com").await;
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/password",
        &here,
        json!({"current_password": "not it at all", "new_password": "another pass phrase"}),
    )
    .await;
    assert_problem(r, 401, "invalid_credentials").await;
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/password",
        &here,
        json!({"current_password": PW, "new_password": "password1"}),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/password",
        &here,
        json!({"current_password": PW, "new_password": "another pass phrase"}),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(get_auth(&app, "/api/v1/me", &here).await.status(), 200);
    assert_problem(
        get_auth(&app, "/api/v1/me", &elsewhere).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        refresh_native(&app, &elsewhere_refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_problem(
        login(&app, "ann@example.com", json!({})).await,
        401,
        "invalid_credentials",
    )
    .await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "ann@example.com", "password": "another pass phrase"}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

fn totp_code(secret_b32: &str, at: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).unwrap();
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name("x".to_string())
        .build()
        .unwrap();
    totp.generate(at).to_string()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn totp_with_replay_skew_and_recovery_codes(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (access, _) = native(&app, "ann@example.com").await;
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/mfa/totp",
        &access,
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let setup: Value = r.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap().to_string();
    assert!(
        setup["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(setup["qr_svg"].as_str().unwrap().contains("<svg"));
    let wrong = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/mfa/totp/confirm",
        &access,
        json!({"code": "000000"}),
    )
    .await;
    assert_problem(wrong, 401, "mfa_invalid").await;
    let t = now_secs();
    let code_now = totp_code(&secret, t);
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/mfa/totp/confirm",
        &access,
        json!({"code": code_now}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);

    assert_problem(
        login(&app, "ann@example.com", json!({})).await,
        401,
        "mfa_required",
    )
    .await;
    assert_problem(
        login(&app, "ann@example.com", json!({"totp": "123456"})).await,
        401,
        "mfa_invalid",
    )
    .await;
    // The code used to confirm is spent: replay is refused.
    assert_problem(
        login(&app, "ann@example.com", json!({"totp": code_now})).await,
        401,
        "mfa_invalid",
    )
    .await;
    // One step of skew ahead is accepted once; the step before it no more.
    let ahead = totp_code(&secret, t + 30);
    assert_eq!(
        login(&app, "ann@example.com", json!({"totp": ahead}))
            .await
            .status(),
        200
    );
    assert_problem(
        login(&app, "ann@example.com", json!({"totp": ahead})).await,
        401,
        "mfa_invalid",
    )
    .await;
    // A recovery code works once, in place of a TOTP code.
    let rc = codes[3].to_uppercase();
    assert_eq!(
        login(&app, "ann@example.com", json!({"totp": rc}))
            .await
            .status(),
        200
    );
    assert_problem(
        login(&app, "ann@example.com", json!({"totp": codes[3]})).await,
        401,
        "mfa_invalid",
    )
    .await;
    let stored = app
        .ctx
        .db()
        .orm()
        .query_all_raw(
            app.ctx
                .db()
                .statement("SELECT code_hash FROM sen_recovery_codes", []),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 10);
    for row in &stored {
        let h: String = row.try_get("", "code_hash").unwrap();
        assert!(!codes.contains(&h), "codes are stored hashed");
    }
    // Turning it off needs the password and a code.
    let r = app
        .request(Method::DELETE, "/api/v1/me/mfa/totp")
        .bearer_auth(&access)
        .json(&json!({"password": "wrong password!", "code": codes[0]}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_credentials").await;
    let r = app
        .request(Method::DELETE, "/api/v1/me/mfa/totp")
        .bearer_auth(&access)
        .json(&json!({"password": PW, "code": codes[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        login(&app, "ann@example.com", json!({})).await.status(),
        200
    );
    let audit = audit_actions(&app).await;
    for a in [
        "mfa.enable",
        "mfa.disable",
        "login.failure",
        "login.success",
    ] {
        assert!(audit.contains(&a.to_string()), "{a} in {audit:?}");
    }
}

fn forge(header: Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

async fn forged_and_misused_tokens_are_refused(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (good, _) = native(&app, "ann@example.com").await;
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert!(key.get("d").is_none(), "public keys only: {key}");
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();

    let mut forged = vec![
        // alg none
        forge(json!({"alg": "none", "typ": "at+jwt", "kid": kid}), &claims, b""),
        // HS256 keyed with the public key
        {
            let h = jsonwebtoken::Header {
                alg: jsonwebtoken::Algorithm::HS256,
                typ: Some("at+jwt".into()),
                kid: Some(kid.into()),
                ..Default::default()
            };
            jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(&x)).unwrap()
        },
        // the good signature under a header pointing elsewhere
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:1/jwks"})
                    .to_string()
            ),
            parts[1],
            parts[2]
        ),
        // a foreign kid
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD
                .encode(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "someone-else"}).to_string()),
            parts[1],
            parts[2]
        ),
        // tampered claims under the real signature
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode({
                let mut c = claims.clone();
                c["sub"] = json!("another-user");
                c.to_string()
            }),
            parts[2]
        ),
    ];
    // Our own key with wrong claims or type: sign with a key we hold by
    // reading the sealed private key through the server's own ring.
    let state = sen_auth::AuthState::of(&app.ctx).unwrap();
    let sign = |typ: &str, mutate: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        mutate(&mut c);
        let set = state.keys.current();
        set.signer.as_ref().unwrap().sign(typ, &c).unwrap()
    };
    forged.push(sign("at+jwt", &|c| {
        c["aud"] = json!("https://other.example")
    }));
    forged.push(sign("at+jwt", &|c| {
        c["iss"] = json!("https://other.example")
    }));
    forged.push(sign("at+jwt", &|c| c["exp"] = json!(1_000_000_000)));
    forged.push(sign("JWT", &|_| {}));
    forged.push(sign("at+jwt", &|c| {
        c.as_object_mut().unwrap().remove("exp");
    }));
    // The control: the same signer and claims pass.
    assert_eq!(
        get_auth(&app, "/api/v1/me", &sign("at+jwt", &|_| {}))
            .await
            .status(),
        200
    );
    for (i, token) in forged.iter().enumerate() {
        let r = get_auth(&app, "/api/v1/me", token).await;
        assert_eq!(r.status(), 401, "forged token #{i} accepted");
    }
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let db = app.ctx.db();
    db.orm()
        .query_all_raw(db.statement("SELECT action FROM sen_audit ORDER BY id", []))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "action").unwrap())
        .collect()
}

async fn admin_manages_users_roles_and_reads_the_audit_log(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let ann = register(&app, "ann@example.com").await;
    let ann_id = ann["id"].as_str().unwrap().to_string();
    let (ann_token, ann_refresh) = native(&app, "ann@example.com").await;
    // A plain user is told which permission is missing.
    let body = assert_problem(
        get_auth(&app, "/api/v1/admin/users", &ann_token).await,
        403,
        "forbidden",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("auth:users.read"),
        "{body}"
    );
    let page: Value = get_auth(&app, "/api/v1/admin/users?q=ANN&limit=10", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["email"], "ann@example.com");
    let r = send_auth(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{ann_id}/roles"),
        &owner,
        json!({"roles": [{"role": "wizard"}]}),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = send_auth(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{ann_id}/roles"),
        &owner,
        json!({"roles": [{"role": "support"}, {"role": "system.viewer", "scope": "region-1"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let me: Value = get_auth(&app, "/api/v1/me", &ann_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["roles"],
        json!(["support", "system.viewer@region-1"]),
        "{me}"
    );
    // Login and refresh answer with the same user view as `/me` (they read
    // user and grants in the query that checks the password or the token).
    let signed_in: Value = login(&app, "ann@example.com", json!({"client": "native"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(signed_in["user"], me, "{signed_in}");
    let refreshed: Value = refresh_native(&app, signed_in["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["user"], me, "{refreshed}");
    let perms: Vec<&str> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"auth:users.read") && !perms.contains(&"auth:roles.write"),
        "{perms:?}"
    );
    // Support may read users now, but not grant roles, least of all owner.
    assert_eq!(
        get_auth(&app, "/api/v1/admin/users", &ann_token)
            .await
            .status(),
        200
    );
    let r = send_auth(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{ann_id}/roles"),
        &ann_token,
        json!({"roles": [{"role": "owner"}]}),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    // Create and disable: the disabled user's session dies at once.
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/admin/users",
        &owner,
        json!({"email": "Cat@example.com", "name": "Cat", "password": PW}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send_auth(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{ann_id}"),
        &owner,
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_problem(
        get_auth(&app, "/api/v1/me", &ann_token).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        refresh_native(&app, &ann_refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_problem(
        login(&app, "ann@example.com", json!({})).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The list filters by account state, and each listed user carries
    // their own grants (read for the whole page at once).
    let emails = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_string())
            .collect()
    };
    let disabled: Value = get_auth(&app, "/api/v1/admin/users?status=disabled", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(emails(&disabled), ["ann@example.com"], "{disabled}");
    assert_eq!(disabled["items"][0]["disabled"], true);
    assert_eq!(
        disabled["items"][0]["roles"],
        json!(["support", "system.viewer@region-1"])
    );
    let active: Value = get_auth(&app, "/api/v1/admin/users?status=active", &owner)
        .await
        .json()
        .await
        .unwrap();
    let active_emails = emails(&active);
    assert!(
        active_emails.contains(&"cat@example.com".to_string())
            && !active_emails.contains(&"ann@example.com".to_string()),
        "{active}"
    );
    let owner_row = active["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["roles"] == json!(["owner"]));
    assert!(owner_row.is_some(), "the owner keeps its grant: {active}");
    let cat_row = active["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "cat@example.com")
        .unwrap();
    assert_eq!(cat_row["roles"], json!([]), "{cat_row}");
    assert_problem(
        get_auth(&app, "/api/v1/admin/users?status=gone", &owner).await,
        400,
        "invalid_query",
    )
    .await;
    assert_problem(
        get_auth(&app, "/api/v1/admin/users/no-such-user", &owner).await,
        404,
        "not_found",
    )
    .await;
    let audit: Value = get_auth(&app, "/api/v1/admin/audit?action=role.grant", &owner)
        .await
        .json()
        .await
        .unwrap();
    let grants = audit["items"].as_array().unwrap();
    assert_eq!(grants.len(), 2, "{audit}");
    assert!(grants.iter().all(|e| e["target"] == ann_id.as_str()));
    let future: Value = get_auth(
        &app,
        "/api/v1/admin/audit?since=2999-01-01T00:00:00Z",
        &owner,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(future["items"], json!([]));
    let past: Value = get_auth(
        &app,
        "/api/v1/admin/audit?until=2000-01-01T00:00:00Z",
        &owner,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(past["items"], json!([]));
    // A window around now holds exactly the two grants; one ending a
    // minute ago holds neither.
    let at = |minutes: i64| {
        (chrono::Utc::now() + chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let window: Value = get_auth(
        &app,
        &format!(
            "/api/v1/admin/audit?action=role.grant&since={}&until={}",
            at(-1),
            at(1)
        ),
        &owner,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(window["items"], audit["items"], "{window}");
    let before: Value = get_auth(
        &app,
        &format!("/api/v1/admin/audit?action=role.grant&until={}", at(-1)),
        &owner,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(before["items"], json!([]));
    assert_problem(
        get_auth(&app, "/api/v1/admin/audit?since=yesterday", &owner).await,
        422,
        "validation_failed",
    )
    .await;
    let everything: Value = get_auth(&app, "/api/v1/admin/audit?limit=200", &owner)
        .await
        .json()
        .await
        .unwrap();
    let text = everything.to_string();
    assert!(
        !text.contains(PW) && !text.contains("senr_"),
        "no secrets in the audit log"
    );
    let actions = audit_actions(&app).await;
    for a in [
        "user.register",
        "login.success",
        "admin.user.create",
        "admin.user.disable",
        "role.grant",
    ] {
        assert!(actions.contains(&a.to_string()), "{a} in {actions:?}");
    }
    let roles: Value = get_auth(&app, "/api/v1/admin/roles", &owner)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "owner",
        "admin",
        "support",
        "viewer",
        "auth.admin",
        "auth.viewer",
        "system.admin",
        "probe.viewer",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
}

async fn key_rotation_publishes_before_signing_and_keeps_old_tokens(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (before, _) = native(&app, "ann@example.com").await;
    let state = sen_auth::AuthState::of(&app.ctx).unwrap();
    let old_kid = state
        .keys
        .current()
        .signer
        .as_ref()
        .unwrap()
        .kid()
        .to_string();
    let new_kid = state.keys.rotate(&app.ctx, state.access_ttl).await.unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    assert_eq!(
        state.keys.current().signer.as_ref().unwrap().kid(),
        old_kid,
        "the new key does not sign before every instance has it"
    );
    assert_eq!(get_auth(&app, "/api/v1/me", &before).await.status(), 200);
    // Private halves are sealed at rest: another secret cannot open them.
    let db = app.ctx.db();
    let sealed: String = db
        .orm()
        .query_one_raw(db.statement("SELECT private_sealed FROM sen_signing_keys", []))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "private_sealed")
        .unwrap();
    assert!(sealed.starts_with("v1."));
    let other = sen_auth::crypto::Sealer::new("some-other-secret-key-0123456789abcdef").unwrap();
    assert!(other.open(&sealed).is_err());
    assert!(state.sealer.open(&sealed).is_ok());
}

async fn api_keys_are_scoped_shown_once_and_revocable(app: TestApp) {
    let owner = common::owner_token(&app).await;
    register(&app, "ann@example.com").await;
    let (ann, _) = native(&app, "ann@example.com").await;
    // Ann holds no permissions, so her key cannot carry one.
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/api-keys",
        &ann,
        json!({"name": "ci", "permissions": ["auth:users.read"]}),
    )
    .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "not_held", "{body}");
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/api-keys",
        &owner,
        json!({"name": "reporting", "permissions": ["auth:users.read"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    // Both headers work, within the key's permissions only.
    assert_eq!(
        get_auth(&app, "/api/v1/admin/users", &key).await.status(),
        200
    );
    let r = app
        .request(Method::GET, "/api/v1/admin/users")
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_problem(
        get_auth(&app, "/api/v1/admin/audit", &key).await,
        403,
        "forbidden",
    )
    .await;
    // Never from the URL.
    assert_problem(
        app.get(&format!("/api/v1/admin/users?api_key={key}")).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/me?api_key={key}")).await,
        401,
        "unauthenticated",
    )
    .await;
    // A key cannot mint keys.
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/api-keys",
        &key,
        json!({"name": "x", "permissions": []}),
    )
    .await;
    assert_problem(r, 403, "session_required").await;
    let list: Value = get_auth(&app, "/api/v1/me/api-keys", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&key), "no secrets in the list");
    // Another user's id: 404, and the key keeps working.
    let r = app
        .request(Method::DELETE, &format!("/api/v1/me/api-keys/{key_id}"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    assert_eq!(
        get_auth(&app, "/api/v1/admin/users", &key).await.status(),
        200
    );
    let stored = app
        .ctx
        .db()
        .orm()
        .query_one_raw(
            app.ctx
                .db()
                .statement("SELECT key_hash FROM sen_api_keys", []),
        )
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "key_hash")
        .unwrap();
    assert_ne!(stored, key, "stored hashed");
    let r = app
        .request(Method::DELETE, &format!("/api/v1/me/api-keys/{key_id}"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(
        get_auth(&app, "/api/v1/admin/users", &key).await,
        401,
        "invalid_token",
    )
    .await;
    // A disabled user's keys stop at once; a used key shows when it was used.
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/admin/users",
        &owner,
        json!({"email": "ops@example.com", "name": "Ops", "password": PW}),
    )
    .await;
    let ops_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send_auth(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{ops_id}/roles"),
        &owner,
        json!({"roles": [{"role": "support"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (ops, _) = native(&app, "ops@example.com").await;
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/api-keys",
        &ops,
        json!({"name": "ops", "permissions": ["auth:users.read"]}),
    )
    .await;
    let ops_key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_auth(&app, "/api/v1/admin/users", &ops_key)
            .await
            .status(),
        200
    );
    let mut used = false;
    for _ in 0..50 {
        let list: Value = get_auth(&app, "/api/v1/me/api-keys", &ops)
            .await
            .json()
            .await
            .unwrap();
        if list["items"][0]["last_used_at"].is_string() {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used, "last_used_at recorded");
    let r = send_auth(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{ops_id}"),
        &owner,
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_problem(
        get_auth(&app, "/api/v1/admin/users", &ops_key).await,
        401,
        "invalid_token",
    )
    .await;
    // Expired keys stop; expiry in the past is refused up front.
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/api-keys",
        &owner,
        json!({"name": "old", "permissions": [], "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_problem(r, 422, "validation_failed").await;
}

async fn reset_mail(app: &TestApp, email: &str) -> Option<String> {
    let db = app.ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT text_body FROM sen_mail WHERE recipient = ? AND state = 'sent' ORDER BY id DESC",
            [email.into()],
        ))
        .await
        .unwrap()?;
    let body: String = row.try_get("", "text_body").unwrap();
    let token = body
        .split("token=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    Some(token)
}

async fn wait_reset_mail(app: &TestApp, email: &str) -> String {
    for _ in 0..200 {
        if let Some(t) = reset_mail(app, email).await {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no reset mail for {email}");
}

async fn password_reset_is_single_use_and_keeps_totp(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (old_session, _) = native(&app, "ann@example.com").await;
    for email in ["ann@example.com", "nobody@example.com"] {
        let r = app
            .post_json("/api/v1/auth/password-reset", &json!({"email": email}))
            .await;
        assert_eq!(r.status(), 202, "same answer for {email}");
    }
    let token = wait_reset_mail(&app, "ann@example.com").await;
    // Give the unknown address's job the same time; it must send nothing.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(reset_mail(&app, "nobody@example.com").await.is_none());
    let confirm = |token: String, pw: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/auth/password-reset/confirm",
                &json!({"token": token, "new_password": pw}),
            )
            .await
        }
    };
    assert_problem(
        confirm("forged".into(), "brand new pass phrase").await,
        400,
        "invalid_reset_token",
    )
    .await;
    assert_problem(
        confirm(token.clone(), "password").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        confirm(token.clone(), "brand new pass phrase")
            .await
            .status(),
        204
    );
    assert_problem(
        confirm(token, "another new pass phrase").await,
        400,
        "invalid_reset_token",
    )
    .await;
    assert_problem(
        get_auth(&app, "/api/v1/me", &old_session).await,
        401,
        "invalid_token",
    )
    .await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "ann@example.com", "password": "brand new pass phrase"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // With TOTP on, a reset link alone is not enough.
    let setup: Value = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/mfa/totp",
        &access,
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = setup["secret"].as_str().unwrap().to_string();
    let t = now_secs();
    let r = send_auth(
        &app,
        Method::POST,
        "/api/v1/me/mfa/totp/confirm",
        &access,
        json!({"code": totp_code(&secret, t)}),
    )
    .await;
    assert_eq!(r.status(), 200);
    app.ctx
        .db()
        .orm()
        .execute_raw(app.ctx.db().statement("DELETE FROM sen_mail", []))
        .await
        .unwrap();
    app.post_json(
        "/api/v1/auth/password-reset",
        &json!({"email": "ann@example.com"}),
    )
    .await;
    let token = wait_reset_mail(&app, "ann@example.com").await;
    let r = app
        .post_json(
            "/api/v1/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "third pass phrase"}),
        )
        .await;
    assert_problem(r, 401, "mfa_required").await;
    let r = app
        .post_json(
            "/api/v1/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "third pass phrase", "totp": totp_code(&secret, t + 30)}),
        )
        .await;
    assert_eq!(r.status(), 204);
}

async fn attempts_are_limited_per_account_without_locking_out_others(app: TestApp) {
    register(&app, "ann@example.com").await;
    register(&app, "bob@example.com").await;
    for i in 0..10 {
        let r = login(
            &app,
            "ann@example.com",
            json!({"password": "wrong password!"}),
        )
        .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let r = login(&app, "ann@example.com", json!({})).await;
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_problem(r, 429, "rate_limited").await;
    // Bob, from the same address, is not locked out.
    assert_eq!(
        login(&app, "bob@example.com", json!({})).await.status(),
        200
    );
    // Second-factor codes are limited per account too.
    let (bob, _) = native(&app, "bob@example.com").await;
    let setup: Value = send_auth(&app, Method::POST, "/api/v1/me/mfa/totp", &bob, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(setup["secret"].is_string());
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let r = send_auth(
            &app,
            Method::POST,
            "/api/v1/me/mfa/totp/confirm",
            &bob,
            json!({"code": "000000"}),
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
}

/// A request that enqueues a job while the database is gone answers a
/// 503 problem (and the process keeps serving).
async fn enqueue_without_a_database_is_a_503(app: TestApp) {
    app.ctx.db().close().await;
    let r = app
        .post_json(
            "/api/v1/auth/password-reset",
            &json!({"email": "ann@example.com"}),
        )
        .await;
    let body = assert_problem(r, 503, "dependency_unavailable").await;
    assert!(!body.to_string().contains("sqlx"), "no internals: {body}");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Without workers: a worker's LISTEN connection would keep
/// `close()` waiting.
mod no_workers {
    use super::*;
    sen_testkit::both_backends!(spawn_plain; enqueue_without_a_database_is_a_503);
}

async fn spawn_plain(backend: sen_testkit::Backend) -> TestApp {
    common::spawn(backend).await
}

async fn scheduled_rotation_replaces_an_old_key(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (before, _) = native(&app, "ann@example.com").await;
    let db = app.ctx.db();
    // A young key is left alone.
    let id = sen_jobs::scheduler::run_now(&app.ctx, "auth.rotate-keys")
        .await
        .unwrap();
    wait_job(&app, &id).await;
    assert_eq!(key_count(&app).await, 1);
    // A key older than the rotation period is replaced (with overlap).
    db.orm()
        .execute_raw(db.statement(
            "UPDATE sen_signing_keys SET created_at = created_at - ?",
            [(31_i64 * 86_400_000).into()],
        ))
        .await
        .unwrap();
    let id = sen_jobs::scheduler::run_now(&app.ctx, "auth.rotate-keys")
        .await
        .unwrap();
    wait_job(&app, &id).await;
    assert_eq!(key_count(&app).await, 2);
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    assert_eq!(get_auth(&app, "/api/v1/me", &before).await.status(), 200);
}

async fn key_count(app: &TestApp) -> i64 {
    scalar(app, "SELECT COUNT(*) AS v FROM sen_signing_keys", vec![]).await
}

async fn wait_job(app: &TestApp, id: &str) {
    let db = app.ctx.db();
    for _ in 0..200 {
        let state: String = db
            .orm()
            .query_one_raw(db.statement("SELECT state FROM sen_jobs WHERE id = ?", [id.into()]))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "state")
            .unwrap();
        if state == "completed" {
            return;
        }
        assert!(state != "dead", "job {id} died");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not complete");
}

async fn scoped_roles_open_only_their_resource(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let ann = register(&app, "ann@example.com").await;
    let ann_id = ann["id"].as_str().unwrap().to_string();
    let (token, _) = native(&app, "ann@example.com").await;
    let report = |region: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            get_auth(
                app,
                &format!("/api/v1/probe/regions/{region}/report"),
                &token,
            )
            .await
        }
    };
    let body = assert_problem(report("north").await, 403, "forbidden").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("probe:reports.read"),
        "{body}"
    );
    let r = send_auth(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{ann_id}/roles"),
        &owner,
        json!({"roles": [{"role": "probe.editor", "scope": "north"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(report("north").await.status(), 200);
    assert_problem(report("south").await, 403, "forbidden").await;
    let me: Value = get_auth(&app, "/api/v1/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["permissions"],
        json!([]),
        "a scoped role grants nothing globally"
    );
    // The owner holds it globally.
    assert_eq!(
        get_auth(&app, "/api/v1/probe/regions/south/report", &owner)
            .await
            .status(),
        200
    );
}

async fn rs256_keys_sign_and_verify(app: TestApp) {
    register(&app, "ann@example.com").await;
    let (token, _) = native(&app, "ann@example.com").await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(get_auth(&app, "/api/v1/me", &token).await.status(), 200);
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert!(
        key.get("d").is_none() && key.get("p").is_none(),
        "public only: {key}"
    );
}

async fn spawn_rs256(backend: sen_testkit::Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.auth_jwt_alg = "RS256".into())
        .spawn()
        .await
}

/// How the database would run `sql`: SQLite's `EXPLAIN QUERY PLAN`, or
/// PostgreSQL's `EXPLAIN` with sequential scans priced out (test tables are
/// tiny, so it would otherwise scan the table rather than any index).
async fn audit_pages_come_from_indexes_without_sorting(app: TestApp) {
    register(&app, "ann@example.com").await;
    let pk = match app.ctx.db().backend() {
        sen_core::db::Backend::Sqlite => "sqlite_autoindex_sen_audit_1",
        sen_core::db::Backend::Postgres => "sen_audit_pkey",
    };
    let since = sen_auth::audit::id_floor(0);
    for (sql, values, index) in [
        (
            "SELECT id FROM sen_audit WHERE actor_id = ? ORDER BY id DESC LIMIT 5",
            vec!["someone".into()],
            "sen_audit_actor",
        ),
        (
            "SELECT id FROM sen_audit WHERE action = ? ORDER BY id DESC LIMIT 5",
            vec!["login.success".into()],
            "sen_audit_action",
        ),
        (
            "SELECT id FROM sen_audit WHERE at >= ? AND id >= ? ORDER BY id DESC LIMIT 5",
            vec![0i64.into(), since.into()],
            pk,
        ),
    ] {
        let plan = plan_of(&app, sql, values).await;
        assert!(plan.contains(index), "{sql}: {plan}");
        assert!(
            !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
            "{sql}: {plan}"
        );
    }
    let sql = match app.ctx.db().backend() {
        sen_core::db::Backend::Sqlite => {
            "SELECT COUNT(*) AS v FROM sqlite_master WHERE name = 'sen_audit_at'"
        }
        sen_core::db::Backend::Postgres => {
            "SELECT COUNT(*) AS v FROM pg_indexes WHERE indexname = 'sen_audit_at'"
        }
    };
    let n: i64 = scalar(&app, sql, vec![]).await;
    assert_eq!(n, 0, "no index on `at` to write");
}

/// The plan of `sql`. The test tables hold a few rows, so PostgreSQL's
/// cost model would rather read them whole, or through a bitmap and then
/// sort; those are priced out, leaving what an index can serve on its own.
async fn plan_of(app: &TestApp, sql: &str, values: Vec<sea_orm::Value>) -> String {
    let db = app.ctx.db();
    let tx = db.orm().begin().await.unwrap();
    let (prefix, column) = match db.backend() {
        sen_core::db::Backend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
        sen_core::db::Backend::Postgres => {
            tx.execute_unprepared(
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off",
            )
            .await
            .unwrap();
            ("EXPLAIN ", "QUERY PLAN")
        }
    };
    let rows = tx
        .query_all_raw(db.statement(&format!("{prefix}{sql}"), values))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", column).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn revocation_lookups_use_indexes_of_only_revoked_rows(app: TestApp) {
    register(&app, "ann@example.com").await;
    // Revoked keys are found through the live-keys index, which leads
    // with the same column.
    for (sql, index) in [
        (
            "SELECT id FROM sen_sessions WHERE revoked_at >= ?",
            "sen_sessions_revoked",
        ),
        (
            "SELECT id FROM sen_users WHERE disabled_at >= ?",
            "sen_users_disabled",
        ),
        (
            "SELECT id FROM sen_api_keys WHERE revoked_at >= ?",
            "sen_api_keys_live",
        ),
    ] {
        let plan = plan_of(&app, sql, vec![0i64.into()]).await;
        assert!(plan.contains(index), "{sql}: {plan}");
    }
    // The session and user indexes hold only revoked or disabled rows.
    let db = app.ctx.db();
    let sql = match db.backend() {
        sen_core::db::Backend::Sqlite => {
            "SELECT sql AS def FROM sqlite_master WHERE name IN ('sen_sessions_revoked', 'sen_users_disabled', 'sen_api_keys_revoked') ORDER BY name"
        }
        sen_core::db::Backend::Postgres => {
            "SELECT indexdef AS def FROM pg_indexes WHERE indexname IN ('sen_sessions_revoked', 'sen_users_disabled', 'sen_api_keys_revoked') ORDER BY indexname"
        }
    };
    let defs: Vec<String> = db
        .orm()
        .query_all_raw(db.statement(sql, []))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "def").unwrap().to_lowercase())
        .collect();
    assert_eq!(defs.len(), 2, "{defs:?}");
    assert!(defs[0].contains("revoked_at is not null"), "{defs:?}");
    assert!(defs[1].contains("disabled_at is not null"), "{defs:?}");
}

mod rs256 {
    use super::*;
    sen_testkit::both_backends!(spawn_rs256; rs256_keys_sign_and_verify);
}

sen_testkit::both_backends!(spawn;
    scoped_roles_open_only_their_resource,
    scheduled_rotation_replaces_an_old_key,
    attempts_are_limited_per_account_without_locking_out_others,
    api_keys_are_scoped_shown_once_and_revocable,
    password_reset_is_single_use_and_keeps_totp,
    register_validates_and_normalises,
    login_sets_cookies_and_me_works_with_either,
    refresh_rotates_and_reuse_revokes_the_family,
    concurrent_refreshes_of_one_token_let_at_most_one_through,
    refresh_tokens_are_session_generations_and_forgeries_end_nothing,
    refresh_tokens_from_before_generations_refresh_once,
    logout_ends_the_session,
    sign_in_and_token_checks_run_on_the_inline_lane,
    profile_patch_accepts_only_name_and_mood,
    cookie_writes_need_a_same_origin_proof,
    sessions_are_listed_and_only_ones_own_can_be_ended,
    password_change_ends_every_other_session,
    totp_with_replay_skew_and_recovery_codes,
    forged_and_misused_tokens_are_refused,
    admin_manages_users_roles_and_reads_the_audit_log,
    key_rotation_publishes_before_signing_and_keeps_old_tokens,
    revocation_lookups_use_indexes_of_only_revoked_rows,
    audit_pages_come_from_indexes_without_sorting,
);

/// Two instances sharing Redis share one budget per account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_shared_across_instances_through_redis() {
    let prefix = format!("rl{}:", uuid::Uuid::now_v7().simple());
    let mk = |p: String| {
        TestApp::builder(sen_testkit::Backend::Sqlite)
            .apps(common::apps())
            .shared_redis()
            .config(move |c| c.redis_prefix = p)
            .spawn()
    };
    let a = mk(prefix.clone()).await;
    let b = mk(prefix).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = login(app, "zed@example.com", json!({})).await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    assert_problem(
        login(&a, "zed@example.com", json!({})).await,
        429,
        "rate_limited",
    )
    .await;
    assert_problem(
        login(&b, "zed@example.com", json!({})).await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(
        login(&b, "yan@example.com", json!({})).await.status(),
        401,
        "another account still gets an answer"
    );
}
