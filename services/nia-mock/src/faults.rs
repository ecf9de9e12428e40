//! Injected faults, so the broker's handling of a slow, failing, overloaded or absent upstream can be
//! tested (R-QRY-09). Set at start from `IMMILINK_NIA_FAULTS` (JSON) and at runtime through the admin
//! endpoints; they apply to `/v1/queries/*` only. Which calls fail is decided by hashing the call's
//! number with a seed, so a test that sets the faults and then makes its calls sees the same outcome
//! every run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use actix_web::http::StatusCode;
use immilink_shared::config::{self, ConfigError};
use immilink_shared::rate_limit::RateLimiter;
use immilink_shared::ApiError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Used when the settings name no seed.
pub const DEFAULT_SEED: u64 = 0x1111_6e6b;
pub const DEFAULT_HANG_MS: u64 = 30_000;
/// Longest latency or hang accepted: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;

/// The faults in force. Every field is optional in the request; the answer shows them all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Added to every query before it is answered.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of queries (0..=1) answered 503 or 500.
    #[serde(default)]
    pub error_rate: f64,
    /// Share of queries (0..=1) that hang `hang_ms`, then answer 504.
    #[serde(default)]
    pub timeout_rate: f64,
    #[serde(default = "default_hang_ms")]
    pub hang_ms: u64,
    /// Every query answers 503 at once.
    #[serde(default)]
    pub outage: bool,
    /// Queries beyond `per_second` in a second answer 429 with `Retry-After`.
    #[serde(default)]
    pub rate_limit: Option<RateLimitFault>,
    /// Seed of the error and timeout draws; `DEFAULT_SEED` when absent.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_hang_ms() -> u64 {
    DEFAULT_HANG_MS
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            timeout_rate: 0.0,
            hang_ms: DEFAULT_HANG_MS,
            outage: false,
            rate_limit: None,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFault {
    pub per_second: u32,
    pub retry_after_secs: u32,
}

/// A setting out of range: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidFault {
    pub field: &'static str,
    pub reason: String,
}

impl FaultSettings {
    pub fn validate(&self) -> Result<(), InvalidFault> {
        let invalid = |field, reason: &str| Err(InvalidFault { field, reason: reason.to_owned() });
        for (field, rate) in [("error_rate", self.error_rate), ("timeout_rate", self.timeout_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return invalid(field, "must be a number from 0 to 1");
            }
        }
        for (field, ms) in [("latency_ms", self.latency_ms), ("hang_ms", self.hang_ms)] {
            if ms > MAX_DELAY_MS {
                return invalid(field, "must be at most 600000 (ten minutes)");
            }
        }
        match self.rate_limit {
            Some(limit) if limit.per_second == 0 => invalid("rate_limit.per_second", "must be at least 1"),
            Some(limit) if limit.retry_after_secs == 0 => invalid("rate_limit.retry_after_secs", "must be at least 1"),
            _ => Ok(()),
        }
    }

    /// `IMMILINK_NIA_FAULTS`: the JSON document the admin endpoint takes; unset means no faults.
    pub fn from_env() -> Result<Self, ConfigError> {
        match config::var("NIA_FAULTS") {
            None => Ok(Self::default()),
            Some(raw) => Self::parse_config(&raw)
                .map_err(|reason| ConfigError { name: format!("{}NIA_FAULTS", config::PREFIX), reason }),
        }
    }

    /// The settings in `raw`, or why not (naming the field when one is out of range).
    pub fn parse_config(raw: &str) -> Result<Self, String> {
        let settings: Self = serde_json::from_str(raw).map_err(|err| err.to_string())?;
        settings.validate().map_err(|invalid| format!("{}: {}", invalid.field, invalid.reason))?;
        Ok(settings)
    }
}

/// What happens to one query after it is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub latency: Duration,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Hang this long, then answer 504.
    Hang(Duration),
    /// Answer at once with this 5xx status.
    Error(StatusCode),
}

impl Failure {
    /// Carries the failure out: waits for a hang (on the timer, not the worker thread), then the error.
    pub async fn strike(self) -> ApiError {
        match self {
            Failure::Hang(duration) => {
                tokio::time::sleep(duration).await;
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "query_timeout", "The query timed out", "查詢逾時")
                    .detail("the query service did not finish in time (injected timeout)")
            }
            Failure::Error(StatusCode::SERVICE_UNAVAILABLE) => {
                ApiError::unavailable("service_unavailable", "the query service cannot answer now (injected failure)")
            }
            Failure::Error(status) => ApiError::new(status, "internal_error", "Internal server error", "系統內部錯誤")
                .detail("the query service failed (injected failure)"),
        }
    }
}

/// The faults in force and the state they need: the call counter and the rate window.
pub struct Faults {
    settings: RwLock<FaultSettings>,
    calls: AtomicU64,
    limiter: RwLock<Option<RateLimiter<()>>>,
}

impl Faults {
    pub fn new(settings: FaultSettings) -> Self {
        let faults = Self {
            settings: RwLock::new(FaultSettings::default()),
            calls: AtomicU64::new(0),
            limiter: RwLock::new(None),
        };
        faults.replace(settings);
        faults
    }

