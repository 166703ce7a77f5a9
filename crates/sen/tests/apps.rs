//! The app mechanism and the database layer it stands on: conflicting
//! routes fail at start-up, migrations are all-or-nothing on both
//! backends, SQLite runs with the promised settings, and write
//! transactions queue instead of failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::routing::get;
use sea_orm::sea_query::{Alias, ColumnDef, Table};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use sen_core::migrate::{Migration, SchemaMigration};
use sen_core::{App, AppContext, Apps, Backend};
use sen_testkit::TestApp;

struct Clashing;

impl App for Clashing {
    fn name(&self) -> &'static str {
        "clash"
    }
    fn title(&self) -> &'static str {
        "Clash"
    }
    fn description(&self) -> &'static str {
        "Declares one route twice"
    }
    fn routes(&self) -> sen_core::routes::Routes {
        sen_core::routes::Routes::new()
            .route("/x", get(|| async { "a" }))
            .route("/x", get(|| async { "b" }))
    }
}

#[tokio::test]
async fn conflicting_routes_fail_at_start_up_with_the_app_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sen_core::Config::default();
    config.database_url =
        sen_core::config::Secret::new(format!("sqlite://{}/x.db", dir.path().display()));
    let apps = Apps::new().register(Clashing).unwrap();
    let ctx = AppContext::connect(config, vec![], apps).await.unwrap();
    let err = sen_http::build_router(ctx)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("clash") && err.contains("conflicting routes"),
        "{err}"
    );
}

#[test]
fn duplicate_app_names_fail_at_start_up() {
    let err = Apps::new()
        .register(common::Probe)
        .unwrap()
        .register(common::Probe)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("two apps are named `probe`"), "{err}");
}

struct Ledger;

struct FailsHalfway;

#[async_trait::async_trait]
impl Migration for FailsHalfway {
    fn name(&self) -> &'static str {
        "0002_fails_halfway"
    }
    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared("CREATE TABLE ledger_half (id INTEGER PRIMARY KEY)")
            .await?;
        tx.execute_unprepared("INSERT INTO no_such_table VALUES (1)")
            .await?;
        Ok(())
    }
}

impl App for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }
    fn title(&self) -> &'static str {
        "Ledger"
    }
    fn description(&self) -> &'static str {
        "Owns a table"
    }
    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        let entries = Table::create()
            .table(Alias::new("ledger_entries"))
            .col(
                ColumnDef::new(Alias::new("id"))
                    .string()
                    .not_null()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(Alias::new("amount"))
                    .big_integer()
                    .not_null(),
            )
            .to_owned();
        vec![
            Box::new(SchemaMigration::new("0001_entries").statement(entries)),
            Box::new(FailsHalfway),
        ]
    }
}

async fn table_exists(ctx: &AppContext, table: &str) -> bool {
    let probe = format!("SELECT COUNT(*) FROM {table}");
    ctx.db().orm().execute_unprepared(&probe).await.is_ok()
}

async fn failed_migration_leaves_nothing_half_applied(backend: Backend) {
    let app = TestApp::spawn(backend).await; // a database with the system app migrated
    let config = app.ctx.config().clone();
    let apps = Apps::new()
        .register(sen_core::system::SystemApp)
        .unwrap()
        .register(Ledger)
        .unwrap();
    let ctx = AppContext::connect(config, vec![], apps).await.unwrap();
    let err = ctx.migrate().await.unwrap_err().to_string();
    assert!(err.contains("ledger/0002_fails_halfway"), "{err}");
    assert!(
        table_exists(&ctx, "ledger_entries").await,
        "the good migration before it is applied"
    );
    assert!(
        !table_exists(&ctx, "ledger_half").await,
        "the failed migration rolled back entirely"
    );
    let status = ctx.migration_status().await.unwrap();
    assert_eq!(status.pending, vec!["ledger/0002_fails_halfway"]);
    assert!(status.applied.contains(&"ledger/0001_entries".to_string()));
}

