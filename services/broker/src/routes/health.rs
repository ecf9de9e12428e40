use actix_web::{get, web, HttpResponse};
use immilink_shared::http::{Health, HealthCheck};

use crate::{State, SERVICE};

/// Readiness: 200 only when the broker database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health), (status = 503, body = Health)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    let db = state.db.ping().await;
    Health::respond(
        SERVICE,
        vec![HealthCheck { name: "database".into(), ok: db.is_ok(), error: db.err().map(|e| e.to_string()) }],
    )
}
