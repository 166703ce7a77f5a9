//! `AppContext`: what every handler, service and background task of an
//! instance shares: configuration, database, cache, pub/sub, and who this
//! instance is. Cheap to clone (one `Arc`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::Apps;
use crate::cache::{MemoryCache, RedisCache, SharedCache};
use crate::config::Config;
use crate::db::{Db, DbOptions};
use crate::migrate;
use crate::pubsub::{LocalPubSub, RedisPubSub, SharedPubSub};
use crate::redis_link::RedisLink;
use crate::role::Role;

/// Shared state of one Sen process.
#[derive(Clone)]
pub struct AppContext {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Db,
    cache: SharedCache,
    pubsub: SharedPubSub,
    redis: Option<RedisLink>,
    roles: Vec<Role>,
    apps: Apps,
    jobs: crate::jobs::Jobs,
    events: crate::jobs::Events,
    mail: crate::mail::Mails,
    activity: Arc<crate::activity::Activity>,
    instance_id: Uuid,
    started_at: DateTime<Utc>,
    system_info: std::sync::OnceLock<bytes::Bytes>,
    rbac: crate::rbac::Rbac,
    limiter: crate::ratelimit::RateLimiter,
    authenticator: std::sync::OnceLock<Arc<dyn crate::principal::Authenticator>>,
    publisher: std::sync::OnceLock<Arc<dyn crate::realtime::Publisher>>,
    extensions: std::sync::RwLock<Extensions>,
    stopping: tokio::sync::watch::Sender<bool>,
    started: tokio::sync::OnceCell<()>,
}

/// Shared state platform crates attach at start-up, one value per type.
type Extensions = std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>;

/// The result of one readiness check.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Check {
    /// Whether the dependency is usable.
    pub ok: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn pass() -> Self {
        Self {
            ok: true,
            detail: None,
        }
    }

    fn fail(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: Some(detail.into()),
        }
    }
}

/// What `/readyz` reports.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// The database answers.
    pub database: Check,
    /// Redis answers (absent when not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<Check>,
    /// No migration of this binary is pending.
    pub schema: Check,
}

impl Readiness {
    /// All checks pass.
    pub fn is_ready(&self) -> bool {
        self.database.ok && self.schema.ok && self.redis.as_ref().is_none_or(|c| c.ok)
    }
}

