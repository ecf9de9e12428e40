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

use crate::chain::{self, RecordFilter};
use crate::schema::audit_records;
use crate::MIGRATIONS;

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
    let all = chain::search(&mut conn, &RecordFilter::default()).unwrap();
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
