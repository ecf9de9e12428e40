//! Bulk lookups (R-QRY-05): submit, follow, fetch results; each ID its own audited lookup; refusals
//! before anything is stored; a cancelled account's batch stops; an upstream outage makes items wait.

use std::collections::HashSet;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::prelude::*;
use immilink_shared::db::{Db, DbSettings};
use immilink_stack::broker::schema::{batch_items, batches, lookups};
use serde_json::{json, Value};

use crate::harness::{problem, Options, TestStack};

/// A valid national ID (region A, male) for each serial, with its check digit computed.
fn national_id(serial: u32) -> String {
    let digits = format!("1{:07}", serial % 10_000_000);
    // Region A is code 10: 1 × 1 + 0 × 9.
    let sum: u32 =
        1 + digits.bytes().zip([8, 7, 6, 5, 4, 3, 2, 1]).map(|(b, weight)| u32::from(b - b'0') * weight).sum::<u32>();
    format!("A{digits}{}", (10 - sum % 10) % 10)
}

fn declaration() -> Value {
    json!({
        "query_type": "entry_exit_last_year",
        "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business",
        "case_number": "TPE-SW-2026-000777"
    })
}

fn batch_body(ids: &[String]) -> Value {
    let mut body = declaration();
    body["subject_ids"] = json!(ids);
    body
}

const CSV_QUERY: &str = "query_type=entry_exit_last_year&legal_basis=social_assistance_act\
    &purpose_code=sw_statutory_business&case_number=TPE-SW-2026-000778&remarks=%E6%89%B9%E6%AC%A1";

