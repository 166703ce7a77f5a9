//! The local fan-out: which connection listens to which topic, in what
//! order events go out, and who gets closed.
//!
//! Every event (published here or received from another instance) passes
//! through [`Hub::deliver`], which keeps each topic strictly in sequence:
//! duplicates are dropped, and an event that arrives before its
//! predecessor waits while the missing ones are read from the replay log.
//! An event is serialised once and shared by every subscriber; each
//! connection has a bounded queue, and a connection whose queue is full is
//! closed as too slow instead of being allowed to grow memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use sen_core::AppContext;
use sen_core::realtime::{Revocations, TopicFeed};
use tokio::sync::{Notify, mpsc};

use crate::log::{self, Resume};
use crate::protocol;

/// Close code: the client could not keep up.
pub const CLOSE_SLOW: u16 = 4408;
/// Close code: not (or no longer) authenticated.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// Close code: too many connections for this user.
pub const CLOSE_TOO_MANY: u16 = 4429;
/// Close code: the server is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// One event, ready to send.
#[derive(Clone)]
pub struct Event {
    /// Its topic.
    pub topic: Arc<str>,
    /// Its sequence number in the topic.
    pub seq: i64,
    /// The serialised event frame.
    pub frame: Utf8Bytes,
}

/// What a connection's writer sends next.
pub enum Out {
    /// A text frame; `pos` is the topic position it moves the client to
    /// (events and resets), for SSE resume cursors.
    Text {
        /// `(topic, seq)` after this frame.
        pos: Option<(Arc<str>, i64)>,
        /// The frame.
        frame: Utf8Bytes,
    },
    /// A keep-alive.
    Ping,
}

/// Asks a connection to close with a code; the first code wins.
#[derive(Default)]
pub struct Kill {
    code: AtomicU16,
    notify: Notify,
}

impl Kill {
    /// Requests the close.
    pub fn fire(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Resolves with the close code once fired.
    pub async fn wait(&self) -> u16 {
        loop {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

/// Where a connection's frames go.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Out>,
    kill: Arc<Kill>,
    /// Whether frames carry their topic position (SSE cursors need it;
    /// WebSocket clients read the id from the frame, and skipping it saves
    /// a shared reference count per delivery).
    positions: bool,
}

impl Sink {
    /// A sink with a queue of `capacity` frames; returns the reading end.
    pub fn new(capacity: usize, positions: bool) -> (Self, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                tx,
                kill: Arc::new(Kill::default()),
                positions,
            },
            rx,
        )
    }

    /// The connection's close switch.
    pub fn kill(&self) -> &Arc<Kill> {
        &self.kill
    }

    /// Queues a frame; a full queue closes the connection as too slow.
    pub fn offer(&self, out: Out) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("realtime_slow_consumers_total").increment(1);
                self.kill.fire(CLOSE_SLOW);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a text frame that moves no topic position.
    pub fn text(&self, frame: impl Into<Utf8Bytes>) -> bool {
        self.offer(Out::Text {
            pos: None,
            frame: frame.into(),
        })
    }
}

struct Topic {
    /// The last sequence number delivered here.
    head: i64,
    /// A snapshot feed is running for it.
    fed: bool,
    subs: HashMap<u64, Sink>,
    /// Events that arrived ahead of a missing predecessor.
    pending: BTreeMap<i64, Event>,
    /// A gap fill is under way.
    filling: bool,
}

impl Topic {
    fn new(head: i64) -> Self {
        Self {
            head,
            fed: false,
            subs: HashMap::new(),
            pending: BTreeMap::new(),
            filling: false,
        }
    }

    fn send(&mut self, ev: &Event) {
        self.head = ev.seq;
        for sink in self.subs.values() {
            sink.offer(Out::Text {
                pos: sink.positions.then(|| (ev.topic.clone(), ev.seq)),
                frame: ev.frame.clone(),
            });
        }
        metrics::counter!("realtime_deliveries_total").increment(self.subs.len() as u64);
    }

    /// Sends every pending event that is next in line.
    fn drain(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() <= self.head {
                entry.remove();
            } else if *entry.key() == self.head + 1 {
                let ev = entry.remove();
                self.send(&ev);
            } else {
                break;
            }
        }
    }

    fn reset(&mut self, topic: &str, head: i64) {
        self.head = head;
        let frame = Utf8Bytes::from(protocol::reset_frame(topic, head));
        let topic: Arc<str> = Arc::from(topic);
        for sink in self.subs.values() {
            sink.offer(Out::Text {
                pos: Some((topic.clone(), head)),
                frame: frame.clone(),
            });
        }
    }
}

/// Who holds a connection, so revocations can find it.
pub struct ConnInfo {
    /// The user.
    pub user_id: String,
    /// The session behind it, if any.
    pub session_id: Option<String>,
    /// The API key behind it, if any.
    pub api_key_id: Option<String>,
    /// Its close switch.
    pub kill: Arc<Kill>,
}

