//! The caller's standing as identity reports it beside a user's permissions: whether the agency's
//! link (R-LINK) can be used now and which query types it carries now, or why the caller's own
//! lookups cannot run (R-VEN-08: their grants are suspended for a contractor conflict). Identity
//! decides (a link suspended, lapsed, terminated, outside its usage period, …; a caller's grants
//! suspended); the broker takes its word and refuses naming the rule, and refuses itself a query
//! type the link does not carry. A refusal code the broker does not know is never read as a usable
//! link.

use immilink_shared::catalogue::QueryType;
use immilink_shared::text_enum;

use super::BrokerError;

text_enum! {
    /// Why a caller's lookup cannot run now, the link's standing or the caller's own: identity's
    /// refusal codes, and `item_not_on_link`, which the broker decides from the link's query types.
    pub enum LinkRefusal {
        NoActiveLink = "no_active_link",
        LinkPending = "link_pending",
        LinkSuspended = "link_suspended",
        LinkLapsed = "link_lapsed",
        LinkTerminated = "link_terminated",
        LinkStopped = "link_stopped",
        LinkDormantStopped = "link_dormant_stopped",
        OutsideUsagePeriod = "outside_usage_period",
        ItemNotOnLink = "item_not_on_link",
        /// The caller's own standing: their lookup grants are suspended because they were
        /// registered as contractor personnel, until an account manager resolves it (R-VEN-08).
        ContractorConflict = "contractor_conflict",
    }
}

impl LinkRefusal {
    /// The SPEC rule the refusal names.
    pub const fn rule(self) -> &'static str {
        match self {
            LinkRefusal::NoActiveLink => "R-LINK-02",
            LinkRefusal::LinkPending | LinkRefusal::ItemNotOnLink => "R-LINK-03",
            LinkRefusal::LinkSuspended => "R-LINK-06",
            LinkRefusal::LinkLapsed => "R-LINK-07",
            LinkRefusal::LinkTerminated => "R-LINK-08",
            LinkRefusal::LinkStopped => "R-LINK-09",
            LinkRefusal::LinkDormantStopped => "R-LINK-10",
            LinkRefusal::OutsideUsagePeriod => "R-LINK-12",
            LinkRefusal::ContractorConflict => "R-VEN-08",
        }
    }

    /// Identity's refusal code. A code the broker does not know is taken as "no active link": an
    /// unknown reason is never read as a usable link (fail closed).
    pub fn from_identity(code: &str) -> Self {
        code.parse().unwrap_or(LinkRefusal::NoActiveLink)
    }

    /// What the refusal says when identity gave no detail.
    fn sentence(self) -> &'static str {
        match self {
            LinkRefusal::NoActiveLink => "your agency has no active link with the immigration agency",
            LinkRefusal::LinkPending => "your agency's link is not approved yet",
            LinkRefusal::LinkSuspended => "your agency's link is suspended; every lookup is refused while it is",
            LinkRefusal::LinkLapsed => "your agency's link has lapsed; it needs a new application",
            LinkRefusal::LinkTerminated => "your agency's link is terminated",
            LinkRefusal::LinkStopped => "your agency's link is stopped",
            LinkRefusal::LinkDormantStopped => "your agency's link was stopped after more than a year unused",
            LinkRefusal::OutsideUsagePeriod => "this is outside your agency's link's data usage period",
            LinkRefusal::ItemNotOnLink => "your agency's link does not carry this query type",
            LinkRefusal::ContractorConflict => {
                "your lookup grants are suspended: you are registered as contractor personnel, and your account \
                 manager has not resolved it yet"
            }
        }
    }
}

/// Identity's refusal, as the broker keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: LinkRefusal,
    /// Identity's sentence ("TPE-SW's link is suspended since …"), shown as the problem's detail.
    pub detail: String,
}

impl Refusal {
    /// A refusal as identity sends it: its code (an unknown one is "no active link") and detail.
    pub fn from_identity(code: &str, detail: Option<String>) -> Self {
        let reason = LinkRefusal::from_identity(code);
        let detail = detail
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| reason.sentence().to_owned());
        Self { reason, detail }
    }
}

/// The agency's link as identity reports it now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkStanding {
    /// `Some` when the link cannot be used now (identity decides).
    pub refusal: Option<Refusal>,
    /// The query types the link carries now, as identity lists them.
    pub query_types: Vec<String>,
}

impl LinkStanding {
    /// Whether identity lets the link be used at all now, whatever is looked up: not when it refuses
    /// the link (R-LINK-02, -03, -06 to -10, -12) or the caller's own standing (R-VEN-08).
    pub fn usable(&self) -> Result<(), BrokerError> {
        match &self.refusal {
            Some(refusal) => Err(BrokerError::LinkRefused { refusal: refusal.reason, detail: refusal.detail.clone() }),
            None => Ok(()),
        }
    }

