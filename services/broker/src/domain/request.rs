//! What a lookup declares (R-QRY-01, R-QRY-03, R-QRY-04), as field rules that turn the caller's
//! input into known codes and a valid subject ID, or refuse naming the field: a [`LookupRequest`] is
//! built from them at the edge, and nothing inside checks it again.

use immilink_shared::catalogue::{self, QueryType, SubjectKinds};
use immilink_shared::ids::SubjectId;
use immilink_shared::typed::CaseNumber;

use super::{approvals, colleagues, BrokerError, ProxyAuthorizationId};

/// The rule a missing or unknown declaration breaks.
pub const RULE: &str = "R-QRY-01";
const MAX_REMARKS: usize = 500;

/// A lookup declaration that passed every input rule.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub query_type: QueryType,
    pub subject: SubjectId,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    /// R-QRY-06: the proxy authorization the lookup runs under, on another's behalf.
    pub proxy_authorization_id: Option<ProxyAuthorizationId>,
    /// Free text for the query record table.
    pub remarks: Option<String>,
}

impl LookupRequest {
    /// R-LINK and R-QRY-02 ([`colleagues::check_permitted`]): the agency's link must serve the lookup
    /// now, and the declared (legal basis, purpose, query type) must be among the caller's
    /// permissions. On another's behalf (R-QRY-06) the one who runs the lookup must hold the
    /// permission; the proxy authorization itself is checked against the database separately.
    pub fn authorize(&self, entitlements: &colleagues::Entitlements) -> Result<(), BrokerError> {
        entitlements.check(&self.legal_basis, &self.purpose_code, self.query_type)
    }

    /// Whether accepting it needs the database: a proxy authorization to check (R-QRY-06) or a
    /// supervisor's approval of its purpose (R-QRY-10).
    pub fn needs_context(&self) -> bool {
        self.proxy_authorization_id.is_some() || approvals::requires_approval(&self.purpose_code)
    }
}

fn declared(value: Option<String>, field: &'static str) -> Result<String, BrokerError> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| BrokerError::missing(field).rule(RULE))
}

/// A legal basis code of the catalogue (R-QRY-01, R-QRY-11).
pub fn legal_basis(value: Option<String>) -> Result<String, BrokerError> {
    let code = declared(value, "legal_basis")?;
    match catalogue::legal_basis(&code) {
        Some(_) => Ok(code),
        None => Err(unknown("legal_basis", code, "GET /v1/catalogue/legal-bases")),
    }
}

/// A purpose code of the catalogue (R-QRY-01, R-QRY-10).
pub fn purpose_code(value: Option<String>) -> Result<String, BrokerError> {
    let code = declared(value, "purpose_code")?;
    match catalogue::purpose(&code) {
        Some(_) => Ok(code),
        None => Err(unknown("purpose_code", code, "GET /v1/catalogue/purposes")),
    }
}

fn unknown(field: &'static str, value: String, catalogue: &'static str) -> BrokerError {
    BrokerError::UnknownCode { field: field.into(), value, catalogue, rule: RULE }
}

/// One of the eight query types (R-QRY-03).
pub fn query_type(value: Option<String>) -> Result<QueryType, BrokerError> {
    let raw = value.filter(|q| !q.trim().is_empty()).ok_or_else(|| BrokerError::missing("query_type"))?;
    QueryType::parse(raw.trim()).ok_or(BrokerError::UnknownQueryType {
        field: "query_type".into(),
        value: raw,
        rule: "R-QRY-03",
    })
}

/// The subject's ID, of a kind `query_type` takes (R-QRY-04).
pub fn subject(query_type: QueryType, value: Option<String>) -> Result<SubjectId, BrokerError> {
    let raw =
        value.filter(|s| !s.trim().is_empty()).ok_or_else(|| BrokerError::missing("subject_id").rule("R-QRY-04"))?;
    parse_subject(query_type, &raw)
}

/// A subject ID as `query_type` takes it: a national ID or UI number, or also a passport number
/// (R-QRY-04); normalised (trimmed, upper case).
pub fn parse_subject(query_type: QueryType, raw: &str) -> Result<SubjectId, BrokerError> {
    let parsed = match query_type.subject_kinds() {
        SubjectKinds::Resident => SubjectId::parse_resident(raw),
        SubjectKinds::ResidentOrPassport => SubjectId::parse_any(raw),
    };
    parsed.map_err(|error| BrokerError::InvalidIdentifier { field: "subject_id".into(), error, line: None })
}

