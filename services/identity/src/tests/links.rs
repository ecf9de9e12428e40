//! Agency links (seed 003, R-LINK-01..12, R-AUD-09) against the real database: applications and
//! their per-item decisions, the lifecycle and its clocks (driven by explicit instants, read as
//! Taipei dates), and what lookups the link's standing allows.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use immilink_shared::clock::{business_date, from_db, taipei_day_start};
use immilink_shared::testing::TestDb;

use super::{actor, audit_events, kinds_since, seeded, user_id};
use crate::domain::anomalies::{self, AnomalyStatus};
use crate::domain::demo::{demo_national_id, DEMO_PASSWORD};
use crate::domain::link_forms::{
    self, ApplicationKind, ChangeKind, Contact, FileTransfer, ItemDecision, ItemVerdict, LinkForm, ManagementRules,
    Provisioning, RequestedItem, RulesCoverage, RulesItem, TransferMethod,
};
use crate::domain::link_sweep::{sweep, SweepRun};
use crate::domain::links::{self, add_months, LinkCause, LinkId, LinkRow, LinkStatus, NiaDecision, Standing};
use crate::domain::{new_id, notifications, permissions, AgencyCode, AgencyId, IdentityError};
use crate::schema::{agencies, agency_links, user_roles, users};
use immilink_shared::db::PooledConn;

fn item(query_type: &str, legal_basis: &str) -> RequestedItem {
    RequestedItem {
        query_type: query_type.into(),
        legal_basis: legal_basis.into(),
        purpose_code: "sw_statutory_business".into(),
    }
}

fn contact(name: &str) -> Contact {
    Contact {
        name: name.into(),
        title: "科長".into(),
        phone: "02-1234-5678".into(),
        email: format!("{name}@example.gov.tw"),
    }
}

fn full_rules() -> ManagementRules {
    ManagementRules {
        title: "應用移民資訊管理規定".into(),
        version: "2".into(),
        coverage: RulesItem::ALL
            .iter()
            .map(|item| RulesCoverage { item: *item, section: format!("第{item}點") })
            .collect(),
    }
}

/// A complete social-welfare form for a year from `today`.
fn form(today: NaiveDate) -> LinkForm {
    LinkForm {
        legal_bases: vec!["social_assistance_act".into(), "senior_welfare_act".into()],
        purpose: "低收入戶資格審查".into(),
        items: vec![
            item("entry_exit_last_year", "social_assistance_act"),
            item("foreigner_residence", "social_assistance_act"),
            item("eid_photo", "senior_welfare_act"),
        ],
        using_department: "社會救助科".into(),
        provisioning: Provisioning {
            online_query: true,
            online_query_detail: Some("immilink".into()),
            file_transfer: Some(FileTransfer {
                method: TransferMethod::Sftp,
                method_other: None,
                designated_account_or_ip: "10.20.0.5".into(),
            }),
        },
        usage_from: today,
        usage_until: add_months(today, 12),
        handling_on_end: "期滿即刪除".into(),
        supervisor: contact("supervisor"),
        handler: contact("handler"),
        management_rules: full_rules(),
        changes: Vec::new(),
    }
}

/// A new social-welfare agency (public, or non-public under `authority`) with an account manager
/// `<code>.manager`; returns its id.
fn new_agency(conn: &mut PooledConn, now: DateTime<Utc>, code: &str, authority: Option<&str>) -> AgencyId {
    let id = AgencyId::new(new_id());
    let authority_id: Option<AgencyId> =
        authority.map(|code| agencies::table.filter(agencies::code.eq(code)).select(agencies::id).first(conn).unwrap());
    diesel::insert_into(agencies::table)
        .values((
            agencies::id.eq(&id),
            agencies::code.eq(code),
            agencies::name.eq(format!("{code} 機關")),
            agencies::kind.eq("social_welfare"),
            agencies::created_at.eq(now.naive_utc()),
            agencies::is_public.eq(authority.is_none()),
            agencies::competent_authority_id.eq(authority_id),
        ))
        .execute(conn)
        .unwrap();
    let user = new_id();
    let username = format!("{}.manager", code.to_ascii_lowercase());
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&user),
            users::agency_id.eq(&id),
            users::username.eq(&username),
            users::display_name.eq("管理者"),
            users::password_hash.eq(DEMO_PASSWORD),
            users::certificate_serial.eq(format!("CERT-{username}")),
            users::status.eq("active"),
            users::created_at.eq(now.naive_utc()),
            users::national_id.eq(demo_national_id(900 + code.len() as u32)),
            users::email.eq(format!("{username}@example.gov.tw")),
        ))
        .execute(conn)
        .unwrap();
    diesel::insert_into(user_roles::table)
        .values((user_roles::user_id.eq(&user), user_roles::role.eq("account_manager")))
        .execute(conn)
        .unwrap();
    id
}

fn agency_id(conn: &mut PooledConn, code: &str) -> AgencyId {
    agencies::table.filter(agencies::code.eq(code)).select(agencies::id).first(conn).unwrap()
}

