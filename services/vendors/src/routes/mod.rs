//! HTTP handlers: parse, authorise, call a domain function, map the result.

mod vendors;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::http::healthz)
        .service(immilink_shared::http::readyz)
        .service(vendors::create)
        .service(vendors::list);
}

/// Roles that manage an agency's contractors.
pub const MANAGERS: &[&str] = &["vendor_manager", "account_manager"];
