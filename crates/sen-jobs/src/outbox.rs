//! The outbox dispatcher: moves committed events from `sen_outbox` into one
//! delivery job per matching subscriber, in one transaction per batch, each
//! delivery enqueued with the once key `event:{event_id}:{subscriber}`.
//! A crash between steps repeats the batch and the once keys absorb the
//! repeat, so every subscriber sees every committed event at least once and
//! no uncommitted event is ever seen.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};
use sen_core::jobs::{
    Event, EventContext, Job, JobContext, JobError, JobOptions, NewJob, Subscriber, db_now,
};
use sen_core::{AppContext, Backend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Events moved per transaction.
const BATCH: i64 = 200;

/// The job that hands one event to one subscriber.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventDelivery {
    /// Outbox id of the event.
    pub event_id: String,
    /// Subscriber name.
    pub subscriber: String,
    /// The event.
    pub event: Event,
}

impl Job for EventDelivery {
    const KIND: &'static str = "sen.event";

    fn options() -> JobOptions {
        JobOptions {
            queue: "default",
            ..JobOptions::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let subscriber = subscribers(&ctx.app)
            .into_iter()
            .find(|s| s.name == self.subscriber);
        let Some(subscriber) = subscriber else {
            return Err(JobError::retry(format!(
                "no subscriber `{}` in this worker",
                self.subscriber
            )));
        };
        subscriber
            .handle(
                EventContext {
                    job: ctx,
                    event_id: self.event_id,
                },
                self.event,
            )
            .await
    }
}

/// Every app's subscribers.
pub fn subscribers(ctx: &AppContext) -> Vec<Subscriber> {
    ctx.apps().iter().flat_map(|a| a.subscribers()).collect()
}

/// Dispatches one batch; returns how many events it moved.
pub async fn dispatch_batch(ctx: &AppContext, subscribers: &[Subscriber]) -> Result<usize, DbErr> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let rows = tx
        .query_all_raw(db.statement(
            &format!(
                "SELECT id, name, payload, aggregate_key FROM sen_outbox WHERE dispatched_at IS NULL ORDER BY id LIMIT ?{lock}"
            ),
            [BATCH.into()],
        ))
        .await?;
    let mut jobs = Vec::new();
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("", "id")?;
        let payload: String = row.try_get("", "payload")?;
        let event = Event {
            name: row.try_get("", "name")?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            key: row.try_get("", "aggregate_key")?,
        };
        for s in subscribers.iter().filter(|s| s.matches(&event.name)) {
            let delivery = EventDelivery {
                event_id: id.clone(),
                subscriber: s.name.to_string(),
                event: event.clone(),
            };
            let mut job = NewJob::of(&delivery)
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .once(format!("event:{id}:{}", s.name));
            if let (true, Some(key)) = (s.ordered, &event.key) {
                // Event ids are UUIDv7, so they sort in publish order.
                job = job.ordered(format!("{}:{key}", s.name), id.clone());
            }
            jobs.push(job);
        }
        ids.push(id);
    }
    ctx.jobs().enqueue_many(&tx, jobs).await?;
    let now = db_now(db.backend());
    for id in &ids {
        tx.execute_raw(db.statement(
            &format!("UPDATE sen_outbox SET dispatched_at = {now} WHERE id = ?"),
            [id.clone().into()],
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(ids.len())
}

/// Runs the dispatcher until `stopped`: drains, then waits for a NOTIFY
/// (PostgreSQL) or the poll interval.
pub async fn run(ctx: AppContext, poll: Duration, mut stopped: watch::Receiver<bool>) {
    let subs = subscribers(&ctx);
    let mut listener = match ctx.db().pool() {
        sen_core::db::Pool::Postgres(pool) => {
            match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(mut l) => l.listen("sen_outbox").await.ok().map(|_| l),
                Err(_) => None,
            }
        }
        sen_core::db::Pool::Sqlite(_) => None,
    };
    loop {
        match dispatch_batch(&ctx, &subs).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dispatching outbox events failed; retrying"),
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => {
                    if l.recv().await.is_err() {
                        tokio::time::sleep(poll).await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stopped.changed() => return,
        }
    }
}
