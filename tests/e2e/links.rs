//! Agency links through the gateway: the immigration agency's reviewer suspends Taipei's link and
//! Taipei's lookups stop within a second while Hualien's go on; a change application with its
//! per-item decisions and its printed form; an anomaly notice and its remediation.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{permitted_lookup, problem, TestStack};

fn hualien_lookup() -> Value {
    json!({ "query_type": "entry_exit_last_year", "subject_id": "A123456789",
            "legal_basis": "household_registration_act", "purpose_code": "hr_nationality_change",
            "case_number": "HLN-2026-0007" })
}

async fn link_id_of(t: &TestStack, token: &str, agency: &str) -> String {
    let links: Value = t.get(token, "/v1/agency-links").await.json().await.unwrap();
    let link = links.as_array().unwrap().iter().find(|l| l["agency_code"] == agency).expect("the agency's link");
    link["id"].as_str().unwrap().to_owned()
}

/// A complete change form for Taipei's link.
fn change_form(changes: &[&str]) -> Value {
    let coverage = crate::harness::rules_coverage();
    let today = immilink_shared::clock::business_date(chrono::Utc::now());
    json!({
        "legal_bases": ["social_assistance_act"],
        "purpose": "低收入戶資格審查",
        "items": [{ "query_type": "entry_exit_last_year", "legal_basis": "social_assistance_act", "purpose_code": "sw_statutory_business" }],
        "using_department": "社會救助科",
        "provisioning": { "online_query": true },
        "usage_period": { "from": today.to_string(), "until": (today + chrono::Duration::days(700)).to_string() },
        "handling_on_end": "期滿即刪除",
        "supervisor": { "name": "王科長", "title": "科長", "phone": "02-1", "email": "wang@tpe.gov.tw" },
        "handler": { "name": "新承辦", "title": "社工員", "phone": "02-2", "email": "new@tpe.gov.tw" },
        "management_rules": { "title": "臺北市政府社會局應用移民資訊管理規定", "version": "3", "coverage": coverage },
        "changes": changes,
    })
}

