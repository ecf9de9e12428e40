//! Login, tokens and sessions through the gateway.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use base64::Engine;
use chrono::Duration;
use immilink_shared::clock::ManualClock;
use serde_json::Value;

use crate::harness::{client, problem, Options, TestStack, DEMO_PASSWORD};

#[actix_web::test]
async fn login_issues_a_bearer_token_tied_to_a_session() {
    let t = TestStack::spawn().await;
    let response = t.login_response(&t.http, "hln.clerk", DEMO_PASSWORD, "DEMO-hln.clerk").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    let claims = decode_claims(token);
    assert_eq!(claims["sid"], body["session_id"]);
    assert_eq!(claims["agency"], "HLN-HR");
    assert_eq!(claims["roles"], serde_json::json!(["caseworker"]));
    let me: Value = t.get(token, "/v1/me").await.json().await.unwrap();
    assert_eq!(me["username"], "hln.clerk");
    t.stack.stop().await;
}

fn decode_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[actix_web::test]
async fn every_login_refusal_has_the_same_shape() {
    let t = TestStack::spawn().await;
    let attempts = [
        ("nobody", DEMO_PASSWORD, "DEMO-nobody"),
        ("tpe.caseworker", "wrong-password", "DEMO-tpe.caseworker"),
        ("tpe.caseworker", DEMO_PASSWORD, "DEMO-someone-else"),
    ];
    let mut shapes = Vec::new();
    for (username, password, certificate) in attempts {
        let p = problem(t.login_response(&t.http, username, password, certificate).await, 401).await;
        shapes.push((p["code"].clone(), p["title"].clone(), p["detail"].clone()));
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    let p = problem(
        t.http.post(t.url("/v1/auth/login")).json(&serde_json::json!({"username": "x"})).send().await.unwrap(),
        422,
    )
    .await;
    assert_eq!(p["field"], "password");
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_03_login_requires_the_bound_certificate_serial() {
    let t = TestStack::spawn().await;
    let wrong = t.login_response(&t.http, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.manager").await;
    assert_eq!(wrong.status(), 401);
    let right = t.login_response(&t.http, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.caseworker").await;
    assert_eq!(right.status(), 200);
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_11_login_and_requests_from_an_unregistered_ip_are_refused() {
    let t = TestStack::spawn().await;
    let elsewhere = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    let refused = t.login_response(&elsewhere, "tpe.caseworker", DEMO_PASSWORD, "DEMO-tpe.caseworker").await;
    problem(refused, 401).await;
    // A token obtained from the registered IP does not work from another one.
    let token = t.login("tpe.caseworker").await;
    let response = elsewhere.get(t.url("/v1/me")).bearer_auth(&token).send().await.unwrap();
    let p = problem(response, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("ip_mismatch"), "{p}");
    t.stack.stop().await;
}

#[actix_web::test]
async fn gateway_refuses_missing_malformed_and_forged_tokens_with_401_problem() {
    let t = TestStack::spawn().await;
    let missing = t.http.get(t.url("/v1/me")).send().await.unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    problem(missing, 401).await;
    problem(t.get("not-a-jwt", "/v1/me").await, 401).await;

    // Same claims and kid, signed with another key.
    let genuine = t.login("tpe.caseworker").await;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(genuine.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    let forged = sign_with_a_stranger_key(&decode_claims(&genuine), header["kid"].as_str().unwrap());
    problem(t.get(&forged, "/v1/me").await, 401).await;
    problem(t.post(&forged, "/v1/lookups", &crate::harness::permitted_lookup()).await, 401).await;
    t.stack.stop().await;
}

fn sign_with_a_stranger_key(claims: &Value, kid: &str) -> String {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let der = stranger.to_pkcs8_der().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

#[actix_web::test]
async fn gateway_refuses_an_expired_token() {
    // Identity's clock is an hour behind: the token it issues expired 45 minutes ago in real time.
    let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now() - Duration::hours(1)));
    let t = TestStack::spawn_with(Options { clock, ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    let p = problem(t.get(&token, "/v1/me").await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    t.stack.stop().await;
}

/// What the JWT library says of refused tokens; none of it may reach a client.
pub(crate) const LIBRARY_WORDING: &[&str] =
    &["InvalidSignature", "Base64", "Invalid last symbol", "offset", "unexpected algorithm", "Json", "Error"];

fn encode_part(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A tampered, a base64-broken, an alg-swapped and an expired token are each refused with the plain
/// message of their kind, by the gateway and by services called directly; the library's wording of
/// the failure is logged, never answered.
#[actix_web::test]
async fn token_refusals_name_their_kind_without_library_internals() {
    // Identity's clock is an hour behind: every token it issues has already expired in real time.
    let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now() - Duration::hours(1)));
    let t = TestStack::spawn_with(Options { clock, ..Options::default() }).await;
    let expired = t.login("tpe.caseworker").await;
    let parts: Vec<&str> = expired.split('.').collect();

    let mut claims = decode_claims(&expired);
    claims["roles"] = serde_json::json!(["account_manager"]);
    let tampered = format!("{}.{}.{}", parts[0], encode_part(&claims), parts[2]);
    // The last of a signature's 86 base64url symbols carries 2 bits; '8' sets others too.
    let base64_broken = format!("{}8", &expired[..expired.len() - 1]);
    // HS256 "signed" with identity's public key, the classic algorithm confusion.
    let jwks: Value = t.http.get(t.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let public_key = jwks["keys"][0]["x"].as_str().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = jwks["keys"][0]["kid"].as_str().map(str::to_owned);
    let alg_swapped = jsonwebtoken::encode(
        &header,
        &decode_claims(&expired),
        &jsonwebtoken::EncodingKey::from_secret(public_key.as_bytes()),
    )
    .unwrap();

    let cases = [
        (tampered, "the token's signature is not valid"),
        (base64_broken, "the token is malformed"),
        (alg_swapped, "the token is not signed with the algorithm immilink uses"),
        (expired, "the token has expired"),
    ];
    let s = &t.stack;
    let targets = [
        format!("{}/v1/me", s.gateway_url),
        format!("{}/v1/catalogue/purposes", s.gateway_url),
        format!("{}/v1/me", s.identity_url),
        format!("{}/v1/catalogue/purposes", s.broker_url),
        format!("{}/v1/audit/verify", s.audit_url),
        format!("{}/v1/vendors", s.vendors_url),
    ];
    for url in &targets {
        for (token, expected) in &cases {
            let response = t.http.get(url).bearer_auth(token).send().await.unwrap();
            let p = problem(response, 401).await;
            let detail = p["detail"].as_str().unwrap();
            assert_eq!(detail, *expected, "{url}");
            for wording in LIBRARY_WORDING {
                assert!(!p.to_string().contains(wording), "{url}: {p}");
            }
        }
    }
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_10_logged_out_token_is_refused_at_once() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    assert_eq!(t.get(&token, "/v1/me").await.status(), 200);
    let logout = t.http.post(t.url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    // Refused by the gateway (even within its liveness cache window) and by the services behind it.
    problem(t.get(&token, "/v1/me").await, 401).await;
    problem(t.post(&token, "/v1/lookups", &crate::harness::permitted_lookup()).await, 401).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_acc_10_idle_session_ends() {
    let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now()));
    let t = TestStack::spawn_with(Options { clock: clock.clone(), ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    assert_eq!(t.get(&token, "/v1/me").await.status(), 200);
    clock.advance(Duration::minutes(16));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await; // past the gateway's liveness cache
    let p = problem(t.get(&token, "/v1/me").await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("idle_timeout"), "{p}");
    t.stack.stop().await;
}

/// Internal calls carry a service token naming the calling service; each internal endpoint admits
/// only the services it serves, so being on the network (or holding a user token) is not enough.
#[actix_web::test]
async fn service_tokens_name_the_caller_and_internal_endpoints_admit_only_their_callers() {
    let t = TestStack::spawn().await;
    let issue = |credential: String| {
        t.http
            .post(format!("{}/internal/v1/service-tokens", t.stack.identity_url))
            .header("x-immilink-service-credential", credential)
            .send()
    };
    problem(issue("broker:not-the-secret".into()).await.unwrap(), 401).await;
    problem(issue("stranger:whatever".into()).await.unwrap(), 401).await;
    let issued: Value = issue(format!("broker:{}", t.broker_secret.expose())).await.unwrap().json().await.unwrap();
    let broker_token = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["expires_in"], 300);

    let lookup = |token: Option<String>| {
        let mut request = t
            .http
            .post(format!("{}/internal/v1/personnel/lookup", t.stack.vendors_url))
            .json(&serde_json::json!({ "national_id": "A123456789" }));
        if let Some(token) = token {
            request = request.header("x-immilink-service-token", token);
        }
        request.send()
    };
    // No token, the broker's token (vendors answers identity only), a user's token in its place.
    assert_eq!(problem(lookup(None).await.unwrap(), 403).await["code"], "internal_only");
    assert_eq!(problem(lookup(Some(broker_token.clone())).await.unwrap(), 403).await["code"], "service_not_permitted");
    let user = t.login("tpe.caseworker").await;
    problem(lookup(Some(user)).await.unwrap(), 401).await;

    // The broker's token is what audit's event intake admits.
    let events = t
        .http
        .post(format!("{}/internal/v1/events", t.stack.audit_url))
        .header("x-immilink-service-token", &broker_token)
        .json(&serde_json::json!({ "events": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    t.stack.stop().await;
}
