//! Realtime over real sockets: WebSocket (tokio-tungstenite) and SSE
//! (reqwest streaming) against the real router, on SQLite and PostgreSQL,
//! and across instances through PostgreSQL NOTIFY and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::rt::{self, End, Sse, Ws};
use reqwest::Method;
use sen_testkit::{Backend, TestApp, assert_problem};
use serde_json::{Value, json};

const PW: &str = "a long pass phrase";

/// Registers `email` and signs in: (user id, access token).
async fn user(app: &TestApp, email: &str) -> (String, String) {
    let r = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": PW, "name": "Ann"}),
        )
        .await;
    assert_eq!(r.status(), 201, "register {email}");
    let id = r.json::<Value>().await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (id, common::login_token(app, email, PW).await)
}

async fn publish(app: &TestApp, token: &str, topic: &str, name: &str, data: Value) -> String {
    rt::publish(&app.url(""), &app.client, token, topic, name, data).await
}

fn hub_connections(app: &TestApp) -> usize {
    sen_realtime::RealtimeState::of(&app.ctx)
        .unwrap()
        .hub
        .connections()
}

async fn wait_connections(app: &TestApp, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub_connections(app) != n {
        assert!(
            Instant::now() < deadline,
            "connections stayed at {}",
            hub_connections(app)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_event(frame: &Value, topic: &str, id: &str, name: &str) {
    assert_eq!(frame["type"], "event", "{frame}");
    assert_eq!(frame["topic"], topic, "{frame}");
    assert_eq!(frame["id"], id, "{frame}");
    assert_eq!(frame["name"], name, "{frame}");
}

async fn spawn(backend: Backend) -> TestApp {
    common::spawn(backend).await
}

async fn topics_are_authorised_and_events_arrive(app: TestApp) {
    let (ann_id, ann) = user(&app, "ann@example.com").await;
    let (bob_id, _bob) = user(&app, "bob@example.com").await;
    let mut ws = rt::connect_token(app.addr, &ann).await;

    assert_eq!(
        ws.subscribe(&format!("user:{ann_id}"), None).await["type"],
        "subscribed"
    );
    for (topic, code) in [
        (format!("user:{bob_id}"), "forbidden"),
        ("post:secret-1".to_string(), "forbidden"),
        ("nope:1".to_string(), "unknown_topic"),
        ("bad topic".to_string(), "invalid_topic"),
    ] {
        let f = ws.subscribe(&topic, None).await;
        assert_eq!(f["type"], "error", "{topic}: {f}");
        assert_eq!(f["code"], code, "{topic}: {f}");
        assert_eq!(f["topic"], topic.as_str());
    }
    // Refusals leave the connection open.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");

    assert_eq!(ws.subscribe("post:1", None).await["type"], "subscribed");
    assert_eq!(ws.subscribe("post:2", None).await["type"], "subscribed");
    let id = publish(
        &app,
        &ann,
        "post:1",
        "comment.created",
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(id, "1");
    let ev = ws.next().await;
    assert_event(&ev, "post:1", "1", "comment.created");
    assert_eq!(ev["data"]["text"], "hi");
    publish(&app, &ann, "post:2", "liked", json!({"n": 1})).await;
    publish(
        &app,
        &ann,
        "post:1",
        "comment.created",
        json!({"text": "again"}),
    )
    .await;
    assert_event(&ws.next().await, "post:2", "1", "liked");
    assert_event(&ws.next().await, "post:1", "2", "comment.created");

    ws.send(json!({"type": "unsubscribe", "topic": "post:1"}))
        .await;
    assert_eq!(ws.next().await["type"], "unsubscribed");
    publish(&app, &ann, "post:1", "comment.created", json!({})).await;
    publish(&app, &ann, "post:2", "liked", json!({"n": 2})).await;
    assert_event(&ws.next().await, "post:2", "2", "liked");

    // A reader of secret posts may subscribe to them.
    let owner = common::owner_token(&app).await;
    let mut op = rt::connect_token(app.addr, &owner).await;
    assert_eq!(
        op.subscribe("post:secret-1", None).await["type"],
        "subscribed"
    );

    // Publishing validates what services pass in.
    let r = app
        .request(Method::POST, "/api/v1/probe/publish")
        .bearer_auth(&ann)
        .json(&json!({"topic": "a b", "name": "x", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_topic").await;
}

async fn handshake_checks_origin_and_credentials(app: TestApp) {
    let (ann_id, ann) = user(&app, "ann@example.com").await;
    let origin = app.url("");
    assert_eq!(
        rt::connect(app.addr, &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        rt::connect(app.addr, &[("authorization", "Bearer not-a-token")])
            .await
            .err(),
        Some(401)
    );
    let plain = app.get("/api/v1/realtime/ws").await;
    assert_problem(plain, 400, "websocket_required").await;

    // The session cookie authenticates the handshake itself.
    let r = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "ann@example.com", "password": PW}),
        )
        .await;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("sen_access="))
        .unwrap();
    let mut ws = rt::connect(app.addr, &[("origin", &origin), ("cookie", &cookie)])
        .await
        .unwrap();
    assert_eq!(
        ws.subscribe(&format!("user:{ann_id}"), None).await["type"],
        "subscribed"
    );

    // A bearer header works for non-browser clients.
    let auth = format!("Bearer {ann}");
    let mut ws2 = rt::connect(app.addr, &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(ws2.subscribe("post:1", None).await["type"], "subscribed");

    // First-frame auth: a bad token closes with 4401, and so does silence.
    let mut bad = rt::connect(app.addr, &[]).await.unwrap();
    bad.send(json!({"type": "auth", "token": "nope"})).await;
    assert_eq!(
        bad.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(4401))
    );
    let mut silent = rt::connect(app.addr, &[]).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        silent.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(4401))
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
}

async fn resume_replays_or_resets(app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    for i in 1..=3 {
        publish(&app, &ann, "post:7", "n", json!({"i": i})).await;
    }
    let mut ws = rt::connect_token(app.addr, &ann).await;
    assert_eq!(
        ws.subscribe("post:7", Some("1")).await["type"],
        "subscribed"
    );
    assert_event(&ws.next().await, "post:7", "2", "n");
    assert_event(&ws.next().await, "post:7", "3", "n");
    publish(&app, &ann, "post:7", "n", json!({"i": 4})).await;
    assert_event(&ws.next().await, "post:7", "4", "n");

    // From the very beginning (0): everything the log holds.
    let mut all = rt::connect_token(app.addr, &ann).await;
    all.subscribe("post:7", Some("0")).await;
    for i in 1..=4 {
        let ev = all.next().await;
        assert_event(&ev, "post:7", &i.to_string(), "n");
        assert_eq!(ev["data"]["i"], i);
    }
    // Nothing older than the log keeps (replay_len = 5) is replayed:
    // the client is told to reload instead.
    for i in 5..=20 {
        publish(&app, &ann, "post:7", "n", json!({"i": i})).await;
    }
    let mut late = rt::connect_token(app.addr, &ann).await;
    late.subscribe("post:7", Some("2")).await;
    let reset = late.next().await;
    assert_eq!(
        (reset["type"].as_str(), reset["id"].as_str()),
        (Some("reset"), Some("20")),
        "{reset}"
    );
    publish(&app, &ann, "post:7", "n", json!({"i": 21})).await;
    assert_event(&late.next().await, "post:7", "21", "n");
    // An id this log never issued resets too.
    let mut alien = rt::connect_token(app.addr, &ann).await;
    alien.subscribe("post:7", Some("999")).await;
    assert_eq!(alien.next().await["type"], "reset");
    // Within the log: exact replay.
    let mut near = rt::connect_token(app.addr, &ann).await;
    near.subscribe("post:7", Some("18")).await;
    for i in 19..=21 {
        assert_event(&near.next().await, "post:7", &i.to_string(), "n");
    }
    // The live connection saw every event once, in order.
    for i in 5..=21 {
        assert_event(&ws.next().await, "post:7", &i.to_string(), "n");
    }
}

async fn spawn_short_log(backend: Backend) -> TestApp {
    sen_testkit::TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.realtime_replay_len = 5)
        .spawn()
        .await
}

async fn sse_streams_resumes_and_resets(app: TestApp) {
    let (ann_id, ann) = user(&app, "ann@example.com").await;
    let base = app.url("");
    let me = format!("user:{ann_id}");
    let topics = format!("post:9,{me}");
    let mut sse = Sse::open(&app.client, &base, &topics, &ann, None)
        .await
        .unwrap();
    publish(&app, &ann, "post:9", "a", json!({"n": 1})).await;
    let e = sse.next().await.unwrap();
    assert_event(&e.data, "post:9", "1", "a");
    assert_eq!(e.id.as_deref(), Some("post:9=1"));
    publish(&app, &ann, &me, "b", json!({})).await;
    let e = sse.next().await.unwrap();
    assert_eq!(e.id.unwrap(), format!("post:9=1,{me}=1"));
    let last = format!("post:9=1,{me}=1");
    drop(sse);

    publish(&app, &ann, "post:9", "a", json!({"n": 2})).await;
    publish(&app, &ann, "post:9", "a", json!({"n": 3})).await;
    let mut again = Sse::open(&app.client, &base, &topics, &ann, Some(&last))
        .await
        .unwrap();
    let e2 = again.next().await.unwrap();
    assert_event(&e2.data, "post:9", "2", "a");
    let e3 = again.next().await.unwrap();
    assert_event(&e3.data, "post:9", "3", "a");
    assert_eq!(e3.id.unwrap(), format!("post:9=3,{me}=1"));

    // A cursor the log cannot serve gets an explicit reset event.
    let mut stale = Sse::open(&app.client, &base, "post:9", &ann, Some("post:9=500"))
        .await
        .unwrap();
    let r = stale.next().await.unwrap();
    assert_eq!(r.data["type"], "reset");
    assert_eq!(r.id.as_deref(), Some("post:9=3"));

    // Refusals are problems, before any stream starts.
    let (bob_id, _) = user(&app, "bob@example.com").await;
    let (s, body) = Sse::open(&app.client, &base, &format!("user:{bob_id}"), &ann, None)
        .await
        .err()
        .unwrap();
    assert_eq!((s, body["code"].as_str()), (403, Some("forbidden")));
    let (s, body) = Sse::open(&app.client, &base, "nope:1", &ann, None)
        .await
        .err()
        .unwrap();
    assert_eq!((s, body["code"].as_str()), (404, Some("unknown_topic")));
    let (s, _) = Sse::open(&app.client, &base, "a b", &ann, None)
        .await
        .err()
        .unwrap();
    assert_eq!(s, 422);
    let (s, _) = Sse::open(&app.client, &base, "post:1", "bogus", None)
        .await
        .err()
        .unwrap();
    assert_eq!(s, 401);
}

async fn spawn_tight(backend: Backend) -> TestApp {
    sen_testkit::TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| {
            c.realtime_send_queue = 4;
            c.realtime_max_connections_per_user = 3;
            c.realtime_revocation_check_ms = 200;
            c.realtime_max_subscriptions = 2;
        })
        .spawn()
        .await
}

async fn slow_consumers_are_closed_not_buffered(app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    let mut slow = rt::connect_token(app.addr, &ann).await;
    slow.subscribe("post:slow", None).await;
    let blob = "x".repeat(32 * 1024);
    // ~19 MB: far more than the socket buffers and the 4-frame queue hold.
    for i in 0..600 {
        app.ctx
            .realtime()
            .publish("post:slow", "blob", json!({"i": i, "blob": blob}))
            .await
            .unwrap();
        if hub_connections(&app) == 0 {
            break;
        }
    }
    wait_connections(&app, 0).await;
    let (end, seen) = slow.until_end(rt::WAIT).await;
    assert!(seen.len() < 600, "the slow client was not cut off");
    assert!(
        matches!(end, End::Closed(4408) | End::Dropped),
        "ended with {end:?}"
    );
}

async fn revoked_sessions_are_disconnected(app: TestApp) {
    let (_, first) = user(&app, "ann@example.com").await;
    let second = common::login_token(&app, "ann@example.com", PW).await;
    let mut ws1 = rt::connect_token(app.addr, &first).await;
    let mut ws2 = rt::connect_token(app.addr, &second).await;
    let sessions: Value = app
        .request(Method::GET, "/api/v1/me/sessions")
        .bearer_auth(&second)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .request(Method::DELETE, &format!("/api/v1/me/sessions/{other}"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        ws1.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(4401))
    );
    ws2.send(json!({"type": "ping"})).await;
    assert_eq!(ws2.next().await["type"], "pong", "the other session stays");
    let r = app
        .request(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&second)
        .header("x-requested-with", "test")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        ws2.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(4401))
    );
}

