//! Who read a person's data (R-GOV-02) and the account managers' export of query records
//! (R-AUD-08), on the real database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set): the
//! domain functions directly, and the routes through actix with signed test tokens.

use actix_web::body::MessageBody;
use actix_web::{test as actix_test, web};
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use ed25519_dalek::Signer as _;
use immilink_shared::auth::{roles, AccessClaims, Caller, Jwk, JwkSet, TokenVerifier, AUDIENCE, ISSUER};
use immilink_shared::clock::{ManualClock, SharedClock};
use immilink_shared::db::{Db, DbConn, DbSettings};
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::problem::Problem;
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use serde_json::{json, Value};
use utoipa_actix_web::AppExt;

use crate::domain::accesses::{self, AccessInquiry, ExportFilter, ExportRequest, ReportForm, MAX_ACCESSES};
use crate::domain::chain::{self, AuditRecord, RecordQuery};
use crate::domain::AuditError;
use crate::schema::audit_records;
use crate::MIGRATIONS;

/// The person every test asks about, and someone else.
const PERSON: &str = "A123456789";
const SOMEONE_ELSE: &str = "F131104093";

/// 2026-11-23 09:00 in Taipei.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap()
}

/// When the reports and exports are made: 2026-12-03 10:00 in Taipei.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 2, 0, 0).unwrap()
}

fn database(test_db: &TestDb) -> Db {
    Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database")
}

fn caller(user: &str, agency: &str, unit: Option<&str>, held: &[&str]) -> Caller {
    Caller {
        user_id: UserId::new(user),
        session_id: SessionId::new(format!("session-of-{user}")),
        agency: AgencyCode::new(agency),
        unit: unit.map(UnitId::new),
        roles: held.iter().map(|role| (*role).to_owned()).collect(),
    }
}

/// A lookup as the broker records it.
struct Lookup<'a> {
    id: String,
    agency: &'a str,
    unit: &'a str,
    user: &'a str,
    subject: &'a str,
    at: DateTime<Utc>,
    query_type: &'a str,
    legal_basis: &'a str,
    purpose_code: &'a str,
    case_number: String,
    remarks: Option<&'a str>,
}

impl<'a> Lookup<'a> {
    /// A social-welfare lookup of `subject` by `user`, `minutes` after t0.
    fn new(
        id: impl Into<String>,
        agency: &'a str,
        unit: &'a str,
        user: &'a str,
        subject: &'a str,
        minutes: i64,
    ) -> Self {
        let id = id.into();
        Self {
            case_number: format!("CASE-{id}"),
            id,
            agency,
            unit,
            user,
            subject,
            at: t0() + Duration::minutes(minutes),
            query_type: "entry_exit_last_year",
            legal_basis: "social_assistance_act",
            purpose_code: "sw_statutory_business",
            remarks: None,
        }
    }

    fn requested(&self) -> AuditEvent {
        AuditEvent {
            actor_user_id: Some(self.user.to_owned()),
            agency: Some(self.agency.to_owned()),
            correlation_id: Some(self.id.clone()),
            subject_id: Some(self.subject.to_owned()),
            unit: Some(self.unit.to_owned()),
            ..AuditEvent::new(
                "broker",
                kind::LOOKUP_REQUESTED,
                self.at,
                json!({
                    "query_type": self.query_type,
                    "legal_basis": self.legal_basis,
                    "purpose_code": self.purpose_code,
                    "case_number": self.case_number,
                    "remarks": self.remarks,
                    "session_id": format!("session-of-{}", self.user),
                    "actor_roles": ["caseworker"],
                    "proxy_authorization_id": null,
                    "batch_id": null,
                }),
            )
        }
    }

    fn completed(&self, outcome: &str) -> AuditEvent {
        AuditEvent {
            actor_user_id: Some(self.user.to_owned()),
            agency: Some(self.agency.to_owned()),
            correlation_id: Some(self.id.clone()),
            subject_id: Some(self.subject.to_owned()),
            unit: Some(self.unit.to_owned()),
            ..AuditEvent::new(
                "broker",
                kind::LOOKUP_COMPLETED,
                self.at + Duration::seconds(2),
                json!({ "outcome": outcome }),
            )
        }
    }
}

/// A login as identity records it: the user's session with their name.
fn logged_in(user: &str, name: &str, agency: &str) -> AuditEvent {
    let session = format!("session-of-{user}");
    AuditEvent {
        actor_user_id: Some(user.to_owned()),
        agency: Some(agency.to_owned()),
        correlation_id: Some(session.clone()),
        ..AuditEvent::new(
            "identity",
            kind::SESSION_OPENED,
            t0() - Duration::hours(1),
            json!({ "session_id": session, "user_id": user, "display_name": name }),
        )
    }
}

