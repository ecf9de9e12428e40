//! The oversight read models, the query record table (R-AUD-03) and the monthly review (R-AUD-04).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use serde_json::json;

use super::db;
use crate::documents::query_records::{self as document, QueryRecordBook};
use crate::domain::query_records::{self, TableRequest};
use crate::domain::reviews::{self, Mark, Month, Verdict};
use crate::domain::{chain, AuditError};
use crate::schema::{audit_notifications, audit_records, findings};

/// An instant given as Taipei local time.
fn taipei(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    immilink_shared::clock::taipei().with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

fn person(user: &str, agency: &str, unit: Option<&str>, roles: &[&str]) -> Caller {
    Caller {
        user_id: UserId::new(user),
        session_id: SessionId::new(format!("s-{user}")),
        agency: AgencyCode::new(agency),
        unit: unit.map(UnitId::new),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn identity_event(kind: &str, at: DateTime<Utc>, agency: &str, payload: serde_json::Value) -> AuditEvent {
    AuditEvent { agency: Some(agency.into()), ..AuditEvent::new("identity", kind, at, payload) }
}

/// A session of `who` from `login` to `logout`, as identity records it.
fn session(conn: &mut DbConn, who: &Caller, name: &str, login: DateTime<Utc>, logout: DateTime<Utc>) {
    let sid = who.session_id.to_string();
    let opened = identity_event(
        kind::SESSION_OPENED,
        login,
        who.agency.as_str(),
        json!({"session_id": sid, "user_id": who.user_id, "display_name": name, "ip": "10.0.0.1"}),
    );
    let ended = identity_event(
        kind::SESSION_ENDED,
        logout,
        who.agency.as_str(),
        json!({"session_id": sid, "user_id": who.user_id, "reason": "logout", "login_at": login}),
    );
    chain::append(conn, login, &[opened, ended]).unwrap();
}

/// A lookup by `who` as the broker records it, with its outcome; returns the lookup id.
fn lookup(
    conn: &mut DbConn,
    who: &Caller,
    at: DateTime<Utc>,
    purpose: &str,
    case: &str,
    outcome: Option<&str>,
) -> String {
    let lookup_id = uuid::Uuid::now_v7().to_string();
    let requested = AuditEvent {
        actor_user_id: Some(who.user_id.to_string()),
        agency: Some(who.agency.to_string()),
        correlation_id: Some(lookup_id.clone()),
        subject_id: Some("A123456789".into()),
        unit: who.unit.as_ref().map(|u| u.to_string()),
        ..AuditEvent::new(
            "broker",
            kind::LOOKUP_REQUESTED,
            at,
            json!({
                "query_type": "entry_exit_last_year", "subject_kind": "national_id", "legal_basis": "hr_household_registration_act_48",
                "purpose_code": purpose, "case_number": case, "remarks": if case == "HR-115-0002" { "=HYPERLINK(\"x\")" } else { "臨櫃" }, "session_id": who.session_id,
                "actor_roles": who.roles, "proxy_authorization_id": null, "batch_id": null,
            }),
        )
    };
    let mut events = vec![requested];
    if let Some(outcome) = outcome {
        events.push(AuditEvent {
            actor_user_id: Some(who.user_id.to_string()),
            agency: Some(who.agency.to_string()),
            correlation_id: Some(lookup_id.clone()),
            ..AuditEvent::new("broker", kind::LOOKUP_COMPLETED, at, json!({"outcome": outcome, "upstream_status": 200}))
        });
    }
    chain::append(conn, at, &events).unwrap();
    lookup_id
}

/// Writes a printable document where a person can look at it, when `IMMILINK_LOOK_AT_DOCUMENTS`
/// names a folder (e.g. to render it with a headless browser).
fn look_at(name: &str, html: &str) {
    if let Some(dir) = std::env::var_os("IMMILINK_LOOK_AT_DOCUMENTS") {
        std::fs::write(std::path::Path::new(&dir).join(name), html).unwrap();
    }
}

fn clerk() -> Caller {
    person("u-clerk", "HLN-HR", Some("unit-hr1"), &[roles::CASEWORKER])
}
fn supervisor() -> Caller {
    person("u-sup", "HLN-HR", Some("unit-hr1"), &[roles::UNIT_SUPERVISOR])
}
fn manager() -> Caller {
    person("u-mgr", "HLN-HR", None, &[roles::ACCOUNT_MANAGER])
}
fn head() -> Caller {
    person("u-head", "HLN-HR", None, &[roles::AGENCY_HEAD])
}

fn table(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    who: &Caller,
    request: TableRequest,
) -> Result<Vec<query_records::QueryRecordRow>, AuditError> {
    match query_records::open_table(conn, now, who, request, "json")? {
        Some(filter) => query_records::whole(conn, &filter, 10_000),
        None => Ok(Vec::new()),
    }
}

#[test]
fn r_aud_03_the_query_record_table_has_a_row_per_lookup_with_the_forms_columns() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let clerk = clerk();
    session(&mut conn, &clerk, "李戶籍員", taipei(2026, 3, 2, 8, 55), taipei(2026, 3, 2, 12, 5));
    let first =
        lookup(&mut conn, &clerk, taipei(2026, 3, 2, 9, 10), "hr_seal_certificate", "HR-115-0001", Some("succeeded"));
    let second =
        lookup(&mut conn, &clerk, taipei(2026, 3, 2, 9, 30), "hr_nationality_change", "HR-115-0002", Some("failed"));
    // Another year, another agency: not in the table.
    lookup(&mut conn, &clerk, taipei(2025, 12, 31, 23, 59), "hr_seal_certificate", "HR-114-9", Some("succeeded"));
    let other = person("u-tpe", "TPE-SW", Some("unit-sw"), &[roles::CASEWORKER]);
    lookup(&mut conn, &other, taipei(2026, 3, 2, 10, 0), "sw_statutory_business", "SW-1", Some("succeeded"));

    let now = taipei(2026, 4, 1, 9, 0);
    let rows = table(&mut conn, now, &manager(), TableRequest { year: Some(2026), ..Default::default() }).unwrap();
    assert_eq!(rows.iter().map(|r| r.lookup_id.as_str()).collect::<Vec<_>>(), [first.as_str(), second.as_str()]);
    let row = &rows[0];
    assert_eq!(row.serial, 1);
    assert_eq!(rows[1].serial, 2);
    assert_eq!(row.user_name.as_deref(), Some("李戶籍員"));
    assert_eq!(row.login_at, Some(immilink_shared::clock::to_db(taipei(2026, 3, 2, 8, 55))));
    assert_eq!(row.logout_at, Some(immilink_shared::clock::to_db(taipei(2026, 3, 2, 12, 5))));
    assert_eq!((row.query_type.as_str(), row.subject_id.as_str()), ("entry_exit_last_year", "A123456789"));
    assert_eq!((row.result_zh(), rows[1].result_zh()), ("成功", "失敗"));
    assert_eq!(row.purpose_code, "hr_seal_certificate");
    assert_eq!(row.remarks.as_deref(), Some("臨櫃"));
    assert_eq!(row.sign_off, None, "no sign-off before the monthly review");

    // The filters: case number and user.
    let by_case = table(
        &mut conn,
        now,
        &manager(),
        TableRequest { case_number: Some("HR-115-0002".into()), ..Default::default() },
    )
    .unwrap();
    assert_eq!(by_case.len(), 1);
    assert_eq!(by_case[0].serial, 1);
    let by_user =
        table(&mut conn, now, &manager(), TableRequest { user: Some("nobody".into()), ..Default::default() }).unwrap();
    assert!(by_user.is_empty());

    // The CSV starts with a byte-order mark and carries the form's columns; the book is zh-TW with
    // ROC dates and the household-registration reasons as check boxes.
    let mut csv = document::csv_header().unwrap();
    csv.extend(document::csv_rows(&rows).unwrap());
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("\u{feff}序號,登入時間,登出時間,查詢時間,查詢項目,查詢對象,查詢結果,查詢事由"), "{csv}");
    assert!(csv.contains("2026-03-02 08:55:00") && csv.contains("李戶籍員") && csv.contains("成功"), "{csv}");
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "a remark is never a formula: {csv}");
    let filter =
        query_records::open_table(&mut conn, now, &manager(), TableRequest::default(), "html").unwrap().unwrap();
    let html = askama::Template::render(&QueryRecordBook::of(&filter, &rows, now)).unwrap();
    look_at("query_record_table.html", &html);
    for expected in [
        "查詢紀錄表",
        "民國 115 年度",
        "民國115年3月2日",
        "08:55 至 12:05",
        "■受理受委任辦理印鑑證明",
        "□國籍變更案件",
        "■成功",
        "李戶籍員",
        "主管簽核",
    ] {
        assert!(html.contains(expected), "missing {expected}");
    }
    // The ODS is a spreadsheet that reads back with the same cells.
    let ods = document::ods(&filter, &rows).unwrap();
    let book = spreadsheet_ods::read_ods_buf(&ods).unwrap();
    let sheet = book.sheet(0);
    assert_eq!(sheet.value(0, 0).as_str_or(""), "序號");
    assert_eq!(sheet.value(1, 11).as_str_or(""), "李戶籍員");
    assert_eq!(sheet.value(2, 6).as_str_or(""), "失敗");
}

