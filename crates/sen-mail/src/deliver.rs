//! The `mail.deliver` job: one outbox message, rendered once (the parts are
//! kept on the row for previews), checked against suppressions and the
//! recipient domain's rate limit, then handed to the transport. A message
//! that is no longer `queued` is never sent again, so a rerun after a crash
//! sends nothing twice once the first run recorded `sent`; the Message-ID
//! is the outbox id, so a receiver can tell a resend from a new message.

use std::time::Duration;

use lettre::Message;
use lettre::message::{Mailbox, MultiPart, header};
use sea_orm::ConnectionTrait;
use sen_core::jobs::{Backoff, Job, JobContext, JobError, JobOptions};
use sen_core::mail::{DELIVER_KIND, QUEUE, state};
use sen_core::ratelimit::Quota;
use serde::{Deserialize, Serialize};

use crate::MailState;
use crate::templates::Rendered;

/// Delivers outbox message `id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deliver {
    /// The `sen_mail` row.
    pub id: String,
}

/// Attempts before a message is `failed` (matches `sen_core::mail`).
const MAX_ATTEMPTS: i32 = 10;

impl Job for Deliver {
    const KIND: &'static str = DELIVER_KIND;

    fn options() -> JobOptions {
        JobOptions {
            queue: QUEUE,
            max_attempts: MAX_ATTEMPTS,
            timeout: Duration::from_secs(90),
            backoff: Backoff::Exponential {
                base: Duration::from_secs(2),
                max: Duration::from_secs(1800),
            },
            ..JobOptions::default()
        }
    }

    async fn run(self, job: JobContext) -> Result<(), JobError> {
        let ctx = &job.app;
        let mail = MailState::of(ctx).map_err(JobError::retry)?;
        let db = ctx.db();
        let Some(row) = db
            .orm()
            .query_one_raw(db.statement(
                "SELECT recipient, template, locale, vars, state, subject, text_body, html_body, attempts FROM sen_mail WHERE id = ?",
                [self.id.clone().into()],
            ))
            .await?
        else {
            return Ok(());
        };
        let st: String = row.try_get("", "state")?;
        if st != state::QUEUED {
            return Ok(());
        }
        let to: String = row.try_get("", "recipient")?;
        if crate::suppressions::is_suppressed(ctx, &to).await? {
            set_state(ctx, &self.id, state::SUPPRESSED, None).await?;
            metrics::counter!("mail_outcomes_total", "outcome" => "suppressed").increment(1);
            return Ok(());
        }
        if let Some(quota) = domain_quota(&mail.domain_limits, &to) {
            let domain = domain_of(&to);
            let key = format!("mail:domain:{domain}");
            if let Err(limited) = ctx
                .rate_limits()
                .acquire(&key, quota)
                .await
                .map_err(|e| JobError::retry(format!("rate limit check: {}", e.code())))?
            {
                return Err(JobError::snooze(
                    limited.retry_after.max(Duration::from_millis(50)),
                    format!("rate limit of {domain}"),
                ));
            }
        }
        let rendered = match row.try_get::<Option<String>>("", "subject")? {
            Some(subject) => Rendered {
                subject,
                text: row
                    .try_get::<Option<String>>("", "text_body")?
                    .unwrap_or_default(),
                html: row
                    .try_get::<Option<String>>("", "html_body")?
                    .unwrap_or_default(),
            },
            None => {
                let template: String = row.try_get("", "template")?;
                let locale: String = row.try_get("", "locale")?;
                let vars: serde_json::Value =
                    serde_json::from_str(&row.try_get::<String>("", "vars")?).unwrap_or_default();
                match mail.templates.render(&template, &locale, &vars) {
                    Ok(r) => {
                        db.orm()
                            .execute_raw(db.statement(
                                "UPDATE sen_mail SET subject = ?, text_body = ?, html_body = ? WHERE id = ?",
                                [
                                    r.subject.clone().into(),
                                    r.text.clone().into(),
                                    r.html.clone().into(),
                                    self.id.clone().into(),
                                ],
                            ))
                            .await?;
                        r
                    }
                    Err(e) => {
                        set_state(ctx, &self.id, state::FAILED, Some(&e.to_string())).await?;
                        metrics::counter!("mail_outcomes_total", "outcome" => "failed")
                            .increment(1);
                        return Err(JobError::discard(e));
                    }
                }
            }
        };
        let message_id = format!("<{}@{}>", self.id, mail.message_id_domain);
        let message = match build(&mail.from, &to, &message_id, &rendered) {
            Ok(m) => m,
            Err(e) => {
                set_state(ctx, &self.id, state::FAILED, Some(&e)).await?;
                return Err(JobError::discard(e));
            }
        };
        let attempts: i32 = row.try_get::<i32>("", "attempts")? + 1;
        match mail.transport.send(&self.id, &message).await {
            Ok(()) => {
                db.orm()
                    .execute_raw(db.statement(
                        "UPDATE sen_mail SET state = 'sent', attempts = ?, sent_at = ?, message_id = ?, last_error = NULL WHERE id = ? AND state = 'queued'",
                        [
                            attempts.into(),
                            sen_core::clock::now().timestamp_millis().into(),
                            message_id.into(),
                            self.id.clone().into(),
                        ],
                    ))
                    .await?;
                metrics::counter!("mail_outcomes_total", "outcome" => "sent").increment(1);
                Ok(())
            }
            Err(e) => {
                let last = e.permanent || job.attempt >= job.max_attempts;
                db.orm()
                    .execute_raw(db.statement(
                        "UPDATE sen_mail SET state = ?, attempts = ?, last_error = ? WHERE id = ? AND state = 'queued'",
                        [
                            (if last { state::FAILED } else { state::QUEUED }).into(),
                            attempts.into(),
                            e.message.clone().into(),
                            self.id.clone().into(),
                        ],
                    ))
                    .await?;
                metrics::counter!("mail_outcomes_total", "outcome" => if last { "failed" } else { "retried" })
                    .increment(1);
                if e.permanent {
                    Err(JobError::discard(e.message))
                } else {
                    Err(JobError::retry(e.message))
                }
            }
        }
    }
}

