//! Every service's outboxes under faults: the audit service stopped while identity, vendors and the
//! broker go on recording (each of them restarted mid-traffic meanwhile, and the marks of delivered
//! events lost afterwards, as when a service dies between the audit's answer and its mark);
//! identity's and vendors' databases cut under traffic; identity stopped while vendors offboards
//! someone. The invariants checked after each, by reading what each service stored:
//!
//! - every event every service's `outbox` recorded is in the audit log exactly once (the outbox
//!   rows' ids and the log's, service by service: nothing lost, nothing twice, nothing the outbox
//!   does not hold);
//! - every message vendors' second outbox (`identity_messages`) holds was taken by identity exactly
//!   once, and a departed person's account was cancelled once, with one audit record;
//! - the log verifies (`GET /v1/audit/verify`: the hash chain, the Merkle tree, the latest checkpoint
//!   and the one the witness cosigned), against a checkpoint issued after the faults and cosigned by
//!   the witness (nia-mock).
//!
//! Every wait is bounded: each test body runs [`within`] a time limit, its awaits that could hang
//! are [`step`]s, and the stack is shut down whether the body passed, failed or got stuck.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use immilink_shared::db::{Db, DbConn, DbError, DbSettings, Migrations};
use immilink_shared::ids::synthetic_national_id;
use immilink_shared::outbox::outbox;
use immilink_stack::audit::schema::audit_records;
use immilink_stack::identity::domain::demo::demo_national_id_of;
use immilink_stack::identity::schema::{account_events, personnel_messages, users};
use immilink_stack::vendors::schema::identity_messages;
use serde_json::{json, Value};

use crate::harness::{client, permitted_lookup, step, within, Options, TestStack, DEMO_PASSWORD};

/// How long one test's body may run before it is failed as stuck.
const TEST_LIMIT: Duration = Duration::from_secs(150);

/// How long the relays get to bring every outbox to the audit log once the fault is over.
const DRAIN_WITHIN: Duration = Duration::from_secs(40);

/// The services that record audit events in an outbox of their own (the audit service records its
/// own acts straight into the log, under the source `audit`).
const SOURCES: [&str; 3] = ["identity", "vendors", "broker"];

/// Lookups and the relays' deliveries go on at any pace; the broker's backlog bound (R-QRY-08, its
/// own fault test) is kept out of the way of a minute of audit outage.
fn busy_bounds(config: &mut immilink_stack::StackConfig) {
    config.broker.lookups_per_user_per_minute = 100_000;
    config.broker.lookups_per_agency_per_minute = 100_000;
    config.broker.audit_backlog_max_age = Duration::from_secs(600);
    // Lookups a kill interrupted are closed (`outcome_unknown`) soon after the restart.
    config.broker.interrupted_after = Duration::from_secs(2);
}

/// As [`busy_bounds`], and a "session live" answer is reused for a minute, by the gateway and by
/// vendors: a vendor manager who was checked just before identity went away can still record a
/// departure while it is away (identity answers nothing then).
fn sessions_outlast_identity(config: &mut immilink_stack::StackConfig) {
    busy_bounds(config);
    config.gateway.session_cache = Duration::from_secs(60);
    config.vendors.service.session_cache = Duration::from_secs(60);
}

// ---------------------------------------------------------------------------------------------
// Reading what the services stored.

/// The test's own connections to the services' databases.
struct Stores {
    identity: Db,
    vendors: Db,
    broker: Db,
    audit: Db,
}

impl Stores {
    async fn open(t: &TestStack) -> Self {
        async fn open(t: &TestStack, service: &str, migrations: &'static Migrations) -> Db {
            let settings = DbSettings::new(t.db_url(service));
            step(&format!("opening {service}'s database"), Duration::from_secs(30), Db::open(&settings, migrations))
                .await
                .unwrap_or_else(|err| panic!("{service}'s database opens: {err}"))
        }
        Self {
            identity: open(t, "identity", &immilink_stack::identity::MIGRATIONS).await,
            vendors: open(t, "vendors", &immilink_stack::vendors::MIGRATIONS).await,
            broker: open(t, "broker", &immilink_stack::broker::MIGRATIONS).await,
            audit: open(t, "audit", &immilink_stack::audit::MIGRATIONS).await,
        }
    }

    fn of(&self, service: &str) -> &Db {
        match service {
            "identity" => &self.identity,
            "vendors" => &self.vendors,
            "broker" => &self.broker,
            other => panic!("{other} has no outbox"),
        }
    }
}

/// Runs one read (or one fault's write) against a service's database, bounded.
async fn query<T: Send + 'static>(
    db: &Db,
    what: &str,
    work: impl FnOnce(&mut DbConn) -> QueryResult<T> + Send + 'static,
) -> T {
    step(what, Duration::from_secs(30), db.run(move |conn| work(conn).map_err(DbError::Query)))
        .await
        .unwrap_or_else(|err: DbError| panic!("{what}: {err}"))
}

/// One service's outbox: each event's id, and whether it is marked delivered.
type Outbox = BTreeMap<String, bool>;

