//! Integration tests of the audit service against its real database (SQLite, or PostgreSQL when
//! TEST_DATABASE_URL is set): the chain, idempotent ingestion, and readiness.

use actix_web::{test as actix_test, web, App};
use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use immilink_shared::clock::{Clock, ManualClock};
use immilink_shared::db::{Db, DbSettings};
use immilink_shared::events::AuditEvent;
use immilink_shared::server::ServiceName;
use immilink_shared::testing::TestDb;
use serde_json::json;

use crate::domain::chain::{self, RecordQuery};
use crate::schema::audit_records;
use crate::MIGRATIONS;
use immilink_shared::extractors::Page;

fn event(n: u32) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        kind: "lookup.requested".into(),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, n).unwrap(),
        source: "broker".into(),
        actor_user_id: Some(format!("user-{n}")),
        agency: Some("TPE-SW".into()),
        correlation_id: Some(format!("lookup-{n}")),
        subject_id: Some("A123456789".into()),
        payload: json!({"case_number": format!("C-{n}"), "purpose_code": "sw_statutory_business"}),
    }
}

fn db(test_db: &TestDb) -> Db {
    Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database")
}

#[test]
fn r_aud_02_chain_of_appended_records_verifies() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let now = ManualClock::starting_at(Utc::now()).now();
    let receipt = chain::append(&mut conn, now, &(1..=5).map(event).collect::<Vec<_>>()).unwrap();
    assert_eq!(receipt.appended, 5);
    let verification = chain::verify(&mut conn).unwrap();
    assert!(verification.ok);
    assert_eq!(verification.records, 5);
    assert_eq!(verification.first_bad_sequence, None);
}

#[test]
fn r_aud_02_an_altered_record_is_detected_and_located() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    chain::append(&mut conn, Utc::now(), &(1..=5).map(event).collect::<Vec<_>>()).unwrap();
    // Someone with database access rewrites the purpose of record 3.
    diesel::update(audit_records::table.filter(audit_records::sequence.eq(3)))
        .set(audit_records::payload.eq(r#"{"case_number":"C-3","purpose_code":"hr_other_approved"}"#))
        .execute(&mut conn)
        .unwrap();
    let verification = chain::verify(&mut conn).unwrap();
    assert!(!verification.ok);
    assert_eq!(verification.first_bad_sequence, Some(3));
    assert_eq!(verification.records, 2);
}

#[test]
fn r_aud_02_a_deleted_record_is_detected_at_the_gap() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    chain::append(&mut conn, Utc::now(), &(1..=4).map(event).collect::<Vec<_>>()).unwrap();
    diesel::delete(audit_records::table.filter(audit_records::sequence.eq(2))).execute(&mut conn).unwrap();
    let verification = chain::verify(&mut conn).unwrap();
    assert_eq!(verification.first_bad_sequence, Some(2));
}

#[test]
fn redelivered_events_are_stored_once() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let batch: Vec<_> = (1..=3).map(event).collect();
    chain::append(&mut conn, Utc::now(), &batch).unwrap();
    let again = chain::append(&mut conn, Utc::now(), &batch).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 3));
    let all = chain::search(&mut conn, &RecordQuery::default(), &Page::first()).unwrap();
    assert_eq!(all.len(), 3);
    assert!(chain::verify(&mut conn).unwrap().ok);
}

#[test]
fn concurrent_appends_keep_one_unbroken_chain() {
    let test_db = TestDb::new();
    let database = db(&test_db);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let database = database.clone();
            std::thread::spawn(move || {
                let mut conn = database.get().unwrap();
                for n in 0..10 {
                    chain::append(&mut conn, Utc::now(), &[event(w * 10 + n)]).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let verification = chain::verify(&mut database.get().unwrap()).unwrap();
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.records, 40);
}

#[actix_web::test]
async fn readyz_fails_when_the_database_does_not_answer() {
    let test_db = TestDb::new();
    let mut settings = DbSettings::new(test_db.url());
    settings.pool_size = 1;
    settings.connect_timeout = std::time::Duration::from_millis(300);
    let database = Db::connect(&settings, &MIGRATIONS).unwrap();
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(ServiceName(crate::SERVICE)))
            .app_data(web::Data::new(database.clone()))
            .service(immilink_shared::server::readyz),
    )
    .await;
    let ready = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(ready.status(), 200);
    // Hold the only connection: the database no longer answers this service.
    let held = database.get().unwrap();
    let unready = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(unready.status(), 503);
    drop(held);
}

fn reader(agency: &str, roles: &[&str]) -> immilink_shared::auth::Caller {
    immilink_shared::auth::Caller {
        user_id: immilink_shared::typed::UserId::new("reader-1"),
        session_id: immilink_shared::typed::SessionId::new("session-1"),
        agency: immilink_shared::typed::AgencyCode::new(agency),
        unit: None,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    }
}

