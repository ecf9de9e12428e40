//! Contractors through the gateway: contract → personnel → check and agreement → departure, and the
//! person's token refused everywhere within a second (R-VEN-06); a person with lookup grants
//! registered as contractor personnel has their lookups refused within two seconds (R-VEN-08).

use std::time::{Duration, Instant};

use immilink_stack::identity::domain::demo::demo_national_id_of;
use serde_json::{json, Value};

use crate::harness::{permitted_lookup, problem, TestStack};

async fn created(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 201, "created");
    response.json().await.unwrap()
}

/// A vendor of TPE-SW with an active contract (no custom development); returns (vendor, contract).
async fn vendor_with_contract(t: &TestStack, manager: &str) -> (String, String) {
    let vendor = created(
        t.post(manager, "/v1/vendors", &json!({ "name": "臺灣資訊服務股份有限公司", "business_number": "22099131" }))
            .await,
    )
    .await;
    let vendor_id = vendor["id"].as_str().unwrap().to_owned();
    let today = immilink_shared::clock::business_date(chrono::Utc::now());
    let contract = created(
        t.post(
            manager,
            &format!("/v1/vendors/{vendor_id}/contracts"),
            &json!({ "title": "社政系統維運", "scope": "系統維護", "starts_on": today.to_string(),
                     "ends_on": (today + chrono::Duration::days(365)).to_string(), "custom_development": false }),
        )
        .await,
    )
    .await;
    let contract_id = contract["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/vendors/{vendor_id}/contracts/{contract_id}/activation");
    assert_eq!(t.post(manager, &path, &json!({})).await.status(), 200);
    (vendor_id, contract_id)
}

/// Waits until GET `path` with `token` answers `status`; returns how long it took.
async fn until_status(t: &TestStack, url: &str, token: &str, status: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let answer = t.http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16();
        if answer == status {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{url} still answered {answer} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[actix_web::test]
async fn r_ven_06_a_departing_contractors_token_is_refused_everywhere_within_a_second() {
    let t = TestStack::spawn().await;
    let manager = t.login("tpe.vendors").await;
    let (vendor_id, contract_id) = vendor_with_contract(&t, &manager).await;
    let national_id = demo_national_id_of("tpe.vendorstaff").unwrap();
    let person = created(
        t.post(
            &manager,
            &format!("/v1/vendors/{vendor_id}/personnel"),
            &json!({ "national_id": national_id, "name": "簡維運", "job_title": "維運工程師", "contract_id": contract_id }),
        )
        .await,
    )
    .await;
    let person_path = format!("/v1/vendors/{vendor_id}/personnel/{}", person["id"].as_str().unwrap());
    assert_eq!(person["access"]["allowed"], false, "no access before the check and the agreement: {person}");
    let today = immilink_shared::clock::business_date(chrono::Utc::now()).to_string();
    let check = json!({ "status": "passed", "checked_on": today, "checker": "人事室" });
    assert_eq!(t.post(&manager, &format!("{person_path}/suitability-check"), &check).await.status(), 200);
    let agreement = json!({ "signed_on": today, "reference": "保密切結書 115-001" });
    let signed: Value = t.post(&manager, &format!("{person_path}/agreement"), &agreement).await.json().await.unwrap();
    assert_eq!(signed["access"]["allowed"], true, "{signed}");

    let staff = t.login("tpe.vendorstaff").await;
    let urls = [
        t.url("/v1/me"),
        format!("{}/v1/me", t.stack.identity_url),
        format!("{}/v1/vendors", t.stack.vendors_url),
        format!("{}/v1/catalogue/purposes", t.stack.broker_url),
        format!("{}/v1/audit/verify", t.stack.audit_url),
    ];
    assert_eq!(t.get(&staff, "/v1/me").await.status(), 200);

    let departed_at = Instant::now();
    let departure = t.post(&manager, &format!("{person_path}/departure"), &json!({})).await;
    assert_eq!(departure.status(), 200);
    for url in &urls {
        until_status(&t, url, &staff, 401, Duration::from_secs(1)).await;
    }
    let took = departed_at.elapsed();
    eprintln!("R-VEN-06: the departed contractor's token was refused everywhere {took:?} after the departure");
    assert!(took < Duration::from_secs(1), "refused everywhere after {took:?}");
    // The account is cancelled, not only its session: the person cannot log in again.
    let again = t.login_response(&t.http, "tpe.vendorstaff", "immilink-demo", "DEMO-tpe.vendorstaff").await;
    problem(again, 401).await;
    let auditor = t.login("tpe.auditor").await;
    t.wait_for_audit_record_of(&auditor, "account.contractor_offboarded", |_| true).await;
    t.shutdown().await;
}

#[actix_web::test]
async fn r_ven_08_a_caseworker_registered_as_contractor_personnel_is_refused_lookups_within_two_seconds() {
    let t = TestStack::spawn().await;
    let caseworker = t.login("tpe.caseworker").await;
    assert_eq!(t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await.status(), 200);
    let manager = t.login("tpe.vendors").await;
    let (vendor_id, contract_id) = vendor_with_contract(&t, &manager).await;
    let registered_at = Instant::now();
    created(
        t.post(
            &manager,
            &format!("/v1/vendors/{vendor_id}/personnel"),
            &json!({ "national_id": demo_national_id_of("tpe.caseworker").unwrap(), "name": "王社工",
                     "contract_id": contract_id }),
        )
        .await,
    )
    .await;
    let refusal = loop {
        let response = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await;
        if response.status() == 403 {
            break problem(response, 403).await;
        }
        assert!(registered_at.elapsed() < Duration::from_secs(2), "still {} after 2 s", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = registered_at.elapsed();
    eprintln!("R-VEN-08: the caseworker's lookups were refused {took:?} after the registration");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    assert_eq!((refusal["code"].as_str(), refusal["rule"].as_str()), (Some("contractor_conflict"), Some("R-VEN-08")));
    // The account managers are told; the manager resolves by revoking the grants.
    let account_manager = t.login("tpe.manager").await;
    let caseworker_id = t.user_id(&caseworker).await;
    let account: Value = t.get(&account_manager, &format!("/v1/accounts/{caseworker_id}")).await.json().await.unwrap();
    assert!(!account["grants_suspended"].is_null(), "{account}");
    let resolution = json!({ "decision": "revoke_grants", "reason": "轉任委外廠商" });
    let path = format!("/v1/accounts/{caseworker_id}/contractor-conflict/resolution");
    assert_eq!(t.post(&account_manager, &path, &resolution).await.status(), 200);
    // Within the broker's permission cache (500 ms) the refusal names R-QRY-02: no grants left.
    let resolved_at = Instant::now();
    loop {
        let after = problem(t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await, 403).await;
        if after["rule"] == "R-QRY-02" {
            break;
        }
        assert!(resolved_at.elapsed() < Duration::from_secs(1), "still {after}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.shutdown().await;
}
