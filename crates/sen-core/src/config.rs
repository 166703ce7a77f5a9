//! Typed configuration: defaults < `sen.toml` < environment.
//!
//! Keys are flat (`port`, `database_url`, …). Every key can be set in `sen.toml`
//! or as `SEN_<KEY>` in the environment; the conventional `DATABASE_URL`,
//! `REDIS_URL` and `PORT` are honoured too, below their `SEN_` forms.
//! A bad value fails at start-up naming the key and where it came from.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// The environment variables the conventional way of deploying (Heroku,
/// Fly, Render, Kubernetes charts) sets, mapped to our keys.
const CONVENTIONAL_ENV: [(&str, &str); 3] = [
    ("DATABASE_URL", "database_url"),
    ("REDIS_URL", "redis_url"),
    ("PORT", "port"),
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal (the `dev` default).
    Pretty,
    /// One JSON object per line (the `serve`/`worker` default).
    Json,
}

/// A value that must never be printed or logged.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to display it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

/// Serialises the real value: figment needs it to carry defaults. Anything
/// shown to people goes through [`Config::redacted`].
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Sen's whole configuration, one typed tree passed explicitly (never a global).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the web server binds (`127.0.0.1` by default; `0.0.0.0` in containers).
    pub host: IpAddr,
    /// Port the web server binds.
    pub port: u16,
    /// `sqlite://path` or `postgres://user:pass@host/db`.
    pub database_url: Secret,
    /// Maximum connections of the main pool. The statements every request
    /// runs keep `max(2, this / 4)` more of their own, so a process opens
    /// at most the sum.
    pub db_max_connections: u32,
    /// How long to wait for a database connection before failing, in milliseconds.
    pub db_connect_timeout_ms: u64,
    /// PostgreSQL `statement_timeout` in milliseconds (0 = none).
    pub db_statement_timeout_ms: u64,
    /// `redis://…`; when set, cache and pub/sub use Redis, else they are in-process.
    pub redis_url: Option<Secret>,
    /// Prefix for every Redis key and channel, so deployments can share a server.
    pub redis_prefix: String,
    /// Capacity of the in-process cache in bytes.
    pub cache_capacity_bytes: u64,
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
    /// Time limit for REST handlers in milliseconds (not WebSocket/SSE).
    pub request_timeout_ms: u64,
    /// How long in-flight requests get to finish after SIGTERM, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Origins allowed to call the API from a browser (`https://app.example.com`); empty = same-origin only.
    #[serde(deserialize_with = "list_or_csv")]
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (turn on when served over HTTPS).
    pub hsts: bool,
    /// `pretty` or `json`; unset = pretty for `dev`, json for `serve`/`worker`.
    pub log_format: Option<LogFormat>,
    /// Directory for the SQLite file, local uploads and other state.
    pub data_dir: PathBuf,
    /// Key that encrypts signing keys and secrets at rest (at least 32 characters).
    pub secret_key: Option<Secret>,
    /// Serve `/metrics` for Prometheus.
    pub metrics_enabled: bool,
    /// Port on which `sen worker` serves `/healthz`, `/readyz` and `/metrics` (unset = none).
    pub worker_port: Option<u16>,
    /// Queues the worker role runs, with their concurrency (`default=10,mail=2`).
    #[serde(deserialize_with = "queue_list", serialize_with = "queue_list_out")]
    pub worker_queues: Vec<(String, usize)>,
    /// Job lease in milliseconds; renewed every third of it while a job runs.
    pub job_lease_ms: u64,
    /// Longest pause between claims when no wake-up arrives, in milliseconds.
    pub job_poll_ms: u64,
    /// PostgreSQL: a worker vacuums the job table once it has claimed
    /// this many jobs since its last vacuum (0 = leave it to autovacuum).
    /// Every claimed job leaves a dead entry at the front of the claim
    /// index until a vacuum removes it, and each claim walks past all of
    /// them: autovacuum (a minute apart at best) lets a busy queue's
    /// claims slow down in proportion to the jobs run since.
    pub job_vacuum_after: u64,
    /// The URL users reach this deployment at (token issuer, links in mail);
    /// unset = `http://{host}:{port}`.
    pub public_url: Option<String>,
    /// Access-token lifetime in seconds (also the longest a revoked session's
    /// last access token keeps working for API calls that skip the session check).
    pub auth_access_ttl_secs: u64,
    /// Absolute session lifetime in seconds: refresh stops working after it.
    pub auth_session_ttl_secs: u64,
    /// `EdDSA` (default) or `RS256` for new signing keys.
    pub auth_jwt_alg: String,
    /// Days between scheduled signing-key rotations.
    pub auth_key_rotation_days: u64,
    /// Mark auth cookies `Secure` (keep on; browsers accept it on http://localhost).
    pub auth_cookie_secure: bool,
    /// Password hashing threads (unset = one per core; they run at the
    /// lowest priority, so they only use CPU other work leaves).
    pub auth_hash_concurrency: Option<usize>,
    /// While other requests flow (500 a second or more), password hashing
    /// keeps to half the cores so the other half serves them undisturbed.
    /// Off: hashing may use every core at any time (more logins a second
    /// under mixed load, a slower tail for the other routes meanwhile).
    pub auth_hash_spare_cores: bool,
    /// Limit login, registration, reset and code attempts per address and
    /// per account (turn off only for load tests).
    pub auth_rate_limits: bool,
    /// Third-party sign-in providers (OpenID Connect): a TOML array of
    /// tables, or JSON in `SEN_AUTH_OIDC_PROVIDERS`.
    #[serde(deserialize_with = "providers")]
    pub auth_oidc_providers: Vec<OidcProvider>,
    /// Events kept per topic for resume (`since`, `Last-Event-ID`).
    pub realtime_replay_len: u64,
    /// Longest an event stays in the replay log, in seconds.
    pub realtime_replay_age_secs: u64,
    /// Live realtime connections one user may hold on one instance.
    pub realtime_max_connections_per_user: usize,
    /// Topics one connection may subscribe to.
    pub realtime_max_subscriptions: usize,
    /// Events queued for one connection before it counts as too slow and is closed.
    pub realtime_send_queue: usize,
    /// Seconds between pings; a peer silent for two of them is dropped.
    pub realtime_heartbeat_secs: u64,
    /// Largest frame a client may send, in bytes.
    pub realtime_max_frame_bytes: usize,
    /// How often revoked sessions are looked for, in milliseconds.
    pub realtime_revocation_check_ms: u64,
    /// SMTP server for outgoing mail: `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://…:465` (TLS) or `smtp://host:25` (plain, for a
    /// local relay); unset = messages are written as `.eml` files under
    /// `{data_dir}/mail` (the dev transport).
    pub mail_smtp_url: Option<Secret>,
    /// The `From` of outgoing mail.
    pub mail_from: String,
    /// Messages per minute per recipient domain (`gmail.com=60,*=600`;
    /// `*` is every other domain; empty = no limit).
    #[serde(deserialize_with = "queue_list", serialize_with = "queue_list_out")]
    pub mail_domain_limits: Vec<(String, usize)>,
    /// S3 bucket for uploaded files; unset = files live under `{data_dir}/files`.
    pub files_s3_bucket: Option<String>,
    /// S3-compatible endpoint (`http://127.0.0.1:9000` for MinIO); unset = AWS.
    pub files_s3_endpoint: Option<String>,
    /// S3 region.
    pub files_s3_region: String,
    /// Path-style bucket addressing (MinIO and most S3-compatible servers).
    pub files_s3_path_style: bool,
    /// S3 access key id; unset = `AWS_ACCESS_KEY_ID` (or the instance's role).
    pub files_s3_access_key: Option<String>,
    /// S3 secret access key; unset = `AWS_SECRET_ACCESS_KEY`.
    pub files_s3_secret_key: Option<Secret>,
    /// Largest upload of the built-in `attachment` purpose, in bytes.
    pub files_max_bytes: u64,
    /// Thumbnail widths in pixels (`128,512`).
    #[serde(deserialize_with = "number_list")]
    pub files_thumbnail_sizes: Vec<u32>,
    /// `jpeg` (small, lossy) or `webp` (lossless) thumbnails.
    pub files_thumbnail_format: String,
    /// Largest image (width × height) thumbnails are made of; larger ones
    /// are rejected as decompression bombs.
    pub files_max_pixels: u64,
}

