//! One synthetic person per subject ID: who they are, their papers, their permit and whether they are
//! reported missing. Every query type answers from this one profile, so the answers agree.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Draw, SubjectKind};

/// A nationality: ISO 3166-1 alpha-3 code, name in Chinese, and how its people are named.
pub struct Nationality {
    pub code: &'static str,
    pub name_zh: &'static str,
    /// Family names and given names; Latin ones are written as in the passport (`NGUYEN VAN AN`).
    surnames: &'static [&'static str],
    given: &'static [&'static str],
    latin: bool,
}

const CHINESE_SURNAMES: &[&str] = &["陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊"];
const CHINESE_GIVEN: &[&str] = &["怡君", "志明", "淑芬", "家豪", "雅婷", "俊傑", "美玲", "建宏", "冠宇", "欣怡"];

const fn chinese(code: &'static str, name_zh: &'static str) -> Nationality {
    Nationality { code, name_zh, surnames: CHINESE_SURNAMES, given: CHINESE_GIVEN, latin: false }
}

const fn latin(
    code: &'static str,
    name_zh: &'static str,
    surnames: &'static [&'static str],
    given: &'static [&'static str],
) -> Nationality {
    Nationality { code, name_zh, surnames, given, latin: true }
}

const TWN: Nationality = chinese("TWN", "中華民國");
const CHN: Nationality = chinese("CHN", "中國大陸");
const HKG: Nationality = chinese("HKG", "香港");
const VNM: Nationality = latin(
    "VNM",
    "越南",
    &["NGUYEN", "TRAN", "LE", "PHAM", "HOANG"],
    &["VAN AN", "THI HOA", "VAN DUNG", "THI LAN", "MINH TUAN"],
);
const IDN: Nationality =
    latin("IDN", "印尼", &["SANTOSO", "WIJAYA", "SARI", "PUTRI", "HIDAYAT"], &["SITI", "AGUS", "DEWI", "BUDI", "RINA"]);
const PHL: Nationality =
    latin("PHL", "菲律賓", &["SANTOS", "REYES", "CRUZ", "BAUTISTA"], &["MARIA", "JOSE", "ANGELICA", "MARK"]);
const THA: Nationality =
    latin("THA", "泰國", &["SRISUK", "CHAIYAPORN", "WONGSA", "KAEWKLA"], &["SOMCHAI", "NARONG", "SUDA", "PRANEE"]);
const JPN: Nationality =
    latin("JPN", "日本", &["SATO", "SUZUKI", "TAKAHASHI", "TANAKA"], &["HARUTO", "YUI", "SOTA", "AOI"]);
const USA: Nationality =
    latin("USA", "美國", &["SMITH", "JOHNSON", "BROWN", "MILLER"], &["JAMES", "EMILY", "MICHAEL", "SARAH"]);
const MYS: Nationality =
    latin("MYS", "馬來西亞", &["TAN", "LIM", "WONG", "ABDULLAH"], &["WEI MING", "SITI AISYAH", "KAH HOE", "NUR"]);
const KOR: Nationality = latin("KOR", "韓國", &["KIM", "LEE", "PARK", "CHOI"], &["MIN JUN", "SEO YEON", "JI HOON"]);

/// Residents with UI numbers, weighted roughly like Taiwan's foreign population (migrant workers first).
const RESIDENT_NATIONALITIES: &[&Nationality] =
    &[&VNM, &VNM, &VNM, &IDN, &IDN, &IDN, &PHL, &PHL, &THA, &JPN, &USA, &MYS, &KOR, &CHN, &HKG];
const TRAVELLER_NATIONALITIES: &[&Nationality] = &[&JPN, &JPN, &USA, &KOR, &MYS, &VNM, &PHL, &THA, &IDN, &HKG];
/// Where migrant workers (外籍移工) come from.
const WORKER_COUNTRIES: &[&str] = &["VNM", "IDN", "PHL", "THA"];

/// 外僑 (foreign resident) or 外籍移工 (migrant worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ResidentCategory {
    #[serde(rename = "外僑")]
    ForeignResident,
    #[serde(rename = "外籍移工")]
    MigrantWorker,
}

/// The category of a missing-person report: 大陸, 港澳, 外僑 or 外籍移工.
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

/// A residence permit (居留許可) and the resident certificate that goes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Permit {
    /// 依親, 工作, 就學, 投資, 傳教 or 應聘.
    pub purpose: &'static str,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub status: PermitStatus,
}

/// A missing-person (行方不明) report; `located_on` once the person has been found again.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingReport {
    pub category: MissingCategory,
    pub reported_on: NaiveDate,
    pub reporting_unit: &'static str,
    pub located_on: Option<NaiveDate>,
    pub case_number: String,
}