/// The person looked up twice by TPE-SW (units a and b) and once by HLN-HR, someone else once by
/// TPE-SW; every lookup succeeded but the last of TPE-SW's, which failed.
fn seed_accesses(conn: &mut DbConn) {
    let mut hr = Lookup::new("lookup-3", "HLN-HR", "hr-unit", "hln-clerk", PERSON, 30);
    hr.query_type = "arc_validity_address";
    hr.legal_basis = "household_registration_act";
    hr.purpose_code = "hr_registration_doubt";
    let lookups = [
        Lookup::new("lookup-2", "TPE-SW", "unit-b", "tpe-worker-2", PERSON, 20),
        Lookup::new("lookup-1", "TPE-SW", "unit-a", "tpe-worker-1", PERSON, 10),
        hr,
        Lookup::new("lookup-4", "TPE-SW", "unit-a", "tpe-worker-1", SOMEONE_ELSE, 40),
    ];
    let mut events: Vec<AuditEvent> = lookups.iter().map(Lookup::requested).collect();
    events.push(lookups[0].completed("failed"));
    events.extend(lookups[1..].iter().map(|lookup| lookup.completed("succeeded")));
    chain::append(conn, t0() + Duration::hours(1), &events).unwrap();
}

fn inquiry(subject: &str) -> AccessInquiry {
    AccessInquiry::parse(subject, None, None, ReportForm::List).unwrap()
}

fn own_acts(conn: &mut DbConn, of_kind: &str) -> Vec<AuditRecord> {
    let query = RecordQuery { kind: Some(of_kind.to_owned()), ..RecordQuery::default() };
    chain::search(conn, &query, &immilink_shared::extractors::Page { limit: 500, cursor: None }).unwrap()
}

#[test]
fn r_gov_02_a_persons_accesses_are_listed_to_authorised_roles() {
    let test_db = TestDb::new();
    let mut conn = database(&test_db).get().unwrap();
    seed_accesses(&mut conn);
    let listed = |conn: &mut DbConn, who: &Caller| -> Vec<(String, String)> {
        let report = accesses::report(conn, now(), who, &inquiry(PERSON)).unwrap();
        report.accesses.iter().map(|a| (a.lookup_id.clone(), a.agency.clone())).collect()
    };
    let both = vec![
        ("lookup-1".to_owned(), "TPE-SW".to_owned()),
        ("lookup-2".to_owned(), "TPE-SW".to_owned()),
        ("lookup-3".to_owned(), "HLN-HR".to_owned()),
    ];
    let nia = caller("nia-1", "NIA", None, &[roles::NIA_REVIEWER]);
    assert_eq!(listed(&mut conn, &nia), both, "the immigration agency sees every agency's, in the order requested");
    for role in [roles::ACCOUNT_MANAGER, roles::AUDITOR, roles::ETHICS_OFFICER] {
        let tpe = caller("tpe-overseer", "TPE-SW", None, &[role]);
        assert_eq!(listed(&mut conn, &tpe), both[..2].to_vec(), "a TPE-SW {role} sees only TPE-SW's");
        let hln = caller("hln-overseer", "HLN-HR", None, &[role]);
        assert_eq!(listed(&mut conn, &hln), both[2..].to_vec(), "a HLN-HR {role} sees only HLN-HR's");
    }
    // A unit supervisor who is also the agency's auditor reads as the auditor: the whole agency.
    let both_hats = caller("tpe-sup", "TPE-SW", Some("unit-a"), &[roles::UNIT_SUPERVISOR, roles::AUDITOR]);
    assert_eq!(listed(&mut conn, &both_hats).len(), 2);

    // Each lookup says where, when, what, under which law, why, for which case, and how it ended.
    let report = accesses::report(&mut conn, now(), &nia, &inquiry(" a123456789 ")).unwrap();
    assert_eq!(report.subject_id, PERSON, "the identifier is normalised as the broker stores it");
    assert_eq!(report.agency, None);
    assert_eq!(report.agencies(), ["HLN-HR", "TPE-SW"]);
    let first = &report.accesses[0];
    assert_eq!(first.unit.as_deref(), Some("unit-a"));
    assert_eq!(first.requested_at, (t0() + Duration::minutes(10)).naive_utc());
    assert_eq!(first.query_type.code, "entry_exit_last_year");
    assert_eq!(first.query_type.label(), "使用身分證號或統一證號查詢最近1年入出境紀錄");
    assert_eq!(first.legal_basis.label(), "社會救助法");
    assert_eq!(first.purpose.label(), "依法令辦理社政業務需使用移民資訊");
    assert_eq!(first.case_number, "CASE-lookup-1");
    assert_eq!(first.outcome.as_deref(), Some("succeeded"));
    assert_eq!(report.accesses[1].outcome.as_deref(), Some("failed"));
    let hr = &report.accesses[2];
    assert_eq!(
        (hr.query_type.label(), hr.legal_basis.label(), hr.purpose.label()),
        ("居留證有效性與回應地址查詢", "戶籍法", "受理戶籍登記、文件核發或人口清查業務有疑義")
    );

    // A period narrows the list: [from, to).
    let period = AccessInquiry::parse(
        PERSON,
        Some(t0() + Duration::minutes(20)),
        Some(t0() + Duration::minutes(30)),
        ReportForm::List,
    )
    .unwrap();
    let narrowed = accesses::report(&mut conn, now(), &nia, &period).unwrap();
    assert_eq!(narrowed.accesses.iter().map(|a| a.lookup_id.as_str()).collect::<Vec<_>>(), ["lookup-2"]);
    let backwards =
        AccessInquiry::parse(PERSON, Some(t0()), Some(t0() - Duration::minutes(1)), ReportForm::List).unwrap_err();
    assert!(matches!(backwards, AuditError::Invalid { ref field, .. } if field == "to"));
}

