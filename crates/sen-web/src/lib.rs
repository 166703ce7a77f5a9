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

pub mod admin;
pub mod assets;
pub mod i18n;
pub mod login;
pub mod me;
pub mod page;

use axum::routing::{get, post};
use sen_core::{App, AppContext};
use utoipa_axum::router::OpenApiRouter;

/// Every `/admin` page and action, for tests that crawl them (keep in step
/// with `root_routes`): method and path with `{id}` filled by a test.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/apps"),
    ("GET", "/admin/apps/users"),
    ("POST", "/admin/apps/users/{id}/disable"),
    ("POST", "/admin/apps/users/{id}/enable"),
    ("GET", "/admin/apps/jobs"),
    ("POST", "/admin/apps/jobs/{id}/retry"),
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

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .route("/web/assets/{file}", get(assets::asset))
            .route("/login", get(login::login_page))
            .route("/web/login", post(login::login))
            .route("/web/logout", post(login::logout))
            .route("/web/lang", post(login::set_lang))
            .route("/admin/apps", get(admin::home))
            .route("/admin/apps/login", get(admin::login_redirect))
            .route("/admin/apps/users", get(admin::users))
            .route("/admin/apps/users/{id}/{action}", post(admin::user_action))
            .route("/admin/apps/jobs", get(admin::jobs))
            .route("/admin/apps/jobs/{id}/retry", post(admin::retry_job))
            .route("/me", get(me::page))
            .route("/web/me/profile", post(me::save_profile))
            .route("/web/me/avatar", post(me::upload_avatar))
            .route("/web/me/sessions/{id}/revoke", post(me::revoke_session))
    }
}
