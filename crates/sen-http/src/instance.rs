//! Running one Sen process: the heartbeat that tells the deployment which
//! roles run where, the web server when this process has the web role, a
//! small ops server (`/healthz`, `/readyz`, `/metrics`) for worker-only
//! processes when configured, and a clean exit on shutdown.

use std::future::Future;

use axum::Router;
use axum::routing::get;
use sen_core::{AppContext, Role};
use tokio::net::TcpListener;

use crate::{build_router, fallback, health, metrics, serve};

/// Runs the web role (or the ops endpoints) and the heartbeat of `ctx`
/// until `shutdown` resolves; background roles run beside it and stop
/// after it returns, then [`finish`] ends the process. `listener` serves the
/// full API (web role) or the ops endpoints (worker-only processes).
pub async fn run(
    ctx: AppContext,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    ctx.start_apps().await?;
    if let Err(e) = sen_core::system::beat(&ctx).await {
        tracing::warn!(error = %e, "first instance heartbeat failed");
    }
    let heartbeat = tokio::spawn(sen_core::system::run_heartbeat(ctx.clone()));
    let grace = ctx.config().shutdown_grace();
    let result = match listener {
        Some(listener) => {
            let router = if ctx.roles().contains(&Role::Web) {
                build_router(ctx.clone())?.0
            } else {
                ops_router(ctx.clone())
            };
            serve(listener, router, shutdown, grace)
                .await
                .map_err(anyhow::Error::from)
        }
        None => {
            shutdown.await;
            Ok(())
        }
    };
    heartbeat.abort();
    result
}

/// Leaves the instance table and closes the database: the last step of a
/// process, after every role has stopped.
pub async fn finish(ctx: &AppContext) {
    sen_core::system::leave(ctx).await;
    ctx.db().close().await;
    tracing::info!("stopped");
}

/// Health and metrics only, for processes without the web role.
pub fn ops_router(ctx: AppContext) -> Router {
    metrics::handle();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .fallback(fallback::not_found)
        .with_state(ctx)
}
