use actix_web::{get, web};
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};

use crate::chain::{self, Verification};
use crate::State;

/// Walk the hash chain and report whether every record is intact (R-AUD-02).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = Verification),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/verify")]
pub async fn verify(state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Verification>> {
    caller.claims.require_any_role(super::READERS)?;
    let result = state.db.run(chain::verify).await.map_err(ApiError::from)?;
    if !result.ok {
        tracing::error!(first_bad_sequence = ?result.first_bad_sequence, "audit chain verification failed");
    }
    Ok(web::Json(result))
}
