//! Account applications: submitted by the applicant with their citizen certificate (no account yet,
//! as seed 002 pt 5 has it: 自然人申請帳號), then reviewed step by step by their agency.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::extractors::{client_ip, ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::Grant;
use super::as_caller;
use super::me::UnitRef;
use crate::domain::accounts::{self, Actor};
use crate::domain::applications::{
    self, ApplicationForm, ApplicationStatus, AppliedRole, Decision, GrantForm, NewApplication, ReviewDecision,
    ReviewStep,
};
use crate::domain::{fields, ApplicationId, IdentityError, UserId};
use crate::{workflow, State};

#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantRequest {
    #[schema(required = true, nullable = false, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    #[schema(required = true, nullable = false, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
}

impl From<GrantRequest> for GrantForm {
    fn from(grant: GrantRequest) -> Self {
        Self { query_type: grant.query_type, purpose_code: grant.purpose_code }
    }
}

fn grant_forms(grants: Option<Vec<GrantRequest>>) -> Option<Vec<GrantForm>> {
    grants.map(|grants| grants.into_iter().map(GrantForm::from).collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "agency_code": "TPE-SW",
    "unit_id": "0192f0c4-0000-7000-8000-000000000000",
    "username": "tpe.newcomer",
    "display_name": "新社工",
    "national_id": "A120000007",
    "email": "newcomer@example.gov.tw",
    "password": "a-long-passphrase-2026",
    "certificate_serial": "TW-MOICA-0000123456",
    "ips": ["127.0.0.1"],
    "legal_basis": "social_assistance_act",
    "business_handled": "低收入戶資格審查",
    "grants": [{"query_type": "entry_exit_last_year", "purpose_code": "sw_statutory_business"}]
}))]
pub struct ApplicationRequest {
    /// The agency applied to (see the demo agencies in README).
    #[schema(required = true, nullable = false)]
    pub agency_code: Option<String>,
    /// The applicant's unit (科/室/組) within the agency.
    #[schema(required = true, nullable = false)]
    pub unit_id: Option<String>,
    /// 3–64 characters: lowercase letters, digits, `.`, `_`, `-`.
    #[schema(required = true, nullable = false)]
    pub username: Option<String>,
    #[schema(required = true, nullable = false)]
    pub display_name: Option<String>,
    /// The applicant's national ID (or UI number): checked against contractor personnel (R-ACC-08).
    #[schema(required = true, nullable = false)]
    pub national_id: Option<String>,
    /// Where the applicant is notified of each step.
    #[schema(required = true, nullable = false)]
    pub email: Option<String>,
    /// At least 12 characters; stored only as an argon2id hash.
    #[schema(required = true, nullable = false, min_length = 12)]
    pub password: Option<String>,
    /// Serial of the citizen digital certificate (自然人憑證) the account is bound to (R-ACC-03).
    #[schema(required = true, nullable = false)]
    pub certificate_serial: Option<String>,
    /// Registered workstation addresses (R-ACC-11); default: the address this is submitted from.
    pub ips: Option<Vec<String>>,
    /// Required for a `caseworker`; none for a `vendor_staff` application.
    #[schema(nullable = false)]
    pub legal_basis: Option<String>,
    /// The business the applicant handles (承辦業務).
    #[schema(required = true, nullable = false)]
    pub business_handled: Option<String>,
    /// The query types × purposes requested: required for a `caseworker`; none for a `vendor_staff`
    /// application (R-VEN-08).
    #[schema(nullable = false)]
    pub grants: Option<Vec<GrantRequest>>,
    /// The role applied for: `caseworker` (default: lookups, with a legal basis and grants) or
    /// `vendor_staff` (contractor personnel: maintenance, incident reports and device attestations,
    /// no legal basis, no grants, R-VEN-08). Contractor personnel may apply only as `vendor_staff`
    /// (R-ACC-08).
    pub role: Option<AppliedRole>,
}

impl From<ApplicationRequest> for ApplicationForm {
    fn from(body: ApplicationRequest) -> Self {
        Self {
            agency_code: body.agency_code,
            unit_id: body.unit_id,
            username: body.username,
            display_name: body.display_name,
            national_id: body.national_id,
            email: body.email,
            password: body.password,
            certificate_serial: body.certificate_serial,
            ips: body.ips,
            legal_basis: body.legal_basis,
            business_handled: body.business_handled,
            grants: grant_forms(body.grants),
            role: body.role,
        }
    }
}

