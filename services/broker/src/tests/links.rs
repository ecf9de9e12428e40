//! R-LINK at the broker's edge: a lookup, a bulk job's submission, a running bulk job and a purpose
//! approval (the purpose must be one the link carries), against a
//! fake identity (its `GET /v1/me` and `GET /internal/v1/users/{id}` answers set by each test) and a
//! fake upstream that counts what reaches it, on the broker's real database (SQLite, or PostgreSQL
//! with TEST_DATABASE_URL). The handlers are driven below token verification (the caller is given as
//! identity's token would name it): what is under test is what the broker does with identity's answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::Utc;
use diesel::prelude::*;
use immilink_shared::auth::{AccessClaims, ServiceTokens, AUDIENCE, ISSUER};
use immilink_shared::clock::system_clock;
use immilink_shared::config::{NamedSecrets, Secret};
use immilink_shared::db::{Db, DbSettings};
use immilink_shared::events::kind;
use immilink_shared::extractors::Authenticated;
use immilink_shared::outbox;
use immilink_shared::testing::TestDb;
use serde_json::{json, Value};

use crate::domain::approvals::{ApprovalStatus, Decision};
use crate::domain::batches::{BatchStatus, ItemStatus};
use crate::domain::{BatchId, PurposeApprovalId};
use crate::identity_client::IdentityClient;
use crate::journal::Journal;
use crate::limits::LookupLimits;
use crate::pipeline::Lookups;
use crate::routes::{batches, lookups, purpose_approvals};
use crate::schema::{batch_items, batches as batch_rows, lookups as lookup_rows, purpose_approvals as approval_rows};
use crate::upstream::{NiaClient, UpstreamSettings};
use crate::{State, MIGRATIONS};

const USER: &str = "0190f5c2-7a10-7000-8000-000000000001";
const SUPERVISOR: &str = "0190f5c2-7a10-7000-8000-000000000002";
const SUSPENDED: &str = "TPE-SW's link is suspended since 2026-12-03: remediation of the 2026-10 findings overdue";

/// What the fake identity answers; each test sets it.
struct Identity {
    me: Mutex<Value>,
    user: Mutex<Value>,
}

/// A fake service on a port of its own.
async fn serve<F>(routes: F) -> String
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("a port for a fake service");
    let url = format!("http://{}", server.addrs()[0]);
    actix_web::rt::spawn(server.run());
    url
}

async fn fake_identity(identity: Arc<Identity>) -> String {
    let data = web::Data::from(identity);
    serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .route(
                "/v1/me",
                web::get().to(|identity: web::Data<Identity>| async move {
                    HttpResponse::Ok().json(identity.me.lock().unwrap().clone())
                }),
            )
            .route(
                "/internal/v1/users/{id}",
                web::get().to(|identity: web::Data<Identity>| async move {
                    HttpResponse::Ok().json(identity.user.lock().unwrap().clone())
                }),
            );
    })
    .await
}

/// An upstream that answers every query with a found record, and counts them.
async fn fake_upstream(queries: Arc<AtomicUsize>) -> String {
    let data = web::Data::from(queries);
    serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone()).default_service(web::to(|queries: web::Data<AtomicUsize>| async move {
            queries.fetch_add(1, Ordering::SeqCst);
            HttpResponse::Ok().json(json!({
                "subject_id": "A123456789", "query_type": "entry_exit_last_year", "found": true,
                "period_from": "2025-12-03", "period_to": "2026-12-03", "currently_in_taiwan": true, "crossings": []
            }))
        }));
    })
    .await
}

/// The broker's state as `Application::build` assembles it, against the fakes; the audit relay is
/// never run (the tests read the outbox itself), identity's answers are not cached.
struct Broker {
    state: web::Data<State>,
    db: Db,
    identity: Arc<Identity>,
    upstream_queries: Arc<AtomicUsize>,
    _test_db: TestDb,
}

