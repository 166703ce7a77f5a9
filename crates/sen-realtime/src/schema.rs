//! The realtime tables, SQL both dialects accept. Times are BIGINT
//! milliseconds since the Unix epoch.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use sen_core::migrate::Migration;

/// The replay log (a sequence per topic, and its recent events) and the
/// per-user notifications.
pub struct CreateRealtimeTables;

const STATEMENTS: &[&str] = &[
    // One row per topic ever published to: its last sequence number. The
    // row lock serialises publishers of one topic, so sequence order is
    // commit order and a topic's events are numbered without gaps.
    "CREATE TABLE sen_realtime_topics (
        topic TEXT NOT NULL PRIMARY KEY,
        seq BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE sen_realtime_events (
        topic TEXT NOT NULL,
        seq BIGINT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (topic, seq)
    )",
    "CREATE INDEX sen_realtime_events_created ON sen_realtime_events (created_at)",
    "CREATE TABLE sen_notifications (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        data TEXT NOT NULL,
        read_at BIGINT,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX sen_notifications_user ON sen_notifications (user_id, id)",
];

#[async_trait::async_trait]
impl Migration for CreateRealtimeTables {
    fn name(&self) -> &'static str {
        "0001_realtime"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        for sql in STATEMENTS {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
