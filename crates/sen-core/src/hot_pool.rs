//! `HotPool`: connections for the single statements every request runs
//! (the session lookup, a login's reads and writes), handed back without a
//! round trip.
//!
//! sqlx's pool pings each connection as it goes back to the pool, in a task
//! of its own: one more trip through the SQLite worker thread, or one more
//! network round trip to PostgreSQL, for every query. On `GET
//! /api/v1/me` that ping was about a third of the request's CPU (measured
//! with `perf stat`: 17-21 µs of SQLite-thread and 46-57 µs of tokio time
//! per request with it, 13 and 38 µs without; 21-24k against 29k req/s),
//! and sqlx has no option to skip it. So this keeps the connections it
//! hands out itself, on top of a sqlx pool of its own that still opens,
//! limits and closes them: a finished statement's connection goes straight
//! back to a stack (most recently used first, so SQLite's page cache stays
//! warm), and one idle for `PING_IF_IDLE_FOR` is pinged before reuse, the
//! same policy as the main pool. A connection whose statement failed or was
//! abandoned half-way goes back through sqlx's own path instead, which
//! pings it and closes it if broken.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::pool::PoolConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A small pool of connections for hot single statements (see the module).
#[derive(Debug)]
pub(crate) struct HotPool<DB: sqlx::Database> {
    /// Opens, limits and closes the connections.
    pool: sqlx::Pool<DB>,
    /// Connections handed back clean, with when they were.
    idle: Mutex<Vec<(PoolConnection<DB>, Instant)>>,
    /// One per connection of `pool`: a holder may always take one.
    permits: Arc<Semaphore>,
    /// How long to wait for a connection.
    acquire_timeout: Duration,
    /// Idle at least this long: pinged before use.
    ping_if_idle_for: Duration,
}

impl<DB: sqlx::Database> HotPool<DB> {
    /// Wraps `pool`, which nothing else may use: its `max_connections`
    /// bounds how many statements run at once.
    pub(crate) fn new(
        pool: sqlx::Pool<DB>,
        acquire_timeout: Duration,
        ping_if_idle_for: Duration,
    ) -> Arc<Self> {
        let n = pool.options().get_max_connections() as usize;
        Arc::new(Self {
            pool,
            idle: Mutex::new(Vec::with_capacity(n)),
            permits: Arc::new(Semaphore::new(n)),
            acquire_timeout,
            ping_if_idle_for,
        })
    }

    /// A connection: the most recently handed back one, else a new one.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<HotConn<DB>, sqlx::Error> {
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let cached = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some((mut conn, since)) = cached else {
                // A permit is held, so the pool has a connection to give
                // (or room to open one) unless it is being closed.
                let conn = self.pool.acquire().await?;
                return Ok(HotConn::new(conn, self.clone(), permit));
            };
            if since.elapsed() >= self.ping_if_idle_for && conn.ping().await.is_err() {
                conn.close_on_drop();
                continue;
            }
            return Ok(HotConn::new(conn, self.clone(), permit));
        }
    }

    /// `(open, idle, max)` connections, for the metrics gauges.
    pub(crate) fn stats(&self) -> (u32, u32, u32) {
        let stacked = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        (
            self.pool.size(),
            (stacked + self.pool.num_idle()) as u32,
            self.pool.options().get_max_connections(),
        )
    }

    /// Closes every connection (at shutdown).
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
        self.pool.close().await;
    }
}

/// A connection from a [`HotPool`]. Call [`HotConn::clean`] once its
/// statement finished well; otherwise dropping it hands the connection to
/// sqlx's own release, which checks it.
pub(crate) struct HotConn<DB: sqlx::Database> {
    conn: Option<PoolConnection<DB>>,
    home: Arc<HotPool<DB>>,
    clean: bool,
    /// Released after the connection is back on the stack (fields drop
    /// after `Drop::drop`).
    _permit: OwnedSemaphorePermit,
}

impl<DB: sqlx::Database> HotConn<DB> {
    fn new(conn: PoolConnection<DB>, home: Arc<HotPool<DB>>, permit: OwnedSemaphorePermit) -> Self {
        Self {
            conn: Some(conn),
            home,
            clean: false,
            _permit: permit,
        }
    }

    /// The connection, to run a statement on.
    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        // `conn` is `Some` until `drop`.
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }

    /// Marks the statement finished without error: the connection goes
    /// straight back to the stack.
    pub(crate) fn clean(&mut self) {
        self.clean = true;
    }
}

impl<DB: sqlx::Database> Drop for HotConn<DB> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.clean && !self.home.permits.is_closed() {
            self.home
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((conn, Instant::now()));
        }
        // Else `conn` drops here: sqlx pings it and keeps or closes it.
    }
}
