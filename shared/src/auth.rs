//! Access tokens: identity signs them (EdDSA, `kid` in the header); everyone else verifies them with the
//! public keys identity serves at `/.well-known/jwks.json`. The gateway additionally checks that the
//! token's session is still live; services verify signature, issuer, audience and expiry themselves so
//! no service trusts a request just for having reached it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Secret, ServiceSettings};
use crate::context::{SERVICE_CREDENTIAL, SERVICE_TOKEN, SERVICE_TOKEN_NAME};
use crate::problem::ApiError;
use crate::typed::{AgencyCode, SessionId, UnitId, UserId};

pub const ISSUER: &str = "immilink-identity";

/// The roles of SPEC "Actors". A token carries the ones its user holds.
pub mod roles {
    pub const CASEWORKER: &str = "caseworker";
    pub const UNIT_SUPERVISOR: &str = "unit_supervisor";
    pub const ACCOUNT_MANAGER: &str = "account_manager";
    pub const AGENCY_HEAD: &str = "agency_head";
    pub const ETHICS_OFFICER: &str = "ethics_officer";
    pub const IT_OFFICER: &str = "it_officer";
    pub const NIA_REVIEWER: &str = "nia_reviewer";
    pub const VENDOR_MANAGER: &str = "vendor_manager";
    pub const AUDITOR: &str = "auditor";
    /// Contractor personnel with an account (R-VEN-08): maintenance, incident reports and device
    /// attestations only; never a lookup permission.
    pub const VENDOR_STAFF: &str = "vendor_staff";

    pub const ALL: [&str; 10] = [
        CASEWORKER,
        UNIT_SUPERVISOR,
        ACCOUNT_MANAGER,
        AGENCY_HEAD,
        ETHICS_OFFICER,
        IT_OFFICER,
        NIA_REVIEWER,
        VENDOR_MANAGER,
        AUDITOR,
        VENDOR_STAFF,
    ];
}
pub const AUDIENCE: &str = "immilink";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id; the token is only good while this session is live.
    pub sid: String,
    /// Agency code, e.g. `TPE-SW`.
    pub agency: String,
    /// Unit id within the agency.
    pub unit: Option<String>,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

impl AccessClaims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// 403 unless the caller holds one of `roles`.
    pub fn require_any_role(&self, roles: &[&str]) -> Result<(), ApiError> {
        if roles.iter().any(|role| self.has_role(role)) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "role_required",
                format!("this action needs one of the roles: {}", roles.join(", ")),
            ))
        }
    }
}

/// The authenticated user a domain function acts for, as their access token states them, with typed
/// ids. Built once per request from the verified claims ([`Caller::from`]); domain functions take it
/// instead of the claims, so they know nothing of tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub agency: AgencyCode,
    /// The unit within the agency, for users who belong to one.
    pub unit: Option<UnitId>,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_any(&self, roles: &[&str]) -> bool {
        roles.iter().any(|role| self.has(role))
    }

    /// Whether the caller holds `role` in `unit` of their agency.
    pub fn is_in_unit_as(&self, role: &str, unit: Option<&UnitId>) -> bool {
        self.has(role) && unit.is_some() && self.unit.as_ref() == unit
    }
}

impl From<&AccessClaims> for Caller {
    fn from(claims: &AccessClaims) -> Self {
        Self {
            user_id: UserId::new(&claims.sub),
            session_id: SessionId::new(&claims.sid),
            agency: AgencyCode::new(&claims.agency),
            unit: claims.unit.as_deref().map(UnitId::new),
            roles: claims.roles.clone(),
        }
    }
}

