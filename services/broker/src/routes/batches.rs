//! Bulk lookups (R-QRY-05): submit a job, follow it, fetch its results. There is deliberately no
//! PUT, PATCH or DELETE here: results obtained from the upstream are read-only (R-QRY-12).

use actix_web::http::header;
use actix_web::{get, post, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use futures_util::StreamExt;
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::documents::{spreadsheet_safe, CsvRows, CSV_CONTENT_TYPE};
use immilink_shared::extractors::{
    client_ip, declares_utf8, parse_json, parse_query, ApiQuery, Authenticated, PageQuery,
};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::batches::{self, BatchProgress, BatchRequest, ItemRow, SubmittedId, MAX_SUBJECTS};
use crate::domain::{fields, request, BatchId, BrokerError};
use crate::pipeline::Declared;
use crate::results::LookupResult;
use crate::State;

/// Largest submission body: 10 000 IDs with generous formatting fit many times over.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Items read from the database per chunk of a streamed result.
const PAGE: i64 = 500;
/// The columns of a CSV result.
const CSV_COLUMNS: [&str; 7] =
    ["position", "subject_id", "status", "lookup_id", "error_code", "error_detail", "result"];

/// A bulk lookup: one declaration for every subject ID (R-QRY-01). Proxy authorizations are not
/// accepted on batches.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BatchBody {
    /// Query type code (see `GET /v1/catalogue/query-types`).
    #[schema(value_type = QueryType, required = true, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    /// Legal basis code (see `GET /v1/catalogue/legal-bases`).
    #[schema(schema_with = catalogue::legal_basis_code_schema, required = true, example = "social_assistance_act")]
    pub legal_basis: Option<String>,
    /// Purpose code (see `GET /v1/catalogue/purposes`).
    #[schema(schema_with = catalogue::purpose_code_schema, required = true, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
    /// The case these lookups serve (案號).
    #[schema(required = true, nullable = false, min_length = 1, example = "TPE-SW-2026-000123")]
    pub case_number: Option<String>,
    /// 1 to 10 000 subject IDs, each validated before anything is stored (R-QRY-04); duplicates are
    /// allowed and each is its own lookup.
    #[schema(required = true, nullable = false, min_items = 1, max_items = 10000, example = json!(["A123456789"]))]
    pub subject_ids: Option<Vec<String>>,
    /// Free-text remarks for the query record table.
    pub remarks: Option<String>,
    /// Not accepted on batches (422): run proxy lookups one by one.
    pub proxy_authorization_id: Option<String>,
}

/// The declaration of a CSV submission, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchDeclaration {
    /// Query type code (CSV submissions).
    pub query_type: Option<String>,
    /// Legal basis code (CSV submissions).
    pub legal_basis: Option<String>,
    /// Purpose code (CSV submissions).
    pub purpose_code: Option<String>,
    /// Case number (CSV submissions).
    pub case_number: Option<String>,
    /// Remarks (CSV submissions).
    pub remarks: Option<String>,
    /// Not accepted on batches (422).
    pub proxy_authorization_id: Option<String>,
}

impl BatchDeclaration {
    /// What it declared, kept (bounded) for the audit record of a refusal.
    fn declared(&self) -> Declared {
        Declared {
            query_type: Declared::bounded(self.query_type.as_deref()),
            subject_id: None,
            legal_basis: Declared::bounded(self.legal_basis.as_deref()),
            purpose_code: Declared::bounded(self.purpose_code.as_deref()),
            case_number: Declared::bounded(self.case_number.as_deref()),
            proxy_authorization_id: Declared::bounded(self.proxy_authorization_id.as_deref()),
        }
    }

