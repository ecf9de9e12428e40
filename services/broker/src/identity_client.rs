//! Asks identity what the caller may look up. The caller's own token is forwarded, so identity checks
//! its session (live, same IP) as part of answering: a lookup cannot outlive its session. Answers are
//! kept for as long as the session-liveness cache (`IMMILINK_SESSION_CACHE_MS`, 500 ms by default),
//! so a burst of lookups costs identity one question, and a revoked grant or a link that can no longer
//! be used (both come in the same answer, and are kept together) stops within that time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use immilink_shared::auth::ServiceTokens;
use immilink_shared::context::CLIENT_IP;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use serde::Deserialize;

use crate::domain::colleagues::{AccountStatus, Entitlements, Permission, UserSummary};
use crate::domain::link::{LinkRefusal, LinkStanding, Refusal};
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

/// The agency's link as identity sends it (`link` of `GET /v1/me` and of a user summary).
#[derive(Debug, Deserialize)]
struct LinkJson {
    /// Non-null when the link cannot be used now.
    #[serde(default)]
    refusal: Option<RefusalJson>,
    /// The query types the link carries now.
    #[serde(default)]
    query_types: Vec<String>,
}

/// Why the link cannot be used, as identity sends it. Every part is optional here, so a refusal
/// shaped in a way the broker does not expect still refuses.
#[derive(Debug, Deserialize)]
struct RefusalJson {
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: Option<String>,
}

impl From<LinkJson> for LinkStanding {
    fn from(link: LinkJson) -> Self {
        let refusal = link.refusal.map(|refusal| {
            let kept = Refusal::from_identity(&refusal.code, refusal.detail);
            if refusal.code.parse::<LinkRefusal>().is_err() {
                tracing::warn!(code = %refusal.code, "identity refused the link with a code the broker does not know; taken as no active link");
            } else if refusal.rule.as_deref().is_some_and(|rule| rule != kept.reason.rule()) {
                tracing::warn!(code = %refusal.code, rule = ?refusal.rule, "identity names another rule for this link refusal");
            }
            kept
        });
        LinkStanding { refusal, query_types: link.query_types }
    }
}

#[derive(Debug, Deserialize)]
struct Profile {
    permissions: Vec<PermissionJson>,
    /// Absent from an identity that does not report links: then the permissions alone decide.
    #[serde(default)]
    link: Option<LinkJson>,
}

impl From<Profile> for Entitlements {
    fn from(profile: Profile) -> Self {
        Entitlements {
            permissions: profile.permissions.into_iter().map(Permission::from).collect(),
            link: profile.link.map(LinkStanding::from),
        }
    }
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
    /// Their agency's link now (R-LINK); absent from an identity that does not report it.
    #[serde(default)]
    link: Option<LinkJson>,
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
            link: user.link.map(LinkStanding::from),
        }
    }
}

type CacheKey = (SessionId, Option<IpAddr>);
/// When an answer was fetched, and the answer (permissions and link together).
type CachedEntitlements = (Instant, Arc<Entitlements>);

/// Entitlements by (session, client IP), each kept for `ttl`.
struct PermissionCache {
    ttl: Duration,
    entries: Mutex<HashMap<CacheKey, CachedEntitlements>>,
}

const MAX_CACHED: usize = 50_000;

