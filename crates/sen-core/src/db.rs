//! `Db`: one SeaORM connection and the raw sqlx pool under it, chosen from the
//! URL. SQLite runs in WAL mode with `synchronous=NORMAL`, foreign keys on, a
//! busy timeout, and write transactions opened `BEGIN IMMEDIATE` so two
//! writers queue instead of failing with `SQLITE_BUSY` half-way through. On
//! a SQLite file, the hottest statements may run on the calling thread
//! instead (`inline_sqlite`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqlxPostgresConnector,
    SqlxSqliteConnector, TransactionTrait,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::hot_pool::HotPool;
use crate::inline_sqlite::InlineSqlite;

/// Which database engine is behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded default: one SQLite file.
    Sqlite,
    /// Production: PostgreSQL.
    Postgres,
}

impl Backend {
    /// The lowercase name (`sqlite`, `postgres`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The raw sqlx pool, for the job queue and the few dialect-specific statements.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// How long a PostgreSQL connection may sit idle in the pool before it is
/// pinged on its next acquire.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connection options the pool is built with.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection (and for the first one at start-up).
    pub connect_timeout: Duration,
    /// PostgreSQL `statement_timeout`; zero for none.
    pub statement_timeout: Duration,
}

/// The application database.
#[derive(Debug, Clone)]
pub struct Db {
    orm: DatabaseConnection,
    pool: Pool,
    hot: Hot,
    backend: Backend,
    /// SQLite files only: hot statements on the calling thread.
    inline: Option<Arc<InlineSqlite>>,
}

/// The connections [`Db::fetch_optional`], [`Db::fetch_all`],
/// [`Db::execute`] and [`Db::write_batch`] run on: a pool of their own
/// that skips sqlx's ping on release (see `hot_pool`).
#[derive(Debug, Clone)]
enum Hot {
    Sqlite(Arc<HotPool<sqlx::Sqlite>>),
    Postgres(Arc<HotPool<sqlx::Postgres>>),
}

/// How many connections the hot path keeps, besides the main pool's
/// `max_connections`: a quarter as many, at least two.
fn hot_connections(max_connections: u32) -> u32 {
    (max_connections / 4).max(2)
}

/// Runs `$stmt` on a hot connection of `$db`'s backend as `$run(query,
/// connection)`, marking the connection clean when it succeeded, and maps a
/// failure with `$err` (acquiring one as SeaORM would report it).
macro_rules! hot_run {
    ($db:expr, $stmt:expr, |$q:ident, $c:ident| $run:expr, $err:expr) => {{
        let stmt = $stmt;
        let values = stmt
            .values
            .unwrap_or_else(|| sea_orm::sea_query::Values(Vec::new()));
        match &$db.hot {
            Hot::Sqlite(h) => hot_run!(@on h, stmt.sql, values, |$q, $c| $run, $err),
            Hot::Postgres(h) => hot_run!(@on h, stmt.sql, values, |$q, $c| $run, $err),
        }
    }};
    (@on $h:ident, $sql:expr, $values:expr, |$q:ident, $c:ident| $run:expr, $err:expr) => {{
        let mut conn = $h.get().await.map_err(acquire_error)?;
        let $q = sqlx::query_with(
            sqlx::AssertSqlSafe($sql),
            sea_query_sqlx::SqlxValues($values),
        );
        let $c = conn.conn();
        let out = $run;
        if out.is_ok() {
            conn.clean();
        }
        out.map_err($err)
    }};
}

