//! The service over HTTP, as it assembles itself: account reviews, the eight query types with their
//! per-agency credentials and approved items, the injected faults and the call log, and the admin
//! endpoints that steer them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{test as actix_test, web};
use chrono::{TimeZone, Utc};
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::ManualClock;
use immilink_shared::config::{NamedSecrets, Secret};
use immilink_shared::problem::Problem;
use serde_json::{json, Value};
use utoipa_actix_web::AppExt;

use crate::{AccountReview, AgencyItems, ReviewDecision, ReviewPolicy, Settings, State, ADMIN_KEY_HEADER};

const API_KEY: &str = "agency-key";
const ADMIN_KEY: &str = "admin-key";

fn settings(admin_key: Option<&str>) -> Settings {
    Settings {
        addr: "127.0.0.1:0".into(),
        api_key: Some(Secret::new(API_KEY)),
        workers: 1,
        account_review: ReviewPolicy::Approve,
        admin_key: admin_key.map(Secret::new),
        ..Settings::local()
    }
}

/// The service as `serve` assembles it, with its clock at 2026-11-23 10:00 Taipei.
macro_rules! app {
    ($settings:expr) => {{
        let clock = Arc::new(ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()));
        actix_test::init_service(
            immilink_shared::server::base_app()
                .app_data(web::Data::new(State::new(clock, &$settings, None)))
                .into_utoipa_app()
                .configure(crate::routes::configure)
                .into_app()
                .configure(crate::routes::configure_admin),
        )
        .await
    }};
}

fn application() -> Value {
    json!({
        "application_id": "0193a5b2-7c1e-7d2f-9a41-2b7d3c4e5f60",
        "agency_code": "TPE-SW",
        "username": "caseworker01",
        "certificate_serial": "0A1B2C3D",
        "legal_basis": "sw_social_assistance_act",
        "business_handled": "低收入戶資格審查",
        "grants": [{"query_type": "entry_exit_last_year", "purpose_code": "sw_statutory_business"}]
    })
}

fn review_request(body: Value) -> actix_test::TestRequest {
    actix_test::TestRequest::post().uri("/v1/account-reviews").insert_header(("x-nia-api-key", API_KEY)).set_json(body)
}

fn policy_request(key: Option<&str>, body: Value) -> actix_test::TestRequest {
    let request = actix_test::TestRequest::put().uri("/admin/v1/account-review-policy").set_json(body);
    match key {
        Some(key) => request.insert_header((ADMIN_KEY_HEADER, key)),
        None => request,
    }
}

#[actix_web::test]
async fn applications_are_approved_by_default_with_a_deterministic_reference() {
    let app = app!(settings(Some(ADMIN_KEY)));
    let review: AccountReview =
        actix_test::call_and_read_body_json(&app, review_request(application()).to_request()).await;
    assert_eq!(review.decision, ReviewDecision::Approved);
    assert_eq!(review.application_id, "0193a5b2-7c1e-7d2f-9a41-2b7d3c4e5f60");
    assert_eq!(review.reference, crate::review::reference(&review.application_id, review.reviewed_at));
    assert!(review.reference.starts_with("NIA-20261123-"), "{}", review.reference);
    assert_eq!(review.reviewed_at, Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap());
    let raw: Value = actix_test::call_and_read_body_json(&app, review_request(application()).to_request()).await;
    assert_eq!(raw["decision"], "approved");
    assert_eq!(raw["reviewed_at"], "2026-11-23T02:00:00Z");
    assert!(raw["reason"].is_string());
}