#[test]
fn r_gov_02_others_are_refused() {
    let test_db = TestDb::new();
    let mut conn = database(&test_db).get().unwrap();
    seed_accesses(&mut conn);
    let before = own_acts(&mut conn, kind::AUDIT_SUBJECT_ACCESSES_REPORTED).len();
    for held in [
        &[roles::UNIT_SUPERVISOR][..],
        &[roles::CASEWORKER],
        &[roles::IT_OFFICER],
        &[roles::AGENCY_HEAD],
        &[roles::VENDOR_MANAGER],
        &[],
    ] {
        let who = caller("tpe-someone", "TPE-SW", Some("unit-a"), held);
        let refused = accesses::report(&mut conn, now(), &who, &inquiry(PERSON)).unwrap_err();
        assert!(matches!(refused, AuditError::RoleRequired { .. }), "{held:?}: {refused:?}");
    }
    assert_eq!(own_acts(&mut conn, kind::AUDIT_SUBJECT_ACCESSES_REPORTED).len(), before, "a refusal reports nothing");
}

#[test]
fn r_gov_02_each_report_is_an_audit_record() {
    let test_db = TestDb::new();
    let mut conn = database(&test_db).get().unwrap();
    seed_accesses(&mut conn);
    let manager = caller("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);
    let first = accesses::report(&mut conn, now(), &manager, &inquiry(PERSON)).unwrap();
    let nia = caller("nia-1", "NIA", None, &[roles::NIA_REVIEWER]);
    let letter = AccessInquiry::parse(PERSON, None, None, ReportForm::ReplyLetter).unwrap();
    let second = accesses::report(&mut conn, now() + Duration::minutes(5), &nia, &letter).unwrap();

    let reports = own_acts(&mut conn, kind::AUDIT_SUBJECT_ACCESSES_REPORTED);
    assert_eq!(reports.len(), 2, "one record per report");
    let record = &reports[0];
    assert_eq!(record.id, first.report_id, "the report names its own record");
    assert_eq!(record.correlation_id.as_deref(), Some(first.report_id.as_str()));
    assert_eq!(record.source, "audit");
    assert_eq!(record.actor_user_id.as_deref(), Some("tpe-manager"), "who asked");
    assert_eq!(record.agency.as_deref(), Some("TPE-SW"));
    assert_eq!(record.subject_id.as_deref(), Some(PERSON), "about whom");
    assert_eq!(record.occurred_at, now().naive_utc());
    let payload: Value = serde_json::from_str(&record.payload).unwrap();
    assert_eq!(payload["lookups"], 2, "how many lookups were listed");
    assert_eq!(payload["agencies"], json!(["TPE-SW"]), "of which agencies");
    assert_eq!(payload["scope"], "TPE-SW");
    assert_eq!(payload["form"], "list");
    let payload: Value = serde_json::from_str(&reports[1].payload).unwrap();
    assert_eq!(reports[1].actor_user_id.as_deref(), Some("nia-1"));
    assert_eq!((payload["lookups"].clone(), payload["scope"].clone()), (json!(3), json!("all_agencies")));
    assert_eq!(payload["form"], "reply_letter");
    assert_eq!(payload["agencies"], json!(["HLN-HR", "TPE-SW"]));

    // The reports carry the person as their subject, yet a later report lists lookups only.
    assert_eq!(second.accesses.len(), 3);
    let third = accesses::report(&mut conn, now() + Duration::minutes(9), &nia, &inquiry(PERSON)).unwrap();
    assert_eq!(third.accesses.len(), 3, "the log's own reports are not lookups");
    assert!(chain::verify(&mut conn, None).unwrap().ok, "the reports were appended to the chain");

    // A report about someone never looked up is still a report, and still recorded.
    let nobody =
        accesses::report(&mut conn, now(), &manager, &inquiry(&immilink_shared::ids::synthetic_national_id(42)))
            .unwrap();
    assert!(nobody.accesses.is_empty());
    assert_eq!(own_acts(&mut conn, kind::AUDIT_SUBJECT_ACCESSES_REPORTED).len(), 4);
}

#[test]
fn r_gov_02_a_person_looked_up_more_often_than_one_report_lists_is_reported_by_period() {
    let test_db = TestDb::new();
    let mut conn = database(&test_db).get().unwrap();
    let lookups: Vec<AuditEvent> = (0..=MAX_ACCESSES)
        .map(|n| Lookup::new(format!("lookup-{n:05}"), "TPE-SW", "unit-a", "tpe-worker-1", PERSON, n).requested())
        .collect();
    chain::append(&mut conn, now(), &lookups).unwrap();
    let nia = caller("nia-1", "NIA", None, &[roles::NIA_REVIEWER]);
    let too_many = accesses::report(&mut conn, now(), &nia, &inquiry(PERSON)).unwrap_err();
    assert!(matches!(too_many, AuditError::Invalid { ref field, .. } if field == "from"), "{too_many:?}");
    assert!(own_acts(&mut conn, kind::AUDIT_SUBJECT_ACCESSES_REPORTED).is_empty(), "nothing was reported");
    let half = AccessInquiry::parse(PERSON, None, Some(t0() + Duration::minutes(100)), ReportForm::List).unwrap();
    assert_eq!(accesses::report(&mut conn, now(), &nia, &half).unwrap().accesses.len(), 100);
}

#[test]
fn r_gov_02_an_invalid_subject_id_is_refused_naming_subject_id() {
    for raw in ["A123456788", "", "A1234", "A1234 56789", "<script>", "A12345678901"] {
        let refused = AccessInquiry::parse(raw, None, None, ReportForm::List).unwrap_err();
        assert!(matches!(refused, AuditError::Invalid { ref field, .. } if field == "subject_id"), "{raw:?}");
    }
    for valid in ["A123456789", "ａ１２３４５６７８９", "AC01234567", "A800000014", "312345678"] {
        assert!(AccessInquiry::parse(valid, None, None, ReportForm::List).is_ok(), "{valid}");
    }
}

// ---- Over HTTP -------------------------------------------------------------------------------

/// The test key that signs test tokens, and the verifier that knows it.
fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

const KID: &str = "accesses-test";

fn verifier() -> TokenVerifier {
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing_key().verifying_key().as_bytes());
    let jwk =
        Jwk { kty: "OKP".into(), crv: "Ed25519".into(), x, kid: KID.into(), alg: "EdDSA".into(), use_: "sig".into() };
    TokenVerifier::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap()
}