async fn per_user_connections_are_capped(app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let mut a = rt::connect_token(app.addr, &ann).await;
    let _b = rt::connect_token(app.addr, &ann).await;
    // Topics per connection are capped too.
    assert_eq!(a.subscribe("post:1", None).await["type"], "subscribed");
    assert_eq!(a.subscribe("post:2", None).await["type"], "subscribed");
    let over_topics = a.subscribe("post:3", None).await;
    assert_eq!(
        over_topics["code"], "too_many_subscriptions",
        "{over_topics}"
    );
    a.send(json!({"type": "unsubscribe", "topic": "post:1"}))
        .await;
    assert_eq!(a.next().await["type"], "unsubscribed");
    assert_eq!(a.subscribe("post:3", None).await["type"], "subscribed");
    let _sse = Sse::open(&app.client, &app.url(""), "post:1", &ann, None)
        .await
        .unwrap();
    let mut over = rt::connect(app.addr, &[]).await.unwrap();
    over.send(json!({"type": "auth", "token": ann})).await;
    assert_eq!(
        over.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(4429))
    );
    let (s, body) = Sse::open(&app.client, &app.url(""), "post:1", &ann, None)
        .await
        .err()
        .unwrap();
    assert_eq!(
        (s, body["code"].as_str()),
        (429, Some("too_many_connections"))
    );
    // Another user is not affected.
    let _c = rt::connect_token(app.addr, &bob).await;
}

