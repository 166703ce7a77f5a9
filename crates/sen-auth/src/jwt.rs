//! Access tokens: short-lived JWTs (`typ: at+jwt`, RFC 9068) signed with
//! the ring's current key. Verification trusts nothing the token says
//! about how to verify it: the key comes from our own set by `kid`, the
//! algorithm must be that key's, and headers that point elsewhere (`jku`,
//! `x5u`, `jwk`, `x5c`) are refused outright.

use std::collections::HashSet;

use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};

use crate::keys::KeyRing;

/// The access-token `typ` header.
pub const ACCESS_TYP: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// The session (refresh family) it belongs to.
    pub sid: String,
    /// The client it was issued to (first-party tokens: `sen`).
    pub client_id: String,
    /// Space-separated scopes (OAuth clients); empty for first-party tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// Why a token was not accepted (all map to 401 `invalid_token`).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a header we refuse.
    #[error("malformed or refused token header")]
    Header,
    /// Signed by a key we do not publish.
    #[error("unknown signing key")]
    UnknownKey,
    /// Signature, expiry, audience or issuer check failed.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// No key may sign yet.
    #[error("no signing key loaded")]
    NoSigner,
}

/// Signs `claims` with the current key.
pub fn sign(ring: &KeyRing, claims: &AccessClaims) -> Result<String, TokenError> {
    sign_typed(ring, ACCESS_TYP, claims)
}

/// Signs any claims with the current key and header `typ` (id tokens: `JWT`).
pub fn sign_typed<T: Serialize>(
    ring: &KeyRing,
    typ: &str,
    claims: &T,
) -> Result<String, TokenError> {
    let set = ring.current();
    set.signer
        .as_ref()
        .ok_or(TokenError::NoSigner)?
        .sign(typ, claims)
}

/// [`verify`], re-reading the published keys once when the token names a
/// key this process has not loaded yet (created by another instance).
pub async fn verify_fresh(
    ctx: &sen_core::AppContext,
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, TokenError> {
    match verify(ring, token, issuer, audience) {
        Err(TokenError::UnknownKey) if ring.refresh_unknown(ctx).await => {
            verify(ring, token, issuer, audience)
        }
        other => other,
    }
}

/// Verifies an access token for `issuer` and `audience`.
pub fn verify(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
    if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some()
    {
        return Err(TokenError::Header);
    }
    if header
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some(ACCESS_TYP)
    {
        return Err(TokenError::Header);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let set = ring.current();
    let key = set.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
    if header.alg != key.alg {
        return Err(TokenError::Header);
    }
    let mut v = Validation::new(key.alg);
    v.algorithms = vec![key.alg];
    v.leeway = 5;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.required_spec_claims = HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
    jsonwebtoken::decode::<AccessClaims>(token, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|e| TokenError::Rejected(e.to_string()))
}