impl Db {
    /// Connects and checks the connection works; the error is one readable line.
    pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, opts).await
        } else {
            Self::connect_postgres(url, opts).await
        }
    }

    async fn connect_sqlite(url: &str, opts: &DbOptions) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("database_url is not a valid SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let path = options.get_filename().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("cannot create the database directory {}", parent.display())
            })?;
        }
        // No ping before each acquire: sqlx's default sends `SELECT 1`
        // through the connection's worker thread every time a query takes a
        // connection, which on a local file tests nothing and costs two
        // thread wake-ups per query (a third of a `/me` request's
        // database round trips).
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(opts.connect_timeout)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        // Same options, so an in-memory database is the same one too.
        let hot = SqlitePoolOptions::new()
            .max_connections(hot_connections(opts.max_connections))
            .test_before_acquire(false)
            .acquire_timeout(opts.connect_timeout)
            .connect_lazy_with(options);
        // A file's (not an in-memory database's, which is one per
        // connection unless shared through sqlx's own cache).
        let in_memory = url.contains(":memory:") || url.contains("mode=memory") || !path.is_file();
        let inline = if in_memory {
            None
        } else {
            match InlineSqlite::open(&path, pool.clone()) {
                Ok(lane) => Some(Arc::new(lane)),
                Err(e) => {
                    tracing::warn!(error = %e, "no inline SQLite lane; hot writes go through the pool");
                    None
                }
            }
        };
        let orm = SqlxSqliteConnector::from_sqlx_sqlite_pool(pool.clone());
        Ok(Self {
            orm,
            pool: Pool::Sqlite(pool),
            hot: Hot::Sqlite(HotPool::new(hot, opts.connect_timeout, PING_IF_IDLE_FOR)),
            backend: Backend::Sqlite,
            inline,
        })
    }

    async fn connect_postgres(url: &str, opts: &DbOptions) -> anyhow::Result<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .context("database_url is not a valid PostgreSQL URL")?;
        if !opts.statement_timeout.is_zero() {
            options = options.options([(
                "statement_timeout",
                format!("{}ms", opts.statement_timeout.as_millis()),
            )]);
        }
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        // Ping only connections that sat idle for a while (as pgbouncer's
        // `server_check_delay` does), not every acquire as sqlx's default:
        // under load each query would otherwise pay a second round trip.
        // A connection broken since its last use less than
        // `PING_IF_IDLE_FOR` ago fails that one query and is dropped.
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.connect_timeout)
            .test_before_acquire(false)
            .before_acquire(ping_if_idle)
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot connect to PostgreSQL at {target}: {}", one_line(&e))
            })?;
        let hot = PgPoolOptions::new()
            .max_connections(hot_connections(opts.max_connections))
            .test_before_acquire(false)
            .before_acquire(ping_if_idle)
            .acquire_timeout(opts.connect_timeout)
            .connect_lazy_with(options);
        let orm = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
        Ok(Self {
            orm,
            pool: Pool::Postgres(pool),
            hot: Hot::Postgres(HotPool::new(hot, opts.connect_timeout, PING_IF_IDLE_FOR)),
            inline: None,
            backend: Backend::Postgres,
        })
    }

    /// The SeaORM connection, for entities and schema statements.
    pub fn orm(&self) -> &DatabaseConnection {
        &self.orm
    }

    /// The raw sqlx pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: match self.backend {
                Backend::Sqlite => Some(sea_orm::SqliteTransactionMode::Immediate),
                Backend::Postgres => None,
            },
            ..Default::default()
        };
        self.orm.begin_with_options(options).await
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.orm.execute_unprepared("SELECT 1").await.map(|_| ())
    }

    /// `(in use, idle, max)` connections of the pools (main and hot), for
    /// the metrics gauges.
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        let (size, idle, max) = match &self.pool {
            Pool::Sqlite(p) => (
                p.size(),
                p.num_idle() as u32,
                p.options().get_max_connections(),
            ),
            Pool::Postgres(p) => (
                p.size(),
                p.num_idle() as u32,
                p.options().get_max_connections(),
            ),
        };
        let (hot_size, hot_idle, hot_max) = match &self.hot {
            Hot::Sqlite(h) => h.stats(),
            Hot::Postgres(h) => h.stats(),
        };
        (
            (size + hot_size).saturating_sub(idle + hot_idle),
            idle + hot_idle,
            max + hot_max,
        )
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        if let Some(lane) = &self.inline {
            lane.close();
        }
        match &self.hot {
            Hot::Sqlite(h) => h.close().await,
            Hot::Postgres(h) => h.close().await,
        }
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Runs one query and returns its first row, if any, on the hot path's
    /// connections (no ping on release): for the statements every request
    /// runs. Same results and errors as SeaORM's `query_one_raw`.
    pub async fn fetch_optional(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>, DbErr> {
        hot_run!(
            self,
            stmt,
            |q, c| q.fetch_optional(c).await.map(|r| r.map(Into::into)),
            query_error
        )
    }

    /// Runs the read `f` on SQLite's inline lane, on the calling thread
    /// with no trip through a pooled connection's worker thread (see
    /// `inline_sqlite`), for the hottest reads. `None` on PostgreSQL, on an
    /// in-memory database, when the lane is busy or when `f` fails: the
    /// caller then reads the usual way, which waits and reports errors as
    /// SeaORM does.
    pub fn sqlite_read<R>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Option<R> {
        self.inline.as_ref()?.read(f)
    }

    /// How many [`Self::write_batch`] batches SQLite's inline lane
    /// committed, and how many it handed to the pool (busy, or a statement
    /// failed), since the database was opened; `None` where there is no
    /// lane. For tests and diagnostics.
    pub fn inline_counts(&self) -> Option<(u64, u64)> {
        self.inline.as_ref().map(|l| l.counts())
    }

    /// How many [`Self::sqlite_read`] reads SQLite's inline lane answered,
    /// and how many it handed back (busy, or the read failed); `None` where
    /// there is no lane. For tests and diagnostics.
    pub fn inline_reads(&self) -> Option<(u64, u64)> {
        self.inline.as_ref().map(|l| l.read_counts())
    }

    /// Runs one query and returns every row, on the hot path's connections.
    /// Same results and errors as SeaORM's `query_all_raw`.
    pub async fn fetch_all(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        hot_run!(
            self,
            stmt,
            |q, c| q
                .fetch_all(c)
                .await
                .map(|rows| rows.into_iter().map(Into::into).collect()),
            query_error
        )
    }

    /// Runs one statement in its own transaction and returns the rows it
    /// changed, on the hot path's connections. Same errors as SeaORM's
    /// `execute_raw`.
    pub async fn execute(&self, stmt: sea_orm::Statement) -> Result<u64, DbErr> {
        hot_run!(
            self,
            stmt,
            |q, c| q.execute(c).await.map(|r| r.rows_affected()),
            exec_error
        )
    }
}

