//! `/oauth/token` (authorization_code with PKCE S256; refresh_token with
//! rotation), `/oauth/revoke` (RFC 7009), `/oauth/introspect` (RFC 7662)
//! and `/oauth/userinfo`. Errors follow RFC 6749 §5.2 (`{"error": …}`).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sea_orm::ConnectionTrait;
use sen_core::extract::Json;
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::{Deserialize, Serialize};

use super::Client;
use crate::crypto::{same, sha256_hex};
use crate::jwt::{self, AccessClaims};
use crate::request_meta::Meta;
use crate::sessions::{self, Issued};
use crate::state::AuthState;
use crate::users::UserRow;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        axum::Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oauth\""),
        );
    }
    r
}

fn invalid_grant(d: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d)
}

/// Form fields of the token, revoke and introspect endpoints.
#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

/// Authenticates the client: HTTP Basic or `client_secret_post` for
/// confidential clients, `client_id` alone for public ones.
async fn authenticate_client(
    ctx: &AppContext,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Client, Response> {
    let unauthorized = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| {
                form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(id)?, dec(secret)?))
        });
    let (client_id, secret) = match (&basic, &form.client_id) {
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (id.clone(), form.client_secret.clone()),
        (None, None) => return Err(unauthorized()),
    };
    let client = match super::client(ctx, &client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(unauthorized()),
        Err(_) => {
            return Err(oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again shortly",
            ));
        }
    };
    if client.confidential {
        let ok = match (&secret, &client.secret_hash) {
            (Some(s), Some(h)) => same(sha256_hex(s.as_bytes()).as_bytes(), h.as_bytes()),
            _ => false,
        };
        if !ok {
            return Err(unauthorized());
        }
    }
    Ok(client)
}

/// What `/oauth/token` answers.
#[derive(Debug, Serialize)]
struct Tokens {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// The claims of an id token.
#[derive(Debug, Serialize)]
struct IdClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

async fn tokens_for(
    ctx: &AppContext,
    state: &AuthState,
    issued: &Issued,
    id_token: Option<(Option<String>, i64)>,
) -> AppResult<Response> {
    let now = sen_core::clock::now().timestamp();
    let ttl = state.access_ttl.as_secs();
    let claims = AccessClaims {
        iss: state.issuer.clone(),
        aud: state.audience.clone(),
        sub: issued.user_id.clone(),
        exp: now + ttl as i64,
        iat: now,
        jti: uuid::Uuid::now_v7().to_string(),
        sid: issued.session_id.clone(),
        client_id: issued.client_id.clone(),
        scope: issued.scope.clone(),
    };
    let access = jwt::sign(&state.keys, &claims)
        .map_err(|e| AppError::unavailable("signing keys", anyhow::anyhow!(e)))?;
    let scopes: Vec<&str> = issued.scope.split(' ').collect();
    let id_token = match id_token {
        Some((nonce, auth_time)) if scopes.contains(&"openid") => {
            let user = crate::users::by_id(ctx, ctx.db().orm(), &issued.user_id)
                .await?
                .map(|(u, _)| u);
            let Some(user) = user else {
                return Ok(invalid_grant("the user is gone"));
            };
            let id = IdClaims {
                iss: state.issuer.clone(),
                sub: issued.user_id.clone(),
                aud: issued.client_id.clone(),
                exp: now + ttl as i64,
                iat: now,
                auth_time: auth_time / 1000,
                nonce,
                email: scopes.contains(&"email").then(|| user.email.clone()),
                email_verified: if scopes.contains(&"email") {
                    Some(email_verified(ctx, &issued.user_id).await?)
                } else {
                    None
                },
                name: scopes.contains(&"profile").then(|| user.name.clone()),
            };
            Some(
                jwt::sign_typed(&state.keys, "JWT", &id)
                    .map_err(|e| AppError::unavailable("signing keys", anyhow::anyhow!(e)))?,
            )
        }
        _ => None,
    };
    let mut r = axum::Json(Tokens {
        access_token: access,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: issued.refresh_token.clone(),
        scope: issued.scope.clone(),
        id_token,
    })
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

async fn email_verified(ctx: &AppContext, user_id: &str) -> Result<bool, sea_orm::DbErr> {
    let db = ctx.db();
    Ok(db
        .orm()
        .query_one_raw(db.statement(
            "SELECT email_verified FROM sen_users WHERE id = ?",
            [user_id.into()],
        ))
        .await?
        .map(|r| r.try_get::<bool>("", "email_verified"))
        .transpose()?
        .unwrap_or(false))
}

/// The token endpoint.
pub async fn token(
    State(ctx): State<AppContext>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send application/x-www-form-urlencoded",
        ));
    };
    crate::limits::guard(
        &ctx,
        &[(
            crate::limits::ip_key("oauth-token", meta.ip.as_deref()),
            crate::limits::OAUTH_TOKEN_IP,
        )],
    )
    .await?;
    let client = match authenticate_client(&ctx, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    match form.grant_type.as_deref() {
        Some("authorization_code") => redeem(&ctx, &state, &client, &form, &meta).await,
        Some("refresh_token") => {
            let Some(rt) = form.refresh_token.as_deref() else {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required",
                ));
            };
            match sessions::rotate(&ctx, rt, &client.client_id, meta.ip.as_deref()).await {
                Ok(issued) => tokens_for(&ctx, &state, &issued, None).await,
                Err(_) => Ok(invalid_grant("the refresh token is not valid")),
            }
        }
        Some(_) => Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        )),
        None => Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        )),
    }
}

