//! Sign-in with a third-party OpenID Connect provider (the `openidconnect`
//! crate as the client): `GET /api/v1/auth/oidc/{provider}/start` sends the
//! browser to the provider with PKCE, a nonce and a state kept in a sealed
//! cookie; `…/callback` checks them, verifies the id token against the
//! provider's published keys, and signs the user in. An identity is linked
//! to an existing account only when the provider says the email is
//! verified; otherwise an account with that email is never taken over.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use sea_orm::ConnectionTrait;
use sen_core::config::OidcProvider;
use sen_core::extract::{Path, Query};
use sen_core::{AppContext, AppError, AppResult};
use serde::{Deserialize, Serialize};

use crate::request_meta::Meta;
use crate::state::AuthState;

const COOKIE: &str = "sen_oidc";
const COOKIE_PATH: &str = "/api/v1/auth/oidc";
const STATE_TTL_SECS: i64 = 600;

/// What the sealed cookie carries between start and callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    exp: i64,
}

fn provider<'a>(ctx: &'a AppContext, name: &str) -> AppResult<&'a OidcProvider> {
    ctx.config()
        .auth_oidc_providers
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(AppError::not_found)
}

fn failed(detail: impl Into<String>) -> AppError {
    AppError::new(StatusCode::BAD_GATEWAY, "oidc_failed").with_detail(detail.into())
}

fn http_client() -> AppResult<openidconnect::reqwest::Client> {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| AppError::internal(anyhow::anyhow!("http client: {e}")))
}

fn callback_url(ctx: &AppContext, name: &str) -> String {
    format!(
        "{}/api/v1/auth/oidc/{name}/callback",
        ctx.config().public_url()
    )
}

/// Only a path on this site: never an absolute or protocol-relative URL.
fn safe_return(to: Option<&str>) -> String {
    match to {
        Some(t)
            if t.starts_with('/')
                && !t.starts_with("//")
                && !t.contains('\\')
                && t.len() <= 512 =>
        {
            t.to_string()
        }
        _ => "/".into(),
    }
}

/// `?return_to=` of the start endpoint.
#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

/// Sends the browser to the provider.
pub async fn start(
    State(ctx): State<AppContext>,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let p = provider(&ctx, &name)?;
    let http = http_client()?;
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| failed(format!("issuer: {e}")))?;
    let meta = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| failed(format!("discovery at {} failed: {e}", p.issuer)))?;
    let redirect = RedirectUrl::new(callback_url(&ctx, &name)).map_err(AppError::internal)?;
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.expose().to_string())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let pending = Pending {
        provider: name,
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        return_to: safe_return(q.return_to.as_deref()),
        exp: sen_core::clock::now().timestamp() + STATE_TTL_SECS,
    };
    let sealed = state
        .sealer
        .seal(&serde_json::to_vec(&pending).map_err(AppError::internal)?)
        .map_err(AppError::internal)?;
    let secure = if state.cookie_secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={sealed}; Path={COOKIE_PATH}; Max-Age={STATE_TTL_SECS}; HttpOnly; SameSite=Lax{secure}"
    );
    let mut resp = Redirect::to(url.as_str()).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(AppError::internal)?,
    );
    Ok(resp)
}

