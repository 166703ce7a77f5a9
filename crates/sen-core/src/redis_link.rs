//! `RedisLink`: the one multiplexed RESP3 connection an instance keeps to
//! Redis, shared by the cache and pub/sub.
//!
//! The `redis` crate's `ConnectionManager` reconnects with backoff and, with
//! RESP3 push messages, resubscribes to every channel after a reconnect. A
//! watchdog pings once a second so that a Redis that comes back is noticed
//! (and subscriptions restored) even when no request touches Redis, and so
//! that readiness reports the current state without a round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::pubsub::Routes;

/// How long one Redis command may take before it counts as a failure.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A live, self-healing Redis connection.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    prefix: String,
    up: AtomicBool,
    /// Bumped on every SUBSCRIBE confirmation, so users of pub/sub can
    /// tell that subscriptions were re-established after a reconnect
    /// (and messages published meanwhile were lost to pub/sub).
    subscriptions: std::sync::atomic::AtomicU64,
    routes: Arc<Routes>,
    /// Serialises SUBSCRIBE/UNSUBSCRIBE so a channel is never dropped while
    /// a new subscriber is joining it.
    subscription_ops: tokio::sync::Mutex<()>,
}

impl RedisLink {
    /// Connects (failing if Redis cannot be reached now) and starts the
    /// message router and the watchdog.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let mut info = url
            .into_connection_info()
            .context("redis_url is not a valid Redis URL")?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        info = info.set_redis_settings(settings);
        let target = info.addr().to_string();
        let client = redis::Client::open(info).context("redis_url is not a valid Redis URL")?;
        let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut manager = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to Redis at {target}: timed out"))?
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {target}: {e}"))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut manager)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {target}: {e}"))?;
        let inner = Arc::new(Inner {
            manager,
            prefix: prefix.to_string(),
            up: AtomicBool::new(true),
            subscriptions: std::sync::atomic::AtomicU64::new(0),
            routes: Arc::new(Routes::default()),
            subscription_ops: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(route_messages(Arc::downgrade(&inner), push_rx));
        tokio::spawn(watchdog(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// A handle for commands (cheap to clone; multiplexed).
    pub fn conn(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    /// Namespaces a key or channel.
    pub fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.inner.prefix)
    }

    /// Whether the last ping (at most a second ago) succeeded.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Pings now, with a short timeout.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        debug_assert_eq!(pong, "PONG");
        Ok(())
    }

    /// How many SUBSCRIBE confirmations have arrived (grows after every
    /// reconnect, when subscriptions are restored).
    pub fn subscription_generation(&self) -> u64 {
        self.inner.subscriptions.load(Ordering::Relaxed)
    }

    pub(crate) fn routes(&self) -> &Arc<Routes> {
        &self.inner.routes
    }

    pub(crate) async fn subscription_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.subscription_ops.lock().await
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }
}

async fn route_messages(inner: Weak<Inner>, mut rx: UnboundedReceiver<PushInfo>) {
    while let Some(push) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        if push.kind == redis::PushKind::Subscribe {
            inner.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(msg) = redis::Msg::from_push_info(push) {
            let full = msg.get_channel_name();
            if let Some(channel) = full.strip_prefix(&format!("{}ps:", inner.prefix)) {
                inner.routes.deliver(
                    channel,
                    bytes::Bytes::copy_from_slice(msg.get_payload_bytes()),
                );
            }
        }
    }
}

async fn watchdog(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut conn = inner.manager.clone();
        let ok = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
        let was = inner.up.swap(ok, Ordering::Relaxed);
        if was != ok {
            if ok {
                tracing::info!("redis is reachable again");
            } else {
                tracing::warn!("redis is unreachable; retrying");
            }
        }
    }
}
