//! HTTP handlers: parse, authorise, call a domain function, map the result.

pub(crate) mod internal;
mod personnel;
mod vendors;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::server::healthz)
        .service(immilink_shared::server::readyz)
        .service(vendors::create)
        .service(vendors::list)
        .service(personnel::add)
        .service(personnel::list)
        .service(personnel::depart);
}

/// Routes for other immilink services only, left out of the OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::personnel_lookup);
}

/// Roles that manage an agency's contractors.
pub const MANAGERS: &[&str] = &["vendor_manager", "account_manager"];