#[actix_web::test]
async fn r_link_06_the_nia_suspends_taipeis_link_and_its_lookups_stop_within_a_second_while_hualiens_go_on() {
    let t = TestStack::spawn().await;
    let caseworker = t.login("tpe.caseworker").await;
    let clerk = t.login("hln.clerk").await;
    let reviewer = t.login("nia.reviewer").await;
    let tpe_manager = t.login("tpe.manager").await;
    assert_eq!(t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await.status(), 200);

    // Who sees which links: the NIA every agency's, an agency its own, a caseworker none.
    let all: Value = t.get(&reviewer, "/v1/agency-links").await.json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let own: Value = t.get(&tpe_manager, "/v1/agency-links").await.json().await.unwrap();
    let own = own.as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!((own[0]["agency_code"].as_str(), own[0]["status"].as_str()), (Some("TPE-SW"), Some("active")));
    problem(t.get(&caseworker, "/v1/agency-links").await, 403).await;

    let link = link_id_of(&t, &reviewer, "TPE-SW").await;
    let path = format!("/v1/agency-links/{link}/suspension");
    let refused = problem(t.post(&tpe_manager, &path, &json!({ "reason": "self" })).await, 403).await;
    assert_eq!(refused["code"], "role_required");
    let missing = problem(t.post(&reviewer, &path, &json!({})).await, 422).await;
    assert_eq!(missing["field"], "reason");

    let suspended_at = Instant::now();
    let answer: Value = t.post(&reviewer, &path, &json!({ "reason": "稽核發現重大違規" })).await.json().await.unwrap();
    assert_eq!(answer["status"], "suspended");
    assert_eq!(answer["rule"], "R-LINK-06");
    let refusal = loop {
        let response = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await;
        if response.status() == 403 {
            break problem(response, 403).await;
        }
        assert!(suspended_at.elapsed() < Duration::from_secs(1), "still answered {} after a second", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = suspended_at.elapsed();
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    assert_eq!((refusal["code"].as_str(), refusal["rule"].as_str()), (Some("link_suspended"), Some("R-LINK-06")));
    // Bulk lookups too, and Hualien's go on.
    let batch = json!({ "query_type": "entry_exit_last_year", "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business", "case_number": "TPE-SW-2026-000124", "subject_ids": ["A123456789"] });
    let bulk = problem(t.post(&caseworker, "/v1/batches", &batch).await, 403).await;
    assert_eq!(bulk["rule"], "R-LINK-06");
    assert_eq!(t.post(&clerk, "/v1/lookups", &hualien_lookup()).await.status(), 200);

    // The transition is in the audit log.
    let auditor = t.login("tpe.auditor").await;
    let payload =
        |r: &Value| serde_json::from_str::<Value>(r["payload"].as_str().unwrap_or("null")).unwrap_or_default();
    let record =
        t.wait_for_audit_record_of(&auditor, "agency_link.transitioned", |r| payload(r)["to"] == "suspended").await;
    assert_eq!(payload(&record)["rule"], "R-LINK-06");
    t.shutdown().await;
}

#[actix_web::test]
async fn r_link_05_a_change_application_through_the_gateway_is_decided_per_item_and_printed() {
    let t = TestStack::spawn().await;
    let manager = t.login("tpe.manager").await;
    let reviewer = t.login("nia.reviewer").await;
    let link = link_id_of(&t, &manager, "TPE-SW").await;
    let path = format!("/v1/agency-links/{link}/change-applications");

    let mut partial = change_form(&["handler"]);
    partial["management_rules"]["coverage"].as_array_mut().unwrap().truncate(6);
    let incomplete = problem(t.post(&manager, &path, &partial).await, 422).await;
    assert_eq!(
        (incomplete["field"].as_str(), incomplete["rule"].as_str()),
        (Some("management_rules.coverage"), Some("R-LINK-04"))
    );
    assert!(incomplete["detail"].as_str().unwrap().contains("user_liability"), "{incomplete}");
    let mut no_purpose = change_form(&["handler"]);
    no_purpose.as_object_mut().unwrap().remove("purpose");
    assert_eq!(problem(t.post(&manager, &path, &no_purpose).await, 422).await["field"], "purpose");

    let filed = t.post(&manager, &path, &change_form(&["handler"])).await;
    assert_eq!(filed.status(), 201);
    let filed: Value = filed.json().await.unwrap();
    let application = filed["applications"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((application["kind"].as_str(), application["status"].as_str()), (Some("change"), Some("under_review")));

    let decisions = json!({ "decisions": [{ "query_type": "entry_exit_last_year", "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business", "decision": "approve" }] });
    let decided: Value =
        t.post(&reviewer, &format!("/v1/agency-links/{link}/item-decisions"), &decisions).await.json().await.unwrap();
    assert_eq!(decided["items"].as_array().unwrap().len(), 1, "the link carries exactly the approved item");

    let form = t
        .get(&manager, &format!("/v1/agency-links/{link}/applications/{}/form", application["id"].as_str().unwrap()))
        .await;
    assert_eq!(form.status(), 200);
    assert!(form.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = form.text().await.unwrap();
    assert!(html.contains("各機關應用移民資訊申請暨異動書") && html.contains("新承辦"), "the filled form");
    t.shutdown().await;
}

#[actix_web::test]
async fn r_aud_09_an_anomaly_notice_is_answered_through_the_gateway() {
    let t = TestStack::spawn().await;
    let manager = t.login("tpe.manager").await;
    let reviewer = t.login("nia.reviewer").await;
    let link = link_id_of(&t, &reviewer, "TPE-SW").await;
    let deadline = (immilink_shared::clock::business_date(chrono::Utc::now()) + chrono::Duration::days(14)).to_string();
    let body = json!({ "link_id": link, "finding": "夜間大量查詢", "deadline": deadline });
    problem(t.post(&manager, "/v1/anomaly-notices", &body).await, 403).await;
    let issued = t.post(&reviewer, "/v1/anomaly-notices", &body).await;
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.unwrap();
    assert_eq!((issued["agency_code"].as_str(), issued["status"].as_str()), (Some("TPE-SW"), Some("open")));
    let listed: Value = t.get(&manager, "/v1/anomaly-notices").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let path = format!("/v1/anomaly-notices/{}/remediation", issued["id"].as_str().unwrap());
    assert_eq!(
        problem(t.post(&manager, &path, &json!({ "explanation": "批次誤用" })).await, 422).await["field"],
        "remediation"
    );
    let answered: Value = t
        .post(&manager, &path, &json!({ "explanation": "批次誤用", "remediation": "限制批次權限" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answered["status"].as_str(), answered["remediation"].as_str()),
        (Some("remediated"), Some("限制批次權限"))
    );
    t.shutdown().await;
}
