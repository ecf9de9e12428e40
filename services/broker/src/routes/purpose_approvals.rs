//! Unit-supervisor approvals of "other business" purposes (R-QRY-10).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use immilink_shared::catalogue;
use immilink_shared::extractors::{client_ip, ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::approvals::{
    self, ApprovalFilter, ApprovalStatus, Decision, NewDecision, NewPurposeApproval, PurposeApproval,
};
use crate::domain::{fields, BrokerError, PurposeApprovalId};
use crate::State;

/// A caseworker's request for approval.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "purpose_code": "hr_other_approved",
    "case_number": "HLN-HR-2026-0042",
    "business_description": "受理初設戶籍登記，需確認申請人最近一年在臺居住期間"
}))]
pub struct PurposeApprovalBody {
    /// A purpose whose catalogue entry requires supervisor approval.
    #[schema(schema_with = catalogue::purpose_code_schema, required = true)]
    pub purpose_code: Option<String>,
    /// The case the lookups serve (案號).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub case_number: Option<String>,
    /// The business the lookups serve, for the supervisor to judge (at most 500 characters).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 500)]
    pub business_description: Option<String>,
}

impl PurposeApprovalBody {
    fn parse(self) -> Result<NewPurposeApproval, BrokerError> {
        Ok(NewPurposeApproval {
            purpose_code: approvals::approvable_purpose(self.purpose_code)?,
            case_number: fields::case_number(self.case_number, approvals::RULE)?,
            business_description: approvals::business_description(self.business_description)?,
        })
    }
}

/// A unit supervisor's decision.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"decision": "approved", "valid_until": "2026-12-23T00:00:00+08:00"}))]
pub struct DecisionBody {
    #[schema(required = true, nullable = false)]
    pub decision: Option<Decision>,
    /// Required when rejecting.
    pub reason: Option<String>,
    /// Approvals only: when it lapses (RFC 3339); default 30 days after the decision, at most 90.
    pub valid_until: Option<DateTime<Utc>>,
}

impl DecisionBody {
    fn parse(self, now: DateTime<Utc>) -> Result<NewDecision, BrokerError> {
        approvals::decision(now, self.decision, self.reason, self.valid_until)
    }
}

/// A request for approval of an "other business" purpose and its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurposeApprovalView {
    pub id: String,
    pub agency: String,
    /// The requester's unit when they asked; a supervisor of this unit decides.
    pub unit: String,
    pub requester_user_id: String,
    pub purpose_code: String,
    pub case_number: String,
    pub business_description: String,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    /// When an approval lapses.
    pub valid_until: Option<DateTime<Utc>>,
    /// Approved and not lapsed at the time of the answer: lookups may run under it.
    pub in_force: bool,
}

impl From<PurposeApproval> for PurposeApprovalView {
    fn from(record: PurposeApproval) -> Self {
        Self {
            id: record.id.into_inner(),
            agency: record.agency.into_inner(),
            unit: record.unit.into_inner(),
            requester_user_id: record.requester_user_id.into_inner(),
            purpose_code: record.purpose_code,
            case_number: record.case_number.into_inner(),
            business_description: record.business_description,
            status: record.status,
            requested_at: record.requested_at,
            decided_at: record.decided_at,
            decided_by: record.decided_by.map(|user| user.into_inner()),
            decision_reason: record.decision_reason,
            valid_until: record.valid_until,
            in_force: record.in_force,
        }
    }
}

/// `GET /v1/purpose-approvals` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalListFilter {
    pub status: Option<ApprovalStatus>,
}

/// Ask the unit supervisor to approve a purpose that needs it (R-QRY-10), for one case.
///
/// Only purposes whose catalogue entry has `requires_supervisor_approval` are accepted, and only one
/// the caller may declare now: their agency's link carries it and it is granted to them (R-QRY-02).
/// The request records the caller's unit: a supervisor of that unit decides.
#[utoipa::path(post, path = "/v1/purpose-approvals",
    extensions(("x-immilink-rules" = json!(["R-QRY-10"]))),
    tag = "purpose-approvals", security(("bearer" = [])),
    request_body = PurposeApprovalBody,
    responses(
        (status = 201, body = PurposeApprovalView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a caseworker, or the account has no unit; or a purpose the caller may not declare now: `not_permitted` (R-QRY-10), or the agency's link cannot be used (its R-LINK code)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request for this case and purpose is already pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid, or the purpose needs no approval", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/purpose-approvals")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<PurposeApprovalBody>,
) -> ApiResult<HttpResponse> {
    let record = ask(&req, &state, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(record))
}

/// A caseworker's request, checked against what identity says they may declare now, asked the way a
/// lookup asks (their token, session and address; `identity_client`).
pub(crate) async fn ask(
    req: &HttpRequest,
    state: &State,
    caller: &Authenticated,
    body: PurposeApprovalBody,
) -> ApiResult<PurposeApprovalView> {
    let who = caller.caller();
    let new = body.parse()?;
    let entitlements = state.identity.permissions(&who.session_id, &caller.token, client_ip(req)).await?;
    let now = state.clock.now();
    let record = state.db.run(move |conn| approvals::request(conn, now, &who, &entitlements, &new)).await?;
    state.relay.wake();
    Ok(record.into())
}

/// The caller's own requests; a unit supervisor also sees their unit's, account managers and
/// auditors their agency's. Newest first.
#[utoipa::path(get, path = "/v1/purpose-approvals",
    extensions(("x-immilink-rules" = json!(["R-QRY-10"]))),
    tag = "purpose-approvals", security(("bearer" = [])),
    params(ApprovalListFilter, PageQuery),
    responses(
        (status = 200, body = Vec<PurposeApprovalView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown filter value, or `limit` outside 1–500", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/purpose-approvals")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<ApprovalListFilter>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<PurposeApprovalView>>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let filter = ApprovalFilter { status: filter.into_inner().status };
    let page = page.into_inner().page()?;
    let records = state.db.run(move |conn| approvals::list(conn, now, &caller, &filter, &page)).await?;
    Ok(web::Json(records.into_iter().map(PurposeApprovalView::from).collect()))
}

/// One request, for its requester, the supervisors of its unit, and the account managers and
/// auditors of its agency.
#[utoipa::path(get, path = "/v1/purpose-approvals/{id}",
    extensions(("x-immilink-rules" = json!(["R-QRY-10"]))),
    tag = "purpose-approvals", security(("bearer" = [])),
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
    let caller = caller.caller();
    let now = state.clock.now();
    let id = PurposeApprovalId::new(id.into_inner());
    let record = state.db.run(move |conn| approvals::get(conn, now, &caller, &id)).await?;
    Ok(web::Json(record.into()))
}

