//! immilink gateway: the only component reachable from outside. It verifies every token (signature,
//! expiry, issuer, audience, and that its session is live from the caller's IP), routes by path prefix
//! to the owning service, adds the request id, W3C trace context, the caller's IP and the internal
//! token, limits body sizes, and serves the merged OpenAPI document with an offline docs page.
//!
//! Invariant: `/internal/` paths are never routed; services trust the caller-IP header only with the
//! internal token.

mod docs;
mod proxy;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use futures_util::future::join_all;
use immilink_shared::auth::{MetricsToken, ServiceTokens, SessionChecker, TokenVerifier};
use immilink_shared::config::{self, ConfigError, Secret, ServiceSecrets};
use immilink_shared::forwarded::TrustedProxies;
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::server::{outbound_client, Health, HealthCheck, Routes, Running, Server};
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;

use routing::Backend;

pub const SERVICE: &str = "gateway";

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_GATEWAY_ADDR`, default `127.0.0.1:8080`.
    pub addr: String,
    /// `IMMILINK_IDENTITY_URL`, `IMMILINK_BROKER_URL`, `IMMILINK_AUDIT_URL`, `IMMILINK_VENDORS_URL`.
    pub identity_url: String,
    pub broker_url: String,
    pub audit_url: String,
    pub vendors_url: String,
    /// `IMMILINK_SERVICE_SECRET`: the gateway's credential for its service tokens (required).
    pub service_secret: Secret,
    /// `IMMILINK_METRICS_TOKEN`: what Prometheus presents at `/metrics` (unset: no metrics).
    pub metrics_token: Option<Secret>,
    /// `IMMILINK_SESSION_CACHE_MS`, default 500: how long a "live" answer is reused. Revocation takes
    /// effect within this time.
    pub session_cache: Duration,
    pub workers: usize,
    /// `IMMILINK_TRUSTED_PROXIES`: comma-separated CIDRs of the reverse proxies (the ingress) whose
    /// `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` are believed; default none, so the TCP
    /// peer is the client (see [`immilink_shared::forwarded`]).
    pub trusted_proxies: TrustedProxies,
    /// `IMMILINK_CORS_ALLOWED_ORIGINS`: comma-separated origins of browser front-ends allowed to
    /// call the API (`https://caseworker.example.gov.tw`); default none.
    pub cors_allowed_origins: Vec<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(None)
    }

    /// As [`Settings::from_env`], with the secrets given by the launcher. A gateway started on its own
    /// must be given `IMMILINK_SERVICE_SECRET` (identity holds it in `IMMILINK_SERVICE_CREDENTIALS`).
    pub fn from_env_with(secrets: Option<ServiceSecrets>) -> Result<Self, ConfigError> {
        let secrets = match secrets {
            Some(secrets) => secrets,
            None => ServiceSecrets::from_env(false)?,
        };
        Ok(Self {
            addr: config::string_or("GATEWAY_ADDR", "127.0.0.1:8080"),
            identity_url: config::string_or("IDENTITY_URL", "http://127.0.0.1:8081"),
            broker_url: config::string_or("BROKER_URL", "http://127.0.0.1:8082"),
            audit_url: config::string_or("AUDIT_URL", "http://127.0.0.1:8083"),
            vendors_url: config::string_or("VENDORS_URL", "http://127.0.0.1:8084"),
            service_secret: secrets.service,
            metrics_token: secrets.metrics,
            session_cache: Duration::from_millis(config::parse_or("SESSION_CACHE_MS", 500)?),
            workers: config::parse_or("WORKERS", 2)?,
            trusted_proxies: TrustedProxies::parse(&config::string_or("TRUSTED_PROXIES", ""))
                .map_err(|reason| ConfigError { name: "IMMILINK_TRUSTED_PROXIES".into(), reason })?,
            cors_allowed_origins: cors_origins(&config::string_or("CORS_ALLOWED_ORIGINS", ""))
                .map_err(|reason| ConfigError { name: "IMMILINK_CORS_ALLOWED_ORIGINS".into(), reason })?,
        })
    }
}

/// A comma-separated list of origins, each exactly `scheme://host[:port]` (no path, no `*`): what
/// browsers send in `Origin`, compared byte for byte.
pub fn cors_origins(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let parsed = reqwest::Url::parse(origin).map_err(|err| format!("{origin:?} is not an origin: {err}"))?;
            let serialized = parsed.origin().ascii_serialization();
            if serialized != origin || !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "{origin:?} is not an origin: write scheme://host[:port] exactly, as {serialized:?}"
                ));
            }
            Ok(serialized)
        })
        .collect()
}

pub struct State {
    http: reqwest::Client,
    verifier: TokenVerifier,
    sessions: SessionChecker,
    /// The gateway's service tokens: presented on every forwarded request, so services trust the
    /// client IP it states.
    tokens: Arc<ServiceTokens>,
    urls: [String; 4],
}

impl Backend {
    pub const ALL: [Backend; 4] = [Backend::Identity, Backend::Broker, Backend::Audit, Backend::Vendors];

    fn index(self) -> usize {
        match self {
            Backend::Identity => 0,
            Backend::Broker => 1,
            Backend::Audit => 2,
            Backend::Vendors => 3,
        }
    }
}

