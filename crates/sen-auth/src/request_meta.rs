//! Facts about the request that auth records: client address and agent.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use http::request::Parts;

/// The client address from the socket. (`X-Forwarded-For` is honoured only
/// once trusted proxies are configurable; until then it is ignored, so a
/// client cannot choose its own address.)
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string())
}

/// The `User-Agent`, cut to 256 characters.
pub fn user_agent(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

/// Client address and agent, extracted together by handlers.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Client address.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Meta {
            ip: client_ip(parts),
            user_agent: user_agent(parts),
        })
    }
}
