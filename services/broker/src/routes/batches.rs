//! Bulk lookups (R-QRY-05): submit a job, follow it, fetch its results. There is deliberately no
//! PUT, PATCH or DELETE here: results obtained from the upstream are read-only (R-QRY-12).

use actix_web::http::header;
use actix_web::{get, post, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use futures_util::StreamExt;
use immilink_shared::auth::{roles, AccessClaims};
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{client_ip, parse_json, parse_query, ApiQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::batches::{self, BatchRow, ItemError, ItemRow, NewBatch, MAX_SUBJECTS};
use crate::domain::lookup::Requester;
use crate::domain::request::{parse_subject, LookupBody, LookupRequest};
use crate::domain::{approvals, BrokerError};
use crate::pipeline::Declared;
use crate::results::LookupResult;
use crate::State;

/// Largest submission body: 10 000 IDs with generous formatting fit many times over.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Items read from the database per chunk of a streamed result.
const PAGE: i64 = 500;

/// A bulk lookup: one declaration for every subject ID (R-QRY-01). Proxy authorisations are not
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

impl BatchView {
    fn of(row: BatchRow, cancelled: i64) -> Self {
        Self {
            batch_id: row.id,
            status: row.status,
            total: row.total,
            done: row.done,
            succeeded: row.succeeded,
            failed: row.failed,
            cancelled,
            query_type: row.query_type,
            legal_basis: row.legal_basis,
            purpose_code: row.purpose_code,
            case_number: row.case_number,
            user_id: row.user_id,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            failure: row.failure,
        }
    }
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

/// A subject ID as submitted, with the CSV line it came from.
#[derive(Debug)]
struct Submitted {
    raw: String,
    line: Option<usize>,
}

/// Submit a bulk lookup job.
///
/// JSON (`application/json`, a [`BatchBody`]) or CSV (`text/csv`: one subject ID per line, an
/// optional `subject_id` header line, blank lines ignored; the declaration in the query string).
/// The declaration is checked as for a single lookup (R-QRY-01, R-QRY-02, R-QRY-10) and every ID is
/// validated before anything is stored (R-QRY-04): an invalid one is refused naming
/// `subject_ids[i]` (for CSV, `i` is the 0-based data row and the detail names the line). Accepted
/// jobs run in the background; each ID becomes its own audited lookup (R-QRY-05, R-QRY-08).
#[utoipa::path(post, path = "/v1/batches", tag = "batches", security(("bearer" = [])), params(BatchDeclaration),
    request_body(description = "The IDs and declaration as JSON, or the IDs as CSV with the declaration in the query string",
        content((BatchBody = "application/json"), (String = "text/csv", example = json!("subject_id\r\nA123456789\r\n")))),
    responses(
        (status = 202, description = "Accepted; `Location` names the job", body = BatchAccepted,
            headers(("Location" = String, description = "/v1/batches/{batch_id}"))),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted (R-QRY-02) or no supervisor approval (R-QRY-10)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01), an invalid subject ID (`subject_ids[i]`, R-QRY-04), no or more than 10 000 IDs, or a proxy authorisation", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Per-user or per-agency rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity or the database is not answering", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/batches")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    state.limits.admit(&caller.claims, 1)?;
    let body = read_body(payload).await?;
    let (declaration, subjects) = submission(&req, &body)?;
    let mut declared = Declared::of(&declaration);
    let who = Requester::of(&caller.claims);
    let batch = match accept(&req, &state, &caller, &who, declaration, &subjects, &mut declared).await {
        Ok(batch) => batch,
        Err(refusal) => return Err(state.lookups.refuse(&who, &declared, refusal).await),
    };
    let now = state.clock.now();
    let row = state.db.run(move |conn| batches::submit(conn, now, &batch)).await?;
    state.relay.wake();
    state.batch_wake.wake();
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/batches/{}", row.id)))
        .json(BatchAccepted { batch_id: row.id, status: row.status, total: row.total }))
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
fn submission(req: &HttpRequest, body: &[u8]) -> ApiResult<(LookupBody, Vec<Submitted>)> {
    let mime = req.mime_type().ok().flatten();
    let is_json = mime.as_ref().is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
    let is_csv = mime.as_ref().is_some_and(|m| m.type_() == "text" && m.subtype() == "csv");
    if is_json {
        let body: BatchBody = parse_json(body)?;
        let subjects = body.subject_ids.ok_or_else(|| ApiError::missing_field("subject_ids"))?;
        let declaration = LookupBody {
            query_type: body.query_type,
            subject_id: None,
            legal_basis: body.legal_basis,
            purpose_code: body.purpose_code,
            case_number: body.case_number,
            proxy_authorization_id: body.proxy_authorization_id,
            remarks: body.remarks,
        };
        Ok((declaration, subjects.into_iter().map(|raw| Submitted { raw, line: None }).collect()))
    } else if is_csv {
        let query: BatchDeclaration = parse_query(req.query_string())?;
        let declaration = LookupBody {
            query_type: query.query_type,
            subject_id: None,
            legal_basis: query.legal_basis,
            purpose_code: query.purpose_code,
            case_number: query.case_number,
            proxy_authorization_id: query.proxy_authorization_id,
            remarks: query.remarks,
        };
        Ok((declaration, csv_subjects(body)?))
    } else {
        Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "不支援的內容類型",
        )
        .detail("send the batch as application/json, or as text/csv with the declaration in the query string")
        .field("Content-Type"))
    }
}

