//! What the realtime app keeps per process: the hub and the topic
//! declarations of every app.

use std::sync::Arc;

use sen_core::realtime::TopicDecl;
use sen_core::{AppContext, AppError};

use crate::hub::Hub;

/// The realtime app's shared state (a `ctx` extension).
pub struct RealtimeState {
    /// Local fan-out.
    pub hub: Arc<Hub>,
    /// Every app's topic declarations, in registration order.
    pub topics: Vec<TopicDecl>,
}

impl RealtimeState {
    /// The state installed at start-up.
    pub fn of(ctx: &AppContext) -> Result<Arc<Self>, AppError> {
        ctx.extension::<RealtimeState>().ok_or_else(|| {
            AppError::unavailable("realtime", anyhow::anyhow!("realtime app not started"))
        })
    }
}
