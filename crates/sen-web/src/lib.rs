//! Sen's pages: the operator's dashboard at `/admin/apps` and the user's
//! profile at `/me`, rendered on the server with askama, enhanced by htmx,
//! with every asset embedded in the binary (no CDN, no build step), in
//! English and Vietnamese.
//!
//! Invariants: every page authorises on the server (a hidden button is not
//! authorisation): `/admin` pages need an operator, and each section the
//! permission its API needs; no inline script or style (the CSP forbids
//! them); all text is escaped by the templates; every form post carries a
//! token bound to the session.

pub mod account;
pub mod admin;
pub mod apps;
pub mod assets;
pub mod charts;
pub mod credentials;
pub mod files;
pub mod i18n;
pub mod jobs;
pub mod keys;
pub mod login;
pub mod me;
pub mod notes;
pub mod ops;
pub mod page;
pub mod people;
pub mod refresh;
pub mod resources;
pub mod security;

use axum::routing::{get, post};
use sen_core::{App, AppContext};
use utoipa_axum::router::OpenApiRouter;

/// Every `/admin` page and action, for tests that crawl them (keep in step
/// with `root_routes`): method and path with `{id}` filled by a test.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/apps"),
    ("GET", "/admin/apps/users"),
    ("POST", "/admin/apps/users"),
    ("GET", "/admin/apps/users/{id}"),
    ("POST", "/admin/apps/users/{id}/roles"),
    ("GET", "/admin/apps/roles"),
    ("POST", "/admin/apps/users/{id}/disable"),
    ("POST", "/admin/apps/users/{id}/enable"),
    ("POST", "/admin/apps/users/{id}/sessions/revoke"),
    ("POST", "/admin/apps/users/{id}/sessions/{id}/revoke"),
    ("POST", "/admin/apps/users/{id}/mfa/reset"),
    ("POST", "/admin/apps/users/{id}/impersonate"),
    ("GET", "/admin/apps/jobs"),
    ("POST", "/admin/apps/jobs/{id}/retry"),
    ("POST", "/admin/apps/jobs/{id}/cancel"),
    ("POST", "/admin/apps/jobs/bulk"),
    ("GET", "/admin/apps/jobs/{id}"),
    ("GET", "/admin/apps/audit"),
    ("GET", "/admin/apps/files"),
    ("POST", "/admin/apps/files/{id}/delete"),
    ("GET", "/admin/apps/credentials"),
    ("GET", "/admin/apps/app/{id}"),
    ("GET", "/admin/apps/app/{id}/{id}"),
    ("POST", "/admin/apps/app/{id}/{id}"),
    ("GET", "/admin/apps/app/{id}/{id}/{id}"),
    ("POST", "/admin/apps/app/{id}/{id}/{id}"),
    ("GET", "/admin/apps/settings"),
    ("POST", "/admin/apps/settings/{id}"),
    ("POST", "/admin/apps/credentials/keys/{id}/revoke"),
    ("POST", "/admin/apps/credentials/clients"),
    ("POST", "/admin/apps/credentials/clients/{id}/revoke"),
    ("GET", "/admin/apps/schedules"),
    ("POST", "/admin/apps/schedules/{id}/run"),
    ("GET", "/admin/apps/mail"),
    ("GET", "/admin/apps/mail/{id}"),
];

/// The built-in `web` app (pages only: nothing in the OpenAPI document).
pub struct WebApp;

