//! `TestApp`: a real Sen server (the same router and middleware as `sen
//! serve`) on a free loopback port, on a fresh database of either backend.

use std::net::SocketAddr;

use reqwest::{Method, RequestBuilder, Response};
use sen_core::{AppContext, Apps, Backend, Config, Role};
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server for one test.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shared state (database, cache, pub/sub) for direct checks.
    pub ctx: AppContext,
    /// A client with no proxy and no automatic decompression.
    pub client: reqwest::Client,
    /// Which database backs it.
    pub backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    worker: Option<sen_jobs::RunningWorker>,
    _dir: tempfile::TempDir,
}

/// A change to the configuration, applied before start.
type ConfigTweak = Box<dyn FnOnce(&mut Config) + Send>;

/// Configures a [`TestApp`] before it starts.
pub struct TestAppBuilder {
    backend: Backend,
    redis_url: Option<String>,
    apps: Option<Apps>,
    tweak: Vec<ConfigTweak>,
    workers: bool,
    port: u16,
}

impl TestAppBuilder {
    /// Listens on this loopback port (default: any free one), for tests
    /// that must know a server's URL before it starts.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Uses Redis at `url` for cache and pub/sub.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Uses this process's shared throwaway Redis.
    pub fn shared_redis(self) -> Self {
        let url = crate::redis::shared_url();
        self.redis(url)
    }

    /// Registers these apps (default: the built-in `system` app only).
    pub fn apps(mut self, apps: Apps) -> Self {
        self.apps = Some(apps);
        self
    }

    /// Also runs the worker role (jobs of the registered apps).
    pub fn workers(mut self) -> Self {
        self.workers = true;
        self
    }

    /// Changes the configuration.
    pub fn config(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.tweak.push(Box::new(f));
        self
    }

    /// The configuration this builder would start with, on a fresh database.
    pub async fn build_config(&mut self, dir: &std::path::Path) -> Config {
        crate::init_logging();
        let mut config = Config::default();
        config.port = 0;
        config.data_dir = dir.to_path_buf();
        config.db_max_connections = 5;
        config.database_url = sen_core::config::Secret::new(match self.backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("sen.db").display()),
            Backend::Postgres => crate::postgres::shared().create_database().await,
        });
        config.redis_url = self.redis_url.clone().map(sen_core::config::Secret::new);
        config.redis_prefix = format!("t{}:", uuid::Uuid::now_v7().simple());
        config.secret_key = Some(sen_core::config::Secret::new(format!(
            "test-secret-{}",
            uuid::Uuid::now_v7().simple()
        )));
        for f in self.tweak.drain(..) {
            f(&mut config);
        }
        config
    }

    /// Connects, migrates, and starts serving.
    pub async fn spawn(mut self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut config = self.build_config(dir.path()).await;
        if config.public_url.is_none() {
            config.public_url = Some(format!("http://{addr}"));
        }
        let apps = match self.apps.take() {
            Some(a) => a,
            None => Apps::new()
                .register(sen_core::system::SystemApp)
                .expect("system app"),
        };
        let ctx = AppContext::connect(config, vec![Role::Web, Role::Scheduler, Role::Worker], apps)
            .await
            .expect("connect");
        ctx.migrate().await.expect("migrate");
        ctx.start_apps().await.expect("start apps");
        let (tx, rx) = oneshot::channel::<()>();
        let stopping = ctx.clone();
        let task = tokio::spawn(sen_http::instance::run(
            ctx.clone(),
            Some(listener),
            async move {
                let _ = rx.await;
                stopping.begin_shutdown();
            },
        ));
        let worker = self.workers.then(|| {
            // As `sen` does: the recorder first, since workers register
            // their metric handles when they start.
            sen_http::metrics::handle();
            sen_jobs::start(ctx.clone(), sen_jobs::WorkerConfig::from_context(&ctx))
                .expect("start workers")
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        TestApp {
            addr,
            ctx,
            client,
            backend: self.backend,
            shutdown: Some(tx),
            task: Some(task),
            worker,
            _dir: dir,
        }
    }
}

impl TestApp {
    /// A builder for `backend`.
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            redis_url: None,
            apps: None,
            tweak: Vec::new(),
            workers: false,
            port: 0,
        }
    }

    /// Starts a default server on `backend`.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::builder(backend).spawn().await
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request to `path`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request")
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Starts a graceful shutdown and waits for the server and workers to stop.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        };
        if let Some(worker) = self.worker.take() {
            worker.stop().await;
        }
        served
    }

    /// Signals shutdown without waiting (to test in-flight requests).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for a shutdown started by [`TestApp::begin_shutdown`].
    pub async fn wait_stopped(&mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts `response` is problem+json with `status` and `code`, carries the
/// request id it was answered with, and returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json", "content type");
    let rid = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status, "problem status in {body}");
    assert_eq!(
        body["type"],
        format!("/problems/{code}"),
        "problem type in {body}"
    );
    assert!(body["title"].is_string(), "problem title in {body}");
    assert!(rid.is_some(), "x-request-id header present");
    assert_eq!(
        body["request_id"].as_str(),
        rid.as_deref(),
        "request id in body matches header"
    );
    body
}
