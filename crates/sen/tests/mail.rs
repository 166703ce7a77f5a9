//! Mail: the outbox written in the caller's transaction, delivery to a real
//! SMTP server on 127.0.0.1 (the test kit's sink) with retries while it is
//! down, suppressions, per-domain limits, template failures, the dev file
//! transport, the operator API, and a `sen worker` killed mid-delivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::procs::*;
use mail_parser::MessageParser;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use sen_testkit::smtp::{Received, SmtpSink};
use sen_testkit::{Backend, TestApp, assert_problem};
use serde_json::{Value, json};

async fn spawn_with(backend: Backend, sink: &SmtpSink, limits: &str) -> TestApp {
    let url = sink.url();
    let limits = limits.to_string();
    TestApp::builder(backend)
        .apps(common::apps())
        .config(move |c| {
            c.mail_smtp_url = Some(sen_core::config::Secret::new(url));
            c.mail_from = "Sen Shop <shop@example.com>".into();
            c.job_poll_ms = 50;
            c.mail_domain_limits = limits
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|p| {
                    let (d, n) = p.split_once('=').unwrap();
                    (d.to_string(), n.parse().unwrap())
                })
                .collect();
        })
        .workers()
        .spawn()
        .await
}

async fn queue(
    app: &TestApp,
    to: &str,
    locale: Option<&str>,
    vars: Value,
    rollback: bool,
) -> String {
    let r = app
        .post_json(
            "/api/v1/probe/mail",
            &json!({"to": to, "locale": locale, "vars": vars, "rollback": rollback}),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn row(app: &TestApp, id: &str) -> Option<(String, i32, Option<String>)> {
    let db = app.ctx.db();
    let r = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT state, attempts, last_error FROM sen_mail WHERE id = ?",
            [id.into()],
        ))
        .await
        .unwrap()?;
    Some((
        r.try_get("", "state").unwrap(),
        r.try_get("", "attempts").unwrap(),
        r.try_get("", "last_error").unwrap(),
    ))
}

async fn wait_row(app: &TestApp, id: &str, want: &str) -> (String, i32, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = row(app, id).await.expect("row");
        if r.0 == want {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "mail {id} is {r:?}, never {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parse(m: &Received) -> mail_parser::Message<'_> {
    MessageParser::default().parse(m.data.as_bytes()).unwrap()
}

async fn delivers_both_parts_in_the_callers_transaction(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_with(backend, &sink, "").await;
    let vars = json!({"name": "<Ann & Bo>", "order": "A-17"});
    let rolled_back = queue(&app, "ann@example.com", None, vars.clone(), true).await;
    let en = queue(&app, "ann@example.com", None, vars.clone(), false).await;
    let vi = queue(&app, "binh@example.vn", Some("vi-VN"), vars, false).await;
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    wait_row(&app, &en, "sent").await;
    wait_row(&app, &vi, "sent").await;
    assert!(
        row(&app, &rolled_back).await.is_none(),
        "rolled back: no outbox row"
    );
    let by_to = |to: &str| got.iter().find(|m| m.to == [to.to_string()]).unwrap();

    let m = by_to("ann@example.com");
    assert_eq!(m.from, "shop@example.com");
    let p = parse(m);
    assert_eq!(p.subject(), Some("Hello <Ann & Bo>"));
    let host = app.addr.ip().to_string();
    assert_eq!(p.message_id(), Some(format!("{en}@{host}").as_str()));
    assert_eq!(
        p.body_text(0).unwrap().trim(),
        "Hi <Ann & Bo>, your order A-17 shipped."
    );
    assert_eq!(
        p.body_html(0).unwrap().trim(),
        "<p>Hi <b>&lt;Ann &amp; Bo&gt;</b>, your order A-17 shipped.</p>",
        "variables are escaped in HTML"
    );
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{:?}",
        m.header("Content-Type")
    );

    let p = parse(by_to("binh@example.vn"));
    assert_eq!(p.subject(), Some("Xin chào <Ann & Bo>"));
    assert!(
        p.body_text(0)
            .unwrap()
            .contains("đơn hàng A-17 đã được gửi đi")
    );
    // Nothing more arrives (the rolled-back message never will).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().await.len(), 2);
}

