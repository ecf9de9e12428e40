//! immilink audit: the append-only, hash-chained audit log (R-AUD-02), with an RFC 6962 Merkle tree
//! over its records. Services deliver events to `/internal/v1/events` (idempotent by event id);
//! authorized roles search records, verify the log and fetch inclusion and consistency proofs.
//!
//! Invariants: records are never updated or deleted (database triggers refuse it on both backends);
//! every append goes through [`domain::chain::append`], which serialises on the chain head and
//! writes the records' Merkle tree hashes in the same transaction.

pub mod domain;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{ConfigError, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::server::{Routes, Running, Service};
use utoipa::OpenApi;

pub const SERVICE: &str = "audit";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/audit/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/audit/sqlite"),
};

/// Audit reads only the common service settings (default port 8083).
pub type Settings = ServiceSettings;

/// `IMMILINK_AUDIT_*` and the common variables; the launcher passes the secrets it generated.
pub fn settings_from_env(secrets: Option<ServiceSecrets>) -> Result<Settings, ConfigError> {
    ServiceSettings::from_env(SERVICE, 8083, secrets)
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink audit", description = "The hash-chained audit log."),
    modifiers(&BearerSecurity),
    tags((name = "audit", description = "Audit records and chain verification"), (name = "health"))
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
        let tree_size = service
            .db
            .run(domain::chain::complete_tree)
            .await
            .map_err(|err: domain::AuditError| anyhow::anyhow!(err))?;
        tracing::info!(tree_size, "audit log Merkle tree complete");
        let state = web::Data::new(State { db: service.db.clone(), clock });
        Ok(service.server(ROUTES).data(state).start()?)
    }
}