/// Whether a SeaORM error means the database could not be reached (so the
/// client gets 503, not 500). Besides I/O and pool errors this counts
/// PostgreSQL's SQLSTATE classes `08` (connection exception) and `57P`
/// (the server shut down, crashed or is starting): what a pooled
/// connection reports on its first query after the server restarted under
/// it. The pool pings only connections idle for `PING_IF_IDLE_FOR`, so a
/// busy one meets that error once, and the next query gets a fresh one.
pub fn is_connection_error(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(inner))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(inner)) => match inner.as_ref() {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        },
        _ => false,
    }
}

/// The pools' check before handing out a PostgreSQL connection: a ping if
/// it sat idle for `PING_IF_IDLE_FOR` or more.
fn ping_if_idle(
    conn: &mut sqlx::PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for >= PING_IF_IDLE_FOR {
            sqlx::Connection::ping(conn).await?;
        }
        Ok(true)
    })
}

/// A failed query as SeaORM reports it.
fn query_error(e: sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(e)))
}

/// A failed statement as SeaORM reports it.
fn exec_error(e: sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(Arc::new(e)))
}

/// A pool's failure to hand out a connection as SeaORM reports it, so
/// [`is_connection_error`] sees it the same way.
fn acquire_error(e: sqlx::Error) -> DbErr {
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => {
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed)
        }
        e => DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e))),
    }
}

/// `statements` as one multi-statement SQLite command and its values in
/// order: sqlx binds the `?`s across the statements.
fn joined(statements: Vec<sea_orm::Statement>) -> (String, Vec<sea_orm::Value>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for s in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&s.sql);
        values.extend(s.values.map(|v| v.0).unwrap_or_default());
    }
    (sql, values)
}

/// The first line of an error, so start-up failures print one clean line.
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Writes `sql` with `?` placeholders for `backend`: PostgreSQL gets `$1, $2, …`.
/// Lets a statement both dialects accept be written once. `?` must not occur
/// inside string literals of `sql`.
pub fn placeholders(backend: Backend, sql: &str) -> std::borrow::Cow<'_, str> {
    match backend {
        Backend::Sqlite => std::borrow::Cow::Borrowed(sql),
        Backend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            std::borrow::Cow::Owned(out)
        }
    }
}

