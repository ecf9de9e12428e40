//! Data minimisation (R-QRY-07) by construction: an upstream answer is parsed into the type of the
//! approved data items, which has no field for anything else, so an unapproved field cannot leave the
//! broker (the upstream also sends the subject's name, birth date and its own reference number).

use chrono::NaiveDate;
use immilink_shared::catalogue::QueryType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One border crossing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Crossing {
    /// `exit` or `entry`.
    pub direction: String,
    pub date: NaiveDate,
    pub port_code: String,
    pub port_name: String,
    /// Flight or vessel number.
    pub carrier_number: String,
}

/// `entry_exit_last_year`: the subject's border crossings in the last year.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EntryExitResult {
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub crossings: Vec<Crossing>,
    pub currently_in_taiwan: bool,
}

/// The minimised result of a lookup; its shape depends on the query type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(untagged)]
pub enum LookupResult {
    EntryExit(EntryExitResult),
}

#[derive(Debug, thiserror::Error)]
pub enum MinimiseError {
    #[error("the upstream answer does not have the expected shape: {0}")]
    Shape(String),
    #[error("the broker does not handle {0} answers yet")]
    Unsupported(&'static str),
}

pub fn minimise(query_type: QueryType, upstream: &[u8]) -> Result<LookupResult, MinimiseError> {
    match query_type {
        QueryType::EntryExitLastYear => serde_json::from_slice(upstream)
            .map(LookupResult::EntryExit)
            .map_err(|err| MinimiseError::Shape(err.to_string())),
        other => Err(MinimiseError::Unsupported(other.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_qry_07_fields_outside_the_approved_items_never_leave_the_broker() {
        let upstream = br#"{"subject_id":"A123456789","name":"\u9673\u6021\u541b","birth_date":"1980-01-02",
            "period_from":"2025-11-23","period_to":"2026-11-23","crossings":[],"currently_in_taiwan":true,
            "nia_reference":"NIA-0001"}"#;
        let result = minimise(QueryType::EntryExitLastYear, upstream).unwrap();
        let json = serde_json::to_string(&result).unwrap();
        assert!(!json.contains("name\""), "{json}");
        assert!(!json.contains("birth_date"), "{json}");
        assert!(!json.contains("nia_reference"), "{json}");
        assert!(json.contains("currently_in_taiwan"));
    }

    #[test]
    fn malformed_upstream_answers_are_an_error_not_a_pass_through() {
        assert!(matches!(
            minimise(QueryType::EntryExitLastYear, br#"{"unexpected": 1}"#),
            Err(MinimiseError::Shape(_))
        ));
    }
}