async fn set_state(
    ctx: &sen_core::AppContext,
    id: &str,
    to: &str,
    error: Option<&str>,
) -> Result<(), sea_orm::DbErr> {
    let db = ctx.db();
    db.orm()
        .execute_raw(db.statement(
            "UPDATE sen_mail SET state = ?, last_error = ? WHERE id = ? AND state = 'queued'",
            [to.into(), error.map(str::to_string).into(), id.into()],
        ))
        .await?;
    Ok(())
}

/// The domain of an address, lower-cased.
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The per-minute budget for `address`'s domain: its own entry, else `*`.
fn domain_quota(limits: &[(String, usize)], address: &str) -> Option<Quota> {
    let domain = domain_of(address);
    let per_min = limits
        .iter()
        .find(|(d, _)| d.eq_ignore_ascii_case(&domain))
        .or_else(|| limits.iter().find(|(d, _)| d == "*"))
        .map(|(_, n)| *n)?;
    Some(Quota::new(
        u32::try_from(per_min).unwrap_or(u32::MAX),
        Duration::from_secs(60),
    ))
}

fn build(from: &Mailbox, to: &str, message_id: &str, r: &Rendered) -> Result<Message, String> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("recipient is not an address: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        .message_id(Some(message_id.to_string()))
        .header(header::MIME_VERSION_1_0)
        .multipart(MultiPart::alternative_plain_html(
            r.text.clone(),
            r.html.clone(),
        ))
        .map_err(|e| format!("message cannot be built: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn domain_budgets_fall_back_to_star() {
        let limits = vec![("example.com".to_string(), 2), ("*".to_string(), 100)];
        assert_eq!(domain_quota(&limits, "a@Example.COM").unwrap().burst, 2);
        assert_eq!(domain_quota(&limits, "a@other.vn").unwrap().burst, 100);
        assert!(domain_quota(&[], "a@b.co").is_none());
    }
}
