//! Parsing a lookup declaration (R-QRY-01, R-QRY-04): the body becomes a [`LookupRequest`] whose
//! fields are known codes and a valid subject ID, or a 422 naming the first bad field.

use immilink_shared::catalogue::{self, QueryType, SubjectKinds};
use immilink_shared::ids::SubjectId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::BrokerError;

// The fields are `Option` in Rust so that a missing one is refused by name with the rule it breaks
// (R-QRY-01), not as a generic parse failure; the schema still marks them required.
/// A lookup declaration: the legal basis, purpose and case number are mandatory (R-QRY-01).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LookupBody {
    /// Query type code (see `GET /v1/catalogue/query-types`).
    #[schema(value_type = QueryType, required = true, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    /// National ID, UI number (old or new style) or, where the query type allows, a passport number.
    #[schema(required = true, nullable = false, min_length = 1, example = "A123456789")]
    pub subject_id: Option<String>,
    /// Legal basis code (see `GET /v1/catalogue/legal-bases`).
    #[schema(schema_with = catalogue::legal_basis_code_schema, required = true, example = "social_assistance_act")]
    pub legal_basis: Option<String>,
    /// Purpose code (see `GET /v1/catalogue/purposes`).
    #[schema(schema_with = catalogue::purpose_code_schema, required = true, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
    /// The case this lookup serves (案號).
    #[schema(required = true, nullable = false, min_length = 1, example = "TPE-SW-2026-000123")]
    pub case_number: Option<String>,
    /// 代查授權單: when querying on another user's behalf.
    pub proxy_authorization_id: Option<String>,
    /// Free-text remarks for the query record table.
    pub remarks: Option<String>,
}

/// A lookup declaration that passed every input rule.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub query_type: QueryType,
    pub subject: SubjectId,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub proxy_authorization_id: Option<String>,
    pub remarks: Option<String>,
}

const MAX_CASE_NUMBER: usize = 64;
const MAX_REMARKS: usize = 500;

fn declared(value: Option<String>, field: &'static str) -> Result<String, BrokerError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| BrokerError::missing(field).rule("R-QRY-01"))
}

impl LookupRequest {
    pub fn parse(body: LookupBody) -> Result<Self, BrokerError> {
        let legal_basis = declared(body.legal_basis, "legal_basis")?;
        if catalogue::legal_basis(&legal_basis).is_none() {
            return Err(unknown("legal_basis", legal_basis, "GET /v1/catalogue/legal-bases"));
        }
        let purpose_code = declared(body.purpose_code, "purpose_code")?;
        if catalogue::purpose(&purpose_code).is_none() {
            return Err(unknown("purpose_code", purpose_code, "GET /v1/catalogue/purposes"));
        }
        let case_number = parse_case_number(declared(body.case_number, "case_number")?)?;
        let raw_type =
            body.query_type.filter(|q| !q.trim().is_empty()).ok_or_else(|| BrokerError::missing("query_type"))?;
        let query_type = QueryType::parse(raw_type.trim()).ok_or_else(|| BrokerError::UnknownQueryType {
            field: "query_type".into(),
            value: raw_type.clone(),
            rule: "R-QRY-03",
        })?;
        let raw_subject = body
            .subject_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| BrokerError::missing("subject_id").rule("R-QRY-04"))?;
        let subject = parse_subject(query_type, &raw_subject)?;
        let remarks = body.remarks.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if remarks.as_ref().is_some_and(|r| r.chars().count() > MAX_REMARKS) {
            return Err(BrokerError::invalid("remarks", format!("must be at most {MAX_REMARKS} characters")));
        }
        Ok(Self {
            query_type,
            subject,
            legal_basis,
            purpose_code,
            case_number,
            proxy_authorization_id: body.proxy_authorization_id.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()),
            remarks,
        })
    }
}

fn unknown(field: &'static str, value: String, catalogue: &'static str) -> BrokerError {
    BrokerError::UnknownCode { field: field.into(), value, catalogue, rule: "R-QRY-01" }
}

/// Case numbers: up to 64 printable characters without control characters.
fn parse_case_number(value: String) -> Result<String, BrokerError> {
    if value.chars().count() > MAX_CASE_NUMBER || value.chars().any(char::is_control) {
        return Err(BrokerError::invalid(
            "case_number",
            format!("must be at most {MAX_CASE_NUMBER} printable characters"),
        )
        .rule("R-QRY-01"));
    }
    Ok(value)
}

pub(crate) fn parse_subject(query_type: QueryType, raw: &str) -> Result<SubjectId, BrokerError> {
    let parsed = match query_type.subject_kinds() {
        SubjectKinds::Resident => SubjectId::parse_resident(raw),
        SubjectKinds::ResidentOrPassport => SubjectId::parse_any(raw),
    };
    parsed.map_err(|error| BrokerError::InvalidIdentifier { field: "subject_id".into(), error, line: None })
}

/// A complete declaration the demo caseworker of TPE-SW may make; tests vary it.
#[cfg(test)]
pub(crate) fn sample_body() -> LookupBody {
    LookupBody {
        query_type: Some("entry_exit_last_year".into()),
        subject_id: Some("A123456789".into()),
        legal_basis: Some("social_assistance_act".into()),
        purpose_code: Some("sw_statutory_business".into()),
        case_number: Some("TPE-2026-7".into()),
        ..LookupBody::default()
    }
}

