//! The wire protocol: frames clients send, and the frames the server sends
//! (built as text once per event and shared by every subscriber).

use serde::Deserialize;

/// A frame a WebSocket client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Authenticate with an access token or API key (first frame only).
    Auth {
        /// The token.
        token: String,
    },
    /// Start receiving a topic, optionally replaying events after `since`.
    Subscribe {
        /// The topic.
        topic: String,
        /// The last event id the client saw on this topic.
        #[serde(default, deserialize_with = "event_id")]
        since: Option<i64>,
    },
    /// Stop receiving a topic.
    Unsubscribe {
        /// The topic.
        topic: String,
    },
    /// Application-level keep-alive; answered with `pong`.
    Ping,
}

/// Event ids are sequence numbers; clients may send them as strings (as
/// the server does) or numbers.
fn event_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        N(i64),
        S(String),
    }
    match Option::<Id>::deserialize(d)? {
        None => Ok(None),
        Some(Id::N(n)) if n >= 0 => Ok(Some(n)),
        Some(Id::S(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("since must be an event id")),
        Some(Id::N(_)) => Err(serde::de::Error::custom("since must be an event id")),
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `{"type":"event","topic","id","name","data"}`; `data` is JSON text.
pub fn event_frame(topic: &str, seq: i64, name: &str, data: &str) -> String {
    format!(
        r#"{{"type":"event","topic":{},"id":"{seq}","name":{},"data":{data}}}"#,
        quoted(topic),
        quoted(name)
    )
}

/// A snapshot from a topic feed: not logged, so its id is `snapshot`.
pub fn snapshot_frame(topic: &str, name: &str, data: &str) -> String {
    format!(
        r#"{{"type":"event","topic":{},"id":"snapshot","name":{},"data":{data}}}"#,
        quoted(topic),
        quoted(name)
    )
}

/// The log no longer covers what the client missed: it should reload the
/// topic's state; `id` is where the stream continues from.
pub fn reset_frame(topic: &str, head: i64) -> String {
    format!(
        r#"{{"type":"reset","topic":{},"id":"{head}"}}"#,
        quoted(topic)
    )
}

/// Subscription confirmed.
pub fn subscribed_frame(topic: &str) -> String {
    format!(r#"{{"type":"subscribed","topic":{}}}"#, quoted(topic))
}

/// Subscription ended at the client's request.
pub fn unsubscribed_frame(topic: &str) -> String {
    format!(r#"{{"type":"unsubscribed","topic":{}}}"#, quoted(topic))
}

/// Something about a client frame was wrong; the connection stays open.
pub fn error_frame(topic: Option<&str>, code: &str, detail: &str) -> String {
    match topic {
        Some(t) => format!(
            r#"{{"type":"error","topic":{},"code":{},"detail":{}}}"#,
            quoted(t),
            quoted(code),
            quoted(detail)
        ),
        None => format!(
            r#"{{"type":"error","code":{},"detail":{}}}"#,
            quoted(code),
            quoted(detail)
        ),
    }
}

/// Answer to a client `ping`.
pub const PONG: &str = r#"{"type":"pong"}"#;

/// Authentication by first frame succeeded.
pub fn ready_frame(user_id: &str) -> String {
    format!(r#"{{"type":"ready","user_id":{}}}"#, quoted(user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_json() {
        let v: serde_json::Value =
            serde_json::from_str(&event_frame("post:1", 7, "n\"x", r#"{"a":1}"#)).unwrap();
        assert_eq!(v["id"], "7");
        assert_eq!(v["name"], "n\"x");
        assert_eq!(v["data"]["a"], 1);
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","topic":"a","since":"12"}"#).unwrap();
        assert!(matches!(
            f,
            ClientFrame::Subscribe {
                since: Some(12),
                ..
            }
        ));
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","topic":"a","x":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","topic":"a","since":-1}"#)
                .is_err()
        );
    }
}
