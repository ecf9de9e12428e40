//! Self-audits (R-AUD-05): the checklists of 002 附件三 and 附件四 answered item by item, three
//! different signers, the twice-a-year flag by the injected clock, findings from "no" answers, and
//! the printable form.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{from_db, Clock, ManualClock};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};

use super::db;
use crate::documents::self_audits::SelfAuditSheet;
use crate::domain::chain;
use crate::domain::findings::{FindingOrigin, FindingStatus};
use crate::domain::self_audits::{
    self, ItemAnswer, NewSelfAudit, SelfAudit, SelfAuditDetail, SelfAuditForm, SelfAuditStatus, SignerCapacity,
    ANNEX_3_ITEMS, ANNEX_4_ITEMS, SELF_AUDIT_SIGNED,
};
use crate::domain::AuditError;
use crate::schema::{audit_notifications, audit_records, findings, self_audit_items, self_audits as self_audit_rows};

const AGENCY: &str = "HLN-HR";

/// 2026-06-20 10:00 in Taipei.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 20, 2, 0, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn person(user: &str, agency: &str, roles: &[&str]) -> Caller {
    Caller {
        user_id: UserId::new(user),
        session_id: SessionId::new(format!("session-{user}")),
        agency: AgencyCode::new(agency),
        unit: Some(UnitId::new("unit-1")),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    }
}

fn auditor() -> Caller {
    person("auditor-1", AGENCY, &[roles::AUDITOR])
}

fn section_chief() -> Caller {
    person("chief-1", AGENCY, &[roles::UNIT_SUPERVISOR])
}

fn unit_head() -> Caller {
    person("head-1", AGENCY, &[roles::AGENCY_HEAD])
}

fn nia() -> Caller {
    person("nia-1", "NIA", &[roles::NIA_REVIEWER])
}

/// Every item of `form` answered yes, with a note on the first.
fn all_yes(form: SelfAuditForm) -> Vec<ItemAnswer> {
    (1..=form.items().len() as i32)
        .map(|item| ItemAnswer {
            item,
            answer: true,
            explanation: (item == 1).then(|| "抽查 3 件帳號申請，均依規定辦理".to_owned()),
        })
        .collect()
}

fn annex_3(on: NaiveDate) -> NewSelfAudit {
    NewSelfAudit {
        agency: None,
        form: SelfAuditForm::Annex3,
        audited_unit: None,
        audit_date: on,
        items: all_yes(SelfAuditForm::Annex3),
    }
}

fn annex_4(on: NaiveDate) -> NewSelfAudit {
    NewSelfAudit {
        agency: None,
        form: SelfAuditForm::Annex4,
        audited_unit: Some("花蓮市戶政事務所".into()),
        audit_date: on,
        items: all_yes(SelfAuditForm::Annex4),
    }
}

/// Recorded and signed by the auditor, the section chief and the unit head.
fn completed(conn: &mut DbConn, at: DateTime<Utc>, new: &NewSelfAudit) -> SelfAudit {
    let recorded = self_audits::record(conn, at, &auditor(), new).unwrap();
    sign_all(conn, at, &recorded.audit.id)
}

fn sign_all(conn: &mut DbConn, at: DateTime<Utc>, id: &str) -> SelfAudit {
    self_audits::sign(conn, at, &auditor(), id, SignerCapacity::Auditor, "陳稽核").unwrap();
    self_audits::sign(conn, at, &section_chief(), id, SignerCapacity::SectionChief, "林股長").unwrap();
    self_audits::sign(conn, at, &unit_head(), id, SignerCapacity::UnitHead, "王主任").unwrap()
}

fn field_of(err: AuditError) -> (String, String) {
    match err {
        AuditError::Invalid { field, detail } => (field, detail),
        other => panic!("expected a 422 naming a field, got {other:?}"),
    }
}

fn conflict_code(err: AuditError) -> &'static str {
    match err {
        AuditError::Conflict { code, .. } => code,
        other => panic!("expected a 409, got {other:?}"),
    }
}

