//! The compliance matrix (R-GOV-01) as auditors, ethics officers, account managers and the
//! immigration agency's reviewers read it, and as a page beside the API documentation.

use serde_json::Value;

use crate::harness::{problem, TestStack};

/// The rule ids of ../shared/SPEC.md, in order.
fn spec_rule_ids() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/SPEC.md");
    let spec = std::fs::read_to_string(path).expect("../shared/SPEC.md beside the repository");
    immilink_shared::compliance::spec_rules(&spec).into_iter().map(|rule| rule.id).collect()
}

#[actix_web::test]
async fn r_gov_01_every_rule_is_served_with_its_status_endpoints_and_tests_to_the_compliance_roles() {
    let t = TestStack::spawn().await;
    let spec = spec_rule_ids();
    let openapi: Value =
        t.http.get(t.url("/openapi.json")).send().await.expect("gateway").json().await.expect("document");

    for reader in ["tpe.auditor", "tpe.ethics", "tpe.manager", "nia.reviewer"] {
        let token = t.login(reader).await;
        let response = t.get(&token, "/v1/compliance/rules").await;
        assert_eq!(response.status(), 200, "{reader}");
        let matrix: Value = response.json().await.expect("matrix");
        let rules = matrix["rules"].as_array().expect("rules");
        let ids: Vec<&str> = rules.iter().filter_map(|rule| rule["id"].as_str()).collect();
        assert_eq!(ids, spec, "{reader} sees every SPEC rule, in the SPEC's order");
        for rule in rules {
            let id = rule["id"].as_str().expect("id");
            assert!(rule["title"].as_str().is_some_and(|title| !title.is_empty()), "{id} has its title");
            assert_ne!(rule["status"], "untested", "{id}");
            assert!(!rule["tests"].as_array().expect("tests").is_empty(), "{id} names its tests");
            for endpoint in rule["endpoints"].as_array().expect("endpoints") {
                let (method, path) = endpoint.as_str().and_then(|e| e.split_once(' ')).expect("METHOD /path");
                let declared = &openapi["paths"][path][method.to_lowercase()]["x-immilink-rules"];
                let declares = declared.as_array().is_some_and(|rules| rules.iter().any(|r| r == id));
                assert!(declares, "{endpoint} is listed for {id} but the served document does not declare it");
            }
        }
        let governance = rules.iter().find(|rule| rule["id"] == "R-GOV-01").expect("R-GOV-01");
        assert_eq!(governance["endpoints"], serde_json::json!(["GET /v1/compliance/rules"]));
        let this_test = governance["tests"].as_array().expect("tests").iter().any(|test| {
            test["file"] == "tests/e2e/compliance.rs"
                && test["name"].as_str().is_some_and(|n| n.starts_with("r_gov_01_every_rule"))
        });
        assert!(this_test, "the matrix names the test that proves it: {governance}");
    }

    for outsider in ["tpe.caseworker", "tpe.vendors", "tpe.supervisor"] {
        let token = t.login(outsider).await;
        let refused = problem(t.get(&token, "/v1/compliance/rules").await, 403).await;
        assert_eq!(refused["code"], "role_required", "{outsider}");
    }
    let anonymous = t.http.get(t.url("/v1/compliance/rules")).send().await.expect("gateway");
    problem(anonymous, 401).await;

    let page = t.http.get(t.url("/docs/compliance")).send().await.expect("gateway");
    assert_eq!(page.status(), 200);
    let content_type = page.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.expect("page");
    for id in &spec {
        assert!(html.contains(&format!("id=\"{id}\"")), "the page has a row for {id}");
    }
    assert!(html.contains(&format!("規則 Rules: {}", spec.len())), "the page counts the rules");
    assert!(html.contains("untested: 0"), "the page shows no untested rule");
    t.shutdown().await;
}
