//! The mail contract: templates an app declares (`App::mail_templates`),
//! and `ctx.mail().send(&tx, Mail …)`, which writes the message to the mail
//! outbox (`sen_mail`) and enqueues its delivery in the caller's
//! transaction, so a message exists exactly when the change it reports
//! committed. Rendering and delivery (SMTP, the dev file transport,
//! suppressions, per-domain limits) are `sen-mail`'s business.

use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

use crate::Backend;
use crate::db::placeholders;
use crate::jobs::{Jobs, NewJob};

/// The job kind that delivers one outbox message (run by `sen-mail`).
pub const DELIVER_KIND: &str = "mail.deliver";
/// The queue mail delivery runs on.
pub const QUEUE: &str = "mail";
/// Locales templates may be written in; the first is the fallback.
pub const LOCALES: [&str; 2] = ["en", "vi"];

/// The states of an outbox message.
pub mod state {
    /// Waiting for (another) delivery attempt.
    pub const QUEUED: &str = "queued";
    /// Accepted by the SMTP server (or written by the file transport).
    pub const SENT: &str = "sent";
    /// Not sent: the address is suppressed (bounce or complaint).
    pub const SUPPRESSED: &str = "suppressed";
    /// Every attempt failed, or the message could not be rendered.
    pub const FAILED: &str = "failed";
}

/// One template in one locale, in minijinja syntax. `html` is
/// auto-escaped; `subject` and `text` are not (they are not HTML).
#[derive(Debug, Clone)]
pub struct MailTemplate {
    /// `{app}.{what}`, e.g. `auth.password_reset`.
    pub name: &'static str,
    /// One of [`LOCALES`].
    pub locale: &'static str,
    /// Subject line.
    pub subject: &'static str,
    /// Plain-text part.
    pub text: &'static str,
    /// HTML part.
    pub html: &'static str,
}

/// A message to send: a template, its variables, a recipient and a locale.
#[derive(Debug, Clone)]
pub struct Mail {
    to: String,
    template: String,
    locale: String,
    vars: serde_json::Value,
}

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient is not a plausible address.
    #[error("`{0}` is not an email address")]
    BadAddress(String),
    /// The database refused the write.
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<MailError> for crate::AppError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::BadAddress(_) => crate::AppError::validation(vec![crate::FieldError::new(
                "email",
                "invalid",
                "This is not an email address.",
            )]),
            MailError::Db(e) => e.into(),
        }
    }
}

impl Mail {
    /// `template` to `to`, in English, with no variables.
    pub fn new(template: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            template: template.into(),
            locale: LOCALES[0].into(),
            vars: serde_json::json!({}),
        }
    }

    /// The locale (`en`, `vi`); an unknown one falls back to English.
    pub fn locale(mut self, locale: &str) -> Self {
        self.locale = pick_locale(locale).to_string();
        self
    }

    /// The template's variables (a JSON object).
    pub fn vars(mut self, vars: serde_json::Value) -> Self {
        self.vars = vars;
        self
    }
}

/// The supported locale that best matches `tag` (`vi-VN` → `vi`), else `en`.
pub fn pick_locale(tag: &str) -> &'static str {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    LOCALES
        .iter()
        .find(|l| **l == primary)
        .copied()
        .unwrap_or(LOCALES[0])
}

/// The first supported locale of an `Accept-Language` header, else `en`.
pub fn locale_from_accept_language(header: Option<&str>) -> &'static str {
    let Some(h) = header else {
        return LOCALES[0];
    };
    let mut tags: Vec<(f32, &str)> = h
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, tag))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0));
    tags.iter()
        .map(|(_, t)| t.split('-').next().unwrap_or_default().to_ascii_lowercase())
        .find_map(|p| LOCALES.iter().find(|l| **l == p).copied())
        .unwrap_or(LOCALES[0])
}

/// A syntactic check of an address: one `@`, a non-empty local part, a
/// dotted domain, no spaces or control characters, at most 254 bytes.
pub fn is_plausible_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@')
        && !a.contains(['<', '>', ',', ';', '"', '\\'])
}

/// Queues mail; `ctx.mail()`.
#[derive(Clone)]
pub struct Mails {
    backend: Backend,
    jobs: Jobs,
}

impl Mails {
    /// A handle for `backend` that enqueues through `jobs`.
    pub fn new(backend: Backend, jobs: Jobs) -> Self {
        Self { backend, jobs }
    }

    /// Writes `mail` to the outbox on `conn` (pass the caller's
    /// transaction) and enqueues its delivery; returns the message id.
    pub async fn send(&self, conn: &impl ConnectionTrait, mail: Mail) -> Result<String, MailError> {
        let to = mail.to.trim().to_string();
        if !is_plausible_address(&to) {
            return Err(MailError::BadAddress(to));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = crate::clock::now().timestamp_millis();
        let db = match self.backend {
            Backend::Sqlite => sea_orm::DbBackend::Sqlite,
            Backend::Postgres => sea_orm::DbBackend::Postgres,
        };
        let values: Vec<Value> = vec![
            id.clone().into(),
            to.into(),
            mail.template.into(),
            mail.locale.into(),
            mail.vars.to_string().into(),
            now.into(),
        ];
        conn.execute_raw(Statement::from_sql_and_values(
            db,
            placeholders(
                self.backend,
                "INSERT INTO sen_mail (id, recipient, template, locale, vars, state, attempts, created_at) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?)",
            ),
            values,
        ))
        .await?;
        let job = NewJob::raw(DELIVER_KIND, &serde_json::json!({ "id": id }))
            .queue(QUEUE)
            .max_attempts(10)
            .unique(format!("mail:{id}"));
        self.jobs.enqueue(conn, job).await?;
        Ok(id)
    }
}

/// Creates the mail outbox (`system` migration `0004_mail`): one row per
/// message, with its rendered parts once delivery rendered them.
pub struct CreateMailTables;

#[async_trait::async_trait]
impl crate::migrate::Migration for CreateMailTables {
    fn name(&self) -> &'static str {
        "0004_mail"
    }

    async fn up(&self, tx: &sea_orm::DatabaseTransaction) -> Result<(), DbErr> {
        for sql in [
            "CREATE TABLE sen_mail (
                id TEXT NOT NULL PRIMARY KEY,
                recipient TEXT NOT NULL,
                template TEXT NOT NULL,
                locale TEXT NOT NULL,
                vars TEXT NOT NULL,
                state TEXT NOT NULL,
                subject TEXT,
                text_body TEXT,
                html_body TEXT,
                message_id TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                created_at BIGINT NOT NULL,
                sent_at BIGINT
            )",
            "CREATE INDEX sen_mail_state ON sen_mail (state, id)",
            "CREATE INDEX sen_mail_recipient ON sen_mail (recipient, id)",
        ] {
            tx.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_locales() {
        for ok in ["a@b.co", "ann.lee+x@mail.example.vn"] {
            assert!(is_plausible_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a@b.",
            "a b@c.co",
            "a@b.co\r\nBcc: x@y.z",
            "<a@b.co>",
            "a@b.co,c@d.co",
        ] {
            assert!(!is_plausible_address(bad), "{bad:?}");
        }
        assert_eq!(pick_locale("vi-VN"), "vi");
        assert_eq!(pick_locale("fr"), "en");
        assert_eq!(
            locale_from_accept_language(Some("fr-FR, vi;q=0.8, en;q=0.5")),
            "vi"
        );
        assert_eq!(locale_from_accept_language(Some("en-US,vi;q=0.9")), "en");
        assert_eq!(locale_from_accept_language(None), "en");
    }
}
