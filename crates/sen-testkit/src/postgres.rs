//! A throwaway PostgreSQL: `initdb` into a temporary directory (as the
//! `postgres` user when running as root), started on a free loopback port
//! with durability off (fast, and the data is thrown away anyway).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection as _;

use crate::guard;

/// A running server and the URL of its maintenance database.
pub struct PgServer {
    admin_url: String,
    /// Set when this process started the server (so it can restart it).
    control: Option<Control>,
}

struct Control {
    bin: PathBuf,
    data: String,
    log: String,
    root: bool,
}

static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// The server for this test process: `SEN_TEST_DATABASE_URL` when set,
/// else one started on first use.
pub fn shared() -> &'static PgServer {
    let server = SHARED.get_or_init(|| match std::env::var("SEN_TEST_DATABASE_URL") {
        Ok(url) => Ok(PgServer {
            admin_url: url,
            control: None,
        }),
        Err(_) => start(false).map_err(|e| format!("{e:#}")),
    });
    match server {
        Ok(s) => s,
        Err(e) => panic!("cannot start a throwaway PostgreSQL: {e}"),
    }
}

impl PgServer {
    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        replace_db(&self.admin_url, &name)
    }

    /// A server of this test's own (for tests that crash or restart it).
    /// Commits are synchronous here: with `synchronous_commit=off` a crash
    /// forgets commits PostgreSQL already acknowledged, which would make a
    /// crash test blame the queue for the server's documented trade-off.
    /// `fsync` stays off: a killed server process leaves the OS page cache.
    pub fn start_dedicated() -> anyhow::Result<PgServer> {
        start(true)
    }

    /// `pg_ctl restart -m immediate`: a crash and recovery, same port.
    pub fn restart_immediate(&self) -> anyhow::Result<()> {
        let c = self
            .control
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("not a server this process started"))?;
        run(
            &c.bin,
            "pg_ctl",
            &[
                "-D",
                &c.data,
                "-l",
                &c.log,
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "restart",
            ],
            c.root,
        )
    }

    /// The maintenance database URL.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

fn replace_db(url: &str, db: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_path(&format!("/{db}"));
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Where the PostgreSQL server programs are: on PATH, else Debian's layout.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn run(bin: &Path, program: &str, args: &[&str], as_postgres: bool) -> anyhow::Result<()> {
    let exe = bin.join(program);
    let output = if as_postgres {
        Command::new("runuser")
            .arg("-u")
            .arg("postgres")
            .arg("--")
            .arg(&exe)
            .args(args)
            .output()?
    } else {
        Command::new(&exe).args(args).output()?
    };
    if !output.status.success() {
        anyhow::bail!(
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn start(durable: bool) -> anyhow::Result<PgServer> {
    let bin = bin_dir().ok_or_else(|| {
        anyhow::anyhow!("PostgreSQL server not installed (apt-get install postgresql)")
    })?;
    let root = guard::is_root();
    let dir = tempfile::Builder::new().prefix("sen-pg-").tempdir()?.keep();
    let data = dir.join("data");
    let data_s = data.to_string_lossy().to_string();
    if root {
        let status = Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()?;
        anyhow::ensure!(status.success(), "chown of {} failed", dir.display());
    }
    run(
        &bin,
        "initdb",
        &[
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        root,
    )?;
    let port = crate::free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit={} -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
        dir.display(),
        if durable { "on" } else { "off" }
    );
    let log = dir.join("server.log").to_string_lossy().to_string();
    run(
        &bin,
        "pg_ctl",
        &[
            "-D", &data_s, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
        ],
        root,
    )?;
    let stop = format!(
        "{}{} -D {data_s} -m immediate stop; rm -rf {}",
        if root { "runuser -u postgres -- " } else { "" },
        bin.join("pg_ctl").display(),
        dir.display()
    );
    guard::on_exit(&stop);
    Ok(PgServer {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        control: Some(Control {
            bin,
            data: data_s,
            log,
            root,
        }),
    })
}
