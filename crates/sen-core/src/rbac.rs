//! Permissions and roles, declared in code by each app and resolved in
//! memory: a request's permission check never costs a database round trip.
//!
//! Names: a permission is `{app}:{action}` (`inventory:write`); an app role
//! is `{app}.{role}` (`inventory.admin`); operator roles for the admin
//! dashboard are bare words (`owner`, `admin`, `support`, `viewer`). Every
//! app gets `{app}.admin` (all its permissions) and `{app}.viewer` (its
//! read-only ones) for free.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Apps;

/// A permission an app declares.
#[derive(Debug, Clone)]
pub struct PermissionDecl {
    /// The action, unique within the app (`write`, `users.read`).
    pub action: &'static str,
    /// What holding it allows, for the admin UI.
    pub description: &'static str,
    /// Whether it only reads (viewer roles get the read-only ones).
    pub read_only: bool,
}

impl PermissionDecl {
    /// A permission that only reads.
    pub const fn read(action: &'static str, description: &'static str) -> Self {
        Self {
            action,
            description,
            read_only: true,
        }
    }

    /// A permission that changes things.
    pub const fn write(action: &'static str, description: &'static str) -> Self {
        Self {
            action,
            description,
            read_only: false,
        }
    }
}

/// A role an app declares beyond its free `admin` and `viewer`.
#[derive(Debug, Clone)]
pub struct RoleDecl {
    /// The role's short name (`manager`); its full name is `{app}.{name}`.
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// Actions of this app, or full `{app}:{action}` names of other apps.
    pub permissions: Vec<&'static str>,
}

/// One permission, as the registry knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PermissionInfo {
    /// Full name, `{app}:{action}`.
    pub name: String,
    /// The app that declares it.
    pub app: String,
    /// What it allows.
    pub description: String,
    /// Read-only.
    pub read_only: bool,
}

/// One role, as the registry knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleInfo {
    /// Full name (`inventory.admin`, `owner`).
    pub name: String,
    /// The declaring app (`operator` for the dashboard roles).
    pub app: String,
    /// Human title.
    pub title: String,
    /// Whether it admits its holder to `/admin/apps`.
    pub operator: bool,
    /// The permissions it grants, sorted.
    pub permissions: Vec<String>,
}

/// Why the declared roles do not add up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RbacError {
    /// An app declares an action twice, or one with a bad name.
    #[error(
        "app `{0}` declares permission `{1}` twice or with a name outside a-z, 0-9, '.', '_', '-'"
    )]
    BadPermission(String, String),
    /// A role names a permission nobody declares.
    #[error("role `{0}` grants `{1}`, which no app declares")]
    UnknownPermission(String, String),
    /// A role name is taken or malformed.
    #[error("role `{0}` is declared twice or has a malformed name")]
    BadRole(String),
}

/// The built-in operator roles, highest first.
pub const OPERATOR_ROLES: [&str; 4] = ["owner", "admin", "support", "viewer"];

/// Every permission and role of this binary.
#[derive(Debug, Default, Clone)]
pub struct Rbac {
    permissions: BTreeMap<String, PermissionInfo>,
    roles: BTreeMap<String, RoleInfo>,
}

fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
}

