//! HTTP handlers: parse, authorize, call a domain function, map the result. Request and response
//! DTOs live beside their handlers; `problems` turns the service's errors into problems.

mod checkpoints;
mod export;
mod holds;
mod internal;
mod problems;
mod proofs;
mod records;
mod verify;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::server::healthz)
        .service(immilink_shared::server::readyz)
        .service(verify::verify)
        .service(records::search)
        .service(proofs::inclusion)
        .service(proofs::consistency)
        .service(checkpoints::log_key)
        .service(checkpoints::latest)
        .service(checkpoints::list)
        .service(checkpoints::issue)
        .service(export::export)
        .service(holds::place)
        .service(holds::list)
        .service(holds::lift)
        .service(records::get);
}

/// Internal routes, registered outside the public OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::ingest);
}