#[cfg(test)]
mod tests {
    use immilink_shared::ApiError;

    use super::*;

    #[test]
    fn r_qry_01_a_complete_declaration_parses() {
        let request = LookupRequest::parse(sample_body()).unwrap();
        assert_eq!(request.query_type, QueryType::EntryExitLastYear);
        assert_eq!(request.subject.as_str(), "A123456789");
    }

    #[test]
    fn r_qry_01_each_missing_declaration_is_named() {
        for field in ["legal_basis", "purpose_code", "case_number"] {
            let mut b = sample_body();
            match field {
                "legal_basis" => b.legal_basis = None,
                "purpose_code" => b.purpose_code = Some("  ".into()),
                _ => b.case_number = None,
            }
            let err = LookupRequest::parse(b).map_err(ApiError::from).unwrap_err();
            assert_eq!(err.status().as_u16(), 422, "{field}");
            assert_eq!(err.field_name(), Some(field));
            assert_eq!(err.to_problem().rule.as_deref(), Some("R-QRY-01"));
        }
    }

    #[test]
    fn r_qry_01_unknown_codes_are_refused() {
        let mut b = sample_body();
        b.legal_basis = Some("made_up_act".into());
        assert_eq!(LookupRequest::parse(b).map_err(ApiError::from).unwrap_err().field_name(), Some("legal_basis"));
        let mut b = sample_body();
        b.purpose_code = Some("curiosity".into());
        assert_eq!(LookupRequest::parse(b).map_err(ApiError::from).unwrap_err().field_name(), Some("purpose_code"));
    }

    #[test]
    fn r_qry_04_invalid_subject_is_refused_and_lowercase_is_normalised() {
        let mut b = sample_body();
        b.subject_id = Some("A123456788".into());
        let err = LookupRequest::parse(b).map_err(ApiError::from).unwrap_err();
        assert_eq!(err.field_name(), Some("subject_id"));
        assert_eq!(err.to_problem().rule.as_deref(), Some("R-QRY-04"));
        let mut b = sample_body();
        b.subject_id = Some(" a123456789 ".into());
        assert_eq!(LookupRequest::parse(b).unwrap().subject.as_str(), "A123456789");
    }

    #[test]
    fn r_qry_04_passports_only_where_the_query_type_takes_them() {
        let mut b = sample_body();
        b.subject_id = Some("X1234567".into());
        assert!(LookupRequest::parse(b).is_err());
        let mut b = sample_body();
        b.query_type = Some("traveler_history".into());
        b.subject_id = Some("X1234567".into());
        assert!(LookupRequest::parse(b).is_ok());
    }

    #[test]
    fn case_numbers_are_bounded() {
        let mut b = sample_body();
        b.case_number = Some("x".repeat(65));
        assert_eq!(LookupRequest::parse(b).map_err(ApiError::from).unwrap_err().field_name(), Some("case_number"));
        let mut b = sample_body();
        b.case_number = Some("a\u{0007}b".into());
        assert_eq!(LookupRequest::parse(b).map_err(ApiError::from).unwrap_err().field_name(), Some("case_number"));
    }
}

impl LookupRequest {
    /// R-QRY-02: the declared (legal basis, purpose, query type) must be among the caller's
    /// permissions, which identity computes as approved on the agency's active link AND granted to
    /// the user. On another's behalf (R-QRY-06) the one who runs the lookup must hold the
    /// permission; the proxy authorisation itself is checked against the database separately.
    pub fn authorise(&self, permissions: &[crate::identity_client::Permission]) -> Result<(), BrokerError> {
        let permitted = permissions.iter().any(|p| {
            p.legal_basis == self.legal_basis
                && p.purpose_code == self.purpose_code
                && p.query_type == self.query_type.code()
        });
        if permitted {
            Ok(())
        } else {
            Err(BrokerError::NotPermitted {
                query_type: self.query_type,
                purpose_code: self.purpose_code.clone(),
                legal_basis: self.legal_basis.clone(),
            })
        }
    }
}

#[cfg(test)]
mod authorise_tests {
    use immilink_shared::ApiError;

    use super::*;
    use crate::identity_client::Permission;

    fn request() -> LookupRequest {
        LookupRequest::parse(sample_body()).unwrap()
    }

    fn permission(legal_basis: &str, purpose_code: &str, query_type: &str) -> Permission {
        Permission { legal_basis: legal_basis.into(), purpose_code: purpose_code.into(), query_type: query_type.into() }
    }

    #[test]
    fn r_qry_02_the_whole_tuple_must_match_one_permission() {
        let exact = permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year");
        assert!(request().authorise(std::slice::from_ref(&exact)).is_ok());
        // Each element matching some permission is not enough: the tuple must match one.
        let split = [
            permission("social_assistance_act", "sw_statutory_business", "foreigner_residence"),
            permission("senior_welfare_act", "sw_statutory_business", "entry_exit_last_year"),
        ];
        let err = request().authorise(&split).map_err(ApiError::from).unwrap_err();
        assert_eq!(err.status().as_u16(), 403);
        assert_eq!(err.to_problem().rule.as_deref(), Some("R-QRY-02"));
        assert!(request().authorise(&[]).is_err());
    }
}
