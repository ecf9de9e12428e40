//! immilink broker: purpose-bound lookups (R-QRY). Checks every declaration and permission, makes the
//! lookup's audit record durable in its own database (transactional outbox) before forwarding it to the
//! immigration agency, minimises the answer, and relays the audit events to the audit service.
//!
//! Invariants: nothing is forwarded upstream before `domain::lookup::record_requested` has committed;
//! the broker never reads the audit or identity databases (it asks identity over HTTP); only the broker
//! talks to the upstream.

pub mod batch_worker;
pub mod documents;
pub mod domain;
pub mod identity_client;
pub mod journal;
pub mod limits;
pub mod pipeline;
pub mod results;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;
pub mod upstream;

use std::time::Duration;

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, NamedSecrets, Secret, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::server::{no_internal_routes, Routes, Running, Service};
use immilink_shared::tls::UpstreamTls;
use utoipa::OpenApi;

use std::sync::Arc;

use identity_client::IdentityClient;
use immilink_shared::outbox::Relay;
use journal::Journal;
use limits::LookupLimits;
use pipeline::Lookups;
use upstream::{NiaClient, UpstreamSettings};

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
    /// `IMMILINK_NIA_API_KEY`: the credential presented upstream for agencies without their own.
    pub nia_api_key: Option<Secret>,
    /// `IMMILINK_NIA_AGENCY_KEYS`: each agency's own credential upstream, `AGENCY:key,…`.
    pub nia_agency_keys: NamedSecrets,
    /// `IMMILINK_NIA_CA_FILE`, `IMMILINK_NIA_CLIENT_CERT_FILE`, `IMMILINK_NIA_CLIENT_KEY_FILE`: the
    /// upstream's TLS (mutual; see [`immilink_shared::tls`]).
    pub nia_tls: UpstreamTls,
    /// `IMMILINK_UPSTREAM_TIMEOUT_MS`, default 10000.
    pub upstream_timeout: Duration,
    /// `IMMILINK_UPSTREAM_CONNECT_RETRIES` (default 2), `IMMILINK_UPSTREAM_BREAKER_FAILURES` (default 5),
    /// `IMMILINK_UPSTREAM_BREAKER_OPEN_MS` (default 15000): see [`upstream`].
    pub upstream_connect_retries: u32,
    pub upstream_breaker_failures: u32,
    pub upstream_breaker_open_for: Duration,
    /// `IMMILINK_AUDIT_BACKLOG_MAX_AGE_SECS`, default 60: new lookups are refused (503) while the
    /// oldest audit event not yet accepted by the audit service is older than this.
    pub audit_backlog_max_age: Duration,
    /// `IMMILINK_INTERRUPTED_AFTER_SECS`, default 300: a lookup still `requested` this long after it
    /// started was interrupted (its broker stopped) and is closed as `outcome_unknown`. Well past the
    /// upstream timeout, so a lookup in flight on another replica is never taken for one.
    pub interrupted_after: Duration,
    /// `IMMILINK_LOOKUPS_PER_USER_PER_MINUTE` (default 120) and
    /// `IMMILINK_LOOKUPS_PER_AGENCY_PER_MINUTE` (default 6000): 429 beyond.
    pub lookups_per_user_per_minute: u32,
    pub lookups_per_agency_per_minute: u32,
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
            nia_agency_keys: NamedSecrets::from_env("NIA_AGENCY_KEYS")?,
            nia_tls: UpstreamTls::from_env()?,
            upstream_timeout: Duration::from_millis(config::parse_or("UPSTREAM_TIMEOUT_MS", 10_000)?),
            upstream_connect_retries: config::parse_or("UPSTREAM_CONNECT_RETRIES", 2)?,
            upstream_breaker_failures: config::parse_or("UPSTREAM_BREAKER_FAILURES", 5)?,
            upstream_breaker_open_for: Duration::from_millis(config::parse_or("UPSTREAM_BREAKER_OPEN_MS", 15_000)?),
            audit_backlog_max_age: Duration::from_secs(config::parse_or("AUDIT_BACKLOG_MAX_AGE_SECS", 60)?),
            interrupted_after: Duration::from_secs(config::parse_or("INTERRUPTED_AFTER_SECS", 300)?),
            lookups_per_user_per_minute: config::parse_or("LOOKUPS_PER_USER_PER_MINUTE", 120)?,
            lookups_per_agency_per_minute: config::parse_or("LOOKUPS_PER_AGENCY_PER_MINUTE", 6000)?,
        })
    }

    /// Defaults for tests and launchers: the given service settings, everything else as documented.
    pub fn local(service: ServiceSettings) -> Self {
        Self {
            service,
            audit_url: "http://127.0.0.1:0".into(),
            nia_url: "http://127.0.0.1:0".into(),
            nia_api_key: None,
            nia_agency_keys: NamedSecrets::default(),
            nia_tls: UpstreamTls::default(),
            upstream_timeout: Duration::from_secs(10),
            upstream_connect_retries: 2,
            upstream_breaker_failures: 5,
            upstream_breaker_open_for: Duration::from_secs(15),
            audit_backlog_max_age: Duration::from_secs(60),
            interrupted_after: Duration::from_secs(300),
            lookups_per_user_per_minute: 120,
            lookups_per_agency_per_minute: 6000,
        }
    }
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
    pub identity: IdentityClient,
    pub lookups: Arc<Lookups>,
    pub relay: Relay,
    pub limits: LookupLimits,
    /// Wakes the bulk-job worker when a batch is submitted.
    pub batch_wake: Arc<batch_worker::Wake>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink broker", description = "Purpose-bound immigration data lookups."),
    modifiers(&BearerSecurity),
    tags((name = "lookups", description = "Purpose-bound lookups"), (name = "batches", description = "Bulk lookup jobs (R-QRY-05)"), (name = "proxy-authorizations", description = "代查授權單: lookups on another user's behalf (R-QRY-06)"), (name = "purpose-approvals", description = "Supervisor approval of other-business purposes (R-QRY-10)"), (name = "doubt-queries", description = "疑義查詢表: the outage fallback (R-QRY-09)"), (name = "catalogue", description = "Legal bases, purposes and query types"), (name = "health"))
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