async fn outboxes(stores: &Stores) -> BTreeMap<&'static str, Outbox> {
    let mut all = BTreeMap::new();
    for service in SOURCES {
        let rows: Vec<(String, Option<NaiveDateTime>)> =
            query(stores.of(service), &format!("reading {service}'s outbox"), |conn| {
                outbox::table.select((outbox::id, outbox::delivered_at)).load(conn)
            })
            .await;
        all.insert(service, rows.into_iter().map(|(id, delivered)| (id, delivered.is_some())).collect());
    }
    all
}

/// The audit log: each record's event id and source, in sequence order.
async fn audit_log(stores: &Stores) -> Vec<(String, String)> {
    query(&stores.audit, "reading the audit log", |conn| {
        audit_records::table
            .order(audit_records::sequence.asc())
            .select((audit_records::id, audit_records::source))
            .load(conn)
    })
    .await
}

/// What [`every_event_in_the_log_once`] found.
#[derive(Debug)]
struct Tally {
    /// Events each service's outbox recorded (every one of them in the log once).
    recorded: BTreeMap<&'static str, usize>,
    /// Records in the log, the audit service's own included.
    log: usize,
    /// Ids found more than once in the log (asserted 0).
    duplicates: usize,
    /// From the end of the fault until every outbox was delivered and settled.
    drained_in: Duration,
}