/// One public key in a JWK set (Ed25519 only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// Why a token was refused. Each kind has one plain message, the only thing a client is told (the
/// problem's `detail`); what the JWT library said is kept in `cause` for the log, never shown: its
/// wording ("InvalidSignature", "Base64 error: Invalid last symbol …") is no business of a client's,
/// and tells an attacker which check a crafted token got past.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    Missing,
    #[error("the token is malformed")]
    Malformed { cause: String },
    #[error("the token is not signed with the algorithm immilink uses")]
    WrongAlgorithm { cause: String },
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was not issued by immilink")]
    WrongIssuer,
    #[error("the token is not meant for immilink")]
    WrongAudience,
    /// A service token where a user's access token belongs, or the other way round.
    #[error("the token is not {expected}")]
    WrongTokenType { expected: &'static str },
    /// Anything else the library refused (a key it cannot use, a provider failure).
    #[error("the token cannot be verified")]
    Unverifiable { cause: String },
    #[error("the signing keys cannot be fetched: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// What the library said, for the log only.
    pub fn cause(&self) -> Option<&str> {
        match self {
            AuthError::Malformed { cause }
            | AuthError::WrongAlgorithm { cause }
            | AuthError::Unverifiable { cause } => Some(cause),
            AuthError::KeysUnavailable(cause) => Some(cause),
            _ => None,
        }
    }

    /// The kind of a refusal jsonwebtoken reported, for a token whose audience should have been
    /// `audience`. The token is read again only to tell a token of the other immilink audience
    /// from a foreign one, once the library has verified its signature.
    fn from_library(err: &jsonwebtoken::errors::Error, token: &str, audience: &str) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        let cause = err.to_string();
        match err.kind() {
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::InvalidSubject => AuthError::Malformed { cause },
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                AuthError::WrongAlgorithm { cause }
            }
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => {
                // Audience is checked after the signature: this token is genuinely signed, and
                // its audience says which kind of immilink token it is.
                #[derive(Deserialize)]
                struct Audience {
                    aud: Option<String>,
                }
                let presented = jsonwebtoken::dangerous::insecure_decode_claims::<Audience>(token).ok();
                match presented.and_then(|claims| claims.aud).as_deref() {
                    Some(SERVICE_AUDIENCE) if audience == AUDIENCE => {
                        AuthError::WrongTokenType { expected: "a user's access token" }
                    }
                    Some(AUDIENCE) if audience == SERVICE_AUDIENCE => {
                        AuthError::WrongTokenType { expected: "a service token" }
                    }
                    _ => AuthError::WrongAudience,
                }
            }
            _ => AuthError::Unverifiable { cause },
        }
    }

    /// Logs the refusal with the library's detail; the problem says only the kind.
    fn log(&self, token_kind: &str) {
        match self {
            AuthError::Missing => tracing::debug!(token = token_kind, "no token presented"),
            other => tracing::warn!(
                token = token_kind,
                refusal = %other,
                cause = other.cause().unwrap_or_default(),
                "token refused"
            ),
        }
    }

    /// The problem a refused service token answers (the message names the kind of token).
    pub fn service_token_problem(self) -> ApiError {
        self.log("service");
        match self {
            AuthError::KeysUnavailable(_) => Self::keys_unavailable(),
            other => ApiError::unauthenticated(format!("the service token is refused: {other}")),
        }
    }

    fn keys_unavailable() -> ApiError {
        ApiError::unavailable("identity_unavailable", "tokens cannot be verified right now")
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        err.log("access");
        match err {
            AuthError::KeysUnavailable(_) => AuthError::keys_unavailable(),
            other => ApiError::unauthenticated(other.to_string()),
        }
    }
}

/// Where verification keys come from.
enum KeySource {
    /// Fixed keys (identity verifies with its own keys).
    Static,
    /// Fetched from a JWKS URL, refreshed when an unknown `kid` shows up (at most every few seconds).
    Remote { url: String, http: reqwest::Client },
}

/// Verifies access tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    source: KeySource,
    /// Service tokens already verified, until they expire: the gateway presents the same one on
    /// every request it forwards, so each is checked once, not per request.
    verified_services: std::sync::Mutex<HashMap<String, ServiceClaims>>,
    /// Access tokens already verified, until they expire.
    verified_access: std::sync::Mutex<HashMap<String, AccessClaims>>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// Bound on remembered access tokens (about 1 KiB each).
