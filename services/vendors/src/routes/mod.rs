//! HTTP handlers: parse, authorize, call a domain function, map the result. Request and response
//! DTOs live beside their handlers; `problems` turns the service's errors into problems.

pub(crate) mod internal;
mod personnel;
mod problems;
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
