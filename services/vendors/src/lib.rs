//! immilink vendors: contractors, their contracts (R-VEN-02) and personnel: suitability checks
//! (R-VEN-01), confidentiality agreements (R-VEN-04), offboarding (R-VEN-06) and registration
//! (R-VEN-08); identity checks applicants against active personnel for R-ACC-08.
//!
//! Two transactional outboxes leave this service, each written in the transaction of the change it
//! announces and delivered at least once by a task started in [`Application::build`]: audit events
//! (`outbox`, to audit, by the shared `Relay`) and personnel messages (`identity_messages`, to
//! identity, by [`identity_relay::IdentityRelay`]: offboarded → identity cancels every account of the
//! person and ends its sessions; registered → identity suspends the lookup grants of accounts the
//! person already holds). Handlers wake both relays after a commit.
//!
//! Dedicated machines (R-VEN-07), incident reports (R-VEN-03) and vendor audits with their findings
//! (R-VEN-05) hang on the vendors and contracts; their clock rules (attestations and findings fallen
//! overdue) are applied by the sweep ([`domain::sweep`]): a timer here
//! (`IMMILINK_VENDORS_SWEEP_INTERVAL_SECS`) and `immilink-vendors sweep` for a CronJob.

pub mod domain;
pub mod identity_relay;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;

pub use routes::internal::{PersonnelLookup, PersonnelLookupAnswer, PersonnelVendor};

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::outbox::Relay;
use immilink_shared::server::{Routes, Running, Service};
use utoipa::OpenApi;

pub const SERVICE: &str = "vendors";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/vendors/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/vendors/sqlite"),
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_VENDORS_ADDR` (default `127.0.0.1:8084`), `IMMILINK_VENDORS_DATABASE_URL`, …, and
    /// `IMMILINK_IDENTITY_URL` (default `http://127.0.0.1:8081`, `service.identity_url`): token keys,
    /// session liveness, service tokens, and where the identity relay delivers personnel messages
    /// (`/internal/v1/personnel-events`).
    pub service: ServiceSettings,
    /// `IMMILINK_AUDIT_URL`, default `http://127.0.0.1:8083`: where the outbox relay delivers the
    /// vendors service's audit events.
    pub audit_url: String,
    /// The configurable rules of dedicated machines and incidents.
    pub rules: VendorRules,
    /// `IMMILINK_VENDORS_SWEEP_INTERVAL_SECS`, default 600: how often the sweep flags overdue
    /// attestations and findings. In Kubernetes a CronJob runs `immilink-vendors sweep` instead, and
    /// this is 0: off (`None`).
    pub sweep_interval: Option<std::time::Duration>,
}

/// The configurable rules of dedicated machines (R-VEN-07) and incidents (R-VEN-03).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VendorRules {
    /// `IMMILINK_VENDOR_DEVICE_ATTESTATION_DAYS`, default 90 (1–366): a machine's next attestation is
    /// due this many days after the last.
    pub attestation_period: domain::devices::AttestationPeriod,
    /// `IMMILINK_VENDOR_INCIDENT_REPORT_HOURS`, default 1 (1–720): an incident reported later than this
    /// after the vendor learned of it is flagged late.
    pub incident_report_limit: domain::incidents::ReportLimit,
}

impl VendorRules {
    pub fn from_env() -> Result<Self, ConfigError> {
        let invalid = |name: &str| {
            let name = format!("IMMILINK_{name}");
            move |reason: String| ConfigError { name, reason }
        };
        let days =
            config::parse_or("VENDOR_DEVICE_ATTESTATION_DAYS", domain::devices::AttestationPeriod::DEFAULT_DAYS)?;
        let hours = config::parse_or("VENDOR_INCIDENT_REPORT_HOURS", domain::incidents::ReportLimit::DEFAULT_HOURS)?;
        Ok(Self {
            attestation_period: domain::devices::AttestationPeriod::days(days)
                .map_err(invalid("VENDOR_DEVICE_ATTESTATION_DAYS"))?,
            incident_report_limit: domain::incidents::ReportLimit::hours(hours)
                .map_err(invalid("VENDOR_INCIDENT_REPORT_HOURS"))?,
        })
    }
}