async fn malformed_frames_strike_out(app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    let mut ws = rt::connect_token(app.addr, &ann).await;
    ws.send_text("not json").await;
    let e = ws.next().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_frame"))
    );
    ws.send(json!({"type": "subscribe"})).await;
    assert_eq!(ws.next().await["code"], "bad_frame");
    // Still usable between strikes.
    assert_eq!(ws.subscribe("post:1", None).await["type"], "subscribed");
    ws.send(json!({"type": "subscribe", "topic": "post:1", "extra": 1}))
        .await;
    assert_eq!(ws.next().await["code"], "bad_frame");
    assert_eq!(
        ws.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(1008))
    );
    // Oversized frames are refused by the protocol layer.
    let mut big = rt::connect_token(app.addr, &ann).await;
    big.send_text(&format!(
        "{{\"type\":\"ping\",\"x\":\"{}\"}}",
        "y".repeat(64 * 1024)
    ))
    .await;
    assert!(
        big.next_or_end(rt::WAIT).await.is_err(),
        "oversized frame accepted"
    );
}

async fn notifications_are_stored_listed_and_pushed(app: TestApp) {
    let (ann_id, ann) = user(&app, "ann@example.com").await;
    let (_, bob) = user(&app, "bob@example.com").await;
    let mut ws = rt::connect_token(app.addr, &ann).await;
    ws.subscribe(&format!("user:{ann_id}"), None).await;
    let notify = |title: &str| {
        let body = json!({"user_id": ann_id, "title": title});
        let req = app
            .request(Method::POST, "/api/v1/probe/notify")
            .bearer_auth(&bob)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let n1 = notify("first").await;
    let ev = ws.next().await;
    assert_eq!(ev["name"], "notification");
    assert_eq!(ev["data"]["title"], "first");
    assert_eq!(ev["data"]["id"], n1["id"]);

    let list = |q: &str, token: &str| {
        let req = app
            .request(Method::GET, &format!("/api/v1/me/notifications{q}"))
            .bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let page: Value = list("", &ann).await.json().await.unwrap();
    assert_eq!(page["unread"], 1);
    assert_eq!(page["items"][0]["title"], "first");
    assert_eq!(page["items"][0]["data"]["link"], "/x");
    assert!(page["items"][0]["read_at"].is_null());
    let bobs: Value = list("", &bob).await.json().await.unwrap();
    assert_eq!(bobs["items"].as_array().unwrap().len(), 0);

    let id = n1["id"].as_str().unwrap();
    let read = |token: &str, id: &str| {
        let req = app
            .request(Method::POST, &format!("/api/v1/me/notifications/{id}/read"))
            .bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    assert_problem(read(&bob, id).await, 404, "not_found").await;
    assert_eq!(read(&ann, id).await.status(), 204);
    let ev = ws.next().await;
    assert_eq!(ev["name"], "notifications.read");
    assert_eq!(ev["data"]["ids"][0], id);
    let page: Value = list("", &ann).await.json().await.unwrap();
    assert_eq!(page["unread"], 0);
    assert!(page["items"][0]["read_at"].is_string());

    for t in ["a", "b", "c"] {
        notify(t).await;
    }
    let p1: Value = list("?unread=true&limit=2", &ann)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p1["items"][0]["title"], "c");
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2: Value = list(&format!("?unread=true&limit=2&cursor={cursor}"), &ann)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert_eq!(p2["items"][0]["title"], "a");
    assert!(p2["next_cursor"].is_null());
    assert_problem(list("?limit=0", &ann).await, 422, "invalid_limit").await;
    assert_problem(list("?cursor=zzz", &ann).await, 422, "invalid_cursor").await;
    assert_problem(list("?bogus=1", &ann).await, 400, "invalid_query").await;

    let r: Value = app
        .request(Method::POST, "/api/v1/me/notifications/read-all")
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["updated"], 3);
    assert_problem(
        app.get("/api/v1/me/notifications").await,
        401,
        "unauthenticated",
    )
    .await;
}

async fn shutdown_closes_connections(mut app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    let mut ws = rt::connect_token(app.addr, &ann).await;
    ws.subscribe("post:1", None).await;
    let mut sse = Sse::open(&app.client, &app.url(""), "post:1", &ann, None)
        .await
        .unwrap();
    let started = Instant::now();
    app.begin_shutdown();
    assert_eq!(
        ws.next_or_end(rt::WAIT).await.err(),
        Some(End::Closed(1001))
    );
    assert!(sse.next().await.is_none(), "the SSE stream ends");
    app.wait_stopped().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited for streams"
    );
}

