//! The service's HTTP surface against its real database (SQLite, or PostgreSQL when TEST_DATABASE_URL
//! is set): roles, agency scoping and bad input at the handler level, and the internal lookup.

use actix_web::{test as actix_test, web};
use chrono::Utc;
use immilink_shared::auth::{
    AccessClaims, Jwk, JwkSet, ServiceClaims, TokenVerifier, AUDIENCE, ISSUER, SERVICE_AUDIENCE,
};
use immilink_shared::clock::system_clock;
use immilink_shared::context::SERVICE_TOKEN;
use immilink_shared::db::{Db, DbSettings};
use immilink_shared::problem::Problem;
use immilink_shared::testing::TestDb;
use serde_json::{json, Value};
use utoipa_actix_web::AppExt;

use crate::{PersonnelLookupAnswer, State, MIGRATIONS};

/// A throwaway Ed25519 key (PKCS#8 DER) and its public half, for test tokens only.
const TEST_KEY_DER: &str =
    "302e020100300506032b6570042204205b356827d5aac627df001606a0fca5d3c11a7536a963fab8cf4d658609c1472b";
const TEST_KEY_X: &str = "Hmbg0PXQ1PqXRoMLmeSraJmbs2vEIjvVh9fU45qHUy0";
const KID: &str = "test-key";

fn verifier() -> TokenVerifier {
    let jwk = Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: TEST_KEY_X.into(),
        kid: KID.into(),
        alg: "EdDSA".into(),
        use_: "sig".into(),
    };
    TokenVerifier::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap()
}

fn token(agency: &str, roles: &[&str]) -> String {
    let now = Utc::now().timestamp();
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: format!("user-{agency}"),
        sid: "session-1".into(),
        agency: agency.into(),
        unit: None,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        iat: now,
        exp: now + 600,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(KID.into());
    let der = hex_decode(TEST_KEY_DER);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
}

/// A service token naming `service`, signed with the test key.
fn service_token(service: &str) -> String {
    let now = Utc::now().timestamp();
    let claims = ServiceClaims {
        iss: ISSUER.into(),
        aud: SERVICE_AUDIENCE.into(),
        sub: service.into(),
        iat: now,
        exp: now + 300,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(KID.into());
    let der = hex_decode(TEST_KEY_DER);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A relay that is never run: the tests read the outbox itself.
fn idle_relay(db: &Db) -> immilink_shared::outbox::Relay {
    let tokens = std::sync::Arc::new(immilink_shared::auth::ServiceTokens::local(|| Err("no audit in tests".into())));
    immilink_shared::outbox::Relay::new(
        db.clone(),
        system_clock(),
        immilink_shared::server::outbound_client().expect("a client"),
        "http://127.0.0.1:0",
        tokens,
    )
}

/// An identity relay that is never run: the tests read the `identity_messages` table itself.
fn idle_identity_relay(db: &Db) -> crate::identity_relay::IdentityRelay {
    let tokens =
        std::sync::Arc::new(immilink_shared::auth::ServiceTokens::local(|| Err("no identity in tests".into())));
    crate::identity_relay::IdentityRelay::new(
        db.clone(),
        system_clock(),
        immilink_shared::server::outbound_client().expect("a client"),
        "http://127.0.0.1:0",
        tokens,
    )
}

/// The service as `serve` assembles it, on `test_db`.
macro_rules! app {
    ($test_db:expr) => {{
        let db = Db::connect(&DbSettings::new($test_db.url()), &MIGRATIONS).unwrap();
        actix_test::init_service(
            immilink_shared::server::base_app()
                .wrap(actix_web::middleware::from_fn(immilink_shared::auth::verify_service_caller))
                .app_data(web::Data::new(State {
                    db: db.clone(),
                    clock: system_clock(),
                    relay: idle_relay(&db),
                    identity_relay: idle_identity_relay(&db),
                    rules: crate::VendorRules::default(),
                }))
                .app_data(web::Data::new(db))
                .app_data(web::Data::new(verifier()))
                .into_utoipa_app()
                .configure(crate::routes::configure)
                .into_app()
                .configure(crate::routes::configure_internal),
        )
        .await
    }};
}

fn post(uri: &str, bearer: &str, body: Value) -> actix_test::TestRequest {
    actix_test::TestRequest::post().uri(uri).insert_header(("Authorization", format!("Bearer {bearer}"))).set_json(body)
}

fn get(uri: &str, bearer: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::get().uri(uri).insert_header(("Authorization", format!("Bearer {bearer}")))
}

fn lookup(national_id: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri("/internal/v1/personnel/lookup")
        .insert_header((SERVICE_TOKEN, service_token("identity")))
        .set_json(json!({ "national_id": national_id }))
}

const PERSON: &str = "A123456789";

#[actix_web::test]
async fn personnel_are_managed_only_within_the_callers_agency() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let hln = token("HLN-HR", &["vendor_manager", "account_manager"]);
    let vendor: Value = actix_test::call_and_read_body_json(
        &app,
        post("/v1/vendors", &tpe, json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
            .to_request(),
    )
    .await;
    let vendor_id = vendor["id"].as_str().unwrap().to_owned();
    let personnel = format!("/v1/vendors/{vendor_id}/personnel");

    let added = actix_test::call_service(
        &app,
        post(&personnel, &tpe, json!({"national_id": "a123456789", "name": " 王小明 ", "job_title": "工程師"}))
            .to_request(),
    )
    .await;
    assert_eq!(added.status(), 201);
    let person: Value = actix_test::read_body_json(added).await;
    assert_eq!(
        (&person["national_id"], &person["name"], &person["status"], &person["departed_at"]),
        (&json!(PERSON), &json!("王小明"), &json!("active"), &Value::Null)
    );
    let person_id = person["id"].as_str().unwrap().to_owned();
    let listed: Value = actix_test::call_and_read_body_json(&app, get(&personnel, &tpe).to_request()).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Another agency's manager: the vendor does not exist for them.
    let departure = format!("{personnel}/{person_id}/departure");
    for request in [
        get(&personnel, &hln),
        post(&personnel, &hln, json!({"national_id": "B200000004", "name": "陳美玲"})),
        post(&departure, &hln, json!({})),
    ] {
        let response = actix_test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), 404);
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!(problem.code, "not_found");
    }
    // A caseworker of the right agency is not a manager.
    let caseworker = token("TPE-SW", &["caseworker"]);
    let refused = actix_test::call_service(&app, get(&personnel, &caseworker).to_request()).await;
    assert_eq!(refused.status(), 403);
    let unauthenticated =
        actix_test::call_service(&app, actix_test::TestRequest::get().uri(&personnel).to_request()).await;
    assert_eq!(unauthenticated.status(), 401);

    let departed = actix_test::call_service(&app, post(&departure, &tpe, json!({})).to_request()).await;
    assert_eq!(departed.status(), 200);
    let departed: Value = actix_test::read_body_json(departed).await;
    assert_eq!(departed["status"], "departed");
    assert!(departed["departed_at"].is_string());
}