const MAX_VERIFIED_ACCESS_TOKENS: usize = 50_000;
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Remote keys are fetched again at least this often, so a key identity retired after a rotation
/// stops verifying here too (tokens it signed have expired by then: the token TTL is shorter).
const MAX_KEY_AGE: Duration = Duration::from_secs(300);

impl TokenVerifier {
    pub fn from_jwks(set: &JwkSet) -> Result<Self, AuthError> {
        Ok(Self::new(KeySource::Static, decode_jwks(set)?))
    }

    pub fn remote(jwks_url: impl Into<String>, http: reqwest::Client) -> Self {
        Self::new(KeySource::Remote { url: jwks_url.into(), http }, HashMap::new())
    }

    /// Verifies with the keys identity serves at `<identity_url>/.well-known/jwks.json`.
    pub fn from_identity(identity_url: &str, http: reqwest::Client) -> Self {
        Self::remote(format!("{}/.well-known/jwks.json", identity_url.trim_end_matches('/')), http)
    }

    fn new(source: KeySource, keys: HashMap<String, DecodingKey>) -> Self {
        Self {
            inner: Arc::new(VerifierInner {
                source,
                verified_services: std::sync::Mutex::new(HashMap::new()),
                verified_access: std::sync::Mutex::new(HashMap::new()),
                keys: RwLock::new(keys),
                last_refresh: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Verifies an access token: signature, issuer, audience and expiry (no leeway).
    /// A verified token is remembered until it expires: the signature check is the costliest part of
    /// a request, and a client presents the same token many times. Revocation is unaffected: the
    /// session behind the token is checked on every request, apart from this.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let cached = self.inner.verified_access.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        if let Some(claims) = cached.filter(|c| c.exp > now) {
            return Ok(claims);
        }
        let claims: AccessClaims = self.verify_for(token, AUDIENCE, &["exp", "iss", "aud", "sub"]).await?;
        let mut verified = self.inner.verified_access.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_VERIFIED_ACCESS_TOKENS {
            verified.retain(|_, c| c.exp > now);
            if verified.len() >= MAX_VERIFIED_ACCESS_TOKENS {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Verifies a service token (audience `immilink-internal`): which immilink service is calling.
    pub async fn verify_service(&self, token: &str) -> Result<ServiceClaims, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let cached = self.inner.verified_services.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        if let Some(claims) = cached.filter(|c| c.exp > now) {
            return Ok(claims);
        }
        let claims: ServiceClaims = self.verify_for(token, SERVICE_AUDIENCE, &["exp", "iss", "aud", "sub"]).await?;
        let mut verified = self.inner.verified_services.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= 1024 {
            verified.retain(|_, c| c.exp > now);
        }
        verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    async fn verify_for<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        required: &[&str],
    ) -> Result<T, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::Malformed { cause: format!("header: {err}") })?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::WrongAlgorithm { cause: format!("{:?}", header.alg) });
        }
        let kid = header.kid.ok_or_else(|| AuthError::Malformed { cause: "no kid in the header".into() })?;
        if self.keys_are_old() {
            if let Err(err) = self.refresh().await {
                tracing::warn!(error = %err, "refreshing the token keys failed; keeping the known ones");
            }
        }
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&kid).ok_or(AuthError::UnknownKey)?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(required);
        validation.validate_nbf = true;
        validation.leeway = 0;
        // The standard claims first (signature, issuer, audience, times), then the shape of this
        // kind of token: a genuine token of the other audience is then told apart by its audience,
        // not by a field it lacks.
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|err| AuthError::from_library(&err, token, audience))?
            .claims;
        serde_json::from_value(claims).map_err(|err| AuthError::Malformed { cause: format!("claims: {err}") })
    }

    fn keys_are_old(&self) -> bool {
        matches!(self.inner.source, KeySource::Remote { .. })
            && self.inner.last_refresh.try_lock().is_ok_and(|last| last.is_some_and(|at| at.elapsed() > MAX_KEY_AGE))
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.inner.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(kid).cloned()
    }

    async fn refresh(&self) -> Result<(), AuthError> {
        let KeySource::Remote { url, http } = &self.inner.source else {
            return Err(AuthError::UnknownKey);
        };
        let mut last = self.inner.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
            return Ok(());
        }
        let set: JwkSet = http
            .get(url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|err| AuthError::KeysUnavailable(err.to_string()))?
            .json()
            .await
            .map_err(|err| AuthError::KeysUnavailable(err.to_string()))?;
        let keys = decode_jwks(&set)?;
        *self.inner.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
        *last = Some(Instant::now());
        Ok(())
    }
}