async fn redeem(
    ctx: &AppContext,
    state: &AuthState,
    client: &Client,
    form: &TokenForm,
    meta: &Meta,
) -> AppResult<Response> {
    let (Some(code), Some(verifier)) = (form.code.as_deref(), form.code_verifier.as_deref()) else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code and code_verifier are required",
        ));
    };
    let db = ctx.db();
    let now = sen_core::clock::now().timestamp_millis();
    let tx = db.begin_write().await?;
    let row = tx
        .query_one_raw(db.statement(
            "SELECT client_id, user_id, redirect_uri, scope, code_challenge, nonce, auth_time, expires_at, used_at, session_id
             FROM sen_oauth_codes WHERE code_hash = ?",
            [sha256_hex(code.as_bytes()).into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(invalid_grant("the code is not valid"));
    };
    let code_hash = sha256_hex(code.as_bytes());
    let used_at: Option<i64> = row.try_get("", "used_at")?;
    if used_at.is_some() {
        // A second use: the code leaked. Revoke what it issued.
        if let Some(sid) = row.try_get::<Option<String>>("", "session_id")? {
            sessions::revoke_in(ctx, &tx, &sid, "code_reused").await?;
        }
        tx.commit().await?;
        return Ok(invalid_grant(
            "the code was already used; tokens issued from it are revoked",
        ));
    }
    let code_client: String = row.try_get("", "client_id")?;
    let redirect_uri: String = row.try_get("", "redirect_uri")?;
    let expires_at: i64 = row.try_get("", "expires_at")?;
    let challenge: String = row.try_get("", "code_challenge")?;
    if code_client != client.client_id
        || form.redirect_uri.as_deref() != Some(redirect_uri.as_str())
        || expires_at <= now
    {
        return Ok(invalid_grant(
            "the code does not belong to this client and redirect URI, or has expired",
        ));
    }
    let computed = super::s256(verifier);
    if !(43..=128).contains(&verifier.len()) || !same(computed.as_bytes(), challenge.as_bytes()) {
        return Ok(invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    let claimed = tx
        .execute_raw(db.statement(
            "UPDATE sen_oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL",
            [now.into(), code_hash.clone().into()],
        ))
        .await?
        .rows_affected();
    if claimed != 1 {
        return Ok(invalid_grant("the code was already used"));
    }
    let user_id: String = row.try_get("", "user_id")?;
    let scope: String = row.try_get("", "scope")?;
    let nonce: Option<String> = row.try_get("", "nonce")?;
    let auth_time: i64 = row.try_get("", "auth_time")?;
    let disabled = tx
        .query_one_raw(db.statement(
            "SELECT disabled_at FROM sen_users WHERE id = ?",
            [user_id.clone().into()],
        ))
        .await?
        .map(|r| r.try_get::<Option<i64>>("", "disabled_at"))
        .transpose()?
        .flatten()
        .is_some();
    if disabled {
        return Ok(invalid_grant("the account is disabled"));
    }
    let issued = sessions::open_for(
        ctx,
        state,
        &tx,
        &user_id,
        (&client.client_id, &scope),
        meta.user_agent.as_deref(),
        meta.ip.as_deref(),
    )
    .await?;
    tx.execute_raw(db.statement(
        "UPDATE sen_oauth_codes SET session_id = ? WHERE code_hash = ?",
        [issued.session_id.clone().into(), code_hash.into()],
    ))
    .await?;
    tx.commit().await?;
    tokens_for(ctx, state, &issued, Some((nonce, auth_time))).await
}

/// RFC 7009: revokes a refresh or access token's session. Always 200 for
/// a token the client may not know about.
pub async fn revoke(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let form: TokenForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let client = match authenticate_client(&ctx, &headers, &form).await {
        Ok(c) => c,
        Err(r) => return Ok(r),
    };
    let Some(token) = form.token else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    if let Some(sid) = session_of(&ctx, &token).await? {
        let db = ctx.db();
        db.orm()
            .execute_raw(db.statement(
                "UPDATE sen_sessions SET revoked_at = ?, revoked_reason = 'oauth_revoke' WHERE id = ? AND client_id = ? AND revoked_at IS NULL",
                [
                    sen_core::clock::now().timestamp_millis().into(),
                    sid.into(),
                    client.client_id.into(),
                ],
            ))
            .await?;
    }
    Ok(StatusCode::OK.into_response())
}

/// The session behind a refresh token or an access JWT of ours.
async fn session_of(ctx: &AppContext, token: &str) -> AppResult<Option<String>> {
    if token.starts_with(crate::refresh_token::PREFIX) {
        return sessions::session_of_refresh(ctx, token).await;
    }
    let state = AuthState::of(ctx)?;
    Ok(
        jwt::verify_fresh(ctx, &state.keys, token, &state.issuer, &state.audience)
            .await
            .ok()
            .map(|c| c.sid),
    )
}

/// RFC 7662: whether a token is active, for resource servers (client-authenticated).
pub async fn introspect(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let form: TokenForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if let Err(r) = authenticate_client(&ctx, &headers, &form).await {
        return Ok(r);
    }
    let inactive = || axum::Json(serde_json::json!({"active": false})).into_response();
    let Some(token) = form.token else {
        return Ok(inactive());
    };
    let state = AuthState::of(&ctx)?;
    let Ok(claims) =
        jwt::verify_fresh(&ctx, &state.keys, &token, &state.issuer, &state.audience).await
    else {
        return Ok(inactive());
    };
    let db = ctx.db();
    let live = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT 1 AS ok FROM sen_sessions s JOIN sen_users u ON u.id = s.user_id
             WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL",
            [
                claims.sid.clone().into(),
                sen_core::clock::now().timestamp_millis().into(),
            ],
        ))
        .await?
        .is_some();
    if !live {
        return Ok(inactive());
    }
    let mut r = axum::Json(serde_json::json!({
        "active": true,
        "sub": claims.sub,
        "client_id": claims.client_id,
        "scope": claims.scope,
        "exp": claims.exp,
        "iat": claims.iat,
        "iss": claims.iss,
        "aud": claims.aud,
        "token_type": "Bearer",
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// OpenID Connect userinfo for the token's user.
pub async fn userinfo(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<serde_json::Value>> {
    let user = me
        .extra::<UserRow>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("principal without user row")))?;
    Ok(Json(serde_json::json!({
        "sub": user.id,
        "email": user.email,
        "email_verified": email_verified(&ctx, &user.id).await?,
        "name": user.name,
    })))
}
