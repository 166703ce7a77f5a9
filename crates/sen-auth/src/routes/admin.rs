//! `/api/v1/admin/{users,roles,audit}`: user management for operators.
//! Every handler checks its permission first; each change is audited in
//! the transaction that makes it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path, Query};
use sen_core::rbac::{PermissionInfo, RoleInfo};
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, Entry};
use crate::request_meta::Meta;
use crate::state::AuthState;
use crate::users::{self, USER_COLUMNS, UserRow, UserView, check_name};

type Problem = sen_core::error::Problem;

/// The admin routes of the identity app.
pub fn routes() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, patch_user))
        .routes(routes!(put_roles))
        .routes(routes!(list_roles))
        .routes(routes!(list_audit))
}

fn limit_of(l: Option<u32>) -> u32 {
    l.unwrap_or(50).clamp(1, 200)
}

/// Filters for the user list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Matches email or name (substring).
    pub q: Option<String>,
    /// Only holders of this role (globally or scoped).
    pub role: Option<String>,
    /// Only active or only disabled accounts; both when absent.
    #[param(inline)]
    pub status: Option<UserStatus>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An account's state, as a list filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// Can sign in.
    Active,
    /// Disabled by an operator: no sign-in, sessions and keys refused.
    Disabled,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Users, oldest first.
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Lists and searches users.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(UserQuery), responses(
    (status = 200, description = "A page of users", body = UserPage),
    (status = 403, description = "Lacks `auth:users.read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_users(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<UserQuery>,
) -> AppResult<Json<UserPage>> {
    me.require("auth:users.read")?;
    let limit = limit_of(q.limit);
    let pattern = format!(
        "%{}%",
        q.q.unwrap_or_default()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut sql = format!(
        "SELECT {USER_COLUMNS} FROM sen_users u WHERE u.id > ? AND (LOWER(u.email) LIKE ? ESCAPE '\\' OR LOWER(u.name) LIKE ? ESCAPE '\\')"
    );
    let mut values: Vec<sea_orm::Value> = vec![
        q.cursor.unwrap_or_default().into(),
        pattern.clone().into(),
        pattern.into(),
    ];
    if let Some(role) = q.role.filter(|r| !r.is_empty()) {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM sen_user_roles r WHERE r.user_id = u.id AND r.role = ?)",
        );
        values.push(role.into());
    }
    match q.status {
        Some(UserStatus::Active) => sql.push_str(" AND u.disabled_at IS NULL"),
        Some(UserStatus::Disabled) => sql.push_str(" AND u.disabled_at IS NOT NULL"),
        None => {}
    }
    sql.push_str(" ORDER BY u.id LIMIT ?");
    values.push(i64::from(limit + 1).into());
    let db = ctx.db();
    let rows = db.orm().query_all_raw(db.statement(&sql, values)).await?;
    let page = rows
        .iter()
        .take(limit as usize)
        .map(UserRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<&str> = page.iter().map(|u| u.id.as_str()).collect();
    let mut grants = users::grants_of_many(&ctx, db.orm(), &ids).await?;
    let items: Vec<UserView> = page
        .iter()
        .map(|u| UserView::new(&ctx, u, grants.remove(&u.id).as_deref().unwrap_or_default()))
        .collect();
    let next_cursor = (rows.len() > limit as usize)
        .then(|| items.last().map(|u| u.id.clone()))
        .flatten();
    Ok(Json(UserPage { items, next_cursor }))
}

/// An operator creating a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Initial password.
    pub password: String,
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = CreateUser, responses(
    (status = 201, description = "Created", body = UserView),
    (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_user(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Json(body): Json<CreateUser>,
) -> AppResult<Response> {
    me.require("auth:users.write")?;
    let state = AuthState::of(&ctx)?;
    let (email, name) = users::check_new_account(&body.email, &body.name, &body.password)?;
    let hash = state.passwords.hash(body.password).await?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let id = create_in(&ctx, &tx, &email, &name, &hash).await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "admin.user.create",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    let (user, grants) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView::new(&ctx, &user, &grants)),
    )
        .into_response())
}

