//! immilink broker: purpose-bound lookups (R-QRY). Checks every declaration and permission, makes the
//! lookup's audit record durable in its own database (transactional outbox) before forwarding it to the
//! immigration agency, minimises the answer, and relays the audit events to the audit service.
//!
//! Invariants: nothing is forwarded upstream before `domain::lookup::record_requested` has committed;
//! the broker never reads the audit or identity databases (it asks identity over HTTP); only the broker
//! talks to the upstream.

pub mod domain;
pub mod identity_client;
pub mod relay;
pub mod results;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;
pub mod upstream;

use std::time::Duration;

use actix_web::web;
use immilink_shared::auth::ServiceAuth;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::http::{no_internal_routes, serve, Routes, Running};
use immilink_shared::openapi::BearerSecurity;
use utoipa::OpenApi;

use identity_client::IdentityClient;
use relay::Relay;
use upstream::NiaClient;

pub const SERVICE: &str = "broker";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/broker/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/broker/sqlite"),
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_BROKER_ADDR` (default `127.0.0.1:8082`), `IMMILINK_BROKER_DATABASE_URL`, `IMMILINK_IDENTITY_URL`, …
    pub service: ServiceSettings,
    /// `IMMILINK_AUDIT_URL`, default `http://127.0.0.1:8083`.
    pub audit_url: String,
    /// `IMMILINK_NIA_URL`: the immigration cloud query service, default nia-mock at `http://127.0.0.1:8085`.
    pub nia_url: String,
    /// `IMMILINK_NIA_API_KEY`: the agency credential presented upstream.
    pub nia_api_key: Option<Secret>,
    /// `IMMILINK_UPSTREAM_TIMEOUT_MS`, default 10000.
    pub upstream_timeout: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(None)
    }

    /// As [`Settings::from_env`], with the secrets given by the launcher.
    pub fn from_env_with(secrets: Option<ServiceSecrets>) -> Result<Self, ConfigError> {
        Ok(Self {
            service: ServiceSettings::from_env(SERVICE, 8082, secrets)?,
            audit_url: config::string_or("AUDIT_URL", "http://127.0.0.1:8083"),
            nia_url: config::string_or("NIA_URL", "http://127.0.0.1:8085"),
            nia_api_key: config::var("NIA_API_KEY").map(Secret::new),
            upstream_timeout: Duration::from_millis(config::parse_or("UPSTREAM_TIMEOUT_MS", 10_000)?),
        })
    }
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
    pub identity: IdentityClient,
    pub nia: NiaClient,
    pub relay: Relay,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink broker", description = "Purpose-bound immigration data lookups."),
    modifiers(&BearerSecurity),
    tags((name = "lookups", description = "Purpose-bound lookups"), (name = "catalogue", description = "Legal bases, purposes and query types"), (name = "health"))
)]
struct ApiDoc;

const ROUTES: Routes = Routes {
    service: SERVICE,
    doc: ApiDoc::openapi,
    public: routes::configure,
    internal: no_internal_routes,
    serve_document: true,
};

pub fn openapi() -> utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

/// Lookups still `requested` this long after they started were interrupted (well past the upstream
/// timeout, so a lookup in flight on another replica is never taken for one).
const INTERRUPTED_AFTER: chrono::Duration = chrono::Duration::minutes(5);

pub struct Application;

impl Application {
    /// Connects and migrates, closes lookups a previous crash interrupted, starts the audit relay, binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
        let now = clock.now();
        let closed = db.run(move |conn| domain::lookup::close_interrupted(conn, now, INTERRUPTED_AFTER)).await?;
        if closed > 0 {
            tracing::warn!(closed, "closed interrupted lookups as outcome_unknown");
        }
        let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).build()?;
        let tokens = settings.service.service_tokens(http.clone());
        let relay = Relay::new(db.clone(), clock.clone(), http.clone(), &settings.audit_url, tokens.clone());
        let auth = ServiceAuth::new(&settings.service, http.clone(), tokens.clone());
        let state = web::Data::new(State {
            db: db.clone(),
            clock,
            identity: IdentityClient::new(
                http.clone(),
                &settings.service.identity_url,
                tokens.clone(),
                settings.service.session_cache,
            ),
            nia: NiaClient::new(http, &settings.nia_url, settings.nia_api_key, settings.upstream_timeout),
            relay,
        });
        let db = web::Data::new(db);
        let relay_task = actix_web::rt::spawn(state.relay.clone().run());
        let running = serve(&settings.service.addr, settings.service.workers, ROUTES, move |cfg| {
            cfg.app_data(state.clone()).app_data(db.clone());
            auth.register(cfg);
        })?;
        Ok(running.with_task(relay_task))
    }
}