impl Broker {
    async fn start() -> Self {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database");
        let identity = Arc::new(Identity { me: Mutex::new(me(usable_link())), user: Mutex::new(user(usable_link())) });
        let upstream_queries = Arc::new(AtomicUsize::new(0));
        let identity_url = fake_identity(Arc::clone(&identity)).await;
        let upstream_url = fake_upstream(Arc::clone(&upstream_queries)).await;
        let (clock, http) = (system_clock(), immilink_shared::server::outbound_client().expect("a client"));
        let tokens = Arc::new(ServiceTokens::local(|| Ok("a-service-token".into())));
        let relay = outbox::Relay::new(db.clone(), clock.clone(), http.clone(), "http://127.0.0.1:0", tokens.clone());
        let nia = NiaClient::new(
            http.clone(),
            UpstreamSettings {
                base_url: upstream_url,
                agency_keys: NamedSecrets::default(),
                fallback_key: Some(Secret::new("an-upstream-key")),
                timeout: Duration::from_secs(5),
                connect_retries: 0,
                breaker_failures: 5,
                breaker_open_for: Duration::from_secs(15),
            },
        );
        let journal = Journal::start(db.clone(), clock.clone()).expect("the journal");
        let state = web::Data::new(State {
            db: db.clone(),
            clock: clock.clone(),
            identity: IdentityClient::new(http, &identity_url, tokens, Duration::ZERO),
            lookups: Arc::new(Lookups::new(journal, nia, relay.clone(), clock, chrono::Duration::seconds(60))),
            relay,
            limits: LookupLimits::new(120, 6000),
            batch_wake: Arc::default(),
        });
        Self { state, db, identity, upstream_queries, _test_db: test_db }
    }

    /// From now on, identity reports the agency's link as `link` (`None`: not at all).
    fn link_is(&self, link: Option<Value>) {
        *self.identity.me.lock().unwrap() = me(link.clone());
        *self.identity.user.lock().unwrap() = user(link);
    }

    fn forwarded(&self) -> usize {
        self.upstream_queries.load(Ordering::SeqCst)
    }

    fn lookups_recorded(&self) -> i64 {
        lookup_rows::table.count().get_result(&mut self.db.get().unwrap()).unwrap()
    }

    /// The payloads of the outbox's events of `kind`.
    fn events(&self, kind: &str) -> Vec<Value> {
        let pending = outbox::pending(&mut self.db.get().unwrap(), 1000).unwrap();
        pending.into_iter().filter(|e| e.kind == kind).map(|e| e.payload).collect()
    }

    async fn look_up(&self) -> Result<lookups::LookupResponse, immilink_shared::problem::Problem> {
        let body = lookups::LookupBody {
            query_type: Some("entry_exit_last_year".into()),
            subject_id: Some("A123456789".into()),
            legal_basis: Some("social_assistance_act".into()),
            purpose_code: Some("sw_statutory_business".into()),
            case_number: Some("TPE-SW-2026-000123".into()),
            ..lookups::LookupBody::default()
        };
        let req = actix_web::test::TestRequest::post().uri("/v1/lookups").to_http_request();
        lookups::look_up(&req, &self.state, &caseworker(), body).await.map_err(|err| err.to_problem())
    }

    async fn submit_batch(&self) -> Result<batches::BatchAccepted, immilink_shared::problem::Problem> {
        let body = json!({
            "query_type": "entry_exit_last_year", "legal_basis": "social_assistance_act",
            "purpose_code": "sw_statutory_business", "case_number": "TPE-SW-2026-000123",
            "subject_ids": ["A123456789", "F131104093", "A123456789"]
        });
        let req = actix_web::test::TestRequest::post()
            .uri("/v1/batches")
            .insert_header(("content-type", "application/json"))
            .to_http_request();
        batches::submit(&req, &self.state, &caseworker(), body.to_string().as_bytes())
            .await
            .map_err(|err| err.to_problem())
    }
}

fn caseworker() -> Authenticated {
    let now = Utc::now().timestamp();
    Authenticated {
        claims: AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: USER.into(),
            sid: "session-1".into(),
            agency: "TPE-SW".into(),
            unit: Some("unit-a".into()),
            roles: vec!["caseworker".into()],
            iat: now,
            exp: now + 600,
        },
        token: "the-caseworkers-token".into(),
    }
}

