//! Per-user notifications: stored (read/unread), listed on `/me`, and
//! pushed live to the user's `user:{id}` topic when created or read.

use axum::extract::State;
use http::StatusCode;
use sea_orm::ConnectionTrait;
use sen_core::extract::{Json, Path, Query};
use sen_core::{AppContext, AppError, AppResult, Principal};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The user topic notifications go to.
pub fn user_topic(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Machine-readable kind (`order.shipped`).
    pub kind: String,
    /// One line.
    pub title: String,
    /// Longer text (may be empty).
    pub body: String,
    /// Whatever the client needs to act on it (a link, ids).
    pub data: serde_json::Value,
}

/// A notification as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notification {
    /// Id (UUIDv7, so newer ids sort later).
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Extra data.
    pub data: serde_json::Value,
    /// When it was read (RFC 3339), if it was.
    pub read_at: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    sen_core::clock::now().timestamp_millis()
}

/// Stores a notification for `user_id` and pushes it to `user:{user_id}`.
/// A failed push is logged, not returned: the notification is stored and
/// the user sees it on the next list or resume.
pub async fn notify(
    ctx: &AppContext,
    user_id: &str,
    n: NewNotification,
) -> Result<Notification, AppError> {
    let db = ctx.db();
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let data = n.data.to_string();
    db.orm()
        .execute_raw(db.statement(
            "INSERT INTO sen_notifications (id, user_id, kind, title, body, data, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                id.clone().into(),
                user_id.into(),
                n.kind.clone().into(),
                n.title.clone().into(),
                n.body.clone().into(),
                data.into(),
                now.into(),
            ],
        ))
        .await?;
    let view = Notification {
        id,
        kind: n.kind,
        title: n.title,
        body: n.body,
        data: n.data,
        read_at: None,
        created_at: iso(now),
    };
    let payload = serde_json::to_value(&view).unwrap_or_default();
    if let Err(e) = ctx
        .realtime()
        .publish(&user_topic(user_id), "notification", payload)
        .await
    {
        tracing::warn!(error = %e, "notification stored but not pushed");
    }
    Ok(view)
}

/// Query of the notification list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only unread ones.
    #[serde(default)]
    pub unread: bool,
    /// Continue after this cursor (`next_cursor` of the previous page).
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// A page of notifications, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    /// The notifications.
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// How many are unread in total.
    pub unread: i64,
}

/// Lists the caller's notifications.
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "me", params(ListQuery), responses(
    (status = 200, description = "Newest first", body = NotificationPage),
    (status = 401, description = "Not signed in", body = sen_core::error::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Bad query", body = sen_core::error::Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(ctx): State<AppContext>,
    me: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<NotificationPage>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_limit")
                .with_detail("limit must be between 1 and 100."),
        );
    }
    if let Some(c) = &q.cursor
        && uuid::Uuid::parse_str(c).is_err()
    {
        return Err(
            AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor")
                .with_detail("cursor must be the next_cursor of a previous page."),
        );
    }
    let db = ctx.db();
    let mut sql = String::from(
        "SELECT id, kind, title, body, data, read_at, created_at FROM sen_notifications WHERE user_id = ?",
    );
    let mut values: Vec<sea_orm::Value> = vec![me.user_id.clone().into()];
    if q.unread {
        sql.push_str(" AND read_at IS NULL");
    }
    if let Some(c) = &q.cursor {
        sql.push_str(" AND id < ?");
        values.push(c.clone().into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(i64::from(limit + 1).into());
    let rows = db.orm().query_all_raw(db.statement(&sql, values)).await?;
    let mut items = rows
        .iter()
        .map(|r| {
            let data: String = r.try_get("", "data")?;
            Ok(Notification {
                id: r.try_get("", "id")?,
                kind: r.try_get("", "kind")?,
                title: r.try_get("", "title")?,
                body: r.try_get("", "body")?,
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                read_at: r.try_get::<Option<i64>>("", "read_at")?.map(iso),
                created_at: iso(r.try_get("", "created_at")?),
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|n| n.id.clone())
    } else {
        None
    };
    let unread = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT COUNT(*) AS n FROM sen_notifications WHERE user_id = ? AND read_at IS NULL",
            [me.user_id.clone().into()],
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(Json(NotificationPage {
        items,
        next_cursor,
        unread,
    }))
}

async fn announce_read(ctx: &AppContext, user_id: &str, ids: serde_json::Value) {
    if let Err(e) = ctx
        .realtime()
        .publish(
            &user_topic(user_id),
            "notifications.read",
            serde_json::json!({ "ids": ids }),
        )
        .await
    {
        tracing::warn!(error = %e, "read state not pushed");
    }
}

/// Marks one of the caller's notifications read (another user's id: 404).
#[utoipa::path(post, path = "/api/v1/me/notifications/{id}/read", tag = "me",
    params(("id" = String, Path, description = "Notification id")),
    responses(
        (status = 204, description = "Read"),
        (status = 404, description = "No such notification of yours", body = sen_core::error::Problem, content_type = "application/problem+json"),
))]
pub async fn read_one(
    State(ctx): State<AppContext>,
    me: Principal,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let db = ctx.db();
    let found = db
        .orm()
        .query_one_raw(db.statement(
            "SELECT read_at FROM sen_notifications WHERE id = ? AND user_id = ?",
            [id.clone().into(), me.user_id.clone().into()],
        ))
        .await?
        .ok_or_else(AppError::not_found)?;
    if found.try_get::<Option<i64>>("", "read_at")?.is_none() {
        let n = db
            .orm()
            .execute_raw(db.statement(
                "UPDATE sen_notifications SET read_at = ? WHERE id = ? AND user_id = ? AND read_at IS NULL",
                [now_ms().into(), id.clone().into(), me.user_id.clone().into()],
            ))
            .await?
            .rows_affected();
        if n == 1 {
            announce_read(&ctx, &me.user_id, serde_json::json!([id])).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How many notifications `read-all` marked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadAll {
    /// Newly marked read.
    pub updated: u64,
}

/// Marks all of the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/me/notifications/read-all", tag = "me", responses(
    (status = 200, description = "Marked", body = ReadAll),
))]
pub async fn read_all(State(ctx): State<AppContext>, me: Principal) -> AppResult<Json<ReadAll>> {
    let db = ctx.db();
    let updated = db
        .orm()
        .execute_raw(db.statement(
            "UPDATE sen_notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
            [now_ms().into(), me.user_id.clone().into()],
        ))
        .await?
        .rows_affected();
    if updated > 0 {
        announce_read(&ctx, &me.user_id, serde_json::json!("all")).await;
    }
    Ok(Json(ReadAll { updated }))
}
