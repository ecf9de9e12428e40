//! The broker's write path against its real database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

use chrono::{Duration, Utc};
use diesel::prelude::*;
use immilink_shared::db::{Db, DbSettings};
use immilink_shared::events::kind;
use immilink_shared::testing::TestDb;

use immilink_shared::auth::Caller;
use immilink_shared::typed::{AgencyCode, SessionId, UserId};

use crate::domain::lookup::{self, LookupStatus, Outcome};
use crate::domain::request::{self, LookupRequest};
use crate::domain::LookupId;
use crate::schema::lookups;
use crate::MIGRATIONS;
use immilink_shared::outbox;

mod links;

fn db(test_db: &TestDb) -> Db {
    Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database")
}

fn requester() -> Caller {
    Caller {
        user_id: UserId::new("user-1"),
        session_id: SessionId::new("session-1"),
        agency: AgencyCode::new("TPE-SW"),
        unit: None,
        roles: Vec::new(),
    }
}

fn request() -> LookupRequest {
    request::sample()
}

#[test]
fn r_qry_08_a_requested_lookup_and_its_audit_event_commit_together() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let recorded = lookup::record_requested(&mut conn, Utc::now(), &requester(), &request()).unwrap();
    let pending = outbox::pending(&mut conn, 10).unwrap();
    assert_eq!(pending.len(), 1);
    let event = &pending[0];
    assert_eq!(recorded.audit_id, event.id.as_str());
    assert_eq!(event.kind, kind::LOOKUP_REQUESTED);
    assert_eq!(event.correlation_id.as_deref(), Some(recorded.lookup_id.as_str()));
    assert_eq!(event.subject_id.as_deref(), Some("A123456789"));
    assert_eq!(event.payload["case_number"], "TPE-2026-7");
    assert_eq!(event.payload["legal_basis"], "social_assistance_act");
    let status: LookupStatus =
        lookups::table.filter(lookups::id.eq(&recorded.lookup_id)).select(lookups::status).first(&mut conn).unwrap();
    assert_eq!(status, LookupStatus::Requested);
}

#[test]
fn r_qry_08_a_failed_event_write_leaves_no_lookup_behind() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let recorded = lookup::record_requested(&mut conn, Utc::now(), &requester(), &request()).unwrap();
    // Sabotage the outbox so the next event insert fails: the lookup row must roll back with it.
    diesel::sql_query("DROP TABLE outbox").execute(&mut conn).unwrap();
    assert!(lookup::record_requested(&mut conn, Utc::now(), &requester(), &request()).is_err());
    let count: i64 = lookups::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 1, "only the first, fully recorded lookup exists");
    let only: LookupId = lookups::table.select(lookups::id).first(&mut conn).unwrap();
    assert_eq!(only, recorded.lookup_id);
}

#[test]
fn r_qry_08_outcome_is_recorded_with_its_own_event_and_delivery_is_tracked() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let now = Utc::now();
    let recorded = lookup::record_requested(&mut conn, now, &requester(), &request()).unwrap();
    let outcome = Outcome { status: LookupStatus::Succeeded, upstream_status: Some(200), failure: None };
    lookup::record_outcome(&mut conn, now, &recorded.lookup_id, &outcome).unwrap();
    let pending = outbox::pending(&mut conn, 10).unwrap();
    assert_eq!(
        pending.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        [kind::LOOKUP_REQUESTED, kind::LOOKUP_COMPLETED]
    );
    assert_eq!(pending[1].payload["outcome"], "succeeded");
    outbox::mark_failed(&mut conn, &[pending[0].id.clone()], "audit down").unwrap();
    assert_eq!(outbox::backlog(&mut conn).unwrap(), 2, "a failed delivery stays pending");
    let ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
    outbox::mark_delivered(&mut conn, now, &ids).unwrap();
    assert_eq!(outbox::backlog(&mut conn).unwrap(), 0);
}

