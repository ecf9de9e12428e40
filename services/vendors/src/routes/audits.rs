//! Audits of vendors and their findings (R-VEN-05), tracked to closure like the agency's own
//! (R-AUD-07): open → remediated → closed, a deadline, closed by someone other than who recorded the
//! remediation, flagged when overdue. Vendor and account managers of the agency only: another
//! agency's vendor or finding answers 404, as a missing one does.

use actix_web::{get, post, web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::clock::business_date;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, Page, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::audits::{self, FindingFilter, FindingInput, FindingStatus, NewAudit};
use crate::domain::{FindingId, VendorId};
use crate::State;

/// One finding of the audit.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewVendorFinding {
    /// What was found (1–4000 characters).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 4000, example = "專屬設備未安裝防毒軟體")]
    pub description: Option<String>,
    /// The remediation deadline, `YYYY-MM-DD` (Asia/Taipei), not before today; default 30 days on.
    #[schema(format = Date, example = "2027-01-15")]
    pub deadline: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordVendorAudit {
    /// The day of the audit, `YYYY-MM-DD` (Asia/Taipei), not after today.
    #[schema(required = true, nullable = false, format = Date, example = "2026-12-04")]
    pub audited_on: Option<String>,
    /// Who audited (a person or a unit).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 200, example = "資訊室 陳稽核")]
    pub auditor: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 4000, example = "專屬設備與個資存取")]
    pub scope: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 4000, example = "發現一項缺失")]
    pub summary: Option<String>,
    /// The findings, each opened with its deadline (none is fine).
    pub findings: Option<Vec<NewVendorFinding>>,
}

/// The remediation the vendor made.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VendorFindingRemediation {
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 4000,
        example = "已安裝防毒軟體並更新病毒碼"
    )]
    pub remediation: Option<String>,
}

/// The closure: the remediation was checked.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CloseVendorFinding {
    #[schema(max_length = 4000, example = "現場複查確認")]
    pub note: Option<String>,
}

/// A finding of a vendor audit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VendorFinding {
    pub id: String,
    pub audit_id: String,
    pub vendor_id: String,
    pub agency: String,
    pub description: String,
    /// The remediation deadline (Asia/Taipei).
    #[schema(value_type = String, format = Date)]
    pub deadline: NaiveDate,
    pub status: FindingStatus,
    /// Past the deadline (Asia/Taipei) and not closed, as of now.
    pub overdue: bool,
    /// When the sweep flagged it as past its deadline.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub overdue_flagged_at: Option<NaiveDateTime>,
    pub remediation: Option<String>,
    pub remediated_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub remediated_at: Option<NaiveDateTime>,
    pub closure_note: Option<String>,
    pub closed_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub closed_at: Option<NaiveDateTime>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub opened_at: NaiveDateTime,
}

impl VendorFinding {
    fn of(finding: audits::Finding, today: NaiveDate) -> Self {
        Self {
            overdue: finding.overdue_on(today),
            id: finding.id.into_inner(),
            audit_id: finding.audit_id.into_inner(),
            vendor_id: finding.vendor_id.into_inner(),
            agency: finding.agency.into_inner(),
            description: finding.description,
            deadline: finding.deadline,
            status: finding.status,
            overdue_flagged_at: finding.overdue_flagged_at,
            remediation: finding.remediation,
            remediated_by: finding.remediated_by.map(|user| user.into_inner()),
            remediated_at: finding.remediated_at,
            closure_note: finding.closure_note,
            closed_by: finding.closed_by.map(|user| user.into_inner()),
            closed_at: finding.closed_at,
            opened_at: finding.opened_at,
        }
    }
}

/// An audit of a vendor with its findings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VendorAudit {
    pub id: String,
    pub vendor_id: String,
    pub agency: String,
    #[schema(value_type = String, format = Date)]
    pub audited_on: NaiveDate,
    pub auditor: String,
    pub scope: String,
    pub summary: String,
    pub recorded_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub recorded_at: NaiveDateTime,
    pub findings: Vec<VendorFinding>,
}

impl VendorAudit {
    fn of(recorded: audits::AuditWithFindings, today: NaiveDate) -> Self {
        let audit = recorded.audit;
        Self {
            id: audit.id.into_inner(),
            vendor_id: audit.vendor_id.into_inner(),
            agency: audit.agency.into_inner(),
            audited_on: audit.audited_on,
            auditor: audit.auditor,
            scope: audit.scope,
            summary: audit.summary,
            recorded_by: audit.recorded_by.into_inner(),
            recorded_at: audit.recorded_at,
            findings: recorded.findings.into_iter().map(|finding| VendorFinding::of(finding, today)).collect(),
        }
    }
}

