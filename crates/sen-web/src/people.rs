//! Operators managing users: create one, see one with its roles, grant or
//! remove a role globally or scoped to a resource id, and the read-only
//! catalogue of roles and permissions that code declares — through the
//! `/api/v1/admin` handlers (`auth:users.*`, `auth:roles.*`).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_auth::routes::admin::{self as api, GrantBody};
use sen_core::extract::{Json, Path};
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::Deserialize;

use crate::admin::gate;
use crate::page::{Frame, csrf_ok, describe, forbidden, html, see_other};

/// The create form.
#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/apps/users`: creates a user, then shows it.
pub async fn create(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Form(form): Form<NewUserForm>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/users") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) || !me.has("auth:users.write") {
        return Ok(forbidden(f));
    }
    let body = api::CreateUser {
        email: form.email,
        name: form.name,
        password: form.password,
    };
    match api::create_user(State(ctx.clone()), me, meta, Json(body)).await {
        Ok(r) => {
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
                .await
                .map_err(AppError::internal)?;
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(AppError::internal)?;
            Ok(see_other(&format!(
                "/admin/apps/users/{}",
                v["id"].as_str().unwrap_or_default()
            )))
        }
        Err(e) if e.status().is_client_error() => Ok(html(
            e.status(),
            &crate::admin::Users {
                f,
                q: String::new(),
                role: String::new(),
                status: "",
                users: Vec::new(),
                next_cursor: None,
                can_write: true,
                error: Some(describe(&e)),
            },
        )),
        Err(e) => Err(e),
    }
}

/// One grant.
pub struct GrantLine {
    /// Role name.
    pub role: String,
    /// Resource id, empty for global.
    pub scope: String,
}

/// A user's page.
#[derive(Template)]
#[template(path = "user.html")]
pub struct UserPage {
    /// Frame.
    pub f: Frame,
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Disabled.
    pub disabled: bool,
    /// Roles held.
    pub grants: Vec<GrantLine>,
    /// Every role that can be granted.
    pub roles: Vec<String>,
    /// Show the grant forms.
    pub can_grant: bool,
    /// Show session, two-factor and disable actions.
    pub can_write: bool,
    /// Show "act as this user".
    pub can_impersonate: bool,
    /// Two-factor is on.
    pub mfa_enabled: bool,
    /// Live sessions.
    pub sessions: Vec<sen_auth::routes::me::SessionView>,
    /// Why the last change failed.
    pub error: Option<String>,
}

fn split_grant(name: &str) -> GrantLine {
    match name.split_once('@') {
        Some((role, scope)) => GrantLine {
            role: role.to_string(),
            scope: scope.to_string(),
        },
        None => GrantLine {
            role: name.to_string(),
            scope: String::new(),
        },
    }
}

/// Renders a user's page (also with a refused change's message).
pub async fn render(
    ctx: &AppContext,
    me: Principal,
    f: Frame,
    id: String,
    status: StatusCode,
    error: Option<String>,
) -> AppResult<Response> {
    let can_grant = me.has("auth:roles.write");
    let can_write = me.has("auth:users.write");
    let Json(user) = api::get_user(State(ctx.clone()), me.clone(), Path(id.clone())).await?;
    let sessions = sen_auth::routes::admin_sessions::live_sessions(ctx, &id, None).await?;
    let can_impersonate = me.has("auth:users.impersonate")
        && me.impersonator.is_none()
        && me.user_id != id
        && !user.disabled;
    let Json(catalogue) = api::list_roles(State(ctx.clone()), me).await?;
    Ok(html(
        status,
        &UserPage {
            f,
            id,
            email: user.email,
            name: user.name,
            disabled: user.disabled,
            grants: user.roles.iter().map(|r| split_grant(r)).collect(),
            roles: catalogue.roles.into_iter().map(|r| r.name).collect(),
            can_grant,
            can_write,
            can_impersonate,
            mfa_enabled: user.mfa_enabled,
            sessions,
            error,
        },
    ))
}

/// `GET /admin/apps/users/{id}`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/users") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has("auth:users.read") {
        return Ok(forbidden(f));
    }
    render(&ctx, me, f, id, StatusCode::OK, None).await
}

/// The grant form.
#[derive(Debug, Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
}

/// `POST /admin/apps/users/{id}/roles` (`op=add|remove`).
pub async fn change_roles(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<GrantForm>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/users") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) || !me.has("auth:roles.write") {
        return Ok(forbidden(f));
    }
    let Json(user) = api::get_user(State(ctx.clone()), me.clone(), Path(id.clone())).await?;
    let scope = form.scope.trim().to_string();
    let mut grants: Vec<GrantLine> = user.roles.iter().map(|r| split_grant(r)).collect();
    match form.op.as_str() {
        "add" => {
            if !grants
                .iter()
                .any(|g| g.role == form.role && g.scope == scope)
            {
                grants.push(GrantLine {
                    role: form.role.clone(),
                    scope: scope.clone(),
                });
            }
        }
        "remove" => grants.retain(|g| !(g.role == form.role && g.scope == scope)),
        _ => return Ok(forbidden(f)),
    }
    let body = api::PutRoles {
        roles: grants
            .into_iter()
            .map(|g| GrantBody {
                role: g.role,
                scope: (!g.scope.is_empty()).then_some(g.scope),
            })
            .collect(),
    };
    match api::put_roles(
        State(ctx.clone()),
        me.clone(),
        meta,
        Path(id.clone()),
        Json(body),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!("/admin/apps/users/{id}"))),
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            render(&ctx, me, f, id, status, Some(describe(&e))).await
        }
        Err(e) => Err(e),
    }
}

/// One role of the catalogue.
pub struct RoleLine {
    /// Full name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Its permissions, joined.
    pub permissions: String,
    /// How many users hold it.
    pub holders: i64,
}

/// The catalogue page.
#[derive(Template)]
#[template(path = "roles.html")]
pub struct RolesPage {
    /// Frame.
    pub f: Frame,
    /// Every role.
    pub roles: Vec<RoleLine>,
}

/// `GET /admin/apps/roles`.
pub async fn roles(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/roles") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has("auth:users.read") {
        return Ok(forbidden(f));
    }
    let Json(catalogue) = api::list_roles(State(ctx.clone()), me).await?;
    Ok(html(
        StatusCode::OK,
        &RolesPage {
            f,
            roles: catalogue
                .roles
                .into_iter()
                .map(|r| RoleLine {
                    holders: catalogue.holders.get(&r.name).copied().unwrap_or(0),
                    name: r.name,
                    title: r.title,
                    permissions: r.permissions.join(", "),
                })
                .collect(),
        },
    ))
}