    /// The job through the domain's rules: its size, the declaration as a single lookup's, no proxy,
    /// then every ID. `declared` gains the ID refused, for the refusal's audit record.
    fn parse(self, submitted: &[SubmittedId], declared: &mut Declared) -> Result<BatchRequest, BrokerError> {
        batches::check_size(submitted.len())?;
        let legal_basis = request::legal_basis(self.legal_basis)?;
        let purpose_code = request::purpose_code(self.purpose_code)?;
        let case_number = fields::case_number(self.case_number, request::RULE)?;
        let query_type = request::query_type(self.query_type)?;
        let remarks = request::remarks(self.remarks)?;
        batches::refuse_proxy(self.proxy_authorization_id)?;
        let subjects = batches::subjects(query_type, submitted).map_err(|refused| {
            declared.subject_id = submitted.get(refused.index).and_then(|id| Declared::bounded(Some(&id.raw)));
            refused.error
        })?;
        Ok(BatchRequest { query_type, legal_basis, purpose_code, case_number, remarks, subjects })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchAccepted {
    pub batch_id: String,
    /// `queued`.
    pub status: String,
    pub total: i32,
}

/// A batch's progress. `done` = `succeeded` + `failed`; items that were never run because the batch
/// was cancelled are counted in `cancelled`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchView {
    pub batch_id: String,
    /// `queued`, `running`, `completed` or `cancelled`.
    pub status: String,
    pub total: i32,
    pub done: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub cancelled: i64,
    pub query_type: String,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    /// The submitter.
    pub user_id: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub started_at: Option<NaiveDateTime>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub finished_at: Option<NaiveDateTime>,
    /// Why the batch was cancelled.
    pub failure: Option<String>,
}

impl From<BatchProgress> for BatchView {
    fn from(BatchProgress { batch, cancelled }: BatchProgress) -> Self {
        Self {
            batch_id: batch.id.into_inner(),
            status: batch.status.to_string(),
            total: batch.total,
            done: batch.done,
            succeeded: batch.succeeded,
            failed: batch.failed,
            cancelled,
            query_type: batch.query_type,
            legal_basis: batch.legal_basis,
            purpose_code: batch.purpose_code,
            case_number: batch.case_number.into_inner(),
            user_id: batch.user_id.into_inner(),
            created_at: batch.created_at,
            started_at: batch.started_at,
            finished_at: batch.finished_at,
            failure: batch.failure,
        }
    }
}

/// Why an item did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ItemError {
    /// The problem code a single lookup would have answered (`upstream_unavailable`, `upstream_rejected`,
    /// …), or `cancelled`, `interrupted`.
    pub code: String,
    pub detail: String,
    /// The SPEC rule that refused it, where one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// One finished item of a batch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResultItem {
    /// 0-based position in the submitted list.
    pub position: i32,
    pub subject_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The item's own lookup (its audit records carry it as `correlation_id`).
    pub lookup_id: Option<String>,
    /// Only the approved data items of the query type (R-QRY-07), as the lookup returned them.
    #[schema(value_type = Option<LookupResult>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<ItemError>,
}

impl From<ItemRow> for BatchResultItem {
    fn from(item: ItemRow) -> Self {
        let error = item.error().map(|e| ItemError { code: e.code, detail: e.detail, rule: e.rule });
        let result = item.result.as_deref().and_then(|text| match serde_json::from_str(text) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::error!(batch_id = %item.batch_id, position = item.position, error = %err, "stored result does not parse");
                None
            }
        });
        Self {
            position: item.position,
            subject_id: item.subject_id,
            status: item.status.to_string(),
            lookup_id: item.lookup_id.map(|id| id.into_inner()),
            result,
            error,
        }
    }
}

