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
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use serde::Deserialize;

use crate::domain::colleagues::{AccountStatus, Permission, UserSummary};
use crate::domain::BrokerError;

#[derive(Clone)]
pub struct IdentityClient {
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<ServiceTokens>,
    cache: Arc<PermissionCache>,
}

/// A permission as identity sends it.
#[derive(Debug, Deserialize)]
struct PermissionJson {
    legal_basis: String,
    purpose_code: String,
    query_type: String,
}

impl From<PermissionJson> for Permission {
    fn from(p: PermissionJson) -> Self {
        Permission { legal_basis: p.legal_basis, purpose_code: p.purpose_code, query_type: p.query_type }
    }
}

#[derive(Debug, Deserialize)]
struct Profile {
    permissions: Vec<PermissionJson>,
}

/// Who a user is, as identity sends it (`GET /internal/v1/users/{id}`).
#[derive(Debug, Deserialize)]
struct UserSummaryJson {
    user_id: UserId,
    username: String,
    display_name: String,
    /// Agency code, as in access tokens.
    agency: AgencyCode,
    unit: Option<UnitId>,
    status: String,
    roles: Vec<String>,
    /// What they may look up now (link items ∩ grants, R-QRY-02).
    #[serde(default)]
    permissions: Vec<PermissionJson>,
}

impl From<UserSummaryJson> for UserSummary {
    fn from(user: UserSummaryJson) -> Self {
        UserSummary {
            user_id: user.user_id,
            username: user.username,
            display_name: user.display_name,
            agency: user.agency,
            unit: user.unit,
            // A status the broker does not know is kept as unknown, never taken for active.
            status: user.status.parse::<AccountStatus>().ok(),
            roles: user.roles,
            permissions: user.permissions.into_iter().map(Permission::from).collect(),
        }
    }
}

type CacheKey = (SessionId, Option<IpAddr>);
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
        session_id: &SessionId,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Vec<Permission>>, BrokerError> {
        let key = (session_id.clone(), client_ip);
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
            200 => {
                let profile = response.json::<Profile>().await.map_err(|e| unavailable(e.to_string()))?;
                Ok(profile.permissions.into_iter().map(Permission::from).collect())
            }
            401 => Err(BrokerError::SessionEnded),
            status => Err(unavailable(format!("identity answered {status}"))),
        }
    }

    /// Who a user is; `None` when identity does not know the id.
    pub async fn user(&self, user_id: &UserId) -> Result<Option<UserSummary>, BrokerError> {
        // Only a well-formed id goes into the path.
        let Ok(user_id) = uuid::Uuid::parse_str(user_id.as_str()) else {
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
            200 => {
                let user = response.json::<UserSummaryJson>().await.map_err(|e| unavailable(e.to_string()))?;
                Ok(Some(user.into()))
            }
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

    #[test]
    fn identitys_summary_is_read_into_the_domain_with_its_status_parsed() {
        let parse = |status: &str| -> UserSummary {
            let json: UserSummaryJson = serde_json::from_value(serde_json::json!({
                "user_id": "u", "username": "tpe.caseworker", "display_name": "王社工", "agency": "TPE-SW",
                "unit": null, "status": status, "roles": ["caseworker"],
                "permissions": [{"legal_basis": "social_assistance_act", "purpose_code": "sw_statutory_business",
                                 "query_type": "entry_exit_last_year"}]
            }))
            .unwrap();
            json.into()
        };
        let user = parse("active");
        assert_eq!(user.status, Some(AccountStatus::Active));
        assert!(user.holds("social_assistance_act", "sw_statutory_business", "entry_exit_last_year"));
        assert_eq!(parse("suspended").status, Some(AccountStatus::Suspended));
        assert_eq!(parse("on_leave").status, None, "an unknown status is not active");
    }
}
