//! The broker's users as identity describes them (their account, their agency, what they may look
//! up), and the rules every check about them shares: R-QRY-02 (a declaration must be among the
//! caller's permissions) and R-ACC-05 (only an active member of the agency acts in it: a grantor
//! whose authorization a lookup runs under, a grantee, a bulk job's submitter).

use immilink_shared::catalogue::QueryType;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UnitId, UserId};

use super::BrokerError;

text_enum! {
    /// An account's status as identity records it. Identity may know more states than these: a
    /// status the broker does not know is never taken for active.
    pub enum AccountStatus {
        Active = "active",
        Suspended = "suspended",
        Cancelled = "cancelled",
        Terminated = "terminated",
    }
}

/// One (legal basis, purpose, query type) a user may look up: approved on the agency's active link
/// AND granted to the user (identity computes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
}

impl Permission {
    fn covers(&self, legal_basis: &str, purpose_code: &str, query_type: &str) -> bool {
        self.legal_basis == legal_basis && self.purpose_code == purpose_code && self.query_type == query_type
    }
}

/// R-QRY-02: the declared (legal basis, purpose, query type) must be exactly one of `permissions`;
/// each part matching some permission is not enough.
pub fn check_permitted(
    permissions: &[Permission],
    legal_basis: &str,
    purpose_code: &str,
    query_type: QueryType,
) -> Result<(), BrokerError> {
    if permissions.iter().any(|p| p.covers(legal_basis, purpose_code, query_type.code())) {
        Ok(())
    } else {
        Err(BrokerError::NotPermitted {
            query_type,
            purpose_code: purpose_code.to_owned(),
            legal_basis: legal_basis.to_owned(),
        })
    }
}

/// Who a user is, as identity tells the broker now.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSummary {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub agency: AgencyCode,
    pub unit: Option<UnitId>,
    /// `None`: identity answered a status the broker does not know.
    pub status: Option<AccountStatus>,
    pub roles: Vec<String>,
    /// What they may look up now (R-QRY-02).
    pub permissions: Vec<Permission>,
}

impl UserSummary {
    /// The one rule: an account that is active, in `agency`. A suspended, cancelled or moved
    /// account, or one in a state the broker does not know, is not.
    pub fn is_active_member_of(&self, agency: &AgencyCode) -> bool {
        self.status == Some(AccountStatus::Active) && self.agency == *agency
    }

    /// Whether they still hold exactly this (legal basis, purpose, query type).
    pub fn holds(&self, legal_basis: &str, purpose_code: &str, query_type: &str) -> bool {
        self.permissions.iter().any(|p| p.covers(legal_basis, purpose_code, query_type))
    }

    /// The status for messages: its text, or "in an unknown state".
    pub fn status_text(&self) -> &'static str {
        self.status.map_or("in an unknown state", AccountStatus::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(status: Option<AccountStatus>, agency: &str) -> UserSummary {
        UserSummary {
            user_id: UserId::new("u"),
            username: "tpe.caseworker".into(),
            display_name: "王社工".into(),
            agency: AgencyCode::new(agency),
            unit: None,
            status,
            roles: vec!["caseworker".into()],
            permissions: vec![permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year")],
        }
    }

    fn permission(legal_basis: &str, purpose_code: &str, query_type: &str) -> Permission {
        Permission { legal_basis: legal_basis.into(), purpose_code: purpose_code.into(), query_type: query_type.into() }
    }

    #[test]
    fn r_acc_05_only_an_active_account_of_the_same_agency_is_an_active_member() {
        let tpe = AgencyCode::new("TPE-SW");
        assert!(user(Some(AccountStatus::Active), "TPE-SW").is_active_member_of(&tpe));
        assert!(!user(Some(AccountStatus::Active), "HLN-HR").is_active_member_of(&tpe), "moved to another agency");
        for status in [AccountStatus::Suspended, AccountStatus::Cancelled, AccountStatus::Terminated] {
            assert!(!user(Some(status), "TPE-SW").is_active_member_of(&tpe), "{status}");
        }
        assert!(!user(None, "TPE-SW").is_active_member_of(&tpe), "a status the broker does not know");
        assert_eq!(user(None, "TPE-SW").status_text(), "in an unknown state");
    }

    /// A bulk job goes on only while its submitter holds its exact tuple (R-QRY-02).
    #[test]
    fn r_qry_02_a_user_holds_only_the_exact_tuples_identity_lists() {
        let user = user(Some(AccountStatus::Active), "TPE-SW");
        assert!(user.holds("social_assistance_act", "sw_statutory_business", "entry_exit_last_year"));
        assert!(!user.holds("social_assistance_act", "sw_statutory_business", "foreigner_residence"));
        assert!(!user.holds("senior_welfare_act", "sw_statutory_business", "entry_exit_last_year"));
    }

    #[test]
    fn r_qry_02_the_whole_tuple_must_match_one_permission() {
        let exact = permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year");
        let check = |permissions: &[Permission]| {
            check_permitted(permissions, "social_assistance_act", "sw_statutory_business", QueryType::EntryExitLastYear)
        };
        assert!(check(std::slice::from_ref(&exact)).is_ok());
        // Each element matching some permission is not enough: the tuple must match one.
        let split = [
            permission("social_assistance_act", "sw_statutory_business", "foreigner_residence"),
            permission("senior_welfare_act", "sw_statutory_business", "entry_exit_last_year"),
        ];
        assert!(matches!(
            check(&split),
            Err(BrokerError::NotPermitted { query_type: QueryType::EntryExitLastYear, .. })
        ));
        assert!(check(&[]).is_err());
    }
}