#[test]
fn r_aud_03_account_managers_read_their_agency_and_unit_supervisors_their_unit() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let other_unit = person("u-other", "HLN-HR", Some("unit-hr2"), &[roles::CASEWORKER]);
    lookup(&mut conn, &clerk(), taipei(2026, 5, 1, 9, 0), "hr_seal_certificate", "C-1", Some("succeeded"));
    lookup(&mut conn, &other_unit, taipei(2026, 5, 1, 9, 5), "hr_seal_certificate", "C-2", Some("succeeded"));
    let now = taipei(2026, 6, 1, 9, 0);
    let everything = TableRequest { year: Some(2026), ..Default::default() };
    assert_eq!(table(&mut conn, now, &manager(), everything.clone()).unwrap().len(), 2);
    let unit = table(&mut conn, now, &supervisor(), everything.clone()).unwrap();
    assert_eq!(unit.iter().map(|r| r.case_number.as_str()).collect::<Vec<_>>(), ["C-1"]);
    let ask_other_unit = TableRequest { unit: Some("unit-hr2".into()), ..everything.clone() };
    assert!(matches!(table(&mut conn, now, &supervisor(), ask_other_unit), Err(AuditError::OtherUnit)));
    let ask_other_agency = TableRequest { agency: Some("TPE-SW".into()), ..everything.clone() };
    assert!(matches!(table(&mut conn, now, &manager(), ask_other_agency), Err(AuditError::OtherAgency)));
    assert!(matches!(table(&mut conn, now, &clerk(), everything.clone()), Err(AuditError::RoleRequired { .. })));
    let bad_year = TableRequest { year: Some(20260), ..Default::default() };
    assert!(
        matches!(table(&mut conn, now, &manager(), bad_year), Err(AuditError::Invalid { field, .. }) if field == "year")
    );
    // Every read of the table is a record in the log.
    let reads: i64 = audit_records::table
        .filter(audit_records::kind.eq(kind::AUDIT_QUERY_RECORDS_READ))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(reads, 2, "the two reads that were allowed");
}

