//! HTTP handlers: parse, authorize, call a domain function, map the result. Request and response
//! DTOs live beside their handlers; `problems` turns the service's errors into problems.

mod audits;
mod contracts;
mod devices;
mod incidents;
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
        .service(personnel::depart)
        // --- contracts and personnel
        .service(contracts::create)
        .service(contracts::list)
        .service(contracts::get)
        .service(contracts::file_certificate)
        .service(contracts::activate)
        .service(contracts::end)
        .service(personnel::get_one)
        .service(personnel::suitability_check)
        .service(personnel::agreement)
        .service(personnel::change_role)
        // --- devices, incidents, audits
        .service(devices::register)
        .service(devices::list_for_contract)
        .service(devices::attest)
        .service(devices::retire)
        .service(devices::list_for_agency)
        .service(incidents::report)
        .service(incidents::list)
        .service(audits::record)
        .service(audits::list)
        .service(audits::remediate)
        .service(audits::close)
        .service(audits::list_findings);
}

/// Routes for other immilink services only, left out of the OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::personnel_lookup).service(internal::personnel_access);
}
