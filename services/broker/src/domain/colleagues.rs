//! The broker's users as identity describes them (their account, their agency, what they may look
//! up, their agency's link), and the rules every check about them shares: R-LINK with R-QRY-02 (the
//! agency's link must serve the lookup now, and the declaration must be among the caller's
//! permissions: [`check_permitted`]) and R-ACC-05 (only an active member of the agency acts in it: a
//! grantor whose authorization a lookup runs under, a grantee, a bulk job's submitter).

use immilink_shared::catalogue::QueryType;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UnitId, UserId};

use super::link::LinkStanding;
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

/// What identity says a user may look up now (`GET /v1/me`): their permissions and, from an
/// identity that reports it, their agency's link. Both come in one answer and are cached together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entitlements {
    pub permissions: Vec<Permission>,
    /// `None`: identity did not report the link (an older identity); the permissions are the gate.
    pub link: Option<LinkStanding>,
}

impl Entitlements {
    /// The one rule, for this answer: see [`check_permitted`].
    pub fn check(&self, legal_basis: &str, purpose_code: &str, query_type: QueryType) -> Result<(), BrokerError> {
        check_permitted(&self.permissions, self.link.as_ref(), legal_basis, purpose_code, query_type)
    }
}

/// The one rule a declaration passes before it runs, for single lookups, bulk jobs (at submission
/// and again between their chunks) and doubt queries:
/// 1. the agency's link must serve it now, when identity reports the link: a link identity refuses
///    (suspended R-LINK-06, terminated R-LINK-08, outside its usage period R-LINK-12, …) refuses
///    every lookup, and a query type the link does not carry is refused (R-LINK-03);
/// 2. R-QRY-02: the declared (legal basis, purpose, query type) must be exactly one of
///    `permissions`; each part matching some permission is not enough.
///
/// Without link information (`None`) only the permissions decide, as identity computed them.
pub fn check_permitted(
    permissions: &[Permission],
    link: Option<&LinkStanding>,
    legal_basis: &str,
    purpose_code: &str,
    query_type: QueryType,
) -> Result<(), BrokerError> {
    if let Some(link) = link {
        link.check(query_type)?;
    }
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
    /// Their agency's link now; `None` when identity did not report it.
    pub link: Option<LinkStanding>,
}

impl UserSummary {
    /// The one rule: an account that is active, in `agency`. A suspended, cancelled or moved
    /// account, or one in a state the broker does not know, is not.
    pub fn is_active_member_of(&self, agency: &AgencyCode) -> bool {
        self.status == Some(AccountStatus::Active) && self.agency == *agency
    }

    /// Whether they may still run this declaration: the one rule, [`check_permitted`] (R-LINK,
    /// R-QRY-02), on what identity says about them now.
    pub fn check_permitted(
        &self,
        legal_basis: &str,
        purpose_code: &str,
        query_type: QueryType,
    ) -> Result<(), BrokerError> {
        check_permitted(&self.permissions, self.link.as_ref(), legal_basis, purpose_code, query_type)
    }

    /// The status for messages: its text, or "in an unknown state".
    pub fn status_text(&self) -> &'static str {
        self.status.map_or("in an unknown state", AccountStatus::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::link::{LinkRefusal, Refusal};

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
            link: None,
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
        let check = |legal_basis: &str, query_type: QueryType| {
            user.check_permitted(legal_basis, "sw_statutory_business", query_type)
        };
        assert!(check("social_assistance_act", QueryType::EntryExitLastYear).is_ok());
        assert!(matches!(
            check("social_assistance_act", QueryType::ForeignerResidence),
            Err(BrokerError::NotPermitted { .. })
        ));
        assert!(matches!(
            check("senior_welfare_act", QueryType::EntryExitLastYear),
            Err(BrokerError::NotPermitted { .. })
        ));
    }

    #[test]
    fn r_qry_02_the_whole_tuple_must_match_one_permission() {
        let exact = permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year");
        let check = |permissions: &[Permission]| {
            check_permitted(
                permissions,
                None,
                "social_assistance_act",
                "sw_statutory_business",
                QueryType::EntryExitLastYear,
            )
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

    fn entitlements(link: Option<LinkStanding>, permissions: Vec<Permission>) -> Entitlements {
        Entitlements { permissions, link }
    }

    fn standing(refusal: Option<(&str, &str)>, query_types: &[&str]) -> LinkStanding {
        LinkStanding {
            refusal: refusal.map(|(code, detail)| Refusal::from_identity(code, Some(detail.to_owned()))),
            query_types: query_types.iter().map(|q| (*q).to_owned()).collect(),
        }
    }

    fn declared(entitlements: &Entitlements, query_type: QueryType) -> Result<(), BrokerError> {
        entitlements.check("social_assistance_act", "sw_statutory_business", query_type)
    }

    /// Identity sends no permissions with a refused link; the refusal, not R-QRY-02, is what the
    /// caller is told.
    #[test]
    fn r_link_06_a_suspended_link_refuses_before_the_permissions_are_read() {
        let suspended = standing(Some(("link_suspended", "TPE-SW's link is suspended")), &["entry_exit_last_year"]);
        let granted = vec![permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year")];
        for permissions in [Vec::new(), granted] {
            let refused = declared(&entitlements(Some(suspended.clone()), permissions), QueryType::EntryExitLastYear);
            assert!(
                matches!(&refused, Err(BrokerError::LinkRefused { refusal: LinkRefusal::LinkSuspended, detail })
                    if detail == "TPE-SW's link is suspended"),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn r_link_03_a_usable_link_still_needs_the_item_and_the_permission() {
        let usable = standing(None, &["entry_exit_last_year", "eid_photo"]);
        let granted = vec![permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year")];
        let allowed = entitlements(Some(usable), granted.clone());
        assert!(declared(&allowed, QueryType::EntryExitLastYear).is_ok());
        assert!(matches!(declared(&allowed, QueryType::EidPhoto), Err(BrokerError::NotPermitted { .. })), "R-QRY-02");
        let narrower = entitlements(Some(standing(None, &["eid_photo"])), granted);
        assert!(matches!(
            declared(&narrower, QueryType::EntryExitLastYear),
            Err(BrokerError::LinkRefused { refusal: LinkRefusal::ItemNotOnLink, .. })
        ));
    }

    /// An identity that does not report the link: the permissions decide, exactly as before.
    #[test]
    fn without_link_information_the_permissions_alone_decide() {
        let granted = vec![permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year")];
        assert!(declared(&entitlements(None, granted), QueryType::EntryExitLastYear).is_ok());
        assert!(matches!(
            declared(&entitlements(None, Vec::new()), QueryType::EntryExitLastYear),
            Err(BrokerError::NotPermitted { .. })
        ));
        let mut user = user(Some(AccountStatus::Active), "TPE-SW");
        assert!(user
            .check_permitted("social_assistance_act", "sw_statutory_business", QueryType::EntryExitLastYear)
            .is_ok());
        user.link = Some(standing(Some(("link_terminated", "ended")), &[]));
        assert!(matches!(
            user.check_permitted("social_assistance_act", "sw_statutory_business", QueryType::EntryExitLastYear),
            Err(BrokerError::LinkRefused { refusal: LinkRefusal::LinkTerminated, .. })
        ));
    }
}