#[actix_web::test]
async fn bad_personnel_input_is_a_422_naming_the_field_without_echoing_the_id() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["account_manager"]);
    let vendor: Value = actix_test::call_and_read_body_json(
        &app,
        post("/v1/vendors", &tpe, json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
            .to_request(),
    )
    .await;
    let personnel = format!("/v1/vendors/{}/personnel", vendor["id"].as_str().unwrap());
    let long_name = "王".repeat(101);
    let cases = [
        (json!({"name": "王小明"}), "missing_field", "national_id"),
        (json!({"national_id": "A123456788", "name": "王小明"}), "invalid_field", "national_id"),
        (json!({"national_id": "A12345678", "name": "王小明"}), "invalid_field", "national_id"),
        (json!({"national_id": PERSON}), "missing_field", "name"),
        (json!({"national_id": PERSON, "name": "   "}), "missing_field", "name"),
        (json!({"national_id": PERSON, "name": long_name}), "invalid_field", "name"),
        (json!({"national_id": PERSON, "name": 7}), "invalid_field", "name"),
    ];
    for (body, code, field) in cases {
        let response = actix_test::call_service(&app, post(&personnel, &tpe, body.clone()).to_request()).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!((problem.code.as_str(), problem.field.as_deref()), (code, Some(field)), "{body}");
        assert!(!problem.detail.contains("A12345678"), "{}", problem.detail);
    }
    let first = actix_test::call_service(
        &app,
        post(&personnel, &tpe, json!({"national_id": PERSON, "name": "王小明"})).to_request(),
    )
    .await;
    assert_eq!(first.status(), 201);
    let again = actix_test::call_service(
        &app,
        post(&personnel, &tpe, json!({"national_id": PERSON, "name": "王小明"})).to_request(),
    )
    .await;
    assert_eq!(again.status(), 409);
    let problem: Problem = actix_test::read_body_json(again).await;
    assert_eq!((problem.code.as_str(), problem.field.as_deref()), ("personnel_exists", Some("national_id")));
    assert!(!problem.detail.contains(PERSON));
}

