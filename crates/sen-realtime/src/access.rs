//! Who may subscribe to what: the topic declarations of every app, matched
//! against a topic name, and their checks run for the caller.

use sen_core::realtime::TopicDecl;
use sen_core::{AppContext, Principal};

use crate::topic;

/// Why a subscription was refused (the `code` of the `error` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed topic name.
    InvalidTopic,
    /// No app declares a topic like it.
    UnknownTopic,
    /// The caller may not read it.
    Forbidden,
    /// The check could not be made now.
    Unavailable,
}

impl Refusal {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidTopic => "invalid_topic",
            Self::UnknownTopic => "unknown_topic",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
        }
    }

    /// A sentence for the client.
    pub fn detail(self) -> &'static str {
        match self {
            Self::InvalidTopic => {
                "Topics are ':'-separated segments of letters, digits, '_', '-' and '.'."
            }
            Self::UnknownTopic => "No app publishes a topic like this.",
            Self::Forbidden => "You may not subscribe to this topic.",
            Self::Unavailable => "The subscription could not be checked; try again.",
        }
    }
}

/// Runs the first matching declaration's check for `principal`; returns
/// the declaration on success.
pub async fn check<'d>(
    ctx: &AppContext,
    decls: &'d [TopicDecl],
    principal: &Principal,
    name: &str,
) -> Result<&'d TopicDecl, Refusal> {
    if !topic::valid_topic(name) {
        return Err(Refusal::InvalidTopic);
    }
    let Some((decl, params)) = decls.iter().find_map(|d| d.matches(name).map(|p| (d, p))) else {
        return Err(Refusal::UnknownTopic);
    };
    match (decl.check)(ctx, principal, &params).await {
        Ok(true) => Ok(decl),
        Ok(false) => Err(Refusal::Forbidden),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "topic check failed");
            Err(Refusal::Unavailable)
        }
    }
}
