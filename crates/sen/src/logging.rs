//! Log set-up: `tracing` with the level from `RUST_LOG` (default `info`),
//! pretty for `dev`, JSON for `serve`/`worker` or when `SEN_LOG_FORMAT=json`.
//!
//! Every line written while a request is being served carries its request
//! id (`"request_id"` in JSON, `[id]` in front of pretty lines), read from
//! the request's task-local (`sen_core::request_id`). A `tracing` span per
//! request would do the same, but creating it and entering and leaving it
//! on every poll of the request's future cost the HTTP benchmark several
//! per cent of its throughput; the task-local is set once per request
//! anyway (error bodies quote it).

use sen_core::config::LogFormat;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber.
pub fn init(kind: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match kind {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(WithRequestId {
                inner: format()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
                json: true,
            })
            .try_init(),
        LogFormat::Pretty => builder
            .event_format(WithRequestId {
                inner: format().compact(),
                json: false,
            })
            .try_init(),
    };
}

/// Wraps an event format, adding the current request id.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // Ids are plain (see `request_id::is_acceptable`): no JSON escaping needed.
        sen_core::request_id::with_current(|id| {
            let Some(id) = id else {
                return self.inner.format_event(ctx, writer, event);
            };
            if !self.json {
                write!(writer, "[{id}] ")?;
                return self.inner.format_event(ctx, writer, event);
            }
            let mut line = String::with_capacity(256);
            self.inner
                .format_event(ctx, Writer::new(&mut line), event)?;
            match line.strip_prefix('{') {
                Some(rest) => write!(writer, "{{\"request_id\":\"{id}\",{rest}"),
                None => writer.write_str(&line),
            }
        })
    }
}