fn decode_jwks(set: &JwkSet) -> Result<HashMap<String, DecodingKey>, AuthError> {
    set.keys
        .iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
        .map(|k| {
            DecodingKey::from_ed_components(&k.x)
                .map(|key| (k.kid.clone(), key))
                .map_err(|err| AuthError::KeysUnavailable(format!("bad key {}: {err}", k.kid)))
        })
        .collect()
}

/// The bearer token of a request, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Session liveness: a token is only good while its session is live (not logged out, not idle,
/// account active) and used from the session's IP. Identity answers; a "live" answer is reused for a
/// short time (`IMMILINK_SESSION_CACHE_MS`, default 500), so a revoked session is refused everywhere
/// within that time. Each holder caches independently, so a request that passes the gateway's cache
/// and then a service's cache still cannot be served later than that bound after the revocation.
pub struct SessionChecker {
    http: reqwest::Client,
    identity_url: String,
    tokens: Arc<ServiceTokens>,
    ttl: Duration,
    live: std::sync::Mutex<HashMap<(String, std::net::IpAddr), Instant>>,
}

#[derive(Debug, Deserialize)]
struct Liveness {
    live: bool,
    reason: Option<String>,
}

const MAX_CACHED_SESSIONS: usize = 100_000;

impl SessionChecker {
    /// The session-liveness check every service runs on user tokens, at the service's identity URL.
    pub fn for_service(settings: &ServiceSettings, http: reqwest::Client, tokens: Arc<ServiceTokens>) -> Self {
        Self::new(http, &settings.identity_url, tokens, settings.session_cache)
    }

    pub fn new(http: reqwest::Client, identity_url: &str, tokens: Arc<ServiceTokens>, ttl: Duration) -> Self {
        Self {
            http,
            identity_url: identity_url.trim_end_matches('/').to_owned(),
            tokens,
            ttl,
            live: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub async fn require_live(&self, sid: &str, ip: std::net::IpAddr) -> Result<(), ApiError> {
        let key = (sid.to_owned(), ip);
        if self.cached(&key) {
            return Ok(());
        }
        // The answer holds from when it was asked, not from when it arrived: a slow answer must not
        // stretch the revocation bound (R-ACC-10) past the cache time.
        let asked = Instant::now();
        let liveness = self.ask_identity(sid, ip).await?;
        if liveness.live {
            self.remember(key, asked);
            Ok(())
        } else {
            Err(ApiError::unauthenticated(format!(
                "the session has ended ({}); log in again",
                liveness.reason.unwrap_or_else(|| "ended".into())
            )))
        }
    }

    /// Forgets every cached answer for a session (it was just ended through this holder).
    pub fn forget(&self, sid: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|(cached_sid, _), _| cached_sid != sid);
    }

    fn cached(&self, key: &(String, std::net::IpAddr)) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn remember(&self, key: (String, std::net::IpAddr), asked: Instant) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= MAX_CACHED_SESSIONS {
            let ttl = self.ttl;
            live.retain(|_, at| at.elapsed() < ttl);
        }
        live.insert(key, asked);
    }