/// Submit a bulk lookup job.
///
/// JSON (`application/json`, a [`BatchBody`]) or CSV (`text/csv`: one subject ID per line, an
/// optional `subject_id` header line, blank lines ignored; the declaration in the query string).
/// The declaration is checked as for a single lookup (R-QRY-01, R-LINK, R-QRY-02, R-QRY-10) and every
/// ID is validated before anything is stored (R-QRY-04): an invalid one is refused naming
/// `subject_ids[i]` (for CSV, `i` is the 0-based data row and the detail names the line). Accepted
/// jobs run in the background; each ID becomes its own audited lookup (R-QRY-05, R-QRY-08). A job
/// whose agency's link can no longer be used, or whose submitter is no longer active or permitted, is
/// cancelled before its next chunk, its remaining items naming the rule.
#[utoipa::path(post, path = "/v1/batches",
    extensions(("x-immilink-rules" = json!(["R-QRY-01", "R-QRY-02", "R-QRY-04", "R-QRY-05", "R-QRY-08", "R-QRY-10", "R-LINK-03", "R-LINK-06", "R-LINK-08", "R-LINK-12", "R-VEN-08"]))),
    tag = "batches", security(("bearer" = [])), params(BatchDeclaration),
    request_body(description = "The IDs and declaration as JSON, or the IDs as CSV with the declaration in the query string",
        content((BatchBody = "application/json"), (String = "text/csv", example = json!("subject_id\r\nA123456789\r\n")))),
    responses(
        (status = 202, description = "Accepted; `Location` names the job", body = BatchAccepted,
            headers(("Location" = String, description = "/v1/batches/{batch_id}"))),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agency's link cannot be used now, `code` and `rule` naming why (e.g. `link_suspended` R-LINK-06, `link_terminated` R-LINK-08, `outside_usage_period` R-LINK-12) or does not carry the query type (`item_not_on_link`, R-LINK-03); not permitted (R-QRY-02) or no supervisor approval (R-QRY-10)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01), an invalid subject ID (`subject_ids[i]`, R-QRY-04), no or more than 10 000 IDs, or a proxy authorization", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Per-user or per-agency rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity or the database is not answering", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/batches")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let who = caller.caller();
    state.limits.admit(&who, 1)?;
    let body = read_body(payload).await?;
    let batch = submit(&req, &state, &caller, &body).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/batches/{}", batch.batch_id)))
        .json(batch))
}

/// The submission of an authenticated caller, its body read: parsed, checked as a single lookup's
/// declaration (every refusal recorded, naming its rule), stored, and the worker woken.
pub(crate) async fn submit(
    req: &HttpRequest,
    state: &State,
    caller: &Authenticated,
    body: &[u8],
) -> ApiResult<BatchAccepted> {
    let who = caller.caller();
    let (declaration, submitted) = submission(req, body)?;
    let mut declared = declaration.declared();
    let accepted = async {
        let request = declaration.parse(&submitted, &mut declared)?;
        let entitlements = state.identity.permissions(&who.session_id, &caller.token, client_ip(req)).await?;
        request.authorize(&entitlements)?;
        let (now, submitter) = (state.clock.now(), who.clone());
        state.db.run(move |conn| batches::submit(conn, now, &submitter, request)).await
    };
    let batch = match accepted.await {
        Ok(batch) => batch,
        Err(refusal) => return Err(state.lookups.refuse(&who, &declared, refusal).await),
    };
    state.relay.wake();
    state.batch_wake.wake();
    Ok(BatchAccepted { batch_id: batch.id.into_inner(), status: batch.status.to_string(), total: batch.total })
}