async fn spawn_heartbeat(backend: Backend) -> TestApp {
    sen_testkit::TestApp::builder(backend)
        .apps(common::apps())
        .config(|c| c.realtime_heartbeat_secs = 1)
        .spawn()
        .await
}

async fn heartbeats_drop_dead_peers(app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    let mut alive = rt::connect_token(app.addr, &ann).await;
    let dead: Ws = rt::connect_token(app.addr, &ann).await;
    // `dead` never reads again, so it never answers a ping; `alive` reads
    // (tungstenite answers pings while reading).
    alive.assert_quiet(Duration::from_secs(4)).await;
    wait_connections(&app, 1).await;
    alive.send(json!({"type": "ping"})).await;
    assert_eq!(alive.next().await["type"], "pong");
    drop(dead);
}

/// Many publishers at once on one topic: every subscriber still gets every
/// event once, in sequence, with no reset (out-of-order arrivals are held
/// back and gaps read from the log).
async fn concurrent_publishes_arrive_in_order_without_gaps(app: TestApp) {
    let (_, ann) = user(&app, "ann@example.com").await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut ws = rt::connect_token(app.addr, &ann).await;
        ws.subscribe("post:busy", None).await;
        subs.push(ws);
    }
    let mut tasks = Vec::new();
    for w in 0..20 {
        let ctx = app.ctx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                ctx.realtime()
                    .publish("post:busy", "n", json!({"w": w, "i": i}))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for ws in &mut subs {
        for i in 1..=500 {
            let ev = ws.next().await;
            assert_event(&ev, "post:busy", &i.to_string(), "n");
        }
    }
}