fn link_of(conn: &mut PooledConn, code: &str) -> LinkRow {
    let agency = agency_id(conn, code);
    links::current_link(conn, &agency).unwrap().unwrap()
}

fn refusal(conn: &mut PooledConn, at: DateTime<Utc>, code: &str) -> Option<(&'static str, &'static str)> {
    let agency = agency_id(conn, code);
    match links::standing(conn, at, &agency).unwrap() {
        Standing::Usable { .. } => None,
        Standing::Refused(refusal) => Some((refusal.rule, refusal.code)),
    }
}

fn caseworker_may_look_up(conn: &mut PooledConn, at: DateTime<Utc>) -> bool {
    let caseworker = user_id(conn, "tpe.caseworker");
    let agency = agency_id(conn, "TPE-SW");
    !permissions::permitted(conn, at, &caseworker, &agency).unwrap().is_empty()
}

fn approve_all(conn: &mut PooledConn, now: DateTime<Utc>, link: &LinkId, items: &[RequestedItem]) -> links::LinkDetail {
    let nia = actor(conn, "nia.reviewer");
    let verdicts: Vec<ItemVerdict> = items
        .iter()
        .map(|item| ItemVerdict { item: item.clone(), decision: NiaDecision::Approve, reason: String::new() })
        .collect();
    link_forms::decide_items(conn, now, &nia, link, &verdicts).unwrap()
}

/// The Taipei midnight `days` after today.
fn days_later(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    taipei_day_start(business_date(now) + Duration::days(days))
}

fn count_links(conn: &mut PooledConn) -> i64 {
    agency_links::table.count().get_result(conn).unwrap()
}

#[test]
fn link_status_moves_only_along_the_lifecycle() {
    use LinkStatus::*;
    let legal = [
        (Pending, Active),
        (Pending, Rejected),
        (Active, Suspended),
        (Active, Terminated),
        (Active, Lapsed),
        (Suspended, Active),
        (Suspended, Terminated),
        (Suspended, Lapsed),
    ];
    for &from in LinkStatus::ALL {
        for &to in LinkStatus::ALL {
            let moved = from.transition(to);
            if legal.contains(&(from, to)) {
                assert_eq!(moved.ok(), Some(to), "{from} → {to}");
            } else {
                assert!(matches!(moved, Err(IdentityError::LinkStatusConflict { .. })), "{from} → {to} is refused");
            }
        }
    }
}

#[test]
fn r_link_02_a_first_application_stores_every_field_of_the_form_and_waits_pending() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    new_agency(&mut conn, now, "NTP-SW", None);
    let manager = actor(&mut conn, "ntp-sw.manager");
    let seen = audit_events(&mut conn).len();
    let filed = form(business_date(now));
    let detail = link_forms::apply(&mut conn, now, &manager, None, filed.clone()).unwrap();
    assert_eq!(detail.link.status, LinkStatus::Pending);
    assert_eq!(detail.agency_code, AgencyCode::new("NTP-SW"));
    assert_eq!((detail.link.usage_from(), detail.link.usage_until()), (filed.usage_from, filed.usage_until));
    let [application] = &detail.applications[..] else { panic!("one application") };
    assert_eq!(application.kind, ApplicationKind::First);
    assert_eq!(application.form, filed, "the form is stored as filed, every field");
    assert!(application.items.iter().all(|i| i.decision == ItemDecision::Pending));
    assert_eq!(application.items.len(), 3);
    assert!(detail.items.is_empty(), "a pending link carries nothing yet");
    assert_eq!(refusal(&mut conn, now, "NTP-SW"), Some(("R-LINK-03", "link_pending")));
    assert_eq!(kinds_since(&mut conn, seen), ["agency_link.applied"]);
    let told = notifications::for_recipient(&mut conn, "nia.reviewer@demo.immilink.invalid").unwrap();
    assert_eq!(told.len(), 1, "the immigration agency's reviewer is told of the application");
    // A second first application while this one is live is refused: changes are change applications.
    let again = link_forms::apply(&mut conn, now, &manager, None, filed);
    assert!(matches!(again, Err(IdentityError::LinkExists { .. })), "{again:?}");
}