#[actix_web::test]
async fn the_harness_can_make_the_agency_reject() {
    let app = app!(settings(Some(ADMIN_KEY)));
    let set = actix_test::call_service(
        &app,
        policy_request(Some(ADMIN_KEY), json!({"decision": "reject", "reason": "申請書未附公文"})).to_request(),
    )
    .await;
    assert_eq!(set.status(), 200);
    let review: AccountReview =
        actix_test::call_and_read_body_json(&app, review_request(application()).to_request()).await;
    assert_eq!((review.decision, review.reason.as_str()), (ReviewDecision::Rejected, "申請書未附公文"));

    let set =
        actix_test::call_service(&app, policy_request(Some(ADMIN_KEY), json!({"decision": "approve"})).to_request())
            .await;
    assert_eq!(set.status(), 200);
    let review: AccountReview =
        actix_test::call_and_read_body_json(&app, review_request(application()).to_request()).await;
    assert_eq!(review.decision, ReviewDecision::Approved);

    // Configured to reject from the start.
    let app = app!(Settings { account_review: ReviewPolicy::Reject, ..settings(None) });
    let review: AccountReview =
        actix_test::call_and_read_body_json(&app, review_request(application()).to_request()).await;
    assert_eq!(review.decision, ReviewDecision::Rejected);
}

#[actix_web::test]
async fn the_admin_endpoint_refuses_a_wrong_or_missing_key_and_is_absent_when_disabled() {
    let app = app!(settings(Some(ADMIN_KEY)));
    for key in [None, Some("guess"), Some("")] {
        let refused =
            actix_test::call_service(&app, policy_request(key, json!({"decision": "reject"})).to_request()).await;
        assert_eq!(refused.status(), 403, "{key:?}");
    }
    // Nothing changed.
    let review: AccountReview =
        actix_test::call_and_read_body_json(&app, review_request(application()).to_request()).await;
    assert_eq!(review.decision, ReviewDecision::Approved);
    // A bad body with the right key names the field.
    let bad =
        actix_test::call_service(&app, policy_request(Some(ADMIN_KEY), json!({"decision": "maybe"})).to_request())
            .await;
    assert_eq!(bad.status(), 422);
    let problem: Problem = actix_test::read_body_json(bad).await;
    assert_eq!(problem.field.as_deref(), Some("decision"));

    let disabled = app!(settings(None));
    let absent = actix_test::call_service(
        &disabled,
        policy_request(Some(ADMIN_KEY), json!({"decision": "reject"})).to_request(),
    )
    .await;
    assert_eq!(absent.status(), 404);
}

#[actix_web::test]
async fn an_unknown_query_type_is_rejected_naming_it() {
    let app = app!(settings(Some(ADMIN_KEY)));
    let mut body = application();
    body["grants"] = json!([
        {"query_type": "entry_exit_last_year", "purpose_code": "sw_statutory_business"},
        {"query_type": "credit_history", "purpose_code": "sw_statutory_business"}
    ]);
    let review: AccountReview = actix_test::call_and_read_body_json(&app, review_request(body).to_request()).await;
    assert_eq!(review.decision, ReviewDecision::Rejected);
    assert!(review.reason.contains("credit_history"), "{}", review.reason);
}

#[actix_web::test]
async fn missing_fields_are_422_naming_the_field_and_the_api_key_is_required() {
    let app = app!(settings(Some(ADMIN_KEY)));
    let cases = [
        ("application_id", json!(null)),
        ("username", json!("  ")),
        ("grants", json!(null)),
        ("grants[0].purpose_code", json!([{"query_type": "entry_exit_last_year"}])),
    ];
    for (field, value) in cases {
        let mut body = application();
        let key = if field.starts_with("grants") { "grants" } else { field };
        body[key] = value;
        let response = actix_test::call_service(&app, review_request(body).to_request()).await;
        assert_eq!(response.status(), 422, "{field}");
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!(problem.field.as_deref(), Some(field));
    }
    let anonymous = actix_test::call_service(
        &app,
        actix_test::TestRequest::post().uri("/v1/account-reviews").set_json(application()).to_request(),
    )
    .await;
    assert_eq!(anonymous.status(), 401);
}

#[test]
fn the_admin_endpoint_stays_out_of_the_public_document() {
    let doc = crate::openapi();
    assert!(doc.paths.paths.contains_key("/v1/account-reviews"));
    assert!(doc.paths.paths.keys().all(|p| !p.starts_with("/admin")));
}

