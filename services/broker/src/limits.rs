//! Lookup rate limits per user and per agency (429 with Retry-After). They protect the upstream and
//! make a runaway client or a misused account visible; they are per process, so behind N replicas an
//! agency may reach N times its limit (documented in README).

use std::time::Duration;

use immilink_shared::auth::Caller;
use immilink_shared::rate_limit::RateLimiter;
use immilink_shared::typed::{AgencyCode, UserId};

use crate::domain::{BrokerError, RateScope};

pub struct LookupLimits {
    per_user: RateLimiter<UserId>,
    per_agency: RateLimiter<AgencyCode>,
    user_max: u32,
    agency_max: u32,
}

const WINDOW: Duration = Duration::from_secs(60);

impl LookupLimits {
    pub fn new(per_user_per_minute: u32, per_agency_per_minute: u32) -> Self {
        Self {
            per_user: RateLimiter::new(per_user_per_minute.max(1), WINDOW),
            per_agency: RateLimiter::new(per_agency_per_minute.max(1), WINDOW),
            user_max: per_user_per_minute.max(1),
            agency_max: per_agency_per_minute.max(1),
        }
    }

    /// Counts `lookups` for the caller and their agency, or refuses them all.
    pub fn admit(&self, caller: &Caller, lookups: u32) -> Result<(), BrokerError> {
        for _ in 0..lookups {
            self.per_user.hit(&caller.user_id).map_err(|retry_after| BrokerError::RateLimited {
                scope: RateScope::User,
                limit: self.user_max,
                retry_after,
            })?;
            self.per_agency.hit(&caller.agency).map_err(|retry_after| BrokerError::RateLimited {
                scope: RateScope::Agency,
                limit: self.agency_max,
                retry_after,
            })?;
        }
        Ok(())
    }

    /// Whether the agency may run one more lookup now (bulk jobs wait for it instead of failing);
    /// `Err(seconds)` to wait.
    pub fn admit_agency(&self, agency: &AgencyCode) -> Result<(), u64> {
        self.per_agency.hit(agency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: &str, agency: &str) -> Caller {
        Caller {
            user_id: UserId::new(user),
            session_id: immilink_shared::typed::SessionId::new("s"),
            agency: AgencyCode::new(agency),
            unit: None,
            roles: vec![],
        }
    }

    #[test]
    fn per_user_and_per_agency_limits_refuse_with_retry_after() {
        let limits = LookupLimits::new(2, 3);
        let alice = claims("alice", "TPE-SW");
        assert!(limits.admit(&alice, 1).is_ok());
        assert!(limits.admit(&alice, 1).is_ok());
        let refused = limits.admit(&alice, 1).unwrap_err();
        assert!(matches!(refused, BrokerError::RateLimited { scope: RateScope::User, limit: 2, .. }), "{refused:?}");
        // Bob is within his own limit but his agency has used 2 of 3 (alice's refused try counted
        // nothing for the agency).
        let bob = claims("bob", "TPE-SW");
        assert!(limits.admit(&bob, 1).is_ok());
        assert!(matches!(limits.admit(&bob, 1), Err(BrokerError::RateLimited { scope: RateScope::Agency, .. })));
        assert!(limits.admit(&claims("carol", "HLN-HR"), 1).is_ok(), "another agency is not affected");
    }
}