/// The caseworker's unit supervisor.
fn supervisor() -> Authenticated {
    let mut supervisor = caseworker();
    supervisor.claims.sub = SUPERVISOR.into();
    supervisor.claims.sid = "session-2".into();
    supervisor.claims.roles = vec!["unit_supervisor".into()];
    supervisor.token = "the-supervisors-token".into();
    supervisor
}

fn permissions() -> Value {
    json!([{"legal_basis": "social_assistance_act", "purpose_code": "sw_statutory_business",
            "query_type": "entry_exit_last_year"}])
}

/// Identity's `GET /v1/me`: the permissions are empty whenever the link is refused (identity's
/// contract), and `link` is left out when `None` (an identity that does not report links).
fn me(link: Option<Value>) -> Value {
    let refused = link.as_ref().is_some_and(|l| !l["refusal"].is_null());
    let mut me = json!({"user_id": USER, "permissions": if refused { json!([]) } else { permissions() }});
    if let Some(link) = link {
        me["link"] = link;
    }
    me
}

/// Identity's `GET /internal/v1/users/{id}` for the caseworker, active in TPE-SW.
fn user(link: Option<Value>) -> Value {
    let mut user = me(link);
    let summary = json!({"username": "tpe.caseworker", "display_name": "王社工", "agency": "TPE-SW",
                         "unit": "unit-a", "status": "active", "roles": ["caseworker"]});
    user.as_object_mut().unwrap().extend(summary.as_object().unwrap().clone());
    user
}

fn usable_link() -> Option<Value> {
    Some(json!({"refusal": null, "query_types": ["entry_exit_last_year", "eid_photo"]}))
}

fn refused_link(code: &str, rule: &str, detail: &str) -> Option<Value> {
    Some(json!({"refusal": {"rule": rule, "code": code, "detail": detail},
                "query_types": ["entry_exit_last_year", "eid_photo"]}))
}

/// (status, code, rule, detail) of a problem.
fn answer(problem: &immilink_shared::problem::Problem) -> (u16, &str, Option<&str>, &str) {
    (problem.status, problem.code.as_str(), problem.rule.as_deref(), problem.detail.as_str())
}

#[actix_web::test]
async fn r_link_06_a_suspended_link_refuses_a_lookup_403_and_forwards_nothing() {
    let broker = Broker::start().await;
    broker.link_is(refused_link("link_suspended", "R-LINK-06", SUSPENDED));
    let problem = broker.look_up().await.expect_err("refused");
    assert_eq!(answer(&problem), (403, "link_suspended", Some("R-LINK-06"), SUSPENDED));
    assert_eq!((broker.forwarded(), broker.lookups_recorded()), (0, 0), "nothing recorded as forwarded, nothing sent");
    let refusals = broker.events(kind::LOOKUP_REFUSED);
    assert_eq!(refusals.len(), 1, "the refusal is on the audit trail");
    assert_eq!(
        (refusals[0]["rule"].as_str(), refusals[0]["code"].as_str()),
        (Some("R-LINK-06"), Some("link_suspended"))
    );
    assert_eq!(refusals[0]["detail"], SUSPENDED);
    assert_eq!(refusals[0]["declared"]["subject_id"], "A123456789");
}

#[actix_web::test]
async fn r_link_08_and_r_link_12_a_terminated_link_or_one_outside_its_usage_period_refuses_a_lookup() {
    let broker = Broker::start().await;
    for (code, rule, detail) in [
        ("link_terminated", "R-LINK-08", "TPE-SW's link ended on 2026-12-01"),
        ("outside_usage_period", "R-LINK-12", "TPE-SW's data usage period ended on 2026-11-30"),
    ] {
        broker.link_is(refused_link(code, rule, detail));
        let problem = broker.look_up().await.expect_err("refused");
        assert_eq!(answer(&problem), (403, code, Some(rule), detail));
    }
    assert_eq!(broker.forwarded(), 0);
    let rules: Vec<Value> = broker.events(kind::LOOKUP_REFUSED).into_iter().map(|e| e["rule"].clone()).collect();
    assert_eq!(rules, [json!("R-LINK-08"), json!("R-LINK-12")]);
}