// --- queries -------------------------------------------------------------------------------------

const TPE_KEY: &str = "tpe-sw-key-0123456789abcdef0123456789";
const HLN_KEY: &str = "hln-hr-key-0123456789abcdef0123456789";
const ALL_KEY: &str = "all-items-key-0123456789abcdef012345";

/// Keys for the demo agencies and `ALL` (approved for every query type), with the admin endpoints on.
fn query_settings() -> Settings {
    let keys = format!("TPE-SW:{TPE_KEY},HLN-HR:{HLN_KEY},ALL:{ALL_KEY}");
    let all = QueryType::ALL.map(QueryType::code).join("|");
    let demo = AgencyItems::demo().to_env_value();
    Settings {
        agency_keys: NamedSecrets::parse(&keys).unwrap(),
        agency_items: format!("{demo};ALL={all}").parse().unwrap(),
        ..settings(Some(ADMIN_KEY))
    }
}

/// A query as the broker sends it: agency, its key, and a lookup id.
fn query(query_type: &str, subject_id: &str, agency: &str, key: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri(&format!("/v1/queries/{query_type}"))
        .insert_header(("x-nia-agency", agency))
        .insert_header(("x-nia-api-key", key))
        .insert_header(("x-immilink-lookup-id", format!("lookup-{subject_id}")))
        .set_json(json!({ "subject_id": subject_id }))
}

fn all(query_type: QueryType, subject_id: &str) -> actix_test::TestRequest {
    query(query_type.code(), subject_id, "ALL", ALL_KEY)
}

fn admin(method: actix_web::http::Method, path: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::default().method(method).uri(path).insert_header((ADMIN_KEY_HEADER, ADMIN_KEY))
}

fn put_faults(body: Value) -> actix_test::TestRequest {
    admin(actix_web::http::Method::PUT, "/admin/v1/faults").set_json(body)
}

/// A subject of each kind for each query type (passports only where the type takes them).
fn subject_for(query_type: QueryType) -> &'static str {
    match query_type {
        QueryType::EntryExitLastYear | QueryType::BulkEntryExitLastYear | QueryType::EidPhoto => "A123456789",
        QueryType::TravelerHistory => "X1234567",
        _ => "AC01234567",
    }
}

#[actix_web::test]
async fn r_qry_03_all_eight_query_types_answer_deterministically() {
    let app = app!(query_settings());
    for query_type in QueryType::ALL {
        let subject = subject_for(query_type);
        let response = actix_test::call_service(&app, all(query_type, subject).to_request()).await;
        assert_eq!(response.status(), 200, "{query_type:?}");
        let first: Value = actix_test::read_body_json(response).await;
        assert_eq!(first["subject_id"], subject);
        assert_eq!(first["query_type"], query_type.code());
        assert!(first["found"].is_boolean(), "{first}");
        let again: Value = actix_test::call_and_read_body_json(&app, all(query_type, subject).to_request()).await;
        assert_eq!(first, again, "{query_type:?}");
    }
    // A found entry/exit answer carries more than any agency may see.
    let answer: Value =
        actix_test::call_and_read_body_json(&app, all(QueryType::EntryExitLastYear, "A123456789").to_request()).await;
    assert_eq!(answer["found"], true);
    for extra in ["name", "birth_date", "nia_reference"] {
        assert!(answer.get(extra).is_some(), "{extra} in {answer}");
    }
    assert_eq!(answer["period_to"], "2026-11-23");
}

#[actix_web::test]
async fn r_qry_03_subjects_without_records_are_found_false_and_nothing_else() {
    let app = app!(query_settings());
    for query_type in [QueryType::ForeignerResidence, QueryType::ArcValidityAddress, QueryType::MissingPersons] {
        let answer: Value = actix_test::call_and_read_body_json(&app, all(query_type, "A123456789").to_request()).await;
        assert_eq!(answer, json!({"subject_id": "A123456789", "query_type": query_type.code(), "found": false}));
    }
}