/// One OpenID Connect provider users may sign in with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// URL-safe name (`google`, `corp`); the callback is
    /// `{public_url}/api/v1/auth/oidc/{name}/callback`.
    pub name: String,
    /// Title on the sign-in button.
    #[serde(default)]
    pub title: Option<String>,
    /// The provider's issuer URL (discovery is read from it).
    pub issuer: String,
    /// Our client id there.
    pub client_id: String,
    /// Our client secret there.
    pub client_secret: Secret,
}

fn providers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OidcProvider>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrJson {
        List(Vec<OidcProvider>),
        Json(String),
    }
    match ListOrJson::deserialize(d)? {
        ListOrJson::List(v) => Ok(v),
        ListOrJson::Json(s) if s.trim().is_empty() => Ok(Vec::new()),
        ListOrJson::Json(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            database_url: Secret::new("sqlite://./data/sen.db"),
            db_max_connections: 16,
            db_connect_timeout_ms: 5_000,
            db_statement_timeout_ms: 30_000,
            redis_url: None,
            redis_prefix: "sen:".into(),
            cache_capacity_bytes: 64 * 1024 * 1024,
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            cors_origins: Vec::new(),
            hsts: false,
            log_format: None,
            data_dir: PathBuf::from("./data"),
            secret_key: None,
            metrics_enabled: true,
            worker_port: None,
            worker_queues: vec![("default".into(), 10), ("mail".into(), 4)],
            job_lease_ms: 30_000,
            job_poll_ms: 1_000,
            job_vacuum_after: 2_000,
            public_url: None,
            auth_access_ttl_secs: 900,
            auth_session_ttl_secs: 30 * 24 * 3600,
            auth_jwt_alg: "EdDSA".into(),
            auth_key_rotation_days: 30,
            auth_cookie_secure: true,
            auth_hash_concurrency: None,
            auth_hash_spare_cores: true,
            auth_rate_limits: true,
            auth_oidc_providers: Vec::new(),
            realtime_replay_len: 500,
            realtime_replay_age_secs: 3600,
            realtime_max_connections_per_user: 20,
            realtime_max_subscriptions: 100,
            realtime_send_queue: 1024,
            realtime_heartbeat_secs: 30,
            realtime_max_frame_bytes: 16 * 1024,
            realtime_revocation_check_ms: 2_000,
            mail_smtp_url: None,
            mail_from: "Sen <no-reply@localhost>".into(),
            mail_domain_limits: Vec::new(),
            files_s3_bucket: None,
            files_s3_endpoint: None,
            files_s3_region: "us-east-1".into(),
            files_s3_path_style: true,
            files_s3_access_key: None,
            files_s3_secret_key: None,
            files_max_bytes: 25 * 1024 * 1024,
            files_thumbnail_sizes: vec![128, 512],
            files_thumbnail_format: "jpeg".into(),
            files_max_pixels: 40_000_000,
        }
    }
}