    async fn ask_identity(&self, sid: &str, ip: std::net::IpAddr) -> Result<Liveness, ApiError> {
        let unavailable = |err: String| {
            tracing::warn!(error = %err, "session liveness check failed");
            ApiError::unavailable("identity_unavailable", "sessions cannot be checked right now")
        };
        // The session id comes from a verified token, but it still goes into a URL path: refuse
        // anything that is not a plain id.
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ApiError::unauthenticated("the token names no valid session"));
        }
        let response = self
            .http
            .post(format!("{}/internal/v1/sessions/{}/liveness", self.identity_url, sid))
            .headers(self.tokens.headers().await?)
            .timeout(Duration::from_secs(3))
            .json(&serde_json::json!({ "ip": ip.to_string() }))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("identity answered {}", response.status())));
        }
        response.json().await.map_err(|e| unavailable(e.to_string()))
    }
}

/// The secret Prometheus presents to read `/metrics` (`IMMILINK_METRICS_TOKEN`).
#[derive(Debug, Clone)]
pub struct MetricsToken(pub Secret);

impl MetricsToken {
    /// The service's metrics token, when one is configured.
    pub fn configured(settings: &ServiceSettings) -> Option<Self> {
        settings.secrets.metrics.clone().map(MetricsToken)
    }
}

/// The audience of service tokens: they are never accepted where a user token is expected, nor the
/// other way round.
pub const SERVICE_AUDIENCE: &str = "immilink-internal";
/// Service tokens live five minutes; callers reuse one until shortly before it expires.
pub const SERVICE_TOKEN_TTL_SECONDS: i64 = 300;

/// Claims of a service token: which immilink service is calling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceClaims {
    pub iss: String,
    pub aud: String,
    /// The calling service, e.g. `gateway`, `broker`.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

/// The immilink service that called, established by [`verify_service_caller`] from its service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingService(pub String);

/// Services that forward an end user's request and may state the user's IP (`x-immilink-client-ip`).
pub const IP_FORWARDERS: &[&str] = &["gateway", "broker"];

