//! The pages: authorisation of every `/admin` URL, CSP and escaping, form
//! tokens (over HTTP, both databases), and the flows a person goes
//! through in a real Chromium (SQLite): sign in with TOTP, disable a user
//! and see their session die, retry a dead job, edit the profile, upload
//! an avatar, revoke a session, switch language. Screenshots are saved
//! under the test output directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{csrf_of, no_redirects, now_secs, post_form, totp_code};

use std::time::{Duration, Instant};

use reqwest::Method;
use sea_orm::ConnectionTrait;
use sen_testkit::{TestApp, assert_problem};
use serde_json::{Value, json};
use thirtyfour::Key;
use thirtyfour::prelude::*;

const PW: &str = "a long pass phrase";

async fn spawn(backend: sen_testkit::Backend) -> TestApp {
    TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.job_poll_ms = 50)
        .workers()
        .spawn()
        .await
}

async fn user(app: &TestApp, email: &str, name: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": PW, "name": name}),
        )
        .await;
    assert_eq!(r.status(), 201);
    common::login_token(app, email, PW).await
}

/// A dead job (its last error `error`) of a kind that succeeds when run again.
async fn dead_job(app: &TestApp, error: &str) -> String {
    let db = app.ctx.db();
    let job =
        sen_core::jobs::NewJob::raw("files.cleanup", &json!(null)).delay(Duration::from_secs(3600));
    let id = app.ctx.jobs().enqueue(db.orm(), job).await.unwrap().id;
    let errors = json!([{"attempt": 1, "error": error}]).to_string();
    db.orm()
        .execute_raw(db.statement(
            "UPDATE sen_jobs SET state = 'dead', errors = ? WHERE id = ?",
            [errors.into(), id.clone().into()],
        ))
        .await
        .unwrap();
    id
}

async fn non_operators_get_403_on_every_admin_page(app: TestApp) {
    let bo = user(&app, "bo@example.com", "Bo").await;
    let client = no_redirects();
    for (method, path) in sen_web::ADMIN_ROUTES {
        let path = path.replace("{id}", "00000000-0000-7000-8000-000000000000");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(m.clone(), app.url(&path))
            .bearer_auth(&bo)
            .header("X-Requested-With", "test")
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path} as a non-operator");
        assert!(r.text().await.unwrap().contains("id=\"forbidden\""));
        // Signed out: sent to sign in, never shown the page.
        let r = client.request(m, app.url(&path)).send().await.unwrap();
        if *method == "GET" {
            // First to the refresh step, which without a refresh cookie
            // sends the visitor on to sign in.
            assert_eq!(r.status(), 303, "{path} signed out");
            let to = r.headers()["location"].to_str().unwrap().to_string();
            assert!(
                to.starts_with("/api/v1/auth/web/refresh?next="),
                "{path}: {to}"
            );
            let r = client.get(app.url(&to)).send().await.unwrap();
            assert_eq!(r.status(), 303);
            assert!(
                r.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("/login?next="),
                "{path}"
            );
        } else {
            assert_ne!(r.status(), 200, "{path} signed out");
        }
    }
    // The profile page is for every signed-in user.
    let r = client
        .get(app.url("/me"))
        .bearer_auth(&bo)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn pages_are_strict_and_escape_user_text(app: TestApp) {
    let owner = common::owner_token(&app).await;
    user(&app, "eve@example.com", "<script>alert(1)</script>").await;
    let r = app
        .request(Method::GET, "/admin/apps/users?q=eve")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "escaped: {body}"
    );
    assert!(!body.contains("<script>alert(1)"), "never raw");
    assert!(!body.contains("style=\""), "no inline styles");
    let home = app
        .request(Method::GET, "/admin/apps")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in ["auth", "jobs", "mail", "files", "realtime"] {
        assert!(
            home.contains(&format!("data-app=\"{name}\"")),
            "card of {name}"
        );
    }
    let css = app.get("/web/assets/app.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let js = app.get("/web/assets/htmx.min.js").await;
    assert!(js.text().await.unwrap().contains("htmx"));
    assert_eq!(app.get("/web/assets/../Cargo.toml").await.status(), 404);
}

