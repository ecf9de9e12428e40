//! Account review: the immigration agency's last say on an account application (R-ACC-01). The mock
//! decides by a policy the test harness can change at runtime, except that it always rejects a grant of
//! a query type it does not know. The reference is deterministic: `NIA-<Taipei date>-<first 8 hex of
//! SHA-256(application id)>`.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::business_date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// What the mock answers to a well-formed application: `IMMILINK_NIA_ACCOUNT_REVIEW`, or the admin
/// endpoint at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewPolicy {
    Approve,
    Reject,
}

impl FromStr for ReviewPolicy {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "approve" => Ok(ReviewPolicy::Approve),
            "reject" => Ok(ReviewPolicy::Reject),
            other => Err(format!("expected approve or reject, got {other:?}")),
        }
    }
}

/// The policy in force, with the reason given for rejections (a default one when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSetting {
    pub decision: ReviewPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approved,
    Rejected,
}

/// The agency's answer to an application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AccountReview {
    pub application_id: String,
    pub decision: ReviewDecision,
    /// Why, in a sentence (also for approvals).
    pub reason: String,
    /// The agency's reference for the decision, e.g. `NIA-20261123-5e884898`.
    #[schema(example = "NIA-20261123-5e884898")]
    pub reference: String,
    pub reviewed_at: DateTime<Utc>,
}

/// One requested (query type, purpose) pair, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedGrant {
    pub query_type: String,
    pub purpose_code: String,
}

pub const APPROVED: &str = "the immigration agency approved the account's query access";
pub const REJECTED: &str = "the immigration agency did not approve the application";

/// `NIA-<yyyymmdd of the Taipei business date>-<first 8 hex digits of SHA-256(application id)>`.
pub fn reference(application_id: &str, now: DateTime<Utc>) -> String {
    let digest = Sha256::digest(application_id.as_bytes());
    let hash = hex::encode(digest);
    format!("NIA-{}-{}", business_date(now).format("%Y%m%d"), &hash[..8])
}

/// The decision on a well-formed application: rejected when it asks for no query type or for one the
/// agency does not provide (whatever the policy), otherwise as the policy says.
pub fn decide(
    application_id: &str,
    grants: &[RequestedGrant],
    setting: &ReviewSetting,
    now: DateTime<Utc>,
) -> AccountReview {
    let unknown: Vec<&str> =
        grants.iter().map(|g| g.query_type.as_str()).filter(|code| QueryType::parse(code).is_none()).collect();
    let (decision, reason) = if grants.is_empty() {
        (ReviewDecision::Rejected, "the application requests no query type".to_owned())
    } else if !unknown.is_empty() {
        let names = unknown.iter().map(|code| format!("{code:?}")).collect::<Vec<_>>().join(", ");
        (ReviewDecision::Rejected, format!("unknown query type {names}: the agency provides no such query"))
    } else {
        match setting.decision {
            ReviewPolicy::Approve => (ReviewDecision::Approved, APPROVED.to_owned()),
            ReviewPolicy::Reject => {
                (ReviewDecision::Rejected, setting.reason.clone().unwrap_or_else(|| REJECTED.to_owned()))
            }
        }
    };
    AccountReview {
        application_id: application_id.to_owned(),
        decision,
        reason,
        reference: reference(application_id, now),
        reviewed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn grant(query_type: &str) -> RequestedGrant {
        RequestedGrant { query_type: query_type.into(), purpose_code: "sw_statutory_business".into() }
    }

    const APPROVE: ReviewSetting = ReviewSetting { decision: ReviewPolicy::Approve, reason: None };

    #[test]
    fn reference_is_the_taipei_date_and_a_hash_of_the_application() {
        // 16:30 UTC is already the next day in Taipei.
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 16, 30, 0).unwrap();
        // SHA-256("password") = 5e884898…
        assert_eq!(reference("password", now), "NIA-20261123-5e884898");
        assert_eq!(reference("password", now), reference("password", now));
        assert_ne!(reference("other", now), reference("password", now));
    }

    #[test]
    fn policy_decides_well_formed_applications() {
        let now = Utc::now();
        let grants = [grant("entry_exit_last_year")];
        assert_eq!(decide("app-1", &grants, &APPROVE, now).decision, ReviewDecision::Approved);
        let reject = ReviewSetting { decision: ReviewPolicy::Reject, reason: Some("公文不全".into()) };
        let review = decide("app-1", &grants, &reject, now);
        assert_eq!((review.decision, review.reason.as_str()), (ReviewDecision::Rejected, "公文不全"));
        let reject = ReviewSetting { decision: ReviewPolicy::Reject, reason: None };
        assert_eq!(decide("app-1", &grants, &reject, now).reason, REJECTED);
    }

    #[test]
    fn unknown_query_types_and_empty_applications_are_rejected_whatever_the_policy() {
        let now = Utc::now();
        let grants = [grant("entry_exit_last_year"), grant("credit_history")];
        let review = decide("app-1", &grants, &APPROVE, now);
        assert_eq!(review.decision, ReviewDecision::Rejected);
        assert!(review.reason.contains("credit_history"), "{}", review.reason);
        assert_eq!(decide("app-1", &[], &APPROVE, now).decision, ReviewDecision::Rejected);
    }

    #[test]
    fn policy_parses_from_the_environment_form() {
        assert_eq!(" Approve ".parse(), Ok(ReviewPolicy::Approve));
        assert_eq!("reject".parse(), Ok(ReviewPolicy::Reject));
        assert!("maybe".parse::<ReviewPolicy>().is_err());
    }
}
