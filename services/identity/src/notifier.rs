//! Delivers notifications: by SMTP when `IMMILINK_SMTP_URL` is set (e.g. `smtp://mail.agency.gov.tw:25`),
//! otherwise to the log, so the embedded mode needs no mail server.

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::notifications::Notification;

/// `smtp://host[:port]` (port 25 by default). The relay is the agency's own, inside its network;
/// this build carries no TLS stack, so `smtps://` is refused rather than silently downgraded.
fn parse_smtp_url(url: &str) -> anyhow::Result<(&str, u16)> {
    let rest = url
        .strip_prefix("smtp://")
        .ok_or_else(|| anyhow::anyhow!("IMMILINK_SMTP_URL must look like smtp://host:port"))?
        .trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((host, port.parse().map_err(|_| anyhow::anyhow!("IMMILINK_SMTP_URL: bad port"))?)),
        None => Ok((rest, 25)),
    }
}

pub enum Notifier {
    Log,
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: lettre::message::Mailbox },
}

impl Notifier {
    /// `smtp_url` like `smtp://host:port`; `from` the sender address.
    pub fn from_settings(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Self> {
        match smtp_url {
            None => Ok(Notifier::Log),
            Some(url) => {
                let (host, port) = parse_smtp_url(url)?;
                Ok(Notifier::Smtp {
                    transport: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).build(),
                    from: from.parse()?,
                })
            }
        }
    }

    pub async fn send(&self, message: &Notification) -> Result<(), String> {
        match self {
            Notifier::Log => {
                tracing::info!(recipient = %message.recipient, subject = %message.subject, body = %message.body, "notification");
                Ok(())
            }
            Notifier::Smtp { transport, from } => {
                let to = message.recipient.parse().map_err(|e: lettre::address::AddressError| e.to_string())?;
                let email = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(message.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(message.body.clone())
                    .map_err(|e| e.to_string())?;
                transport.send(email).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }
}
