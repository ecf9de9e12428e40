use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest};
use immilink_shared::auth::Authenticated;
use immilink_shared::catalogue::QueryType;
use immilink_shared::http::{client_ip, ApiJson};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::lookup::{self, Outcome, Requester};
use crate::domain::request::{LookupBody, LookupRequest};
use crate::domain::BrokerDbError;
use crate::results::{minimise, LookupResult};
use crate::upstream::UpstreamAnswer;
use crate::State;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupResponse {
    pub lookup_id: String,
    /// Id of the audit record made before the query was forwarded (`GET /v1/audit/records/{id}`).
    pub audit_id: String,
    pub query_type: QueryType,
    /// The subject ID as normalised and validated.
    pub subject_id: String,
    /// Only the approved data items of the query type (R-QRY-07).
    pub result: LookupResult,
}

fn upstream_down(reason: &str) -> ApiError {
    tracing::warn!(reason, "upstream unavailable");
    ApiError::unavailable("upstream_unavailable", "the immigration agency's query service is not answering")
        .rule("R-QRY-09")
        .hint("if the case cannot wait, file a doubt query (疑義查詢表, 附件二) and send the official follow-up document within 3 days")
}

/// Run one purpose-bound lookup.
///
/// The declaration is checked (R-QRY-01, R-QRY-04), the caller's permission for the exact
/// (legal basis, purpose, query type) is checked (R-QRY-02), and the lookup's audit record is made
/// durable before the query is forwarded (R-QRY-08). The answer carries only the approved items.
#[utoipa::path(post, path = "/v1/lookups", tag = "lookups", security(("bearer" = [])), request_body = LookupBody,
    responses(
        (status = 200, body = LookupResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted (R-QRY-02)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01) or invalid subject ID (R-QRY-04)", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Upstream down: file a doubt query (R-QRY-09)", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/lookups")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<LookupBody>,
) -> ApiResult<web::Json<LookupResponse>> {
    let request = LookupRequest::parse(body.into_inner())?;
    let permissions = state.identity.permissions(&caller.claims.sid, &caller.token, client_ip(&req)).await?;
    request.authorise(&permissions)?;

    let who = Requester {
        user_id: caller.claims.sub.clone(),
        session_id: caller.claims.sid.clone(),
        agency: caller.claims.agency.clone(),
    };
    let now = state.clock.now();
    let to_record = request.clone();
    let recorded = state
        .db
        .run(move |conn| lookup::record_requested(conn, now, &who, &to_record))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();

    // Only now, with the audit record durable, is the query forwarded.
    let answer = state.nia.query(request.query_type, request.subject.as_str(), &caller.claims.agency).await;
    let (outcome, reply) = interpret(request.query_type, answer);
    let finished = state.clock.now();
    let lookup_id = recorded.lookup_id.clone();
    state
        .db
        .run(move |conn| lookup::record_outcome(conn, finished, &lookup_id, &outcome))
        .await
        .map_err(|err: BrokerDbError| ApiError::from(err))?;
    state.relay.wake();
    let result = reply?;
    Ok(web::Json(LookupResponse {
        lookup_id: recorded.lookup_id,
        audit_id: recorded.audit_id,
        query_type: request.query_type,
        subject_id: request.subject.as_str().to_owned(),
        result,
    }))
}

/// Turns the upstream's answer into what is recorded and what the caller gets.
fn interpret(query_type: QueryType, answer: UpstreamAnswer) -> (Outcome, Result<LookupResult, ApiError>) {
    match answer {
        UpstreamAnswer::Ok(body) => match minimise(query_type, &body) {
            Ok(result) => {
                (Outcome { status: lookup::SUCCEEDED, upstream_status: Some(200), failure: None }, Ok(result))
            }
            Err(err) => (
                Outcome { status: lookup::FAILED, upstream_status: Some(200), failure: Some(err.to_string()) },
                Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_malformed",
                    "The upstream answer was not usable",
                    "上游回應無法使用",
                )
                .detail(err.to_string())),
            ),
        },
        UpstreamAnswer::Rejected { status, detail } => (
            Outcome { status: lookup::FAILED, upstream_status: Some(status), failure: Some(detail.clone()) },
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_rejected",
                "The upstream refused the query",
                "上游拒絕查詢",
            )
            .detail(format!("the immigration service answered {status}"))),
        ),
        UpstreamAnswer::Unavailable { status, reason } => (
            Outcome { status: lookup::FAILED, upstream_status: status, failure: Some(reason.clone()) },
            Err(upstream_down(&reason)),
        ),
    }
}
