//! Addresses that must never be mailed again: hard bounces and complaints
//! (entered by an operator or a webhook for now), checked before every
//! delivery. Addresses are stored lower-cased.

use sea_orm::ConnectionTrait;
use sen_core::AppContext;

/// Why an address is suppressed.
pub const REASONS: [&str; 3] = ["bounce", "complaint", "manual"];

/// Whether `address` is suppressed.
pub async fn is_suppressed(ctx: &AppContext, address: &str) -> Result<bool, sea_orm::DbErr> {
    let db = ctx.db();
    Ok(db
        .orm()
        .query_one_raw(db.statement(
            "SELECT 1 AS x FROM sen_mail_suppressions WHERE address = ?",
            [address.trim().to_lowercase().into()],
        ))
        .await?
        .is_some())
}

/// Creates the suppression list (`mail` migration `0001_suppressions`).
pub struct CreateSuppressions;

#[async_trait::async_trait]
impl sen_core::migrate::Migration for CreateSuppressions {
    fn name(&self) -> &'static str {
        "0001_suppressions"
    }

    async fn up(&self, tx: &sea_orm::DatabaseTransaction) -> Result<(), sea_orm::DbErr> {
        tx.execute_unprepared(
            "CREATE TABLE sen_mail_suppressions (
                address TEXT NOT NULL PRIMARY KEY,
                reason TEXT NOT NULL,
                note TEXT,
                created_by TEXT,
                created_at BIGINT NOT NULL
            )",
        )
        .await?;
        Ok(())
    }
}
