//! The dashboard's operator sections over HTTP on both databases: a
//! user's sessions, two-factor reset and impersonation; every user's API
//! keys and the OAuth clients; jobs with queues, details and bulk actions;
//! the files browser; the charts; the generic pages of declared tables
//! (dashboard and `/me` tabs); settings and feature flags; the sign-in
//! page's provider buttons. Each section is also tried by someone who
//! may not use it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{csrf_of, no_redirects, now_secs, post_form, totp_code};

use std::time::Duration;

use reqwest::Method;
use sea_orm::ConnectionTrait;
use sen_testkit::{TestApp, assert_problem};
use serde_json::{Value, json};

const PW: &str = "a long pass phrase";

async fn spawn(backend: sen_testkit::Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.job_poll_ms = 50)
        .workers()
        .spawn()
        .await
}

/// Registers `email`; returns its id and a token.
async fn signup(app: &TestApp, email: &str) -> (String, String) {
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": PW, "name": email.split('@').next().unwrap()}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = common::login_token(app, email, PW).await;
    let me: Value = get_json(app, &token, "/api/v1/me").await;
    (me["id"].as_str().unwrap().to_string(), token)
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.request(Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let r = get(app, token, path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn page(app: &TestApp, token: &str, path: &str) -> String {
    let r = get(app, token, path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    r.text().await.unwrap()
}

async fn send(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.request(method, path).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// A new user holding the global role `role`: id and token (grants are
/// read on every request, so the token carries the role at once).
async fn staff(app: &TestApp, owner: &str, email: &str, role: &str) -> (String, String) {
    let (id, token) = signup(app, email).await;
    grant(app, owner, &id, &[role]).await;
    (id, token)
}

/// Grants `roles` (global) to `user`.
async fn grant(app: &TestApp, owner: &str, user: &str, roles: &[&str]) {
    let roles: Vec<Value> = roles.iter().map(|r| json!({"role": r})).collect();
    let r = send(
        app,
        owner,
        Method::PUT,
        &format!("/api/v1/admin/users/{user}/roles"),
        Some(json!({ "roles": roles })),
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn audit_actions(app: &TestApp, owner: &str, target: &str) -> Vec<String> {
    let v = get_json(app, owner, &format!("/api/v1/admin/audit?target={target}")).await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn count(page: &str, needle: &str) -> usize {
    page.matches(needle).count()
}

async fn sessions_of(app: &TestApp, owner: &str, user: &str) -> Vec<Value> {
    get_json(app, owner, &format!("/api/v1/admin/users/{user}/sessions")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn operators_end_sessions_and_reset_two_factor(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let (bo, bo1) = signup(&app, "bo@example.com").await;
    let (ann, ann_token) = signup(&app, "ann@example.com").await;
    let first = sessions_of(&app, &owner, &bo).await;
    assert_eq!(first.len(), 1);
    let sid1 = first[0]["id"].as_str().unwrap().to_string();
    let bo2 = common::login_token(&app, "bo@example.com", PW).await;
    assert_eq!(sessions_of(&app, &owner, &bo).await.len(), 2);
    // Only operators holding auth:users.read may look.
    let r = get(&app, &bo1, &format!("/api/v1/admin/users/{ann}/sessions")).await;
    assert_problem(r, 403, "forbidden").await;
    let user_page = page(&app, &owner, &format!("/admin/apps/users/{bo}")).await;
    assert_eq!(
        count(&user_page, "class=\"session\""),
        2,
        "both sessions listed"
    );
    let csrf = csrf_of(&app, &owner, &format!("/admin/apps/users/{bo}")).await;
    // Another user's session through bo's path: 404, and ann keeps hers.
    let ann_sid = sessions_of(&app, &owner, &ann).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/users/{bo}/sessions/{ann_sid}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(get(&app, &ann_token, "/api/v1/me").await.status(), 200);
    // One session ends; the other stays.
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/users/{bo}/sessions/{sid1}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(get(&app, &bo1, "/api/v1/me").await.status(), 401);
    assert_eq!(get(&app, &bo2, "/api/v1/me").await.status(), 200);
    // Then every one.
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/users/{bo}/sessions/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(get(&app, &bo2, "/api/v1/me").await.status(), 401);
    assert!(sessions_of(&app, &owner, &bo).await.is_empty());
    let r = send(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/admin/users/{bo}/sessions/{sid1}"),
        None,
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    let actions = audit_actions(&app, &owner, &bo).await;
    assert!(
        actions.contains(&"user.session.revoke".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"user.sessions.revoke".to_string()),
        "{actions:?}"
    );

    // Two-factor: bo enrols, loses the phone, an operator turns it off.
    let bo3 = common::login_token(&app, "bo@example.com", PW).await;
    let r = send(&app, &bo3, Method::POST, "/api/v1/me/mfa/totp", None).await;
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let code = totp_code(&secret, now_secs());
    let r = send(
        &app,
        &bo3,
        Method::POST,
        "/api/v1/me/mfa/totp/confirm",
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "bo@example.com", "password": PW}),
        )
        .await;
    assert_problem(r, 401, "mfa_required").await;
    // A viewer may look but not reset.
    let (_, vic_token2) = staff(&app, &owner, "vic@example.com", "viewer").await;
    let r = send(
        &app,
        &vic_token2,
        Method::DELETE,
        &format!("/api/v1/admin/users/{bo}/mfa"),
        None,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = post_form(
        &app,
        &vic_token2,
        &format!("/admin/apps/users/{bo}/mfa/reset"),
        &[("csrf", &csrf_of(&app, &vic_token2, "/admin/apps").await)],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        page(&app, &owner, &format!("/admin/apps/users/{bo}"))
            .await
            .contains("id=\"reset-mfa\"")
    );
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/users/{bo}/mfa/reset"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "bo@example.com", "password": PW}),
        )
        .await;
    assert_eq!(r.status(), 200, "the password alone signs in again");
    let r = send(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/admin/users/{bo}/mfa"),
        None,
    )
    .await;
    assert_problem(r, 409, "mfa_not_enabled").await;
    assert!(
        audit_actions(&app, &owner, &bo)
            .await
            .contains(&"user.mfa.reset".to_string())
    );
}

async fn impersonation_is_limited_audited_and_reversible(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let owner_id = get_json(&app, &owner, "/api/v1/me").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (bo, _) = signup(&app, "bo@example.com").await;
    let (sue, sue_token) = staff(&app, &owner, "sue@example.com", "support").await;
    // Support staff lack auth:users.impersonate; operators cannot be impersonated; nor oneself.
    let r = send(
        &app,
        &sue_token,
        Method::POST,
        &format!("/api/v1/admin/users/{bo}/impersonate"),
        None,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = send(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/admin/users/{sue}/impersonate"),
        None,
    )
    .await;
    assert_problem(r, 403, "cannot_impersonate_operator").await;
    let r = send(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/admin/users/{owner_id}/impersonate"),
        None,
    )
    .await;
    assert_problem(r, 409, "cannot_impersonate_self").await;
    assert!(
        !page(&app, &sue_token, &format!("/admin/apps/users/{bo}"))
            .await
            .contains("id=\"impersonate\"")
    );

    let r = send(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/admin/users/{bo}/impersonate"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let as_bo = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_json(&app, &as_bo, "/api/v1/me").await["email"],
        "bo@example.com"
    );
    let me_page = page(&app, &as_bo, "/me").await;
    assert!(
        me_page.contains("id=\"impersonation-banner\""),
        "the banner shows"
    );
    assert!(me_page.contains("bo@example.com"));
    // Credentials stay the user's own.
    let r = send(
        &app,
        &as_bo,
        Method::POST,
        "/api/v1/me/password",
        Some(json!({"current_password": PW, "new_password": "another long phrase"})),
    )
    .await;
    assert_problem(r, 403, "impersonation_restricted").await;
    let r = send(
        &app,
        &as_bo,
        Method::POST,
        "/api/v1/me/api-keys",
        Some(json!({"name": "k", "permissions": []})),
    )
    .await;
    assert_problem(r, 403, "impersonation_restricted").await;
    let r = send(&app, &as_bo, Method::POST, "/api/v1/me/mfa/totp", None).await;
    assert_problem(r, 403, "impersonation_restricted").await;
    // Nor can the operator let an OAuth client into the account.
    let r = send(&app, &owner, Method::POST, "/api/v1/oauth/clients", Some(json!({"name": "Partner", "redirect_uris": ["http://127.0.0.1:9/cb"], "confidential": false}))).await;
    let client = r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    );
    let as_user = get(&app, &as_bo, &authorize).await.text().await.unwrap();
    assert!(
        as_user.contains("name=\"password\"") && !as_user.contains("value=\"approve\""),
        "asked to sign in, not to consent"
    );
    let bo_self = common::login_token(&app, "bo@example.com", PW).await;
    assert!(
        get(&app, &bo_self, &authorize)
            .await
            .text()
            .await
            .unwrap()
            .contains("value=\"approve\""),
        "the user himself is asked for consent"
    );
    let listed = sessions_of(&app, &owner, &bo).await;
    assert!(
        listed
            .iter()
            .any(|s| s["impersonator_id"] == owner_id.as_str()),
        "{listed:?}"
    );
    // The web form answers with the user's cookies.
    let csrf = csrf_of(&app, &owner, &format!("/admin/apps/users/{bo}")).await;
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/users/{bo}/impersonate"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/me");
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("sen_access="))
    );

    // Ending it: the impersonation dies, the operator's own session comes back.
    let r = send(
        &app,
        &as_bo,
        Method::POST,
        "/api/v1/auth/impersonation/end",
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let back_refresh = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok()?.strip_prefix("sen_refresh="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .next()
        .unwrap();
    let back = r.json::<Value>().await.unwrap();
    assert_eq!(back["user"]["id"], owner_id.as_str());
    let back_token = back["access_token"].as_str().unwrap();
    assert_eq!(get(&app, &as_bo, "/api/v1/me").await.status(), 401);
    assert_eq!(
        get_json(&app, back_token, "/api/v1/me").await["id"],
        owner_id.as_str()
    );
    assert_eq!(
        get(&app, &owner, "/api/v1/me").await.status(),
        200,
        "the original session lives on"
    );
    let r = send(
        &app,
        &owner,
        Method::POST,
        "/api/v1/auth/impersonation/end",
        None,
    )
    .await;
    assert_problem(r, 409, "not_impersonating").await;
    // The operator's session was handed a fresh refresh token, which works.
    let r = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": back_refresh}),
        )
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let actions = audit_actions(&app, &owner, &bo).await;
    assert!(
        actions.contains(&"user.impersonate".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"user.impersonate.end".to_string()),
        "{actions:?}"
    );
}

async fn credentials_pages_find_and_cut_off_keys_and_clients(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let (bo, bo_token) = signup(&app, "bo@example.com").await;
    let r = send(
        &app,
        &bo_token,
        Method::POST,
        "/api/v1/me/api-keys",
        Some(json!({"name": "deploy bot", "permissions": []})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created = r.json::<Value>().await.unwrap();
    let (key, key_id) = (
        created["key"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        app.request(Method::GET, "/api/v1/me")
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = get(&app, &bo_token, "/api/v1/admin/api-keys").await;
    assert_problem(r, 403, "forbidden").await;
    let all = get_json(
        &app,
        &owner,
        &format!("/api/v1/admin/api-keys?user_id={bo}"),
    )
    .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert_eq!(all["items"][0]["user_email"], "bo@example.com");
    assert!(all["items"][0].get("key").is_none(), "no secret");
    let html = page(&app, &owner, "/admin/apps/credentials").await;
    assert!(html.contains("deploy bot") && html.contains(&format!("id=\"key-{key_id}\"")));
    assert!(!html.contains(&key), "the secret is never shown");
    let csrf = csrf_of(&app, &owner, "/admin/apps/credentials").await;
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/credentials/keys/{key_id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.request(Method::GET, "/api/v1/me")
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = send(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/admin/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    assert!(
        audit_actions(&app, &owner, &key_id)
            .await
            .contains(&"api_key.revoke".to_string())
    );

    // Clients: a bad URI keeps what was typed and registers nothing.
    let before = get_json(&app, &owner, "/api/v1/admin/oauth/clients").await["items"]
        .as_array()
        .unwrap()
        .len();
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/credentials/clients",
        &[
            ("csrf", &csrf),
            ("name", "Partner <app>"),
            ("redirect_uris", "http://evil.example/cb"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"error\"") && body.contains("Partner &#60;app&#62;"));
    assert_eq!(
        get_json(&app, &owner, "/api/v1/admin/oauth/clients").await["items"]
            .as_array()
            .unwrap()
            .len(),
        before
    );
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/credentials/clients",
        &[
            ("csrf", &csrf),
            ("name", "Partner"),
            (
                "redirect_uris",
                "https://partner.example/cb\nhttp://127.0.0.1:9/cb",
            ),
            ("confidential", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let body = r.text().await.unwrap();
    let client_id = body
        .split("id=\"new-client-id\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(
        body.contains("id=\"new-client-secret\">sens_"),
        "the secret is shown once"
    );
    let clients = get_json(&app, &owner, "/api/v1/admin/oauth/clients").await;
    let c = clients["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == client_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(c["redirect_uris"].as_array().unwrap().len(), 2);
    assert!(c["confidential"].as_bool().unwrap());
    assert!(
        !page(&app, &owner, "/admin/apps/credentials")
            .await
            .contains("sens_"),
        "not shown again"
    );
    let r = send(
        &app,
        &bo_token,
        Method::DELETE,
        &format!("/api/v1/admin/oauth/clients/{client_id}"),
        None,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/credentials/clients/{client_id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        sen_auth::oauth::client(&app.ctx, &client_id)
            .await
            .unwrap()
            .is_none(),
        "it can sign no one in"
    );
    assert!(
        !get_json(&app, &owner, "/api/v1/admin/oauth/clients")
            .await
            .to_string()
            .contains(&client_id)
    );
}

/// A dead job (its last error `error`) of a kind that succeeds when run again.
async fn dead_job(app: &TestApp, error: &str) -> String {
    let db = app.ctx.db();
    let job =
        sen_core::jobs::NewJob::raw("files.cleanup", &json!(null)).delay(Duration::from_secs(3600));
    let id = app.ctx.jobs().enqueue(db.orm(), job).await.unwrap().id;
    let errors = json!([{"attempt": 1, "at": "2026-12-01T00:00:00Z", "error": "first try failed"}, {"attempt": 2, "at": "2026-12-01T00:01:00Z", "error": error}]).to_string();
    db.orm()
        .execute_raw(db.statement(
            "UPDATE sen_jobs SET state = 'dead', attempt = 2, errors = ? WHERE id = ?",
            [errors.into(), id.clone().into()],
        ))
        .await
        .unwrap();
    id
}

async fn state_of(app: &TestApp, id: &str) -> String {
    let db = app.ctx.db();
    db.orm()
        .query_one_raw(db.statement("SELECT state FROM sen_jobs WHERE id = ?", [id.into()]))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "state")
        .unwrap()
}

async fn jobs_pages_show_queues_details_and_act_in_bulk(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let ids = [
        dead_job(&app, "boom one").await,
        dead_job(&app, "boom two").await,
        dead_job(&app, "boom three").await,
    ];
    let html = page(&app, &owner, "/admin/apps/jobs").await;
    assert!(html.contains("id=\"queue-table\""));
    assert_eq!(count(&html, "name=\"id\""), 3, "a checkbox per dead job");
    let detail = page(&app, &owner, &format!("/admin/apps/jobs/{}", ids[0])).await;
    assert!(
        detail.contains("first try failed") && detail.contains("boom one"),
        "every attempt's error"
    );
    assert_eq!(count(&detail, "class=\"attempt\""), 2);
    assert!(
        detail.contains("id=\"job-args\">null</pre>"),
        "the arguments"
    );
    let r = get(
        &app,
        &owner,
        "/admin/apps/jobs/00000000-0000-7000-8000-000000000000",
    )
    .await;
    assert_eq!(r.status(), 404);

    // A viewer sees but cannot act.
    let (_, vic_token) = staff(&app, &owner, "vic@example.com", "viewer").await;
    let vic_html = page(&app, &vic_token, "/admin/apps/jobs").await;
    assert!(!vic_html.contains("id=\"bulk\""));
    let vcsrf = csrf_of(&app, &vic_token, "/admin/apps").await;
    let r = post_form(
        &app,
        &vic_token,
        "/admin/apps/jobs/bulk",
        &[("csrf", &vcsrf), ("op", "retry"), ("id", &ids[0])],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(state_of(&app, &ids[0]).await, "dead");

    let csrf = csrf_of(&app, &owner, "/admin/apps/jobs").await;
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/jobs/bulk",
        &[
            ("csrf", &csrf),
            ("op", "retry"),
            ("id", &ids[0]),
            ("id", &ids[1]),
            ("back", "/admin/apps/jobs?state=dead"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with("/admin/apps/jobs?state=dead&done=2%20"),
        "{to}"
    );
    assert_ne!(state_of(&app, &ids[0]).await, "dead");
    assert_ne!(state_of(&app, &ids[1]).await, "dead");
    assert_eq!(state_of(&app, &ids[2]).await, "dead");
    assert!(page(&app, &owner, &to).await.contains("id=\"notice\""));
    // Cancelling a dead job is refused and counted so.
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/jobs/bulk",
        &[("csrf", &csrf), ("op", "cancel"), ("id", &ids[2])],
    )
    .await;
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.contains("done=0%20") && to.contains("1%20refused"),
        "{to}"
    );
    // One waiting job cancelled from its page.
    let db = app.ctx.db();
    let later = app
        .ctx
        .jobs()
        .enqueue(
            db.orm(),
            sen_core::jobs::NewJob::raw("files.cleanup", &json!(null))
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .id;
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/jobs/{later}/cancel"),
        &[
            ("csrf", &csrf),
            ("back", &format!("/admin/apps/jobs/{later}")),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(state_of(&app, &later).await, "cancelled");
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/jobs/{later}/cancel"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 409, "already finished: said on the job's page");
    // Every dead job at once.
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/jobs/bulk",
        &[("csrf", &csrf), ("op", "retry-dead")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_ne!(state_of(&app, &ids[2]).await, "dead");
}

async fn files_page_browses_and_deletes(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let (bo, bo_token) = signup(&app, "bo@example.com").await;
    let part = reqwest::multipart::Part::bytes(b"quarterly numbers".to_vec())
        .file_name("report.txt")
        .mime_str("text/plain")
        .unwrap();
    let r = app
        .request(Method::POST, "/api/v1/files?purpose=attachment")
        .bearer_auth(&bo_token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let file = r.json::<Value>().await.unwrap();
    let id = file["id"].as_str().unwrap().to_string();
    let html = page(&app, &owner, "/admin/apps/files?purpose=attachment").await;
    assert!(html.contains("report.txt") && html.contains(&format!("/admin/apps/users/{bo}")));
    assert!(
        !page(&app, &owner, "/admin/apps/files?purpose=avatar")
            .await
            .contains("id=\"files\""),
        "filtered by purpose"
    );
    let (_, vic_token) = staff(&app, &owner, "vic@example.com", "viewer").await;
    let vhtml = page(&app, &vic_token, "/admin/apps/files").await;
    assert!(
        vhtml.contains("report.txt") && !vhtml.contains("/delete\""),
        "viewers browse, no delete"
    );
    let vcsrf = csrf_of(&app, &vic_token, "/admin/apps").await;
    let r = post_form(
        &app,
        &vic_token,
        &format!("/admin/apps/files/{id}/delete"),
        &[("csrf", &vcsrf)],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        get(&app, &bo_token, &format!("/api/v1/files/{id}"))
            .await
            .status(),
        200
    );
    let csrf = csrf_of(&app, &owner, "/admin/apps/files").await;
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/files/{id}/delete"),
        &[
            ("csrf", &csrf),
            ("back", "/admin/apps/files?purpose=attachment"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/admin/apps/files?purpose=attachment"
    );
    assert_eq!(
        get(&app, &bo_token, &format!("/api/v1/files/{id}"))
            .await
            .status(),
        404
    );
}

/// The number after `id="{chart}"`'s total.
fn chart_total(html: &str, chart: &str) -> i64 {
    html.split(&format!("id=\"{chart}\""))
        .nth(1)
        .unwrap()
        .split("<span class=\"total\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn charts_count_requests_errors_and_jobs(app: TestApp) {
    let owner = common::owner_token(&app).await;
    for _ in 0..20 {
        assert_eq!(app.get("/api/v1/system/info").await.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/probe/boom").await.status(), 500);
    }
    let db = app.ctx.db();
    let job = app
        .ctx
        .jobs()
        .enqueue(
            db.orm(),
            sen_core::jobs::NewJob::raw("files.cleanup", &json!(null)),
        )
        .await
        .unwrap()
        .id;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state_of(&app, &job).await != "completed" {
        assert!(std::time::Instant::now() < deadline, "the job completes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let html = page(&app, &owner, "/admin/apps").await;
    assert!(
        chart_total(&html, "chart-requests") >= 23,
        "requests counted"
    );
    assert!(
        chart_total(&html, "chart-errors") >= 3,
        "server errors counted"
    );
    assert!(
        chart_total(&html, "chart-jobs-done") >= 1,
        "completed jobs counted"
    );
    assert_eq!(count(&html, "<polyline"), 4);
    let points = html
        .split("points=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(
        points.split(' ').count(),
        60,
        "one point a minute for an hour"
    );
    let rate = html
        .split("id=\"error-rate\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert_ne!(rate, "0.0 %");
    // The numbers are the database's, so every instance draws the same.
    let minutes = sen_core::activity::recent(&app.ctx, 60).await.unwrap();
    assert_eq!(minutes.len(), 60);
    assert!(minutes.iter().map(|m| m.errors).sum::<i64>() >= 3);
}

async fn declared_tables_get_list_search_sort_and_validated_forms(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let base = "/admin/apps/app/probe/widgets";
    let csrf = csrf_of(&app, &owner, &format!("{base}/new")).await;
    let mut ids = Vec::new();
    for (name, qty, colour) in [
        ("Bolt", "5", "red"),
        ("Nut", "50", "blue"),
        ("Bolt XL", "7", "blue"),
    ] {
        let r = post_form(
            &app,
            &owner,
            base,
            &[
                ("csrf", &csrf),
                ("name", name),
                ("qty", qty),
                ("colour", colour),
                ("active", "true"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        ids.push(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string(),
        );
    }
    // Every bad field is named; the typed values stay; nothing is written.
    let r = post_form(
        &app,
        &owner,
        base,
        &[
            ("csrf", &csrf),
            ("name", ""),
            ("qty", "lots"),
            ("colour", "green"),
            ("contact", "nope"),
            ("notes", "<b>kept</b>"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    for f in ["name", "qty", "colour", "contact"] {
        assert!(
            body.contains(&format!("id=\"err-{f}\"")),
            "{f} refused inline"
        );
    }
    assert!(body.contains("value=\"lots\"") && body.contains("&#60;b&#62;kept&#60;/b&#62;"));
    let list = page(&app, &owner, base).await;
    assert_eq!(count(&list, "class=\"row\""), 3);
    // Search, filter, sort.
    let found = page(&app, &owner, &format!("{base}?q=bolt")).await;
    assert_eq!(count(&found, "class=\"row\""), 2);
    let blue = page(&app, &owner, &format!("{base}?f.colour=blue")).await;
    assert_eq!(count(&blue, "class=\"row\""), 2);
    assert!(!blue.contains(&format!("row-{}", ids[0])));
    let by_qty = page(&app, &owner, &format!("{base}?sort=qty&dir=desc")).await;
    let (a, b, c) = (
        by_qty.find(&format!("row-{}", ids[1])).unwrap(),
        by_qty.find(&format!("row-{}", ids[2])).unwrap(),
        by_qty.find(&format!("row-{}", ids[0])).unwrap(),
    );
    assert!(a < b && b < c, "50, 7, 5");
    // Cursor pages, sorted by a non-unique column, neither skip nor repeat.
    let db = app.ctx.db();
    for i in 0..60 {
        db.orm()
            .execute_raw(db.statement(
                "INSERT INTO probe_widgets (id, name, qty, active) VALUES (?, ?, ?, ?)",
                [
                    format!("w{i:03}").into(),
                    format!("Gen {i}").into(),
                    (i % 4).into(),
                    false.into(),
                ],
            ))
            .await
            .unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut next = Some(format!("{base}?sort=qty"));
    let mut pages = 0;
    while let Some(url) = next {
        let html = page(&app, &owner, &url.replace("&#38;", "&")).await;
        let rows: Vec<String> = html
            .split("id=\"row-")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect();
        for r in rows {
            assert!(seen.insert(r), "no row twice");
        }
        next = html
            .split("id=\"next-page\"")
            .next()
            .and_then(|h| h.rsplit("href=\"").next())
            .filter(|_| html.contains("id=\"next-page\""))
            .map(|s| s.split('"').next().unwrap().to_string());
        pages += 1;
        assert!(pages < 5);
    }
    assert_eq!(seen.len(), 63);
    assert_eq!(pages, 2);
    // Edit, then delete.
    let item = format!("{base}/{}", ids[0]);
    let r = post_form(
        &app,
        &owner,
        &item,
        &[
            ("csrf", &csrf),
            ("name", "Bolt"),
            ("qty", "9"),
            ("colour", "red"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let shown = page(&app, &owner, &item).await;
    assert!(
        shown.contains("value=\"9\"")
            && !shown.contains("id=\"in-active\" name=\"active\" value=\"true\" checked"),
        "unticked is false"
    );
    let r = post_form(
        &app,
        &owner,
        &item,
        &[("csrf", &csrf), ("name", "Bolt"), ("qty", "-1")],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        page(&app, &owner, &item).await.contains("value=\"9\""),
        "a refused edit changes nothing"
    );
    let r = post_form(&app, &owner, &item, &[("csrf", &csrf), ("op", "delete")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(get(&app, &owner, &item).await.status(), 404);
    let actions = audit_actions(&app, &owner, &ids[0]).await;
    for a in ["resource.create", "resource.update", "resource.delete"] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
    // Authorisation: a viewer reads but cannot write; an operator of
    // another app cannot read; a missing token is refused.
    let (_, vic_token) = staff(&app, &owner, "vic@example.com", "probe.viewer").await;
    let vhtml = page(&app, &vic_token, base).await;
    assert!(vhtml.contains("class=\"row\"") && !vhtml.contains("id=\"new-row\""));
    let vcsrf = csrf_of(&app, &vic_token, "/admin/apps").await;
    let r = post_form(
        &app,
        &vic_token,
        &format!("{base}/{}", ids[1]),
        &[("csrf", &vcsrf), ("name", "Hacked"), ("qty", "1")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        page(&app, &owner, &format!("{base}/{}", ids[1]))
            .await
            .contains("value=\"Nut\"")
    );
    let (_, mo_token) = staff(&app, &owner, "mo@example.com", "mail.viewer").await;
    assert_eq!(get(&app, &mo_token, base).await.status(), 403);
    let home = page(&app, &mo_token, "/admin/apps").await;
    assert!(
        home.contains("data-app=\"mail\"") && !home.contains("data-app=\"probe\""),
        "cards for what one may administer"
    );
    let r = post_form(
        &app,
        &owner,
        base,
        &[("csrf", "wrong"), ("name", "X"), ("qty", "1")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        get(&app, &owner, "/admin/apps/app/probe/nothing")
            .await
            .status(),
        404
    );
    assert!(
        page(&app, &owner, "/admin/apps/app/probe")
            .await
            .contains(base)
    );

    // `/me` tabs: each user sees and changes only their own rows.
    let (_, bo) = signup(&app, "bo@example.com").await;
    let (_, ann) = signup(&app, "ann@example.com").await;
    assert!(
        page(&app, &bo, "/me")
            .await
            .contains("/me/apps/probe/notes")
    );
    let notes = "/me/apps/probe/notes";
    let bcsrf = csrf_of(&app, &bo, &format!("{notes}/new")).await;
    let r = post_form(
        &app,
        &bo,
        notes,
        &[("csrf", &bcsrf), ("title", "Bo's secret"), ("stars", "4")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let bo_note = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        bo_note.rsplit('/').next().unwrap().parse::<i64>().is_ok(),
        "database-assigned id"
    );
    let r = post_form(&app, &bo, notes, &[("csrf", &bcsrf), ("title", "No stars")]).await;
    assert_eq!(r.status(), 303, "an optional number may be empty");
    assert_eq!(count(&page(&app, &bo, notes).await, "class=\"row\""), 2);
    assert_eq!(count(&page(&app, &ann, notes).await, "class=\"row\""), 0);
    assert_eq!(get(&app, &ann, &bo_note).await.status(), 404);
    let acsrf = csrf_of(&app, &ann, &format!("{notes}/new")).await;
    let r = post_form(
        &app,
        &ann,
        &bo_note,
        &[("csrf", &acsrf), ("title", "Mine now")],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post_form(&app, &ann, &bo_note, &[("csrf", &acsrf), ("op", "delete")]).await;
    assert_eq!(r.status(), 404);
    assert!(page(&app, &bo, &bo_note).await.contains("Bo&#39;s secret"));
}

async fn settings_are_typed_validated_and_read_by_code(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let ctx = &app.ctx;
    assert!(
        !sen_core::settings::flag(ctx, "probe", "beta")
            .await
            .unwrap(),
        "defaults"
    );
    assert_eq!(
        sen_core::settings::integer(ctx, "probe", "page_size")
            .await
            .unwrap(),
        20
    );
    let html = page(&app, &owner, "/admin/apps/settings").await;
    assert!(html.contains("id=\"settings-probe\"") && html.contains("value=\"20\""));
    let csrf = csrf_of(&app, &owner, "/admin/apps/settings").await;
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/settings/probe",
        &[
            ("csrf", &csrf),
            ("beta", "true"),
            ("page_size", "50"),
            ("mode", "strict"),
            ("banner", "Hello"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        sen_core::settings::flag(ctx, "probe", "beta")
            .await
            .unwrap()
    );
    assert_eq!(
        sen_core::settings::integer(ctx, "probe", "page_size")
            .await
            .unwrap(),
        50
    );
    assert_eq!(
        sen_core::settings::text(ctx, "probe", "mode")
            .await
            .unwrap(),
        "strict"
    );
    // One refused value saves nothing, and says which.
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/settings/probe",
        &[("csrf", &csrf), ("page_size", "500"), ("mode", "weird")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("id=\"err-probe-page_size\"")
            && body.contains("id=\"err-probe-mode\"")
            && body.contains("value=\"500\"")
    );
    assert!(
        body.contains("must be between 1 and 100"),
        "the rule, in English"
    );
    let r = no_redirects()
        .post(app.url("/admin/apps/settings/probe"))
        .bearer_auth(&owner)
        .header("Cookie", "sen_lang=vi")
        .form(&[
            ("csrf", csrf.as_str()),
            ("page_size", "0"),
            ("mode", "strict"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("phải nằm trong khoảng 1 đến 100"),
        "and in Vietnamese"
    );
    assert!(
        sen_core::settings::flag(ctx, "probe", "beta")
            .await
            .unwrap(),
        "beta not switched off"
    );
    assert_eq!(
        sen_core::settings::integer(ctx, "probe", "page_size")
            .await
            .unwrap(),
        50
    );
    let audit = get_json(&app, &owner, "/api/v1/admin/audit?action=settings.change").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
    assert_eq!(audit["items"][0]["detail"]["page_size"], 50);
    // Viewers read, cannot write; unknown apps are 404.
    let (_, vic_token) = staff(&app, &owner, "vic@example.com", "viewer").await;
    let vhtml = page(&app, &vic_token, "/admin/apps/settings").await;
    assert!(vhtml.contains("value=\"50\"") && !vhtml.contains("id=\"save-probe\""));
    let vcsrf = csrf_of(&app, &vic_token, "/admin/apps").await;
    let r = post_form(
        &app,
        &vic_token,
        "/admin/apps/settings/probe",
        &[("csrf", &vcsrf), ("page_size", "1")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        sen_core::settings::integer(ctx, "probe", "page_size")
            .await
            .unwrap(),
        50
    );
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/settings/nope",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 404);
}

async fn roles_page_shows_who_holds_what(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let (bo, _) = signup(&app, "bo@example.com").await;
    let (_ann, _) = signup(&app, "ann@example.com").await;
    grant(&app, &owner, &bo, &["probe.editor"]).await;
    let html = page(&app, &owner, "/admin/apps/roles").await;
    let row = html
        .split("id=\"role-probe.editor\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        row.contains("/admin/apps/users?role=probe.editor\">1</a>"),
        "{row}"
    );
    let holders = page(&app, &owner, "/admin/apps/users?role=probe.editor").await;
    assert!(holders.contains("bo@example.com") && !holders.contains("ann@example.com"));
    let api = get_json(&app, &owner, "/api/v1/admin/users?role=probe.editor").await;
    assert_eq!(api["items"].as_array().unwrap().len(), 1);
    let cat = get_json(&app, &owner, "/api/v1/admin/roles").await;
    assert_eq!(cat["holders"]["probe.editor"], 1);
}

async fn sign_out_others_keeps_this_session(app: TestApp) {
    let (_, one) = signup(&app, "bo@example.com").await;
    let two = common::login_token(&app, "bo@example.com", PW).await;
    let three = common::login_token(&app, "bo@example.com", PW).await;
    let r = send(&app, &three, Method::DELETE, "/api/v1/me/sessions", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["ended"], 2);
    assert_eq!(get(&app, &one, "/api/v1/me").await.status(), 401);
    assert_eq!(get(&app, &two, "/api/v1/me").await.status(), 401);
    assert_eq!(get(&app, &three, "/api/v1/me").await.status(), 200);
    // The page's button does the same, and needs the form token.
    let four = common::login_token(&app, "bo@example.com", PW).await;
    let html = page(&app, &three, "/me").await;
    assert!(html.contains("id=\"revoke-others\""));
    let r = post_form(
        &app,
        &three,
        "/web/me/sessions/revoke-others",
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(get(&app, &four, "/api/v1/me").await.status(), 200);
    let csrf = csrf_of(&app, &three, "/me").await;
    let r = post_form(
        &app,
        &three,
        "/web/me/sessions/revoke-others",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(get(&app, &four, "/api/v1/me").await.status(), 401);
    assert_eq!(get(&app, &three, "/api/v1/me").await.status(), 200);
}

sen_testkit::both_backends!(spawn;
    sign_out_others_keeps_this_session,
    operators_end_sessions_and_reset_two_factor,
    impersonation_is_limited_audited_and_reversible,
    credentials_pages_find_and_cut_off_keys_and_clients,
    jobs_pages_show_queues_details_and_act_in_bulk,
    files_page_browses_and_deletes,
    charts_count_requests_errors_and_jobs,
    declared_tables_get_list_search_sort_and_validated_forms,
    settings_are_typed_validated_and_read_by_code,
    roles_page_shows_who_holds_what,
);

/// The sign-in page offers each configured provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_page_offers_configured_providers() {
    let app = TestApp::builder(sen_testkit::Backend::Sqlite)
        .apps(common::apps())
        .config(|c| {
            c.auth_oidc_providers = vec![sen_core::config::OidcProvider {
                name: "corp".into(),
                title: Some("Corp SSO".into()),
                issuer: "http://127.0.0.1:9".into(),
                client_id: "sen".into(),
                client_secret: sen_core::config::Secret::new("s"),
            }]
        })
        .spawn()
        .await;
    let html = app
        .get("/login?next=/admin/apps")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("href=\"/api/v1/auth/oidc/corp/start?return_to=")
            && html.contains("id=\"oidc-corp\""),
        "{html}"
    );
    assert!(html.contains("Corp SSO"));
    let plain = common::spawn(sen_testkit::Backend::Sqlite).await;
    assert!(
        !plain
            .get("/login")
            .await
            .text()
            .await
            .unwrap()
            .contains("oidc-providers")
    );
}
