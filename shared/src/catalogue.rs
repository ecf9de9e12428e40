//! The code catalogues every service validates against, transcribed from the seeds: the query types
//! of the cloud query service (seed 001 pt 3(2), R-QRY-03), the legal bases of the Taipei social-welfare
//! catalogue (seed 001 pt 3, R-QRY-11) and of household registration (seed 002 pt 4), and the purposes
//! (seed 002 pt 4 (1)–(4), R-QRY-10; seed 001 pt 3 for social welfare).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which kind of agency a catalogue entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgencyKind {
    SocialWelfare,
    HouseholdRegistration,
}

impl AgencyKind {
    pub fn code(self) -> &'static str {
        match self {
            AgencyKind::SocialWelfare => "social_welfare",
            AgencyKind::HouseholdRegistration => "household_registration",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [AgencyKind::SocialWelfare, AgencyKind::HouseholdRegistration].into_iter().find(|k| k.code() == code)
    }
}

/// The eight query types of the immigration cloud query service (R-QRY-03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryType {
    /// 使用身分證號或統一證號查詢最近 1 年入出境紀錄
    EntryExitLastYear,
    /// 外僑或外籍移工入出境資料
    ForeignResidentEntryExit,
    /// 外國人居留資料
    ForeignerResidence,
    /// 電子證照片
    EidPhoto,
    /// 大陸、港澳、外僑、外籍移工行方不明資料
    MissingPersons,
    /// 提供中外旅客個人歷次入出境資料
    TravelerHistory,
    /// 居留證有效性與回應地址查詢
    ArcValidityAddress,
    /// 批次提供使用身分證號或統一證號查詢在臺最近 1 年入出境紀錄
    BulkEntryExitLastYear,
}

/// Which identifiers a query type accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKinds {
    /// National ID or UI number (resident identifiers).
    Resident,
    /// Resident identifiers or a passport number.
    ResidentOrPassport,
}

impl QueryType {
    pub const ALL: [QueryType; 8] = [
        QueryType::EntryExitLastYear,
        QueryType::ForeignResidentEntryExit,
        QueryType::ForeignerResidence,
        QueryType::EidPhoto,
        QueryType::MissingPersons,
        QueryType::TravelerHistory,
        QueryType::ArcValidityAddress,
        QueryType::BulkEntryExitLastYear,
    ];

