//! RFC 9457 `application/problem+json` errors. Every service returns `ApiError`; each service maps its
//! own domain errors into it in one place (`impl From<DomainError> for ApiError`). The wire shape always
//! carries `type`, `title`, `status`, `detail`, a stable machine `code` and the `request_id`, plus the
//! offending `field` for bad input and the SPEC `rule` that refused the request where one did.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::context::{current_request, MAX_BODY_BYTES, MAX_HEADER_BYTES};

pub type ApiResult<T> = Result<T, ApiError>;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://immilink.gov.tw/problems/";

/// The problem document as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Problem {
    /// URI identifying the problem type; ends with `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short human summary (zh-TW when the request asked for it with Accept-Language).
    pub title: String,
    pub status: u16,
    /// What went wrong in this request, in English.
    pub detail: String,
    /// Stable machine-readable code, e.g. `missing_field`, `not_permitted`.
    pub code: String,
    /// The request id (also in the `X-Request-Id` response header).
    pub request_id: String,
    /// The request field that caused the problem, as a JSON path (`subject_id`, `items[2].name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The SPEC rule that refused the request (e.g. `R-QRY-02`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What the caller can do next, e.g. the doubt-query fallback when the upstream is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The error every handler returns. Boxed: errors travel in every `Result` and should stay small.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Details>);

#[derive(Debug, Clone)]
struct Details {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    title_zh: &'static str,
    detail: String,
    field: Option<String>,
    rule: Option<&'static str>,
    hint: Option<String>,
    www_authenticate: bool,
    retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, title_zh: &'static str) -> Self {
        Self(Box::new(Details {
            status,
            code,
            title,
            title_zh,
            detail: title.to_owned(),
            field: None,
            rule: None,
            hint: None,
            www_authenticate: false,
            retry_after_seconds: None,
        }))
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = detail.into();
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    pub fn rule(mut self, rule: &'static str) -> Self {
        self.0.rule = Some(rule);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// `Retry-After` in seconds (503 and 429 default to 1).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.0.retry_after_seconds = Some(seconds.max(1));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn code(&self) -> &'static str {
        self.0.code
    }

    pub fn field_name(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    // --- the common kinds -------------------------------------------------------------------------

    /// 422: a field is present but its value is not acceptable.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "A field has an invalid value", "欄位值不正確")
            .field(field)
            .detail(detail)
    }