#[test]
fn the_read_models_are_rebuilt_from_the_log_after_the_fact() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    lookup(&mut conn, &clerk(), taipei(2026, 5, 1, 9, 0), "hr_seal_certificate", "C-1", Some("succeeded"));
    // As if the records had been stored before the read models existed.
    diesel::delete(crate::schema::oversight_lookups::table).execute(&mut conn).unwrap();
    diesel::update(crate::schema::oversight_head::table)
        .set(crate::schema::oversight_head::projected_through.eq(0))
        .execute(&mut conn)
        .unwrap();
    lookup(&mut conn, &clerk(), taipei(2026, 5, 1, 9, 5), "hr_seal_certificate", "C-2", Some("succeeded"));
    let rows = table(&mut conn, taipei(2026, 6, 1, 9, 0), &manager(), TableRequest::default()).unwrap();
    assert_eq!(rows.iter().map(|r| r.case_number.as_str()).collect::<Vec<_>>(), ["C-1", "C-2"]);
    assert!(rows.iter().all(|r| r.result_zh() == "成功"));
}

fn report_for(conn: &mut DbConn, now: DateTime<Utc>, who: &Caller, reviewer_role: &str) -> reviews::ReportSummary {
    reviews::list(conn, now, who, reviews::ReportQuery::default())
        .unwrap()
        .into_iter()
        .find(|r| r.report.reviewer_role == reviewer_role)
        .unwrap_or_else(|| panic!("no {reviewer_role} report for {}", who.user_id))
}

