//! Findings (R-AUD-07): entered by hand (or opened by a review, a sample or a self-audit), each
//! telling the agency's ethics and IT units at once, with a remediation deadline, tracked to closure
//! with the reward or penalty recommended. Every act is a record in the audit log.

use actix_web::{get, post, web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::clock::business_date;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, Page};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::domain::findings::{
    self, Closure, Finding, FindingFilter, FindingOrigin, FindingStatus, ManualFinding, Recommendation,
};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(open).service(list).service(get).service(remediate).service(close);
}

/// A finding entered by hand. Agency-bound openers may omit `agency` (their own is taken); the
/// immigration agency's reviewer names it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"unit": "unit-1", "description": "個案查詢目的與業務不符 (case C-42 looked up without a matching case)", "deadline": "2026-12-31"}))]
pub struct OpenFinding {
    pub agency: Option<String>,
    pub unit: Option<String>,
    /// What rule was found violated, and how (1–2000 characters).
    pub description: String,
    /// The remediation deadline, `YYYY-MM-DD` (Asia/Taipei), not before today; default 30 days on.
    pub deadline: Option<String>,
}

/// The remediation done.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// What was done (1–2000 characters).
    pub remediation: String,
}

/// The closure: the reward or penalty recommended (獎懲建議), and a note (required when the finding
/// was never remediated: why it closes anyway).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseFinding {
    pub recommendation: Recommendation,
    pub note: Option<String>,
}

/// A finding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FindingView {
    pub id: String,
    pub agency: String,
    pub unit: Option<String>,
    pub origin: FindingOrigin,
    /// What it came from: the review entry, the sampled record, the self-audit item.
    pub origin_ref: Option<String>,
    pub description: String,
    pub opened_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub opened_at: NaiveDateTime,
    /// The remediation deadline (Asia/Taipei).
    #[schema(value_type = String, format = Date)]
    pub deadline: NaiveDate,
    pub status: FindingStatus,
    /// Past the deadline (Asia/Taipei) and not closed, as of now.
    pub overdue: bool,
    /// When the overdue sweep flagged it and told the ethics and IT units and account managers.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub overdue_flagged_at: Option<NaiveDateTime>,
    pub remediation: Option<String>,
    pub recommendation: Option<Recommendation>,
    pub recommendation_note: Option<String>,
    pub closed_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub closed_at: Option<NaiveDateTime>,
}

impl FindingView {
    fn of(finding: Finding, today: NaiveDate) -> Self {
        Self {
            overdue: finding.overdue_on(today),
            id: finding.id,
            agency: finding.agency,
            unit: finding.unit,
            origin: finding.origin,
            origin_ref: finding.origin_ref,
            description: finding.description,
            opened_by: finding.opened_by,
            opened_at: finding.opened_at,
            deadline: finding.deadline,
            status: finding.status,
            overdue_flagged_at: finding.overdue_flagged_at,
            remediation: finding.remediation,
            recommendation: finding.recommendation,
            recommendation_note: finding.recommendation_note,
            closed_by: finding.closed_by,
            closed_at: finding.closed_at,
        }
    }
}

