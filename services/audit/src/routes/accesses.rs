//! Who read a person's data (R-GOV-02), as JSON or as the reply letter to a citizen's PDPA art. 10
//! request, and the account managers' export of users' query records as CSV (R-AUD-08), streamed a
//! page at a time so memory stays flat whatever the export's size.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use immilink_shared::clock::taipei;
use immilink_shared::db::Db;
use immilink_shared::documents::{spreadsheet_safe, CsvRows, CSV_CONTENT_TYPE};
use immilink_shared::extractors::{ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::documents::access_letter::AccessLetter;
use crate::domain::accesses::{
    self, Access, AccessInquiry, AccessReport, ExportCursor, ExportFilter, ExportRequest, ExportRow, Named, ReportForm,
};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(subject_accesses).service(export_query_records);
}

/// The period a report covers; either end may be left open.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessPeriod {
    /// Only lookups requested at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only lookups requested before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// A code and its Traditional Chinese name (none when the catalogue no longer knows the code).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct NamedCode {
    pub code: String,
    pub name_zh: Option<String>,
}

impl From<Named> for NamedCode {
    fn from(named: Named) -> Self {
        Self { code: named.code, name_zh: named.name_zh }
    }
}

/// One lookup of the person.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AccessView {
    pub lookup_id: String,
    /// The lookup's `lookup.requested` audit record.
    pub record_id: String,
    pub agency: String,
    pub unit: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub requested_at: NaiveDateTime,
    pub query_type: NamedCode,
    pub legal_basis: NamedCode,
    pub purpose: NamedCode,
    pub case_number: String,
    /// `succeeded`, `failed` or `outcome_unknown`; null while the lookup has no outcome yet.
    pub outcome: Option<String>,
}

impl From<Access> for AccessView {
    fn from(access: Access) -> Self {
        Self {
            lookup_id: access.lookup_id,
            record_id: access.record_id,
            agency: access.agency,
            unit: access.unit,
            requested_at: access.requested_at,
            query_type: access.query_type.into(),
            legal_basis: access.legal_basis.into(),
            purpose: access.purpose.into(),
            case_number: access.case_number,
            outcome: access.outcome,
        }
    }
}

/// Who read a person's data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({"report_id": "01938a5e-0000-7000-8000-000000000001", "reported_at": "2026-12-03T02:00:00Z",
    "subject_id": "A123456789", "agency": "TPE-SW", "from": null, "to": null, "count": 1, "agencies": ["TPE-SW"],
    "accesses": [{"lookup_id": "01938a5e-0000-7000-8000-0000000000a1", "record_id": "01938a5e-0000-7000-8000-0000000000b1",
        "agency": "TPE-SW", "unit": "unit-a", "requested_at": "2026-11-23T02:05:00.000000Z",
        "query_type": {"code": "entry_exit_last_year", "name_zh": "使用身分證號或統一證號查詢最近1年入出境紀錄"},
        "legal_basis": {"code": "social_assistance_act", "name_zh": "社會救助法"},
        "purpose": {"code": "sw_statutory_business", "name_zh": "社會福利法定業務"},
        "case_number": "TPE-2026-7", "outcome": "succeeded"}]}))]
pub struct AccessReportView {
    /// The id of this report's own audit record (`audit.subject_accesses_reported`).
    pub report_id: String,
    pub reported_at: DateTime<Utc>,
    pub subject_id: String,
    /// The agency whose lookups are listed; null: every agency's (the immigration agency's reviewer).
    pub agency: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub count: usize,
    /// The agencies that looked the person up, each once.
    pub agencies: Vec<String>,
    /// In the order requested.
    pub accesses: Vec<AccessView>,
}

impl From<AccessReport> for AccessReportView {
    fn from(report: AccessReport) -> Self {
        Self {
            agencies: report.agencies(),
            count: report.accesses.len(),
            report_id: report.report_id,
            reported_at: report.reported_at,
            subject_id: report.subject_id,
            agency: report.agency,
            from: report.from,
            to: report.to,
            accesses: report.accesses.into_iter().map(AccessView::from).collect(),
        }
    }
}

/// Whether the client asked for `media` (`text/html`, `text/csv`) in its Accept header.
fn accepts(req: &HttpRequest, media: &str) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(media)))
}