#[actix_web::test]
async fn r_qry_03_bad_subjects_are_422_naming_the_field() {
    let app = app!(query_settings());
    let cases = [
        (all(QueryType::EntryExitLastYear, "A123456788"), "subject_id"),
        (all(QueryType::ForeignerResidence, "X1234567"), "subject_id"),
        (all(QueryType::EntryExitLastYear, "x").set_json(json!({})), "subject_id"),
    ];
    for (request, field) in cases {
        let response = actix_test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), 422);
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!(problem.field.as_deref(), Some(field));
    }
    let unknown =
        actix_test::call_service(&app, query("credit_history", "A123456789", "ALL", ALL_KEY).to_request()).await;
    assert_eq!(unknown.status(), 404);
}

#[actix_web::test]
async fn r_qry_03_eid_photo_is_a_valid_png() {
    use base64::Engine;
    let app = app!(query_settings());
    let answer: Value =
        actix_test::call_and_read_body_json(&app, all(QueryType::EidPhoto, "A123456789").to_request()).await;
    assert_eq!(answer["content_type"], "image/png");
    let png = base64::engine::general_purpose::STANDARD.decode(answer["image_base64"].as_str().unwrap()).unwrap();
    let chunks = crate::photo::tests::chunks(&png).expect("signature and chunk CRCs");
    assert_eq!(&chunks[0].0, b"IHDR");
    assert_eq!(chunks[0].1, [0, 0, 0, 96, 0, 0, 0, 128, 8, 2, 0, 0, 0]);
    let idat: Vec<u8> = chunks.iter().filter(|(kind, _)| kind == b"IDAT").flat_map(|(_, data)| data.clone()).collect();
    let pixels = crate::photo::tests::inflate_stored(&idat).expect("zlib stream and Adler-32");
    assert_eq!(pixels.len(), 128 * (1 + 96 * 3));
    assert_eq!(&chunks.last().unwrap().0, b"IEND");
}

#[actix_web::test]
async fn each_agency_must_present_its_own_key() {
    let app = app!(query_settings());
    let request = |agency: Option<&str>, key: Option<&str>| {
        let mut request = actix_test::TestRequest::post()
            .uri("/v1/queries/entry_exit_last_year")
            .set_json(json!({"subject_id": "A123456789"}));
        if let Some(agency) = agency {
            request = request.insert_header(("x-nia-agency", agency));
        }
        if let Some(key) = key {
            request = request.insert_header(("x-nia-api-key", key));
        }
        request.to_request()
    };
    let cases = [
        (None, Some(TPE_KEY), "x-nia-agency"),
        (Some("NOPE"), Some(TPE_KEY), "x-nia-agency"),
        (Some("TPE-SW"), None, "x-nia-api-key"),
        (Some("TPE-SW"), Some(HLN_KEY), "x-nia-api-key"),
        (Some("TPE-SW"), Some("agency-key"), "x-nia-api-key"),
    ];
    for (agency, key, field) in cases {
        let response = actix_test::call_service(&app, request(agency, key)).await;
        assert_eq!(response.status(), 401, "{agency:?} {key:?}");
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!(problem.field.as_deref(), Some(field));
    }
    assert_eq!(actix_test::call_service(&app, request(Some("TPE-SW"), Some(TPE_KEY))).await.status(), 200);
    assert_eq!(actix_test::call_service(&app, request(Some("HLN-HR"), Some(HLN_KEY))).await.status(), 200);
}

#[actix_web::test]
async fn each_agency_may_run_only_its_approved_items() {
    let app = app!(query_settings());
    let cases = [
        ("HLN-HR", HLN_KEY, "foreigner_residence", 403),
        ("HLN-HR", HLN_KEY, "eid_photo", 403),
        ("HLN-HR", HLN_KEY, "traveler_history", 200),
        ("TPE-SW", TPE_KEY, "traveler_history", 200),
        ("TPE-SW", TPE_KEY, "eid_photo", 200),
        ("TPE-SW", TPE_KEY, "arc_validity_address", 200),
    ];
    for (agency, key, query_type, status) in cases {
        let response = actix_test::call_service(&app, query(query_type, "AC01234567", agency, key).to_request()).await;
        assert_eq!(response.status(), status, "{agency} {query_type}");
        if status == 403 {
            let problem: Problem = actix_test::read_body_json(response).await;
            assert_eq!(problem.code, "item_not_approved");
        }
    }
}