/// Enter a finding by hand (origin `manual`): auditors, ethics officers and account managers for
/// their own agency; the immigration agency's reviewer for the agency it names. The agency's ethics
/// and IT units are notified in the same transaction; recorded in the audit log.
#[utoipa::path(post, path = "/v1/audit/findings",
    extensions(("x-immilink-rules" = json!(["R-AUD-07"]))),
    operation_id = "open_finding", tag = "oversight", security(("bearer" = [])), request_body = OpenFinding, responses(
    (status = 201, body = FindingView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/findings")]
pub async fn open(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<OpenFinding>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let deadline = body.deadline.as_deref().map(|date| findings::parse_date("deadline", date)).transpose()?;
    let manual = ManualFinding { agency: body.agency, unit: body.unit, description: body.description, deadline };
    let (caller, now) = (caller.caller(), state.clock.now());
    let finding = state.db.run(move |conn| findings::open(conn, now, &caller, manual)).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Created().json(FindingView::of(finding, business_date(now))))
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// Agency code (the immigration agency's reviewer; others see their own agency's only).
    pub agency: Option<String>,
    pub status: Option<FindingStatus>,
    /// Only findings past their deadline and not closed (`true`), or only the others (`false`).
    pub overdue: Option<bool>,
    /// At most this many (1–500, default 100), newest first.
    pub limit: Option<i64>,
    /// Continue after this id: the last id of the previous page.
    pub before: Option<String>,
}

/// The findings the caller may read, newest first: the immigration agency's reviewer every
/// agency's, auditors, ethics and IT officers, account managers and the agency head their agency's,
/// unit supervisors their unit's.
#[utoipa::path(get, path = "/v1/audit/findings",
    extensions(("x-immilink-rules" = json!(["R-AUD-07"]))),
    operation_id = "list_findings", tag = "oversight", security(("bearer" = [])), params(FindingQuery), responses(
    (status = 200, body = Vec<FindingView>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/findings")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<FindingQuery>,
) -> ApiResult<web::Json<Vec<FindingView>>> {
    let query = query.into_inner();
    let page = Page::new(query.limit, query.before.filter(|before| !before.trim().is_empty()))?;
    let filter = FindingFilter { agency: query.agency, status: query.status, overdue: query.overdue };
    let (caller, now) = (caller.caller(), state.clock.now());
    let found =
        state.db.run(move |conn| findings::list(conn, now, &caller, &filter, &page)).await.map_err(ApiError::from)?;
    let today = business_date(now);
    Ok(web::Json(found.into_iter().map(|finding| FindingView::of(finding, today)).collect()))
}

/// One finding (another agency's, or another unit's for a unit supervisor, is not found).
#[utoipa::path(get, path = "/v1/audit/findings/{id}",
    extensions(("x-immilink-rules" = json!(["R-AUD-07"]))),
    operation_id = "get_finding", tag = "oversight", security(("bearer" = [])),
    params(("id" = String, Path, description = "Finding id")), responses(
    (status = 200, body = FindingView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/findings/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<FindingView>> {
    let (caller, now, id) = (caller.caller(), state.clock.now(), id.into_inner());
    let finding = state.db.run(move |conn| findings::get(conn, &caller, &id)).await.map_err(ApiError::from)?;
    Ok(web::Json(FindingView::of(finding, business_date(now))))
}

/// Record the remediation (open → remediated): the agency's account manager or head. Recorded in
/// the audit log.
#[utoipa::path(post, path = "/v1/audit/findings/{id}/remediation",
    extensions(("x-immilink-rules" = json!(["R-AUD-07"]))),
    operation_id = "remediate_finding", tag = "oversight", security(("bearer" = [])),
    params(("id" = String, Path, description = "Finding id")), request_body = Remediation, responses(
    (status = 200, body = FindingView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/findings/{id}/remediation")]
pub async fn remediate(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<Remediation>,
) -> ApiResult<web::Json<FindingView>> {
    let (caller, now, id, remediation) =
        (caller.caller(), state.clock.now(), id.into_inner(), body.into_inner().remediation);
    let finding = state
        .db
        .run(move |conn| findings::remediate(conn, now, &caller, &id, &remediation))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(FindingView::of(finding, business_date(now))))
}

/// Close a finding with the reward or penalty recommended (remediated → closed, or open → closed
/// with a note saying why): the agency's auditor or ethics officer, or the immigration agency's
/// reviewer; the closer is recorded. Closing a closed finding is 409. Recorded in the audit log.
#[utoipa::path(post, path = "/v1/audit/findings/{id}/closure",
    extensions(("x-immilink-rules" = json!(["R-AUD-07"]))),
    operation_id = "close_finding", tag = "oversight", security(("bearer" = [])),
    params(("id" = String, Path, description = "Finding id")), request_body = CloseFinding, responses(
    (status = 200, body = FindingView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/findings/{id}/closure")]
pub async fn close(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<CloseFinding>,
) -> ApiResult<web::Json<FindingView>> {
    let body = body.into_inner();
    let closure = Closure { recommendation: body.recommendation, note: body.note };
    let (caller, now, id) = (caller.caller(), state.clock.now(), id.into_inner());
    let finding =
        state.db.run(move |conn| findings::close(conn, now, &caller, &id, closure)).await.map_err(ApiError::from)?;
    Ok(web::Json(FindingView::of(finding, business_date(now))))
}