/// Who read this person's data (R-GOV-02, PDPA art. 10): each lookup of them — agency, unit, date
/// and time, query type, legal basis and purpose (codes with their names), case number, outcome —
/// in the order requested. Auditors, ethics officers and account managers see their agency's
/// lookups; the immigration agency's reviewer every agency's; anyone else is refused (403). The
/// subject is a national ID, UI number or passport number (422 naming `subject_id` when it is not
/// one). Every report is itself recorded in the audit log. With `Accept: text/html`: the printable
/// reply letter to the person (個人資料查詢答覆函: ROC dates, the identifier partly masked). Not cached.
#[utoipa::path(get, path = "/v1/audit/subjects/{subject_id}/accesses",
    extensions(("x-immilink-rules" = json!(["R-GOV-02"]))),
    operation_id = "subject_accesses", tag = "audit",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "National ID, UI number or passport number"), AccessPeriod),
    responses(
        (status = 200, description = "Who read the person's data",
            content((AccessReportView = "application/json"),
                (String = "text/html", example = json!("<!DOCTYPE html>…個人資料查詢答覆函…")))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/subjects/{subject_id}/accesses")]
pub async fn subject_accesses(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    subject_id: web::Path<String>,
    period: ApiQuery<AccessPeriod>,
) -> ApiResult<HttpResponse> {
    let (caller, now, period) = (caller.caller(), state.clock.now(), period.into_inner());
    let form = if accepts(&req, "text/html") { ReportForm::ReplyLetter } else { ReportForm::List };
    let inquiry = AccessInquiry::parse(&subject_id.into_inner(), period.from, period.to, form)?;
    let report = state.db.run(move |conn| accesses::report(conn, now, &caller, &inquiry)).await?;
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(match form {
        ReportForm::ReplyLetter => {
            let html = AccessLetter::of(&report)
                .html()
                .map_err(|err| ApiError::internal(format!("the reply letter does not render: {err}")))?;
            response.content_type("text/html; charset=utf-8").body(html)
        }
        ReportForm::List => response.json(AccessReportView::from(report)),
    })
}

/// Which query records to export.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Lookups requested at or after this instant (RFC 3339). Required.
    pub from: Option<DateTime<Utc>>,
    /// Lookups requested before this instant (RFC 3339). Required, later than `from`.
    pub to: Option<DateTime<Utc>>,
    /// Only this user's lookups (user id).
    pub user: Option<String>,
    /// Only this unit's lookups (unit id).
    pub unit: Option<String>,
    /// The caller's own agency code; another agency's is refused (403).
    pub agency: Option<String>,
}

/// Rows read from the database per chunk of an export.
pub(crate) const EXPORT_PAGE: i64 = 2_000;

/// The columns of an export, in order.
pub(crate) const EXPORT_COLUMNS: [&str; 15] = [
    "lookup_id",
    "record_id",
    "requested_at",
    "requested_at_taipei",
    "agency",
    "unit",
    "user_id",
    "user_name",
    "query_type",
    "subject_id",
    "legal_basis",
    "purpose_code",
    "case_number",
    "outcome",
    "remarks",
];

/// Export users' query records for spot checks (R-AUD-08): the caller's agency's lookups requested
/// in `[from, to)`, optionally one user's or one unit's, as CSV (UTF-8 with a byte-order mark; one
/// row per lookup in the order requested; columns `lookup_id, record_id, requested_at (RFC 3339),
/// requested_at_taipei, agency, unit, user_id, user_name, query_type, subject_id, legal_basis,
/// purpose_code, case_number, outcome, remarks`). Account managers only, for their own agency. The
/// export is recorded in the audit log (who, which filters, how many rows) before the first byte is
/// sent, then streamed a page at a time; it holds exactly the rows its record counts.
#[utoipa::path(get, path = "/v1/audit/query-records/export",
    extensions(("x-immilink-rules" = json!(["R-AUD-03", "R-AUD-08"]))),
    operation_id = "export_query_records", tag = "audit",
    security(("bearer" = [])), params(ExportQuery),
    responses(
        (status = 200, description = "The query records as CSV, streamed",
            headers(("x-immilink-export-id" = String, description = "The export's id, as its audit record names it"),
                ("x-immilink-export-rows" = i64, description = "How many rows the export holds")),
            content((String = "text/csv", example = json!("\u{feff}lookup_id,record_id,requested_at,requested_at_taipei,agency,unit,user_id,user_name,query_type,subject_id,legal_basis,purpose_code,case_number,outcome,remarks\r\n")))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/query-records/export")]
pub async fn export_query_records(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ExportQuery>,
) -> ApiResult<HttpResponse> {
    let (caller, now, query) = (caller.caller(), state.clock.now(), query.into_inner());
    let request =
        ExportRequest { agency: query.agency, from: query.from, to: query.to, user: query.user, unit: query.unit };
    let filter = ExportFilter::parse(&caller, request)?;
    let started = state.db.run(move |conn| accesses::start_export(conn, now, &caller, &filter)).await?;
    let filename = format!(
        "query-records-{}-{}.csv",
        sanitise_filename(&started.filter.agency),
        started.filter.from.with_timezone(&taipei()).format("%Y%m%d")
    );
    Ok(HttpResponse::Ok()
        .content_type(CSV_CONTENT_TYPE)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-immilink-export-id", started.export_id.clone()))
        .insert_header(("x-immilink-export-rows", started.rows.to_string()))
        .body(ExportBody::new(state.db.clone(), started.filter)))
}

fn sanitise_filename(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// The pieces of an export: the header row (with the byte-order mark), then one chunk per page.
struct ExportChunks {
    db: Db,
    filter: ExportFilter,
    after: Option<ExportCursor>,
    started: bool,
}

impl ExportChunks {
    async fn next(&mut self) -> Result<Option<web::Bytes>, ApiError> {
        if !self.started {
            self.started = true;
            return csv_chunk(CsvRows::file_start(), std::iter::once(EXPORT_COLUMNS.map(str::to_owned))).map(Some);
        }
        let (filter, after) = (self.filter.clone(), self.after.clone());
        let page = self.db.run(move |conn| accesses::export_page(conn, &filter, after.as_ref(), EXPORT_PAGE)).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        self.after = Some(last.cursor());
        csv_chunk(CsvRows::continuation(), page.into_iter().map(csv_cells)).map(Some)
    }
}

/// The page being read, owning the chunks until it is done.
type PendingChunk = Pin<Box<dyn Future<Output = (ExportChunks, Result<Option<web::Bytes>, ApiError>)>>>;

/// An export as a response body: reads the next page only when the previous chunk has been taken,
/// so at most one page is in memory whatever the export's size, and a client that goes away stops
/// the reading.
struct ExportBody {
    chunks: Option<ExportChunks>,
    pending: Option<PendingChunk>,
}

impl ExportBody {
    fn new(db: Db, filter: ExportFilter) -> Self {
        Self { chunks: Some(ExportChunks { db, filter, after: None, started: false }), pending: None }
    }
}

impl MessageBody for ExportBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            let Some(mut chunks) = this.chunks.take() else {
                return Poll::Ready(None);
            };
            this.pending = Some(Box::pin(async move {
                let next = chunks.next().await;
                (chunks, next)
            }));
        }
        let Some(pending) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let Poll::Ready((chunks, next)) = pending.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        this.pending = None;
        Poll::Ready(match next {
            Ok(Some(bytes)) => {
                this.chunks = Some(chunks);
                Some(Ok(bytes))
            }
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "streaming a query record export failed part way");
                Some(Err(std::io::Error::other(err.to_string())))
            }
        })
    }
}

