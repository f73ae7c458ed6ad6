//! Outgoing mail (`[mail]`): password reset and address verification links.
//!
//! A page never waits for SMTP: [`Mailer::send`] renders the message and
//! puts it on a bounded queue (1000 messages; when full, the message is
//! dropped with an error log), and one background task delivers the queue
//! in order. A server that is down or answers with a temporary error is
//! retried with backoff (1 s doubling to at most 1 min) until the link in
//! the message would have expired; a permanent refusal (5xx) is logged and
//! dropped. Queued mail does not survive a restart.
//!
//! Depends on `config` only; `auth` decides what to send, `ops::check`
//! tries the server.

mod templates;
mod transport;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncTransport as _, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::MailConfig;
pub(crate) use templates::in_words;
use templates::{MailView, Templates};

/// Messages waiting for the sender; past this, new ones are dropped.
const QUEUE: usize = 1000;
/// First pause before retrying a failed delivery; doubles each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest pause between delivery attempts.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Which mail to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MailKind {
    /// A password reset link.
    Reset,
    /// An address verification (account activation) link.
    Verify,
}

impl MailKind {
    fn subject(self) -> &'static str {
        match self {
            MailKind::Reset => "Reset your password",
            MailKind::Verify => "Confirm your email address",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            MailKind::Reset => "reset",
            MailKind::Verify => "verify",
        }
    }
}

/// One mail to send.
pub(crate) struct Letter<'a> {
    pub(crate) kind: MailKind,
    /// The account's address.
    pub(crate) to: &'a str,
    pub(crate) username: &'a str,
    /// The absolute link, token included.
    pub(crate) link: &'a str,
    /// How long the link works; delivery is given up after that.
    pub(crate) valid_for: Duration,
}

struct Queued {
    message: Message,
    kind: MailKind,
    /// The recipient's domain, for logs (never the link).
    domain: String,
    give_up_at: Instant,
}

pub(crate) struct Mailer {
    queue: mpsc::Sender<Queued>,
    from: Mailbox,
    /// The host of `server.public_url`, named in the mails.
    site: String,
    templates: Templates,
}

impl Mailer {
    /// Builds the transport and starts the sender task (inside a tokio
    /// runtime); connects to nothing yet. `site`: the host of
    /// `server.public_url`; `template_dir`: the directory of
    /// `login.template`, where files may replace the built-in mail
    /// templates.
    pub(crate) fn start(
        config: &MailConfig,
        site: &str,
        template_dir: Option<&Path>,
    ) -> anyhow::Result<Arc<Mailer>> {
        let transport = transport::build(&config.smtp, Some(site)).map_err(anyhow::Error::msg)?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from: {:?} is not an address: {e}", config.from))?;
        let templates = Templates::load(template_dir)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(transport, rx, transport::where_to(&config.smtp)));
        Ok(Arc::new(Mailer {
            queue,
            from,
            site: site.to_string(),
            templates,
        }))
    }

    /// Queues a mail; never waits. False when it could not be queued (an
    /// address the mail system refuses, a broken custom template, a full
    /// queue): the reason is logged.
    pub(crate) fn send(&self, letter: Letter<'_>) -> bool {
        let kind = letter.kind;
        let domain = letter
            .to
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_string();
        let message = match self.compose(&letter) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(kind = kind.as_str(), domain, error = %e, "mail not sent: could not compose it");
                return false;
            }
        };
        let queued = Queued {
            message,
            kind,
            domain,
            give_up_at: Instant::now() + letter.valid_for,
        };
        match self.queue.try_send(queued) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(q)) => {
                tracing::error!(
                    kind = kind.as_str(),
                    domain = q.domain,
                    queued = QUEUE,
                    "mail dropped: the outgoing queue is full (is mail.smtp reachable?)"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(
                    kind = kind.as_str(),
                    "mail dropped: the mail sender has stopped"
                );
                false
            }
        }
    }

    fn compose(&self, letter: &Letter<'_>) -> anyhow::Result<Message> {
        let to: Mailbox = letter.to.parse()?;
        let subject = letter.kind.subject();
        let valid_for = in_words(letter.valid_for);
        let (text, html) = self.templates.render(
            letter.kind,
            &MailView {
                subject,
                site: &self.site,
                username: letter.username,
                link: letter.link,
                valid_for: &valid_for,
            },
        )?;
        let id = format!(
            "<{}@{}>",
            hex::encode(rand::random::<[u8; 16]>()),
            self.site
        );
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(id))
            .multipart(MultiPart::alternative_plain_html(text, html))?)
    }
}

/// The sender task: delivers the queue in order, retrying what failed for
/// a reason that may pass.
async fn deliver(transport: transport::Transport, mut rx: mpsc::Receiver<Queued>, server: String) {
    while let Some(mail) = rx.recv().await {
        let mut wait = FIRST_RETRY;
        let mut attempts = 1u32;
        loop {
            let (kind, domain) = (mail.kind.as_str(), mail.domain.as_str());
            match transport.send(mail.message.clone()).await {
                Ok(_) => {
                    tracing::info!(kind, domain, attempts, "mail delivered to {server}");
                    break;
                }
                Err(e) if e.is_permanent() => {
                    tracing::error!(kind, domain, error = %e, "mail refused by {server}; dropped");
                    break;
                }
                Err(e) if Instant::now() + wait >= mail.give_up_at => {
                    tracing::error!(kind, domain, attempts, error = %e, "mail not delivered before its link expires; dropped (check mail.smtp)");
                    break;
                }
                Err(e) => {
                    tracing::warn!(kind, domain, attempts, retry_in = ?wait, error = %e, "mail delivery to {server} failed; will retry");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY);
                    attempts += 1;
                }
            }
        }
    }
}

/// Connects to `mail.smtp` and greets it (EHLO, NOOP), for `check`.
/// `site`: the host announced in EHLO.
pub(crate) async fn check(config: &MailConfig, site: Option<&str>) -> Result<(), String> {
    config
        .from
        .parse::<Mailbox>()
        .map_err(|e| format!("mail.from: {:?} is not an address: {e}", config.from))?;
    transport::try_connect(&config.smtp, site).await
}