/// The fan-out of one instance.
#[derive(Default)]
pub struct Hub {
    topics: Mutex<HashMap<Arc<str>, Topic>>,
    conns: Mutex<HashMap<u64, ConnInfo>>,
    per_user: Mutex<HashMap<String, usize>>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// Whether any local connection listens to `topic`.
    pub fn has_topic(&self, topic: &str) -> bool {
        lock(&self.topics).contains_key(topic)
    }

    /// Registers a connection, enforcing the per-user cap; returns its id.
    pub fn register(&self, info: ConnInfo, max_per_user: usize) -> Option<u64> {
        {
            let mut users = lock(&self.per_user);
            let n = users.entry(info.user_id.clone()).or_insert(0);
            if *n >= max_per_user {
                return None;
            }
            *n += 1;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.conns).insert(id, info);
        metrics::gauge!("realtime_connections").increment(1.0);
        Some(id)
    }

    /// Forgets a connection and its subscriptions.
    pub fn unregister(&self, id: u64, topics: &HashSet<Arc<str>>) {
        for t in topics {
            self.unsubscribe(id, t);
        }
        let Some(info) = lock(&self.conns).remove(&id) else {
            return;
        };
        metrics::gauge!("realtime_connections").decrement(1.0);
        let mut users = lock(&self.per_user);
        if let Some(n) = users.get_mut(&info.user_id) {
            *n -= 1;
            if *n == 0 {
                users.remove(&info.user_id);
            }
        }
    }