sen_testkit::both_backends!(spawn;
    concurrent_publishes_arrive_in_order_without_gaps,
    topics_are_authorised_and_events_arrive,
    handshake_checks_origin_and_credentials,
    sse_streams_resumes_and_resets,
    malformed_frames_strike_out,
    notifications_are_stored_listed_and_pushed,
    shutdown_closes_connections,
);

mod short_log {
    use super::*;
    sen_testkit::both_backends!(spawn_short_log; resume_replays_or_resets);
}

mod tight {
    use super::*;
    sen_testkit::both_backends!(spawn_tight;
        slow_consumers_are_closed_not_buffered,
        revoked_sessions_are_disconnected,
        per_user_connections_are_capped,
    );
}

mod heartbeat {
    use super::*;
    sen_testkit::both_backends!(spawn_heartbeat; heartbeats_drop_dead_peers);
}

/// Two instances on one PostgreSQL database; with `redis`, sharing Redis too.
async fn pair(redis: Option<String>) -> (TestApp, TestApp) {
    let prefix = format!("rt{}:", uuid::Uuid::now_v7().simple());
    let mut builder = TestApp::builder(Backend::Postgres).apps(common::apps());
    if let Some(url) = &redis {
        builder = builder.redis(url.clone());
    }
    let p = prefix.clone();
    // One deployment: one secret key and one public URL (the token issuer).
    let secret = format!("shared-secret-{}", uuid::Uuid::now_v7().simple());
    let s = secret.clone();
    let a = builder
        .config(move |c| {
            c.redis_prefix = p;
            c.secret_key = Some(sen_core::config::Secret::new(s));
            c.public_url = Some("http://sen.test".into());
        })
        .spawn()
        .await;
    let db = a.ctx.config().database_url.expose().to_string();
    let mut builder = TestApp::builder(Backend::Postgres).apps(common::apps());
    if let Some(url) = &redis {
        builder = builder.redis(url.clone());
    }
    let b = builder
        .config(move |c| {
            c.redis_prefix = prefix;
            c.database_url = sen_core::config::Secret::new(db);
            c.secret_key = Some(sen_core::config::Secret::new(secret));
            c.public_url = Some("http://sen.test".into());
        })
        .spawn()
        .await;
    (a, b)
}