/// Middleware: when a request carries a service token, verifies it and records the calling service in
/// the request's extensions. A presented but invalid service token is refused outright. Needs
/// `web::Data<TokenVerifier>`; services without one (nia-mock) accept no service calls.
pub async fn verify_service_caller(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let presented = req.headers().get(&SERVICE_TOKEN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(token) = presented {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let Some(verifier) = verifier else {
            return Err(ApiError::forbidden("internal_only", "this service accepts no service calls").into());
        };
        let claims = verifier.verify_service(&token).await.map_err(AuthError::service_token_problem)?;
        req.extensions_mut().insert(CallingService(claims.sub));
    }
    next.call(req).await
}

/// Where a service gets the tokens it presents on internal calls.
enum TokenSource {
    /// From identity, with this service's own credential.
    Identity { http: reqwest::Client, url: String, credential: String },
    /// Minted in-process (identity itself).
    Local(Box<dyn Fn() -> Result<String, String> + Send + Sync>),
}

/// The service tokens one service presents, fetched once and reused until shortly before expiry.
pub struct ServiceTokens {
    source: TokenSource,
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// What identity answers at `POST /internal/v1/service-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedServiceToken {
    pub token: String,
    pub expires_in: i64,
}

const RENEW_BEFORE: Duration = Duration::from_secs(60);

impl ServiceTokens {
    /// Tokens from identity for `service`, which proves itself with `secret` (`IMMILINK_SERVICE_SECRET`).
    pub fn from_identity(http: reqwest::Client, identity_url: &str, service: &str, secret: &Secret) -> Self {
        Self::new(TokenSource::Identity {
            http,
            url: format!("{}/internal/v1/service-tokens", identity_url.trim_end_matches('/')),
            credential: format!("{service}:{}", secret.expose()),
        })
    }

    /// The tokens `settings`' service presents on internal calls, obtained from its identity with its
    /// own secret.
    pub fn for_service(settings: &ServiceSettings, http: reqwest::Client) -> Self {
        Self::from_identity(http, &settings.identity_url, &settings.name, &settings.secrets.service)
    }

    /// Tokens minted in-process (identity's own calls).
    pub fn local(mint: impl Fn() -> Result<String, String> + Send + Sync + 'static) -> Self {
        Self::new(TokenSource::Local(Box::new(mint)))
    }

    fn new(source: TokenSource) -> Self {
        Self { source, current: tokio::sync::Mutex::new(None) }
    }

    /// A token valid for at least another minute.
    pub async fn token(&self) -> Result<String, ApiError> {
        let mut current = self.current.lock().await;
        if let Some((token, renew_at)) = current.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await.map_err(|err| {
            tracing::warn!(error = %err, "no service token");
            ApiError::unavailable("identity_unavailable", "internal calls cannot be authenticated right now")
        })?;
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        *current = Some((token.clone(), renew_at));
        Ok(token)
    }

    async fn fetch(&self) -> Result<(String, Duration), String> {
        let lifetime = Duration::from_secs(SERVICE_TOKEN_TTL_SECONDS as u64);
        match &self.source {
            TokenSource::Local(mint) => mint().map(|token| (token, lifetime)),
            TokenSource::Identity { http, url, credential } => {
                let response = http
                    .post(url)
                    .header(SERVICE_CREDENTIAL.as_str(), credential)
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("identity answered {}", response.status()));
                }
                let issued: IssuedServiceToken = response.json().await.map_err(|e| e.to_string())?;
                Ok((issued.token, Duration::from_secs(issued.expires_in.max(0) as u64)))
            }
        }
    }

    /// Headers for an internal call: trace context, request id (and the client's correlation id)
    /// and this service's token, on which the callee adopts that request id.
    pub async fn headers(&self) -> Result<reqwest::header::HeaderMap, ApiError> {
        let mut headers = crate::telemetry::internal_headers();
        let token = self.token().await?;
        let value = reqwest::header::HeaderValue::from_str(&token).map_err(ApiError::internal)?;
        headers.insert(reqwest::header::HeaderName::from_static(SERVICE_TOKEN_NAME), value);
        Ok(headers)
    }
}

/// What every service with user-facing endpoints registers as app data: the token verifier (keys from
/// identity's JWKS), the session-liveness check, and the metrics token when one is configured.
#[derive(Clone)]
pub struct ServiceAuth {
    verifier: web::Data<TokenVerifier>,
    sessions: web::Data<SessionChecker>,
    metrics: Option<web::Data<MetricsToken>>,
}

