//! The immigration agency over mutual TLS (issue 16, item 1): nia-mock serves HTTPS with a
//! certificate made for the test and requires the agency's client certificate; the broker,
//! identity and audit trust only the configured CA. A server that cannot prove itself is sent
//! nothing, and the lookup is recorded as failed upstream.

use serde_json::{json, Value};

use crate::accounts::{apply, certificate, review, NEW_PASSWORD};
use crate::harness::{permitted_lookup, problem, NiaPki, Options, TestStack};

async fn spawn_over_tls(adjust: fn(&mut immilink_stack::StackConfig, &NiaPki)) -> TestStack {
    TestStack::spawn_with(Options { nia_tls: Some(adjust), ..Options::default() }).await
}

/// The `lookup.completed` payload of the only lookup of a test, once audit has it.
async fn completion(t: &TestStack, lookup_id: &str) -> Value {
    let auditor = t.login("tpe.auditor").await;
    let record = t.wait_for_audit_record_of(&auditor, "lookup.completed", |r| r["correlation_id"] == lookup_id).await;
    serde_json::from_str(record["payload"].as_str().expect("a payload")).expect("JSON payload")
}

/// The one lookup a refused handshake left: recorded before anything was sent (R-QRY-08), answered
/// 503, completed as failed with the handshake's reason, and never seen by the agency.
async fn assert_sent_nothing_and_recorded_the_failure(t: &TestStack, why: &str) -> String {
    let caseworker = t.login("tpe.caseworker").await;
    let p = problem(t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await, 503).await;
    assert_eq!(p["code"], "upstream_unavailable", "{p}");
    assert!(t.nia_calls().await.is_empty(), "{why}: the agency received no query");
    let auditor = t.login("tpe.auditor").await;
    let requested = t.wait_for_audit_record_of(&auditor, "lookup.requested", |_| true).await;
    let lookup_id = requested["correlation_id"].as_str().expect("the lookup's id").to_owned();
    let completed = completion(t, &lookup_id).await;
    assert_eq!(completed["outcome"], "failed", "{why}: {completed}");
    assert_eq!(completed["upstream_status"], Value::Null, "{why}: no HTTP answer came back");
    let failure = completed["failure"].as_str().unwrap_or_default().to_owned();
    assert!(!failure.is_empty(), "{why}: the reason is kept: {completed}");
    failure
}

#[actix_web::test]
async fn lookups_account_reviews_and_witnessing_reach_the_agency_over_mutual_tls() {
    let t = spawn_over_tls(|_, _| {}).await;
    assert!(t.stack.nia_url.starts_with("https://"), "{}", t.stack.nia_url);

    // A lookup: answered, and the agency logged the query it received over TLS.
    let caseworker = t.login("tpe.caseworker").await;
    let answered = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await;
    assert_eq!(answered.status(), 200);
    let answered: Value = answered.json().await.expect("an answer");
    let calls = t.nia_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(completion(&t, calls[0]["lookup_id"].as_str().expect("lookup id")).await["outcome"], "succeeded");
    assert!(answered["audit_id"].is_string(), "{answered}");

    // An account review: identity asks the agency, over the same TLS, as the last step.
    let submitted: Value = apply(&t, "TPE-SW", "tpe.tlsnewcomer", "A123456789").await.json().await.expect("json");
    let id = submitted["application_id"].as_str().expect("an application id");
    let supervisor = t.login("tpe.supervisor").await;
    assert_eq!(review(&t, &supervisor, id, "approve").await.status(), 200);
    let manager = t.login("tpe.manager").await;
    let done: Value = review(&t, &manager, id, "approve").await.json().await.expect("json");
    assert_eq!(done["status"], "approved", "{done}");
    assert!(done["nia_reference"].as_str().is_some_and(|r| r.starts_with("NIA-")), "{done}");
    t.login_with("tpe.tlsnewcomer", NEW_PASSWORD, &certificate("tpe.tlsnewcomer")).await;

    // The audit log's checkpoint, cosigned by the agency as its witness over TLS.
    let checkpoint: Value = t.post(&manager, "/v1/audit/checkpoints", &json!(null)).await.json().await.expect("json");
    assert!(checkpoint["witnessed_at"].is_string(), "cosigned by the witness: {checkpoint}");
    t.shutdown().await;
}

#[actix_web::test]
async fn r_qry_08_a_server_whose_certificate_does_not_chain_to_the_configured_ca_is_sent_nothing_and_the_failure_is_recorded(
) {
    // The broker trusts another CA than the one that issued nia-mock's certificate: from where
    // the broker stands, nia-mock is an impostor.
    let t = spawn_over_tls(|config, pki| config.broker.nia_tls.ca_file = Some(pki.impostor.ca_file.clone())).await;
    let failure = assert_sent_nothing_and_recorded_the_failure(&t, "untrusted server certificate").await;
    assert!(failure.contains("invalid peer certificate: UnknownIssuer"), "the record names the cause: {failure}");
    t.shutdown().await;
}

#[actix_web::test]
async fn the_agency_refuses_a_broker_without_its_client_certificate_and_the_failure_is_recorded() {
    let t = spawn_over_tls(|config, _| config.broker.nia_tls.client_identity = None).await;
    let failure = assert_sent_nothing_and_recorded_the_failure(&t, "no client certificate").await;
    assert!(failure.contains("CertificateRequired"), "the agency's alert is recorded: {failure}");
    t.shutdown().await;
}

#[actix_web::test]
async fn the_agency_refuses_a_client_certificate_another_ca_issued() {
    let t = spawn_over_tls(|config, pki| config.broker.nia_tls.client_identity = pki.impostor.client().client_identity)
        .await;
    let failure = assert_sent_nothing_and_recorded_the_failure(&t, "a client certificate of another CA").await;
    assert!(failure.contains("UnknownCA"), "the agency's alert is recorded: {failure}");
    t.shutdown().await;
}