#[actix_web::test]
async fn without_agency_keys_anyone_is_served_but_known_agencies_keep_their_items() {
    let app = app!(settings(None));
    let anonymous = actix_test::TestRequest::post()
        .uri("/v1/queries/eid_photo")
        .set_json(json!({"subject_id": "A123456789"}))
        .to_request();
    assert_eq!(actix_test::call_service(&app, anonymous).await.status(), 200);
    assert_eq!(
        actix_test::call_service(&app, query("eid_photo", "A123456789", "DEV", "").to_request()).await.status(),
        200
    );
    let known = actix_test::call_service(&app, query("eid_photo", "A123456789", "HLN-HR", "").to_request()).await;
    assert_eq!(known.status(), 403);
}

// --- faults --------------------------------------------------------------------------------------

/// The status a request is answered with.
macro_rules! status {
    ($app:expr, $request:expr) => {
        actix_test::call_service(&$app, $request.to_request()).await.status().as_u16()
    };
}

fn entry_exit() -> actix_test::TestRequest {
    query("entry_exit_last_year", "A123456789", "TPE-SW", TPE_KEY)
}

#[actix_web::test]
async fn r_qry_09_latency_is_added_without_blocking_the_worker() {
    let app = app!(query_settings());
    let latency = Duration::from_millis(500);
    assert_eq!(status!(app, put_faults(json!({"latency_ms": latency.as_millis() as u64}))), 200);
    let started = Instant::now();
    let (a, b) = tokio::join!(
        actix_test::call_service(&app, entry_exit().to_request()),
        actix_test::call_service(&app, entry_exit().to_request())
    );
    let elapsed = started.elapsed();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert!(elapsed >= latency, "{elapsed:?}");
    // Both waited at once on the one test thread: the delay is a timer, not a blocked thread (one
    // after the other would take both delays; the margin is a whole delay, not a guess at how fast
    // a loaded machine serves two requests).
    assert!(elapsed < 2 * latency, "{elapsed:?}");
}

#[actix_web::test]
async fn r_qry_09_an_error_rate_of_one_fails_every_query_with_5xx() {
    let app = app!(query_settings());
    assert_eq!(status!(app, put_faults(json!({"error_rate": 1.0}))), 200);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        seen.insert(status!(app, entry_exit()));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [500, 503]);
    // Reviews and health are not queries: untouched.
    assert_eq!(status!(app, review_request(application())), 200);
    assert_eq!(status!(app, actix_test::TestRequest::get().uri("/readyz")), 200);
}

