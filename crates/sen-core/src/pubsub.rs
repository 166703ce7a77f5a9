//! `PubSub`: fire-and-forget messages on named channels. In-process
//! (`tokio::sync::broadcast`) on the embedded default; Redis when
//! `redis_url` is set, so a message published on one instance reaches
//! subscribers on every instance. Delivery is best-effort: durable delivery
//! is the job queue's business, not this one's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use tokio::sync::broadcast;

use crate::error::AppError;
use crate::redis_link::RedisLink;

/// How many messages a slow subscriber may fall behind before it lags.
const CHANNEL_CAPACITY: usize = 1024;

/// Why a publish or subscribe failed.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// The backing server cannot be reached; the client should get 503.
    #[error("pub/sub backend unavailable: {0}")]
    Unavailable(String),
}

impl From<PubSubError> for AppError {
    fn from(e: PubSubError) -> Self {
        AppError::unavailable("pub/sub", e)
    }
}

/// What a subscriber gets instead of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind and `n` messages were dropped for it.
    #[error("subscriber lagged; {0} messages dropped")]
    Lagged(u64),
    /// The pub/sub system shut down.
    #[error("pub/sub closed")]
    Closed,
}

/// Publish/subscribe across the instances of one deployment.
#[async_trait]
pub trait PubSub: Send + Sync {
    /// Sends `payload` to every current subscriber of `channel`.
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), PubSubError>;
    /// Starts receiving messages published on `channel` from now on.
    async fn subscribe(&self, channel: &str) -> Result<Subscription, PubSubError>;
    /// `local` or `redis`.
    fn kind(&self) -> &'static str;
}

/// The pub/sub an instance uses.
pub type SharedPubSub = Arc<dyn PubSub>;

/// The local fan-out table: channel name to broadcast sender.
#[derive(Default)]
pub(crate) struct Routes {
    channels: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Bytes>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins `channel`; true when it is new here (so Redis must subscribe).
    fn join(&self, channel: &str) -> (broadcast::Receiver<Bytes>, bool) {
        let mut map = self.lock();
        match map.get(channel) {
            Some(tx) => (tx.subscribe(), false),
            None => {
                let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
                map.insert(channel.to_string(), tx);
                (rx, true)
            }
        }
    }

    pub(crate) fn deliver(&self, channel: &str, payload: Bytes) {
        if let Some(tx) = self.lock().get(channel) {
            let _ = tx.send(payload);
        }
    }

    /// Forgets `channel` if nobody listens any more; true when forgotten.
    fn prune(&self, channel: &str) -> bool {
        let mut map = self.lock();
        match map.get(channel) {
            Some(tx) if tx.receiver_count() == 0 => {
                map.remove(channel);
                true
            }
            _ => false,
        }
    }

    fn forget(&self, channel: &str) {
        self.lock().remove(channel);
    }
}

/// A stream of messages on one channel; dropping it unsubscribes.
pub struct Subscription {
    rx: broadcast::Receiver<Bytes>,
    channel: String,
    on_drop: Option<Box<dyn FnOnce(String) + Send + Sync>>,
}

impl Subscription {
    /// The next message, or why there is none.
    pub async fn recv(&mut self) -> Result<Bytes, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The channel this subscription listens to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            // The receiver must be gone before the route is pruned.
            let (_, rx) = broadcast::channel(1);
            drop(std::mem::replace(&mut self.rx, rx));
            f(std::mem::take(&mut self.channel));
        }
    }
}

/// In-process pub/sub: one broadcast channel per name.
#[derive(Default, Clone)]
pub struct LocalPubSub {
    routes: Arc<Routes>,
}

#[async_trait]
impl PubSub for LocalPubSub {
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), PubSubError> {
        self.routes.deliver(channel, payload);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, PubSubError> {
        let (rx, _) = self.routes.join(channel);
        let routes = self.routes.clone();
        Ok(Subscription {
            rx,
            channel: channel.to_string(),
            on_drop: Some(Box::new(move |ch| {
                routes.prune(&ch);
            })),
        })
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Redis pub/sub: one SUBSCRIBE per channel per instance, fanned out locally.
#[derive(Clone)]
pub struct RedisPubSub {
    link: RedisLink,
}

impl RedisPubSub {
    /// Pub/sub on `link`.
    pub fn new(link: RedisLink) -> Self {
        Self { link }
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), PubSubError> {
        self.link
            .conn()
            .publish::<_, _, ()>(self.link.key("ps", channel), payload.as_ref())
            .await
            .map_err(|e| PubSubError::Unavailable(e.to_string()))
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, PubSubError> {
        let _guard = self.link.subscription_lock().await;
        let routes = self.link.routes().clone();
        let (rx, is_new) = routes.join(channel);
        if is_new
            && let Err(e) = self
                .link
                .conn()
                .subscribe(self.link.key("ps", channel))
                .await
        {
            routes.forget(channel);
            return Err(PubSubError::Unavailable(e.to_string()));
        }
        let link = self.link.clone();
        Ok(Subscription {
            rx,
            channel: channel.to_string(),
            on_drop: Some(Box::new(move |ch| {
                let Ok(handle) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                handle.spawn(async move {
                    let _guard = link.subscription_lock().await;
                    if link.routes().prune(&ch) {
                        let name = format!("{}ps:{ch}", link.prefix());
                        if let Err(e) = link.conn().unsubscribe(name).await {
                            tracing::debug!(channel = %ch, error = %e, "unsubscribe failed");
                        }
                    }
                });
            })),
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_fan_out_and_prune() {
        let ps = LocalPubSub::default();
        let mut a = ps.subscribe("room").await.unwrap();
        let mut b = ps.subscribe("room").await.unwrap();
        let mut other = ps.subscribe("elsewhere").await.unwrap();
        ps.publish("room", Bytes::from_static(b"hi")).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), Bytes::from_static(b"hi"));
        assert_eq!(b.recv().await.unwrap(), Bytes::from_static(b"hi"));
        ps.publish("elsewhere", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(other.recv().await.unwrap(), Bytes::from_static(b"x"));
        drop(a);
        drop(b);
        assert!(
            !ps.routes.lock().contains_key("room"),
            "channel without subscribers is pruned"
        );
        assert!(ps.routes.lock().contains_key("elsewhere"));
    }

    #[tokio::test]
    async fn slow_subscriber_lags_instead_of_growing() {
        let ps = LocalPubSub::default();
        let mut slow = ps.subscribe("c").await.unwrap();
        for i in 0..(CHANNEL_CAPACITY + 10) {
            ps.publish("c", Bytes::from(i.to_string())).await.unwrap();
        }
        assert_eq!(slow.recv().await, Err(RecvError::Lagged(10)));
    }
}