impl PermissionCache {
    fn get(&self, key: &CacheKey) -> Option<Arc<Entitlements>> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, entitlements)| Arc::clone(entitlements))
    }

    fn put(&self, key: CacheKey, entitlements: Arc<Entitlements>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_CACHED {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key, (Instant::now(), entitlements));
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
    /// agency's active link AND granted to the user (R-QRY-02), with the agency's link as identity
    /// reports it (R-LINK: whether it can be used now, the query types it carries).
    pub async fn permissions(
        &self,
        session_id: &SessionId,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Entitlements>, BrokerError> {
        let key = (session_id.clone(), client_ip);
        if let Some(cached) = self.cache.get(&key) {
            return Ok(cached);
        }
        let entitlements = Arc::new(self.ask_permissions(token, client_ip).await?);
        self.cache.put(key, Arc::clone(&entitlements));
        Ok(entitlements)
    }

    async fn ask_permissions(&self, token: &str, client_ip: Option<IpAddr>) -> Result<Entitlements, BrokerError> {
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
                Ok(profile.into())
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
    use immilink_shared::catalogue::QueryType;

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
        assert!(user
            .check_permitted("social_assistance_act", "sw_statutory_business", QueryType::EntryExitLastYear)
            .is_ok());
        assert_eq!(user.link, None, "no link reported: the permissions alone decide");
        assert_eq!(parse("suspended").status, Some(AccountStatus::Suspended));
        assert_eq!(parse("on_leave").status, None, "an unknown status is not active");
    }

    fn profile(json: serde_json::Value) -> Entitlements {
        serde_json::from_value::<Profile>(json).unwrap().into()
    }

    fn permission_json() -> serde_json::Value {
        serde_json::json!({"legal_basis": "social_assistance_act", "purpose_code": "sw_statutory_business",
                           "query_type": "entry_exit_last_year"})
    }

    #[test]
    fn r_link_06_a_refused_link_is_read_from_me_and_from_a_user_summary() {
        let link = serde_json::json!({
            "refusal": {"rule": "R-LINK-06", "code": "link_suspended",
                        "detail": "TPE-SW's link is suspended since 2026-12-03: remediation overdue"},
            "query_types": ["entry_exit_last_year"]
        });
        let me = profile(serde_json::json!({"permissions": [], "link": link}));
        let expected = LinkStanding {
            refusal: Some(Refusal {
                reason: LinkRefusal::LinkSuspended,
                detail: "TPE-SW's link is suspended since 2026-12-03: remediation overdue".into(),
            }),
            query_types: vec!["entry_exit_last_year".into()],
        };
        assert_eq!(me.link.as_ref(), Some(&expected));
        let summary: UserSummaryJson = serde_json::from_value(serde_json::json!({
            "user_id": "u", "username": "tpe.caseworker", "display_name": "王社工", "agency": "TPE-SW",
            "unit": null, "status": "active", "roles": ["caseworker"], "permissions": [], "link": link
        }))
        .unwrap();
        assert_eq!(UserSummary::from(summary).link, Some(expected));
    }

    #[test]
    fn a_usable_link_carries_its_query_types_and_an_absent_one_keeps_todays_behaviour() {
        let usable = profile(serde_json::json!({
            "permissions": [permission_json()],
            "link": {"refusal": null, "query_types": ["entry_exit_last_year", "eid_photo"]}
        }));
        assert_eq!(
            usable.link,
            Some(LinkStanding { refusal: None, query_types: vec!["entry_exit_last_year".into(), "eid_photo".into()] })
        );
        let older = profile(serde_json::json!({"permissions": [permission_json()]}));
        assert_eq!((older.link, older.permissions.len()), (None, 1));
        let null = profile(serde_json::json!({"permissions": [permission_json()], "link": null}));
        assert_eq!(null.link, None);
    }

    /// Fail closed: a code the broker does not know, or a refusal without one, still refuses.
    #[test]
    fn r_link_02_an_unknown_or_shapeless_refusal_from_identity_refuses() {
        let unknown = profile(serde_json::json!({
            "permissions": [],
            "link": {"refusal": {"rule": "R-LINK-99", "code": "link_quarantined", "detail": "quarantined"},
                     "query_types": ["entry_exit_last_year"]}
        }));
        let refusal = unknown.link.and_then(|link| link.refusal).expect("still a refusal");
        assert_eq!((refusal.reason, refusal.detail.as_str()), (LinkRefusal::NoActiveLink, "quarantined"));
        let shapeless = profile(serde_json::json!({"permissions": [], "link": {"refusal": {}}}));
        let refusal = shapeless.link.and_then(|link| link.refusal).expect("still a refusal");
        assert_eq!(refusal.reason, LinkRefusal::NoActiveLink);
        assert!(!refusal.detail.is_empty());
    }
}
