//! Deterministic synthetic data: every answer is derived from SHA-256 of the subject ID (and, for
//! dates, the Taipei business date of the request), so the same ID gives the same answer on the same
//! day and tests can rely on it, without any stored data.
//!
//! The kind of subject follows from the ID's shape: a national ID is a Taiwanese national, a UI number
//! (居留證統一證號) a foreigner living in Taiwan, a passport number a traveller. One [`Profile`] per
//! subject feeds every query type, so the answers agree with each other (the permit in
//! `foreigner_residence` is the one `arc_validity_address` checks; last year's crossings are the
//! tail of `traveler_history`).

mod answers;
mod profile;
mod travel;

use chrono::{DateTime, Duration, Utc};
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::business_date;
use immilink_shared::ids::SubjectId;
use sha2::{Digest, Sha256};

pub use answers::{
    ArcValidityAnswer, ArcValidityRecord, EidPhotoAnswer, EidPhotoRecord, EntryExitAnswer, EntryExitRecord,
    ForeignResidentAnswer, ForeignResidentRecord, ForeignerResidenceAnswer, ForeignerResidenceRecord,
    MissingPersonAnswer, MissingPersonRecord, QueryAnswer, TravelerHistoryAnswer, TravelerHistoryRecord,
};
pub use profile::{MissingCategory, PermitStatus, Profile, ResidentCategory};
pub use travel::{Crossing, Direction, History, Transport};

/// Who a subject ID denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// National ID: a Taiwanese national with household registration.
    National,
    /// UI number: a foreigner (or a mainland / Hong Kong / Macau resident) living in Taiwan.
    Foreigner,
    /// Passport number: a traveller.
    Traveller,
}

/// Why the mock will not answer a query for this subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} takes a national ID or UI number, not a passport number")]
    PassportNotAccepted(&'static str),
}

/// The canonical ID and its kind, as the agency would read it.
pub fn classify(raw: &str) -> Result<(String, SubjectKind), SubjectError> {
    let subject = SubjectId::parse_any(raw).map_err(|err| SubjectError::Invalid(err.to_string()))?;
    let kind = match subject {
        SubjectId::National(_) => SubjectKind::National,
        SubjectId::Ui(_) => SubjectKind::Foreigner,
        SubjectId::Passport(_) => SubjectKind::Traveller,
    };
    Ok((subject.as_str().to_owned(), kind))
}

/// The agency's answer to one query: the record of the subject, or `found: false`.
pub fn answer(query_type: QueryType, raw_subject: &str, now: DateTime<Utc>) -> Result<QueryAnswer, SubjectError> {
    let (subject_id, kind) = classify(raw_subject)?;
    let resident_only = query_type.subject_kinds() == immilink_shared::catalogue::SubjectKinds::Resident;
    if resident_only && kind == SubjectKind::Traveller {
        return Err(SubjectError::PassportNotAccepted(query_type.code()));
    }
    let profile = Profile::of(&subject_id, kind, business_date(now));
    Ok(answers::answer(query_type, &profile))
}

/// A stream of pseudo-random numbers seeded from SHA-256(label, subject ID): each aspect of a subject
/// (its person, its travel, its photo) draws from its own stream, so adding a field to one never
/// changes another.
pub struct Draw(u64);

impl Draw {
    pub fn new(subject_id: &str, label: &str) -> Self {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(label.as_bytes())
            .chain_update([0])
            .chain_update(subject_id.as_bytes())
            .finalize()
            .into();
        let [a, b, c, d, e, f, g, h, ..] = digest;
        Self(u64::from_be_bytes([a, b, c, d, e, f, g, h]))
    }

    /// SplitMix64: tiny, and good enough to spread a hash over many small choices.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True about once in `n` draws.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items`, which the callers keep non-empty (constant tables).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A whole number of days in `low..=high`.
    pub fn days(&mut self, low: i64, high: i64) -> Duration {
        let span = (high - low).max(0) as u64 + 1;
        Duration::days(low + self.below(span) as i64)
    }