/// Inserts a user row; 409 `email_taken` when the email is in use.
pub async fn create_in(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    email: &str,
    name: &str,
    password_hash: &str,
) -> AppResult<String> {
    let db = ctx.db();
    let id = uuid::Uuid::now_v7().to_string();
    let now = sen_core::clock::now().timestamp_millis();
    let taken = conn
        .query_one_raw(db.statement("SELECT id FROM sen_users WHERE email = ?", [email.into()]))
        .await?
        .is_some();
    let inserted = if taken {
        None
    } else {
        Some(
            conn.execute_raw(db.statement(
                "INSERT INTO sen_users (id, email, name, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [id.clone().into(), email.into(), name.into(), password_hash.into(), now.into(), now.into()],
            ))
            .await,
        )
    };
    match inserted {
        Some(Ok(_)) => Ok(id),
        Some(Err(e))
            if !matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Err(e.into())
        }
        _ => Err(AppError::conflict(
            "email_taken",
            "An account with this email already exists.",
        )),
    }
}

/// One user, for operators.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_user(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<UserView>> {
    me.require("auth:users.read")?;
    let (user, grants) = users::by_id(&ctx, ctx.db().orm(), &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(UserView::new(&ctx, &user, &grants)))
}

/// What an operator may change on a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// Disable (true) or enable (false). Disabling ends every session and
    /// API key use at once.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Disables, enables or renames a user.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = PatchUser,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Updated", body = UserView),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
))]
pub async fn patch_user(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
    Json(body): Json<PatchUser>,
) -> AppResult<Json<UserView>> {
    me.require("auth:users.write")?;
    let name = match &body.name {
        Some(n) => Some(check_name("name", n).map_err(|e| AppError::validation(vec![e]))?),
        None => None,
    };
    if body.disabled == Some(true) && id == me.user_id {
        return Err(AppError::conflict(
            "cannot_disable_self",
            "You cannot disable your own account.",
        ));
    }
    let db = ctx.db();
    let now = sen_core::clock::now().timestamp_millis();
    let tx = db.begin_write().await?;
    let (target, grants) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    if grants.iter().any(|g| g.role == "owner") && !me.has("auth:roles.owner") {
        return Err(sen_core::principal::forbidden("auth:roles.owner"));
    }
    if let Some(name) = name {
        tx.execute_raw(db.statement(
            "UPDATE sen_users SET name = ?, updated_at = ? WHERE id = ?",
            [name.into(), now.into(), id.clone().into()],
        ))
        .await?;
    }
    match body.disabled {
        Some(true) if target.disabled_at.is_none() => {
            tx.execute_raw(db.statement(
                "UPDATE sen_users SET disabled_at = ?, updated_at = ? WHERE id = ?",
                [now.into(), now.into(), id.clone().into()],
            ))
            .await?;
            crate::sessions::revoke_all_but(&ctx, &tx, &id, None, "user_disabled").await?;
            audit_admin(&ctx, &tx, &me, &meta, "admin.user.disable", &id).await?;
        }
        Some(false) if target.disabled_at.is_some() => {
            tx.execute_raw(db.statement(
                "UPDATE sen_users SET disabled_at = NULL, updated_at = ? WHERE id = ?",
                [now.into(), id.clone().into()],
            ))
            .await?;
            audit_admin(&ctx, &tx, &me, &meta, "admin.user.enable", &id).await?;
        }
        _ => {}
    }
    let (user, grants) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(Json(UserView::new(&ctx, &user, &grants)))
}

