//! `GET /api/v1/realtime/sse?topics=a,b`: the same events as the WebSocket
//! for one-way clients. Each event's `id:` line is the stream's cursor —
//! `topic=seq` for every topic with a position, comma-separated — so the
//! browser's automatic `Last-Event-ID` resumes every topic exactly where it
//! stopped, even when events of several topics interleave.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use futures::Stream;
use http::{HeaderMap, StatusCode};
use sen_core::extract::Query;
use sen_core::{AppContext, AppError, Principal};
use serde::Deserialize;

use crate::access;
use crate::hub::{ConnInfo, Hub, Kill, Out, Sink};
use crate::state::RealtimeState;
use crate::topic;

/// Query of the SSE endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SseQuery {
    /// Comma-separated topics.
    pub topics: String,
}

/// Parses a cursor (`topic=seq,…`); unknown or malformed parts are ignored.
pub fn parse_cursor(s: &str) -> BTreeMap<String, i64> {
    s.split(',')
        .filter_map(|part| {
            let (t, n) = part.trim().split_once('=')?;
            let n: i64 = n.parse().ok().filter(|n| *n >= 0)?;
            topic::valid_topic(t).then(|| (t.to_string(), n))
        })
        .collect()
}

fn render_cursor(c: &BTreeMap<String, i64>) -> String {
    let mut out = String::new();
    for (t, n) in c {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(t);
        out.push('=');
        out.push_str(&n.to_string());
    }
    out
}

/// Streams events of `topics` as Server-Sent Events.
#[utoipa::path(get, path = "/sse", tag = "realtime", params(SseQuery), responses(
    (status = 200, description = "An event stream", content_type = "text/event-stream"),
    (status = 401, description = "Not signed in", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "A topic may not be read", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Bad topic list", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Too many connections for this user", body = sen_core::error::Problem, content_type = "application/problem+json"),
))]
pub async fn sse(
    State(ctx): State<AppContext>,
    principal: Principal,
    headers: HeaderMap,
    Query(query): Query<SseQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    let state = RealtimeState::of(&ctx)?;
    let config = ctx.config();
    let mut topics: Vec<String> = Vec::new();
    for t in query.topics.split(',').map(str::trim) {
        if !topics.iter().any(|x| x == t) {
            topics.push(t.to_string());
        }
    }
    if topics.is_empty() || topics.len() > config.realtime_max_subscriptions {
        return Err(
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_topics").with_detail(format!(
                "Give 1 to {} comma-separated topics.",
                config.realtime_max_subscriptions
            )),
        );
    }
    let mut feeds = Vec::new();
    for t in &topics {
        match access::check(&ctx, &state.topics, &principal, t).await {
            Ok(decl) => feeds.push(decl.feed.clone()),
            Err(r) => {
                let status = match r {
                    access::Refusal::InvalidTopic => StatusCode::UNPROCESSABLE_ENTITY,
                    access::Refusal::UnknownTopic => StatusCode::NOT_FOUND,
                    access::Refusal::Forbidden => StatusCode::FORBIDDEN,
                    access::Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                };
                return Err(
                    AppError::new(status, r.code()).with_detail(format!("{t}: {}", r.detail()))
                );
            }
        }
    }
    let since = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(parse_cursor)
        .unwrap_or_default();
    let (sink, rx) = Sink::new(config.realtime_send_queue, true);
    let info = ConnInfo {
        user_id: principal.user_id.clone(),
        session_id: principal.session_id.clone(),
        api_key_id: principal.api_key_id.clone(),
        kill: sink.kill().clone(),
    };
    let conn = state
        .hub
        .register(info, config.realtime_max_connections_per_user)
        .ok_or_else(|| {
            AppError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_connections")
                .with_detail("Close another realtime connection first.")
        })?;
    let mut guard = Guard {
        hub: state.hub.clone(),
        conn,
        topics: HashSet::new(),
    };
    let mut cursor = BTreeMap::new();
    for (t, feed) in topics.iter().zip(&feeds) {
        let name: Arc<str> = Arc::from(t.as_str());
        let from = since.get(t).copied();
        if let Some(n) = from {
            cursor.insert(t.clone(), n);
        }
        state
            .hub
            .subscribe(&ctx, conn, &sink, &name, from)
            .await
            .map_err(|e| AppError::unavailable("realtime", e))?;
        if let Some(feed) = feed {
            state.hub.feed(&ctx, &name, feed);
        }
        guard.topics.insert(name);
    }
    let kill = sink.kill().clone();
    // The SSE stream skips the `subscribed` frames the hub queues: the
    // 200 response already says the subscriptions hold.
    let stream = Stream_ {
        rx,
        kill,
        stopping: ctx.stopping(),
        cursor,
        _guard: guard,
        _sink: sink,
    }
    .into_stream();
    let beat = Duration::from_secs(config.realtime_heartbeat_secs.min(15));
    Ok(Sse::new(stream).keep_alive(axum::response::sse::KeepAlive::new().interval(beat)))
}

/// Unsubscribes and unregisters when the stream is dropped.
struct Guard {
    hub: Arc<Hub>,
    conn: u64,
    topics: HashSet<Arc<str>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.hub.unregister(self.conn, &self.topics);
    }
}

struct Stream_ {
    rx: tokio::sync::mpsc::Receiver<Out>,
    kill: Arc<Kill>,
    stopping: tokio::sync::watch::Receiver<bool>,
    cursor: BTreeMap<String, i64>,
    _guard: Guard,
    _sink: Sink,
}

impl Stream_ {
    fn into_stream(self) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        futures::stream::unfold(self, |mut s| async move {
            loop {
                let out = tokio::select! {
                    biased;
                    _ = s.kill.wait() => return None,
                    _ = crate::stopped(&mut s.stopping) => return None,
                    out = s.rx.recv() => out?,
                };
                match out {
                    Out::Ping => continue,
                    // Confirmations (the 200 already said so) are skipped;
                    // feed snapshots go out without moving the cursor.
                    Out::Text { pos: None, frame } => {
                        if frame.as_str().starts_with(r#"{"type":"event""#) {
                            return Some((Ok(SseEvent::default().data(frame.as_str())), s));
                        }
                        continue;
                    }
                    Out::Text {
                        pos: Some((topic, seq)),
                        frame,
                    } => {
                        s.cursor.insert(topic.to_string(), seq);
                        let ev = SseEvent::default()
                            .id(render_cursor(&s.cursor))
                            .data(frame.as_str());
                        return Some((Ok(ev), s));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_ignore_junk() {
        let c = parse_cursor("user:1=5,post:2=7,bad topic=3,x=-1,y=z");
        assert_eq!(c.len(), 2);
        assert_eq!(render_cursor(&c), "post:2=7,user:1=5");
    }
}