#[test]
fn r_qry_08_lookups_interrupted_by_a_crash_are_closed_as_outcome_unknown() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let start = Utc::now();
    let stale = lookup::record_requested(&mut conn, start - Duration::minutes(30), &requester(), &request()).unwrap();
    let in_flight = lookup::record_requested(&mut conn, start, &requester(), &request()).unwrap();
    let closed = lookup::close_interrupted(&mut conn, start, Duration::minutes(5)).unwrap();
    assert_eq!(closed, 1);
    let status = |conn: &mut immilink_shared::db::DbConn, id: &LookupId| -> LookupStatus {
        lookups::table.filter(lookups::id.eq(id)).select(lookups::status).first(conn).unwrap()
    };
    assert_eq!(status(&mut conn, &stale.lookup_id), LookupStatus::OutcomeUnknown);
    let still = status(&mut conn, &in_flight.lookup_id);
    assert_eq!(still, LookupStatus::Requested, "a lookup still in flight is left alone");
    let events = outbox::pending(&mut conn, 10).unwrap();
    let completion = events.iter().find(|e| e.kind == kind::LOOKUP_COMPLETED).unwrap();
    assert_eq!(completion.correlation_id.as_deref(), Some(stale.lookup_id.as_str()));
    assert_eq!(completion.payload["outcome"], "outcome_unknown");
}

mod journal {
    use super::*;
    use crate::domain::lookup::{Context, NewLookup};
    use crate::journal::Journal;
    use immilink_shared::clock::system_clock;

    fn count(db: &Db) -> (i64, i64) {
        let mut conn = db.get().unwrap();
        let lookups: i64 = lookups::table.count().get_result(&mut conn).unwrap();
        let events: i64 = outbox::outbox::table.count().get_result(&mut conn).unwrap();
        (lookups, events)
    }

    /// Each acknowledged record is durable, and concurrent records share commits (group commit).
    #[actix_web::test]
    async fn r_qry_08_concurrent_records_are_durable_when_acknowledged_and_share_commits() {
        let test_db = TestDb::new();
        let db = db(&test_db);
        let journal = Journal::start(db.clone(), system_clock()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let journal = journal.clone();
                actix_web::rt::spawn(async move {
                    let lookup = NewLookup::new(Utc::now(), &requester(), &request(), &Context::default());
                    journal.record_requested(lookup.clone(), lookup.requested_event()).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(count(&db), (200, 200), "every acknowledged lookup and event is stored");
        assert!(journal.commits() < 100, "{} commits for 200 records: no group commit", journal.commits());
    }

    /// An outcome rides on a later commit; the lookup ends with its outcome and a second event.
    #[actix_web::test]
    async fn r_qry_08_outcomes_are_written_after_with_their_event() {
        let test_db = TestDb::new();
        let db = db(&test_db);
        let journal = Journal::start(db.clone(), system_clock()).unwrap();
        let lookup = NewLookup::new(Utc::now(), &requester(), &request(), &Context::default());
        journal.record_requested(lookup.clone(), lookup.requested_event()).await.unwrap();
        let outcome = Outcome { status: LookupStatus::Succeeded, upstream_status: Some(200), failure: None };
        let completion = lookup.completion_event(Utc::now(), &outcome);
        journal.record_outcome(lookup.id.to_string(), outcome.clone(), completion).await;
        // A refusal event after it is acknowledged only once committed, so the outcome is too.
        journal.record_event(lookup.completion_event(Utc::now(), &outcome)).await.unwrap();
        let status: LookupStatus = lookups::table
            .filter(lookups::id.eq(&lookup.id))
            .select(lookups::status)
            .first(&mut db.get().unwrap())
            .unwrap();
        assert_eq!(status, LookupStatus::Succeeded);
        assert_eq!(count(&db), (1, 3));
    }

    /// When the database cannot take the record, the caller is told and nothing is left half-written.
    #[actix_web::test]
    async fn r_qry_08_a_record_the_database_refuses_is_reported_and_leaves_nothing() {
        let test_db = TestDb::new();
        let db = db(&test_db);
        let journal = Journal::start(db.clone(), system_clock()).unwrap();
        diesel::sql_query("DROP TABLE outbox").execute(&mut db.get().unwrap()).unwrap();
        let lookup = NewLookup::new(Utc::now(), &requester(), &request(), &Context::default());
        assert!(journal.record_requested(lookup.clone(), lookup.requested_event()).await.is_err());
        let lookups: i64 = lookups::table.count().get_result(&mut db.get().unwrap()).unwrap();
        assert_eq!(lookups, 0, "the lookup row rolled back with its event");
    }
}
