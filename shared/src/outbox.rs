//! The transactional outbox and its relay, one for every service that records audited acts (the
//! broker, identity, vendors). A service inserts each audit event into its own `outbox` table in the
//! same transaction as the state change it describes ([`enqueue`], [`enqueue_many`]); the [`Relay`]
//! delivers the table to the audit service at least once, in id (UUIDv7, time) order, and the audit
//! service stores each event id once, so redelivery is harmless.
//!
//! Every service's migrations create the `outbox` table exactly as [`outbox`] declares it (the test
//! `every_service_creates_the_same_outbox` compares them). Functions here fail with [`OutboxError`];
//! each service maps it into its own error enum with one `From`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use tokio::sync::Notify;

use crate::auth::{Caller, ServiceTokens};
use crate::clock::{to_db, SharedClock};
use crate::db::{Db, DbConn, DbError};
use crate::events::{AuditEvent, BatchReceipt};

diesel::table! {
    /// Audit events waiting for (or already given to) the audit service; `event` is the
    /// [`AuditEvent`] as JSON.
    outbox (id) {
        id -> Text,
        event -> Text,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}

/// Why an outbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// An event that cannot be written as JSON (cannot happen with a `serde_json::Value` payload).
    #[error("event does not serialise: {0}")]
    Serialise(String),
}

impl From<diesel::result::Error> for OutboxError {
    fn from(err: diesel::result::Error) -> Self {
        OutboxError::Db(DbError::Query(err))
    }
}

/// An audit event of `source` recording an act of `caller`, correlated with the record it is about
/// (`subject_id`: whose immigration data was accessed, if any).
pub fn event(
    source: &str,
    kind: &str,
    now: DateTime<Utc>,
    caller: &Caller,
    correlation_id: &str,
    subject_id: Option<String>,
    payload: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        actor_user_id: Some(caller.user_id.to_string()),
        agency: Some(caller.agency.to_string()),
        correlation_id: Some(correlation_id.to_owned()),
        subject_id,
        unit: caller.unit.as_ref().map(|unit| unit.to_string()),
        ..AuditEvent::new(source, kind, now, payload)
    }
}

/// Enqueues one event. Part of the caller's transaction.
pub fn enqueue(conn: &mut DbConn, now: DateTime<Utc>, event: &AuditEvent) -> Result<(), OutboxError> {
    enqueue_many(conn, now, std::slice::from_ref(event))
}

/// Rows per INSERT statement: well under both backends' bound-parameter limits.
const ROWS_PER_INSERT: usize = 500;

/// Enqueues several events with one multi-row INSERT per few hundred (the broker journal's group
/// commit calls this inside its batch transaction). Part of the caller's transaction.
pub fn enqueue_many(conn: &mut DbConn, now: DateTime<Utc>, events: &[AuditEvent]) -> Result<(), OutboxError> {
    let created_at = to_db(now);
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let rows = chunk
            .iter()
            .map(|event| {
                let json = serde_json::to_string(event).map_err(|err| OutboxError::Serialise(err.to_string()))?;
                Ok((
                    outbox::id.eq(&event.id),
                    outbox::event.eq(json),
                    outbox::created_at.eq(created_at),
                    outbox::attempts.eq(0),
                ))
            })
            .collect::<Result<Vec<_>, OutboxError>>()?;
        crate::insert_rows!(conn, outbox::table, &rows);
    }
    Ok(())
}

/// The oldest undelivered events, at most `limit`. A row that no longer parses is reported, not
/// skipped silently: it stays in the outbox for an operator.
pub fn pending(conn: &mut DbConn, limit: i64) -> Result<Vec<AuditEvent>, OutboxError> {
    let rows: Vec<(String, String)> = outbox::table
        .filter(outbox::delivered_at.is_null())
        .order(outbox::id.asc())
        .limit(limit)
        .select((outbox::id, outbox::event))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, json)| match serde_json::from_str(&json) {
            Ok(event) => Some(event),
            Err(err) => {
                tracing::error!(id, error = %err, "outbox row does not parse; left for an operator");
                None
            }
        })
        .collect())
}

