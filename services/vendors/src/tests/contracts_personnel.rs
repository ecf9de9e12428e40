//! Contracts, personnel checks and agreements, offboarding and the identity relay over HTTP
//! (R-VEN-01, R-VEN-02, R-VEN-04, R-VEN-06, R-VEN-08, issue part 7), and the running service's relay
//! reaching a fake identity.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{test as actix_test, App, HttpResponse, HttpServer};
use diesel::prelude::*;
use immilink_shared::auth::{IssuedServiceToken, Jwk, JwkSet};
use immilink_shared::config::{ServiceSecrets, ServiceSettings};
use immilink_shared::context::SERVICE_TOKEN;
use immilink_shared::problem::Problem;
use immilink_shared::testing::TestDb;
use serde_json::{json, Value};

use super::*;
use crate::domain::identity_messages::{MessageKind, MessageReason};
use crate::identity_relay::PersonnelEvent;
use crate::schema::identity_messages;
use crate::MIGRATIONS;

/// The status, code, field and rule of a refusal.
async fn refusal<B: actix_web::body::MessageBody>(
    response: actix_web::dev::ServiceResponse<B>,
) -> (u16, String, Option<String>, Option<String>) {
    let status = response.status().as_u16();
    let problem: Problem = actix_test::read_body_json(response).await;
    (status, problem.code, problem.field, problem.rule)
}

fn answer(
    status: u16,
    code: &str,
    field: Option<&str>,
    rule: Option<&str>,
) -> (u16, String, Option<String>, Option<String>) {
    (status, code.to_owned(), field.map(str::to_owned), rule.map(str::to_owned))
}

/// `(kind, reason)` of every message written about `person_id`, oldest first.
fn messages_about(test_db: &TestDb, person_id: &str) -> Vec<(MessageKind, MessageReason)> {
    let db =
        immilink_shared::db::Db::connect(&immilink_shared::db::DbSettings::new(test_db.url()), &MIGRATIONS).unwrap();
    let mut conn = db.get().unwrap();
    identity_messages::table
        .filter(identity_messages::person_id.eq(person_id))
        .order(identity_messages::id.asc())
        .select((identity_messages::kind, identity_messages::reason))
        .load(&mut conn)
        .unwrap()
}

fn access(national_id: &str, service: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri("/internal/v1/personnel/access")
        .insert_header((SERVICE_TOKEN, service_token(service)))
        .set_json(json!({ "national_id": national_id }))
}

/// A contract's registration body.
fn contract_body(custom_development: bool) -> Value {
    json!({"title": "外來人口資料查詢系統維護案", "scope": "系統維運及客製化功能開發", "starts_on": "2026-01-01",
        "ends_on": "2027-12-31", "custom_development": custom_development})
}