async fn write_transactions_queue_instead_of_failing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.ctx.db().clone();
    db.orm()
        .execute_unprepared("CREATE TABLE counter (n INTEGER NOT NULL)")
        .await
        .unwrap();
    db.orm()
        .execute_unprepared("INSERT INTO counter VALUES (0)")
        .await
        .unwrap();
    // Read-then-write in two concurrent transactions: deferred SQLite
    // transactions would fail one with SQLITE_BUSY; immediate ones queue.
    let bump = |db: sen_core::Db| async move {
        let tx = db.begin_write().await?;
        let row = tx
            .query_one_raw(db.statement("SELECT n FROM counter", []))
            .await?
            .expect("row");
        let n: i32 = row.try_get("", "n")?;
        tokio::time::sleep(Duration::from_millis(150)).await;
        tx.execute_raw(db.statement("UPDATE counter SET n = ?", [(n + 1).into()]))
            .await?;
        tx.commit().await?;
        Ok::<_, DbErr>(())
    };
    let (a, b) = tokio::join!(
        tokio::spawn(bump(db.clone())),
        tokio::spawn(bump(db.clone()))
    );
    a.unwrap().unwrap();
    b.unwrap()
        .expect("the second writer waits its turn instead of failing");
    if backend == Backend::Sqlite {
        // BEGIN IMMEDIATE serialises writers, so the read-then-write of the
        // second sees the first's commit: no lost update. (PostgreSQL at
        // READ COMMITTED needs row locks for that, which callers take.)
        let row = db
            .orm()
            .query_one_raw(db.statement("SELECT n FROM counter", []))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i32>("", "n").unwrap(), 2);
    }
}

/// Creates the `pairs (k, v)` table the database-helper tests write to.
async fn pairs_table(db: &sen_core::Db) {
    db.orm()
        .execute_unprepared("CREATE TABLE pairs (k TEXT NOT NULL PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
}

/// The statement inserting `(k, v)` into `pairs`.
fn put_pair(db: &sen_core::Db, k: &str, v: i64) -> sea_orm::Statement {
    db.statement(
        "INSERT INTO pairs (k, v) VALUES (?, ?)",
        [k.into(), v.into()],
    )
}

/// Every row of `pairs`, in key order, read through SeaORM's pool.
async fn pairs(db: &sen_core::Db) -> Vec<(String, i64)> {
    db.orm()
        .query_all_raw(db.statement("SELECT k, v FROM pairs ORDER BY k", []))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "k").unwrap(),
                r.try_get::<i64>("", "v").unwrap(),
            )
        })
        .collect()
}