    pub fn code(self) -> &'static str {
        match self {
            QueryType::EntryExitLastYear => "entry_exit_last_year",
            QueryType::ForeignResidentEntryExit => "foreign_resident_entry_exit",
            QueryType::ForeignerResidence => "foreigner_residence",
            QueryType::EidPhoto => "eid_photo",
            QueryType::MissingPersons => "missing_persons",
            QueryType::TravelerHistory => "traveler_history",
            QueryType::ArcValidityAddress => "arc_validity_address",
            QueryType::BulkEntryExitLastYear => "bulk_entry_exit_last_year",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            QueryType::EntryExitLastYear => "使用身分證號或統一證號查詢最近1年入出境紀錄",
            QueryType::ForeignResidentEntryExit => "外僑或外籍移工入出境資料",
            QueryType::ForeignerResidence => "外國人居留資料",
            QueryType::EidPhoto => "電子證照片",
            QueryType::MissingPersons => "大陸、港澳、外僑、外籍移工行方不明資料",
            QueryType::TravelerHistory => "提供中外旅客個人歷次入出境資料",
            QueryType::ArcValidityAddress => "居留證有效性與回應地址查詢",
            QueryType::BulkEntryExitLastYear => "批次提供使用身分證號或統一證號查詢在臺最近1年入出境紀錄",
        }
    }

    pub fn subject_kinds(self) -> SubjectKinds {
        match self {
            QueryType::TravelerHistory | QueryType::ForeignResidentEntryExit | QueryType::MissingPersons => {
                SubjectKinds::ResidentOrPassport
            }
            _ => SubjectKinds::Resident,
        }
    }

    pub fn parse(code: &str) -> Option<QueryType> {
        QueryType::ALL.into_iter().find(|q| q.code() == code)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LegalBasis {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub agency_kind: AgencyKind,
    /// Where in the seeds the entry comes from.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Purpose {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub agency_kind: AgencyKind,
    /// "Other business" purposes need a recorded unit-supervisor approval (R-QRY-10).
    pub requires_supervisor_approval: bool,
    pub source: String,
}

type Entry = (&'static str, &'static str, &'static str, AgencyKind, &'static str);

const SW: AgencyKind = AgencyKind::SocialWelfare;
const HR: AgencyKind = AgencyKind::HouseholdRegistration;

const LEGAL_BASES: &[Entry] = &[
    ("social_assistance_act", "社會救助法", "Public Assistance Act", SW, "001 pt 3"),
    ("disability_rights_act", "身心障礙者權益保障法", "People with Disabilities Rights Protection Act", SW, "001 pt 3"),
    ("senior_welfare_act", "老人福利法", "Senior Citizens Welfare Act", SW, "001 pt 3"),
    (
        "special_circumstances_family_act",
        "特殊境遇家庭扶助條例",
        "Act of Assistance for Family in Hardship",
        SW,
        "001 pt 3",
    ),
    (
        "child_youth_welfare_act",
        "兒童及少年福利與權益保障法",
        "Protection of Children and Youths Welfare and Rights Act",
        SW,
        "001 pt 3",
    ),
    ("domestic_violence_act", "家庭暴力防治法", "Domestic Violence Prevention Act", SW, "001 pt 3"),
    ("sexual_assault_prevention_act", "性侵害犯罪防治法", "Sexual Assault Crime Prevention Act", SW, "001 pt 3"),
    (
        "covid19_quarantine_compensation",
        "嚴重特殊傳染性肺炎隔離及檢疫期間防疫補償辦法",
        "COVID-19 Isolation and Quarantine Compensation Regulations",
        SW,
        "001 pt 3",
    ),
    (
        "taipei_childcare_allowance",
        "臺北市育兒津貼發給自治條例",
        "Taipei City Childcare Allowance Ordinance",
        SW,
        "001 pt 3",
    ),
    (
        "taipei_transport_subsidy",
        "臺北市老人與身心障礙者搭乘公車捷運及計程車補助辦法",
        "Taipei City Transport Subsidy for Seniors and People with Disabilities",
        SW,
        "001 pt 3",
    ),
    (
        "taipei_senior_card_pilot",
        "臺北市政府社會局擴大敬老卡使用範圍試辦計畫",
        "Taipei Senior Card Extended Use Pilot Programme",
        SW,
        "001 pt 3",
    ),
    ("household_registration_act", "戶籍法", "Household Registration Act", HR, "002 pt 4"),
    ("nationality_act", "國籍法", "Nationality Act", HR, "002 pt 4"),
];

/// (code, zh, en, kind, source, needs supervisor approval)
const PURPOSES: &[(Entry, bool)] = &[
    (
        (
            "sw_statutory_business",
            "依法令辦理社政業務需使用移民資訊",
            "Social-welfare business under the cited law that requires immigration data",
            SW,
            "001 pt 3",
        ),
        false,
    ),
    (("hr_nationality_change", "國籍變更案件", "Nationality change case", HR, "002 pt 4(1)"), false),
    (
        (
            "hr_registration_doubt",
            "受理戶籍登記、文件核發或人口清查業務有疑義",
            "Household registration, document issuance or census with a doubt to resolve",
            HR,
            "002 pt 4(2)",
        ),
        false,
    ),
    (
        (
            "hr_seal_certificate",
            "受理受委任辦理印鑑證明",
            "Commissioned seal certificate application",
            HR,
            "002 pt 4(3)",
        ),
        false,
    ),
    (
        (
            "hr_other_approved",
            "其他戶政業務經單位主管核准",
            "Other household-registration business approved by the unit supervisor",
            HR,
            "002 pt 4(4)",
        ),
        true,
    ),
];

fn basis_of(&(code, zh, en, kind, source): &Entry) -> LegalBasis {
    LegalBasis { code: code.into(), name_zh: zh.into(), name_en: en.into(), agency_kind: kind, source: source.into() }
}

fn purpose_of(&((code, zh, en, kind, source), approval): &(Entry, bool)) -> Purpose {
    Purpose {
        code: code.into(),
        name_zh: zh.into(),
        name_en: en.into(),
        agency_kind: kind,
        requires_supervisor_approval: approval,
        source: source.into(),
    }
}

pub fn legal_bases() -> Vec<LegalBasis> {
    LEGAL_BASES.iter().map(basis_of).collect()
}

pub fn purposes() -> Vec<Purpose> {
    PURPOSES.iter().map(purpose_of).collect()
}

/// One legal basis by code; every lookup asks, so only the match is built.
pub fn legal_basis(code: &str) -> Option<LegalBasis> {
    LEGAL_BASES.iter().find(|entry| entry.0 == code).map(basis_of)
}

/// One purpose by code; only the match is built.
pub fn purpose(code: &str) -> Option<Purpose> {
    PURPOSES.iter().find(|(entry, _)| entry.0 == code).map(purpose_of)
}

/// OpenAPI schema of a legal-basis code: a string enum of the catalogue, so clients can offer it.
pub fn legal_basis_code_schema() -> utoipa::openapi::Object {
    code_enum(LEGAL_BASES.iter().map(|entry| entry.0), "Legal basis code (GET /v1/catalogue/legal-bases)")
}

/// OpenAPI schema of a purpose code.
pub fn purpose_code_schema() -> utoipa::openapi::Object {
    code_enum(PURPOSES.iter().map(|(entry, _)| entry.0), "Purpose code (GET /v1/catalogue/purposes)")
}

fn code_enum<'a>(codes: impl Iterator<Item = &'a str>, description: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(codes.map(str::to_owned)))
        .description(Some(description))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_qry_11_social_welfare_catalogue_has_the_eleven_laws_of_seed_001() {
        let sw: Vec<_> = legal_bases().into_iter().filter(|b| b.agency_kind == AgencyKind::SocialWelfare).collect();
        assert_eq!(sw.len(), 11);
        assert!(sw.iter().any(|b| b.name_zh == "社會救助法"));
        assert!(sw.iter().any(|b| b.name_zh == "臺北市政府社會局擴大敬老卡使用範圍試辦計畫"));
    }

    #[test]
    fn r_qry_10_household_purposes_are_the_four_of_seed_002_and_other_needs_approval() {
        let hr: Vec<_> =
            purposes().into_iter().filter(|p| p.agency_kind == AgencyKind::HouseholdRegistration).collect();
        assert_eq!(hr.len(), 4);
        let needing_approval: Vec<_> = hr.iter().filter(|p| p.requires_supervisor_approval).collect();
        assert_eq!(needing_approval.len(), 1);
        assert_eq!(needing_approval[0].code, "hr_other_approved");
    }

    #[test]
    fn r_qry_03_eight_query_types_round_trip_their_codes() {
        assert_eq!(QueryType::ALL.len(), 8);
        for q in QueryType::ALL {
            assert_eq!(QueryType::parse(q.code()), Some(q));
            let json = serde_json::to_string(&q).unwrap();
            assert_eq!(json, format!("\"{}\"", q.code()));
        }
        assert_eq!(QueryType::parse("entry_exit"), None);
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = legal_bases().into_iter().map(|b| b.code).collect();
        codes.extend(purposes().into_iter().map(|p| p.code));
        let before = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), before);
    }
}
