//! Users: the row, how it is read, and how it is shown (`GET /api/v1/me`).

use sea_orm::{ConnectionTrait, QueryResult};
use sen_core::{AppContext, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

/// A user row as the authenticator and handlers use it.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Id (UUIDv7).
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Mood line.
    pub mood: Option<String>,
    /// Whether TOTP is on.
    pub mfa_enabled: bool,
    /// When created (ms).
    pub created_at: i64,
    /// When disabled (ms), if disabled.
    pub disabled_at: Option<i64>,
}

/// The columns [`UserRow::from_row`] reads, for `SELECT` lists.
pub const USER_COLUMNS: &str =
    "u.id, u.email, u.name, u.avatar_url, u.mood, u.mfa_enabled, u.created_at, u.disabled_at";

impl UserRow {
    /// Reads the [`USER_COLUMNS`] of a row.
    pub fn from_row(r: &QueryResult) -> Result<Self, sea_orm::DbErr> {
        Ok(Self {
            id: r.try_get("", "id")?,
            email: r.try_get("", "email")?,
            name: r.try_get("", "name")?,
            avatar_url: r.try_get("", "avatar_url")?,
            mood: r.try_get("", "mood")?,
            mfa_enabled: r.try_get("", "mfa_enabled")?,
            created_at: r.try_get("", "created_at")?,
            disabled_at: r.try_get("", "disabled_at")?,
        })
    }

    /// Reads the [`USER_COLUMNS`] of a row of SQLite's inline lane
    /// ([`sen_core::Db::sqlite_read`]).
    pub fn from_lite(r: &sen_core::rusqlite::Row<'_>) -> sen_core::rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            email: r.get("email")?,
            name: r.get("name")?,
            avatar_url: r.get("avatar_url")?,
            mood: r.get("mood")?,
            mfa_enabled: r.get("mfa_enabled")?,
            created_at: r.get("created_at")?,
            disabled_at: r.get("disabled_at")?,
        })
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Mood line.
    pub mood: Option<String>,
    /// Roles held (`role` or `role@scope`).
    pub roles: Vec<String>,
    /// Global permissions.
    pub permissions: Vec<String>,
    /// Whether TOTP is on.
    pub mfa_enabled: bool,
    /// Whether the account is disabled.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// When created (RFC 3339).
    pub created_at: String,
}

/// Milliseconds since the epoch as RFC 3339.
pub fn ms_to_iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(sen_core::clock::iso)
        .unwrap_or_default()
}

/// Role grants as `role` or `role@scope`.
pub fn grant_names(grants: &[sen_core::principal::Grant]) -> Vec<String> {
    grants
        .iter()
        .map(|g| {
            if g.scope.is_empty() {
                g.role.clone()
            } else {
                format!("{}@{}", g.role, g.scope)
            }
        })
        .collect()
}

impl UserView {
    /// The view of `u` holding `grants`.
    pub fn new(ctx: &AppContext, u: &UserRow, grants: &[sen_core::principal::Grant]) -> Self {
        let permissions = ctx
            .rbac()
            .permissions_of(
                grants
                    .iter()
                    .filter(|g| g.scope.is_empty())
                    .map(|g| g.role.as_str()),
            )
            .into_iter()
            .collect();
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            avatar_url: u.avatar_url.clone(),
            mood: u.mood.clone(),
            roles: grant_names(grants),
            permissions,
            mfa_enabled: u.mfa_enabled,
            disabled: u.disabled_at.is_some(),
            created_at: ms_to_iso(u.created_at),
        }
    }
}

/// Normalises an email (trimmed, lower-cased) or says what is wrong with it.
pub fn normalise_email(field: &str, raw: &str) -> Result<String, FieldError> {
    let email = raw.trim().to_lowercase();
    let bad = |m: &str| FieldError::new(field, "invalid_email", m);
    if email.len() > 254 {
        return Err(bad("must be at most 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad("must be an email address"));
    };
    let ok_local = !local.is_empty() && local.len() <= 64;
    let ok_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    if !ok_local
        || !ok_domain
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
        || local.contains('@')
    {
        return Err(bad("must be an email address"));
    }
    Ok(email)
}

/// Checks a display name: 1–100 characters, no control characters.
pub fn check_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let name = raw.trim().to_string();
    let n = name.chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "invalid_name",
            "must be 1–100 characters without control characters",
        ));
    }
    Ok(name)
}

