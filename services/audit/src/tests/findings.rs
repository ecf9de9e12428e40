//! R-AUD-07: a finding notifies the ethics and IT units at once (the notice is written in the
//! finding's transaction and relayed to identity at least once, in order), has a remediation
//! deadline (Asia/Taipei dates, the injected clock), overdue ones are flagged once, and each is
//! tracked to closure with a recommendation. Against SQLite, and PostgreSQL with TEST_DATABASE_URL.

use std::sync::{Arc, Mutex};

use actix_web::{test as actix_test, web, App, HttpResponse, HttpServer};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use ed25519_dalek::{Signer, SigningKey};
use immilink_shared::auth::{roles, AccessClaims, Caller, Jwk, JwkSet, ServiceTokens, TokenVerifier, AUDIENCE, ISSUER};
use immilink_shared::clock::{business_date, to_db, ManualClock, SharedClock};
use immilink_shared::db::{Db, DbConn};
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::problem::Problem;
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use serde_json::{json, Value};
use utoipa_actix_web::AppExt;

use super::db;
use crate::domain::chain::{self, AuditRecord};
use crate::domain::findings::{
    self, Closure, FindingFilter, FindingOrigin, FindingStatus, ManualFinding, NewFinding, Recommendation,
    STATUS_CONFLICT,
};
use crate::domain::notifications::StoredNotice;
use crate::domain::AuditError;
use crate::notifier::{NoticeDelivery, NoticeRelay};
use crate::schema::{audit_notifications, audit_records, findings as findings_table};

/// 2026-12-03 09:00 in Taipei.
fn morning() -> DateTime<Utc> {
    taipei(2026, 12, 3, 9, 0, 0)
}