async fn events_cross_instances(a: &TestApp, b: &TestApp) {
    let (ann_id, ann) = user(a, "ann@example.com").await;
    let mut on_b = rt::connect_token(b.addr, &ann).await;
    on_b.subscribe("post:x", None).await;
    on_b.subscribe(&format!("user:{ann_id}"), None).await;
    let mut on_a = rt::connect_token(a.addr, &ann).await;
    on_a.subscribe("post:x", None).await;
    for i in 1..=5 {
        let (from, other) = if i % 2 == 0 { (b, a) } else { (a, b) };
        let _ = other;
        publish(from, &ann, "post:x", "n", json!({"i": i})).await;
    }
    for i in 1..=5 {
        assert_event(&on_b.next().await, "post:x", &i.to_string(), "n");
        assert_event(&on_a.next().await, "post:x", &i.to_string(), "n");
    }
    // A large event travels by reference (over NOTIFY's size limit).
    let big = "z".repeat(20_000);
    publish(a, &ann, "post:x", "big", json!({"big": big})).await;
    let ev = on_b.next().await;
    assert_event(&ev, "post:x", "6", "big");
    assert_eq!(ev["data"]["big"].as_str().unwrap().len(), 20_000);
    // A notification created on A reaches the user on B.
    let r = a
        .request(Method::POST, "/api/v1/probe/notify")
        .bearer_auth(&ann)
        .json(&json!({"user_id": ann_id, "title": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ev = on_b.next().await;
    assert_eq!(
        (ev["name"].as_str(), ev["data"]["title"].as_str()),
        (Some("notification"), Some("hello"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_events_through_postgres_notify() {
    let (a, b) = pair(None).await;
    events_cross_instances(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_events_through_redis() {
    let (a, b) = pair(Some(sen_testkit::redis::shared_url())).await;
    events_cross_instances(&a, &b).await;
}

/// Redis down: local delivery continues, readiness says so, and when Redis
/// is back the other instance gets what it missed (from the log) and what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_local_delivery_and_catches_up() {
    let mut redis = sen_testkit::redis::RedisServer::start().unwrap();
    let (a, b) = pair(Some(redis.url())).await;
    let (_, ann) = user(&a, "ann@example.com").await;
    let mut on_a = rt::connect_token(a.addr, &ann).await;
    on_a.subscribe("post:r", None).await;
    let mut on_b = rt::connect_token(b.addr, &ann).await;
    on_b.subscribe("post:r", None).await;
    publish(&a, &ann, "post:r", "n", json!({"i": 1})).await;
    assert_event(&on_a.next().await, "post:r", "1", "n");
    assert_event(&on_b.next().await, "post:r", "1", "n");

    redis.stop();
    publish(&a, &ann, "post:r", "n", json!({"i": 2})).await;
    assert_event(&on_a.next().await, "post:r", "2", "n");
    let ready = a.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");

    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.get("/readyz").await.status() != 200 || b.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // B catches up with the event it missed, in order, then live ones.
    assert_event(&on_b.next().await, "post:r", "2", "n");
    publish(&a, &ann, "post:r", "n", json!({"i": 3})).await;
    assert_event(&on_b.next().await, "post:r", "3", "n");
    assert_event(&on_a.next().await, "post:r", "3", "n");
}

/// Two real `sen serve` processes on one PostgreSQL database: a subscriber
/// on one receives what a request on the other published (NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sen_serve_processes_share_events_through_notify() {
    two_sen_serve_processes(None).await;
}

/// The same with both processes on Redis (pub/sub carries the events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sen_serve_processes_share_events_through_redis() {
    two_sen_serve_processes(Some(sen_testkit::redis::shared_url())).await;
}

async fn two_sen_serve_processes(redis: Option<String>) {
    use common::procs::{SEN_TEST_JOBS, run_exe, spawn_exe, text, wait_http};
    let dir = tempfile::tempdir().unwrap();
    let db = sen_testkit::postgres::shared().create_database().await;
    let secret = format!("secret-{}", uuid::Uuid::now_v7().simple());
    let prefix = format!("p{}:", uuid::Uuid::now_v7().simple());
    let env = |port: u16| {
        let mut env = vec![
            ("DATABASE_URL", db.clone()),
            ("SEN_SECRET_KEY", secret.clone()),
            ("SEN_PUBLIC_URL", "http://sen.test".to_string()),
            ("PORT", port.to_string()),
        ];
        if let Some(url) = &redis {
            env.push(("REDIS_URL", url.clone()));
            env.push(("SEN_REDIS_PREFIX", prefix.clone()));
        }
        env
    };
    let (pa, pb) = (sen_testkit::free_port(), sen_testkit::free_port());
    let out = run_exe(SEN_TEST_JOBS, dir.path(), &["migrate"], &env(pa));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut a = spawn_exe(SEN_TEST_JOBS, dir.path(), &["serve"], &env(pa), "a");
    let mut b = spawn_exe(SEN_TEST_JOBS, dir.path(), &["serve"], &env(pb), "b");
    let (ua, ub) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    wait_http(&format!("{ua}/readyz")).await;
    wait_http(&format!("{ub}/readyz")).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .post(format!("{ua}/api/v1/auth/register"))
        .json(&json!({"email": "ann@example.com", "password": PW, "name": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ann_id = r.json::<Value>().await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let login: Value = client
        .post(format!("{ua}/api/v1/auth/login"))
        .json(&json!({"email": "ann@example.com", "password": PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    let mut on_a = rt::connect_token(format!("127.0.0.1:{pa}").parse().unwrap(), &token).await;
    let mut on_b = rt::connect_token(format!("127.0.0.1:{pb}").parse().unwrap(), &token).await;
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(ws.subscribe("chaos:1", None).await["type"], "subscribed");
        assert_eq!(
            ws.subscribe(&format!("user:{ann_id}"), None).await["type"],
            "subscribed"
        );
    }
    for (i, base) in [(1, &ua), (2, &ub), (3, &ua)] {
        let r = client
            .post(format!("{base}/api/v1/chaos/publish"))
            .bearer_auth(&token)
            .json(&json!({"topic": "chaos:1", "name": "n", "data": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for i in 1..=3 {
        assert_event(&on_a.next().await, "chaos:1", &i.to_string(), "n");
        let ev = on_b.next().await;
        assert_event(&ev, "chaos:1", &i.to_string(), "n");
        assert_eq!(ev["data"]["i"], i);
    }
    let r = client
        .post(format!("{ua}/api/v1/chaos/notify-me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(on_b.next().await["name"], "notification");
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}
