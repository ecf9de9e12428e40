//! What the edge of the stack answers to browsers and proxies: the client's IP behind a trusted
//! reverse proxy (and forwarding headers ignored from anyone else), the security headers on every
//! answer of every service, a strict Content-Security-Policy on HTML, HSTS behind TLS, and CORS
//! for configured front-end origins only.

use std::net::{IpAddr, Ipv4Addr};

use immilink_shared::server::{DOCS_CSP, DOCUMENT_CSP, HSTS, MAX_BODY_BYTES};
use immilink_stack::StackConfig;
use serde_json::{json, Value};

use crate::harness::{client, permitted_lookup, problem, within, Options, TestStack, DEMO_PASSWORD};

const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The ingress of the tests that configure one: a loopback address of its own, which is registered
/// for no user (a login from it directly is refused, R-ACC-11).
const INGRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A caseworker front-end the tests allow.
const FRONT_END: &str = "https://caseworker.example.gov.tw";

fn behind_an_ingress(config: &mut StackConfig) {
    config.gateway.trusted_proxies = immilink_shared::forwarded::TrustedProxies::parse("127.0.0.2/32").expect("a CIDR");
    config.gateway.cors_allowed_origins = vec![FRONT_END.to_owned()];
}

async fn spawn_behind_an_ingress() -> TestStack {
    TestStack::spawn_with(Options { adjust: behind_an_ingress, ..Options::default() }).await
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A login of `username` (its own password and certificate) sent by `http` with extra headers.
async fn login_with_headers(
    t: &TestStack,
    http: &reqwest::Client,
    username: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http.post(t.url("/v1/auth/login")).json(&json!({
        "username": username,
        "password": DEMO_PASSWORD,
        "certificate_serial": format!("DEMO-{username}"),
    }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("gateway answers")
}

/// `GET /v1/me` with `token`, sent by `http` with extra headers.
async fn me(t: &TestStack, http: &reqwest::Client, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http.get(t.url("/v1/me")).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("gateway answers")
}

/// A record's payload, stored as canonical JSON text.
fn payload(record: &Value) -> Value {
    serde_json::from_str(record["payload"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

async fn session_of(response: reqwest::Response) -> (String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("login body");
    assert_eq!(status, 200, "login: {body}");
    let token = body["access_token"].as_str().expect("access_token").to_owned();
    (token, body["session_id"].as_str().expect("session_id").to_owned())
}

/// The IP the session was opened from, as identity recorded it in the audit log.
async fn session_ip(t: &TestStack, reader: &str, session_id: &str) -> Value {
    let record = t
        .wait_for_audit_record_of(reader, "session.opened", |r| r["correlation_id"].as_str() == Some(session_id))
        .await;
    payload(&record)["ip"].clone()
}

async fn assert_ip_mismatch(response: reqwest::Response, what: &str) {
    let p = problem(response, 401).await;
    assert!(p["detail"].as_str().unwrap_or_default().contains("ip_mismatch"), "{what}: {p}");
}

/// With no proxy trusted (the default), `X-Forwarded-For` and `Forwarded` are the client's own
/// words: a login from 127.0.0.1 claiming another address is bound to 127.0.0.1, its token works
/// from 127.0.0.1 whatever the headers claim, and from another real address no header helps.
#[actix_web::test]
async fn r_acc_11_forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let t = TestStack::spawn().await;
    let ended = within(TEST_LIMIT, async {
        let spoofed = [("x-forwarded-for", "10.9.9.9"), ("forwarded", "for=10.9.9.9")];
        let (token, session_id) = session_of(login_with_headers(&t, &t.http, "tpe.caseworker", &spoofed).await).await;
        let auditor = t.login("tpe.auditor").await;
        assert_eq!(session_ip(&t, &auditor, &session_id).await, "127.0.0.1", "bound to the TCP peer");

        // The token, bound to 127.0.0.1, still works from there, whatever address a header claims.
        for claim in [("x-forwarded-for", "127.0.0.3"), ("forwarded", "for=127.0.0.3"), ("x-forwarded-for", "junk")] {
            assert_eq!(me(&t, &t.http, &token, &[claim]).await.status(), 200, "{claim:?}");
        }
        // From another real address it is refused, even claiming the bound one.
        let elsewhere = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
        for claim in [("x-forwarded-for", "127.0.0.1"), ("forwarded", "for=127.0.0.1")] {
            assert_ip_mismatch(me(&t, &elsewhere, &token, &[claim]).await, &format!("{claim:?}")).await;
        }
        // And a login from there claiming the registered address is refused too.
        let claim = [("x-forwarded-for", "127.0.0.1")];
        problem(login_with_headers(&t, &elsewhere, "tpe.caseworker", &claim).await, 401).await;
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// With the ingress (127.0.0.2) trusted, the client it forwarded for is the one sessions are bound
/// to and checked against: a login forwarded for an unregistered address is refused (and recorded
/// with that address), one forwarded for the registered address is accepted, and its token works
/// only while the ingress forwards for that address. A forwarding header the ingress sent that
/// cannot be read is refused, not replaced by the ingress's own address.
#[actix_web::test]
async fn r_acc_11_behind_a_trusted_proxy_the_forwarded_client_is_bound_and_checked() {
    let t = spawn_behind_an_ingress().await;
    let ended = within(TEST_LIMIT, async {
        let ingress = client(Some(INGRESS));
        let auditor = t.login("tpe.auditor").await;

        let unregistered = [("x-forwarded-for", "10.9.9.9")];
        problem(login_with_headers(&t, &ingress, "tpe.caseworker", &unregistered).await, 401).await;
        let failed = t
            .wait_for_audit_record_of(&auditor, "login.failed", |r| {
                payload(r)["username"] == "tpe.caseworker" && payload(r)["ip"] == "10.9.9.9"
            })
            .await;
        assert_eq!(failed["agency"], "TPE-SW");
        // Without a forwarding header the ingress itself is the client: not registered either.
        problem(login_with_headers(&t, &ingress, "tpe.caseworker", &[]).await, 401).await;

        // What the client wrote to the left of what the ingress appended is never read. (A new
        // login ends the user's earlier session: the token kept is the last one's.)
        let rfc_7239 = [("forwarded", "for=10.9.9.9, for=127.0.0.1;proto=https")];
        let (_, session_id) = session_of(login_with_headers(&t, &ingress, "tpe.caseworker", &rfc_7239).await).await;
        assert_eq!(session_ip(&t, &auditor, &session_id).await, "127.0.0.1");
        let forwarded_for_registered = [("x-forwarded-for", "10.9.9.9, 127.0.0.1")];
        let (token, session_id) =
            session_of(login_with_headers(&t, &ingress, "tpe.caseworker", &forwarded_for_registered).await).await;
        assert_eq!(session_ip(&t, &auditor, &session_id).await, "127.0.0.1");

        // Every request is checked against the forwarded address.
        assert_eq!(me(&t, &ingress, &token, &[("x-forwarded-for", "127.0.0.1")]).await.status(), 200);
        assert_eq!(me(&t, &ingress, &token, &[("forwarded", "for=\"127.0.0.1:51234\"")]).await.status(), 200);
        assert_ip_mismatch(me(&t, &ingress, &token, &[("x-forwarded-for", "127.0.0.3")]).await, "another client").await;
        assert_ip_mismatch(me(&t, &ingress, &token, &[("x-forwarded-for", "127.0.0.1, 127.0.0.3")]).await, "chain")
            .await;
        assert_ip_mismatch(me(&t, &ingress, &token, &[]).await, "the ingress itself").await;
        // A lookup is refused the same way.
        let lookup = ingress
            .post(t.url("/v1/lookups"))
            .bearer_auth(&token)
            .header("x-forwarded-for", "127.0.0.3")
            .json(&permitted_lookup())
            .send()
            .await
            .expect("gateway answers");
        assert_ip_mismatch(lookup, "a lookup forwarded for another client").await;
        // 127.0.0.1 is no proxy: from there the peer is the client, and its claims are ignored.
        assert_eq!(me(&t, &t.http, &token, &[("x-forwarded-for", "127.0.0.3")]).await.status(), 200);

        // Unreadable forwarding from the trusted ingress: a 400 naming the header, nothing bound.
        let unreadable = [
            (("x-forwarded-for", "unknown"), "X-Forwarded-For"),
            (("x-forwarded-for", "127.0.0.1, not-an-address"), "X-Forwarded-For"),
            (("forwarded", "for=_hidden"), "Forwarded"),
            (("forwarded", "for=\"127.0.0.1"), "Forwarded"),
        ];
        for (claim, field) in unreadable {
            for response in [
                login_with_headers(&t, &ingress, "tpe.caseworker", &[claim]).await,
                me(&t, &ingress, &token, &[claim]).await,
            ] {
                let p = problem(response, 400).await;
                assert_eq!(
                    (p["code"].as_str(), p["field"].as_str()),
                    (Some("malformed_forwarding_header"), Some(field))
                );
            }
        }
        // Both headers naming different clients: one was passed through unchecked; refused.
        let conflicting = [("forwarded", "for=127.0.0.1"), ("x-forwarded-for", "10.9.9.9")];
        let p = problem(login_with_headers(&t, &ingress, "tpe.caseworker", &conflicting).await, 400).await;
        assert_eq!(p["code"], "malformed_forwarding_header", "{p}");
        let agreeing = [("forwarded", "for=127.0.0.1"), ("x-forwarded-for", "127.0.0.1")];
        assert_eq!(me(&t, &ingress, &token, &agreeing).await.status(), 200);
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// The headers every answer carries, whoever answers it and whatever it is.
fn assert_security_headers(response: &reqwest::Response, what: &str) {
    assert_eq!(header(response, "x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    assert_eq!(header(response, "referrer-policy").as_deref(), Some("no-referrer"), "{what}");
    assert_eq!(header(response, "strict-transport-security"), None, "{what}: plain HTTP, no HSTS");
}

/// `Cache-Control: no-store`, `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
/// on every answer — data, tokens, refusals of every kind — from the gateway and from each service
/// called directly; a strict CSP on HTML (the docs page may run its own scripts, printable pages
/// nothing but their styles); no HSTS over plain HTTP; no CORS unless origins are configured.
#[actix_web::test]
async fn every_answer_carries_the_security_headers_and_html_a_strict_csp() {
    let t = TestStack::spawn().await;
    let ended = within(TEST_LIMIT, async {
        let login = t.login_response(&t.http, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.caseworker").await;
        assert_eq!(header(&login, "cache-control").as_deref(), Some("no-store"), "the token answer");
        assert_security_headers(&login, "the token answer");
        let caseworker = t.login("tpe.caseworker").await;
        let auditor = t.login("tpe.auditor").await;
        let lookup = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await;
        assert!(lookup.status().is_success(), "the lookup: {}", lookup.status());

        let too_big = t
            .http
            .post(t.url("/v1/lookups"))
            .bearer_auth(&caseworker)
            .header("content-type", "application/json")
            .body(vec![b' '; MAX_BODY_BYTES + 1])
            .send()
            .await
            .expect("gateway answers");
        let bad_login = t.http.post(t.url("/v1/auth/login")).json(&json!({ "username": "x" })).send();
        let s = &t.stack;
        let answers = [
            ("a lookup's answer (personal data)", lookup, 200),
            ("the caller", t.get(&caseworker, "/v1/me").await, 200),
            ("a missing token", t.http.get(t.url("/v1/me")).send().await.expect("answers"), 401),
            ("a forged token", t.get("not-a-jwt", "/v1/me").await, 401),
            ("an unknown route", t.get(&caseworker, "/v1/nothing-here").await, 404),
            ("an invalid body", bad_login.await.expect("answers"), 422),
            ("a body over the limit", too_big, 413),
            ("the gateway's health", t.http.get(t.url("/healthz")).send().await.expect("answers"), 200),
            ("a docs asset", t.http.get(t.url("/docs/swagger-ui.css")).send().await.expect("answers"), 200),
            ("the merged document", t.http.get(t.url("/openapi.json")).send().await.expect("answers"), 200),
        ];
        for (what, response, status) in answers {
            assert_eq!(response.status(), status, "{what}");
            assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"), "{what}");
            assert_eq!(header(&response, "content-security-policy"), None, "{what}: not HTML");
            assert_security_headers(&response, what);
        }
        // Each service answers alike when called directly, refusals included (a forged service
        // token is refused by a middleware, before any handler).
        for base in [&s.identity_url, &s.broker_url, &s.audit_url, &s.vendors_url] {
            for (path, forged, status) in
                [("/healthz", false, 200), ("/v1/nothing-here", false, 404), ("/healthz", true, 401)]
            {
                let mut request = t.http.get(format!("{base}{path}"));
                if forged {
                    request = request.header("x-immilink-service-token", "forged");
                }
                let response = request.send().await.expect("service answers");
                let what = format!("{base}{path} (forged service token: {forged})");
                assert_eq!(response.status(), status, "{what}");
                assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"), "{what}");
                assert_security_headers(&response, &what);
            }
        }

        // HTML: the docs page, the compliance page and a printable document (through the gateway
        // and from the audit service directly).
        let letter = "/v1/audit/subjects/A123456789/accesses";
        let pages = [
            ("the docs page", t.http.get(t.url("/docs/")).send().await.expect("answers"), DOCS_CSP),
            ("the compliance page", t.http.get(t.url("/docs/compliance")).send().await.expect("answers"), DOCUMENT_CSP),
            (
                "a printable reply letter",
                t.http
                    .get(t.url(letter))
                    .bearer_auth(&auditor)
                    .header("accept", "text/html")
                    .send()
                    .await
                    .expect("answers"),
                DOCUMENT_CSP,
            ),
        ];
        for (what, response, policy) in pages {
            assert_eq!(response.status(), 200, "{what}");
            assert!(header(&response, "content-type").is_some_and(|t| t.starts_with("text/html")), "{what}");
            assert_eq!(header(&response, "content-security-policy").as_deref(), Some(policy), "{what}");
            assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"), "{what}");
            assert_security_headers(&response, what);
            let html = response.text().await.expect("the page");
            assert!(!html.contains("<script>"), "{what}: an inline script the policy would block");
        }
        assert!(DOCUMENT_CSP.contains("default-src 'none'") && !DOCUMENT_CSP.contains("script-src"));
        assert!(DOCS_CSP.contains("script-src 'self';") && !DOCS_CSP.contains("unsafe-eval"));

        // No origin is configured: a preflight gets no CORS answer (it is refused for want of a token).
        let preflight = t
            .http
            .request(reqwest::Method::OPTIONS, t.url("/v1/lookups"))
            .header("origin", FRONT_END)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("answers");
        assert_eq!(header(&preflight, "access-control-allow-origin"), None);
        assert_security_headers(&preflight, "a preflight without CORS");
        problem(preflight, 401).await;
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// With a front-end origin configured, its preflight is answered before authentication (no token
/// needed) with the API's methods and headers, and its requests — refusals included — carry
/// `Access-Control-Allow-Origin` and `Vary: Origin`; another origin gets no CORS header at all.
/// HSTS is sent when the trusted ingress says the client spoke HTTPS, and only then.
#[actix_web::test]
async fn cors_for_configured_origins_only_and_hsts_when_the_ingress_spoke_tls() {
    let t = spawn_behind_an_ingress().await;
    let ended = within(TEST_LIMIT, async {
        let preflight = |origin: &'static str| {
            t.http
                .request(reqwest::Method::OPTIONS, t.url("/v1/lookups"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization, content-type, x-correlation-id")
                .send()
        };
        let allowed = preflight(FRONT_END).await.expect("answers");
        assert!(allowed.status().is_success(), "answered before authentication: {}", allowed.status());
        assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some(FRONT_END));
        let methods = header(&allowed, "access-control-allow-methods").unwrap_or_default();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            assert!(methods.contains(method), "{methods}");
        }
        let headers = header(&allowed, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        for name in ["authorization", "content-type", "accept-language", "x-correlation-id"] {
            assert!(headers.contains(name), "{headers}");
        }
        assert_eq!(header(&allowed, "access-control-allow-credentials"), None, "bearer tokens, not cookies");
        assert!(header(&allowed, "x-request-id").is_some());
        assert_security_headers(&allowed, "an allowed preflight");

        let other = preflight("https://elsewhere.example").await.expect("answers");
        assert_eq!(header(&other, "access-control-allow-origin"), None);
        assert_eq!(header(&other, "access-control-allow-methods"), None);
        assert_security_headers(&other, "another origin's preflight");
        let p = problem(other, 400).await;
        assert_eq!((p["code"].as_str(), p["field"].as_str()), (Some("cors_refused"), Some("Origin")));

        // Real requests from the front-end: answers and refusals alike can be read by it.
        let token = t.login("tpe.caseworker").await;
        let from = |origin: &'static str, token: Option<&str>| {
            let mut request = t.http.get(t.url("/v1/me")).header("origin", origin);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        for (response, status) in [
            (from(FRONT_END, Some(&token)).await.expect("answers"), 200),
            (from(FRONT_END, None).await.expect("answers"), 401),
        ] {
            assert_eq!(response.status(), status);
            assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some(FRONT_END), "{status}");
            let vary = header(&response, "vary").unwrap_or_default();
            assert!(vary.split(',').any(|v| v.trim().eq_ignore_ascii_case("origin")), "{status}: vary {vary:?}");
            assert!(header(&response, "access-control-expose-headers").is_some_and(|h| h.contains("x-request-id")));
            assert_security_headers(&response, "a front-end's request");
        }
        let stranger = from("https://elsewhere.example", Some(&token)).await.expect("answers");
        assert_eq!(stranger.status(), 200, "served: CORS is for browsers to enforce");
        assert_eq!(header(&stranger, "access-control-allow-origin"), None);

        // HSTS: when the trusted ingress states HTTPS; not over plain HTTP, nor on anyone else's word.
        let ingress = client(Some(INGRESS));
        let over = |http: &reqwest::Client, proto: &'static str| {
            http.get(t.url("/v1/me"))
                .header("x-forwarded-for", "127.0.0.1")
                .header("x-forwarded-proto", proto)
                .bearer_auth(&token)
                .send()
        };
        let tls = over(&ingress, "https").await.expect("answers");
        assert_eq!(tls.status(), 200);
        assert_eq!(header(&tls, "strict-transport-security").as_deref(), Some(HSTS));
        let refused = ingress
            .get(t.url("/v1/me"))
            .header("x-forwarded-for", "127.0.0.1")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .expect("answers");
        assert_eq!(refused.status(), 401);
        assert_eq!(header(&refused, "strict-transport-security").as_deref(), Some(HSTS), "on refusals too");
        let plain = over(&ingress, "http").await.expect("answers");
        assert_eq!(header(&plain, "strict-transport-security"), None, "plain HTTP at the ingress");
        let claimed = over(&t.http, "https").await.expect("answers");
        assert_eq!(claimed.status(), 200);
        assert_eq!(header(&claimed, "strict-transport-security"), None, "an untrusted peer's claim");
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}
