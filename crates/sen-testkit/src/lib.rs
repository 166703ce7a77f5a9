//! Test kit: throwaway PostgreSQL and Redis servers, an SMTP sink and an
//! S3-compatible server on 127.0.0.1 (started
//! once per test process, or taken from `SEN_TEST_DATABASE_URL` and
//! `SEN_TEST_REDIS_URL`), a fresh database per test, and a real Sen server
//! on a free port with an HTTP client pointed at it.
//!
//! Invariants: nothing here mocks a dependency; every server listens on a
//! real loopback socket (PostgreSQL and Redis as their own processes, the
//! SMTP and S3 servers inside the test process) and stops with the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test kit fails tests by panicking

pub mod browser;
mod guard;
pub mod postgres;
pub mod redis;
pub mod s3;
pub mod smtp;
mod test_app;

pub use sen_core::Backend;
pub use test_app::{TestApp, TestAppBuilder, assert_problem};

/// Generates one `#[tokio::test]` per backend for each listed async test
/// function taking a [`TestApp`]: the same body runs on SQLite and PostgreSQL.
///
/// ```text
/// async fn unknown_path_is_404(app: TestApp) { ... }
/// sen_testkit::both_backends!(spawn_app; unknown_path_is_404);
/// ```
/// `spawn_app` is an async fn `(Backend) -> TestApp` in the calling module.
#[macro_export]
macro_rules! both_backends {
    ($spawn:ident; $($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::$spawn($crate::Backend::Sqlite).await).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::$spawn($crate::Backend::Postgres).await).await
                }
            )+
        }
    };
}

/// Turns on log output for a test run when `SEN_TEST_LOG` is set (to a
/// `RUST_LOG`-style filter); quiet otherwise.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("SEN_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Kills process `pid` when this test process exits, so a failing test
/// never leaves a server it started running.
pub fn kill_on_exit(pid: u32) {
    guard::on_exit(&format!("kill -9 {pid} 2>/dev/null"));
}

/// A free TCP port on 127.0.0.1 (free when asked; bind it promptly).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
