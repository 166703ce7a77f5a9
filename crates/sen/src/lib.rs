//! The `sen` command: parses the command line, loads configuration, starts
//! logging, wires the platform and the apps, and runs the chosen roles.
//! A library so a binary with extra apps (a user's own, or the test
//! binary with diagnostic jobs) runs exactly the same code as `sen`.

mod cli;
mod logging;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use sen_core::config::LogFormat;
use sen_core::{AppContext, Apps, Config, Role};

use crate::cli::{AdminAction, Cli, Command, ConfigAction, JobsAction, KeysAction, MigrateAction};

/// The platform's own apps, registered explicitly; binaries add theirs.
pub fn platform_apps() -> anyhow::Result<Apps> {
    Ok(Apps::new()
        .register(sen_core::system::SystemApp)?
        .register(sen_auth::AuthApp)?
        .register(sen_jobs::JobsApp)?
        .register(sen_realtime::RealtimeApp)?
        .register(sen_mail::MailApp)?
        .register(sen_files::FilesApp::default())?
        .register(sen_web::WebApp)?)
}

/// Builds the apps of a binary (called once per command).
pub type AppsFn = fn() -> anyhow::Result<Apps>;

/// Runs the `sen` command line with the apps `apps` returns.
pub fn main_with(apps: AppsFn) -> ExitCode {
    let cli = Cli::parse();
    // ring and aws-lc-rs can both be compiled into rustls through different
    // dependencies; name the provider so TLS to PostgreSQL never has to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, apps)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, apps: AppsFn) -> anyhow::Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    let default_format = match cli.command {
        Command::Dev => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    logging::init(config.log_format.unwrap_or(default_format));
    match cli.command {
        Command::Dev => dev(config, apps).await,
        Command::Serve => serve(config, apps).await,
        Command::Worker { schedule, normal } => worker(config, apps, schedule, normal).await,
        Command::Migrate { action } => {
            migrate(config, apps, action.unwrap_or(MigrateAction::Up)).await
        }
        Command::Jobs { action } => jobs(config, apps, action).await,
        Command::Admin {
            action: AdminAction::Create { email, name },
        } => admin_create(config, apps, email, name).await,
        Command::Keys {
            action: KeysAction::Rotate,
        } => keys_rotate(config, apps).await,
        Command::Openapi => {
            let spec = sen_http::router::openapi_spec(&apps()?)?;
            println!("{}", spec.to_pretty_json()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            println!("{}", serde_json::to_string_pretty(&config.redacted())?);
            eprintln!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(config: Config, apps: AppsFn, roles: Vec<Role>) -> anyhow::Result<AppContext> {
    AppContext::connect(config, roles, apps()?).await
}

async fn bind(config: &Config, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = std::net::SocketAddr::new(config.host, port);
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// `sen dev` needs no set-up: without `SEN_SECRET_KEY` it keeps a random
/// key in `{data_dir}/secret.key` (mode 0600), created on first run.
fn dev_secret(config: &mut Config) -> anyhow::Result<()> {
    if config.secret_key.is_some() {
        return Ok(());
    }
    let path = config.data_dir.join("secret.key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) if k.trim().len() >= 32 => k.trim().to_string(),
        _ => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let key = sen_auth::crypto::random_token::<32>()?;
            write_private(&path, &key)
                .with_context(|| format!("cannot write {}", path.display()))?;
            key
        }
    };
    config.secret_key = Some(sen_core::config::Secret::new(key));
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())
}

async fn dev(mut config: Config, apps: AppsFn) -> anyhow::Result<ExitCode> {
    dev_secret(&mut config)?;
    let ctx = connect(config, apps, vec![Role::Web, Role::Scheduler, Role::Worker]).await?;
    ctx.migrate().await.context("migrations failed")?;
    let listener = bind(ctx.config(), ctx.config().port).await?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    println!();
    println!(
        "  Sen {} is running (web + scheduler + workers)",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  API:       http://{host}:{}/api/v1/system/info",
        addr.port()
    );
    println!("  API docs:  http://{host}:{}/api/docs", addr.port());
    println!("  Metrics:   http://{host}:{}/metrics", addr.port());
    println!("  Dashboard: http://{host}:{}/admin/apps", addr.port());
    println!("  Profile:   http://{host}:{}/me", addr.port());
    println!(
        "  Database:  {}",
        sen_core::config::mask_url(ctx.config().database_url.expose())
    );
    println!(
        "  Admin:     no accounts exist by default; create the first with `sen admin create --email you@example.com`"
    );
    println!("  Stop with Ctrl-C.");
    println!();
    run_roles(ctx, Some(listener)).await
}

/// Runs every role of `ctx` until SIGTERM/SIGINT, then stops them in order:
/// web first (in-flight requests finish), then the scheduler, then workers (running jobs finish
/// or are released), then the instance leaves and the database closes.
async fn run_roles(
    ctx: AppContext,
    listener: Option<tokio::net::TcpListener>,
) -> anyhow::Result<ExitCode> {
    let signal = sen_http::shutdown_signal();
    let shutdown = {
        let ctx = ctx.clone();
        async move {
            signal.await;
            ctx.begin_shutdown();
        }
    };
    ctx.start_apps().await?;
    // The metrics recorder before any role: workers register their metric
    // handles when they start, and a handle taken before the recorder is
    // installed records nothing.
    sen_http::metrics::handle();
    let worker = if ctx.roles().contains(&Role::Worker) {
        Some(sen_jobs::start(
            ctx.clone(),
            sen_jobs::WorkerConfig::from_context(&ctx),
        )?)
    } else {
        None
    };
    let scheduler = if ctx.roles().contains(&Role::Scheduler) {
        Some(sen_jobs::scheduler::start(ctx.clone())?)
    } else {
        None
    };
    let served = sen_http::instance::run(ctx.clone(), listener, shutdown).await;
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    if let Some(worker) = worker {
        worker.stop().await;
    }
    sen_http::instance::finish(&ctx).await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses to run on a schema that is behind this binary.
async fn require_current_schema(ctx: &AppContext) -> anyhow::Result<()> {
    let status = ctx
        .migration_status()
        .await
        .context("cannot read the migration status")?;
    if !status.pending.is_empty() {
        anyhow::bail!(
            "{} migration(s) pending ({}); run `sen migrate` first",
            status.pending.len(),
            status.pending.join(", ")
        );
    }
    if !status.unknown.is_empty() {
        tracing::warn!(unknown = ?status.unknown, "the database has migrations this binary does not know; is a newer version deployed?");
    }
    Ok(())
}

async fn serve(config: Config, apps: AppsFn) -> anyhow::Result<ExitCode> {
    let ctx = connect(config, apps, vec![Role::Web]).await?;
    require_current_schema(&ctx).await?;
    let listener = bind(ctx.config(), ctx.config().port).await?;
    tracing::info!(addr = %listener.local_addr()?, roles = "web", "serving");
    run_roles(ctx, Some(listener)).await
}

async fn worker(
    config: Config,
    apps: AppsFn,
    schedule: bool,
    normal: bool,
) -> anyhow::Result<ExitCode> {
    let roles = match (schedule, normal) {
        (true, false) => vec![Role::Scheduler],
        (false, true) => vec![Role::Worker],
        _ => vec![Role::Scheduler, Role::Worker],
    };
    let ctx = connect(config, apps, roles.clone()).await?;
    require_current_schema(&ctx).await?;
    let listener = match ctx.config().worker_port {
        Some(port) => Some(bind(ctx.config(), port).await?),
        None => None,
    };
    let names = roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(
        roles = %names,
        instance = %ctx.instance_id(),
        ops = ?listener.as_ref().and_then(|l| l.local_addr().ok()),
        "worker started; active roles: {names}"
    );
    run_roles(ctx, listener).await
}

async fn migrate(config: Config, apps: AppsFn, action: MigrateAction) -> anyhow::Result<ExitCode> {
    let ctx = connect(config, apps, Vec::new()).await?;
    match action {
        MigrateAction::Up => {
            let ran = ctx.migrate().await.context("migrations failed")?;
            if ran.is_empty() {
                println!("schema is current; nothing to apply");
            }
            for id in ran {
                println!("applied {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateAction::Status => {
            let status = ctx.migration_status().await?;
            for id in &status.applied {
                println!("applied  {id}");
            }
            for id in &status.pending {
                println!("pending  {id}");
            }
            for id in &status.unknown {
                println!("unknown  {id} (applied by another version)");
            }
            Ok(if status.pending.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

async fn jobs(config: Config, apps: AppsFn, action: JobsAction) -> anyhow::Result<ExitCode> {
    use sen_jobs::admin::{self, JobChange, Operator};
    use sen_jobs::queue;
    let ctx = connect(config, apps, Vec::new()).await?;
    require_current_schema(&ctx).await?;
    let db = ctx.db();
    let found = |ok: bool, id: &str, what: &str| -> ExitCode {
        if ok {
            println!("{what} {id}");
            ExitCode::SUCCESS
        } else {
            eprintln!("error: no job {id} in a state that allows it");
            ExitCode::from(1)
        }
    };
    Ok(match action {
        JobsAction::List {
            state,
            queue: q,
            kind,
            before,
            limit,
        } => {
            if let Some(s) = &state
                && !sen_core::jobs::state::ALL.contains(&s.as_str())
            {
                anyhow::bail!(
                    "--state must be one of {}",
                    sen_core::jobs::state::ALL.join(", ")
                );
            }
            let filter = queue::JobFilter {
                state,
                queue: q,
                kind,
            };
            for job in queue::list(db, &filter, before.as_deref(), limit).await? {
                println!("{}", serde_json::to_string(&job)?);
            }
            ExitCode::SUCCESS
        }
        JobsAction::Show { id } => match queue::get(db, &id).await? {
            Some(job) => {
                println!("{}", serde_json::to_string_pretty(&job)?);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no job {id}");
                ExitCode::from(1)
            }
        },
        JobsAction::Retry { id } => {
            let changed = admin::change(&ctx, &id, JobChange::Retry, Operator::cli()).await?;
            found(changed, &id, "retrying")
        }
        JobsAction::Cancel { id } => {
            let changed = admin::change(&ctx, &id, JobChange::Cancel, Operator::cli()).await?;
            found(changed, &id, "cancelled")
        }
        JobsAction::Schedules => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sen_jobs::scheduler::list(&ctx).await?)?
            );
            ExitCode::SUCCESS
        }
        JobsAction::RunNow { name } => {
            let id = sen_jobs::scheduler::run_now(&ctx, &name).await?;
            println!("enqueued {id}");
            ExitCode::SUCCESS
        }
        JobsAction::Stats => {
            println!(
                "{}",
                serde_json::to_string_pretty(&queue::stats(db).await?)?
            );
            ExitCode::SUCCESS
        }
    })
}

async fn admin_create(
    mut config: Config,
    apps: AppsFn,
    email: String,
    name: Option<String>,
) -> anyhow::Result<ExitCode> {
    dev_secret_if_local(&mut config)?;
    let ctx = connect(config, apps, Vec::new()).await?;
    require_current_schema(&ctx).await?;
    ctx.start_apps().await?;
    eprint!("password for {email}: ");
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    match sen_auth::admin_cli::create_owner(&ctx, &email, name.as_deref(), password).await {
        Ok((id, email)) => {
            println!("created owner {email} ({id})");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn keys_rotate(mut config: Config, apps: AppsFn) -> anyhow::Result<ExitCode> {
    dev_secret_if_local(&mut config)?;
    let ctx = connect(config, apps, Vec::new()).await?;
    require_current_schema(&ctx).await?;
    ctx.start_apps().await?;
    let state = sen_auth::AuthState::of(&ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let kid = state.keys.rotate(&ctx, state.access_ttl).await?;
    println!(
        "published key {kid}; it signs in {} s, once every instance has loaded it",
        sen_auth::keys::PUBLISH_LEAD.as_secs()
    );
    Ok(ExitCode::SUCCESS)
}

/// Admin commands on the embedded SQLite database use the same
/// `secret.key` `sen dev` created; elsewhere the key must be configured.
fn dev_secret_if_local(config: &mut Config) -> anyhow::Result<()> {
    if config.database_url.expose().starts_with("sqlite:") {
        dev_secret(config)?;
    }
    Ok(())
}
