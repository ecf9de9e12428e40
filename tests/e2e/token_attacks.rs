//! Token attacks (issue 15, item 4), data-driven: every forged, stale, misdirected or misplaced token
//! is presented to the gateway and to each service called directly, on a representative read and
//! write of each (internal endpoints for service tokens), and must be refused with a 401 problem
//! stating the plain message of its kind (nothing the JWT library said), and leave nothing behind.
//!
//! Tokens with claims identity never issues (expired, not yet valid, another issuer or audience, an
//! unknown `kid`) are signed with identity's real key, so each verifier is shown to check the claim
//! itself and not only the signature. One stack serves every case.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::Duration;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use immilink_shared::clock::{ManualClock, SharedClock};
use immilink_stack::identity::domain::demo::demo_national_id_of;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{client, permitted_lookup, Options, TestStack};
use crate::sessions::LIBRARY_WORDING;

// The plain message of each kind of refusal (the problem's `detail`).
const MALFORMED: &str = "the token is malformed";
const WRONG_ALGORITHM: &str = "the token is not signed with the algorithm immilink uses";
const UNKNOWN_KEY: &str = "the token was signed by an unknown key";
const BAD_SIGNATURE: &str = "the token's signature is not valid";
const EXPIRED: &str = "the token has expired";
const NOT_YET_VALID: &str = "the token is not valid yet";
const WRONG_ISSUER: &str = "the token was not issued by immilink";
const WRONG_AUDIENCE: &str = "the token is not meant for immilink";
const NOT_A_USER_TOKEN: &str = "the token is not a user's access token";
const NOT_A_SERVICE_TOKEN: &str = "the token is not a service token";

/// How a case must be refused: status, problem code and the plain message (`detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: u16,
    code: &'static str,
    detail: String,
}

impl Refusal {
    fn unauthenticated(detail: impl Into<String>) -> Self {
        Self { status: 401, code: "unauthenticated", detail: detail.into() }
    }
}

fn session_ended(reason: &str) -> String {
    format!("the session has ended ({reason}); log in again")
}

/// Where a token is presented: as a user's bearer token, or as the service token of an internal call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Bearer,
    Service,
}

/// One attack: a token, where it is presented, and the plain message its refusal must state.
struct Attack {
    name: String,
    slot: Slot,
    token: String,
    /// The refusal's `detail` (for a service token, after "the service token is refused: ").
    expected: String,
    /// Presented from 127.0.0.2, an address the session is not bound to (R-ACC-11).
    elsewhere: bool,
}

impl Attack {
    fn new(slot: Slot, name: impl Into<String>, token: impl Into<String>, expected: impl Into<String>) -> Self {
        Self { name: name.into(), slot, token: token.into(), expected: expected.into(), elsewhere: false }
    }
}

/// A representative request at one target: a read, or a write whose effect would show if it ran.
struct Probe {
    target: &'static str,
    method: Method,
    url: String,
    body: Option<Value>,
}

impl Probe {
    fn new(target: &'static str, method: Method, url: String, body: Option<Value>) -> Self {
        Self { target, method, url, body }
    }

    /// How the refusal of `attack` here must read. The gateway is no service's callee: whatever a
    /// client presents as a service token there is refused unread (403 `internal_only`), before any
    /// route, like every call of a service that takes no service calls.
    fn expected(&self, attack: &Attack) -> Refusal {
        match (attack.slot, self.target) {
            (Slot::Bearer, _) => Refusal::unauthenticated(attack.expected.clone()),
            (Slot::Service, "gateway") => {
                Refusal { status: 403, code: "internal_only", detail: "this service accepts no service calls".into() }
            }
            (Slot::Service, _) => {
                Refusal::unauthenticated(format!("the service token is refused: {}", attack.expected))
            }
        }
    }

    async fn present(&self, http: &reqwest::Client, slot: Slot, token: &str) -> reqwest::Response {
        let mut request = http.request(self.method.clone(), &self.url);
        request = match slot {
            Slot::Bearer => request.bearer_auth(token),
            Slot::Service => request.header("x-immilink-service-token", token),
        };
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        request.send().await.expect("the target answers")
    }

    fn label(&self) -> String {
        format!("{} {} {}", self.target, self.method, self.url.split_once("/v1").map_or("", |(_, path)| path))
    }
}