    pub fn settings(&self) -> FaultSettings {
        self.settings.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Puts `settings` in force and restarts the call count and rate window, so the draws that follow
    /// are the same every time these settings are set.
    pub fn replace(&self, settings: FaultSettings) {
        let limiter = settings.rate_limit.map(|l| RateLimiter::new(l.per_second, Duration::from_secs(1)));
        *self.limiter.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = limiter;
        self.calls.store(0, Ordering::SeqCst);
        *self.settings.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = settings;
    }

    /// Admits one query or refuses it at once (outage 503, rate limit 429); an admitted query gets its
    /// latency and, perhaps, a failure to suffer.
    pub fn admit(&self) -> Result<Plan, ApiError> {
        let settings = self.settings();
        if settings.outage {
            return Err(ApiError::unavailable("service_outage", "the query service is down (injected outage)"));
        }
        self.check_rate(&settings)?;
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Plan { latency: Duration::from_millis(settings.latency_ms), failure: failure(&settings, call) })
    }

    fn check_rate(&self, settings: &FaultSettings) -> Result<(), ApiError> {
        let limiter = self.limiter.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match (limiter.as_ref(), settings.rate_limit) {
            (Some(limiter), Some(limit)) if limiter.hit(&()).is_err() => Err(ApiError::too_many_requests(
                "rate_limited",
                format!("more than {} queries per second", limit.per_second),
                u64::from(limit.retry_after_secs),
            )),
            _ => Ok(()),
        }
    }
}

/// Call `call`'s draws: a timeout first, else an error (503 or 500 with equal odds).
fn failure(settings: &FaultSettings, call: u64) -> Option<Failure> {
    let seed = settings.seed.unwrap_or(DEFAULT_SEED);
    if draw(seed, call, b"timeout") < settings.timeout_rate {
        return Some(Failure::Hang(Duration::from_millis(settings.hang_ms)));
    }
    if draw(seed, call, b"error") < settings.error_rate {
        let status = if draw(seed, call, b"status") < 0.5 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return Some(Failure::Error(status));
    }
    None
}

/// A number in [0, 1) from SHA-256(seed, label, call): a rate of 1 always strikes, 0 never.
fn draw(seed: u64, call: u64, label: &[u8]) -> f64 {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(seed.to_be_bytes())
        .chain_update(label)
        .chain_update(call.to_be_bytes())
        .finalize()
        .into();
    let [a, b, c, d, e, f, g, h, ..] = digest;
    (u64::from_be_bytes([a, b, c, d, e, f, g, h]) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> FaultSettings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_empty_document_is_no_faults() {
        assert_eq!(settings("{}"), FaultSettings::default());
        assert_eq!(FaultSettings::default().validate(), Ok(()));
        assert_eq!(
            Faults::new(FaultSettings::default()).admit().unwrap(),
            Plan { latency: Duration::ZERO, failure: None }
        );
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        for (json, field) in [
            (r#"{"error_rate": 1.5}"#, "error_rate"),
            (r#"{"timeout_rate": -0.1}"#, "timeout_rate"),
            (r#"{"latency_ms": 600001}"#, "latency_ms"),
            (r#"{"hang_ms": 9999999}"#, "hang_ms"),
            (r#"{"rate_limit": {"per_second": 0, "retry_after_secs": 1}}"#, "rate_limit.per_second"),
            (r#"{"rate_limit": {"per_second": 1, "retry_after_secs": 0}}"#, "rate_limit.retry_after_secs"),
        ] {
            assert_eq!(settings(json).validate().map_err(|e| e.field), Err(field), "{json}");
        }
    }

    #[test]
    fn the_start_configuration_is_the_same_document() {
        let settings = FaultSettings::parse_config(r#"{"outage": true, "seed": 3}"#).unwrap();
        assert!(settings.outage && settings.seed == Some(3));
        assert!(FaultSettings::parse_config(r#"{"error_rate": 3}"#).unwrap_err().starts_with("error_rate:"));
        assert!(FaultSettings::parse_config(r#"{"outages": true}"#).unwrap_err().contains("outages"));
        assert!(FaultSettings::parse_config("not json").is_err());
    }

    #[test]
    fn draws_are_reproducible_per_seed_and_match_the_rate() {
        let faults = |seed: u64| FaultSettings { error_rate: 0.3, seed: Some(seed), ..FaultSettings::default() };
        let run = |seed| (0..1000).map(|call| failure(&faults(seed), call).is_some()).collect::<Vec<_>>();
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let failed = run(7).into_iter().filter(|f| *f).count();
        assert!((240..=360).contains(&failed), "{failed}");
        let all = FaultSettings { error_rate: 1.0, timeout_rate: 0.0, ..FaultSettings::default() };
        assert!((0..200).all(|call| matches!(failure(&all, call), Some(Failure::Error(_)))));
        let statuses: std::collections::BTreeSet<u16> = (0..200)
            .filter_map(|call| match failure(&all, call) {
                Some(Failure::Error(status)) => Some(status.as_u16()),
                _ => None,
            })
            .collect();
        assert_eq!(statuses.into_iter().collect::<Vec<_>>(), [500, 503]);
    }

    #[test]
    fn setting_the_faults_again_restarts_the_draws() {
        let settings = FaultSettings { error_rate: 0.5, ..FaultSettings::default() };
        let faults = Faults::new(settings.clone());
        let first: Vec<_> = (0..50).map(|_| faults.admit().unwrap().failure).collect();
        faults.replace(settings);
        let again: Vec<_> = (0..50).map(|_| faults.admit().unwrap().failure).collect();
        assert_eq!(first, again);
    }
}