#[test]
fn r_link_01_provisioning_is_online_query_or_a_file_transfer_with_its_method() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    new_agency(&mut conn, now, "NTP-SW", None);
    let manager = actor(&mut conn, "ntp-sw.manager");
    let mut neither = form(business_date(now));
    neither.provisioning = Provisioning { online_query: false, online_query_detail: None, file_transfer: None };
    let refused = link_forms::apply(&mut conn, now, &manager, None, neither);
    assert!(matches!(&refused, Err(IdentityError::Invalid { field, .. }) if field == "provisioning"), "{refused:?}");
    let mut other = form(business_date(now));
    other.provisioning.file_transfer =
        Some(FileTransfer { method: TransferMethod::Other, method_other: None, designated_account_or_ip: "x".into() });
    let refused = link_forms::apply(&mut conn, now, &manager, None, other);
    assert!(
        matches!(&refused, Err(IdentityError::Missing { field }) if field == "provisioning.file_transfer.method_other"),
        "{refused:?}"
    );
    assert_eq!(count_links(&mut conn), 2, "nothing was written for the refused forms");
    let mut by_email = form(business_date(now));
    by_email.provisioning = Provisioning {
        online_query: false,
        online_query_detail: None,
        file_transfer: Some(FileTransfer {
            method: TransferMethod::Email,
            method_other: None,
            designated_account_or_ip: "link@ntp.gov.tw".into(),
        }),
    };
    let detail = link_forms::apply(&mut conn, now, &manager, None, by_email.clone()).unwrap();
    assert_eq!(detail.applications[0].form.provisioning, by_email.provisioning);
}

#[test]
fn r_link_03_each_item_needs_a_declared_legal_basis_and_the_nia_decides_each_one() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    new_agency(&mut conn, now, "NTP-SW", None);
    let manager = actor(&mut conn, "ntp-sw.manager");
    let mut unbacked = form(business_date(now));
    unbacked.items.push(item("missing_persons", "disability_rights_act"));
    let refused = link_forms::apply(&mut conn, now, &manager, None, unbacked);
    assert!(matches!(refused, Err(IdentityError::ItemWithoutLegalBasis { index: 3, .. })), "{refused:?}");

    let filed = form(business_date(now));
    let link = link_forms::apply(&mut conn, now, &manager, None, filed.clone()).unwrap().link;
    let verdict = |item: &RequestedItem, decision, reason: &str| ItemVerdict {
        item: item.clone(),
        decision,
        reason: reason.into(),
    };
    // Only the immigration agency decides, and a rejection needs a reason.
    let own = link_forms::decide_items(
        &mut conn,
        now,
        &manager,
        &link.id,
        &[verdict(&filed.items[0], NiaDecision::Approve, "")],
    );
    assert!(matches!(own, Err(IdentityError::RoleRequired { .. })), "{own:?}");
    let nia = actor(&mut conn, "nia.reviewer");
    let bare =
        link_forms::decide_items(&mut conn, now, &nia, &link.id, &[verdict(&filed.items[2], NiaDecision::Reject, " ")]);
    assert!(matches!(&bare, Err(IdentityError::Missing { field }) if field == "decisions[0].reason"), "{bare:?}");
    // Item by item: the link waits until the last is decided, then carries exactly the approved ones.
    let first =
        link_forms::decide_items(&mut conn, now, &nia, &link.id, &[verdict(&filed.items[0], NiaDecision::Approve, "")])
            .unwrap();
    assert_eq!(first.link.status, LinkStatus::Pending);
    let unknown = link_forms::decide_items(
        &mut conn,
        now,
        &nia,
        &link.id,
        &[verdict(&item("traveler_history", "social_assistance_act"), NiaDecision::Approve, "")],
    );
    assert!(matches!(&unknown, Err(IdentityError::Invalid { field, .. }) if field == "decisions[0]"), "{unknown:?}");
    let done = link_forms::decide_items(
        &mut conn,
        now,
        &nia,
        &link.id,
        &[
            verdict(&filed.items[1], NiaDecision::Approve, ""),
            verdict(&filed.items[2], NiaDecision::Reject, "肖像非業務必要"),
        ],
    )
    .unwrap();
    assert_eq!(done.link.status, LinkStatus::Active);
    assert_eq!(done.link.status_cause, Some(LinkCause::Approved));
    let carried: Vec<&str> = done.items.iter().map(|i| i.query_type.as_str()).collect();
    assert_eq!(carried, ["entry_exit_last_year", "foreigner_residence"], "exactly the approved items");
    let ntp = agency_id(&mut conn, "NTP-SW");
    match links::standing(&mut conn, now, &ntp).unwrap() {
        Standing::Usable { query_types, .. } => {
            assert_eq!(query_types, ["entry_exit_last_year", "foreigner_residence"])
        }
        other => panic!("usable: {other:?}"),
    }
    let rejected = &done.applications[0].items.iter().find(|i| i.query_type == "eid_photo").unwrap();
    assert_eq!((rejected.decision, rejected.reason.as_deref()), (ItemDecision::Rejected, Some("肖像非業務必要")));
}

#[test]
fn r_link_03_a_link_whose_every_item_is_rejected_is_rejected_and_carries_nothing() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    new_agency(&mut conn, now, "NTP-SW", None);
    let manager = actor(&mut conn, "ntp-sw.manager");
    let filed = form(business_date(now));
    let link = link_forms::apply(&mut conn, now, &manager, None, filed.clone()).unwrap().link;
    let nia = actor(&mut conn, "nia.reviewer");
    let verdicts: Vec<ItemVerdict> = filed
        .items
        .iter()
        .map(|i| ItemVerdict { item: i.clone(), decision: NiaDecision::Reject, reason: "非法定職務".into() })
        .collect();
    let done = link_forms::decide_items(&mut conn, now, &nia, &link.id, &verdicts).unwrap();
    assert_eq!(done.link.status, LinkStatus::Rejected);
    assert!(done.items.is_empty());
    assert_eq!(refusal(&mut conn, now, "NTP-SW"), Some(("R-LINK-02", "no_active_link")));
}