/// An access token as identity signs it (EdDSA JWT), for `user` of `agency` holding `held`.
fn token(user: &str, agency: &str, unit: Option<&str>, held: &[&str]) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let issued = Utc::now().timestamp();
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: user.into(),
        sid: format!("session-of-{user}"),
        agency: agency.into(),
        unit: unit.map(str::to_owned),
        roles: held.iter().map(|role| (*role).to_owned()).collect(),
        iat: issued,
        exp: issued + 600,
    };
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": KID });
    let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(&serde_json::to_vec(&claims).unwrap()));
    let signature = signing_key().sign(signed.as_bytes());
    format!("{signed}.{}", b64(&signature.to_bytes()))
}

/// The service's public routes as `serve` assembles them, on `db`, at `now()`.
macro_rules! app {
    ($db:expr) => {{
        let clock: SharedClock = std::sync::Arc::new(ManualClock::starting_at(now()));
        actix_test::init_service(
            immilink_shared::server::base_app()
                .app_data(web::Data::new(crate::State {
                    db: $db.clone(),
                    clock,
                    keys: std::sync::Arc::new(
                        crate::domain::checkpoints::LogKeys::new(
                            "immilink.test/audit",
                            &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
                            Vec::new(),
                        )
                        .unwrap(),
                    ),
                    witness: None,
                }))
                .app_data(web::Data::new(verifier()))
                .into_utoipa_app()
                .configure(crate::routes::configure)
                .into_app(),
        )
        .await
    }};
}

fn get(uri: &str, bearer: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::get().uri(uri).insert_header(("Authorization", format!("Bearer {bearer}")))
}

async fn refusal<B: MessageBody>(response: actix_web::dev::ServiceResponse<B>) -> (u16, Problem) {
    let status = response.status().as_u16();
    (status, actix_test::read_body_json(response).await)
}

#[actix_web::test]
async fn r_gov_02_the_route_lists_to_authorised_roles_and_refuses_others() {
    let test_db = TestDb::new();
    let db = database(&test_db);
    seed_accesses(&mut db.get().unwrap());
    let app = app!(db);
    let uri = format!("/v1/audit/subjects/{PERSON}/accesses");

    let auditor = token("tpe-auditor", "TPE-SW", None, &[roles::AUDITOR]);
    let listed = actix_test::call_service(&app, get(&uri, &auditor).to_request()).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers().get("cache-control").unwrap(), "no-store", "personal data is not cached");
    let body: Value = actix_test::read_body_json(listed).await;
    assert_eq!(body["subject_id"], PERSON);
    assert_eq!(body["count"], 2);
    assert_eq!(body["agency"], "TPE-SW");
    let first = &body["accesses"][0];
    assert_eq!(first["agency"], "TPE-SW");
    assert_eq!(first["unit"], "unit-a");
    assert_eq!(first["requested_at"], "2026-11-23T01:10:00.000000Z");
    assert_eq!(
        first["query_type"],
        json!({"code": "entry_exit_last_year", "name_zh": "使用身分證號或統一證號查詢最近1年入出境紀錄"})
    );
    assert_eq!(first["legal_basis"], json!({"code": "social_assistance_act", "name_zh": "社會救助法"}));
    assert_eq!(first["purpose"]["code"], "sw_statutory_business");
    assert_eq!(first["case_number"], "CASE-lookup-1");
    assert_eq!(first["outcome"], "succeeded");

    let nia = token("nia-1", "NIA", None, &[roles::NIA_REVIEWER]);
    let period = format!("{uri}?from=2026-11-23T01:15:00Z&to=2026-11-23T10:00:00%2B08:00");
    let all: Value = actix_test::call_and_read_body_json(&app, get(&period, &nia).to_request()).await;
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(all["agencies"], json!(["HLN-HR", "TPE-SW"]));

    for (who, unit, held) in [
        ("tpe-sup", Some("unit-a"), &[roles::UNIT_SUPERVISOR][..]),
        ("tpe-worker-1", Some("unit-a"), &[roles::CASEWORKER]),
    ] {
        let refused = actix_test::call_service(&app, get(&uri, &token(who, "TPE-SW", unit, held)).to_request()).await;
        let (status, problem) = refusal(refused).await;
        assert_eq!((status, problem.code.as_str()), (403, "role_required"), "{held:?}");
    }
    let anonymous = actix_test::call_service(&app, actix_test::TestRequest::get().uri(&uri).to_request()).await;
    assert_eq!(anonymous.status(), 401);
}

