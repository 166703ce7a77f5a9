//! The `App` trait and the registry of apps. An app is a value registered
//! explicitly in `main`: no global registries, no import side effects. The
//! platform's own features plug in the same way a user's custom app does.

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::context::AppContext;
use crate::migrate::{AppMigration, Migration};

/// A bounded context plugged into Sen. Later capabilities (permissions,
/// jobs, schedules, topics, admin pages) arrive as further methods with
/// defaults, so an app only writes what it has.
pub trait App: Send + Sync + 'static {
    /// URL-safe unique name; the app's API lives at `/api/v1/{name}`.
    fn name(&self) -> &'static str;
    /// Human title for the `/admin/apps` card.
    fn title(&self) -> &'static str;
    /// One sentence for the `/admin/apps` card.
    fn description(&self) -> &'static str;
    /// Icon name for the `/admin/apps` card.
    fn icon(&self) -> &'static str {
        "box"
    }
    /// The app's tables, in order. It owns them; no foreign keys into another app's tables.
    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        Vec::new()
    }
    /// The app's REST routes, declared relative to the app and mounted at
    /// `/api/v1/{name}`; each handler's `#[utoipa::path]` feeds the OpenAPI
    /// document.
    fn routes(&self) -> crate::routes::Routes {
        crate::routes::Routes::new()
    }
    /// Runs once per process before it serves or works, after migrations:
    /// load keys, attach shared state with `ctx.insert_extension`, install
    /// an authenticator. A failure stops start-up with the app's name.
    fn start<'a>(
        &'a self,
        ctx: &'a AppContext,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        let _ = ctx;
        Box::pin(async { Ok(()) })
    }
    /// Routes mounted at the root instead of `/api/v1/{name}`: for the
    /// platform's fixed paths (`/api/v1/me`, `/.well-known/…`, `/oauth/…`).
    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
    }
    /// Permissions the app's endpoints check (`{app}:{action}`).
    fn permissions(&self) -> Vec<crate::rbac::PermissionDecl> {
        Vec::new()
    }
    /// Roles beyond the free `{app}.admin` and `{app}.viewer`.
    fn roles(&self) -> Vec<crate::rbac::RoleDecl> {
        Vec::new()
    }
    /// The app's background job kinds.
    fn jobs(&self) -> Vec<crate::jobs::JobHandler> {
        Vec::new()
    }
    /// The app's event subscribers (delivered by the worker role).
    fn subscribers(&self) -> Vec<crate::jobs::Subscriber> {
        Vec::new()
    }
    /// The app's cron schedules (run by `sen worker --schedule`).
    fn schedules(&self) -> Vec<crate::jobs::Schedule> {
        Vec::new()
    }
    /// Tables the app shows as generic dashboard pages at
    /// `/admin/apps/app/{app}/{resource}` (list, search, filters, sort,
    /// detail, validated create and edit forms).
    fn admin_pages(&self) -> Vec<crate::resource::Resource> {
        Vec::new()
    }
    /// Tabs the app adds to `/me` at `/me/apps/{app}/{resource}`: tables
    /// with an owner column, limited to the signed-in user's rows.
    fn me_pages(&self) -> Vec<crate::resource::Resource> {
        Vec::new()
    }
    /// The app's settings and feature flags, edited at
    /// `/admin/apps/settings` and read with `sen_core::settings`.
    fn settings(&self) -> Vec<crate::settings::Setting> {
        Vec::new()
    }
    /// The upload purposes the app accepts (`POST /api/v1/files?purpose=…`).
    fn file_purposes(&self) -> Vec<crate::files::FilePurpose> {
        Vec::new()
    }
    /// The app's mail templates (one per name and locale), rendered by `sen-mail`.
    fn mail_templates(&self) -> Vec<crate::mail::MailTemplate> {
        Vec::new()
    }
    /// The realtime topics the app publishes and who may subscribe to them.
    fn topics(&self) -> Vec<crate::realtime::TopicDecl> {
        Vec::new()
    }
}