#[test]
fn r_link_04_rules_missing_items_of_point_4_refuse_the_application_naming_each() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    new_agency(&mut conn, now, "NTP-SW", None);
    let manager = actor(&mut conn, "ntp-sw.manager");
    let mut partial = form(business_date(now));
    partial
        .management_rules
        .coverage
        .retain(|c| !matches!(c.item, RulesItem::ContractorProcedure | RulesItem::UserLiability));
    let before = count_links(&mut conn);
    let refused = link_forms::apply(&mut conn, now, &manager, None, partial);
    match refused {
        Err(IdentityError::RulesIncomplete { missing }) => {
            assert_eq!(missing, [RulesItem::ContractorProcedure, RulesItem::UserLiability])
        }
        other => panic!("refused naming the missing items: {other:?}"),
    }
    assert_eq!(count_links(&mut conn), before, "nothing written");
    // A change application must attach complete rules too.
    let tpe = actor(&mut conn, "tpe.manager");
    let link = link_of(&mut conn, "TPE-SW");
    let mut change = form(business_date(now));
    change.changes = vec![ChangeKind::Rules];
    change.management_rules.coverage.pop();
    let refused = link_forms::apply_for_change(&mut conn, now, &tpe, &link.id, change);
    assert!(matches!(refused, Err(IdentityError::RulesIncomplete { .. })), "{refused:?}");
}

#[test]
fn r_link_05_a_change_application_refiles_the_form_and_takes_effect_once_decided() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let tpe = actor(&mut conn, "tpe.manager");
    let link = link_of(&mut conn, "TPE-SW");
    let mut nothing = form(business_date(now));
    let refused = link_forms::apply_for_change(&mut conn, now, &tpe, &link.id, nothing.clone());
    assert!(matches!(refused, Err(IdentityError::NoChange)), "{refused:?}");
    // Another agency's manager cannot file for it (and does not learn it exists).
    let hln = actor(&mut conn, "hln.manager");
    nothing.changes = vec![ChangeKind::Handler];
    let foreign = link_forms::apply_for_change(&mut conn, now, &hln, &link.id, nothing.clone());
    assert!(matches!(foreign, Err(IdentityError::NotFound(_))), "{foreign:?}");

    let mut change = form(business_date(now));
    change.changes = vec![ChangeKind::Handler, ChangeKind::Supervisor];
    change.handler = contact("new-handler");
    let filed = link_forms::apply_for_change(&mut conn, now, &tpe, &link.id, change.clone()).unwrap();
    assert_eq!(filed.link.status, LinkStatus::Active, "the link works as before meanwhile");
    assert_eq!(filed.items.len(), 88, "still the demo link's items until the change is decided");
    assert!(caseworker_may_look_up(&mut conn, now));
    let second = link_forms::apply_for_change(&mut conn, now, &tpe, &link.id, change.clone());
    assert!(matches!(second, Err(IdentityError::RequestPending)), "{second:?}");
    let seen = audit_events(&mut conn).len();
    let decided = approve_all(&mut conn, now, &link.id, &change.items);
    assert_eq!(decided.items.len(), 3, "the link now carries exactly the change's approved items");
    let latest = decided.applications.last().unwrap();
    assert_eq!((latest.kind, latest.form.handler.name.as_str()), (ApplicationKind::Change, "new-handler"));
    assert_eq!(kinds_since(&mut conn, seen), ["agency_link.items_decided", "agency_link.changed"]);
}

