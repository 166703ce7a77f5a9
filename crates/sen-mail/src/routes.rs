//! The operator's mail API: the outbox with each message's state and
//! rendered parts (`/api/v1/admin/mail`), and the suppression list
//! (`/api/v1/admin/mail/suppressions`), behind `mail:read` / `mail:write`.

use axum::extract::State;
use http::StatusCode;
use sea_orm::{ConnectionTrait, QueryResult, Value};
use sen_core::extract::{Json, Path, Query};
use sen_core::mail::is_plausible_address;
use sen_core::{AppContext, AppError, AppResult, FieldError, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::suppressions::REASONS;

type Problem = sen_core::error::Problem;

/// Reading the outbox and the suppression list.
pub const READ: &str = "mail:read";
/// Changing the suppression list.
pub const WRITE: &str = "mail:write";

fn iso(ms: Option<i64>) -> Option<String> {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// One outbox message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailView {
    /// Outbox id (also the Message-ID's local part).
    pub id: String,
    /// Recipient.
    pub recipient: String,
    /// Template name.
    pub template: String,
    /// Locale rendered.
    pub locale: String,
    /// `queued`, `sent`, `suppressed` or `failed`.
    pub state: String,
    /// Subject, once rendered.
    pub subject: Option<String>,
    /// Delivery attempts made.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Option<String>,
    /// When the server accepted it.
    pub sent_at: Option<String>,
    /// Plain-text part (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// HTML part (detail only; show it sandboxed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

fn view(r: &QueryResult, detail: bool) -> Result<MailView, sea_orm::DbErr> {
    Ok(MailView {
        id: r.try_get("", "id")?,
        recipient: r.try_get("", "recipient")?,
        template: r.try_get("", "template")?,
        locale: r.try_get("", "locale")?,
        state: r.try_get("", "state")?,
        subject: r.try_get("", "subject")?,
        attempts: r.try_get("", "attempts")?,
        last_error: r.try_get("", "last_error")?,
        created_at: iso(r.try_get("", "created_at")?),
        sent_at: iso(r.try_get("", "sent_at")?),
        text: if detail {
            r.try_get("", "text_body")?
        } else {
            None
        },
        html: if detail {
            r.try_get("", "html_body")?
        } else {
            None
        },
    })
}

const COLUMNS: &str =
    "id, recipient, template, locale, state, subject, attempts, last_error, created_at, sent_at";

/// Filters and page of the outbox list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MailQuery {
    /// Only this state.
    pub state: Option<String>,
    /// Only this recipient.
    pub recipient: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailPage {
    /// Messages.
    pub items: Vec<MailView>,
    /// Pass as `cursor` for older messages; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lists outbox messages by state and recipient.
#[utoipa::path(get, path = "/api/v1/admin/mail", tag = "mail", params(MailQuery), responses(
    (status = 200, description = "A page of messages", body = MailPage),
    (status = 403, description = "Lacks `mail:read`", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_mail(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<MailQuery>,
) -> AppResult<Json<MailPage>> {
    me.require(READ)?;
    const STATES: [&str; 4] = ["queued", "sent", "suppressed", "failed"];
    if let Some(s) = &q.state
        && !STATES.contains(&s.as_str())
    {
        return Err(AppError::validation(vec![FieldError::new(
            "state",
            "invalid_value",
            format!("must be one of {}", STATES.join(", ")),
        )]));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let mut sql = format!("SELECT {COLUMNS} FROM sen_mail WHERE 1 = 1");
    let mut values: Vec<Value> = Vec::new();
    if let Some(s) = q.state {
        sql.push_str(" AND state = ?");
        values.push(s.into());
    }
    if let Some(r) = q.recipient {
        sql.push_str(" AND recipient = ?");
        values.push(r.trim().to_string().into());
    }
    if let Some(c) = q.cursor {
        sql.push_str(" AND id < ?");
        values.push(c.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::from(limit + 1).into());
    let db = ctx.db();
    let rows = db.orm().query_all_raw(db.statement(&sql, values)).await?;
    let mut items = rows
        .iter()
        .map(|r| view(r, false))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(Json(MailPage { items, next_cursor }))
}

/// One message with its rendered text and HTML (the preview).
#[utoipa::path(get, path = "/api/v1/admin/mail/{id}", tag = "mail",
    params(("id" = String, Path, description = "Outbox id")),
    responses(
        (status = 200, description = "The message", body = MailView),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_mail(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<MailView>> {
    me.require(READ)?;
    let db = ctx.db();
    let row = db
        .orm()
        .query_one_raw(db.statement(
            &format!("SELECT {COLUMNS}, text_body, html_body, vars FROM sen_mail WHERE id = ?"),
            [id.into()],
        ))
        .await?
        .ok_or_else(AppError::not_found)?;
    let mut v = view(&row, true)?;
    if v.subject.is_none() {
        // Not delivered yet: render now for the preview (nothing is stored).
        let state = crate::MailState::of(&ctx)?;
        let vars: serde_json::Value =
            serde_json::from_str(&row.try_get::<String>("", "vars")?).unwrap_or_default();
        if let Ok(r) = state.templates.render(&v.template, &v.locale, &vars) {
            v.subject = Some(r.subject);
            v.text = Some(r.text);
            v.html = Some(r.html);
        }
    }
    Ok(Json(v))
}

/// A suppressed address.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suppression {
    /// The address (lower-case).
    pub address: String,
    /// `bounce`, `complaint` or `manual`.
    pub reason: String,
    /// Operator's note.
    pub note: Option<String>,
    /// When it was added.
    pub created_at: Option<String>,
}

/// The suppression list, newest first (at most 1000).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionList {
    /// Entries.
    pub items: Vec<Suppression>,
}

/// Lists suppressed addresses.
#[utoipa::path(get, path = "/api/v1/admin/mail/suppressions", tag = "mail", responses(
    (status = 200, description = "Suppressed addresses", body = SuppressionList),
))]
pub async fn list_suppressions(
    State(ctx): State<AppContext>,
    me: Principal,
) -> AppResult<Json<SuppressionList>> {
    me.require(READ)?;
    let db = ctx.db();
    let rows = db
        .orm()
        .query_all_raw(db.statement(
            "SELECT address, reason, note, created_at FROM sen_mail_suppressions ORDER BY created_at DESC, address LIMIT 1000",
            [],
        ))
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(Suppression {
                address: r.try_get("", "address")?,
                reason: r.try_get("", "reason")?,
                note: r.try_get("", "note")?,
                created_at: iso(r.try_get("", "created_at")?),
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(Json(SuppressionList { items }))
}

/// `POST /api/v1/admin/mail/suppressions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    /// The address never to mail again.
    pub address: String,
    /// `bounce`, `complaint` or `manual`.
    pub reason: String,
    /// Operator's note (≤ 500 characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// Suppresses an address (idempotent: adding it again updates the reason).
#[utoipa::path(post, path = "/api/v1/admin/mail/suppressions", tag = "mail", request_body = NewSuppression, responses(
    (status = 204, description = "Suppressed"),
    (status = 422, description = "Bad address or reason", body = Problem, content_type = "application/problem+json"),
))]
pub async fn add_suppression(
    State(ctx): State<AppContext>,
    me: Principal,
    Json(body): Json<NewSuppression>,
) -> AppResult<StatusCode> {
    me.require(WRITE)?;
    let address = body.address.trim().to_lowercase();
    let mut errors = Vec::new();
    if !is_plausible_address(&address) {
        errors.push(FieldError::new(
            "address",
            "invalid",
            "This is not an email address.",
        ));
    }
    if !REASONS.contains(&body.reason.as_str()) {
        errors.push(FieldError::new(
            "reason",
            "invalid_value",
            format!("must be one of {}", REASONS.join(", ")),
        ));
    }
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        errors.push(FieldError::new(
            "note",
            "too_long",
            "At most 500 characters.",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO sen_mail_suppressions (address, reason, note, created_by, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, note = excluded.note",
            [
                address.into(),
                body.reason.into(),
                body.note.into(),
                me.user_id.clone().into(),
                sen_core::clock::now().timestamp_millis().into(),
            ],
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets an address be mailed again.
#[utoipa::path(delete, path = "/api/v1/admin/mail/suppressions/{address}", tag = "mail",
    params(("address" = String, Path, description = "The address")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "Not suppressed", body = Problem, content_type = "application/problem+json"),
))]
pub async fn remove_suppression(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(address): Path<String>,
) -> AppResult<StatusCode> {
    me.require(WRITE)?;
    let db = ctx.db();
    let n = db
        .orm()
        .execute_raw(db.statement(
            "DELETE FROM sen_mail_suppressions WHERE address = ?",
            [address.trim().to_lowercase().into()],
        ))
        .await?
        .rows_affected();
    if n == 0 {
        return Err(AppError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}
