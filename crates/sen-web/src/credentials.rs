//! `/admin/apps/credentials`: every user's live API keys and every OAuth
//! client, to find and cut off a leaked credential, and a form that
//! registers a client (its secret shown once). Reading needs
//! `auth:credentials.read`; revoking and registering
//! `auth:credentials.write`.

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::oauth::clients::NewClient;
use sen_auth::request_meta::Meta;
use sen_auth::routes::admin_credentials::{self as api, ClientView, KeyQuery, OwnedKey};
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppError, AppResult, Principal};

use crate::login::TokenForm;
use crate::page::{Frame, csrf_ok, describe, forbidden, html, see_other};

const PATH: &str = "/admin/apps/credentials";

/// A client just registered: shown once.
pub struct Created {
    /// Client id.
    pub client_id: String,
    /// Secret (confidential clients).
    pub secret: Option<String>,
}

/// The page.
#[derive(Template)]
#[template(path = "credentials.html")]
pub struct CredentialsPage {
    /// Frame.
    pub f: Frame,
    /// A page of live keys, newest first.
    pub keys: Vec<OwnedKey>,
    /// The next page of keys.
    pub next_cursor: Option<String>,
    /// Live clients.
    pub clients: Vec<ClientView>,
    /// Show revoke and the register form.
    pub can_write: bool,
    /// The client just registered.
    pub created: Option<Created>,
    /// Why registering failed.
    pub error: Option<String>,
    /// The form's values after a refusal.
    pub form_name: String,
    /// The form's redirect URIs after a refusal.
    pub form_uris: String,
}

async fn render(
    ctx: &AppContext,
    me: Principal,
    f: Frame,
    status: StatusCode,
    created: Option<Created>,
    refused: Option<(String, String, String)>,
    cursor: Option<String>,
) -> AppResult<Response> {
    let query = KeyQuery {
        limit: Some(50),
        cursor,
        ..KeyQuery::default()
    };
    let Json(keys) = api::list_all_keys(State(ctx.clone()), me.clone(), Query(query)).await?;
    let Json(clients) = api::list_clients(State(ctx.clone()), me.clone()).await?;
    let (error, form_name, form_uris) = match refused {
        Some((e, n, u)) => (Some(e), n, u),
        None => (None, String::new(), String::new()),
    };
    Ok(html(
        status,
        &CredentialsPage {
            f,
            keys: keys.items,
            next_cursor: keys.next_cursor,
            clients: clients.items,
            can_write: me.has(api::WRITE),
            created,
            error,
            form_name,
            form_uris,
        },
    ))
}

fn gate(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    permission: &str,
    csrf: Option<&str>,
) -> Result<(Principal, Frame), Box<Response>> {
    let (me, f) = crate::admin::gate(ctx, headers, who, PATH)?;
    let token_ok = csrf.is_none_or(|t| csrf_ok(ctx, Some(&me), headers, t));
    if !token_ok || !me.has(permission) {
        return Err(Box::new(forbidden(f)));
    }
    Ok((me, f))
}

/// `?cursor=` (the next page of keys).
#[derive(Debug, serde::Deserialize)]
pub struct Cursor {
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /admin/apps/credentials`.
pub async fn page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<Cursor>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, api::READ, None) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    render(&ctx, me, f, StatusCode::OK, None, None, q.cursor).await
}

/// `POST /admin/apps/credentials/keys/{id}/revoke`.
pub async fn revoke_key(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let (me, _) = match gate(&ctx, &headers, who, api::WRITE, Some(&form.csrf)) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    api::revoke_any_key(State(ctx.clone()), me, meta, Path(id)).await?;
    Ok(see_other(PATH))
}

/// `POST /admin/apps/credentials/clients/{id}/revoke`.
pub async fn revoke_client(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> AppResult<Response> {
    let (me, _) = match gate(&ctx, &headers, who, api::WRITE, Some(&form.csrf)) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    api::revoke_client(State(ctx.clone()), me, meta, Path(id)).await?;
    Ok(see_other(PATH))
}

/// `POST /admin/apps/credentials/clients` (`name`, `redirect_uris` one per
/// line, `confidential` when ticked).
pub async fn create_client(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let (mut name, mut uris, mut csrf, mut confidential) =
        (String::new(), String::new(), String::new(), false);
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "name" => name = v.into_owned(),
            "redirect_uris" => uris = v.into_owned(),
            "csrf" => csrf = v.into_owned(),
            "confidential" => confidential = true,
            _ => {}
        }
    }
    let (me, f) = match gate(&ctx, &headers, who, api::WRITE, Some(&csrf)) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let new = NewClient {
        name: name.clone(),
        redirect_uris: uris
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        confidential,
    };
    match sen_auth::oauth::clients::create_client(State(ctx.clone()), me.clone(), meta, Json(new))
        .await
    {
        Ok(r) => {
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
                .await
                .map_err(AppError::internal)?;
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(AppError::internal)?;
            let created = Created {
                client_id: v["client_id"].as_str().unwrap_or_default().to_string(),
                secret: v["client_secret"].as_str().map(str::to_string),
            };
            render(&ctx, me, f, StatusCode::CREATED, Some(created), None, None).await
        }
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            render(
                &ctx,
                me,
                f,
                status,
                None,
                Some((describe(&e), name, uris)),
                None,
            )
            .await
        }
        Err(e) => Err(e),
    }
}
