//! Settings and feature flags: an app declares each one with a type,
//! limits and a default (`App::settings`); operators change them at
//! `/admin/apps/settings`; code reads them with [`flag`], [`integer`],
//! [`text`] or [`value`].
//!
//! Values live in `sen_settings` as JSON, one row per changed setting
//! (an unchanged setting has no row and reads as its default), so every
//! instance sees the same value. Reads are cached per process for
//! [`CACHE_TTL`]; a change is visible at once on the instance that made
//! it and within that bound everywhere else. Every value is validated
//! with the same rules as forms ([`Field::parse`]) before it is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde_json::Value as Json;

use crate::context::AppContext;
use crate::error::FieldError;
use crate::migrate::Migration;
use crate::resource::{Field, FieldKind};

/// How stale another instance's change may be when read.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// One declared setting.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Key (`field.name`), label, type and limits.
    pub field: Field,
    /// One sentence for the settings page.
    pub help: &'static str,
    /// The value until an operator changes it.
    pub default: Json,
}

impl Setting {
    fn of(field: Field, help: &'static str, default: Json) -> Self {
        Self {
            field,
            help,
            default,
        }
    }

    /// A feature flag (on/off).
    pub fn flag(key: &'static str, label: &'static str, help: &'static str, default: bool) -> Self {
        Self::of(Field::boolean(key, label), help, default.into())
    }

    /// A whole number in `min..=max`.
    pub fn integer(
        key: &'static str,
        label: &'static str,
        help: &'static str,
        (min, max): (i64, i64),
        default: i64,
    ) -> Self {
        Self::of(
            Field::integer(key, label, min, max).required(),
            help,
            default.into(),
        )
    }

    /// One line of text of at most `max` characters.
    pub fn text(
        key: &'static str,
        label: &'static str,
        help: &'static str,
        max: usize,
        default: &'static str,
    ) -> Self {
        Self::of(Field::text(key, label, max), help, default.into())
    }

    /// One of fixed values.
    pub fn choice(
        key: &'static str,
        label: &'static str,
        help: &'static str,
        values: &'static [&'static str],
        default: &'static str,
    ) -> Self {
        Self::of(
            Field::choice(key, label, values).required(),
            help,
            default.into(),
        )
    }

    /// The key.
    pub fn key(&self) -> &'static str {
        self.field.name
    }

    /// Checks the declaration: an identifier key and a default its own
    /// rules accept.
    pub fn check(&self) -> Result<(), String> {
        let k = self.field.name;
        let ok_key = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && k.len() <= 63
            && k.chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.'));
        if !ok_key {
            return Err(format!("setting key `{k}` must be lower-case"));
        }
        let raw = form_text(&self.default);
        let raw = (!(self.field.kind == FieldKind::Boolean && raw == "false")).then_some(raw);
        self.parse(raw.as_deref())
            .map(|_| ())
            .map_err(|e| format!("setting `{k}`: default {}", e.message))
    }

    /// The JSON value of a submitted form value, or why it is refused.
    pub fn parse(&self, raw: Option<&str>) -> Result<Json, FieldError> {
        Ok(match self.field.parse(raw)? {
            None => Json::String(String::new()),
            Some(sea_orm::Value::Bool(Some(b))) => b.into(),
            Some(sea_orm::Value::BigInt(Some(n))) => n.into(),
            Some(sea_orm::Value::String(Some(s))) => s.into(),
            Some(_) => Json::Null,
        })
    }
}

/// A JSON value as a form field shows it.
pub fn form_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// `(app, key)` → when read, and the stored value (None: default).
type Entries = HashMap<(String, String), (Instant, Option<Json>)>;

#[derive(Default)]
struct Cache(Mutex<Entries>);

fn cache(ctx: &AppContext) -> Arc<Cache> {
    if let Some(c) = ctx.extension::<Cache>() {
        return c;
    }
    let c = Arc::new(Cache::default());
    ctx.insert_extension(c.clone());
    c
}

/// The declaration of `app`'s setting `key`.
pub fn declared(ctx: &AppContext, app: &str, key: &str) -> Option<Setting> {
    ctx.apps()
        .iter()
        .find(|a| a.name() == app)?
        .settings()
        .into_iter()
        .find(|s| s.key() == key)
}

