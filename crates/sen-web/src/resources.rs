//! Generic pages for the tables apps declare (`App::admin_pages`,
//! `App::me_pages`): a list with search, filters, sort and cursor pages,
//! a detail page with an edit form, a create form, delete — with the
//! server's validation errors shown beside each field and nothing
//! written unless every field is valid. Dashboard pages need the
//! resource's read permission to look and its write permission to
//! change; `/me` tabs show and change only the caller's own rows. Every
//! change is audited in the transaction that makes it.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use sen_auth::audit::{self, Entry};
use sen_auth::request_meta::Meta;
use sen_core::extract::{Path, Query};
use sen_core::resource::{Cell, Field, FieldKind, ListQuery, Resource};
use sen_core::{AppContext, AppError, AppResult, Principal};

use crate::admin::{gate, urlencode};
use crate::page::{Frame, csrf_ok, forbidden, html, see_other};

/// Dashboard or profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/admin/apps/app/{app}/{resource}`: every row, by permission.
    Admin,
    /// `/me/apps/{app}/{resource}`: the caller's rows.
    Me,
}

impl Scope {
    fn base(self, app: &str, res: &str) -> String {
        match self {
            Self::Admin => format!("/admin/apps/app/{app}/{res}"),
            Self::Me => format!("/me/apps/{app}/{res}"),
        }
    }
}

/// A field as a form or list column shows it.
pub struct FieldView {
    /// Column name (input name).
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// `text`, `textarea`, `email`, `number`, `checkbox` or `select`.
    pub input: &'static str,
    /// Choices of a select.
    pub choices: Vec<&'static str>,
    /// Must have a value.
    pub required: bool,
    /// Forms may set it.
    pub editable: bool,
    /// Longest text (0 = no limit shown).
    pub max: usize,
    /// Number limits.
    pub min_num: String,
    /// Number limits.
    pub max_num: String,
    /// The value shown (the row's, or what was submitted).
    pub value: String,
    /// Why the submitted value was refused.
    pub error: Option<String>,
}

/// A field's form view with `value` and its refusal.
pub fn field_view(f: &Field, value: String, error: Option<String>) -> FieldView {
    let (input, choices, max, min_num, max_num) = match &f.kind {
        FieldKind::Text { max } => ("text", vec![], *max, String::new(), String::new()),
        FieldKind::LongText { max } => ("textarea", vec![], *max, String::new(), String::new()),
        FieldKind::Email => ("email", vec![], 254, String::new(), String::new()),
        FieldKind::Integer { min, max } => ("number", vec![], 0, min.to_string(), max.to_string()),
        FieldKind::Boolean => ("checkbox", vec![], 0, String::new(), String::new()),
        FieldKind::Choice(c) => ("select", c.to_vec(), 0, String::new(), String::new()),
    };
    FieldView {
        name: f.name,
        label: f.label,
        input,
        choices,
        required: f.required,
        editable: f.editable,
        max,
        min_num,
        max_num,
        value,
        error,
    }
}

/// A refused field's message in the page's language (the validation
/// rules live in `sen_core` and speak English; their codes are stable).
pub fn message(tx: &crate::i18n::Texts, f: &Field, e: &sen_core::FieldError) -> String {
    match (e.code.as_str(), &f.kind) {
        ("required", _) => tx.err_required.to_string(),
        ("too_long", FieldKind::Text { max } | FieldKind::LongText { max }) => {
            tx.err_too_long.replace("{max}", &max.to_string())
        }
        ("out_of_range", FieldKind::Integer { min, max }) => tx
            .err_range
            .replace("{min}", &min.to_string())
            .replace("{max}", &max.to_string()),
        ("invalid_number", _) => tx.err_number.to_string(),
        ("invalid_email", _) => tx.err_email.to_string(),
        ("invalid_value", FieldKind::Choice(values)) => {
            tx.err_choice.replace("{values}", &values.join(", "))
        }
        _ => e.message.clone(),
    }
}

