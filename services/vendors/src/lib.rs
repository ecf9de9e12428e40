//! immilink vendors: contractors and their personnel (R-VEN-06, R-VEN-08; identity checks applicants
//! against active personnel for R-ACC-08), and in later issues their contracts, agreements, devices and
//! incidents (R-VEN).

pub mod domain;
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
    /// `IMMILINK_VENDORS_ADDR` (default `127.0.0.1:8084`), `IMMILINK_VENDORS_DATABASE_URL`, …
    pub service: ServiceSettings,
    /// `IMMILINK_AUDIT_URL`, default `http://127.0.0.1:8083`: where the outbox relay delivers the
    /// vendors service's audit events.
    pub audit_url: String,
}

/// `IMMILINK_VENDORS_*` and the common variables; the launcher passes the secrets it generated.
pub fn settings_from_env(secrets: Option<ServiceSecrets>) -> Result<Settings, ConfigError> {
    Ok(Settings {
        service: ServiceSettings::from_env(SERVICE, 8084, secrets)?,
        audit_url: config::string_or("AUDIT_URL", "http://127.0.0.1:8083"),
    })
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
    /// Delivers the outbox to the audit service; woken after commits that add events.
    pub relay: Relay,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink vendors", description = "Contractors and their personnel."),
    modifiers(&BearerSecurity),
    tags((name = "vendors", description = "Contractor registration and personnel"), (name = "health"))
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
    /// Opens the database, starts the audit relay and binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let service = Service::open(settings.service, &MIGRATIONS).await?;
        let relay = Relay::new(
            service.db.clone(),
            clock.clone(),
            service.http.clone(),
            &settings.audit_url,
            service.tokens.clone(),
        );
        let state = web::Data::new(State { db: service.db.clone(), clock, relay: relay.clone() });
        Ok(service.server(ROUTES).data(state).task(relay.run()).start()?)
    }
}