fn count_rows(conn: &mut DbConn) -> (i64, i64, i64, i64) {
    (
        self_audit_rows::table.count().get_result(conn).unwrap(),
        self_audit_items::table.count().get_result(conn).unwrap(),
        findings::table.count().get_result(conn).unwrap(),
        audit_records::table.count().get_result(conn).unwrap(),
    )
}

#[test]
fn r_aud_05_fewer_than_two_completed_self_audits_in_a_year_is_flagged() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let clock = ManualClock::starting_at(now());
    let flag = |conn: &mut DbConn, at: DateTime<Utc>, year: Option<i32>| {
        let year = self_audits::year_of(conn, at, &auditor(), None, year).unwrap();
        (year.year, year.completed, year.below_minimum)
    };

    // None yet this year: flagged.
    assert_eq!(flag(&mut conn, clock.now(), None), (2026, 0, true));
    // One completed: still flagged.
    completed(&mut conn, clock.now(), &annex_3(date(2026, 3, 10)));
    assert_eq!(flag(&mut conn, clock.now(), None), (2026, 1, true));
    // A draft (recorded, signed by two only) does not count.
    let draft = self_audits::record(&mut conn, clock.now(), &auditor(), &annex_3(date(2026, 6, 1))).unwrap();
    self_audits::sign(&mut conn, clock.now(), &auditor(), &draft.audit.id, SignerCapacity::Auditor, "陳稽核").unwrap();
    self_audits::sign(
        &mut conn,
        clock.now(),
        &section_chief(),
        &draft.audit.id,
        SignerCapacity::SectionChief,
        "林股長",
    )
    .unwrap();
    assert_eq!(flag(&mut conn, clock.now(), None), (2026, 1, true));
    // One completed in the year before does not count for this one.
    completed(&mut conn, clock.now(), &annex_3(date(2025, 12, 31)));
    assert_eq!(flag(&mut conn, clock.now(), None), (2026, 1, true));
    assert_eq!(flag(&mut conn, clock.now(), Some(2025)), (2025, 1, true));
    // Another agency's completed self-audits do not count for this one.
    let other = self_audits::record(
        &mut conn,
        clock.now(),
        &nia(),
        &NewSelfAudit { agency: Some("TPE-SW".into()), ..annex_3(date(2026, 4, 1)) },
    )
    .unwrap();
    assert_eq!(other.audit.agency, "TPE-SW");
    assert_eq!(flag(&mut conn, clock.now(), None), (2026, 1, true));
    // The draft is completed: two this year, no longer flagged.
    self_audits::sign(&mut conn, clock.now(), &unit_head(), &draft.audit.id, SignerCapacity::UnitHead, "王主任")
        .unwrap();
    let year = self_audits::year_of(&mut conn, clock.now(), &auditor(), None, None).unwrap();
    assert_eq!((year.completed, year.required, year.below_minimum), (2, 2, false));
    assert_eq!(
        year.items.iter().map(|a| (a.audit_date, a.status)).collect::<Vec<_>>(),
        [(date(2026, 3, 10), SelfAuditStatus::Completed), (date(2026, 6, 1), SelfAuditStatus::Completed)],
        "the year's self-audits, by audit date; the other agency's and the other year's are not listed"
    );

    // The default year is the Taipei calendar year of the injected clock: at 23:59 on 31 December
    // in Taipei it is still 2026; a minute later it is 2027, which has none yet.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 31, 15, 59, 0).unwrap());
    assert_eq!(flag(&mut conn, clock.now(), None), (2026, 2, false));
    clock.advance(Duration::minutes(1));
    assert_eq!(flag(&mut conn, clock.now(), None), (2027, 0, true));
    assert_eq!(flag(&mut conn, clock.now(), Some(2026)), (2026, 2, false));

    // The immigration agency reads any agency's year, naming it.
    let seen = self_audits::year_of(&mut conn, clock.now(), &nia(), Some(AGENCY), Some(2026)).unwrap();
    assert_eq!((seen.agency.as_str(), seen.completed, seen.below_minimum), (AGENCY, 2, false));
    let tpe = self_audits::year_of(&mut conn, clock.now(), &nia(), Some("TPE-SW"), Some(2026)).unwrap();
    assert_eq!((tpe.completed, tpe.below_minimum, tpe.items.len()), (0, true, 1));
    assert_eq!(field_of(self_audits::year_of(&mut conn, clock.now(), &nia(), None, None).unwrap_err()).0, "agency");
    assert_eq!(
        field_of(self_audits::year_of(&mut conn, clock.now(), &auditor(), None, Some(0)).unwrap_err()).0,
        "year"
    );
}

