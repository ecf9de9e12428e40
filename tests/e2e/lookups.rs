//! The lookup slice: login → lookup → audit, and every refusal on the way.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use diesel::prelude::*;
use immilink_shared::db::{Db, DbSettings};
use immilink_shared::outbox::outbox;
use immilink_stack::broker::schema::lookups;
use serde_json::{json, Value};

use crate::harness::{permitted_lookup, problem, Options, TestStack};

#[actix_web::test]
async fn walking_skeleton_login_lookup_then_audit_record_and_verified_chain() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;

    let me: Value = t.get(&token, "/v1/me").await.json().await.unwrap();
    assert_eq!(me["agency"]["code"], "TPE-SW");
    assert!(me["query_types"].as_array().unwrap().contains(&json!("entry_exit_last_year")));

    let response = t.post(&token, "/v1/lookups", &permitted_lookup()).await;
    assert_eq!(response.status(), 200);
    let lookup: Value = response.json().await.unwrap();
    assert_eq!(lookup["query_type"], "entry_exit_last_year");
    assert_eq!(lookup["subject_id"], "A123456789");
    assert!(lookup["result"]["crossings"].is_array());

    let manager = t.login("tpe.manager").await;
    let record = t.wait_for_audit_record(&manager, lookup["audit_id"].as_str().unwrap()).await;
    assert_eq!(record["kind"], "lookup.requested");
    assert_eq!(record["correlation_id"], lookup["lookup_id"]);
    assert_eq!(record["subject_id"], "A123456789");
    assert_eq!(record["agency"], "TPE-SW");

    let verify: Value = t.get(&manager, "/v1/audit/verify").await.json().await.unwrap();
    assert_eq!(verify["ok"], true);
    assert!(verify["records"].as_i64().unwrap() >= 1);
    t.stack.stop().await;
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    keys
}

