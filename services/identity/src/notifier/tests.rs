//! The notifier against a real relay: a small SMTP server in a thread speaking implicit TLS,
//! STARTTLS or plain text, with a certificate made for the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use immilink_shared::tls::test_pki::TestPki;
use immilink_shared::tls::ServerTls;

use super::*;
use crate::domain::NotificationId;

const FROM: &str = "immilink <no-reply@immilink.invalid>";

#[derive(Clone, Copy, PartialEq)]
enum RelayMode {
    ImplicitTls,
    StartTls,
    /// Plain text that never offers STARTTLS.
    PlainOnly,
}

/// What the relay heard: every command, and whether each one arrived over TLS.
#[derive(Default)]
struct Heard {
    commands: Vec<(String, bool)>,
    messages: Vec<String>,
}

struct Relay {
    port: u16,
    heard: Arc<Mutex<Heard>>,
}

impl Relay {
    fn start(mode: RelayMode, pki: &TestPki) -> Self {
        let tls = ServerTls { client_ca_file: None, ..pki.server() };
        let config = Arc::new(tls.server_config().expect("the relay's TLS"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let heard = Arc::new(Mutex::new(Heard::default()));
        let relay_heard = Arc::clone(&heard);
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                serve(tcp, mode, Arc::clone(&config), &relay_heard);
            }
        });
        Relay { port, heard }
    }

    fn commands(&self) -> Vec<(String, bool)> {
        self.heard.lock().expect("heard").commands.clone()
    }

    fn messages(&self) -> Vec<String> {
        self.heard.lock().expect("heard").messages.clone()
    }
}

fn serve(tcp: TcpStream, mode: RelayMode, config: Arc<rustls::ServerConfig>, heard: &Mutex<Heard>) {
    let tls = |tcp| rustls::ServerConnection::new(config).map(|conn| rustls::StreamOwned::new(conn, tcp));
    match mode {
        RelayMode::ImplicitTls => {
            if let Ok(mut stream) = tls(tcp) {
                let _ = stream.write_all(b"220 relay.test ESMTP\r\n");
                converse(&mut stream, true, false, heard);
            }
        }
        RelayMode::PlainOnly => {
            let mut tcp = tcp;
            let _ = tcp.write_all(b"220 relay.test ESMTP\r\n");
            converse(&mut tcp, false, false, heard);
        }
        RelayMode::StartTls => {
            let mut plain = tcp;
            let _ = plain.write_all(b"220 relay.test ESMTP\r\n");
            if converse(&mut plain, false, true, heard) == Ended::StartTls {
                if let Ok(mut stream) = tls(plain) {
                    converse(&mut stream, true, false, heard);
                }
            }
        }
    }
}

#[derive(PartialEq)]
enum Ended {
    Quit,
    StartTls,
    Closed,
}

/// One SMTP conversation until QUIT, STARTTLS (when offered) or the connection ends.
fn converse(stream: &mut (impl Read + Write), over_tls: bool, offer_starttls: bool, heard: &Mutex<Heard>) -> Ended {
    while let Some(line) = read_line(stream) {
        heard.lock().expect("heard").commands.push((line.clone(), over_tls));
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if offer_starttls => b"250-relay.test\r\n250 STARTTLS\r\n",
            "EHLO" | "HELO" => b"250 relay.test\r\n",
            "STARTTLS" if offer_starttls => {
                let _ = stream.write_all(b"220 go ahead\r\n");
                return Ended::StartTls;
            }
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 ok\r\n",
            "DATA" => {
                let _ = stream.write_all(b"354 end with .\r\n");
                let mut message = String::new();
                while let Some(data) = read_line(stream) {
                    if data == "." {
                        break;
                    }
                    message.push_str(&data);
                    message.push('\n');
                }
                heard.lock().expect("heard").messages.push(message);
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = stream.write_all(b"221 bye\r\n");
                return Ended::Quit;
            }
            _ => b"502 not implemented\r\n",
        };
        if stream.write_all(reply).is_err() {
            break;
        }
    }
    Ended::Closed
}

fn read_line(stream: &mut impl Read) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&line).trim_end_matches('\r').to_owned())
}

fn notification() -> Notification {
    Notification {
        id: NotificationId::new("n-1"),
        recipient: "caseworker@tpe.example.gov.tw".into(),
        subject: "Account approved".into(),
        body: "Your account is active.".into(),
    }
}