impl Rbac {
    /// Collects every app's declarations and derives the free roles.
    pub fn from_apps(apps: &Apps) -> Result<Self, RbacError> {
        let mut rbac = Rbac::default();
        for app in apps.iter() {
            for p in app.permissions() {
                let name = format!("{}:{}", app.name(), p.action);
                if !valid_word(p.action) || rbac.permissions.contains_key(&name) {
                    return Err(RbacError::BadPermission(
                        app.name().to_string(),
                        p.action.to_string(),
                    ));
                }
                rbac.permissions.insert(
                    name.clone(),
                    PermissionInfo {
                        name,
                        app: app.name().to_string(),
                        description: p.description.to_string(),
                        read_only: p.read_only,
                    },
                );
            }
        }
        for app in apps.iter() {
            let own = |read_only_only: bool| -> Vec<String> {
                rbac.permissions
                    .values()
                    .filter(|p| p.app == app.name() && (!read_only_only || p.read_only))
                    .map(|p| p.name.clone())
                    .collect()
            };
            let free = [
                ("admin", format!("{} admin", app.title()), own(false)),
                ("viewer", format!("{} viewer", app.title()), own(true)),
            ];
            let mut declared = Vec::new();
            for (short, title, perms) in free {
                declared.push((short.to_string(), title, perms));
            }
            for r in app.roles() {
                let perms = r
                    .permissions
                    .iter()
                    .map(|p| {
                        if p.contains(':') {
                            p.to_string()
                        } else {
                            format!("{}:{p}", app.name())
                        }
                    })
                    .collect();
                declared.push((r.name.to_string(), r.title.to_string(), perms));
            }
            for (short, title, perms) in declared {
                let name = format!("{}.{short}", app.name());
                if !valid_word(&short) || short.contains('.') || rbac.roles.contains_key(&name) {
                    return Err(RbacError::BadRole(name));
                }
                rbac.insert_role(name, app.name(), title, perms, false)?;
            }
        }
        let all: Vec<String> = rbac.permissions.keys().cloned().collect();
        let read_only: Vec<String> = rbac
            .permissions
            .values()
            .filter(|p| p.read_only)
            .map(|p| p.name.clone())
            .collect();
        let admin: Vec<String> = all
            .iter()
            .filter(|p| !p.ends_with(":roles.owner"))
            .cloned()
            .collect();
        let support: Vec<String> = rbac
            .permissions
            .values()
            .filter(|p| p.read_only || p.name == "auth:users.write" || p.name == "jobs:write")
            .map(|p| p.name.clone())
            .collect();
        for (name, title, perms) in [
            ("owner", "Owner", all),
            ("admin", "Administrator", admin),
            ("support", "Support", support),
            ("viewer", "Viewer", read_only),
        ] {
            rbac.insert_role(name.to_string(), "operator", title.to_string(), perms, true)?;
        }
        Ok(rbac)
    }

    fn insert_role(
        &mut self,
        name: String,
        app: &str,
        title: String,
        perms: Vec<String>,
        operator: bool,
    ) -> Result<(), RbacError> {
        if let Some(p) = perms.iter().find(|p| !self.permissions.contains_key(*p)) {
            return Err(RbacError::UnknownPermission(name, p.clone()));
        }
        let permissions: BTreeSet<String> = perms.into_iter().collect();
        self.roles.insert(
            name.clone(),
            RoleInfo {
                name,
                app: app.to_string(),
                title,
                operator,
                permissions: permissions.into_iter().collect(),
            },
        );
        Ok(())
    }

    /// A role by full name.
    pub fn role(&self, name: &str) -> Option<&RoleInfo> {
        self.roles.get(name)
    }

    /// Every role, sorted by name.
    pub fn roles(&self) -> impl Iterator<Item = &RoleInfo> {
        self.roles.values()
    }

    /// Every permission, sorted by name.
    pub fn permissions(&self) -> impl Iterator<Item = &PermissionInfo> {
        self.permissions.values()
    }

    /// Whether `name` is a declared permission.
    pub fn is_permission(&self, name: &str) -> bool {
        self.permissions.contains_key(name)
    }

    /// The union of the permissions of `roles` (unknown roles grant nothing:
    /// a role removed from code stops granting at once).
    pub fn permissions_of<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        roles
            .into_iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    }

    /// Whether any of `roles` admits its holder to the admin dashboard: an
    /// operator role or some app's `admin`/`viewer`.
    pub fn admits_to_dashboard<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> bool {
        roles.into_iter().any(|r| {
            self.roles.get(r).is_some_and(|info| {
                info.operator || r.ends_with(".admin") || r.ends_with(".viewer")
            })
        })
    }
}