async fn audit_admin(
    ctx: &AppContext,
    conn: &impl ConnectionTrait,
    me: &Principal,
    meta: &Meta,
    action: &str,
    target: &str,
) -> Result<(), sea_orm::DbErr> {
    audit::record(
        ctx.db(),
        conn,
        Entry {
            actor: Some(&me.user_id),
            action,
            target: Some(target),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await
}

/// One role grant in a request.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// Full role name (`owner`, `inventory.admin`).
    pub role: String,
    /// Resource id the role is limited to; absent for global.
    #[serde(default)]
    pub scope: Option<String>,
}

/// The complete set of a user's roles.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoles {
    /// Every grant the user should hold afterwards.
    pub roles: Vec<GrantBody>,
}

fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

/// Replaces a user's roles (global or scoped to a resource).
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/roles", tag = "admin", request_body = PutRoles,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user with the new roles", body = UserView),
        (status = 403, description = "Lacks `auth:roles.write` (or `auth:roles.owner` for owner)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown role or bad scope", body = Problem, content_type = "application/problem+json"),
))]
pub async fn put_roles(
    State(ctx): State<AppContext>,
    me: Principal,
    meta: Meta,
    Path(id): Path<String>,
    Json(body): Json<PutRoles>,
) -> AppResult<Json<UserView>> {
    me.require("auth:roles.write")?;
    let mut errors = Vec::new();
    let mut wanted = std::collections::BTreeSet::new();
    for (i, g) in body.roles.iter().enumerate() {
        if ctx.rbac().role(&g.role).is_none() {
            errors.push(FieldError::new(
                format!("roles[{i}].role"),
                "unknown_role",
                format!("no role `{}` is declared", g.role),
            ));
        }
        let scope = g.scope.clone().unwrap_or_default();
        if g.scope.is_some() && !valid_scope(&scope) {
            errors.push(FieldError::new(
                format!("roles[{i}].scope"),
                "invalid_scope",
                "must be 1–128 characters of A-Z, a-z, 0-9, '-', '_', ':', '.'",
            ));
        }
        wanted.insert((g.role.clone(), scope));
    }
    if body.roles.len() > 100 {
        errors.push(FieldError::new("roles", "too_many", "at most 100 grants"));
    }
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let (_, before) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    let before: std::collections::BTreeSet<(String, String)> =
        before.into_iter().map(|g| (g.role, g.scope)).collect();
    let touches_owner = before
        .symmetric_difference(&wanted)
        .any(|(r, _)| r == "owner");
    if touches_owner {
        me.require("auth:roles.owner")?;
    }
    let now = sen_core::clock::now().timestamp_millis();
    for (role, scope) in before.difference(&wanted) {
        tx.execute_raw(db.statement(
            "DELETE FROM sen_user_roles WHERE user_id = ? AND role = ? AND scope = ?",
            [id.clone().into(), role.clone().into(), scope.clone().into()],
        ))
        .await?;
        audit::record(
            db,
            &tx,
            Entry {
                actor: Some(&me.user_id),
                action: "role.revoke",
                target: Some(&id),
                ip: meta.ip.as_deref(),
                detail: serde_json::json!({"role": role, "scope": scope}),
            },
        )
        .await?;
    }
    for (role, scope) in wanted.difference(&before) {
        tx.execute_raw(db.statement(
            "INSERT INTO sen_user_roles (user_id, role, scope, granted_by, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                id.clone().into(),
                role.clone().into(),
                scope.clone().into(),
                me.user_id.clone().into(),
                now.into(),
            ],
        ))
        .await?;
        audit::record(
            db,
            &tx,
            Entry {
                actor: Some(&me.user_id),
                action: "role.grant",
                target: Some(&id),
                ip: meta.ip.as_deref(),
                detail: serde_json::json!({"role": role, "scope": scope}),
            },
        )
        .await?;
    }
    let (user, grants) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(Json(UserView::new(&ctx, &user, &grants)))
}

/// Roles and permissions as code declares them.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleCatalogue {
    /// Every role.
    pub roles: Vec<RoleInfo>,
    /// Every permission.
    pub permissions: Vec<PermissionInfo>,
    /// How many users hold each role (globally or scoped); absent = none.
    pub holders: std::collections::BTreeMap<String, i64>,
}

