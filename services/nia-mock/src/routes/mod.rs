mod admin;
mod queries;
mod reviews;

use actix_web::{get, HttpResponse};
use immilink_shared::http::Health;
use utoipa_actix_web::service_config::ServiceConfig;

pub use admin::ADMIN_KEY_HEADER;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::http::healthz).service(readyz).service(queries::query).service(reviews::create);
}

/// The test harness's endpoints, left out of the OpenAPI document.
pub fn configure_admin(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(admin::set_review_policy);
}

/// Readiness: the mock has no dependencies.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health)))]
#[get("/readyz")]
async fn readyz() -> HttpResponse {
    Health::respond(crate::SERVICE, Vec::new())
}
