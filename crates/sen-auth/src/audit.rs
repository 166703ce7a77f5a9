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