impl AppContext {
    /// Connects to the database and, when configured, Redis. Fails with one
    /// readable line when either cannot be reached.
    pub async fn connect(config: Config, roles: Vec<Role>, apps: Apps) -> anyhow::Result<Self> {
        let db = Db::connect(
            config.database_url.expose(),
            &DbOptions {
                max_connections: config.db_max_connections,
                connect_timeout: Duration::from_millis(config.db_connect_timeout_ms),
                statement_timeout: Duration::from_millis(config.db_statement_timeout_ms),
            },
        )
        .await?;
        let db_backend = db.backend();
        let rbac = crate::rbac::Rbac::from_apps(&apps)?;
        let (cache, pubsub, redis): (SharedCache, SharedPubSub, Option<RedisLink>) =
            match &config.redis_url {
                Some(url) => {
                    let link = RedisLink::connect(url.expose(), &config.redis_prefix).await?;
                    (
                        Arc::new(RedisCache::new(link.clone())),
                        Arc::new(RedisPubSub::new(link.clone())),
                        Some(link),
                    )
                }
                None => (
                    Arc::new(MemoryCache::new(config.cache_capacity_bytes)),
                    Arc::new(LocalPubSub::default()),
                    None,
                ),
            };
        let limiter = match &redis {
            Some(link) => crate::ratelimit::RateLimiter::redis(link.clone()),
            None => crate::ratelimit::RateLimiter::memory(),
        };
        let jobs = crate::jobs::Jobs::new(db_backend);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                db,
                cache,
                pubsub,
                redis,
                roles,
                apps,
                mail: crate::mail::Mails::new(db_backend, jobs.clone()),
                activity: Arc::default(),
                jobs,
                events: crate::jobs::Events::new(db_backend),
                instance_id: Uuid::now_v7(),
                started_at: Utc::now(),
                system_info: std::sync::OnceLock::new(),
                rbac,
                limiter,
                authenticator: std::sync::OnceLock::new(),
                publisher: std::sync::OnceLock::new(),
                extensions: std::sync::RwLock::new(Extensions::new()),
                stopping: tokio::sync::watch::Sender::new(false),
                started: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The cache (in-process or Redis).
    pub fn cache(&self) -> &SharedCache {
        &self.inner.cache
    }

    /// Pub/sub (in-process or Redis).
    pub fn pubsub(&self) -> &SharedPubSub {
        &self.inner.pubsub
    }

    /// The Redis link, when Redis is configured.
    pub fn redis(&self) -> Option<&RedisLink> {
        self.inner.redis.as_ref()
    }

    /// The roles this process plays.
    pub fn roles(&self) -> &[Role] {
        &self.inner.roles
    }

    /// Enqueues background jobs inside the caller's transaction.
    pub fn jobs(&self) -> &crate::jobs::Jobs {
        &self.inner.jobs
    }

    /// Publishes domain events inside the caller's transaction.
    pub fn events(&self) -> &crate::jobs::Events {
        &self.inner.events
    }

    /// Queues mail inside the caller's transaction (delivered by `sen-mail`).
    pub fn mail(&self) -> &crate::mail::Mails {
        &self.inner.mail
    }

    /// This process's activity counters (the dashboard charts).
    pub fn activity(&self) -> &Arc<crate::activity::Activity> {
        &self.inner.activity
    }

    /// The registered apps.
    pub fn apps(&self) -> &Apps {
        &self.inner.apps
    }

    /// Rate limits (in-process, or shared through Redis).
    pub fn rate_limits(&self) -> &crate::ratelimit::RateLimiter {
        &self.inner.limiter
    }

    /// Every declared permission and role.
    pub fn rbac(&self) -> &crate::rbac::Rbac {
        &self.inner.rbac
    }

    /// Installs the authenticator (once, at wiring time; `sen-auth` supplies it).
    /// Returns false when one was already installed.
    pub fn set_authenticator(&self, a: Arc<dyn crate::principal::Authenticator>) -> bool {
        self.inner.authenticator.set(a).is_ok()
    }

    /// The installed authenticator; without one every request is anonymous.
    pub fn authenticator(&self) -> Option<&Arc<dyn crate::principal::Authenticator>> {
        self.inner.authenticator.get()
    }

    /// Marks the process as shutting down, so long-lived work (realtime
    /// connections, streams) ends instead of holding the shutdown open.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Watches for shutdown (`true` once it has begun).
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// Installs the realtime publisher (once; `sen-realtime` supplies it).
    /// Returns false when one was already installed.
    pub fn set_publisher(&self, p: Arc<dyn crate::realtime::Publisher>) -> bool {
        self.inner.publisher.set(p).is_ok()
    }

    /// Publishes realtime events (a no-op when no realtime app is installed).
    pub fn realtime(&self) -> crate::realtime::Realtime {
        crate::realtime::Realtime::new(self.clone(), self.inner.publisher.get().cloned())
    }

    /// Attaches shared state of type `T` (replacing any earlier one).
    pub fn insert_extension<T: std::any::Any + Send + Sync>(&self, value: Arc<T>) {
        let mut map = match self.inner.extensions.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.insert(std::any::TypeId::of::<T>(), value);
    }

    /// The shared state of type `T`, if a crate attached one.
    pub fn extension<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let map = match self.inner.extensions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.get(&std::any::TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }

    /// Runs every app's `start` hook once per process (later calls wait for
    /// and return the first outcome's success; a failure is reported once).
    pub async fn start_apps(&self) -> anyhow::Result<()> {
        self.inner
            .started
            .get_or_try_init(|| async {
                for app in self.apps().iter() {
                    app.start(self).await.map_err(|e| {
                        anyhow::anyhow!("app `{}` failed to start: {e:#}", app.name())
                    })?;
                }
                Ok::<(), anyhow::Error>(())
            })
            .await
            .map(|_| ())
    }

    /// This process's id (UUIDv7), unique across restarts.
    pub fn instance_id(&self) -> Uuid {
        self.inner.instance_id
    }

    /// The serialised `GET /api/v1/system/info` body, built on first use.
    pub(crate) fn system_info_json(&self) -> &std::sync::OnceLock<bytes::Bytes> {
        &self.inner.system_info
    }

    /// When this process started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// Applies pending migrations of every app.
    pub async fn migrate(&self) -> Result<Vec<String>, sea_orm::DbErr> {
        migrate::up(self.db(), &self.apps().migrations()).await
    }

    /// Applied, pending and unknown migrations.
    pub async fn migration_status(&self) -> Result<migrate::MigrationStatus, sea_orm::DbErr> {
        migrate::status(self.db(), &self.apps().migrations()).await
    }

    /// Checks the database, Redis and the schema (bounded to ~2 s).
    pub async fn readiness(&self) -> Readiness {
        let timeout = Duration::from_secs(2);
        let database = match tokio::time::timeout(timeout, self.db().ping()).await {
            Ok(Ok(())) => Check::pass(),
            Ok(Err(e)) => Check::fail(format!("database error: {}", first_line(&e.to_string()))),
            Err(_) => Check::fail("database did not answer within 2 s"),
        };
        let schema = if !database.ok {
            Check::fail("unknown while the database is unreachable")
        } else {
            match tokio::time::timeout(timeout, self.migration_status()).await {
                Ok(Ok(s)) if s.pending.is_empty() => Check::pass(),
                Ok(Ok(s)) => Check::fail(format!(
                    "{} migration(s) pending: run `sen migrate`",
                    s.pending.len()
                )),
                Ok(Err(e)) => Check::fail(format!(
                    "cannot read migrations: {}",
                    first_line(&e.to_string())
                )),
                Err(_) => Check::fail("migration status did not answer within 2 s"),
            }
        };
        let redis = match self.redis() {
            None => None,
            Some(link) => Some(match tokio::time::timeout(timeout, link.ping()).await {
                Ok(Ok(())) => Check::pass(),
                Ok(Err(e)) => Check::fail(format!("redis error: {}", first_line(&e.to_string()))),
                Err(_) => Check::fail("redis did not answer within 2 s"),
            }),
        };
        Readiness {
            database,
            redis,
            schema,
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