/// Checks a refusal: its status, a problem+json (a 401 with the Bearer challenge), its code, the
/// expected plain message and nothing of the JWT library's wording.
async fn refusal(response: reqwest::Response, expected: &Refusal) -> Result<(), String> {
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (content_type, challenge) = (header("content-type"), header("www-authenticate"));
    let body = response.text().await.unwrap_or_default();
    if status != expected.status {
        return Err(format!("answered {status}: {body}"));
    }
    if content_type != "application/problem+json" {
        return Err(format!("content type {content_type:?}: {body}"));
    }
    if status == 401 && !challenge.starts_with("Bearer") {
        return Err(format!("no Bearer challenge ({challenge:?})"));
    }
    let problem: Value = serde_json::from_str(&body).map_err(|_| format!("not JSON: {body}"))?;
    if problem["code"] != expected.code || problem["status"] != status {
        return Err(format!("code or status of the problem: {problem}"));
    }
    if problem["detail"] != expected.detail.as_str() {
        return Err(format!("said {}, expected {:?}", problem["detail"], expected.detail));
    }
    if let Some(wording) = LIBRARY_WORDING.iter().find(|wording| body.contains(*wording)) {
        return Err(format!("shows the library's {wording:?}: {body}"));
    }
    Ok(())
}

// --- forging --------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn encode_part(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("a JSON part")
}

/// `claims` with `changes` applied; a `null` change removes the claim.
fn with(claims: &Value, changes: Value) -> Value {
    let mut claims = claims.clone();
    for (name, value) in changes.as_object().expect("changes are an object") {
        match value {
            Value::Null => claims.as_object_mut().expect("claims are an object").remove(name),
            value => claims.as_object_mut().expect("claims are an object").insert(name.clone(), value.clone()),
        };
    }
    claims
}

/// The signing keys an attack may use: identity's own (to make genuinely signed tokens with claims
/// identity never issues) and a stranger's.
struct Keys {
    identity: SigningKey,
    kid: String,
    /// The public key as the JWKS publishes it (`x`).
    jwk_x: String,
    stranger: SigningKey,
}

impl Keys {
    /// A token with exactly this header and these claims, signed (Ed25519) with `key`.
    fn sign_with(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", encode_part(header), encode_part(claims));
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    /// As identity would sign it: EdDSA, its `kid`.
    fn identity_signs(&self, claims: &Value) -> String {
        Self::sign_with(&self.identity, &json!({"typ": "JWT", "alg": "EdDSA", "kid": self.kid}), claims)
    }

    /// HS256 with `secret` as the HMAC key, and identity's `kid`: the algorithm confusion.
    fn hs256(&self, secret: &[u8], claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(secret)).expect("HS256")
    }

    /// The public key as a PEM SubjectPublicKeyInfo, what an algorithm-confusion attack feeds HMAC.
    fn public_pem(&self) -> String {
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend_from_slice(self.identity.verifying_key().as_bytes());
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }
}

