//! `GET /api/v1/realtime/ws`: many topic subscriptions over one WebSocket.
//!
//! The handshake checks `Origin` and takes a session cookie or an
//! `Authorization` header; without either, the first frame must be
//! `{"type":"auth","token":…}` within 5 s (tokens never travel in the URL).
//! A reader (this task) handles client frames, heartbeats and close
//! requests; a writer task drains the connection's bounded queue, batching
//! whatever is waiting into one flush.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode, header};
use sen_core::{AppContext, AppError, Principal};
use tokio::sync::{mpsc, oneshot};

use crate::access;
use crate::hub::{
    CLOSE_GOING_AWAY, CLOSE_SLOW, CLOSE_TOO_MANY, CLOSE_UNAUTHENTICATED, ConnInfo, Out, Sink,
};
use crate::protocol::{self, ClientFrame};
use crate::state::RealtimeState;

/// How long an unauthenticated socket may wait for its `auth` frame.
const AUTH_WINDOW: Duration = Duration::from_secs(5);
/// Malformed frames tolerated before the connection is closed with 1008.
const MAX_STRIKES: u32 = 3;
/// Frames written per flush at most.
const BATCH: usize = 256;

/// Whether a browser page at `origin` may open realtime connections.
pub fn origin_allowed(ctx: &AppContext, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        // Not a browser: cross-site WebSocket hijacking needs one.
        None => true,
        Some(v) => v.to_str().is_ok_and(|o| {
            o == ctx.config().public_url() || ctx.config().cors_origins.iter().any(|c| c == o)
        }),
    }
}

/// Opens a realtime WebSocket.
#[utoipa::path(get, path = "/ws", tag = "realtime", responses(
    (status = 101, description = "Switching to the WebSocket protocol"),
    (status = 400, description = "Not a WebSocket handshake", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 401, description = "Credentials sent and not valid", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 403, description = "Origin not allowed", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Too many connections for this user", body = sen_core::error::Problem, content_type = "application/problem+json"),
))]
pub async fn websocket(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    principal: Option<Principal>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    if !origin_allowed(&ctx, &headers) {
        return Err(AppError::new(StatusCode::FORBIDDEN, "origin_rejected")
            .with_detail("This origin may not open realtime connections."));
    }
    let upgrade = upgrade.map_err(|e| {
        AppError::new(StatusCode::BAD_REQUEST, "websocket_required").with_detail(e.body_text())
    })?;
    let state = RealtimeState::of(&ctx)?;
    let max_frame = ctx.config().realtime_max_frame_bytes;
    Ok(upgrade
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| run(ctx, state, socket, principal))
        .into_response())
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

fn reason_of(code: u16) -> &'static str {
    match code {
        CLOSE_SLOW => "too slow: send queue full",
        CLOSE_UNAUTHENTICATED => "session ended",
        CLOSE_TOO_MANY => "too many connections",
        CLOSE_GOING_AWAY => "server shutting down",
        1008 => "too many malformed frames",
        _ => "",
    }
}

async fn run(
    ctx: AppContext,
    state: Arc<RealtimeState>,
    socket: WebSocket,
    principal: Option<Principal>,
) {
    let config = ctx.config();
    let (sink_half, mut stream) = socket.split();
    let (sink, rx) = Sink::new(config.realtime_send_queue, false);
    let (close_tx, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(sink_half, rx, close_rx));
    let close = |code: u16| {
        let _ = close_tx.send((close_frame(code, reason_of(code)), code != CLOSE_SLOW));
    };
    let by_frame = principal.is_none();
    let principal = match principal {
        Some(p) => p,
        // Boxed: the authentication future (a database query) must not be
        // part of the state every idle connection keeps.
        None => match Box::pin(first_frame_auth(&ctx, &mut stream)).await {
            Some(p) => p,
            None => {
                close(CLOSE_UNAUTHENTICATED);
                finish(writer).await;
                return;
            }
        },
    };
    let info = ConnInfo {
        user_id: principal.user_id.clone(),
        session_id: principal.session_id.clone(),
        api_key_id: principal.api_key_id.clone(),
        kill: sink.kill().clone(),
    };
    let Some(conn) = state
        .hub
        .register(info, config.realtime_max_connections_per_user)
    else {
        close(CLOSE_TOO_MANY);
        finish(writer).await;
        return;
    };
    if by_frame {
        sink.text(protocol::ready_frame(&principal.user_id));
    }
    let mut session = Session {
        ctx: &ctx,
        state: &state,
        principal: &principal,
        sink: &sink,
        conn,
        topics: HashSet::new(),
        strikes: 0,
    };
    let code = session.serve(&mut stream).await;
    state.hub.unregister(conn, &session.topics);
    close(code);
    finish(writer).await;
}