/// Why the configuration could not be loaded; the message names the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// One documented configuration key, for `--help` and the README table.
pub struct KeyDoc {
    /// The key in `sen.toml`.
    pub key: &'static str,
    /// The environment variable(s).
    pub env: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every key with its environment variable, in the order `--help` lists them.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "host",
        env: "SEN_HOST",
        help: "bind address (default 127.0.0.1)",
    },
    KeyDoc {
        key: "port",
        env: "SEN_PORT, PORT",
        help: "web port (default 8080)",
    },
    KeyDoc {
        key: "database_url",
        env: "SEN_DATABASE_URL, DATABASE_URL",
        help: "sqlite://path or postgres://… (default sqlite://./data/sen.db)",
    },
    KeyDoc {
        key: "db_max_connections",
        env: "SEN_DB_MAX_CONNECTIONS",
        help: "main pool size (default 16); per-request statements add max(2, this/4)",
    },
    KeyDoc {
        key: "db_connect_timeout_ms",
        env: "SEN_DB_CONNECT_TIMEOUT_MS",
        help: "wait for a connection (default 5000)",
    },
    KeyDoc {
        key: "db_statement_timeout_ms",
        env: "SEN_DB_STATEMENT_TIMEOUT_MS",
        help: "PostgreSQL statement_timeout (default 30000, 0 = none)",
    },
    KeyDoc {
        key: "redis_url",
        env: "SEN_REDIS_URL, REDIS_URL",
        help: "Redis for cache and pub/sub (default: in-process)",
    },
    KeyDoc {
        key: "redis_prefix",
        env: "SEN_REDIS_PREFIX",
        help: "prefix of Redis keys and channels (default sen:)",
    },
    KeyDoc {
        key: "cache_capacity_bytes",
        env: "SEN_CACHE_CAPACITY_BYTES",
        help: "in-process cache size (default 64 MiB)",
    },
    KeyDoc {
        key: "body_limit_bytes",
        env: "SEN_BODY_LIMIT_BYTES",
        help: "largest request body (default 2 MiB)",
    },
    KeyDoc {
        key: "request_timeout_ms",
        env: "SEN_REQUEST_TIMEOUT_MS",
        help: "REST handler time limit (default 30000)",
    },
    KeyDoc {
        key: "shutdown_grace_ms",
        env: "SEN_SHUTDOWN_GRACE_MS",
        help: "time for in-flight work after SIGTERM (default 30000)",
    },
    KeyDoc {
        key: "cors_origins",
        env: "SEN_CORS_ORIGINS",
        help: "comma-separated browser origins allowed (default none)",
    },
    KeyDoc {
        key: "hsts",
        env: "SEN_HSTS",
        help: "send Strict-Transport-Security (default false)",
    },
    KeyDoc {
        key: "log_format",
        env: "SEN_LOG_FORMAT",
        help: "pretty | json (default pretty in dev, json otherwise); level from RUST_LOG",
    },
    KeyDoc {
        key: "data_dir",
        env: "SEN_DATA_DIR",
        help: "state directory (default ./data)",
    },
    KeyDoc {
        key: "secret_key",
        env: "SEN_SECRET_KEY",
        help: "encryption key for secrets at rest, ≥ 32 chars",
    },
    KeyDoc {
        key: "metrics_enabled",
        env: "SEN_METRICS_ENABLED",
        help: "serve /metrics (default true)",
    },
    KeyDoc {
        key: "public_url",
        env: "SEN_PUBLIC_URL",
        help: "URL users reach this deployment at (default http://{host}:{port})",
    },
    KeyDoc {
        key: "auth_access_ttl_secs",
        env: "SEN_AUTH_ACCESS_TTL_SECS",
        help: "access-token lifetime (default 900)",
    },
    KeyDoc {
        key: "auth_session_ttl_secs",
        env: "SEN_AUTH_SESSION_TTL_SECS",
        help: "absolute session lifetime (default 30 days)",
    },
    KeyDoc {
        key: "auth_jwt_alg",
        env: "SEN_AUTH_JWT_ALG",
        help: "EdDSA | RS256 for new signing keys (default EdDSA)",
    },
    KeyDoc {
        key: "auth_key_rotation_days",
        env: "SEN_AUTH_KEY_ROTATION_DAYS",
        help: "days between signing-key rotations (default 30)",
    },
    KeyDoc {
        key: "auth_cookie_secure",
        env: "SEN_AUTH_COOKIE_SECURE",
        help: "mark auth cookies Secure (default true)",
    },
    KeyDoc {
        key: "auth_hash_concurrency",
        env: "SEN_AUTH_HASH_CONCURRENCY",
        help: "password hashing threads, lowest priority (default one per core)",
    },
    KeyDoc {
        key: "auth_hash_spare_cores",
        env: "SEN_AUTH_HASH_SPARE_CORES",
        help: "while other requests flow, hash passwords on half the cores only (default true)",
    },
    KeyDoc {
        key: "auth_rate_limits",
        env: "SEN_AUTH_RATE_LIMITS",
        help: "limit sign-in and code attempts per address and account (default true)",
    },
    KeyDoc {
        key: "auth_oidc_providers",
        env: "SEN_AUTH_OIDC_PROVIDERS",
        help: "OpenID Connect sign-in providers: [{name, issuer, client_id, client_secret}] (JSON in the environment)",
    },
    KeyDoc {
        key: "realtime_replay_len",
        env: "SEN_REALTIME_REPLAY_LEN",
        help: "events kept per topic for resume (default 500)",
    },
    KeyDoc {
        key: "realtime_replay_age_secs",
        env: "SEN_REALTIME_REPLAY_AGE_SECS",
        help: "longest an event stays resumable (default 3600)",
    },
    KeyDoc {
        key: "realtime_max_connections_per_user",
        env: "SEN_REALTIME_MAX_CONNECTIONS_PER_USER",
        help: "live WebSocket/SSE connections per user and instance (default 20)",
    },
    KeyDoc {
        key: "realtime_max_subscriptions",
        env: "SEN_REALTIME_MAX_SUBSCRIPTIONS",
        help: "topics per connection (default 100)",
    },
    KeyDoc {
        key: "realtime_send_queue",
        env: "SEN_REALTIME_SEND_QUEUE",
        help: "events queued per connection before a slow consumer is closed (default 1024)",
    },
    KeyDoc {
        key: "realtime_heartbeat_secs",
        env: "SEN_REALTIME_HEARTBEAT_SECS",
        help: "ping interval; two silent intervals drop the peer (default 30)",
    },
    KeyDoc {
        key: "realtime_max_frame_bytes",
        env: "SEN_REALTIME_MAX_FRAME_BYTES",
        help: "largest client frame (default 16384)",
    },
    KeyDoc {
        key: "realtime_revocation_check_ms",
        env: "SEN_REALTIME_REVOCATION_CHECK_MS",
        help: "how often revoked sessions are disconnected (default 2000)",
    },
    KeyDoc {
        key: "mail_smtp_url",
        env: "SEN_MAIL_SMTP_URL",
        help: "SMTP server, smtp://user:pass@host:587?tls=required or smtps://… (default: .eml files in {data_dir}/mail)",
    },
    KeyDoc {
        key: "mail_from",
        env: "SEN_MAIL_FROM",
        help: "From of outgoing mail (default Sen <no-reply@localhost>)",
    },
    KeyDoc {
        key: "mail_domain_limits",
        env: "SEN_MAIL_DOMAIN_LIMITS",
        help: "messages per minute per recipient domain, gmail.com=60,*=600 (default none)",
    },
    KeyDoc {
        key: "files_s3_bucket",
        env: "SEN_FILES_S3_BUCKET",
        help: "S3 bucket for files; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default: {data_dir}/files)",
    },
    KeyDoc {
        key: "files_s3_endpoint",
        env: "SEN_FILES_S3_ENDPOINT",
        help: "S3-compatible endpoint, e.g. http://minio:9000 (default AWS)",
    },
    KeyDoc {
        key: "files_s3_region",
        env: "SEN_FILES_S3_REGION",
        help: "S3 region (default us-east-1)",
    },
    KeyDoc {
        key: "files_s3_path_style",
        env: "SEN_FILES_S3_PATH_STYLE",
        help: "path-style bucket URLs (default true)",
    },
    KeyDoc {
        key: "files_s3_access_key",
        env: "SEN_FILES_S3_ACCESS_KEY",
        help: "S3 access key id (default AWS_ACCESS_KEY_ID)",
    },
    KeyDoc {
        key: "files_s3_secret_key",
        env: "SEN_FILES_S3_SECRET_KEY",
        help: "S3 secret access key (default AWS_SECRET_ACCESS_KEY)",
    },
    KeyDoc {
        key: "files_max_bytes",
        env: "SEN_FILES_MAX_BYTES",
        help: "largest attachment upload (default 25 MiB)",
    },
    KeyDoc {
        key: "files_thumbnail_sizes",
        env: "SEN_FILES_THUMBNAIL_SIZES",
        help: "thumbnail widths (default 128,512)",
    },
    KeyDoc {
        key: "files_thumbnail_format",
        env: "SEN_FILES_THUMBNAIL_FORMAT",
        help: "jpeg or webp (default jpeg)",
    },
    KeyDoc {
        key: "files_max_pixels",
        env: "SEN_FILES_MAX_PIXELS",
        help: "largest image thumbnails are made of (default 40000000)",
    },
    KeyDoc {
        key: "worker_port",
        env: "SEN_WORKER_PORT",
        help: "health/metrics port of `sen worker` (default none)",
    },
];