async fn form_posts_need_the_session_token(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let client = no_redirects();
    let db = app.ctx.db();
    let job = dead_job(&app, "boom").await;
    for (path, form) in [
        (
            format!("/admin/apps/jobs/{job}/retry"),
            vec![("csrf", "forged")],
        ),
        (
            "/web/me/profile".to_string(),
            vec![("csrf", "forged"), ("name", "X")],
        ),
    ] {
        let r = client
            .post(app.url(&path))
            .bearer_auth(&owner)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} with a forged token");
    }
    let state: String = db
        .orm()
        .query_one_raw(db.statement("SELECT state FROM sen_jobs WHERE id = ?", [job.into()]))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "state")
        .unwrap();
    assert_eq!(state, "dead", "nothing changed");
}

async fn security_page_changes_password_and_enrols_totp(app: TestApp) {
    let ann = user(&app, "ann@example.com", "Ann").await;
    let csrf = csrf_of(&app, &ann, "/me/security").await;
    let r = post_form(&app, &ann, "/web/me/totp/begin", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("<svg"), "QR code shown");
    let secret = page
        .split("id=\"totp-secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    let r = post_form(
        &app,
        &ann,
        "/web/me/totp/confirm",
        &[("csrf", &csrf), ("code", "000000")],
    )
    .await;
    assert_eq!(r.status(), 401, "a wrong code is refused");
    assert!(r.text().await.unwrap().contains("role=\"alert\""));
    let code = totp_code(&secret, now_secs());
    let r = post_form(
        &app,
        &ann,
        "/web/me/totp/confirm",
        &[("csrf", &csrf), ("code", &code)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert_eq!(
        page.matches("<li><code>").count(),
        10,
        "ten recovery codes, once"
    );
    let again = app
        .request(Method::GET, "/me/security")
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("Two-factor authentication is on."));
    assert!(!again.contains("<li><code>"), "codes are not shown again");
    let r = post_form(
        &app,
        &ann,
        "/web/me/password",
        &[
            ("csrf", &csrf),
            ("current_password", "wrong pass phrase"),
            ("new_password", "another long phrase"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = post_form(
        &app,
        &ann,
        "/web/me/password",
        &[
            ("csrf", &csrf),
            ("current_password", PW),
            ("new_password", "another long phrase"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/me/security?changed=1");
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "ann@example.com", "password": "another long phrase", "totp": totp_code(&secret, now_secs() + 30)}),
        )
        .await;
    assert_eq!(r.status(), 200, "the new password and TOTP sign in");
}

async fn operator_sections_show_audit_schedules_and_mail(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let page = |path: &'static str| {
        let app = &app;
        let owner = owner.clone();
        async move {
            let r = app
                .request(Method::GET, path)
                .bearer_auth(owner)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    assert!(
        page("/admin/apps/audit?action=login.success")
            .await
            .contains("login.success")
    );
    let bad = app
        .request(Method::GET, "/admin/apps/audit?since=yesterday")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let sched = page("/admin/apps/schedules").await;
    assert!(sched.contains("id=\"schedule-files.cleanup\""));
    let csrf = csrf_of(&app, &owner, "/admin/apps/schedules").await;
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/schedules/files.cleanup/run",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let db = app.ctx.db();
    let n: i64 = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT COUNT(*) AS n FROM sen_jobs WHERE kind = 'files.cleanup'",
            [],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert!(n >= 1, "run now enqueued the job");
    let r = app
        .post_json(
            "/api/v1/probe/mail",
            &json!({"to": "bo@example.com", "vars": {"name": "<Bo>", "order": "7"}}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = page("/admin/apps/mail").await;
    assert!(list.contains(&format!("id=\"mail-{id}\"")));
    let path: &'static str = Box::leak(format!("/admin/apps/mail/{id}").into_boxed_str());
    let one = page(path).await;
    assert!(one.contains("Hello &#60;Bo&#62;"), "preview, escaped");
    assert!(one.contains("sandbox srcdoc="), "HTML shown sandboxed");
}

async fn api_keys_page_makes_scoped_keys_shown_once(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let csrf = csrf_of(&app, &owner, "/me/keys").await;
    let page = app
        .request(Method::GET, "/me/keys")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("value=\"jobs:read\""),
        "the owner's permissions are offered"
    );
    let r = post_form(
        &app,
        &owner,
        "/web/me/keys",
        &[
            ("csrf", &csrf),
            ("name", "ci"),
            ("permissions", "jobs:read"),
            ("permissions", "mail:read"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let page = r.text().await.unwrap();
    let key = page
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    assert!(key.starts_with("sen_"), "{key}");
    let with_key = |path: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.request(Method::GET, path)
                .header("X-API-Key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with_key("/api/v1/admin/jobs").await, 200);
    assert_eq!(
        with_key("/api/v1/admin/users").await,
        403,
        "limited to what was ticked"
    );
    let again = app
        .request(Method::GET, "/me/keys")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains(&key), "shown once");
    let id = again
        .split("<tr id=\"key-")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let r = post_form(
        &app,
        &owner,
        &format!("/web/me/keys/{id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(with_key("/api/v1/admin/jobs").await, 401, "revoked");
    // A permission the account does not hold is refused, shown on the page.
    let ann = user(&app, "ann@example.com", "Ann").await;
    let csrf = csrf_of(&app, &ann, "/me/keys").await;
    let r = post_form(
        &app,
        &ann,
        "/web/me/keys",
        &[
            ("csrf", &csrf),
            ("name", "x"),
            ("permissions", "jobs:write"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("role=\"alert\""));
}

async fn operators_create_users_and_grant_scoped_roles(app: TestApp) {
    let owner = common::owner_token(&app).await;
    let csrf = csrf_of(&app, &owner, "/admin/apps/users").await;
    let r = post_form(
        &app,
        &owner,
        "/admin/apps/users",
        &[
            ("csrf", &csrf),
            ("email", "Cam@Example.com"),
            ("name", "Cam"),
            ("password", PW),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/admin/apps/users/"), "{to}");
    let id = to.rsplit('/').next().unwrap().to_string();
    let page = app
        .request(Method::GET, &to)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("cam@example.com"));
    assert!(
        page.contains("value=\"probe.editor\""),
        "declared roles offered"
    );
    let roles_path = format!("{to}/roles");
    let r = post_form(
        &app,
        &owner,
        &roles_path,
        &[
            ("csrf", &csrf),
            ("op", "add"),
            ("role", "probe.editor"),
            ("scope", "region-7"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let api = |app: &TestApp| {
        let owner = owner.clone();
        let id = id.clone();
        let app_url = app.url(&format!("/api/v1/admin/users/{id}"));
        let client = app.client.clone();
        async move {
            let v: Value = client
                .get(app_url)
                .bearer_auth(owner)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["roles"].clone()
        }
    };
    assert_eq!(api(&app).await, json!(["probe.editor@region-7"]));
    let r = post_form(
        &app,
        &owner,
        &roles_path,
        &[
            ("csrf", &csrf),
            ("op", "add"),
            ("role", "no.such"),
            ("scope", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("role=\"alert\""));
    let r = post_form(
        &app,
        &owner,
        &roles_path,
        &[
            ("csrf", &csrf),
            ("op", "remove"),
            ("role", "probe.editor"),
            ("scope", "region-7"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(api(&app).await, json!([]));
    let roles = app
        .request(Method::GET, "/admin/apps/roles")
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(roles.contains("id=\"role-probe.editor\"") && roles.contains("probe:reports.write"));
    let dup = post_form(
        &app,
        &owner,
        "/admin/apps/users",
        &[
            ("csrf", &csrf),
            ("email", "cam@example.com"),
            ("name", "Cam"),
            ("password", PW),
        ],
    )
    .await;
    assert_eq!(
        dup.status(),
        409,
        "an existing email is refused on the page"
    );
    // The list filters by state: disable Cam, find her only among the
    // disabled; the filter survives into the page's own form.
    let r = post_form(
        &app,
        &owner,
        &format!("/admin/apps/users/{id}/disable"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let list = |path: &'static str| {
        let req = app.request(Method::GET, path).bearer_auth(&owner);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let row = format!("id=\"user-{id}\"");
    let disabled = list("/admin/apps/users?status=disabled").await;
    assert!(disabled.contains(&row), "{disabled}");
    assert_eq!(disabled.matches("id=\"user-").count(), 1, "{disabled}");
    assert!(disabled.contains("<option value=\"disabled\" selected>"));
    let active = list("/admin/apps/users?status=active").await;
    assert!(!active.contains(&row) && active.contains("id=\"user-"));
    let every = list("/admin/apps/users?status=whatever").await;
    assert!(every.contains(&row) && every.matches("id=\"user-").count() >= 2);
}

sen_testkit::both_backends!(spawn;
    operators_create_users_and_grant_scoped_roles,
    api_keys_page_makes_scoped_keys_shown_once,
    security_page_changes_password_and_enrols_totp,
    operator_sections_show_audit_schedules_and_mail,
    non_operators_get_403_on_every_admin_page,
    pages_are_strict_and_escape_user_text,
    form_posts_need_the_session_token,
);

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the button in the element `id`, finding it again if a live
/// refresh replaced it in between.
async fn click_button_in(d: &WebDriver, id: &str) {
    for _ in 0..50 {
        if let Ok(row) = d.find(By::Id(id)).await
            && let Ok(btn) = row.find(By::Tag("button")).await
            && btn.click().await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no button to click in #{id}");
}

/// Waits until the page's event stream is open (`app.js` marks `<html>`).
async fn live_connected(d: &WebDriver) {
    wait_for("the page's event streams", || async {
        let v = d
            .execute(
                "return document.documentElement.getAttribute('data-live') === 'open';",
                Vec::new(),
            )
            .await
            .unwrap();
        v.json().as_bool().unwrap_or(false)
    })
    .await;
}

/// The page's text ("" while a navigation replaces the page).
async fn text_of(d: &WebDriver) -> String {
    match d.find(By::Tag("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_and_a_user_in_a_real_browser() {
    let app = spawn(sen_testkit::Backend::Sqlite).await;
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    // An owner with TOTP.
    let email = "owner@example.com";
    sen_auth::admin_cli::create_owner(&app.ctx, email, Some("Olivia"), PW.into())
        .await
        .unwrap();
    let token = common::login_token(&app, email, PW).await;
    let r = app
        .request(Method::POST, "/api/v1/me/mfa/totp")
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .request(Method::POST, "/api/v1/me/mfa/totp/confirm")
        .bearer_auth(&token)
        .json(&json!({"code": totp_code(&secret, now_secs())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let recovery = r.json::<Value>().await.unwrap()["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_string();
    let bo = user(&app, "bo@example.com", "Bo").await;
    // A dead job of a kind that succeeds when run.
    let db = app.ctx.db();
    let job = dead_job(&app, "disk full").await;
    let b = sen_testkit::browser::Browser::start().await;
    let d = &b.driver;
    // Signed out: the dashboard sends us to sign in.
    d.goto(app.url("/admin/apps")).await.unwrap();
    assert!(d.current_url().await.unwrap().path().starts_with("/login"));
    d.find(By::Id("email"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    d.find(By::Id("password"))
        .await
        .unwrap()
        .send_keys(PW)
        .await
        .unwrap();
    d.find(By::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The TOTP step (the code of the next step: the confirm used this one).
    // Waits for the page the form posts to: under load the sign-in
    // (an argon2 hash) can outlast the click's own navigation wait.
    let totp = d.query(By::Id("totp")).first().await.expect("TOTP step");
    b.screenshot(&shots, "login-totp").await;
    d.find(By::Id("password"))
        .await
        .unwrap()
        .send_keys(PW)
        .await
        .unwrap();
    totp.send_keys(totp_code(&secret, now_secs() + 30))
        .await
        .unwrap();
    d.find(By::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the dashboard", || async {
        d.current_url().await.unwrap().path() == "/admin/apps"
    })
    .await;
    let home = text_of(d).await;
    assert!(
        home.contains("Dashboard") && home.contains("Files") && home.contains("Mail"),
        "{home}"
    );
    assert_eq!(
        d.find(By::Id("dead")).await.unwrap().text().await.unwrap(),
        "1"
    );
    b.screenshot(&shots, "admin-home").await;
    // An expired access cookie is renewed from the refresh cookie on the way.
    d.delete_cookie("sen_access").await.unwrap();
    d.goto(app.url("/admin/apps/jobs")).await.unwrap();
    wait_for("back on the page", || async {
        d.current_url().await.unwrap().path() == "/admin/apps/jobs"
    })
    .await;

    // Disable Bo; his API session dies at once.
    d.goto(app.url("/admin/apps/users?q=bo")).await.unwrap();
    let row = d.find(By::Css("tr[id^='user-']")).await.unwrap();
    assert!(row.text().await.unwrap().contains("bo@example.com"));
    row.find(By::Tag("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("Bo disabled", || async {
        text_of(d).await.contains("disabled")
    })
    .await;
    b.screenshot(&shots, "admin-users").await;
    let r = app
        .request(Method::GET, "/api/v1/me")
        .bearer_auth(&bo)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_token").await;

    // The dead-letter list follows `admin:jobs` live: a job retried
    // elsewhere (here through the API) leaves the open page by itself.
    let other_job = dead_job(&app, "boom").await;
    d.goto(app.url("/admin/apps/jobs?state=dead"))
        .await
        .unwrap();
    assert!(d.find(By::Id(format!("job-{other_job}"))).await.is_ok());
    live_connected(d).await;

    let r = app
        .request(
            Method::POST,
            &format!("/api/v1/admin/jobs/{other_job}/retry"),
        )
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the retried job to leave the open page", || async {
        d.find_all(By::Id(format!("job-{other_job}")))
            .await
            .unwrap()
            .is_empty()
    })
    .await;

    // Retry the dead job; the worker completes it.
    d.goto(app.url("/admin/apps/jobs?state=dead"))
        .await
        .unwrap();
    live_connected(d).await;
    let row = d.find(By::Id(format!("job-{job}"))).await.unwrap();
    assert!(row.text().await.unwrap().contains("disk full"));
    b.screenshot(&shots, "admin-dead-jobs").await;
    click_button_in(d, &format!("job-{job}")).await;
    wait_for("the job to complete", || async {
        let r = db
            .orm()
            .query_one_raw(db.statement(
                "SELECT state FROM sen_jobs WHERE id = ?",
                [job.clone().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        r.try_get::<String>("", "state").unwrap() == "completed"
    })
    .await;
    d.goto(app.url("/admin/apps/jobs?state=completed"))
        .await
        .unwrap();
    assert!(d.find(By::Id(format!("job-{job}"))).await.is_ok());

    // The profile page: name, mood, avatar.
    d.goto(app.url("/me")).await.unwrap();
    let name = d.find(By::Id("name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Olivia Trần").await.unwrap();
    d.find(By::Id("mood"))
        .await
        .unwrap()
        .send_keys("đang vui")
        .await
        .unwrap();
    d.find(By::Id("save-profile"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("saved", || async { d.find(By::Id("notice")).await.is_ok() }).await;
    let r: Value = app
        .request(Method::GET, "/api/v1/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["name"].as_str(), r["mood"].as_str()),
        (Some("Olivia Trần"), Some("đang vui"))
    );
    let png = std::env::temp_dir().join(format!("avatar-{}.png", uuid::Uuid::now_v7()));
    image::RgbImage::from_pixel(256, 256, image::Rgb([30, 120, 200]))
        .save(&png)
        .unwrap();
    d.find(By::Id("file"))
        .await
        .unwrap()
        .send_keys(png.to_str().unwrap())
        .await
        .unwrap();
    let preview = d.find(By::Id("avatar-preview")).await.unwrap();
    wait_for("the preview", || async {
        preview.is_displayed().await.unwrap_or(false)
    })
    .await;
    assert!(
        preview
            .attr("src")
            .await
            .unwrap()
            .unwrap()
            .starts_with("blob:"),
        "the chosen file is previewed before upload"
    );
    d.find(By::Id("upload"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the avatar", || async {
        d.find(By::Id("avatar")).await.is_ok()
    })
    .await;
    let src = d
        .find(By::Id("avatar"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap();
    assert!(src.starts_with("/files/"), "{src}");

    // Another session of the owner, revoked from the page.
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": PW, "totp": recovery}),
        )
        .await;
    assert_eq!(r.status(), 200, "a second session");
    d.goto(app.url("/me")).await.unwrap();
    let rows = d.find_all(By::Css("tr[id^='session-']")).await.unwrap();
    assert!(rows.len() >= 2, "this one and the other");
    let before = rows.len();
    let mut revoked = false;
    for row in rows {
        if let Ok(btn) = row.find(By::Tag("button")).await {
            btn.click().await.unwrap();
            revoked = true;
            break;
        }
    }
    assert!(revoked);
    wait_for("one session fewer", || async {
        d.find_all(By::Css("tr[id^='session-']"))
            .await
            .unwrap()
            .len()
            == before - 1
    })
    .await;
    b.screenshot(&shots, "me").await;
    // The badge counts a new notification live.
    let me_id: String = db
        .orm()
        .query_one_raw(db.statement("SELECT id FROM sen_users WHERE email = ?", [email.into()]))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();
    live_connected(d).await;
    sen_realtime::notify(
        &app.ctx,
        &me_id,
        sen_realtime::NewNotification {
            kind: "test".into(),
            title: "Đơn hàng đã giao".into(),
            body: String::new(),
            data: json!({}),
        },
    )
    .await
    .unwrap();
    wait_for("the badge", || async {
        d.find(By::Id("notif-count"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            == "1"
    })
    .await;
    d.find(By::Id("notif-badge"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the list", || async {
        text_of(d).await.contains("Đơn hàng đã giao")
    })
    .await;
    b.screenshot(&shots, "notifications").await;
    d.find(By::Id("read-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("read", || async {
        d.find_all(By::Css("li.unread")).await.unwrap().is_empty()
    })
    .await;

    // Vietnamese, remembered.
    d.find(By::Css("#lang-switch option[value='vi']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    d.find(By::Id("lang-go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("Vietnamese", || async {
        text_of(d).await.contains("Hồ sơ của bạn")
    })
    .await;
    d.goto(app.url("/admin/apps")).await.unwrap();
    assert!(text_of(d).await.contains("Bảng điều khiển"), "remembered");
    b.screenshot(&shots, "admin-home-vi").await;
    // Signing out ends the session: the dashboard asks to sign in again.
    d.find(By::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    d.goto(app.url("/admin/apps")).await.unwrap();
    assert!(d.current_url().await.unwrap().path().starts_with("/login"));
    b.quit().await;
}

/// Checks the open page: every control labelled, images with alt text,
/// buttons and links with names, `lang` set, one `h1`, and every visible
/// text at WCAG AA contrast against its background (4.5:1, 3:1 large).
const A11Y_AUDIT: &str = r#"
const problems = [];
const lum = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const p = m[1].split(',').map((s) => parseFloat(s));
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return { l: 0.2126 * f(p[0]) + 0.7152 * f(p[1]) + 0.0722 * f(p[2]), a: p.length > 3 ? p[3] : 1 };
};
const bg = (el) => {
  for (; el; el = el.parentElement) { const L = lum(getComputedStyle(el).backgroundColor); if (L && L.a > 0.5) return L.l; }
  return 1;
};
document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach((el) => {
  if (!((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')))
    problems.push('unlabelled control ' + el.outerHTML.slice(0, 90));
});
document.querySelectorAll('img').forEach((el) => { if (!el.hasAttribute('alt')) problems.push('image without alt ' + el.src); });
document.querySelectorAll('button, a[href]').forEach((el) => {
  if (!(el.textContent.trim() || el.getAttribute('aria-label'))) problems.push('nameless control ' + el.outerHTML.slice(0, 90));
});
if (!document.documentElement.lang) problems.push('no lang');
const h1 = document.querySelectorAll('h1').length; if (h1 !== 1) problems.push(h1 + ' h1 elements');
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
while (walk.nextNode()) {
  const t = walk.currentNode, el = t.parentElement;
  if (!t.textContent.trim() || seen.has(el) || el.closest('option, svg')) continue;
  seen.add(el);
  const cs = getComputedStyle(el);
  if (cs.visibility === 'hidden' || el.getClientRects().length === 0) continue;
  const fg = lum(cs.color); if (!fg) continue;
  const b = bg(el), hi = Math.max(fg.l, b), lo = Math.min(fg.l, b), ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
  const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
  if (ratio < need) problems.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': ' + el.tagName + ' "' + t.textContent.trim().slice(0, 40) + '"');
}
return problems;
"#;

async fn audit(d: &WebDriver, path: &str) {
    let problems: Vec<String> = d
        .execute(A11Y_AUDIT, Vec::new())
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert!(problems.is_empty(), "{path}: {problems:#?}");
}

async fn focused_id(d: &WebDriver) -> String {
    d.active_element()
        .await
        .unwrap()
        .id()
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn tab(d: &WebDriver) {
    d.action_chain()
        .send_keys(Key::Tab)
        .perform()
        .await
        .unwrap();
}

async fn type_into(d: &WebDriver, id: &str, text: &str) {
    let e = d.find(By::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(d: &WebDriver, id: &str) {
    d.find(By::Id(id)).await.unwrap().click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_roles_impersonation_settings_and_tables_in_a_real_browser() {
    let app = spawn(sen_testkit::Backend::Sqlite).await;
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let email = "root@example.com";
    sen_auth::admin_cli::create_owner(&app.ctx, email, Some("Root"), PW.into())
        .await
        .unwrap();
    let job = dead_job(&app, "smtp timeout").await;
    let b = sen_testkit::browser::Browser::start().await;
    let d = &b.driver;

    // Signing in by keyboard alone: Tab reaches each field with a visible
    // focus ring, Enter submits.
    // The audit itself catches what it looks for.
    d.goto(app.url("/login")).await.unwrap();
    d.execute(
        "const m = document.querySelector('main'); m.insertAdjacentHTML('beforeend', '<input id=\"bare\"><p id=\"faint\">faint</p>'); document.getElementById('faint').style.color = '#bbb';",
        Vec::new(),
    )
    .await
    .unwrap();
    let found: Vec<String> = d
        .execute(A11Y_AUDIT, Vec::new())
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert!(
        found.iter().any(|p| p.contains("unlabelled control"))
            && found.iter().any(|p| p.contains("faint")),
        "{found:?}"
    );
    d.goto(app.url("/login?next=/admin/apps")).await.unwrap();
    audit(d, "/login").await;
    let mut path = Vec::new();
    for _ in 0..20 {
        tab(d).await;
        let id = focused_id(d).await;
        let outline: String = d
            .execute(
                "return getComputedStyle(document.activeElement).outlineStyle",
                Vec::new(),
            )
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert_ne!(outline, "none", "focus is visible on {id:?}");
        path.push(id.clone());
        if id == "email" {
            break;
        }
    }
    assert_eq!(path.last().map(String::as_str), Some("email"), "{path:?}");
    d.action_chain().send_keys(email).perform().await.unwrap();
    tab(d).await;
    assert_eq!(focused_id(d).await, "password");
    d.action_chain()
        .send_keys(format!("{PW}{}", char::from(Key::Enter)))
        .perform()
        .await
        .unwrap();
    wait_for("the dashboard", || async {
        d.current_url().await.unwrap().path() == "/admin/apps"
    })
    .await;
    assert_eq!(
        d.find_all(By::Css(".chart polyline")).await.unwrap().len(),
        4,
        "the charts"
    );
    audit(d, "/admin/apps").await;

    // Create a user, give them a role scoped to one region.
    d.goto(app.url("/admin/apps/users")).await.unwrap();
    type_into(d, "new-email", "kim@example.com").await;
    type_into(d, "new-name", "Kim").await;
    type_into(d, "new-password", PW).await;
    click(d, "create-user").await;
    wait_for("the new user's page", || async {
        d.find(By::Id("user-email")).await.is_ok()
    })
    .await;
    let kim_page = d.current_url().await.unwrap().path().to_string();
    let kim = kim_page.rsplit('/').next().unwrap().to_string();
    d.find(By::Css("#grant-role option[value='probe.editor']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    type_into(d, "grant-scope", "region-7").await;
    click(d, "grant").await;
    wait_for("the grant listed", || async {
        text_of(d).await.contains("region-7")
    })
    .await;
    audit(d, "user page").await;
    b.screenshot(&shots, "admin-user").await;
    let (user, _) = sen_auth::users::by_id(&app.ctx, app.ctx.db().orm(), &kim)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.email, "kim@example.com");
    let kim_token = common::login_token(&app, "kim@example.com", PW).await;
    let roles: Value = app
        .request(Method::GET, "/api/v1/me")
        .bearer_auth(&kim_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(roles["roles"], json!(["probe.editor@region-7"]));
    d.goto(app.url("/admin/apps/roles")).await.unwrap();
    audit(d, "/admin/apps/roles").await;

    // Act as Kim: the banner says so on every page; back again.
    d.goto(app.url(&kim_page)).await.unwrap();
    click(d, "impersonate").await;
    wait_for("Kim's profile", || async {
        d.current_url().await.unwrap().path() == "/me"
    })
    .await;
    let banner = d
        .find(By::Id("impersonation-banner"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(banner.contains("kim@example.com"), "{banner}");
    assert_eq!(
        d.find(By::Id("name")).await.unwrap().value().await.unwrap(),
        Some("Kim".into())
    );
    audit(d, "/me while impersonating").await;
    b.screenshot(&shots, "impersonating").await;
    d.goto(app.url("/admin/apps")).await.unwrap();
    assert!(
        d.find(By::Id("forbidden")).await.is_ok(),
        "Kim is no operator"
    );
    assert!(d.find(By::Id("impersonation-banner")).await.is_ok());
    click(d, "stop-impersonating").await;
    wait_for("back as the operator", || async {
        d.current_url().await.unwrap().path() == kim_page
    })
    .await;
    assert!(
        d.find_all(By::Id("impersonation-banner"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(text_of(d).await.contains("region-7"));

    // Settings: a refused value is named beside its field; then saved.
    d.goto(app.url("/admin/apps/settings")).await.unwrap();
    type_into(d, "set-probe-page_size", "500").await;
    click(d, "save-probe").await;
    wait_for("the refusal", || async {
        d.find(By::Id("err-probe-page_size")).await.is_ok()
    })
    .await;
    audit(d, "settings with an error").await;
    b.screenshot(&shots, "settings-error").await;
    type_into(d, "set-probe-page_size", "30").await;
    click(d, "set-probe-beta").await;
    click(d, "save-probe").await;
    wait_for("saved", || async { d.find(By::Id("notice")).await.is_ok() }).await;
    assert_eq!(
        sen_core::settings::integer(&app.ctx, "probe", "page_size")
            .await
            .unwrap(),
        30
    );
    assert!(
        sen_core::settings::flag(&app.ctx, "probe", "beta")
            .await
            .unwrap()
    );

    // A declared table: create with a mistake, fix it, find it in the list.
    d.goto(app.url("/admin/apps/app/probe")).await.unwrap();
    audit(d, "app page").await;
    d.find(By::LinkText("Widgets"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(d, "new-row").await;
    type_into(d, "in-name", "Sprocket").await;
    type_into(d, "in-qty", "many").await;
    click(d, "save-row").await;
    wait_for("the inline error", || async {
        d.find(By::Id("err-qty")).await.is_ok()
    })
    .await;
    audit(d, "resource form with an error").await;
    b.screenshot(&shots, "resource-form-error").await;
    type_into(d, "in-qty", "12").await;
    click(d, "save-row").await;
    wait_for("saved row", || async {
        d.find_all(By::Id("err-qty")).await.unwrap().is_empty()
            && d.find(By::Id("delete-row")).await.is_ok()
    })
    .await;
    d.goto(app.url("/admin/apps/app/probe/widgets?q=sprock"))
        .await
        .unwrap();
    assert_eq!(d.find_all(By::Css("tr.row")).await.unwrap().len(), 1);
    audit(d, "resource list").await;
    b.screenshot(&shots, "resource-list").await;

    // The other sections pass the same audit.
    for path in [
        "/admin/apps/credentials".to_string(),
        "/admin/apps/jobs".to_string(),
        format!("/admin/apps/jobs/{job}"),
        "/admin/apps/schedules".to_string(),
        "/admin/apps/mail".to_string(),
        "/admin/apps/audit".to_string(),
        "/admin/apps/files".to_string(),
        "/me/keys".to_string(),
        "/me/notifications".to_string(),
        "/me/apps/probe/notes".to_string(),
        "/me/apps/probe/notes/new".to_string(),
    ] {
        d.goto(app.url(&path)).await.unwrap();
        audit(d, &path).await;
    }
    b.screenshot(&shots, "admin-job").await;

    // Turn on two-factor by reading the secret under the QR code.
    d.goto(app.url("/me/security")).await.unwrap();
    click(d, "enable-totp").await;
    // The click submits a form: wait for the next page, as every other
    // submit in this test does (finding at once raced the navigation).
    wait_for("the TOTP secret", || async {
        d.find(By::Id("totp-secret")).await.is_ok()
    })
    .await;
    let secret = d
        .find(By::Id("totp-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(d.find(By::Css("#qr svg")).await.is_ok(), "the QR code");
    audit(d, "/me/security enrolling").await;
    type_into(d, "confirm-code", &totp_code(&secret, now_secs())).await;
    click(d, "confirm-totp").await;
    wait_for("recovery codes", || async {
        d.find(By::Id("recovery-codes")).await.is_ok()
    })
    .await;
    assert_eq!(
        d.find_all(By::Css("#recovery-codes li"))
            .await
            .unwrap()
            .len(),
        10
    );
    b.screenshot(&shots, "me-security-totp").await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": PW}),
        )
        .await;
    assert_problem(r, 401, "mfa_required").await;

    // A phone: nothing is wider than the screen.
    d.set_window_rect(0, 0, 390, 844).await.unwrap();
    for path in [
        "/admin/apps",
        "/admin/apps/users",
        "/admin/apps/jobs",
        "/admin/apps/credentials",
        "/admin/apps/app/probe/widgets",
        "/me",
    ] {
        d.goto(app.url(path)).await.unwrap();
        let (scroll, inner): (i64, i64) = d
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                Vec::new(),
            )
            .await
            .unwrap()
            .convert()
            .unwrap();
        let wide: Vec<String> = d
            .execute(
                "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)",
                Vec::new(),
            )
            .await
            .unwrap()
            .convert()
            .unwrap();
        assert!(
            scroll <= inner,
            "{path} is {scroll}px wide on a {inner}px screen: {wide:?}"
        );
    }
    b.screenshot(&shots, "phone-me").await;
    b.quit().await;
}
