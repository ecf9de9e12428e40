//! immilink identity: agencies, units, users and roles; account applications and their reviews; the
//! account lifecycle; login (password + bound certificate serial + bound IP), sessions and their
//! liveness, access tokens and the JWKS that verifies them.
//!
//! Entry points: [`Application::build`] (the HTTP service), [`openapi`] (its generated document),
//! [`domain`] (the rules, callable without HTTP).

mod clients;
pub mod documents;
pub mod domain;
pub mod keys;
mod notifier;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;
mod tokens;
mod workflow;

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::web;
use chrono::Duration;
use immilink_shared::auth::{MetricsToken, ServiceTokens, TokenVerifier};
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::outbox::Relay;
use immilink_shared::server::{outbound_client, Routes, Running, Server};
use immilink_shared::tls::UpstreamTls;
use utoipa::OpenApi;

pub use keys::SigningKeys;

pub const SERVICE: &str = "identity";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/identity/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/identity/sqlite"),
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_IDENTITY_ADDR` (default `127.0.0.1:8081`), `IMMILINK_IDENTITY_DATABASE_URL`, …
    pub service: ServiceSettings,
    /// `IMMILINK_SIGNING_KEY_FILE`, default `./data/keys/identity-ed25519.pk8`.
    pub signing_key_file: PathBuf,
    /// Generate the signing key when the file is missing: only in the embedded (SQLite) mode.
    pub generate_signing_key: bool,
    /// `IMMILINK_DEMO`: seed the demo agencies and users (default: on in the embedded mode only).
    pub demo: bool,
    /// `IMMILINK_TOKEN_TTL_SECONDS`, default 900.
    pub token_ttl: Duration,
    /// `IMMILINK_IDLE_TIMEOUT_SECONDS`, default 900 (R-ACC-10).
    pub idle_timeout: Duration,
    /// `IMMILINK_PREVIOUS_SIGNING_KEY_FILES`: comma-separated retired keys still published in the JWKS
    /// during a rotation's overlap, so tokens they signed keep verifying until they expire.
    pub previous_signing_key_files: Vec<PathBuf>,
    /// `IMMILINK_VENDORS_URL`, default `http://127.0.0.1:8084` (the contractor check, R-ACC-08).
    pub vendors_url: String,
    /// `IMMILINK_AUDIT_URL`, default `http://127.0.0.1:8083`: where the outbox relay delivers
    /// identity's audit events.
    pub audit_url: String,
    /// `IMMILINK_NIA_URL` and `IMMILINK_NIA_API_KEY`: the immigration agency's account review.
    pub nia_url: String,
    pub nia_api_key: Option<Secret>,
    /// `IMMILINK_NIA_CA_FILE`, `IMMILINK_NIA_CLIENT_CERT_FILE`, `IMMILINK_NIA_CLIENT_KEY_FILE`: the
    /// immigration agency's TLS (mutual; see [`immilink_shared::tls`]).
    pub nia_tls: UpstreamTls,
    /// `IMMILINK_SMTP_URL`: the agency's mail relay, `smtps://host[:465]` (implicit TLS),
    /// `smtp://host[:587]?tls=required` (STARTTLS) or `smtp://host[:25]` (plain, a relay inside the
    /// agency's own network only); unset: notifications go to the log. See [`notifier`].
    pub smtp_url: Option<String>,
    /// `IMMILINK_SMTP_CA_FILE`: PEM certificates the relay's certificate may chain to, besides the
    /// system's trust store.
    pub smtp_ca_file: Option<PathBuf>,
    /// `IMMILINK_SMTP_FROM`, default `immilink <no-reply@immilink.invalid>`.
    pub smtp_from: String,
    /// `IMMILINK_LOGIN_CONCURRENCY`, default 1: password hashes computed at once. Keeps a login
    /// storm to one core, so lookups keep the rest.
    pub login_concurrency: usize,
    /// `IMMILINK_IDENTITY_BACKGROUND_MS`, default 2000: how often waiting applications are retried
    /// and notifications delivered.
    pub background_interval: std::time::Duration,
    /// `IMMILINK_SERVICE_CREDENTIALS`: `service:secret` pairs, comma-separated: who may obtain
    /// service tokens (each service holds its own secret as `IMMILINK_SERVICE_SECRET`).
    pub service_credentials: ServiceCredentials,
    /// `IMMILINK_LINK_SWEEP_INTERVAL_SECS`, default 600: how often the link sweep applies the clock
    /// rules of seed 003 (deadlines, 6 months, 1 month, 1 year, review dates). In Kubernetes a
    /// CronJob runs `immilink-identity link-sweep` instead, and this is 0: off.
    pub link_sweep_interval: Option<std::time::Duration>,
}

