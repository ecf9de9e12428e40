//! The lookup rules beyond the basic declaration, through the gateway as clients use them: refusals
//! on the audit trail, proxy lookups (R-QRY-06), supervisor-approved purposes (R-QRY-10),
//! minimisation of every granted type (R-QRY-07), doubt queries (R-QRY-09), rate limits and
//! read-only results (R-QRY-12).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use immilink_shared::clock::{business_date, Clock, ManualClock, SharedClock};
use serde_json::{json, Value};

use crate::harness::{permitted_lookup, problem, Options, TestStack};

/// The parsed payloads of the audit records of `kind` (of one lookup, when `correlation` names it),
/// waiting (bounded) for the relay to deliver them. Read as the immigration agency's reviewer, the
/// one reader who sees every agency's records.
async fn payload_of(t: &TestStack, kind: &str, correlation: Option<&str>) -> Vec<Value> {
    let auditor = t.login("nia.reviewer").await;
    for _ in 0..100 {
        let records = t.audit_records(&auditor, kind).await;
        let matching: Vec<Value> = records
            .into_iter()
            .filter(|r| correlation.is_none_or(|id| r["correlation_id"] == id))
            .map(|r| serde_json::from_str(r["payload"].as_str().unwrap_or("null")).unwrap_or(Value::Null))
            .collect();
        if !matching.is_empty() {
            return matching;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Vec::new()
}

/// A refused lookup is itself on the audit trail, naming the rule it broke.
#[actix_web::test]
async fn r_qry_02_refusals_are_audited_naming_the_rule() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    // A household-registration purpose and legal basis on a social-welfare user: never permitted.
    let mut body = permitted_lookup();
    body["legal_basis"] = json!("nationality_act");
    body["purpose_code"] = json!("hr_nationality_change");
    problem(t.post(&token, "/v1/lookups", &body).await, 403).await;
    let mut body = permitted_lookup();
    body["subject_id"] = json!("A123456788");
    problem(t.post(&token, "/v1/lookups", &body).await, 422).await;
    // Both refusals are recorded (the relay may deliver them in two rounds: wait for both).
    let mut refusals = Vec::new();
    for _ in 0..50 {
        refusals = payload_of(&t, "lookup.refused", None).await;
        if refusals.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refusals.iter().any(|p| p["rule"] == "R-QRY-02"
            && p["code"] == "not_permitted"
            && p["declared"]["purpose_code"] == "hr_nationality_change"),
        "{refusals:?}"
    );
    assert!(refusals.iter().any(|p| p["rule"] == "R-QRY-04" && p["declared"]["subject_id"] == "A123456788"));
    t.stack.stop().await;
}

/// The supervisor (who holds no lookup grant) asks the caseworker to look a person up for a case:
/// with the 代查授權單 the caseworker may, for that case and query type only, and the audit record
/// names both; once revoked, no more.
#[actix_web::test]
async fn r_qry_06_a_proxy_lookup_needs_a_valid_authorization_and_the_audit_names_both() {
    let t = TestStack::spawn().await;
    let caseworker = t.login("tpe.caseworker").await;
    let supervisor = t.login("tpe.supervisor").await;
    let (caseworker_id, supervisor_id) = (t.user_id(&caseworker).await, t.user_id(&supervisor).await);
    let valid_until = (Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let created = t
        .post(
            &supervisor,
            "/v1/proxy-authorizations",
            &json!({ "grantee_user_id": caseworker_id, "case_number": "TPE-SW-2026-000900",
                     "query_types": ["entry_exit_last_year"], "valid_until": valid_until,
                     "reason": "科長請承辦代查" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let authorization: Value = created.json().await.unwrap();
    let id = authorization["id"].as_str().unwrap().to_owned();

    let mut body = permitted_lookup();
    body["case_number"] = json!("TPE-SW-2026-000900");
    body["proxy_authorization_id"] = json!(id);
    let response = t.post(&caseworker, "/v1/lookups", &body).await;
    assert_eq!(response.status(), 200);
    let lookup: Value = response.json().await.unwrap();
    assert_eq!(lookup["on_behalf_of_user_id"], supervisor_id.as_str());
    let payloads = payload_of(&t, "lookup.requested", lookup["lookup_id"].as_str()).await;
    assert_eq!(payloads[0]["on_behalf_of_user_id"], supervisor_id.as_str());
    assert_eq!(payloads[0]["proxy_authorization_id"], id.as_str());

    // Another case, or the supervisor using it themselves: refused.
    let mut other_case = body.clone();
    other_case["case_number"] = json!("TPE-SW-2026-000901");
    let p = problem(t.post(&caseworker, "/v1/lookups", &other_case).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-06");
    assert_eq!(p["field"], "proxy_authorization_id");
    // While the grantor's account is suspended, the authorization does not serve.
    let manager = t.login("tpe.manager").await;
    let suspend =
        t.post(&manager, &format!("/v1/accounts/{supervisor_id}/suspension"), &json!({"reason": "調查中"})).await;
    assert!(suspend.status().is_success(), "{}", suspend.status());
    let p = problem(t.post(&caseworker, "/v1/lookups", &body).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-06");
    let reinstate =
        t.post(&manager, &format!("/v1/accounts/{supervisor_id}/reinstatement"), &json!({"reason": "查無不法"})).await;
    assert!(reinstate.status().is_success(), "{}", reinstate.status());
    assert_eq!(t.post(&caseworker, "/v1/lookups", &body).await.status(), 200);
    let supervisor = t.login("tpe.supervisor").await;
    let revoked =
        t.post(&supervisor, &format!("/v1/proxy-authorizations/{id}/revocation"), &json!({"reason": "結案"})).await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let p = problem(t.post(&caseworker, "/v1/lookups", &body).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-06");
    t.stack.stop().await;
}

/// "Other household-registration business" needs the unit supervisor's recorded approval for the
/// case; with it the lookup runs and its audit record names the approval.
#[actix_web::test]
async fn r_qry_10_other_business_needs_the_supervisors_recorded_approval() {
    let t = TestStack::spawn().await;
    let clerk = t.login("hln.clerk").await;
    let body = json!({
        "query_type": "entry_exit_last_year", "subject_id": "A123456789",
        "legal_basis": "household_registration_act", "purpose_code": "hr_other_approved",
        "case_number": "HLN-2026-0042"
    });
    let p = problem(t.post(&clerk, "/v1/lookups", &body).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-10");
    let request: Value = t
        .post(
            &clerk,
            "/v1/purpose-approvals",
            &json!({ "purpose_code": "hr_other_approved", "case_number": "HLN-2026-0042",
                     "business_description": "協助法院查詢當事人出境日期" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let approval_id = request["id"].as_str().expect("approval id").to_owned();
    // The clerk cannot approve their own request; the unit supervisor can.
    problem(
        t.post(&clerk, &format!("/v1/purpose-approvals/{approval_id}/decision"), &json!({"decision": "approved"}))
            .await,
        403,
    )
    .await;
    let supervisor = t.login("hln.supervisor").await;
    let decided = t
        .post(&supervisor, &format!("/v1/purpose-approvals/{approval_id}/decision"), &json!({"decision": "approved"}))
        .await;
    assert!(decided.status().is_success(), "{}", decided.status());
    let lookup: Value = t.post(&clerk, "/v1/lookups", &body).await.json().await.unwrap();
    let lookup_id = lookup["lookup_id"].as_str().unwrap_or_else(|| panic!("no lookup: {lookup}"));
    // Its audit record names the approval it ran under.
    let payloads = payload_of(&t, "lookup.requested", Some(lookup_id)).await;
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    assert_eq!(payloads[0]["supervisor_approval_id"], approval_id.as_str(), "{payloads:?}");
    assert_eq!(payloads[0]["purpose_code"], "hr_other_approved");
    assert_eq!(payloads[0]["case_number"], "HLN-2026-0042");
    t.stack.stop().await;
}

/// Every query type the demo caseworker holds answers with its approved items only.
#[actix_web::test]
async fn r_qry_07_each_granted_type_answers_only_its_approved_items() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    // A foreigner's resident certificate number (new style) for the residence lookup.
    for (query_type, subject) in [("entry_exit_last_year", "A123456789"), ("foreigner_residence", "A800000014")] {
        let mut body = permitted_lookup();
        body["query_type"] = json!(query_type);
        body["subject_id"] = json!(subject);
        let response = t.post(&token, "/v1/lookups", &body).await;
        assert_eq!(response.status(), 200, "{query_type}");
        let lookup: Value = response.json().await.unwrap();
        let text = lookup["result"].to_string();
        for leaked in ["\"name\"", "birth_date", "nia_reference", "employer", "phone", "address"] {
            assert!(!text.contains(leaked), "{query_type} leaked {leaked}: {text}");
        }
    }
    t.stack.stop().await;
}

/// Per-user limit: beyond it, 429 problem+json with Retry-After, and nothing is forwarded.
#[actix_web::test]
async fn lookups_beyond_the_per_user_rate_limit_get_429_with_retry_after() {
    fn three_per_minute(config: &mut immilink_stack::StackConfig) {
        config.broker.lookups_per_user_per_minute = 3;
    }
    let t = TestStack::spawn_with(Options { adjust: three_per_minute, ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    for _ in 0..3 {
        assert_eq!(t.post(&token, "/v1/lookups", &permitted_lookup()).await.status(), 200);
    }
    let limited = t.post(&token, "/v1/lookups", &permitted_lookup()).await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let p = problem(limited, 429).await;
    assert_eq!(p["code"], "user_rate_limited");
    assert_eq!(t.nia_calls().await.len(), 3);
    t.stack.stop().await;
}

/// The documents offer no PUT, PATCH or DELETE on lookups or batches (a documentation check; the
/// behaviour is `r_qry_12_no_request_alters_a_stored_result`).
#[actix_web::test]
async fn no_lookup_or_batch_path_is_documented_with_put_patch_or_delete() {
    let doc = serde_json::to_value(immilink_stack::merged_openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        if path.starts_with("/v1/lookups") || path.starts_with("/v1/batches") {
            for method in ["put", "patch", "delete"] {
                assert!(item.get(method).is_none(), "{method} {path} would alter results");
            }
        }
    }
    assert!(paths["/v1/lookups"].get("post").is_some());
}

/// What the upstream answered stays as it answered: whatever a client sends to a lookup's or a
/// batch's paths, the stored result and its lookup's recorded outcome do not change.
#[actix_web::test]
async fn r_qry_12_no_request_alters_a_stored_result() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let lookup: Value = t.post(&token, "/v1/lookups", &permitted_lookup()).await.json().await.unwrap();
    let lookup_id = lookup["lookup_id"].as_str().expect("a lookup").to_owned();
    let mut batch = permitted_lookup();
    batch.as_object_mut().unwrap().remove("subject_id");
    batch["subject_ids"] = json!(["A123456789", "F131104093"]);
    let accepted: Value = t.post(&token, "/v1/batches", &batch).await.json().await.unwrap();
    let batch_id = accepted["batch_id"].as_str().expect("a batch").to_owned();
    let results_path = format!("/v1/batches/{batch_id}/results");
    let mut before = Value::Null;
    for _ in 0..100 {
        before = t.get(&token, &results_path).await.json().await.unwrap();
        if before.as_array().is_some_and(|items| items.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(before.as_array().map(Vec::len), Some(2), "{before}");

    let forged = json!({ "result": { "found": false }, "status": "failed", "currently_in_taiwan": false });
    let paths = [
        format!("/v1/lookups/{lookup_id}"),
        format!("/v1/lookups/{lookup_id}/result"),
        format!("/v1/batches/{batch_id}"),
        results_path.clone(),
        format!("{results_path}/0"),
    ];
    for path in &paths {
        for method in [reqwest::Method::PUT, reqwest::Method::PATCH, reqwest::Method::DELETE, reqwest::Method::POST] {
            let response =
                t.http.request(method.clone(), t.url(path)).bearer_auth(&token).json(&forged).send().await.unwrap();
            assert!(matches!(response.status().as_u16(), 404 | 405), "{method} {path}: {}", response.status());
        }
    }
    let after: Value = t.get(&token, &results_path).await.json().await.unwrap();
    assert_eq!(after, before, "the stored results are as the upstream answered");
    // The lookup's recorded outcome is still the one recorded when it completed.
    let completions = payload_of(&t, "lookup.completed", Some(&lookup_id)).await;
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert_eq!(completions[0]["outcome"], "succeeded");
    t.stack.stop().await;
}

/// The upstream is down: the caseworker files a doubt query (附件二); the follow-up document is due
/// three days counted from the day after the fax (Asia/Taipei) and is flagged overdue after that.
#[actix_web::test]
async fn r_qry_09_doubt_query_is_filed_with_a_follow_up_due_in_three_days_and_flagged_overdue() {
    let clock = Arc::new(ManualClock::starting_at(Utc::now()));
    let shared: SharedClock = clock.clone();
    let t = TestStack::spawn_with(Options { clock: shared, ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    let filed = t
        .post(
            &token,
            "/v1/doubt-queries",
            &json!({
                "query_type": "entry_exit_last_year", "legal_basis": "social_assistance_act",
                "purpose_code": "sw_statutory_business", "case_number": "TPE-SW-2026-000777",
                "requester_name": "王社工", "requester_title": "社工員",
                "requester_phone": "02-2720-8889", "requester_fax": "02-2720-6552",
                "subject_nationality_kind": "national", "subject_name_zh": "陳怡君",
                "subject_sex": "F", "subject_birth_date": "1980-01-02", "subject_national_id": "A123456789",
                "reason": "低收入戶資格審查，需確認出境日期；移民署系統異常",
                "attachments": [{"kind": "passport_copy", "pages": 1}]
            }),
        )
        .await;
    assert_eq!(filed.status(), 201);
    let doubt: Value = filed.json().await.unwrap();
    let due = business_date(clock.now()) + chrono::Duration::days(3);
    assert_eq!(doubt["due_on"], due.to_string());
    assert_eq!(doubt["overdue"], false);
    let id = doubt["id"].as_str().unwrap().to_owned();
    let form = t.get(&token, &format!("/v1/doubt-queries/{id}/form")).await;
    assert!(form.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = form.text().await.unwrap();
    assert!(html.contains("疑義查詢表") && html.contains("陳怡君") && html.contains("民國"), "{html}");

    clock.advance(chrono::Duration::days(4));
    let token = t.login("tpe.caseworker").await;
    let overdue: Value = t.get(&token, "/v1/doubt-queries?overdue=true").await.json().await.unwrap();
    assert!(overdue.as_array().unwrap().iter().any(|d| d["id"] == id.as_str() && d["overdue"] == true), "{overdue}");
    t.stack.stop().await;
}
