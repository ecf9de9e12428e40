use actix_web::{get, web};
use immilink_shared::auth::AccessClaims;
use immilink_shared::extractors::ApiQuery;
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};

use crate::chain::{self, AuditRecord, RecordFilter};
use crate::State;

fn sees_all_agencies(claims: &AccessClaims) -> bool {
    super::CROSS_AGENCY.iter().any(|role| claims.has_role(role))
}

/// Search audit records. Agency-bound roles only ever see their own agency's records.
#[utoipa::path(get, path = "/v1/audit/records", tag = "audit", security(("bearer" = [])), params(RecordFilter), responses(
    (status = 200, body = Vec<AuditRecord>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/records")]
pub async fn search(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<RecordFilter>,
) -> ApiResult<web::Json<Vec<AuditRecord>>> {
    caller.claims.require_any_role(super::READERS)?;
    let mut filter = filter.into_inner();
    if !sees_all_agencies(&caller.claims) {
        match &filter.agency {
            Some(agency) if agency != &caller.claims.agency => {
                return Err(
                    ApiError::forbidden("other_agency", "you may only read your own agency's records").field("agency")
                );
            }
            _ => filter.agency = Some(caller.claims.agency.clone()),
        }
    }
    let records = state.db.run(move |conn| chain::search(conn, &filter)).await.map_err(ApiError::from)?;
    Ok(web::Json(records))
}

/// One audit record by its id (the `audit_id` a lookup returns).
#[utoipa::path(get, path = "/v1/audit/records/{id}", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Audit record id")), responses(
    (status = 200, body = AuditRecord),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/records/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<AuditRecord>> {
    caller.claims.require_any_role(super::READERS)?;
    let id = id.into_inner();
    let record = state
        .db
        .run(move |conn| chain::find(conn, &id))
        .await
        .map_err(ApiError::from)?
        .filter(|r| sees_all_agencies(&caller.claims) || r.agency.as_deref() == Some(caller.claims.agency.as_str()))
        .ok_or_else(|| ApiError::not_found("the audit record"))?;
    Ok(web::Json(record))
}
