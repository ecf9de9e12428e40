//! The upstream answer of each query type. Every answer echoes `subject_id` and `query_type` and says
//! whether the agency holds a record (`found`); only then come the record's fields, flattened beside
//! them. Each record carries more than any agency is approved to see (name, birth date, the agency's
//! reference, phone, employer, addresses, passport details): the broker keeps only the approved items.

use chrono::NaiveDate;
use immilink_shared::catalogue::QueryType;
use serde::Serialize;
use utoipa::ToSchema;

use super::profile::{MissingCategory, PermitStatus, Profile, ResidentCategory};
use super::travel::{Crossing, History};
use super::SubjectKind;
use crate::photo;

/// One answer: the echo of the query, `found`, and the record's fields beside them. The record's
/// fields are present exactly when `found` is true (the document lists them as required because it
/// cannot say "required when found").
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Answer<R> {
    #[schema(example = "A123456789")]
    pub subject_id: String,
    pub query_type: QueryType,
    /// False when the agency holds no record of this kind for the subject; nothing else follows then.
    pub found: bool,
    #[serde(flatten)]
    pub record: Option<R>,
}

pub type EntryExitAnswer = Answer<EntryExitRecord>;
pub type ForeignResidentAnswer = Answer<ForeignResidentRecord>;
pub type ForeignerResidenceAnswer = Answer<ForeignerResidenceRecord>;
pub type EidPhotoAnswer = Answer<EidPhotoRecord>;
pub type MissingPersonAnswer = Answer<MissingPersonRecord>;
pub type TravelerHistoryAnswer = Answer<TravelerHistoryRecord>;
pub type ArcValidityAnswer = Answer<ArcValidityRecord>;

/// The answer to any query type (the path's `query_type` says which).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(untagged)]
pub enum QueryAnswer {
    /// `entry_exit_last_year` and `bulk_entry_exit_last_year`.
    EntryExit(Answer<EntryExitRecord>),
    ForeignResident(Answer<ForeignResidentRecord>),
    ForeignerResidence(Answer<ForeignerResidenceRecord>),
    EidPhoto(Answer<EidPhotoRecord>),
    MissingPerson(Answer<MissingPersonRecord>),
    TravelerHistory(Answer<TravelerHistoryRecord>),
    ArcValidity(Answer<ArcValidityRecord>),
}

/// `entry_exit_last_year`, `bulk_entry_exit_last_year`: crossings in the year up to today.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct EntryExitRecord {
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub crossings: Vec<Crossing>,
    pub currently_in_taiwan: bool,
    pub name: String,
    pub birth_date: NaiveDate,
    /// ISO 3166-1 alpha-3 (`TWN` for nationals).
    pub nationality: String,
    pub nia_reference: String,
}

/// `foreign_resident_entry_exit`: a foreign resident's or migrant worker's crossings in the last year.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ForeignResidentRecord {
    #[schema(example = "VNM")]
    pub nationality: String,
    #[schema(example = "越南")]
    pub nationality_name: String,
    pub resident_category: ResidentCategory,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub crossings: Vec<Crossing>,
    pub currently_in_taiwan: bool,
    pub name: String,
    pub birth_date: NaiveDate,
    pub employer: Option<String>,
    pub passport_number: String,
    pub phone: String,
    pub nia_reference: String,
}

/// `foreigner_residence`: the residence permit on file.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ForeignerResidenceRecord {
    /// The resident certificate (ARC) number, which is the UI number.
    pub arc_number: String,
    pub nationality: String,
    pub nationality_name: String,
    /// 依親, 工作, 就學, 投資, 傳教 or 應聘.
    #[schema(example = "工作")]
    pub residence_purpose: String,
    pub permit_valid_from: NaiveDate,
    pub permit_valid_until: NaiveDate,
    pub permit_status: PermitStatus,
    pub name: String,
    pub birth_date: NaiveDate,
    pub residence_address: String,
    pub employer: Option<String>,
    pub phone: String,
    pub passport_number: String,
    pub nia_reference: String,
}