/// A list filter.
pub struct FilterView {
    /// Field name (query key `f.{name}`).
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// Values offered.
    pub options: Vec<&'static str>,
    /// The value chosen ("" = any).
    pub chosen: String,
}

/// One list row.
pub struct RowView {
    /// Id.
    pub id: String,
    /// The list columns' cells, as text.
    pub cells: Vec<String>,
}

/// The list page.
#[derive(Template)]
#[template(path = "resource_list.html")]
pub struct ListPage {
    /// Frame.
    pub f: Frame,
    /// Title.
    pub title: &'static str,
    /// The app's title (breadcrumb).
    pub app_title: &'static str,
    /// Where the app's page is.
    pub app_href: String,
    /// This resource's base path.
    pub base: String,
    /// Search box shown.
    pub searchable: bool,
    /// The search.
    pub q: String,
    /// Filters.
    pub filters: Vec<FilterView>,
    /// Sortable fields (name, label).
    pub sorts: Vec<(&'static str, &'static str)>,
    /// The sort chosen.
    pub sort: String,
    /// Descending.
    pub desc: bool,
    /// Column labels.
    pub columns: Vec<&'static str>,
    /// Rows.
    pub rows: Vec<RowView>,
    /// The next page's URL.
    pub next: Option<String>,
    /// Show "new".
    pub can_write: bool,
}

/// The detail/edit and create page.
#[derive(Template)]
#[template(path = "resource_form.html")]
pub struct FormPage {
    /// Frame.
    pub f: Frame,
    /// Title.
    pub title: &'static str,
    /// This resource's base path.
    pub base: String,
    /// The row's id (None: creating).
    pub id: Option<String>,
    /// Fields.
    pub fields: Vec<FieldView>,
    /// Show the form's buttons.
    pub can_write: bool,
    /// A summary of what was refused.
    pub error: Option<String>,
}

fn find(ctx: &AppContext, scope: Scope, app: &str, res: &str) -> Option<(&'static str, Resource)> {
    let a = ctx.apps().iter().find(|a| a.name() == app)?;
    let list = match scope {
        Scope::Admin => a.admin_pages(),
        Scope::Me => a.me_pages(),
    };
    list.into_iter()
        .find(|r| r.name == res)
        .map(|r| (a.title(), r))
}

/// Who is asking, what they may do, and the resource — or the page to
/// answer instead (sign in, 403, 404).
struct Access {
    me: Principal,
    f: Frame,
    res: Resource,
    app_title: &'static str,
    owner: Option<String>,
    can_write: bool,
}

fn access(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    scope: Scope,
    app: &str,
    res: &str,
) -> Result<Access, Box<Response>> {
    let path = scope.base(app, res);
    let (me, f) = match scope {
        Scope::Admin => gate(ctx, headers, who, &path)?,
        Scope::Me => match who {
            Some(p) => {
                let f = Frame::new(ctx, headers, Some(&p), &path);
                (p, f)
            }
            None => return Err(Box::new(crate::refresh::via_refresh(&path))),
        },
    };
    let Some((app_title, res)) = find(ctx, scope, app, res) else {
        return Err(Box::new(crate::page::not_found(f)));
    };
    let (owner, may_read, can_write) = match scope {
        Scope::Admin => (
            None,
            me.has(res.read_permission),
            me.has(res.write_permission),
        ),
        Scope::Me => (Some(me.user_id.clone()), true, true),
    };
    if !may_read {
        return Err(Box::new(forbidden(f)));
    }
    Ok(Access {
        me,
        f,
        res,
        app_title,
        owner,
        can_write,
    })
}

