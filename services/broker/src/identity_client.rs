//! Asks identity what the caller may look up. The caller's own token is forwarded, so identity checks
//! its session (live, same IP) as part of answering: a lookup cannot outlive its session.

use std::net::IpAddr;
use std::time::Duration;

use std::sync::Arc;

use immilink_shared::auth::ServiceTokens;
use immilink_shared::http::CLIENT_IP;
use immilink_shared::ApiError;
use serde::Deserialize;

#[derive(Clone)]
pub struct IdentityClient {
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<ServiceTokens>,
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

impl IdentityClient {
    pub fn new(http: reqwest::Client, base_url: &str, tokens: Arc<ServiceTokens>) -> Self {
        Self { http, base_url: base_url.trim_end_matches('/').to_owned(), tokens }
    }

    pub async fn permissions(&self, token: &str, client_ip: Option<IpAddr>) -> Result<Vec<Permission>, ApiError> {
        // The broker's service token lets identity trust the end client's IP stated below.
        let headers = self.tokens.headers().await?;
        let mut request = self
            .http
            .get(format!("{}/v1/me", self.base_url))
            .headers(headers)
            .bearer_auth(token)
            .timeout(Duration::from_secs(5));
        if let Some(ip) = client_ip {
            request = request.header(CLIENT_IP.as_str(), ip.to_string());
        }
        let unavailable = |err: String| {
            tracing::warn!(error = %err, "identity did not answer");
            ApiError::unavailable("identity_unavailable", "permissions cannot be checked right now")
        };
        let response = request.send().await.map_err(|e| unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(response.json::<Profile>().await.map_err(|e| unavailable(e.to_string()))?.permissions),
            401 => Err(ApiError::unauthenticated("the session has ended; log in again")),
            status => Err(unavailable(format!("identity answered {status}"))),
        }
    }
}