/// A Taipei wall-clock time, as UTC.
fn taipei(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    immilink_shared::clock::taipei().with_ymd_and_hms(y, m, d, h, min, s).unwrap().with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn person(user: &str, agency: &str, role_list: &[&str]) -> Caller {
    Caller {
        user_id: UserId::new(user),
        session_id: SessionId::new(format!("session-{user}")),
        agency: AgencyCode::new(agency),
        unit: None,
        roles: role_list.iter().map(|role| (*role).to_owned()).collect(),
    }
}

fn auditor() -> Caller {
    person("tpe-auditor", "TPE-SW", &[roles::AUDITOR])
}
fn ethics() -> Caller {
    person("tpe-ethics", "TPE-SW", &[roles::ETHICS_OFFICER])
}
fn manager() -> Caller {
    person("tpe-manager", "TPE-SW", &[roles::ACCOUNT_MANAGER])
}
fn head() -> Caller {
    person("tpe-head", "TPE-SW", &[roles::AGENCY_HEAD])
}
fn hln_manager() -> Caller {
    person("hln-manager", "HLN-HR", &[roles::ACCOUNT_MANAGER])
}
fn hln_auditor() -> Caller {
    person("hln-auditor", "HLN-HR", &[roles::AUDITOR])
}
fn nia() -> Caller {
    person("nia-reviewer", "NIA", &[roles::NIA_REVIEWER])
}
fn supervisor(unit: &str) -> Caller {
    Caller { unit: Some(UnitId::new(unit)), ..person("tpe-supervisor", "TPE-SW", &[roles::UNIT_SUPERVISOR]) }
}

fn manual(description: &str, deadline: Option<NaiveDate>) -> ManualFinding {
    ManualFinding { agency: None, unit: Some("unit-1".into()), description: description.into(), deadline }
}

fn records_of(conn: &mut DbConn, record_kind: &str) -> Vec<AuditRecord> {
    audit_records::table
        .filter(audit_records::kind.eq(record_kind))
        .order(audit_records::sequence.asc())
        .select(AuditRecord::as_select())
        .load(conn)
        .unwrap()
}

fn notices(conn: &mut DbConn) -> Vec<StoredNotice> {
    audit_notifications::table
        .order((audit_notifications::created_at.asc(), audit_notifications::id.asc()))
        .select(StoredNotice::as_select())
        .load(conn)
        .unwrap()
}

fn payload(record: &AuditRecord) -> Value {
    serde_json::from_str(&record.payload).unwrap()
}

/// How many findings, notices and log records there are.
fn counts(conn: &mut DbConn) -> (i64, i64, i64) {
    (
        findings_table::table.count().get_result(conn).unwrap(),
        audit_notifications::table.count().get_result(conn).unwrap(),
        audit_records::table.count().get_result(conn).unwrap(),
    )
}

#[test]
fn r_aud_07_a_finding_notifies_the_ethics_and_it_units_at_once() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let now = morning();
    let finding = findings::open(&mut conn, now, &auditor(), manual("查詢目的與業務不符 (case C-7)", None)).unwrap();
    assert_eq!(finding.status, FindingStatus::Open);
    assert_eq!(finding.origin, FindingOrigin::Manual);
    assert_eq!(finding.agency, "TPE-SW");
    assert_eq!(finding.deadline, date(2027, 1, 2), "30 days from today in Taipei by default");

    // The notice to the agency's ethics and IT units was written with the finding, at the same moment.
    let sent = notices(&mut conn);
    assert_eq!(sent.len(), 1);
    let notice = &sent[0];
    assert_eq!((notice.agency.as_str(), notice.unit.as_deref()), ("TPE-SW", None));
    assert_eq!(notice.recipient_roles, "ethics_officer,it_officer");
    assert!(notice.subject.contains(&finding.id), "{}", notice.subject);
    assert!(notice.body.contains("查詢目的與業務不符") && notice.body.contains("2027-01-02"), "{}", notice.body);
    assert_eq!((notice.created_at, notice.delivered_at, notice.attempts), (to_db(now), None, 0));
    // ... and its record in the log, naming who opened it and whom it told.
    let opened = records_of(&mut conn, kind::AUDIT_FINDING_OPENED);
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].correlation_id.as_deref(), Some(finding.id.as_str()));
    assert_eq!(opened[0].actor_user_id.as_deref(), Some("tpe-auditor"));
    assert_eq!(opened[0].agency.as_deref(), Some("TPE-SW"));
    assert_eq!(payload(&opened[0])["notified_roles"], json!(["ethics_officer", "it_officer"]));
    assert!(chain::verify(&mut conn, None).unwrap().ok);

    // One transaction: when what follows the finding fails, neither it, its notice nor its record stays.
    let before = counts(&mut conn);
    let failed: Result<(), AuditError> = conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let new = NewFinding {
            agency: "TPE-SW".into(),
            unit: None,
            origin: FindingOrigin::Sample,
            origin_ref: Some("sample-1/3".into()),
            description: "a sampled lookup without a case".into(),
            deadline: None,
        };
        findings::open_locked(conn, now, &auditor(), new)?;
        Err(AuditError::Conflict { code: "test", detail: "the act that opened it failed afterwards".into() })
    });
    assert!(failed.is_err());
    assert_eq!(counts(&mut conn), before, "the finding, its notice and its record roll back together");
    // Refused input writes nothing either.
    assert!(findings::open(&mut conn, now, &auditor(), manual("   ", None)).is_err());
    assert_eq!(counts(&mut conn), before);
}

/// What the fake identity received, and whether it fails for now.
#[derive(Default)]
struct FakeIdentity {
    received: Mutex<Vec<NoticeDelivery>>,
    failing: Mutex<bool>,
}

