//! Fixtures of the domain tests: a migrated database of their own (SQLite, or PostgreSQL with
//! `TEST_DATABASE_URL`), a fixed time, callers and what identity says about users.

use chrono::{DateTime, TimeZone, Utc};
use immilink_shared::auth::Caller;
use immilink_shared::db::{Db, DbSettings, PooledConn};
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};

use super::colleagues::{AccountStatus, Entitlements, Permission, UserSummary};
use super::link::LinkStanding;

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

/// What identity says a household-registration caseworker may look up now: "other business approved
/// by the supervisor" (R-QRY-10) under the Household Registration Act, on a usable link carrying the
/// query type.
pub fn other_business_entitlements() -> Entitlements {
    Entitlements {
        permissions: vec![Permission {
            legal_basis: "household_registration_act".into(),
            purpose_code: "hr_other_approved".into(),
            query_type: "entry_exit_last_year".into(),
        }],
        link: Some(LinkStanding { refusal: None, query_types: vec!["entry_exit_last_year".into()] }),
    }
}

/// What identity says about an active user of `agency` who may look up what `entitlements` lists.
pub fn entitled(user_id: &str, agency: &str, entitlements: &Entitlements) -> UserSummary {
    UserSummary {
        permissions: entitlements.permissions.clone(),
        link: entitlements.link.clone(),
        ..summary(user_id, agency, AccountStatus::Active)
    }
}
