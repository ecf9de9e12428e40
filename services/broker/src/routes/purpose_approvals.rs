//! Unit-supervisor approvals of "other business" purposes (R-QRY-10).

use actix_web::{get, post, web, HttpResponse};
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{ApiJson, ApiQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;

use crate::domain::approvals::{
    self, ApprovalFilter, DecisionBody, NewPurposeApproval, ParsedDecision, PurposeApprovalBody, PurposeApprovalView,
};
use crate::domain::forms::Caller;
use crate::State;

/// Ask the unit supervisor to approve a purpose that needs it (R-QRY-10), for one case.
///
/// Only purposes whose catalogue entry has `requires_supervisor_approval` are accepted. The request
/// records the caller's unit: a supervisor of that unit decides.
#[utoipa::path(post, path = "/v1/purpose-approvals", tag = "purpose-approvals", security(("bearer" = [])),
    request_body = PurposeApprovalBody,
    responses(
        (status = 201, body = PurposeApprovalView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a caseworker, or the account has no unit", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request for this case and purpose is already pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid, or the purpose needs no approval", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/purpose-approvals")]
pub async fn create(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<PurposeApprovalBody>,
) -> ApiResult<HttpResponse> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let new = NewPurposeApproval::parse(body.into_inner())?;
    let view = state.db.run(move |conn| approvals::request(conn, now, &caller, &new)).await?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(view))
}

/// The caller's own requests; a unit supervisor also sees their unit's, account managers and
/// auditors their agency's. Newest first.
#[utoipa::path(get, path = "/v1/purpose-approvals", tag = "purpose-approvals", security(("bearer" = [])),
    params(ApprovalFilter),
    responses(
        (status = 200, body = Vec<PurposeApprovalView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown filter value", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/purpose-approvals")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ApprovalFilter>,
) -> ApiResult<web::Json<Vec<PurposeApprovalView>>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let filter = query.into_inner();
    Ok(web::Json(state.db.run(move |conn| approvals::list(conn, now, &caller, &filter)).await?))
}

/// One request, for its requester, the supervisors of its unit, and the account managers and
/// auditors of its agency.
#[utoipa::path(get, path = "/v1/purpose-approvals/{id}", tag = "purpose-approvals", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = PurposeApprovalView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/purpose-approvals/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<PurposeApprovalView>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let id = id.into_inner();
    Ok(web::Json(state.db.run(move |conn| approvals::get(conn, now, &caller, &id)).await?))
}

/// Approve or reject a pending request: a unit supervisor of the requester's unit, never for their
/// own request (separation of duties). An approval lasts 30 days unless `valid_until` says otherwise
/// (at most 90); a rejection needs a reason. Decided once.
#[utoipa::path(post, path = "/v1/purpose-approvals/{id}/decision", tag = "purpose-approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = DecisionBody,
    responses(
        (status = 200, body = PurposeApprovalView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a supervisor of the requester's unit, or their own request", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/purpose-approvals/{id}/decision")]
pub async fn decide(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<DecisionBody>,
) -> ApiResult<web::Json<PurposeApprovalView>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let decision = ParsedDecision::parse(body.into_inner(), now)?;
    let id = id.into_inner();
    let view = state.db.run(move |conn| approvals::decide(conn, now, &caller, &id, &decision)).await?;
    state.relay.wake();
    Ok(web::Json(view))
}

#[cfg(test)]
mod tests {
    #[test]
    fn r_qry_10_purpose_approval_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method, statuses) in [
            ("/v1/purpose-approvals", "post", &["201", "403", "409", "422"][..]),
            ("/v1/purpose-approvals", "get", &["200", "401"][..]),
            ("/v1/purpose-approvals/{id}", "get", &["200", "404"][..]),
            ("/v1/purpose-approvals/{id}/decision", "post", &["200", "403", "404", "409", "422"][..]),
        ] {
            for status in statuses {
                assert!(paths[path][method]["responses"][status].is_object(), "{method} {path} {status}");
            }
        }
    }
}