#[test]
fn r_aud_09_an_anomaly_notice_has_a_deadline_and_the_agency_explains_and_remediates_in_time() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let nia = actor(&mut conn, "nia.reviewer");
    let today = business_date(now);
    let past = anomalies::issue(&mut conn, now, &nia, &link.id, "查詢量異常", today);
    assert!(matches!(&past, Err(IdentityError::Invalid { field, .. }) if field == "deadline"), "{past:?}");
    let caseworker = actor(&mut conn, "tpe.caseworker");
    let not_nia = anomalies::issue(&mut conn, now, &caseworker, &link.id, "x", today + Duration::days(7));
    assert!(matches!(not_nia, Err(IdentityError::RoleRequired { .. })), "{not_nia:?}");
    let deadline = today + Duration::days(7);
    let notice = anomalies::issue(&mut conn, now, &nia, &link.id, "夜間大量查詢", deadline).unwrap();
    assert_eq!((notice.status, notice.deadline), (AnomalyStatus::Open, deadline));
    let told = notifications::for_recipient(&mut conn, "tpe.manager@demo.immilink.invalid").unwrap();
    assert!(told.iter().any(|n| n.body.contains("夜間大量查詢")), "the agency's account manager is told");
    // Each agency sees its own notices; the immigration agency sees all.
    let hln = actor(&mut conn, "hln.manager");
    assert!(anomalies::list(&mut conn, &hln, None, None).unwrap().is_empty());
    let tpe = actor(&mut conn, "tpe.manager");
    assert_eq!(anomalies::list(&mut conn, &tpe, None, None).unwrap().len(), 1);
    assert_eq!(anomalies::list(&mut conn, &nia, Some(&link.id), Some(AnomalyStatus::Open)).unwrap().len(), 1);
    let by_hln = anomalies::remediate(&mut conn, now, &hln, &notice.id, "x", "y");
    assert!(matches!(by_hln, Err(IdentityError::NotFound(_))), "{by_hln:?}");
    let answered =
        anomalies::remediate(&mut conn, now, &tpe, &notice.id, "承辦人誤用批次", "已加強教育訓練並限制批次權限")
            .unwrap();
    assert_eq!(answered.status, AnomalyStatus::Remediated);
    assert_eq!(answered.remediation.as_deref(), Some("已加強教育訓練並限制批次權限"));
    let nia_told = notifications::for_recipient(&mut conn, "nia.reviewer@demo.immilink.invalid").unwrap();
    assert!(nia_told.iter().any(|n| n.body.contains("已加強教育訓練")), "the immigration agency is told of the answer");
    // Remediated in time: the deadline passing changes nothing.
    let run = sweep(&mut conn, days_later(now, 9)).unwrap();
    assert_eq!(run.overdue_notices, 0);
    assert_eq!(link_of(&mut conn, "TPE-SW").status, LinkStatus::Active);
}

#[test]
fn r_link_06_an_anomaly_unremediated_by_its_deadline_suspends_the_link_and_every_lookup_of_it() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let nia = actor(&mut conn, "nia.reviewer");
    let deadline = business_date(now) + Duration::days(7);
    anomalies::issue(&mut conn, now, &nia, &link.id, "未依規定保存日誌", deadline).unwrap();
    // On the deadline itself nothing happens; the day after, the sweep suspends.
    let on_deadline = taipei_day_start(deadline) + Duration::hours(23);
    assert_eq!(sweep(&mut conn, on_deadline).unwrap(), SweepRun::default());
    assert!(caseworker_may_look_up(&mut conn, on_deadline));
    let seen = audit_events(&mut conn).len();
    let after = taipei_day_start(deadline + Duration::days(1));
    let run = sweep(&mut conn, after).unwrap();
    assert_eq!(run.overdue_notices, 1);
    let suspended = link_of(&mut conn, "TPE-SW");
    assert_eq!(
        (suspended.status, suspended.status_cause),
        (LinkStatus::Suspended, Some(LinkCause::AnomalyUnremediated))
    );
    assert_eq!(refusal(&mut conn, after, "TPE-SW"), Some(("R-LINK-06", "link_suspended")));
    assert!(!caseworker_may_look_up(&mut conn, after), "every lookup of the agency is refused");
    assert_eq!(refusal(&mut conn, after, "HLN-HR"), None, "another agency's lookups go on");
    assert_eq!(kinds_since(&mut conn, seen), ["anomaly_notice.overdue", "agency_link.transitioned"]);
    assert_eq!(sweep(&mut conn, after + Duration::hours(1)).unwrap(), SweepRun::default(), "the sweep is idempotent");
}

#[test]
fn r_link_06_the_immigration_agency_suspends_at_once_and_only_it_may() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let manager = actor(&mut conn, "tpe.manager");
    let refused = links::suspend(&mut conn, now, &manager, &link.id, "自行暫停");
    assert!(matches!(refused, Err(IdentityError::RoleRequired { .. })), "{refused:?}");
    let nia = actor(&mut conn, "nia.reviewer");
    let suspended = links::suspend(&mut conn, now, &nia, &link.id, "稽核發現重大違規").unwrap();
    assert_eq!((suspended.status, suspended.status_cause), (LinkStatus::Suspended, Some(LinkCause::SuspendedByNia)));
    assert_eq!(refusal(&mut conn, now, "TPE-SW"), Some(("R-LINK-06", "link_suspended")));
    let told = notifications::for_recipient(&mut conn, "tpe.manager@demo.immilink.invalid").unwrap();
    assert!(told.iter().any(|n| n.body.contains("稽核發現重大違規")), "the agency's account managers are told");
    let twice = links::suspend(&mut conn, now, &nia, &link.id, "again");
    assert!(matches!(twice, Err(IdentityError::LinkStatusConflict { .. })), "{twice:?}");
}

