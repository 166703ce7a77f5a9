//! `AuthState`: what the auth endpoints and the authenticator share, built
//! once at start-up from the configuration and attached to the context.

use std::sync::Arc;
use std::time::Duration;

use sen_core::{AppContext, AppError};

use crate::crypto::Sealer;
use crate::keys::KeyRing;
use crate::password::Passwords;

/// Shared identity state of one process.
pub struct AuthState {
    /// The argon2id hasher.
    pub passwords: Passwords,
    /// Signing and verification keys.
    pub keys: KeyRing,
    /// Seals secrets at rest.
    pub sealer: Sealer,
    /// Mints and checks refresh tokens.
    pub refresh: crate::refresh_token::RefreshKey,
    /// `iss` of our tokens (the public URL).
    pub issuer: String,
    /// `aud` of first-party access tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Absolute session lifetime.
    pub session_ttl: Duration,
    /// Whether cookies carry `Secure`.
    pub cookie_secure: bool,
    /// Access tokens whose signature and claims were already verified, by
    /// their exact text, until they expire: a client repeating its token
    /// skips the signature check (the session and user are still read on
    /// every request, so revocation is unaffected).
    pub verified: moka::future::Cache<String, std::sync::Arc<crate::jwt::AccessClaims>>,
}

impl AuthState {
    /// Builds the state from `ctx`'s configuration (keys not yet loaded).
    pub fn from_config(ctx: &AppContext) -> anyhow::Result<Self> {
        let c = ctx.config();
        let secret = c.secret_key.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "`secret_key` is not set: set SEN_SECRET_KEY to 32+ random characters (it seals signing keys)"
            )
        })?;
        let sealer = Sealer::new(secret.expose())?;
        let alg = crate::keys::parse_alg(&c.auth_jwt_alg)
            .ok_or_else(|| anyhow::anyhow!("auth_jwt_alg must be EdDSA or RS256"))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let issuer = c.public_url();
        Ok(Self {
            passwords: Passwords::new(
                c.auth_hash_concurrency.unwrap_or(cores),
                c.auth_hash_spare_cores,
            ),
            keys: KeyRing::new(sealer.clone(), alg),
            sealer,
            refresh: crate::refresh_token::RefreshKey::new(secret.expose()),
            audience: issuer.clone(),
            issuer,
            access_ttl: Duration::from_secs(c.auth_access_ttl_secs),
            session_ttl: Duration::from_secs(c.auth_session_ttl_secs),
            cookie_secure: c.auth_cookie_secure,
            verified: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(c.auth_access_ttl_secs))
                .build(),
        })
    }

    /// The state attached to `ctx`, or 503 when the auth app has not started.
    pub fn of(ctx: &AppContext) -> Result<Arc<AuthState>, AppError> {
        ctx.extension::<AuthState>().ok_or_else(|| {
            AppError::unavailable("identity", anyhow::anyhow!("auth app not started"))
        })
    }
}
