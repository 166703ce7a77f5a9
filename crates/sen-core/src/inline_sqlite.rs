//! `InlineSqlite`: one SQLite connection that runs a few short, hot
//! statements on the calling thread, for [`crate::db::Db::write_batch`]
//! and [`crate::db::Db::sqlite_read`].
//!
//! sqlx runs every SQLite connection on a worker thread of its own and
//! sends each statement's result back as its own message. A sign-in's read
//! and write went through that thread twice: each trip woke the worker, then
//! woke the waiting tokio worker once per result message (and tokio wakes a
//! second, idle worker to look for more work each time). Measured per
//! sign-in under load, the tokio workers switched threads 10-11 times
//! against 4-5 with these statements run here, and sqlx's thread spent
//! 0.17-0.23 ms, most of it on those wake-ups (its own share of the
//! statements is ~0.06 ms); on a 2-core machine that CPU comes straight out
//! of password hashing. sqlx offers no synchronous call, and its
//! `lock_handle` is itself a trip through the worker, so this keeps a
//! rusqlite connection (the same bundled SQLite, `libsqlite3-sys`).
//!
//! The lane never waits. It is one connection behind a mutex taken with
//! `try_lock`, its busy timeout is zero, and it does not checkpoint: a
//! caller that finds it in use, the write lock held by another connection
//! or any error gets `None` and goes the pooled way, which waits
//! asynchronously and reports errors as SeaORM does. A single connection
//! also keeps its page cache: SQLite drops a connection's cache whenever
//! another connection wrote since it last read, and with one connection per
//! thread that happened on almost every sign-in. Checkpoints, which copy
//! the log into the database and `fsync`, run on the pool, started in the
//! background when a commit here leaves the log past
//! [`CHECKPOINT_AFTER_FRAMES`] (what SQLite's automatic checkpoint uses).

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use rusqlite::types::Value as Lite;
use sea_orm::Value;

/// Log frames after which a commit starts a checkpoint on the pool: SQLite's
/// own `wal_autocheckpoint` default.
pub(crate) const CHECKPOINT_AFTER_FRAMES: i32 = 1000;

thread_local! {
    /// Frames in the log after this thread's last commit on a lane (the
    /// WAL hook runs inside `COMMIT`, on the committing thread).
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// The lane: a connection, and the pool its checkpoints run on.
pub(crate) struct InlineSqlite {
    /// `None` once closed.
    conn: Mutex<Option<rusqlite::Connection>>,
    pool: sqlx::SqlitePool,
    checkpointing: Arc<AtomicBool>,
    /// Batches committed here, and batches handed to the pool.
    committed: AtomicU64,
    passed: AtomicU64,
    /// Reads answered here, and reads handed back.
    read: AtomicU64,
    read_passed: AtomicU64,
}

impl std::fmt::Debug for InlineSqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineSqlite").finish_non_exhaustive()
    }
}