#[test]
fn r_aud_04_from_the_first_each_unit_has_last_months_report_and_nobody_reviews_their_own() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let clerk_lookup =
        lookup(&mut conn, &clerk(), taipei(2026, 10, 31, 23, 30), "hr_seal_certificate", "C-1", Some("succeeded"));
    let supervisor_lookup =
        lookup(&mut conn, &supervisor(), taipei(2026, 10, 5, 9, 0), "hr_seal_certificate", "C-2", Some("succeeded"));
    let manager_lookup =
        lookup(&mut conn, &manager(), taipei(2026, 10, 6, 9, 0), "hr_seal_certificate", "C-3", Some("succeeded"));
    // November's lookup belongs to next month's report.
    lookup(&mut conn, &clerk(), taipei(2026, 11, 1, 0, 30), "hr_seal_certificate", "C-4", Some("succeeded"));

    // On the last day of October (Taipei) nothing of October is opened yet.
    let run = reviews::run_monthly(&mut conn, taipei(2026, 10, 31, 23, 59)).unwrap();
    assert_eq!(run.month, "2026-09");
    assert_eq!(run.entries_added, 0);
    // From the 1st of November, October's reports exist: the unit's for its supervisor, the
    // supervisor's own for the account manager, the manager's own for the agency head.
    let first = taipei(2026, 11, 1, 0, 5);
    let run = reviews::run_monthly(&mut conn, first).unwrap();
    assert_eq!((run.month.as_str(), run.reports_opened, run.entries_added), ("2026-10", 3, 3));
    let again = reviews::run_monthly(&mut conn, first).unwrap();
    assert_eq!((again.reports_opened, again.entries_added, again.overdue_flagged), (0, 0, 0), "idempotent");

    let caseworker_list = reviews::list(&mut conn, first, &clerk(), reviews::ReportQuery::default());
    assert!(matches!(caseworker_list, Err(AuditError::RoleRequired { .. })), "a caseworker reads no reviews");
    let unit_report = report_for(&mut conn, first, &supervisor(), roles::UNIT_SUPERVISOR);
    assert_eq!(
        (unit_report.report.unit.as_str(), unit_report.report.due_on),
        ("unit-hr1", NaiveDate::from_ymd_opt(2026, 11, 10).unwrap())
    );
    let detail = reviews::get(&mut conn, first, &supervisor(), &unit_report.report.id).unwrap();
    assert_eq!(detail.entries.iter().map(|e| e.lookup_id.as_str()).collect::<Vec<_>>(), [clerk_lookup.as_str()]);
    let for_manager = report_for(&mut conn, first, &manager(), roles::ACCOUNT_MANAGER);
    let detail = reviews::get(&mut conn, first, &manager(), &for_manager.report.id).unwrap();
    assert_eq!(detail.entries.iter().map(|e| e.lookup_id.as_str()).collect::<Vec<_>>(), [supervisor_lookup.as_str()]);
    let for_head = report_for(&mut conn, first, &head(), roles::AGENCY_HEAD);
    let detail = reviews::get(&mut conn, first, &head(), &for_head.report.id).unwrap();
    assert_eq!(detail.entries.iter().map(|e| e.lookup_id.as_str()).collect::<Vec<_>>(), [manager_lookup.as_str()]);

    // The supervisor cannot mark the report meant for the account manager (their own lookup)...
    let own = [Mark { lookup_id: supervisor_lookup.clone(), verdict: Verdict::Matches, note: None }];
    assert!(matches!(
        reviews::mark(&mut conn, first, &supervisor(), &for_manager.report.id, &own),
        Err(AuditError::NotFound(_) | AuditError::RoleRequired { .. })
    ));
    // ...and a supervisor who looked up in their own unit's report is refused on that lookup.
    let nosy = person("u-sup", "HLN-HR", Some("unit-hr1"), &[roles::UNIT_SUPERVISOR]);
    let mine = lookup(
        &mut conn,
        &person("u-sup", "HLN-HR", Some("unit-hr1"), &[roles::CASEWORKER]),
        taipei(2026, 10, 7, 9, 0),
        "hr_seal_certificate",
        "C-5",
        Some("succeeded"),
    );
    reviews::run_monthly(&mut conn, first).unwrap();
    let refused = reviews::mark(
        &mut conn,
        first,
        &nosy,
        &unit_report.report.id,
        &[Mark { lookup_id: mine, verdict: Verdict::Matches, note: None }],
    );
    assert!(matches!(refused, Err(AuditError::OwnLookup(_))), "{refused:?}");
    // The account manager marks the supervisor's lookup: allowed.
    let done = reviews::mark(&mut conn, first, &manager(), &for_manager.report.id, &own).unwrap();
    assert!(done.summary.report.completed_at.is_some());
}

