//! Session liveness: every token is only good while its session is live (not logged out, not idle,
//! account active) and used from the session's IP. Identity answers; the gateway caches a "live"
//! answer for a short time so revocation still takes effect within that time everywhere.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use immilink_shared::config::Secret;
use immilink_shared::http::INTERNAL_TOKEN;
use immilink_shared::telemetry::outbound_headers;
use immilink_shared::ApiError;
use serde::Deserialize;

pub struct SessionChecker {
    http: reqwest::Client,
    identity_url: String,
    internal_token: Secret,
    ttl: Duration,
    live: Mutex<HashMap<(String, IpAddr), Instant>>,
}

#[derive(Debug, Deserialize)]
struct Liveness {
    live: bool,
    reason: Option<String>,
}

const MAX_CACHED: usize = 100_000;

impl SessionChecker {
    pub fn new(http: reqwest::Client, identity_url: &str, internal_token: Secret, ttl: Duration) -> Self {
        Self {
            http,
            identity_url: identity_url.trim_end_matches('/').to_owned(),
            internal_token,
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub async fn require_live(&self, sid: &str, ip: IpAddr) -> Result<(), ApiError> {
        let key = (sid.to_owned(), ip);
        if self.cached(&key) {
            return Ok(());
        }
        let liveness = self.ask_identity(sid, ip).await?;
        if liveness.live {
            self.remember(key);
            Ok(())
        } else {
            Err(ApiError::unauthenticated(format!(
                "the session has ended ({}); log in again",
                liveness.reason.unwrap_or_else(|| "ended".into())
            )))
        }
    }

    fn cached(&self, key: &(String, IpAddr)) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn remember(&self, key: (String, IpAddr)) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= MAX_CACHED {
            let ttl = self.ttl;
            live.retain(|_, at| at.elapsed() < ttl);
        }
        live.insert(key, Instant::now());
    }

    async fn ask_identity(&self, sid: &str, ip: IpAddr) -> Result<Liveness, ApiError> {
        let headers = outbound_headers();
        let unavailable = |err: String| {
            tracing::warn!(error = %err, "session liveness check failed");
            ApiError::unavailable("identity_unavailable", "sessions cannot be checked right now")
        };
        let response = self
            .http
            .post(format!("{}/internal/v1/sessions/{}/liveness", self.identity_url, sid))
            .headers(headers)
            .header(INTERNAL_TOKEN.as_str(), self.internal_token.expose())
            .timeout(Duration::from_secs(3))
            .json(&serde_json::json!({ "ip": ip.to_string() }))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("identity answered {}", response.status())));
        }
        response.json().await.map_err(|e| unavailable(e.to_string()))
    }
}
