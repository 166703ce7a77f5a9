//! The command line: what each subcommand does and every flag and
//! environment variable, as `sen --help` prints it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Environment variables, listed at the end of `sen --help`.
pub fn env_help() -> String {
    let mut s = String::from("Configuration (defaults < sen.toml < environment):\n");
    for k in sen_core::config::KEYS {
        s.push_str(&format!("  {} [{}]\n      {}\n", k.key, k.env, k.help));
    }
    s.push_str("  log level [RUST_LOG]\n      e.g. info or sen=debug,sqlx=warn (default info)\n");
    s
}

/// Sen: one binary for the web server, the scheduler and the workers.
#[derive(Debug, Parser)]
#[command(name = "sen", version, about, long_about = None, after_long_help = env_help(), after_help = "Run `sen --help` for the configuration keys and environment variables.")]
pub struct Cli {
    /// Configuration file (TOML with the keys below).
    #[arg(long, global = true, env = "SEN_CONFIG", default_value = "sen.toml")]
    pub config: PathBuf,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Web server, scheduler and workers in one process on the embedded
    /// SQLite file (./data/sen.db unless configured); applies migrations.
    Dev,
    /// The web role only (production); refuses to start while migrations are pending.
    Serve,
    /// Background roles (production): the scheduler, the job workers, or
    /// both when neither flag is given.
    Worker {
        /// Run the scheduler role (turns cron schedules into jobs; any number may run).
        #[arg(long)]
        schedule: bool,
        /// Run the job-worker role (jobs and event handlers).
        #[arg(long)]
        normal: bool,
    },
    /// Apply or inspect schema migrations.
    Migrate {
        /// `up` (default) applies pending migrations; `status` lists them.
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Inspect and operate the job queue (including the dead-letter queue).
    Jobs {
        /// What to do.
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Print the OpenAPI 3.1 document as JSON.
    Openapi,
    /// Configuration tools.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Operator accounts (there are no default credentials).
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Token signing keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
}

/// `sen admin` actions.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create a user with the `owner` role. The password is read from
    /// standard input (one line), never from the command line.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// Display name (default: the part of the email before `@`).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `sen keys` actions.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Publish a new signing key now; it signs after every instance has
    /// loaded it, and the old key stays published until its tokens expire.
    Rotate,
}

/// `sen migrate` actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// List applied, pending and unknown migrations; exit 1 when any is pending.
    Status,
}

/// `sen jobs` actions.
#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// List jobs, newest first (JSON lines).
    List {
        /// Only this state (scheduled, available, running, retryable, completed, dead, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only jobs older than this id (the cursor printed last).
        #[arg(long)]
        before: Option<String>,
        /// How many (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job with its arguments and every attempt's error.
    Show {
        /// Job id.
        id: String,
    },
    /// Run a dead, cancelled or finished job again with a fresh attempt budget.
    Retry {
        /// Job id.
        id: String,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Counts per queue and state, and the age of the oldest ready job.
    Stats,
    /// Cron schedules with their last and next tick.
    Schedules,
    /// Enqueue a schedule's job now, outside its cadence.
    RunNow {
        /// Schedule name.
        name: String,
    },
}

/// `sen config` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Load and validate the configuration and print it with secrets redacted.
    Check,
}