#[test]
fn r_link_07_resumption_needs_completed_remediation_and_an_approved_request() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let nia = actor(&mut conn, "nia.reviewer");
    let notice =
        anomalies::issue(&mut conn, now, &nia, &link.id, "帳號共用", business_date(now) + Duration::days(3)).unwrap();
    let later = days_later(now, 5);
    sweep(&mut conn, later).unwrap();
    let manager = actor(&mut conn, "tpe.manager");
    let early = links::request_resumption(&mut conn, later, &manager, &link.id, "改善中");
    assert!(matches!(early, Err(IdentityError::RemediationOutstanding { notices: 1 })), "{early:?}");
    let late = anomalies::remediate(&mut conn, later, &manager, &notice.id, "共用帳號", "已停用共用帳號").unwrap();
    assert_eq!(late.status, AnomalyStatus::Remediated, "a late remediation still counts");
    let request = links::request_resumption(&mut conn, later, &manager, &link.id, "已停用共用帳號").unwrap();
    let nia_told = notifications::for_recipient(&mut conn, "nia.reviewer@demo.immilink.invalid").unwrap();
    assert!(nia_told.iter().any(|n| n.body.contains(request.id.as_str())), "the reviewer is asked to decide");
    assert!(!caseworker_may_look_up(&mut conn, later), "no lookups before the approval");
    let own = links::decide_resumption(&mut conn, later, &manager, &link.id, &request.id, NiaDecision::Approve, "");
    assert!(matches!(own, Err(IdentityError::RoleRequired { .. })), "{own:?}");
    let approved =
        links::decide_resumption(&mut conn, later, &nia, &link.id, &request.id, NiaDecision::Approve, "改善確認")
            .unwrap();
    assert_eq!(approved.status, links::ResumptionStatus::Approved);
    let resumed = link_of(&mut conn, "TPE-SW");
    assert_eq!((resumed.status, resumed.status_cause), (LinkStatus::Active, Some(LinkCause::Resumed)));
    assert!(caseworker_may_look_up(&mut conn, later));
}

#[test]
fn r_link_07_after_six_months_of_suspension_a_new_application_is_required() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let nia = actor(&mut conn, "nia.reviewer");
    links::suspend(&mut conn, now, &nia, &link.id, "重大違規").unwrap();
    let suspended_on = business_date(now);
    let manager = actor(&mut conn, "tpe.manager");
    // Six months to the day still allows a request; the day after does not.
    let last_day = taipei_day_start(add_months(suspended_on, 6)) + Duration::hours(12);
    assert_eq!(sweep(&mut conn, last_day).unwrap().lapsed_suspensions, 0);
    let too_late = last_day + Duration::days(1);
    let refused = links::request_resumption(&mut conn, too_late, &manager, &link.id, "已改善");
    assert!(
        matches!(refused, Err(IdentityError::ResumptionTooLate { suspended_on: on }) if on == suspended_on),
        "{refused:?}"
    );
    let run = sweep(&mut conn, too_late).unwrap();
    assert_eq!(run.lapsed_suspensions, 1);
    let lapsed = link_of(&mut conn, "TPE-SW");
    assert_eq!((lapsed.status, lapsed.status_cause), (LinkStatus::Lapsed, Some(LinkCause::SuspendedTooLong)));
    assert_eq!(refusal(&mut conn, too_late, "TPE-SW"), Some(("R-LINK-07", "link_lapsed")));
    // The new application the rule requires is accepted.
    let fresh = link_forms::apply(&mut conn, too_late, &manager, None, form(business_date(too_late))).unwrap();
    assert_eq!(fresh.link.status, LinkStatus::Pending);
}

#[test]
fn r_link_08_termination_needs_a_months_notice_and_lookups_stop_on_its_date() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let manager = actor(&mut conn, "tpe.manager");
    let today = business_date(now);
    let earliest = add_months(today, 1);
    let short =
        links::give_termination_notice(&mut conn, now, &manager, &link.id, earliest - Duration::days(1), "業務移撥");
    assert!(
        matches!(short, Err(IdentityError::TerminationNoticeTooShort { earliest: e }) if e == earliest),
        "{short:?}"
    );
    let noticed = links::give_termination_notice(&mut conn, now, &manager, &link.id, earliest, "業務移撥").unwrap();
    assert_eq!(noticed.termination_date, Some(earliest));
    let eve = taipei_day_start(earliest) - Duration::seconds(1);
    assert!(caseworker_may_look_up(&mut conn, eve), "lookups run until the date");
    let on_the_day = taipei_day_start(earliest);
    assert_eq!(
        refusal(&mut conn, on_the_day, "TPE-SW"),
        Some(("R-LINK-08", "link_terminated")),
        "even before the sweep"
    );
    assert!(!caseworker_may_look_up(&mut conn, on_the_day));
    assert_eq!(sweep(&mut conn, on_the_day).unwrap().terminated, 1);
    let ended = link_of(&mut conn, "TPE-SW");
    assert_eq!((ended.status, ended.status_cause), (LinkStatus::Terminated, Some(LinkCause::TerminationDate)));
    assert_eq!(refusal(&mut conn, on_the_day, "TPE-SW"), Some(("R-LINK-08", "link_terminated")));
}