#[actix_web::test]
async fn r_link_03_a_query_type_the_link_does_not_carry_is_refused() {
    let broker = Broker::start().await;
    // The user still holds the tuple (say, a grant identity has not yet cleaned up), but the link no
    // longer carries the query type.
    broker.link_is(Some(json!({"refusal": null, "query_types": ["eid_photo"]})));
    let problem = broker.look_up().await.expect_err("refused");
    let (status, code, rule, detail) = answer(&problem);
    assert_eq!((status, code, rule), (403, "item_not_on_link", Some("R-LINK-03")));
    assert!(detail.contains("entry_exit_last_year"), "{detail}");
    assert_eq!(broker.forwarded(), 0);
}

/// Fail closed: a refusal whose code the broker does not know refuses as "no active link".
#[actix_web::test]
async fn r_link_02_an_unknown_refusal_code_from_identity_refuses() {
    let broker = Broker::start().await;
    broker.link_is(refused_link("link_quarantined", "R-LINK-99", "TPE-SW's link is quarantined"));
    let problem = broker.look_up().await.expect_err("refused");
    assert_eq!(answer(&problem), (403, "no_active_link", Some("R-LINK-02"), "TPE-SW's link is quarantined"));
    assert_eq!(broker.forwarded(), 0);
}

/// The harness's control: a usable link, or an identity that reports no link at all, lets the same
/// lookup through to the upstream, as before.
#[actix_web::test]
async fn a_usable_link_or_none_reported_lets_the_lookup_through_as_before() {
    let broker = Broker::start().await;
    broker.look_up().await.expect("a usable link");
    broker.link_is(None);
    broker.look_up().await.expect("no link reported: the permissions decide");
    assert_eq!((broker.forwarded(), broker.lookups_recorded()), (2, 2));
    assert!(broker.events(kind::LOOKUP_REFUSED).is_empty());
    // Without link information, a missing permission is still R-QRY-02.
    *broker.identity.me.lock().unwrap() = json!({"user_id": USER, "permissions": []});
    let problem = broker.look_up().await.expect_err("not permitted");
    assert_eq!(
        (problem.status, problem.code.as_str(), problem.rule.as_deref()),
        (403, "not_permitted", Some("R-QRY-02"))
    );
}

#[actix_web::test]
async fn r_link_06_a_suspended_link_refuses_a_batch_at_submission_and_stores_nothing() {
    let broker = Broker::start().await;
    broker.link_is(refused_link("link_suspended", "R-LINK-06", SUSPENDED));
    let problem = broker.submit_batch().await.expect_err("refused");
    assert_eq!(answer(&problem), (403, "link_suspended", Some("R-LINK-06"), SUSPENDED));
    let stored: i64 = batch_rows::table.count().get_result(&mut broker.db.get().unwrap()).unwrap();
    assert_eq!((stored, broker.forwarded()), (0, 0));
    let refusals = broker.events(kind::LOOKUP_REFUSED);
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0]["rule"], "R-LINK-06");
}

