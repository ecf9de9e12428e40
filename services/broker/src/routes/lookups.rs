use actix_web::{post, web, HttpRequest};
use chrono::{DateTime, Utc};
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::db::DbConn;
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{client_ip, ApiJson};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::lookup::{Context, ProxyContext, Requester};
use crate::domain::request::{LookupBody, LookupRequest};
use crate::domain::{approvals, proxy, BrokerError};
use crate::pipeline::{Accepted, Declared};
use crate::results::LookupResult;
use crate::State;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupResponse {
    pub lookup_id: String,
    /// Id of the audit record made before the query was forwarded (`GET /v1/audit/records/{id}`).
    pub audit_id: String,
    pub query_type: QueryType,
    /// The subject ID as normalised and validated.
    pub subject_id: String,
    /// R-QRY-06: the user this lookup was run for, under a proxy authorisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of_user_id: Option<String>,
    /// Only the approved data items of the query type (R-QRY-07).
    pub result: LookupResult,
}

/// Run one purpose-bound lookup.
///
/// The declaration is checked (R-QRY-01, R-QRY-04), the caller's permission for the exact
/// (legal basis, purpose, query type) is checked (R-QRY-02), as are a proxy authorisation when the
/// lookup runs on another's behalf (R-QRY-06) and the supervisor's approval for "other business"
/// (R-QRY-10). Every refusal names its rule and is itself audited. The lookup's audit record is made
/// durable before the query is forwarded (R-QRY-08); the answer carries only the approved items
/// (R-QRY-07).
#[utoipa::path(post, path = "/v1/lookups", tag = "lookups", security(("bearer" = [])), request_body = LookupBody,
    responses(
        (status = 200, body = LookupResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted (R-QRY-02), no valid proxy authorisation (R-QRY-06) or no supervisor approval (R-QRY-10)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01) or invalid subject ID (R-QRY-04)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Per-user or per-agency rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Upstream down: file a doubt query (R-QRY-09); or the audit trail cannot take the record (R-QRY-08)", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/lookups")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<LookupBody>,
) -> ApiResult<web::Json<LookupResponse>> {
    state.limits.admit(&caller.claims, 1)?;
    let body = body.into_inner();
    let declared = Declared::of(&body);
    let who = Requester::of(&caller.claims);
    let accepted = match accept(&req, &state, &caller, &who, body).await {
        Ok(accepted) => accepted,
        Err(refusal) => return Err(state.lookups.refuse(&who, &declared, refusal).await),
    };
    let (recorded, result) = state.lookups.run(&accepted).await?;
    Ok(web::Json(LookupResponse {
        lookup_id: recorded.lookup_id,
        audit_id: recorded.audit_id,
        query_type: accepted.request.query_type,
        subject_id: accepted.request.subject.as_str().to_owned(),
        on_behalf_of_user_id: accepted.context.proxy.map(|p| p.on_behalf_of_user_id),
        result,
    }))
}

/// Every check a lookup must pass before anything is recorded as forwarded.
async fn accept(
    req: &HttpRequest,
    state: &State,
    caller: &Authenticated,
    who: &Requester,
    body: LookupBody,
) -> Result<Accepted, BrokerError> {
    let request = LookupRequest::parse(body)?;
    let permissions = state.identity.permissions(&who.session_id, &caller.token, client_ip(req)).await?;
    request.authorise(&permissions)?;
    let now = state.clock.now();
    let needs_context = request.proxy_authorization_id.is_some() || needs_supervisor_approval(&request.purpose_code);
    let context = if needs_context {
        let (who, request) = (who.clone(), request.clone());
        state.db.run(move |conn| context_for(conn, now, &who, &request)).await?
    } else {
        Context::default()
    };
    if let Some(proxy) = &context.proxy {
        grantor_still_active(state, &proxy.on_behalf_of_user_id, &who.agency).await?;
    }
    state.lookups.precheck(&who.agency, now)?;
    Ok(Accepted { who: who.clone(), request, context })
}

/// R-QRY-06 with R-ACC-05: a lookup on behalf of someone whose account has since been cancelled,
/// suspended or moved to another agency is refused; the authorisation served that person's work.
async fn grantor_still_active(state: &State, grantor: &str, agency: &str) -> Result<(), BrokerError> {
    match state.identity.user(grantor).await? {
        Some(user) if user.status == "active" && user.agency == agency => Ok(()),
        _ => Err(BrokerError::ProxyAuthorizationInvalid(proxy::ProxyRefusal::GrantorInactive)),
    }
}

/// R-QRY-10: "other business" purposes need the unit supervisor's recorded approval.
fn needs_supervisor_approval(purpose_code: &str) -> bool {
    catalogue::purpose(purpose_code).is_some_and(|p| p.requires_supervisor_approval)
}

/// R-QRY-06 and R-QRY-10: the proxy authorisation a lookup names, and the supervisor approval its
/// purpose needs, must be valid for exactly this caller, case and query.
pub(crate) fn context_for(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    who: &Requester,
    request: &LookupRequest,
) -> Result<Context, BrokerError> {
    let proxy = match &request.proxy_authorization_id {
        Some(id) => {
            let grant = proxy::authorisation_for(
                conn,
                now,
                id,
                &who.user_id,
                &who.agency,
                &request.case_number,
                request.query_type,
            )?;
            Some(ProxyContext { authorization_id: grant.id, on_behalf_of_user_id: grant.grantor_user_id })
        }
        None => None,
    };
    let supervisor_approval_id = if needs_supervisor_approval(&request.purpose_code) {
        // The approval belongs to whoever the lookup serves: the grantor when run on their behalf.
        let beneficiary = proxy.as_ref().map_or(who.user_id.as_str(), |p| p.on_behalf_of_user_id.as_str());
        Some(approvals::approval_for(conn, now, beneficiary, &who.agency, &request.case_number, &request.purpose_code)?)
    } else {
        None
    };
    Ok(Context { proxy, supervisor_approval_id, batch_id: None })
}