/// An application as reviewers see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplicationView {
    pub application_id: String,
    pub status: ApplicationStatus,
    /// The role applied for.
    pub role: AppliedRole,
    pub agency_code: String,
    pub unit_id: String,
    pub username: String,
    pub display_name: String,
    /// The applicant's national ID, masked (e.g. `A12****789`).
    pub national_id_masked: String,
    pub email: String,
    pub certificate_serial: String,
    pub ips: Vec<String>,
    pub legal_basis: String,
    pub business_handled: String,
    pub requested_grants: Vec<Grant>,
    /// What the account manager granted (a subset of the request); `null` until then.
    pub granted_grants: Option<Vec<Grant>>,
    /// The account, once the application is approved.
    pub user_id: Option<String>,
    pub nia_reference: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub submitted_at: NaiveDateTime,
    pub reviews: Vec<ReviewRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewRecord {
    pub step: ReviewStep,
    /// The reviewing user; `null` for the immigration agency and automatic checks.
    pub reviewer_id: Option<String>,
    pub reviewer_name: String,
    pub decision: ReviewDecision,
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub decided_at: NaiveDateTime,
}

fn grants(grants: Vec<accounts::Grant>) -> Vec<Grant> {
    grants.into_iter().map(Grant::from).collect()
}

impl From<applications::Application> for ApplicationView {
    fn from(application: applications::Application) -> Self {
        Self {
            application_id: application.id.into_inner(),
            status: application.status,
            role: application.role,
            agency_code: application.agency_code.into_inner(),
            unit_id: application.unit_id.into_inner(),
            username: application.username,
            display_name: application.display_name,
            national_id_masked: application.national_id_masked,
            email: application.email,
            certificate_serial: application.certificate_serial,
            ips: application.ips,
            legal_basis: application.legal_basis,
            business_handled: application.business_handled,
            requested_grants: grants(application.requested_grants),
            granted_grants: application.granted_grants.map(grants),
            user_id: application.user_id.map(UserId::into_inner),
            nia_reference: application.nia_reference,
            submitted_at: application.submitted_at,
            reviews: application.reviews.into_iter().map(ReviewRecord::from).collect(),
        }
    }
}

impl From<applications::Review> for ReviewRecord {
    fn from(step: applications::Review) -> Self {
        Self {
            step: step.step,
            reviewer_id: step.reviewer_id.map(UserId::into_inner),
            reviewer_name: step.reviewer_name,
            decision: step.decision,
            reason: step.reason,
            decided_at: step.decided_at,
        }
    }
}

/// An agency and its units, as applicants choose them (public organisational data).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgencyEntry {
    #[schema(example = "TPE-SW")]
    pub code: String,
    pub name: String,
    /// `social_welfare`, `household_registration` or `immigration_agency`.
    pub kind: String,
    /// Whether the agency head approves accounts too (R-ACC-02).
    pub requires_head_approval: bool,
    pub units: Vec<UnitRef>,
}

impl From<accounts::AgencyEntry> for AgencyEntry {
    fn from(entry: accounts::AgencyEntry) -> Self {
        Self {
            code: entry.code.into_inner(),
            name: entry.name,
            kind: entry.kind,
            requires_head_approval: entry.requires_head_approval,
            units: entry.units.into_iter().map(UnitRef::from).collect(),
        }
    }
}

