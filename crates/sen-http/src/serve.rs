//! Serving with graceful shutdown: on SIGTERM or SIGINT the listener stops
//! accepting, in-flight requests finish (up to the grace period), then the
//! server returns.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // Handlers are installed now, not at the first poll: a SIGTERM that
    // arrives while the process is still starting its roles must start a
    // graceful shutdown, not kill the process with work in flight.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {},
                        _ = i.recv() => {},
                    }
                }
                (Ok(mut t), Err(_)) => {
                    t.recv().await;
                }
                (Err(_), Ok(mut i)) => {
                    i.recv().await;
                }
                (Err(_), Err(_)) => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let deadline = async move {
        let _ = stopping_rx.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        _ = deadline => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; dropping remaining requests");
            Ok(())
        }
    }
}
