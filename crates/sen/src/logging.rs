//! Log set-up: `tracing` with the level from `RUST_LOG` (default `info`),
//! pretty for `dev`, JSON for `serve`/`worker` or when `SEN_LOG_FORMAT=json`.
//! JSON lines carry the request span, so each names its request id.

use sen_core::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