/// One ID per line; an optional `subject_id` header; blank lines ignored; CRLF, a UTF-8 BOM and a
/// value in double quotes tolerated. Nothing else is interpreted: a line with more than an ID is
/// refused as an invalid ID, naming its line.
fn csv_subjects(body: &[u8]) -> ApiResult<Vec<Submitted>> {
    let text = std::str::from_utf8(body)
        .map_err(|err| ApiError::malformed_body(format!("the CSV body is not UTF-8: {err}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut subjects = Vec::new();
    let mut seen_first = false;
    for (index, line) in text.split('\n').enumerate() {
        let value = line.trim_end_matches('\r').trim();
        if value.is_empty() {
            continue;
        }
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).trim();
        if !seen_first {
            seen_first = true;
            if value.eq_ignore_ascii_case("subject_id") {
                continue;
            }
        }
        subjects.push(Submitted { raw: value.to_owned(), line: Some(index + 1) });
    }
    Ok(subjects)
}

/// Every check a batch must pass before anything is stored; `declared` gains the offending ID when
/// one is refused, for the refusal's audit record.
async fn accept(
    req: &HttpRequest,
    state: &State,
    caller: &Authenticated,
    who: &Requester,
    mut declaration: LookupBody,
    subjects: &[Submitted],
    declared: &mut Declared,
) -> Result<NewBatch, BrokerError> {
    if subjects.is_empty() {
        return Err(BrokerError::EmptyBatch);
    }
    if subjects.len() > MAX_SUBJECTS {
        return Err(BrokerError::BatchTooLarge { count: subjects.len(), max: MAX_SUBJECTS });
    }
    // The declaration is parsed exactly as a single lookup's, with the first ID.
    declaration.subject_id = Some(subjects[0].raw.clone());
    let request = LookupRequest::parse(declaration).map_err(|err| match err {
        BrokerError::InvalidIdentifier { .. } | BrokerError::Missing { field: _, rule: Some("R-QRY-04") } => {
            declared.subject_id = Some(bounded(&subjects[0].raw));
            subject_error(err, 0, &subjects[0])
        }
        other => other,
    })?;
    if request.proxy_authorization_id.is_some() {
        return Err(BrokerError::ProxyOnBatch);
    }
    let mut parsed = Vec::with_capacity(subjects.len());
    parsed.push(request.subject.clone());
    for (index, subject) in subjects.iter().enumerate().skip(1) {
        match parse_subject(request.query_type, &subject.raw) {
            Ok(id) => parsed.push(id),
            Err(err) => {
                declared.subject_id = Some(bounded(&subject.raw));
                return Err(subject_error(err, index, subject));
            }
        }
    }
    let permissions = state.identity.permissions(&who.session_id, &caller.token, client_ip(req)).await?;
    request.authorise(&permissions)?;
    let needs_approval = catalogue::purpose(&request.purpose_code).is_some_and(|p| p.requires_supervisor_approval);
    let supervisor_approval_id = if needs_approval {
        let now = state.clock.now();
        let (user_id, agency) = (who.user_id.clone(), who.agency.clone());
        let (case_number, purpose_code) = (request.case_number.clone(), request.purpose_code.clone());
        Some(
            state
                .db
                .run(move |conn| approvals::approval_for(conn, now, &user_id, &agency, &case_number, &purpose_code))
                .await?,
        )
    } else {
        None
    };
    Ok(NewBatch {
        id: uuid::Uuid::now_v7().to_string(),
        who: who.clone(),
        query_type: request.query_type,
        legal_basis: request.legal_basis,
        purpose_code: request.purpose_code,
        case_number: request.case_number,
        remarks: request.remarks,
        supervisor_approval_id,
        subjects: parsed,
    })
}

fn bounded(raw: &str) -> String {
    raw.trim().chars().take(64).collect()
}

/// A subject ID refusal (R-QRY-04) renamed to its place in the list, with its CSV line.
fn subject_error(err: BrokerError, index: usize, subject: &Submitted) -> BrokerError {
    let field = format!("subject_ids[{index}]");
    match err {
        BrokerError::InvalidIdentifier { error, .. } => {
            BrokerError::InvalidIdentifier { field, error, line: subject.line }
        }
        BrokerError::Missing { rule, .. } => BrokerError::Missing { field, rule },
        other => other,
    }
}

/// Who may see a batch's progress: its submitter, and the account managers and auditors of its
/// agency. Everyone else is told it does not exist.
fn may_see(claims: &AccessClaims, row: &BatchRow) -> bool {
    row.user_id == claims.sub
        || (row.agency == claims.agency && (claims.has_role(roles::ACCOUNT_MANAGER) || claims.has_role(roles::AUDITOR)))
}

fn not_found() -> ApiError {
    ApiError::not_found("the batch")
}

/// A batch's progress.
///
/// For its submitter, and the account managers and auditors of its agency; 404 for anyone else.
#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches", security(("bearer" = [])),
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
    let id = id.into_inner();
    let claims = caller.claims;
    let view = state
        .db
        .run(move |conn| -> Result<Option<BatchView>, BrokerError> {
            match batches::find(conn, &id)? {
                Some(row) if may_see(&claims, &row) => {
                    let cancelled = batches::cancelled_items(conn, &row.id)?;
                    Ok(Some(BatchView::of(row, cancelled)))
                }
                _ => Ok(None),
            }
        })
        .await?;
    view.map(web::Json).ok_or_else(not_found)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (1–100, default 20).
    pub limit: Option<i64>,
}

/// The caller's own batches, newest first.
#[utoipa::path(get, path = "/v1/batches", tag = "batches", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, body = Vec<BatchView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/batches")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ListQuery>,
) -> ApiResult<web::Json<Vec<BatchView>>> {
    let limit = match query.into_inner().limit {
        None => 20,
        Some(limit @ 1..=100) => limit,
        Some(_) => return Err(ApiError::invalid_field("limit", "must be between 1 and 100")),
    };
    let user_id = caller.claims.sub;
    let views = state
        .db
        .run(move |conn| -> Result<Vec<BatchView>, BrokerError> {
            batches::list_for_user(conn, &user_id, limit)?
                .into_iter()
                .map(|row| {
                    let cancelled = batches::cancelled_items(conn, &row.id)?;
                    Ok(BatchView::of(row, cancelled))
                })
                .collect()
        })
        .await?;
    Ok(web::Json(views))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// The results of a batch's finished items, streamed.
///
/// Only for the batch's submitter (404 for anyone else). JSON (an array of [`BatchResultItem`]) by
/// default; CSV with `Accept: text/csv`, columns `position,subject_id,status,lookup_id,error_code,
/// error_detail,result` (the result as JSON text). Items of a running batch are listed as they
/// finish. Results are read-only (R-QRY-12).
#[utoipa::path(get, path = "/v1/batches/{id}/results", tag = "batches", security(("bearer" = [])),
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
    let id = id.into_inner();
    let user_id = caller.claims.sub;
    let found = {
        let id = id.clone();
        state.db.run(move |conn| batches::find(conn, &id)).await?
    };
    // Results carry personal data obtained for the submitter's case: only the submitter reads them.
    let Some(row) = found.filter(|row| row.user_id == user_id) else {
        return Err(not_found());
    };
    let format = if accepts_csv(&req) { Format::Csv } else { Format::Json };
    let stream = futures_util::stream::unfold(Some(Chunks::new(state, row.id, format)), |chunks| async move {
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
        Format::Csv => response.content_type("text/csv; charset=utf-8").insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"batch-{}.csv\"", sanitise_filename(&id)),
        )),
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
    batch_id: String,
    format: Format,
    after: i32,
    started: bool,
    wrote_item: bool,
    finished: bool,
}

