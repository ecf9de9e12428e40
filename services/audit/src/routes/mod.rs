//! HTTP handlers: parse, authorize, call a domain function, map the result. Request and response
//! DTOs live beside their handlers; `problems` turns the service's errors into problems.

mod accesses;
mod checkpoints;
mod compliance;
mod export;
mod findings;
mod holds;
mod internal;
mod problems;
mod proofs;
mod query_records;
mod records;
mod reviews;
mod samples;
mod self_audits;
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
        .service(records::get)
        .service(compliance::rules);
    query_records::configure(cfg);
    reviews::configure(cfg);
    samples::configure(cfg);
    self_audits::configure(cfg);
    findings::configure(cfg);
    accesses::configure(cfg);
}

/// Internal routes, registered outside the public OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::ingest);
}

/// Whether the request's Accept header names `media` (a type such as `text/csv`), ignoring
/// parameters and case: the one content negotiation of the audit service's documents.
pub(crate) fn accepts(req: &actix_web::HttpRequest, media: &str) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(media)))
}