#[test]
fn r_aud_05_a_self_audit_answers_every_checklist_item_of_its_form() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let on = date(2026, 6, 15);

    // 附件三 has 7 items, 附件四 8: each recorded with the seed's texts.
    let three = self_audits::record(&mut conn, now(), &auditor(), &annex_3(on)).unwrap();
    assert_eq!(three.items.iter().map(|i| i.text).collect::<Vec<_>>(), ANNEX_3_ITEMS);
    assert_eq!(three.audit.status, SelfAuditStatus::Draft);
    let four = self_audits::record(&mut conn, now(), &auditor(), &annex_4(on)).unwrap();
    assert_eq!(four.items.len(), 8);
    assert_eq!(four.items[7].text, "每年是否至少辦理二次以上自主稽核作業。");
    let read = self_audits::get(&mut conn, &auditor(), &four.audit.id).unwrap();
    assert_eq!(read, four, "what was recorded is what is read");
    let stored = count_rows(&mut conn);
    assert_eq!((stored.0, stored.1), (2, 15));

    let refused = |conn: &mut DbConn, new: NewSelfAudit| {
        let err = self_audits::record(conn, now(), &auditor(), &new).unwrap_err();
        field_of(err)
    };
    // An item the form does not have.
    let mut eight_on_three = annex_3(on);
    eight_on_three.items.push(ItemAnswer { item: 8, answer: true, explanation: None });
    let (field, detail) = refused(&mut conn, eight_on_three);
    assert_eq!(field, "items[7].item");
    assert!(detail.contains("no item 8"), "{detail}");
    let mut zero = annex_3(on);
    zero.items[2].item = 0;
    assert_eq!(refused(&mut conn, zero).0, "items[2].item");
    // An item answered twice.
    let mut twice = annex_3(on);
    twice.items[4].item = 2;
    assert_eq!(refused(&mut conn, twice).0, "items[4].item");
    // Missing items: 附件三's answers on 附件四 lack item 8; others lack 2 and 5.
    let (field, detail) = refused(&mut conn, NewSelfAudit { items: all_yes(SelfAuditForm::Annex3), ..annex_4(on) });
    assert_eq!(field, "items");
    assert!(detail.ends_with("missing: 8"), "{detail}");
    let mut gaps = annex_3(on);
    gaps.items.retain(|i| i.item != 2 && i.item != 5);
    let (field, detail) = refused(&mut conn, gaps);
    assert_eq!(field, "items");
    assert!(detail.ends_with("missing: 2, 5"), "{detail}");
    assert_eq!(refused(&mut conn, NewSelfAudit { items: Vec::new(), ..annex_3(on) }).0, "items");
    // A "no" needs an explanation; blank is none.
    for explanation in [None, Some("  \n ".to_owned())] {
        let mut unexplained = annex_3(on);
        unexplained.items[3] = ItemAnswer { item: 4, answer: false, explanation };
        let (field, detail) = refused(&mut conn, unexplained);
        assert_eq!(field, "items[3].explanation");
        assert!(detail.contains("查核情形說明"), "{detail}");
    }
    // Texts are bounded.
    let mut long = annex_3(on);
    long.items[1].explanation = Some("說".repeat(2001));
    assert_eq!(refused(&mut conn, long).0, "items[1].explanation");
    let mut at_limit = annex_3(on);
    at_limit.items[1].explanation = Some("說".repeat(2000));
    self_audits::record(&mut conn, now(), &auditor(), &at_limit).unwrap();
    // 附件四 names the audited unit.
    assert_eq!(refused(&mut conn, NewSelfAudit { audited_unit: None, ..annex_4(on) }).0, "audited_unit");
    assert_eq!(refused(&mut conn, NewSelfAudit { audited_unit: Some(" ".into()), ..annex_4(on) }).0, "audited_unit");
    // The audit date is not after today in Taipei: 2026-06-20 is today there from 16:00 UTC the day before.
    let tomorrow = refused(&mut conn, annex_3(date(2026, 6, 21)));
    assert_eq!(tomorrow.0, "audit_date");
    let late_evening_utc = Utc.with_ymd_and_hms(2026, 6, 19, 16, 30, 0).unwrap();
    self_audits::record(&mut conn, late_evening_utc, &auditor(), &annex_3(date(2026, 6, 20))).unwrap();

    // Nothing of a refused self-audit was written.
    let after = count_rows(&mut conn);
    assert_eq!((after.0, after.1), (4, 29), "only the two accepted since");
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

