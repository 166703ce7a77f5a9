//! Sen's platform core: configuration, errors as problem+json, the database
//! (SeaORM + raw sqlx, SQLite or PostgreSQL), cache and pub/sub (in-process
//! or Redis), migrations, roles, and the `App` trait every feature plugs into.
//!
//! Invariants: this crate never binds a socket or assembles a router (that
//! is `sen-http`); it never reads configuration from globals (a `Config` is
//! passed explicitly); it never logs a secret (`Secret` redacts itself).

pub mod activity;
pub mod app;
pub mod cache;
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod extract;
pub mod files;
pub mod finish;
mod hot_pool;
mod inline_sqlite;
/// The SQLite driver of [`db::Db::sqlite_read`]'s closures.
pub use rusqlite;
pub mod interactive;
pub mod jobs;
pub mod linger;
pub mod mail;
pub mod migrate;
pub mod principal;
pub mod pubsub;
pub mod ratelimit;
pub mod rbac;
pub mod realtime;
pub mod redis_link;
pub mod request_id;
pub mod resource;
pub mod role;
pub mod routes;
pub mod settings;
pub mod system;

pub use app::{App, Apps};
pub use config::Config;
pub use context::AppContext;
pub use db::{Backend, Db};
pub use error::{AppError, AppResult, FieldError};
pub use principal::{Policy, Principal};
pub use role::Role;