/// `eid_photo`: the photo on the subject's national ID card or resident certificate.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct EidPhotoRecord {
    #[schema(example = "image/png")]
    pub content_type: String,
    /// The image, standard base64 with padding.
    pub image_base64: String,
    pub taken_on: NaiveDate,
    pub name: String,
    pub birth_date: NaiveDate,
    pub nia_reference: String,
}

/// `missing_persons`: the missing-person (行方不明) report on file.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MissingPersonRecord {
    /// False once the person has been located (the report is then closed).
    pub reported_missing: bool,
    pub category: MissingCategory,
    pub reported_on: NaiveDate,
    pub reporting_unit: String,
    pub located_on: Option<NaiveDate>,
    pub case_number: String,
    pub name: String,
    pub birth_date: NaiveDate,
    pub nationality: String,
    pub last_known_address: String,
    pub employer: Option<String>,
    pub phone: String,
    pub nia_reference: String,
}

/// `traveler_history`: every crossing on record (several years).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TravelerHistoryRecord {
    /// The first day covered by the records.
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub crossings: Vec<Crossing>,
    pub currently_in_taiwan: bool,
    pub name: String,
    pub birth_date: NaiveDate,
    pub passport_number: String,
    pub passport_nationality: String,
    pub passport_expires_on: NaiveDate,
    pub nia_reference: String,
}

/// `arc_validity_address`: whether the resident certificate is valid, and the address on file
/// (回應地址).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ArcValidityRecord {
    pub arc_valid: bool,
    pub valid_until: NaiveDate,
    pub registered_address: String,
    pub name: String,
    pub birth_date: NaiveDate,
    pub phone: String,
    pub nia_reference: String,
}

fn wrap<R>(profile: &Profile, query_type: QueryType, record: Option<R>) -> Answer<R> {
    Answer { subject_id: profile.subject_id.clone(), query_type, found: record.is_some(), record }
}

/// The answer of `query_type` for the subject of `profile`.
pub fn answer(query_type: QueryType, profile: &Profile) -> QueryAnswer {
    let history = History::of(profile);
    match query_type {
        QueryType::EntryExitLastYear | QueryType::BulkEntryExitLastYear => {
            QueryAnswer::EntryExit(wrap(profile, query_type, entry_exit(profile, &history)))
        }
        QueryType::ForeignResidentEntryExit => {
            QueryAnswer::ForeignResident(wrap(profile, query_type, foreign_resident(profile, &history)))
        }
        QueryType::ForeignerResidence => QueryAnswer::ForeignerResidence(wrap(profile, query_type, residence(profile))),
        QueryType::EidPhoto => QueryAnswer::EidPhoto(wrap(profile, query_type, eid_photo(profile))),
        QueryType::MissingPersons => QueryAnswer::MissingPerson(wrap(profile, query_type, missing(profile))),
        QueryType::TravelerHistory => {
            QueryAnswer::TravelerHistory(wrap(profile, query_type, traveler_history(profile, history)))
        }
        QueryType::ArcValidityAddress => QueryAnswer::ArcValidity(wrap(profile, query_type, arc_validity(profile))),
    }
}

/// Every resident is on file (no crossings is an answer too); travellers are refused before this.
fn entry_exit(p: &Profile, history: &History) -> Option<EntryExitRecord> {
    let year = history.since(p.today - chrono::Duration::days(365));
    Some(EntryExitRecord {
        period_from: year.from,
        period_to: year.to,
        crossings: year.crossings,
        currently_in_taiwan: year.currently_in_taiwan,
        name: p.name.clone(),
        birth_date: p.birth_date,
        nationality: p.nationality.code.to_owned(),
        nia_reference: p.nia_reference.clone(),
    })
}