#[test]
fn r_aud_05_a_self_audit_is_completed_by_three_different_signers() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let clock = ManualClock::starting_at(now());
    let id = self_audits::record(&mut conn, clock.now(), &auditor(), &annex_3(date(2026, 6, 15))).unwrap().audit.id;
    let sign = |conn: &mut DbConn, at: DateTime<Utc>, who: &Caller, capacity: SignerCapacity, name: &str| {
        self_audits::sign(conn, at, who, &id, capacity, name)
    };

    // Each capacity needs its role.
    let caseworker = person("clerk-1", AGENCY, &[roles::CASEWORKER]);
    for capacity in SignerCapacity::ALL {
        assert!(matches!(
            sign(&mut conn, clock.now(), &caseworker, *capacity, "某人"),
            Err(AuditError::RoleRequired { .. })
        ));
    }
    assert!(matches!(
        sign(&mut conn, clock.now(), &section_chief(), SignerCapacity::UnitHead, "林股長"),
        Err(AuditError::RoleRequired { .. })
    ));
    // Of the audited agency only.
    let elsewhere = person("chief-9", "TPE-SW", &[roles::UNIT_SUPERVISOR]);
    assert!(matches!(
        sign(&mut conn, clock.now(), &elsewhere, SignerCapacity::SectionChief, "他機關"),
        Err(AuditError::NotFound(_))
    ));
    // A name is signed.
    assert_eq!(field_of(sign(&mut conn, clock.now(), &auditor(), SignerCapacity::Auditor, " ").unwrap_err()).0, "name");

    let first = sign(&mut conn, clock.now(), &auditor(), SignerCapacity::Auditor, "陳稽核").unwrap();
    assert_eq!((first.status, first.auditor_name.as_deref()), (SelfAuditStatus::Draft, Some("陳稽核")));
    // The auditor, also a unit supervisor, cannot sign again as 股長: three different people.
    let auditor_and_chief = person("auditor-1", AGENCY, &[roles::AUDITOR, roles::UNIT_SUPERVISOR]);
    let same = sign(&mut conn, clock.now(), &auditor_and_chief, SignerCapacity::SectionChief, "陳稽核").unwrap_err();
    assert_eq!(conflict_code(same), "same_signer");
    // A capacity is signed once.
    let again = sign(
        &mut conn,
        clock.now(),
        &person("auditor-2", AGENCY, &[roles::AUDITOR]),
        SignerCapacity::Auditor,
        "張稽核",
    );
    assert_eq!(conflict_code(again.unwrap_err()), "already_signed");

    clock.advance(Duration::hours(1));
    let second = sign(&mut conn, clock.now(), &section_chief(), SignerCapacity::SectionChief, "林股長").unwrap();
    assert_eq!((second.status, second.completed_at), (SelfAuditStatus::Draft, None));
    // The section chief, also the agency head, cannot sign as 單位主管 too.
    let chief_and_head = person("chief-1", AGENCY, &[roles::UNIT_SUPERVISOR, roles::AGENCY_HEAD]);
    let same = sign(&mut conn, clock.now(), &chief_and_head, SignerCapacity::UnitHead, "林股長").unwrap_err();
    assert_eq!(conflict_code(same), "same_signer");

    clock.advance(Duration::hours(1));
    let done = sign(&mut conn, clock.now(), &unit_head(), SignerCapacity::UnitHead, "王主任").unwrap();
    assert_eq!(done.status, SelfAuditStatus::Completed);
    assert_eq!(done.completed_at.map(from_db), Some(clock.now()));
    assert_eq!(
        (done.auditor_name.as_deref(), done.section_chief_name.as_deref(), done.unit_head_name.as_deref()),
        (Some("陳稽核"), Some("林股長"), Some("王主任"))
    );
    let late = sign(
        &mut conn,
        clock.now(),
        &person("head-2", AGENCY, &[roles::AGENCY_HEAD]),
        SignerCapacity::UnitHead,
        "李主任",
    );
    assert_eq!(conflict_code(late.unwrap_err()), "already_signed");

    // The log names each signer by user id: two signature records and the completion naming all three.
    let records: Vec<(String, Option<String>, String)> = audit_records::table
        .filter(audit_records::correlation_id.eq(&id))
        .order(audit_records::sequence.asc())
        .select((audit_records::kind, audit_records::actor_user_id, audit_records::payload))
        .load(&mut conn)
        .unwrap();
    let kinds: Vec<(&str, Option<&str>)> = records.iter().map(|(k, a, _)| (k.as_str(), a.as_deref())).collect();
    assert_eq!(
        kinds,
        [
            (kind::AUDIT_SELF_AUDIT_RECORDED, Some("auditor-1")),
            (SELF_AUDIT_SIGNED, Some("auditor-1")),
            (SELF_AUDIT_SIGNED, Some("chief-1")),
            (kind::AUDIT_SELF_AUDIT_COMPLETED, Some("head-1")),
        ]
    );
    let completion: serde_json::Value = serde_json::from_str(&records[3].2).unwrap();
    assert_eq!(
        completion["signers"],
        serde_json::json!({"auditor": "auditor-1", "section_chief": "chief-1", "unit_head": "head-1"})
    );
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

