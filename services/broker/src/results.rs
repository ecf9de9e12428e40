//! Data minimisation (R-QRY-07) by construction: an upstream answer is parsed into the type of the
//! approved data items of its query type, which has no field for anything else, so an unapproved field
//! (the subject's name, birth date, phone, employer, addresses, passport details, the agency's own
//! reference…) cannot leave the broker. The upstream is outside the trust boundary: an answer that
//! lacks an approved item or has it in the wrong form is an error, never passed through.
//!
//! Every answer says whether the agency holds a record (`found`); a result with `found: false`
//! carries nothing else, whatever the upstream sent beside it.

use chrono::NaiveDate;
use immilink_shared::catalogue::QueryType;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Entry,
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Air,
    Sea,
}

/// One border crossing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Crossing {
    pub direction: Direction,
    pub date: NaiveDate,
    pub transport: Transport,
    /// IATA code of an airport (`TPE`) or UN/LOCODE of a seaport (`TWKEL`).
    #[schema(example = "TPE")]
    pub port_code: String,
    #[schema(example = "臺灣桃園國際機場")]
    pub port_name: String,
    /// Flight number (`BR0012`) or vessel voyage number (`GDS-V118`).
    #[schema(example = "BR0012")]
    pub carrier_number: String,
}

/// 外僑 (foreign resident) or 外籍移工 (migrant worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ResidentCategory {
    #[serde(rename = "外僑")]
    ForeignResident,
    #[serde(rename = "外籍移工")]
    MigrantWorker,
}

/// The category of a missing-person report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum MissingCategory {
    #[serde(rename = "大陸")]
    Mainland,
    #[serde(rename = "港澳")]
    HongKongMacau,
    #[serde(rename = "外僑")]
    ForeignResident,
    #[serde(rename = "外籍移工")]
    MigrantWorker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermitStatus {
    Valid,
    Expired,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ImageType {
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
}

/// Upstream answers that do not say `found` are answers with a record.
fn found_by_default() -> bool {
    true
}

/// `entry_exit_last_year`, `bulk_entry_exit_last_year`: crossings in the last year. The other fields
/// are present when `found`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EntryExitResult {
    /// False when the agency holds no such record of the subject; nothing else is given then.
    #[serde(default = "found_by_default")]
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_to: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings: Option<Vec<Crossing>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currently_in_taiwan: Option<bool>,
}

/// `foreign_resident_entry_exit`: a foreign resident's or migrant worker's crossings in the last year.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ForeignResidentEntryExitResult {
    #[serde(default = "found_by_default")]
    pub found: bool,
    /// ISO 3166-1 alpha-3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "VNM")]
    pub nationality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "越南")]
    pub nationality_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_category: Option<ResidentCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_to: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings: Option<Vec<Crossing>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currently_in_taiwan: Option<bool>,
}

/// `foreigner_residence`: the residence permit on file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ForeignerResidenceResult {
    #[serde(default = "found_by_default")]
    pub found: bool,
    /// The resident certificate (ARC) number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nationality_name: Option<String>,
    /// 依親, 工作, 就學, 投資, 傳教, 應聘…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "工作")]
    pub residence_purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_valid_from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_valid_until: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_status: Option<PermitStatus>,
}

/// `eid_photo`: the photo on the subject's ID card or resident certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EidPhotoResult {
    #[serde(default = "found_by_default")]
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<ImageType>,
    /// The image, standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_on: Option<NaiveDate>,
}

/// `missing_persons`: the missing-person (行方不明) report on file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct MissingPersonsResult {
    #[serde(default = "found_by_default")]
    pub found: bool,
    /// False once the person has been located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_missing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<MissingCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located_on: Option<NaiveDate>,
}

/// `traveler_history`: every crossing on record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TravelerHistoryResult {
    #[serde(default = "found_by_default")]
    pub found: bool,
    /// The first day the records cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_to: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings: Option<Vec<Crossing>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currently_in_taiwan: Option<bool>,
}

/// `arc_validity_address`: whether the resident certificate is valid, and the address on file
/// (回應地址).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ArcValidityAddressResult {
    #[serde(default = "found_by_default")]
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc_valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_address: Option<String>,
}