async fn finish(writer: tokio::task::JoinHandle<()>) {
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(3), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// Waits for `{"type":"auth","token":…}` and authenticates it.
async fn first_frame_auth(
    ctx: &AppContext,
    stream: &mut SplitStream<WebSocket>,
) -> Option<Principal> {
    let frame = tokio::time::timeout(AUTH_WINDOW, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => return Some(t),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()?;
    let Ok(ClientFrame::Auth { token }) = serde_json::from_str::<ClientFrame>(&frame) else {
        return None;
    };
    let (parts, ()) = http::Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .ok()?
        .into_parts();
    let authenticator = ctx.authenticator()?;
    authenticator.authenticate(ctx, &parts).await.ok().flatten()
}

struct Session<'a> {
    ctx: &'a AppContext,
    state: &'a Arc<RealtimeState>,
    principal: &'a Principal,
    sink: &'a Sink,
    conn: u64,
    topics: HashSet<Arc<str>>,
    strikes: u32,
}

impl Session<'_> {
    /// Runs until the connection should end; returns the close code.
    async fn serve(&mut self, stream: &mut SplitStream<WebSocket>) -> u16 {
        let beat = Duration::from_secs(self.ctx.config().realtime_heartbeat_secs);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let mut last_seen = Instant::now();
        let mut stopping = self.ctx.stopping();
        let kill = self.sink.kill().clone();
        loop {
            tokio::select! {
                biased;
                code = kill.wait() => return code,
                _ = crate::stopped(&mut stopping) => return CLOSE_GOING_AWAY,
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() > beat * 2 {
                        return CLOSE_GOING_AWAY;
                    }
                    self.sink.offer(Out::Ping);
                }
                msg = stream.next() => {
                    let Some(Ok(msg)) = msg else { return 1000 };
                    last_seen = Instant::now();
                    match msg {
                        Message::Text(t) => {
                            // Boxed for the same reason: subscribing reads
                            // the replay log, and idle connections should
                            // not carry that future's space.
                            if let Some(code) = Box::pin(self.on_text(&t)).await {
                                return code;
                            }
                        }
                        Message::Binary(_) => {
                            if let Some(code) = self.strike("Frames are JSON text.") {
                                return code;
                            }
                        }
                        Message::Close(_) => return 1000,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
            }
        }
    }

    fn strike(&mut self, detail: &str) -> Option<u16> {
        self.strikes += 1;
        self.sink
            .text(protocol::error_frame(None, "bad_frame", detail));
        (self.strikes >= MAX_STRIKES).then_some(1008)
    }

    async fn on_text(&mut self, text: &str) -> Option<u16> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => return self.strike(&format!("Not a valid frame: {e}")),
        };
        match frame {
            ClientFrame::Ping => {
                self.sink.text(protocol::PONG);
            }
            ClientFrame::Auth { .. } => {
                self.sink.text(protocol::error_frame(
                    None,
                    "already_authenticated",
                    "This connection is already authenticated.",
                ));
            }
            ClientFrame::Unsubscribe { topic } => {
                if let Some(t) = self.topics.take(topic.as_str()) {
                    self.state.hub.unsubscribe(self.conn, &t);
                }
                self.sink.text(protocol::unsubscribed_frame(&topic));
            }
            ClientFrame::Subscribe { topic, since } => self.subscribe(topic, since).await,
        }
        None
    }

    async fn subscribe(&mut self, topic: String, since: Option<i64>) {
        let refuse = |code: &str, detail: &str| {
            self.sink
                .text(protocol::error_frame(Some(&topic), code, detail));
        };
        if self.topics.contains(topic.as_str()) {
            self.sink.text(protocol::subscribed_frame(&topic));
            return;
        }
        if self.topics.len() >= self.ctx.config().realtime_max_subscriptions {
            refuse(
                "too_many_subscriptions",
                "Unsubscribe from a topic before subscribing to another.",
            );
            return;
        }
        let decl = match access::check(self.ctx, &self.state.topics, self.principal, &topic).await {
            Ok(d) => d,
            Err(r) => {
                refuse(r.code(), r.detail());
                return;
            }
        };
        let name: Arc<str> = Arc::from(topic.as_str());
        match self
            .state
            .hub
            .subscribe(self.ctx, self.conn, self.sink, &name, since)
            .await
        {
            Ok(()) => {
                if let Some(feed) = &decl.feed {
                    self.state.hub.feed(self.ctx, &name, feed);
                }
                self.topics.insert(name);
            }
            Err(e) => {
                tracing::warn!(topic, error = %e, "realtime subscribe failed");
                refuse(
                    access::Refusal::Unavailable.code(),
                    access::Refusal::Unavailable.detail(),
                );
            }
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Out>,
    mut close_rx: oneshot::Receiver<(Message, bool)>,
) {
    fn message(out: Out) -> Message {
        match out {
            Out::Text { frame, .. } => Message::Text(frame),
            Out::Ping => Message::Ping(bytes::Bytes::new()),
        }
    }
    loop {
        let first = tokio::select! {
            biased;
            c = &mut close_rx => {
                send_close(&mut sink, &mut rx, c.ok()).await;
                return;
            }
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let closing = tokio::select! {
            biased;
            c = &mut close_rx => Some(c.ok()),
            r = async {
                sink.feed(message(first)).await?;
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(m) => sink.feed(message(m)).await?,
                        Err(_) => break,
                    }
                }
                sink.flush().await
            } => {
                if r.is_err() {
                    return;
                }
                None
            }
        };
        if let Some(c) = closing {
            send_close(&mut sink, &mut rx, c).await;
            return;
        }
    }
}

async fn send_close(
    sink: &mut SplitSink<WebSocket, Message>,
    rx: &mut mpsc::Receiver<Out>,
    close: Option<(Message, bool)>,
) {
    let Some((frame, drain)) = close else { return };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        // A normal close first delivers what was queued (the error frame
        // that explains a 1008, say); a slow consumer's backlog is dropped.
        if drain {
            while let Ok(m) = rx.try_recv() {
                if let Out::Text { frame, .. } = m {
                    sink.feed(Message::Text(frame)).await?;
                }
            }
        }
        sink.send(frame).await
    })
    .await;
}