    /// Whether the link serves a lookup of `query_type` now: not when it is not [`usable`](Self::usable),
    /// nor for a query type the link does not carry (R-LINK-03).
    pub fn check(&self, query_type: QueryType) -> Result<(), BrokerError> {
        self.usable()?;
        if self.query_types.iter().any(|carried| carried == query_type.code()) {
            return Ok(());
        }
        Err(BrokerError::LinkRefused {
            refusal: LinkRefusal::ItemNotOnLink,
            detail: format!(
                "your agency's link does not carry {}; its items change only by a change application",
                query_type.code()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str, detail: &str) -> LinkStanding {
        LinkStanding {
            refusal: Some(Refusal::from_identity(code, Some(detail.to_owned()))),
            query_types: vec!["entry_exit_last_year".into()],
        }
    }

    fn refusal_of(standing: &LinkStanding, query_type: QueryType) -> (LinkRefusal, String) {
        match standing.check(query_type) {
            Err(BrokerError::LinkRefused { refusal, detail }) => (refusal, detail),
            other => panic!("expected a link refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_refusal_names_its_rule() {
        let rules: Vec<(&str, &str)> = LinkRefusal::ALL.iter().map(|r| (r.as_str(), r.rule())).collect();
        assert_eq!(
            rules,
            [
                ("no_active_link", "R-LINK-02"),
                ("link_pending", "R-LINK-03"),
                ("link_suspended", "R-LINK-06"),
                ("link_lapsed", "R-LINK-07"),
                ("link_terminated", "R-LINK-08"),
                ("link_stopped", "R-LINK-09"),
                ("link_dormant_stopped", "R-LINK-10"),
                ("outside_usage_period", "R-LINK-12"),
                ("item_not_on_link", "R-LINK-03"),
                ("contractor_conflict", "R-VEN-08"),
            ]
        );
    }

    #[test]
    fn r_link_06_a_suspended_link_refuses_every_lookup() {
        let detail = "TPE-SW's link is suspended since 2026-12-03: remediation overdue";
        let suspended = refused("link_suspended", detail);
        for query_type in QueryType::ALL {
            assert_eq!(refusal_of(&suspended, query_type), (LinkRefusal::LinkSuspended, detail.to_owned()));
        }
    }

    #[test]
    fn r_link_08_a_terminated_link_refuses_lookups() {
        let terminated = refused("link_terminated", "TPE-SW's link ended on 2026-12-01");
        let (refusal, detail) = refusal_of(&terminated, QueryType::EntryExitLastYear);
        assert_eq!((refusal, refusal.rule()), (LinkRefusal::LinkTerminated, "R-LINK-08"));
        assert_eq!(detail, "TPE-SW's link ended on 2026-12-01");
    }

    #[test]
    fn r_link_12_outside_the_usage_period_is_refused() {
        let outside = refused("outside_usage_period", "TPE-SW's data usage period ended on 2026-11-30");
        let (refusal, _) = refusal_of(&outside, QueryType::EntryExitLastYear);
        assert_eq!((refusal, refusal.rule()), (LinkRefusal::OutsideUsagePeriod, "R-LINK-12"));
    }

    #[test]
    fn r_link_03_an_item_the_link_does_not_carry_is_refused() {
        let usable = LinkStanding { refusal: None, query_types: vec!["entry_exit_last_year".into()] };
        assert!(usable.check(QueryType::EntryExitLastYear).is_ok());
        let (refusal, detail) = refusal_of(&usable, QueryType::EidPhoto);
        assert_eq!((refusal, refusal.rule()), (LinkRefusal::ItemNotOnLink, "R-LINK-03"));
        assert!(detail.contains(QueryType::EidPhoto.code()), "{detail}");
        let carries_nothing = LinkStanding::default();
        assert_eq!(refusal_of(&carries_nothing, QueryType::EntryExitLastYear).0, LinkRefusal::ItemNotOnLink);
    }

    /// Fail closed: a refusal identity names with a code the broker does not know still refuses.
    #[test]
    fn r_link_02_an_unknown_refusal_code_refuses_as_no_active_link() {
        let unknown = refused("link_on_fire", "TPE-SW's link is on fire");
        let (refusal, detail) = refusal_of(&unknown, QueryType::EntryExitLastYear);
        assert_eq!((refusal, refusal.rule()), (LinkRefusal::NoActiveLink, "R-LINK-02"));
        assert_eq!(detail, "TPE-SW's link is on fire", "identity's own words are kept");
        let blank = Refusal::from_identity("", Some("  ".into()));
        assert_eq!(blank.reason, LinkRefusal::NoActiveLink);
        assert!(!blank.detail.is_empty(), "a refusal without detail still says why");
    }
}