#[test]
fn r_link_09_a_necessity_review_falls_due_and_a_lapsed_purpose_stops_the_link() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let due = link.review_due_on.expect("an active link has a review due date");
    assert_eq!(due, add_months(business_date(now), 12));
    assert_eq!(sweep(&mut conn, taipei_day_start(due) - Duration::hours(1)).unwrap().reviews_due, 0);
    let seen = audit_events(&mut conn).len();
    // Both demo links were approved the same day: both fall due.
    assert_eq!(sweep(&mut conn, taipei_day_start(due)).unwrap().reviews_due, 2);
    assert_eq!(sweep(&mut conn, taipei_day_start(due) + Duration::hours(2)).unwrap().reviews_due, 0, "told once");
    assert_eq!(kinds_since(&mut conn, seen), ["agency_link.review_due", "agency_link.review_due"]);
    assert_eq!(link_of(&mut conn, "TPE-SW").review_notified_on, Some(due));
    let manager = actor(&mut conn, "tpe.manager");
    let at = taipei_day_start(due) + Duration::hours(3);
    let kept = links::review_necessity(&mut conn, at, &manager, &link.id, true, "仍有法定業務").unwrap();
    assert_eq!(kept.review_due_on, Some(add_months(due, 12)));
    let stopped = links::review_necessity(&mut conn, at, &manager, &link.id, false, "業務已移撥").unwrap();
    assert_eq!((stopped.status, stopped.status_cause), (LinkStatus::Terminated, Some(LinkCause::StopRequested)));
    assert_eq!(refusal(&mut conn, at, "TPE-SW"), Some(("R-LINK-09", "link_stopped")));
}

#[test]
fn r_link_09_a_stop_request_filed_as_a_change_application_stops_the_link_at_once() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let manager = actor(&mut conn, "tpe.manager");
    let mut stop = form(business_date(now));
    stop.changes = vec![ChangeKind::Stop];
    let detail = link_forms::apply_for_change(&mut conn, now, &manager, &link.id, stop).unwrap();
    assert_eq!(
        (detail.link.status, detail.link.status_cause),
        (LinkStatus::Terminated, Some(LinkCause::StopRequested))
    );
    assert!(!caseworker_may_look_up(&mut conn, now));
}

#[test]
fn r_link_10_a_link_unused_for_over_a_year_is_flagged_and_stopped_once_the_agency_confirms_no_need() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let manager = actor(&mut conn, "tpe.manager");
    // Keep the review out of the way: reviewed, due again in a year from a year on.
    let a_year_on = taipei_day_start(add_months(business_date(now), 12)) - Duration::hours(1);
    links::review_necessity(&mut conn, a_year_on, &manager, &link.id, true, "").unwrap();
    assert_eq!(sweep(&mut conn, a_year_on).unwrap().dormant, 0, "a year to the day is not over a year");
    let not_flagged = links::confirm_dormancy(&mut conn, a_year_on, &manager, &link.id, false, "");
    assert!(matches!(not_flagged, Err(IdentityError::NotDormant)), "{not_flagged:?}");
    let over = a_year_on + Duration::days(2);
    let seen = audit_events(&mut conn).len();
    // HLN-HR's link, not reviewed, is told its review is due first (one move per link and sweep).
    let run = sweep(&mut conn, over).unwrap();
    assert_eq!((run.dormant, run.reviews_due), (1, 1));
    assert!(kinds_since(&mut conn, seen).contains(&"agency_link.dormant_flagged".to_owned()));
    assert!(link_of(&mut conn, "TPE-SW").dormant_notified_at.is_some());
    let told = notifications::for_recipient(&mut conn, "tpe.manager@demo.immilink.invalid").unwrap();
    assert!(told.iter().any(|n| n.subject.contains("逾一年未使用")));
    assert!(caseworker_may_look_up(&mut conn, over), "flagged, not stopped");
    let stopped = links::confirm_dormancy(&mut conn, over, &manager, &link.id, false, "已無需求").unwrap();
    assert_eq!((stopped.status, stopped.status_cause), (LinkStatus::Terminated, Some(LinkCause::DormantNoNeed)));
    assert_eq!(refusal(&mut conn, over, "TPE-SW"), Some(("R-LINK-10", "link_dormant_stopped")));
}

#[test]
fn r_link_10_a_lookup_keeps_a_link_from_dormancy() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let used = now + Duration::days(200);
    links::note_use(&mut conn, used, &link).unwrap();
    let manager = actor(&mut conn, "tpe.manager");
    let a_year_on = taipei_day_start(add_months(business_date(now), 12)) + Duration::days(3);
    links::review_necessity(&mut conn, a_year_on, &manager, &link.id, true, "").unwrap();
    assert_eq!(sweep(&mut conn, a_year_on).unwrap().dormant, 0, "used 200 days in: idle for less than a year");
    let stored = link_of(&mut conn, "TPE-SW");
    assert_eq!(stored.last_used_at.map(|at| business_date(from_db(at))), Some(business_date(used)));
}

