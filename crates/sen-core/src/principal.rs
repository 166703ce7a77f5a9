//! Who is calling: the `Principal` every handler can extract, the
//! `Authenticator` that builds it (supplied by `sen-auth` at wiring time,
//! so apps depend only on this crate), and the `Policy` list endpoints
//! declare.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::StatusCode;
use http::request::Parts;

use crate::context::AppContext;
use crate::error::AppError;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// The access-token cookie of a browser session.
    Cookie,
    /// `Authorization: Bearer <access JWT>`.
    Bearer,
    /// A personal API key.
    ApiKey,
}

/// A role held by a user, globally (`scope` empty) or within one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// Full role name.
    pub role: String,
    /// Resource id the role is limited to; empty for a global grant.
    pub scope: String,
}

/// An authenticated caller. Permissions are resolved in memory from the
/// roles the user holds (see [`crate::rbac`]).
#[derive(Clone)]
pub struct Principal {
    /// The user's id.
    pub user_id: String,
    /// The session behind a cookie or access token.
    pub session_id: Option<String>,
    /// The API key used, when one was.
    pub api_key_id: Option<String>,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// Roles held, global and scoped.
    pub grants: Arc<[Grant]>,
    /// Global permissions (from global grants, narrowed by an API key's scope).
    pub permissions: Arc<BTreeSet<String>>,
    /// Permissions an API key is limited to (None = everything the user holds).
    pub key_limit: Option<Arc<BTreeSet<String>>>,
    /// Whether the caller may enter the admin dashboard.
    pub operator: bool,
    /// The operator acting as this user, when the session is an
    /// impersonation (pages show a banner; sensitive account changes refuse).
    pub impersonator: Option<String>,
    /// Data the authenticator attached (e.g. the user row it already read).
    pub extra: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("method", &self.method)
            .field("impersonator", &self.impersonator)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// Refuses with 403 `impersonation_restricted` while an operator acts
    /// as this user: credentials (password, two-factor, keys) stay the
    /// user's own.
    pub fn require_self(&self) -> Result<(), AppError> {
        if self.impersonator.is_some() {
            return Err(
                AppError::new(StatusCode::FORBIDDEN, "impersonation_restricted")
                    .with_detail("An operator acting as this user cannot change its credentials."),
            );
        }
        Ok(())
    }

    /// Holds `permission` globally.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// Holds `permission` globally or through a role scoped to `scope`.
    pub fn has_in(&self, ctx: &AppContext, permission: &str, scope: &str) -> bool {
        if self.has(permission) {
            return true;
        }
        if self
            .key_limit
            .as_ref()
            .is_some_and(|l| !l.contains(permission))
        {
            return false;
        }
        self.grants.iter().any(|g| {
            g.scope == scope
                && ctx
                    .rbac()
                    .role(&g.role)
                    .is_some_and(|r| r.permissions.iter().any(|p| p == permission))
        })
    }

    /// 403 `forbidden` naming the missing permission unless held globally.
    pub fn require(&self, permission: &str) -> Result<(), AppError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(forbidden(permission))
        }
    }

    /// The authenticator's attachment of type `T`, if any.
    pub fn extra<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extra.as_deref().and_then(|e| e.downcast_ref::<T>())
    }
}

/// The 403 answer for a missing permission: names the permission, nothing else.
pub fn forbidden(permission: &str) -> AppError {
    AppError::new(StatusCode::FORBIDDEN, "forbidden")
        .with_detail(format!("This needs the `{permission}` permission."))
}

/// The 401 answer when no valid credentials came with the request.
pub fn unauthenticated() -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "unauthenticated")
        .with_detail("Sign in, or send a valid access token or API key.")
}

/// Turns request credentials into a [`Principal`]. `Ok(None)`: none were
/// sent. `Err`: some were sent and are not valid (401), or the check
/// itself failed (503).
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates one request.
    async fn authenticate(
        &self,
        ctx: &AppContext,
        parts: &Parts,
    ) -> Result<Option<Principal>, AppError>;

    /// Sessions, users and API keys revoked (or expired) at or after
    /// `since_ms`, so long-lived connections resting on them can be closed.
    async fn revoked_since(
        &self,
        ctx: &AppContext,
        since_ms: i64,
    ) -> Result<crate::realtime::Revocations, AppError> {
        let _ = (ctx, since_ms);
        Ok(crate::realtime::Revocations::default())
    }
}

/// The request's principal, computed once per request and shared by
/// every extractor that asks.
#[derive(Clone)]
struct Resolved(Option<Principal>);

async fn resolve(parts: &mut Parts, ctx: &AppContext) -> Result<Option<Principal>, AppError> {
    if let Some(Resolved(p)) = parts.extensions.get::<Resolved>() {
        return Ok(p.clone());
    }
    let found = match ctx.authenticator() {
        Some(a) => a.authenticate(ctx, parts).await?,
        None => None,
    };
    parts.extensions.insert(Resolved(found.clone()));
    Ok(found)
}

impl FromRequestParts<AppContext> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppContext) -> Result<Self, AppError> {
        resolve(parts, ctx).await?.ok_or_else(unauthenticated)
    }
}

impl OptionalFromRequestParts<AppContext> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Option<Self>, AppError> {
        resolve(parts, ctx).await
    }
}

/// One way to be allowed through; an endpoint passes when any of its
/// policies passes.
#[derive(Debug, Clone)]
pub enum Policy<'a> {
    /// Anyone.
    Public,
    /// Any signed-in caller.
    Authenticated,
    /// The caller is this user.
    Owner(&'a str),
    /// A global permission.
    Permission(&'a str),
    /// A permission held globally or through a role scoped to `scope`.
    Scoped {
        /// The permission.
        permission: &'a str,
        /// The resource id.
        scope: &'a str,
    },
}

/// Passes when any policy passes; else 401 (no caller) or 403 naming the
/// first permission asked for.
pub fn authorize(
    ctx: &AppContext,
    principal: Option<&Principal>,
    policies: &[Policy<'_>],
) -> Result<(), AppError> {
    let pass = policies.iter().any(|p| match (p, principal) {
        (Policy::Public, _) => true,
        (_, None) => false,
        (Policy::Authenticated, Some(_)) => true,
        (Policy::Owner(id), Some(me)) => me.user_id == *id,
        (Policy::Permission(perm), Some(me)) => me.has(perm),
        (Policy::Scoped { permission, scope }, Some(me)) => me.has_in(ctx, permission, scope),
    });
    if pass {
        return Ok(());
    }
    if principal.is_none() {
        return Err(unauthenticated());
    }
    let missing = policies.iter().find_map(|p| match p {
        Policy::Permission(perm)
        | Policy::Scoped {
            permission: perm, ..
        } => Some(*perm),
        _ => None,
    });
    Err(match missing {
        Some(perm) => forbidden(perm),
        None => {
            AppError::new(StatusCode::FORBIDDEN, "forbidden").with_detail("You may not do this.")
        }
    })
}
