//! Account review (R-ACC-01's last step): identity submits an application the agency approved; the
//! immigration agency approves or rejects it.

use actix_web::{post, web, HttpRequest};
use immilink_shared::extractors::ApiJson;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::ToSchema;

use super::queries::check_api_key;
use crate::review::{self, AccountReview, RequestedGrant};
use crate::State;

#[derive(Debug, Deserialize, ToSchema)]
pub struct AccountReviewRequest {
    #[schema(required = true, nullable = false, min_length = 1, example = "0193a5b2-7c1e-7d2f-9a41-2b7d3c4e5f60")]
    pub application_id: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "TPE-SW")]
    pub agency_code: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "caseworker01")]
    pub username: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "0A1B2C3D")]
    pub certificate_serial: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "sw_social_assistance_act")]
    pub legal_basis: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "低收入戶資格審查")]
    pub business_handled: Option<String>,
    /// The (query type, purpose) pairs the account is to hold.
    #[schema(required = true, nullable = false)]
    pub grants: Option<Vec<GrantRequest>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantRequest {
    #[schema(required = true, nullable = false, min_length = 1, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
}

fn required(value: Option<String>, field: &str) -> ApiResult<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| ApiError::missing_field(field))
}

/// The application id and grants, once every required field is present.
fn parse(body: AccountReviewRequest) -> ApiResult<(String, Vec<RequestedGrant>)> {
    let application_id = required(body.application_id, "application_id")?;
    for (value, field) in [
        (body.agency_code, "agency_code"),
        (body.username, "username"),
        (body.certificate_serial, "certificate_serial"),
        (body.legal_basis, "legal_basis"),
        (body.business_handled, "business_handled"),
    ] {
        required(value, field)?;
    }
    let grants = body
        .grants
        .ok_or_else(|| ApiError::missing_field("grants"))?
        .into_iter()
        .enumerate()
        .map(|(i, grant)| {
            Ok(RequestedGrant {
                query_type: required(grant.query_type, &format!("grants[{i}].query_type"))?,
                purpose_code: required(grant.purpose_code, &format!("grants[{i}].purpose_code"))?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((application_id, grants))
}

/// Review an account application: approved or rejected, with a reason and the agency's reference.
#[utoipa::path(post, path = "/v1/account-reviews", tag = "reviews", request_body = AccountReviewRequest,
    responses(
        (status = 200, body = AccountReview),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/account-reviews")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    body: ApiJson<AccountReviewRequest>,
) -> ApiResult<web::Json<AccountReview>> {
    check_api_key(&req, &state)?;
    let (application_id, grants) = parse(body.into_inner())?;
    let setting = state.review_setting();
    let answer = review::decide(&application_id, &grants, &setting, state.clock.now());
    tracing::info!(application_id, decision = ?answer.decision, reference = answer.reference, "account review");
    Ok(web::Json(answer))
}
