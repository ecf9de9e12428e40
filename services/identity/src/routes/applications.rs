//! Account applications: submitted by the applicant with their citizen certificate (no account yet,
//! as seed 002 pt 5 has it: 自然人申請帳號), then reviewed step by step by their agency.

use std::net::IpAddr;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{client_ip, ApiJson, ApiQuery};
use immilink_shared::ids::SubjectId;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{as_caller, reason, text};
use crate::domain::accounts::Grant;
use crate::domain::applications::{self, ApplicationStatus, ApplicationView, Decision, NewApplication};
use crate::domain::IdentityError;
use crate::{workflow, State};

#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantRequest {
    #[schema(required = true, nullable = false, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    #[schema(required = true, nullable = false, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "agency_code": "TPE-SW",
    "unit_id": "0192f0c4-0000-7000-8000-000000000000",
    "username": "tpe.newcomer",
    "display_name": "新社工",
    "national_id": "A120000008",
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
    #[schema(required = true, nullable = false)]
    pub legal_basis: Option<String>,
    /// The business the applicant handles (承辦業務).
    #[schema(required = true, nullable = false)]
    pub business_handled: Option<String>,
    /// The query types × purposes requested.
    #[schema(required = true, nullable = false)]
    pub grants: Option<Vec<GrantRequest>>,
}

const MAX_IPS: usize = 10;
const MAX_GRANTS: usize = 50;

fn parse_username(raw: Option<String>) -> ApiResult<String> {
    let username = text(raw, "username", 64)?;
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if username.len() < 3 || !username.chars().all(allowed) {
        return Err(ApiError::invalid_field("username", "3–64 characters: lowercase letters, digits, '.', '_' or '-'"));
    }
    Ok(username)
}

fn parse_email(raw: Option<String>) -> ApiResult<String> {
    let email = text(raw, "email", 254)?;
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(ApiError::invalid_field("email", "not an e-mail address"));
    }
    Ok(email)
}

fn parse_certificate(raw: Option<String>) -> ApiResult<String> {
    let serial = text(raw, "certificate_serial", 64)?;
    if !serial.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::invalid_field("certificate_serial", "letters, digits and '-' only"));
    }
    Ok(serial)
}

fn parse_ips(raw: Option<Vec<String>>, submitted_from: IpAddr) -> ApiResult<Vec<IpAddr>> {
    let Some(raw) = raw.filter(|ips| !ips.is_empty()) else {
        return Ok(vec![submitted_from]);
    };
    if raw.len() > MAX_IPS {
        return Err(ApiError::invalid_field("ips", format!("at most {MAX_IPS} addresses")));
    }
    raw.iter()
        .enumerate()
        .map(|(i, ip)| ip.trim().parse().map_err(|_| ApiError::invalid_field(format!("ips[{i}]"), "not an IP address")))
        .collect()
}

pub(super) fn parse_grants(raw: Option<Vec<GrantRequest>>) -> ApiResult<Vec<Grant>> {
    let raw = raw.ok_or_else(|| ApiError::missing_field("grants"))?;
    if raw.is_empty() || raw.len() > MAX_GRANTS {
        return Err(ApiError::invalid_field("grants", format!("between 1 and {MAX_GRANTS} entries")));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            Ok(Grant {
                query_type: text(g.query_type, &format!("grants[{i}].query_type"), 64)?,
                purpose_code: text(g.purpose_code, &format!("grants[{i}].purpose_code"), 64)?,
            })
        })
        .collect()
}

fn parse_application(body: ApplicationRequest, submitted_ip: IpAddr) -> ApiResult<(NewApplication, String)> {
    let national_id = text(body.national_id, "national_id", 20)?;
    let national_id = SubjectId::parse_resident(&national_id)
        .map_err(|err| ApiError::invalid_field("national_id", err.to_string()))?
        .as_str()
        .to_owned();
    let password = body.password.filter(|p| !p.is_empty()).ok_or_else(|| ApiError::missing_field("password"))?;
    if password.chars().count() < 12 || password.len() > 256 {
        return Err(ApiError::invalid_field("password", "between 12 and 256 characters"));
    }
    let application = NewApplication {
        agency_code: text(body.agency_code, "agency_code", 32)?,
        unit_id: text(body.unit_id, "unit_id", 64)?,
        username: parse_username(body.username)?,
        display_name: text(body.display_name, "display_name", 100)?,
        national_id,
        email: parse_email(body.email)?,
        certificate_serial: parse_certificate(body.certificate_serial)?,
        ips: parse_ips(body.ips, submitted_ip)?,
        legal_basis: text(body.legal_basis, "legal_basis", 64)?,
        business_handled: text(body.business_handled, "business_handled", 500)?,
        grants: parse_grants(body.grants)?,
        submitted_ip,
    };
    Ok((application, password))
}

/// The agencies and their units, for applicants choosing where they apply. Public.
#[utoipa::path(get, path = "/v1/agencies", tag = "applications",
    responses((status = 200, body = Vec<crate::domain::accounts::AgencyEntry>)))]
#[get("/v1/agencies")]
pub async fn agencies(state: web::Data<State>) -> ApiResult<web::Json<Vec<crate::domain::accounts::AgencyEntry>>> {
    let entries = state.db.run(crate::domain::accounts::directory).await.map_err(ApiError::from)?;
    Ok(web::Json(entries))
}

/// Apply for an account (R-ACC-01). No token: the applicant has no account yet and identifies with
/// their citizen certificate. Contractor personnel are refused (R-ACC-08).
#[utoipa::path(post, path = "/v1/account-applications", tag = "applications", request_body = ApplicationRequest,
    responses(
        (status = 201, body = ApplicationView),
        (status = 403, description = "Contractor personnel cannot apply (R-ACC-08)", body = Problem, content_type = "application/problem+json"),
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
    let (application, password) = parse_application(body.into_inner(), ip)?;
    let view = workflow::submit_application(&state, application, password).await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only applications at this step, e.g. `supervisor_review`.
    pub status: Option<ApplicationStatus>,
}

/// Applications the caller may review: a unit supervisor sees their unit's, the account manager and
/// agency head their agency's.
#[utoipa::path(get, path = "/v1/account-applications", tag = "applications", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<ApplicationView>), (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/account-applications")]
pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ListQuery>,
) -> ApiResult<web::Json<Vec<ApplicationView>>> {
    let status = query.into_inner().status;
    let views = as_caller(&state, &req, caller, move |conn, _, actor| applications::list(conn, &actor, status)).await?;
    Ok(web::Json(views))
}

/// One application with every review step so far.
#[utoipa::path(get, path = "/v1/account-applications/{id}", tag = "applications", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ApplicationView), (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/account-applications/{id}")]
pub async fn get(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<ApplicationView>> {
    let id = id.into_inner();
    let view = as_caller(&state, &req, caller, move |conn, _, actor| applications::get(conn, &actor, &id)).await?;
    Ok(web::Json(view))
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
#[utoipa::path(post, path = "/v1/account-applications/{id}/reviews", tag = "applications", security(("bearer" = [])),
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
    let decision = body.decision.ok_or_else(|| ApiError::missing_field("decision"))?;
    let reason = reason(body.reason, decision == Decision::Reject)?;
    let grants = body.grants.map(|g| parse_grants(Some(g))).transpose()?;
    let actor = as_caller(&state, &req, caller, |_, _, actor| Ok(actor)).await?;
    Ok(web::Json(workflow::review_application(&state, actor, id.into_inner(), decision, reason, grants).await?))
}
