//! Demo data for the embedded mode (IMMILINK_DEMO): two agencies from the seeds with their users and
//! an active link each. Idempotent: an agency that exists is left alone, so a second start on the
//! same ./data adds nothing.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::catalogue::{self, AgencyKind, QueryType};
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;

use super::sessions::{hash_password, STATUS_ACTIVE};
use super::IdentityError;
use crate::schema::{agencies, agency_link_items, agency_links, units, user_grants, user_ips, user_roles, users};

pub const DEMO_PASSWORD: &str = "immilink-demo";
pub const DEMO_IP: &str = "127.0.0.1";

struct DemoAgency {
    code: &'static str,
    name: &'static str,
    kind: AgencyKind,
    unit: &'static str,
    users: &'static [DemoUser],
    linked_query_types: &'static [QueryType],
}

struct DemoUser {
    username: &'static str,
    display_name: &'static str,
    role: &'static str,
    /// Query types granted (with every purpose of the agency's kind).
    grants: &'static [QueryType],
}

const AGENCIES: &[DemoAgency] = &[
    DemoAgency {
        code: "TPE-SW",
        name: "臺北市政府社會局",
        kind: AgencyKind::SocialWelfare,
        unit: "社會救助科",
        users: &[
            DemoUser {
                username: "tpe.caseworker",
                display_name: "王社工",
                role: "caseworker",
                grants: &[QueryType::EntryExitLastYear, QueryType::ForeignerResidence],
            },
            DemoUser { username: "tpe.supervisor", display_name: "林科長", role: "unit_supervisor", grants: &[] },
            DemoUser { username: "tpe.manager", display_name: "陳管理者", role: "account_manager", grants: &[] },
        ],
        linked_query_types: &[
            QueryType::EntryExitLastYear,
            QueryType::ForeignResidentEntryExit,
            QueryType::ForeignerResidence,
            QueryType::ArcValidityAddress,
            QueryType::BulkEntryExitLastYear,
        ],
    },
    DemoAgency {
        code: "HLN-HR",
        name: "花蓮縣戶政事務所",
        kind: AgencyKind::HouseholdRegistration,
        unit: "戶籍課",
        users: &[
            DemoUser {
                username: "hln.clerk",
                display_name: "李戶籍員",
                role: "caseworker",
                grants: &[QueryType::EntryExitLastYear],
            },
            DemoUser { username: "hln.supervisor", display_name: "張課長", role: "unit_supervisor", grants: &[] },
            DemoUser { username: "hln.manager", display_name: "黃管理者", role: "account_manager", grants: &[] },
        ],
        linked_query_types: &[QueryType::EntryExitLastYear, QueryType::TravelerHistory],
    },
];

/// Seeds the demo agencies that do not exist yet. Returns how many were created.
pub fn seed(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize, IdentityError> {
    let mut created = 0;
    for agency in AGENCIES {
        let exists: i64 = agencies::table.filter(agencies::code.eq(agency.code)).count().get_result(conn)?;
        if exists == 0 {
            conn.write_transaction(|conn| seed_agency(conn, now, agency))?;
            created += 1;
        }
    }
    Ok(created)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn seed_agency(conn: &mut DbConn, now: DateTime<Utc>, agency: &DemoAgency) -> Result<(), IdentityError> {
    let agency_id = new_id();
    let unit_id = new_id();
    let kind = match agency.kind {
        AgencyKind::SocialWelfare => "social_welfare",
        AgencyKind::HouseholdRegistration => "household_registration",
    };
    diesel::insert_into(agencies::table)
        .values((
            agencies::id.eq(&agency_id),
            agencies::code.eq(agency.code),
            agencies::name.eq(agency.name),
            agencies::kind.eq(kind),
            agencies::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    diesel::insert_into(units::table)
        .values((units::id.eq(&unit_id), units::agency_id.eq(&agency_id), units::name.eq(agency.unit)))
        .execute(conn)?;
    let purposes: Vec<String> = catalogue::purposes()
        .into_iter()
        .filter(|p| p.agency_kind == agency.kind && !p.requires_supervisor_approval)
        .map(|p| p.code)
        .collect();
    seed_link(conn, now, &agency_id, agency, &purposes)?;
    for user in agency.users {
        seed_user(conn, now, &agency_id, &unit_id, user, &purposes)?;
    }
    Ok(())
}

fn seed_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency_id: &str,
    agency: &DemoAgency,
    purposes: &[String],
) -> Result<(), IdentityError> {
    let link_id = new_id();
    diesel::insert_into(agency_links::table)
        .values((
            agency_links::id.eq(&link_id),
            agency_links::agency_id.eq(agency_id),
            agency_links::status.eq(super::permissions::LINK_ACTIVE),
            agency_links::valid_from.eq(to_db(now - Duration::days(1))),
            agency_links::valid_until.eq(to_db(now + Duration::days(2 * 365))),
            agency_links::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let bases = catalogue::legal_bases().into_iter().filter(|b| b.agency_kind == agency.kind);
    for basis in bases {
        for purpose in purposes {
            for query_type in agency.linked_query_types {
                diesel::insert_into(agency_link_items::table)
                    .values((
                        agency_link_items::link_id.eq(&link_id),
                        agency_link_items::legal_basis.eq(&basis.code),
                        agency_link_items::purpose_code.eq(purpose),
                        agency_link_items::query_type.eq(query_type.code()),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

fn seed_user(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency_id: &str,
    unit_id: &str,
    user: &DemoUser,
    purposes: &[String],
) -> Result<(), IdentityError> {
    let user_id = new_id();
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&user_id),
            users::agency_id.eq(agency_id),
            users::unit_id.eq(unit_id),
            users::username.eq(user.username),
            users::display_name.eq(user.display_name),
            users::password_hash.eq(hash_password(DEMO_PASSWORD)?),
            users::certificate_serial.eq(format!("DEMO-{}", user.username)),
            users::status.eq(STATUS_ACTIVE),
            users::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    diesel::insert_into(user_roles::table)
        .values((user_roles::user_id.eq(&user_id), user_roles::role.eq(user.role)))
        .execute(conn)?;
    diesel::insert_into(user_ips::table)
        .values((user_ips::user_id.eq(&user_id), user_ips::ip.eq(DEMO_IP)))
        .execute(conn)?;
    for query_type in user.grants {
        for purpose in purposes {
            diesel::insert_into(user_grants::table)
                .values((
                    user_grants::user_id.eq(&user_id),
                    user_grants::query_type.eq(query_type.code()),
                    user_grants::purpose_code.eq(purpose),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}