/// Every declared role and permission.
#[utoipa::path(get, path = "/api/v1/admin/roles", tag = "admin", responses(
    (status = 200, description = "The catalogue", body = RoleCatalogue),
))]
pub async fn list_roles(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<RoleCatalogue>> {
    me.require("auth:users.read")?;
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT role, COUNT(DISTINCT user_id) AS n FROM sen_user_roles GROUP BY role",
            [],
        ))
        .await?;
    let holders = rows
        .iter()
        .map(|r| Ok((r.try_get("", "role")?, r.try_get("", "n")?)))
        .collect::<Result<_, sea_orm::DbErr>>()?;
    Ok(Json(RoleCatalogue {
        roles: ctx.rbac().roles().cloned().collect(),
        permissions: ctx.rbac().permissions().cloned().collect(),
        holders,
    }))
}

/// Filters for the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this actor's entries.
    pub actor: Option<String>,
    /// Only this action (`login.failure`).
    pub action: Option<String>,
    /// Only entries about this target.
    pub target: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    pub until: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn time_filter(field: &str, value: Option<&str>) -> AppResult<Option<i64>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    AppError::validation(vec![FieldError::new(
                        field,
                        "invalid_time",
                        "must be an RFC 3339 time",
                    )])
                })
        })
        .transpose()
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: String,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor_id: Option<String>,
    /// What.
    pub action: String,
    /// To whom or what.
    pub target: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for older entries.
    pub next_cursor: Option<String>,
}

/// Reads the audit log.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery), responses(
    (status = 200, description = "A page, newest first", body = AuditPage),
    (status = 403, description = "Lacks `auth:audit.read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_audit(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<AuditQuery>,
) -> AppResult<Json<AuditPage>> {
    me.require("auth:audit.read")?;
    let limit = limit_of(q.limit);
    let mut sql = String::from(
        "SELECT id, at, actor_id, action, target, ip, detail FROM sen_audit WHERE 1 = 1",
    );
    let mut values: Vec<sea_orm::Value> = Vec::new();
    if let Some(c) = q.cursor {
        sql.push_str(" AND id < ?");
        values.push(c.into());
    }
    for (col, v) in [
        ("actor_id", q.actor),
        ("action", q.action),
        ("target", q.target),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} = ?"));
            values.push(v.into());
        }
    }
    // Ids are UUIDv7 of the write time, so the id range narrows the scan of
    // the primary key and `at` decides exactly.
    if let Some(t) = time_filter("since", q.since.as_deref())? {
        sql.push_str(" AND at >= ? AND id >= ?");
        values.push(t.into());
        values.push(audit::id_floor(t.saturating_sub(audit::ID_SLACK_MS)).into());
    }
    if let Some(t) = time_filter("until", q.until.as_deref())? {
        sql.push_str(" AND at < ? AND id < ?");
        values.push(t.into());
        values.push(audit::id_floor(t.saturating_add(audit::ID_SLACK_MS)).into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::from(limit + 1).into());
    let db = ctx.db();
    let rows = db.orm().query_all_raw(db.statement(&sql, values)).await?;
    let mut items = Vec::new();
    for r in rows.iter().take(limit as usize) {
        items.push(AuditEntry {
            id: r.try_get("", "id")?,
            at: users::ms_to_iso(r.try_get("", "at")?),
            actor_id: r.try_get("", "actor_id")?,
            action: r.try_get("", "action")?,
            target: r.try_get("", "target")?,
            ip: r.try_get("", "ip")?,
            detail: serde_json::from_str(&r.try_get::<String>("", "detail")?)
                .unwrap_or(serde_json::Value::Null),
        });
    }
    let next_cursor = (rows.len() > limit as usize)
        .then(|| items.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(AuditPage { items, next_cursor }))
}