#[test]
fn r_aud_04_a_mismatch_needs_a_note_opens_a_finding_and_the_sign_off_reaches_the_table() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    session(&mut conn, &supervisor(), "張課長", taipei(2026, 11, 3, 8, 0), taipei(2026, 11, 3, 17, 0));
    let fine = lookup(&mut conn, &clerk(), taipei(2026, 10, 2, 9, 0), "hr_seal_certificate", "C-1", Some("succeeded"));
    let odd = lookup(&mut conn, &clerk(), taipei(2026, 10, 2, 9, 5), "hr_seal_certificate", "C-2", Some("succeeded"));
    let now = taipei(2026, 11, 3, 9, 0);
    reviews::run_monthly(&mut conn, now).unwrap();
    let report = report_for(&mut conn, now, &supervisor(), roles::UNIT_SUPERVISOR).report;

    let no_note = [Mark { lookup_id: odd.clone(), verdict: Verdict::DoesNotMatch, note: Some("  ".into()) }];
    let refused = reviews::mark(&mut conn, now, &supervisor(), &report.id, &no_note);
    assert!(matches!(refused, Err(AuditError::Invalid { field, .. }) if field == "marks[0].note"));
    let marks = [
        Mark { lookup_id: fine.clone(), verdict: Verdict::Matches, note: None },
        Mark { lookup_id: odd.clone(), verdict: Verdict::DoesNotMatch, note: Some("案號非本單位業務".into()) },
    ];
    let detail = reviews::mark(&mut conn, now, &supervisor(), &report.id, &marks).unwrap();
    assert!(detail.summary.report.completed_at.is_some());
    assert_eq!((detail.summary.reviewed, detail.summary.mismatches), (2, 1));
    let finding_id = detail.entries.iter().find(|e| e.lookup_id == odd).and_then(|e| e.finding_id.clone()).unwrap();
    let origin: (String, String) = findings::table
        .filter(findings::id.eq(&finding_id))
        .select((findings::origin, findings::agency))
        .first(&mut conn)
        .unwrap();
    assert_eq!(origin, ("review".to_owned(), "HLN-HR".to_owned()));
    let again = reviews::mark(&mut conn, now, &supervisor(), &report.id, &marks[..1]);
    assert!(matches!(again, Err(AuditError::Conflict { code: "already_reviewed", .. })));

    // The table's 主管簽核 column shows the judgement and who made it.
    let rows = table(&mut conn, now, &supervisor(), TableRequest::default()).unwrap();
    let signed = rows.iter().find(|r| r.lookup_id == odd).and_then(|r| r.sign_off.clone()).unwrap();
    assert_eq!((signed.verdict.as_str(), signed.reviewer_name.as_deref()), ("does_not_match", Some("張課長")));
    // Printable like the table.
    let html = askama::Template::render(&crate::documents::reviews::MonthlyReviewReport::of(&detail, now)).unwrap();
    look_at("monthly_review.html", &html);
    for expected in ["主管稽核月明細表", "民國115年10月", "應完成日：民國115年11月10日", "■", "案號非本單位業務"]
    {
        assert!(html.contains(expected), "missing {expected}");
    }
}