/// Every attack on one kind of token, derived from a genuine one of that kind: forged algorithms,
/// claims identity never issues (signed with its real key), unknown keys, and tampering that keeps
/// the original signature. `tamperings` are claim changes that would raise the holder's rights;
/// `foreign_signature` is the signature of another genuine token.
fn forgeries(
    keys: &Keys,
    slot: Slot,
    genuine: &str,
    tamperings: &[(&str, Value)],
    foreign_signature: &str,
) -> Vec<Attack> {
    let header = decode_part(genuine, 0);
    let claims = decode_part(genuine, 1);
    let parts: Vec<&str> = genuine.split('.').collect();
    let (header_part, payload_part, signature) = (parts[0], parts[1], parts[2]);
    let now = chrono::Utc::now().timestamp();
    let kid = keys.kid.as_str();
    let attack = |name: &str, token: String, expected: &str| Attack::new(slot, name, token, expected);
    let unsigned = |alg: &str, signature: &str| {
        format!("{}.{payload_part}.{signature}", encode_part(&json!({"typ": "JWT", "alg": alg, "kid": kid})))
    };
    let stranger_x = b64(keys.stranger.verifying_key().as_bytes());
    let raw_public = keys.identity.verifying_key().to_bytes();

    let mut attacks = vec![
        // alg none, in its spellings, with no signature and with the original one kept.
        attack("alg none, no signature", unsigned("none", ""), MALFORMED),
        attack("alg None, original signature kept", unsigned("None", signature), MALFORMED),
        attack("alg NONE, no signature", unsigned("NONE", ""), MALFORMED),
        // HS256 keyed with the public key, as a client can fetch it.
        attack("HS256 keyed with the JWKS's x", keys.hs256(keys.jwk_x.as_bytes(), &claims), WRONG_ALGORITHM),
        attack("HS256 keyed with the raw public key", keys.hs256(&raw_public, &claims), WRONG_ALGORITHM),
        attack(
            "HS256 keyed with the public key's PEM",
            keys.hs256(keys.public_pem().as_bytes(), &claims),
            WRONG_ALGORITHM,
        ),
        attack(
            "RS256 header over an EdDSA signature",
            Keys::sign_with(&keys.identity, &json!({"typ": "JWT", "alg": "RS256", "kid": kid}), &claims),
            WRONG_ALGORITHM,
        ),
        // Genuinely signed, with claims identity never issues.
        attack("expired a minute ago", keys.identity_signs(&with(&claims, json!({"exp": now - 60}))), EXPIRED),
        attack(
            "not valid for ten minutes (nbf)",
            keys.identity_signs(&with(&claims, json!({"nbf": now + 600}))),
            NOT_YET_VALID,
        ),
        attack(
            "issued by another issuer",
            keys.identity_signs(&with(&claims, json!({"iss": "https://idp.example.com"}))),
            WRONG_ISSUER,
        ),
        attack("no issuer", keys.identity_signs(&with(&claims, json!({"iss": null}))), MALFORMED),
        attack(
            "meant for another audience",
            keys.identity_signs(&with(&claims, json!({"aud": "another-system"}))),
            WRONG_AUDIENCE,
        ),
        attack("no audience", keys.identity_signs(&with(&claims, json!({"aud": null}))), MALFORMED),
        attack("no expiry", keys.identity_signs(&with(&claims, json!({"exp": null}))), MALFORMED),
        // Keys the verifiers do not hold, or were not told of.
        attack(
            "unknown kid, signed with identity's key",
            Keys::sign_with(&keys.identity, &json!({"typ": "JWT", "alg": "EdDSA", "kid": "0123456789abcdef"}), &claims),
            UNKNOWN_KEY,
        ),
        attack(
            "kid of a path",
            Keys::sign_with(
                &keys.identity,
                &json!({"typ": "JWT", "alg": "EdDSA", "kid": "../../signing.pk8"}),
                &claims,
            ),
            UNKNOWN_KEY,
        ),
        attack("no kid", Keys::sign_with(&keys.identity, &json!({"typ": "JWT", "alg": "EdDSA"}), &claims), MALFORMED),
        attack(
            "a stranger's key under identity's kid",
            Keys::sign_with(&keys.stranger, &header, &claims),
            BAD_SIGNATURE,
        ),
        attack(
            "a stranger's key embedded in the header (jwk)",
            Keys::sign_with(
                &keys.stranger,
                &json!({"typ": "JWT", "alg": "EdDSA", "kid": kid,
                        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": stranger_x, "kid": kid}}),
                &claims,
            ),
            BAD_SIGNATURE,
        ),
        attack(
            "a stranger's key by URL (jku)",
            Keys::sign_with(
                &keys.stranger,
                &json!({"typ": "JWT", "alg": "EdDSA", "kid": "stranger", "jku": "http://127.0.0.1:9/jwks.json"}),
                &claims,
            ),
            UNKNOWN_KEY,
        ),
        // Tampering that keeps the original signature.
        attack(
            "tampered header (typ), signature kept",
            format!("{}.{payload_part}.{signature}", encode_part(&with(&header, json!({"typ": "at+jwt"})))),
            BAD_SIGNATURE,
        ),
        attack(
            "tampered payload: expiry a day later, signature kept",
            format!("{header_part}.{}.{signature}", encode_part(&with(&claims, json!({"exp": now + 86_400})))),
            BAD_SIGNATURE,
        ),
        attack("signature stripped", format!("{header_part}.{payload_part}."), BAD_SIGNATURE),
        attack(
            "another genuine token's signature",
            format!("{header_part}.{payload_part}.{foreign_signature}"),
            BAD_SIGNATURE,
        ),
        attack("an extra segment", format!("{genuine}.{signature}"), MALFORMED),
    ];
    for (name, changes) in tamperings {
        attacks.push(attack(
            &format!("tampered payload: {name}, signature kept"),
            format!("{header_part}.{}.{signature}", encode_part(&with(&claims, changes.clone()))),
            BAD_SIGNATURE,
        ));
    }
    attacks
}

// --- the suite ------------------------------------------------------------------------------------

/// Every token attack of issue 15 item 4, against the gateway and each service directly, on a read
/// and a write of each: forged algorithms (none, HS256 keyed with the public key), expired, not yet
/// valid, wrong issuer or audience, unknown kid, tampered payload or header, a service token where a
/// user's belongs and the reverse, tokens of sessions ended by logout (replayed after it), by
/// suspension and by idleness, and a live token presented from another IP. Each is a 401 problem
/// with its plain message (at the gateway, which takes no service calls, a token in the service
/// token's place is a 403 `internal_only`); afterwards no lookup reached the upstream, no vendor,
/// hold, audit record or personnel change was made, and the victim's session still works from its
/// own address.
#[actix_web::test]
async fn every_token_attack_is_refused_everywhere_and_changes_nothing() {
    // A clock of identity's own: one session is left idle by moving it past the idle timeout.
    let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now()));
    let shared: SharedClock = clock.clone();
    let t = TestStack::spawn_with(Options { clock: shared, ..Options::default() }).await;
    let s = &t.stack;
    let elsewhere = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));

    let victim_national_id = demo_national_id_of("tpe.caseworker").expect("the caseworker's demo national ID");
    let forged_event_id = uuid::Uuid::now_v7().to_string();
    let bearer_probes = [
        Probe::new("gateway", Method::GET, format!("{}/v1/me", s.gateway_url), None),
        Probe::new("gateway", Method::POST, format!("{}/v1/lookups", s.gateway_url), Some(permitted_lookup())),
        Probe::new("gateway", Method::POST, format!("{}/v1/auth/logout", s.gateway_url), None),
        Probe::new("identity", Method::GET, format!("{}/v1/me", s.identity_url), None),
        Probe::new("identity", Method::POST, format!("{}/v1/auth/logout", s.identity_url), None),
        Probe::new("broker", Method::GET, format!("{}/v1/batches", s.broker_url), None),
        Probe::new("broker", Method::POST, format!("{}/v1/lookups", s.broker_url), Some(permitted_lookup())),
        Probe::new("audit", Method::GET, format!("{}/v1/audit/records", s.audit_url), None),
        Probe::new(
            "audit",
            Method::POST,
            format!("{}/v1/audit/holds", s.audit_url),
            Some(json!({"subject_id": "A123456789", "reason": "token attack"})),
        ),
        Probe::new("vendors", Method::GET, format!("{}/v1/vendors", s.vendors_url), None),
        Probe::new(
            "vendors",
            Method::POST,
            format!("{}/v1/vendors", s.vendors_url),
            Some(json!({"name": "偽造資訊股份有限公司", "business_number": "22099131"})),
        ),
    ];

    // 1. A session left idle: used everywhere, then the clock moves past the idle timeout.
    let idle = t.login("tpe.it").await;
    for probe in bearer_probes.iter().filter(|p| p.method == Method::GET) {
        let status = probe.present(&t.http, Slot::Bearer, &idle).await.status();
        assert_ne!(status, 401, "before it idles, {} admits the session", probe.label());
    }
    clock.advance(Duration::minutes(16));

    // 2. The victim (a live session), a session to log out, one to suspend, and the readers of
    //    what an attack could have changed.
    let victim = t.login("tpe.caseworker").await;
    let logged_out = t.login("tpe.supervisor").await;
    let suspended = t.login("tpe.auditor").await;
    let manager = t.login("tpe.manager").await;
    let vendor_manager = t.login("tpe.vendors").await;
    let reviewer = t.login("nia.reviewer").await;
    let victim_id = t.user_id(&victim).await;
    let manager_id = t.user_id(&manager).await;
    let suspended_id = t.user_id(&suspended).await;

    // The read probes admit a genuine token (their refusals below are the attacks', not the route's),
    // and the victim's and the soon-ended sessions are now known to every holder's cache.
    for token in [&victim, &logged_out, &suspended] {
        for probe in bearer_probes.iter().filter(|p| p.method == Method::GET) {
            let status = probe.present(&t.http, Slot::Bearer, token).await.status();
            assert_ne!(status, 401, "{} admits a genuine token", probe.label());
        }
    }
    let logout = t.http.post(t.url("/v1/auth/logout")).bearer_auth(&logged_out).send().await.expect("logout");
    assert_eq!(logout.status(), 204, "logout");
    let suspension =
        t.post(&manager, &format!("/v1/accounts/{suspended_id}/suspension"), &json!({"reason": "帳號出借調查"})).await;
    assert_eq!(suspension.status(), 200, "suspension");
    // Past every holder's liveness cache (R-ACC-10 bounds a revocation by it).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    // 3. A service token as the broker gets one (its own credential), and the service-slot probes:
    //    internal endpoints of each service (writes where there are), the gateway's and the broker's
    //    public reads.
    let issued = t
        .http
        .post(format!("{}/internal/v1/service-tokens", s.identity_url))
        .header("x-immilink-service-credential", format!("broker:{}", t.broker_secret.expose()))
        .send()
        .await
        .expect("identity answers");
    assert_eq!(issued.status(), 200, "a service token for the broker");
    let service_token =
        issued.json::<Value>().await.expect("issued token")["token"].as_str().expect("token").to_owned();
    let service_probes = [
        Probe::new("gateway", Method::GET, format!("{}/v1/me", s.gateway_url), None),
        Probe::new(
            "identity",
            Method::POST,
            format!("{}/internal/v1/personnel-events", s.identity_url),
            Some(json!({"id": uuid::Uuid::now_v7().to_string(), "kind": "offboarded",
                        "national_id": victim_national_id, "agency": "TPE-SW", "vendor_id": "forged",
                        "person_id": "forged", "reason": "departure"})),
        ),
        Probe::new("identity", Method::GET, format!("{}/internal/v1/users/{victim_id}", s.identity_url), None),
        Probe::new("broker", Method::GET, format!("{}/v1/batches", s.broker_url), None),
        Probe::new(
            "audit",
            Method::POST,
            format!("{}/internal/v1/events", s.audit_url),
            Some(json!({"events": [{
                "id": forged_event_id, "kind": "lookup.completed", "occurred_at": chrono::Utc::now(),
                "source": "broker", "actor_user_id": victim_id, "agency": "TPE-SW",
                "correlation_id": null, "subject_id": "A123456789", "payload": {"forged": true}}]})),
        ),
        Probe::new(
            "vendors",
            Method::POST,
            format!("{}/internal/v1/personnel/lookup", s.vendors_url),
            Some(json!({"national_id": "A123456789"})),
        ),
    ];
    // The genuine broker token gets past authentication where it is a service token's place.
    let admitted = service_probes[2].present(&t.http, Slot::Service, &service_token).await;
    assert_eq!(admitted.status(), 200, "the broker reads a user summary at identity");

    // 4. The attacks.
    let seed = SigningKey::from_pkcs8_der(&t.signing_key_der()).expect("identity's PKCS#8 Ed25519 key");
    let jwks: Value =
        t.http.get(t.url("/.well-known/jwks.json")).send().await.expect("jwks").json().await.expect("a JWK set");
    let keys = Keys {
        identity: seed,
        kid: jwks["keys"][0]["kid"].as_str().expect("kid").to_owned(),
        jwk_x: jwks["keys"][0]["x"].as_str().expect("x").to_owned(),
        stranger: SigningKey::generate(&mut rand::rngs::OsRng),
    };
    assert_eq!(
        keys.jwk_x,
        b64(keys.identity.verifying_key().as_bytes()),
        "the key the harness holds is the one identity publishes"
    );
    // Signed here as identity signs, the victim's own claims are admitted: what the attacks below
    // change is what gets them refused.
    let resigned = keys.identity_signs(&decode_part(&victim, 1));
    assert_eq!(t.get(&resigned, "/v1/me").await.status(), 200, "a token signed as identity signs is admitted");

    let signature_of = |token: &str| token.rsplit('.').next().expect("a signature").to_owned();
    let all_roles: Vec<&str> = immilink_shared::auth::roles::ALL.to_vec();
    let mut attacks = forgeries(
        &keys,
        Slot::Bearer,
        &victim,
        &[
            ("every role", json!({"roles": all_roles})),
            ("another user (the account manager)", json!({"sub": manager_id})),
            ("another agency", json!({"agency": "NIA"})),
        ],
        &signature_of(&logged_out),
    );
    attacks.extend(forgeries(
        &keys,
        Slot::Service,
        &service_token,
        &[("the identity service", json!({"sub": "identity"})), ("the vendors service", json!({"sub": "vendors"}))],
        &signature_of(&victim),
    ));
    attacks.extend([
        Attack::new(Slot::Bearer, "a service token as a user's", service_token.clone(), NOT_A_USER_TOKEN),
        Attack::new(Slot::Service, "a user's token as a service token", victim.clone(), NOT_A_SERVICE_TOKEN),
        Attack::new(Slot::Bearer, "replayed after logout", logged_out.clone(), session_ended("logout")),
        Attack::new(Slot::Bearer, "of a suspended account", suspended.clone(), session_ended("account_suspended")),
        Attack::new(Slot::Bearer, "of an idle session", idle.clone(), session_ended("idle_timeout")),
        Attack {
            elsewhere: true,
            ..Attack::new(Slot::Bearer, "from another IP", victim.clone(), session_ended("ip_mismatch"))
        },
        Attack {
            elsewhere: true,
            ..Attack::new(
                Slot::Bearer,
                "replayed after logout from another IP",
                logged_out.clone(),
                session_ended("logout"),
            )
        },
    ]);

    let before = Effects::read(&t, &vendor_manager, &reviewer).await;
    let started = Instant::now();
    let (mut tried, mut refused, mut server_errors) = (0, 0, 0);
    let mut failures = Vec::new();
    for attack in &attacks {
        let http = if attack.elsewhere { &elsewhere } else { &t.http };
        let probes: &[Probe] = match attack.slot {
            Slot::Bearer => &bearer_probes,
            Slot::Service => &service_probes,
        };
        for probe in probes {
            tried += 1;
            let response = probe.present(http, attack.slot, &attack.token).await;
            refused += usize::from(response.status().is_client_error());
            server_errors += usize::from(response.status().is_server_error());
            if let Err(why) = refusal(response, &probe.expected(attack)).await {
                failures.push(format!("{:?} {} × {}: {why}", attack.slot, attack.name, probe.label()));
            }
        }
    }
    let elapsed = started.elapsed();

    // 5. Nothing happened: no lookup reached the upstream, no vendor or hold was made, the forged
    //    audit event is not in the log, and the victim's session (its account not offboarded, not
    //    logged out from elsewhere) still works from its own address.
    let after = Effects::read(&t, &vendor_manager, &reviewer).await;
    if after != before {
        failures.push(format!("side effects: before {before:?}, after {after:?}"));
    }
    let forged = t.get(&reviewer, &format!("/v1/audit/records/{forged_event_id}")).await.status();
    if forged != 404 {
        failures.push(format!("side effects: the forged audit event is in the log ({forged})"));
    }
    for url in [t.url("/v1/me"), format!("{}/v1/me", s.identity_url)] {
        let status = t.http.get(&url).bearer_auth(&victim).send().await.expect("victim's request").status();
        if status != 200 {
            failures.push(format!("side effects: the victim's session no longer works at {url} ({status})"));
        }
    }

    println!(
        "token attacks: {} attacks, {tried} cases (attack × target) tried, {refused} refused, \
         {server_errors} 5xx, {} not as expected, in {elapsed:?}",
        attacks.len(),
        failures.len()
    );
    t.stack.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {tried} cases were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What an admitted attack would have changed, as legitimate readers see it.
#[derive(Debug, PartialEq, Eq)]
struct Effects {
    upstream_calls: usize,
    vendors: usize,
    holds: usize,
}

impl Effects {
    async fn read(t: &TestStack, vendor_manager: &str, reviewer: &str) -> Self {
        let count = |response: reqwest::Response| async move {
            assert_eq!(response.status(), 200, "reading {}", response.url());
            response.json::<Value>().await.expect("a list").as_array().map_or(0, Vec::len)
        };
        Self {
            upstream_calls: t.nia_calls().await.len(),
            vendors: count(t.get(vendor_manager, "/v1/vendors").await).await,
            holds: count(t.get(reviewer, "/v1/audit/holds").await).await,
        }
    }
}
