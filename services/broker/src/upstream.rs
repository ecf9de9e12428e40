//! The immigration agency's cloud query service, reached over HTTP (nia-mock in development). It is
//! outside the trust boundary: every answer is size-limited and parsed, never passed through.

use std::time::Duration;

use immilink_shared::catalogue::QueryType;
use immilink_shared::config::Secret;
use immilink_shared::telemetry::outbound_headers;

#[derive(Clone)]
pub struct NiaClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<Secret>,
    timeout: Duration,
}

/// What came back.
#[derive(Debug)]
pub enum UpstreamAnswer {
    Ok(actix_web::web::Bytes),
    /// The upstream refused the query (4xx other than rate limiting).
    Rejected {
        status: u16,
        detail: String,
    },
    /// Down, timing out, overloaded or answering 5xx.
    Unavailable {
        status: Option<u16>,
        reason: String,
    },
}

const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

impl NiaClient {
    pub fn new(http: reqwest::Client, base_url: &str, api_key: Option<Secret>, timeout: Duration) -> Self {
        Self { http, base_url: base_url.trim_end_matches('/').to_owned(), api_key, timeout }
    }

    #[tracing::instrument(name = "upstream query", skip(self, subject_id), fields(query_type = query_type.code()))]
    pub async fn query(&self, query_type: QueryType, subject_id: &str, agency: &str) -> UpstreamAnswer {
        let headers = outbound_headers();
        let mut request = self
            .http
            .post(format!("{}/v1/queries/{}", self.base_url, query_type.code()))
            .headers(headers)
            .header("x-nia-agency", agency)
            .timeout(self.timeout)
            .json(&serde_json::json!({ "subject_id": subject_id }));
        if let Some(key) = &self.api_key {
            request = request.header("x-nia-api-key", key.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return UpstreamAnswer::Unavailable { status: None, reason: err.to_string() },
        };
        let status = response.status();
        if response.content_length().is_some_and(|len| len as usize > MAX_ANSWER_BYTES) {
            return UpstreamAnswer::Rejected { status: status.as_u16(), detail: "answer too large".into() };
        }
        let body = match response.bytes().await {
            Ok(body) if body.len() <= MAX_ANSWER_BYTES => body,
            Ok(_) => return UpstreamAnswer::Rejected { status: status.as_u16(), detail: "answer too large".into() },
            Err(err) => return UpstreamAnswer::Unavailable { status: Some(status.as_u16()), reason: err.to_string() },
        };
        if status.is_success() {
            UpstreamAnswer::Ok(body)
        } else if status.is_server_error() || status.as_u16() == 429 {
            UpstreamAnswer::Unavailable { status: Some(status.as_u16()), reason: format!("upstream answered {status}") }
        } else {
            let detail = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
            UpstreamAnswer::Rejected { status: status.as_u16(), detail }
        }
    }
}