impl Db {
    /// A statement with `?` placeholders rendered for this backend.
    pub fn statement(
        &self,
        sql: &str,
        values: impl IntoIterator<Item = sea_orm::Value>,
    ) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(
            self.orm.get_database_backend(),
            placeholders(self.backend, sql),
            values,
        )
    }

    /// Runs `statements` as one write transaction: all of them or none.
    ///
    /// On a SQLite file it commits on the inline lane, on the calling thread
    /// (see `inline_sqlite`), unless the lane is in use, another connection
    /// holds the write lock or a statement fails; then, and on an in-memory
    /// database, the whole transaction is one command through the
    /// connection's worker thread (`BEGIN IMMEDIATE; …; COMMIT`, sqlx binding
    /// the `?`s across the statements in order) instead of three (begin,
    /// statements, commit), each of which costs two thread wake-ups. A
    /// failing statement stops the command with the transaction open; it is
    /// rolled back on the same connection before that goes back to the
    /// pool. On PostgreSQL: a transaction with the statements one by one.
    ///
    /// Once called, the batch is written or fails whole even if the caller
    /// goes away (a dropped request): it runs in the caller's task, and what
    /// is left of it is spawned if that task drops it ([`crate::finish`]).
    /// On SQLite it therefore cannot be stopped half-way with the
    /// transaction, and the database's write lock, still held.
    pub async fn write_batch(&self, statements: Vec<sea_orm::Statement>) -> Result<(), DbErr> {
        if statements.is_empty() {
            return Ok(());
        }
        if self
            .inline
            .as_ref()
            .and_then(|l| l.write(&statements))
            .is_some()
        {
            return Ok(());
        }
        let Hot::Sqlite(hot) = &self.hot else {
            let db = self.clone();
            return crate::finish::finish(async move {
                let tx = db.begin_write().await?;
                for s in statements {
                    tx.execute_raw(s).await?;
                }
                tx.commit().await
            })
            .await;
        };
        let (body, values) = joined(statements);
        let sql = format!("BEGIN IMMEDIATE;\n{body};\nCOMMIT");
        let hot = hot.clone();
        crate::finish::finish(async move {
            let mut conn = hot.get().await.map_err(acquire_error)?;
            let args = sea_query_sqlx::SqlxValues(sea_orm::sea_query::Values(values));
            let Err(e) = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                .execute(conn.conn())
                .await
            else {
                conn.clean();
                return Ok(());
            };
            // `BEGIN IMMEDIATE` itself may have failed (busy past the
            // timeout), leaving nothing to roll back. Rolled back, the
            // connection is clean; if that fails it goes back through
            // sqlx's release, which checks it.
            match sqlx::raw_sql("ROLLBACK").execute(conn.conn()).await {
                Ok(_) => conn.clean(),
                Err(r) if r.to_string().contains("no transaction is active") => conn.clean(),
                Err(_) => {}
            }
            Err(exec_error(e))
        })
        .await
    }

    /// Runs `statements` in order on `conn` (usually the caller's
    /// transaction). On SQLite they go as one multi-statement command
    /// (sqlx binds the `?`s across the statements in order): one trip
    /// through the connection's worker thread, and two thread wake-ups,
    /// instead of one trip per statement. On PostgreSQL they run one by one.
    pub async fn execute_all(
        &self,
        conn: &impl ConnectionTrait,
        statements: Vec<sea_orm::Statement>,
    ) -> Result<(), DbErr> {
        match self.backend {
            Backend::Sqlite if statements.len() > 1 => {
                let (sql, values) = joined(statements);
                conn.execute_raw(sea_orm::Statement::from_sql_and_values(
                    self.orm.get_database_backend(),
                    sql,
                    values,
                ))
                .await?;
            }
            _ => {
                for s in statements {
                    conn.execute_raw(s).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_backend() {
        assert_eq!(
            placeholders(Backend::Sqlite, "a = ? AND b = ?"),
            "a = ? AND b = ?"
        );
        assert_eq!(
            placeholders(Backend::Postgres, "a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
    }
}
