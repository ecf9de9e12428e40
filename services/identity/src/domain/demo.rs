//! Demo data for the embedded mode (IMMILINK_DEMO): the two agencies of the seeds with a user for
//! every role and an active link each, and the immigration agency with its reviewer.
//!
//! TPE-SW's link approves, and its caseworker holds, all eight query types of the cloud query service
//! that seed 001 pt 3(2) lists, for the purpose `sw_statutory_business` under each of the eleven legal
//! bases seed 001 pt 3 names (88 items). HLN-HR's link approves `entry_exit_last_year` and
//! `traveler_history`; its clerk holds `entry_exit_last_year` under its four purposes. nia-mock
//! approves the same query types per agency by default (`AgencyItems::demo`).
//!
//! Idempotent: an agency that exists is left alone, so a second start on the same ./data adds
//! nothing (a database seeded before TPE-SW held all eight types keeps what it was seeded with).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::catalogue::{self, AgencyKind, QueryType};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;

use super::accounts::AccountStatus;
use super::link_forms::{
    self, Contact, LinkForm, ManagementRules, Provisioning, RequestedItem, RulesCoverage, RulesItem,
};
use super::links::{self, LinkCause, LinkId, LinkStatus};
use super::sessions::hash_password;
use super::{new_id, AgencyId, IdentityError, UnitId, UserId};
use crate::schema::{agencies, agency_link_items, agency_links, units, user_grants, user_ips, user_roles, users};

pub const DEMO_PASSWORD: &str = "immilink-demo";
pub const DEMO_IP: &str = "127.0.0.1";

struct DemoAgency {
    code: &'static str,
    name: &'static str,
    /// `None`: the immigration agency itself (it has no link and no lookups).
    kind: Option<AgencyKind>,
    /// R-ACC-02: whether the agency head approves accounts too (the Hualien model).
    requires_head_approval: bool,
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
        kind: Some(AgencyKind::SocialWelfare),
        requires_head_approval: false,
        unit: "社會救助科",
        users: &[
            DemoUser {
                username: "tpe.caseworker",
                display_name: "王社工",
                role: "caseworker",
                grants: &QueryType::ALL,
            },
            DemoUser { username: "tpe.supervisor", display_name: "林科長", role: "unit_supervisor", grants: &[] },
            DemoUser { username: "tpe.manager", display_name: "陳管理者", role: "account_manager", grants: &[] },
            DemoUser { username: "tpe.head", display_name: "周局長", role: "agency_head", grants: &[] },
            DemoUser { username: "tpe.auditor", display_name: "吳稽核", role: "auditor", grants: &[] },
            DemoUser { username: "tpe.vendors", display_name: "鄭委外管理", role: "vendor_manager", grants: &[] },
            DemoUser { username: "tpe.ethics", display_name: "許政風", role: "ethics_officer", grants: &[] },
            DemoUser { username: "tpe.it", display_name: "蔡資訊", role: "it_officer", grants: &[] },
            // Contractor personnel (R-VEN-08): maintenance, incident reports, device attestations; no
            // lookup grant. Its national ID is `demo_national_id(8)`.
            DemoUser { username: "tpe.vendorstaff", display_name: "簡維運", role: "vendor_staff", grants: &[] },
        ],
        // Seed 001 pt 3(2): every query type of the cloud query service.
        linked_query_types: &QueryType::ALL,
    },
    DemoAgency {
        code: "HLN-HR",
        name: "花蓮縣戶政事務所",
        kind: Some(AgencyKind::HouseholdRegistration),
        requires_head_approval: true,
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
            DemoUser { username: "hln.head", display_name: "劉主任", role: "agency_head", grants: &[] },
        ],
        linked_query_types: &[QueryType::EntryExitLastYear, QueryType::TravelerHistory],
    },
    DemoAgency {
        code: "NIA",
        name: "內政部移民署",
        kind: None,
        requires_head_approval: false,
        unit: "資訊組",
        users: &[DemoUser { username: "nia.reviewer", display_name: "趙審核", role: "nia_reviewer", grants: &[] }],
        linked_query_types: &[],
    },
];

/// The query types the demo link of `agency` approves (empty for an agency without one): what
/// nia-mock must approve for it too.
pub fn linked_query_types(agency: &str) -> &'static [QueryType] {
    AGENCIES.iter().find(|a| a.code == agency).map_or(&[], |a| a.linked_query_types)
}

/// The demo agencies' codes.
pub fn agency_codes() -> impl Iterator<Item = &'static str> {
    AGENCIES.iter().map(|a| a.code)
}