#[test]
fn agency_bound_readers_see_their_own_agency_and_the_auditor_sees_all() {
    use crate::domain::records;
    use crate::domain::AuditError;
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut hln = event(9);
    hln.agency = Some("HLN-HR".into());
    let hln_id = hln.id.clone();
    let mut batch: Vec<_> = (1..=3).map(event).collect();
    batch.push(hln);
    chain::append(&mut conn, Utc::now(), &batch).unwrap();
    let everything = Page::first();
    let manager = reader("TPE-SW", &["account_manager"]);
    let own = records::search(&mut conn, &manager, RecordQuery::default(), &everything).unwrap();
    assert_eq!(own.len(), 3);
    assert!(own.iter().all(|r| r.agency.as_deref() == Some("TPE-SW")));
    let other =
        RecordQuery { agency: Some(immilink_shared::typed::AgencyCode::new("HLN-HR")), ..RecordQuery::default() };
    assert!(matches!(records::search(&mut conn, &manager, other, &everything), Err(AuditError::OtherAgency)));
    assert!(matches!(records::get(&mut conn, &manager, &hln_id), Err(AuditError::NotFound(_))));
    let auditor = reader("TPE-SW", &["auditor"]);
    assert_eq!(records::search(&mut conn, &auditor, RecordQuery::default(), &everything).unwrap().len(), 4);
    assert_eq!(records::get(&mut conn, &auditor, &hln_id).unwrap().agency.as_deref(), Some("HLN-HR"));
    let caseworker = reader("TPE-SW", &["caseworker"]);
    assert!(matches!(records::verify(&mut conn, &caseworker), Err(AuditError::RoleRequired { .. })));
    assert!(records::verify(&mut conn, &auditor).unwrap().ok);
}

#[test]
fn records_are_read_a_page_at_a_time_after_a_sequence() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    chain::append(&mut conn, Utc::now(), &(1..=5).map(event).collect::<Vec<_>>()).unwrap();
    let first = chain::search(&mut conn, &RecordQuery::default(), &Page::new(Some(2), None).unwrap()).unwrap();
    assert_eq!(first.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1, 2]);
    let next = chain::search(&mut conn, &RecordQuery::default(), &Page::new(Some(2), Some(2)).unwrap()).unwrap();
    assert_eq!(next.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3, 4]);
    // The limit is every list's: out of range is refused, not clamped.
    for bad in [0, 501] {
        assert!(Page::<i64>::new(Some(bad), None).is_err(), "{bad}");
    }
}

#[test]
fn a_delivery_is_checked_before_anything_is_appended() {
    use crate::domain::records::{Batch, MAX_BATCH};
    use crate::domain::AuditError;
    let mut nameless = event(1);
    nameless.kind = " ".into();
    let refused = Batch::parse("broker", vec![event(2), nameless]);
    assert!(matches!(refused, Err(AuditError::Invalid { field, .. }) if field == "events[1]"));
    let too_many = Batch::parse("broker", (0..=MAX_BATCH as u32).map(|n| event(n % 60)).collect());
    assert!(matches!(too_many, Err(AuditError::Invalid { field, .. }) if field == "events"));
    assert_eq!(Batch::parse("broker", vec![event(3)]).unwrap().len(), 1);
}

/// Audit intake admits each service for its own source only: vendors delivering an event that claims
/// to be the broker's is refused whole (422 naming the event's `source`) and nothing is stored;
/// its own events are stored; a service that records no audited acts is refused.
#[actix_web::test]
async fn a_service_delivers_only_events_of_its_own_source() {
    use actix_web::dev::Service as _;
    use immilink_shared::auth::CallingService;
    use immilink_shared::problem::Problem;
    let test_db = TestDb::new();
    let database = db(&test_db);
    let clock: immilink_shared::clock::SharedClock =
        std::sync::Arc::new(ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 12, 2, 1, 0, 0).unwrap()));
    // Stands in for `verify_service_caller`: the caller named in `x-test-service` has a verified token.
    let app = actix_test::init_service(
        immilink_shared::server::base_app()
            .wrap_fn(|req, srv| {
                let service = req.headers().get("x-test-service").and_then(|v| v.to_str().ok()).map(str::to_owned);
                if let Some(service) = service {
                    actix_web::HttpMessage::extensions_mut(&req).insert(CallingService(service));
                }
                srv.call(req)
            })
            .app_data(web::Data::new(crate::State { db: database.clone(), clock }))
            .configure(crate::routes::configure_internal),
    )
    .await;
    let deliver = |service: &str, events: Vec<AuditEvent>| {
        actix_test::TestRequest::post()
            .uri("/internal/v1/events")
            .insert_header(("x-test-service", service.to_owned()))
            .set_json(json!({ "events": events }))
            .to_request()
    };
    let stored = || -> i64 { audit_records::table.count().get_result(&mut database.get().unwrap()).unwrap() };
    let vendors_event = |n: u32| AuditEvent { source: "vendors".into(), subject_id: None, ..event(n) };

    let forged = actix_test::call_service(&app, deliver("vendors", vec![vendors_event(1), event(2)])).await;
    assert_eq!(forged.status(), 422);
    let problem: Problem = actix_test::read_body_json(forged).await;
    assert_eq!(problem.field.as_deref(), Some("events[1].source"));
    assert_eq!(stored(), 0, "nothing of the delivery is appended");

    let own = actix_test::call_service(&app, deliver("vendors", vec![vendors_event(1), vendors_event(2)])).await;
    assert_eq!(own.status(), 200);
    assert_eq!(stored(), 2);
    let identity_event = AuditEvent { source: "identity".into(), ..event(3) };
    let identity = actix_test::call_service(&app, deliver("identity", vec![identity_event])).await;
    assert_eq!(identity.status(), 200);
    let broker = actix_test::call_service(&app, deliver("broker", vec![event(4)])).await;
    assert_eq!(broker.status(), 200);
    assert_eq!(stored(), 4);

    let gateway_event = AuditEvent { source: "gateway".into(), ..event(5) };
    let gateway = actix_test::call_service(&app, deliver("gateway", vec![gateway_event])).await;
    assert_eq!(gateway.status(), 403, "the gateway records no audited acts");
    assert_eq!(stored(), 4);
}
