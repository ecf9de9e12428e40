mod queries;

use actix_web::{get, HttpResponse};
use immilink_shared::http::Health;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::http::healthz).service(readyz).service(queries::query);
}

/// Readiness: the mock has no dependencies.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health)))]
#[get("/readyz")]
async fn readyz() -> HttpResponse {
    Health::respond(crate::SERVICE, Vec::new())
}