async fn retries_while_the_server_is_down_then_delivers_once(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let app = spawn_with(backend, &sink, "").await;
    sink.stop();
    let id = queue(
        &app,
        "ann@example.com",
        None,
        json!({"name": "Ann", "order": "1"}),
        false,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (state, attempts, err) = row(&app, &id).await.unwrap();
        if attempts >= 1 {
            assert_eq!(state, "queued", "a refused connection is retried");
            assert!(err.unwrap().starts_with("SMTP"), "the error is recorded");
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.restart().await;
    let got = sink.wait_for(1, Duration::from_secs(30)).await;
    let (_, attempts, err) = wait_row(&app, &id, "sent").await;
    assert!(attempts >= 2, "{attempts}");
    assert_eq!(err, None);
    assert_eq!(
        parse(&got[0]).message_id(),
        Some(format!("{id}@{}", app.addr.ip()).as_str())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().await.len(), 1, "delivered once");
}

async fn suppressed_addresses_are_never_mailed(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_with(backend, &sink, "").await;
    let owner = common::owner_token(&app).await;
    let add = |body: Value| {
        let app = &app;
        let owner = owner.clone();
        async move {
            app.request(Method::POST, "/api/v1/admin/mail/suppressions")
                .bearer_auth(owner)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = add(json!({"address": "Bounced@Example.com", "reason": "bounce"})).await;
    assert_eq!(r.status(), 204);
    let r = add(json!({"address": "not an address", "reason": "spam"})).await;
    let body = assert_problem(r, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["address", "reason"]);
    let r = add(json!({"address": "a@b.co", "reason": "bounce", "extra": 1})).await;
    assert_problem(r, 422, "validation_failed").await;

    let vars = json!({"name": "X", "order": "1"});
    let blocked = queue(&app, "bounced@example.com", None, vars.clone(), false).await;
    wait_row(&app, &blocked, "suppressed").await;
    let ok = queue(&app, "fine@example.com", None, vars.clone(), false).await;
    wait_row(&app, &ok, "sent").await;
    let got = sink.messages().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["fine@example.com"]);

    // Lifting the suppression lets new mail through.
    let r = app
        .request(
            Method::DELETE,
            "/api/v1/admin/mail/suppressions/bounced@example.com",
        )
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let again = queue(&app, "bounced@example.com", None, vars, false).await;
    wait_row(&app, &again, "sent").await;
    let r = app
        .request(
            Method::DELETE,
            "/api/v1/admin/mail/suppressions/bounced@example.com",
        )
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
}

async fn a_domain_over_its_limit_waits_without_spending_attempts(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_with(backend, &sink, "slow.example=2").await;
    let vars = json!({"name": "X", "order": "1"});
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            queue(
                &app,
                &format!("u{i}@slow.example"),
                None,
                vars.clone(),
                false,
            )
            .await,
        );
    }
    let other = queue(&app, "u@fast.example", None, vars, false).await;
    sink.wait_for(3, Duration::from_secs(30)).await;
    wait_row(&app, &other, "sent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.messages().await;
    assert_eq!(
        got.len(),
        3,
        "two of slow.example within the minute, plus fast.example"
    );
    let mut waiting = Vec::new();
    for id in &ids {
        let (state, attempts, _) = row(&app, id).await.unwrap();
        if state == "queued" {
            assert_eq!(attempts, 0, "a limited message made no attempt");
            waiting.push(id.clone());
        }
    }
    assert_eq!(waiting.len(), 1);
    let db = app.ctx.db();
    let job = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT state, attempt FROM sen_jobs WHERE kind = 'mail.deliver' AND args LIKE ?",
            [format!("%{}%", waiting[0]).into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.try_get::<String>("", "state").unwrap(),
        "scheduled",
        "snoozed"
    );
    assert_eq!(
        job.try_get::<i32>("", "attempt").unwrap(),
        0,
        "snoozing spends no attempt"
    );
}

async fn a_template_error_fails_the_message_visibly(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_with(backend, &sink, "").await;
    // `order` is missing: strict templates refuse to mail a blank.
    let id = queue(&app, "ann@example.com", None, json!({"name": "Ann"}), false).await;
    let (_, _, err) = wait_row(&app, &id, "failed").await;
    assert!(err.unwrap().contains("probe.hello"));
    let db = app.ctx.db();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = db
            .orm()
            .query_one_raw(db.statement(
                "SELECT state FROM sen_jobs WHERE kind = 'mail.deliver' AND args LIKE ?",
                [format!("%{id}%").into()],
            ))
            .await
            .unwrap()
            .unwrap();
        if job.try_get::<String>("", "state").unwrap() == "dead" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery job should be dead at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sink.messages().await.is_empty());
    // A bad recipient is refused when queued, as a client error.
    let r = app
        .post_json(
            "/api/v1/probe/mail",
            &json!({"to": "ann@example.com\r\nBcc: all@example.com", "vars": {}}),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
}

async fn operators_see_the_outbox_and_others_do_not(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_with(backend, &sink, "").await;
    let owner = common::owner_token(&app).await;
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ann@example.com", "password": "a long pass phrase", "name": "Ann"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let ann = common::login_token(&app, "ann@example.com", "a long pass phrase").await;
    let id = queue(
        &app,
        "bo@example.com",
        None,
        json!({"name": "Bo", "order": "9"}),
        false,
    )
    .await;
    wait_row(&app, &id, "sent").await;
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
    let page: Value = get("/api/v1/admin/mail?state=sent".into(), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    let item = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert_eq!(item["subject"], "Hello Bo");
    assert!(item.get("html").is_none(), "lists carry no bodies");
    let one: Value = get(format!("/api/v1/admin/mail/{id}"), owner.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["html"], "<p>Hi <b>Bo</b>, your order 9 shipped.</p>");
    assert_eq!(one["state"], "sent");
    let r = get("/api/v1/admin/mail?state=lost".into(), owner.clone()).await;
    assert_problem(r, 422, "validation_failed").await;
    let r = get("/api/v1/admin/mail/nope".into(), owner.clone()).await;
    assert_problem(r, 404, "not_found").await;
    for path in [
        "/api/v1/admin/mail".to_string(),
        format!("/api/v1/admin/mail/{id}"),
        "/api/v1/admin/mail/suppressions".to_string(),
    ] {
        let r = get(path.clone(), ann.clone()).await;
        assert_problem(r, 403, "forbidden").await;
    }
    let r = app
        .request(Method::POST, "/api/v1/admin/mail/suppressions")
        .bearer_auth(&ann)
        .json(&json!({"address": "x@y.co", "reason": "manual"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "forbidden").await;
    let r = app.get("/api/v1/admin/mail").await;
    assert_eq!(r.status(), 401);
}

mod sqlite {
    use super::*;
    macro_rules! t {
        ($($name:ident),+) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(Backend::Sqlite).await }
        )+};
    }
    t!(
        delivers_both_parts_in_the_callers_transaction,
        retries_while_the_server_is_down_then_delivers_once,
        suppressed_addresses_are_never_mailed,
        a_domain_over_its_limit_waits_without_spending_attempts,
        a_template_error_fails_the_message_visibly,
        operators_see_the_outbox_and_others_do_not
    );
}

mod postgres {
    use super::*;
    macro_rules! t {
        ($($name:ident),+) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(Backend::Postgres).await }
        )+};
    }
    t!(
        delivers_both_parts_in_the_callers_transaction,
        retries_while_the_server_is_down_then_delivers_once,
        suppressed_addresses_are_never_mailed,
        a_domain_over_its_limit_waits_without_spending_attempts,
        a_template_error_fails_the_message_visibly,
        operators_see_the_outbox_and_others_do_not
    );
}