/// The services that may obtain service tokens, with their secrets (`IMMILINK_SERVICE_CREDENTIALS`).
pub type ServiceCredentials = immilink_shared::config::NamedSecrets;

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(None)
    }

    /// As [`Settings::from_env`], with the secrets given by the launcher.
    pub fn from_env_with(secrets: Option<(ServiceSecrets, ServiceCredentials)>) -> Result<Self, ConfigError> {
        let (secrets, credentials) = match secrets {
            Some((secrets, credentials)) => (Some(secrets), Some(credentials)),
            None => (None, None),
        };
        let service = ServiceSettings::from_env(SERVICE, 8081, secrets)?;
        let service_credentials = match credentials {
            Some(credentials) => credentials,
            None => ServiceCredentials::from_env("SERVICE_CREDENTIALS")?,
        };
        let embedded = service.is_embedded();
        Ok(Self {
            signing_key_file: config::string_or("SIGNING_KEY_FILE", "./data/keys/identity-ed25519.pk8").into(),
            generate_signing_key: embedded,
            demo: config::flag_or("DEMO", embedded)?,
            token_ttl: Duration::seconds(config::parse_or("TOKEN_TTL_SECONDS", 900)?),
            idle_timeout: Duration::seconds(config::parse_or("IDLE_TIMEOUT_SECONDS", 900)?),
            previous_signing_key_files: config::var("PREVIOUS_SIGNING_KEY_FILES")
                .map(|list| list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect())
                .unwrap_or_default(),
            vendors_url: config::string_or("VENDORS_URL", "http://127.0.0.1:8084"),
            audit_url: config::string_or("AUDIT_URL", "http://127.0.0.1:8083"),
            nia_url: config::string_or("NIA_URL", "http://127.0.0.1:8085"),
            nia_api_key: config::var("NIA_API_KEY").map(Secret::new),
            nia_tls: UpstreamTls::from_env()?,
            smtp_url: config::var("SMTP_URL"),
            smtp_ca_file: config::var("SMTP_CA_FILE").map(PathBuf::from),
            smtp_from: config::string_or("SMTP_FROM", "immilink <no-reply@immilink.invalid>"),
            login_concurrency: config::parse_or("LOGIN_CONCURRENCY", 1)?,
            service_credentials,
            background_interval: std::time::Duration::from_millis(config::parse_or("IDENTITY_BACKGROUND_MS", 2000)?),
            link_sweep_interval: match config::parse_or("LINK_SWEEP_INTERVAL_SECS", 600_u64)? {
                0 => None,
                seconds => Some(std::time::Duration::from_secs(seconds)),
            },
            service,
        })
    }
}

/// Everything the handlers share.
pub struct State {
    pub db: Db,
    pub keys: SigningKeys,
    pub clock: SharedClock,
    pub token_ttl: Duration,
    pub idle_timeout: Duration,
    pub service_credentials: ServiceCredentials,
    pub vendors: clients::VendorsClient,
    pub nia: clients::NiaClient,
    pub hasher: workflow::PasswordHasher,
    pub notifier: notifier::Notifier,
    /// Delivers the outbox to the audit service; woken after commits that add events.
    pub relay: Relay,
    /// Failed logins per client IP (throttling before the per-account lockout).
    pub login_failures: immilink_shared::rate_limit::RateLimiter<std::net::IpAddr>,
    /// Account applications per client IP: the submission endpoint needs no token.
    pub application_submissions: immilink_shared::rate_limit::RateLimiter<std::net::IpAddr>,
}

/// Failed logins one IP may make per window before it is told to wait.
pub const LOGIN_FAILURES_PER_IP: u32 = 20;
pub const LOGIN_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
pub const APPLICATIONS_PER_IP: u32 = 10;
pub const APPLICATION_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink identity", description = "Accounts, login, sessions and token keys."),
    modifiers(&BearerSecurity),
    tags(
        (name = "sessions", description = "Login, logout and the caller"),
        (name = "applications", description = "Account applications and their reviews (R-ACC-01..04, 08)"),
        (name = "accounts", description = "The account lifecycle: HR events, suspension, lost certificates, IP bindings, manager handover (R-ACC-05..11)"),
        (name = "agency links", description = "Agency links with the immigration agency: applications and changes, per-item decisions, suspension, resumption, termination, necessity reviews, dormancy and anomaly notices (R-LINK-01..12, R-AUD-09)"),
        (name = "health")
    )
)]
struct ApiDoc;

