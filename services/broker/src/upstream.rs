//! The immigration agency's cloud query service, reached over HTTP (nia-mock in development). It is
//! outside the trust boundary: every answer is size-limited and parsed, never passed through.
//!
//! Resilience: each call has a timeout; a call is retried (bounded, with backoff) only when the
//! connection could not be opened, because then nothing reached the upstream and the one audit
//! record still describes the one query that does. Anything that reached it (an answer, a timeout
//! mid-request, a 5xx, a 429) is never repeated: a repeat would be a second query of a person's data
//! under the first one's record. A circuit breaker stops calls while the upstream keeps failing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use immilink_shared::catalogue::QueryType;
use immilink_shared::config::{NamedSecrets, Secret};
use immilink_shared::telemetry::outbound_headers;

/// Header naming the lookup a query serves, so the upstream's own log can be matched to the audit
/// trail record for record.
pub const LOOKUP_ID_HEADER: &str = "x-immilink-lookup-id";

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub base_url: String,
    /// The credential of each agency (`IMMILINK_NIA_AGENCY_KEYS`, `AGENCY:key,…`).
    pub agency_keys: NamedSecrets,
    /// Presented for agencies without their own key (`IMMILINK_NIA_API_KEY`).
    pub fallback_key: Option<Secret>,
    pub timeout: Duration,
    /// Retries after a refused connection (`IMMILINK_UPSTREAM_CONNECT_RETRIES`, default 2).
    pub connect_retries: u32,
    /// Consecutive failures that open the circuit (`IMMILINK_UPSTREAM_BREAKER_FAILURES`, default 5).
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one probe (`IMMILINK_UPSTREAM_BREAKER_OPEN_MS`,
    /// default 15000).
    pub breaker_open_for: Duration,
}

pub struct NiaClient {
    http: reqwest::Client,
    settings: UpstreamSettings,
    breaker: Breaker,
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
    /// Down, timing out, overloaded or answering 5xx; `retry_after` from a 429 or 503.
    Unavailable {
        status: Option<u16>,
        reason: String,
        retry_after: Option<u64>,
    },
}

/// Why a query was not sent at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSent {
    /// The circuit is open: the upstream failed repeatedly; retry after this many seconds.
    CircuitOpen { retry_after: u64 },
    /// The agency has no credential for the upstream.
    NoCredential,
}

const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

impl NiaClient {
    pub fn new(http: reqwest::Client, mut settings: UpstreamSettings) -> Self {
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        let breaker = Breaker::new(settings.breaker_failures, settings.breaker_open_for);
        Self { http, settings, breaker }
    }

    fn key_for(&self, agency: &str) -> Option<&Secret> {
        self.settings.agency_keys.get(agency).or(self.settings.fallback_key.as_ref())
    }

    /// Whether a query of this agency would be sent now; checked before the lookup is recorded, so
    /// a lookup refused here never looks forwarded in the audit trail.
    pub fn ready_for(&self, agency: &str) -> Result<(), NotSent> {
        if self.key_for(agency).is_none() && !self.settings.agency_keys.is_empty() {
            return Err(NotSent::NoCredential);
        }
        self.breaker.check()
    }

    /// Sends one query; call only after its audit record is durable (R-QRY-08).
    #[tracing::instrument(name = "upstream query", skip_all, fields(query_type = query_type.code(), lookup_id))]
    pub async fn query(
        &self,
        lookup_id: &str,
        query_type: QueryType,
        subject_id: &str,
        agency: &str,
    ) -> UpstreamAnswer {
        if let Err(NotSent::CircuitOpen { retry_after }) = self.breaker.admit() {
            return UpstreamAnswer::Unavailable {
                status: None,
                reason: "circuit open after repeated upstream failures".into(),
                retry_after: Some(retry_after),
            };
        }
        let answer = self.send_with_connect_retries(lookup_id, query_type, subject_id, agency).await;
        self.breaker.record(matches!(answer, UpstreamAnswer::Unavailable { status, .. } if status != Some(429)));
        answer
    }

    async fn send_with_connect_retries(
        &self,
        lookup_id: &str,
        query_type: QueryType,
        subject_id: &str,
        agency: &str,
    ) -> UpstreamAnswer {
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match self.send(lookup_id, query_type, subject_id, agency).await {
                Err(err) if err.is_connect() && attempt < self.settings.connect_retries => {
                    attempt += 1;
                    tracing::info!(attempt, error = %err, "upstream refused the connection; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(err) => {
                    // With its causes ({:#}): reqwest's own message, "error sending request", hides
                    // the one the record needs, such as "invalid peer certificate: UnknownIssuer".
                    let reason = format!("{:#}", anyhow::Error::new(err));
                    return UpstreamAnswer::Unavailable { status: None, reason, retry_after: None };
                }
                Ok(response) => return read_answer(response).await,
            }
        }
    }

