//! HTTP handlers: parse, authorise, call a domain function, map the result.

mod internal;
mod records;
mod verify;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::server::healthz)
        .service(immilink_shared::server::readyz)
        .service(verify::verify)
        .service(records::search)
        .service(records::get);
}

/// Internal routes, registered outside the public OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::ingest);
}

/// Roles that may read the audit log.
pub const READERS: &[&str] = &["auditor", "account_manager", "ethics_officer", "nia_reviewer", "unit_supervisor"];
/// Roles that see every agency's records; the others see their own agency's only.
pub const CROSS_AGENCY: &[&str] = &["auditor", "nia_reviewer"];
