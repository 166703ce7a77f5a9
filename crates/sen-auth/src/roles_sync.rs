//! Mirrors the roles code declares into `sen_roles` at start-up, so SQL and
//! the admin UI see them. Idempotent; roles removed from code are deleted
//! (their grants stop granting anything at once, since permissions are
//! resolved from code, not from this table).

use sea_orm::ConnectionTrait;
use sen_core::AppContext;

/// Upserts every declared role and deletes the ones code no longer has.
pub async fn sync(ctx: &AppContext) -> Result<(), sea_orm::DbErr> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let now = sen_core::clock::now().timestamp_millis();
    let names: Vec<String> = ctx.rbac().roles().map(|r| r.name.clone()).collect();
    for role in ctx.rbac().roles() {
        let perms = serde_json::to_string(&role.permissions).unwrap_or_else(|_| "[]".into());
        tx.execute_raw(db.statement(
            "INSERT INTO sen_roles (name, app, title, permissions, synced_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET app = excluded.app, title = excluded.title,
             permissions = excluded.permissions, synced_at = excluded.synced_at",
            [
                role.name.clone().into(),
                role.app.clone().into(),
                role.title.clone().into(),
                perms.into(),
                now.into(),
            ],
        ))
        .await?;
    }
    let rows = tx
        .query_all_raw(db.statement("SELECT name FROM sen_roles", []))
        .await?;
    for r in rows {
        let name: String = r.try_get("", "name")?;
        if !names.contains(&name) {
            tx.execute_raw(db.statement("DELETE FROM sen_roles WHERE name = ?", [name.into()]))
                .await?;
        }
    }
    tx.commit().await
}