pub struct Profile {
    pub subject_id: String,
    pub kind: SubjectKind,
    pub today: NaiveDate,
    pub name: String,
    pub birth_date: NaiveDate,
    pub nationality: &'static Nationality,
    pub resident_category: Option<ResidentCategory>,
    pub employer: Option<&'static str>,
    pub phone: String,
    pub address: String,
    pub passport_number: String,
    pub passport_expires_on: NaiveDate,
    pub permit: Option<Permit>,
    pub missing: Option<MissingReport>,
    pub nia_reference: String,
}

const WORKER_EMPLOYERS: &[&str] = &[
    "宏利精密工業股份有限公司",
    "永興紡織股份有限公司",
    "長安護理之家",
    "家庭看護（雇主 陳○○）",
    "東港遠洋漁業股份有限公司",
    "大園營造有限公司",
];
const PROFESSIONAL_EMPLOYERS: &[&str] =
    &["晶創半導體股份有限公司", "環宇貿易有限公司", "福爾摩沙語言中心", "遠景資訊股份有限公司"];
const PURPOSES: &[&str] = &["依親", "工作", "就學", "投資", "傳教", "應聘"];
const PLACES: &[(&str, &str)] = &[
    ("臺北市", "大安區"),
    ("臺北市", "中山區"),
    ("新北市", "板橋區"),
    ("桃園市", "中壢區"),
    ("臺中市", "西屯區"),
    ("臺南市", "東區"),
    ("高雄市", "前鎮區"),
    ("花蓮縣", "花蓮市"),
];
const ROADS: &[&str] = &["中山路", "民生路", "中正路", "復興路", "和平東路", "忠孝東路", "建國路", "光復路"];
const REPORTING_UNITS: &[&str] = &[
    "內政部移民署北區事務大隊臺北市專勤隊",
    "內政部移民署北區事務大隊桃園市專勤隊",
    "內政部移民署中區事務大隊臺中市專勤隊",
    "內政部移民署南區事務大隊高雄市專勤隊",
    "內政部移民署東區事務大隊花蓮縣專勤隊",
];
const LETTERS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ";

impl Profile {
    /// The person behind `subject_id` (canonical form) as of `today` (Taipei business date).
    pub fn of(subject_id: &str, kind: SubjectKind, today: NaiveDate) -> Self {
        let mut draw = Draw::new(subject_id, "person");
        let nationality = nationality_of(subject_id, kind, &mut draw);
        let resident_category = resident_category_of(kind, nationality, &mut draw);
        let purpose = purpose_of(nationality, resident_category, &mut draw);
        let employer = employer_of(resident_category, purpose, &mut draw);
        let mut profile = Self {
            subject_id: subject_id.to_owned(),
            kind,
            today,
            name: name_of(nationality, &mut draw),
            birth_date: birth_date_of(today, &mut draw),
            nationality,
            resident_category,
            employer,
            phone: format!("09{}-{}-{}", draw.digits(2), draw.digits(3), draw.digits(3)),
            address: address_of(&mut draw),
            passport_number: passport_number_of(subject_id, kind, nationality, &mut draw),
            passport_expires_on: today + draw.days(60, 3600),
            permit: None,
            missing: None,
            nia_reference: format!("NIA-{:016x}", draw.next_u64()),
        };
        // About one foreigner in five has no permit on file (left, overstayed, or never applied).
        profile.permit =
            (kind == SubjectKind::Foreigner && !draw.one_in(5)).then(|| permit_of(today, purpose, &mut draw));
        profile.missing = missing_of(&profile, &mut draw);
        if profile.missing.as_ref().is_some_and(|m| m.located_on.is_none()) {
            // A permit is revoked (廢止) when its holder goes missing.
            if let Some(permit) = profile.permit.as_mut().filter(|p| p.status == PermitStatus::Valid) {
                permit.status = PermitStatus::Revoked;
            }
        }
        profile
    }

    /// Whether the subject holds a resident certificate (national ID card or ARC) with a photo.
    pub fn has_card(&self) -> bool {
        match self.kind {
            SubjectKind::National => true,
            SubjectKind::Foreigner => self.permit.is_some(),
            SubjectKind::Traveller => false,
        }
    }

    /// The resident certificate number: the UI number itself (it is printed on the ARC).
    pub fn arc_number(&self) -> &str {
        &self.subject_id
    }
}

fn nationality_of(subject_id: &str, kind: SubjectKind, draw: &mut Draw) -> &'static Nationality {
    match kind {
        SubjectKind::National => &TWN,
        // Taiwanese passports are nine digits.
        SubjectKind::Traveller if subject_id.len() == 9 && subject_id.bytes().all(|b| b.is_ascii_digit()) => &TWN,
        SubjectKind::Traveller => draw.pick(TRAVELLER_NATIONALITIES),
        SubjectKind::Foreigner => draw.pick(RESIDENT_NATIONALITIES),
    }
}

