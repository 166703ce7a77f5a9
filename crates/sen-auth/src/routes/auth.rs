//! `/api/v1/auth/*`: register, login, refresh, logout.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use sen_core::extract::Json;
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Entry};
use crate::cookies;
use crate::jwt::{self, AccessClaims};
use crate::limits;
use crate::request_meta::Meta;
use crate::sessions::{self, Issued};
use crate::sign_in::invalid_credentials;
use crate::state::AuthState;
use crate::users::{self, UserView};

type Problem = sen_core::error::Problem;

/// `POST /api/v1/auth/register` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Email (normalised: trimmed, lower-cased).
    pub email: String,
    /// 8–128 characters, not a common password.
    pub password: String,
    /// Display name.
    pub name: String,
}

/// A user, wrapped.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    /// The user.
    pub user: UserView,
}

/// Creates an account.
#[utoipa::path(post, path = "/register", tag = "auth", request_body = RegisterBody, responses(
    (status = 201, description = "Created", body = UserEnvelope),
    (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid email, name or password", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn register(
    State(ctx): State<AppContext>,
    meta: Meta,
    Json(body): Json<RegisterBody>,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    limits::guard(
        &ctx,
        &[(
            limits::ip_key("register", meta.ip.as_deref()),
            limits::REGISTER_IP,
        )],
    )
    .await?;
    let (email, name) = users::check_new_account(&body.email, &body.name, &body.password)?;
    let hash = state.passwords.hash(body.password).await?;
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let id = crate::routes::admin::create_in(&ctx, &tx, &email, &name, &hash).await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&id),
            action: "user.register",
            target: Some(&id),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    let (user, grants) = users::by_id(&ctx, &tx, &id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("user vanished after insert")))?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(UserEnvelope {
            user: UserView::new(&ctx, &user, &grants),
        }),
    )
        .into_response())
}

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// TOTP or recovery code, for accounts with MFA.
    #[serde(default)]
    pub totp: Option<String>,
    /// `native` to receive the refresh token in the body too.
    #[serde(default)]
    pub client: Option<String>,
}

/// Tokens issued by login and refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token: only for `"client": "native"` (browsers get the cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The signed-in user.
    pub user: UserView,
}

/// Signs an access token for `issued` and answers with body and cookies.
pub async fn issue(
    ctx: &AppContext,
    state: &AuthState,
    issued: &Issued,
    native: bool,
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
        client_id: "sen".into(),
        scope: String::new(),
    };
    let access = jwt::sign(&state.keys, &claims)
        .map_err(|e| AppError::unavailable("signing keys", anyhow::anyhow!(e)))?;
    let (user, grants) = match issued.user.clone() {
        Some(known) => known,
        None => users::by_id(ctx, ctx.db().orm(), &issued.user_id)
            .await?
            .ok_or_else(invalid_credentials)?,
    };
    let refresh_age =
        ((issued.expires_at - sen_core::clock::now().timestamp_millis()) / 1000).max(0);
    let mut headers = HeaderMap::new();
    headers.append(
        header::SET_COOKIE,
        cookies::access(&access, ttl as i64, state.cookie_secure),
    );
    headers.append(
        header::SET_COOKIE,
        cookies::refresh(&issued.refresh_token, refresh_age, state.cookie_secure),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    let body = TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: native.then(|| issued.refresh_token.clone()),
        user: UserView::new(ctx, &user, &grants),
    };
    Ok((headers, Json(body)).into_response())
}

/// Signs in with email and password (and a TOTP code when MFA is on).
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "Signed in; cookies set", body = TokenResponse),
    (status = 401, description = "`invalid_credentials`, `mfa_required` or `mfa_invalid`", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "`rate_limited`, with `Retry-After`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn login(
    State(ctx): State<AppContext>,
    meta: Meta,
    Json(body): Json<LoginBody>,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let native = match body.client.as_deref() {
        None | Some("browser") => false,
        Some("native") => true,
        Some(_) => {
            return Err(AppError::validation(vec![FieldError::new(
                "client",
                "invalid_value",
                "must be `browser` or `native`",
            )]));
        }
    };
    let issued = crate::sign_in::sign_in(
        &ctx,
        &state,
        &body.email,
        body.password,
        body.totp.as_deref(),
        &meta,
    )
    .await?;
    issue(&ctx, &state, &issued, native).await
}

/// `POST /api/v1/auth/refresh` body (optional when the cookie is sent).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The refresh token (native clients).
    pub refresh_token: String,
}

fn body_refresh_token(headers: &HeaderMap, body: &Bytes) -> AppResult<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(
            AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                .with_detail("Send the body as application/json."),
        );
    }
    let b: RefreshBody = sen_core::extract::parse(body)?;
    Ok(Some(b.refresh_token))
}

/// Exchanges a refresh token (cookie or body) for new tokens; the old one
/// stops working, and replaying it ends the session.
#[utoipa::path(post, path = "/refresh", tag = "auth", request_body(content = Option<RefreshBody>), responses(
    (status = 200, description = "New tokens; cookies set", body = TokenResponse),
    (status = 401, description = "`invalid_refresh_token` or `token_reused`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn refresh(
    State(ctx): State<AppContext>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let from_body = body_refresh_token(&headers, &body)?;
    let native = from_body.is_some();
    let presented = from_body
        .or_else(|| cookies::read_headers(&headers, cookies::REFRESH).map(str::to_string))
        .ok_or_else(|| {
            AppError::new(StatusCode::UNAUTHORIZED, "invalid_refresh_token")
                .with_detail("Send the refresh cookie or a `refresh_token`.")
        })?;
    let issued = match sessions::rotate(&ctx, &presented, "sen", meta.ip.as_deref()).await {
        Ok(i) => i,
        Err(e) => {
            let mut resp = e.into_response();
            if !native {
                for c in cookies::clear(state.cookie_secure) {
                    resp.headers_mut().append(header::SET_COOKIE, c);
                }
            }
            return Ok(resp);
        }
    };
    issue(&ctx, &state, &issued, native).await
}

/// Ends the current session: its refresh token and cookies stop working.
#[utoipa::path(post, path = "/logout", tag = "auth", request_body(content = Option<RefreshBody>), responses(
    (status = 204, description = "Signed out; cookies cleared"),
    (status = 401, description = "No session to end", body = Problem, content_type = "application/problem+json"),
))]
pub async fn logout(
    State(ctx): State<AppContext>,
    meta: Meta,
    headers: HeaderMap,
    me: Option<Principal>,
    body: Bytes,
) -> AppResult<Response> {
    let state = AuthState::of(&ctx)?;
    let db = ctx.db();
    let session = match me.as_ref().and_then(|p| p.session_id.clone()) {
        Some(s) => Some(s),
        None => {
            let presented = body_refresh_token(&headers, &body)?
                .or_else(|| cookies::read_headers(&headers, cookies::REFRESH).map(str::to_string));
            match presented {
                Some(t) => sessions::session_of_refresh(&ctx, &t).await?,
                None => None,
            }
        }
    };
    let Some(session) = session else {
        return Err(sen_core::principal::unauthenticated());
    };
    let tx = db.begin_write().await?;
    sessions::revoke_in(&ctx, &tx, &session, "logout").await?;
    audit::record(
        db,
        &tx,
        Entry {
            actor: me.as_ref().map(|p| p.user_id.as_str()),
            action: "logout",
            target: Some(&session),
            ip: meta.ip.as_deref(),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    for c in cookies::clear(state.cookie_secure) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}