impl Config {
    /// Loads defaults, then `file` (when it exists), then the process environment.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let conventional = CONVENTIONAL_ENV
            .iter()
            .filter_map(|(var, key)| {
                let (_, value) = env.iter().find(|(k, _)| k == var)?;
                Some((key.to_string(), value.clone()))
            })
            .collect();
        let prefixed = env
            .iter()
            .filter(|(k, _)| k.starts_with("SEN_") && !k.starts_with("SEN_TEST_"))
            .map(|(k, v)| (k.trim_start_matches("SEN_").to_ascii_lowercase(), v.clone()))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if file.exists() {
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment
            .merge(EnvVars {
                pairs: conventional,
                conventional: true,
            })
            .merge(EnvVars {
                pairs: prefixed,
                conventional: false,
            });
        let config: Config = figment.extract_lossy().map_err(|e| describe(&figment, e))?;
        config.validate(&figment)?;
        Ok(config)
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let fail = |key: &str, msg: String| -> ConfigError {
            ConfigError(format!("`{key}` ({}): {msg}", source_of(figment, key)))
        };
        let db = self.database_url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(fail(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://".into(),
            ));
        }
        if let Some(redis) = &self.redis_url {
            let r = redis.expose();
            if !(r.starts_with("redis://")
                || r.starts_with("rediss://")
                || r.starts_with("redis+unix:"))
            {
                return Err(fail(
                    "redis_url",
                    "must start with redis://, rediss:// or redis+unix:".into(),
                ));
            }
        }
        if self.db_max_connections == 0 {
            return Err(fail("db_max_connections", "must be at least 1".into()));
        }
        if self.body_limit_bytes == 0 {
            return Err(fail("body_limit_bytes", "must be at least 1".into()));
        }
        if self.job_lease_ms < 300 {
            return Err(fail("job_lease_ms", "must be at least 300".into()));
        }
        if self.job_poll_ms == 0 {
            return Err(fail("job_poll_ms", "must be at least 1".into()));
        }
        if self
            .worker_queues
            .iter()
            .any(|(q, n)| q.is_empty() || *n == 0)
        {
            return Err(fail(
                "worker_queues",
                "each queue needs a name and a concurrency of at least 1".into(),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(fail("request_timeout_ms", "must be at least 1".into()));
        }
        for origin in &self.cors_origins {
            let parsed = url::Url::parse(origin).map_err(|_| {
                fail(
                    "cors_origins",
                    format!("{origin:?} is not an origin such as https://app.example.com"),
                )
            })?;
            if parsed.path() != "/"
                || parsed.query().is_some()
                || origin.ends_with('/')
                || !matches!(parsed.scheme(), "http" | "https")
            {
                return Err(fail(
                    "cors_origins",
                    format!("{origin:?} must be scheme://host[:port] with no path"),
                ));
            }
        }
        if !matches!(self.auth_jwt_alg.as_str(), "EdDSA" | "RS256") {
            return Err(fail("auth_jwt_alg", "must be EdDSA or RS256".into()));
        }
        if self.auth_access_ttl_secs < 30 || self.auth_access_ttl_secs > 3600 {
            return Err(fail(
                "auth_access_ttl_secs",
                "must be between 30 and 3600".into(),
            ));
        }
        if self.auth_session_ttl_secs < self.auth_access_ttl_secs {
            return Err(fail(
                "auth_session_ttl_secs",
                "must be at least the access-token lifetime".into(),
            ));
        }
        if self.auth_key_rotation_days == 0 {
            return Err(fail("auth_key_rotation_days", "must be at least 1".into()));
        }
        if self.auth_hash_concurrency == Some(0) {
            return Err(fail("auth_hash_concurrency", "must be at least 1".into()));
        }
        for (i, p) in self.auth_oidc_providers.iter().enumerate() {
            let ok_name = !p.name.is_empty()
                && p.name.len() <= 32
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name
                || self.auth_oidc_providers[..i]
                    .iter()
                    .any(|o| o.name == p.name)
            {
                return Err(fail(
                    "auth_oidc_providers",
                    format!(
                        "provider name {:?} must be unique and a-z, 0-9, '-'",
                        p.name
                    ),
                ));
            }
            if url::Url::parse(&p.issuer)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
            {
                return Err(fail(
                    "auth_oidc_providers",
                    format!(
                        "issuer {:?} of {:?} must be an http(s) URL",
                        p.issuer, p.name
                    ),
                ));
            }
        }
        if let Some(u) = &self.public_url {
            let ok = url::Url::parse(u)
                .map(|p| matches!(p.scheme(), "http" | "https") && p.query().is_none())
                .unwrap_or(false);
            if !ok || u.ends_with('/') {
                return Err(fail(
                    "public_url",
                    format!("{u:?} must be an http(s) URL without a trailing slash"),
                ));
            }
        }
        for (key, value) in [
            ("realtime_replay_len", self.realtime_replay_len),
            ("realtime_replay_age_secs", self.realtime_replay_age_secs),
            (
                "realtime_max_connections_per_user",
                self.realtime_max_connections_per_user as u64,
            ),
            (
                "realtime_max_subscriptions",
                self.realtime_max_subscriptions as u64,
            ),
            ("realtime_send_queue", self.realtime_send_queue as u64),
            ("realtime_heartbeat_secs", self.realtime_heartbeat_secs),
            (
                "realtime_revocation_check_ms",
                self.realtime_revocation_check_ms,
            ),
        ] {
            if value == 0 {
                return Err(fail(key, "must be at least 1".into()));
            }
        }
        if self.realtime_max_frame_bytes < 256 {
            return Err(fail(
                "realtime_max_frame_bytes",
                "must be at least 256".into(),
            ));
        }
        if let Some(u) = &self.mail_smtp_url {
            let ok = url::Url::parse(u.expose())
                .map(|p| matches!(p.scheme(), "smtp" | "smtps") && p.host_str().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(fail(
                    "mail_smtp_url",
                    "must be smtp://[user:pass@]host[:port][?tls=required] or smtps://…".into(),
                ));
            }
        }
        if !self.mail_from.contains('@') || self.mail_from.contains(['\r', '\n']) {
            return Err(fail(
                "mail_from",
                format!(
                    "{:?} must be an address such as Sen <no-reply@example.com>",
                    self.mail_from
                ),
            ));
        }
        if let Some((d, _)) = self.mail_domain_limits.iter().find(|(d, n)| {
            *n == 0 || !(d == "*" || (d.contains('.') && !d.contains(['@', '/', ' '])))
        }) {
            return Err(fail(
                "mail_domain_limits",
                format!("{d:?}: each entry is domain=N (N ≥ 1 per minute) or *=N"),
            ));
        }
        if self.files_max_bytes == 0 {
            return Err(fail("files_max_bytes", "must be at least 1".into()));
        }
        if !matches!(self.files_thumbnail_format.as_str(), "jpeg" | "webp") {
            return Err(fail(
                "files_thumbnail_format",
                "must be jpeg or webp".into(),
            ));
        }
        if self.files_max_pixels == 0 {
            return Err(fail("files_max_pixels", "must be at least 1".into()));
        }
        if self
            .files_thumbnail_sizes
            .iter()
            .any(|s| *s == 0 || *s > 4096)
        {
            return Err(fail(
                "files_thumbnail_sizes",
                "each size must be between 1 and 4096".into(),
            ));
        }
        if let Some(e) = &self.files_s3_endpoint
            && url::Url::parse(e)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            return Err(fail(
                "files_s3_endpoint",
                format!("{e:?} must be an http(s) URL"),
            ));
        }
        if let Some(key) = &self.secret_key
            && key.expose().chars().count() < 32
        {
            return Err(fail("secret_key", "must be at least 32 characters".into()));
        }
        Ok(())
    }