/// One argon2id hash of the demo password for every demo user: hashing is deliberately slow, and
/// tests start many stacks.
fn demo_password_hash() -> Result<String, IdentityError> {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(hash) = HASH.get() {
        return Ok(hash.clone());
    }
    let hash = hash_password(DEMO_PASSWORD)?;
    Ok(HASH.get_or_init(|| hash).clone())
}

/// The agency kind code of the immigration agency itself.
pub const IMMIGRATION_AGENCY_KIND: &str = "immigration_agency";

/// A valid, fictitious national ID for the n-th demo user (`A1` + 7 digits + check digit), so
/// separation-of-duties and contractor checks have a person to compare.
pub fn demo_national_id(n: u32) -> String {
    immilink_shared::ids::synthetic_national_id(n)
}

/// The national ID the demo gives `username` (the n-th person: 100 per agency, in seeding order), for
/// walk-throughs and tests that register a demo user as contractor personnel.
pub fn demo_national_id_of(username: &str) -> Option<String> {
    AGENCIES.iter().enumerate().find_map(|(index, agency)| {
        let offset = agency.users.iter().position(|user| user.username == username)?;
        Some(demo_national_id(index as u32 * 100 + offset as u32))
    })
}

/// Seeds the demo agencies that do not exist yet. Returns how many were created.
pub fn seed(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize, IdentityError> {
    let mut created = 0;
    for (index, agency) in AGENCIES.iter().enumerate() {
        let exists: i64 = agencies::table.filter(agencies::code.eq(agency.code)).count().get_result(conn)?;
        if exists == 0 {
            conn.write_transaction(|conn| seed_agency(conn, now, agency, index as u32 * 100))?;
            created += 1;
        }
    }
    Ok(created)
}

fn seed_agency(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency: &DemoAgency,
    first_person: u32,
) -> Result<(), IdentityError> {
    let agency_id = AgencyId::new(new_id());
    let unit_id = UnitId::new(new_id());
    let kind = agency.kind.map_or(IMMIGRATION_AGENCY_KIND, AgencyKind::code);
    diesel::insert_into(agencies::table)
        .values((
            agencies::id.eq(&agency_id),
            agencies::code.eq(agency.code),
            agencies::name.eq(agency.name),
            agencies::kind.eq(kind),
            agencies::created_at.eq(to_db(now)),
            agencies::requires_head_approval.eq(agency.requires_head_approval),
        ))
        .execute(conn)?;
    diesel::insert_into(units::table)
        .values((units::id.eq(&unit_id), units::agency_id.eq(&agency_id), units::name.eq(agency.unit)))
        .execute(conn)?;
    let purposes: Vec<String> = catalogue::purposes()
        .into_iter()
        // Including "other business" (R-QRY-10): the link and grant allow it, and each lookup under
        // it still needs the unit supervisor's recorded approval for its case.
        .filter(|p| Some(p.agency_kind) == agency.kind)
        .map(|p| p.code)
        .collect();
    let mut manager = None;
    for (offset, user) in (0..).zip(agency.users) {
        let user_id = seed_user(conn, now, &agency_id, &unit_id, user, &purposes, first_person + offset)?;
        if user.role == roles::ACCOUNT_MANAGER {
            manager = Some(user_id);
        }
    }
    if let (Some(kind), Some(manager)) = (agency.kind, manager) {
        seed_link(conn, now, &agency_id, agency, kind, &purposes, &manager)?;
    }
    Ok(())
}

/// The agency's active link: every legal basis of its kind × its purposes × its linked query
/// types, in one insert, with the application it was approved on (filed by the account manager
/// before immilink, so without events).
fn seed_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency_id: &AgencyId,
    agency: &DemoAgency,
    kind: AgencyKind,
    purposes: &[String],
    manager: &UserId,
) -> Result<(), IdentityError> {
    let link_id = LinkId::new(new_id());
    let (valid_from, valid_until) = (to_db(now - Duration::days(1)), to_db(now + Duration::days(2 * 365)));
    diesel::insert_into(agency_links::table)
        .values((
            agency_links::id.eq(&link_id),
            agency_links::agency_id.eq(agency_id),
            agency_links::status.eq(LinkStatus::Active),
            agency_links::valid_from.eq(valid_from),
            agency_links::valid_until.eq(valid_until),
            agency_links::created_at.eq(to_db(now)),
            agency_links::status_cause.eq(LinkCause::Approved),
            agency_links::status_reason.eq("demo link, approved before immilink"),
            agency_links::status_changed_at.eq(to_db(now)),
            agency_links::activated_at.eq(to_db(now)),
            agency_links::review_due_on.eq(links::add_months(business_date(now), links::NECESSITY_REVIEW_MONTHS)),
        ))
        .execute(conn)?;
    let bases: Vec<String> =
        catalogue::legal_bases().into_iter().filter(|b| b.agency_kind == kind).map(|b| b.code).collect();
    let mut items = Vec::new();
    for basis in &bases {
        for purpose in purposes {
            for query_type in agency.linked_query_types {
                items.push((
                    agency_link_items::link_id.eq(&link_id),
                    agency_link_items::legal_basis.eq(basis),
                    agency_link_items::purpose_code.eq(purpose),
                    agency_link_items::query_type.eq(query_type.code()),
                ));
            }
        }
    }
    immilink_shared::insert_rows!(conn, agency_link_items::table, &items);
    let link = links::find(conn, &link_id)?;
    let form = demo_form(agency, &bases, purposes, &link);
    link_forms::record_decided_application(conn, now, &link, manager, &form)
}