/// Marks events delivered. The mark need not wait for its own flush: if a crash loses it, the events
/// are delivered again and the audit service stores each id once.
pub fn mark_delivered(conn: &mut DbConn, now: DateTime<Utc>, ids: &[String]) -> Result<(), OutboxError> {
    conn.write_transaction(|conn| {
        conn.relax_commit_durability()?;
        conn.plan_for_actual_values()?;
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .set((outbox::delivered_at.eq(to_db(now)), outbox::attempts.eq(outbox::attempts + 1)))
            .execute(conn)?;
        Ok(())
    })
}

/// Records a failed delivery; the events stay pending.
pub fn mark_failed(conn: &mut DbConn, ids: &[String], error: &str) -> Result<(), OutboxError> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((outbox::attempts.eq(outbox::attempts + 1), outbox::last_error.eq(error)))
        .execute(conn)?;
    Ok(())
}

/// How many events wait for delivery (for readiness and metrics).
pub fn backlog(conn: &mut DbConn) -> Result<i64, OutboxError> {
    Ok(outbox::table.filter(outbox::delivered_at.is_null()).count().get_result(conn)?)
}

/// Events per delivery (the audit service takes at most 1000 per request).
const BATCH: i64 = 1000;
const POLL: Duration = Duration::from_millis(500);
/// After a partial batch, wait this long for more events before the next delivery: at low load one
/// delivery (one audit transaction, one fsync) carries many events instead of one each.
const LINGER: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// An event the audit service refused outright (400 or 422: it does not take the event as it is, and
/// sending it again will not change that). It stays in the outbox, and everything recorded after it
/// waits behind it: the log keeps the order acts happened in, and skipping it would leave an act
/// without its record. The relay names it (log, `/metrics`) for an operator to mend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEvent {
    pub id: String,
    pub kind: String,
    /// What the audit service answered (its problem's detail).
    pub detail: String,
}

/// Why a delivery failed.
#[derive(Debug)]
enum DeliveryError {
    /// The audit service refused the batch as it is (400, 422).
    Refused(String),
    /// Anything that may pass: audit down, overloaded, a timeout, a token that could not be had.
    Failed(String),
}

impl DeliveryError {
    fn reason(&self) -> String {
        match self {
            DeliveryError::Refused(detail) => format!("refused by the audit service: {detail}"),
            DeliveryError::Failed(reason) => reason.clone(),
        }
    }
}

/// Delivers a service's outbox to the audit service: at least once, in order, in batches of at most
/// 1000; idempotent there by event id. Woken after every commit that adds events ([`Relay::wake`]),
/// and polling as a fallback, so an event whose wake-up was missed (or that a previous process left
/// behind) is still delivered; backs off while the audit service fails.
#[derive(Clone)]
pub struct Relay {
    db: Db,
    clock: SharedClock,
    http: reqwest::Client,
    events_url: String,
    tokens: Arc<ServiceTokens>,
    wake: Arc<Notify>,
    oldest_undelivered: Arc<Mutex<Option<DateTime<Utc>>>>,
    refused: Arc<Mutex<Option<RefusedEvent>>>,
}

impl Relay {
    pub fn new(db: Db, clock: SharedClock, http: reqwest::Client, audit_url: &str, tokens: Arc<ServiceTokens>) -> Self {
        Self {
            db,
            clock,
            http,
            events_url: format!("{}/internal/v1/events", audit_url.trim_end_matches('/')),
            tokens,
            wake: Arc::new(Notify::new()),
            oldest_undelivered: Arc::new(Mutex::new(None)),
            refused: Arc::new(Mutex::new(None)),
        }
    }