/// Free-text remarks: blank is none.
pub fn remarks(value: Option<String>) -> Result<Option<String>, BrokerError> {
    let remarks = value.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if remarks.as_ref().is_some_and(|r| r.chars().count() > MAX_REMARKS) {
        return Err(BrokerError::invalid("remarks", format!("must be at most {MAX_REMARKS} characters")));
    }
    Ok(remarks)
}

/// The proxy authorization a lookup names: blank is none.
pub fn proxy_authorization_id(value: Option<String>) -> Option<ProxyAuthorizationId> {
    value.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).map(ProxyAuthorizationId::new)
}

/// A complete declaration the demo caseworker of TPE-SW may make; tests vary it.
#[cfg(test)]
pub(crate) fn sample() -> LookupRequest {
    LookupRequest {
        query_type: QueryType::EntryExitLastYear,
        subject: SubjectId::parse_resident("A123456789").expect("a valid ID"),
        legal_basis: "social_assistance_act".into(),
        purpose_code: "sw_statutory_business".into(),
        case_number: CaseNumber::new("TPE-2026-7"),
        proxy_authorization_id: None,
        remarks: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_missing(result: Result<impl std::fmt::Debug, BrokerError>, name: &str, rule: Option<&str>) -> bool {
        matches!(result, Err(BrokerError::Missing { field, rule: r }) if field == name && r == rule)
    }

    #[test]
    fn r_qry_01_each_missing_declaration_is_named_with_the_rule() {
        assert!(is_missing(legal_basis(None), "legal_basis", Some("R-QRY-01")));
        assert!(is_missing(purpose_code(Some("  ".into())), "purpose_code", Some("R-QRY-01")));
        assert_eq!(legal_basis(Some(" social_assistance_act ".into())).unwrap(), "social_assistance_act");
        assert_eq!(purpose_code(Some("sw_statutory_business".into())).unwrap(), "sw_statutory_business");
    }

    #[test]
    fn r_qry_01_unknown_codes_are_refused() {
        let err = legal_basis(Some("made_up_act".into())).unwrap_err();
        assert!(matches!(err, BrokerError::UnknownCode { ref field, rule: "R-QRY-01", .. } if field == "legal_basis"));
        let err = purpose_code(Some("curiosity".into())).unwrap_err();
        assert!(matches!(err, BrokerError::UnknownCode { ref field, .. } if field == "purpose_code"));
    }

    #[test]
    fn r_qry_03_only_the_eight_query_types() {
        assert_eq!(query_type(Some(" traveler_history ".into())).unwrap(), QueryType::TravelerHistory);
        assert!(matches!(
            query_type(Some("gossip".into())),
            Err(BrokerError::UnknownQueryType { rule: "R-QRY-03", .. })
        ));
        assert!(is_missing(query_type(None), "query_type", None));
    }

    #[test]
    fn r_qry_04_invalid_subject_is_refused_and_lowercase_is_normalised() {
        let err = subject(QueryType::EntryExitLastYear, Some("A123456788".into())).unwrap_err();
        assert!(matches!(err, BrokerError::InvalidIdentifier { ref field, line: None, .. } if field == "subject_id"));
        assert!(is_missing(subject(QueryType::EntryExitLastYear, Some(" ".into())), "subject_id", Some("R-QRY-04")));
        let normalised = subject(QueryType::EntryExitLastYear, Some(" a123456789 ".into())).unwrap();
        assert_eq!(normalised.as_str(), "A123456789");
    }

    #[test]
    fn r_qry_04_passports_only_where_the_query_type_takes_them() {
        assert!(parse_subject(QueryType::EntryExitLastYear, "X1234567").is_err());
        assert!(parse_subject(QueryType::TravelerHistory, "X1234567").is_ok());
    }

    #[test]
    fn remarks_are_bounded_and_blank_is_none() {
        assert_eq!(remarks(Some("  ".into())).unwrap(), None);
        assert!(matches!(remarks(Some("長".repeat(501))), Err(BrokerError::Invalid { .. })));
        assert_eq!(proxy_authorization_id(Some(" ".into())), None);
    }
}