impl Chunks {
    fn new(state: web::Data<State>, batch_id: String, format: Format) -> Self {
        Self { state, batch_id, format, after: -1, started: false, wrote_item: false, finished: false }
    }

    async fn next(&mut self) -> Result<Option<web::Bytes>, ApiError> {
        if self.finished {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            return Ok(Some(web::Bytes::from_static(match self.format {
                Format::Json => b"[",
                Format::Csv => b"position,subject_id,status,lookup_id,error_code,error_detail,result\r\n",
            })));
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
        let mut out = String::with_capacity(page.len() * 256);
        for item in page {
            match self.format {
                Format::Json => {
                    if self.wrote_item {
                        out.push(',');
                    }
                    self.wrote_item = true;
                    let item = result_item(item);
                    out.push_str(&serde_json::to_string(&item).map_err(ApiError::internal)?);
                }
                Format::Csv => csv_row(&mut out, item),
            }
        }
        Ok(Some(web::Bytes::from(out)))
    }
}

fn result_item(item: ItemRow) -> BatchResultItem {
    let error = item.error();
    let result = item.result.as_deref().and_then(|text| match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::error!(batch_id = item.batch_id, position = item.position, error = %err, "stored result does not parse");
            None
        }
    });
    BatchResultItem {
        position: item.position,
        subject_id: item.subject_id,
        status: item.status,
        lookup_id: item.lookup_id,
        result,
        error,
    }
}