/// The agencies by code, with their units, for applicants choosing where they apply. Public. A
/// page at a time: `before` is the last `code` of the previous page.
#[utoipa::path(get, path = "/v1/agencies", tag = "applications", params(PageQuery),
    responses((status = 200, body = Vec<AgencyEntry>), (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/agencies")]
pub async fn agencies(state: web::Data<State>, page: ApiQuery<PageQuery>) -> ApiResult<web::Json<Vec<AgencyEntry>>> {
    let page = page.into_inner().page()?;
    let entries = state.db.run(move |conn| accounts::directory(conn, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(entries.into_iter().map(AgencyEntry::from).collect()))
}

/// Apply for an account (R-ACC-01). No token: the applicant has no account yet and identifies with
/// their citizen certificate. Contractor personnel are refused (R-ACC-08) unless they apply for a
/// `vendor_staff` account, which holds no lookup grant (R-VEN-08).
#[utoipa::path(post, path = "/v1/account-applications",
    extensions(("x-immilink-rules" = json!(["R-ACC-01", "R-ACC-03", "R-ACC-08", "R-VEN-08"]))),
    tag = "applications", request_body = ApplicationRequest,
    responses(
        (status = 201, body = ApplicationView),
        (status = 403, description = "Contractor personnel cannot apply but as vendor_staff (R-ACC-08)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username or certificate already in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The contractor check cannot be made right now", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/account-applications")]
pub async fn submit(
    req: HttpRequest,
    state: web::Data<State>,
    body: ApiJson<ApplicationRequest>,
) -> ApiResult<HttpResponse> {
    let ip = client_ip(&req).ok_or_else(|| ApiError::internal("no client address"))?;
    if let Err(retry_after_seconds) = state.application_submissions.hit(&ip) {
        return Err(IdentityError::Throttled { retry_after_seconds }.into());
    }
    let (application, password) = NewApplication::parse(body.into_inner().into(), ip)?;
    let submitted = workflow::submit_application(&state, application, password).await?;
    Ok(HttpResponse::Created().json(ApplicationView::from(submitted)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only applications at this step, e.g. `supervisor_review`.
    pub status: Option<ApplicationStatus>,
}

/// Applications the caller may review, oldest first: a unit supervisor sees their unit's, the
/// account manager and agency head their agency's. `before` is the last `application_id` of the
/// previous page.
#[utoipa::path(get, path = "/v1/account-applications",
    extensions(("x-immilink-rules" = json!(["R-ACC-01"]))),
    tag = "applications", security(("bearer" = [])),
    params(ListQuery, PageQuery),
    responses((status = 200, body = Vec<ApplicationView>), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/account-applications")]
pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ListQuery>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<ApplicationView>>> {
    let status = query.into_inner().status;
    let page = page.into_inner().page()?;
    let found =
        as_caller(&state, &req, caller.caller(), move |conn, _, actor| applications::list(conn, &actor, status, &page));
    Ok(web::Json(found.await?.into_iter().map(ApplicationView::from).collect()))
}

/// One application with every review step so far.
#[utoipa::path(get, path = "/v1/account-applications/{id}",
    extensions(("x-immilink-rules" = json!(["R-ACC-01"]))),
    tag = "applications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ApplicationView),
        (status = 403, description = "Not a reviewer of account applications", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/account-applications/{id}")]
pub async fn get(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<ApplicationView>> {
    let id = ApplicationId::new(id.into_inner());
    let found = as_caller(&state, &req, caller.caller(), move |conn, _, actor| applications::get(conn, &actor, &id));
    Ok(web::Json(found.await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"decision": "approve", "reason": "承辦低收入戶審查業務，確有需要"}))]
pub struct ReviewRequest {
    #[schema(required = true, nullable = false)]
    pub decision: Option<Decision>,
    /// Required for a rejection.
    pub reason: Option<String>,
    /// Account manager only: grant a subset of the requested pairs.
    pub grants: Option<Vec<GrantRequest>>,
}

/// Review the application's current step: the unit supervisor first, the account manager second, the
/// agency head third where the agency requires it (R-ACC-02); then the immigration agency decides.
/// Nobody reviews their own application, and each step needs a different person (R-ACC-04).
#[utoipa::path(post, path = "/v1/account-applications/{id}/reviews",
    extensions(("x-immilink-rules" = json!(["R-ACC-01", "R-ACC-02", "R-ACC-04"]))),
    tag = "applications", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReviewRequest,
    responses(
        (status = 200, body = ApplicationView),
        (status = 403, description = "Not this step's reviewer, or their own application (R-ACC-04)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not awaiting a review by the agency", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/account-applications/{id}/reviews")]
pub async fn review(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<ReviewRequest>,
) -> ApiResult<web::Json<ApplicationView>> {
    let body = body.into_inner();
    let decision = fields::present(body.decision, "decision")?;
    let reason = fields::reason(body.reason, decision == Decision::Reject)?;
    let grants = body.grants.map(|g| applications::parse_grants(grant_forms(Some(g)))).transpose()?;
    let actor: Actor = as_caller(&state, &req, caller.caller(), |_, _, actor| Ok(actor)).await?;
    let id = ApplicationId::new(id.into_inner());
    let reviewed = workflow::review_application(&state, actor, id, decision, reason, grants).await?;
    Ok(web::Json(reviewed.into()))
}
