//! The query record table (附件一, R-AUD-03) by Accept: JSON and CSV stream a page at a time; ODS
//! and the printable book are written at once.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::documents::CSV_CONTENT_TYPE;
use immilink_shared::extractors::{ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::accepts;
use crate::documents::query_records::{self as document, QueryRecordBook, ODS_CONTENT_TYPE};
use crate::domain::query_records::{self, Cursor, QueryRecordRow, TableFilter, TableRequest};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(table);
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TableParams {
    /// The calendar year (Taipei), e.g. 2026 (民國 115 年); the current year by default.
    pub year: Option<i32>,
    /// The agency (the immigration agency's reviewer may name any; others read their own).
    pub agency: Option<String>,
    /// A unit of the agency (a unit supervisor reads their own).
    pub unit: Option<String>,
    /// A user id: that user's lookups only.
    pub user: Option<String>,
    /// A case number: that case's lookups only.
    pub case_number: Option<String>,
}

/// The supervisor's sign-off of a lookup, from the monthly review (主管簽核).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SignOffView {
    /// `matches` or `does_not_match`.
    pub verdict: String,
    pub note: Option<String>,
    pub reviewed_by: String,
    pub reviewer_name: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub reviewed_at: NaiveDateTime,
}

/// One row of the query record table: one lookup.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QueryRecordItem {
    /// 序號: the row's number in the (filtered) year's table, from 1.
    pub serial: u64,
    pub lookup_id: String,
    /// The `lookup.requested` record in the audit log.
    pub audit_record_id: String,
    pub agency: String,
    pub unit: Option<String>,
    pub user_id: String,
    /// 使用者姓名, as the user's session recorded it.
    pub user_name: Option<String>,
    /// 登入: the login of the session the lookup was made in.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub login_at: Option<NaiveDateTime>,
    /// 登出: its logout (absent while the session is open).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub logout_at: Option<NaiveDateTime>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub requested_at: NaiveDateTime,
    /// 查詢條件: the query type and the subject.
    pub query_type: String,
    pub subject_id: String,
    /// The lookup's outcome: `succeeded`, `failed`, `outcome_unknown`, or absent while pending.
    pub outcome: Option<String>,
    /// 查詢結果: 成功, 失敗 or 處理中.
    pub result: String,
    /// 查詢事由: the legal basis and the purpose declared.
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    /// 備註.
    pub remarks: Option<String>,
    pub proxy_authorization_id: Option<String>,
    pub batch_id: Option<String>,
    /// 主管簽核 (absent until the monthly review marks the lookup).
    pub sign_off: Option<SignOffView>,
}

impl From<QueryRecordRow> for QueryRecordItem {
    fn from(row: QueryRecordRow) -> Self {
        Self {
            result: row.result_zh().to_owned(),
            serial: row.serial,
            lookup_id: row.lookup_id,
            audit_record_id: row.record_id,
            agency: row.agency,
            unit: row.unit,
            user_id: row.user_id,
            user_name: row.user_name,
            login_at: row.login_at,
            logout_at: row.logout_at,
            requested_at: row.requested_at,
            query_type: row.query_type,
            subject_id: row.subject_id,
            outcome: row.outcome,
            legal_basis: row.legal_basis,
            purpose_code: row.purpose_code,
            case_number: row.case_number,
            remarks: row.remarks,
            proxy_authorization_id: row.proxy_authorization_id,
            batch_id: row.batch_id,
            sign_off: row.sign_off.map(|s| SignOffView {
                verdict: s.verdict,
                note: s.note,
                reviewed_by: s.reviewed_by,
                reviewer_name: s.reviewer_name,
                reviewed_at: s.reviewed_at,
            }),
        }
    }
}

/// The JSON form of the table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryRecordTable {
    pub year: i32,
    pub agency: Option<String>,
    pub unit: Option<String>,
    pub rows: Vec<QueryRecordItem>,
}

/// Most rows the ODS and printable forms hold at once (the JSON and CSV forms stream any number).
const MAX_WRITTEN_AT_ONCE: usize = 100_000;

/// Rows per streamed page.
const PAGE: i64 = 2_000;