#[actix_web::test]
async fn r_gov_02_an_invalid_subject_id_over_http_is_a_422_naming_subject_id() {
    let test_db = TestDb::new();
    let db = database(&test_db);
    let app = app!(db);
    let auditor = token("tpe-auditor", "TPE-SW", None, &[roles::AUDITOR]);
    for subject in ["A123456788", "A1234", "%E7%8E%8B%E5%B0%8F%E6%98%8E"] {
        let refused = actix_test::call_service(
            &app,
            get(&format!("/v1/audit/subjects/{subject}/accesses"), &auditor).to_request(),
        )
        .await;
        let (status, problem) = refusal(refused).await;
        assert_eq!((status, problem.field.as_deref()), (422, Some("subject_id")), "{subject}");
    }
    let bad_time = actix_test::call_service(
        &app,
        get(&format!("/v1/audit/subjects/{PERSON}/accesses?from=yesterday"), &auditor).to_request(),
    )
    .await;
    let (status, problem) = refusal(bad_time).await;
    assert_eq!((status, problem.field.as_deref()), (422, Some("from")));
    assert!(own_acts(&mut db.get().unwrap(), kind::AUDIT_SUBJECT_ACCESSES_REPORTED).is_empty());
}

#[actix_web::test]
async fn r_gov_02_the_reply_letter_is_printable() {
    let test_db = TestDb::new();
    let db = database(&test_db);
    {
        let mut conn = db.get().unwrap();
        seed_accesses(&mut conn);
        let mut odd = Lookup::new("lookup-5", "TPE-SW", "<b>unit</b>", "tpe-worker-1", PERSON, 50);
        odd.case_number = "<script>alert(1)</script>".into();
        chain::append(&mut conn, t0() + Duration::hours(2), &[odd.requested()]).unwrap();
    }
    let app = app!(db);
    let manager = token("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);
    let letter = actix_test::call_service(
        &app,
        get(&format!("/v1/audit/subjects/{PERSON}/accesses"), &manager)
            .insert_header(("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"))
            .to_request(),
    )
    .await;
    assert_eq!(letter.status(), 200);
    assert_eq!(letter.headers().get("content-type").unwrap(), "text/html; charset=utf-8");
    assert_eq!(letter.headers().get("cache-control").unwrap(), "no-store");
    let html = String::from_utf8(actix_test::read_body(letter).await.to_vec()).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("個人資料查詢答覆函"));
    assert!(html.contains("TPE-SW　函"), "the agency replying");
    assert!(html.contains("發文日期：<span class=\"value\">民國115年12月3日</span>"), "the date as an ROC date");
    assert!(html.contains("受文者：<span class=\"value\">A12345****</span>"), "the ID masked in the salutation");
    assert!(!html.contains(PERSON), "the full ID is not printed");
    assert!(html.contains("個人資料保護法第10條"), "the legal basis of the reply");
    assert!(html.contains(
        "本機關（TPE-SW）經由移民資訊連結作業系統查詢台端個人資料之紀錄計 <span class=\"value\">3</span> 筆"
    ));
    // The unit is an internal identifier, meaningless to a citizen: the letter names the agency.
    for heading in ["機關", "查詢日期時間", "查詢項目", "法令依據", "查詢目的", "案號"] {
        assert!(html.contains(&format!("<th>{heading}</th>")), "{heading}");
    }
    assert!(html.contains(
        "<tr><td class=\"no\">1</td><td>TPE-SW</td><td class=\"at\">民國115年11月23日<br>09:10</td>\
         <td>使用身分證號或統一證號查詢最近1年入出境紀錄</td><td>社會救助法</td><td>依法令辦理社政業務需使用移民資訊</td>\
         <td>CASE-lookup-1</td></tr>"
    ));
    assert!(html.contains("<td class=\"at\">民國115年11月23日<br>09:20</td>"));
    assert!(!html.contains("HLN-HR"), "another agency's lookups are not the manager's to tell");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "recorded values are escaped");
    assert!(!html.contains("<script") && !html.contains("<b>unit"), "no recorded value is markup");
    assert!(html.contains("@page"), "the shared print stylesheet: A4 with page numbers");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="), "self-contained");

    let records = own_acts(&mut db.get().unwrap(), kind::AUDIT_SUBJECT_ACCESSES_REPORTED);
    assert_eq!(records.len(), 1);
    assert!(html.contains(&records[0].id), "the letter names its audit record");
    let payload: Value = serde_json::from_str(&records[0].payload).unwrap();
    assert_eq!(payload["form"], "reply_letter");
}

