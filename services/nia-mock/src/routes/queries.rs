//! `POST /v1/queries/{query_type}`: one query for one subject. Each call is logged on arrival, then
//! goes through the injected faults, the agency's credential, the agency's approved items and the
//! body, in that order, before the synthetic answer is given.

use actix_web::{post, web, HttpRequest, HttpResponse, ResponseError};
use immilink_shared::catalogue::QueryType;
use immilink_shared::extractors::parse_json;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::calls::{Arrival, CLIENT_CLOSED};
use crate::synthetic::{self, QueryAnswer, SubjectError};
use crate::State;

pub const API_KEY_HEADER: &str = "x-nia-api-key";
pub const AGENCY_HEADER: &str = "x-nia-agency";
/// The broker's lookup the call belongs to; only logged.
pub const LOOKUP_ID_HEADER: &str = "x-immilink-lookup-id";

#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// National ID, UI number or (for the query types that take one) passport number.
    #[schema(example = "A123456789")]
    pub subject_id: String,
}

/// Run one query of the given type for one subject.
///
/// The caller names its agency in `x-nia-agency` and presents that agency's key in `x-nia-api-key`;
/// the agency must be approved for the query type. The answer says `found: false` when the agency
/// holds no such record for the subject.
#[utoipa::path(post, path = "/v1/queries/{query_type}", tag = "queries", request_body = QueryRequest,
    params(
        ("query_type" = String, Path, description = "Query type code"),
        ("x-nia-agency" = String, Header, description = "The calling agency's code, e.g. `TPE-SW`"),
        ("x-nia-api-key" = String, Header, description = "The calling agency's key"),
        ("x-immilink-lookup-id" = Option<String>, Header, description = "The broker's lookup id (logged)")),
    responses(
        (status = 200, body = QueryAnswer),
        (status = 401, description = "Unknown agency or wrong key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agency is not approved for this query type (`item_not_approved`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown query type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid subject ID", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 500, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
        (status = 504, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/queries/{query_type}")]
pub async fn query(
    req: HttpRequest,
    state: web::Data<State>,
    query_type: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let call = LoggedCall::arrive(&state, arrival(&req, &query_type, &body));
    let response = match run(&req, &state, &query_type, &body).await {
        Ok(response) => response,
        Err(err) => err.error_response(),
    };
    call.answered(response.status().as_u16());
    response
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn arrival(req: &HttpRequest, query_type: &str, body: &[u8]) -> Arrival {
    Arrival {
        agency: header(req, AGENCY_HEADER),
        query_type: query_type.to_owned(),
        subject_id: serde_json::from_slice::<QueryRequest>(body).ok().map(|q| q.subject_id),
        lookup_id: header(req, LOOKUP_ID_HEADER),
    }
}

/// A call's entry in the log; if the handler is dropped before answering (the caller hung up), the
/// entry is closed with 499.
struct LoggedCall {
    state: web::Data<State>,
    seq: u64,
    answered: bool,
}

impl LoggedCall {
    fn arrive(state: &web::Data<State>, arrival: Arrival) -> Self {
        let seq = state.calls.start(state.clock.now(), arrival);
        Self { state: state.clone(), seq, answered: false }
    }

    fn answered(mut self, status: u16) {
        self.state.calls.finish(self.seq, status);
        self.answered = true;
    }
}

impl Drop for LoggedCall {
    fn drop(&mut self) {
        if !self.answered {
            self.state.calls.finish(self.seq, CLIENT_CLOSED);
        }
    }
}

async fn run(req: &HttpRequest, state: &State, query_type: &str, body: &[u8]) -> ApiResult<HttpResponse> {
    let plan = state.faults.admit()?;
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let agency = authenticate(req, state)?;
    let query_type =
        QueryType::parse(query_type).ok_or_else(|| ApiError::not_found("the query type").field("query_type"))?;
    authorize(state, agency.as_deref(), query_type)?;
    let request: QueryRequest = parse_json(body)?;
    if let Some(failure) = plan.failure {
        return Err(failure.strike().await);
    }
    tracing::info!(agency = agency.as_deref().unwrap_or("-"), query_type = query_type.code(), "upstream query");
    let answer = synthetic::answer(query_type, &request.subject_id, state.clock.now()).map_err(subject_problem)?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The calling agency, proven by its key. Without configured keys (standalone development) anyone is
/// accepted, under the agency it names, if any.
fn authenticate(req: &HttpRequest, state: &State) -> ApiResult<Option<String>> {
    let agency = header(req, AGENCY_HEADER).map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    if state.agency_keys.is_empty() {
        return Ok(agency);
    }
    let agency = agency
        .ok_or_else(|| ApiError::unauthenticated("name the calling agency in x-nia-agency").field(AGENCY_HEADER))?;
    let expected = state.agency_keys.get(&agency).ok_or_else(|| {
        ApiError::unauthenticated("the agency has no access to the query service").field(AGENCY_HEADER)
    })?;
    match header(req, API_KEY_HEADER) {
        Some(key) if expected.matches(&key) => Ok(Some(agency)),
        _ => Err(ApiError::unauthenticated("a valid API key of the agency is required").field(API_KEY_HEADER)),
    }
}

/// The agency must be approved for the query type. An agency the mock has no approvals for is refused
/// too, unless no keys are configured (then it is some developer's ad-hoc caller).
fn authorize(state: &State, agency: Option<&str>, query_type: QueryType) -> ApiResult<()> {
    let Some(agency) = agency else {
        return Ok(());
    };
    match state.agency_items.approved(agency) {
        Some(items) if items.contains(&query_type) => Ok(()),
        None if state.agency_keys.is_empty() => Ok(()),
        _ => Err(ApiError::forbidden(
            "item_not_approved",
            format!("agency {agency} is not approved for the data item {}", query_type.code()),
        )
        .field("query_type")),
    }
}

fn subject_problem(err: SubjectError) -> ApiError {
    ApiError::invalid_field("subject_id", err.to_string())
}

/// The single key of account reviews (`IMMILINK_NIA_API_KEY`), which identity presents.
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
