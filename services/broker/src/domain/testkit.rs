//! Fixtures of the domain tests: a migrated database of their own (SQLite, or PostgreSQL with
//! `TEST_DATABASE_URL`), a fixed time, callers and what identity says about users.

use chrono::{DateTime, TimeZone, Utc};
use immilink_shared::auth::Caller;
use immilink_shared::db::{Db, DbSettings, PooledConn};
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};

use super::colleagues::{AccountStatus, UserSummary};

pub type TestConn = PooledConn;

/// A connection to a migrated broker database of its own.
pub fn conn(test_db: &TestDb) -> TestConn {
    Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS)
        .expect("test database")
        .get()
        .expect("a connection")
}

/// 2026-11-23 10:00 in Taipei.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).single().expect("a valid instant")
}

pub fn caller(user_id: &str, agency: &str, unit: Option<&str>, roles: &[&str]) -> Caller {
    Caller {
        user_id: UserId::new(user_id),
        session_id: SessionId::new(format!("session-of-{user_id}")),
        agency: AgencyCode::new(agency),
        unit: unit.map(UnitId::new),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// What identity says about a user; the display name is "name of" the id's last 4 characters.
pub fn summary(user_id: &str, agency: &str, status: AccountStatus) -> UserSummary {
    UserSummary {
        user_id: UserId::new(user_id),
        username: format!("user.{user_id}"),
        display_name: format!("name of {}", &user_id[user_id.len().saturating_sub(4)..]),
        agency: AgencyCode::new(agency),
        unit: Some(UnitId::new("unit-a")),
        status: Some(status),
        roles: vec!["caseworker".into()],
        permissions: Vec::new(),
        link: None,
    }
}
