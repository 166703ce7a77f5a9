//! Real WebSocket (tokio-tungstenite) and SSE (reqwest streaming) clients
//! for the realtime tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket client.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection attempt or a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// A close frame with this code.
    Closed(u16),
    /// The TCP connection ended without a close frame.
    Dropped,
}

/// Connects to `ws://{addr}/api/v1/realtime/ws` with extra headers; the
/// HTTP status when the handshake is refused.
pub async fn connect(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = format!("ws://{addr}/api/v1/realtime/ws")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((inner, _)) => Ok(Ws { inner }),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Connects and authenticates with a first `auth` frame.
pub async fn connect_token(addr: std::net::SocketAddr, token: &str) -> Ws {
    let mut ws = connect(addr, &[]).await.unwrap();
    ws.send(json!({"type": "auth", "token": token})).await;
    let ready = ws.next().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws
}

impl Ws {
    /// Sends a JSON frame.
    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, s: &str) {
        self.inner.send(Message::Text(s.into())).await.unwrap();
    }

    /// The next JSON frame (pings skipped); panics on close or timeout.
    pub async fn next(&mut self) -> Value {
        match self.next_or_end(WAIT).await {
            Ok(v) => v,
            Err(e) => panic!("expected a frame, connection ended: {e:?}"),
        }
    }

    /// The next JSON frame, or how the connection ended.
    pub async fn next_or_end(&mut self, wait: Duration) -> Result<Value, End> {
        loop {
            let msg = tokio::time::timeout(wait, self.inner.next())
                .await
                .expect("no frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(Some(f)))) => return Err(End::Closed(u16::from(f.code))),
                Some(Ok(Message::Close(None))) => {
                    return Err(End::Closed(u16::from(CloseCode::Status)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(End::Dropped),
            }
        }
    }

    /// Reads until the connection ends; returns how, and the frames seen.
    pub async fn until_end(&mut self, wait: Duration) -> (End, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            match self.next_or_end(wait).await {
                Ok(v) => seen.push(v),
                Err(e) => return (e, seen),
            }
        }
    }

    /// Asserts no text frame arrives within `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => panic!("unexpected frame {t}"),
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// Subscribes and waits for the confirmation (or returns the error frame).
    pub async fn subscribe(&mut self, topic: &str, since: Option<&str>) -> Value {
        let mut frame = json!({"type": "subscribe", "topic": topic});
        if let Some(s) = since {
            frame["since"] = json!(s);
        }
        self.send(frame).await;
        self.next().await
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: Value,
}

/// A Server-Sent Events stream.
pub struct Sse {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Sse {
    /// Opens `/api/v1/realtime/sse?topics=…`; the status and problem body when refused.
    pub async fn open(
        client: &reqwest::Client,
        base: &str,
        topics: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Result<Sse, (u16, Value)> {
        let mut req = client
            .get(format!(
                "{base}/api/v1/realtime/sse?topics={}",
                url::form_urlencoded::byte_serialize(topics.as_bytes()).collect::<String>()
            ))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.unwrap();
        if r.status() != 200 {
            let status = r.status().as_u16();
            return Err((status, r.json().await.unwrap_or(Value::Null)));
        }
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Ok(Sse {
            stream: r.bytes_stream().boxed(),
            buf: String::new(),
        })
    }

    /// The next event with data (comments skipped); None when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent {
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("no SSE data in time")
            {
                Some(Ok(b)) => self.buf.push_str(std::str::from_utf8(&b).unwrap()),
                _ => return None,
            }
        }
    }
}

/// Publishes through the probe app; returns the event id.
pub async fn publish(
    app_url: &str,
    client: &reqwest::Client,
    token: &str,
    topic: &str,
    name: &str,
    data: Value,
) -> String {
    let r = client
        .post(format!("{app_url}/api/v1/probe/publish"))
        .bearer_auth(token)
        .json(&json!({"topic": topic, "name": name, "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}
