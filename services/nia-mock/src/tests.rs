//! The account review and its admin endpoint over HTTP, as the service assembles them.

use std::sync::Arc;

use actix_web::{test as actix_test, web};
use chrono::{TimeZone, Utc};
use immilink_shared::clock::ManualClock;
use immilink_shared::config::Secret;
use immilink_shared::problem::Problem;
use serde_json::{json, Value};
use utoipa_actix_web::AppExt;

use crate::{AccountReview, ReviewDecision, ReviewPolicy, Settings, State, ADMIN_KEY_HEADER};

const API_KEY: &str = "agency-key";
const ADMIN_KEY: &str = "admin-key";

fn settings(admin_key: Option<&str>) -> Settings {
    Settings {
        addr: "127.0.0.1:0".into(),
        api_key: Some(Secret::new(API_KEY)),
        workers: 1,
        account_review: ReviewPolicy::Approve,
        admin_key: admin_key.map(Secret::new),
    }
}

/// The service as `serve` assembles it, with its clock at 2026-11-23 10:00 Taipei.
macro_rules! app {
    ($settings:expr) => {{
        let clock = Arc::new(ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()));
        actix_test::init_service(
            immilink_shared::http::base_app()
                .app_data(web::Data::new(State::new(clock, &$settings)))
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
