//! Identity's domain rules against its real database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

use std::net::IpAddr;

use chrono::{Duration, Utc};
use diesel::prelude::*;
use immilink_shared::db::{Db, DbSettings, PooledConn};
use immilink_shared::testing::TestDb;

use crate::domain::demo::{self, DEMO_PASSWORD};
use crate::domain::sessions::{check_live, end_session, login, LoginAttempt};
use crate::domain::{permissions, IdentityError};
use crate::schema::{sessions, users};
use crate::MIGRATIONS;

fn seeded(test_db: &TestDb) -> PooledConn {
    let db = Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database");
    let mut conn = db.get().unwrap();
    demo::seed(&mut conn, Utc::now()).unwrap();
    conn
}

fn attempt(username: &str) -> LoginAttempt {
    LoginAttempt {
        username: username.into(),
        password: DEMO_PASSWORD.into(),
        certificate_serial: format!("DEMO-{username}"),
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: "test".into(),
    }
}

#[test]
fn demo_seed_is_idempotent() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    assert_eq!(demo::seed(&mut conn, Utc::now()).unwrap(), 0);
    let count: i64 = users::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 6);
}

#[test]
fn r_acc_12_every_session_records_login_and_logout_time() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let at = Utc::now();
    let session = login(&mut conn, at, &attempt("tpe.caseworker")).unwrap();
    let later = at + Duration::minutes(3);
    end_session(&mut conn, later, &session.session_id, "logout").unwrap();
    let (login_at, logout_at, reason): (chrono::NaiveDateTime, Option<chrono::NaiveDateTime>, Option<String>) =
        sessions::table
            .filter(sessions::id.eq(&session.session_id))
            .select((sessions::login_at, sessions::logout_at, sessions::end_reason))
            .first(&mut conn)
            .unwrap();
    assert_eq!(login_at.and_utc().timestamp(), at.timestamp());
    assert_eq!(logout_at.map(|t| t.and_utc().timestamp()), Some(later.timestamp()));
    assert_eq!(reason.as_deref(), Some("logout"));
}

#[test]
fn r_acc_03_wrong_certificate_and_r_acc_11_wrong_ip_refuse_login() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let mut wrong_certificate = attempt("tpe.caseworker");
    wrong_certificate.certificate_serial = "DEMO-tpe.manager".into();
    assert!(matches!(login(&mut conn, Utc::now(), &wrong_certificate), Err(IdentityError::LoginRefused)));
    let mut elsewhere = attempt("tpe.caseworker");
    elsewhere.ip = "10.1.2.3".parse::<IpAddr>().unwrap();
    assert!(matches!(login(&mut conn, Utc::now(), &elsewhere), Err(IdentityError::LoginRefused)));
}

#[test]
fn disabled_accounts_cannot_log_in_and_their_sessions_end() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let session = login(&mut conn, now, &attempt("hln.clerk")).unwrap();
    diesel::update(users::table.filter(users::username.eq("hln.clerk")))
        .set(users::status.eq("cancelled"))
        .execute(&mut conn)
        .unwrap();
    assert!(matches!(login(&mut conn, now, &attempt("hln.clerk")), Err(IdentityError::LoginRefused)));
    let live = check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15));
    assert!(matches!(live, Err(IdentityError::SessionEnded(reason)) if reason == "account_inactive"));
}

#[test]
fn r_acc_10_idle_timeout_ends_the_session_and_activity_keeps_it() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let start = Utc::now();
    let idle = Duration::minutes(15);
    let session = login(&mut conn, start, &attempt("tpe.caseworker")).unwrap();
    // Activity every ten minutes keeps it alive past the first fifteen.
    for minutes in [10, 20, 30] {
        check_live(&mut conn, start + Duration::minutes(minutes), &session.session_id, None, idle).unwrap();
    }
    let after_idle = start + Duration::minutes(30) + Duration::minutes(16);
    let ended = check_live(&mut conn, after_idle, &session.session_id, None, idle);
    assert!(matches!(ended, Err(IdentityError::SessionEnded(reason)) if reason == "idle_timeout"));
    // And it stays ended.
    assert!(check_live(&mut conn, after_idle, &session.session_id, None, idle).is_err());
}

#[test]
fn r_qry_02_permissions_are_link_approvals_intersected_with_user_grants() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let caseworker = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let profile = permissions::profile(&mut conn, now, &caseworker.user_id).unwrap();
    assert_eq!(profile.query_types, vec!["entry_exit_last_year", "foreigner_residence"]);
    assert_eq!(profile.purposes, vec!["sw_statutory_business"]);
    // 11 legal bases x 1 purpose x 2 granted query types.
    assert_eq!(profile.permissions.len(), 22);
    // Outside the link's usage period nothing is permitted (R-LINK-12 groundwork).
    let expired = now + Duration::days(3 * 365);
    assert!(permissions::permitted(&mut conn, expired, &caseworker.user_id, &profile.agency.id).unwrap().is_empty());
    let supervisor = login(&mut conn, now, &attempt("tpe.supervisor")).unwrap();
    assert!(permissions::profile(&mut conn, now, &supervisor.user_id).unwrap().permissions.is_empty());
}