    /// The event the audit service refused and that holds the outbox up, if any (see [`RefusedEvent`]).
    pub fn refused(&self) -> Option<RefusedEvent> {
        self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// How long the oldest event still waiting has waited, as of the relay's last look.
    pub fn oldest_undelivered_age(&self) -> Option<chrono::Duration> {
        self.oldest_undelivered().map(|oldest| self.clock.now() - oldest)
    }

    /// Records the refused event holding the outbox up (`None`: none does). Logged once per event,
    /// not at every retry.
    fn note_refused(&self, refused: Option<RefusedEvent>) {
        let mut current = self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(event) = refused.as_ref().filter(|event| current.as_ref() != Some(*event)) {
            tracing::error!(
                event_id = %event.id,
                kind = %event.kind,
                detail = %event.detail,
                "the audit service refuses this event; it and every later event wait in the outbox until it is mended"
            );
        }
        *current = refused;
    }

    /// When the oldest event still waiting for the audit service was recorded, as of the relay's
    /// last look (`None`: nothing waits). The broker refuses lookups once this is older than its
    /// backlog bound.
    pub fn oldest_undelivered(&self) -> Option<DateTime<Utc>> {
        *self.oldest_undelivered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn note_oldest(&self, oldest: Option<DateTime<Utc>>) {
        *self.oldest_undelivered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = oldest;
    }

    /// Signals that new events were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until the runtime stops.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.deliver_once().await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Ok(delivered) => {
                    backoff = Duration::from_millis(100);
                    if (delivered as i64) < BATCH {
                        tokio::time::sleep(LINGER).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "audit relay failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Delivers one batch; returns how many events were delivered.
    pub async fn deliver_once(&self) -> Result<usize, String> {
        let started = std::time::Instant::now();
        let events = self.db.run(|conn| pending(conn, BATCH)).await.map_err(|err: OutboxError| err.to_string())?;
        self.note_oldest(events.first().map(|event| event.occurred_at));
        if events.is_empty() {
            return Ok(0);
        }
        let full_batch = events.len() as i64 == BATCH;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let read_ms = started.elapsed().as_millis() as u64;
        let posted = match self.post(&events).await {
            // One event of the batch is refused: deliver the ones before it, and name it.
            Err(DeliveryError::Refused(_)) if events.len() > 1 => return self.deliver_up_to_refused(events).await,
            posted => posted,
        };
        match posted {
            Ok(receipt) => {
                let posted_ms = started.elapsed().as_millis() as u64;
                let now = self.clock.now();
                let count = ids.len();
                self.db
                    .run(move |conn| mark_delivered(conn, now, &ids))
                    .await
                    .map_err(|err: OutboxError| err.to_string())?;
                if !full_batch {
                    self.note_oldest(None);
                }
                self.note_refused(None);
                tracing::debug!(
                    count,
                    read_ms,
                    posted_ms,
                    marked_ms = started.elapsed().as_millis() as u64,
                    appended = receipt.appended,
                    duplicates = receipt.duplicates,
                    "relayed audit events"
                );
                Ok(count)
            }
            Err(error) => {
                if let [event] = events.as_slice() {
                    self.note_refusal_of(event, &error);
                }
                self.record_failure(ids, error.reason()).await;
                Err(error.reason())
            }
        }
    }

    /// When the audit service refused `event` itself, names it as what holds the outbox up.
    fn note_refusal_of(&self, event: &AuditEvent, error: &DeliveryError) {
        if let DeliveryError::Refused(detail) = error {
            let (id, kind, detail) = (event.id.clone(), event.kind.clone(), detail.clone());
            self.note_refused(Some(RefusedEvent { id, kind, detail }));
        }
    }

    /// After a batch was refused: delivers its events one at a time, in order, up to the one the
    /// audit service refuses, which is named and stays (with everything after it) in the outbox.
    /// The ones delivered are marked once at the end (a mark lost to a crash only means a harmless
    /// redelivery).
    async fn deliver_up_to_refused(&self, events: Vec<AuditEvent>) -> Result<usize, String> {
        let mut delivered = Vec::new();
        let mut failure = None;
        for event in &events {
            match self.post(std::slice::from_ref(event)).await {
                Ok(_) => delivered.push(event.id.clone()),
                Err(error) => {
                    self.note_refusal_of(event, &error);
                    self.record_failure(vec![event.id.clone()], error.reason()).await;
                    failure = Some(error.reason());
                    break;
                }
            }
        }
        let count = delivered.len();
        let now = self.clock.now();
        self.db
            .run(move |conn| mark_delivered(conn, now, &delivered))
            .await
            .map_err(|err: OutboxError| err.to_string())?;
        match failure {
            Some(reason) => Err(format!("{reason} (after delivering the {count} events before it)")),
            // The refusal did not come back one event at a time: everything is delivered.
            None => {
                self.note_refused(None);
                Ok(count)
            }
        }
    }

    async fn record_failure(&self, ids: Vec<String>, reason: String) {
        if let Err(err) = self.db.run(move |conn| mark_failed(conn, &ids, &reason)).await {
            let err: OutboxError = err;
            tracing::warn!(error = %err, "could not record the failed delivery");
        }
    }

    /// Posts events as one [`crate::events::EventBatch`] (serialised from the borrowed slice: same JSON).
    async fn post(&self, events: &[AuditEvent]) -> Result<BatchReceipt, DeliveryError> {
        #[derive(serde::Serialize)]
        struct Batch<'a> {
            events: &'a [AuditEvent],
        }
        let headers = self.tokens.headers().await.map_err(|err| DeliveryError::Failed(err.to_string()))?;
        let response = self
            .http
            .post(&self.events_url)
            .headers(headers)
            .timeout(Duration::from_secs(10))
            .json(&Batch { events })
            .send()
            .await
            .map_err(|err| DeliveryError::Failed(err.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            let problem: serde_json::Value = response.json().await.unwrap_or_default();
            let detail = problem["detail"].as_str().unwrap_or("no detail").to_owned();
            return Err(DeliveryError::Refused(format!("{status}: {detail}")));
        }
        if !status.is_success() {
            return Err(DeliveryError::Failed(format!("audit answered {status}")));
        }
        response.json().await.map_err(|err| DeliveryError::Failed(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use actix_web::{web, App, HttpResponse, HttpServer};
    use chrono::{TimeZone, Utc};
    use diesel::prelude::*;
    use serde_json::json;

    use super::{backlog, enqueue, outbox, pending, OutboxError, Relay};
    use crate::auth::ServiceTokens;
    use crate::clock::{ManualClock, SharedClock};
    use crate::db::{Db, DbConn, DbSettings, Migrations};
    use crate::events::{AuditEvent, BatchReceipt, EventBatch};
    use crate::testing::TestDb;

    /// The vendors service's migrations: the smallest set that creates an outbox.
    static MIGRATIONS: Migrations = Migrations {
        postgres: diesel_migrations::embed_migrations!("../migrations/vendors/postgres"),
        sqlite: diesel_migrations::embed_migrations!("../migrations/vendors/sqlite"),
    };

    fn db(test: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test.url()), &MIGRATIONS).expect("the test database opens")
    }

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 1, 0, 0).unwrap()
    }

    fn sample(n: u32) -> AuditEvent {
        AuditEvent::new("vendors", "test.event", at(), json!({ "n": n }))
    }

    #[test]
    fn an_event_enqueued_in_a_transaction_that_rolls_back_is_not_left_behind() {
        let test = TestDb::new();
        let db = db(&test);
        let mut conn = db.get().unwrap();
        let result: Result<(), OutboxError> = conn.write_transaction(|conn: &mut DbConn| {
            enqueue(conn, at(), &sample(1))?;
            Err(OutboxError::Serialise("the state change failed after the event".into()))
        });
        assert!(result.is_err());
        assert_eq!(backlog(&mut conn).unwrap(), 0, "the event rolled back with its transaction");
        let committed: Result<(), OutboxError> =
            conn.write_transaction(|conn: &mut DbConn| enqueue(conn, at(), &sample(2)));
        committed.unwrap();
        let left: Vec<serde_json::Value> = pending(&mut conn, 10).unwrap().into_iter().map(|e| e.payload).collect();
        assert_eq!(left, [json!({ "n": 2 })], "only the committed event waits");
    }

    /// What the fake audit service received, and whether it answers 500 for now.
    #[derive(Default)]
    struct Received {
        batches: Mutex<Vec<Vec<String>>>,
        failing: Mutex<bool>,
        /// A batch holding an event of this kind is refused with 422, as audit refuses a malformed one.
        refused_kind: Mutex<Option<String>>,
    }

    async fn fake_audit(received: Arc<Received>) -> (String, actix_web::dev::ServerHandle) {
        let data = web::Data::from(received);
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route(
                "/internal/v1/events",
                web::post().to(|received: web::Data<Received>, batch: web::Json<EventBatch>| async move {
                    if *received.failing.lock().unwrap() {
                        return HttpResponse::InternalServerError().finish();
                    }
                    let refused = received.refused_kind.lock().unwrap().clone();
                    if let Some(kind) = refused.filter(|kind| batch.events.iter().any(|e| &e.kind == kind)) {
                        return HttpResponse::UnprocessableEntity()
                            .json(json!({ "status": 422, "detail": format!("events of kind {kind} are refused") }));
                    }
                    let ids: Vec<String> = batch.events.iter().map(|e| e.id.clone()).collect();
                    let appended = ids.len();
                    received.batches.lock().unwrap().push(ids);
                    HttpResponse::Ok().json(BatchReceipt { appended, duplicates: 0 })
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

    fn relay(db: &Db, url: &str) -> Relay {
        let clock: SharedClock = Arc::new(ManualClock::starting_at(at()));
        let tokens = Arc::new(ServiceTokens::local(|| Ok("a-service-token".into())));
        Relay::new(db.clone(), clock, crate::tls::outbound_builder().build().expect("a client"), url, tokens)
    }

    fn enqueue_all(db: &Db, events: &[AuditEvent]) {
        let mut conn = db.get().unwrap();
        for event in events {
            let written: Result<(), OutboxError> =
                conn.write_transaction(|conn: &mut DbConn| enqueue(conn, at(), event));
            written.unwrap();
        }
    }

    #[actix_web::test]
    async fn the_relay_delivers_in_order_and_marks_what_it_delivered() {
        let test = TestDb::new();
        let db = db(&test);
        let received = Arc::new(Received::default());
        let (url, server) = fake_audit(received.clone()).await;
        let relay = relay(&db, &url);
        let events: Vec<AuditEvent> = (0..5).map(sample).collect();
        enqueue_all(&db, &events[..3]);
        assert_eq!(relay.deliver_once().await.unwrap(), 3);
        enqueue_all(&db, &events[3..]);
        assert_eq!(relay.deliver_once().await.unwrap(), 2);
        assert_eq!(relay.deliver_once().await.unwrap(), 0, "nothing is delivered twice");
        let delivered: Vec<String> = received.batches.lock().unwrap().iter().flatten().cloned().collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(delivered, ids, "every event once, in the order they were recorded");
        assert_eq!(relay.oldest_undelivered(), None);
        let mut conn = db.get().unwrap();
        assert_eq!(backlog(&mut conn).unwrap(), 0);
        let attempts: Vec<i32> = outbox::table.order(outbox::id).select(outbox::attempts).load(&mut conn).unwrap();
        assert_eq!(attempts, [1; 5]);
        server.stop(true).await;
    }

    /// At least once: a failed delivery stays pending and goes again; a delivery whose mark was lost
    /// (a crash between the audit's answer and the mark) goes again with the same ids, for the audit
    /// service to store once; and once marked, an event is not sent again.
    #[actix_web::test]
    async fn an_event_delivered_twice_is_sent_with_the_same_id_and_marked_once_delivered() {
        let test = TestDb::new();
        let db = db(&test);
        let received = Arc::new(Received::default());
        let (url, server) = fake_audit(received.clone()).await;
        let relay = relay(&db, &url);
        let event = sample(7);
        enqueue_all(&db, std::slice::from_ref(&event));

        *received.failing.lock().unwrap() = true;
        assert!(relay.deliver_once().await.is_err());
        assert_eq!(relay.oldest_undelivered(), Some(event.occurred_at), "the backlog bound sees it waiting");
        *received.failing.lock().unwrap() = false;
        assert_eq!(relay.deliver_once().await.unwrap(), 1);

        // The mark is lost: the event is pending again and is delivered again, same id.
        let mut conn = db.get().unwrap();
        diesel::update(outbox::table)
            .set(outbox::delivered_at.eq(None::<chrono::NaiveDateTime>))
            .execute(&mut conn)
            .unwrap();
        assert_eq!(relay.deliver_once().await.unwrap(), 1);
        assert_eq!(relay.deliver_once().await.unwrap(), 0);
        assert_eq!(*received.batches.lock().unwrap(), vec![vec![event.id.clone()], vec![event.id.clone()]]);
        let (attempts, last_error): (i32, Option<String>) =
            outbox::table.select((outbox::attempts, outbox::last_error)).first(&mut conn).unwrap();
        assert_eq!(attempts, 3, "one failed attempt, two deliveries");
        assert!(last_error.is_some_and(|e| e.contains("500")), "the failure is kept for an operator");
        assert_eq!(backlog(&mut conn).unwrap(), 0);
        server.stop(true).await;
    }

    /// An event the audit service refuses (422) is named, with audit's reason, in the log, the outbox
    /// row and the relay's state (which `/metrics` exports, `server`); the events recorded before it in the same
    /// batch are delivered, the ones after it wait behind it (the log keeps order), nothing is
    /// dropped; once audit takes it, everything goes and the state clears.
    #[actix_web::test]
    async fn a_refused_event_is_named_and_holds_up_only_what_was_recorded_after_it() {
        let test = TestDb::new();
        let db = db(&test);
        let received = Arc::new(Received::default());
        let (url, server) = fake_audit(received.clone()).await;
        let relay = relay(&db, &url);
        let mut events: Vec<AuditEvent> = (0..5).map(sample).collect();
        events[2].kind = "test.poison".into();
        enqueue_all(&db, &events);
        *received.refused_kind.lock().unwrap() = Some("test.poison".into());

        let err = relay.deliver_once().await.expect_err("the batch holds a refused event");
        assert!(err.contains("events of kind test.poison are refused"), "{err}");
        let delivered: Vec<String> = received.batches.lock().unwrap().iter().flatten().cloned().collect();
        assert_eq!(delivered, [events[0].id.clone(), events[1].id.clone()], "the events before it, in order");
        let refused = relay.refused().expect("the refused event is named");
        assert_eq!((refused.id.as_str(), refused.kind.as_str()), (events[2].id.as_str(), "test.poison"));
        assert!(refused.detail.contains("422"), "{refused:?}");
        let mut conn = db.get().unwrap();
        assert_eq!(backlog(&mut conn).unwrap(), 3, "the refused event and the two after it wait; none is dropped");
        let last_error: Option<String> =
            outbox::table.filter(outbox::id.eq(&events[2].id)).select(outbox::last_error).first(&mut conn).unwrap();
        assert!(last_error.is_some_and(|e| e.contains("refused by the audit service")), "kept on the row");

        // Retried, the same event is refused again and nothing behind it moves.
        assert!(relay.deliver_once().await.is_err());
        assert_eq!(backlog(&mut conn).unwrap(), 3);

        // Mended (audit takes it now): all three go, in order, and the state clears.
        *received.refused_kind.lock().unwrap() = None;
        assert_eq!(relay.deliver_once().await.unwrap(), 3);
        let delivered: Vec<String> = received.batches.lock().unwrap().iter().flatten().cloned().collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(delivered, ids, "every event once, in the order recorded");
        assert_eq!(relay.refused(), None);
        assert_eq!(relay.oldest_undelivered_age(), None, "nothing waits");
        server.stop(true).await;
    }

    /// Each service's migrations create the same outbox table (the one [`outbox`] declares).
    #[test]
    fn every_service_creates_the_same_outbox() {
        let identity = [
            include_str!("../../migrations/identity/sqlite/2026-12-02-000003_outbox/up.sql"),
            include_str!("../../migrations/identity/postgres/2026-12-02-000003_outbox/up.sql"),
        ];
        let vendors = [
            include_str!("../../migrations/vendors/sqlite/2026-12-02-000003_outbox/up.sql"),
            include_str!("../../migrations/vendors/postgres/2026-12-02-000003_outbox/up.sql"),
        ];
        let broker = [
            include_str!("../../migrations/broker/sqlite/2026-11-23-000001_create_broker/up.sql"),
            include_str!("../../migrations/broker/postgres/2026-11-23-000001_create_broker/up.sql"),
        ];
        let table = |sql: &str| -> String {
            let start = sql.find("CREATE TABLE outbox").expect("an outbox table");
            let end = start + sql[start..].find(");").expect("its end") + 2;
            sql[start..end].split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let expected = table(identity[0]);
        for sql in identity.iter().chain(&vendors).chain(&broker) {
            assert_eq!(table(sql), expected);
        }
        for sql in identity.iter().chain(&vendors) {
            assert!(sql.contains("CREATE INDEX outbox_undelivered_idx ON outbox (id) WHERE delivered_at IS NULL;"));
        }
    }
}