impl App for WebApp {
    fn name(&self) -> &'static str {
        "web"
    }

    fn title(&self) -> &'static str {
        "Web"
    }

    fn description(&self) -> &'static str {
        "The dashboard and the profile page."
    }

    fn icon(&self) -> &'static str {
        "layout"
    }

    fn permissions(&self) -> Vec<sen_core::rbac::PermissionDecl> {
        vec![
            sen_core::rbac::PermissionDecl::read(
                "settings.read",
                "See every app's settings and feature flags",
            ),
            sen_core::rbac::PermissionDecl::write(
                "settings.write",
                "Change apps' settings and feature flags",
            ),
        ]
    }

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .route("/web/assets/{file}", get(assets::asset))
            .route("/login", get(login::login_page))
            .route(refresh::PATH, get(refresh::refresh))
            .route("/web/login", post(login::login))
            .route("/web/logout", post(login::logout))
            .route("/web/lang", post(login::set_lang))
            .route("/admin/apps", get(admin::home))
            .route("/admin/apps/login", get(admin::login_redirect))
            .route("/admin/apps/users", get(admin::users).post(people::create))
            .route("/admin/apps/users/{id}", get(people::page))
            .route("/admin/apps/users/{id}/roles", post(people::change_roles))
            .route("/admin/apps/roles", get(people::roles))
            .route("/admin/apps/users/{id}/{action}", post(admin::user_action))
            .route(
                "/admin/apps/users/{id}/sessions/revoke",
                post(account::revoke_all),
            )
            .route(
                "/admin/apps/users/{id}/sessions/{sid}/revoke",
                post(account::revoke_one),
            )
            .route("/admin/apps/users/{id}/mfa/reset", post(account::reset_mfa))
            .route(
                "/admin/apps/users/{id}/impersonate",
                post(account::impersonate),
            )
            .route("/web/impersonation/end", post(account::end))
            .route("/admin/apps/jobs", get(jobs::page))
            .route("/admin/apps/jobs/bulk", post(jobs::bulk))
            .route("/admin/apps/jobs/{id}", get(jobs::job))
            .route("/admin/apps/jobs/{id}/{action}", post(jobs::act))
            .route("/admin/apps/audit", get(ops::audit))
            .route("/admin/apps/files", get(files::page))
            .route("/admin/apps/files/{id}/delete", post(files::delete))
            .route("/admin/apps/credentials", get(credentials::page))
            .route(
                "/admin/apps/credentials/keys/{id}/revoke",
                post(credentials::revoke_key),
            )
            .route(
                "/admin/apps/credentials/clients",
                post(credentials::create_client),
            )
            .route(
                "/admin/apps/credentials/clients/{id}/revoke",
                post(credentials::revoke_client),
            )
            .route("/admin/apps/schedules", get(ops::schedules))
            .route("/admin/apps/schedules/{id}/run", post(ops::run_schedule))
            .route("/admin/apps/mail", get(ops::mail))
            .route("/admin/apps/mail/{id}", get(ops::mail_one))
            .route("/admin/apps/app/{app}", get(apps::app_page))
            .route(
                "/admin/apps/app/{app}/{res}",
                get(resources::list_page::<false>).post(resources::create_row::<false>),
            )
            .route(
                "/admin/apps/app/{app}/{res}/{id}",
                get(resources::show_page::<false>).post(resources::update_row::<false>),
            )
            .route("/admin/apps/settings", get(apps::settings_page))
            .route("/admin/apps/settings/{app}", post(apps::save_settings))
            .route(
                "/me/apps/{app}/{res}",
                get(resources::list_page::<true>).post(resources::create_row::<true>),
            )
            .route(
                "/me/apps/{app}/{res}/{id}",
                get(resources::show_page::<true>).post(resources::update_row::<true>),
            )
            .route("/me", get(me::page))
            .route("/web/me/profile", post(me::save_profile))
            .route("/web/me/avatar", post(me::upload_avatar))
            .route("/web/me/sessions/{id}/revoke", post(me::revoke_session))
            .route("/web/me/sessions/revoke-others", post(me::revoke_others))
            .route("/me/security", get(security::page))
            .route("/me/notifications", get(notes::page))
            .route("/me/keys", get(keys::page))
            .route("/web/me/keys", post(keys::create))
            .route("/web/me/keys/{id}/revoke", post(keys::revoke))
            .route("/web/me/consents/{id}/revoke", post(keys::revoke_consent))
            .route("/web/me/notifications/{id}/read", post(notes::read_one))
            .route("/web/me/notifications/read-all", post(notes::read_all))
            .route("/web/me/password", post(security::change_password))
            .route("/web/me/totp/begin", post(security::totp_begin))
            .route("/web/me/totp/confirm", post(security::totp_confirm))
            .route("/web/me/totp/disable", post(security::totp_disable))
    }
}
