//! HTTP handlers of the identity app, grouped by path.

pub mod admin;
pub mod auth;
pub mod me;
pub mod wellknown;
