//! Which query types each agency is approved for. The immigration agency approves each agency's
//! link per data item (R-LINK) and checks it on every call; the mock reads the approvals from
//! `IMMILINK_NIA_AGENCY_ITEMS`, by default the links of identity's demo agencies.

use std::collections::BTreeMap;
use std::str::FromStr;

use immilink_shared::catalogue::QueryType;

/// Agency code → the query types it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyItems(BTreeMap<String, Vec<QueryType>>);

impl AgencyItems {
    /// The demo agencies' links, as identity seeds them (`services/identity/src/domain/demo.rs`; a
    /// test in `services/stack` holds the two together): the Taipei social welfare department uses
    /// all eight query types (seed 001 pt 3(2)), Hualien household registration two.
    pub fn demo() -> Self {
        let tpe = QueryType::ALL.to_vec();
        let hln = vec![QueryType::EntryExitLastYear, QueryType::TravelerHistory];
        Self(BTreeMap::from([("TPE-SW".to_owned(), tpe), ("HLN-HR".to_owned(), hln)]))
    }

    /// The approved query types of `agency`; `None` for an agency the mock knows nothing about.
    pub fn approved(&self, agency: &str) -> Option<&[QueryType]> {
        self.0.get(agency).map(Vec::as_slice)
    }

    /// The `AGENCY=type|type;AGENCY=…` form [`AgencyItems::from_str`] reads (for launchers).
    pub fn to_env_value(&self) -> String {
        let agency = |(code, items): (&String, &Vec<QueryType>)| {
            format!("{code}={}", items.iter().map(|q| q.code()).collect::<Vec<_>>().join("|"))
        };
        self.0.iter().map(agency).collect::<Vec<_>>().join(";")
    }
}

impl FromStr for AgencyItems {
    type Err = String;

    /// `TPE-SW=entry_exit_last_year|foreigner_residence;HLN-HR=entry_exit_last_year`. An agency with
    /// nothing after `=` is known and approved for nothing.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut agencies = BTreeMap::new();
        for entry in raw.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (code, items) =
                entry.split_once('=').ok_or_else(|| format!("expected AGENCY=type|type, got {entry:?}"))?;
            let code = code.trim();
            if code.is_empty() {
                return Err(format!("an entry has no agency code: {entry:?}"));
            }
            let items = items
                .split('|')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| QueryType::parse(item).ok_or_else(|| format!("unknown query type {item:?} for {code}")))
                .collect::<Result<Vec<_>, _>>()?;
            if agencies.insert(code.to_owned(), items).is_some() {
                return Err(format!("agency {code} is listed twice"));
            }
        }
        Ok(Self(agencies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form_and_round_trips() {
        let items: AgencyItems =
            " TPE-SW = entry_exit_last_year | foreigner_residence ;HLN-HR=entry_exit_last_year;X=".parse().unwrap();
        assert_eq!(items.approved("TPE-SW"), Some(&[QueryType::EntryExitLastYear, QueryType::ForeignerResidence][..]));
        assert_eq!(items.approved("X"), Some(&[][..]));
        assert_eq!(items.approved("NOPE"), None);
        assert_eq!(items.to_env_value().parse::<AgencyItems>(), Ok(items));
        assert_eq!(AgencyItems::demo().to_env_value().parse::<AgencyItems>(), Ok(AgencyItems::demo()));
    }

    #[test]
    fn refuses_unknown_types_missing_codes_and_duplicates() {
        for bad in ["TPE-SW=credit_history", "=entry_exit_last_year", "TPE-SW", "A=eid_photo;A=eid_photo"] {
            assert!(bad.parse::<AgencyItems>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_demo_links_mirror_identity() {
        let demo = AgencyItems::demo();
        assert_eq!(demo.approved("TPE-SW"), Some(&QueryType::ALL[..]));
        assert_eq!(demo.approved("HLN-HR"), Some(&[QueryType::EntryExitLastYear, QueryType::TravelerHistory][..]));
    }
}
