//! Delivers the `identity_messages` outbox (`domain::identity_messages`) to identity at
//! `POST {IMMILINK_IDENTITY_URL}/internal/v1/personnel-events`, with the vendors service token: at
//! least once, one message per request, oldest first. Identity applies each message id once (a
//! redelivered id changes nothing), so a delivery whose mark was lost is harmless. Outside the domain
//! because it speaks HTTP, like audit's `notifier.rs`.
//!
//! Woken right after every commit that writes a message ([`IdentityRelay::wake`]), so an offboarding
//! reaches identity well within a second (R-VEN-06); it also polls, so a message whose wake-up was
//! missed (or that a previous process left behind) still goes. A failed delivery stops the round, so
//! no message overtakes an earlier one, and the relay backs off while identity fails (up to 5 s, cut
//! short by the next commit's wake-up). A message identity refuses as malformed (400, 422) is set
//! aside for an operator instead of holding up every later offboarding.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use immilink_shared::auth::ServiceTokens;
use immilink_shared::clock::SharedClock;
use immilink_shared::db::Db;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::domain::identity_messages::{self, MessageKind, MessageReason, StoredMessage};
use crate::domain::VendorsError;

/// One message as identity takes it (the vendors → identity contract).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonnelEvent {
    /// The message id (UUIDv7); identity's idempotency key.
    pub id: String,
    pub kind: MessageKind,
    /// The person's national ID or UI number: identity finds their accounts by it.
    pub national_id: String,
    /// The agency the person's vendor is registered with.
    pub agency: String,
    pub vendor_id: String,
    pub person_id: String,
    pub reason: MessageReason,
}

impl fmt::Debug for PersonnelEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonnelEvent")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("national_id", &"<redacted>")
            .field("agency", &self.agency)
            .field("vendor_id", &self.vendor_id)
            .field("person_id", &self.person_id)
            .field("reason", &self.reason)
            .finish()
    }
}

impl From<&StoredMessage> for PersonnelEvent {
    fn from(message: &StoredMessage) -> Self {
        Self {
            id: message.id.clone(),
            kind: message.kind,
            national_id: message.national_id.clone(),
            agency: message.agency.to_string(),
            vendor_id: message.vendor_id.to_string(),
            person_id: message.person_id.to_string(),
            reason: message.reason,
        }
    }
}

/// Where identity takes the messages, under its base URL.
pub const PATH: &str = "/internal/v1/personnel-events";

/// Messages per round.
const BATCH: i64 = 100;
/// How long the relay waits for a wake-up before it looks anyway.
const POLL: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one delivery may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of identity's problem answer that are kept.
#[derive(Debug, Default, Deserialize)]
struct Refusal {
    code: Option<String>,
    field: Option<String>,
}

/// What one delivery attempt came to.
enum Outcome {
    Delivered,
    /// Identity refused the message as malformed: sending it again cannot succeed.
    Rejected(String),
    /// Identity did not take it (down, overloaded, not yet able to): try again later.
    Failed(String),
}

/// The vendors → identity relay; cheap to clone (every clone wakes the same task).
#[derive(Clone)]
pub struct IdentityRelay {
    db: Db,
    clock: SharedClock,
    http: reqwest::Client,
    url: String,
    tokens: Arc<ServiceTokens>,
    wake: Arc<Notify>,
}

impl IdentityRelay {
    pub fn new(
        db: Db,
        clock: SharedClock,
        http: reqwest::Client,
        identity_url: &str,
        tokens: Arc<ServiceTokens>,
    ) -> Self {
        let url = format!("{}{PATH}", identity_url.trim_end_matches('/'));
        Self { db, clock, http, url, tokens, wake: Arc::new(Notify::new()) }
    }