/// `Db::execute_all` writes every statement with its own parameters (on
/// SQLite as one multi-statement command), and a failing later statement
/// leaves nothing of the earlier ones once the transaction is dropped.
async fn execute_all_binds_each_statement_and_fails_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.ctx.db().clone();
    pairs_table(&db).await;
    let put = |k: &str, v: i64| put_pair(&db, k, v);
    let tx = db.begin_write().await.unwrap();
    db.execute_all(&tx, vec![put("a", 1), put("b", 2), put("c", 3)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let written = vec![
        ("a".to_string(), 1),
        ("b".to_string(), 2),
        ("c".to_string(), 3),
    ];
    assert_eq!(pairs(&db).await, written);
    // The third statement repeats a key: the whole batch is undone.
    let tx = db.begin_write().await.unwrap();
    let err = db
        .execute_all(&tx, vec![put("d", 4), put("e", 5), put("a", 6)])
        .await;
    assert!(err.is_err(), "a duplicate key fails the batch");
    drop(tx);
    assert_eq!(
        pairs(&db).await,
        written,
        "nothing of the failed batch stays"
    );
}

/// `Db::write_batch` writes every statement with its own parameters or
/// none of them; a failure leaves no transaction open on a pooled
/// connection (later writes neither block nor vanish); and a caller that
/// goes away once the batch started does not stop it half-way.
async fn write_batch_is_whole_and_outlives_its_caller(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.ctx.db().clone();
    pairs_table(&db).await;
    let put = |k: &str, v: i64| put_pair(&db, k, v);
    db.write_batch(vec![put("a", 1), put("b", 2), put("c", 3)])
        .await
        .unwrap();
    let mut want = vec![
        ("a".to_string(), 1),
        ("b".to_string(), 2),
        ("c".to_string(), 3),
    ];
    assert_eq!(pairs(&db).await, want);

    // The third statement repeats a key: nothing of the batch stays, and
    // the error is the constraint's.
    let err = db
        .write_batch(vec![put("d", 4), put("e", 5), put("a", 6)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ),
        "{err:?}"
    );
    assert_eq!(pairs(&db).await, want, "nothing of the failed batch");
    // Every pooled connection still writes and commits: a transaction left
    // open would hold the write lock (the next writes wait out the busy
    // timeout and fail) or swallow its writes.
    for i in 0..12 {
        let k = format!("w{i:02}");
        if i % 2 == 0 {
            db.write_batch(vec![put(&k, i)]).await.unwrap();
        } else {
            db.orm().execute_raw(put(&k, i)).await.unwrap();
        }
        want.push((k, i));
        assert_eq!(pairs(&db).await, want);
    }

    // The caller gives up right after the batch started: it is written all
    // the same, and the database takes writes after it. Another
    // transaction holds the table's write lock meanwhile, so the batch
    // cannot finish before its caller is dropped however the threads are
    // scheduled (unhindered, it can commit within that first poll).
    let blocker = db.begin_write().await.unwrap();
    if backend == Backend::Postgres {
        blocker
            .execute_unprepared("LOCK TABLE pairs IN EXCLUSIVE MODE")
            .await
            .unwrap();
    }
    let cut = futures::FutureExt::now_or_never(db.write_batch(vec![put("x1", 7), put("x2", 8)]));
    assert!(
        cut.is_none(),
        "the batch finished while another transaction held the lock: {cut:?}"
    );
    // Give the orphaned batch time to reach the lock and wait on it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !pairs(&db).await.iter().any(|(k, _)| k.starts_with('x')),
        "nothing is visible before the lock is released"
    );
    blocker.commit().await.unwrap();
    want.push(("x1".to_string(), 7));
    want.push(("x2".to_string(), 8));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pairs(&db).await != want {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned batch was never written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    db.write_batch(vec![put("y", 9)]).await.unwrap();
    want.push(("y".to_string(), 9));
    assert_eq!(pairs(&db).await, want);
}

/// The hot path's `fetch_optional`, `fetch_all` and `execute` (their own
/// connections, no ping on release) answer as SeaORM's raw calls do, with
/// the same errors, and a failed statement does not spoil the connection
/// for the next one.
async fn hot_path_answers_as_seaorm_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.ctx.db().clone();
    pairs_table(&db).await;
    let put = |k: &str, v: i64| put_pair(&db, k, v);
    for i in 0..5 {
        assert_eq!(db.execute(put(&format!("k{i}"), i * 10)).await.unwrap(), 1);
    }
    let one = |k: &str| db.statement("SELECT k, v FROM pairs WHERE k = ?", [k.into()]);
    let hot = db.fetch_optional(one("k3")).await.unwrap().unwrap();
    let orm = db.orm().query_one_raw(one("k3")).await.unwrap().unwrap();
    assert_eq!(hot.try_get::<i64>("", "v").unwrap(), 30);
    assert_eq!(
        hot.try_get::<String>("", "k").unwrap(),
        orm.try_get::<String>("", "k").unwrap()
    );
    assert!(db.fetch_optional(one("nope")).await.unwrap().is_none());
    let all = db.statement(
        "SELECT k, v FROM pairs WHERE v >= ? ORDER BY k",
        [20.into()],
    );
    let vs = |rows: Vec<sea_orm::QueryResult>| {
        rows.iter()
            .map(|r| r.try_get::<i64>("", "v").unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        vs(db.fetch_all(all.clone()).await.unwrap()),
        vec![20, 30, 40]
    );
    assert_eq!(
        vs(db.fetch_all(all.clone()).await.unwrap()),
        vs(db.orm().query_all_raw(all.clone()).await.unwrap())
    );
    let bump = db.statement("UPDATE pairs SET v = v + 1 WHERE v < ?", [25.into()]);
    assert_eq!(db.execute(bump).await.unwrap(), 3, "rows changed");

    // Errors: a duplicate key is the constraint's, bad SQL is a query
    // error; neither is a connection error, and the next statements (on
    // the same few connections) work.
    let dup = db.execute(put("k1", 0)).await.unwrap_err();
    assert!(
        matches!(
            dup.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ),
        "{dup:?}"
    );
    assert!(!sen_core::db::is_connection_error(&dup));
    let bad = db
        .fetch_optional(db.statement("SELECT nope FROM pairs", []))
        .await
        .unwrap_err();
    assert!(matches!(bad, DbErr::Query(_)), "{bad:?}");
    assert!(!sen_core::db::is_connection_error(&bad));
    for i in 0..8 {
        let row = db.fetch_optional(one("k4")).await.unwrap().unwrap();
        assert_eq!(row.try_get::<i64>("", "v").unwrap(), 40, "round {i}");
    }
    // What the hot path wrote, SeaORM's connections read (committed).
    let n = db
        .orm()
        .query_one_raw(db.statement("SELECT COUNT(*) AS n FROM pairs", []))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.try_get::<i64>("", "n").unwrap(), 5);
}