/// Credentials in `mail_smtp_url` are used for SMTP AUTH and never shown
/// by `sen config check`'s redaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_credentials_authenticate() {
    let sink = SmtpSink::start().await;
    let url = format!(
        "smtp://shop%40example.com:s3cret-pass@127.0.0.1:{}",
        sink.port()
    );
    let app = TestApp::builder(Backend::Sqlite)
        .apps(common::apps())
        .config(move |c| {
            c.mail_smtp_url = Some(sen_core::config::Secret::new(url));
            c.job_poll_ms = 50;
        })
        .workers()
        .spawn()
        .await;
    let redacted = app.ctx.config().redacted().to_string();
    assert!(!redacted.contains("s3cret-pass"), "{redacted}");
    let id = queue(
        &app,
        "ann@example.com",
        None,
        json!({"name": "A", "order": "1"}),
        false,
    )
    .await;
    let got = sink.wait_for(1, Duration::from_secs(30)).await;
    wait_row(&app, &id, "sent").await;
    assert_eq!(got[0].auth_user.as_deref(), Some("shop@example.com"));
}

/// Without `mail_smtp_url` (the dev default) messages are `.eml` files
/// under `{data_dir}/mail`, named by outbox id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_transport_writes_readable_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let app = TestApp::builder(Backend::Sqlite)
        .apps(common::apps())
        .config(move |c| {
            c.data_dir = data;
            c.job_poll_ms = 50;
        })
        .workers()
        .spawn()
        .await;
    let id = queue(
        &app,
        "ann@example.com",
        Some("vi"),
        json!({"name": "An", "order": "7"}),
        false,
    )
    .await;
    wait_row(&app, &id, "sent").await;
    let raw = std::fs::read(dir.path().join("mail").join(format!("{id}.eml"))).unwrap();
    let p = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(p.subject(), Some("Xin chào An"));
    assert_eq!(
        p.to().unwrap().first().unwrap().address(),
        Some("ann@example.com")
    );
}

