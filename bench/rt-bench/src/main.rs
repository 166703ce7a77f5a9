//! Realtime benchmark tools, loopback only and bounded in time.
//!
//! `rt-bench ceiling PORT`: a bare fan-out server on the same WebSocket
//! stack (axum + tungstenite) with no authentication, topics, log or
//! ordering: every publish goes to every connection through one
//! `tokio::sync::broadcast`. What Sen is measured against.
//!
//! `rt-bench load WS_BASE HTTP_BASE TOKEN SERVER_PID CONNS LEVELS SIZES SECS LABEL`:
//! opens CONNS WebSocket subscribers (comma list, e.g. 1000,5000,10000) on
//! one topic, measures the server's RSS per idle connection, then for each
//! payload size and each delivery level (events/s delivered in total, e.g.
//! 50000,100000,200000) publishes at level/CONNS events/s for SECS seconds
//! and reports delivered events/s, publish-to-receive p50/p99 and drops.
//! Prints markdown table rows.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use futures::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("ceiling") => rt.block_on(ceiling(args[2].parse()?)),
        Some("load") => rt.block_on(load(&args[2..])),
        _ => {
            eprintln!(
                "usage: rt-bench ceiling PORT | load WS HTTP TOKEN PID CONNS LEVELS SIZES SECS LABEL"
            );
            std::process::exit(2)
        }
    }
}

// ---------------------------------------------------------------- ceiling

