//! Identity's calls to other systems: the vendors service (is this person contractor personnel?
//! R-ACC-08) and the immigration agency's account review (R-ACC-01's last step). Both fail closed:
//! when the other side does not answer, nothing is approved.

use std::time::Duration;

use std::sync::Arc;

use immilink_shared::auth::ServiceTokens;
use immilink_shared::config::Secret;
use immilink_shared::telemetry::outbound_headers;
use serde::{Deserialize, Serialize};

use crate::domain::accounts::Grant;
use crate::domain::applications::{NiaSubmission, ReviewDecision};
use crate::domain::{Dependency, IdentityError};

const TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(what: Dependency, err: impl std::fmt::Display) -> IdentityError {
    tracing::warn!(error = %err, %what, "outside call failed");
    IdentityError::Unavailable(what)
}

#[derive(Clone)]
pub struct VendorsClient {
    http: reqwest::Client,
    base_url: String,
    tokens: Arc<ServiceTokens>,
}

#[derive(Debug, Deserialize)]
struct PersonnelAnswer {
    vendor_personnel: bool,
}

impl VendorsClient {
    pub fn new(http: reqwest::Client, base_url: &str, tokens: Arc<ServiceTokens>) -> Self {
        Self { http, base_url: base_url.trim_end_matches('/').to_owned(), tokens }
    }

    /// Whether the person is active contractor personnel of any agency (R-ACC-08).
    pub async fn is_vendor_personnel(&self, national_id: &str) -> Result<bool, IdentityError> {
        let fail = |err: String| unavailable(Dependency::Vendors, err);
        let response = self
            .http
            .post(format!("{}/internal/v1/personnel/lookup", self.base_url))
            .headers(self.tokens.headers().await.map_err(|e| fail(e.to_string()))?)
            .timeout(TIMEOUT)
            .json(&serde_json::json!({ "national_id": national_id }))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("answered {}", response.status())));
        }
        Ok(response.json::<PersonnelAnswer>().await.map_err(|e| fail(e.to_string()))?.vendor_personnel)
    }
}

/// What the immigration agency's account review receives (never the applicant's national ID).
#[derive(Debug, Serialize)]
struct AccountReviewRequest<'a> {
    application_id: &'a str,
    agency_code: &'a str,
    username: &'a str,
    certificate_serial: &'a str,
    legal_basis: &'a str,
    business_handled: &'a str,
    grants: &'a [Grant],
}

impl<'a> From<&'a NiaSubmission> for AccountReviewRequest<'a> {
    fn from(submission: &'a NiaSubmission) -> Self {
        Self {
            application_id: submission.application_id.as_str(),
            agency_code: submission.agency_code.as_str(),
            username: &submission.username,
            certificate_serial: &submission.certificate_serial,
            legal_basis: &submission.legal_basis,
            business_handled: &submission.business_handled,
            grants: &submission.grants,
        }
    }
}

#[derive(Clone)]
pub struct NiaClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<Secret>,
}

/// The immigration agency's decision on an account.
#[derive(Debug, Clone, Deserialize)]
pub struct NiaDecision {
    pub decision: ReviewDecision,
    pub reason: String,
    pub reference: String,
}

impl NiaClient {
    pub fn new(http: reqwest::Client, base_url: &str, api_key: Option<Secret>) -> Self {
        Self { http, base_url: base_url.trim_end_matches('/').to_owned(), api_key }
    }

    pub async fn review(&self, submission: &NiaSubmission) -> Result<NiaDecision, IdentityError> {
        let fail = |err: String| unavailable(Dependency::ImmigrationAgency, err);
        let mut request = self
            .http
            .post(format!("{}/v1/account-reviews", self.base_url))
            .headers(outbound_headers())
            .timeout(TIMEOUT)
            .json(&AccountReviewRequest::from(submission));
        if let Some(key) = &self.api_key {
            request = request.header("x-nia-api-key", key.expose());
        }
        // With its causes ({:#}): a refused handshake names why, not only "error sending request".
        let response = request.send().await.map_err(|e| fail(format!("{:#}", anyhow::Error::new(e))))?;
        if !response.status().is_success() {
            return Err(fail(format!("answered {}", response.status())));
        }
        response.json().await.map_err(|e| fail(e.to_string()))
    }
}