impl InlineSqlite {
    /// Opens the lane on the database file `path`, which `pool` (already
    /// connected, so the file exists in WAL mode) also opens.
    pub(crate) fn open(path: &Path, pool: sqlx::SqlitePool) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
             PRAGMA temp_store = memory; PRAGMA wal_autocheckpoint = 0;",
        )?;
        // After the pragma, which would replace it.
        conn.wal_hook(Some(note_wal_frames));
        Ok(Self {
            conn: Mutex::new(Some(conn)),
            pool,
            checkpointing: Arc::new(AtomicBool::new(false)),
            committed: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            read: AtomicU64::new(0),
            read_passed: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the connection now, or `None` when it is in use or `f`
    /// fails (the caller then goes the pooled way).
    fn run<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> Option<R> {
        let guard = match self.conn.try_lock() {
            Ok(c) => c,
            Err(TryLockError::WouldBlock) => return None,
            // A panic mid-statement: rusqlite resets statements on drop,
            // and a transaction it left open is rolled back below.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let conn = guard.as_ref()?;
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").ok()?;
        }
        f(conn)
            .map_err(|e| {
                // Busy is the lane's everyday reason to step aside; any
                // other error means the pooled way does all the work, which
                // is correct but slow, so say it where someone can look.
                let busy = matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                );
                if !busy {
                    tracing::debug!(error = %e, "inline SQLite statement failed; the pool runs it");
                }
            })
            .ok()
    }

    /// Closes the connection (waiting for a statement running on it); the
    /// lane hands everything to the pool from then on.
    pub(crate) fn close(&self) {
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(conn) = guard.take()
            && let Err((_, e)) = conn.close()
        {
            tracing::warn!(error = %e, "closing the inline SQLite connection failed");
        }
    }

    /// Reads with `f`; `None` as [`Self::run`].
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Option<R> {
        let r = self.run(f);
        let counter = if r.is_some() {
            &self.read
        } else {
            &self.read_passed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// Writes `statements` in one transaction: `Some(())` once committed,
    /// `None` with nothing written (in use, the write lock held elsewhere,
    /// or a statement failed).
    pub(crate) fn write(&self, statements: &[sea_orm::Statement]) -> Option<()> {
        // While a checkpoint waits for the write lock, writes go the pooled
        // way, where they queue with it: back-to-back commits here would
        // take the lock between its polls and starve it.
        let committed = if self.checkpointing.load(Ordering::Acquire) {
            None
        } else {
            self.run(|c| {
                c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                let written = statements.iter().try_for_each(|s| {
                    let mut stmt = c.prepare_cached(&s.sql)?;
                    let values = s.values.as_ref().map_or(&[][..], |v| &v.0[..]);
                    if values.len() != stmt.parameter_count() {
                        return Err(rusqlite::Error::InvalidParameterCount(
                            values.len(),
                            stmt.parameter_count(),
                        ));
                    }
                    for (i, v) in values.iter().enumerate() {
                        stmt.raw_bind_parameter(i + 1, lite(v)?)?;
                    }
                    stmt.raw_execute().map(drop)
                });
                match written.and_then(|()| c.prepare_cached("COMMIT")?.execute([])) {
                    Ok(_) => Ok(WAL_FRAMES.with(Cell::get)),
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK");
                        Err(e)
                    }
                }
            })
        };
        let Some(frames) = committed else {
            self.passed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.committed.fetch_add(1, Ordering::Relaxed);
        if frames >= CHECKPOINT_AFTER_FRAMES {
            self.checkpoint_soon();
        }
        Some(())
    }

    /// How many batches were committed here and how many were handed to
    /// the pool, since the lane opened.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.committed.load(Ordering::Relaxed),
            self.passed.load(Ordering::Relaxed),
        )
    }

    /// How many reads were answered here and how many were handed back.
    pub(crate) fn read_counts(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.read_passed.load(Ordering::Relaxed),
        )
    }

    /// Checkpoints the log on a pooled connection in the background, unless
    /// one is already under way. `RESTART`, not `PASSIVE`: a passive
    /// checkpoint copies the frames there were when it started, and with
    /// commits arriving meanwhile it never catches up, so the log never
    /// starts over and grows without end (measured: 38 MB after 3,000
    /// commits). `RESTART` waits for the writer of the moment, holds new
    /// ones back while it copies (they wait on the pool, as behind
    /// SQLite's own automatic checkpoint) and leaves the log to start over.
    fn checkpoint_soon(&self) {
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, flag) = (self.pool.clone(), self.checkpointing.clone());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            flag.store(false, Ordering::Release);
            return;
        };
        rt.spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "SQLite checkpoint failed");
            }
            flag.store(false, Ordering::Release);
        });
    }
}

/// A SeaORM value as SQLite stores it (as sqlx binds it: booleans as
/// integers, JSON and UUIDs as text). Kinds Sen's hot statements never
/// bind are refused, so the batch goes the pooled way.
fn lite(v: &Value) -> rusqlite::Result<Lite> {
    let int = |i: Option<i64>| i.map_or(Lite::Null, Lite::Integer);
    Ok(match v {
        Value::Bool(b) => int(b.map(i64::from)),
        Value::TinyInt(i) => int(i.map(i64::from)),
        Value::SmallInt(i) => int(i.map(i64::from)),
        Value::Int(i) => int(i.map(i64::from)),
        Value::BigInt(i) => int(*i),
        Value::TinyUnsigned(i) => int(i.map(i64::from)),
        Value::SmallUnsigned(i) => int(i.map(i64::from)),
        Value::Unsigned(i) => int(i.map(i64::from)),
        Value::Float(f) => f.map_or(Lite::Null, |f| Lite::Real(f64::from(f))),
        Value::Double(f) => f.map_or(Lite::Null, Lite::Real),
        Value::String(s) => s.as_ref().map_or(Lite::Null, |s| Lite::Text(s.to_string())),
        Value::Bytes(b) => b.as_ref().map_or(Lite::Null, |b| Lite::Blob(b.to_vec())),
        other => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("no inline binding for {other:?}").into(),
            ));
        }
    })
}
