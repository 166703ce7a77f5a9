//! Schema migrations written once for both backends (SeaQuery builders, or SQL
//! that both dialects accept), applied in order and recorded per app in the
//! `sen_migrations` table.
//!
//! Each migration runs in its own transaction together with the row that
//! records it, so a failed migration leaves nothing half-applied (both SQLite
//! and PostgreSQL have transactional DDL). Concurrent runners are serialised:
//! SQLite by `BEGIN IMMEDIATE`, PostgreSQL by an advisory transaction lock.

use async_trait::async_trait;
use sea_orm::sea_query::{Alias, ColumnDef, Table};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};

use crate::db::{Backend, Db};

/// One schema change owned by an app. `name` sorts in application order
/// (`0001_create_posts`) and must never change once released.
#[async_trait]
pub trait Migration: Send + Sync {
    /// Stable, ordered name, unique within the app.
    fn name(&self) -> &'static str;
    /// Applies the change inside `tx`.
    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr>;
}

/// A migration made of schema statements built with SeaQuery, which render
/// for whichever backend runs them.
pub struct SchemaMigration {
    name: &'static str,
    statements: Vec<Box<dyn Fn(DbBackend) -> Statement + Send + Sync>>,
}

impl SchemaMigration {
    /// An empty migration called `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            statements: Vec::new(),
        }
    }

    /// Adds a SeaQuery schema statement (table, index, …).
    pub fn statement<S>(mut self, stmt: S) -> Self
    where
        S: sea_orm::StatementBuilder + Send + Sync + 'static,
    {
        self.statements
            .push(Box::new(move |backend| backend.build(&stmt)));
        self
    }
}

#[async_trait]
impl Migration for SchemaMigration {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let backend = tx.get_database_backend();
        for build in &self.statements {
            tx.execute_raw(build(backend)).await?;
        }
        Ok(())
    }
}

/// A migration of one app, as the runner sees it.
pub struct AppMigration<'a> {
    /// The app that owns it.
    pub app: &'a str,
    /// The migration.
    pub migration: &'a dyn Migration,
}

impl AppMigration<'_> {
    /// `app/name`, how status output and errors refer to it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.app, self.migration.name())
    }
}

/// What `sen migrate status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Applied migrations (`app/name`), in order.
    pub applied: Vec<String>,
    /// Migrations this binary knows that are not applied yet.
    pub pending: Vec<String>,
    /// Applied migrations this binary does not know (a newer binary ran).
    pub unknown: Vec<String>,
}

async fn ensure_table(db: &Db) -> Result<(), DbErr> {
    let stmt = Table::create()
        .table(Alias::new("sen_migrations"))
        .if_not_exists()
        .col(ColumnDef::new(Alias::new("app")).string().not_null())
        .col(ColumnDef::new(Alias::new("name")).string().not_null())
        .col(ColumnDef::new(Alias::new("applied_at")).string().not_null())
        .primary_key(
            sea_orm::sea_query::Index::create()
                .col(Alias::new("app"))
                .col(Alias::new("name")),
        )
        .to_owned();
    let backend = db.orm().get_database_backend();
    match db.orm().execute_raw(backend.build(&stmt)).await {
        Ok(_) => Ok(()),
        // Two processes racing to create the table on PostgreSQL: the loser
        // sees a unique violation on the catalog; the table exists either way.
        Err(_) if table_exists(db).await? => Ok(()),
        Err(e) => Err(e),
    }
}

async fn table_exists(db: &Db) -> Result<bool, DbErr> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sen_migrations'"
        }
        Backend::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'sen_migrations' AND table_schema = current_schema()"
        }
    };
    Ok(db
        .orm()
        .query_one_raw(Statement::from_string(db.orm().get_database_backend(), sql))
        .await?
        .is_some())
}

async fn applied(conn: &impl ConnectionTrait) -> Result<Vec<(String, String)>, DbErr> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT app, name FROM sen_migrations ORDER BY applied_at, app, name",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String>("", "app")?,
                r.try_get::<String>("", "name")?,
            ))
        })
        .collect()
}

/// Reports applied, pending and unknown migrations without changing anything.
pub async fn status(db: &Db, known: &[AppMigration<'_>]) -> Result<MigrationStatus, DbErr> {
    let done = if table_exists(db).await? {
        applied(db.orm()).await?
    } else {
        Vec::new()
    };
    let is_done = |app: &str, name: &str| done.iter().any(|(a, n)| a == app && n == name);
    Ok(MigrationStatus {
        applied: done.iter().map(|(a, n)| format!("{a}/{n}")).collect(),
        pending: known
            .iter()
            .filter(|m| !is_done(m.app, m.migration.name()))
            .map(AppMigration::id)
            .collect(),
        unknown: done
            .iter()
            .filter(|(a, n)| !known.iter().any(|m| m.app == a && m.migration.name() == n))
            .map(|(a, n)| format!("{a}/{n}"))
            .collect(),
    })
}

/// Applies every pending migration in order; returns the ids applied.
pub async fn up(db: &Db, known: &[AppMigration<'_>]) -> Result<Vec<String>, DbErr> {
    ensure_table(db).await?;
    let mut ran = Vec::new();
    for m in known {
        let tx = db.begin_write().await?;
        if db.backend() == Backend::Postgres {
            // Serialises concurrent `sen migrate` runs; released at commit.
            tx.execute_unprepared("SELECT pg_advisory_xact_lock(7310027561)")
                .await?;
        }
        let exists = tx
            .query_one_raw(Statement::from_sql_and_values(
                tx.get_database_backend(),
                match db.backend() {
                    Backend::Sqlite => "SELECT 1 FROM sen_migrations WHERE app = ? AND name = ?",
                    Backend::Postgres => {
                        "SELECT 1 FROM sen_migrations WHERE app = $1 AND name = $2"
                    }
                },
                [m.app.into(), m.migration.name().into()],
            ))
            .await?
            .is_some();
        if exists {
            tx.rollback().await?;
            continue;
        }
        m.migration
            .up(&tx)
            .await
            .map_err(|e| DbErr::Migration(format!("{} failed: {e}", m.id())))?;
        tx.execute_raw(Statement::from_sql_and_values(
            tx.get_database_backend(),
            match db.backend() {
                Backend::Sqlite => {
                    "INSERT INTO sen_migrations (app, name, applied_at) VALUES (?, ?, ?)"
                }
                Backend::Postgres => {
                    "INSERT INTO sen_migrations (app, name, applied_at) VALUES ($1, $2, $3)"
                }
            },
            [
                m.app.into(),
                m.migration.name().into(),
                crate::clock::now_iso().into(),
            ],
        ))
        .await?;
        tx.commit().await?;
        tracing::info!(migration = %m.id(), "migration applied");
        ran.push(m.id());
    }
    Ok(ran)
}
