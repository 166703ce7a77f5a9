//! Sen's identity and access: accounts, sessions with rotating refresh
//! tokens, signed access tokens and their published keys, roles and
//! permissions, two-factor authentication, and the audit log.
//!
//! Invariants: this crate never logs or stores a secret in the clear
//! (passwords are argon2id, tokens and codes SHA-256, keys sealed); it
//! never trusts a token's own header to choose how to verify it; and every
//! change it makes to an account is written with its audit row in one
//! transaction.

pub mod admin_cli;
pub mod audit;
pub mod authn;
pub mod cookies;
pub mod crypto;
mod hash_cores;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod mail_templates;
pub mod mfa;
pub mod oauth;
pub mod oidc_login;
pub mod password;
pub mod refresh_token;
pub mod request_meta;
pub mod roles_sync;
pub mod routes;
pub mod schema;
pub mod sessions;
pub mod sign_in;
pub mod signer;
pub mod state;
pub mod users;

use std::sync::Arc;

use sen_core::migrate::Migration;
use sen_core::rbac::PermissionDecl;
use sen_core::{App, AppContext};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::AuthState;

/// The built-in `auth` app.
pub struct AuthApp;

impl App for AuthApp {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn title(&self) -> &'static str {
        "Users and access"
    }

    fn description(&self) -> &'static str {
        "Accounts, sessions, roles, two-factor authentication and the audit log."
    }

    fn icon(&self) -> &'static str {
        "users"
    }

    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        vec![
            Box::new(schema::CreateAuthTables),
            Box::new(schema::CreateCredentialTables),
            Box::new(schema::CreateOAuthTables),
            Box::new(schema::IndexRevocations),
            Box::new(schema::DropAuthMail),
            Box::new(schema::SessionImpersonator),
            Box::new(schema::IndexLiveKeys),
            Box::new(schema::PartialRevocationIndexes),
            Box::new(schema::RefreshGenerations),
            Box::new(schema::AuditById),
        ]
    }

    fn mail_templates(&self) -> Vec<sen_core::mail::MailTemplate> {
        mail_templates::all()
    }

    fn permissions(&self) -> Vec<PermissionDecl> {
        vec![
            PermissionDecl::read("users.read", "See users, their roles and sessions"),
            PermissionDecl::write(
                "users.write",
                "Create, disable and enable users; end their sessions",
            ),
            PermissionDecl::write("roles.write", "Grant and remove roles other than owner"),
            PermissionDecl::write("roles.owner", "Grant and remove the owner role"),
            PermissionDecl::read("audit.read", "Read the audit log"),
            PermissionDecl::write("keys.rotate", "Rotate the token signing keys"),
            PermissionDecl::write(
                "users.impersonate",
                "Act as a user who holds no operator role (audited)",
            ),
            PermissionDecl::read(
                "credentials.read",
                "See every user's API keys and every OAuth client",
            ),
            PermissionDecl::write(
                "credentials.write",
                "Revoke any API key; register and revoke OAuth clients",
            ),
        ]
    }

    fn jobs(&self) -> Vec<sen_core::jobs::JobHandler> {
        vec![
            sen_core::jobs::JobHandler::of::<routes::password_reset::SendReset>(),
            sen_core::jobs::JobHandler::of::<keys::RotateKeys>(),
        ]
    }

    fn schedules(&self) -> Vec<sen_core::jobs::Schedule> {
        // Hourly: the job itself decides whether the key is old enough, so
        // a missed run only delays rotation by an hour.
        match sen_core::jobs::NewJob::of(&keys::RotateKeys) {
            Ok(job) => vec![sen_core::jobs::Schedule::new(
                "auth.rotate-keys",
                "0 17 * * * *",
                job,
            )],
            Err(_) => Vec::new(),
        }
    }

    fn start<'a>(
        &'a self,
        ctx: &'a AppContext,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let state = Arc::new(AuthState::from_config(ctx)?);
            state.keys.load(ctx).await?;
            roles_sync::sync(ctx).await?;
            tokio::spawn(state.keys.clone().reload_forever(ctx.clone()));
            ctx.insert_extension(state);
            ctx.set_authenticator(Arc::new(authn::SenAuthenticator));
            Ok(())
        })
    }

    fn routes(&self) -> sen_core::routes::Routes {
        sen_core::routes::Routes::new()
            .routes(routes!(routes::auth::register))
            .routes(routes!(routes::auth::login))
            .routes(routes!(routes::auth::refresh))
            .routes(routes!(routes::auth::logout))
            .routes(routes!(routes::password_reset::request_reset))
            .routes(routes!(routes::password_reset::confirm_reset))
    }

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .routes(routes!(routes::me::get_me, routes::me::patch_me))
            .routes(routes!(routes::me::change_password))
            .routes(routes!(
                routes::me::list_sessions,
                routes::me::revoke_other_sessions
            ))
            .routes(routes!(routes::me::delete_session))
            .routes(routes!(routes::me::totp_begin, routes::me::totp_disable))
            .routes(routes!(routes::me::totp_confirm))
            .routes(routes!(routes::wellknown::jwks))
            .routes(routes!(
                routes::api_keys::create_key,
                routes::api_keys::list_keys
            ))
            .routes(routes!(routes::api_keys::revoke_key))
            .routes(routes!(oauth::clients::create_client))
            .routes(routes!(oauth::clients::list_consents))
            .routes(routes!(oauth::clients::revoke_consent))
            .merge(routes::admin::routes())
            .merge(routes::admin_sessions::routes())
            .merge(routes::admin_credentials::routes())
            .route(
                "/oauth/authorize",
                axum::routing::get(oauth::authorize::authorize_get)
                    .post(oauth::authorize::authorize_post),
            )
            .route("/oauth/token", axum::routing::post(oauth::token::token))
            .route(
                "/api/v1/auth/oidc/{provider}/start",
                axum::routing::get(oidc_login::start),
            )
            .route(
                "/api/v1/auth/oidc/{provider}/callback",
                axum::routing::get(oidc_login::callback),
            )
            .route("/oauth/revoke", axum::routing::post(oauth::token::revoke))
            .route(
                "/oauth/introspect",
                axum::routing::post(oauth::token::introspect),
            )
            .route(
                "/oauth/userinfo",
                axum::routing::get(oauth::token::userinfo).post(oauth::token::userinfo),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                axum::routing::get(oauth::discovery::metadata),
            )
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(oauth::discovery::metadata),
            )
    }
}
