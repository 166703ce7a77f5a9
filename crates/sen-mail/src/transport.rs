//! Where messages go: an SMTP server (lettre, STARTTLS or TLS as the URL
//! says, pooled connections), or in dev `.eml` files under
//! `{data_dir}/mail`, one per message, named by its outbox id so they can be
//! read back.

use std::path::PathBuf;

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A configured transport.
pub enum Transport {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in this directory.
    Files(PathBuf),
}

/// Why a message was not handed over.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong (no credentials in it).
    pub message: String,
    /// Retrying cannot help (a 5xx answer).
    pub permanent: bool,
}

impl Transport {
    /// The transport `config` asks for.
    pub fn from_config(config: &sen_core::Config) -> anyhow::Result<Self> {
        match &config.mail_smtp_url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("`mail_smtp_url` is not usable: {e}"))?;
                Ok(Self::Smtp(
                    builder
                        .timeout(Some(std::time::Duration::from_secs(30)))
                        .build(),
                ))
            }
            None => Ok(Self::Files(config.data_dir.join("mail"))),
        }
    }

    /// A short description for logs and the admin API (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp(_) => "smtp".into(),
            Self::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    /// Hands `message` (outbox id `id`) over.
    pub async fn send(&self, id: &str, message: &Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => {
                smtp.send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError {
                        permanent: e.is_permanent(),
                        message: format!("SMTP: {e}"),
                    })
            }
            Self::Files(dir) => {
                let io = |e: std::io::Error| SendError {
                    message: format!("cannot write {}: {e}", dir.display()),
                    permanent: false,
                };
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
                // Write then rename, so a reader never sees half a message.
                let tmp = dir.join(format!(".{id}.tmp"));
                tokio::fs::write(&tmp, message.formatted())
                    .await
                    .map_err(io)?;
                tokio::fs::rename(&tmp, dir.join(format!("{id}.eml")))
                    .await
                    .map_err(io)
            }
        }
    }
}
