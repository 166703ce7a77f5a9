//! Sen's HTTP stack: assembles the router from the registered apps, wraps it
//! in the middleware every request passes (request id, tracing span,
//! metrics, security headers, CORS, compression, body limit, panic guard,
//! REST timeout), and serves it with graceful shutdown. Also owns the
//! OpenAPI document and docs UI, `/healthz`, `/readyz` and `/metrics`.
//!
//! Invariants: every error leaving this stack is problem+json; no panic
//! reaches a client; handlers never see a request without a request id.

pub mod compress;
pub mod edge;
pub mod fallback;
pub mod health;
pub mod instance;
pub mod metrics;
pub mod openapi;
pub mod panic_guard;
pub mod request_id;
pub mod router;
pub mod security_headers;
pub mod serve;
pub mod timeout;

pub use router::build_router;
pub use serve::{serve, shutdown_signal};