#[test]
fn r_link_11_a_non_public_agency_applies_only_through_its_competent_authority() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    new_agency(&mut conn, now, "PRV-SW", Some("TPE-SW"));
    let own = actor(&mut conn, "prv-sw.manager");
    let refused = link_forms::apply(&mut conn, now, &own, None, form(business_date(now)));
    assert!(matches!(refused, Err(IdentityError::NotEntitledToApply { .. })), "{refused:?}");
    let hln = actor(&mut conn, "hln.manager");
    let stranger = link_forms::apply(&mut conn, now, &hln, Some(&AgencyCode::new("PRV-SW")), form(business_date(now)));
    assert!(matches!(stranger, Err(IdentityError::NotEntitledToApply { .. })), "{stranger:?}");
    let tpe = actor(&mut conn, "tpe.manager");
    let public = link_forms::apply(&mut conn, now, &tpe, Some(&AgencyCode::new("HLN-HR")), form(business_date(now)));
    assert!(
        matches!(public, Err(IdentityError::NotEntitledToApply { .. })),
        "a public agency applies itself: {public:?}"
    );
    let sponsored =
        link_forms::apply(&mut conn, now, &tpe, Some(&AgencyCode::new("PRV-SW")), form(business_date(now))).unwrap();
    assert_eq!(sponsored.sponsor_code, Some(AgencyCode::new("TPE-SW")), "recorded as its sponsor");
    assert_eq!(sponsored.agency_code, AgencyCode::new("PRV-SW"));
    // The sponsor oversees it: it sees the link and its notices; another agency does not.
    let listed: Vec<String> =
        links::list(&mut conn, &tpe).unwrap().into_iter().map(|(_, code)| code.to_string()).collect();
    assert_eq!(listed, ["PRV-SW", "TPE-SW"]);
    assert!(links::list(&mut conn, &hln).unwrap().iter().all(|(_, code)| code.as_str() == "HLN-HR"));
    approve_all(&mut conn, now, &sponsored.link.id, &form(business_date(now)).items);
    let nia = actor(&mut conn, "nia.reviewer");
    anomalies::issue(
        &mut conn,
        now,
        &nia,
        &sponsored.link.id,
        "委託機關未督考",
        business_date(now) + Duration::days(10),
    )
    .unwrap();
    assert_eq!(anomalies::list(&mut conn, &tpe, Some(&sponsored.link.id), None).unwrap().len(), 1);
    let told = notifications::for_recipient(&mut conn, "tpe.manager@demo.immilink.invalid").unwrap();
    assert!(told.iter().any(|n| n.body.contains("委託機關未督考")), "the sponsor is told too");
}

#[test]
fn r_link_12_lookups_outside_the_usage_period_are_refused_and_an_extension_is_a_change_application() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let link = link_of(&mut conn, "TPE-SW");
    let end = from_db(link.valid_until);
    assert!(caseworker_may_look_up(&mut conn, end - Duration::seconds(1)));
    assert_eq!(refusal(&mut conn, end, "TPE-SW"), Some(("R-LINK-12", "outside_usage_period")));
    assert_eq!(
        refusal(&mut conn, from_db(link.valid_from) - Duration::seconds(1), "TPE-SW"),
        Some(("R-LINK-12", "outside_usage_period"))
    );
    // An extension is a change application; once decided, the later period holds.
    let manager = actor(&mut conn, "tpe.manager");
    let mut extension = form(business_date(now));
    extension.changes = vec![ChangeKind::Extension];
    extension.usage_until = link.usage_until() + Duration::days(365);
    link_forms::apply_for_change(&mut conn, now, &manager, &link.id, extension.clone()).unwrap();
    approve_all(&mut conn, now, &link.id, &extension.items);
    assert_eq!(refusal(&mut conn, end, "TPE-SW"), None, "extended");
    assert_eq!(link_of(&mut conn, "TPE-SW").usage_until(), extension.usage_until);
    // Without extension the sweep lapses the link when its period ends.
    let new_end = from_db(link_of(&mut conn, "TPE-SW").valid_until);
    sweep(&mut conn, new_end - Duration::seconds(1)).unwrap();
    assert_eq!(link_of(&mut conn, "TPE-SW").status, LinkStatus::Active, "HLN-HR's shorter period lapsed; not this one");
    assert_eq!(sweep(&mut conn, new_end).unwrap().lapsed_periods, 1);
    let lapsed = link_of(&mut conn, "TPE-SW");
    assert_eq!((lapsed.status, lapsed.status_cause), (LinkStatus::Lapsed, Some(LinkCause::UsagePeriodEnded)));
    assert_eq!(refusal(&mut conn, new_end, "TPE-SW"), Some(("R-LINK-12", "outside_usage_period")));
}
