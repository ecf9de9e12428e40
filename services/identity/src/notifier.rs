//! Delivers notifications: by SMTP when `IMMILINK_SMTP_URL` is set, otherwise to the log, so the
//! embedded mode needs no mail server.
//!
//! The relay's address says how the message is protected on the way:
//! - `smtps://host[:465]`: implicit TLS, the connection is TLS from its first byte;
//! - `smtp://host[:587]?tls=required`: STARTTLS, and nothing is sent unless the relay upgrades;
//! - `smtp://host[:25]`: plain, for a relay inside the agency's own network only.
//!
//! `?tls=opportunistic` is refused: a man in the middle can strip the upgrade and read every message.
//! The relay's certificate must chain to the system's trust store or to `IMMILINK_SMTP_CA_FILE`.
//! Credentials, when the relay wants them, go in the URL (`smtps://user:password@host`), which then
//! belongs in a Kubernetes Secret. lettre does the protocol and the TLS (rustls, ring).

use std::path::Path;

use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::notifications::Notification;

/// How a relay's address protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    Plain,
    StartTls,
    ImplicitTls,
}

/// The host and protection an `IMMILINK_SMTP_URL` asks for; anything else is refused with the reason.
fn protection_of(smtp_url: &str) -> anyhow::Result<(String, Protection)> {
    let url = url::Url::parse(smtp_url).map_err(|err| anyhow::anyhow!("IMMILINK_SMTP_URL: {err}"))?;
    let host =
        url.host_str().filter(|host| !host.is_empty()).ok_or_else(|| anyhow::anyhow!("IMMILINK_SMTP_URL: no host"))?;
    let tls = url.query_pairs().find(|(key, _)| key == "tls").map(|(_, value)| value.into_owned());
    let protection = match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => Protection::ImplicitTls,
        ("smtp", Some("required")) => Protection::StartTls,
        ("smtp", None) => Protection::Plain,
        ("smtp", Some("opportunistic")) => anyhow::bail!(
            "IMMILINK_SMTP_URL: tls=opportunistic can be downgraded to plain text; use tls=required or smtps://"
        ),
        (scheme, tls) => anyhow::bail!(
            "IMMILINK_SMTP_URL: expected smtps://host, smtp://host?tls=required or smtp://host, got scheme {scheme:?} with tls={tls:?}"
        ),
    };
    Ok((host.to_owned(), protection))
}

pub enum Notifier {
    Log,
    /// Boxed: the transport with its TLS settings is large, and the notifier lives in the state.
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: lettre::message::Mailbox,
    },
}

impl Notifier {
    /// `smtp_url` as the module describes; `ca_file` extra PEM anchors for the relay's certificate;
    /// `from` the sender address.
    pub fn from_settings(smtp_url: Option<&str>, ca_file: Option<&Path>, from: &str) -> anyhow::Result<Self> {
        let Some(smtp_url) = smtp_url else { return Ok(Notifier::Log) };
        immilink_shared::tls::install_crypto_provider();
        let (host, protection) = protection_of(smtp_url)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|err| anyhow::anyhow!("IMMILINK_SMTP_URL: {err}"))?;
        if protection != Protection::Plain {
            let parameters = tls_parameters(&host, ca_file)?;
            builder = builder.tls(match protection {
                Protection::ImplicitTls => Tls::Wrapper(parameters),
                _ => Tls::Required(parameters),
            });
        }
        Ok(Notifier::Smtp { transport: Box::new(builder.build()), from: from.parse()? })
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

/// TLS towards `host`, trusting the system's store and every certificate of `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(ca_file) = ca_file {
        for anchor in immilink_shared::tls::read_certificates("SMTP_CA_FILE", ca_file)? {
            let certificate = Certificate::from_der(anchor.to_vec())
                .map_err(|err| anyhow::anyhow!("IMMILINK_SMTP_CA_FILE: {err}"))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|err| anyhow::anyhow!("IMMILINK_SMTP_URL: TLS: {err}"))
}

#[cfg(test)]
mod tests;