/// The minimised result of a lookup: the approved data items of its query type, named by
/// `query_type` so that a stored result says what it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "query_type", rename_all = "snake_case")]
pub enum LookupResult {
    EntryExitLastYear(EntryExitResult),
    ForeignResidentEntryExit(ForeignResidentEntryExitResult),
    ForeignerResidence(ForeignerResidenceResult),
    EidPhoto(EidPhotoResult),
    MissingPersons(MissingPersonsResult),
    TravelerHistory(TravelerHistoryResult),
    ArcValidityAddress(ArcValidityAddressResult),
    BulkEntryExitLastYear(EntryExitResult),
}

impl LookupResult {
    pub fn query_type(&self) -> QueryType {
        match self {
            LookupResult::EntryExitLastYear(_) => QueryType::EntryExitLastYear,
            LookupResult::ForeignResidentEntryExit(_) => QueryType::ForeignResidentEntryExit,
            LookupResult::ForeignerResidence(_) => QueryType::ForeignerResidence,
            LookupResult::EidPhoto(_) => QueryType::EidPhoto,
            LookupResult::MissingPersons(_) => QueryType::MissingPersons,
            LookupResult::TravelerHistory(_) => QueryType::TravelerHistory,
            LookupResult::ArcValidityAddress(_) => QueryType::ArcValidityAddress,
            LookupResult::BulkEntryExitLastYear(_) => QueryType::BulkEntryExitLastYear,
        }
    }

    /// Whether the agency held a record of the subject.
    pub fn found(&self) -> bool {
        match self {
            LookupResult::EntryExitLastYear(r) | LookupResult::BulkEntryExitLastYear(r) => r.found,
            LookupResult::ForeignResidentEntryExit(r) => r.found,
            LookupResult::ForeignerResidence(r) => r.found,
            LookupResult::EidPhoto(r) => r.found,
            LookupResult::MissingPersons(r) => r.found,
            LookupResult::TravelerHistory(r) => r.found,
            LookupResult::ArcValidityAddress(r) => r.found,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MinimiseError {
    #[error("the upstream answer does not have the expected shape: {0}")]
    Shape(String),
}

fn shape(reason: impl Into<String>) -> MinimiseError {
    MinimiseError::Shape(reason.into())
}

/// The approved items of one query type.
trait Approved: DeserializeOwned + Default {
    /// The items an answer with a record must carry (the others may be absent).
    const REQUIRED: &'static [&'static str];

    /// Checks beyond the types, where the upstream could send nonsense of the right type.
    fn check(&self) -> Result<(), MinimiseError> {
        Ok(())
    }
}

impl Approved for EntryExitResult {
    const REQUIRED: &'static [&'static str] = &["period_from", "period_to", "crossings", "currently_in_taiwan"];
}

impl Approved for ForeignResidentEntryExitResult {
    const REQUIRED: &'static [&'static str] =
        &["nationality", "resident_category", "period_from", "period_to", "crossings", "currently_in_taiwan"];
}

impl Approved for ForeignerResidenceResult {
    const REQUIRED: &'static [&'static str] =
        &["arc_number", "nationality", "residence_purpose", "permit_valid_from", "permit_valid_until", "permit_status"];
}

impl Approved for EidPhotoResult {
    const REQUIRED: &'static [&'static str] = &["content_type", "image_base64", "taken_on"];

    fn check(&self) -> Result<(), MinimiseError> {
        match self.image_base64.as_deref() {
            Some(image) if is_base64(image) => Ok(()),
            _ => Err(shape("image_base64 is not base64")),
        }
    }
}

impl Approved for MissingPersonsResult {
    const REQUIRED: &'static [&'static str] = &["reported_missing", "category", "reported_on", "reporting_unit"];
}

impl Approved for TravelerHistoryResult {
    const REQUIRED: &'static [&'static str] = &["period_from", "period_to", "crossings", "currently_in_taiwan"];
}

impl Approved for ArcValidityAddressResult {
    const REQUIRED: &'static [&'static str] = &["arc_valid", "valid_until", "registered_address"];
}