/// Foreigners (and one traveller in three, e.g. workers identified by passport) from abroad; mainland,
/// Hong Kong and Taiwanese people are no 外僑.
fn resident_category_of(kind: SubjectKind, nationality: &Nationality, draw: &mut Draw) -> Option<ResidentCategory> {
    let roll = draw.below(3);
    let eligible = match kind {
        SubjectKind::National => false,
        SubjectKind::Foreigner => true,
        SubjectKind::Traveller => roll == 0,
    };
    if !eligible || ["TWN", "CHN", "HKG"].contains(&nationality.code) {
        return None;
    }
    let worker = WORKER_COUNTRIES.contains(&nationality.code) && !draw.one_in(4);
    Some(if worker { ResidentCategory::MigrantWorker } else { ResidentCategory::ForeignResident })
}

fn purpose_of(nationality: &Nationality, category: Option<ResidentCategory>, draw: &mut Draw) -> &'static str {
    match (category, nationality.code) {
        (Some(ResidentCategory::MigrantWorker), _) => "工作",
        (_, "CHN") => "依親",
        _ => draw.pick(PURPOSES),
    }
}

fn employer_of(category: Option<ResidentCategory>, purpose: &str, draw: &mut Draw) -> Option<&'static str> {
    match (category, purpose) {
        (Some(ResidentCategory::MigrantWorker), _) => Some(draw.pick(WORKER_EMPLOYERS)),
        (_, "工作" | "應聘") => Some(draw.pick(PROFESSIONAL_EMPLOYERS)),
        _ => None,
    }
}

fn name_of(nationality: &Nationality, draw: &mut Draw) -> String {
    let (surname, given) = (draw.pick(nationality.surnames), draw.pick(nationality.given));
    if nationality.latin {
        format!("{surname} {given}")
    } else {
        format!("{surname}{given}")
    }
}

/// Between 18 and 75 years old.
fn birth_date_of(today: NaiveDate, draw: &mut Draw) -> NaiveDate {
    today - draw.days(18 * 365, 75 * 365)
}

fn address_of(draw: &mut Draw) -> String {
    let (city, district) = draw.pick(PLACES);
    let road = draw.pick(ROADS);
    let number = 1 + draw.below(300);
    let floor = 1 + draw.below(12);
    format!("{city}{district}{road}{number}號{floor}樓")
}

/// A traveller's passport is the subject ID; others get one in their nationality's style.
fn passport_number_of(subject_id: &str, kind: SubjectKind, nationality: &Nationality, draw: &mut Draw) -> String {
    match (kind, nationality.code) {
        (SubjectKind::Traveller, _) => subject_id.to_owned(),
        (_, "TWN") => draw.digits(9),
        _ => {
            let letters: String = (0..2).map(|_| char::from(draw.pick(LETTERS))).collect();
            format!("{letters}{}", draw.digits(7))
        }
    }
}

/// Issued up to three years ago for one to three years; expired when that has run out, and now and
/// then revoked.
fn permit_of(today: NaiveDate, purpose: &'static str, draw: &mut Draw) -> Permit {
    let valid_from = today - draw.days(1, 1000);
    let valid_until = valid_from + Duration::days(365 * (1 + draw.below(3) as i64)) - Duration::days(1);
    let status = if valid_until < today {
        PermitStatus::Expired
    } else if draw.one_in(15) {
        PermitStatus::Revoked
    } else {
        PermitStatus::Valid
    };
    Permit { purpose, valid_from, valid_until, status }
}

/// About one foreigner or foreign traveller in six is reported missing; one report in four has since
/// been closed because the person was located.
fn missing_of(profile: &Profile, draw: &mut Draw) -> Option<MissingReport> {
    if profile.kind == SubjectKind::National || profile.nationality.code == "TWN" || !draw.one_in(6) {
        return None;
    }
    let category = match (profile.nationality.code, profile.resident_category) {
        ("CHN", _) => MissingCategory::Mainland,
        ("HKG", _) => MissingCategory::HongKongMacau,
        (_, Some(ResidentCategory::MigrantWorker)) => MissingCategory::MigrantWorker,
        _ => MissingCategory::ForeignResident,
    };
    let reported_on = profile.today - draw.days(10, 900);
    let located_on = draw.one_in(4).then(|| reported_on + draw.days(1, (profile.today - reported_on).num_days()));
    Some(MissingReport {
        category,
        reported_on,
        reporting_unit: draw.pick(REPORTING_UNITS),
        located_on,
        case_number: format!("{}{}", reported_on.format("%Y"), draw.digits(6)),
    })
}
