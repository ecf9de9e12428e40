mod admin;
mod queries;
mod reviews;
mod witness;

use actix_web::{get, HttpResponse};
use immilink_shared::server::Health;
use utoipa_actix_web::service_config::ServiceConfig;

pub use admin::ADMIN_KEY_HEADER;
pub use queries::{AGENCY_HEADER, API_KEY_HEADER, LOOKUP_ID_HEADER};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::server::healthz).service(readyz).service(queries::query).service(reviews::create);
}

/// The test harness's endpoints and the witness's (plain-text protocol endpoints the audit service
/// calls), left out of the OpenAPI document.
pub fn configure_admin(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(admin::set_review_policy)
        .service(admin::get_faults)
        .service(admin::set_faults)
        .service(admin::reset_faults)
        .service(admin::list_calls)
        .service(admin::clear_calls)
        .service(witness::add_checkpoint)
        .service(witness::latest);
}

/// Readiness: the mock has no dependencies.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health)))]
#[get("/readyz")]
async fn readyz() -> HttpResponse {
    Health::respond(crate::SERVICE, Vec::new())
}