async fn send(url: &str, ca_file: Option<&Path>) -> Result<(), String> {
    let notifier = Notifier::from_settings(Some(url), ca_file, FROM).map_err(|err| err.to_string())?;
    notifier.send(&notification()).await
}

#[actix_web::test]
async fn implicit_tls_delivers_to_a_relay_whose_certificate_chains_to_the_configured_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::issue(dir.path(), "smtp");
    let relay = Relay::start(RelayMode::ImplicitTls, &pki);
    send(&format!("smtps://localhost:{}", relay.port), Some(&pki.ca_file)).await.expect("delivered");
    let messages = relay.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("Subject: Account approved") && messages[0].contains("Your account is active."));
    assert!(relay.commands().iter().all(|(_, over_tls)| *over_tls), "every command arrived over TLS");
}

#[actix_web::test]
async fn starttls_upgrades_before_anything_about_the_message_is_sent() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::issue(dir.path(), "smtp");
    let relay = Relay::start(RelayMode::StartTls, &pki);
    send(&format!("smtp://localhost:{}?tls=required", relay.port), Some(&pki.ca_file)).await.expect("delivered");
    assert_eq!(relay.messages().len(), 1);
    let in_clear: Vec<String> = relay.commands().into_iter().filter(|(_, tls)| !tls).map(|(c, _)| c).collect();
    assert_eq!(in_clear.len(), 2, "only EHLO and STARTTLS in clear: {in_clear:?}");
    assert!(in_clear[0].starts_with("EHLO") && in_clear[1] == "STARTTLS", "{in_clear:?}");
}

#[actix_web::test]
async fn a_relay_whose_certificate_does_not_chain_to_a_trusted_ca_is_sent_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (relay_pki, trusted) = (TestPki::issue(dir.path(), "relay"), TestPki::issue(dir.path(), "other"));
    let relay = Relay::start(RelayMode::ImplicitTls, &relay_pki);
    let err = send(&format!("smtps://localhost:{}", relay.port), Some(&trusted.ca_file)).await.expect_err("refused");
    assert!(!err.is_empty());
    assert!(relay.commands().is_empty() && relay.messages().is_empty(), "nothing reached the relay");
    // Without any configured CA only the system's store is trusted, which does not know the test CA.
    let err = send(&format!("smtps://localhost:{}", relay.port), None).await.expect_err("refused");
    assert!(!err.is_empty());
    assert!(relay.messages().is_empty());
}

#[actix_web::test]
async fn a_relay_that_does_not_offer_starttls_is_not_sent_the_message_in_clear() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = TestPki::issue(dir.path(), "smtp");
    let relay = Relay::start(RelayMode::PlainOnly, &pki);
    send(&format!("smtp://localhost:{}?tls=required", relay.port), Some(&pki.ca_file)).await.expect_err("refused");
    assert!(relay.messages().is_empty());
    assert!(
        !relay.commands().iter().any(|(command, _)| command.starts_with("MAIL") || command.starts_with("RCPT")),
        "no envelope in clear: {:?}",
        relay.commands()
    );
}

#[test]
fn smtp_urls_name_their_protection_and_downgradable_ones_are_refused() {
    let of = |url: &str| protection_of(url).map_err(|err| err.to_string());
    assert_eq!(of("smtps://mail.example.gov.tw").expect("ok"), ("mail.example.gov.tw".into(), Protection::ImplicitTls));
    assert_eq!(of("smtp://mail.example.gov.tw:587?tls=required").expect("ok").1, Protection::StartTls);
    assert_eq!(of("smtp://relay.agency.internal:25").expect("ok").1, Protection::Plain);
    assert!(of("smtp://mail.example.gov.tw?tls=opportunistic").expect_err("downgradable").contains("downgraded"));
    assert!(of("http://mail.example.gov.tw").expect_err("scheme").contains("IMMILINK_SMTP_URL"));
    assert!(of("smtps://").expect_err("host").contains("IMMILINK_SMTP_URL"));
    assert!(Notifier::from_settings(Some("smtps://mail.example.gov.tw"), Some(Path::new("/nonexistent.pem")), FROM)
        .is_err_and(|err| err.to_string().contains("IMMILINK_SMTP_CA_FILE")));
}