async fn post_csv(t: &TestStack, token: &str, query: &str, csv: &str) -> reqwest::Response {
    t.http
        .post(t.url(&format!("/v1/batches?{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("gateway answers")
}

/// Polls the batch until `done` says so (bounded).
async fn wait_for(t: &TestStack, token: &str, batch_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let response = t.get(token, &format!("/v1/batches/{batch_id}")).await;
        assert_eq!(response.status(), 200);
        last = response.json().await.unwrap();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("batch {batch_id} never got there: {last}");
}

fn completed(batch: &Value) -> bool {
    batch["status"] == "completed"
}

/// The broker's own database, to check what was (not) stored.
fn broker_db(t: &TestStack) -> Db {
    Db::connect(&DbSettings::new(t.broker_db_url.clone()), &immilink_stack::broker::MIGRATIONS).unwrap()
}

fn stored_counts(t: &TestStack) -> (i64, i64) {
    let mut conn = broker_db(t).get().unwrap();
    let batches: i64 = batches::table.count().get_result(&mut conn).unwrap();
    let items: i64 = batch_items::table.count().get_result(&mut conn).unwrap();
    (batches, items)
}

/// The audit records of one kind for a correlation id, waiting (bounded) until there is one.
async fn audit_records(t: &TestStack, token: &str, correlation_id: &str, kind: &str) -> Vec<Value> {
    for _ in 0..100 {
        let response = t.get(token, &format!("/v1/audit/records?correlation_id={correlation_id}&kind={kind}")).await;
        assert_eq!(response.status(), 200);
        let records: Vec<Value> = response.json().await.unwrap();
        if !records.is_empty() {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} audit record for {correlation_id}");
}

/// Splits one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[actix_web::test]
async fn r_qry_05_a_json_batch_runs_each_id_as_its_own_audited_lookup() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let mut ids: Vec<String> = (0..19).map(|n| national_id(1000 + n)).collect();
    ids.push(ids[0].clone()); // a duplicate is its own lookup
    let response = t.post(&token, "/v1/batches", &batch_body(&ids)).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let batch_id = accepted["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/batches/{batch_id}"));
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["total"], 20);

    let batch = wait_for(&t, &token, &batch_id, completed).await;
    assert_eq!((batch["total"].as_i64(), batch["done"].as_i64()), (Some(20), Some(20)), "{batch}");
    assert_eq!((batch["succeeded"].as_i64(), batch["failed"].as_i64()), (Some(20), Some(0)), "{batch}");
    assert_eq!(batch["cancelled"], 0);
    assert_eq!(batch["case_number"], "TPE-SW-2026-000777");
    assert!(batch["finished_at"].is_string() && batch["created_at"].is_string(), "{batch}");

    // JSON results: every item in order, each with its own lookup and a minimised result.
    let response = t.get(&token, &format!("/v1/batches/{batch_id}/results")).await;
    assert_eq!(response.status(), 200);
    let results: Vec<Value> = response.json().await.unwrap();
    assert_eq!(results.len(), 20);
    let mut lookup_ids = Vec::new();
    for (position, item) in results.iter().enumerate() {
        assert_eq!(item["position"], position, "{item}");
        assert_eq!(item["subject_id"], ids[position].as_str());
        assert_eq!(item["status"], "succeeded", "{item}");
        assert!(item["result"].is_object() && item["error"].is_null(), "{item}");
        for leaked in ["name", "birth_date", "nia_reference"] {
            assert!(item["result"].get(leaked).is_none(), "{leaked} leaked: {item}");
        }
        lookup_ids.push(item["lookup_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(lookup_ids.iter().collect::<HashSet<_>>().len(), 20, "one lookup per item, duplicates included");

    // CSV results: the same items, the same lookups.
    let response = t
        .http
        .get(t.url(&format!("/v1/batches/{batch_id}/results")))
        .bearer_auth(&token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = response.text().await.unwrap();
    // UTF-8 with a byte-order mark, so a spreadsheet on a government desktop reads the Chinese right.
    let csv = csv.strip_prefix('\u{feff}').expect("the file starts with a byte-order mark");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "position,subject_id,status,lookup_id,error_code,error_detail,result");
    assert_eq!(lines.len(), 21);
    for (position, line) in lines[1..].iter().enumerate() {
        let fields = csv_fields(line);
        assert_eq!(fields.len(), 7, "{line}");
        assert_eq!(
            (fields[0].as_str(), fields[1].as_str(), fields[2].as_str()),
            (position.to_string().as_str(), ids[position].as_str(), "succeeded")
        );
        assert_eq!(fields[3], lookup_ids[position]);
        let result: Value = serde_json::from_str(&fields[6]).unwrap();
        assert_eq!(result, results[position]["result"]);
    }

    // The audit trail: the batch, then one lookup.requested per ID naming its subject and the batch.
    let auditor = t.login("tpe.auditor").await;
    let submitted = audit_records(&t, &auditor, &batch_id, "batch.submitted").await;
    assert_eq!(submitted.len(), 1);
    for (position, lookup_id) in lookup_ids.iter().enumerate() {
        let records = audit_records(&t, &auditor, lookup_id, "lookup.requested").await;
        assert_eq!(records.len(), 1, "{lookup_id}");
        assert_eq!(records[0]["subject_id"], ids[position].as_str());
        assert_eq!(records[0]["agency"], "TPE-SW");
        let payload: Value = serde_json::from_str(records[0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["batch_id"], batch_id.as_str());
        assert_eq!(payload["case_number"], "TPE-SW-2026-000777");
        assert_eq!(payload["purpose_code"], "sw_statutory_business");
    }

    // The submitter's list shows it, under the one listing rule: `limit` 1 to 500 (default 100),
    // anything else refused naming it; `before` continues after the last id of a page.
    let mine: Vec<Value> = t.get(&token, "/v1/batches").await.json().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["batch_id"], batch_id.as_str());
    assert_eq!(mine[0]["cancelled"], 0);
    let widest: Vec<Value> = t.get(&token, "/v1/batches?limit=500").await.json().await.unwrap();
    assert_eq!(widest.len(), 1);
    for bad in ["0", "501", "ten"] {
        let p = problem(t.get(&token, &format!("/v1/batches?limit={bad}")).await, 422).await;
        assert_eq!(p["field"], "limit", "{bad}");
    }
    let after: Vec<Value> = t.get(&token, &format!("/v1/batches?before={batch_id}")).await.json().await.unwrap();
    assert!(after.is_empty(), "nothing is older than the only batch");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_05_a_csv_batch_takes_the_declaration_from_the_query_string() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let (a, b, c) = (national_id(2001), national_id(2002), national_id(2003));
    let csv = format!("subject_id\r\n{a}\r\n\r\n{b}\n{}\r\n", c.to_lowercase());
    let response = post_csv(&t, &token, CSV_QUERY, &csv).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["total"], 3);
    let batch_id = accepted["batch_id"].as_str().unwrap().to_owned();
    let batch = wait_for(&t, &token, &batch_id, completed).await;
    assert_eq!(batch["succeeded"], 3, "{batch}");
    assert_eq!(batch["case_number"], "TPE-SW-2026-000778");
    let results: Vec<Value> = t.get(&token, &format!("/v1/batches/{batch_id}/results")).await.json().await.unwrap();
    let subjects: Vec<&str> = results.iter().map(|r| r["subject_id"].as_str().unwrap()).collect();
    assert_eq!(subjects, [a.as_str(), b.as_str(), c.as_str()], "IDs are normalised");

    // The remarks travel into each lookup's audit record.
    let auditor = t.login("tpe.auditor").await;
    let records = audit_records(&t, &auditor, results[0]["lookup_id"].as_str().unwrap(), "lookup.requested").await;
    let payload: Value = serde_json::from_str(records[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["remarks"], "批次");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_04_a_batch_with_one_invalid_id_is_refused_naming_it_and_nothing_is_stored() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let mut ids: Vec<String> = (0..6).map(|n| national_id(3000 + n)).collect();
    ids[3] = "A123456788".into(); // wrong check digit
    let p = problem(t.post(&token, "/v1/batches", &batch_body(&ids)).await, 422).await;
    assert_eq!(p["field"], "subject_ids[3]");
    assert_eq!(p["rule"], "R-QRY-04");

    // The first ID is checked with the declaration, and named the same way.
    ids[3] = national_id(3003);
    ids[0] = "AB1234567".into();
    let p = problem(t.post(&token, "/v1/batches", &batch_body(&ids)).await, 422).await;
    assert_eq!(p["field"], "subject_ids[0]");

    // CSV: the index counts data rows from 0; the detail names the line.
    let csv = format!("subject_id\n{}\n\n{}\nA12345678X\n", national_id(1), national_id(2));
    let p = problem(post_csv(&t, &token, CSV_QUERY, &csv).await, 422).await;
    assert_eq!(p["field"], "subject_ids[2]");
    assert!(p["detail"].as_str().unwrap().starts_with("line 5: "), "{p}");
    // One ID per line: a line with more than one field is refused naming its line.
    let csv = format!("subject_id\r\n{}\r\n{},{}\r\n", national_id(1), national_id(2), national_id(3));
    let p = problem(post_csv(&t, &token, CSV_QUERY, &csv).await, 422).await;
    assert_eq!((p["field"].as_str(), p["rule"].as_str()), (Some("subject_ids[1]"), Some("R-QRY-04")));
    assert!(p["detail"].as_str().unwrap().starts_with("line 3: "), "{p}");

    // The list must hold 1 to 10 000 IDs.
    let p = problem(t.post(&token, "/v1/batches", &batch_body(&[])).await, 422).await;
    assert_eq!(p["field"], "subject_ids");
    let too_many: Vec<String> = (0..10_001).map(national_id).collect();
    let p = problem(t.post(&token, "/v1/batches", &batch_body(&too_many)).await, 422).await;
    assert_eq!(p["field"], "subject_ids");

    // The declaration is required (R-QRY-01), and proxies are not taken on batches.
    let mut body = batch_body(&ids[1..]);
    body.as_object_mut().unwrap().remove("legal_basis");
    let p = problem(t.post(&token, "/v1/batches", &body).await, 422).await;
    assert_eq!((p["field"].as_str(), p["rule"].as_str()), (Some("legal_basis"), Some("R-QRY-01")));
    let mut body = batch_body(&ids[1..]);
    body["proxy_authorization_id"] = json!("01900000-0000-7000-8000-000000000000");
    let p = problem(t.post(&token, "/v1/batches", &body).await, 422).await;
    assert_eq!(p["field"], "proxy_authorization_id");

    assert_eq!(stored_counts(&t), (0, 0), "no batch and no item was stored");
    let mine: Vec<Value> = t.get(&token, "/v1/batches").await.json().await.unwrap();
    assert!(mine.is_empty());

    // The R-QRY-04 refusal is on the audit trail, naming the ID refused.
    let auditor = t.login("tpe.auditor").await;
    let mut refused: Vec<Value> = Vec::new();
    for _ in 0..100 {
        refused = t.get(&auditor, "/v1/audit/records?kind=lookup.refused").await.json().await.unwrap();
        if refused.iter().any(|r| r["subject_id"] == "A123456788") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused.iter().any(|r| r["subject_id"] == "A123456788"), "{refused:?}");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_02_a_batch_outside_the_callers_grants_is_forbidden() {
    let t = TestStack::spawn().await;
    let ids = vec![national_id(4000), national_id(4001)];
    // The Hualien clerk holds entry_exit_last_year only.
    let clerk = t.login("hln.clerk").await;
    let household = |query_type: &str| {
        json!({ "query_type": query_type, "legal_basis": "household_registration_act",
                "purpose_code": "hr_nationality_change", "case_number": "HLN-2026-0007", "subject_ids": ids })
    };
    // The link does not carry eid_photo (R-LINK-03); it carries traveler_history, not granted to them.
    for (asked, code, rule) in
        [("eid_photo", "item_not_on_link", "R-LINK-03"), ("traveler_history", "not_permitted", "R-QRY-02")]
    {
        let p = problem(t.post(&clerk, "/v1/batches", &household(asked)).await, 403).await;
        assert_eq!((p["code"].as_str(), p["rule"].as_str()), (Some(code), Some(rule)), "{asked}");
    }
    // A household-registration purpose on a social-welfare user.
    let token = t.login("tpe.caseworker").await;
    let mut body = batch_body(&ids);
    body["legal_basis"] = json!("nationality_act");
    body["purpose_code"] = json!("hr_nationality_change");
    let p = problem(t.post(&token, "/v1/batches", &body).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-02");
    // A supervisor holds no lookup grant.
    let supervisor = t.login("tpe.supervisor").await;
    let p = problem(t.post(&supervisor, "/v1/batches", &batch_body(&ids)).await, 403).await;
    assert_eq!(p["rule"], "R-QRY-02");
    assert_eq!(stored_counts(&t), (0, 0));
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_05_a_batch_and_its_results_are_hidden_from_other_users() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let accepted: Value = t.post(&token, "/v1/batches", &batch_body(&[national_id(5000)])).await.json().await.unwrap();
    let batch_id = accepted["batch_id"].as_str().unwrap().to_owned();
    wait_for(&t, &token, &batch_id, completed).await;
    let status = format!("/v1/batches/{batch_id}");
    let results = format!("/v1/batches/{batch_id}/results");

    // Another agency's caseworker, and a colleague without an overseeing role: it does not exist.
    for other in ["hln.clerk", "tpe.supervisor"] {
        let other = t.login(other).await;
        problem(t.get(&other, &status).await, 404).await;
        problem(t.get(&other, &results).await, 404).await;
        let theirs: Vec<Value> = t.get(&other, "/v1/batches").await.json().await.unwrap();
        assert!(theirs.is_empty());
    }
    // The agency's account manager and auditor follow its progress, but its results (personal data
    // obtained for the submitter's case) stay with the submitter.
    for overseer in ["tpe.manager", "tpe.auditor"] {
        let overseer = t.login(overseer).await;
        let seen: Value = t.get(&overseer, &status).await.json().await.unwrap();
        assert_eq!(seen["batch_id"], batch_id.as_str());
        problem(t.get(&overseer, &results).await, 404).await;
    }
    problem(t.get(&token, "/v1/batches/01900000-0000-7000-8000-000000000000").await, 404).await;
    // R-QRY-12: nothing alters a batch or its results.
    for method in [reqwest::Method::PUT, reqwest::Method::PATCH, reqwest::Method::DELETE] {
        for path in [&status, &results] {
            let response =
                t.http.request(method.clone(), t.url(path)).bearer_auth(&token).json(&json!({})).send().await.unwrap();
            assert!(matches!(response.status().as_u16(), 404 | 405), "{method} {path}: {}", response.status());
        }
    }
    t.stack.stop().await;
}

/// A stand-in upstream that answers every query after a pause, so a batch takes a while.
async fn slow_upstream(pause: Duration) -> (u16, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(move || {
        App::new().route(
            "/v1/queries/{query_type}",
            web::post().to(move || async move {
                actix_web::rt::time::sleep(pause).await;
                HttpResponse::Ok().json(json!({
                    "subject_id": "A123456789", "name": "測試", "birth_date": "1980-01-01",
                    "period_from": "2025-11-23", "period_to": "2026-11-23", "crossings": [],
                    "currently_in_taiwan": true, "nia_reference": "NIA-SLOW"
                }))
            }),
        )
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (port, handle)
}

#[actix_web::test]
async fn r_acc_05_a_batch_stops_when_its_submitters_account_is_cancelled() {
    let (port, upstream) = slow_upstream(Duration::from_millis(100)).await;
    let t = TestStack::spawn_with(Options {
        upstream_override: Some(format!("http://127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    let token = t.login("tpe.caseworker").await;
    let caseworker_id = t.user_id(&token).await;
    let manager = t.login("tpe.manager").await;
    let ids: Vec<String> = (0..300).map(|n| national_id(6000 + n)).collect();
    let response = t.post(&token, "/v1/batches", &batch_body(&ids)).await;
    assert_eq!(response.status(), 202);
    let batch_id = response.json::<Value>().await.unwrap()["batch_id"].as_str().unwrap().to_owned();
    wait_for(&t, &manager, &batch_id, |b| b["done"].as_i64() > Some(0)).await;

    let cancel = t
        .post(
            &manager,
            &format!("/v1/accounts/{caseworker_id}/hr-events"),
            &json!({ "event": "resignation", "reason": "離職" }),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    // The worker sees it at its next account check (at most every 100 items) and stops; lookups
    // already in flight finish and are counted.
    let batch = wait_for(&t, &manager, &batch_id, |b| {
        b["status"] == "cancelled" && b["done"].as_i64().unwrap() + b["cancelled"].as_i64().unwrap() == 300
    })
    .await;
    let (done, cancelled) = (batch["done"].as_i64().unwrap(), batch["cancelled"].as_i64().unwrap());
    assert!(done >= 1 && cancelled >= 1, "{batch}");
    assert!(done <= 100, "stopped at the next account check, after at most one round: {batch}");
    assert!(batch["failure"].as_str().unwrap().contains("cancelled"), "{batch}");
    assert!(batch["finished_at"].is_string());

    // No lookup was recorded beyond the items counted: access stopped.
    let mut conn = broker_db(&t).get().unwrap();
    let recorded: i64 = lookups::table.filter(lookups::batch_id.eq(&batch_id)).count().get_result(&mut conn).unwrap();
    assert_eq!(recorded, done);
    t.stack.stop().await;
    upstream.stop(false).await;
}

#[actix_web::test]
async fn r_qry_09_during_an_upstream_outage_batch_items_wait_instead_of_failing() {
    let t = TestStack::spawn_with(Options {
        // Nothing listens on port 9 (discard) on loopback: connection refused.
        upstream_override: Some("http://127.0.0.1:9".into()),
        ..Options::default()
    })
    .await;
    let token = t.login("tpe.caseworker").await;
    let ids: Vec<String> = (0..8).map(|n| national_id(7000 + n)).collect();
    let response = t.post(&token, "/v1/batches", &batch_body(&ids)).await;
    assert_eq!(response.status(), 202, "a batch is accepted while the upstream is down: it is a job");
    let batch_id = response.json::<Value>().await.unwrap()["batch_id"].as_str().unwrap().to_owned();
    // Until the attempts have opened the circuit and every item is back waiting (no fixed pause: a
    // loaded machine takes longer), the batch runs and no item fails.
    let mut conn = broker_db(&t).get().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let batch: Value = t.get(&token, &format!("/v1/batches/{batch_id}")).await.json().await.unwrap();
        assert!(batch["status"] == "queued" || batch["status"] == "running", "{batch}");
        assert_eq!((batch["done"].as_i64(), batch["failed"].as_i64()), (Some(0), Some(0)), "{batch}");
        // The attempts were made as audited lookups (R-QRY-08), then the items went back to wait.
        let attempts: i64 =
            lookups::table.filter(lookups::batch_id.eq(&batch_id)).count().get_result(&mut conn).unwrap();
        let pending: i64 = batch_items::table
            .filter(batch_items::batch_id.eq(&batch_id))
            .filter(batch_items::status.eq("pending"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        if attempts >= 1 && pending == 8 && batch["status"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{attempts} attempts, {pending} of 8 items waiting");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.stack.stop().await;
}
