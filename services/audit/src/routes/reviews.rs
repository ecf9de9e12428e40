//! The monthly supervisor review (主管稽核月明細表, R-AUD-04): the reports, their entries, the marks.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::accepts;
use crate::documents::reviews::MonthlyReviewReport;
use crate::domain::reviews::{self, Entry, Mark, ReportDetail, ReportQuery, ReportSummary, Verdict};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list).service(get).service(mark);
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewParams {
    /// The month reviewed, `YYYY-MM`.
    pub month: Option<String>,
    /// The agency (the immigration agency's reviewer may name any).
    pub agency: Option<String>,
}

/// A monthly review report: one unit's lookups of one month for one reviewing role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReviewSummary {
    pub id: String,
    pub agency: String,
    /// The unit reviewed (empty: lookups done for no unit).
    pub unit: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Who reviews: `unit_supervisor` (the unit's lookups), `account_manager` (a supervisor's own),
    /// `agency_head` (an account manager's own).
    pub reviewer_role: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub opened_at: NaiveDateTime,
    /// The 10th of the month after the month reviewed.
    pub due_on: NaiveDate,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub completed_at: Option<NaiveDateTime>,
    /// Past its due date and not complete.
    pub overdue: bool,
    pub entries: i64,
    pub reviewed: i64,
    pub mismatches: i64,
}

impl From<ReportSummary> for ReviewSummary {
    fn from(s: ReportSummary) -> Self {
        Self {
            id: s.report.id,
            agency: s.report.agency,
            unit: s.report.unit,
            month: s.report.month,
            reviewer_role: s.report.reviewer_role,
            opened_at: s.report.opened_at,
            due_on: s.report.due_on,
            completed_at: s.report.completed_at,
            overdue: s.overdue,
            entries: s.entries,
            reviewed: s.reviewed,
            mismatches: s.mismatches,
        }
    }
}

/// One lookup of a report and its judgement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReviewEntryView {
    pub lookup_id: String,
    pub audit_record_id: String,
    pub user_id: String,
    pub user_name: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub requested_at: NaiveDateTime,
    pub query_type: String,
    pub subject_id: String,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub remarks: Option<String>,
    pub outcome: Option<String>,
    pub verdict: Option<Verdict>,
    pub note: Option<String>,
    pub reviewed_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub reviewed_at: Option<NaiveDateTime>,
    /// The finding a "does not match" opened.
    pub finding_id: Option<String>,
}

impl From<Entry> for ReviewEntryView {
    fn from(e: Entry) -> Self {
        Self {
            lookup_id: e.lookup_id,
            audit_record_id: e.record_id,
            user_id: e.user_id,
            user_name: e.user_name,
            requested_at: e.requested_at,
            query_type: e.query_type,
            subject_id: e.subject_id,
            legal_basis: e.legal_basis,
            purpose_code: e.purpose_code,
            case_number: e.case_number,
            remarks: e.remarks,
            outcome: e.outcome,
            verdict: e.verdict,
            note: e.note,
            reviewed_by: e.reviewed_by,
            reviewed_at: e.reviewed_at,
            finding_id: e.finding_id,
        }
    }
}

/// A report with every entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewDetail {
    #[serde(flatten)]
    pub summary: ReviewSummary,
    pub items: Vec<ReviewEntryView>,
}

impl From<ReportDetail> for ReviewDetail {
    fn from(d: ReportDetail) -> Self {
        Self { summary: d.summary.into(), items: d.entries.into_iter().map(Into::into).collect() }
    }
}

/// The reviewer's judgements.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"marks": [{"lookup_id": "0193…", "verdict": "matches"},
    {"lookup_id": "0193…", "verdict": "does_not_match", "note": "案號與本單位業務無關"}]}))]
pub struct MarkBody {
    pub marks: Vec<MarkItem>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkItem {
    pub lookup_id: String,
    pub verdict: Verdict,
    /// Required for `does_not_match`.
    pub note: Option<String>,
}

/// The monthly review reports the caller sees: as a reader of the agency or unit (auditors, ethics
/// officers, account managers, unit supervisors, the immigration agency's reviewer) or as their
/// reviewer. Each says whether it is overdue (not complete after the 10th).
#[utoipa::path(get, path = "/v1/audit/reviews",
    extensions(("x-immilink-rules" = json!(["R-AUD-04"]))),
    tag = "oversight", security(("bearer" = [])), params(ReviewParams),
    responses((status = 200, body = Vec<ReviewSummary>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/reviews")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    params: ApiQuery<ReviewParams>,
) -> ApiResult<web::Json<Vec<ReviewSummary>>> {
    let (caller, params, now) = (caller.caller(), params.into_inner(), state.clock.now());
    let query = ReportQuery { agency: params.agency, month: params.month };
    let items = state.db.run(move |conn| reviews::list(conn, now, &caller, query)).await?;
    Ok(web::Json(items.into_iter().map(Into::into).collect()))
}

/// One report with its lookups: JSON, or with `Accept: text/html` the printable 主管稽核月明細表
/// (A4, Traditional Chinese, ROC dates).
#[utoipa::path(get, path = "/v1/audit/reviews/{id}",
    extensions(("x-immilink-rules" = json!(["R-AUD-04"]))),
    tag = "oversight", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    responses((status = 200, description = "The report", content((ReviewDetail = "application/json"), (String = "text/html"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/reviews/{id}")]
pub async fn get(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (caller, id, now) = (caller.caller(), id.into_inner(), state.clock.now());
    let detail = state.db.run(move |conn| reviews::get(conn, now, &caller, &id)).await?;
    if accepts(&req, "text/html") {
        let html = askama::Template::render(&MonthlyReviewReport::of(&detail, now))
            .map_err(|err| ApiError::internal(err.to_string()))?;
        return Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html));
    }
    Ok(HttpResponse::Ok().json(ReviewDetail::from(detail)))
}

/// Marks lookups of a report as matching the business or not, all or none. Only the report's
/// reviewer, never on their own lookups (403 `own_lookup`); each lookup once (409); "does not match"
/// needs a note and opens a finding that notifies the ethics and IT units.
#[utoipa::path(post, path = "/v1/audit/reviews/{id}/marks",
    extensions(("x-immilink-rules" = json!(["R-AUD-04"]))),
    tag = "oversight", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")), request_body = MarkBody,
    responses((status = 200, body = ReviewDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/reviews/{id}/marks")]
pub async fn mark(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<MarkBody>,
) -> ApiResult<web::Json<ReviewDetail>> {
    let (caller, id, now) = (caller.caller(), id.into_inner(), state.clock.now());
    let marks: Vec<Mark> = body
        .into_inner()
        .marks
        .into_iter()
        .map(|m| Mark { lookup_id: m.lookup_id, verdict: m.verdict, note: m.note })
        .collect();
    let detail = state.db.run(move |conn| reviews::mark(conn, now, &caller, &id, &marks)).await?;
    Ok(web::Json(detail.into()))
}