/// `GET` a list (`q`, `sort`, `dir=desc`, `cursor`, `f.{field}`).
pub async fn list(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    scope: Scope,
    (app, res): (String, String),
    query: HashMap<String, String>,
) -> AppResult<Response> {
    let a = match access(ctx, headers, who, scope, &app, &res) {
        Ok(a) => a,
        Err(r) => return Ok(*r),
    };
    let get = |k: &str| query.get(k).cloned().unwrap_or_default();
    let filters_in: Vec<(String, String)> = a
        .res
        .fields
        .iter()
        .filter(|f| f.filter)
        .map(|f| (f.name.to_string(), get(&format!("f.{}", f.name))))
        .collect();
    let q = ListQuery {
        q: get("q"),
        filters: filters_in.clone(),
        sort: get("sort"),
        desc: get("dir") == "desc",
        cursor: query.get("cursor").cloned().filter(|c| !c.is_empty()),
        limit: 50,
    };
    let page = a.res.list(ctx.db(), a.owner.as_deref(), &q).await?;
    let listed: Vec<usize> = (0..a.res.fields.len())
        .filter(|i| a.res.fields[*i].list)
        .collect();
    let base = scope.base(&app, &res);
    let next = page.next_cursor.map(|c| {
        let mut url = format!(
            "{base}?q={}&sort={}&dir={}&cursor={}",
            urlencode(&q.q),
            urlencode(&q.sort),
            if q.desc { "desc" } else { "asc" },
            urlencode(&c)
        );
        for (k, v) in &filters_in {
            url.push_str(&format!("&f.{k}={}", urlencode(v)));
        }
        url
    });
    let filters = a
        .res
        .fields
        .iter()
        .filter(|f| f.filter)
        .map(|f| FilterView {
            name: f.name,
            label: f.label,
            options: match &f.kind {
                FieldKind::Boolean => vec!["true", "false"],
                FieldKind::Choice(c) => c.to_vec(),
                _ => vec![],
            },
            chosen: get(&format!("f.{}", f.name)),
        })
        .collect();
    let rows = page
        .rows
        .into_iter()
        .map(|r| RowView {
            cells: listed.iter().map(|i| r.cells[*i].to_string()).collect(),
            id: r.id,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &ListPage {
            title: a.res.title,
            app_title: a.app_title,
            app_href: match scope {
                Scope::Admin => format!("/admin/apps/app/{app}"),
                Scope::Me => "/me".into(),
            },
            base,
            searchable: a.res.fields.iter().any(|f| f.search),
            q: q.q,
            filters,
            sorts: a
                .res
                .fields
                .iter()
                .filter(|f| f.sortable)
                .map(|f| (f.name, f.label))
                .collect(),
            sort: q.sort,
            desc: q.desc,
            columns: listed.iter().map(|i| a.res.fields[*i].label).collect(),
            rows,
            next,
            can_write: a.can_write,
            f: a.f,
        },
    ))
}

fn form_page(
    a: Access,
    base: String,
    id: Option<String>,
    values: &dyn Fn(&Field) -> String,
    errors: &[sen_core::FieldError],
    status: StatusCode,
) -> Response {
    let fields = a
        .res
        .fields
        .iter()
        .map(|f| {
            let e = errors
                .iter()
                .find(|e| e.field == f.name)
                .map(|e| message(a.f.tx, f, e));
            field_view(f, values(f), e)
        })
        .collect();
    let error = (!errors.is_empty()).then(|| a.f.tx.fix_fields.to_string());
    html(
        status,
        &FormPage {
            title: a.res.title,
            base,
            id,
            fields,
            can_write: a.can_write,
            error,
            f: a.f,
        },
    )
}

/// `GET` one row (its edit form), or the empty form for `new`.
pub async fn show(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    scope: Scope,
    (app, res, id): (String, String, String),
) -> AppResult<Response> {
    let a = match access(ctx, headers, who, scope, &app, &res) {
        Ok(a) => a,
        Err(r) => return Ok(*r),
    };
    let base = scope.base(&app, &res);
    if id == "new" {
        if !a.can_write {
            return Ok(forbidden(a.f));
        }
        return Ok(form_page(
            a,
            base,
            None,
            &|_| String::new(),
            &[],
            StatusCode::OK,
        ));
    }
    let db = ctx.db();
    let Some(row) = a.res.get(db, db.orm(), a.owner.as_deref(), &id).await? else {
        return Ok(crate::page::not_found(a.f));
    };
    let cells: HashMap<&str, Cell> = a.res.fields.iter().map(|f| f.name).zip(row.cells).collect();
    Ok(form_page(
        a,
        base,
        Some(id),
        &|f| cells.get(f.name).map(Cell::form_value).unwrap_or_default(),
        &[],
        StatusCode::OK,
    ))
}

