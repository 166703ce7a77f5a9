//! What `sen admin create` does: the first owner, from the command line,
//! with the same email and password rules as registration.

use sen_core::AppContext;

use crate::audit::{self, Entry};
use crate::password::check_policy;
use crate::state::AuthState;
use crate::users::{check_name, normalise_email};

/// Creates a user holding the `owner` role and returns `(id, normalised
/// email)`; the error says what to fix.
pub async fn create_owner(
    ctx: &AppContext,
    email: &str,
    name: Option<&str>,
    password: String,
) -> anyhow::Result<(String, String)> {
    let state = AuthState::of(ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let email =
        normalise_email("email", email).map_err(|e| anyhow::anyhow!("email {}", e.message))?;
    let default_name = email.split('@').next().unwrap_or("admin").to_string();
    let name = check_name("name", name.unwrap_or(&default_name))
        .map_err(|e| anyhow::anyhow!("name {}", e.message))?;
    check_policy("password", &password).map_err(|e| {
        anyhow::anyhow!(
            "password {}",
            e.field_errors()
                .first()
                .map(|f| f.message.clone())
                .unwrap_or_default()
        )
    })?;
    let hash = state
        .passwords
        .hash(password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let id = crate::routes::admin::create_in(ctx, &tx, &email, &name, &hash)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sea_orm::ConnectionTrait::execute_raw(
        &tx,
        db.statement(
            "INSERT INTO sen_user_roles (user_id, role, scope, created_at) VALUES (?, 'owner', '', ?)",
            [id.clone().into(), sen_core::clock::now().timestamp_millis().into()],
        ),
    )
    .await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: None,
            action: "admin.cli.create_owner",
            target: Some(&id),
            ip: None,
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((id, email))
}
