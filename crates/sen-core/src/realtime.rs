//! What apps need from realtime without depending on `sen-realtime`: the
//! topics they declare (with who may subscribe), and `ctx.realtime()` to
//! publish an event after a commit. `sen-realtime` installs the publisher
//! at start-up; without it, publishing is a no-op that says so in the log.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::context::AppContext;
use crate::error::AppError;
use crate::principal::Principal;

/// The `{name}` parts a topic filled into its pattern (`post:{id}` with
/// `post:42` gives `id = "42"`).
pub type TopicParams = HashMap<&'static str, String>;

/// Decides whether `principal` may subscribe to a topic with `params`.
pub type TopicCheck = Arc<
    dyn for<'a> Fn(
            &'a AppContext,
            &'a Principal,
            &'a TopicParams,
        ) -> BoxFuture<'a, Result<bool, AppError>>
        + Send
        + Sync,
>;

/// Produces a topic's current state (`None`: nothing to say now).
pub type FeedFn = Arc<
    dyn for<'a> Fn(&'a AppContext) -> BoxFuture<'a, Result<Option<serde_json::Value>, AppError>>
        + Send
        + Sync,
>;

/// A topic whose events are snapshots computed on demand (queue depths, a
/// live count): while an instance has subscribers to it, it polls `produce`
/// every `every` and sends the result to its own subscribers when it
/// changed. Snapshots are not logged (id `"snapshot"`) and never replayed.
#[derive(Clone)]
pub struct TopicFeed {
    /// Poll interval.
    pub every: std::time::Duration,
    /// Event name of the snapshots.
    pub name: &'static str,
    /// The producer.
    pub produce: FeedFn,
}

/// A family of topics an app publishes, and who may subscribe to it.
#[derive(Clone)]
pub struct TopicDecl {
    /// `:`-separated segments; `{name}` matches one segment (`post:{id}`).
    pub pattern: &'static str,
    /// The subscription check.
    pub check: TopicCheck,
    /// Snapshots polled while someone listens (for a fixed topic only).
    pub feed: Option<TopicFeed>,
}

impl std::fmt::Debug for TopicDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicDecl")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl TopicDecl {
    /// A topic family with a custom check (e.g. "may this user read post {id}").
    pub fn new<F>(pattern: &'static str, check: F) -> Self
    where
        F: for<'a> Fn(
                &'a AppContext,
                &'a Principal,
                &'a TopicParams,
            ) -> BoxFuture<'a, Result<bool, AppError>>
            + Send
            + Sync
            + 'static,
    {
        Self {
            pattern,
            check: Arc::new(check),
            feed: None,
        }
    }

    /// Adds snapshots: `produce` polled every `every` while subscribed.
    pub fn with_feed<F>(
        mut self,
        every: std::time::Duration,
        name: &'static str,
        produce: F,
    ) -> Self
    where
        F: for<'a> Fn(&'a AppContext) -> BoxFuture<'a, Result<Option<serde_json::Value>, AppError>>
            + Send
            + Sync
            + 'static,
    {
        self.feed = Some(TopicFeed {
            every,
            name,
            produce: Arc::new(produce),
        });
        self
    }

    /// Only the user whose id fills `{param}` may subscribe (`user:{id}`).
    pub fn owner(pattern: &'static str, param: &'static str) -> Self {
        Self::new(pattern, move |_, p, params| {
            let ok = params.get(param).is_some_and(|id| *id == p.user_id);
            Box::pin(async move { Ok(ok) })
        })
    }

    /// Whoever holds `permission` globally may subscribe (admin topics).
    pub fn permission(pattern: &'static str, permission: &'static str) -> Self {
        Self::new(pattern, move |_, p, _| {
            let ok = p.has(permission);
            Box::pin(async move { Ok(ok) })
        })
    }

    /// Matches `topic` against the pattern, returning the filled parameters.
    pub fn matches(&self, topic: &str) -> Option<TopicParams> {
        let mut params = TopicParams::new();
        let mut want = self.pattern.split(':');
        let mut got = topic.split(':');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return Some(params),
                (Some(w), Some(g)) => {
                    if let Some(name) = w.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                        if g.is_empty() {
                            return None;
                        }
                        params.insert(name, g.to_string());
                    } else if w != g {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Publishes realtime events; `sen-realtime` implements it.
pub trait Publisher: Send + Sync + 'static {
    /// Appends the event to the topic's replay log and delivers it to every
    /// subscriber on every instance; returns the event id.
    fn publish<'a>(
        &'a self,
        ctx: &'a AppContext,
        topic: &'a str,
        name: &'a str,
        data: serde_json::Value,
    ) -> BoxFuture<'a, Result<String, AppError>>;
}

/// `ctx.realtime()`: the installed publisher, or none.
#[derive(Clone)]
pub struct Realtime {
    ctx: AppContext,
    publisher: Option<Arc<dyn Publisher>>,
}

impl Realtime {
    pub(crate) fn new(ctx: AppContext, publisher: Option<Arc<dyn Publisher>>) -> Self {
        Self { ctx, publisher }
    }

    /// Whether a realtime app is installed.
    pub fn is_enabled(&self) -> bool {
        self.publisher.is_some()
    }

    /// Publishes `name` with `data` on `topic` (call after the commit that
    /// made it true). `Ok(None)` when no realtime app is installed.
    pub async fn publish(
        &self,
        topic: &str,
        name: &str,
        data: serde_json::Value,
    ) -> Result<Option<String>, AppError> {
        match &self.publisher {
            Some(p) => p.publish(&self.ctx, topic, name, data).await.map(Some),
            None => {
                tracing::debug!(topic, name, "no realtime app installed; event dropped");
                Ok(None)
            }
        }
    }
}

/// Credentials revoked in a time window, so live connections that rest on
/// them can be closed.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    /// Sessions revoked or expired.
    pub sessions: Vec<String>,
    /// Users disabled.
    pub users: Vec<String>,
    /// API keys revoked or expired.
    pub api_keys: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let d = TopicDecl::permission("post:{id}", "x");
        assert_eq!(d.matches("post:42").unwrap().get("id").unwrap(), "42");
        assert!(d.matches("post").is_none());
        assert!(d.matches("post:").is_none());
        assert!(d.matches("post:1:2").is_none());
        assert!(d.matches("posts:1").is_none());
        let lit = TopicDecl::permission("admin:jobs", "x");
        assert!(lit.matches("admin:jobs").unwrap().is_empty());
        assert!(lit.matches("admin:queues").is_none());
    }
}
