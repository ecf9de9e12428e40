//! HTTP handlers: parse, authorise, call a domain function, map the result.

mod auth;
mod internal;
mod jwks;
mod me;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::http::healthz)
        .service(immilink_shared::http::readyz)
        .service(jwks::jwks)
        .service(auth::login)
        .service(auth::logout)
        .service(me::me);
}

/// Internal routes, registered outside the public OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::session_liveness);
}
