//! HTTP handlers: parse the request into domain types, authorize, call one domain function, map the
//! record to its response. Request and response DTOs and their OpenAPI derives live here.

pub(crate) mod batches;
mod catalogue;
mod doubt_queries;
pub(crate) mod lookups;
mod problems;
mod proxy_authorizations;
pub(crate) mod purpose_approvals;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::server::healthz)
        .service(immilink_shared::server::readyz)
        .service(lookups::create)
        .service(batches::create)
        .service(batches::list)
        .service(batches::status)
        .service(batches::results)
        .service(catalogue::legal_bases)
        .service(catalogue::purposes)
        .service(catalogue::query_types)
        .service(proxy_authorizations::create)
        .service(proxy_authorizations::list)
        .service(proxy_authorizations::get)
        .service(proxy_authorizations::revoke)
        .service(purpose_approvals::create)
        .service(purpose_approvals::list)
        .service(purpose_approvals::get)
        .service(purpose_approvals::decide)
        .service(doubt_queries::create)
        .service(doubt_queries::list)
        .service(doubt_queries::get)
        .service(doubt_queries::follow_up)
        .service(doubt_queries::form);
}