/// A job accepted while the link was usable stops before its next chunk once identity reports the
/// link suspended: its items are cancelled naming R-LINK-06, and so is its `batch.cancelled` event.
#[actix_web::test]
async fn r_link_06_a_running_batch_stops_when_the_link_is_suspended() {
    let broker = Broker::start().await;
    let accepted = broker.submit_batch().await.expect("accepted while the link is usable");
    broker.link_is(refused_link("link_suspended", "R-LINK-06", SUSPENDED));
    let worker = actix_web::rt::spawn(crate::batch_worker::run(broker.state.clone()));
    let batch_id = BatchId::new(accepted.batch_id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status: BatchStatus =
            batch_rows::table.find(&batch_id).select(batch_rows::status).first(&mut broker.db.get().unwrap()).unwrap();
        if !status.is_open() || Instant::now() > deadline {
            break status;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    worker.abort();
    assert_eq!(status, BatchStatus::Cancelled);
    assert_eq!(broker.forwarded(), 0, "no item reached the upstream");
    let items: Vec<(ItemStatus, Option<String>)> = batch_items::table
        .filter(batch_items::batch_id.eq(&batch_id))
        .select((batch_items::status, batch_items::failure))
        .load(&mut broker.db.get().unwrap())
        .unwrap();
    assert_eq!(items.len(), 3);
    for (status, failure) in items {
        let failure: Value = serde_json::from_str(&failure.unwrap()).unwrap();
        assert_eq!(
            (status, failure["code"].as_str(), failure["rule"].as_str()),
            (ItemStatus::Cancelled, Some("cancelled"), Some("R-LINK-06"))
        );
        assert!(failure["detail"].as_str().unwrap().starts_with(SUSPENDED), "{failure}");
    }
    let cancellations = broker.events(kind::BATCH_CANCELLED);
    assert_eq!(cancellations.len(), 1);
    assert_eq!(
        (cancellations[0]["rule"].as_str(), cancellations[0]["cancelled_items"].as_i64()),
        (Some("R-LINK-06"), Some(3))
    );
}

/// The finding, through the handlers against identity's answers: tpe.caseworker (social welfare)
/// asked for `hr_other_approved`, a household-registration purpose TPE-SW's link does not carry, and
/// the supervisor approved it. The request is refused 403 naming R-QRY-10 and the purpose, and
/// writes nothing; an approval is refused too while identity does not list the purpose for the
/// requester, and the request stays pending.
#[actix_web::test]
async fn r_qry_10_a_purpose_approval_for_a_purpose_the_link_does_not_carry_is_refused() {
    let broker = Broker::start().await;
    let ask = || async {
        let body = purpose_approvals::PurposeApprovalBody {
            purpose_code: Some("hr_other_approved".into()),
            case_number: Some("TPE-SW-2026-000123".into()),
            business_description: Some("戶籍登記疑義".into()),
        };
        let req = actix_web::test::TestRequest::post().uri("/v1/purpose-approvals").to_http_request();
        purpose_approvals::ask(&req, &broker.state, &caseworker(), body).await.map_err(|err| err.to_problem())
    };
    let supervisor = supervisor();
    let approve = |id: &str| {
        let body =
            purpose_approvals::DecisionBody { decision: Some(Decision::Approved), reason: None, valid_until: None };
        purpose_approvals::decide_on(&broker.state, &supervisor, PurposeApprovalId::new(id), body)
    };
    let refused_for_the_purpose = |problem: &immilink_shared::problem::Problem| {
        let (status, code, rule, detail) = answer(problem);
        assert_eq!((status, code, rule), (403, "not_permitted", Some("R-QRY-10")), "{detail}");
        assert_eq!(problem.field.as_deref(), Some("purpose_code"));
        assert!(detail.contains("hr_other_approved"), "{detail}");
    };
    let requests = || -> i64 { approval_rows::table.count().get_result(&mut broker.db.get().unwrap()).unwrap() };

    refused_for_the_purpose(&ask().await.expect_err("not a purpose TPE-SW's link carries"));
    assert_eq!(requests(), 0, "nothing written");
    assert!(broker.events(kind::PURPOSE_APPROVAL_REQUESTED).is_empty());

    // Where identity lists it (the link carries it and it is granted), it is asked for...
    let other_business = json!([{"legal_basis": "household_registration_act", "purpose_code": "hr_other_approved",
                                 "query_type": "entry_exit_last_year"}]);
    broker.identity.me.lock().unwrap()["permissions"] = other_business.clone();
    let pending = ask().await.expect("a purpose the caseworker may declare");
    // ...but not approved once identity no longer lists it for the requester.
    let problem = approve(&pending.id).await.expect_err("the requester may not declare it now").to_problem();
    refused_for_the_purpose(&problem);
    assert!(problem.detail.contains("requester"), "{}", problem.detail);
    let status: ApprovalStatus = approval_rows::table
        .find(PurposeApprovalId::new(pending.id.clone()))
        .select(approval_rows::status)
        .first(&mut broker.db.get().unwrap())
        .unwrap();
    assert_eq!(status, ApprovalStatus::Pending);
    assert!(broker.events(kind::PURPOSE_APPROVAL_DECIDED).is_empty());
    // While it is listed, the supervisor approves.
    broker.identity.user.lock().unwrap()["permissions"] = other_business;
    let approved = approve(&pending.id).await.expect("approved");
    assert_eq!((approved.status, approved.in_force), (ApprovalStatus::Approved, true));
    assert_eq!(broker.events(kind::PURPOSE_APPROVAL_DECIDED).len(), 1);
}
