//! The floor of login throughput on this machine: a bare axum server that
//! verifies the bench user's password with Sen's own hashing pool and
//! answers, with no database, session, token, cookie or middleware.
//! Whatever it loses against the raw hash rate is the load generator, the
//! kernel and HTTP; whatever Sen loses beyond it is Sen's own per-login
//! work. `bench/auth.sh` runs it beside `sen serve`.
//!
//!   auth-floor <port> <hashing threads>
//!
//! It counts its successful logins in the same `/metrics` line Sen
//! exports, so the bench reads both the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use sen_auth::password::{Hasher, Passwords};

/// The bench user's password (`bench/login.lua`).
const PASSWORD: &str = "a long pass phrase";

#[derive(Clone)]
struct Floor {
    passwords: Passwords,
    hash: Arc<String>,
    logins: Arc<AtomicU64>,
}

async fn login(
    State(f): State<Floor>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let password = body["password"].as_str().unwrap_or_default().to_string();
    let ok = f
        .passwords
        .verify(password, Some(f.hash.as_ref().clone()))
        .await
        .unwrap_or(false);
    if ok {
        f.logins.fetch_add(1, Ordering::Relaxed);
    }
    Json(serde_json::json!({ "ok": ok, "email": body["email"] }))
}

async fn metrics(State(f): State<Floor>) -> String {
    format!(
        "http_requests_total{{route=\"/api/v1/auth/login\",status=\"200\"}} {}\n",
        f.logins.load(Ordering::Relaxed)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .context("usage: auth-floor <port> <hashing threads>")?;
    let threads: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .context("usage: auth-floor <port> <hashing threads>")?;
    let hash = Hasher::new()
        .hash(PASSWORD.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    let floor = Floor {
        // As `sen serve` builds it: spare cores on (the default).
        passwords: Passwords::new(threads, true),
        hash: Arc::new(hash),
        logins: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/metrics", get(metrics))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
