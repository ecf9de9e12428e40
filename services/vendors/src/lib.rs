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
use immilink_shared::config::{ConfigError, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::server::{Routes, Running, Service};
use utoipa::OpenApi;

pub const SERVICE: &str = "vendors";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/vendors/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/vendors/sqlite"),
};

/// Vendors reads only the common service settings (default port 8084).
pub type Settings = ServiceSettings;

/// `IMMILINK_VENDORS_*` and the common variables; the launcher passes the secrets it generated.
pub fn settings_from_env(secrets: Option<ServiceSecrets>) -> Result<Settings, ConfigError> {
    ServiceSettings::from_env(SERVICE, 8084, secrets)
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
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
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let service = Service::open(settings, &MIGRATIONS).await?;
        let state = web::Data::new(State { db: service.db.clone(), clock });
        Ok(service.server(ROUTES).data(state).start()?)
    }
}
