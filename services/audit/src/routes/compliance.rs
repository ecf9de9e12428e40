//! `GET /v1/compliance/rules`: every SPEC rule with its status, the endpoints that enforce it and the
//! tests that prove it (R-GOV-01).

use actix_web::{get, web};
use immilink_shared::compliance::ComplianceMatrix;
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};

use crate::domain::compliance;

/// The compliance matrix. Endpoints are listed as `METHOD /path`; tests by name and source file. A
/// rule is `enforced` when endpoints declare it and tests prove it, `enforced_in_background` when
/// tests prove it and it is enforced by background work or on every request.
#[utoipa::path(get, path = "/v1/compliance/rules",
    extensions(("x-immilink-rules" = json!(["R-GOV-01"]))),
    tag = "compliance", security(("bearer" = [])), responses(
    (status = 200, body = ComplianceMatrix),
    (status = 403, description = "Only auditors, ethics officers, account managers and the immigration agency's reviewers read it", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/compliance/rules")]
pub async fn rules(caller: Authenticated) -> ApiResult<web::Json<&'static ComplianceMatrix>> {
    compliance::matrix(&caller.caller()).map(web::Json).map_err(ApiError::from)
}