#[actix_web::test]
async fn r_qry_07_lookup_answer_carries_only_approved_items() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let lookup: Value = t.post(&token, "/v1/lookups", &permitted_lookup()).await.json().await.unwrap();
    // nia-mock also sends name, birth_date, nia_reference and the subject's ID: exactly the approved
    // items of entry_exit_last_year leave the broker (with the result's query type), nothing else.
    assert_eq!(
        keys(&lookup["result"]),
        ["crossings", "currently_in_taiwan", "found", "period_from", "period_to", "query_type"],
        "{lookup}"
    );
    assert_eq!(lookup["result"]["query_type"], "entry_exit_last_year");
    assert_eq!(lookup["result"]["found"], true);
    let crossings = lookup["result"]["crossings"].as_array().expect("crossings");
    for crossing in crossings {
        assert_eq!(
            keys(crossing),
            ["carrier_number", "date", "direction", "port_code", "port_name", "transport"],
            "{crossing}"
        );
    }
    // The answer around the result is the documented one.
    assert_eq!(keys(&lookup), ["audit_id", "lookup_id", "query_type", "result", "subject_id"], "{lookup}");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_01_lookup_without_legal_basis_purpose_or_case_number_is_refused() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    for field in ["legal_basis", "purpose_code", "case_number"] {
        let mut body = permitted_lookup();
        body.as_object_mut().unwrap().remove(field);
        let p = problem(t.post(&token, "/v1/lookups", &body).await, 422).await;
        assert_eq!(p["field"], field);
        assert_eq!(p["rule"], "R-QRY-01");
    }
    for (field, value) in [("legal_basis", "no_such_act"), ("purpose_code", "curiosity")] {
        let mut body = permitted_lookup();
        body[field] = json!(value);
        let p = problem(t.post(&token, "/v1/lookups", &body).await, 422).await;
        assert_eq!(p["field"], field);
        assert_eq!(p["rule"], "R-QRY-01");
    }
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_04_invalid_subject_id_is_refused_with_422() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    for bad in ["A123456788", "A12345678", "AB1234567", "１２３"] {
        let mut body = permitted_lookup();
        body["subject_id"] = json!(bad);
        let p = problem(t.post(&token, "/v1/lookups", &body).await, 422).await;
        assert_eq!(p["field"], "subject_id", "{bad}");
        assert_eq!(p["rule"], "R-QRY-04");
    }
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_02_lookup_outside_the_users_grants_is_forbidden() {
    let t = TestStack::spawn().await;
    // The Hualien clerk holds entry_exit_last_year only.
    let clerk = t.login("hln.clerk").await;
    let household = |query_type: &str| {
        json!({ "query_type": query_type, "subject_id": "A123456789",
                "legal_basis": "household_registration_act", "purpose_code": "hr_nationality_change",
                "case_number": "HLN-2026-0007" })
    };
    assert_eq!(t.post(&clerk, "/v1/lookups", &household("entry_exit_last_year")).await.status(), 200);
    // The link does not carry eid_photo (R-LINK-03); it carries traveler_history, not granted to them.
    for (asked, code, rule) in
        [("eid_photo", "item_not_on_link", "R-LINK-03"), ("traveler_history", "not_permitted", "R-QRY-02")]
    {
        let p = problem(t.post(&clerk, "/v1/lookups", &household(asked)).await, 403).await;
        assert_eq!((p["code"].as_str(), p["rule"].as_str()), (Some(code), Some(rule)), "{asked}");
    }
    // A household-registration purpose and legal basis on a social-welfare user.
    let token = t.login("tpe.caseworker").await;
    let mut body = permitted_lookup();
    body["legal_basis"] = json!("nationality_act");
    body["purpose_code"] = json!("hr_nationality_change");
    let p = problem(t.post(&token, "/v1/lookups", &body).await, 403).await;
    assert_eq!(p["code"], "not_permitted");
    // A supervisor holds no lookup grant at all.
    let supervisor = t.login("tpe.supervisor").await;
    problem(t.post(&supervisor, "/v1/lookups", &permitted_lookup()).await, 403).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_06_lookup_naming_an_unknown_proxy_authorization_is_forbidden() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let mut body = permitted_lookup();
    body["proxy_authorization_id"] = json!("01900000-0000-7000-8000-000000000000");
    let p = problem(t.post(&token, "/v1/lookups", &body).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-06");
    t.stack.stop().await;
}

/// What the probe upstream saw when the broker called it.
#[derive(Debug, Clone)]
struct Observation {
    requested_lookups: i64,
    outbox_events: i64,
    traceparent: Option<String>,
    request_id: Option<String>,
}

struct Probe {
    broker_db: Mutex<Option<Db>>,
    broker_db_url: Mutex<String>,
    seen: Mutex<Vec<Observation>>,
}

/// A stand-in upstream that, before answering, looks into the broker's database for the lookup's
/// durable record: this is the upstream's own view of "audited before forwarded".
async fn probe_query(req: HttpRequest, probe: web::Data<Arc<Probe>>) -> HttpResponse {
    let db = {
        let mut slot = probe.broker_db.lock().unwrap();
        if slot.is_none() {
            let url = probe.broker_db_url.lock().unwrap().clone();
            *slot = Some(Db::connect(&DbSettings::new(url), &immilink_stack::broker::MIGRATIONS).unwrap());
        }
        slot.clone().unwrap()
    };
    let (requested_lookups, outbox_events) = db
        .run(|conn| -> Result<(i64, i64), immilink_shared::db::DbError> {
            let requested = lookups::table.filter(lookups::status.eq("requested")).count().get_result(conn)?;
            let events = outbox::table.filter(outbox::event.like("%lookup.requested%")).count().get_result(conn)?;
            Ok((requested, events))
        })
        .await
        .unwrap();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    probe.seen.lock().unwrap().push(Observation {
        requested_lookups,
        outbox_events,
        traceparent: header("traceparent"),
        request_id: header("x-request-id"),
    });
    HttpResponse::Ok().json(json!({
        "subject_id": "A123456789", "name": "測試", "birth_date": "1980-01-01",
        "period_from": "2025-11-23", "period_to": "2026-11-23", "crossings": [],
        "currently_in_taiwan": true, "nia_reference": "NIA-PROBE"
    }))
}

#[actix_web::test]
async fn r_qry_08_audit_record_is_durable_before_the_upstream_is_called() {
    let probe = Arc::new(Probe {
        broker_db: Mutex::new(None),
        broker_db_url: Mutex::new(String::new()),
        seen: Mutex::new(Vec::new()),
    });
    let data = web::Data::new(Arc::clone(&probe));
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route("/v1/queries/{query_type}", web::post().to(probe_query))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let probe_handle = server.handle();
    actix_web::rt::spawn(server);

    let t = TestStack::spawn_with(Options {
        upstream_override: Some(format!("http://127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    *probe.broker_db_url.lock().unwrap() = t.broker_db_url.clone();
    let token = t.login("tpe.caseworker").await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = t
        .http
        .post(t.url("/v1/lookups"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .header("x-request-id", "e2e-probe-1")
        .json(&permitted_lookup())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The gateway mints the request id (the client's value is its correlation id only) ...
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(request_id, "e2e-probe-1");
    assert_eq!(response.headers()["x-correlation-id"], "e2e-probe-1");

    let seen = probe.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "exactly one upstream call");
    assert_eq!(seen[0].requested_lookups, 1, "the lookup row was committed before the call");
    assert_eq!(seen[0].outbox_events, 1, "its audit event was committed before the call");
    // W3C trace context travels gateway → broker → upstream, keeping the caller's trace id.
    let traceparent = seen[0].traceparent.clone().expect("traceparent reaches the upstream");
    assert!(traceparent.contains(trace_id), "{traceparent}");
    // ... and the broker served its hop under that id, which it sent on: one request, one id in
    // every service's logs.
    assert_eq!(seen[0].request_id.as_deref(), Some(request_id.as_str()));

    t.stack.stop().await;
    probe_handle.stop(false).await;
}

#[actix_web::test]
async fn r_qry_09_upstream_down_answers_503_with_the_doubt_query_hint_and_is_still_audited() {
    let t = TestStack::spawn_with(Options {
        // Nothing listens on port 9 (discard) on loopback: connection refused.
        upstream_override: Some("http://127.0.0.1:9".into()),
        ..Options::default()
    })
    .await;
    let token = t.login("tpe.caseworker").await;
    let p = problem(t.post(&token, "/v1/lookups", &permitted_lookup()).await, 503).await;
    assert_eq!(p["code"], "upstream_unavailable");
    assert_eq!(p["rule"], "R-QRY-09");
    assert!(p["hint"].as_str().unwrap().contains("疑義查詢表"));

    // The failed attempt is on the audit trail: requested and completed-as-failed.
    let manager = t.login("tpe.manager").await;
    let mut kinds = Vec::new();
    for _ in 0..100 {
        let records: Value = t.get(&manager, "/v1/audit/records?kind=lookup.completed").await.json().await.unwrap();
        kinds = records.as_array().unwrap().iter().map(|r| r["payload"].as_str().unwrap().to_owned()).collect();
        if !kinds.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(kinds.len(), 1);
    assert!(kinds[0].contains("\"outcome\":\"failed\""), "{}", kinds[0]);
    t.stack.stop().await;
}