/// `?code=&state=` (or `?error=`) from the provider.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Finishes sign-in: checks state, exchanges the code, verifies the id
/// token, finds or links or creates the account, and sets the session.
pub async fn callback(
    State(ctx): State<AppContext>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
    meta: Meta,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let p = provider(&ctx, &name)?;
    let mismatch = || {
        AppError::bad_request(
            "oidc_state_mismatch",
            "The sign-in attempt expired or did not start here; start again.",
        )
    };
    let pending: Pending = crate::cookies::read_headers(&headers, COOKIE)
        .and_then(|c| state.sealer.open(c).ok())
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(mismatch)?;
    let fresh = pending.exp > sen_core::clock::now().timestamp();
    let same_state = q
        .state
        .as_deref()
        .is_some_and(|s| crate::crypto::same(s.as_bytes(), pending.state.as_bytes()));
    if pending.provider != name || !fresh || !same_state {
        return Err(mismatch());
    }
    if let Some(e) = q.error {
        return Err(AppError::new(StatusCode::UNAUTHORIZED, "oidc_denied")
            .with_detail(format!("The provider did not sign you in ({e}).")));
    }
    let code = q.code.ok_or_else(mismatch)?;
    let http = http_client()?;
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| failed(format!("issuer: {e}")))?;
    let meta_doc = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| failed(format!("discovery failed: {e}")))?;
    let redirect = RedirectUrl::new(callback_url(&ctx, &name)).map_err(AppError::internal)?;
    let client = CoreClient::from_provider_metadata(
        meta_doc,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.expose().to_string())),
    )
    .set_redirect_uri(redirect);
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| failed(format!("no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| failed(format!("code exchange failed: {e}")))?;
    let id_token = token
        .id_token()
        .ok_or_else(|| failed("the provider sent no id token"))?;
    let verifier = client.id_token_verifier().set_allowed_algs(vec![
        CoreJwsSigningAlgorithm::EdDsa,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ]);
    let claims = id_token
        .claims(&verifier, &Nonce::new(pending.nonce.clone()))
        .map_err(|e| failed(format!("id token rejected: {e}")))?;
    let subject = claims.subject().to_string();
    let email = claims
        .email()
        .map(|e| e.to_string().trim().to_lowercase())
        .ok_or_else(|| failed("the provider did not share an email address"))?;
    let verified = claims.email_verified().unwrap_or(false);
    let display = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.to_string())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_string());
    let user_id = find_or_link(
        &ctx,
        &name,
        &subject,
        &email,
        verified,
        &display,
        meta.ip.as_deref(),
    )
    .await?;
    let issued = crate::sessions::open_standalone(
        &ctx,
        &state,
        &user_id,
        meta.user_agent.as_deref(),
        meta.ip.as_deref(),
        "login.success",
    )
    .await?;
    let tokens = crate::routes::auth::issue(&ctx, &state, &issued, false).await?;
    let mut resp = Redirect::to(&pending.return_to).into_response();
    for c in tokens.headers().get_all(header::SET_COOKIE) {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Lax"
        ))
        .map_err(AppError::internal)?,
    );
    Ok(resp)
}

/// The account for `(provider, subject)`: already linked, linked now by a
/// verified email, or created. 409 `account_exists` when an account has the
/// email and the provider does not vouch for it.
async fn find_or_link(
    ctx: &AppContext,
    provider: &str,
    subject: &str,
    email: &str,
    verified: bool,
    name: &str,
    ip: Option<&str>,
) -> AppResult<String> {
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let linked = tx
        .query_one_raw(db.statement(
            "SELECT i.user_id, u.disabled_at FROM sen_identities i JOIN sen_users u ON u.id = i.user_id WHERE i.provider = ? AND i.subject = ?",
            [provider.into(), subject.into()],
        ))
        .await?;
    if let Some(row) = linked {
        if row.try_get::<Option<i64>>("", "disabled_at")?.is_some() {
            return Err(crate::authn::invalid_token());
        }
        return Ok(row.try_get("", "user_id")?);
    }
    let existing = tx
        .query_one_raw(db.statement(
            "SELECT id, disabled_at FROM sen_users WHERE email = ?",
            [email.into()],
        ))
        .await?;
    let now = sen_core::clock::now().timestamp_millis();
    let (user_id, action) = match existing {
        Some(row) if verified => {
            if row.try_get::<Option<i64>>("", "disabled_at")?.is_some() {
                return Err(crate::authn::invalid_token());
            }
            (row.try_get::<String>("", "id")?, "identity.link")
        }
        Some(_) => {
            return Err(AppError::conflict(
                "account_exists",
                "An account with this email exists and the provider has not verified the address; sign in with your password.",
            ));
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            tx.execute_raw(db.statement(
                "INSERT INTO sen_users (id, email, name, email_verified, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [id.clone().into(), email.into(), name.chars().take(100).collect::<String>().into(), verified.into(), now.into(), now.into()],
            ))
            .await?;
            (id, "user.register")
        }
    };
    tx.execute_raw(db.statement(
        "INSERT INTO sen_identities (id, user_id, provider, subject, email, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            uuid::Uuid::now_v7().to_string().into(),
            user_id.clone().into(),
            provider.into(),
            subject.into(),
            email.into(),
            now.into(),
        ],
    ))
    .await?;
    crate::audit::record(
        db,
        &tx,
        crate::audit::Entry {
            actor: Some(&user_id),
            action,
            target: Some(&user_id),
            ip,
            detail: serde_json::json!({"provider": provider}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user_id)
}
