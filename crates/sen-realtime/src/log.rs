//! The replay log: every published event gets the next sequence number of
//! its topic and is kept (bounded by count per topic and by age) so a
//! client can resume after a disconnect, on any instance. Sequence numbers
//! of a topic have no gaps, so an instance that receives event `n + 2`
//! before `n + 1` knows one is missing and reads it here.

use sea_orm::{ConnectionTrait, DbErr};
use sen_core::{AppContext, Backend};

/// One event as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Sequence number within the topic (the event id).
    pub seq: i64,
    /// Event name.
    pub name: String,
    /// JSON text.
    pub data: String,
}

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

/// Appends an event and returns its sequence number. `notify` builds the
/// PostgreSQL NOTIFY payload for the number (sent in the same transaction,
/// so it is delivered exactly when the event is committed).
pub async fn append(
    ctx: &AppContext,
    topic: &str,
    name: &str,
    data: &str,
    notify: Option<&(dyn Fn(i64) -> String + Send + Sync)>,
) -> Result<i64, DbErr> {
    let db = ctx.db();
    let now = now_ms();
    let keep = ctx.config().realtime_replay_len as i64;
    let tx = db.begin_write().await?;
    let row = tx
        .query_one_raw(db.statement(
            "INSERT INTO sen_realtime_topics (topic, seq, updated_at) VALUES (?, 1, ?)
             ON CONFLICT (topic) DO UPDATE SET seq = sen_realtime_topics.seq + 1, updated_at = excluded.updated_at
             RETURNING seq",
            [topic.into(), now.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
    let seq: i64 = row.try_get("", "seq")?;
    tx.execute_raw(db.statement(
        "INSERT INTO sen_realtime_events (topic, seq, name, data, created_at) VALUES (?, ?, ?, ?, ?)",
        [topic.into(), seq.into(), name.into(), data.into(), now.into()],
    ))
    .await?;
    // Trim to the configured length now and then rather than on every
    // publish; replay never serves more than `keep` events anyway.
    if seq > keep && seq % 16 == 0 {
        tx.execute_raw(db.statement(
            "DELETE FROM sen_realtime_events WHERE topic = ? AND seq <= ?",
            [topic.into(), (seq - keep).into()],
        ))
        .await?;
    }
    if let (Some(notify), Backend::Postgres) = (notify, db.backend()) {
        tx.execute_raw(db.statement(
            "SELECT pg_notify(?, ?)",
            [crate::bus::PG_CHANNEL.into(), notify(seq).into()],
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(seq)
}

/// The topic's last sequence number (0 when nothing was ever published).
pub async fn head(ctx: &AppContext, topic: &str) -> Result<i64, DbErr> {
    let db = ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT seq FROM sen_realtime_topics WHERE topic = ?",
            [topic.into()],
        ))
        .await?;
    match row {
        Some(r) => r.try_get("", "seq"),
        None => Ok(0),
    }
}

/// Events of `topic` with `after < seq <= upto`, oldest first, at most `limit`.
pub async fn range(
    ctx: &AppContext,
    topic: &str,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<Stored>, DbErr> {
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT seq, name, data FROM sen_realtime_events
             WHERE topic = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            [
                topic.into(),
                after.into(),
                upto.into(),
                (limit.min(i64::MAX as u64) as i64).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Stored {
                seq: r.try_get("", "seq")?,
                name: r.try_get("", "name")?,
                data: r.try_get("", "data")?,
            })
        })
        .collect()
}

/// What a client resuming from `since` should get.
#[derive(Debug)]
pub enum Resume {
    /// These events, in order, then live ones.
    Events(Vec<Stored>),
    /// The log does not cover the gap: tell the client to reload, then
    /// continue live from `head`.
    Reset,
}

/// Plans a resume of `topic` from `since` up to `head` (the last event the
/// caller's live stream has passed).
pub async fn resume(ctx: &AppContext, topic: &str, since: i64, head: i64) -> Result<Resume, DbErr> {
    if since == head {
        return Ok(Resume::Events(Vec::new()));
    }
    let keep = ctx.config().realtime_replay_len as i64;
    // An id from the future (another database, a reset log) or older than
    // the log keeps cannot be resumed from.
    if since > head || head - since > keep {
        return Ok(Resume::Reset);
    }
    let events = range(ctx, topic, since, head, keep as u64).await?;
    let complete =
        events.len() as i64 == head - since && events.first().is_some_and(|e| e.seq == since + 1);
    Ok(if complete {
        Resume::Events(events)
    } else {
        Resume::Reset
    })
}

/// Deletes events older than the configured age; returns how many.
pub async fn prune(ctx: &AppContext) -> Result<u64, DbErr> {
    let db = ctx.db();
    let cutoff = now_ms() - (ctx.config().realtime_replay_age_secs as i64) * 1000;
    let tx = db.begin_write().await?;
    let n = tx
        .execute_raw(db.statement(
            "DELETE FROM sen_realtime_events WHERE created_at < ?",
            [cutoff.into()],
        ))
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n)
}