#[test]
fn r_aud_04_a_review_not_done_by_the_tenth_is_flagged_once_and_its_reviewers_told() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    lookup(&mut conn, &clerk(), taipei(2026, 10, 2, 9, 0), "hr_seal_certificate", "C-1", Some("succeeded"));
    reviews::run_monthly(&mut conn, taipei(2026, 11, 1, 8, 0)).unwrap();
    // The 10th is the last day: not overdue yet.
    let tenth = taipei(2026, 11, 10, 23, 59);
    assert_eq!(reviews::run_monthly(&mut conn, tenth).unwrap().overdue_flagged, 0);
    assert!(!report_for(&mut conn, tenth, &supervisor(), roles::UNIT_SUPERVISOR).overdue);
    let eleventh = taipei(2026, 11, 11, 0, 1);
    assert!(report_for(&mut conn, eleventh, &supervisor(), roles::UNIT_SUPERVISOR).overdue);
    assert_eq!(reviews::run_monthly(&mut conn, eleventh).unwrap().overdue_flagged, 1);
    assert_eq!(reviews::run_monthly(&mut conn, eleventh).unwrap().overdue_flagged, 0, "flagged once");
    let told: Vec<(String, Option<String>)> = audit_notifications::table
        .select((audit_notifications::recipient_roles, audit_notifications::unit))
        .order(audit_notifications::created_at.asc())
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        told,
        [("unit_supervisor".to_owned(), Some("unit-hr1".to_owned())), ("account_manager".to_owned(), None)]
    );
    let flagged: i64 = audit_records::table
        .filter(audit_records::kind.eq(kind::AUDIT_REVIEW_OVERDUE))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(flagged, 1);
}

#[test]
fn months_are_taipei_months_and_their_reviews_are_due_on_the_tenth() {
    let october = Month::parse("2026-10").unwrap();
    assert_eq!(october.due_on(), NaiveDate::from_ymd_opt(2026, 11, 10).unwrap());
    assert_eq!(Month::parse("2026-12").unwrap().due_on(), NaiveDate::from_ymd_opt(2027, 1, 10).unwrap());
    let (from, to) = october.bounds().unwrap();
    assert_eq!(from, immilink_shared::clock::to_db(taipei(2026, 10, 1, 0, 0)));
    assert_eq!(to, immilink_shared::clock::to_db(taipei(2026, 11, 1, 0, 0)));
    assert!(Month::parse("2026-13").is_none() && Month::parse("2026-1").is_none());
    assert_eq!(reviews::reviewer_for("caseworker"), roles::UNIT_SUPERVISOR);
    assert_eq!(reviews::reviewer_for("caseworker,unit_supervisor"), roles::ACCOUNT_MANAGER);
    assert_eq!(reviews::reviewer_for("account_manager"), roles::AGENCY_HEAD);
}

#[test]
fn r_aud_01_the_read_models_forget_what_disposal_removes_from_the_log() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let old = taipei(2020, 3, 2, 9, 0);
    session(&mut conn, &clerk(), "李戶籍員", old, old + chrono::Duration::hours(3));
    lookup(&mut conn, &clerk(), old, "hr_seal_certificate", "C-OLD", Some("succeeded"));
    let recent = taipei(2026, 6, 2, 9, 0);
    lookup(&mut conn, &clerk(), recent, "hr_seal_certificate", "C-NEW", Some("succeeded"));
    let retention = crate::domain::retention::Retention::years(5).unwrap();
    let done = crate::domain::retention::dispose(&mut conn, taipei(2031, 3, 3, 0, 0), retention).unwrap();
    assert_eq!(done.disposed, 4, "the session's two records and the old lookup's two: {done:?}");
    let left: Vec<String> = crate::schema::oversight_lookups::table
        .select(crate::schema::oversight_lookups::case_number)
        .load(&mut conn)
        .unwrap();
    assert_eq!(left, ["C-NEW"]);
    let sessions: i64 = crate::schema::oversight_sessions::table.count().get_result(&mut conn).unwrap();
    assert_eq!(sessions, 0);
}
