//! HTTP handlers: parse, authorise, call a domain function, map the result.

mod catalogue;
mod lookups;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::http::healthz)
        .service(immilink_shared::http::readyz)
        .service(lookups::create)
        .service(catalogue::legal_bases)
        .service(catalogue::purposes)
        .service(catalogue::query_types);
}