fn csv_row(out: &mut String, item: ItemRow) {
    let error = item.error();
    let cells = [
        item.position.to_string(),
        item.subject_id,
        item.status,
        item.lookup_id.unwrap_or_default(),
        error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
        error.map(|e| e.detail).unwrap_or_default(),
        item.result.unwrap_or_default(),
    ];
    for (index, cell) in cells.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        csv_cell(out, cell);
    }
    out.push_str("\r\n");
}

/// RFC 4180 quoting; a cell a spreadsheet would take for a formula is quoted and prefixed with `'`.
fn csv_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(subjects: &[Submitted]) -> Vec<(&str, Option<usize>)> {
        subjects.iter().map(|s| (s.raw.as_str(), s.line)).collect()
    }

    #[test]
    fn r_qry_05_csv_takes_one_id_per_line_with_an_optional_header_blank_lines_and_crlf() {
        let body = "\u{feff}subject_id\r\nA123456789\r\n\r\n \"F131104093\" \r\na123456789";
        let subjects = csv_subjects(body.as_bytes()).unwrap();
        assert_eq!(raw(&subjects), [("A123456789", Some(2)), ("F131104093", Some(4)), ("a123456789", Some(5))]);
        // Without a header the first line is data.
        assert_eq!(raw(&csv_subjects(b"A123456789\n").unwrap()), [("A123456789", Some(1))]);
        assert!(csv_subjects(b"\n\r\n").unwrap().is_empty());
        assert_eq!(csv_subjects(b"\xff\xfe").unwrap_err().code(), "malformed_body");
    }

    #[test]
    fn r_qry_04_a_refused_id_names_its_place_in_the_list_and_its_csv_line() {
        let subject = Submitted { raw: "A123456788".into(), line: Some(7) };
        let err = parse_subject(QueryType::EntryExitLastYear, &subject.raw).unwrap_err();
        let err = ApiError::from(subject_error(err, 5, &subject));
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.field_name(), Some("subject_ids[5]"));
        let problem = err.to_problem();
        assert_eq!(problem.rule.as_deref(), Some("R-QRY-04"));
        assert!(problem.detail.starts_with("line 7: "), "{}", problem.detail);
    }

    #[test]
    fn r_qry_05_batch_routes_are_registered_and_documented_with_both_body_types() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method, codes) in [
            ("/v1/batches", "post", &["202", "401", "403", "413", "422", "429", "503"][..]),
            ("/v1/batches", "get", &["200", "401"][..]),
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

    /// R-QRY-12: nothing alters a batch or its stored results.
    #[test]
    fn r_qry_12_no_route_alters_a_batch_or_its_results() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = doc["paths"].as_object().unwrap();
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

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        for cell in ["plain", "a,b", "say \"hi\"", "=SUM(A1)", "line\nbreak", ""] {
            csv_cell(&mut out, cell);
            out.push('|');
        }
        assert_eq!(out, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"'=SUM(A1)\"|\"line\nbreak\"||");
    }
}
