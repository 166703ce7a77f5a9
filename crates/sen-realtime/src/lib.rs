//! Sen's realtime: WebSocket and Server-Sent Events carrying events of
//! authorised topics, a replay log for resume, fan-out across instances
//! (Redis pub/sub, else PostgreSQL NOTIFY), and per-user notifications.
//!
//! Invariants: a topic's events reach a subscriber in sequence order, each
//! once, or the subscriber is told with a `reset` frame that it missed
//! some; no connection may make the server buffer more than its bounded
//! queue (too slow: closed with 4408); every subscription is checked
//! against the declaring app's rule; a connection lives no longer than the
//! session or API key it was opened with.

pub mod access;
pub mod bus;
pub mod hub;
pub mod log;
pub mod notifications;
pub mod protocol;
pub mod publisher;
pub mod schema;
pub mod sse;
pub mod state;
pub mod topic;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use sen_core::jobs::{Job, JobContext, JobError, JobHandler, NewJob, Schedule};
use sen_core::migrate::Migration;
use sen_core::realtime::TopicDecl;
use sen_core::{App, AppContext, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use notifications::{NewNotification, Notification, notify};
pub use state::RealtimeState;

/// The built-in `realtime` app.
pub struct RealtimeApp;

impl App for RealtimeApp {
    fn name(&self) -> &'static str {
        "realtime"
    }

    fn title(&self) -> &'static str {
        "Realtime"
    }

    fn description(&self) -> &'static str {
        "Live events over WebSocket and SSE, and users' notifications."
    }

    fn icon(&self) -> &'static str {
        "radio"
    }

    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        vec![Box::new(schema::CreateRealtimeTables)]
    }

    fn routes(&self) -> sen_core::routes::Routes {
        sen_core::routes::Routes::new()
            .routes(routes!(ws::websocket))
            .routes(routes!(sse::sse))
    }

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .routes(routes!(notifications::list))
            .routes(routes!(notifications::read_all))
            .routes(routes!(notifications::read_one))
    }

    fn topics(&self) -> Vec<TopicDecl> {
        vec![TopicDecl::owner("user:{id}", "id")]
    }

    fn jobs(&self) -> Vec<JobHandler> {
        vec![JobHandler::of::<PruneLog>()]
    }

    fn schedules(&self) -> Vec<Schedule> {
        match NewJob::of(&PruneLog) {
            Ok(job) => vec![Schedule::new("realtime.prune", "0 */5 * * * *", job)],
            Err(_) => Vec::new(),
        }
    }

    fn start<'a>(
        &'a self,
        ctx: &'a AppContext,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let topics: Vec<TopicDecl> = ctx.apps().iter().flat_map(|a| a.topics()).collect();
            let hub = Arc::new(hub::Hub::default());
            ctx.insert_extension(Arc::new(RealtimeState {
                hub: hub.clone(),
                topics,
            }));
            ctx.set_publisher(Arc::new(publisher::SenPublisher { hub: hub.clone() }));
            if ctx.roles().contains(&Role::Web) || ctx.roles().is_empty() {
                tokio::spawn(bus::run(ctx.clone(), hub.clone()));
                tokio::spawn(sweep_revocations(ctx.clone(), hub));
            }
            Ok(())
        })
    }
}

/// Resolves once shutdown has begun (the watch guard is not held).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Closes connections whose session, user or API key was revoked, however
/// it was revoked (logout, another device, an admin, token reuse).
async fn sweep_revocations(ctx: AppContext, hub: Arc<hub::Hub>) {
    let every = Duration::from_millis(ctx.config().realtime_revocation_check_ms);
    // Clocks of instances differ a little; look back further than one period.
    let skew_ms = 5_000;
    let mut stopping = ctx.stopping();
    let mut since = sen_core::clock::now().timestamp_millis();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = crate::stopped(&mut stopping) => return,
        }
        let started = sen_core::clock::now().timestamp_millis();
        if hub.connections() == 0 {
            since = started;
            continue;
        }
        let Some(auth) = ctx.authenticator() else {
            continue;
        };
        match auth.revoked_since(&ctx, since - skew_ms).await {
            Ok(r) => {
                let n = hub.revoke(&r);
                if n > 0 {
                    tracing::info!(
                        connections = n,
                        "closed realtime connections of revoked sessions"
                    );
                }
                since = started;
            }
            Err(e) => tracing::warn!(error = %e, "cannot check for revoked sessions"),
        }
    }
}

/// The scheduled clean-up of the replay log (events older than
/// `realtime_replay_age_secs`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PruneLog;

impl Job for PruneLog {
    const KIND: &'static str = "realtime.prune";

    async fn run(self, job: JobContext) -> Result<(), JobError> {
        let n = log::prune(&job.app).await.map_err(JobError::retry)?;
        tracing::debug!(deleted = n, "realtime log pruned");
        Ok(())
    }
}