/// The vendors half of R-ACC-08 (identity asks this before accepting an application), and R-VEN-06:
/// a departure ends the match at once.
#[actix_web::test]
async fn r_acc_08_internal_lookup_answers_for_active_personnel_only() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let vendor: Value = actix_test::call_and_read_body_json(
        &app,
        post("/v1/vendors", &tpe, json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
            .to_request(),
    )
    .await;
    let vendor_id = vendor["id"].as_str().unwrap().to_owned();
    let person: Value = actix_test::call_and_read_body_json(
        &app,
        post(&format!("/v1/vendors/{vendor_id}/personnel"), &tpe, json!({"national_id": PERSON, "name": "王小明"}))
            .to_request(),
    )
    .await;

    let answer: PersonnelLookupAnswer =
        actix_test::call_and_read_body_json(&app, lookup("  ａ123456789 ").to_request()).await;
    assert!(answer.vendor_personnel);
    assert_eq!(answer.vendors.len(), 1);
    assert_eq!(
        (
            answer.vendors[0].vendor_id.as_str(),
            answer.vendors[0].agency.as_str(),
            answer.vendors[0].vendor_name.as_str()
        ),
        (vendor_id.as_str(), "TPE-SW", "臺灣資訊服務股份有限公司")
    );
    let stranger: PersonnelLookupAnswer =
        actix_test::call_and_read_body_json(&app, lookup("B200000004").to_request()).await;
    assert_eq!(stranger, PersonnelLookupAnswer { vendor_personnel: false, vendors: Vec::new() });

    let invalid = actix_test::call_service(&app, lookup("A123456788").to_request()).await;
    assert_eq!(invalid.status(), 422);
    let problem: Problem = actix_test::read_body_json(invalid).await;
    assert_eq!(problem.field.as_deref(), Some("national_id"));
    let missing = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/internal/v1/personnel/lookup")
            .insert_header((SERVICE_TOKEN, service_token("identity")))
            .set_json(json!({}))
            .to_request(),
    )
    .await;
    assert_eq!(missing.status(), 422);

    // Only immilink services may ask; a user's token is not enough.
    let without_token = actix_test::call_service(
        &app,
        post("/internal/v1/personnel/lookup", &tpe, json!({"national_id": PERSON})).to_request(),
    )
    .await;
    assert_eq!(without_token.status(), 403);
    // Nor is another service's token: only identity asks this.
    let from_broker = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/internal/v1/personnel/lookup")
            .insert_header((SERVICE_TOKEN, service_token("broker")))
            .set_json(json!({"national_id": PERSON}))
            .to_request(),
    )
    .await;
    assert_eq!(from_broker.status(), 403);
    // A user's access token presented as a service token is refused (wrong audience).
    let user_as_service = actix_test::try_call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/internal/v1/personnel/lookup")
            .insert_header((SERVICE_TOKEN, tpe.clone()))
            .set_json(json!({"national_id": PERSON}))
            .to_request(),
    )
    .await
    .map(|response| response.status())
    .unwrap_or_else(|err| err.as_response_error().status_code());
    assert_eq!(user_as_service, 401);

    // R-VEN-06: once departed, the person no longer counts.
    let departure = format!("/v1/vendors/{vendor_id}/personnel/{}/departure", person["id"].as_str().unwrap());
    let departed = actix_test::call_service(&app, post(&departure, &tpe, json!({})).to_request()).await;
    assert_eq!(departed.status(), 200);
    let answer: PersonnelLookupAnswer = actix_test::call_and_read_body_json(&app, lookup(PERSON).to_request()).await;
    assert!(!answer.vendor_personnel);
    assert!(answer.vendors.is_empty());
    assert!(!format!("{:?}", crate::PersonnelLookup { national_id: PERSON.into() }).contains(PERSON));
}

#[test]
fn personnel_routes_are_documented_and_the_internal_lookup_is_not() {
    let doc = crate::openapi();
    for path in ["/v1/vendors/{vendor_id}/personnel", "/v1/vendors/{vendor_id}/personnel/{person_id}/departure"] {
        assert!(doc.paths.paths.contains_key(path), "{path}");
    }
    assert!(doc.paths.paths.keys().all(|p| !p.starts_with("/internal")));
}

#[actix_web::test]
async fn lists_take_a_page_and_refuse_an_out_of_range_limit_naming_it() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    for (name, number) in [("甲公司", "22099131"), ("乙公司", "10458575")] {
        let created = actix_test::call_service(
            &app,
            post("/v1/vendors", &tpe, json!({"name": name, "business_number": number})).to_request(),
        )
        .await;
        assert_eq!(created.status(), 201);
    }
    let first: Value = actix_test::call_and_read_body_json(&app, get("/v1/vendors?limit=1", &tpe).to_request()).await;
    assert_eq!(first.as_array().map(Vec::len), Some(1));
    let after = first[0]["id"].as_str().unwrap();
    let next: Value = actix_test::call_and_read_body_json(
        &app,
        get(&format!("/v1/vendors?limit=1&before={after}"), &tpe).to_request(),
    )
    .await;
    assert_eq!(next.as_array().map(Vec::len), Some(1));
    assert_ne!(next[0]["id"], first[0]["id"]);
    let personnel = format!("/v1/vendors/{after}/personnel");
    for uri in ["/v1/vendors?limit=0", "/v1/vendors?limit=501", &format!("{personnel}?limit=-1")] {
        let response = actix_test::call_service(&app, get(uri, &tpe).to_request()).await;
        assert_eq!(response.status(), 422, "{uri}");
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!(problem.field.as_deref(), Some("limit"), "{uri}");
    }
}

/// Dedicated machines, incidents and vendor audits over HTTP (R-VEN-07, R-VEN-03, R-VEN-05).
mod devices_incidents_audits;

/// Contracts, personnel checks and agreements, offboarding and the identity relay over HTTP (R-VEN-01,
/// R-VEN-02, R-VEN-04, R-VEN-06, R-VEN-08).
mod contracts_personnel;
