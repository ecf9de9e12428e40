use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use immilink_shared::catalogue::QueryType;
use immilink_shared::http::ApiJson;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::synthetic::{self, EntryExitAnswer};
use crate::State;

pub const API_KEY_HEADER: &str = "x-nia-api-key";
pub const AGENCY_HEADER: &str = "x-nia-agency";

#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryRequest {
    #[schema(example = "A123456789")]
    pub subject_id: String,
}

/// Run one query of the given type for one subject.
#[utoipa::path(post, path = "/v1/queries/{query_type}", tag = "queries", request_body = QueryRequest,
    params(("query_type" = String, Path, description = "Query type code")),
    responses(
        (status = 200, body = EntryExitAnswer),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 501, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/queries/{query_type}")]
pub async fn query(
    req: HttpRequest,
    state: web::Data<State>,
    query_type: web::Path<String>,
    body: ApiJson<QueryRequest>,
) -> ApiResult<HttpResponse> {
    check_api_key(&req, &state)?;
    let query_type =
        QueryType::parse(&query_type).ok_or_else(|| ApiError::not_found("the query type").field("query_type"))?;
    let subject_id = body.into_inner().subject_id;
    let agency = req.headers().get(AGENCY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info!(agency, query_type = query_type.code(), "upstream query");
    match query_type {
        QueryType::EntryExitLastYear => {
            Ok(HttpResponse::Ok().json(synthetic::entry_exit_last_year(&subject_id, state.clock.now())))
        }
        other => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "query_type_not_provided",
            "This query type is not provided yet",
            "尚未提供此查詢項目",
        )
        .detail(format!("the mock does not answer {} yet", other.code()))),
    }
}

pub(super) fn check_api_key(req: &HttpRequest, state: &State) -> ApiResult<()> {
    let Some(expected) = &state.api_key else {
        return Ok(());
    };
    let presented = req.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    match presented {
        Some(key) if expected.matches(key) => Ok(()),
        _ => Err(ApiError::unauthenticated("a valid agency API key is required").field(API_KEY_HEADER)),
    }
}