/// A vendor of `agency`'s, registered by `bearer`: its id.
macro_rules! vendor {
    ($app:expr, $bearer:expr) => {{
        let vendor: Value = actix_test::call_and_read_body_json(
            $app,
            post("/v1/vendors", $bearer, json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
                .to_request(),
        )
        .await;
        vendor["id"].as_str().unwrap().to_owned()
    }};
}

/// R-VEN-02 over HTTP: activation of a custom-development contract is refused 409 naming the rule
/// until a certificate is on file; bad input names its field.
#[actix_web::test]
async fn r_ven_02_activation_is_refused_naming_the_rule_until_a_certificate_is_on_file() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let vendor = vendor!(&app, &tpe);
    let contracts = format!("/v1/vendors/{vendor}/contracts");

    let bad = [
        (
            json!({"scope": "s", "starts_on": "2026-01-01", "ends_on": "2026-12-31", "custom_development": true}),
            "missing_field",
            "title",
        ),
        (
            json!({"title": "t", "scope": "s", "starts_on": "2026-02-30", "ends_on": "2026-12-31", "custom_development": true}),
            "invalid_field",
            "starts_on",
        ),
        (
            json!({"title": "t", "scope": "s", "starts_on": "2026-06-01", "ends_on": "2026-01-01", "custom_development": true}),
            "invalid_field",
            "ends_on",
        ),
        (
            json!({"title": "t", "scope": "s", "starts_on": "2026-01-01", "ends_on": "2026-12-31", "custom_development": "yes"}),
            "invalid_field",
            "custom_development",
        ),
        (
            json!({"title": "t", "scope": "s", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}),
            "missing_field",
            "custom_development",
        ),
    ];
    for (body, code, field) in bad {
        let response = actix_test::call_service(&app, post(&contracts, &tpe, body.clone()).to_request()).await;
        assert_eq!(refusal(response).await, answer(422, code, Some(field), None), "{body}");
    }

    let created = actix_test::call_service(&app, post(&contracts, &tpe, contract_body(true)).to_request()).await;
    assert_eq!(created.status(), 201);
    let contract: Value = actix_test::read_body_json(created).await;
    assert_eq!((&contract["status"], &contract["security_certificate"]), (&json!("draft"), &Value::Null));
    assert_eq!((&contract["starts_on"], &contract["custom_development"]), (&json!("2026-01-01"), &json!(true)));
    let path = format!("{contracts}/{}", contract["id"].as_str().unwrap());

    let refused =
        actix_test::call_service(&app, post(&format!("{path}/activation"), &tpe, json!({})).to_request()).await;
    assert_eq!(
        refusal(refused).await,
        answer(409, "security_certificate_required", Some("certificate"), Some("R-VEN-02"))
    );

    let certificate = format!("{path}/security-certificate");
    for (body, code, field) in [
        (json!({"reference": "STC-1", "issued_on": "2026-11-30"}), "missing_field", "issuer"),
        (json!({"reference": "STC-1", "issuer": "lab", "issued_on": "30/11/2026"}), "invalid_field", "issued_on"),
        (json!({"reference": "STC-1", "issuer": "lab", "issued_on": "2999-01-01"}), "invalid_field", "issued_on"),
    ] {
        let response = actix_test::call_service(&app, post(&certificate, &tpe, body.clone()).to_request()).await;
        assert_eq!(refusal(response).await, answer(422, code, Some(field), None), "{body}");
    }
    let filed: Value = actix_test::call_and_read_body_json(
        &app,
        post(
            &certificate,
            &tpe,
            json!({"reference": "STC-2026-0412", "issuer": "資安檢測實驗室", "issued_on": "2026-11-30"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(filed["security_certificate"]["reference"], "STC-2026-0412");
    assert_eq!(filed["security_certificate"]["issued_on"], "2026-11-30");
    let active =
        actix_test::call_service(&app, post(&format!("{path}/activation"), &tpe, json!({})).to_request()).await;
    assert_eq!(active.status(), 200);
    let active: Value = actix_test::read_body_json(active).await;
    assert_eq!(active["status"], "active");
    let listed: Value = actix_test::call_and_read_body_json(&app, get(&contracts, &tpe).to_request()).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let fetched: Value = actix_test::call_and_read_body_json(&app, get(&path, &tpe).to_request()).await;
    assert_eq!(fetched, active);
}

/// Issue part 7: the vendor manager of agency A manages A's vendors only. Every contract and
/// personnel endpoint answers another agency's manager 404, as for a missing record, and changes
/// nothing; a caseworker of A is refused 403.
#[actix_web::test]
async fn every_contract_and_personnel_endpoint_is_not_found_for_another_agencys_manager() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let hln = token("HLN-HR", &["vendor_manager", "account_manager"]);
    let vendor = vendor!(&app, &tpe);
    let contract: Value = actix_test::call_and_read_body_json(
        &app,
        post(&format!("/v1/vendors/{vendor}/contracts"), &tpe, contract_body(false)).to_request(),
    )
    .await;
    let contract_path = format!("/v1/vendors/{vendor}/contracts/{}", contract["id"].as_str().unwrap());
    let person: Value = actix_test::call_and_read_body_json(
        &app,
        post(
            &format!("/v1/vendors/{vendor}/personnel"),
            &tpe,
            json!({"national_id": "A123456789", "name": "王小明", "contract_id": contract["id"]}),
        )
        .to_request(),
    )
    .await;
    let person_path = format!("/v1/vendors/{vendor}/personnel/{}", person["id"].as_str().unwrap());

    let requests = |bearer: &str| {
        vec![
            post(&format!("/v1/vendors/{vendor}/contracts"), bearer, contract_body(false)),
            get(&format!("/v1/vendors/{vendor}/contracts"), bearer),
            get(&contract_path, bearer),
            post(
                &format!("{contract_path}/security-certificate"),
                bearer,
                json!({"reference": "STC-1", "issuer": "lab", "issued_on": "2026-11-30"}),
            ),
            post(&format!("{contract_path}/activation"), bearer, json!({})),
            post(&format!("{contract_path}/end"), bearer, json!({"reason": "契約終止"})),
            get(&person_path, bearer),
            post(
                &format!("{person_path}/suitability-check"),
                bearer,
                json!({"status": "passed", "checked_on": "2026-11-30", "checker": "政風室"}),
            ),
            post(&format!("{person_path}/agreement"), bearer, json!({"signed_on": "2026-11-30", "reference": "NDA-1"})),
            post(&format!("{person_path}/role"), bearer, json!({"job_title": "專案經理", "reason": "調任"})),
            post(&format!("{person_path}/departure"), bearer, json!({})),
        ]
    };
    for request in requests(&hln) {
        let request = request.to_request();
        let uri = request.uri().to_string();
        let response = actix_test::call_service(&app, request).await;
        assert_eq!(refusal(response).await, answer(404, "not_found", None, None), "{uri}");
    }
    let caseworker = token("TPE-SW", &["caseworker"]);
    for request in requests(&caseworker) {
        let request = request.to_request();
        let uri = request.uri().to_string();
        let response = actix_test::call_service(&app, request).await;
        assert_eq!(refusal(response).await.0, 403, "{uri}");
    }
    // Nothing changed, and identity was told only of the registration.
    let unchanged: Value = actix_test::call_and_read_body_json(&app, get(&contract_path, &tpe).to_request()).await;
    assert_eq!(unchanged, contract);
    let still: Value = actix_test::call_and_read_body_json(&app, get(&person_path, &tpe).to_request()).await;
    assert_eq!(still, person);
    assert_eq!(
        messages_about(&test_db, person["id"].as_str().unwrap()),
        [(MessageKind::Registered, MessageReason::Registered)]
    );
    // Naming another agency's contract when adding a person is refused like a missing one.
    let hln_vendor = vendor!(&app, &hln);
    let foreign = actix_test::call_service(
        &app,
        post(
            &format!("/v1/vendors/{hln_vendor}/personnel"),
            &hln,
            json!({"national_id": "B200000004", "name": "陳美玲", "contract_id": contract["id"]}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(refusal(foreign).await, answer(422, "invalid_field", Some("contract_id"), None));
}

/// R-VEN-01 and R-VEN-04 over HTTP: the person's view shows whether they may access personal data
/// and which rule refuses it; identity's internal question answers the same, to identity only.
#[actix_web::test]
async fn r_ven_01_r_ven_04_the_person_view_and_identitys_question_show_access() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let vendor = vendor!(&app, &tpe);
    // An existing client: no contract named.
    let person: Value = actix_test::call_and_read_body_json(
        &app,
        post(&format!("/v1/vendors/{vendor}/personnel"), &tpe, json!({"national_id": "A123456789", "name": "王小明"}))
            .to_request(),
    )
    .await;
    assert_eq!(person["access"], json!({"allowed": false, "refused_by": "R-VEN-01"}));
    assert_eq!(
        (&person["contract_id"], &person["suitability_check"], &person["agreement"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let path = format!("/v1/vendors/{vendor}/personnel/{}", person["id"].as_str().unwrap());
    let asked: Value = actix_test::call_and_read_body_json(&app, access("a123456789", "identity").to_request()).await;
    assert_eq!(asked, json!({"allowed": false, "rule": "R-VEN-01", "personnel": true}));

    let check = format!("{path}/suitability-check");
    for (body, code, field) in [
        (json!({"status": "maybe", "checked_on": "2026-11-30", "checker": "政風室"}), "invalid_field", "status"),
        (json!({"status": "passed", "checker": "政風室"}), "missing_field", "checked_on"),
        (json!({"status": "passed", "checked_on": "2026-11-30", "checker": " "}), "missing_field", "checker"),
    ] {
        let response = actix_test::call_service(&app, post(&check, &tpe, body.clone()).to_request()).await;
        assert_eq!(refusal(response).await, answer(422, code, Some(field), None), "{body}");
    }
    let checked: Value = actix_test::call_and_read_body_json(
        &app,
        post(&check, &tpe, json!({"status": "passed", "checked_on": "2026-11-30", "checker": "政風室 林志明"}))
            .to_request(),
    )
    .await;
    assert_eq!(checked["suitability_check"]["status"], "passed");
    assert_eq!(checked["access"], json!({"allowed": false, "refused_by": "R-VEN-04"}));
    let asked: Value = actix_test::call_and_read_body_json(&app, access("A123456789", "identity").to_request()).await;
    assert_eq!(asked["rule"], "R-VEN-04");

    let agreement = format!("{path}/agreement");
    let missing =
        actix_test::call_service(&app, post(&agreement, &tpe, json!({"signed_on": "2026-11-30"})).to_request()).await;
    assert_eq!(refusal(missing).await, answer(422, "missing_field", Some("reference"), None));
    let filed: Value = actix_test::call_and_read_body_json(
        &app,
        post(&agreement, &tpe, json!({"signed_on": "2026-11-30", "reference": "NDA-2026-0087"})).to_request(),
    )
    .await;
    assert_eq!(filed["agreement"]["reference"], "NDA-2026-0087");
    assert_eq!(filed["access"], json!({"allowed": true, "refused_by": null}));
    let fetched: Value = actix_test::call_and_read_body_json(&app, get(&path, &tpe).to_request()).await;
    assert_eq!(fetched, filed);
    let asked: Value = actix_test::call_and_read_body_json(&app, access("A123456789", "identity").to_request()).await;
    assert_eq!(asked, json!({"allowed": true, "rule": null, "personnel": true}));
    let stranger: Value =
        actix_test::call_and_read_body_json(&app, access("B200000004", "identity").to_request()).await;
    assert_eq!(stranger, json!({"allowed": false, "rule": null, "personnel": false}));

    // Only identity asks; a bad ID is named, not echoed.
    let broker = actix_test::call_service(&app, access("A123456789", "broker").to_request()).await;
    assert_eq!(broker.status(), 403);
    let user = actix_test::call_service(
        &app,
        post("/internal/v1/personnel/access", &tpe, json!({"national_id": "A123456789"})).to_request(),
    )
    .await;
    assert_eq!(user.status(), 403);
    let invalid = actix_test::call_service(&app, access("A123456788", "identity").to_request()).await;
    let invalid: Problem = actix_test::read_body_json(invalid).await;
    assert_eq!((invalid.status, invalid.field.as_deref()), (422, Some("national_id")));
    assert!(!invalid.detail.contains("A123456788"));
    assert!(crate::openapi().paths.paths.keys().all(|p| !p.starts_with("/internal")));
}

/// R-VEN-06 over HTTP: a role change keeps the person active in the new role, a contract's end
/// departs its personnel; each writes exactly one offboarded message per person.
#[actix_web::test]
async fn r_ven_06_role_change_and_contract_end_each_offboard_once_over_http() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let vendor = vendor!(&app, &tpe);
    let contract: Value = actix_test::call_and_read_body_json(
        &app,
        post(&format!("/v1/vendors/{vendor}/contracts"), &tpe, contract_body(false)).to_request(),
    )
    .await;
    let contract_path = format!("/v1/vendors/{vendor}/contracts/{}", contract["id"].as_str().unwrap());
    actix_test::call_service(&app, post(&format!("{contract_path}/activation"), &tpe, json!({})).to_request()).await;
    let mut people = Vec::new();
    for (id, name) in [("A123456789", "王小明"), ("B200000004", "陳美玲")] {
        let person: Value = actix_test::call_and_read_body_json(
            &app,
            post(
                &format!("/v1/vendors/{vendor}/personnel"),
                &tpe,
                json!({"national_id": id, "name": name, "job_title": "系統工程師", "contract_id": contract["id"]}),
            )
            .to_request(),
        )
        .await;
        assert_eq!(person["contract_id"], contract["id"]);
        people.push(person["id"].as_str().unwrap().to_owned());
    }

    let role = format!("/v1/vendors/{vendor}/personnel/{}/role", people[0]);
    let missing =
        actix_test::call_service(&app, post(&role, &tpe, json!({"job_title": "專案經理"})).to_request()).await;
    assert_eq!(refusal(missing).await, answer(422, "missing_field", Some("reason"), None));
    let changed: Value = actix_test::call_and_read_body_json(
        &app,
        post(&role, &tpe, json!({"job_title": "專案經理", "reason": "調任專案經理"})).to_request(),
    )
    .await;
    assert_eq!((&changed["status"], &changed["job_title"]), (&json!("active"), &json!("專案經理")));

    let ended =
        actix_test::call_service(&app, post(&format!("{contract_path}/end"), &tpe, json!({})).to_request()).await;
    assert_eq!(refusal(ended).await, answer(422, "missing_field", Some("reason"), None));
    let ended: Value = actix_test::call_and_read_body_json(
        &app,
        post(&format!("{contract_path}/end"), &tpe, json!({"reason": "契約期滿"})).to_request(),
    )
    .await;
    assert_eq!(ended["contract"]["status"], "ended");
    let mut offboarded: Vec<String> =
        ended["offboarded"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    offboarded.sort();
    let mut expected = people.clone();
    expected.sort();
    assert_eq!(offboarded, expected);
    let again = actix_test::call_service(
        &app,
        post(&format!("{contract_path}/end"), &tpe, json!({"reason": "契約期滿"})).to_request(),
    )
    .await;
    assert_eq!(refusal(again).await, answer(409, "illegal_status_change", None, None));
    let departed = actix_test::call_service(
        &app,
        post(
            &format!("/v1/vendors/{vendor}/personnel/{}/role", people[1]),
            &tpe,
            json!({"job_title": "顧問", "reason": "x"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(refusal(departed).await, answer(409, "person_departed", None, Some("R-VEN-06")));

    use MessageKind::*;
    assert_eq!(
        messages_about(&test_db, &people[0]),
        [
            (Registered, MessageReason::Registered),
            (Offboarded, MessageReason::RoleChange),
            (Offboarded, MessageReason::ContractEnd)
        ]
    );
    assert_eq!(
        messages_about(&test_db, &people[1]),
        [(Registered, MessageReason::Registered), (Offboarded, MessageReason::ContractEnd)]
    );
}

#[test]
fn contract_and_personnel_routes_are_documented() {
    let doc = crate::openapi();
    for path in [
        "/v1/vendors/{vendor_id}/contracts",
        "/v1/vendors/{vendor_id}/contracts/{contract_id}",
        "/v1/vendors/{vendor_id}/contracts/{contract_id}/security-certificate",
        "/v1/vendors/{vendor_id}/contracts/{contract_id}/activation",
        "/v1/vendors/{vendor_id}/contracts/{contract_id}/end",
        "/v1/vendors/{vendor_id}/personnel/{person_id}",
        "/v1/vendors/{vendor_id}/personnel/{person_id}/suitability-check",
        "/v1/vendors/{vendor_id}/personnel/{person_id}/agreement",
        "/v1/vendors/{vendor_id}/personnel/{person_id}/role",
    ] {
        assert!(doc.paths.paths.contains_key(path), "{path}");
    }
}

/// A stand-in for identity as the running vendors service needs it: its keys, service tokens and
/// session answers, and the personnel-events endpoint, recording when each message arrived.
#[derive(Default)]
struct FakeIdentity {
    events: Mutex<Vec<(PersonnelEvent, Instant)>>,
}

async fn fake_identity(identity: Arc<FakeIdentity>) -> (String, actix_web::dev::ServerHandle) {
    let data = actix_web::web::Data::from(identity);
    let server = HttpServer::new(move || {
        let jwks = JwkSet {
            keys: vec![Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: TEST_KEY_X.into(),
                kid: KID.into(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            }],
        };
        App::new()
            .app_data(data.clone())
            .route("/.well-known/jwks.json", actix_web::web::get().to(move || {
                let jwks = jwks.clone();
                async move { HttpResponse::Ok().json(jwks) }
            }))
            .route(
                "/internal/v1/service-tokens",
                actix_web::web::post().to(|| async {
                    HttpResponse::Ok().json(IssuedServiceToken { token: "vendors-token".into(), expires_in: 300 })
                }),
            )
            .route(
                "/internal/v1/sessions/{sid}/liveness",
                actix_web::web::post().to(|| async { HttpResponse::Ok().json(json!({"live": true})) }),
            )
            .route(
                crate::identity_relay::PATH,
                actix_web::web::post().to(
                    |identity: actix_web::web::Data<FakeIdentity>, event: actix_web::web::Json<PersonnelEvent>| async move {
                        identity.events.lock().unwrap().push((event.into_inner(), Instant::now()));
                        HttpResponse::NoContent().finish()
                    },
                ),
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

/// R-VEN-06 end to end within the service: `Application::build` starts the identity relay, the
/// departure's commit wakes it, and identity has the offboarded message well within a second of the
/// answer (the bound for the token to be refused everywhere, with the gateway's 500 ms session
/// cache after it). The registration reached identity the same way (R-VEN-08).
#[actix_web::test]
async fn r_ven_06_the_running_service_tells_identity_of_a_departure_within_a_second() {
    let test_db = TestDb::new();
    let identity = Arc::new(FakeIdentity::default());
    let (identity_url, identity_server) = fake_identity(identity.clone()).await;
    let settings = crate::Settings {
        service: ServiceSettings {
            identity_url,
            ..ServiceSettings::local("vendors", test_db.url(), ServiceSecrets::generate())
        },
        // No audit service: its relay retries in the background, which does not hold identity's up.
        audit_url: "http://127.0.0.1:9".into(),
        rules: crate::VendorRules::default(),
        sweep_interval: None,
    };
    let running = crate::Application::build(settings, immilink_shared::clock::system_clock()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", running.port);
    let handle = running.server.handle();
    actix_web::rt::spawn(running.server);
    let http = immilink_shared::server::outbound_client().expect("a client");
    let bearer = token("TPE-SW", &["vendor_manager"]);
    let call = |path: String, body: Value| http.post(format!("{base}{path}")).bearer_auth(&bearer).json(&body).send();

    let vendor: Value =
        call("/v1/vendors".into(), json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let vendor_id = vendor["id"].as_str().unwrap().to_owned();
    let added =
        call(format!("/v1/vendors/{vendor_id}/personnel"), json!({"national_id": "A123456789", "name": "王小明"}))
            .await
            .unwrap();
    assert_eq!(added.status(), 201);
    let person: Value = added.json().await.unwrap();
    let person_id = person["id"].as_str().unwrap().to_owned();

    let departed = call(format!("/v1/vendors/{vendor_id}/personnel/{person_id}/departure"), json!({})).await.unwrap();
    let answered = Instant::now();
    assert_eq!(departed.status(), 200);
    let deadline = answered + Duration::from_secs(1);
    let offboarded = loop {
        let found = identity
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|(event, _)| event.kind == MessageKind::Offboarded)
            .map(|(event, at)| (event.clone(), *at));
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "identity was not told within a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (event, arrived) = offboarded;
    assert!(arrived.saturating_duration_since(answered) < Duration::from_secs(1));
    assert_eq!(
        (event.national_id.as_str(), event.person_id.as_str(), event.agency.as_str(), event.reason),
        ("A123456789", person_id.as_str(), "TPE-SW", MessageReason::Departure)
    );
    let kinds: Vec<MessageKind> = identity.events.lock().unwrap().iter().map(|(event, _)| event.kind).collect();
    assert_eq!(kinds, [MessageKind::Registered, MessageKind::Offboarded], "the registration first, each once");

    handle.stop(true).await;
    immilink_shared::server::Running::abort_tasks(running.tasks);
    identity_server.stop(true).await;
}
