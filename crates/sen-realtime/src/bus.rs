//! Carrying events between instances: Redis pub/sub when Redis is
//! configured, else PostgreSQL NOTIFY on PostgreSQL, else nothing (one
//! process). Every instance delivers its own publishes locally at once, so
//! local delivery never waits for (or depends on) the link; messages
//! carry the origin instance so it skips its own echo.
//!
//! Envelope (text, tab-separated, topic and name never contain a tab):
//! `origin \t seq \t topic \t name \t kind \t data`, kind `i` (data inline)
//! or `r` (too big for NOTIFY: read it from the replay log).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sen_core::{AppContext, Backend};

use crate::hub::{Event, Hub};
use crate::{log, protocol};

/// The NOTIFY channel.
pub const PG_CHANNEL: &str = "sen_realtime";
/// The pub/sub channel on Redis.
pub const REDIS_CHANNEL: &str = "realtime";
/// NOTIFY payloads must stay under 8000 bytes.
const NOTIFY_MAX: usize = 7900;

/// How events leave this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One process: nothing to carry.
    Local,
    /// Redis pub/sub.
    Redis,
    /// PostgreSQL LISTEN/NOTIFY.
    Postgres,
}

impl Transport {
    /// The transport `ctx`'s configuration implies.
    pub fn of(ctx: &AppContext) -> Self {
        if ctx.redis().is_some() {
            Self::Redis
        } else if ctx.db().backend() == Backend::Postgres {
            Self::Postgres
        } else {
            Self::Local
        }
    }
}

/// Builds the envelope of an event.
pub fn envelope(
    origin: &str,
    seq: i64,
    topic: &str,
    name: &str,
    data: &str,
    limit: usize,
) -> String {
    let head = format!("{origin}\t{seq}\t{topic}\t{name}\t");
    if head.len() + 2 + data.len() <= limit {
        format!("{head}i\t{data}")
    } else {
        format!("{head}r\t")
    }
}

/// The NOTIFY payload of an event.
pub fn notify_payload(origin: &str, seq: i64, topic: &str, name: &str, data: &str) -> String {
    envelope(origin, seq, topic, name, data, NOTIFY_MAX)
}

struct Parsed<'a> {
    origin: &'a str,
    seq: i64,
    topic: &'a str,
    name: &'a str,
    inline: Option<&'a str>,
}

fn parse(s: &str) -> Option<Parsed<'_>> {
    let mut it = s.splitn(6, '\t');
    let origin = it.next()?;
    let seq = it.next()?.parse().ok()?;
    let topic = it.next()?;
    let name = it.next()?;
    let kind = it.next()?;
    let data = it.next()?;
    Some(Parsed {
        origin,
        seq,
        topic,
        name,
        inline: (kind == "i").then_some(data),
    })
}

/// Hands a message from another instance to the hub.
async fn ingest(ctx: &AppContext, hub: &Arc<Hub>, me: &str, msg: &str) {
    let Some(p) = parse(msg) else {
        tracing::debug!("malformed realtime envelope ignored");
        return;
    };
    if p.origin == me || !hub.has_topic(p.topic) {
        return;
    }
    let frame = match p.inline {
        Some(data) => protocol::event_frame(p.topic, p.seq, p.name, data),
        None => match log::range(ctx, p.topic, p.seq - 1, p.seq, 1).await {
            Ok(mut v) if !v.is_empty() => {
                let e = v.remove(0);
                protocol::event_frame(p.topic, e.seq, &e.name, &e.data)
            }
            // Gone already: the hub's gap handling reports it.
            _ => return,
        },
    };
    hub.deliver(
        ctx,
        Event {
            topic: Arc::from(p.topic),
            seq: p.seq,
            frame: frame.into(),
        },
    );
}

/// Sends an event to the other instances (Redis only; NOTIFY went out with
/// the commit). A failure is logged: local delivery already happened and
/// remote instances catch up from the log once the link is back.
pub async fn broadcast(ctx: &AppContext, seq: i64, topic: &str, name: &str, data: &str) {
    if Transport::of(ctx) != Transport::Redis {
        return;
    }
    let msg = envelope(
        &ctx.instance_id().to_string(),
        seq,
        topic,
        name,
        data,
        usize::MAX,
    );
    if let Err(e) = ctx.pubsub().publish(REDIS_CHANNEL, Bytes::from(msg)).await {
        metrics::counter!("realtime_broadcast_failures_total").increment(1);
        tracing::warn!(error = %e, topic, "realtime event not sent to other instances");
    }
}

/// Receives other instances' events until shutdown.
pub async fn run(ctx: AppContext, hub: Arc<Hub>) {
    match Transport::of(&ctx) {
        Transport::Local => {}
        Transport::Redis => run_redis(ctx, hub).await,
        Transport::Postgres => run_postgres(ctx, hub).await,
    }
}

async fn run_redis(ctx: AppContext, hub: Arc<Hub>) {
    let me = ctx.instance_id().to_string();
    let mut stopping = ctx.stopping();
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut sub = match ctx.pubsub().subscribe(REDIS_CHANNEL).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "realtime cannot subscribe to Redis; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopping.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        hub.resync(&ctx).await;
        let generation = || {
            ctx.redis()
                .map(|l| l.subscription_generation())
                .unwrap_or(0)
        };
        let mut seen = generation();
        let mut was_up = true;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                m = sub.recv() => match m {
                    Ok(bytes) => {
                        if let Ok(s) = std::str::from_utf8(&bytes) {
                            ingest(&ctx, &hub, &me, s).await;
                        }
                    }
                    // Fell behind: the hub sees the gaps and reads the log.
                    Err(sen_core::pubsub::RecvError::Lagged(_)) => hub.resync(&ctx).await,
                    Err(sen_core::pubsub::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    // Messages sent while Redis was unreachable are lost to
                    // pub/sub but not to the log: catch up when it returns.
                    // Resubscribed (a reconnect, however brief) or back up.
                    let up = ctx.redis().is_some_and(|l| l.is_up());
                    let now = generation();
                    if (up && !was_up) || now != seen {
                        hub.resync(&ctx).await;
                    }
                    was_up = up;
                    seen = now;
                }
                _ = stopping.changed() => return,
            }
        }
    }
}

async fn run_postgres(ctx: AppContext, hub: Arc<Hub>) {
    let sen_core::db::Pool::Postgres(pool) = ctx.db().pool().clone() else {
        return;
    };
    let me = ctx.instance_id().to_string();
    let mut stopping = ctx.stopping();
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(PG_CHANNEL).await?;
            // Anything published while not listening is in the log.
            hub.resync(&ctx).await;
            loop {
                let n = listener.recv().await?;
                ingest(&ctx, &hub, &me, n.payload()).await;
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            r = attempt => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "realtime LISTEN connection lost; reconnecting");
                }
            }
            _ = stopping.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopping.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_fall_back_to_reference() {
        let e = envelope("o", 7, "post:1", "created", "{\"a\":\"x\\ty\"}", 100);
        let p = parse(&e).unwrap();
        assert_eq!(
            (p.origin, p.seq, p.topic, p.name),
            ("o", 7, "post:1", "created")
        );
        assert_eq!(p.inline, Some("{\"a\":\"x\\ty\"}"));
        let big = "x".repeat(200);
        let p2 = envelope("o", 8, "t", "n", &big, 100);
        assert!(p2.len() < 100);
        assert_eq!(parse(&p2).unwrap().inline, None);
    }
}