/// `IMMILINK_VENDORS_*` and the common variables; the launcher passes the secrets it generated.
pub fn settings_from_env(secrets: Option<ServiceSecrets>) -> Result<Settings, ConfigError> {
    Ok(Settings {
        service: ServiceSettings::from_env(SERVICE, 8084, secrets)?,
        audit_url: config::string_or("AUDIT_URL", "http://127.0.0.1:8083"),
        rules: VendorRules::from_env()?,
        sweep_interval: match config::parse_or("VENDORS_SWEEP_INTERVAL_SECS", 600_u64)? {
            0 => None,
            seconds => Some(std::time::Duration::from_secs(seconds)),
        },
    })
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
    /// Delivers the outbox to the audit service; woken after commits that add events.
    pub relay: Relay,
    /// Delivers personnel messages to identity; woken after commits that write one.
    pub identity_relay: identity_relay::IdentityRelay,
    /// The configurable rules of dedicated machines and incidents.
    pub rules: VendorRules,
}

impl State {
    /// After a commit that wrote audit events and personnel messages: both relays go at once.
    pub fn wake_relays(&self) {
        self.relay.wake();
        self.identity_relay.wake();
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink vendors", description = "Contractors, their contracts and personnel."),
    modifiers(&BearerSecurity),
    tags((name = "vendors", description = "Contractor registration, contracts and personnel"), (name = "health"))
)]
struct ApiDoc;

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
    /// Opens the database, starts the audit relay and the identity relay, and binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let service = Service::open(settings.service, &MIGRATIONS).await?;
        let relay = Relay::new(
            service.db.clone(),
            clock.clone(),
            service.http.clone(),
            &settings.audit_url,
            service.tokens.clone(),
        );
        let identity_relay = identity_relay::IdentityRelay::new(
            service.db.clone(),
            clock.clone(),
            service.http.clone(),
            &service.settings.identity_url,
            service.tokens.clone(),
        );
        let state = web::Data::new(State {
            db: service.db.clone(),
            clock,
            relay: relay.clone(),
            identity_relay: identity_relay.clone(),
            rules: settings.rules,
        });
        let mut server = service
            .server(ROUTES)
            .data(state.clone())
            .gauges(std::sync::Arc::new(relay.clone()))
            .task(relay.run())
            .task(identity_relay.run());
        if let Some(every) = settings.sweep_interval {
            server = server.task(run_sweep(state, every));
        }
        Ok(server.start()?)
    }
}

/// The sweep on a timer (the embedded mode); Kubernetes runs `immilink-vendors sweep` as a CronJob
/// instead. Idempotent: run as often as wanted.
async fn run_sweep(state: web::Data<State>, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep_once(&state.db, &state.clock).await {
            Ok(run) if !run.is_empty() => state.relay.wake(),
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "vendors sweep failed; it runs again at the next tick"),
        }
    }
}

/// One sweep (R-VEN-07 attestations, R-VEN-05 findings), logged.
pub async fn sweep_once(db: &Db, clock: &SharedClock) -> Result<domain::sweep::SweepRun, domain::VendorsError> {
    let now = clock.now();
    let run = db.run(move |conn| domain::sweep::sweep(conn, now)).await?;
    tracing::info!(?run, "vendors sweep run");
    Ok(run)
}

/// `immilink-vendors sweep`: one sweep against the configured database, for a CronJob. Its audit
/// events wait in the outbox for the service's relay.
pub async fn sweep_command(settings: Settings, clock: SharedClock) -> anyhow::Result<domain::sweep::SweepRun> {
    let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
    Ok(sweep_once(&db, &clock).await?)
}