/// Record an audit of a vendor with its findings (R-VEN-05), each opened with its deadline. Vendor
/// and account managers.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/audits",
    extensions(("x-immilink-rules" = json!(["R-VEN-05"]))),
    tag = "vendors", operation_id = "record_vendor_audit",
    security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id")),
    request_body = RecordVendorAudit,
    responses(
        (status = 201, body = VendorAudit),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/audits")]
pub async fn record(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    body: ApiJson<RecordVendorAudit>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let findings = body.findings.map(|findings| {
        findings.into_iter().map(|f| FindingInput { description: f.description, deadline: f.deadline }).collect()
    });
    let new = NewAudit::parse(
        VendorId::new(vendor_id.into_inner()),
        body.audited_on,
        body.auditor,
        body.scope,
        body.summary,
        findings,
    )?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let recorded =
        state.db.run(move |conn| audits::record_audit(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(VendorAudit::of(recorded, business_date(now))))
}

/// A vendor's audits with their findings, newest recorded first: `before` is the last `id` of the
/// previous page. Vendor and account managers.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/audits",
    extensions(("x-immilink-rules" = json!(["R-VEN-05"]))),
    tag = "vendors", operation_id = "list_vendor_audits",
    security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id"), PageQuery),
    responses(
        (status = 200, body = Vec<VendorAudit>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/audits")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<VendorAudit>>> {
    let page = page.into_inner().page()?;
    let (caller, now, vendor_id) = (caller.caller(), state.clock.now(), VendorId::new(vendor_id.into_inner()));
    let found = state
        .db
        .run(move |conn| audits::list_audits(conn, &caller, &vendor_id, &page))
        .await
        .map_err(ApiError::from)?;
    let today = business_date(now);
    Ok(web::Json(found.into_iter().map(|audit| VendorAudit::of(audit, today)).collect()))
}

/// Record the vendor's remediation of a finding (open → remediated). Vendor and account managers.
#[utoipa::path(post, path = "/v1/vendor-findings/{finding_id}/remediation",
    extensions(("x-immilink-rules" = json!(["R-VEN-05"]))),
    tag = "vendors", operation_id = "remediate_vendor_finding",
    security(("bearer" = [])),
    params(("finding_id" = String, Path, description = "The finding's id")),
    request_body = VendorFindingRemediation,
    responses(
        (status = 200, body = VendorFinding),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendor-findings/{finding_id}/remediation")]
pub async fn remediate(
    state: web::Data<State>,
    caller: Authenticated,
    finding_id: web::Path<String>,
    body: ApiJson<VendorFindingRemediation>,
) -> ApiResult<web::Json<VendorFinding>> {
    let remediation = audits::remediation_text(body.into_inner().remediation)?;
    let (caller, now, id) = (caller.caller(), state.clock.now(), FindingId::new(finding_id.into_inner()));
    let finding = state
        .db
        .run(move |conn| audits::remediate(conn, now, &caller, &id, &remediation))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(VendorFinding::of(finding, business_date(now))))
}

/// Close a remediated finding (remediated → closed): a vendor or account manager other than who
/// recorded the remediation (403 naming R-VEN-05 otherwise).
#[utoipa::path(post, path = "/v1/vendor-findings/{finding_id}/closure",
    extensions(("x-immilink-rules" = json!(["R-VEN-05"]))),
    tag = "vendors", operation_id = "close_vendor_finding",
    security(("bearer" = [])),
    params(("finding_id" = String, Path, description = "The finding's id")),
    request_body = CloseVendorFinding,
    responses(
        (status = 200, body = VendorFinding),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendor-findings/{finding_id}/closure")]
pub async fn close(
    state: web::Data<State>,
    caller: Authenticated,
    finding_id: web::Path<String>,
    body: ApiJson<CloseVendorFinding>,
) -> ApiResult<web::Json<VendorFinding>> {
    let note = audits::closure_note(body.into_inner().note)?;
    let (caller, now, id) = (caller.caller(), state.clock.now(), FindingId::new(finding_id.into_inner()));
    let finding =
        state.db.run(move |conn| audits::close(conn, now, &caller, &id, note)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(VendorFinding::of(finding, business_date(now))))
}

/// Filters of the agency's vendor findings, and the page.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    pub status: Option<FindingStatus>,
    /// Only this vendor's.
    pub vendor_id: Option<String>,
    /// Only findings past their deadline and not closed (`true`), or only the others (`false`).
    pub overdue: Option<bool>,
    /// At most this many (1–500, default 100), newest first.
    pub limit: Option<i64>,
    /// Continue after this id: the last id of the previous page.
    pub before: Option<String>,
}

/// The agency's vendor findings, newest first, by status, vendor or overdue. Vendor and account
/// managers.
#[utoipa::path(get, path = "/v1/vendor-findings",
    extensions(("x-immilink-rules" = json!(["R-VEN-05"]))),
    tag = "vendors", operation_id = "list_vendor_findings", security(("bearer" = [])),
    params(FindingQuery),
    responses(
        (status = 200, body = Vec<VendorFinding>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendor-findings")]
pub async fn list_findings(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<FindingQuery>,
) -> ApiResult<web::Json<Vec<VendorFinding>>> {
    let query = query.into_inner();
    let page = Page::new(query.limit, query.before.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()))?;
    let filter = FindingFilter {
        status: query.status,
        vendor_id: query.vendor_id.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(VendorId::new),
        overdue: query.overdue,
    };
    let (caller, now) = (caller.caller(), state.clock.now());
    let found = state
        .db
        .run(move |conn| audits::list_findings(conn, now, &caller, &filter, &page))
        .await
        .map_err(ApiError::from)?;
    let today = business_date(now);
    Ok(web::Json(found.into_iter().map(|finding| VendorFinding::of(finding, today)).collect()))
}