/// A `sen worker` killed while the SMTP server holds a message's final
/// reply loses that message (the server never accepted it); the next
/// worker delivers it once, and what was sent before is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_sends_nothing_twice() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = sen_testkit::postgres::shared().create_database().await;
    let env = vec![
        ("DATABASE_URL", db.clone()),
        ("SEN_MAIL_SMTP_URL", sink.url()),
        ("SEN_JOB_LEASE_MS", "1500".to_string()),
        ("SEN_JOB_POLL_MS", "100".to_string()),
        ("RUST_LOG", "info".to_string()),
    ];
    let out = run(dir.path(), &["migrate"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut config = sen_core::Config::default();
    config.database_url = sen_core::config::Secret::new(db);
    config.db_max_connections = 3;
    let apps = sen_core::Apps::new()
        .register(sen_core::system::SystemApp)
        .unwrap();
    let ctx = sen_core::AppContext::connect(config, vec![], apps)
        .await
        .unwrap();
    let send = |to: &'static str| {
        let ctx = ctx.clone();
        async move {
            let tx = ctx.db().begin_write().await.unwrap();
            let mail = sen_core::mail::Mail::new("auth.password_reset", to)
                .vars(json!({"link": format!("https://x.example/{to}"), "minutes": 30}));
            let id = ctx.mail().send(&tx, mail).await.unwrap();
            tx.commit().await.unwrap();
            id
        }
    };
    let mut a = spawn(dir.path(), &["worker", "--normal"], &env, "a");
    let first = send("first@example.com").await;
    sink.wait_for(1, Duration::from_secs(30)).await;
    sink.hold();
    let second = send("second@example.com").await;
    assert!(
        sink.wait_held(Duration::from_secs(30)).await,
        "second message reached DATA"
    );
    signal(&a, "KILL");
    let _ = wait_exit(&mut a, Duration::from_secs(5));
    sink.release();
    let mut b = spawn(dir.path(), &["worker", "--normal"], &env, "b");
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    // Give any duplicate time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = sink.messages().await;
    assert_eq!(
        got_after.len(),
        2,
        "{:?}",
        got_after.iter().map(|m| &m.to).collect::<Vec<_>>()
    );
    let ids: Vec<String> = got
        .iter()
        .map(|m| {
            MessageParser::default()
                .parse(m.data.as_bytes())
                .unwrap()
                .message_id()
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, [first.clone(), second.clone()]);
    let d = ctx.db();
    for id in [&first, &second] {
        let r = d
            .orm()
            .query_one_raw(d.statement(
                "SELECT state FROM sen_mail WHERE id = ?",
                [id.clone().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.try_get::<String>("", "state").unwrap(), "sent");
    }
    let r = d
        .orm()
        .query_one_raw(d.statement(
            "SELECT attempt FROM sen_jobs WHERE kind = 'mail.deliver' AND args LIKE ?",
            [format!("%{second}%").into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.try_get::<i32>("", "attempt").unwrap(),
        2,
        "rerun after the killed attempt's lease"
    );
    sigterm(&b);
    assert!(wait_exit(&mut b, Duration::from_secs(15)).success());
}
