//! Account applications, the account lifecycle and revocation, through the gateway as a client.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{client, permitted_lookup, problem, TestStack, DEMO_PASSWORD};

pub(crate) const NEW_PASSWORD: &str = "a-long-passphrase-2026";

async fn unit_of(t: &TestStack, agency: &str) -> String {
    let agencies: Value = t.http.get(t.url("/v1/agencies")).send().await.unwrap().json().await.unwrap();
    let agency = agencies.as_array().unwrap().iter().find(|a| a["code"] == agency).expect("agency listed");
    agency["units"][0]["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn apply(t: &TestStack, agency: &str, username: &str, national_id: &str) -> reqwest::Response {
    let (purpose, basis) = match agency {
        "HLN-HR" => ("hr_nationality_change", "household_registration_act"),
        _ => ("sw_statutory_business", "social_assistance_act"),
    };
    let body = json!({
        "agency_code": agency,
        "unit_id": unit_of(t, agency).await,
        "username": username,
        "display_name": "新同仁",
        "national_id": national_id,
        "email": format!("{username}@example.gov.tw"),
        "password": NEW_PASSWORD,
        "certificate_serial": certificate(username),
        "legal_basis": basis,
        "business_handled": "低收入戶資格審查",
        "grants": [{ "query_type": "entry_exit_last_year", "purpose_code": purpose }]
    });
    t.http.post(t.url("/v1/account-applications")).json(&body).send().await.unwrap()
}

/// Certificate serials are letters, digits and dashes.
pub(crate) fn certificate(username: &str) -> String {
    format!("CERT-{}", username.replace('.', "-"))
}

pub(crate) async fn review(t: &TestStack, token: &str, id: &str, decision: &str) -> reqwest::Response {
    t.post(
        token,
        &format!("/v1/account-applications/{id}/reviews"),
        &json!({ "decision": decision, "reason": "業務需要" }),
    )
    .await
}

#[actix_web::test]
async fn r_acc_01_an_application_goes_through_every_review_to_a_first_lookup() {
    let t = TestStack::spawn().await;
    let submitted = apply(&t, "TPE-SW", "tpe.newcomer", "A123456789").await;
    assert_eq!(submitted.status(), 201);
    let submitted: Value = submitted.json().await.unwrap();
    assert_eq!(submitted["status"], "supervisor_review");
    assert_eq!(submitted["national_id_masked"], "A12****789");
    let id = submitted["application_id"].as_str().unwrap();
    // Not active yet: the applicant cannot log in.
    let early = t.login_response(&t.http, "tpe.newcomer", NEW_PASSWORD, &certificate("tpe.newcomer")).await;
    problem(early, 401).await;

    let supervisor = t.login("tpe.supervisor").await;
    let waiting: Value =
        t.get(&supervisor, "/v1/account-applications?status=supervisor_review").await.json().await.unwrap();
    assert!(waiting.as_array().unwrap().iter().any(|a| a["application_id"] == id));
    let step: Value = review(&t, &supervisor, id, "approve").await.json().await.unwrap();
    assert_eq!(step["status"], "manager_review");
    // The supervisor cannot take the manager's step.
    let p = problem(review(&t, &supervisor, id, "approve").await, 403).await;
    assert_eq!(p["code"], "wrong_reviewer");

    let manager = t.login("tpe.manager").await;
    let done: Value = review(&t, &manager, id, "approve").await.json().await.unwrap();
    assert_eq!(done["status"], "approved", "{done}");
    let steps: Vec<&str> = done["reviews"].as_array().unwrap().iter().map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["supervisor_review", "manager_review", "nia_review"]);
    assert!(done["nia_reference"].as_str().unwrap().starts_with("NIA-"));

    let newcomer = t.login_with("tpe.newcomer", NEW_PASSWORD, &certificate("tpe.newcomer")).await;
    let response = t.post(&newcomer, "/v1/lookups", &permitted_lookup()).await;
    assert_eq!(response.status(), 200);
    // Only what was granted: another query type is refused.
    let mut other = permitted_lookup();
    other["query_type"] = json!("foreigner_residence");
    problem(t.post(&newcomer, "/v1/lookups", &other).await, 403).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_02_hualien_needs_its_agency_head_and_the_nia_may_still_reject() {
    let t = TestStack::spawn().await;
    t.set_nia_account_review("reject").await;
    let submitted: Value = apply(&t, "HLN-HR", "hln.newcomer", "A123456789").await.json().await.unwrap();
    let id = submitted["application_id"].as_str().unwrap();
    for (reviewer, next) in
        [("hln.supervisor", "manager_review"), ("hln.manager", "head_review"), ("hln.head", "rejected")]
    {
        let token = t.login(reviewer).await;
        let step: Value = review(&t, &token, id, "approve").await.json().await.unwrap();
        assert_eq!(step["status"], next, "after {reviewer}: {step}");
    }
    let p =
        problem(t.login_response(&t.http, "hln.newcomer", NEW_PASSWORD, &certificate("hln.newcomer")).await, 401).await;
    assert_eq!(p["code"], "login_refused");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_08_contractor_personnel_cannot_apply() {
    let t = TestStack::spawn().await;
    let vendor_manager = t.login("tpe.vendors").await;
    let vendor: Value = t
        .post(
            &vendor_manager,
            "/v1/vendors",
            &json!({ "name": "臺灣資訊服務股份有限公司", "business_number": "22099131" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let person = t
        .post(
            &vendor_manager,
            &format!("/v1/vendors/{}/personnel", vendor["id"].as_str().unwrap()),
            &json!({ "national_id": "B123456780", "name": "外包工程師" }),
        )
        .await;
    assert_eq!(person.status(), 201);
    let p = problem(apply(&t, "TPE-SW", "tpe.contractor", "B123456780").await, 403).await;
    assert_eq!(p["code"], "vendor_personnel");
    assert_eq!(p["rule"], "R-ACC-08");
    // Someone else applies normally.
    assert_eq!(apply(&t, "TPE-SW", "tpe.staff", "A123456789").await.status(), 201);
    t.stack.stop().await;
}

#[actix_web::test]
async fn bad_applications_name_the_field_and_store_nothing() {
    let t = TestStack::spawn().await;
    let mut body = json!({
        "agency_code": "TPE-SW", "unit_id": unit_of(&t, "TPE-SW").await, "username": "tpe.bad", "display_name": "x",
        "national_id": "A123456788", "email": "x@example.gov.tw", "password": NEW_PASSWORD,
        "certificate_serial": "CERT-x", "legal_basis": "social_assistance_act", "business_handled": "x",
        "grants": [{ "query_type": "entry_exit_last_year", "purpose_code": "sw_statutory_business" }]
    });
    let p = problem(t.http.post(t.url("/v1/account-applications")).json(&body).send().await.unwrap(), 422).await;
    assert_eq!(p["field"], "national_id");
    body["national_id"] = json!("A123456789");
    body["grants"][0]["query_type"] = json!("everything");
    let p = problem(t.http.post(t.url("/v1/account-applications")).json(&body).send().await.unwrap(), 422).await;
    assert_eq!(p["field"], "grants[0].query_type");
    body["grants"][0]["query_type"] = json!("entry_exit_last_year");
    body["password"] = json!("short");
    let p = problem(t.http.post(t.url("/v1/account-applications")).json(&body).send().await.unwrap(), 422).await;
    assert_eq!(p["field"], "password");
    let manager = t.login("tpe.manager").await;
    let stored: Value = t.get(&manager, "/v1/account-applications").await.json().await.unwrap();
    assert_eq!(stored, json!([]));
    // Listing needs a token even though submitting does not.
    problem(t.http.get(t.url("/v1/account-applications")).send().await.unwrap(), 401).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn a_manager_of_one_agency_cannot_read_or_change_another_agencys_accounts() {
    let t = TestStack::spawn().await;
    let clerk = t.login("hln.clerk").await;
    let clerk_id = t.user_id(&clerk).await;
    let tpe_manager = t.login("tpe.manager").await;
    problem(t.get(&tpe_manager, &format!("/v1/accounts/{clerk_id}")).await, 404).await;
    problem(t.get(&tpe_manager, &format!("/v1/accounts/{clerk_id}/sessions")).await, 404).await;
    let suspend = t.post(&tpe_manager, &format!("/v1/accounts/{clerk_id}/suspension"), &json!({ "reason": "x" })).await;
    problem(suspend, 404).await;
    let cancel = t
        .post(
            &tpe_manager,
            &format!("/v1/accounts/{clerk_id}/hr-events"),
            &json!({ "event": "resignation", "reason": "x" }),
        )
        .await;
    problem(cancel, 404).await;
    // The clerk is untouched, and their own manager can see them.
    assert_eq!(t.get(&clerk, "/v1/me").await.status(), 200);
    let hln_manager = t.login("hln.manager").await;
    let account: Value = t.get(&hln_manager, &format!("/v1/accounts/{clerk_id}")).await.json().await.unwrap();
    assert_eq!(account["status"], "active");
    // A caseworker is no account manager at all.
    let caseworker = t.login("tpe.caseworker").await;
    let p = problem(t.get(&caseworker, "/v1/accounts").await, 403).await;
    assert_eq!(p["code"], "role_required");
    t.stack.stop().await;
}

/// R-ACC-05 through the gateway: the HR event cancels the account with today's date, its session
/// ends at once with the reason, and the token is refused.
#[actix_web::test]
async fn r_acc_05_an_hr_event_cancels_the_account_today_and_ends_its_sessions() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let caseworker_id = t.user_id(&token).await;
    let manager = t.login("tpe.manager").await;
    let cancelled = t
        .post(
            &manager,
            &format!("/v1/accounts/{caseworker_id}/hr-events"),
            &json!({ "event": "transfer", "reason": "調任他機關" }),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    let account: Value = cancelled.json().await.unwrap();
    assert_eq!(account["status"], "cancelled");
    let event = account["events"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(event["kind"], "hr_transfer");
    let today = immilink_shared::clock::business_date(chrono::Utc::now()).to_string();
    assert_eq!(event["effective_date"], today.as_str());
    let sessions: Value =
        t.get(&manager, &format!("/v1/accounts/{caseworker_id}/sessions")).await.json().await.unwrap();
    assert_eq!(sessions[0]["end_reason"], "account_cancelled");
    assert!(sessions[0]["logout_at"].is_string());
    problem(t.get(&token, "/v1/me").await, 401).await;
    problem(t.login_response(&t.http, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.caseworker").await, 401).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_07_a_second_session_from_another_ip_is_refused_flagged_and_the_manager_suspends() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let caseworker_id = t.user_id(&token).await;
    let manager = t.login("tpe.manager").await;
    // Register a second workstation, then log in from it while the first session is live.
    let ips = t
        .http
        .put(t.url(&format!("/v1/accounts/{caseworker_id}/ips")))
        .bearer_auth(&manager)
        .json(&json!({ "ips": ["127.0.0.1", "127.0.0.2"], "reason": "第二工作站" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ips.status(), 200);
    let elsewhere = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    let second = t.login_response(&elsewhere, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.caseworker").await;
    let p = problem(second, 401).await;
    assert_eq!(p["code"], "login_refused", "the same shape as every other refusal");
    let flags: Value = t.get(&manager, "/v1/lending-flags").await.json().await.unwrap();
    assert_eq!(flags.as_array().unwrap().len(), 1, "{flags}");
    assert_eq!(flags[0]["kind"], "possible_account_lending");
    // The manager suspends; the live session's token stops working.
    let suspended =
        t.post(&manager, &format!("/v1/accounts/{caseworker_id}/suspension"), &json!({ "reason": "疑似借用" })).await;
    assert_eq!(suspended.status(), 200);
    problem(t.get(&token, "/v1/me").await, 401).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_10_a_cancelled_account_is_refused_everywhere_within_one_second_under_traffic() {
    let t = Arc::new(TestStack::spawn().await);
    let token = t.login("tpe.caseworker").await;
    let caseworker_id = t.user_id(&token).await;
    let manager = t.login("tpe.manager").await;
    // Traffic through the gateway (identity, broker) and straight at the broker.
    let targets =
        [t.url("/v1/catalogue/purposes"), t.url("/v1/me"), format!("{}/v1/catalogue/purposes", t.stack.broker_url)];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cancelled_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let (served_before, served_late, refused) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for i in 0..6 {
        let (url, token, http) = (targets[i % targets.len()].clone(), token.clone(), t.http.clone());
        let (stop, cancelled_at) = (stop.clone(), cancelled_at.clone());
        let (served_before, served_late, refused) = (served_before.clone(), served_late.clone(), refused.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let status = http.get(&url).bearer_auth(&token).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                let deadline = cancelled_at.lock().unwrap().map(|at| at + Duration::from_secs(1));
                match (status, deadline) {
                    (200, Some(deadline)) if started > deadline => served_late.fetch_add(1, Ordering::Relaxed),
                    (200, _) => served_before.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cancel = t
        .post(
            &manager,
            &format!("/v1/accounts/{caseworker_id}/hr-events"),
            &json!({ "event": "resignation", "reason": "離職" }),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    *cancelled_at.lock().unwrap() = Some(Instant::now());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (before, late, refused) =
        (served_before.load(Ordering::Relaxed), served_late.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    assert!(before > 20, "traffic was flowing before the cancellation: {before}");
    assert!(refused > 20, "and was refused after it: {refused}");
    assert_eq!(late, 0, "requests started more than 1 s after the cancellation that were still served");
    Arc::try_unwrap(t).ok().expect("no other holder").stack.stop().await;
}

#[actix_web::test]
async fn r_acc_10_logout_then_an_immediate_retry_is_refused_by_the_gateway_and_the_services() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    // Warm every cache with a live answer first.
    assert_eq!(t.get(&token, "/v1/catalogue/purposes").await.status(), 200);
    assert_eq!(t.get(&token, "/v1/me").await.status(), 200);
    let logout = t.http.post(t.url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    problem(t.get(&token, "/v1/catalogue/purposes").await, 401).await;
    problem(t.get(&token, "/v1/me").await, 401).await;
    problem(t.post(&token, "/v1/lookups", &permitted_lookup()).await, 401).await;
    // A service called directly (its own liveness cache) refuses within its cache time.
    tokio::time::sleep(Duration::from_millis(550)).await;
    let direct =
        t.http.get(format!("{}/v1/catalogue/purposes", t.stack.broker_url)).bearer_auth(&token).send().await.unwrap();
    problem(direct, 401).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_09_the_holder_reports_a_lost_certificate_and_is_out_at_once() {
    let t = TestStack::spawn().await;
    let token = t.login("hln.clerk").await;
    let id = t.user_id(&token).await;
    let reported =
        t.post(&token, &format!("/v1/accounts/{id}/certificate-loss"), &json!({ "reason": "憑證遺失" })).await;
    assert_eq!(reported.status(), 200);
    let account: Value = reported.json().await.unwrap();
    assert_eq!(account["status"], "terminated");
    problem(t.get(&token, "/v1/me").await, 401).await;
    problem(t.login_response(&t.http, "hln.clerk", DEMO_PASSWORD, "DEMO-hln.clerk").await, 401).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn failed_logins_from_one_address_are_throttled_with_retry_after() {
    let t = TestStack::spawn().await;
    let attacker = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
    let mut statuses = Vec::new();
    for _ in 0..immilink_stack::identity::LOGIN_FAILURES_PER_IP + 1 {
        statuses.push(t.login_response(&attacker, "nobody", "guess", "none").await.status().as_u16());
    }
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 401), "{statuses:?}");
    let throttled = t.login_response(&attacker, "nobody", "guess", "none").await;
    assert!(throttled.headers().contains_key("retry-after"));
    let p = problem(throttled, 429).await;
    assert_eq!(p["code"], "too_many_attempts");
    // Other addresses are not affected.
    assert_eq!(t.login_response(&t.http, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.caseworker").await.status(), 200);
    t.stack.stop().await;
}

/// Seed 001 pt 3(2): the demo caseworker of the Taipei social welfare department holds every query
/// type of the cloud query service, `/v1/me` says so, and a lookup of each answers 200 through the
/// gateway (nia-mock approves the same items for TPE-SW).
#[actix_web::test]
async fn the_demo_caseworker_of_tpe_sw_runs_each_of_the_eight_query_types() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let me: Value = t.get(&token, "/v1/me").await.json().await.unwrap();
    let mut all: Vec<&str> = immilink_shared::catalogue::QueryType::ALL.iter().map(|q| q.code()).collect();
    all.sort_unstable();
    assert_eq!(me["query_types"], json!(all), "{me}");
    assert_eq!(me["purposes"], json!(["sw_statutory_business"]));
    // A national ID for the resident-only types, a UI number for the foreigner ones, a passport
    // where the type takes one.
    let national = immilink_shared::ids::synthetic_national_id(4242);
    let subjects = [
        ("entry_exit_last_year", national.as_str()),
        ("foreign_resident_entry_exit", "X1234567"),
        ("foreigner_residence", "A800000014"),
        ("eid_photo", national.as_str()),
        ("missing_persons", "X7654321"),
        ("traveler_history", "X1234567"),
        ("arc_validity_address", "A800000014"),
        ("bulk_entry_exit_last_year", national.as_str()),
    ];
    assert_eq!(subjects.len(), all.len());
    for (query_type, subject) in subjects {
        let mut body = permitted_lookup();
        body["query_type"] = json!(query_type);
        body["subject_id"] = json!(subject);
        let response = t.post(&token, "/v1/lookups", &body).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{query_type}: {answer}");
        assert_eq!(answer["query_type"], query_type);
    }
    t.stack.stop().await;
}