/// Approve or reject a pending request: a unit supervisor of the requester's unit, never for their
/// own request (separation of duties). Only a purpose the requester may declare now is approved
/// (R-QRY-02). An approval lasts 30 days unless `valid_until` says otherwise (at most 90); a
/// rejection needs a reason. Decided once.
#[utoipa::path(post, path = "/v1/purpose-approvals/{id}/decision",
    extensions(("x-immilink-rules" = json!(["R-QRY-10"]))),
    tag = "purpose-approvals", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = DecisionBody,
    responses(
        (status = 200, body = PurposeApprovalView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a supervisor of the requester's unit, or their own request; or, approving, a purpose the requester may not declare now: `not_permitted` (R-QRY-10), or their agency's link cannot be used (its R-LINK code)", body = Problem, content_type = "application/problem+json"),
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
    decide_on(&state, &caller, PurposeApprovalId::new(id.into_inner()), body.into_inner()).await.map(web::Json)
}

/// A supervisor's decision. An approval first asks identity about the requester now, as a bulk job
/// asks about its submitter: whether they may still declare the purpose.
pub(crate) async fn decide_on(
    state: &State,
    caller: &Authenticated,
    id: PurposeApprovalId,
    body: DecisionBody,
) -> ApiResult<PurposeApprovalView> {
    let who = caller.caller();
    let now = state.clock.now();
    let decision = body.parse(now)?;
    let requester = if decision.decision == Decision::Approved {
        let (who, id) = (who.clone(), id.clone());
        let requester_id = state.db.run(move |conn| approvals::requester_of(conn, &who, &id)).await?;
        state.identity.user(&requester_id).await?
    } else {
        None
    };
    let record =
        state.db.run(move |conn| approvals::decide(conn, now, &who, &id, &decision, requester.as_ref())).await?;
    state.relay.wake();
    Ok(record.into())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use immilink_shared::ApiError;

    use super::*;

    fn problem(err: BrokerError) -> (u16, Option<String>, Option<String>) {
        let problem = ApiError::from(err).to_problem();
        (problem.status, problem.field, problem.rule)
    }

    /// The bodies become the domain's request and decision through its field rules; every refusal
    /// is a 422 naming its field and R-QRY-10.
    #[test]
    fn purpose_approval_and_decision_bodies_are_parsed_field_by_field() {
        let body = || PurposeApprovalBody {
            purpose_code: Some("hr_other_approved".into()),
            case_number: Some("HLN-2026-42".into()),
            business_description: Some("戶籍登記疑義".into()),
        };
        assert_eq!(body().parse().unwrap().case_number.as_str(), "HLN-2026-42");
        let refused = |body: PurposeApprovalBody| problem(body.parse().unwrap_err());
        let rule = Some("R-QRY-10".to_owned());
        let no_case = PurposeApprovalBody { case_number: None, ..body() };
        assert_eq!(refused(no_case), (422, Some("case_number".into()), rule.clone()));
        let no_description = PurposeApprovalBody { business_description: None, ..body() };
        assert_eq!(refused(no_description), (422, Some("business_description".into()), rule.clone()));
        let needs_none = PurposeApprovalBody { purpose_code: Some("hr_nationality_change".into()), ..body() };
        assert_eq!(refused(needs_none), (422, Some("purpose_code".into()), rule.clone()));

        let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let undecided = DecisionBody { decision: None, reason: None, valid_until: None };
        assert_eq!(problem(undecided.parse(now).unwrap_err()), (422, Some("decision".into()), rule.clone()));
        let unreasoned = DecisionBody { decision: Some(Decision::Rejected), reason: None, valid_until: None };
        assert_eq!(problem(unreasoned.parse(now).unwrap_err()), (422, Some("reason".into()), rule));
    }

    #[test]
    fn purpose_approval_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method, statuses) in [
            ("/v1/purpose-approvals", "post", &["201", "403", "409", "422"][..]),
            ("/v1/purpose-approvals", "get", &["200", "401", "422"][..]),
            ("/v1/purpose-approvals/{id}", "get", &["200", "404"][..]),
            ("/v1/purpose-approvals/{id}/decision", "post", &["200", "403", "404", "409", "422"][..]),
        ] {
            for status in statuses {
                assert!(paths[path][method]["responses"][status].is_object(), "{method} {path} {status}");
            }
        }
    }
}
