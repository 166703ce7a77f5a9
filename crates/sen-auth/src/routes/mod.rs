//! HTTP handlers of the identity app, grouped by path.

pub mod admin;
pub mod admin_credentials;
pub mod admin_sessions;
pub mod api_keys;
pub mod auth;
pub mod me;
pub mod password_reset;
pub mod wellknown;