/// Standard base64 with padding: the alphabet, whole quads, `=` only at the end.
fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !text.is_empty()
        && text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether the answer has a record: `found` when given (it must then be a boolean), otherwise yes.
fn found(answer: &Map<String, Value>) -> Result<bool, MinimiseError> {
    match answer.get("found") {
        None => Ok(true),
        Some(Value::Bool(found)) => Ok(*found),
        Some(_) => Err(shape("found is not a boolean")),
    }
}

/// The approved items of an upstream answer; `T::default()` (found: false, nothing else) without a
/// record.
fn approved<T: Approved>(upstream: &[u8]) -> Result<T, MinimiseError> {
    let answer: Value = serde_json::from_slice(upstream).map_err(|err| shape(err.to_string()))?;
    let object = answer.as_object().ok_or_else(|| shape("the answer is not a JSON object"))?;
    if !found(object)? {
        return Ok(T::default());
    }
    if let Some(missing) = T::REQUIRED.iter().find(|item| object.get(**item).is_none_or(Value::is_null)) {
        return Err(shape(format!("the item {missing} is missing")));
    }
    let result: T = serde_json::from_value(answer).map_err(|err| shape(err.to_string()))?;
    result.check()?;
    Ok(result)
}

/// The approved items of `query_type` from the upstream's answer; anything else it sent is dropped.
pub fn minimise(query_type: QueryType, upstream: &[u8]) -> Result<LookupResult, MinimiseError> {
    Ok(match query_type {
        QueryType::EntryExitLastYear => LookupResult::EntryExitLastYear(approved(upstream)?),
        QueryType::ForeignResidentEntryExit => LookupResult::ForeignResidentEntryExit(approved(upstream)?),
        QueryType::ForeignerResidence => LookupResult::ForeignerResidence(approved(upstream)?),
        QueryType::EidPhoto => LookupResult::EidPhoto(approved(upstream)?),
        QueryType::MissingPersons => LookupResult::MissingPersons(approved(upstream)?),
        QueryType::TravelerHistory => LookupResult::TravelerHistory(approved(upstream)?),
        QueryType::ArcValidityAddress => LookupResult::ArcValidityAddress(approved(upstream)?),
        QueryType::BulkEntryExitLastYear => LookupResult::BulkEntryExitLastYear(approved(upstream)?),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    /// A crossing as nia-mock sends it, with the travel document the broker must drop.
    fn crossing(direction: &str, date: &str) -> Value {
        json!({"direction": direction, "date": date, "transport": "sea", "port_code": "TWKEL", "port_name": "基隆港",
               "carrier_number": "GDS-V118", "travel_document_number": "NX1737358"})
    }

    const CROSSING_ITEMS: &[&str] = &["direction", "date", "transport", "port_code", "port_name", "carrier_number"];

    /// Fields nia-mock adds that no agency is approved to see.
    fn extras() -> Value {
        json!({"name": "陳怡君", "birth_date": "1980-01-02", "nia_reference": "NIA-895eebd19439a3b6",
               "phone": "0912-345-678", "employer": "宏利精密工業股份有限公司", "passport_number": "NX1737358",
               "residence_address": "臺北市中山區民生路7號4樓", "last_known_address": "桃園市中壢區中山路1號2樓",
               "case_number": "2024010078", "passport_nationality": "IDN", "passport_expires_on": "2030-01-01",
               "travel_document_number": "NX1737358"})
    }

    /// An upstream answer shaped like nia-mock's: the echo, found, the record, and the extras.
    fn upstream(query_type: QueryType, record: Value) -> Vec<u8> {
        let mut answer = extras();
        let object = answer.as_object_mut().unwrap();
        object.insert("subject_id".into(), json!("A800000014"));
        object.insert("query_type".into(), json!(query_type.code()));
        object.insert("found".into(), json!(true));
        object.extend(record.as_object().unwrap().clone());
        serde_json::to_vec(&answer).unwrap()
    }

    fn travel_record() -> Value {
        json!({"period_from": "2025-11-23", "period_to": "2026-11-23", "currently_in_taiwan": true,
               "crossings": [crossing("exit", "2026-02-11"), crossing("entry", "2026-02-26")]})
    }

    /// Each query type: a record as nia-mock sends it, and the items the result must hold, exactly.
    fn cases() -> Vec<(QueryType, Value, &'static [&'static str])> {
        let travel: &[&str] = &["found", "period_from", "period_to", "crossings", "currently_in_taiwan"];
        let mut foreign = travel_record();
        foreign.as_object_mut().unwrap().extend(
            json!({"nationality": "VNM", "nationality_name": "越南", "resident_category": "外籍移工"})
                .as_object()
                .unwrap()
                .clone(),
        );
        vec![
            (QueryType::EntryExitLastYear, travel_record(), travel),
            (QueryType::BulkEntryExitLastYear, travel_record(), travel),
            (QueryType::TravelerHistory, travel_record(), travel),
            (
                QueryType::ForeignResidentEntryExit,
                foreign,
                &[
                    "found",
                    "nationality",
                    "nationality_name",
                    "resident_category",
                    "period_from",
                    "period_to",
                    "crossings",
                    "currently_in_taiwan",
                ],
            ),
            (
                QueryType::ForeignerResidence,
                json!({"arc_number": "A800000014", "nationality": "VNM", "nationality_name": "越南",
                       "residence_purpose": "工作", "permit_valid_from": "2025-01-01",
                       "permit_valid_until": "2027-12-31", "permit_status": "valid"}),
                &[
                    "found",
                    "arc_number",
                    "nationality",
                    "nationality_name",
                    "residence_purpose",
                    "permit_valid_from",
                    "permit_valid_until",
                    "permit_status",
                ],
            ),
            (
                QueryType::EidPhoto,
                json!({"content_type": "image/png", "image_base64": "iVBORw0KGgo=", "taken_on": "2024-05-01"}),
                &["found", "content_type", "image_base64", "taken_on"],
            ),
            (
                QueryType::MissingPersons,
                json!({"reported_missing": false, "category": "外籍移工", "reported_on": "2024-07-30",
                       "reporting_unit": "內政部移民署北區事務大隊桃園市專勤隊", "located_on": "2024-09-01"}),
                &["found", "reported_missing", "category", "reported_on", "reporting_unit", "located_on"],
            ),
            (
                QueryType::ArcValidityAddress,
                json!({"arc_valid": true, "valid_until": "2027-12-31",
                       "registered_address": "臺北市大安區忠孝東路12號3樓"}),
                &["found", "arc_valid", "valid_until", "registered_address"],
            ),
        ]
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn r_qry_07_every_query_type_keeps_exactly_its_approved_items() {
        for (query_type, record, items) in cases() {
            let result = minimise(query_type, &upstream(query_type, record.clone())).unwrap();
            assert_eq!(result.query_type(), query_type);
            assert!(result.found());
            let json = serde_json::to_value(&result).unwrap();
            let mut expected: BTreeSet<String> = items.iter().map(|s| (*s).to_owned()).collect();
            expected.insert("query_type".into());
            assert_eq!(keys(&json), expected, "{query_type:?}");
            assert_eq!(json["query_type"], query_type.code());
            for crossing in json["crossings"].as_array().into_iter().flatten() {
                assert_eq!(keys(crossing), CROSSING_ITEMS.iter().map(|s| (*s).to_owned()).collect(), "{query_type:?}");
            }
            // The approved values come through unchanged.
            for (item, value) in record.as_object().unwrap() {
                if item != "crossings" {
                    assert_eq!(&json[item], value, "{query_type:?} {item}");
                }
            }
        }
    }

    #[test]
    fn r_qry_07_no_extra_value_appears_anywhere_in_a_result() {
        for (query_type, record, _) in cases() {
            let text = serde_json::to_string(&minimise(query_type, &upstream(query_type, record)).unwrap()).unwrap();
            for (field, value) in extras().as_object().unwrap() {
                assert!(!text.contains(&format!("\"{field}\"")), "{field} in {text}");
                assert!(!text.contains(value.as_str().unwrap()), "{field}'s value in {text}");
            }
            assert!(!text.contains("subject_id"), "{text}");
        }
    }

    #[test]
    fn r_qry_07_not_found_carries_nothing_else() {
        for (query_type, record, _) in cases() {
            let mut answer: Value = serde_json::from_slice(&upstream(query_type, record)).unwrap();
            answer["found"] = json!(false);
            let result = minimise(query_type, &serde_json::to_vec(&answer).unwrap()).unwrap();
            assert!(!result.found());
            assert_eq!(
                serde_json::to_value(&result).unwrap(),
                json!({"query_type": query_type.code(), "found": false})
            );
        }
    }

    #[test]
    fn r_qry_07_results_round_trip_with_their_query_type() {
        for (query_type, record, _) in cases() {
            let result = minimise(query_type, &upstream(query_type, record)).unwrap();
            let back: LookupResult = serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
            assert_eq!(back, result);
            let none = minimise(query_type, &serde_json::to_vec(&json!({"found": false})).unwrap()).unwrap();
            let back: LookupResult = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
            assert_eq!((back.query_type(), back.found()), (query_type, false));
        }
    }

    #[test]
    fn an_answer_without_found_is_one_with_a_record() {
        let legacy = br#"{"subject_id":"A123456789","name":"\u9673\u6021\u541b","birth_date":"1980-01-02",
            "period_from":"2025-11-23","period_to":"2026-11-23","crossings":[],"currently_in_taiwan":true,
            "nia_reference":"NIA-0001"}"#;
        let result = minimise(QueryType::EntryExitLastYear, legacy).unwrap();
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["found"], true);
        assert_eq!(json["crossings"], json!([]));
        assert!(json.get("name").is_none() && json.get("nia_reference").is_none());
    }

    #[test]
    fn malformed_upstream_answers_are_an_error_not_a_pass_through() {
        for (query_type, record, _) in cases() {
            for item in record.as_object().unwrap().keys() {
                let optional = ["nationality_name", "located_on"].contains(&item.as_str());
                for broken in [Value::Null, json!("?")] {
                    let mut record = record.clone();
                    if broken.is_null() {
                        record.as_object_mut().unwrap().remove(item);
                    } else {
                        record[item] = json!({"nested": "object"});
                    }
                    let outcome = minimise(query_type, &upstream(query_type, record));
                    let must_fail = !broken.is_null() || !optional;
                    assert_eq!(outcome.is_err(), must_fail, "{query_type:?} {item} {broken}");
                }
            }
        }
        for bad in [&b"not json"[..], b"[]", b"42", br#"{"found": "yes"}"#, br#"{"unexpected": 1}"#] {
            assert!(matches!(minimise(QueryType::EntryExitLastYear, bad), Err(MinimiseError::Shape(_))));
        }
    }

    #[test]
    fn values_outside_their_vocabulary_are_refused() {
        let refused = [
            (QueryType::ForeignerResidence, "permit_status", json!("pending")),
            (QueryType::ForeignResidentEntryExit, "resident_category", json!("tourist")),
            (QueryType::MissingPersons, "category", json!("unknown")),
            (QueryType::EidPhoto, "content_type", json!("text/html")),
            (QueryType::EidPhoto, "image_base64", json!("<script>")),
            (QueryType::EidPhoto, "image_base64", json!("abc")),
            (QueryType::ArcValidityAddress, "valid_until", json!("2027-13-40")),
            (QueryType::TravelerHistory, "crossings", json!([{"direction": "sideways"}])),
        ];
        for (query_type, item, value) in refused {
            let (_, mut record, _) = cases().into_iter().find(|(q, _, _)| *q == query_type).unwrap();
            record[item] = value.clone();
            assert!(minimise(query_type, &upstream(query_type, record)).is_err(), "{query_type:?} {item} {value}");
        }
    }

    #[test]
    fn base64_is_checked_by_its_form() {
        for ok in ["iVBORw0KGgo=", "AAAA", "AA==", "ab+/"] {
            assert!(is_base64(ok), "{ok}");
        }
        for bad in ["", "A", "AAA", "A===", "AA=A", "AA AA", "A-_A"] {
            assert!(!is_base64(bad), "{bad}");
        }
    }
}
