//! The audit log: who did what to whom, from where. Never secrets: callers
//! pass ids and outcomes, not passwords, tokens or codes.

use sea_orm::ConnectionTrait;
use sen_core::Db;

/// One audit entry to write.
pub struct Entry<'a> {
    /// The acting user, when known.
    pub actor: Option<&'a str>,
    /// What happened (`login.success`, `role.grant`, …).
    pub action: &'a str,
    /// What it happened to (a user id, a key id), when anything.
    pub target: Option<&'a str>,
    /// The client address.
    pub ip: Option<&'a str>,
    /// Extra facts (JSON object; never secrets).
    pub detail: serde_json::Value,
}

/// Writes `entry` on `conn` (inside the caller's transaction when given one).
pub async fn record(
    db: &Db,
    conn: &impl ConnectionTrait,
    entry: Entry<'_>,
) -> Result<(), sea_orm::DbErr> {
    conn.execute_raw(insert(db, entry)).await.map(|_| ())
}

/// How far an entry's id time may stray from its `at` (both read the
/// system clock when the entry is written; this covers a clock step
/// between the two reads).
pub const ID_SLACK_MS: i64 = 3_600_000;

/// The smallest entry id (a UUIDv7) of millisecond `ms`: ids order entries
/// by time, so time filters bound the id as well as `at` and the listing,
/// ordered by id, walks only that range of the primary key instead of
/// needing an index on `at` (one B-tree less to write per entry).
pub fn id_floor(ms: i64) -> String {
    let ms = ms.clamp(0, (1i64 << 48) - 1) as u64;
    uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10])
        .into_uuid()
        .to_string()
}

/// The statement that writes `entry`, for callers that send it together
/// with their own ([`Db::execute_all`]).
pub fn insert(db: &Db, entry: Entry<'_>) -> sea_orm::Statement {
    db.statement(
        "INSERT INTO sen_audit (id, at, actor_id, action, target, ip, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            uuid::Uuid::now_v7().to_string().into(),
            sen_core::clock::now().timestamp_millis().into(),
            entry.actor.map(str::to_string).into(),
            entry.action.into(),
            entry.target.map(str::to_string).into(),
            entry.ip.map(str::to_string).into(),
            entry.detail.to_string().into(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_floor_orders_with_the_ids_of_its_millisecond() {
        let now = uuid::Uuid::now_v7().to_string();
        let ms = sen_core::clock::now().timestamp_millis();
        assert!(id_floor(ms - 5) < now, "{now}");
        assert!(id_floor(ms + 5) > now, "{now}");
        assert_eq!(id_floor(-1), id_floor(0));
        assert_eq!(id_floor(i64::MAX), "ffffffff-ffff-7000-8000-000000000000");
    }
}