async fn stored(ctx: &AppContext, app: &str, key: &str) -> Result<Option<Json>, DbErr> {
    let k = (app.to_string(), key.to_string());
    let c = cache(ctx);
    if let Some((at, v)) = c.0.lock().unwrap_or_else(PoisonError::into_inner).get(&k)
        && at.elapsed() < CACHE_TTL
    {
        return Ok(v.clone());
    }
    let db = ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT value FROM sen_settings WHERE app = ? AND key = ?",
            [app.into(), key.into()],
        ))
        .await?;
    let v = match row {
        Some(r) => serde_json::from_str(&r.try_get::<String>("", "value")?).ok(),
        None => None,
    };
    c.0.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(k, (Instant::now(), v.clone()));
    Ok(v)
}

/// The current value of `app`'s setting `key` (its default when never
/// changed; `Null` when no such setting is declared).
pub async fn value(ctx: &AppContext, app: &str, key: &str) -> Result<Json, DbErr> {
    let Some(decl) = declared(ctx, app, key) else {
        return Ok(Json::Null);
    };
    Ok(stored(ctx, app, key).await?.unwrap_or(decl.default))
}

/// A feature flag's state (false when undeclared).
pub async fn flag(ctx: &AppContext, app: &str, key: &str) -> Result<bool, DbErr> {
    Ok(value(ctx, app, key).await?.as_bool().unwrap_or(false))
}

/// A number setting (0 when undeclared).
pub async fn integer(ctx: &AppContext, app: &str, key: &str) -> Result<i64, DbErr> {
    Ok(value(ctx, app, key).await?.as_i64().unwrap_or(0))
}

/// A text or choice setting ("" when undeclared).
pub async fn text(ctx: &AppContext, app: &str, key: &str) -> Result<String, DbErr> {
    Ok(value(ctx, app, key)
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Why a change was refused.
#[derive(Debug)]
pub enum SetError {
    /// No such setting.
    Unknown,
    /// The value breaks the setting's rules.
    Invalid(FieldError),
    /// The database failed.
    Db(DbErr),
}

impl From<DbErr> for SetError {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

/// Validates and stores `raw` (a form value; `None` for an unticked
/// flag) for `app`'s setting `key` on `conn` (the caller's transaction,
/// which also writes the audit record). Returns the stored JSON. Call
/// [`forget`] once the transaction has committed.
pub async fn set(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    app: &str,
    key: &str,
    raw: Option<&str>,
    by: &str,
) -> Result<Json, SetError> {
    let decl = declared(ctx, app, key).ok_or(SetError::Unknown)?;
    let v = decl.parse(raw).map_err(SetError::Invalid)?;
    let db = ctx.db();
    conn.execute_raw(db.statement(
        "INSERT INTO sen_settings (app, key, value, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (app, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        [
            app.into(),
            key.into(),
            v.to_string().into(),
            crate::clock::now().timestamp_millis().into(),
            by.into(),
        ],
    ))
    .await?;
    Ok(v)
}

/// Forgets cached values (after the transaction that changed them
/// committed, so a concurrent read cannot re-cache the old value).
pub fn forget(ctx: &AppContext) {
    cache(ctx)
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

/// Creates `sen_settings`.
pub struct CreateSettings;

#[async_trait]
impl Migration for CreateSettings {
    fn name(&self) -> &'static str {
        "0007_settings"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        tx.execute_unprepared(
            "CREATE TABLE sen_settings (
                app TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                updated_by TEXT NOT NULL,
                PRIMARY KEY (app, key)
            )",
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_type() {
        let n = Setting::integer("page_size", "Page size", "", (1, 100), 20);
        assert!(n.check().is_ok());
        assert_eq!(n.parse(Some("30")).unwrap(), Json::from(30));
        assert_eq!(n.parse(Some("0")).unwrap_err().code, "out_of_range");
        assert_eq!(n.parse(None).unwrap_err().code, "required");
        let f = Setting::flag("beta", "Beta", "", false);
        assert!(f.check().is_ok());
        assert_eq!(f.parse(Some("on")).unwrap(), Json::from(true));
        assert_eq!(f.parse(None).unwrap(), Json::from(false));
        let c = Setting::choice("mode", "Mode", "", &["a", "b"], "a");
        assert_eq!(c.parse(Some("c")).unwrap_err().code, "invalid_value");
        let bad = Setting::integer("n", "N", "", (1, 10), 50);
        assert!(bad.check().unwrap_err().contains("default"));
        let bad = Setting::flag("Bad Key", "B", "", true);
        assert!(bad.check().is_err());
    }
}