pub struct Application;

impl Application {
    /// Connects and migrates, closes lookups a previous crash interrupted, starts the journal, the
    /// audit relay and the housekeeping task, binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let service = Service::open(settings.service.clone(), &MIGRATIONS).await?;
        let db = service.db.clone();
        let interrupted_after = chrono::Duration::from_std(settings.interrupted_after)?;
        close_interrupted(&db, &clock, interrupted_after).await;
        let (http, tokens) = (service.http.clone(), Arc::clone(&service.tokens));
        let relay = Relay::new(db.clone(), clock.clone(), http.clone(), &settings.audit_url, tokens.clone());
        let nia = NiaClient::new(settings.nia_tls.client("NIA_URL", &settings.nia_url)?, upstream_settings(&settings));
        let journal = Journal::start(db.clone(), clock.clone())?;
        let backlog_max_age = chrono::Duration::from_std(settings.audit_backlog_max_age)?;
        let state = web::Data::new(State {
            db: db.clone(),
            clock: clock.clone(),
            identity: IdentityClient::new(http, &settings.service.identity_url, tokens, settings.service.session_cache),
            lookups: Arc::new(Lookups::new(journal, nia, relay.clone(), clock.clone(), backlog_max_age)),
            relay: relay.clone(),
            limits: LookupLimits::new(settings.lookups_per_user_per_minute, settings.lookups_per_agency_per_minute),
            batch_wake: Arc::default(),
        });
        Ok(service
            .server(ROUTES)
            .data(state.clone())
            .gauges(Arc::new(relay.clone()))
            .task(relay.run())
            .task(batch_worker::run(state))
            .task(housekeeping(db, clock, interrupted_after))
            .start()?)
    }
}

fn upstream_settings(settings: &Settings) -> UpstreamSettings {
    UpstreamSettings {
        base_url: settings.nia_url.clone(),
        agency_keys: settings.nia_agency_keys.clone(),
        fallback_key: settings.nia_api_key.clone(),
        timeout: settings.upstream_timeout,
        connect_retries: settings.upstream_connect_retries,
        breaker_failures: settings.upstream_breaker_failures,
        breaker_open_for: settings.upstream_breaker_open_for,
    }
}

async fn close_interrupted(db: &Db, clock: &SharedClock, interrupted_after: chrono::Duration) {
    let now = clock.now();
    match db.run(move |conn| domain::lookup::close_interrupted(conn, now, interrupted_after)).await {
        Ok(0) => {}
        Ok(closed) => tracing::warn!(closed, "closed interrupted lookups as outcome_unknown"),
        Err(err) => tracing::error!(error = %err, "closing interrupted lookups failed; retried later"),
    }
}

/// Closes interrupted lookups now and then, not only at start: a replica that died is not always
/// restarted.
async fn housekeeping(db: Db, clock: SharedClock, interrupted_after: chrono::Duration) {
    let every = (interrupted_after / 4).to_std().unwrap_or(Duration::from_secs(1)).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        close_interrupted(&db, &clock, interrupted_after).await;
    }
}