/// On a SQLite file, `Db::write_batch` commits on the inline lane (on the
/// calling thread) and `Db::sqlite_read` reads there, seeing what the pool
/// committed; a failing read answers `None` (the caller reads the pooled
/// way); a batch meeting the write lock held elsewhere goes the pooled way
/// and waits for it instead of failing; and the lane's own commits, which
/// never checkpoint on the calling thread, still do not let the log grow
/// without bound (the pool checkpoints in the background). PostgreSQL has
/// no lane.
async fn inline_lane_commits_steps_aside_and_checkpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.ctx.db().clone();
    pairs_table(&db).await;
    let put = |k: &str, v: i64| put_pair(&db, k, v);
    let read_v = |k: &'static str| {
        db.sqlite_read(move |c| {
            c.query_row("SELECT v FROM pairs WHERE k = ?", [k], |r| {
                r.get::<_, i64>(0)
            })
        })
    };
    if backend == Backend::Postgres {
        assert_eq!(db.inline_counts(), None);
        db.write_batch(vec![put("a", 1)]).await.unwrap();
        assert_eq!(read_v("a"), None, "no lane: callers read the pooled way");
        return;
    }
    let (ran, passed) = db.inline_counts().expect("a lane on a SQLite file");
    db.write_batch(vec![put("a", 1), put("b", 2)])
        .await
        .unwrap();
    assert_eq!(db.inline_counts(), Some((ran + 1, passed)), "on the lane");
    db.execute(put("c", 3)).await.unwrap();
    assert_eq!(read_v("c"), Some(3), "the lane reads the pool's commit");
    let bad = db.sqlite_read(|c| c.query_row("SELECT nope FROM pairs", [], |r| r.get::<_, i64>(0)));
    assert_eq!(bad, None, "a failing read hands over to the pooled way");

    // Another connection holds the write lock: the batch waits for it on
    // the pool instead of failing with SQLITE_BUSY.
    let blocker = db.begin_write().await.unwrap();
    let batch = tokio::spawn({
        let (db, s) = (db.clone(), vec![put("d", 4)]);
        async move { db.write_batch(s).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!batch.is_finished(), "the batch waits for the lock");
    blocker.commit().await.unwrap();
    batch.await.unwrap().unwrap();
    let (ran_now, passed_now) = db.inline_counts().unwrap();
    assert_eq!(
        (ran_now, passed_now),
        (ran + 1, passed + 1),
        "handed to the pool"
    );
    let want: Vec<(String, i64)> = [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(pairs(&db).await, want);

    // 3,000 commits of a 3.5 KB row each: at least one new 4 KiB page in
    // the log per commit, 12 MB with no checkpoint. Checkpointed after
    // every 1,000 frames, the log starts over and stays near 4 MB.
    db.orm()
        .execute_unprepared(
            "CREATE TABLE bodies (k INTEGER NOT NULL PRIMARY KEY, body TEXT NOT NULL)",
        )
        .await
        .unwrap();
    let body = "x".repeat(3500);
    for k in 0..3000_i64 {
        let s = db.statement(
            "INSERT INTO bodies (k, body) VALUES (?, ?)",
            [k.into(), body.clone().into()],
        );
        db.write_batch(vec![s]).await.unwrap();
    }
    // Most on the lane; those meeting a pending checkpoint on the pool.
    let (ran_end, passed_end) = db.inline_counts().unwrap();
    assert_eq!(ran_end + passed_end, ran_now + passed_now + 3000);
    assert!(
        ran_end >= ran_now + 2000,
        "the commits ran on the lane: {ran_end}"
    );
    let n: i64 = db
        .sqlite_read(|c| c.query_row("SELECT COUNT(*) FROM bodies", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(n, 3000, "every commit is there");
    let file: String = db
        .sqlite_read(|c| {
            c.query_row(
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    let wal = std::fs::metadata(format!("{file}-wal")).unwrap().len();
    assert!(
        wal < 8 << 20,
        "the log grew to {wal} bytes: no checkpoint ran"
    );
}

#[tokio::test]
async fn sqlite_runs_wal_normal_with_foreign_keys_and_busy_timeout() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = app.ctx.db();
    let get = |sql: &'static str| async move {
        let row = db
            .orm()
            .query_one_raw(db.statement(sql, []))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<String>(0)
            .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v.to_string()))
            .unwrap()
    };
    assert_eq!(get("PRAGMA journal_mode").await, "wal");
    assert_eq!(get("PRAGMA synchronous").await, "1", "NORMAL");
    assert_eq!(get("PRAGMA foreign_keys").await, "1");
    assert_eq!(get("PRAGMA busy_timeout").await, "10000");
}

sen_testkit::both_backends!(id; failed_migration_leaves_nothing_half_applied, write_transactions_queue_instead_of_failing, execute_all_binds_each_statement_and_fails_whole, write_batch_is_whole_and_outlives_its_caller, hot_path_answers_as_seaorm_does, inline_lane_commits_steps_aside_and_checkpoints);

async fn id(b: Backend) -> Backend {
    b
}