impl ServiceAuth {
    pub fn new(settings: &ServiceSettings, http: reqwest::Client, tokens: Arc<ServiceTokens>) -> Self {
        Self {
            verifier: web::Data::new(TokenVerifier::from_identity(&settings.identity_url, http.clone())),
            sessions: web::Data::new(SessionChecker::for_service(settings, http, tokens)),
            metrics: MetricsToken::configured(settings).map(web::Data::new),
        }
    }

    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.verifier.clone()).app_data(self.sessions.clone());
        if let Some(metrics) = &self.metrics {
            cfg.app_data(metrics.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use serde_json::{json, Value};

    use super::*;

    const KID: &str = "test-key";

    /// What the JWT library says of refused tokens; none of it may reach a client.
    const LIBRARY_WORDING: &[&str] =
        &["InvalidSignature", "Base64", "Invalid last symbol", "offset", "unexpected algorithm", "Json", "Error"];

    fn keys() -> (ed25519_dalek::SigningKey, TokenVerifier) {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            kid: KID.into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        };
        let verifier = TokenVerifier::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap();
        (key, verifier)
    }

    fn sign(key: &ed25519_dalek::SigningKey, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let der = key.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    fn access_claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "sid": "s1", "agency": "TPE-SW", "unit": null,
               "roles": ["caseworker"], "iat": now, "exp": now + 900})
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    }

    fn part(token: &str, index: usize) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(index).unwrap()).unwrap()).unwrap()
    }

    fn replace_part(token: &str, index: usize, value: &Value) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[index] = URL_SAFE_NO_PAD.encode(value.to_string());
        parts.join(".")
    }

    /// The attacks of a hostile review, each refused with the plain message of its kind: the problem
    /// says what kind of failure it was and nothing the library said, which the log keeps.
    #[actix_web::test]
    async fn each_kind_of_token_failure_has_one_plain_message() {
        let (key, verifier) = keys();
        let now = chrono::Utc::now().timestamp();
        let genuine = sign(&key, KID, &access_claims());
        assert!(verifier.verify(&genuine).await.is_ok());

        let tampered = replace_part(&genuine, 1, &with(part(&genuine, 1), json!({"roles": ["account_manager"]})));
        // A 64-byte signature is 86 base64url symbols, the last of which carries 2 bits: '8' has
        // others set, which the decoder refuses ("Invalid last symbol 56, offset 85").
        let base64_broken = format!("{}8", &genuine[..genuine.len() - 1]);
        let public_key = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let mut hs256 = jsonwebtoken::Header::new(Algorithm::HS256);
        hs256.kid = Some(KID.into());
        let alg_swapped = jsonwebtoken::encode(
            &hs256,
            &access_claims(),
            &jsonwebtoken::EncodingKey::from_secret(public_key.as_bytes()),
        )
        .unwrap();
        let alg_none = replace_part(&genuine, 0, &json!({"alg": "none", "kid": KID}));
        let service = json!({"iss": ISSUER, "aud": SERVICE_AUDIENCE, "sub": "broker", "iat": now, "exp": now + 300});
        let cases = [
            ("not-a-jwt".to_owned(), "the token is malformed"),
            (tampered, "the token's signature is not valid"),
            (base64_broken, "the token is malformed"),
            (alg_swapped, "the token is not signed with the algorithm immilink uses"),
            (alg_none, "the token is malformed"),
            (sign(&key, "another-key", &access_claims()), "the token was signed by an unknown key"),
            (sign(&key, KID, &with(access_claims(), json!({"exp": now - 10}))), "the token has expired"),
            (sign(&key, KID, &with(access_claims(), json!({"nbf": now + 600}))), "the token is not valid yet"),
            (
                sign(&key, KID, &with(access_claims(), json!({"iss": "elsewhere"}))),
                "the token was not issued by immilink",
            ),
            (
                sign(&key, KID, &with(access_claims(), json!({"aud": "elsewhere"}))),
                "the token is not meant for immilink",
            ),
            (sign(&key, KID, &service), "the token is not a user's access token"),
        ];
        for (token, expected) in cases {
            let err = verifier.verify(&token).await.expect_err(expected);
            let problem = ApiError::from(err).to_problem();
            assert_eq!((problem.status, problem.detail.as_str()), (401, expected), "{token}");
            for wording in LIBRARY_WORDING {
                assert!(!problem.detail.contains(wording), "{expected}: {}", problem.detail);
            }
        }

        // The other way round: a user's token where a service token belongs.
        let err = verifier.verify_service(&genuine).await.unwrap_err();
        assert_eq!(
            err.service_token_problem().to_problem().detail,
            "the service token is refused: the token is not a service token"
        );
        assert!(verifier.verify_service(&sign(&key, KID, &service)).await.is_ok());
    }

    #[actix_web::test]
    async fn the_library_detail_is_kept_for_the_log() {
        let (key, verifier) = keys();
        let genuine = sign(&key, KID, &access_claims());
        let err = verifier.verify(&format!("{}8", &genuine[..genuine.len() - 1])).await.unwrap_err();
        assert!(err.cause().is_some_and(|cause| cause.contains("Invalid last symbol")), "{err:?}");
        assert_eq!(err.to_string(), "the token is malformed");
    }
}