/// The generated OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

const ROUTES: Routes = Routes {
    service: SERVICE,
    doc: ApiDoc::openapi,
    public: routes::configure,
    internal: routes::configure_internal,
    serve_document: true,
};

pub struct Application;

impl Application {
    /// Connects and migrates the database, seeds demo data if asked, loads the signing key, starts
    /// the audit relay and the background work, and binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
        if settings.demo {
            let now = clock.now();
            let created = db.run(move |conn| domain::demo::seed(conn, now)).await?;
            if created > 0 {
                tracing::info!(created, "seeded demo agencies and users");
            }
        }
        let keys = SigningKeys::load_with_previous(
            &settings.signing_key_file,
            settings.generate_signing_key,
            &settings.previous_signing_key_files,
        )?;
        let verifier = TokenVerifier::from_jwks(&keys.jwks())?;
        let http = outbound_client()?;
        let own_tokens = {
            let (kid, key) = (keys.kid().to_owned(), keys.encoding_key().clone());
            Arc::new(ServiceTokens::local(move || tokens::issue_service(&kid, &key, SERVICE)))
        };
        let relay = Relay::new(db.clone(), clock.clone(), http.clone(), &settings.audit_url, own_tokens.clone());
        let state = Arc::new(State {
            db: db.clone(),
            keys,
            relay: relay.clone(),
            clock,
            token_ttl: settings.token_ttl,
            idle_timeout: settings.idle_timeout,
            vendors: clients::VendorsClient::new(http.clone(), &settings.vendors_url, own_tokens),
            nia: clients::NiaClient::new(
                settings.nia_tls.client("NIA_URL", &settings.nia_url)?,
                &settings.nia_url,
                settings.nia_api_key.clone(),
            ),
            service_credentials: settings.service_credentials.clone(),
            hasher: workflow::PasswordHasher::new(settings.login_concurrency, std::time::Duration::from_secs(5)),
            notifier: notifier::Notifier::from_settings(
                settings.smtp_url.as_deref(),
                settings.smtp_ca_file.as_deref(),
                &settings.smtp_from,
            )?,
            login_failures: immilink_shared::rate_limit::RateLimiter::new(LOGIN_FAILURES_PER_IP, LOGIN_FAILURE_WINDOW),
            application_submissions: immilink_shared::rate_limit::RateLimiter::new(
                APPLICATIONS_PER_IP,
                APPLICATION_WINDOW,
            ),
        });
        let mut server = Server::new(&settings.service.addr, settings.service.workers, ROUTES)
            .data(web::Data::from(Arc::clone(&state)))
            .data(web::Data::new(db))
            .data(web::Data::new(verifier))
            .task(workflow::background(Arc::clone(&state), settings.background_interval))
            .gauges(Arc::new(relay.clone()))
            .task(relay.run());
        if let Some(every) = settings.link_sweep_interval {
            server = server.task(run_link_sweep(state, every));
        }
        if let Some(token) = MetricsToken::configured(&settings.service) {
            server = server.data(web::Data::new(token));
        }
        Ok(server.start()?)
    }
}

/// The link sweep on a timer (the embedded mode); Kubernetes runs `immilink-identity link-sweep` as
/// a CronJob instead. Idempotent: run as often as wanted.
async fn run_link_sweep(state: Arc<State>, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match link_sweep_once(&state.db, &state.clock).await {
            Ok(_) => state.relay.wake(),
            Err(err) => tracing::error!(error = %err, "link sweep failed; it runs again at the next tick"),
        }
    }
}

/// One link sweep (R-LINK-06..10, 12, R-AUD-09), logged.
pub async fn link_sweep_once(
    db: &Db,
    clock: &SharedClock,
) -> Result<domain::link_sweep::SweepRun, domain::IdentityError> {
    let now = clock.now();
    let run = db.run(move |conn| domain::link_sweep::sweep(conn, now)).await?;
    tracing::info!(?run, "link sweep run");
    Ok(run)
}

/// `immilink-identity link-sweep`: one sweep against the configured database, for a CronJob. Its
/// audit events wait in the outbox for the service's relay.
pub async fn link_sweep_command(
    settings: Settings,
    clock: SharedClock,
) -> anyhow::Result<domain::link_sweep::SweepRun> {
    let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
    Ok(link_sweep_once(&db, &clock).await?)
}