#[test]
fn r_aud_05_a_no_answer_opens_a_finding() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut new = annex_4(date(2026, 6, 15));
    new.items[4] =
        ItemAnswer {
            item: 5, answer: false, explanation: Some("5 月份主管稽核月明細表逾 10 日始下載".into())
        };
    new.items[7] =
        ItemAnswer { item: 8, answer: false, explanation: Some("本年度僅辦理一次自主稽核".into()) };
    let recorded = self_audits::record(&mut conn, now(), &auditor(), &new).unwrap();
    let id = &recorded.audit.id;

    let opened: Vec<(String, String, FindingOrigin, Option<String>, String, FindingStatus)> = findings::table
        .order(findings::origin_ref.asc())
        .select((
            findings::id,
            findings::agency,
            findings::origin,
            findings::origin_ref,
            findings::description,
            findings::status,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(opened.len(), 2, "one finding per \"no\"");
    assert_eq!(opened[0].3.as_deref(), Some(format!("{id}/5").as_str()));
    assert_eq!(opened[1].3.as_deref(), Some(format!("{id}/8").as_str()));
    for (_, agency, origin, _, _, status) in &opened {
        assert_eq!((agency.as_str(), *origin, *status), (AGENCY, FindingOrigin::SelfAudit, FindingStatus::Open));
    }
    assert!(opened[0].4.contains(ANNEX_4_ITEMS[4]) && opened[0].4.contains("逾 10 日始下載"), "{}", opened[0].4);
    assert!(opened[1].4.contains("花蓮市戶政事務所"), "{}", opened[1].4);
    // The items say which finding each opened.
    let by_item: Vec<(i32, Option<&str>)> =
        recorded.items.iter().map(|i| (i.number, i.finding_id.as_deref())).filter(|(_, f)| f.is_some()).collect();
    assert_eq!(by_item, [(5, Some(opened[0].0.as_str())), (8, Some(opened[1].0.as_str()))]);
    assert_eq!(self_audits::get(&mut conn, &auditor(), id).unwrap().items, recorded.items);
    // The ethics and IT units were told of each, and each finding is in the log after the record's transaction.
    let notices: i64 = audit_notifications::table.count().get_result(&mut conn).unwrap();
    assert_eq!(notices, 2);
    let kinds: Vec<String> =
        audit_records::table.order(audit_records::sequence.asc()).select(audit_records::kind).load(&mut conn).unwrap();
    assert_eq!(kinds, [kind::AUDIT_FINDING_OPENED, kind::AUDIT_FINDING_OPENED, kind::AUDIT_SELF_AUDIT_RECORDED]);

    // A refused self-audit opens none.
    let mut refused = new.clone();
    refused.items[0].item = 9;
    assert!(self_audits::record(&mut conn, now(), &auditor(), &refused).is_err());
    let all_yes = self_audits::record(&mut conn, now(), &auditor(), &annex_4(date(2026, 6, 16))).unwrap();
    assert!(all_yes.items.iter().all(|i| i.finding_id.is_none()));
    let total: i64 = findings::table.count().get_result(&mut conn).unwrap();
    assert_eq!(total, 2);
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

#[test]
fn r_aud_05_self_audits_are_recorded_and_read_by_their_agency_and_the_immigration_agency() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let on = date(2026, 6, 15);
    // Recorded by the agency's auditor, or the immigration agency for a named agency.
    let caseworker = person("clerk-1", AGENCY, &[roles::CASEWORKER]);
    assert!(matches!(
        self_audits::record(&mut conn, now(), &caseworker, &annex_3(on)),
        Err(AuditError::RoleRequired { .. })
    ));
    let other = NewSelfAudit { agency: Some("TPE-SW".into()), ..annex_3(on) };
    assert!(matches!(self_audits::record(&mut conn, now(), &auditor(), &other), Err(AuditError::OtherAgency)));
    assert_eq!(field_of(self_audits::record(&mut conn, now(), &nia(), &annex_3(on)).unwrap_err()).0, "agency");
    let own =
        self_audits::record(&mut conn, now(), &auditor(), &NewSelfAudit { agency: Some(AGENCY.into()), ..annex_3(on) })
            .unwrap();
    let by_nia =
        self_audits::record(&mut conn, now(), &nia(), &NewSelfAudit { agency: Some(AGENCY.into()), ..annex_3(on) })
            .unwrap();
    assert_eq!((by_nia.audit.agency.as_str(), by_nia.audit.created_by.as_str()), (AGENCY, "nia-1"));

    // Read by the agency's readers and signers, and the immigration agency; not another agency's.
    for reader in [auditor(), section_chief(), unit_head(), person("ethics-1", AGENCY, &[roles::ETHICS_OFFICER]), nia()]
    {
        assert_eq!(self_audits::get(&mut conn, &reader, &own.audit.id).unwrap().audit.id, own.audit.id);
    }
    let outsider = person("auditor-9", "TPE-SW", &[roles::AUDITOR]);
    assert!(matches!(self_audits::get(&mut conn, &outsider, &own.audit.id), Err(AuditError::NotFound(_))));
    assert!(matches!(self_audits::get(&mut conn, &caseworker, &own.audit.id), Err(AuditError::RoleRequired { .. })));
    assert!(matches!(self_audits::get(&mut conn, &auditor(), "no-such-id"), Err(AuditError::NotFound(_))));
    assert!(matches!(
        self_audits::year_of(&mut conn, now(), &outsider, Some(AGENCY), None),
        Err(AuditError::OtherAgency)
    ));
    let theirs = self_audits::year_of(&mut conn, now(), &outsider, None, None).unwrap();
    assert_eq!((theirs.agency.as_str(), theirs.items.len()), ("TPE-SW", 0));
    let unit_year = self_audits::year_of(&mut conn, now(), &section_chief(), None, None).unwrap();
    assert_eq!(unit_year.items.len(), 2, "a section chief reads the agency's self-audits they sign");
}

fn signed_detail(form: SelfAuditForm) -> SelfAuditDetail {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut new = if form == SelfAuditForm::Annex3 { annex_3(date(2026, 6, 15)) } else { annex_4(date(2026, 6, 15)) };
    new.items[4] = ItemAnswer {
        item: 5,
        answer: false,
        explanation: Some("5 月份主管稽核月明細表逾 10 日始下載\n已請承辦人改正 <b>&</b>".into()),
    };
    let recorded = self_audits::record(&mut conn, now(), &auditor(), &new).unwrap();
    sign_all(&mut conn, now(), &recorded.audit.id);
    self_audits::get(&mut conn, &auditor(), &recorded.audit.id).unwrap()
}

fn html(detail: &SelfAuditDetail) -> String {
    SelfAuditSheet::of(detail).html().expect("the form renders")
}

#[test]
fn r_aud_05_the_printable_self_audit_is_the_seeds_form() {
    let three = html(&signed_detail(SelfAuditForm::Annex3));
    assert!(three.starts_with("<!DOCTYPE html>"));
    assert!(three.contains("@page"), "the shared A4 print stylesheet with page numbers");
    assert!(three.contains("花蓮縣<span class=\"fill\">HLN-HR</span>戶政事務所應用移民資訊內部稽核紀錄表"));
    assert!(three.contains("稽核日期：<span class=\"fill\">民國115年6月15日</span>"));
    assert!(three.contains("<th>查核項目</th><th>查核結果</th><th>查核情形說明</th>"));
    for (n, text) in ANNEX_3_ITEMS.iter().enumerate() {
        assert!(three.contains(&format!("{}. {text}", n + 1)), "item {} is the seed's text", n + 1);
    }
    assert_eq!(three.matches("■是 □否").count(), 6);
    assert_eq!(three.matches("□是 ■否").count(), 1);
    assert!(three.contains("5 月份主管稽核月明細表逾 10 日始下載<br>已請承辦人改正 &#60;b&#62;&#38;&#60;/b&#62;"));
    assert!(three.contains("已列稽核發現："));
    for (label, name) in [("稽核人員", "陳稽核"), ("股長", "林股長"), ("單位主管", "王主任")] {
        assert!(
            three.contains(&format!("<span class=\"label\">{label}：</span><span class=\"sign\">{name}</span>")),
            "{label}"
        );
    }
    assert!(three.contains("已完成簽核（民國115年6月20日 10:00，臺北時間）"));
    assert!(!three.contains("<b>"), "no recorded value is markup");
    assert!(!three.contains("http://") && !three.contains("https://") && !three.contains("src="), "self-contained");

    let four = html(&signed_detail(SelfAuditForm::Annex4));
    assert!(four.contains("<h1>花蓮縣政府稽核所屬戶政事務所使用應用移民資訊內部辦理情形紀錄表</h1>"));
    assert!(four.contains("稽核機關：<span class=\"fill\">HLN-HR</span>"));
    assert!(four.contains("受稽核單位：<span class=\"fill\">花蓮市戶政事務所</span>"));
    assert!(four.contains("8. 每年是否至少辦理二次以上自主稽核作業。"));
    assert_eq!(four.matches("■是 □否").count() + four.matches("□是 ■否").count(), 8);
    for label in ["稽核人員", "受稽核單位系統管理人員", "受稽核單位主管"] {
        assert!(four.contains(&format!("<span class=\"label\">{label}：</span>")), "{label}");
    }
}

/// Writes a signed 附件三 and 附件四 to /tmp/self_audit.html and /tmp/self_audit_annex_4.html, to look
/// at in a browser (`cargo test -p immilink-audit write_self_audit_html -- --ignored`).
#[test]
#[ignore = "writes files for a person to look at"]
fn write_self_audit_html() {
    std::fs::write("/tmp/self_audit.html", html(&signed_detail(SelfAuditForm::Annex3))).unwrap();
    std::fs::write("/tmp/self_audit_annex_4.html", html(&signed_detail(SelfAuditForm::Annex4))).unwrap();
}