/// Checks a new account's `email`, `name` and `password` together (one
/// 422 listing every field that fails); answers the normalised email and name.
pub fn check_new_account(
    email: &str,
    name: &str,
    password: &str,
) -> Result<(String, String), sen_core::AppError> {
    let mut errors = Vec::new();
    let email = normalise_email("email", email)
        .map_err(|e| errors.push(e))
        .ok();
    let name = check_name("name", name).map_err(|e| errors.push(e)).ok();
    if let Err(e) = crate::password::check_policy("password", password) {
        errors.extend(e.field_errors().iter().cloned());
    }
    match (email, name) {
        (Some(email), Some(name)) if errors.is_empty() => Ok((email, name)),
        _ => Err(sen_core::AppError::validation(errors)),
    }
}

/// Reads a user by id with their grants.
pub async fn by_id(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<(UserRow, Vec<sen_core::principal::Grant>)>, sea_orm::DbErr> {
    let db = ctx.db();
    let row = conn
        .query_one_raw(db.statement(
            &format!("SELECT {USER_COLUMNS} FROM sen_users u WHERE u.id = ?"),
            [id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let user = UserRow::from_row(&row)?;
    let grants = grants_of(ctx, conn, id).await?;
    Ok(Some((user, grants)))
}

/// A user's role grants, sorted.
pub async fn grants_of(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    user_id: &str,
) -> Result<Vec<sen_core::principal::Grant>, sea_orm::DbErr> {
    let db = ctx.db();
    let rows = conn
        .query_all_raw(db.statement(
            "SELECT role, scope FROM sen_user_roles WHERE user_id = ? ORDER BY role, scope",
            [user_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(sen_core::principal::Grant {
                role: r.try_get("", "role")?,
                scope: r.try_get("", "scope")?,
            })
        })
        .collect()
}

/// The role grants of several users in one query (a page of the admin
/// list), by user id; users without grants are absent.
pub async fn grants_of_many(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    user_ids: &[&str],
) -> Result<std::collections::HashMap<String, Vec<sen_core::principal::Grant>>, sea_orm::DbErr> {
    let mut out: std::collections::HashMap<String, Vec<_>> = std::collections::HashMap::new();
    if user_ids.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; user_ids.len()].join(", ");
    let sql = format!(
        "SELECT user_id, role, scope FROM sen_user_roles WHERE user_id IN ({marks}) ORDER BY user_id, role, scope"
    );
    let values: Vec<sea_orm::Value> = user_ids.iter().map(|id| (*id).into()).collect();
    let rows = conn.query_all_raw(ctx.db().statement(&sql, values)).await?;
    for r in &rows {
        out.entry(r.try_get("", "user_id")?)
            .or_default()
            .push(sen_core::principal::Grant {
                role: r.try_get("", "role")?,
                scope: r.try_get("", "scope")?,
            });
    }
    Ok(out)
}

/// A select-list column `grants` holding user `u`'s role grants as
/// `role|scope,role|scope`, so the user and their grants come in one query
/// (read it back with [`parse_grants`]).
pub fn grants_column(backend: sen_core::Backend) -> &'static str {
    match backend {
        sen_core::Backend::Sqlite => {
            "(SELECT group_concat(r.role || '|' || r.scope, ',') FROM sen_user_roles r WHERE r.user_id = u.id) AS grants"
        }
        sen_core::Backend::Postgres => {
            "(SELECT string_agg(r.role || '|' || r.scope, ',') FROM sen_user_roles r WHERE r.user_id = u.id) AS grants"
        }
    }
}

/// Reads the `grants` column of [`grants_column`] into sorted grants.
pub fn parse_grants(agg: Option<&str>) -> Vec<sen_core::principal::Grant> {
    let mut grants: Vec<_> = agg
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|g| {
            let (role, scope) = g.split_once('|').unwrap_or((g, ""));
            sen_core::principal::Grant {
                role: role.to_string(),
                scope: scope.to_string(),
            }
        })
        .collect();
    grants.sort();
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_rejected() {
        assert_eq!(
            normalise_email("e", "  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "ann@localhost",
            "a b@x.com",
            "a@x..",
            "a@@x.com",
        ] {
            assert!(normalise_email("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grant_aggregates_parse() {
        let g = parse_grants(Some("owner|,inventory.admin|agency-7"));
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].role, "inventory.admin");
        assert_eq!(g[0].scope, "agency-7");
        assert_eq!(grant_names(&g), vec!["inventory.admin@agency-7", "owner"]);
        assert!(parse_grants(None).is_empty());
    }
}
