//! Sen's mail: every app's templates compiled at start-up, the delivery of
//! the transactional mail outbox (`ctx.mail().send(&tx, …)` in `sen-core`)
//! over SMTP with retries, or as `.eml` files in dev, suppressions, per
//! recipient domain rate limits, and the operator's API over the outbox.
//!
//! Invariants: a message is handed to the transport only while its row is
//! `queued`, and marked `sent` right after, so reruns never resend a
//! message that was recorded as sent; a suppressed address is never
//! mailed; credentials in `mail_smtp_url` never reach a log or an answer.

pub mod deliver;
pub mod routes;
pub mod suppressions;
pub mod templates;
pub mod transport;

use std::sync::Arc;

use lettre::message::Mailbox;
use sen_core::jobs::JobHandler;
use sen_core::migrate::Migration;
use sen_core::rbac::PermissionDecl;
use sen_core::{App, AppContext, AppError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use deliver::Deliver;
pub use templates::{Rendered, Templates};
pub use transport::Transport;

/// What delivery needs, built once at start-up.
pub struct MailState {
    /// Every app's templates.
    pub templates: Templates,
    /// Where messages go.
    pub transport: Transport,
    /// `mail_from`.
    pub from: Mailbox,
    /// Right-hand side of Message-IDs (the public URL's host).
    pub message_id_domain: String,
    /// `mail_domain_limits`.
    pub domain_limits: Vec<(String, usize)>,
}

impl MailState {
    /// The state the `mail` app attached at start-up.
    pub fn of(ctx: &AppContext) -> Result<Arc<Self>, AppError> {
        ctx.extension::<Self>().ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "the mail app is not started in this process"
            ))
        })
    }
}

/// The built-in `mail` app.
pub struct MailApp;

impl App for MailApp {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn title(&self) -> &'static str {
        "Mail"
    }

    fn description(&self) -> &'static str {
        "Outgoing mail: the outbox, deliveries, previews and suppressed addresses."
    }

    fn icon(&self) -> &'static str {
        "mail"
    }

    fn migrations(&self) -> Vec<Box<dyn Migration>> {
        vec![Box::new(suppressions::CreateSuppressions)]
    }

    fn permissions(&self) -> Vec<PermissionDecl> {
        vec![
            PermissionDecl::read(
                "read",
                "See outgoing mail with its contents, and suppressions",
            ),
            PermissionDecl::write("write", "Suppress addresses and lift suppressions"),
        ]
    }

    fn jobs(&self) -> Vec<JobHandler> {
        vec![JobHandler::of::<Deliver>()]
    }

    fn root_routes(&self) -> OpenApiRouter<AppContext> {
        OpenApiRouter::new()
            .routes(routes!(routes::list_mail))
            .routes(routes!(routes::get_mail))
            .routes(routes!(routes::list_suppressions, routes::add_suppression))
            .routes(routes!(routes::remove_suppression))
    }

    fn start<'a>(
        &'a self,
        ctx: &'a AppContext,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let templates =
                Templates::compile(ctx.apps().iter().flat_map(|a| a.mail_templates()).collect())?;
            let config = ctx.config();
            let from: Mailbox = config
                .mail_from
                .parse()
                .map_err(|e| anyhow::anyhow!("`mail_from` {:?}: {e}", config.mail_from))?;
            let transport = Transport::from_config(config)?;
            let message_id_domain = url::Url::parse(&config.public_url())
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "localhost".into());
            tracing::debug!(transport = %transport.describe(), "mail ready");
            ctx.insert_extension(Arc::new(MailState {
                templates,
                transport,
                from,
                message_id_domain,
                domain_limits: config.mail_domain_limits.clone(),
            }));
            Ok(())
        })
    }
}