/// Rows written through the `csv` crate into one chunk of the file.
fn csv_chunk(mut rows: CsvRows, cells: impl Iterator<Item = [String; 15]>) -> Result<web::Bytes, ApiError> {
    for row in cells {
        rows.row(row.iter().map(|cell| spreadsheet_safe(cell)))
            .map_err(|err| ApiError::internal(format!("writing CSV: {err}")))?;
    }
    rows.into_bytes().map(web::Bytes::from).map_err(|err| ApiError::internal(format!("writing CSV: {err}")))
}

fn csv_cells(row: ExportRow) -> [String; 15] {
    let at = row.requested_at.and_utc();
    [
        row.lookup_id,
        row.record_id,
        at.to_rfc3339_opts(SecondsFormat::Micros, true),
        at.with_timezone(&taipei()).format("%Y-%m-%d %H:%M:%S").to_string(),
        row.agency,
        row.unit.unwrap_or_default(),
        row.user_id,
        row.user_name.unwrap_or_default(),
        row.query_type,
        row.subject_id,
        row.legal_basis,
        row.purpose_code,
        row.case_number,
        row.outcome.unwrap_or_default(),
        row.remarks.unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_defused() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("一般備註"), "一般備註");
        assert_eq!(sanitise_filename("TPE-SW\"; x"), "TPE-SWx");
    }
}
