//! Domain events through a transactional outbox: `ctx.events().publish(tx,
//! event)` writes the event in the caller's transaction, so an event exists
//! exactly when the change it describes committed. The worker role's
//! dispatcher turns each committed event into one job per matching
//! subscriber.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbErr, Statement};

use super::db_now;
use super::handler::{JobContext, JobError};
use crate::Backend;
use crate::db::placeholders;

/// A domain event.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Dotted name (`post.created`, `order.paid`).
    pub name: String,
    /// The event's data.
    pub payload: serde_json::Value,
    /// The aggregate it belongs to (`post:42`), for consumers that group by it.
    pub key: Option<String>,
}

impl Event {
    /// An event named `name` carrying `payload`.
    pub fn new(name: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            payload,
            key: None,
        }
    }

    /// Sets the aggregate key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// What a subscriber's handler receives besides the event.
#[derive(Clone)]
pub struct EventContext {
    /// The delivery job's context (app state, attempt).
    pub job: JobContext,
    /// The event id: the idempotency key for the handler's effects.
    pub event_id: String,
}

type HandleFn = dyn Fn(EventContext, Event) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>
    + Send
    + Sync;

/// An app's interest in events whose name matches `pattern` (`post.created`
/// exactly, or `post.*` for a prefix, or `*`).
#[derive(Clone)]
pub struct Subscriber {
    /// Unique name; part of each delivery's once key.
    pub name: &'static str,
    /// Which events.
    pub pattern: &'static str,
    /// Deliver one aggregate's events one at a time, in publish order.
    pub ordered: bool,
    handle: Arc<HandleFn>,
}

impl Subscriber {
    /// Subscribes `handle` to `pattern`. Handlers must be idempotent: a
    /// delivery can repeat after a crash; use `ctx.event_id` as the key.
    pub fn new<F, Fut>(name: &'static str, pattern: &'static str, handle: F) -> Self
    where
        F: Fn(EventContext, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        Self {
            name,
            pattern,
            ordered: false,
            handle: Arc::new(move |ctx, ev| Box::pin(handle(ctx, ev))),
        }
    }

    /// Receives the events of one aggregate key (`Event::key`) one at a
    /// time, in the order they were published: a delivery waits until the
    /// previous one of its key has finished (events without a key are not
    /// ordered). A delivery that ends dead stops blocking its successors.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Whether this subscriber wants events named `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.pattern == name,
        }
    }

    /// Runs the handler.
    pub fn handle(
        &self,
        ctx: EventContext,
        event: Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>> {
        (self.handle)(ctx, event)
    }
}

/// Publishes events; `ctx.events()`.
#[derive(Clone)]
pub struct Events {
    backend: Backend,
}

impl Events {
    /// A handle for `backend`.
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// Writes `event` to the outbox on `conn` (pass the caller's
    /// transaction); returns the event id.
    pub async fn publish(
        &self,
        conn: &impl ConnectionTrait,
        event: Event,
    ) -> Result<String, DbErr> {
        let id = uuid::Uuid::now_v7().to_string();
        let db = match self.backend {
            Backend::Sqlite => sea_orm::DbBackend::Sqlite,
            Backend::Postgres => sea_orm::DbBackend::Postgres,
        };
        let sql = format!(
            "INSERT INTO sen_outbox (id, name, payload, aggregate_key, created_at) VALUES (?, ?, ?, ?, {})",
            db_now(self.backend)
        );
        conn.execute_raw(Statement::from_sql_and_values(
            db,
            placeholders(self.backend, &sql),
            [
                id.clone().into(),
                event.name.into(),
                event.payload.to_string().into(),
                event.key.into(),
            ],
        ))
        .await?;
        if self.backend == Backend::Postgres {
            conn.execute_unprepared("NOTIFY sen_outbox").await?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        let exact = Subscriber::new("a", "post.created", |_, _| async { Ok(()) });
        let prefix = Subscriber::new("b", "post.*", |_, _| async { Ok(()) });
        let all = Subscriber::new("c", "*", |_, _| async { Ok(()) });
        assert!(
            exact.matches("post.created")
                && !exact.matches("post.created.v2")
                && !exact.matches("post.deleted")
        );
        assert!(
            prefix.matches("post.created")
                && prefix.matches("post.deleted")
                && !prefix.matches("order.paid")
        );
        assert!(all.matches("order.paid"));
    }
}