async fn fake_identity(fake: Arc<FakeIdentity>) -> (String, actix_web::dev::ServerHandle) {
    let data = web::Data::from(fake);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/internal/v1/notices",
            web::post().to(|fake: web::Data<FakeIdentity>, req: actix_web::HttpRequest, notice: web::Json<NoticeDelivery>| async move {
                if *fake.failing.lock().unwrap() {
                    return HttpResponse::ServiceUnavailable().finish();
                }
                // The relay presents audit's service token.
                let token = req.headers().get(immilink_shared::context::SERVICE_TOKEN_NAME).and_then(|v| v.to_str().ok());
                if token != Some("audit-service-token") {
                    return HttpResponse::Unauthorized().finish();
                }
                let notice = notice.into_inner();
                let mut received = fake.received.lock().unwrap();
                let duplicate = received.iter().any(|seen| seen.id == notice.id);
                received.push(notice.clone());
                HttpResponse::Ok().json(json!({ "id": notice.id, "queued": if duplicate { 0 } else { 2 }, "duplicate": duplicate }))
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}

/// R-AUD-07's "at once" across services: the notices reach identity at least once, in the order
/// they were written; a failing identity is retried with each attempt counted, and nothing
/// overtakes the notice that failed.
#[actix_web::test]
async fn r_aud_07_notices_reach_identity_in_order_and_failed_deliveries_are_retried() {
    let test_db = TestDb::new();
    let database = db(&test_db);
    let fake = Arc::new(FakeIdentity::default());
    let (url, server) = fake_identity(fake.clone()).await;
    let clock: SharedClock = Arc::new(ManualClock::starting_at(morning()));
    let tokens = Arc::new(ServiceTokens::local(|| Ok("audit-service-token".into())));
    let relay = NoticeRelay::new(
        database.clone(),
        clock,
        immilink_shared::server::outbound_client().expect("a client"),
        &url,
        tokens,
    );
    let open = |description: &str, at: DateTime<Utc>| {
        findings::open(&mut database.get().unwrap(), at, &auditor(), manual(description, None)).unwrap()
    };
    let first = open("first", morning());
    let second = open("second", morning() + chrono::Duration::seconds(1));

    *fake.failing.lock().unwrap() = true;
    assert!(relay.deliver_once().await.is_err());
    assert!(relay.deliver_once().await.is_err());
    let waiting = notices(&mut database.get().unwrap());
    assert_eq!(
        waiting.iter().map(|n| (n.attempts, n.delivered_at.is_some())).collect::<Vec<_>>(),
        [(2, false), (0, false)],
        "each failed attempt is counted; the later notice does not overtake the one that failed"
    );

    *fake.failing.lock().unwrap() = false;
    assert_eq!(relay.deliver_once().await.unwrap(), 2);
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert!(received[0].subject.contains(&first.id) && received[1].subject.contains(&second.id), "in order");
    assert_eq!(received[0].roles, ["ethics_officer", "it_officer"]);
    assert_eq!((received[0].agency.as_str(), received[0].unit.as_deref()), ("TPE-SW", None));
    let delivered = notices(&mut database.get().unwrap());
    assert_eq!(
        delivered.iter().map(|n| (n.attempts, n.delivered_at)).collect::<Vec<_>>(),
        [(3, Some(to_db(morning()))), (1, Some(to_db(morning())))]
    );
    // Delivered notices are not sent again.
    assert_eq!(relay.deliver_once().await.unwrap(), 0);
    assert_eq!(fake.received.lock().unwrap().len(), 2);
    server.stop(true).await;
}

#[test]
fn r_aud_07_a_finding_has_a_deadline_and_overdue_ones_are_flagged() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    // Just after midnight in Taipei it is already the 3rd there (the 2nd in UTC): the 2nd is past.
    let early = taipei(2026, 12, 3, 0, 30, 0);
    let refused = findings::open(&mut conn, early, &auditor(), manual("late", Some(date(2026, 12, 2))));
    assert!(matches!(refused, Err(AuditError::Invalid { ref field, .. }) if field == "deadline"), "{refused:?}");
    let due =
        findings::open(&mut conn, early, &auditor(), manual("due on the 10th", Some(date(2026, 12, 10)))).unwrap();
    let later = findings::open(&mut conn, early, &auditor(), manual("due in 30 days", None)).unwrap();
    let closed =
        findings::open(&mut conn, early, &auditor(), manual("closed in time", Some(date(2026, 12, 10)))).unwrap();
    let closure =
        Closure { recommendation: Recommendation::NoAction, note: Some("duplicate of another finding".into()) };
    findings::close(&mut conn, early, &ethics(), &closed.id, closure).unwrap();
    let notices_before = notices(&mut conn).len();

    // On the deadline day itself nothing is overdue yet.
    let last_minute = taipei(2026, 12, 10, 23, 59, 59);
    assert!(findings::flag_overdue(&mut conn, last_minute).unwrap().flagged.is_empty());
    let overdue_only = FindingFilter { overdue: Some(true), ..FindingFilter::default() };
    assert!(findings::list(&mut conn, last_minute, &auditor(), &overdue_only, &Page::first()).unwrap().is_empty());

    // The next day in Taipei (still the 10th in UTC) the open one is overdue: flagged once, told, recorded.
    let next_day = taipei(2026, 12, 11, 0, 0, 1);
    assert_eq!(business_date(next_day), date(2026, 12, 11));
    let sweep = findings::flag_overdue(&mut conn, next_day).unwrap();
    assert_eq!(sweep.flagged, [due.id.as_str()], "the closed one and the one due later are not overdue");
    let flagged = findings::get(&mut conn, &auditor(), &due.id).unwrap();
    assert_eq!(flagged.overdue_flagged_at, Some(to_db(next_day)));
    assert!(flagged.overdue_on(business_date(next_day)) && !flagged.overdue_on(date(2026, 12, 10)));
    let sent = notices(&mut conn);
    assert_eq!(sent.len(), notices_before + 1);
    let told = sent.last().unwrap();
    assert_eq!(told.recipient_roles, "ethics_officer,it_officer,account_manager");
    assert!(told.subject.contains(&due.id) && told.body.contains("(1 day overdue)"), "{}", told.body);
    let overdue_records = records_of(&mut conn, kind::AUDIT_FINDING_OVERDUE);
    assert_eq!(overdue_records.len(), 1);
    assert_eq!(overdue_records[0].correlation_id.as_deref(), Some(due.id.as_str()));
    assert_eq!(payload(&overdue_records[0])["deadline"], json!("2026-12-10"));

    // Idempotent: a second run, the same day or a week later, flags nothing and tells nobody again.
    let before = counts(&mut conn);
    assert!(findings::flag_overdue(&mut conn, next_day).unwrap().flagged.is_empty());
    assert!(findings::flag_overdue(&mut conn, taipei(2026, 12, 18, 9, 0, 0)).unwrap().flagged.is_empty());
    assert_eq!(counts(&mut conn), before);

    // The list filters by it, as of the injected time.
    let ids = |found: Vec<findings::Finding>| found.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let overdue = findings::list(&mut conn, next_day, &auditor(), &overdue_only, &Page::first()).unwrap();
    assert_eq!(ids(overdue), [due.id.as_str()]);
    let not_overdue = FindingFilter { overdue: Some(false), ..FindingFilter::default() };
    let others = findings::list(&mut conn, next_day, &auditor(), &not_overdue, &Page::first()).unwrap();
    assert_eq!(ids(others), [closed.id.clone(), later.id.clone()], "newest first");
    // Remediated but not closed is still overdue; closed is not.
    findings::remediate(&mut conn, next_day, &manager(), &due.id, "權限已調整").unwrap();
    assert_eq!(
        ids(findings::list(&mut conn, next_day, &auditor(), &overdue_only, &Page::first()).unwrap()),
        [due.id.as_str()]
    );
    let closure = Closure { recommendation: Recommendation::Penalty, note: None };
    findings::close(&mut conn, next_day, &ethics(), &due.id, closure).unwrap();
    assert!(findings::list(&mut conn, next_day, &auditor(), &overdue_only, &Page::first()).unwrap().is_empty());
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

#[test]
fn r_aud_07_the_lifecycle_is_one_transition_function() {
    use FindingStatus::{Closed, Open, Remediated};
    let allowed = [(Open, Remediated), (Remediated, Closed), (Open, Closed)];
    for from in FindingStatus::ALL {
        for to in FindingStatus::ALL {
            let result = from.transition(*to);
            if allowed.contains(&(*from, *to)) {
                assert_eq!(result.unwrap(), *to);
            } else {
                assert!(
                    matches!(result, Err(AuditError::Conflict { code, .. }) if code == STATUS_CONFLICT),
                    "{from} -> {to} must be refused"
                );
            }
        }
    }
}

#[test]
fn r_aud_07_a_finding_is_tracked_to_closure_with_a_recommendation() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let now = morning();
    let finding = findings::open(&mut conn, now, &auditor(), manual("帳號借用 (account lending)", None)).unwrap();
    let id = finding.id.clone();

    // Remediation: the agency's account manager or head; other roles 403, another agency 404.
    let wrong_role = findings::remediate(&mut conn, now, &auditor(), &id, "done");
    assert!(matches!(wrong_role, Err(AuditError::RoleRequired { .. })), "{wrong_role:?}");
    let other_agency = findings::remediate(&mut conn, now, &hln_manager(), &id, "done");
    assert!(matches!(other_agency, Err(AuditError::NotFound(_))), "{other_agency:?}");
    let blank = findings::remediate(&mut conn, now, &manager(), &id, "  ");
    assert!(matches!(blank, Err(AuditError::Invalid { ref field, .. }) if field == "remediation"), "{blank:?}");
    // Closing an unremediated finding needs a note saying why.
    let no_note = Closure { recommendation: Recommendation::NoAction, note: None };
    let refused = findings::close(&mut conn, now, &ethics(), &id, no_note);
    assert!(matches!(refused, Err(AuditError::Invalid { ref field, .. }) if field == "note"), "{refused:?}");

    let later = now + chrono::Duration::days(3);
    let remediated = findings::remediate(&mut conn, later, &head(), &id, "已停用借用之帳號並重新教育訓練").unwrap();
    assert_eq!(remediated.status, FindingStatus::Remediated);
    assert_eq!(remediated.remediation.as_deref(), Some("已停用借用之帳號並重新教育訓練"));
    let again = findings::remediate(&mut conn, later, &manager(), &id, "again");
    assert!(matches!(again, Err(AuditError::Conflict { code, .. }) if code == STATUS_CONFLICT), "{again:?}");

    // Closure: the agency's auditor or ethics officer, or the immigration agency; others 403, another agency 404.
    let penalty = || Closure { recommendation: Recommendation::Penalty, note: Some("記申誡一次".into()) };
    let wrong_role = findings::close(&mut conn, later, &manager(), &id, penalty());
    assert!(matches!(wrong_role, Err(AuditError::RoleRequired { .. })), "{wrong_role:?}");
    let other_agency = findings::close(&mut conn, later, &hln_auditor(), &id, penalty());
    assert!(matches!(other_agency, Err(AuditError::NotFound(_))), "{other_agency:?}");
    let closed_at = later + chrono::Duration::days(1);
    let closed = findings::close(&mut conn, closed_at, &ethics(), &id, penalty()).unwrap();
    assert_eq!(closed.status, FindingStatus::Closed);
    assert_eq!(closed.recommendation, Some(Recommendation::Penalty));
    assert_eq!(closed.recommendation_note.as_deref(), Some("記申誡一次"));
    assert_eq!((closed.closed_by.as_deref(), closed.closed_at), (Some("tpe-ethics"), Some(to_db(closed_at))));
    // Closing twice: 409, and nothing changes.
    let twice = findings::close(
        &mut conn,
        closed_at,
        &auditor(),
        &id,
        Closure { recommendation: Recommendation::Reward, note: None },
    );
    assert!(matches!(twice, Err(AuditError::Conflict { code, .. }) if code == STATUS_CONFLICT), "{twice:?}");
    assert_eq!(findings::get(&mut conn, &auditor(), &id).unwrap(), closed);

    // Each step is a record in the log, naming who took it.
    let updates = records_of(&mut conn, kind::AUDIT_FINDING_UPDATED);
    let steps: Vec<(Option<String>, Value, Value)> = updates
        .iter()
        .map(|r| (r.actor_user_id.clone(), payload(r)["from"].clone(), payload(r)["to"].clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (Some("tpe-head".into()), json!("open"), json!("remediated")),
            (Some("tpe-ethics".into()), json!("remediated"), json!("closed")),
        ]
    );
    assert_eq!(payload(&updates[1])["recommendation"], json!("penalty"));
    assert!(updates.iter().all(|r| r.correlation_id.as_deref() == Some(id.as_str())));

    // The immigration agency closes any agency's finding, from open with a note.
    let other = findings::open(&mut conn, now, &hln_auditor(), manual("未依限辦理自行稽核", None)).unwrap();
    let nia_closure = Closure {
        recommendation: Recommendation::NoAction,
        note: Some("已由移民署實地稽核確認改善".into()),
    };
    assert_eq!(findings::close(&mut conn, now, &nia(), &other.id, nia_closure).unwrap().status, FindingStatus::Closed);
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

/// Two closers at once: one wins, the other is told it changed (409), and the log has one closure.
#[test]
fn r_aud_07_two_closers_cannot_both_win() {
    let test_db = TestDb::new();
    let database = db(&test_db);
    let id = findings::open(&mut database.get().unwrap(), morning(), &auditor(), manual("race", None)).unwrap().id;
    findings::remediate(&mut database.get().unwrap(), morning(), &manager(), &id, "fixed").unwrap();
    let closers: Vec<_> = [ethics(), auditor()]
        .into_iter()
        .map(|closer| {
            let (database, id) = (database.clone(), id.clone());
            std::thread::spawn(move || {
                let closure = Closure { recommendation: Recommendation::NoAction, note: None };
                findings::close(&mut database.get().unwrap(), morning(), &closer, &id, closure)
            })
        })
        .collect();
    let results: Vec<_> = closers.into_iter().map(|closer| closer.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().any(|r| matches!(r, Err(AuditError::Conflict { code, .. }) if *code == STATUS_CONFLICT)));
    let mut conn = database.get().unwrap();
    let closures = records_of(&mut conn, kind::AUDIT_FINDING_UPDATED)
        .iter()
        .filter(|r| payload(r)["to"] == json!("closed"))
        .count();
    assert_eq!(closures, 1);
}

#[test]
fn r_aud_07_findings_are_read_within_the_readers_scope() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let now = morning();
    let unit_1 = findings::open(&mut conn, now, &auditor(), manual("unit 1", None)).unwrap();
    let unit_2 = findings::open(
        &mut conn,
        now,
        &auditor(),
        ManualFinding { unit: Some("unit-2".into()), ..manual("unit 2", None) },
    )
    .unwrap();
    let nia_opened = ManualFinding { agency: Some("HLN-HR".into()), ..manual("NIA inspection", None) };
    let hln = findings::open(&mut conn, now, &nia(), nia_opened).unwrap();
    assert_eq!((hln.agency.as_str(), hln.opened_by.as_str()), ("HLN-HR", "nia-reviewer"));
    let all = FindingFilter::default();
    let ids = |found: Vec<findings::Finding>| found.into_iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(ids(findings::list(&mut conn, now, &nia(), &all, &Page::first()).unwrap()).len(), 3);
    assert_eq!(
        ids(findings::list(&mut conn, now, &ethics(), &all, &Page::first()).unwrap()),
        [unit_2.id.clone(), unit_1.id.clone()]
    );
    assert_eq!(ids(findings::list(&mut conn, now, &head(), &all, &Page::first()).unwrap()).len(), 2);
    assert_eq!(
        ids(findings::list(&mut conn, now, &supervisor("unit-1"), &all, &Page::first()).unwrap()),
        [unit_1.id.as_str()]
    );
    let other = FindingFilter { agency: Some("HLN-HR".into()), ..FindingFilter::default() };
    assert!(matches!(findings::list(&mut conn, now, &ethics(), &other, &Page::first()), Err(AuditError::OtherAgency)));
    assert!(matches!(findings::get(&mut conn, &ethics(), &hln.id), Err(AuditError::NotFound(_))));
    assert!(matches!(findings::get(&mut conn, &supervisor("unit-1"), &unit_2.id), Err(AuditError::NotFound(_))));
    let caseworker = person("tpe-caseworker", "TPE-SW", &[roles::CASEWORKER]);
    assert!(matches!(findings::get(&mut conn, &caseworker, &unit_1.id), Err(AuditError::RoleRequired { .. })));
    // Paging: newest first, continuing after the last id.
    let first = findings::list(&mut conn, now, &nia(), &all, &Page::new(Some(2), None).unwrap()).unwrap();
    let rest =
        findings::list(&mut conn, now, &nia(), &all, &Page::new(Some(2), Some(first[1].id.clone())).unwrap()).unwrap();
    assert_eq!((first.len(), ids(rest)), (2, vec![unit_1.id.clone()]));
    let closed_only = FindingFilter { status: Some(FindingStatus::Closed), ..FindingFilter::default() };
    assert!(findings::list(&mut conn, now, &nia(), &closed_only, &Page::first()).unwrap().is_empty());
}

// --- over HTTP ---------------------------------------------------------------------------------------

const KID: &str = "findings-test";

fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn verifier() -> TokenVerifier {
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(test_key().verifying_key().as_bytes());
    let jwk =
        Jwk { kty: "OKP".into(), crv: "Ed25519".into(), x, kid: KID.into(), alg: "EdDSA".into(), use_: "sig".into() };
    TokenVerifier::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap()
}

/// An EdDSA access token for `caller`, signed with the test key (JWS compact form).
fn token(caller: &Caller) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let issued = Utc::now().timestamp();
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: caller.user_id.to_string(),
        sid: caller.session_id.to_string(),
        agency: caller.agency.to_string(),
        unit: caller.unit.as_ref().map(|unit| unit.to_string()),
        roles: caller.roles.clone(),
        iat: issued,
        exp: issued + 600,
    };
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": KID });
    let signing_input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(serde_json::to_string(&claims).unwrap().as_bytes()));
    let signature = test_key().sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature.to_bytes()))
}