/// `POST` a new row, an edit (`id`), or a delete (`id` + `op=delete`).
pub async fn save(
    ctx: &AppContext,
    headers: &HeaderMap,
    who: Option<Principal>,
    meta: &Meta,
    scope: Scope,
    (app, res, id): (String, String, Option<String>),
    body: &Bytes,
) -> AppResult<Response> {
    let a = match access(ctx, headers, who, scope, &app, &res) {
        Ok(a) => a,
        Err(r) => return Ok(*r),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    if !csrf_ok(ctx, Some(&a.me), headers, field("csrf")) || !a.can_write {
        return Ok(forbidden(a.f));
    }
    let base = scope.base(&app, &res);
    let db = ctx.db();
    let owner = a.owner.clone();
    let detail = serde_json::json!({"app": app, "resource": res});
    if field("op") == "delete" {
        let Some(id) = id else {
            return Err(AppError::not_found());
        };
        let tx = db.begin_write().await?;
        if !a.res.delete(db, &tx, owner.as_deref(), &id).await? {
            return Ok(crate::page::not_found(a.f));
        }
        audit::record(
            db,
            &tx,
            Entry {
                actor: Some(&a.me.user_id),
                action: "resource.delete",
                target: Some(&id),
                ip: meta.ip.as_deref(),
                detail,
            },
        )
        .await?;
        tx.commit().await?;
        return Ok(see_other(&base));
    }
    let values = match a.res.parse_form(&form) {
        Ok(v) => v,
        Err(errors) => {
            let submitted = |f: &Field| {
                form.iter()
                    .find(|(n, _)| n == f.name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            return Ok(form_page(
                a,
                base,
                id,
                &submitted,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let tx = db.begin_write().await?;
    let (target, action) = match &id {
        Some(id) => {
            if !a.res.update(db, &tx, owner.as_deref(), id, values).await? {
                return Ok(crate::page::not_found(a.f));
            }
            (id.clone(), "resource.update")
        }
        None => (
            a.res.create(db, &tx, owner.as_deref(), values).await?,
            "resource.create",
        ),
    };
    audit::record(
        db,
        &tx,
        Entry {
            actor: Some(&a.me.user_id),
            action,
            target: Some(&target),
            ip: meta.ip.as_deref(),
            detail,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(see_other(&format!("{base}/{}", urlencode(&target))))
}

/// The scope of a route: `ME` = the `/me` tab, else the dashboard page.
const fn scope_of<const ME: bool>() -> Scope {
    if ME { Scope::Me } else { Scope::Admin }
}

/// `GET /admin/apps/app/{app}/{res}` (`ME = false`) or `/me/apps/{app}/{res}`.
pub async fn list_page<const ME: bool>(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(p): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    list(&ctx, &headers, who, scope_of::<ME>(), p, q).await
}

/// `GET …/{app}/{res}/{id}` (`new`: the create form).
pub async fn show_page<const ME: bool>(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    headers: HeaderMap,
    Path(p): Path<(String, String, String)>,
) -> AppResult<Response> {
    show(&ctx, &headers, who, scope_of::<ME>(), p).await
}

/// `POST …/{app}/{res}`: create.
pub async fn create_row<const ME: bool>(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path((app, res)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    let p = (app, res, None);
    save(&ctx, &headers, who, &meta, scope_of::<ME>(), p, &body).await
}

/// `POST …/{app}/{res}/{id}`: edit or delete.
pub async fn update_row<const ME: bool>(
    State(ctx): State<AppContext>,
    who: Option<Principal>,
    meta: Meta,
    headers: HeaderMap,
    Path((app, res, id)): Path<(String, String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    let p = (app, res, Some(id));
    save(&ctx, &headers, who, &meta, scope_of::<ME>(), p, &body).await
}