    /// 422: a required field is missing or empty.
    pub fn missing_field(field: &str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "missing_field", "A required field is missing", "缺少必要欄位")
            .detail(format!("the field `{field}` is required"))
            .field(field)
    }

    /// 400: the body could not be read as the expected document at all.
    pub fn malformed_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_body", "The request body is malformed", "請求內容格式錯誤")
            .detail(detail)
    }

    /// 415 naming `Content-Type`: the body is not of a type (or charset) the operation reads.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "不支援的內容類型",
        )
        .detail(detail)
        .field("Content-Type")
    }

    /// 413: the body is larger than any server accepts ([`MAX_BODY_BYTES`]).
    pub fn body_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The request body is too large", "請求內容過大")
            .detail(format!("bodies are limited to {MAX_BODY_BYTES} bytes"))
    }

    /// 431: the request's headers are larger than any server accepts ([`MAX_HEADER_BYTES`]).
    pub fn headers_too_large() -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "The request headers are too large",
            "請求標頭過大",
        )
        .detail(format!("request headers are limited to {MAX_HEADER_BYTES} bytes in all"))
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication is required", "需要登入")
            .detail(detail);
        err.0.www_authenticate = true;
        err
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, "The request is not permitted", "無權限執行此操作").detail(detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", "查無資料").detail(format!("{what} was not found"))
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "The request conflicts with the current state", "與目前狀態衝突")
            .detail(detail)
    }

    /// 503: a dependency (database, another service, the upstream) is not answering.
    pub fn unavailable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, "A required service is unavailable", "服務暫時無法使用")
            .detail(detail)
    }

    /// 429 with `Retry-After`: the caller is over a rate limit.
    pub fn too_many_requests(code: &'static str, detail: impl Into<String>, retry_after_seconds: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, "Too many requests", "請求過於頻繁")
            .detail(detail)
            .retry_after(retry_after_seconds)
    }

    /// 500: logged once here with its cause; the client sees no internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error", "系統內部錯誤")
            .detail("an unexpected error occurred; quote the request id when reporting it")
    }

    /// The wire document, with the request id and language of the request being served.
    pub fn to_problem(&self) -> Problem {
        let request = current_request();
        let title = if request.as_ref().is_some_and(|r| r.prefers_zh) { self.0.title_zh } else { self.0.title };
        Problem {
            type_uri: format!("{TYPE_BASE}{}", self.0.code),
            title: title.to_owned(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.clone(),
            code: self.0.code.to_owned(),
            request_id: request.map(|r| r.request_id).unwrap_or_default(),
            field: self.0.field.clone(),
            rule: self.0.rule.map(str::to_owned),
            hint: self.0.hint.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status.as_u16(), self.0.code, self.0.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.0.status);
        response.content_type(PROBLEM_JSON);
        if self.0.www_authenticate {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        let retryable =
            self.0.status == StatusCode::SERVICE_UNAVAILABLE || self.0.status == StatusCode::TOO_MANY_REQUESTS;
        if let Some(seconds) = self.0.retry_after_seconds.or(retryable.then_some(1)) {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self.to_problem())
    }
}

/// What a domain error case answers on the wire: status, code, field, rule.
pub type WireAnswer = (u16, &'static str, Option<&'static str>, Option<&'static str>);

/// The table test every service runs on its one error mapping (`impl From<<Name>Error> for
/// ApiError`): each sample must become the problem `expected` gives for it, with a detail, and the
/// samples must cover all `variants` cases of the enum. `expected` is an exhaustive match without a
/// wildcard, so a new case does not compile until it has a row, and this fails until it has a sample.
pub fn assert_every_case_maps<E: std::fmt::Debug>(samples: Vec<E>, variants: usize, expected: impl Fn(&E) -> WireAnswer)
where
    ApiError: From<E>,
{
    let covered: std::collections::HashSet<_> = samples.iter().map(std::mem::discriminant).collect();
    assert_eq!(covered.len(), variants, "every case of the error needs a sample");
    for sample in samples {
        let want = expected(&sample);
        let case = format!("{sample:?}");
        let problem = ApiError::from(sample).to_problem();
        let got = (problem.status, problem.code.as_str(), problem.field.as_deref(), problem.rule.as_deref());
        assert_eq!(got, want, "{case}");
        assert!(!problem.detail.is_empty(), "{case} says what was refused");
    }
}

/// Turns actix's own extractor failures (bad path or query parameters) into problems too.
pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::invalid_field("query", err.to_string()).into()
}

pub fn path_error_handler(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::invalid_field("path", err.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn invalid_field_maps_to_422_problem_json_naming_the_field() {
        let err = ApiError::invalid_field("subject_id", "bad check digit").rule("R-QRY-04");
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers().get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
        let body = to_bytes(response.into_body()).await.unwrap();
        let problem: Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.code, "invalid_field");
        assert_eq!(problem.field.as_deref(), Some("subject_id"));
        assert_eq!(problem.rule.as_deref(), Some("R-QRY-04"));
        assert!(problem.type_uri.ends_with("/invalid_field"));
    }

    #[actix_web::test]
    async fn unauthenticated_carries_www_authenticate() {
        let response = ApiError::unauthenticated("no token").error_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }

    #[actix_web::test]
    async fn internal_errors_hide_their_cause() {
        let response = ApiError::internal("password=hunter2 leaked in a driver message").error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(response.into_body()).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
    }
}