/// Not a test: writes a sample reply letter to /tmp/access_letter.html to look at in a browser
/// (`cargo test -p immilink-audit sample_reply_letter -- --ignored`).
#[test]
#[ignore]
fn sample_reply_letter() {
    let test_db = TestDb::new();
    let mut conn = database(&test_db).get().unwrap();
    seed_accesses(&mut conn);
    let mut more: Vec<AuditEvent> = Vec::new();
    for n in 0..14 {
        let mut lookup =
            Lookup::new(format!("lookup-x{n}"), "TPE-SW", "社會救助科", "tpe-worker-1", PERSON, 60 + n * 1500);
        lookup.case_number = format!("北市社助字第11530{n:05}號");
        if n % 3 == 1 {
            lookup.legal_basis = "disability_rights_act";
            lookup.query_type = "foreigner_residence";
        }
        more.push(lookup.requested());
    }
    chain::append(&mut conn, now() - Duration::days(1), &more).unwrap();
    let nia = caller("nia-1", "NIA-IMM", None, &[roles::NIA_REVIEWER]);
    let inquiry = AccessInquiry::parse(PERSON, Some(t0() - Duration::days(30)), None, ReportForm::ReplyLetter).unwrap();
    let report = accesses::report(&mut conn, now(), &nia, &inquiry).unwrap();
    let html = crate::documents::access_letter::AccessLetter::of(&report).html().unwrap();
    std::fs::write("/tmp/access_letter.html", html).unwrap();
}

// ---- R-AUD-08: the account managers' export ---------------------------------------------------

/// TPE-SW: worker 1 (unit a) at +10, +30 and +50 minutes, worker 2 (unit b) at +20 and +40; HLN-HR
/// at +15. Worker 1 has a name from their session, worker 2 none.
fn seed_query_records(conn: &mut DbConn) {
    let mut lookups = [
        Lookup::new("r-1", "TPE-SW", "unit-a", "tpe-worker-1", PERSON, 10),
        Lookup::new("r-2", "TPE-SW", "unit-b", "tpe-worker-2", SOMEONE_ELSE, 20),
        Lookup::new("r-3", "TPE-SW", "unit-a", "tpe-worker-1", SOMEONE_ELSE, 30),
        Lookup::new("r-4", "TPE-SW", "unit-b", "tpe-worker-2", PERSON, 40),
        Lookup::new("r-5", "TPE-SW", "unit-a", "tpe-worker-1", PERSON, 50),
        Lookup::new("h-1", "HLN-HR", "hr-unit", "hln-clerk", PERSON, 15),
    ];
    lookups[2].remarks = Some("=HYPERLINK(\"http://example.invalid\"), 含逗號\n第二行");
    let mut events = vec![logged_in("tpe-worker-1", "王小明", "TPE-SW"), logged_in("hln-clerk", "林美華", "HLN-HR")];
    events.extend(lookups.iter().map(Lookup::requested));
    events.push(lookups[0].completed("succeeded"));
    events.push(lookups[1].completed("failed"));
    chain::append(conn, t0() + Duration::hours(1), &events).unwrap();
}

/// The CSV's rows (after the header) as cells.
fn csv_rows(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::str::from_utf8(body).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("the file starts with a byte-order mark");
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    (header, rows)
}

fn export_uri(query: &str) -> String {
    format!("/v1/audit/query-records/export?from=2026-11-23T01:00:00Z&to=2026-11-23T02:00:00Z{query}")
}

