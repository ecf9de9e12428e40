//! Asks identity what the caller may look up. The caller's own token is forwarded, so identity checks
//! its session (live, same IP) as part of answering: a lookup cannot outlive its session. Answers are
//! kept for as long as the session-liveness cache (`IMMILINK_SESSION_CACHE_MS`, 500 ms by default),
//! so a burst of lookups costs identity one question, and a revoked grant stops within that time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use immilink_shared::auth::ServiceTokens;
use immilink_shared::context::CLIENT_IP;
use serde::Deserialize;

use crate::domain::BrokerError;

#[derive(Clone)]
pub struct IdentityClient {
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<ServiceTokens>,
    cache: Arc<PermissionCache>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Permission {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
}

#[derive(Debug, Deserialize)]
struct Profile {
    permissions: Vec<Permission>,
}

/// Who a user is, as identity tells other services (`GET /internal/v1/users/{id}`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UserSummary {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    /// Agency code, as in access tokens.
    pub agency: String,
    pub unit: Option<String>,
    pub status: String,
    pub roles: Vec<String>,
    /// What they may look up now (link items ∩ grants, R-QRY-02).
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

impl UserSummary {
    /// Whether they still hold exactly this (legal basis, purpose, query type).
    pub fn holds(&self, legal_basis: &str, purpose_code: &str, query_type: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.legal_basis == legal_basis && p.purpose_code == purpose_code && p.query_type == query_type)
    }
}

type CacheKey = (String, Option<IpAddr>);
/// When an answer was fetched, and the answer.
type CachedPermissions = (Instant, Arc<Vec<Permission>>);

/// Permissions by (session, client IP), each kept for `ttl`.
struct PermissionCache {
    ttl: Duration,
    entries: Mutex<HashMap<CacheKey, CachedPermissions>>,
}

const MAX_CACHED: usize = 50_000;

impl PermissionCache {
    fn get(&self, key: &CacheKey) -> Option<Arc<Vec<Permission>>> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, permissions)| Arc::clone(permissions))
    }

    fn put(&self, key: CacheKey, permissions: Arc<Vec<Permission>>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_CACHED {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key, (Instant::now(), permissions));
    }
}

fn unavailable(err: String) -> BrokerError {
    tracing::warn!(error = %err, "identity did not answer");
    BrokerError::IdentityUnavailable
}

impl IdentityClient {
    pub fn new(http: reqwest::Client, base_url: &str, tokens: Arc<ServiceTokens>, cache_ttl: Duration) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            tokens,
            cache: Arc::new(PermissionCache { ttl: cache_ttl, entries: Mutex::new(HashMap::new()) }),
        }
    }

    /// The caller's permissions: the (legal basis, purpose, query type) tuples approved on the
    /// agency's active link AND granted to the user (R-QRY-02).
    pub async fn permissions(
        &self,
        session_id: &str,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Vec<Permission>>, BrokerError> {
        let key = (session_id.to_owned(), client_ip);
        if let Some(cached) = self.cache.get(&key) {
            return Ok(cached);
        }
        let permissions = Arc::new(self.ask_permissions(token, client_ip).await?);
        self.cache.put(key, Arc::clone(&permissions));
        Ok(permissions)
    }

    async fn ask_permissions(&self, token: &str, client_ip: Option<IpAddr>) -> Result<Vec<Permission>, BrokerError> {
        // The broker's service token lets identity trust the end client's IP stated below.
        let headers = self.headers().await?;
        let mut request = self
            .http
            .get(format!("{}/v1/me", self.base_url))
            .headers(headers)
            .bearer_auth(token)
            .timeout(Duration::from_secs(5));
        if let Some(ip) = client_ip {
            request = request.header(CLIENT_IP.as_str(), ip.to_string());
        }
        let response = request.send().await.map_err(|e| unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(response.json::<Profile>().await.map_err(|e| unavailable(e.to_string()))?.permissions),
            401 => Err(BrokerError::SessionEnded),
            status => Err(unavailable(format!("identity answered {status}"))),
        }
    }

    /// Who a user is; `None` when identity does not know the id.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserSummary>, BrokerError> {
        // Only a well-formed id goes into the path.
        let Ok(user_id) = uuid::Uuid::parse_str(user_id) else {
            return Ok(None);
        };
        let headers = self.headers().await?;
        let response = self
            .http
            .get(format!("{}/internal/v1/users/{user_id}", self.base_url))
            .headers(headers)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(Some(response.json().await.map_err(|e| unavailable(e.to_string()))?)),
            404 => Ok(None),
            status => Err(unavailable(format!("identity answered {status} for a user summary"))),
        }
    }

    /// The headers of a call to identity: this service's token (the token source logs its own
    /// failure).
    async fn headers(&self) -> Result<reqwest::header::HeaderMap, BrokerError> {
        self.tokens.headers().await.map_err(|_| BrokerError::IdentityUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bulk job goes on only while its submitter holds its exact tuple (R-QRY-02).
    #[test]
    fn r_qry_02_a_user_holds_only_the_exact_tuples_identity_lists() {
        let user: UserSummary = serde_json::from_value(serde_json::json!({
            "user_id": "u", "username": "tpe.caseworker", "display_name": "王社工", "agency": "TPE-SW",
            "unit": null, "status": "active", "roles": ["caseworker"],
            "permissions": [{"legal_basis": "social_assistance_act", "purpose_code": "sw_statutory_business",
                             "query_type": "entry_exit_last_year"}]
        }))
        .unwrap();
        assert!(user.holds("social_assistance_act", "sw_statutory_business", "entry_exit_last_year"));
        assert!(!user.holds("social_assistance_act", "sw_statutory_business", "foreigner_residence"));
        assert!(!user.holds("senior_welfare_act", "sw_statutory_business", "entry_exit_last_year"));
    }
}