async fn ceiling(port: u16) -> anyhow::Result<()> {
    use axum::extract::ws::{Message as AMsg, Utf8Bytes, WebSocketUpgrade};
    use axum::routing::{get, post};
    let (tx, _) = tokio::sync::broadcast::channel::<Utf8Bytes>(4096);
    let seq = Arc::new(AtomicU64::new(0));
    let ws_tx = tx.clone();
    let app = axum::Router::new()
        .route(
            "/api/v1/realtime/ws",
            get(move |up: WebSocketUpgrade| {
                let tx = ws_tx.clone();
                async move {
                    up.read_buffer_size(4096)
                        .write_buffer_size(16 * 1024)
                        .on_upgrade(move |socket| async move {
                            let (mut sink, mut stream) = socket.split();
                            // auth, then subscribe: answer both like Sen does.
                            let _ = stream.next().await;
                            let _ = sink.send(AMsg::Text(r#"{"type":"ready"}"#.into())).await;
                            let _ = stream.next().await;
                            let mut rx = tx.subscribe();
                            let _ = sink
                                .send(AMsg::Text(r#"{"type":"subscribed"}"#.into()))
                                .await;
                            tokio::spawn(async move { while stream.next().await.is_some() {} });
                            loop {
                                match rx.recv().await {
                                    Ok(f) => {
                                        if sink.send(AMsg::Text(f)).await.is_err() {
                                            return;
                                        }
                                    }
                                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                                    Err(_) => return,
                                }
                            }
                        })
                }
            }),
        )
        .route(
            "/api/v1/chaos/publish",
            post(move |body: axum::body::Bytes| {
                let tx = tx.clone();
                let seq = seq.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let id = seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let frame = format!(
                        r#"{{"type":"event","topic":{},"id":"{id}","name":{},"data":{}}}"#,
                        v["topic"], v["name"], v["data"]
                    );
                    let _ = tx.send(frame.into());
                    axum::Json(serde_json::json!({"id": id.to_string()}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

// ---------------------------------------------------------------- load

fn number_after(s: &str, key: &str) -> Option<u64> {
    let i = s.find(key)? + key.len();
    let digits: &str = &s[i..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

struct Samples {
    /// (step, latency µs, receipt time µs since the epoch)
    lat: Vec<(u16, u32, u64)>,
    closed_by_server: bool,
}

async fn subscriber(
    url: String,
    token: String,
    topic: String,
    ready: Arc<AtomicU64>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Samples {
    let mut out = Samples {
        lat: Vec::new(),
        closed_by_server: false,
    };
    let permit = gate.acquire().await.unwrap();
    // tungstenite zero-fills its whole read buffer (128 KiB by default)
    // before every read, including the one that finds the socket empty:
    // with 10k clients that memset was over half of the load client's CPU,
    // on the cores the server under test shares. 4 KiB, as the server uses.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok((mut ws, _)) =
        tokio_tungstenite::connect_async_with_config(&url, Some(config), false).await
    else {
        return out;
    };
    let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
    let sub = serde_json::json!({"type": "subscribe", "topic": topic}).to_string();
    if ws.send(Message::Text(auth.into())).await.is_err() {
        return out;
    }
    let _ = ws.next().await;
    if ws.send(Message::Text(sub.into())).await.is_err() {
        return out;
    }
    let _ = ws.next().await;
    drop(permit);
    ready.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let (Some(s), Some(at)) = (number_after(&t, "\"s\":"), number_after(&t, "\"t\":")) {
                        let now = now_us();
                        let lat = now.saturating_sub(at).min(u32::MAX as u64) as u32;
                        out.lat.push((s as u16, lat, now));
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    out.closed_by_server = true;
                    return out;
                }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return out;
            }
        }
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn load(a: &[String]) -> anyhow::Result<()> {
    let (ws_base, http_base, token) = (&a[0], &a[1], &a[2]);
    let pid: u32 = a[3].parse()?;
    let list = |s: &str| -> Vec<u64> { s.split(',').filter_map(|x| x.parse().ok()).collect() };
    let (conns, levels, sizes) = (list(&a[4]), list(&a[5]), list(&a[6]));
    let secs: u64 = a[7].parse()?;
    let label = &a[8];
    let client = reqwest::Client::builder().no_proxy().build()?;
    // RSS is measured against the server's size before the first round, so
    // memory an earlier round left with the allocator is charged, not hidden.
    let before = rss_kb(pid);
    for (round, &n) in conns.iter().enumerate() {
        let topic = format!("chaos:bench{round}");
        let ready = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(128));
        let (stop_tx, stop_rx) = watch::channel(false);
        let url = format!("{ws_base}/api/v1/realtime/ws");
        let mut tasks = Vec::with_capacity(n as usize);
        let started = Instant::now();
        for _ in 0..n {
            tasks.push(tokio::spawn(subscriber(
                url.clone(),
                token.clone(),
                topic.clone(),
                ready.clone(),
                gate.clone(),
                stop_rx.clone(),
            )));
        }
        while ready.load(Ordering::Relaxed) < n {
            if started.elapsed() > Duration::from_secs(120) {
                eprintln!("only {} of {n} connected", ready.load(Ordering::Relaxed));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let connected = ready.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kb(pid);
        let per_conn = (after.saturating_sub(before)) as f64 / connected.max(1) as f64;
        println!(
            "| {label} | {n} | idle | connected {connected} in {:.1} s | RSS +{:.1} MB = **{per_conn:.1} KB/conn** | | | |",
            started.elapsed().as_secs_f64(),
            (after.saturating_sub(before)) as f64 / 1024.0
        );
        let mut plan = Vec::new(); // (step, size, level, published, start µs)
        let mut step: u16 = 0;
        for &size in &sizes {
            let pad = "x".repeat(size.saturating_sub(60) as usize);
            for &level in &levels {
                step += 1;
                let rate = (level as f64 / connected.max(1) as f64).max(0.2);
                let every = Duration::from_secs_f64(1.0 / rate);
                let mut tick = tokio::time::interval(every);
                let end = Instant::now() + Duration::from_secs(secs);
                let step_start = now_us();
                let sent = Arc::new(AtomicU64::new(0));
                let mut inflight = Vec::new();
                while Instant::now() < end {
                    tick.tick().await;
                    let body = serde_json::json!({
                        "topic": topic, "name": "n",
                        "data": {"s": step, "t": now_us(), "p": pad},
                    });
                    let req = client
                        .post(format!("{http_base}/api/v1/chaos/publish"))
                        .bearer_auth(token)
                        .json(&body);
                    let sent = sent.clone();
                    inflight.push(tokio::spawn(async move {
                        if let Ok(r) = req.send().await
                            && r.status().is_success()
                        {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                for t in inflight {
                    let _ = t.await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                plan.push((step, size, level, sent.load(Ordering::Relaxed), step_start));
            }
        }
        let _ = stop_tx.send(true);
        let mut per_step: std::collections::HashMap<u16, (Vec<u32>, u64)> = Default::default();
        let mut dropped_conns = 0;
        for t in tasks {
            if let Ok(s) = t.await {
                if s.closed_by_server {
                    dropped_conns += 1;
                }
                for (st, l, at) in s.lat {
                    let e = per_step.entry(st).or_default();
                    e.0.push(l);
                    e.1 = e.1.max(at);
                }
            }
        }
        for (st, size, level, published, start) in plan {
            let (mut lat, last) = per_step.remove(&st).unwrap_or_default();
            lat.sort_unstable();
            let expected = published * connected;
            let got = lat.len() as u64;
            // Delivered rate over the time it really took: from the first
            // publish to the last receipt (a backlog stretches it).
            let span = (last.saturating_sub(start) as f64 / 1e6).max(secs as f64);
            println!(
                "| {label} | {n} | {size} B | {level}/s ({published} published) | {:.0} | {:.1} | {:.1} | {} |",
                got as f64 / span,
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                expected.saturating_sub(got),
            );
        }
        if dropped_conns > 0 {
            println!(
                "| {label} | {n} | | {dropped_conns} connections closed by the server | | | | |"
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}