    /// `n` decimal digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::Value;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap()
    }

    const NATIONALS: &[&str] = &["A123456789", "B200000004", "F131104093", "I100000003", "O212345672", "W198765435"];
    const FOREIGNERS: &[&str] = &["AC01234567", "A800000014", "A900000007", "F812345676", "FB12345672", "YD76543214"];
    const TRAVELLERS: &[&str] = &["X1234567", "123456789", "AB1234", "P9876543"];

    fn json(query_type: QueryType, id: &str) -> Value {
        serde_json::to_value(answer(query_type, id, now()).unwrap()).unwrap()
    }

    /// Valid national IDs, generated: region letter, 1 or 2, seven digits, the balancing check digit.
    fn nationals(count: usize) -> Vec<String> {
        (0..count).map(|n| with_check_digit(&format!("A{}{:07}", 1 + n % 2, n * 7919 % 10_000_000))).collect()
    }

    /// Valid new-style UI numbers (A8…/A9…), generated the same way.
    fn foreigners(count: usize) -> Vec<String> {
        (0..count).map(|n| with_check_digit(&format!("A{}{:07}", 8 + n % 2, n * 7919 % 10_000_000))).collect()
    }

    fn with_check_digit(first9: &str) -> String {
        (0..10).map(|d| format!("{first9}{d}")).find(|id| SubjectId::parse_resident(id).is_ok()).unwrap()
    }

    #[test]
    fn generated_ids_are_valid_and_of_the_expected_kind() {
        for id in nationals(50) {
            assert_eq!(classify(&id).unwrap().1, SubjectKind::National, "{id}");
        }
        for id in foreigners(50) {
            assert_eq!(classify(&id).unwrap().1, SubjectKind::Foreigner, "{id}");
        }
        for id in TRAVELLERS {
            assert_eq!(classify(id).unwrap().1, SubjectKind::Traveller, "{id}");
        }
    }

    #[test]
    fn r_qry_03_same_id_and_day_same_answer_for_every_query_type() {
        for query_type in QueryType::ALL {
            for id in NATIONALS.iter().chain(FOREIGNERS) {
                assert_eq!(json(query_type, id), json(query_type, id), "{query_type:?} {id}");
                assert_eq!(json(query_type, id)["subject_id"], *id);
                assert_eq!(json(query_type, id)["query_type"], query_type.code());
                assert!(json(query_type, id)["found"].is_boolean());
            }
        }
    }

    #[test]
    fn the_answer_is_for_the_canonical_id() {
        assert_eq!(
            json(QueryType::EntryExitLastYear, " a123456789 "),
            json(QueryType::EntryExitLastYear, "A123456789")
        );
    }

    #[test]
    fn invalid_ids_and_passports_for_resident_only_types_are_refused() {
        assert!(matches!(answer(QueryType::EntryExitLastYear, "A123456788", now()), Err(SubjectError::Invalid(_))));
        assert!(matches!(answer(QueryType::TravelerHistory, "", now()), Err(SubjectError::Invalid(_))));
        for query_type in QueryType::ALL {
            let result = answer(query_type, "X1234567", now());
            let resident_only = query_type.subject_kinds() == immilink_shared::catalogue::SubjectKinds::Resident;
            assert_eq!(result.is_err(), resident_only, "{query_type:?}");
        }
    }

    /// Dates of a crossings array, checked to lie in [from, to] in order with the documented fields.
    fn check_crossings(answer: &Value) {
        let (from, to) = (answer["period_from"].as_str().unwrap(), answer["period_to"].as_str().unwrap());
        let crossings = answer["crossings"].as_array().unwrap();
        let dates: Vec<&str> = crossings.iter().map(|c| c["date"].as_str().unwrap()).collect();
        assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
        assert!(dates.iter().all(|d| *d >= from && *d <= to), "{from}..{to} {dates:?}");
        for crossing in crossings {
            assert!(["entry", "exit"].contains(&crossing["direction"].as_str().unwrap()));
            assert!(!crossing["port_name"].as_str().unwrap().is_empty());
            let carrier = crossing["carrier_number"].as_str().unwrap();
            match crossing["transport"].as_str().unwrap() {
                "air" => assert_eq!(crossing["port_code"].as_str().unwrap().len(), 3, "{crossing}"),
                "sea" => assert!(crossing["port_code"].as_str().unwrap().starts_with("TW") && carrier.contains("-V")),
                other => panic!("transport {other}"),
            }
        }
        let last = crossings.last().map(|c| c["direction"].as_str().unwrap());
        if last.is_some() {
            assert_eq!(answer["currently_in_taiwan"], last == Some("entry"), "{answer}");
        }
    }

    #[test]
    fn r_qry_03_entry_exit_last_year_has_ordered_crossings_within_the_year() {
        let ids: Vec<String> = nationals(100).into_iter().chain(foreigners(100)).collect();
        let mut empty = 0;
        let mut sea = 0;
        for id in &ids {
            for query_type in [QueryType::EntryExitLastYear, QueryType::BulkEntryExitLastYear] {
                let answer = json(query_type, id);
                assert_eq!(answer["found"], true);
                assert_eq!(answer["period_to"], "2026-11-23");
                assert_eq!(answer["period_from"], "2025-11-23");
                check_crossings(&answer);
                assert!(answer["name"].is_string() && answer["birth_date"].is_string());
                assert!(answer["nia_reference"].as_str().unwrap().starts_with("NIA-"));
            }
            let answer = json(QueryType::EntryExitLastYear, id);
            empty += usize::from(answer["crossings"].as_array().unwrap().is_empty());
            sea += answer["crossings"].as_array().unwrap().iter().filter(|c| c["transport"] == "sea").count();
        }
        assert!(empty > 20 && empty < 100, "{empty} of 200 without travel");
        assert!(sea > 0, "some crossings are by sea");
    }

    #[test]
    fn r_qry_03_last_year_is_the_tail_of_the_traveller_history() {
        for id in NATIONALS.iter().chain(FOREIGNERS) {
            let last_year = json(QueryType::EntryExitLastYear, id);
            let history = json(QueryType::TravelerHistory, id);
            let tail: Vec<&Value> = history["crossings"]
                .as_array()
                .map(|all| all.iter().filter(|c| c["date"].as_str() >= last_year["period_from"].as_str()).collect())
                .unwrap_or_default();
            let crossings: Vec<&Value> = last_year["crossings"].as_array().unwrap().iter().collect();
            let strip = |c: &&Value| {
                let mut c = (*c).clone();
                c.as_object_mut().unwrap().remove("travel_document_number");
                c
            };
            assert_eq!(tail.iter().map(strip).collect::<Vec<_>>(), crossings.iter().map(strip).collect::<Vec<_>>());
        }
    }

    #[test]
    fn r_qry_03_traveler_history_spans_several_years_for_every_kind_of_subject() {
        let mut found = 0;
        for id in NATIONALS.iter().chain(FOREIGNERS).chain(TRAVELLERS) {
            let answer = json(QueryType::TravelerHistory, id);
            if answer["found"] == false {
                assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");
                continue;
            }
            found += 1;
            check_crossings(&answer);
            assert!(answer["period_from"].as_str().unwrap() <= "2024-11-23", "{answer}");
            assert!(answer["passport_number"].is_string() && answer["passport_nationality"].is_string());
        }
        assert!(found >= 8, "{found}");
        // Travellers arrive first and leave later.
        for id in TRAVELLERS {
            let answer = json(QueryType::TravelerHistory, id);
            if let Some(first) = answer["crossings"].as_array().and_then(|c| c.first()) {
                assert_eq!(first["direction"], "entry", "{id}");
            }
        }
    }

    #[test]
    fn r_qry_03_foreigner_types_are_not_found_for_nationals() {
        for id in nationals(30) {
            for query_type in [
                QueryType::ForeignerResidence,
                QueryType::ArcValidityAddress,
                QueryType::ForeignResidentEntryExit,
                QueryType::MissingPersons,
            ] {
                let answer = json(query_type, &id);
                assert_eq!(answer["found"], false, "{query_type:?} {id}");
                // Nothing of substance besides the echo.
                assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");
            }
        }
    }

    #[test]
    fn r_qry_03_foreigner_residence_and_arc_validity_agree_and_one_in_five_has_no_permit() {
        let ids = foreigners(300);
        let mut without = 0;
        let mut statuses = std::collections::BTreeMap::new();
        for id in &ids {
            let residence = json(QueryType::ForeignerResidence, id);
            let validity = json(QueryType::ArcValidityAddress, id);
            assert_eq!(residence["found"], validity["found"], "{id}");
            if residence["found"] == false {
                without += 1;
                continue;
            }
            assert_eq!(residence["arc_number"], *id);
            assert_eq!(residence["permit_valid_until"], validity["valid_until"]);
            assert_eq!(residence["residence_address"], validity["registered_address"]);
            let valid = residence["permit_status"] == "valid";
            assert_eq!(validity["arc_valid"], valid, "{residence} {validity}");
            let until = residence["permit_valid_until"].as_str().unwrap();
            assert_eq!(residence["permit_status"] == "expired", until < "2026-11-23", "{residence}");
            assert!(residence["permit_valid_from"].as_str().unwrap() < until);
            assert!(["依親", "工作", "就學", "投資", "傳教", "應聘"]
                .contains(&residence["residence_purpose"].as_str().unwrap()));
            for extra in ["name", "birth_date", "phone", "nia_reference", "residence_address", "passport_number"] {
                assert!(residence.get(extra).is_some(), "{extra} in {residence}");
            }
            *statuses.entry(residence["permit_status"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        assert!((30..=90).contains(&without), "{without} of 300 without a permit");
        assert_eq!(statuses.len(), 3, "{statuses:?}");
    }

    #[test]
    fn r_qry_03_foreign_resident_entry_exit_names_the_category() {
        let mut categories = std::collections::BTreeSet::new();
        for id in foreigners(100) {
            let answer = json(QueryType::ForeignResidentEntryExit, &id);
            if answer["found"] == false {
                continue;
            }
            check_crossings(&answer);
            categories.insert(answer["resident_category"].as_str().unwrap().to_owned());
            assert!(answer["nationality"].as_str().unwrap().len() == 3 && answer["nationality_name"].is_string());
            assert!(answer["name"].is_string() && answer["passport_number"].is_string());
        }
        assert_eq!(categories.into_iter().collect::<Vec<_>>(), ["外僑", "外籍移工"]);
    }

    #[test]
    fn r_qry_03_about_one_foreigner_in_six_is_reported_missing() {
        let ids = foreigners(600);
        let reported = ids.iter().filter(|id| json(QueryType::MissingPersons, id)["found"] == true).count();
        assert!((60..=150).contains(&reported), "{reported} of 600");
        let answer = ids.iter().map(|id| json(QueryType::MissingPersons, id)).find(|a| a["found"] == true).unwrap();
        assert!(["大陸", "港澳", "外僑", "外籍移工"].contains(&answer["category"].as_str().unwrap()), "{answer}");
        assert!(answer["reported_missing"].is_boolean() && answer["reporting_unit"].is_string());
        assert!(answer["reported_on"].as_str().unwrap() <= "2026-11-23");
        assert!(answer["last_known_address"].is_string());
    }

    #[test]
    fn r_qry_03_eid_photo_is_a_png_for_residents_with_a_card() {
        let answer = json(QueryType::EidPhoto, "A123456789");
        assert_eq!(answer["found"], true);
        assert_eq!(answer["content_type"], "image/png");
        assert!(answer["taken_on"].as_str().unwrap() <= "2026-11-23");
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD.decode(answer["image_base64"].as_str().unwrap()).unwrap();
        assert_eq!(png, crate::photo::avatar_png("A123456789"));
        // Foreigners without a permit have no resident certificate, so no photo.
        for id in foreigners(60) {
            let residence = json(QueryType::ForeignerResidence, &id);
            assert_eq!(json(QueryType::EidPhoto, &id)["found"], residence["found"], "{id}");
        }
    }
}
