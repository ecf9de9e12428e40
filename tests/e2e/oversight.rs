//! Oversight as the agency meets it through the gateway: lookups, the monthly review opened on the
//! 1st, a mismatch that becomes a finding, a sample, the account manager's export, the query record
//! table in its four forms, and who read a person's data. The clock is the test's: the stack lives
//! through the turn of the month.

use std::time::Duration;

use chrono::Utc;
use immilink_shared::clock::Clock;
use serde_json::{json, Value};

use crate::harness::{permitted_lookup, problem, TestStack};

/// Waits until `check` finds what it wants in the answer to GET `path`.
async fn eventually(t: &TestStack, token: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let answer: Value = t.get(token, path).await.json().await.unwrap_or(Value::Null);
        if check(&answer) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered as expected");
}

#[actix_web::test]
async fn oversight_walk_from_lookups_to_who_read_a_persons_data() {
    let (t, clock) = crate::harness::spawn_with_oversight_clock().await;

    // 1. Two lookups by the Taipei caseworker this month.
    let caseworker = t.login("tpe.caseworker").await;
    let manager = t.login("tpe.manager").await;
    let first: Value = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await.json().await.unwrap();
    let mut other_case = permitted_lookup();
    other_case["case_number"] = json!("TPE-SW-2026-000999");
    let second: Value = t.post(&caseworker, "/v1/lookups", &other_case).await.json().await.unwrap();
    t.wait_for_audit_record(&manager, second["audit_id"].as_str().unwrap()).await;
    let caseworker_id = t.user_id(&caseworker).await;

    // 2. The 1st of next month (Taipei): the unit supervisor has last month's report.
    let now = clock.now();
    let next_month = immilink_shared::clock::business_date(now)
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| chrono::Datelike::with_day(&d, 1))
        .unwrap();
    let first_of_next = immilink_shared::clock::taipei()
        .from_local_datetime(&next_month.and_hms_opt(0, 30, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    clock.set(first_of_next);
    // A month idle ended the earlier sessions: everyone logs in again.
    let (supervisor, manager) = (t.login("tpe.supervisor").await, t.login("tpe.manager").await);
    let reviews = eventually(&t, &supervisor, "/v1/audit/reviews", |v| {
        v.as_array().is_some_and(|items| items.iter().any(|r| r["entries"] == 2))
    })
    .await;
    let report = reviews.as_array().unwrap().iter().find(|r| r["entries"] == 2).unwrap().clone();
    assert_eq!(report["reviewer_role"], "unit_supervisor");
    let report_id = report["id"].as_str().unwrap();
    let detail: Value = t.get(&supervisor, &format!("/v1/audit/reviews/{report_id}")).await.json().await.unwrap();
    let entries = detail["items"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["user_name"] == "王社工"), "{detail}");

    // 3. One matches; the other does not: a finding is opened and the ethics and IT units told.
    let marks = json!({"marks": [
        {"lookup_id": first["lookup_id"], "verdict": "matches"},
        {"lookup_id": second["lookup_id"], "verdict": "does_not_match", "note": "案號非本科業務"},
    ]});
    let marked = t.post(&supervisor, &format!("/v1/audit/reviews/{report_id}/marks"), &marks).await;
    assert_eq!(marked.status(), 200);
    let marked: Value = marked.json().await.unwrap();
    assert!(marked["completed_at"].is_string(), "{marked}");
    let finding_id = marked["items"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["finding_id"].as_str().map(str::to_owned))
        .expect("the mismatch opened a finding");
    let auditor = t.login("tpe.auditor").await;
    let finding: Value = t.get(&auditor, &format!("/v1/audit/findings/{finding_id}")).await.json().await.unwrap();
    assert_eq!(finding["origin"], "review", "{finding}");
    let again = t.post(&supervisor, &format!("/v1/audit/reviews/{report_id}/marks"), &marks).await;
    problem(again, 409).await;

    // 4. The query record table: the sign-off reaches it, in every form.
    // The year of the lookups (the 1st of next month may be in the next year).
    let year = chrono::Datelike::year(&immilink_shared::clock::business_date(now));
    let table: Value = t.get(&manager, &format!("/v1/audit/query-records?year={year}")).await.json().await.unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(rows[1]["sign_off"]["verdict"], "does_not_match");
    assert_eq!(rows[1]["sign_off"]["reviewer_name"], "林科長");
    let path = format!("/v1/audit/query-records?year={year}");
    for (accept, starts) in [
        ("text/csv", "\u{feff}序號".as_bytes()),
        ("application/vnd.oasis.opendocument.spreadsheet", b"PK".as_slice()),
        ("text/html", b"<!DOCTYPE html>".as_slice()),
    ] {
        let answer = t.http.get(t.url(&path)).bearer_auth(&manager).header("accept", accept).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{accept}");
        let body = answer.bytes().await.unwrap();
        assert!(body.starts_with(starts), "{accept}");
    }

    // 5. The auditor draws a sample of the month; the draw is reproducible from its seed.
    let from = (now - chrono::Duration::days(40)).to_rfc3339();
    let to = first_of_next.to_rfc3339();
    let sample = t
        .post(
            &auditor,
            "/v1/audit/samples",
            &json!({"agency": "TPE-SW", "from": from, "to": to, "ratio": 0.001, "seed": "walk"}),
        )
        .await;
    assert_eq!(sample.status(), 201);
    let sample: Value = sample.json().await.unwrap();
    assert_eq!((sample["population"].as_u64(), sample["size"].as_u64()), (Some(2), Some(2)), "{sample}");
    let low = t
        .post(&auditor, "/v1/audit/samples", &json!({"agency": "TPE-SW", "from": from, "to": to, "ratio": 0.0001}))
        .await;
    assert_eq!(problem(low, 422).await["field"], "ratio");

    // 6. The account manager exports the caseworker's query records as CSV.
    let export = t
        .http
        .get(t.url(&format!(
            "/v1/audit/query-records/export?from={}&to={}&user={caseworker_id}",
            urlencode(&from),
            urlencode(&to)
        )))
        .bearer_auth(&manager)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let csv = export.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and two rows: {csv}");

    // 7. Who read this person's data: the auditor may ask; the caseworker may not.
    let accesses: Value = t.get(&auditor, "/v1/audit/subjects/A123456789/accesses").await.json().await.unwrap();
    assert_eq!(accesses["accesses"].as_array().map(Vec::len), Some(2), "{accesses}");
    let caseworker = t.login("tpe.caseworker").await;
    problem(t.get(&caseworker, "/v1/audit/subjects/A123456789/accesses").await, 403).await;

    // Everything the oversight did is in the log, which still verifies.
    let verify: Value = t.get(&manager, "/v1/audit/verify").await.json().await.unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    t.shutdown().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

use chrono::TimeZone as _;