    async fn send(
        &self,
        lookup_id: &str,
        query_type: QueryType,
        subject_id: &str,
        agency: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}/v1/queries/{}", self.settings.base_url, query_type.code()))
            .headers(outbound_headers())
            .header("x-nia-agency", agency)
            .header(LOOKUP_ID_HEADER, lookup_id)
            .timeout(self.settings.timeout)
            .json(&serde_json::json!({ "subject_id": subject_id }));
        if let Some(key) = self.key_for(agency) {
            request = request.header("x-nia-api-key", key.expose());
        }
        request.send().await
    }
}

fn retry_after_of(response: &reqwest::Response) -> Option<u64> {
    response.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()
}

async fn read_answer(response: reqwest::Response) -> UpstreamAnswer {
    let status = response.status();
    let retry_after = retry_after_of(&response);
    if response.content_length().is_some_and(|len| len as usize > MAX_ANSWER_BYTES) {
        return UpstreamAnswer::Rejected { status: status.as_u16(), detail: "answer too large".into() };
    }
    let body = match response.bytes().await {
        Ok(body) if body.len() <= MAX_ANSWER_BYTES => body,
        Ok(_) => return UpstreamAnswer::Rejected { status: status.as_u16(), detail: "answer too large".into() },
        Err(err) => {
            return UpstreamAnswer::Unavailable { status: Some(status.as_u16()), reason: err.to_string(), retry_after }
        }
    };
    if status.is_success() {
        UpstreamAnswer::Ok(body)
    } else if status.is_server_error() || status.as_u16() == 429 {
        UpstreamAnswer::Unavailable {
            status: Some(status.as_u16()),
            reason: format!("upstream answered {status}"),
            retry_after,
        }
    } else {
        let detail = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        UpstreamAnswer::Rejected { status: status.as_u16(), detail }
    }
}

/// Closed → (N consecutive failures) → open for a while → half-open: one probe is let through; its
/// success closes the circuit, its failure opens it again.
struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl Breaker {
    fn new(threshold: u32, open_for: Duration) -> Self {
        Self { threshold: threshold.max(1), open_for, state: Mutex::new(BreakerState::Closed { failures: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn retry_after(until: Instant) -> u64 {
        until.saturating_duration_since(Instant::now()).as_secs().max(1)
    }

    /// Would a call be admitted now (without taking the half-open probe)?
    fn check(&self) -> Result<(), NotSent> {
        match *self.lock() {
            BreakerState::Open { until } if Instant::now() < until => {
                Err(NotSent::CircuitOpen { retry_after: Self::retry_after(until) })
            }
            BreakerState::HalfOpen { probing: true } => Err(NotSent::CircuitOpen { retry_after: 1 }),
            _ => Ok(()),
        }
    }

    /// Admits a call, taking the probe when half-open.
    fn admit(&self) -> Result<(), NotSent> {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if Instant::now() < until => {
                Err(NotSent::CircuitOpen { retry_after: Self::retry_after(until) })
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: false } => {
                *state = BreakerState::HalfOpen { probing: true };
                Ok(())
            }
            BreakerState::HalfOpen { probing: true } => Err(NotSent::CircuitOpen { retry_after: 1 }),
        }
    }

    fn record(&self, failed: bool) {
        let mut state = self.lock();
        *state = match (*state, failed) {
            (_, false) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, true) if failures + 1 < self.threshold => {
                BreakerState::Closed { failures: failures + 1 }
            }
            (_, true) => {
                tracing::warn!(open_for_ms = self.open_for.as_millis() as u64, "upstream circuit opened");
                BreakerState::Open { until: Instant::now() + self.open_for }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (bounded) until the open period has passed, instead of sleeping a guess at it.
    fn until_probe_allowed(breaker: &Breaker) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while breaker.check().is_err() {
            assert!(Instant::now() < deadline, "the open period ends");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn r_qry_09_breaker_opens_after_consecutive_failures_and_probes_once() {
        // Long enough that the checks right after it opens cannot race it on a loaded machine.
        let breaker = Breaker::new(3, Duration::from_millis(500));
        for _ in 0..2 {
            assert!(breaker.admit().is_ok());
            breaker.record(true);
        }
        breaker.record(false);
        // A success resets the count: three more failures are needed.
        for _ in 0..3 {
            assert!(breaker.admit().is_ok());
            breaker.record(true);
        }
        assert!(matches!(breaker.admit(), Err(NotSent::CircuitOpen { .. })));
        assert!(breaker.check().is_err());
        until_probe_allowed(&breaker);
        assert!(breaker.check().is_ok(), "after the open period a probe may go");
        assert!(breaker.admit().is_ok(), "the probe");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.record(true);
        assert!(breaker.admit().is_err(), "a failed probe opens the circuit again");
        until_probe_allowed(&breaker);
        assert!(breaker.admit().is_ok());
        breaker.record(false);
        assert!(breaker.admit().is_ok() && breaker.admit().is_ok(), "a good probe closes it");
    }
}