#[actix_web::test]
async fn r_qry_09_the_same_seed_fails_the_same_calls() {
    let app = app!(query_settings());
    let mut runs = Vec::new();
    for _ in 0..2 {
        assert_eq!(status!(app, put_faults(json!({"error_rate": 0.5, "seed": 42}))), 200);
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(status!(app, entry_exit()));
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let failed = runs[0].iter().filter(|s| **s >= 500).count();
    assert!((5..=25).contains(&failed), "{:?}", runs[0]);
}

#[actix_web::test]
async fn r_qry_09_an_outage_refuses_every_query_at_once() {
    let app =
        app!(Settings { faults: crate::FaultSettings { outage: true, ..Default::default() }, ..query_settings() });
    let response = actix_test::call_service(&app, entry_exit().to_request()).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // Even without credentials: the service is simply not there.
    assert_eq!(status!(app, query("eid_photo", "A123456789", "NOPE", "")), 503);
    assert_eq!(status!(app, admin(actix_web::http::Method::DELETE, "/admin/v1/faults")), 200);
    assert_eq!(status!(app, entry_exit()), 200);
}

#[actix_web::test]
async fn r_qry_09_over_the_rate_limit_is_429_with_retry_after() {
    let app = app!(query_settings());
    let limit = json!({"rate_limit": {"per_second": 2, "retry_after_secs": 7}});
    assert_eq!(status!(app, put_faults(limit)), 200);
    assert_eq!(status!(app, entry_exit()), 200);
    assert_eq!(status!(app, entry_exit()), 200);
    let refused = actix_test::call_service(&app, entry_exit().to_request()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    let problem: Problem = actix_test::read_body_json(refused).await;
    assert_eq!(problem.code, "rate_limited");
}

#[actix_web::test]
async fn r_qry_09_a_timeout_hangs_then_answers_504() {
    let app = app!(query_settings());
    assert_eq!(status!(app, put_faults(json!({"timeout_rate": 1.0, "hang_ms": 80}))), 200);
    let started = Instant::now();
    assert_eq!(status!(app, entry_exit()), 504);
    assert!(started.elapsed() >= Duration::from_millis(80));
}

#[actix_web::test]
async fn fault_settings_are_read_replaced_and_validated() {
    let app = app!(query_settings());
    let get = || admin(actix_web::http::Method::GET, "/admin/v1/faults");
    let none: Value = actix_test::call_and_read_body_json(&app, get().to_request()).await;
    assert_eq!(none["outage"], false);
    assert_eq!(none["hang_ms"], 30_000);
    let set: Value =
        actix_test::call_and_read_body_json(&app, put_faults(json!({"latency_ms": 5, "seed": 9})).to_request()).await;
    assert_eq!(
        (set["latency_ms"].as_u64(), set["seed"].as_u64(), set["error_rate"].as_f64()),
        (Some(5), Some(9), Some(0.0))
    );
    let now: Value = actix_test::call_and_read_body_json(&app, get().to_request()).await;
    assert_eq!(now, set);
    for (body, field) in [
        (json!({"error_rate": 2}), "error_rate"),
        (json!({"timeout_rate": -1}), "timeout_rate"),
        (json!({"latency_ms": "slow"}), "latency_ms"),
        (json!({"rate_limit": {"per_second": 0, "retry_after_secs": 1}}), "rate_limit.per_second"),
        (json!({"rate_limit": {"per_second": 1}}), "rate_limit.retry_after_secs"),
        (json!({"eror_rate": 1}), "eror_rate"),
    ] {
        let response = actix_test::call_service(&app, put_faults(body.clone()).to_request()).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem: Problem = actix_test::read_body_json(response).await;
        assert_eq!(problem.field.as_deref(), Some(field), "{body}");
    }
    // Refused settings change nothing.
    let still: Value = actix_test::call_and_read_body_json(&app, get().to_request()).await;
    assert_eq!(still, set);
}

// --- admin endpoints and the call log -----------------------------------------------------------

#[actix_web::test]
async fn admin_endpoints_need_the_key_and_do_not_exist_without_one() {
    use actix_web::http::Method;
    let endpoints = [
        (Method::GET, "/admin/v1/faults"),
        (Method::PUT, "/admin/v1/faults"),
        (Method::DELETE, "/admin/v1/faults"),
        (Method::GET, "/admin/v1/calls"),
        (Method::DELETE, "/admin/v1/calls"),
    ];
    let app = app!(query_settings());
    for (method, path) in &endpoints {
        for key in [None, Some("guess")] {
            let mut request = actix_test::TestRequest::default().method(method.clone()).uri(path).set_json(json!({}));
            if let Some(key) = key {
                request = request.insert_header((ADMIN_KEY_HEADER, key));
            }
            assert_eq!(status!(app, request), 403, "{method} {path} {key:?}");
        }
    }
    let disabled = app!(Settings { admin_key: None, ..query_settings() });
    for (method, path) in &endpoints {
        assert_eq!(status!(disabled, admin(method.clone(), path).set_json(json!({}))), 404, "{method} {path}");
    }
}

#[actix_web::test]
async fn the_call_log_records_every_query_with_its_lookup_and_status() {
    let app = app!(query_settings());
    assert_eq!(status!(app, entry_exit()), 200);
    assert_eq!(status!(app, query("eid_photo", "B200000004", "HLN-HR", HLN_KEY)), 403);
    assert_eq!(status!(app, query("entry_exit_last_year", "F131104093", "TPE-SW", "wrong")), 401);
    assert_eq!(status!(app, put_faults(json!({"outage": true}))), 200);
    assert_eq!(status!(app, query("foreigner_residence", "AC01234567", "TPE-SW", TPE_KEY)), 503);
    // Reviews are not queries.
    assert_eq!(status!(app, review_request(application())), 200);
    let calls: Value =
        actix_test::call_and_read_body_json(&app, admin(actix_web::http::Method::GET, "/admin/v1/calls").to_request())
            .await;
    let calls = calls.as_array().unwrap();
    let summary: Vec<(u64, &str, &str, &str, u64)> = calls
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().unwrap(),
                c["query_type"].as_str().unwrap(),
                c["subject_id"].as_str().unwrap(),
                c["lookup_id"].as_str().unwrap(),
                c["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "entry_exit_last_year", "A123456789", "lookup-A123456789", 200),
            (2, "eid_photo", "B200000004", "lookup-B200000004", 403),
            (3, "entry_exit_last_year", "F131104093", "lookup-F131104093", 401),
            (4, "foreigner_residence", "AC01234567", "lookup-AC01234567", 503),
        ]
    );
    let agencies: Vec<&str> = calls.iter().map(|c| c["agency"].as_str().unwrap()).collect();
    assert_eq!(agencies, ["TPE-SW", "HLN-HR", "TPE-SW", "TPE-SW"]);
    assert!(calls.iter().all(|c| c["at"] == "2026-11-23T02:00:00Z"), "{calls:?}");

    let cleared =
        actix_test::call_service(&app, admin(actix_web::http::Method::DELETE, "/admin/v1/calls").to_request()).await;
    assert_eq!(cleared.status(), 204);
    let calls: Value =
        actix_test::call_and_read_body_json(&app, admin(actix_web::http::Method::GET, "/admin/v1/calls").to_request())
            .await;
    assert_eq!(calls, json!([]));
}

#[actix_web::test]
async fn a_call_abandoned_by_its_caller_is_logged_as_499_and_one_in_progress_has_no_status() {
    let app = app!(query_settings());
    assert_eq!(status!(app, put_faults(json!({"timeout_rate": 1.0, "hang_ms": 10_000}))), 200);
    let abandoned =
        tokio::time::timeout(Duration::from_millis(50), actix_test::call_service(&app, entry_exit().to_request()))
            .await;
    assert!(abandoned.is_err(), "the call should still be hanging");
    let list = || admin(actix_web::http::Method::GET, "/admin/v1/calls").to_request();
    let calls: Vec<crate::CallRecord> = actix_test::call_and_read_body_json(&app, list()).await;
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [Some(499)]);

    let in_progress = actix_test::call_service(&app, entry_exit().to_request());
    let peek = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let calls: Vec<crate::CallRecord> = actix_test::call_and_read_body_json(&app, list()).await;
        calls.last().map(|c| c.status)
    };
    tokio::select! {
        _ = in_progress => panic!("the call should hang"),
        status = peek => assert_eq!(status, Some(None)),
    }
}

#[test]
fn the_query_endpoint_is_documented_and_the_admin_ones_are_not() {
    let doc = crate::openapi();
    assert!(doc.paths.paths.contains_key("/v1/queries/{query_type}"));
    let schemas = doc.components.map(|c| c.schemas).unwrap_or_default();
    for name in ["QueryAnswer", "Answer_EntryExitRecord", "Answer_EidPhotoRecord", "Crossing"] {
        assert!(schemas.contains_key(name), "{name}");
    }
    assert!(doc.paths.paths.keys().all(|p| !p.starts_with("/admin")));
}
