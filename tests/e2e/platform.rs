//! Health, docs, routing, catalogues, vendors and restarts.

use immilink_shared::testing::TestDb;
use immilink_stack::{start, StackConfig};
use serde_json::{json, Value};

use crate::harness::{problem, TestStack};

#[actix_web::test]
async fn every_service_and_the_gateway_answer_healthz_and_readyz() {
    let t = TestStack::spawn().await;
    let s = &t.stack;
    for base in [&s.gateway_url, &s.identity_url, &s.broker_url, &s.audit_url, &s.vendors_url, &s.nia_url] {
        for path in ["/healthz", "/readyz"] {
            let response = t.http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{base}{path}");
        }
    }
    let ready: Value = t.http.get(t.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"].as_array().unwrap().len(), 4);
    t.stack.stop().await;
}

#[actix_web::test]
async fn gateway_serves_the_merged_openapi_and_an_offline_docs_page() {
    let t = TestStack::spawn().await;
    let doc: Value = t.http.get(t.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in ["/v1/auth/login", "/v1/me", "/v1/lookups", "/v1/audit/verify", "/v1/vendors", "/healthz"] {
        assert!(doc["paths"].get(path).is_some(), "merged document lacks {path}");
    }
    assert!(doc["paths"].get("/internal/v1/events").is_none());
    // The document the gateway serves, merged live from the services, is valid OpenAPI (each tag
    // listed once, unique operation ids), and so are the committed ones.
    crate::tools::validate_openapi(&doc).unwrap_or_else(|report| panic!("the merged document: {report}"));
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi");
    for name in ["immilink.json", "identity.json", "broker.json", "audit.json", "vendors.json", "nia-mock.json"] {
        let text = std::fs::read_to_string(committed.join(name)).expect("a committed document");
        let committed_doc: Value = serde_json::from_str(&text).expect("JSON");
        crate::tools::validate_openapi(&committed_doc).unwrap_or_else(|report| panic!("openapi/{name}: {report}"));
    }

    let redirect = crate::harness::client(None).get(t.url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 200, "the redirect leads to the page");
    let page = t.http.get(t.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://") && !html.contains("http://"), "the page references an outside URL");
    let initializer = t.http.get(t.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"] {
        let response = t.http.get(t.url(&format!("/docs/{asset}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
    t.stack.stop().await;
}

#[actix_web::test]
async fn internal_endpoints_are_unreachable_through_the_gateway_and_refuse_callers_without_the_token() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.manager").await;
    let through_gateway = t.post(&token, "/internal/v1/events", &json!({"events": []})).await;
    problem(through_gateway, 404).await;
    let direct = t
        .http
        .post(format!("{}/internal/v1/events", t.stack.audit_url))
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    let p = problem(direct, 403).await;
    assert_eq!(p["code"], "internal_only");
    t.stack.stop().await;
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn problems_carry_our_request_id_and_answer_in_chinese_when_asked() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let response = t
        .http
        .post(t.url("/v1/lookups"))
        .bearer_auth(&token)
        .header("x-request-id", "case-42-check")
        .header("accept-language", "zh-TW,zh;q=0.9")
        .json(&json!({"query_type": "entry_exit_last_year"}))
        .send()
        .await
        .unwrap();
    // The gateway minted the request id; the client's value comes back as its correlation id only.
    let ours = header(&response, "x-request-id");
    assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
    assert_eq!(header(&response, "x-correlation-id"), "case-42-check");
    let p = problem(response, 422).await;
    // The broker wrote this problem: it served the hop under the gateway's id.
    assert_eq!(p["request_id"], ours.as_str());
    assert_eq!(p["title"], "缺少必要欄位");
    // A body that is not JSON at all is a 400 problem, never a 500.
    let garbage = t
        .http
        .post(t.url("/v1/lookups"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let p = problem(garbage, 400).await;
    assert!(!p["request_id"].as_str().unwrap().is_empty());
    t.stack.stop().await;
}

/// A client calling a service directly cannot choose the request id either; another immilink service,
/// presenting its service token, passes its request id on, so one request keeps one id.
#[actix_web::test]
async fn only_immilink_services_pass_a_request_id_on() {
    let t = TestStack::spawn().await;
    let direct = t
        .http
        .get(format!("{}/v1/catalogue/purposes", t.stack.broker_url))
        .header("x-request-id", "client-direct-1")
        .send()
        .await
        .unwrap();
    let minted = header(&direct, "x-request-id");
    assert_ne!(minted, "client-direct-1");
    assert_eq!(header(&direct, "x-correlation-id"), "client-direct-1");
    assert_eq!(problem(direct, 401).await["request_id"], minted.as_str());

    let issued: Value = t
        .http
        .post(format!("{}/internal/v1/service-tokens", t.stack.identity_url))
        .header("x-immilink-service-credential", format!("broker:{}", t.broker_secret.expose()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hop = t
        .http
        .post(format!("{}/internal/v1/events", t.stack.audit_url))
        .header("x-immilink-service-token", issued["token"].as_str().unwrap())
        .header("x-request-id", "0193-hop-7")
        .header("x-correlation-id", "client-ref-7")
        .json(&json!({ "events": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(hop.status(), 200);
    assert_eq!(header(&hop, "x-request-id"), "0193-hop-7");
    assert_eq!(header(&hop, "x-correlation-id"), "client-ref-7");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_qry_10_r_qry_11_catalogues_are_served_from_the_seeds() {
    let t = TestStack::spawn().await;
    let token = t.login("hln.clerk").await;
    let bases: Value = t.get(&token, "/v1/catalogue/legal-bases").await.json().await.unwrap();
    let social: Vec<_> = bases.as_array().unwrap().iter().filter(|b| b["agency_kind"] == "social_welfare").collect();
    assert_eq!(social.len(), 11);
    let purposes: Value = t.get(&token, "/v1/catalogue/purposes").await.json().await.unwrap();
    let other = purposes.as_array().unwrap().iter().find(|p| p["code"] == "hr_other_approved").unwrap();
    assert_eq!(other["requires_supervisor_approval"], true);
    let types: Value = t.get(&token, "/v1/catalogue/query-types").await.json().await.unwrap();
    assert_eq!(types.as_array().unwrap().len(), 8);
    t.stack.stop().await;
}

#[actix_web::test]
async fn vendors_are_registered_and_listed_per_agency() {
    let t = TestStack::spawn().await;
    let manager = t.login("tpe.manager").await;
    let created = t
        .post(&manager, "/v1/vendors", &json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
        .await;
    assert_eq!(created.status(), 201);
    let duplicate = t.post(&manager, "/v1/vendors", &json!({"name": "again", "business_number": "22099131"})).await;
    assert_eq!(problem(duplicate, 409).await["field"], "business_number");
    let bad = t.post(&manager, "/v1/vendors", &json!({"name": "x", "business_number": "22099132"})).await;
    assert_eq!(problem(bad, 422).await["field"], "business_number");
    let listed: Value = t.get(&manager, "/v1/vendors").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Another agency sees none of them; a caseworker may not manage vendors.
    let other = t.login("hln.manager").await;
    let theirs: Value = t.get(&other, "/v1/vendors").await.json().await.unwrap();
    assert_eq!(theirs, json!([]));
    let caseworker = t.login("tpe.caseworker").await;
    problem(t.get(&caseworker, "/v1/vendors").await, 403).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn a_second_start_on_the_same_databases_works_without_duplicating_demo_data() {
    let databases = [TestDb::new(), TestDb::new(), TestDb::new(), TestDb::new()];
    let keys = tempfile::tempdir().unwrap();
    let urls = [databases[0].url(), databases[1].url(), databases[2].url(), databases[3].url()];
    let http = crate::harness::client(None);
    let mut kids = Vec::new();
    for _ in 0..2 {
        let stack = start(StackConfig::for_tests(urls, keys.path()), immilink_shared::clock::system_clock())
            .await
            .expect("the stack starts again on the same data");
        let login = http
            .post(format!("{}/v1/auth/login", stack.gateway_url))
            .json(&json!({"username": "tpe.caseworker", "password": "immilink-demo", "certificate_serial": "DEMO-tpe.caseworker"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let jwks: Value = http
            .get(format!("{}/.well-known/jwks.json", stack.gateway_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        kids.push(jwks["keys"][0]["kid"].clone());
        stack.stop().await;
    }
    assert_eq!(kids[0], kids[1], "the signing key persists across restarts");
    // The demo data was seeded once: thirteen users in three agencies, not twice that.
    use diesel::prelude::*;
    use immilink_stack::identity::schema::{agencies, users};
    let identity = immilink_shared::db::Db::connect(
        &immilink_shared::db::DbSettings::new(databases[0].url()),
        &immilink_stack::identity::MIGRATIONS,
    )
    .unwrap();
    let mut conn = identity.get().unwrap();
    assert_eq!(users::table.count().get_result::<i64>(&mut conn).unwrap(), 14);
    assert_eq!(agencies::table.count().get_result::<i64>(&mut conn).unwrap(), 3);
}

#[actix_web::test]
async fn a_known_path_with_the_wrong_method_is_405_with_allow() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    // The gateway's own path.
    let response = t.http.request(reqwest::Method::TRACE, t.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    problem(response, 405).await;
    // A service's path, answered by the service behind the gateway.
    let response = t.get(&token, "/v1/lookups").await;
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(problem(response, 405).await["code"], "method_not_allowed");
    // An unknown path stays 404.
    problem(t.get(&token, "/v1/nothing-here").await, 404).await;
    t.stack.stop().await;
}

/// The gateway and a service called directly refuse the same oversized body the same way.
#[actix_web::test]
async fn oversized_bodies_are_refused_with_413_problem() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let huge = format!("{{\"remarks\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    for base in [&t.stack.gateway_url, &t.stack.broker_url, &t.stack.identity_url] {
        let path = if base == &t.stack.identity_url { "/v1/auth/login" } else { "/v1/lookups" };
        let response = t
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        let p = problem(response, 413).await;
        assert_eq!(p["code"], "body_too_large", "{base}{path}");
        assert_eq!(p["detail"], "bodies are limited to 4194304 bytes", "{base}{path}");
    }
    t.stack.stop().await;
}

/// Oversized request headers are a 431 on the gateway and on a service called directly: over
/// immilink's limit (32 KiB) a problem like every other refusal; over actix's own bound on a request
/// head (128 KiB), a 431 actix answers itself, without a body, before closing the connection.
#[actix_web::test]
async fn oversized_headers_are_refused_with_431() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    for base in [&t.stack.gateway_url, &t.stack.broker_url] {
        let send = |padding: usize| {
            t.http
                .get(format!("{base}/v1/catalogue/purposes"))
                .bearer_auth(&token)
                .header("x-padding", "a".repeat(padding))
                .send()
        };
        assert_eq!(send(8 * 1024).await.unwrap().status(), 200, "{base}: within the limit");
        let p = problem(send(64 * 1024).await.unwrap(), 431).await;
        assert_eq!(p["code"], "headers_too_large", "{base}");
        let response = send(200 * 1024).await.expect("a 431, not a reset connection");
        assert_eq!(response.status(), 431, "{base}");
    }
    t.stack.stop().await;
}

#[actix_web::test]
async fn metrics_are_served_to_the_cluster_only() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    assert_eq!(t.get(&token, "/v1/me").await.status(), 200);
    // From outside through the gateway: a user's token is not enough.
    problem(t.http.get(t.url("/metrics")).send().await.unwrap(), 401).await;
    problem(t.get(&token, "/metrics").await, 403).await;
    // Prometheus in the cluster presents the metrics token.
    let internal = t.metrics_token();
    for base in [&t.stack.gateway_url, &t.stack.identity_url, &t.stack.broker_url] {
        let response = t.http.get(format!("{base}/metrics")).bearer_auth(&internal).send().await.unwrap();
        assert_eq!(response.status(), 200, "{base}");
        let text = response.text().await.unwrap();
        assert!(text.contains("# TYPE immilink_http_request_duration_seconds histogram"), "{text}");
    }
    let identity = t.http.get(format!("{}/metrics", t.stack.identity_url)).bearer_auth(&internal).send().await.unwrap();
    let text = identity.text().await.unwrap();
    // Routes are patterns, never raw paths with IDs in them.
    assert!(text.contains("route=\"/v1/me\",status=\"200\""), "{text}");
    assert!(text.contains("route=\"/v1/auth/login\",status=\"200\""), "{text}");
    // Every service with an outbox exports its audit relay's state, to alert on.
    for (service, base) in
        [("identity", &t.stack.identity_url), ("broker", &t.stack.broker_url), ("vendors", &t.stack.vendors_url)]
    {
        let text =
            t.http.get(format!("{base}/metrics")).bearer_auth(&internal).send().await.unwrap().text().await.unwrap();
        for gauge in ["immilink_outbox_oldest_undelivered_seconds", "immilink_outbox_refused_events"] {
            assert!(text.contains(&format!("# TYPE {gauge} gauge")), "{service}: {text}");
            assert!(text.contains(&format!("{gauge}{{service=\"{service}\"}}")), "{service}: {text}");
        }
        assert!(text.contains(&format!("immilink_outbox_refused_events{{service=\"{service}\"}} 0\n")), "{text}");
    }
    t.stack.stop().await;
}

/// Sends a request line as written (HTTP clients resolve `..` before sending) and returns the status.
async fn raw_request(base: &str, method: &str, path: &str, token: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

#[actix_web::test]
async fn dot_segments_cannot_reach_internal_endpoints_through_the_gateway() {
    let t = TestStack::spawn().await;
    let manager = t.login("tpe.manager").await;
    let forged = json!({"events": [{
        "id": "01900000-0000-7000-8000-00000000f0f0", "kind": "lookup.requested",
        "occurred_at": "2026-11-23T00:00:00Z", "source": "attacker", "actor_user_id": null,
        "agency": "TPE-SW", "correlation_id": null, "subject_id": "A123456789", "payload": {}
    }]})
    .to_string();
    for path in [
        "/v1/audit/../../internal/v1/events",
        "/v1/audit/..%2F..%2Finternal/v1/events",
        "/v1/auth/login/../../internal/v1/events",
        "/v1/audit/%2e%2e/%2e%2e/internal/v1/events",
    ] {
        let status = raw_request(&t.stack.gateway_url, "POST", path, &manager, &forged).await;
        assert!(status == 400 || status == 404, "{path} answered {status}");
    }
    // The log holds identity's own events (the manager's login), but no lookup: the forged one never
    // reached it.
    let verify: Value = t.get(&manager, "/v1/audit/verify").await.json().await.unwrap();
    assert_eq!(verify["ok"], true);
    assert!(t.audit_records(&manager, "lookup.requested").await.is_empty(), "no forged event reached the audit log");
    problem(t.get(&manager, "/v1/audit/records/01900000-0000-7000-8000-00000000f0f0").await, 404).await;
    t.stack.stop().await;
}

/// Every list of identity, vendors and audit takes the same page: `limit` 1–500, anything else a 422
/// naming `limit` (the audit search clamped it silently before).
#[actix_web::test]
async fn every_list_refuses_an_out_of_range_limit_naming_it() {
    let t = TestStack::spawn().await;
    let manager = t.login("tpe.manager").await;
    let manager_id = t.user_id(&manager).await;
    for path in [
        "/v1/agencies?limit=0".to_owned(),
        "/v1/accounts?limit=501".to_owned(),
        "/v1/lending-flags?limit=-1".to_owned(),
        format!("/v1/accounts/{manager_id}/sessions?limit=0"),
        "/v1/account-applications?limit=1000".to_owned(),
        "/v1/vendors?limit=0".to_owned(),
        "/v1/audit/records?limit=501".to_owned(),
        "/v1/audit/records?limit=0&after_sequence=0".to_owned(),
    ] {
        let p = problem(t.get(&manager, &path).await, 422).await;
        assert_eq!(p["field"], "limit", "{path}");
    }
    // In range, the page holds at most that many.
    let first: Value = t.get(&manager, "/v1/accounts?limit=2").await.json().await.unwrap();
    assert_eq!(first.as_array().unwrap().len(), 2);
    let last = first[1]["user_id"].as_str().unwrap();
    let next: Value = t.get(&manager, &format!("/v1/accounts?limit=2&before={last}")).await.json().await.unwrap();
    assert!(next.as_array().unwrap().iter().all(|a| a["username"].as_str() > first[1]["username"].as_str()));
    t.stack.stop().await;
}