/// Only 外僑 and 外籍移工: nationals, mainland and Hong Kong residents and most travellers are not found.
fn foreign_resident(p: &Profile, history: &History) -> Option<ForeignResidentRecord> {
    let resident_category = p.resident_category?;
    let year = history.since(p.today - chrono::Duration::days(365));
    Some(ForeignResidentRecord {
        nationality: p.nationality.code.to_owned(),
        nationality_name: p.nationality.name_zh.to_owned(),
        resident_category,
        period_from: year.from,
        period_to: year.to,
        crossings: year.crossings,
        currently_in_taiwan: year.currently_in_taiwan,
        name: p.name.clone(),
        birth_date: p.birth_date,
        employer: p.employer.map(str::to_owned),
        passport_number: p.passport_number.clone(),
        phone: p.phone.clone(),
        nia_reference: p.nia_reference.clone(),
    })
}

fn residence(p: &Profile) -> Option<ForeignerResidenceRecord> {
    let permit = p.permit.as_ref()?;
    Some(ForeignerResidenceRecord {
        arc_number: p.arc_number().to_owned(),
        nationality: p.nationality.code.to_owned(),
        nationality_name: p.nationality.name_zh.to_owned(),
        residence_purpose: permit.purpose.to_owned(),
        permit_valid_from: permit.valid_from,
        permit_valid_until: permit.valid_until,
        permit_status: permit.status,
        name: p.name.clone(),
        birth_date: p.birth_date,
        residence_address: p.address.clone(),
        employer: p.employer.map(str::to_owned),
        phone: p.phone.clone(),
        passport_number: p.passport_number.clone(),
        nia_reference: p.nia_reference.clone(),
    })
}

/// The photo was taken when the card was issued: the permit's start for foreigners, some day in the
/// last ten years for nationals.
fn eid_photo(p: &Profile) -> Option<EidPhotoRecord> {
    use base64::Engine;
    if !p.has_card() {
        return None;
    }
    let mut draw = super::Draw::new(&p.subject_id, "photo-date");
    let taken_on = p.permit.as_ref().map_or_else(|| p.today - draw.days(30, 3650), |permit| permit.valid_from);
    Some(EidPhotoRecord {
        content_type: photo::CONTENT_TYPE.to_owned(),
        image_base64: base64::engine::general_purpose::STANDARD.encode(photo::avatar_png(&p.subject_id)),
        taken_on,
        name: p.name.clone(),
        birth_date: p.birth_date,
        nia_reference: p.nia_reference.clone(),
    })
}

fn missing(p: &Profile) -> Option<MissingPersonRecord> {
    let report = p.missing.as_ref()?;
    Some(MissingPersonRecord {
        reported_missing: report.located_on.is_none(),
        category: report.category,
        reported_on: report.reported_on,
        reporting_unit: report.reporting_unit.to_owned(),
        located_on: report.located_on,
        case_number: report.case_number.clone(),
        name: p.name.clone(),
        birth_date: p.birth_date,
        nationality: p.nationality.code.to_owned(),
        last_known_address: p.address.clone(),
        employer: p.employer.map(str::to_owned),
        phone: p.phone.clone(),
        nia_reference: p.nia_reference.clone(),
    })
}

/// Not found when nothing is on record.
fn traveler_history(p: &Profile, history: History) -> Option<TravelerHistoryRecord> {
    if history.crossings.is_empty() {
        return None;
    }
    Some(TravelerHistoryRecord {
        period_from: history.from,
        period_to: history.to,
        crossings: history.crossings,
        currently_in_taiwan: history.currently_in_taiwan,
        name: p.name.clone(),
        birth_date: p.birth_date,
        passport_number: p.passport_number.clone(),
        passport_nationality: p.nationality.code.to_owned(),
        passport_expires_on: p.passport_expires_on,
        nia_reference: p.nia_reference.clone(),
    })
}

/// Only for holders of a resident certificate with a permit on file.
fn arc_validity(p: &Profile) -> Option<ArcValidityRecord> {
    let permit = p.permit.as_ref().filter(|_| p.kind == SubjectKind::Foreigner)?;
    Some(ArcValidityRecord {
        arc_valid: permit.status == PermitStatus::Valid && permit.valid_until >= p.today,
        valid_until: permit.valid_until,
        registered_address: p.address.clone(),
        name: p.name.clone(),
        birth_date: p.birth_date,
        phone: p.phone.clone(),
        nia_reference: p.nia_reference.clone(),
    })
}