/// Waits (bounded by [`DRAIN_WITHIN`]) until every outbox is delivered and nothing new is being
/// recorded, then checks, service by service, that the outbox's event ids and the log's records of
/// that source are the same set, and that no id is in the log twice. The log is read between two
/// reads of the outboxes that agree and are all marked delivered: a mark is written only after the
/// audit service stored the batch, so each of those events was in the log when it was read.
async fn every_event_in_the_log_once(stores: &Stores, when: &str, fault_ended: Instant) -> Tally {
    let started = Instant::now();
    let (recorded, log) = loop {
        let before = outboxes(stores).await;
        let log = audit_log(stores).await;
        let after = outboxes(stores).await;
        if before == after && after.values().all(|rows| rows.values().all(|delivered| *delivered)) {
            break (after, log);
        }
        if started.elapsed() > DRAIN_WITHIN {
            let waiting: BTreeMap<&str, usize> =
                after.iter().map(|(service, rows)| (*service, rows.values().filter(|d| !**d).count())).collect();
            panic!("{when}: the outboxes were not delivered within {DRAIN_WITHIN:?}; still waiting: {waiting:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in &log {
        *per_id.entry(id.as_str()).or_default() += 1;
    }
    let duplicates: Vec<&&str> = per_id.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    assert!(duplicates.is_empty(), "{when}: events in the log more than once: {duplicates:?}");
    let strangers: Vec<&(String, String)> =
        log.iter().filter(|(_, source)| source != "audit" && !SOURCES.contains(&source.as_str())).collect();
    assert!(strangers.is_empty(), "{when}: records of no known source: {strangers:?}");
    for service in SOURCES {
        let outbox: BTreeSet<&str> = recorded[service].keys().map(String::as_str).collect();
        let logged: BTreeSet<&str> = log.iter().filter(|(_, s)| s == service).map(|(id, _)| id.as_str()).collect();
        assert!(!outbox.is_empty(), "{when}: {service} recorded events");
        let lost: Vec<&&str> = outbox.difference(&logged).collect();
        assert!(lost.is_empty(), "{when}: {} of {service}'s events are not in the log: {lost:?}", lost.len());
        let unknown: Vec<&&str> = logged.difference(&outbox).collect();
        assert!(unknown.is_empty(), "{when}: the log holds {service} records its outbox does not: {unknown:?}");
    }
    Tally {
        recorded: recorded.iter().map(|(service, rows)| (*service, rows.len())).collect(),
        log: log.len(),
        duplicates: duplicates.len(),
        drained_in: fault_ended.elapsed(),
    }
}

/// A fault the relay code cannot be stopped at on cue: the service dies after the audit service
/// stored a delivery and before the service marked it delivered. Every mark of `service`'s outbox
/// is lost; the relay sends every event again. Returns how many were unmarked.
async fn lose_delivery_marks(stores: &Stores, service: &str) -> usize {
    query(stores.of(service), &format!("unmarking {service}'s outbox"), |conn| {
        diesel::update(outbox::table).set(outbox::delivered_at.eq(None::<NaiveDateTime>)).execute(conn)
    })
    .await
}

/// How many delivery attempts each event of each outbox has had.
async fn outbox_attempts(stores: &Stores) -> BTreeMap<&'static str, BTreeMap<String, i32>> {
    let mut all = BTreeMap::new();
    for service in SOURCES {
        let rows: Vec<(String, i32)> = query(stores.of(service), &format!("reading {service}'s attempts"), |conn| {
            outbox::table.select((outbox::id, outbox::attempts)).load(conn)
        })
        .await;
        all.insert(service, rows.into_iter().collect());
    }
    all
}

/// The same for vendors' messages to identity: each is sent to identity again.
async fn lose_message_marks(stores: &Stores) -> usize {
    query(&stores.vendors, "unmarking vendors' messages to identity", |conn| {
        diesel::update(identity_messages::table)
            .set(identity_messages::delivered_at.eq(None::<NaiveDateTime>))
            .execute(conn)
    })
    .await
}

/// One of vendors' messages to identity, as vendors stored it.
#[derive(Debug, Clone)]
struct Message {
    id: String,
    kind: String,
    delivered: bool,
    rejected: bool,
    attempts: i32,
    last_error: Option<String>,
}

/// A row of `identity_messages`: id, kind, delivered_at, rejected_at, attempts, last_error.
type MessageRow = (String, String, Option<NaiveDateTime>, Option<NaiveDateTime>, i32, Option<String>);

async fn messages_to_identity(stores: &Stores) -> Vec<Message> {
    let rows: Vec<MessageRow> = query(&stores.vendors, "reading vendors' messages to identity", |conn| {
        identity_messages::table
            .order(identity_messages::id.asc())
            .select((
                identity_messages::id,
                identity_messages::kind,
                identity_messages::delivered_at,
                identity_messages::rejected_at,
                identity_messages::attempts,
                identity_messages::last_error,
            ))
            .load(conn)
    })
    .await;
    rows.into_iter()
        .map(|(id, kind, delivered, rejected, attempts, last_error)| Message {
            id: canonical_uuid(&id),
            kind,
            delivered: delivered.is_some(),
            rejected: rejected.is_some(),
            attempts,
            last_error,
        })
        .collect()
}

fn canonical_uuid(id: &str) -> String {
    uuid::Uuid::parse_str(id).map(|u| u.to_string()).unwrap_or_else(|_| id.to_owned())
}

/// Waits (bounded) until vendors has delivered every message to identity, then checks that
/// identity took each exactly once and of the same kind, and that none was set aside. Returns how
/// many messages there were.
async fn every_message_taken_once(stores: &Stores, when: &str) -> usize {
    let started = Instant::now();
    let written = loop {
        let written = messages_to_identity(stores).await;
        if written.iter().all(|m| m.delivered || m.rejected) {
            break written;
        }
        assert!(
            started.elapsed() < DRAIN_WITHIN,
            "{when}: vendors' messages not delivered to identity within {DRAIN_WITHIN:?}: {:?}",
            written.iter().filter(|m| !m.delivered).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rejected: Vec<&Message> = written.iter().filter(|m| m.rejected).collect();
    assert!(rejected.is_empty(), "{when}: identity refused messages: {rejected:?}");
    let taken: Vec<(String, String)> = query(&stores.identity, "reading identity's personnel messages", |conn| {
        personnel_messages::table.select((personnel_messages::id, personnel_messages::kind)).load(conn)
    })
    .await;
    let mut taken_kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, kind) in taken {
        taken_kinds.entry(canonical_uuid(&id)).or_default().push(kind);
    }
    for message in &written {
        assert_eq!(
            taken_kinds.get(&message.id),
            Some(&vec![message.kind.clone()]),
            "{when}: identity took message {} ({}) exactly once",
            message.id,
            message.kind
        );
    }
    let unknown: Vec<&String> = taken_kinds.keys().filter(|id| !written.iter().any(|m| &m.id == *id)).collect();
    assert!(unknown.is_empty(), "{when}: identity took messages vendors never wrote: {unknown:?}");
    written.len()
}

/// How often the account of `username` was cancelled as offboarded contractor personnel: its
/// account events, and its records in the audit log.
async fn offboardings_of(stores: &Stores, username: &'static str) -> (usize, usize) {
    let user_id: String = query(&stores.identity, "finding the user", move |conn| {
        users::table.filter(users::username.eq(username)).select(users::id).first(conn)
    })
    .await;
    let events: i64 = query(&stores.identity, "counting account events", {
        let user_id = user_id.clone();
        move |conn| {
            account_events::table
                .filter(account_events::user_id.eq(user_id))
                .filter(account_events::kind.eq("contractor_offboarded"))
                .count()
                .get_result(conn)
        }
    })
    .await;
    let payloads: Vec<String> = query(&stores.audit, "reading offboarding records", |conn| {
        audit_records::table
            .filter(audit_records::kind.eq("account.contractor_offboarded"))
            .select(audit_records::payload)
            .load(conn)
    })
    .await;
    let records = payloads
        .iter()
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .filter(|p| p["account_user_id"].as_str() == Some(user_id.as_str()))
        .count();
    (usize::try_from(events).unwrap_or(usize::MAX), records)
}

/// Issues a checkpoint now (cosigned by the witness), then checks the whole log with the audit
/// service's verification: the chain, the tree, the latest checkpoint and the witness's. Returns the
/// number of records verified.
async fn the_log_verifies(t: &TestStack, token: &str, when: &str) -> i64 {
    let issued = t.post(token, "/v1/audit/checkpoints", &Value::Null).await;
    assert!(issued.status().is_success(), "{when}: issuing a checkpoint: {}", issued.status());
    let checkpoint: Value = issued.json().await.expect("checkpoint");
    assert!(checkpoint["witnessed_at"].is_string(), "{when}: the witness cosigned the checkpoint: {checkpoint}");
    let verified: Value = t.get(token, "/v1/audit/verify").await.json().await.expect("verification");
    assert_eq!(verified["ok"], true, "{when}: {verified}");
    assert_eq!(
        verified["checkpoint"]["ok"], true,
        "{when}: the latest checkpoint is the tree of the records: {verified}"
    );
    assert_eq!(verified["witnessed"], true, "{when}: the witness's checkpoint is the tree of the records: {verified}");
    let size = checkpoint["tree_size"].as_i64().expect("tree_size");
    let records = verified["records"].as_i64().expect("records");
    assert!(records >= size, "{when}: {records} records verified, the checkpoint covers {size}");
    records
}

// ---------------------------------------------------------------------------------------------
// Driving auditable acts.

async fn created(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "{what}: {body}");
    body
}

async fn ok(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

/// A vendor of TPE-SW with an active contract; returns (vendor, contract).
async fn vendor_with_contract(t: &TestStack, manager: &str) -> (String, String) {
    let body = json!({ "name": "臺灣資訊服務股份有限公司", "business_number": "22099131" });
    let vendor = created(t.post(manager, "/v1/vendors", &body).await, "registering a vendor").await;
    let vendor_id = vendor["id"].as_str().expect("vendor id").to_owned();
    let today = immilink_shared::clock::business_date(chrono::Utc::now());
    let contract = json!({ "title": "社政系統維運", "scope": "系統維護", "starts_on": today.to_string(),
        "ends_on": (today + chrono::Duration::days(365)).to_string(), "custom_development": false });
    let contract =
        created(t.post(manager, &format!("/v1/vendors/{vendor_id}/contracts"), &contract).await, "a contract").await;
    let contract_id = contract["id"].as_str().expect("contract id").to_owned();
    let activation = format!("/v1/vendors/{vendor_id}/contracts/{contract_id}/activation");
    ok(t.post(manager, &activation, &json!({})).await, "activating the contract").await;
    (vendor_id, contract_id)
}

/// Puts the demo contractor engineer (`tpe.vendorstaff`, who holds an account) on the contract,
/// checked and sworn; returns the path of their personnel record.
async fn staff_on_contract(t: &TestStack, manager: &str, vendor_id: &str, contract_id: &str) -> String {
    let national_id = demo_national_id_of("tpe.vendorstaff").expect("the demo engineer's ID");
    let body =
        json!({ "national_id": national_id, "name": "簡維運", "job_title": "維運工程師", "contract_id": contract_id });
    let person =
        created(t.post(manager, &format!("/v1/vendors/{vendor_id}/personnel"), &body).await, "adding the engineer")
            .await;
    let path = format!("/v1/vendors/{vendor_id}/personnel/{}", person["id"].as_str().expect("person id"));
    let today = immilink_shared::clock::business_date(chrono::Utc::now()).to_string();
    let check = json!({ "status": "passed", "checked_on": today, "checker": "人事室" });
    ok(t.post(manager, &format!("{path}/suitability-check"), &check).await, "the suitability check").await;
    let agreement = json!({ "signed_on": today, "reference": "保密切結書 115-001" });
    ok(t.post(manager, &format!("{path}/agreement"), &agreement).await, "the agreement").await;
    path
}

async fn unit_of(t: &TestStack, agency: &str) -> String {
    let agencies: Value = t.http.get(t.url("/v1/agencies")).send().await.expect("agencies").json().await.expect("body");
    let agency = agencies.as_array().and_then(|a| a.iter().find(|a| a["code"] == agency)).expect("agency listed");
    agency["units"][0]["id"].as_str().expect("unit id").to_owned()
}

/// Identity's acts: an account application through its reviews to a first login and a logout;
/// failed logins; Hualien's link suspended, its resumption asked for and approved.
async fn identity_acts(t: &TestStack, tokens: &Tokens) {
    let password = "a-long-passphrase-2026";
    let application = json!({
        "agency_code": "TPE-SW", "unit_id": unit_of(t, "TPE-SW").await, "username": "tpe.newcomer",
        "display_name": "新同仁", "national_id": synthetic_national_id(900_001),
        "email": "tpe.newcomer@example.gov.tw", "password": password, "certificate_serial": "CERT-tpe-newcomer",
        "legal_basis": "social_assistance_act", "business_handled": "低收入戶資格審查",
        "grants": [{ "query_type": "entry_exit_last_year", "purpose_code": "sw_statutory_business" }]
    });
    let submitted = t.http.post(t.url("/v1/account-applications")).json(&application).send().await.expect("apply");
    let submitted = created(submitted, "an account application").await;
    let id = submitted["application_id"].as_str().expect("application id");
    let review = json!({ "decision": "approve", "reason": "業務需要" });
    for reviewer in [&tokens.supervisor, &tokens.manager] {
        let path = format!("/v1/account-applications/{id}/reviews");
        ok(t.post(reviewer, &path, &review).await, "reviewing the application").await;
    }
    let newcomer = t.login_with("tpe.newcomer", password, "CERT-tpe-newcomer").await;
    assert_eq!(t.post(&newcomer, "/v1/lookups", &permitted_lookup()).await.status(), 200, "the newcomer's lookup");
    assert_eq!(t.post(&newcomer, "/v1/auth/logout", &Value::Null).await.status(), 204, "logging out");
    for _ in 0..2 {
        let refused = t.login_response(&t.http, "tpe.auditor", "not-the-password", "DEMO-tpe.auditor").await;
        assert_eq!(refused.status(), 401, "a wrong password");
    }
    let links: Value = t.get(&tokens.reviewer, "/v1/agency-links").await.json().await.expect("links");
    let link = links.as_array().and_then(|l| l.iter().find(|l| l["agency_code"] == "HLN-HR")).expect("Hualien's link");
    let link = link["id"].as_str().expect("link id").to_owned();
    let suspension = json!({ "reason": "稽核發現異常" });
    ok(t.post(&tokens.reviewer, &format!("/v1/agency-links/{link}/suspension"), &suspension).await, "suspending").await;
    let asked = json!({ "remediation": "已限制批次查詢" });
    let path = format!("/v1/agency-links/{link}/resumption-requests");
    let request = created(t.post(&tokens.hln_manager, &path, &asked).await, "asking for resumption").await;
    let decision = format!("{path}/{}/decision", request["id"].as_str().expect("request id"));
    ok(t.post(&tokens.reviewer, &decision, &json!({ "decision": "approve" })).await, "approving resumption").await;
}

/// The users whose acts the tests drive, logged in while identity and audit are up.
struct Tokens {
    caseworker: String,
    vendors: String,
    supervisor: String,
    manager: String,
    reviewer: String,
    hln_manager: String,
}

impl Tokens {
    async fn log_in(t: &TestStack) -> Self {
        Self {
            caseworker: t.login("tpe.caseworker").await,
            vendors: t.login("tpe.vendors").await,
            supervisor: t.login("tpe.supervisor").await,
            manager: t.login("tpe.manager").await,
            reviewer: t.login("nia.reviewer").await,
            hln_manager: t.login("hln.manager").await,
        }
    }
}

/// What the background traffic got back: per kind of act, per status (0: no answer).
type Statuses = BTreeMap<(&'static str, u16), usize>;

/// Background traffic through the gateway until `stop`: the caseworker's lookups (broker), logins
/// of the ethics officer (identity), and contractor personnel registered with the vendor (vendors,
/// each a `registered` message to identity). Each act is its own bounded request on its own
/// client, so a killed service's cut connections spoil nothing else.
fn traffic(
    t: &TestStack,
    tokens: &Tokens,
    vendor_id: &str,
    stop: Arc<AtomicBool>,
) -> actix_web::rt::task::JoinHandle<Statuses> {
    let statuses = Arc::new(Mutex::new(Statuses::new()));
    let next_person = Arc::new(AtomicU32::new(700_000));
    let acts: [(&'static str, String, Option<String>); 3] = [
        ("lookup", t.url("/v1/lookups"), Some(tokens.caseworker.clone())),
        ("login", t.url("/v1/auth/login"), None),
        ("personnel", t.url(&format!("/v1/vendors/{vendor_id}/personnel")), Some(tokens.vendors.clone())),
    ];
    let mut tasks = Vec::new();
    for (act, url, token) in acts {
        let (stop, statuses, next_person) = (Arc::clone(&stop), Arc::clone(&statuses), Arc::clone(&next_person));
        tasks.push(actix_web::rt::spawn(async move {
            let http = client(None);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let body = match act {
                    "lookup" => permitted_lookup(),
                    "login" => json!({ "username": "tpe.ethics", "password": DEMO_PASSWORD,
                                        "certificate_serial": "DEMO-tpe.ethics" }),
                    _ => json!({ "national_id": synthetic_national_id(next_person.fetch_add(1, Ordering::SeqCst)),
                                 "name": format!("外包人員{n}") }),
                };
                let mut request = http.post(&url).json(&body);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let status = request.send().await.map_or(0, |r| r.status().as_u16());
                *statuses.lock().expect("statuses").entry((act, status)).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        }));
    }
    actix_web::rt::spawn(async move {
        for task in tasks {
            task.await.expect("a traffic client");
        }
        let statuses = statuses.lock().expect("statuses").clone();
        statuses
    })
}

fn answered(statuses: &Statuses, act: &str) -> usize {
    statuses.iter().filter(|((a, status), _)| *a == act && (200..300).contains(status)).map(|(_, n)| n).sum()
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// The audit service is stopped; identity, vendors and the broker go on recording into their
/// outboxes: account applications and reviews, logins and failed logins, a logout, a link
/// suspended and resumed; a vendor, its contract and personnel (each a `registered` message to
/// identity), a departure (`offboarded`: the engineer's account is cancelled); lookups. While audit
/// is away, each of identity, vendors and the broker is killed and restarted under traffic. Audit
/// comes back: every outbox event is in the log exactly once, and the log verifies. Then every
/// delivery mark is lost (as when a service dies between the audit's answer and its mark) and
/// everything is delivered again: still exactly once, nothing applied twice, and the log verifies.
#[actix_web::test]
async fn every_outbox_event_reaches_the_log_exactly_once_after_audit_and_each_service_went_down() {
    let mut t = TestStack::spawn_with(Options { adjust: busy_bounds, ..Options::default() }).await;
    let began = Instant::now();
    let ended = within(TEST_LIMIT, async {
        let stores = Stores::open(&t).await;
        let tokens = Tokens::log_in(&t).await;
        let (vendor_id, contract_id) = vendor_with_contract(&t, &tokens.vendors).await;
        let staff = staff_on_contract(&t, &tokens.vendors, &vendor_id, &contract_id).await;
        t.login("tpe.vendorstaff").await;

        step("killing audit", Duration::from_secs(20), t.stack.kill("audit")).await;
        let audit_down = Instant::now();
        identity_acts(&t, &tokens).await;
        for n in 0..3 {
            let body = json!({ "national_id": synthetic_national_id(800_000 + n), "name": "外包工程師" });
            created(t.post(&tokens.vendors, &format!("/v1/vendors/{vendor_id}/personnel"), &body).await, "personnel")
                .await;
        }
        ok(t.post(&tokens.vendors, &format!("{staff}/departure"), &json!({})).await, "the engineer's departure").await;
        for _ in 0..3 {
            assert_eq!(t.post(&tokens.caseworker, "/v1/lookups", &permitted_lookup()).await.status(), 200, "a lookup");
        }

        // Each service killed and started again under traffic, audit still away.
        let stop = Arc::new(AtomicBool::new(false));
        let background = traffic(&t, &tokens, &vendor_id, Arc::clone(&stop));
        for service in ["identity", "vendors", "broker"] {
            tokio::time::sleep(Duration::from_millis(700)).await;
            step(&format!("killing {service}"), Duration::from_secs(20), t.stack.kill(service)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            step(&format!("restarting {service}"), Duration::from_secs(30), t.stack.restart(service))
                .await
                .unwrap_or_else(|err| panic!("{service} restarts: {err}"));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::SeqCst);
        let statuses = step("the traffic to finish", Duration::from_secs(40), background).await.expect("traffic");
        for act in ["lookup", "login", "personnel"] {
            assert!(answered(&statuses, act) > 0, "{act}s were answered around the restarts: {statuses:?}");
        }
        assert!(
            statuses.keys().any(|(_, status)| !(200..300).contains(status)),
            "the kills cut requests off: {statuses:?}"
        );

        // Nothing reached the log while it was away: every outbox holds its events undelivered.
        let waiting = outboxes(&stores).await;
        for service in SOURCES {
            let undelivered = waiting[service].values().filter(|delivered| !**delivered).count();
            assert!(undelivered > 0, "{service}'s events wait in its outbox while audit is down");
        }
        let down_for = audit_down.elapsed();
        step("restarting audit", Duration::from_secs(30), t.stack.restart("audit")).await.expect("audit restarts");
        let audit_back = Instant::now();
        // Messages first: identity records what it applies in its outbox, in the same transaction.
        let messages = every_message_taken_once(&stores, "after audit came back").await;
        let back = every_event_in_the_log_once(&stores, "after audit came back", audit_back).await;
        assert_eq!(offboardings_of(&stores, "tpe.vendorstaff").await, (1, 1), "the engineer's account, cancelled once");
        let refused = t.login_response(&t.http, "tpe.vendorstaff", DEMO_PASSWORD, "DEMO-tpe.vendorstaff").await;
        assert_eq!(refused.status(), 401, "the departed engineer cannot log in");
        let verified = the_log_verifies(&t, &tokens.manager, "after audit came back").await;

        // Every delivery mark lost: everything goes again, and is stored and applied once.
        let attempts_before = outbox_attempts(&stores).await;
        let marks_lost = Instant::now();
        let mut unmarked = BTreeMap::new();
        for service in SOURCES {
            unmarked.insert(service, lose_delivery_marks(&stores, service).await);
        }
        let messages_before = messages_to_identity(&stores).await;
        let resent_messages = lose_message_marks(&stores).await;
        assert_eq!(every_message_taken_once(&stores, "after every mark was lost").await, messages);
        let messages_after = messages_to_identity(&stores).await;
        for (before, after) in messages_before.iter().zip(&messages_after) {
            assert!(before.id == after.id && after.attempts > before.attempts, "sent to identity again: {after:?}");
        }
        let again = every_event_in_the_log_once(&stores, "after every mark was lost", marks_lost).await;
        assert_eq!(offboardings_of(&stores, "tpe.vendorstaff").await, (1, 1), "redelivered, still cancelled once");
        // Each unmarked event was sent again (one more attempt), and the log took none of them twice.
        let attempts_after = outbox_attempts(&stores).await;
        let mut resent = 0;
        for (service, before) in &attempts_before {
            for (id, attempts) in before {
                assert!(attempts_after[service][id] > *attempts, "{service}'s event {id} was delivered again");
                resent += 1;
            }
        }
        let reverified = the_log_verifies(&t, &tokens.manager, "after every mark was lost").await;
        eprintln!(
            "outbox faults (audit down {down_for:?}, identity, vendors and broker restarted): traffic {statuses:?}; \
             recorded {:?}, log {} records, duplicates {}, drained {:?} after audit's return; {messages} messages \
             to identity taken once; verified {verified} records. Marks lost {unmarked:?} and {resent_messages} \
             messages: {resent} events sent again, all delivered {:?} after the marks were lost, recorded {:?}, log \
             {} records, duplicates {}, verified {reverified}; total {:?}",
            back.recorded,
            back.log,
            back.duplicates,
            back.drained_in,
            again.drained_in,
            again.recorded,
            again.log,
            again.duplicates,
            began.elapsed()
        );
        assert!(unmarked.values().all(|n| *n > 0) && resent_messages > 0, "marks were lost: {unmarked:?}");
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// Waits (bounded) until vendors' last message of `kind` is delivered to identity; returns it.
async fn last_message_delivered(stores: &Stores, kind: &str, limit: Duration) -> Message {
    let started = Instant::now();
    loop {
        let messages = messages_to_identity(stores).await;
        let last = messages.into_iter().rfind(|m| m.kind == kind).expect("the message is written");
        if last.delivered {
            return last;
        }
        assert!(started.elapsed() < limit, "the {kind} message still waits after {limit:?}: {last:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Identity's and vendors' databases are cut under traffic, one after the other, audit up
/// (PostgreSQL: their connections dropped and new ones refused; SQLite: another writer holds the
/// lock). While identity's is cut, vendors records the engineer's departure: its message cannot be
/// applied until identity has its database back, and then is applied once. After both: every outbox
/// event is in the log exactly once, every message to identity was taken once, and the log verifies.
#[actix_web::test]
async fn every_outbox_event_reaches_the_log_exactly_once_after_identity_and_vendors_lost_their_databases() {
    fn bounds(config: &mut immilink_stack::StackConfig) {
        sessions_outlast_identity(config);
        for database in [&mut config.identity.service.database, &mut config.vendors.service.database] {
            database.connect_timeout = Duration::from_secs(2);
            database.postgres.statement = Duration::from_secs(3);
        }
    }
    let t =
        TestStack::spawn_with(Options { adjust: bounds, cuttable_dbs: &["identity", "vendors"], ..Options::default() })
            .await;
    let began = Instant::now();
    let ended = within(TEST_LIMIT, async {
        let stores = Stores::open(&t).await;
        let postgres = t.db_is_postgres("identity");
        let tokens = Tokens::log_in(&t).await;
        let (vendor_id, contract_id) = vendor_with_contract(&t, &tokens.vendors).await;
        let staff = staff_on_contract(&t, &tokens.vendors, &vendor_id, &contract_id).await;
        t.login("tpe.vendorstaff").await;
        let stop = Arc::new(AtomicBool::new(false));
        let background = traffic(&t, &tokens, &vendor_id, Arc::clone(&stop));
        tokio::time::sleep(Duration::from_millis(700)).await;

        t.cut_db("vendors").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        t.restore_db("vendors").await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        t.cut_db("identity").await;
        let cut = Instant::now();
        ok(t.post(&tokens.vendors, &format!("{staff}/departure"), &json!({})).await, "the departure").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let waiting = messages_to_identity(&stores).await;
        let offboarded = waiting.iter().rfind(|m| m.kind == "offboarded").expect("the departure's message");
        assert!(!offboarded.delivered, "not applied while identity has no database: {offboarded:?}");
        t.restore_db("identity").await;
        let restored = Instant::now();
        let applied = last_message_delivered(&stores, "offboarded", Duration::from_secs(20)).await;
        let took = restored.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        let statuses = step("the traffic to finish", Duration::from_secs(40), background).await.expect("traffic");
        for act in ["lookup", "login", "personnel"] {
            assert!(answered(&statuses, act) > 0, "{act}s were answered around the cuts: {statuses:?}");
        }
        if postgres {
            // Closed connections fail at once: some requests were refused, none hung.
            assert!(statuses.keys().any(|(_, status)| *status >= 500), "refused while cut: {statuses:?}");
            assert!(!statuses.contains_key(&("lookup", 0)) && !statuses.contains_key(&("login", 0)), "{statuses:?}");
        }

        let messages = every_message_taken_once(&stores, "after the database cuts").await;
        let tally = every_event_in_the_log_once(&stores, "after the database cuts", restored).await;
        assert_eq!(offboardings_of(&stores, "tpe.vendorstaff").await, (1, 1), "the engineer's account, cancelled once");
        let refused = t.login_response(&t.http, "tpe.vendorstaff", DEMO_PASSWORD, "DEMO-tpe.vendorstaff").await;
        assert_eq!(refused.status(), 401, "the departed engineer cannot log in");
        let verified = the_log_verifies(&t, &tokens.manager, "after the database cuts").await;
        eprintln!(
            "database cuts ({}): traffic {statuses:?}; the departure's message (attempts {}, cut {:?} before the \
             restore) applied {took:?} after identity had its database back; recorded {:?}, log {} records, \
             duplicates {}, all delivered {:?} after the restore; {messages} messages to identity taken once; verified {verified}; total {:?}",
            if postgres { "PostgreSQL" } else { "SQLite" },
            applied.attempts,
            restored - cut,
            tally.recorded,
            tally.log,
            tally.duplicates,
            tally.drained_in,
            began.elapsed()
        );
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// R-VEN-06 across an identity outage: identity is down when vendors records the engineer's
/// departure. The `offboarded` message waits in vendors' outbox, tried and kept with its error;
/// once identity is back it is applied: the engineer's account cancelled, with one account event
/// and one audit record. Its delivery mark then lost, it goes again and changes nothing.
#[actix_web::test]
async fn r_ven_06_a_departure_recorded_while_identity_is_down_cancels_the_account_once_identity_is_back() {
    let mut t = TestStack::spawn_with(Options { adjust: sessions_outlast_identity, ..Options::default() }).await;
    let ended = within(TEST_LIMIT, async {
        let stores = Stores::open(&t).await;
        let tokens = Tokens::log_in(&t).await;
        let (vendor_id, contract_id) = vendor_with_contract(&t, &tokens.vendors).await;
        let staff = staff_on_contract(&t, &tokens.vendors, &vendor_id, &contract_id).await;
        let engineer = t.login("tpe.vendorstaff").await;
        assert_eq!(t.get(&engineer, "/v1/me").await.status(), 200);
        // The vendor manager's session was just checked by the gateway and by vendors.
        assert_eq!(t.get(&tokens.vendors, "/v1/vendors").await.status(), 200);
        assert_eq!(t.post(&tokens.caseworker, "/v1/lookups", &permitted_lookup()).await.status(), 200, "a lookup");

        step("killing identity", Duration::from_secs(20), t.stack.kill("identity")).await;
        ok(t.post(&tokens.vendors, &format!("{staff}/departure"), &json!({})).await, "the departure").await;
        let recorded = Instant::now();
        let tried = loop {
            let messages = messages_to_identity(&stores).await;
            let message = messages.into_iter().rfind(|m| m.kind == "offboarded").expect("the departure's message");
            assert!(!message.delivered, "delivered with identity down: {message:?}");
            if message.attempts > 0 && message.last_error.is_some() {
                break message;
            }
            assert!(recorded.elapsed() < Duration::from_secs(10), "the relay tried identity: {message:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let kept = messages_to_identity(&stores).await.into_iter().find(|m| m.id == tried.id).expect("kept");
        assert!(!kept.delivered && kept.attempts >= tried.attempts, "kept while identity is down: {kept:?}");

        step("restarting identity", Duration::from_secs(30), t.stack.restart("identity"))
            .await
            .expect("identity restarts");
        let back = Instant::now();
        let applied = last_message_delivered(&stores, "offboarded", Duration::from_secs(15)).await;
        let took = back.elapsed();
        assert_eq!(applied.id, tried.id);
        let refused = t.login_response(&t.http, "tpe.vendorstaff", DEMO_PASSWORD, "DEMO-tpe.vendorstaff").await;
        assert_eq!(refused.status(), 401, "the departed engineer cannot log in");
        let messages = every_message_taken_once(&stores, "after identity came back").await;
        let tally = every_event_in_the_log_once(&stores, "after identity came back", back).await;
        assert_eq!(offboardings_of(&stores, "tpe.vendorstaff").await, (1, 1), "the engineer's account, cancelled once");

        // The mark is lost: the message goes to identity again, which takes it as a duplicate.
        assert_eq!(lose_message_marks(&stores).await, messages);
        let mark_lost = Instant::now();
        every_message_taken_once(&stores, "after the mark was lost").await;
        let again = every_event_in_the_log_once(&stores, "after the mark was lost", mark_lost).await;
        assert_eq!(offboardings_of(&stores, "tpe.vendorstaff").await, (1, 1), "redelivered, still cancelled once");
        let redelivered = messages_to_identity(&stores).await.into_iter().find(|m| m.id == tried.id).expect("kept");
        assert!(redelivered.attempts > applied.attempts, "sent again: {redelivered:?}");
        let verified = the_log_verifies(&t, &tokens.manager, "after identity came back").await;
        eprintln!(
            "identity down during a departure: the message was tried {} times while identity was down ({:?}), \
             applied {took:?} after identity's restart; {messages} messages taken once; recorded {:?}, log {}, \
             duplicates {}; after the lost mark (attempts {}): recorded {:?}, duplicates {}; verified {verified}",
            kept.attempts,
            kept.last_error,
            tally.recorded,
            tally.log,
            tally.duplicates,
            redelivered.attempts,
            again.recorded,
            again.duplicates
        );
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}