    /// Signals that a transaction that wrote messages has committed. A wake-up while a round runs is
    /// kept, so the next round starts at once.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until the runtime stops.
    pub async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.deliver_once().await {
                Ok(handled) if handled as i64 == BATCH => backoff = FIRST_BACKOFF,
                Ok(_) => {
                    backoff = FIRST_BACKOFF;
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "personnel messages not delivered to identity");
                    // A new commit cuts the wait short: an offboarding is not held back by an
                    // earlier outage's backoff once identity answers again.
                    let _ = tokio::time::timeout(backoff, self.wake.notified()).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One round: delivers the pending messages in order until one fails; returns how many were
    /// handled (delivered, or set aside as malformed), or why the round stopped.
    pub async fn deliver_once(&self) -> Result<usize, String> {
        let pending = self
            .db
            .run(|conn| identity_messages::pending(conn, BATCH))
            .await
            .map_err(|err: VendorsError| err.to_string())?;
        let mut handled = 0;
        for message in &pending {
            let id = message.id.clone();
            let now = self.clock.now();
            match self.post(&PersonnelEvent::from(message)).await {
                Outcome::Delivered => {
                    self.db
                        .run(move |conn| identity_messages::mark_delivered(conn, now, &id))
                        .await
                        .map_err(|err: VendorsError| err.to_string())?;
                    tracing::info!(message_id = %message.id, kind = %message.kind, reason = %message.reason,
                        person_id = %message.person_id, "personnel message delivered to identity");
                }
                Outcome::Rejected(reason) => {
                    tracing::error!(message_id = %message.id, kind = %message.kind, person_id = %message.person_id,
                        error = %reason, "identity refused a personnel message as malformed; set aside for an operator");
                    self.db
                        .run(move |conn| identity_messages::mark_rejected(conn, now, &id, &reason))
                        .await
                        .map_err(|err: VendorsError| err.to_string())?;
                }
                Outcome::Failed(reason) => {
                    let error = reason.clone();
                    if let Err(err) = self.db.run(move |conn| identity_messages::mark_failed(conn, &id, &error)).await {
                        let err: VendorsError = err;
                        tracing::warn!(error = %err, "could not count the failed message delivery");
                    }
                    return Err(format!("message {}: {reason}", message.id));
                }
            }
            handled += 1;
        }
        Ok(handled)
    }

    async fn post(&self, event: &PersonnelEvent) -> Outcome {
        let headers = match self.tokens.headers().await {
            Ok(headers) => headers,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        let sent = self.http.post(&self.url).headers(headers).timeout(CALL_TIMEOUT).json(event).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        // Only the problem's code and field are kept: whatever else identity wrote stays out of the
        // logs and the table (it might quote the body).
        let refusal = response.json::<Refusal>().await.unwrap_or_default();
        let reason = format!(
            "identity answered {status}{}{}",
            refusal.code.map(|code| format!(" ({code})")).unwrap_or_default(),
            refusal.field.map(|field| format!(", field {field}")).unwrap_or_default()
        );
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY {
            Outcome::Rejected(reason)
        } else {
            Outcome::Failed(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use actix_web::{web, App, HttpResponse, HttpServer};
    use chrono::{TimeZone, Utc};
    use diesel::prelude::*;
    use immilink_shared::clock::{to_db, ManualClock};
    use immilink_shared::db::{DbConn, DbSettings};
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::personnel::{add, mark_departed, NewPerson, Person};
    use crate::domain::testing::caller;
    use crate::domain::vendors::{register, BusinessNumber, NewVendor, Vendor};
    use crate::schema::identity_messages;

    /// What the fake identity received, and how it answers for now.
    #[derive(Default)]
    struct FakeIdentity {
        received: Mutex<Vec<PersonnelEvent>>,
        /// Answer this status instead of 204.
        answer: Mutex<Option<u16>>,
        /// Refuse (422) the message with this id.
        malformed: Mutex<Option<String>>,
        /// The service token each request presented.
        tokens: Mutex<Vec<Option<String>>>,
    }

    impl FakeIdentity {
        fn ids(&self) -> Vec<String> {
            self.received.lock().unwrap().iter().map(|event| event.id.clone()).collect()
        }
    }

    async fn fake_identity(identity: Arc<FakeIdentity>) -> (String, actix_web::dev::ServerHandle) {
        let data = web::Data::from(identity);
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route(
                PATH,
                web::post().to(|identity: web::Data<FakeIdentity>, req: actix_web::HttpRequest, event: web::Json<PersonnelEvent>| async move {
                    let token = req.headers().get("x-immilink-service-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    identity.tokens.lock().unwrap().push(token);
                    if let Some(status) = *identity.answer.lock().unwrap() {
                        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish();
                    }
                    if identity.malformed.lock().unwrap().as_deref() == Some(event.id.as_str()) {
                        return HttpResponse::UnprocessableEntity()
                            .content_type("application/problem+json")
                            .json(serde_json::json!({"code": "invalid_field", "field": "national_id", "detail": "A123456789 is not valid"}));
                    }
                    identity.received.lock().unwrap().push(event.into_inner());
                    HttpResponse::NoContent().finish()
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (url, handle)
    }

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
    }

    fn relay(db: &Db, url: &str) -> IdentityRelay {
        let clock: SharedClock = Arc::new(ManualClock::starting_at(at()));
        let tokens = Arc::new(ServiceTokens::local(|| Ok("vendors-service-token".into())));
        IdentityRelay::new(
            db.clone(),
            clock,
            immilink_shared::server::outbound_client().expect("a client"),
            url,
            tokens,
        )
    }

    fn vendor(conn: &mut DbConn) -> Vendor {
        let new = NewVendor {
            name: "臺灣資訊服務股份有限公司".into(),
            business_number: BusinessNumber::parse("22099131").unwrap(),
            contact_email: None,
        };
        register(conn, at(), &caller("TPE-SW", &["vendor_manager"]), &new).unwrap()
    }

    fn add_person(conn: &mut DbConn, vendor: &Vendor, id: &str) -> Person {
        let new = NewPerson::parse(vendor.id.clone(), Some(id.into()), Some("王小明".into()), None, None).unwrap();
        add(conn, at(), &caller("TPE-SW", &["vendor_manager"]), &new).unwrap()
    }

    fn stored(conn: &mut DbConn) -> Vec<StoredMessage> {
        identity_messages::table
            .order(identity_messages::id.asc())
            .select(StoredMessage::as_select())
            .load(conn)
            .unwrap()
    }

    /// R-VEN-06, R-VEN-08: the relay delivers every message to identity in the order written, in the
    /// contract's shape, with the vendors service token, and marks each delivered; nothing is sent
    /// twice once marked.
    #[actix_web::test]
    async fn r_ven_06_the_relay_delivers_messages_in_order_and_marks_them_delivered() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let identity = Arc::new(FakeIdentity::default());
        let (url, server) = fake_identity(identity.clone()).await;
        let relay = relay(&db, &url);
        let mut conn = db.get().unwrap();
        let acme = vendor(&mut conn);
        let wang = add_person(&mut conn, &acme, "A123456789");
        let chen = add_person(&mut conn, &acme, "B200000004");
        mark_departed(&mut conn, at(), &caller("TPE-SW", &["vendor_manager"]), &acme.id, &wang.id).unwrap();

        assert_eq!(relay.deliver_once().await.unwrap(), 3);
        assert_eq!(relay.deliver_once().await.unwrap(), 0, "nothing is delivered twice");
        let written = stored(&mut conn);
        assert_eq!(identity.ids(), written.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), "in the order written");
        let received = identity.received.lock().unwrap().clone();
        let shape: Vec<(MessageKind, &str, &str, MessageReason)> =
            received.iter().map(|e| (e.kind, e.national_id.as_str(), e.person_id.as_str(), e.reason)).collect();
        assert_eq!(
            shape,
            [
                (MessageKind::Registered, "A123456789", wang.id.as_str(), MessageReason::Registered),
                (MessageKind::Registered, "B200000004", chen.id.as_str(), MessageReason::Registered),
                (MessageKind::Offboarded, "A123456789", wang.id.as_str(), MessageReason::Departure),
            ]
        );
        assert!(received.iter().all(|e| e.agency == "TPE-SW" && e.vendor_id == acme.id.as_str()));
        // The wire form is the contract's, word for word.
        let wire = serde_json::to_value(&received[2]).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"id": written[2].id, "kind": "offboarded", "national_id": "A123456789", "agency": "TPE-SW",
                "vendor_id": acme.id, "person_id": wang.id, "reason": "departure"})
        );
        assert!(!format!("{:?}", received[2]).contains("A123456789"), "Debug redacts the ID");
        assert!(identity.tokens.lock().unwrap().iter().all(|t| t.as_deref() == Some("vendors-service-token")));
        for message in stored(&mut conn) {
            assert_eq!((message.delivered_at, message.attempts), (Some(to_db(at())), 1));
        }
        assert_eq!(crate::domain::identity_messages::backlog(&mut conn).unwrap(), 0);
        server.stop(true).await;
    }

    /// At least once, in order: while identity fails, the first message stays pending (with the
    /// failure kept) and none overtakes it; once identity answers, all go, the first first. A message
    /// whose mark was lost goes again with the same id, for identity to apply once.
    #[actix_web::test]
    async fn r_ven_06_the_relay_redelivers_after_a_failure_and_keeps_the_order() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let identity = Arc::new(FakeIdentity::default());
        let (url, server) = fake_identity(identity.clone()).await;
        let relay = relay(&db, &url);
        let mut conn = db.get().unwrap();
        let acme = vendor(&mut conn);
        add_person(&mut conn, &acme, "A123456789");
        add_person(&mut conn, &acme, "B200000004");

        *identity.answer.lock().unwrap() = Some(503);
        assert!(relay.deliver_once().await.is_err());
        assert!(relay.deliver_once().await.is_err());
        assert!(identity.ids().is_empty());
        let waiting = stored(&mut conn);
        assert_eq!(
            waiting.iter().map(|m| (m.attempts, m.delivered_at)).collect::<Vec<_>>(),
            [(2, None), (0, None)],
            "the second never overtook the first"
        );
        assert!(waiting[0].last_error.as_deref().is_some_and(|e| e.contains("503")), "{:?}", waiting[0].last_error);
        // Identity unreachable altogether: the same.
        let unreachable = super::IdentityRelay::new(
            db.clone(),
            Arc::new(ManualClock::starting_at(at())),
            immilink_shared::server::outbound_client().expect("a client"),
            "http://127.0.0.1:9",
            Arc::new(ServiceTokens::local(|| Ok("t".into()))),
        );
        assert!(unreachable.deliver_once().await.is_err());

        *identity.answer.lock().unwrap() = None;
        assert_eq!(relay.deliver_once().await.unwrap(), 2);
        let ids: Vec<String> = waiting.iter().map(|m| m.id.clone()).collect();
        assert_eq!(identity.ids(), ids);

        // The mark of the first is lost: it goes again, same id (identity applies it once).
        diesel::update(identity_messages::table.filter(identity_messages::id.eq(&ids[0])))
            .set(identity_messages::delivered_at.eq(None::<chrono::NaiveDateTime>))
            .execute(&mut conn)
            .unwrap();
        assert_eq!(relay.deliver_once().await.unwrap(), 1);
        assert_eq!(identity.ids(), [ids[0].clone(), ids[1].clone(), ids[0].clone()]);
        assert_eq!(crate::domain::identity_messages::backlog(&mut conn).unwrap(), 0);
        server.stop(true).await;
    }

    /// A message identity refuses as malformed (422) cannot succeed by resending: it is set aside with
    /// identity's code and field (never the body's text, which might quote the national ID), and the
    /// messages after it still go.
    #[actix_web::test]
    async fn a_message_identity_refuses_as_malformed_is_set_aside_without_holding_up_the_rest() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let identity = Arc::new(FakeIdentity::default());
        let (url, server) = fake_identity(identity.clone()).await;
        let relay = relay(&db, &url);
        let mut conn = db.get().unwrap();
        let acme = vendor(&mut conn);
        add_person(&mut conn, &acme, "A123456789");
        add_person(&mut conn, &acme, "B200000004");
        let written = stored(&mut conn);
        *identity.malformed.lock().unwrap() = Some(written[0].id.clone());
        assert_eq!(relay.deliver_once().await.unwrap(), 2);
        assert_eq!(identity.ids(), [written[1].id.clone()]);
        let after = stored(&mut conn);
        assert!(after[0].rejected_at.is_some() && after[0].delivered_at.is_none());
        let error = after[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("422") && error.contains("invalid_field") && error.contains("national_id"), "{error}");
        assert!(!error.contains("A123456789"), "{error}");
        assert_eq!(relay.deliver_once().await.unwrap(), 0, "not sent again");
        server.stop(true).await;
    }

    /// Woken by the commit, not only by its poll: a message written while the relay waits reaches
    /// identity well before the next poll would have found it.
    #[actix_web::test]
    async fn r_ven_06_a_wake_after_the_commit_delivers_before_the_poll_would() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let identity = Arc::new(FakeIdentity::default());
        let (url, server) = fake_identity(identity.clone()).await;
        let relay = relay(&db, &url);
        let task = actix_web::rt::spawn(relay.clone().run());
        // Let the relay find nothing and start waiting.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut conn = db.get().unwrap();
        let acme = vendor(&mut conn);
        add_person(&mut conn, &acme, "A123456789");
        let committed = std::time::Instant::now();
        relay.wake();
        while identity.ids().is_empty() && committed.elapsed() < POLL {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = committed.elapsed();
        assert_eq!(identity.ids().len(), 1);
        assert!(took < POLL / 2, "delivered {took:?} after the commit");
        task.abort();
        server.stop(true).await;
    }
}