async fn read_body(mut payload: web::Payload) -> ApiResult<web::Bytes> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::malformed_body(err.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "The request body is too large",
                "請求內容過大",
            )
            .detail(format!("a batch body is limited to {MAX_BODY_BYTES} bytes ({MAX_SUBJECTS} IDs)"))
            .field("subject_ids"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The declaration and the IDs, from a JSON body or a CSV body with the declaration in the query.
fn submission(req: &HttpRequest, body: &[u8]) -> ApiResult<(BatchDeclaration, Vec<SubmittedId>)> {
    let mime = req.mime_type().ok().flatten();
    let is_json = mime.as_ref().is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
    let is_csv = mime.as_ref().is_some_and(|m| m.type_() == "text" && m.subtype() == "csv");
    if (is_json || is_csv) && !declares_utf8(req) {
        return Err(ApiError::unsupported_media_type("send the batch in UTF-8: no other charset is read"));
    }
    if is_json {
        let body: BatchBody = parse_json(body)?;
        let subjects = body.subject_ids.ok_or_else(|| ApiError::missing_field("subject_ids"))?;
        let declaration = BatchDeclaration {
            query_type: body.query_type,
            legal_basis: body.legal_basis,
            purpose_code: body.purpose_code,
            case_number: body.case_number,
            remarks: body.remarks,
            proxy_authorization_id: body.proxy_authorization_id,
        };
        Ok((declaration, subjects.into_iter().map(SubmittedId::listed).collect()))
    } else if is_csv {
        let declaration: BatchDeclaration = parse_query(req.query_string())?;
        Ok((declaration, csv_subjects(body)?))
    } else {
        Err(ApiError::unsupported_media_type(
            "send the batch as application/json, or as text/csv with the declaration in the query string",
        ))
    }
}

/// A CSV submission read with the `csv` crate: one ID per line; an optional `subject_id` header;
/// blank lines ignored; CRLF, a UTF-8 byte-order mark and a value in double quotes tolerated. A line
/// with more than one field is kept as it is, for the domain to refuse naming its line.
fn csv_subjects(body: &[u8]) -> ApiResult<Vec<SubmittedId>> {
    let text = std::str::from_utf8(body)
        .map_err(|err| ApiError::malformed_body(format!("the CSV body is not UTF-8: {err}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut lines = LineCounter::default();
    let mut subjects = Vec::new();
    let mut seen_first = false;
    for record in reader.records() {
        let record = record.map_err(|err| ApiError::malformed_body(format!("the CSV body does not parse: {err}")))?;
        let line = record.position().map(|position| lines.line_at(text, position.byte() as usize));
        let fields: Vec<&str> = record.iter().map(str::trim).collect();
        if fields.iter().all(|field| field.is_empty()) {
            continue;
        }
        // A quoted value after a space is not a CSV quote: strip the quotes here.
        let first = fields.first().copied().unwrap_or_default();
        let value = first.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(first).trim();
        if !seen_first {
            seen_first = true;
            if fields.len() == 1 && value.eq_ignore_ascii_case("subject_id") {
                continue;
            }
        }
        subjects.push(SubmittedId { raw: value.to_owned(), line, fields: fields.len() });
    }
    Ok(subjects)
}

/// The line a record starts on, counted from its byte offset (the `csv` crate's own line count is
/// off after CRLF line ends). Records come in order, so the count goes on from the previous one.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, start: usize) -> usize {
        // A record's offset may point at the line end before it, or at blank lines before it.
        let rest = text.get(start..).unwrap_or_default();
        let content = start + (rest.len() - rest.trim_start_matches(['\r', '\n']).len());
        let skipped = text.get(self.offset..content).unwrap_or_default();
        self.line += skipped.matches('\n').count();
        self.offset = content.max(self.offset);
        self.line + 1
    }
}

/// A batch's progress.
///
/// For its submitter, and the account managers and auditors of its agency; 404 for anyone else.
#[utoipa::path(get, path = "/v1/batches/{id}",
    extensions(("x-immilink-rules" = json!(["R-QRY-05"]))),
    tag = "batches", security(("bearer" = [])),
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, body = BatchView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/batches/{id}")]
pub async fn status(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<BatchView>> {
    let caller = caller.caller();
    let id = BatchId::new(id.into_inner());
    let progress = state.db.run(move |conn| batches::progress(conn, &caller, &id)).await?;
    Ok(web::Json(progress.into()))
}

/// The caller's own batches, newest first.
#[utoipa::path(get, path = "/v1/batches",
    extensions(("x-immilink-rules" = json!(["R-QRY-05"]))),
    tag = "batches", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = Vec<BatchView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` outside 1–500", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/batches")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<BatchView>>> {
    let caller = caller.caller();
    let page = page.into_inner().page()?;
    let batches = state.db.run(move |conn| batches::list(conn, &caller, &page)).await?;
    Ok(web::Json(batches.into_iter().map(BatchView::from).collect()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// The results of a batch's finished items, streamed.
///
/// Only for the batch's submitter (404 for anyone else). JSON (an array of [`BatchResultItem`]) by
/// default; CSV with `Accept: text/csv` (UTF-8 with a byte-order mark), columns `position,subject_id,
/// status,lookup_id,error_code,error_detail,result` (the result as JSON text). Items of a running
/// batch are listed as they finish. Results are read-only (R-QRY-12).
#[utoipa::path(get, path = "/v1/batches/{id}/results",
    extensions(("x-immilink-rules" = json!(["R-QRY-05", "R-QRY-07", "R-QRY-12"]))),
    tag = "batches", security(("bearer" = [])),
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The finished items in order of position",
            content((Vec<BatchResultItem> = "application/json"),
                (String = "text/csv", example = json!("position,subject_id,status,lookup_id,error_code,error_detail,result\r\n")))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/batches/{id}/results")]
pub async fn results(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let caller = caller.caller();
    let id = BatchId::new(id.into_inner());
    let batch = state.db.run(move |conn| batches::for_results(conn, &caller, &id)).await?;
    let format = if accepts_csv(&req) { Format::Csv } else { Format::Json };
    let filename = format!("batch-{}.csv", sanitise_filename(batch.id.as_str()));
    let stream = futures_util::stream::unfold(Some(Chunks::new(state, batch.id, format)), |chunks| async move {
        let mut chunks = chunks?;
        match chunks.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(chunks))),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "streaming batch results failed part way");
                Some((Err(std::io::Error::other(err.to_string())), None))
            }
        }
    });
    let mut response = HttpResponse::Ok();
    match format {
        Format::Csv => response
            .content_type(CSV_CONTENT_TYPE)
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))),
        Format::Json => response.content_type("application/json"),
    };
    Ok(response.streaming(stream))
}

