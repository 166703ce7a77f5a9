//! Prometheus metrics: `http_requests_total{method,route,status}`, the
//! `http_request_duration_seconds` histogram with fixed buckets, and the
//! database pool gauges, served at `/metrics`.
//!
//! The `metrics` facade has one global recorder per process; it is installed
//! once and shared, so several routers in one process (tests) report into
//! the same registry.

use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHashMap;
use sen_core::AppContext;

/// Latency buckets in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use.
/// `None` when another recorder was installed first (then `/metrics` is empty).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .ok()?
                .install_recorder();
            match recorder {
                Ok(h) => {
                    describe();
                    start_upkeep(h.clone());
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until it is folded into the
/// buckets, which only `render` or `run_upkeep` does: a process nobody
/// scrapes would grow by every request's and job's latency sample for
/// ever. A plain thread (not a task) so it runs whatever runtime, or none,
/// installed the recorder.
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("sen-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms fold only when scraped");
    }
}

fn describe() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status."
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency."
    );
    metrics::describe_gauge!(
        "db_pool_connections",
        "Database pool connections by state (in_use, idle)."
    );
    metrics::describe_gauge!(
        "db_pool_max_connections",
        "Configured database connections, main and hot pools together."
    );
}

/// The metric handles of one (method, route, status) triple.
#[derive(Clone)]
struct Handles {
    requests: metrics::Counter,
    latency: metrics::Histogram,
}

/// (method, status) → route template → handles; looked up by `&str` so
/// a hit allocates nothing, and hashed with FxHash: the keys are our own
/// route templates, not attacker-chosen, so SipHash's flood resistance
/// buys nothing on this per-request path.
type HandleMap = FxHashMap<(Method, StatusCode), FxHashMap<Box<str>, Handles>>;

/// Handles already registered, so the hot path hashes one small key
/// instead of allocating label strings and building a registry key per
/// request. Bounded: routes are templates, methods and statuses are few.
static HANDLES: OnceLock<RwLock<HandleMap>> = OnceLock::new();

/// Records one request; the route is the matched template
/// (`/api/v1/posts/{id}`), never the raw path, so label cardinality stays
/// bounded.
pub fn record(method: &Method, route: Option<&MatchedPath>, status: StatusCode, elapsed: Duration) {
    let map = HANDLES.get_or_init(Default::default);
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let key = (method.clone(), status);
    let cached = map
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .and_then(|routes| routes.get(route))
        .cloned();
    let handles = match cached {
        Some(h) => h,
        None => {
            let labels = [
                ("method", method.as_str().to_owned()),
                ("route", route.to_owned()),
                ("status", status.as_str().to_owned()),
            ];
            let h = Handles {
                requests: metrics::counter!("http_requests_total", &labels),
                latency: metrics::histogram!("http_request_duration_seconds", &labels),
            };
            map.write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default()
                .insert(route.into(), h.clone());
            h
        }
    };
    handles.requests.increment(1);
    handles.latency.record(elapsed.as_secs_f64());
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render(State(ctx): State<AppContext>) -> Response {
    let (in_use, idle, max) = ctx.db().pool_stats();
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_max_connections").set(f64::from(max));
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