    /// The REST handler time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The deployment's public URL (no trailing slash).
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.host, self.port))
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The configuration as `sen config check` prints it: secrets redacted,
    /// passwords in URLs masked.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "database_url".into(),
                mask_url(self.database_url.expose()).into(),
            );
            if let Some(r) = &self.redis_url {
                obj.insert("redis_url".into(), mask_url(r.expose()).into());
            }
            if self.secret_key.is_some() {
                obj.insert("secret_key".into(), "[redacted]".into());
            }
            if self.files_s3_secret_key.is_some() {
                obj.insert("files_s3_secret_key".into(), "[redacted]".into());
            }
            if let Some(m) = &self.mail_smtp_url {
                obj.insert("mail_smtp_url".into(), mask_url(m.expose()).into());
            }
            if let Some(list) = obj
                .get_mut("auth_oidc_providers")
                .and_then(|v| v.as_array_mut())
            {
                for p in list.iter_mut().filter_map(|p| p.as_object_mut()) {
                    p.insert("client_secret".into(), "[redacted]".into());
                }
            }
        }
        value
    }
}

/// Replaces the password of a URL with `***` so it can be shown.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "[unparseable]".into(),
    }
}

fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(meta) if meta.name == "environment variable" => {
            format!(
                "from environment variable {}",
                meta.interpolate(&figment::Profile::Default, &[key])
            )
        }
        Some(meta) => match &meta.source {
            Some(figment::Source::File(path)) => format!("from {}", path.display()),
            _ => "default".into(),
        },
        None => "default".into(),
    }
}