    /// Live connections on this instance.
    pub fn connections(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Closes every connection that rests on a revoked credential.
    pub fn revoke(&self, r: &Revocations) -> usize {
        let sessions: HashSet<&str> = r.sessions.iter().map(String::as_str).collect();
        let users: HashSet<&str> = r.users.iter().map(String::as_str).collect();
        let keys: HashSet<&str> = r.api_keys.iter().map(String::as_str).collect();
        let mut n = 0;
        for info in lock(&self.conns).values() {
            let hit = users.contains(info.user_id.as_str())
                || info
                    .session_id
                    .as_deref()
                    .is_some_and(|s| sessions.contains(s))
                || info.api_key_id.as_deref().is_some_and(|k| keys.contains(k));
            if hit {
                info.kill.fire(CLOSE_UNAUTHENTICATED);
                n += 1;
            }
        }
        n
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&self, code: u16) {
        for info in lock(&self.conns).values() {
            info.kill.fire(code);
        }
    }

    /// Adds `sink` to `topic`. With `since`, first queues the events after
    /// it from the replay log (or a `reset` frame when the log no longer
    /// covers them), so the client sees every event exactly once, in order.
    pub async fn subscribe(
        self: &Arc<Self>,
        ctx: &AppContext,
        conn: u64,
        sink: &Sink,
        topic: &Arc<str>,
        since: Option<i64>,
    ) -> Result<(), sea_orm::DbErr> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let known = lock(&self.topics).get(topic).map(|t| t.head);
            let head = match known {
                Some(h) => h,
                None => {
                    let h = log::head(ctx, topic).await?;
                    let head = lock(&self.topics)
                        .entry(topic.clone())
                        .or_insert_with(|| Topic::new(h))
                        .head;
                    // An event committed between reading the head and
                    // creating the topic here was not delivered locally:
                    // look once more and fetch it.
                    let now = log::head(ctx, topic).await?;
                    if now > head {
                        self.catch_up(ctx, topic, now);
                        continue;
                    }
                    head
                }
            };
            let plan = match since {
                Some(s) => Some(log::resume(ctx, topic, s, head).await?),
                None => None,
            };
            let mut topics = lock(&self.topics);
            if !topics.contains_key(topic) && attempts < 5 {
                // Dropped meanwhile (its last subscriber left): start over.
                continue;
            }
            let t = topics
                .entry(topic.clone())
                .or_insert_with(|| Topic::new(head));
            if t.head != head && attempts < 5 {
                // Events went out while the log was read: plan again.
                continue;
            }
            sink.text(protocol::subscribed_frame(topic));
            match plan {
                Some(Resume::Events(events)) if t.head == head => {
                    for e in events {
                        sink.offer(Out::Text {
                            pos: Some((topic.clone(), e.seq)),
                            frame: protocol::event_frame(topic, e.seq, &e.name, &e.data).into(),
                        });
                    }
                }
                Some(_) => {
                    sink.offer(Out::Text {
                        pos: Some((topic.clone(), t.head)),
                        frame: protocol::reset_frame(topic, t.head).into(),
                    });
                }
                None => {}
            }
            t.subs.insert(conn, sink.clone());
            metrics::gauge!("realtime_subscriptions").increment(1.0);
            return Ok(());
        }
    }

    /// Removes a connection from a topic.
    pub fn unsubscribe(&self, conn: u64, topic: &str) {
        let mut topics = lock(&self.topics);
        if let Some(t) = topics.get_mut(topic) {
            if t.subs.remove(&conn).is_some() {
                metrics::gauge!("realtime_subscriptions").decrement(1.0);
            }
            if t.subs.is_empty() && !t.filling {
                topics.remove(topic);
            }
        }
    }

    /// Delivers an event to local subscribers, in sequence order.
    pub fn deliver(self: &Arc<Self>, ctx: &AppContext, ev: Event) {
        let mut topics = lock(&self.topics);
        let Some(t) = topics.get_mut(&ev.topic) else {
            return;
        };
        if ev.seq <= t.head {
            return;
        }
        if ev.seq == t.head + 1 {
            t.send(&ev);
            t.drain();
            return;
        }
        let (after, upto) = (t.head, ev.seq - 1);
        let topic = ev.topic.clone();
        t.pending.insert(ev.seq, ev);
        if !t.filling {
            t.filling = true;
            tokio::spawn(self.clone().fill(ctx.clone(), topic, after, upto));
        }
    }

    /// Reads events `after+1..=upto` of `topic` from the log and delivers
    /// them; what the log no longer has is reported to subscribers as a reset.
    async fn fill(self: Arc<Self>, ctx: AppContext, topic: Arc<str>, after: i64, upto: i64) {
        let (mut after, mut upto) = (after, upto);
        loop {
            let found = log::range(&ctx, &topic, after, upto, (upto - after) as u64).await;
            let mut topics = lock(&self.topics);
            let Some(t) = topics.get_mut(&topic) else {
                return;
            };
            // Whether the log had every event asked for.
            let complete = found.as_ref().is_ok_and(|v| v.len() as i64 == upto - after);
            if let Ok(events) = found {
                for e in events {
                    if e.seq == t.head + 1 {
                        let ev = Event {
                            topic: topic.clone(),
                            seq: e.seq,
                            frame: protocol::event_frame(&topic, e.seq, &e.name, &e.data).into(),
                        };
                        t.send(&ev);
                    }
                }
            }
            t.drain();
            match t.pending.keys().next().copied() {
                // A later gap opened while this one was read: read that too.
                Some(first) if complete && first > t.head + 1 && t.head >= upto => {
                    after = t.head;
                    upto = first - 1;
                    continue;
                }
                Some(first) => {
                    // Gone from the log (or unreadable). Say so, never skip silently.
                    tracing::warn!(topic = %topic, from = t.head + 1, to = first - 1, "realtime events missing; subscribers reset");
                    t.reset(&topic, first - 1);
                    t.drain();
                }
                None => {}
            }
            t.filling = false;
            if t.subs.is_empty() {
                topics.remove(&topic);
            }
            return;
        }
    }

    /// Fetches events up to `now` for `topic` from the log, unless a fetch
    /// is already under way.
    fn catch_up(self: &Arc<Self>, ctx: &AppContext, topic: &Arc<str>, now: i64) {
        let mut topics = lock(&self.topics);
        if let Some(t) = topics.get_mut(topic)
            && !t.filling
            && t.head < now
        {
            t.filling = true;
            let after = t.head;
            drop(topics);
            tokio::spawn(self.clone().fill(ctx.clone(), topic.clone(), after, now));
        }
    }

    /// Starts polling `feed` for `topic` unless it already runs here; it
    /// stops by itself when the topic has no local subscriber left.
    pub fn feed(self: &Arc<Self>, ctx: &AppContext, topic: &Arc<str>, feed: &TopicFeed) {
        {
            let mut topics = lock(&self.topics);
            match topics.get_mut(topic) {
                Some(t) if !t.fed => t.fed = true,
                _ => return,
            }
        }
        let (hub, ctx, topic, feed) = (self.clone(), ctx.clone(), topic.clone(), feed.clone());
        tokio::spawn(async move {
            let mut last: Option<serde_json::Value> = None;
            let mut stopping = ctx.stopping();
            loop {
                match (feed.produce)(&ctx).await {
                    Ok(Some(v)) if last.as_ref() != Some(&v) => {
                        let frame = Utf8Bytes::from(protocol::snapshot_frame(
                            &topic,
                            feed.name,
                            &v.to_string(),
                        ));
                        let topics = lock(&hub.topics);
                        let Some(t) = topics.get(&topic) else { return };
                        for sink in t.subs.values() {
                            sink.text(frame.clone());
                        }
                        last = Some(v);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(topic = %topic, error = %e, "topic feed failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(feed.every) => {}
                    _ = crate::stopped(&mut stopping) => return,
                }
                let mut topics = lock(&hub.topics);
                match topics.get_mut(&topic) {
                    Some(t) if !t.subs.is_empty() => {}
                    Some(t) => {
                        t.fed = false;
                        return;
                    }
                    None => return,
                }
            }
        });
    }

    /// After a lost link to other instances: catches every local topic up
    /// with the log, so events published meanwhile are not missed.
    pub async fn resync(self: &Arc<Self>, ctx: &AppContext) {
        let local: Vec<(Arc<str>, i64)> = lock(&self.topics)
            .iter()
            .map(|(k, t)| (k.clone(), t.head))
            .collect();
        for (topic, head) in local {
            let Ok(now) = log::head(ctx, &topic).await else {
                return;
            };
            if now > head {
                self.catch_up(ctx, &topic, now);
            }
        }
    }
}
