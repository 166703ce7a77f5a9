//! `ctx.realtime().publish(…)`: validate, append to the replay log, deliver
//! locally, then tell the other instances.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::StatusCode;
use sen_core::realtime::Publisher;
use sen_core::{AppContext, AppError};

use crate::bus::{self, Transport};
use crate::hub::{Event, Hub};
use crate::{log, protocol, topic};

/// Largest event payload (serialised JSON).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The publisher `sen-realtime` installs.
pub struct SenPublisher {
    pub(crate) hub: Arc<Hub>,
}

impl Publisher for SenPublisher {
    fn publish<'a>(
        &'a self,
        ctx: &'a AppContext,
        topic: &'a str,
        name: &'a str,
        data: serde_json::Value,
    ) -> BoxFuture<'a, Result<String, AppError>> {
        Box::pin(async move {
            if !topic::valid_topic(topic) {
                return Err(
                    AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_topic")
                        .with_detail(format!("{topic:?} is not a valid topic name.")),
                );
            }
            if !topic::valid_name(name) {
                return Err(
                    AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event_name")
                        .with_detail(format!("{name:?} is not a valid event name.")),
                );
            }
            let data = data.to_string();
            if data.len() > MAX_EVENT_BYTES {
                return Err(
                    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "event_too_large").with_detail(
                        format!("Events are limited to {MAX_EVENT_BYTES} bytes of JSON."),
                    ),
                );
            }
            let origin = ctx.instance_id().to_string();
            let notify = |seq: i64| bus::notify_payload(&origin, seq, topic, name, &data);
            let use_notify = Transport::of(ctx) == Transport::Postgres;
            let seq = log::append(
                ctx,
                topic,
                name,
                &data,
                if use_notify { Some(&notify) } else { None },
            )
            .await?;
            metrics::counter!("realtime_events_published_total").increment(1);
            self.hub.deliver(
                ctx,
                Event {
                    topic: Arc::from(topic),
                    seq,
                    frame: protocol::event_frame(topic, seq, name, &data).into(),
                },
            );
            bus::broadcast(ctx, seq, topic, name, &data).await;
            Ok(seq.to_string())
        })
    }
}