fn accepts_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv")))
}

fn sanitise_filename(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// The pieces of a streamed result: the opening, one chunk per page of items, the closing.
struct Chunks {
    state: web::Data<State>,
    batch_id: BatchId,
    format: Format,
    after: i32,
    started: bool,
    wrote_item: bool,
    finished: bool,
}

impl Chunks {
    fn new(state: web::Data<State>, batch_id: BatchId, format: Format) -> Self {
        Self { state, batch_id, format, after: -1, started: false, wrote_item: false, finished: false }
    }

    async fn next(&mut self) -> Result<Option<web::Bytes>, ApiError> {
        if self.finished {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            return Ok(Some(match self.format {
                Format::Json => web::Bytes::from_static(b"["),
                Format::Csv => csv_chunk(CsvRows::file_start(), std::iter::once(CSV_COLUMNS.map(str::to_owned)))?,
            }));
        }
        let (batch_id, after) = (self.batch_id.clone(), self.after);
        let page = self.state.db.run(move |conn| batches::results_page(conn, &batch_id, after, PAGE)).await?;
        let Some(last) = page.last() else {
            self.finished = true;
            return Ok(match self.format {
                Format::Json => Some(web::Bytes::from_static(b"]")),
                Format::Csv => None,
            });
        };
        self.after = last.position;
        match self.format {
            Format::Json => {
                let mut out = String::with_capacity(page.len() * 256);
                for item in page {
                    if self.wrote_item {
                        out.push(',');
                    }
                    self.wrote_item = true;
                    let item = BatchResultItem::from(item);
                    out.push_str(&serde_json::to_string(&item).map_err(ApiError::internal)?);
                }
                Ok(Some(web::Bytes::from(out)))
            }
            Format::Csv => csv_chunk(CsvRows::continuation(), page.into_iter().map(csv_cells)).map(Some),
        }
    }
}

/// Rows written through the `csv` crate into one chunk of the file.
fn csv_chunk(mut rows: CsvRows, cells: impl Iterator<Item = [String; 7]>) -> Result<web::Bytes, ApiError> {
    for row in cells {
        rows.row(row.iter().map(|cell| spreadsheet_safe(cell)))
            .map_err(|err| ApiError::internal(format!("writing CSV: {err}")))?;
    }
    rows.into_bytes().map(web::Bytes::from).map_err(|err| ApiError::internal(format!("writing CSV: {err}")))
}

fn csv_cells(item: ItemRow) -> [String; 7] {
    let error = item.error();
    [
        item.position.to_string(),
        item.subject_id,
        item.status.to_string(),
        item.lookup_id.map(|id| id.into_inner()).unwrap_or_default(),
        error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
        error.map(|e| e.detail).unwrap_or_default(),
        item.result.unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(subjects: &[SubmittedId]) -> Vec<(&str, Option<usize>, usize)> {
        subjects.iter().map(|s| (s.raw.as_str(), s.line, s.fields)).collect()
    }

    #[test]
    fn csv_takes_one_id_per_line_with_an_optional_header_blank_lines_crlf_a_bom_and_quotes() {
        let body = "\u{feff}subject_id\r\nA123456789\r\n\r\n \"F131104093\" \r\n\"B120000003\"\na123456789";
        let subjects = csv_subjects(body.as_bytes()).unwrap();
        assert_eq!(
            raw(&subjects),
            [
                ("A123456789", Some(2), 1),
                ("F131104093", Some(4), 1),
                ("B120000003", Some(5), 1),
                ("a123456789", Some(6), 1)
            ]
        );
        // Without a header the first line is data.
        assert_eq!(raw(&csv_subjects(b"A123456789\n").unwrap()), [("A123456789", Some(1), 1)]);
        assert!(csv_subjects(b"\n\r\n  \n").unwrap().is_empty());
        assert_eq!(csv_subjects(b"\xff\xfe").unwrap_err().code(), "malformed_body");
        // A line with more than one field is kept, with its line, for the domain to refuse.
        let two = csv_subjects(b"subject_id\nA123456789\nA123456789,B120000003\n").unwrap();
        assert_eq!(raw(&two)[1], ("A123456789", Some(3), 2));
    }

    #[test]
    fn r_qry_04_a_line_with_more_than_one_field_is_refused_naming_its_line() {
        let submitted = csv_subjects(b"subject_id\nA123456789\nA123456789,F131104093\n").unwrap();
        let refused = batches::subjects(QueryType::EntryExitLastYear, &submitted).unwrap_err();
        assert_eq!(refused.index, 1);
        let problem = ApiError::from(refused.error).to_problem();
        assert_eq!((problem.status, problem.field.as_deref()), (422, Some("subject_ids[1]")));
        assert_eq!(problem.rule.as_deref(), Some("R-QRY-04"));
        assert!(problem.detail.starts_with("line 3: "), "{}", problem.detail);
    }

    #[test]
    fn r_qry_04_a_refused_id_names_its_place_in_the_list_and_its_csv_line() {
        let submitted = csv_subjects(b"subject_id\nA123456789\n\nF131104093\nA123456788\n").unwrap();
        let refused = batches::subjects(QueryType::EntryExitLastYear, &submitted).unwrap_err();
        assert_eq!(refused.index, 2);
        let problem = ApiError::from(refused.error).to_problem();
        assert_eq!((problem.status, problem.field.as_deref()), (422, Some("subject_ids[2]")));
        assert_eq!(problem.rule.as_deref(), Some("R-QRY-04"));
        assert!(problem.detail.starts_with("line 5: "), "{}", problem.detail);
    }

    #[test]
    fn a_batch_declaration_is_parsed_with_its_size_no_proxy_and_every_id() {
        let declaration = || BatchDeclaration {
            query_type: Some("entry_exit_last_year".into()),
            legal_basis: Some("social_assistance_act".into()),
            purpose_code: Some("sw_statutory_business".into()),
            case_number: Some("TPE-2026-7".into()),
            ..BatchDeclaration::default()
        };
        let ids = |raw: &[&str]| raw.iter().map(|id| SubmittedId::listed(*id)).collect::<Vec<_>>();
        let mut declared = declaration().declared();
        let parsed = declaration().parse(&ids(&["A123456789", "a123456789"]), &mut declared).unwrap();
        assert_eq!(parsed.subjects.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["A123456789", "A123456789"]);

        let field = |declaration: BatchDeclaration, submitted: &[SubmittedId]| {
            let mut declared = Declared::default();
            let err = declaration.parse(submitted, &mut declared).unwrap_err();
            (ApiError::from(err).field_name().map(str::to_owned), declared.subject_id)
        };
        assert_eq!(field(declaration(), &[]), (Some("subject_ids".into()), None));
        let too_many = ids(&["A123456789"; MAX_SUBJECTS + 1]);
        assert_eq!(field(declaration(), &too_many), (Some("subject_ids".into()), None));
        let proxy = BatchDeclaration {
            proxy_authorization_id: Some("01900000-0000-7000-8000-000000000000".into()),
            ..declaration()
        };
        assert_eq!(field(proxy, &ids(&["A123456789"])), (Some("proxy_authorization_id".into()), None));
        let bad = ids(&["A123456789", "A123456788"]);
        assert_eq!(field(declaration(), &bad), (Some("subject_ids[1]".into()), Some("A123456788".into())));
        let blank_first = ids(&[" ", "A123456789"]);
        assert_eq!(field(declaration(), &blank_first).0.as_deref(), Some("subject_ids[0]"));
    }

    #[test]
    fn csv_results_start_with_a_byte_order_mark_and_defuse_formulas() {
        let header = csv_chunk(CsvRows::file_start(), std::iter::once(CSV_COLUMNS.map(str::to_owned))).unwrap();
        assert_eq!(
            &header[..],
            "\u{feff}position,subject_id,status,lookup_id,error_code,error_detail,result\r\n".as_bytes()
        );
        let row =
            ["0", "A123456789", "failed", "", "x", "=SUM(A1), \"quoted\"", "{\"found\":false}"].map(str::to_owned);
        let later = csv_chunk(CsvRows::continuation(), std::iter::once(row)).unwrap();
        assert_eq!(
            String::from_utf8(later.to_vec()).unwrap(),
            "0,A123456789,failed,,x,\"'=SUM(A1), \"\"quoted\"\"\",\"{\"\"found\"\":false}\"\r\n"
        );
        assert_eq!(spreadsheet_safe("plain"), "plain");
        assert_eq!(spreadsheet_safe("-1"), "'-1");
    }

    #[test]
    fn batch_routes_are_registered_and_documented_with_both_body_types() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method, codes) in [
            ("/v1/batches", "post", &["202", "401", "403", "413", "422", "429", "503"][..]),
            ("/v1/batches", "get", &["200", "401", "422"][..]),
            ("/v1/batches/{id}", "get", &["200", "401", "404"][..]),
            ("/v1/batches/{id}/results", "get", &["200", "401", "404"][..]),
        ] {
            for code in codes {
                assert!(paths[path][method]["responses"][code].is_object(), "{method} {path} {code}");
            }
        }
        let body = &paths["/v1/batches"]["post"]["requestBody"]["content"];
        assert!(body["application/json"].is_object() && body["text/csv"].is_object(), "{body}");
        let answer = &paths["/v1/batches/{id}/results"]["get"]["responses"]["200"]["content"];
        assert!(answer["application/json"].is_object() && answer["text/csv"].is_object(), "{answer}");
    }

    /// The documents offer no way to alter a batch or its results (a documentation check; the
    /// behaviour is proved by the e2e and domain tests of R-QRY-12).
    #[test]
    fn no_batch_route_is_documented_with_put_patch_or_delete() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = doc["paths"].as_object().expect("paths");
        let batch_paths: Vec<_> = paths.iter().filter(|(path, _)| path.starts_with("/v1/batches")).collect();
        assert_eq!(batch_paths.len(), 3);
        for (path, item) in batch_paths {
            for method in ["put", "patch", "delete"] {
                assert!(item.get(method).is_none(), "{method} {path}");
            }
            if path != "/v1/batches" {
                assert!(item.get("post").is_none(), "post {path}");
            }
        }
    }
}