fn describe(figment: &Figment, err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = if key.is_empty() {
                String::new()
            } else {
                format!(" ({})", source_of(figment, &key))
            };
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("`{key}`{source}: {}", e.kind)
            }
        })
        .collect();
    ConfigError(lines.join("; "))
}

/// Environment variables as a provider whose metadata names each variable,
/// so errors say "from environment variable SEN_PORT". Values stay strings;
/// `extract_lossy` turns "8080" or "true" into numbers and booleans where
/// the key wants them, so a numeric-looking secret stays a string.
struct EnvVars {
    pairs: Vec<(String, String)>,
    conventional: bool,
}

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        let conventional = self.conventional;
        figment::Metadata::named("environment variable").interpolater(move |_, keys| {
            let key = keys.join("_");
            match CONVENTIONAL_ENV.iter().find(|(_, k)| *k == key) {
                Some((var, _)) if conventional => var.to_string(),
                _ => format!("SEN_{}", key.to_ascii_uppercase()),
            }
        })
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let dict = self
            .pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Accepts `{ default = 10, mail = 2 }` (TOML) or `"default=10,mail=2"`.
fn queue_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, usize)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MapOrCsv {
        Map(std::collections::BTreeMap<String, usize>),
        Csv(String),
    }
    match MapOrCsv::deserialize(d)? {
        MapOrCsv::Map(m) => Ok(m.into_iter().collect()),
        MapOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|part| {
                let (name, n) = part.split_once('=').ok_or_else(|| {
                    serde::de::Error::custom(format!("{part:?} is not queue=concurrency"))
                })?;
                let n = n.trim().parse::<usize>().map_err(|_| {
                    serde::de::Error::custom(format!("{part:?}: concurrency must be a number"))
                })?;
                Ok((name.trim().to_string(), n))
            })
            .collect(),
    }
}