fn state(database: &Db, clock: SharedClock) -> crate::State {
    crate::State {
        db: database.clone(),
        clock,
        keys: Arc::new(
            crate::domain::checkpoints::LogKeys::new(
                "immilink.test/audit",
                &SigningKey::from_bytes(&[1; 32]),
                Vec::new(),
            )
            .unwrap(),
        ),
        witness: None,
    }
}

fn post(uri: &str, caller: &Caller, body: Value) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {}", token(caller))))
        .set_json(body)
}

fn get(uri: &str, caller: &Caller) -> actix_test::TestRequest {
    actix_test::TestRequest::get().uri(uri).insert_header(("Authorization", format!("Bearer {}", token(caller))))
}

/// Manual entry is validated at the edge and in the domain, and each refusal names its field; the
/// lifecycle over HTTP answers 403, 404 and 409 as the rule says; `overdue` follows the clock.
#[actix_web::test]
async fn r_aud_07_manual_entry_is_validated_and_the_lifecycle_answers_over_http() {
    let test_db = TestDb::new();
    let database = db(&test_db);
    let clock = Arc::new(ManualClock::starting_at(morning()));
    let app = actix_test::init_service(
        immilink_shared::server::base_app()
            .app_data(web::Data::new(state(&database, clock.clone())))
            .app_data(web::Data::new(verifier()))
            .into_utoipa_app()
            .configure(crate::routes::configure)
            .into_app(),
    )
    .await;
    let problem = |status: u16| {
        move |(got, body): (u16, Value)| -> Problem {
            assert_eq!(got, status, "{body}");
            serde_json::from_value(body).unwrap()
        }
    };
    macro_rules! call {
        ($request:expr) => {{
            let response = actix_test::call_service(&app, $request.to_request()).await;
            let status = response.status().as_u16();
            let body: Value = serde_json::from_slice(&actix_test::read_body(response).await).unwrap_or(Value::Null);
            (status, body)
        }};
    }
    let refusals = [
        (json!({ "description": "" }), "description"),
        (json!({ "description": "x".repeat(2001) }), "description"),
        (json!({ "description": "ok", "deadline": "2026-13-01" }), "deadline"),
        (json!({ "description": "ok", "deadline": "03/12/2026" }), "deadline"),
        (json!({ "description": "ok", "deadline": "2026-12-02" }), "deadline"),
        (json!({ "description": "ok", "unit": "" }), "unit"),
        (json!({ "deadline": "2026-12-31" }), "description"),
    ];
    for (body, field) in refusals {
        let refused = problem(422)(call!(post("/v1/audit/findings", &auditor(), body.clone())));
        assert_eq!(refused.field.as_deref(), Some(field), "{body}");
    }
    let nia_without_agency = problem(422)(call!(post("/v1/audit/findings", &nia(), json!({ "description": "x" }))));
    assert_eq!(nia_without_agency.field.as_deref(), Some("agency"));
    let caseworker = person("tpe-caseworker", "TPE-SW", &[roles::CASEWORKER]);
    let not_permitted = problem(403)(call!(post("/v1/audit/findings", &caseworker, json!({ "description": "x" }))));
    assert_eq!(not_permitted.code, "role_required");
    let other =
        problem(403)(call!(post("/v1/audit/findings", &auditor(), json!({ "agency": "HLN-HR", "description": "x" }))));
    assert_eq!(other.code, "other_agency");
    assert_eq!(counts(&mut database.get().unwrap()), (0, 0, 0), "no refusal wrote anything");

    let body = json!({ "unit": "unit-1", "description": "查詢目的與業務不符", "deadline": "2026-12-10" });
    let (status, opened) = call!(post("/v1/audit/findings", &auditor(), body));
    assert_eq!(status, 201, "{opened}");
    assert_eq!(
        (opened["status"].clone(), opened["overdue"].clone(), opened["deadline"].clone()),
        (json!("open"), json!(false), json!("2026-12-10"))
    );
    assert_eq!(opened["origin"], json!("manual"));
    let id = opened["id"].as_str().unwrap().to_owned();

    // The next day after the deadline in Taipei, it reads as overdue.
    clock.set(taipei(2026, 12, 11, 8, 0, 0));
    let (status, read) = call!(get(&format!("/v1/audit/findings/{id}"), &ethics()));
    assert_eq!((status, read["overdue"].clone()), (200, json!(true)));
    let (_, overdue) = call!(get("/v1/audit/findings?overdue=true", &supervisor("unit-1")));
    assert_eq!(overdue.as_array().map(Vec::len), Some(1));
    let bad_status = problem(422)(call!(get("/v1/audit/findings?status=pending", &ethics())));
    assert_eq!(bad_status.field.as_deref(), Some("status"));
    problem(404)(call!(get(&format!("/v1/audit/findings/{id}"), &hln_auditor())));

    let remediation = |text: &str| json!({ "remediation": text });
    let uri = |step: &str| format!("/v1/audit/findings/{id}/{step}");
    assert_eq!(problem(403)(call!(post(&uri("remediation"), &auditor(), remediation("x")))).code, "role_required");
    problem(404)(call!(post(&uri("remediation"), &hln_manager(), remediation("x"))));
    let (status, remediated) = call!(post(&uri("remediation"), &manager(), remediation("已改善")));
    assert_eq!((status, remediated["status"].clone()), (200, json!("remediated")));

    let unknown = problem(422)(call!(post(&uri("closure"), &ethics(), json!({ "recommendation": "praise" }))));
    assert_eq!(unknown.field.as_deref(), Some("recommendation"));
    assert_eq!(
        problem(403)(call!(post(&uri("closure"), &manager(), json!({ "recommendation": "none" })))).code,
        "role_required"
    );
    problem(404)(call!(post(&uri("closure"), &hln_auditor(), json!({ "recommendation": "none" }))));
    let (status, closed) =
        call!(post(&uri("closure"), &ethics(), json!({ "recommendation": "reward", "note": "主動發現並改善" })));
    assert_eq!(status, 200, "{closed}");
    assert_eq!(
        (closed["status"].clone(), closed["recommendation"].clone(), closed["overdue"].clone()),
        (json!("closed"), json!("reward"), json!(false))
    );
    assert_eq!(closed["closed_by"], json!("tpe-ethics"));
    let twice = problem(409)(call!(post(&uri("closure"), &auditor(), json!({ "recommendation": "none" }))));
    assert_eq!(twice.code, STATUS_CONFLICT);
    let missing = problem(404)(call!(post(
        "/v1/audit/findings/no-such-finding/closure",
        &ethics(),
        json!({ "recommendation": "none" })
    )));
    assert_eq!(missing.code, "not_found");
}