impl State {
    fn backend_url(&self, backend: Backend) -> &str {
        &self.urls[backend.index()]
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "immilink API",
        description = "Lawful, purpose-bound use of immigration data by Taiwanese agencies. Every lookup declares its legal basis, purpose and case; every query is audited before it is forwarded."
    ),
    modifiers(&BearerSecurity),
    tags((name = "health"), (name = "docs"))
)]
struct ApiDoc;

fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz).service(docs::merged_openapi);
}

const ROUTES: Routes = Routes {
    service: SERVICE,
    doc: ApiDoc::openapi,
    public: configure,
    internal: immilink_shared::server::no_internal_routes,
    serve_document: false,
};

/// The gateway's own paths (the merged document adds the services').
pub fn own_openapi() -> utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

/// Liveness of the gateway process.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok".into(), service: SERVICE.into(), checks: Vec::new() })
}

/// Readiness: 200 when identity is ready (no token can be checked without it). The other services are
/// reported, and a failing one makes the status `degraded`, but it does not take the gateway out of
/// rotation: one unready service must not take the whole API down.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
#[get("/readyz")]
async fn readyz(state: web::Data<State>) -> HttpResponse {
    let state = &state;
    let checks = Backend::ALL.iter().map(|backend| async move {
        let url = format!("{}/readyz", state.backend_url(*backend));
        let result = state.http.get(&url).timeout(Duration::from_secs(2)).send().await;
        let (ok, error) = match result {
            Ok(r) if r.status().is_success() => (true, None),
            Ok(r) => (false, Some(format!("answered {}", r.status()))),
            Err(e) => (false, Some(e.to_string())),
        };
        HealthCheck { name: format!("{backend:?}").to_lowercase(), ok, error }
    });
    let (status, body) = Health::with_required(SERVICE, join_all(checks).await, &["identity"]);
    HttpResponse::build(status).json(body)
}

pub struct Application;

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Running> {
        let http = outbound_client()?;
        let identity_url = settings.identity_url.trim_end_matches('/').to_owned();
        let tokens =
            Arc::new(ServiceTokens::from_identity(http.clone(), &identity_url, SERVICE, &settings.service_secret));
        let state = web::Data::new(State {
            verifier: TokenVerifier::remote(format!("{identity_url}/.well-known/jwks.json"), http.clone()),
            sessions: SessionChecker::new(http.clone(), &identity_url, tokens.clone(), settings.session_cache),
            tokens,
            urls: [
                identity_url,
                settings.broker_url.trim_end_matches('/').to_owned(),
                settings.audit_url.trim_end_matches('/').to_owned(),
                settings.vendors_url.trim_end_matches('/').to_owned(),
            ],
            http,
        });
        let mut server = Server::new(&settings.addr, settings.workers, ROUTES).data(state).configure(|cfg| {
            cfg.service(docs::docs_redirect)
                .service(docs::compliance_page)
                .service(docs::swagger_ui())
                .default_service(web::to(proxy::forward));
        });
        server = server.data(web::Data::new(settings.trusted_proxies)).cors(settings.cors_allowed_origins);
        if let Some(token) = settings.metrics_token {
            server = server.data(web::Data::new(MetricsToken(token)));
        }
        Ok(server.start()?)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{web, App, HttpResponse, HttpServer};
    use immilink_shared::config::Secret;
    use serde_json::Value;

    use super::*;

    /// Nothing listens on the discard port on loopback: a service that is down.
    const DOWN: &str = "http://127.0.0.1:9";

    async fn gateway_ready(identity_url: &str) -> (u16, Value) {
        let settings = Settings {
            addr: "127.0.0.1:0".into(),
            identity_url: identity_url.into(),
            broker_url: DOWN.into(),
            audit_url: DOWN.into(),
            vendors_url: DOWN.into(),
            service_secret: Secret::generate(),
            metrics_token: None,
            session_cache: Duration::from_millis(500),
            workers: 1,
            trusted_proxies: TrustedProxies::none(),
            cors_allowed_origins: Vec::new(),
        };
        let running = Application::build(settings).await.unwrap();
        let handle = running.server.handle();
        actix_web::rt::spawn(running.server);
        let response = reqwest::get(format!("http://127.0.0.1:{}/readyz", running.port)).await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap();
        handle.stop(false).await;
        (status, body)
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        assert_eq!(
            cors_origins(" https://caseworker.example.gov.tw, http://127.0.0.1:5173 ,").unwrap(),
            ["https://caseworker.example.gov.tw", "http://127.0.0.1:5173"]
        );
        assert!(cors_origins("").unwrap().is_empty());
        for bad in ["*", "caseworker.example.gov.tw", "https://a.example/", "https://a.example/app", "ftp://a.example"]
        {
            assert!(cors_origins(bad).is_err(), "{bad}");
        }
    }

    #[actix_web::test]
    async fn one_unready_service_degrades_the_gateway_but_identity_down_makes_it_unready() {
        let identity = HttpServer::new(|| App::new().route("/readyz", web::get().to(HttpResponse::Ok)))
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
        let identity_url = format!("http://127.0.0.1:{}", identity.addrs()[0].port());
        let identity = identity.run();
        let identity_handle = identity.handle();
        actix_web::rt::spawn(identity);

        let (status, body) = gateway_ready(&identity_url).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "degraded");
        let vendors = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "vendors").unwrap();
        assert_eq!(vendors["ok"], false);

        let (status, body) = gateway_ready(DOWN).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "unavailable");
        identity_handle.stop(false).await;
    }
}
