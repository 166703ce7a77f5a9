//! An app's own corner of the dashboard (`/admin/apps/app/{app}`: its
//! declared tables) and the settings page (`/admin/apps/settings`: every
//! app's settings and feature flags, typed and validated; a form saves
//! all of one app's values or, when any is refused, none).

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::audit::{self, Entry};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Path, Query};
use sen_core::settings::{self, SetError};
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};

use crate::admin::gate;
use crate::page::{Frame, csrf_ok, forbidden, html, not_found, see_other};
use crate::resources::{FieldView, field_view};

/// Permission to see settings.
pub const SETTINGS_READ: &str = "web:settings.read";
/// Permission to change settings.
pub const SETTINGS_WRITE: &str = "web:settings.write";

/// An app's page.
#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage {
    /// Frame.
    pub f: Frame,
    /// Title.
    pub title: &'static str,
    /// Description.
    pub description: &'static str,
    /// Its tables the caller may read: (path, title).
    pub resources: Vec<(String, &'static str)>,
    /// It declares settings.
    pub has_settings: bool,
}

/// `GET /admin/apps/app/{app}`.
pub async fn app_page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, &format!("/admin/apps/app/{name}")) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let Some(app) = ctx.apps().iter().find(|a| a.name() == name) else {
        return Ok(not_found(f));
    };
    let resources = app
        .admin_pages()
        .into_iter()
        .filter(|r| me.has(r.read_permission))
        .map(|r| (format!("/admin/apps/app/{name}/{}", r.name), r.title))
        .collect();
    Ok(html(
        StatusCode::OK,
        &AppPage {
            f,
            title: app.title(),
            description: app.description(),
            resources,
            has_settings: !app.settings().is_empty(),
        },
    ))
}

/// One setting on the page.
pub struct SettingView {
    /// The form field.
    pub field: FieldView,
    /// One sentence.
    pub help: &'static str,
}

/// One app's settings.
pub struct AppSettings {
    /// App name.
    pub app: &'static str,
    /// App title.
    pub title: &'static str,
    /// Settings.
    pub settings: Vec<SettingView>,
}

/// The settings page.
#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    /// Frame.
    pub f: Frame,
    /// Apps with settings.
    pub apps: Vec<AppSettings>,
    /// Show save.
    pub can_write: bool,
    /// "Saved." after a save.
    pub notice: Option<&'static str>,
    /// A summary of what was refused.
    pub error: Option<&'static str>,
}

async fn render(
    ctx: &AppContext,
    me: &Principal,
    f: Frame,
    status: StatusCode,
    refused: Option<(&str, &HashMap<String, String>, &[FieldError])>,
    notice: Option<&'static str>,
) -> AppResult<Response> {
    let mut apps = Vec::new();
    for app in ctx.apps().iter() {
        let decls = app.settings();
        if decls.is_empty() {
            continue;
        }
        let mut views = Vec::new();
        for s in decls {
            let (value, error) = match refused.filter(|(a, _, _)| *a == app.name()) {
                Some((_, form, errors)) => (
                    form.get(s.key()).cloned().unwrap_or_default(),
                    errors
                        .iter()
                        .find(|e| e.field == s.key())
                        .map(|e| crate::resources::message(f.tx, &s.field, e)),
                ),
                None => (
                    settings::form_text(&settings::value(ctx, app.name(), s.key()).await?),
                    None,
                ),
            };
            views.push(SettingView {
                field: field_view(&s.field, value, error),
                help: s.help,
            });
        }
        apps.push(AppSettings {
            app: app.name(),
            title: app.title(),
            settings: views,
        });
    }
    let error = refused.map(|_| f.tx.fix_fields);
    Ok(html(
        status,
        &SettingsPage {
            f,
            apps,
            can_write: me.has(SETTINGS_WRITE),
            notice,
            error,
        },
    ))
}

/// `?saved=1`.
#[derive(Debug, serde::Deserialize)]
pub struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /admin/apps/settings`.
pub async fn settings_page(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Query(q): Query<Saved>,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/settings") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    if !me.has(SETTINGS_READ) {
        return Ok(forbidden(f));
    }
    let notice = q.saved.map(|_| f.tx.saved);
    render(&ctx, &me, f, StatusCode::OK, None, notice).await
}

/// `POST /admin/apps/settings/{app}`: every setting of the app at once
/// (an absent flag is off).
pub async fn save_settings(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    let (me, f) = match gate(&ctx, &headers, who, "/admin/apps/settings") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let token = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !csrf_ok(&ctx, Some(&me), &headers, token) || !me.has(SETTINGS_WRITE) {
        return Ok(forbidden(f));
    }
    let Some(decls) = ctx
        .apps()
        .iter()
        .find(|a| a.name() == app)
        .map(|a| a.settings())
    else {
        return Ok(not_found(f));
    };
    // Validate everything first: one refused value saves nothing.
    let errors: Vec<FieldError> = decls
        .iter()
        .filter_map(|s| s.parse(form.get(s.key()).map(String::as_str)).err())
        .collect();
    if !errors.is_empty() {
        return render(
            &ctx,
            &me,
            f,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((&app, &form, &errors)),
            None,
        )
        .await;
    }
    let db = ctx.db();
    let tx = db.begin_write().await?;
    let mut changed = serde_json::Map::new();
    for s in &decls {
        let raw = form.get(s.key()).map(String::as_str);
        let before = settings::value(&ctx, &app, s.key()).await?;
        let after = match settings::set(&ctx, &tx, &app, s.key(), raw, &me.user_id).await {
            Ok(v) => v,
            Err(SetError::Db(e)) => return Err(e.into()),
            Err(SetError::Unknown | SetError::Invalid(_)) => {
                return Err(AppError::internal(anyhow::anyhow!(
                    "setting {app}.{} refused after validation",
                    s.key()
                )));
            }
        };
        if before != after {
            changed.insert(s.key().to_string(), after);
        }
    }
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&me.user_id),
            action: "settings.change",
            target: Some(&app),
            ip: meta.ip.as_deref(),
            detail: serde_json::Value::Object(changed),
        },
    )
    .await?;
    tx.commit().await?;
    settings::forget(&ctx);
    Ok(see_other("/admin/apps/settings?saved=1"))
}
