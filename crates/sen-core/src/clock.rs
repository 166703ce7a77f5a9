//! Time in one place: UTC, stored as RFC 3339 text with microseconds so it
//! sorts lexically on SQLite and parses on PostgreSQL.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Now as fixed-width RFC 3339 text (`2026-11-22T03:44:02.123456Z`).
pub fn now_iso() -> String {
    iso(now())
}

/// A time as fixed-width RFC 3339 text.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