#[actix_web::test]
async fn r_aud_08_account_managers_export_their_agencys_query_records_as_csv() {
    let test_db = TestDb::new();
    let db = database(&test_db);
    seed_query_records(&mut db.get().unwrap());
    let app = app!(db);
    let manager = token("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);

    let exported = actix_test::call_service(&app, get(&export_uri(""), &manager).to_request()).await;
    assert_eq!(exported.status(), 200);
    assert_eq!(exported.headers().get("content-type").unwrap(), "text/csv; charset=utf-8");
    assert_eq!(
        exported.headers().get("content-disposition").unwrap(),
        "attachment; filename=\"query-records-TPE-SW-20261123.csv\""
    );
    assert_eq!(exported.headers().get("x-immilink-export-rows").unwrap(), "5");
    let body = actix_test::read_body(exported).await;
    assert!(body.starts_with("\u{feff}lookup_id,record_id,requested_at,".as_bytes()), "BOM, then the header");
    let (header, rows) = csv_rows(&body);
    assert_eq!(
        header,
        [
            "lookup_id",
            "record_id",
            "requested_at",
            "requested_at_taipei",
            "agency",
            "unit",
            "user_id",
            "user_name",
            "query_type",
            "subject_id",
            "legal_basis",
            "purpose_code",
            "case_number",
            "outcome",
            "remarks"
        ]
    );
    let ids: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(ids, ["r-1", "r-2", "r-3", "r-4", "r-5"], "the agency's rows in the order requested, HLN-HR's absent");
    let first = &rows[0];
    let stored: String = audit_records::table
        .filter(audit_records::correlation_id.eq("r-1"))
        .filter(audit_records::kind.eq(kind::LOOKUP_REQUESTED))
        .select(audit_records::id)
        .first(&mut db.get().unwrap())
        .unwrap();
    assert_eq!(first[1], stored, "the lookup's audit record");
    assert_eq!(
        &first[2..8],
        ["2026-11-23T01:10:00.000000Z", "2026-11-23 09:10:00", "TPE-SW", "unit-a", "tpe-worker-1", "王小明"]
    );
    assert_eq!(
        &first[8..],
        ["entry_exit_last_year", PERSON, "social_assistance_act", "sw_statutory_business", "CASE-r-1", "succeeded", ""]
    );
    assert_eq!((rows[1][7].as_str(), rows[1][13].as_str()), ("", "failed"), "no name known; the outcome");
    assert_eq!(rows[3][13], "", "no outcome yet");
    assert_eq!(
        rows[2][14], "'=HYPERLINK(\"http://example.invalid\"), 含逗號\n第二行",
        "remarks quoted, and defused for spreadsheets"
    );

    let only = |query: &str| {
        let uri = export_uri(query);
        let manager = manager.clone();
        let app = &app;
        async move {
            let body = actix_test::call_and_read_body(app, get(&uri, &manager).to_request()).await;
            csv_rows(&body).1.into_iter().map(|row| row[0].clone()).collect::<Vec<_>>()
        }
    };
    assert_eq!(only("&user=tpe-worker-2").await, ["r-2", "r-4"], "by user");
    assert_eq!(only("&unit=unit-a").await, ["r-1", "r-3", "r-5"], "by unit");
    assert_eq!(only("&unit=unit-a&user=tpe-worker-2").await, Vec::<String>::new(), "both");
    let range = "/v1/audit/query-records/export?from=2026-11-23T09:20:00%2B08:00&to=2026-11-23T01:40:00Z";
    let body = actix_test::call_and_read_body(&app, get(range, &manager).to_request()).await;
    let ids: Vec<String> = csv_rows(&body).1.into_iter().map(|row| row[0].clone()).collect();
    assert_eq!(ids, ["r-2", "r-3"], "by time range: [from, to)");
    assert_eq!(only("&agency=TPE-SW").await.len(), 5, "naming one's own agency is fine");
    let hln = token("hln-manager", "HLN-HR", None, &[roles::ACCOUNT_MANAGER]);
    let body = actix_test::call_and_read_body(&app, get(&export_uri(""), &hln).to_request()).await;
    let hln_rows = csv_rows(&body).1;
    assert_eq!(hln_rows.len(), 1);
    assert_eq!((hln_rows[0][0].as_str(), hln_rows[0][7].as_str()), ("h-1", "林美華"));
}

#[actix_web::test]
async fn r_aud_08_only_account_managers_export() {
    let test_db = TestDb::new();
    let db = database(&test_db);
    seed_query_records(&mut db.get().unwrap());
    let app = app!(db);
    for (who, unit, held) in [
        ("tpe-auditor", None, &[roles::AUDITOR][..]),
        ("tpe-ethics", None, &[roles::ETHICS_OFFICER]),
        ("tpe-sup", Some("unit-a"), &[roles::UNIT_SUPERVISOR]),
        ("tpe-worker-1", Some("unit-a"), &[roles::CASEWORKER]),
        ("tpe-head", None, &[roles::AGENCY_HEAD]),
    ] {
        let refused =
            actix_test::call_service(&app, get(&export_uri(""), &token(who, "TPE-SW", unit, held)).to_request()).await;
        let (status, problem) = refusal(refused).await;
        assert_eq!((status, problem.code.as_str()), (403, "role_required"), "{held:?}");
    }
    let nia = token("nia-1", "NIA", None, &[roles::NIA_REVIEWER]);
    let refused = actix_test::call_service(&app, get(&export_uri("&agency=TPE-SW"), &nia).to_request()).await;
    assert_eq!(refused.status(), 403, "the immigration agency inspects through the log, not this export");

    let manager = token("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);
    let other = actix_test::call_service(&app, get(&export_uri("&agency=HLN-HR"), &manager).to_request()).await;
    let (status, problem) = refusal(other).await;
    assert_eq!((status, problem.code.as_str(), problem.field.as_deref()), (403, "other_agency", Some("agency")));

    for (uri, field) in [
        ("/v1/audit/query-records/export?to=2026-11-23T02:00:00Z", "from"),
        ("/v1/audit/query-records/export?from=2026-11-23T01:00:00Z", "to"),
        ("/v1/audit/query-records/export?from=2026-11-23T02:00:00Z&to=2026-11-23T02:00:00Z", "to"),
        ("/v1/audit/query-records/export?from=2026-11-23&to=2026-11-24T00:00:00Z", "from"),
    ] {
        let refused = actix_test::call_service(&app, get(uri, &manager).to_request()).await;
        let (status, problem) = refusal(refused).await;
        assert_eq!((status, problem.field.as_deref()), (422, Some(field)), "{uri}");
    }
    let long_user = format!("&user={}", "u".repeat(65));
    let refused = actix_test::call_service(&app, get(&export_uri(&long_user), &manager).to_request()).await;
    let (status, problem) = refusal(refused).await;
    assert_eq!((status, problem.field.as_deref()), (422, Some("user")));
    assert!(own_acts(&mut db.get().unwrap(), kind::AUDIT_QUERY_RECORDS_EXPORTED).is_empty(), "nothing was exported");
}

#[actix_web::test]
async fn r_aud_08_every_export_is_an_audit_record() {
    let test_db = TestDb::new();
    let db = database(&test_db);
    seed_query_records(&mut db.get().unwrap());
    let app = app!(db);
    let manager = token("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);
    let response =
        actix_test::call_service(&app, get(&export_uri("&unit=unit-a&user=tpe-worker-1"), &manager).to_request()).await;
    assert_eq!(response.status(), 200);
    // Not a byte of the body has been read yet: the record is already committed.
    let records = own_acts(&mut db.get().unwrap(), kind::AUDIT_QUERY_RECORDS_EXPORTED);
    assert_eq!(records.len(), 1, "recorded before the first byte is streamed");
    let record = &records[0];
    assert_eq!(record.source, "audit");
    assert_eq!(record.actor_user_id.as_deref(), Some("tpe-manager"), "who");
    assert_eq!(record.agency.as_deref(), Some("TPE-SW"));
    assert_eq!(record.subject_id, None, "an export names no one person");
    assert_eq!(record.occurred_at, now().naive_utc());
    assert_eq!(
        response.headers().get("x-immilink-export-id").unwrap().to_str().unwrap(),
        record.correlation_id.as_deref().unwrap()
    );
    let payload: Value = serde_json::from_str(&record.payload).unwrap();
    assert_eq!(payload["from"], "2026-11-23T01:00:00+00:00", "which filters");
    assert_eq!(payload["to"], "2026-11-23T02:00:00+00:00");
    assert_eq!(payload["user"], "tpe-worker-1");
    assert_eq!(payload["unit"], "unit-a");
    assert_eq!(payload["rows"], 3, "how many");
    assert_eq!(payload["format"], "csv");
    let body = actix_test::read_body(response).await;
    assert_eq!(csv_rows(&body).1.len(), 3);

    let second = actix_test::call_and_read_body(&app, get(&export_uri(""), &manager).to_request()).await;
    assert_eq!(csv_rows(&second).1.len(), 5);
    let records = own_acts(&mut db.get().unwrap(), kind::AUDIT_QUERY_RECORDS_EXPORTED);
    assert_eq!(records.len(), 2, "every export");
    let payload: Value = serde_json::from_str(&records[1].payload).unwrap();
    assert_eq!(
        (payload["user"].clone(), payload["unit"].clone(), payload["rows"].clone()),
        (Value::Null, Value::Null, json!(5))
    );
    assert!(chain::verify(&mut db.get().unwrap(), None).unwrap().ok);
}

#[test]
fn r_aud_08_an_export_holds_exactly_the_rows_its_record_counts() {
    let test_db = TestDb::new();
    let mut conn = database(&test_db).get().unwrap();
    seed_query_records(&mut conn);
    let manager = caller("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);
    let request = ExportRequest { from: Some(t0()), to: Some(t0() + Duration::hours(1)), ..ExportRequest::default() };
    let filter = ExportFilter::parse(&manager, request).unwrap();
    let started = accesses::start_export(&mut conn, now(), &manager, &filter).unwrap();
    assert_eq!(started.rows, 5);
    // A lookup of the period recorded after the export began is not part of it.
    let late = Lookup::new("r-6", "TPE-SW", "unit-a", "tpe-worker-1", PERSON, 55);
    chain::append(&mut conn, now(), &[late.requested()]).unwrap();
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = accesses::export_page(&mut conn, &started.filter, after.as_ref(), 2).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.cursor());
        read.extend(page.into_iter().map(|row| row.lookup_id));
    }
    assert_eq!(read, ["r-1", "r-2", "r-3", "r-4", "r-5"], "pages of two, each row once, in order");
}

#[actix_web::test]
async fn r_aud_08_an_export_larger_than_a_page_streams_every_row_once_and_in_order() {
    const ROWS: usize = 5_000;
    let test_db = TestDb::new();
    let db = database(&test_db);
    {
        let mut conn = db.get().unwrap();
        // Fifty lookups share each minute, so pages end in the middle of a minute.
        let lookups: Vec<AuditEvent> = (0..ROWS)
            .map(|n| {
                let mut lookup = Lookup::new(
                    format!("bulk-{:05}", (n * 7919) % ROWS),
                    "TPE-SW",
                    "unit-a",
                    "tpe-worker-1",
                    PERSON,
                    0,
                );
                lookup.at = t0() + Duration::minutes((n / 50) as i64);
                lookup.requested()
            })
            .collect();
        for chunk in lookups.chunks(1000) {
            chain::append(&mut conn, now(), chunk).unwrap();
        }
    }
    let app = app!(db);
    let manager = token("tpe-manager", "TPE-SW", None, &[roles::ACCOUNT_MANAGER]);
    let uri = "/v1/audit/query-records/export?from=2026-11-23T00:00:00Z&to=2026-11-24T00:00:00Z";
    let response = actix_test::call_service(&app, get(uri, &manager).to_request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-immilink-export-rows").unwrap(), "5000");
    let mut body = Box::pin(response.into_body());
    let mut chunks = Vec::new();
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        chunks.push(chunk.map_err(|_| "a chunk failed").unwrap());
    }
    assert!(chunks.len() >= 4, "the header, then a chunk per page of 2000: {} chunks", chunks.len());
    assert!(chunks.iter().all(|chunk| !chunk.is_empty()));
    let whole: Vec<u8> = chunks.concat();
    let (_, rows) = csv_rows(&whole);
    assert_eq!(rows.len(), ROWS, "every row arrives");
    let mut expected: Vec<(String, String)> = rows.iter().map(|row| (row[2].clone(), row[0].clone())).collect();
    let arrived = expected.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), ROWS, "each once");
    assert_eq!(arrived, expected, "in the order requested, ties by lookup id");
}
