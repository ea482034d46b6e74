//! E-mail the platform sends to account owners (password reset and sign-up links). Over SMTP when
//! `--smtp-url` is set; `capstan dev` without it prints each mail to its output instead, and
//! `capstan serve` without it sends nothing and says so in its log (never the mail's body,
//! which can hold a secret link).

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox,
    message::header::ContentType,
};

use crate::{Error, Result};

/// One plain-text mail.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends `mail`, or fails saying why.
    async fn send(&self, mail: Mail) -> Result<()>;
}

/// Where mail goes: an SMTP server, the process's output (development), or nowhere.
#[derive(Clone, Default)]
pub enum MailSettings {
    /// Not configured: nothing is sent (a warning is logged per mail).
    #[default]
    Off,
    /// Printed to standard output (`capstan dev`): links are there to click.
    Print,
    /// An SMTP server: `smtps://user:password@host:465` (TLS from the start),
    /// `smtp://user:password@host:587?tls=required` (STARTTLS), or `smtp://host:port`
    /// (unencrypted: only for a relay on the same host), and the `From` address.
    Smtp {
        /// The server's URL (it may hold a password: never printed).
        url: String,
        /// The sender, for example `Capstan <no-reply@example.com>`.
        from: String,
    },
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailSettings::Off => f.write_str("Off"),
            MailSettings::Print => f.write_str("Print"),
            MailSettings::Smtp { from, .. } => {
                write!(f, "Smtp {{ url: <redacted>, from: {from:?} }}")
            }
        }
    }
}

impl MailSettings {
    /// The mailer these settings describe; an SMTP URL or sender that cannot be used is an
    /// error at start, not at the first mail.
    pub fn mailer(&self) -> Result<std::sync::Arc<dyn Mailer>> {
        Ok(match self {
            MailSettings::Off => std::sync::Arc::new(Unsent),
            MailSettings::Print => std::sync::Arc::new(Printed),
            MailSettings::Smtp { url, from } => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| {
                        Error::Invalid(format!(
                            "--smtp-url is not a usable SMTP URL ({e}): use smtps://user:password@host:465 or smtp://user:password@host:587?tls=required"
                        ))
                    })?
                    .build();
                let from = from.parse::<Mailbox>().map_err(|e| {
                    Error::Invalid(format!(
                        "--mail-from {from:?} is not an address ({e}): use for example \"Capstan <no-reply@example.com>\""
                    ))
                })?;
                std::sync::Arc::new(Smtp { transport, from })
            }
        })
    }
}

/// Mail over SMTP.
struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Smtp {{ from: {} }}", self.from)
    }
}

#[async_trait]
impl Mailer for Smtp {
    async fn send(&self, mail: Mail) -> Result<()> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|e| Error::Invalid(format!("cannot mail {}: {e}", mail.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| Error::internal("could not build a mail", e))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| Error::internal("the SMTP server did not take the mail", e))?;
        Ok(())
    }
}

/// Mail printed to standard output (`capstan dev`).
#[derive(Debug)]
struct Printed;

#[async_trait]
impl Mailer for Printed {
    async fn send(&self, mail: Mail) -> Result<()> {
        println!(
            "\n--- mail to {} (capstan dev prints mail; set --smtp-url to send it) ---\nSubject: {}\n\n{}\n--- end of mail ---\n",
            mail.to, mail.subject, mail.body
        );
        Ok(())
    }
}

/// No mail configured.
#[derive(Debug)]
struct Unsent;

#[async_trait]
impl Mailer for Unsent {
    async fn send(&self, mail: Mail) -> Result<()> {
        tracing::warn!(to = %mail.to, subject = %mail.subject,
            "a mail could not be sent: no SMTP server is configured (--smtp-url, --mail-from)");
        Ok(())
    }
}

/// The address of the console page at `path` as its users reach it (`--public-url`), for links
/// in mail.
pub fn console_url(config: &crate::state::PlatformConfig, path: &str) -> String {
    format!("{}{path}", config.public_url.trim_end_matches('/'))
}