fn queue_list_out<S: serde::Serializer>(v: &[(String, usize)], s: S) -> Result<S::Ok, S::Error> {
    let text: Vec<String> = v.iter().map(|(q, n)| format!("{q}={n}")).collect();
    s.serialize_str(&text.join(","))
}

/// Accepts `[128, 512]` (TOML) or `"128,512"` (environment).
fn number_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<u32>),
        Csv(String),
    }
    match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(v) => Ok(v),
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u32>()
                    .map_err(|_| serde::de::Error::custom(format!("{p:?} is not a number")))
            })
            .collect(),
    }
}

/// Accepts `["a", "b"]` (TOML) or `"a,b"` (environment).
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(v) => v,
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sen.toml");
        std::fs::write(&file, "port = 9000\nbody_limit_bytes = 10\n").unwrap();
        let c = Config::load_from(&file, env(&[("SEN_PORT", "9100"), ("PORT", "9200")])).unwrap();
        assert_eq!(c.port, 9100, "SEN_PORT beats PORT and the file");
        assert_eq!(c.body_limit_bytes, 10, "file beats default");
        assert_eq!(c.request_timeout_ms, 30_000, "default kept");
        let c =
            Config::load_from(&file, env(&[("SEN_WORKER_QUEUES", "default=4, mail=2")])).unwrap();
        assert_eq!(
            c.worker_queues,
            vec![("default".to_string(), 4), ("mail".to_string(), 2)]
        );
        let err = Config::load_from(&file, env(&[("SEN_WORKER_QUEUES", "default")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("worker_queues"), "{err}");
        let c = Config::load_from(&file, env(&[("PORT", "9200")])).unwrap();
        assert_eq!(c.port, 9200, "PORT beats the file");
        assert!(c.auth_hash_spare_cores, "on by default");
        let c = Config::load_from(&file, env(&[("SEN_AUTH_HASH_SPARE_CORES", "false")])).unwrap();
        assert!(!c.auth_hash_spare_cores);
    }

    #[test]
    fn conventional_urls_and_csv_origins() {
        let c = Config::load_from(
            Path::new("/nonexistent/sen.toml"),
            env(&[
                ("DATABASE_URL", "postgres://u:pw@127.0.0.1/db"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                (
                    "SEN_CORS_ORIGINS",
                    "https://a.example, http://localhost:3000",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url.expose(), "postgres://u:pw@127.0.0.1/db");
        assert_eq!(
            c.redis_url.as_ref().map(Secret::expose),
            Some("redis://127.0.0.1:6379")
        );
        assert_eq!(
            c.cors_origins,
            vec!["https://a.example", "http://localhost:3000"]
        );
    }

    #[test]
    fn bad_value_names_key_and_source() {
        let err = Config::load_from(Path::new("/nonexistent"), env(&[("SEN_PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`port`") && err.contains("SEN_PORT"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sen.toml");
        std::fs::write(&file, "request_timeout_ms = \"soon\"\n").unwrap();
        let err = Config::load_from(&file, env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("`request_timeout_ms`") && err.contains("sen.toml"),
            "{err}"
        );
        let err = Config::load_from(
            Path::new("/nonexistent"),
            env(&[("DATABASE_URL", "mysql://x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`database_url`") && err.contains("DATABASE_URL"),
            "{err}"
        );
        let err = Config::load_from(
            Path::new("/nonexistent"),
            env(&[("SEN_CORS_ORIGINS", "https://a.example/path")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cors_origins"), "{err}");
        let err = Config::load_from(Path::new("/nonexistent"), env(&[("SEN_NOPE", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn redacted_view_hides_secrets() {
        let c = Config::load_from(
            Path::new("/nonexistent"),
            env(&[
                ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1/db"),
                ("REDIS_URL", "redis://:redispw@127.0.0.1:6379"),
                ("SEN_SECRET_KEY", "0123456789abcdef0123456789abcdef-secret"),
            ]),
        )
        .unwrap();
        let shown = c.redacted().to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("redispw") && !shown.contains("-secret"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1/db"), "{shown}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