/// The form the demo link was approved on.
fn demo_form(agency: &DemoAgency, bases: &[String], purposes: &[String], link: &links::LinkRow) -> LinkForm {
    let items = bases
        .iter()
        .flat_map(|basis| purposes.iter().map(move |purpose| (basis, purpose)))
        .flat_map(|(basis, purpose)| {
            agency.linked_query_types.iter().map(move |query_type| RequestedItem {
                query_type: query_type.code().into(),
                legal_basis: basis.clone(),
                purpose_code: purpose.clone(),
            })
        })
        .collect();
    let contact = |name: &str, title: &str, who: &str| Contact {
        name: name.into(),
        title: title.into(),
        phone: "02-2720-8889".into(),
        email: format!("{who}@demo.immilink.invalid"),
    };
    let prefix = agency.code.split('-').next().unwrap_or("demo").to_ascii_lowercase();
    LinkForm {
        legal_bases: bases.to_vec(),
        purpose: format!("{}辦理法定業務，需查證當事人入出境及居留資料", agency.name),
        items,
        using_department: agency.unit.into(),
        provisioning: Provisioning {
            online_query: true,
            online_query_detail: Some("immilink 線上查詢".into()),
            file_transfer: None,
        },
        usage_from: link.usage_from(),
        usage_until: link.usage_until(),
        handling_on_end: "查詢紀錄依規定保存五年後銷毀；目的消失時即停止查詢並函知移民署".into(),
        supervisor: contact("王科長", "科長", &format!("{prefix}.supervisor")),
        handler: contact("林承辦", "社工員", &format!("{prefix}.manager")),
        management_rules: ManagementRules {
            title: format!("{}應用移民資訊管理規定", agency.name),
            version: "1".into(),
            coverage: (1..)
                .zip(RulesItem::ALL)
                .map(|(n, item)| RulesCoverage { item: *item, section: format!("第{n}點") })
                .collect(),
        },
        changes: Vec::new(),
    }
}

fn seed_user(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency_id: &AgencyId,
    unit_id: &UnitId,
    user: &DemoUser,
    purposes: &[String],
    person: u32,
) -> Result<UserId, IdentityError> {
    let user_id = UserId::new(new_id());
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&user_id),
            users::agency_id.eq(agency_id),
            users::unit_id.eq(unit_id),
            users::username.eq(user.username),
            users::display_name.eq(user.display_name),
            users::password_hash.eq(demo_password_hash()?),
            users::certificate_serial.eq(format!("DEMO-{}", user.username)),
            users::status.eq(AccountStatus::Active),
            users::created_at.eq(to_db(now)),
            users::national_id.eq(demo_national_id(person)),
            users::email.eq(format!("{}@demo.immilink.invalid", user.username)),
        ))
        .execute(conn)?;
    diesel::insert_into(user_roles::table)
        .values((user_roles::user_id.eq(&user_id), user_roles::role.eq(user.role)))
        .execute(conn)?;
    diesel::insert_into(user_ips::table)
        .values((user_ips::user_id.eq(&user_id), user_ips::ip.eq(DEMO_IP)))
        .execute(conn)?;
    let mut grants = Vec::new();
    for query_type in user.grants {
        for purpose in purposes {
            grants.push((
                user_grants::user_id.eq(&user_id),
                user_grants::query_type.eq(query_type.code()),
                user_grants::purpose_code.eq(purpose),
            ));
        }
    }
    immilink_shared::insert_rows!(conn, user_grants::table, &grants);
    Ok(user_id)
}