/// Why an app could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two apps share a name (and so a URL prefix).
    #[error("two apps are named `{0}`; app names must be unique")]
    DuplicateName(String),
    /// The name cannot be a URL segment.
    #[error(
        "app name `{0}` must be 1–32 characters of a-z, 0-9, '-' or '_', starting with a letter"
    )]
    InvalidName(String),
    /// Two migrations of one app share a name.
    #[error("app `{0}` declares migration `{1}` twice")]
    DuplicateMigration(String, String),
    /// A declared page or setting is malformed.
    #[error("app `{0}`: {1}")]
    InvalidDeclaration(String, String),
}

struct Registered {
    app: Arc<dyn App>,
    migrations: Vec<Box<dyn Migration>>,
}

/// The apps of this binary, in registration order.
#[derive(Default)]
pub struct Apps {
    apps: Vec<Registered>,
}

impl Apps {
    /// No apps yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an app, rejecting duplicate or malformed names.
    pub fn register(mut self, app: impl App) -> Result<Self, RegistryError> {
        let name = app.name();
        if !is_valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_string()));
        }
        if self.apps.iter().any(|r| r.app.name() == name) {
            return Err(RegistryError::DuplicateName(name.to_string()));
        }
        let migrations = app.migrations();
        for (i, m) in migrations.iter().enumerate() {
            if migrations[..i].iter().any(|o| o.name() == m.name()) {
                return Err(RegistryError::DuplicateMigration(
                    name.to_string(),
                    m.name().to_string(),
                ));
            }
        }
        check_declarations(&app).map_err(|e| RegistryError::InvalidDeclaration(name.into(), e))?;
        self.apps.push(Registered {
            app: Arc::new(app),
            migrations,
        });
        Ok(self)
    }

    /// The apps in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn App>> {
        self.apps.iter().map(|r| &r.app)
    }

    /// Every app's migrations, app by app in registration order.
    pub fn migrations(&self) -> Vec<AppMigration<'_>> {
        self.apps
            .iter()
            .flat_map(|r| {
                r.migrations.iter().map(|m| AppMigration {
                    app: r.app.name(),
                    migration: m.as_ref(),
                })
            })
            .collect()
    }
}

/// Resources and settings must be well-formed and uniquely named.
fn check_declarations(app: &impl App) -> Result<(), String> {
    let admin = app.admin_pages();
    let me = app.me_pages();
    for (set, list) in [("admin_pages", &admin), ("me_pages", &me)] {
        for (i, r) in list.iter().enumerate() {
            r.check()?;
            if list[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("{set} declares `{}` twice", r.name));
            }
        }
    }
    if let Some(r) = me.iter().find(|r| r.owner_column.is_none()) {
        return Err(format!(
            "me_pages resource `{}` needs an owner column",
            r.name
        ));
    }
    let settings = app.settings();
    for (i, s) in settings.iter().enumerate() {
        s.check()?;
        if settings[..i].iter().any(|o| o.field.name == s.field.name) {
            return Err(format!("setting `{}` is declared twice", s.field.name));
        }
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);
    impl App for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn title(&self) -> &'static str {
            "t"
        }
        fn description(&self) -> &'static str {
            "d"
        }
    }

    #[test]
    fn duplicate_and_invalid_names_are_rejected() {
        let apps = Apps::new().register(Named("blog")).unwrap();
        assert_eq!(
            apps.register(Named("blog")).err(),
            Some(RegistryError::DuplicateName("blog".into()))
        );
        for bad in ["", "Blog", "1st", "a b", "a/b", &"x".repeat(33)] {
            let leaked: &'static str = Box::leak(bad.to_string().into_boxed_str());
            assert!(
                matches!(
                    Apps::new().register(Named(leaked)),
                    Err(RegistryError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
    }
}