/// The query record table (查詢紀錄表, seed 002 附件一, R-AUD-03): one row per lookup of the year
/// with the form's columns. By Accept: JSON (default, streamed), `text/csv` (UTF-8 with a
/// byte-order mark, streamed), `application/vnd.oasis.opendocument.spreadsheet` (ODS) or
/// `text/html` (the printable yearly book: A4, Traditional Chinese, ROC dates, page numbers).
/// Auditors, ethics officers and account managers read their agency's; unit supervisors their
/// unit's; the immigration agency's reviewer any agency's. Every read is recorded in the log.
#[utoipa::path(get, path = "/v1/audit/query-records",
    extensions(("x-immilink-rules" = json!(["R-AUD-03"]))),
    tag = "oversight", security(("bearer" = [])), params(TableParams),
    responses(
        (status = 200, description = "The table",
            content((QueryRecordTable = "application/json"),
                (String = "text/csv", example = json!("\u{feff}序號,登入時間,登出時間,查詢時間,查詢項目,查詢對象,查詢結果,查詢事由,…\r\n")),
                (String = "application/vnd.oasis.opendocument.spreadsheet"),
                (String = "text/html"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/query-records")]
pub async fn table(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    params: ApiQuery<TableParams>,
) -> ApiResult<HttpResponse> {
    let (caller, params, now) = (caller.caller(), params.into_inner(), state.clock.now());
    let format = Format::of(&req);
    let request = TableRequest {
        year: params.year,
        agency: params.agency,
        unit: params.unit,
        user: params.user,
        case_number: params.case_number,
    };
    let label = format.label();
    let filter = state.db.run(move |conn| query_records::open_table(conn, now, &caller, request, label)).await?;
    // A unit supervisor with no unit reads an empty table.
    let filter = filter.unwrap_or_else(|| nothing(now));
    match format {
        Format::Json | Format::Csv => Ok(streamed(state, filter, format)),
        Format::Ods | Format::Html => {
            let read = filter.clone();
            let rows = state.db.run(move |conn| query_records::whole(conn, &read, MAX_WRITTEN_AT_ONCE)).await?;
            written(&filter, &rows, format, now)
        }
    }
}

/// A filter that matches nothing (an empty year range).
fn nothing(now: chrono::DateTime<chrono::Utc>) -> TableFilter {
    let at = immilink_shared::clock::to_db(now);
    TableFilter {
        year: chrono::Datelike::year(&immilink_shared::clock::business_date(now)),
        from: at,
        to: at,
        agency: None,
        unit: None,
        user: None,
        case_number: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Ods,
    Html,
}

impl Format {
    fn of(req: &HttpRequest) -> Self {
        if accepts(req, "text/csv") {
            Format::Csv
        } else if accepts(req, ODS_CONTENT_TYPE) {
            Format::Ods
        } else if accepts(req, "text/html") {
            Format::Html
        } else {
            Format::Json
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Ods => "ods",
            Format::Html => "html",
        }
    }
}

fn filename(filter: &TableFilter, extension: &str) -> String {
    let agency: String =
        filter.agency.as_deref().unwrap_or("all").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    format!("query-records-{agency}-{}.{extension}", filter.year)
}

fn written(
    filter: &TableFilter,
    rows: &[QueryRecordRow],
    format: Format,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<HttpResponse> {
    match format {
        Format::Ods => {
            let bytes = document::ods(filter, rows).map_err(|err| ApiError::internal(err.to_string()))?;
            Ok(HttpResponse::Ok()
                .content_type(ODS_CONTENT_TYPE)
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", filename(filter, "ods")),
                ))
                .body(bytes))
        }
        _ => {
            let html = askama::Template::render(&QueryRecordBook::of(filter, rows, now))
                .map_err(|err| ApiError::internal(err.to_string()))?;
            Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html))
        }
    }
}

fn streamed(state: web::Data<State>, filter: TableFilter, format: Format) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if format == Format::Csv {
        response.content_type(CSV_CONTENT_TYPE).insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", filename(&filter, "csv")),
        ));
    } else {
        response.content_type("application/json");
    }
    let chunks = Chunks { state, filter, format, cursor: None, started: false, finished: false };
    let stream = futures_util::stream::unfold(Some(chunks), |chunks| async move {
        let mut chunks = chunks?;
        match chunks.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(chunks))),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "streaming the query record table failed part way");
                Some((Err(std::io::Error::other(err.to_string())), None))
            }
        }
    });
    response.streaming(stream)
}

/// The pieces of a streamed table: the opening, one chunk per page of rows, the closing.
struct Chunks {
    state: web::Data<State>,
    filter: TableFilter,
    format: Format,
    cursor: Option<Cursor>,
    started: bool,
    finished: bool,
}

impl Chunks {
    async fn next(&mut self) -> Result<Option<web::Bytes>, ApiError> {
        if self.finished {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            return Ok(Some(match self.format {
                Format::Csv => web::Bytes::from(document::csv_header().map_err(|e| ApiError::internal(e.to_string()))?),
                _ => {
                    let head = serde_json::json!({ "year": self.filter.year, "agency": self.filter.agency, "unit": self.filter.unit });
                    // The object without its closing brace, then the rows array.
                    let mut text = head.to_string();
                    text.pop();
                    web::Bytes::from(format!("{text},\"rows\":["))
                }
            }));
        }
        let (filter, cursor) = (self.filter.clone(), self.cursor.clone());
        let rows = self.state.db.run(move |conn| query_records::page(conn, &filter, cursor.as_ref(), PAGE)).await?;
        let Some(last) = rows.last() else {
            self.finished = true;
            return Ok((self.format != Format::Csv).then(|| web::Bytes::from_static(b"]}")));
        };
        let first = self.cursor.is_none();
        self.cursor = Some(query_records::cursor_after(last));
        match self.format {
            Format::Csv => {
                Ok(Some(web::Bytes::from(document::csv_rows(&rows).map_err(|e| ApiError::internal(e.to_string()))?)))
            }
            _ => {
                let mut out = String::with_capacity(rows.len() * 512);
                for (i, row) in rows.into_iter().enumerate() {
                    if !(first && i == 0) {
                        out.push(',');
                    }
                    let item = QueryRecordItem::from(row);
                    out.push_str(&serde_json::to_string(&item).map_err(|e| ApiError::internal(e.to_string()))?);
                }
                Ok(Some(web::Bytes::from(out)))
            }
        }
    }
}
