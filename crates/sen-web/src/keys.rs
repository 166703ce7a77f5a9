//! `/me/keys`: personal API keys (create with a subset of the account's
//! permissions, shown once, revoke) and the OAuth apps the user consented
//! to (withdraw), through the `/api/v1/me` handlers.

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Json, Path};
use sen_core::{AppContext, AppResult, Principal};

use crate::login::TokenForm;
use crate::page::{Frame, csrf_ok, describe, forbidden, html, see_other};

/// One key.
pub struct KeyLine {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Visible prefix.
    pub prefix: String,
    /// Its permissions, joined.
    pub permissions: String,
    /// Last use.
    pub last_used: String,
}

/// One consent.
pub struct ConsentLine {
    /// Client id.
    pub client_id: String,
    /// Client name.
    pub name: String,
    /// Scopes.
    pub scope: String,
}

/// The page.
#[derive(Template)]
#[template(path = "keys.html")]
pub struct KeysPage {
    /// Frame.
    pub f: Frame,
    /// What a key may be given (what the account holds).
    pub permissions: Vec<String>,
    /// Live keys.
    pub keys: Vec<KeyLine>,
    /// Consents.
    pub consents: Vec<ConsentLine>,
    /// A key just made (shown once).
    pub created: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

async fn render(
    ctx: &AppContext,
    me: Principal,
    headers: &HeaderMap,
    status: StatusCode,
    created: Option<String>,
    error: Option<String>,
) -> AppResult<Response> {
    let f = Frame::new(ctx, headers, Some(&me), "/me/keys");
    let permissions: Vec<String> = me.permissions.iter().cloned().collect();
    let Json(keys) = sen_auth::routes::api_keys::list_keys(State(ctx.clone()), me.clone()).await?;
    let Json(consents) = sen_auth::oauth::clients::list_consents(State(ctx.clone()), me).await?;
    Ok(html(
        status,
        &KeysPage {
            f,
            permissions,
            keys: keys
                .items
                .into_iter()
                .map(|k| KeyLine {
                    id: k.id,
                    name: k.name,
                    prefix: k.prefix,
                    permissions: k.permissions.join(", "),
                    last_used: k.last_used_at.unwrap_or_default(),
                })
                .collect(),
            consents: consents
                .items
                .into_iter()
                .map(|c| ConsentLine {
                    client_id: c.client_id,
                    name: c.client_name,
                    scope: c.scope,
                })
                .collect(),
            created,
            error,
        },
    ))
}

macro_rules! signed_in {
    ($who:expr) => {
        match $who {
            Some(p) => p,
            None => return Ok(crate::refresh::via_refresh("/me/keys")),
        }
    };
}

/// `GET /me/keys`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let me = signed_in!(who);
    render(&ctx, me, &headers, StatusCode::OK, None, None).await
}

/// `POST /web/me/keys` (`name`, repeated `permissions`, `csrf`).
pub async fn create(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let me = signed_in!(who);
    let mut name = String::new();
    let mut csrf = String::new();
    let mut permissions = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "name" => name = v.into_owned(),
            "csrf" => csrf = v.into_owned(),
            "permissions" => permissions.push(v.into_owned()),
            _ => {}
        }
    }
    if !csrf_ok(&ctx, Some(&me), &headers, &csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me/keys")));
    }
    let new = sen_auth::routes::api_keys::NewKey {
        name,
        permissions,
        expires_at: None,
    };
    match sen_auth::routes::api_keys::create_key(State(ctx.clone()), me.clone(), meta, Json(new))
        .await
    {
        Ok(r) => {
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
                .await
                .map_err(sen_core::AppError::internal)?;
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(sen_core::AppError::internal)?;
            let key = v["key"].as_str().map(str::to_string);
            render(&ctx, me, &headers, StatusCode::CREATED, key, None).await
        }
        Err(e) if e.status().is_client_error() => {
            let msg = describe(&e);
            render(&ctx, me, &headers, e.status(), None, Some(msg)).await
        }
        Err(e) => Err(e),
    }
}

/// `POST /web/me/keys/{id}/revoke`.
pub async fn revoke(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me/keys")));
    }
    sen_auth::routes::api_keys::revoke_key(State(ctx.clone()), me, meta, Path(id)).await?;
    Ok(see_other("/me/keys"))
}

/// `POST /web/me/consents/{client_id}/revoke`.
pub async fn revoke_consent(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(client): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let me = signed_in!(who);
    if !csrf_ok(&ctx, Some(&me), &headers, &form.csrf) {
        return Ok(forbidden(Frame::new(&ctx, &headers, Some(&me), "/me/keys")));
    }
    sen_auth::oauth::clients::revoke_consent(State(ctx.clone()), me, meta, Path(client)).await?;
    Ok(see_other("/me/keys"))
}
