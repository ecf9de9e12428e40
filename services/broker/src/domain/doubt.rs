//! Doubt queries (國人/外國人入出境紀錄疑義查詢表, seed 002 附件二; R-QRY-09). When the immigration
//! agency's query service does not answer and the data is needed at once, the caseworker faxes this
//! form to the agency (002 pt 10) and must send the official document (公文) 「於傳真後翌日起三日內」:
//! faxed on Taipei business date D, the document is due on D+3; after that day a doubt query without a
//! recorded follow-up is overdue.
//!
//! Filing one is a query of personal data like a lookup: it declares legal basis, purpose and case
//! (R-QRY-01), must be permitted (R-QRY-02) and, for "other business", approved (R-QRY-10), validates
//! the subject's identifiers (R-QRY-04), and its audit event names the subject. What was filed is never
//! edited; the follow-up document is a separate record.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::catalogue::{self, QueryType, SubjectKinds};
use immilink_shared::clock::{business_date, from_db, roc_year, taipei, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::ids::{NationalId, PassportNumber, UiNumber};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::forms::{self, Caller, Lines};
use super::{approvals, outbox, BrokerError};
use crate::identity_client::Permission;
use crate::schema::{doubt_queries as dq, doubt_query_follow_ups as fu, lookups};

pub const RULE: &str = "R-QRY-09";
/// The follow-up document is due this many days after the fax date (counted from the next day).
pub const FOLLOW_UP_DAYS: u64 = 3;
/// The query types a doubt query can stand in for: the form is about entry/exit records.
pub const QUERY_TYPES: [QueryType; 3] =
    [QueryType::EntryExitLastYear, QueryType::ForeignResidentEntryExit, QueryType::TravelerHistory];
/// A fax recorded this long after it was sent is refused (the record is made when it is sent).
const MAX_FAX_AGE_DAYS: i64 = 30;
const CLOCK_TOLERANCE_MINUTES: i64 = 2;
const MAX_ATTACHMENTS: usize = 10;
const MAX_PAGES: i64 = 500;

/// Roles that see every doubt query of their agency.
const OVERSEERS: [&str; 3] = [roles::UNIT_SUPERVISOR, roles::ACCOUNT_MANAGER, roles::AUDITOR];

/// 查詢對象: a national (國人) or a foreigner (外國人).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NationalityKind {
    National,
    Foreigner,
}

impl NationalityKind {
    fn code(self) -> &'static str {
        match self {
            NationalityKind::National => "national",
            NationalityKind::Foreigner => "foreigner",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [NationalityKind::National, NationalityKind::Foreigner].into_iter().find(|k| k.code() == code)
    }

    /// Who at the immigration agency answers (附件二 備註 1, 2).
    pub fn receiving_unit(self) -> ReceivingUnit {
        match self {
            NationalityKind::National => ReceivingUnit::ImmigrationInformationDivision,
            NationalityKind::Foreigner => ReceivingUnit::BorderAffairsCorps,
        }
    }
}

/// 受理查詢單位.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceivingUnit {
    /// 移民資訊組: records of nationals.
    ImmigrationInformationDivision,
    /// 國境事務大隊: records of foreigners.
    BorderAffairsCorps,
}

impl ReceivingUnit {
    fn code(self) -> &'static str {
        match self {
            ReceivingUnit::ImmigrationInformationDivision => "immigration_information_division",
            ReceivingUnit::BorderAffairsCorps => "border_affairs_corps",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [ReceivingUnit::ImmigrationInformationDivision, ReceivingUnit::BorderAffairsCorps]
            .into_iter()
            .find(|u| u.code() == code)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            ReceivingUnit::ImmigrationInformationDivision => "移民資訊組",
            ReceivingUnit::BorderAffairsCorps => "國境事務大隊",
        }
    }
}

/// 性別.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Sex {
    M,
    F,
    X,
}

impl Sex {
    fn code(self) -> &'static str {
        match self {
            Sex::M => "M",
            Sex::F => "F",
            Sex::X => "X",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [Sex::M, Sex::F, Sex::X].into_iter().find(|s| s.code() == code)
    }

    fn name_zh(self) -> &'static str {
        match self {
            Sex::M => "男",
            Sex::F => "女",
            Sex::X => "其他",
        }
    }
}

/// The attachments the form lists (附件).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// 查詢對象護照基本資料頁影本
    PassportCopy,
    /// 入出境查驗章影本
    EntryExitStampCopy,
    /// 出境或入境通報
    ExitOrEntryNotice,
    /// 其他相關佐證資料 (describe it)
    Other,
}

impl AttachmentKind {
    const ALL: [AttachmentKind; 4] = [
        AttachmentKind::PassportCopy,
        AttachmentKind::EntryExitStampCopy,
        AttachmentKind::ExitOrEntryNotice,
        AttachmentKind::Other,
    ];

    fn label_zh(self) -> &'static str {
        match self {
            AttachmentKind::PassportCopy => "1.查詢對象護照基本資料頁影本",
            AttachmentKind::EntryExitStampCopy => "2.入出境查驗章影本",
            AttachmentKind::ExitOrEntryNotice => "3.出境或入境通報",
            AttachmentKind::Other => "4.其他相關佐證資料。",
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AttachmentBody {
    #[schema(required = true, nullable = false)]
    pub kind: Option<AttachmentKind>,
    /// Number of pages, at least 1.
    #[schema(required = true, nullable = false, minimum = 1, maximum = 500)]
    pub pages: Option<i64>,
    /// What it is; required for `other`.
    pub description: Option<String>,
}

/// One attachment of a filed doubt query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub pages: i64,
    pub description: Option<String>,
}

// Option fields: a missing one is refused by name (422), not as a generic parse failure.
/// A doubt query as the caseworker fills in 附件二, with the declaration every lookup makes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "query_type": "entry_exit_last_year",
    "legal_basis": "social_assistance_act",
    "purpose_code": "sw_statutory_business",
    "case_number": "TPE-SW-2026-000123",
    "requester_name": "王小明",
    "requester_title": "社會工作員",
    "requester_phone": "(02)2720-8889 分機 1234",
    "requester_fax": "(02)2720-6552",
    "subject_nationality_kind": "national",
    "subject_name_zh": "陳怡君",
    "subject_sex": "F",
    "subject_birth_date": "1980-01-02",
    "subject_national_id": "A123456789",
    "reason": "低收入戶資格審查，需確認最近一年出境期間；線上查詢系統異常",
    "attachments": [{"kind": "entry_exit_stamp_copy", "pages": 2}]
}))]
pub struct DoubtQueryBody {
    /// One of `entry_exit_last_year`, `foreign_resident_entry_exit`, `traveler_history`.
    #[schema(value_type = QueryType, required = true)]
    pub query_type: Option<String>,
    #[schema(schema_with = catalogue::legal_basis_code_schema, required = true)]
    pub legal_basis: Option<String>,
    #[schema(schema_with = catalogue::purpose_code_schema, required = true)]
    pub purpose_code: Option<String>,
    /// 案號.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub case_number: Option<String>,
    /// 姓名 of the caseworker filing it.
    #[schema(required = true, nullable = false)]
    pub requester_name: Option<String>,
    /// 職稱.
    #[schema(required = true, nullable = false)]
    pub requester_title: Option<String>,
    /// 聯絡電話.
    #[schema(required = true, nullable = false)]
    pub requester_phone: Option<String>,
    /// 傳真電話.
    pub requester_fax: Option<String>,
    /// 查詢對象: 國人 or 外國人; decides the receiving unit.
    #[schema(required = true, nullable = false)]
    pub subject_nationality_kind: Option<NationalityKind>,
    /// 中文姓名.
    pub subject_name_zh: Option<String>,
    /// 英文姓名.
    pub subject_name_en: Option<String>,
    /// 性別.
    pub subject_sex: Option<Sex>,
    /// 出生日期.
    pub subject_birth_date: Option<NaiveDate>,
    /// 國民身分證統一編號 (nationals only). At least one of the three identifiers is required.
    pub subject_national_id: Option<String>,
    /// 護照號碼.
    pub subject_passport_number: Option<String>,
    /// 外國人居留證號 (統一證號, old or new style).
    pub subject_arc_number: Option<String>,
    /// 聯絡電話 of the subject.
    pub subject_phone: Option<String>,
    /// 查詢事由.
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
    /// 附件.
    pub attachments: Option<Vec<AttachmentBody>>,
    /// When the form was faxed (RFC 3339); default now; never in the future.
    pub faxed_at: Option<DateTime<Utc>>,
    /// The lookup that failed, if any.
    pub lookup_id: Option<String>,
}

/// A doubt query that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewDoubtQuery {
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub requester_name: String,
    pub requester_title: String,
    pub requester_phone: String,
    pub requester_fax: Option<String>,
    pub nationality: NationalityKind,
    pub subject_name_zh: Option<String>,
    pub subject_name_en: Option<String>,
    pub subject_sex: Option<Sex>,
    pub subject_birth_date: Option<NaiveDate>,
    pub national_id: Option<NationalId>,
    pub passport_number: Option<PassportNumber>,
    pub arc_number: Option<UiNumber>,
    pub subject_phone: Option<String>,
    pub reason: String,
    pub attachments: Vec<Attachment>,
    pub faxed_at: DateTime<Utc>,
    pub lookup_id: Option<String>,
}

fn declared(value: Option<String>, field: &'static str) -> Result<String, BrokerError> {
    forms::required(value, field, 64, Lines::One).map_err(|err| err.rule("R-QRY-01"))
}

fn unknown(field: &'static str, value: String, catalogue: &'static str) -> BrokerError {
    BrokerError::UnknownCode { field: field.into(), value, catalogue, rule: "R-QRY-01" }
}

fn identifier<T>(
    raw: Option<String>,
    field: &'static str,
    parse: impl FnOnce(&str) -> Result<T, immilink_shared::ids::IdError>,
) -> Result<Option<T>, BrokerError> {
    match raw.filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => parse(&raw).map(Some).map_err(|error| BrokerError::InvalidIdentifier {
            field: field.into(),
            error,
            line: None,
        }),
    }
}

impl NewDoubtQuery {
    /// Checks the form as filed at `now`; 422 naming the first bad field.
    pub fn parse(body: DoubtQueryBody, now: DateTime<Utc>) -> Result<Self, BrokerError> {
        Self::parse_fields(body, now).map_err(|err| err.or_rule(RULE))
    }

    fn parse_fields(body: DoubtQueryBody, now: DateTime<Utc>) -> Result<Self, BrokerError> {
        let legal_basis = declared(body.legal_basis, "legal_basis")?;
        if catalogue::legal_basis(&legal_basis).is_none() {
            return Err(unknown("legal_basis", legal_basis, "GET /v1/catalogue/legal-bases"));
        }
        let purpose_code = declared(body.purpose_code, "purpose_code")?;
        if catalogue::purpose(&purpose_code).is_none() {
            return Err(unknown("purpose_code", purpose_code, "GET /v1/catalogue/purposes"));
        }
        let case_number = forms::case_number(body.case_number, "R-QRY-01")?;
        let raw_type = forms::required(body.query_type, "query_type", 64, Lines::One)?;
        let allowed: Vec<&str> = QUERY_TYPES.iter().map(|q| q.code()).collect();
        let query_type = QueryType::parse(&raw_type).filter(|q| QUERY_TYPES.contains(q)).ok_or_else(|| {
            BrokerError::invalid(
                "query_type",
                format!("a doubt query is about entry/exit records: one of {}", allowed.join(", ")),
            )
            .rule("R-QRY-03")
        })?;

        let requester_name = forms::required(body.requester_name, "requester_name", 50, Lines::One)?;
        let requester_title = forms::required(body.requester_title, "requester_title", 50, Lines::One)?;
        let requester_phone = forms::phone(body.requester_phone, "requester_phone", true)?.unwrap_or_default();
        let requester_fax = forms::phone(body.requester_fax, "requester_fax", false)?;

        let nationality =
            body.subject_nationality_kind.ok_or_else(|| BrokerError::missing("subject_nationality_kind"))?;
        let subject_name_zh = forms::optional(body.subject_name_zh, "subject_name_zh", 50, Lines::One)?;
        let subject_name_en = forms::optional(body.subject_name_en, "subject_name_en", 100, Lines::One)?;
        let today = business_date(now);
        if let Some(born) = body.subject_birth_date {
            let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
            if born > today || born < earliest {
                return Err(BrokerError::invalid("subject_birth_date", "not a plausible date of birth"));
            }
        }
        let national_id = identifier(body.subject_national_id, "subject_national_id", NationalId::parse)?;
        let passport_number =
            identifier(body.subject_passport_number, "subject_passport_number", PassportNumber::parse)?;
        let arc_number = identifier(body.subject_arc_number, "subject_arc_number", UiNumber::parse)?;
        if nationality == NationalityKind::Foreigner && national_id.is_some() {
            return Err(BrokerError::invalid(
                "subject_national_id",
                "a foreigner has no national ID: give the UI number (居留證號) or the passport number",
            )
            .rule("R-QRY-04"));
        }
        let resident_field = match nationality {
            NationalityKind::National => "subject_national_id",
            NationalityKind::Foreigner => "subject_arc_number",
        };
        if national_id.is_none() && passport_number.is_none() && arc_number.is_none() {
            return Err(BrokerError::NoSubjectIdentifier { field: resident_field });
        }
        if query_type.subject_kinds() == SubjectKinds::Resident && national_id.is_none() && arc_number.is_none() {
            return Err(BrokerError::invalid(
                resident_field,
                format!("{} needs a national ID or a UI number, not only a passport number", query_type.code()),
            )
            .rule("R-QRY-04"));
        }
        let subject_phone = forms::phone(body.subject_phone, "subject_phone", false)?;
        let reason = forms::required(body.reason, "reason", 500, Lines::Many)?;
        let attachments = parse_attachments(body.attachments)?;

        let faxed_at = match body.faxed_at {
            None => now,
            Some(at) if at > now + Duration::minutes(CLOCK_TOLERANCE_MINUTES) => {
                return Err(BrokerError::invalid("faxed_at", "cannot be in the future").rule(RULE));
            }
            Some(at) if at < now - Duration::days(MAX_FAX_AGE_DAYS) => {
                return Err(BrokerError::invalid(
                    "faxed_at",
                    format!("record a doubt query when it is faxed: at most {MAX_FAX_AGE_DAYS} days ago"),
                )
                .rule(RULE));
            }
            Some(at) => at.min(now),
        };
        let lookup_id = forms::optional(body.lookup_id, "lookup_id", 64, Lines::One)?;
        Ok(Self {
            query_type,
            legal_basis,
            purpose_code,
            case_number,
            requester_name,
            requester_title,
            requester_phone,
            requester_fax,
            nationality,
            subject_name_zh,
            subject_name_en,
            subject_sex: body.subject_sex,
            subject_birth_date: body.subject_birth_date,
            national_id,
            passport_number,
            arc_number,
            subject_phone,
            reason,
            attachments,
            faxed_at,
            lookup_id,
        })
    }

    /// R-QRY-02: the declared (legal basis, purpose, query type) must be among the caller's
    /// permissions (approved on the agency's active link and granted to the user), as for a lookup.
    pub fn authorise(&self, permissions: &[Permission]) -> Result<(), BrokerError> {
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

    /// The identifiers given, most specific first: (kind, id).
    fn identifiers(&self) -> Vec<(&'static str, &str)> {
        let mut ids = Vec::new();
        if let Some(id) = &self.national_id {
            ids.push(("national_id", id.as_str()));
        }
        if let Some(id) = &self.arc_number {
            ids.push(("ui_number", id.as_str()));
        }
        if let Some(id) = &self.passport_number {
            ids.push(("passport", id.as_str()));
        }
        ids
    }
}

fn parse_attachments(raw: Option<Vec<AttachmentBody>>) -> Result<Vec<Attachment>, BrokerError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_ATTACHMENTS {
        return Err(BrokerError::invalid("attachments", format!("at most {MAX_ATTACHMENTS} entries")));
    }
    let mut parsed: Vec<Attachment> = Vec::with_capacity(raw.len());
    for (i, item) in raw.into_iter().enumerate() {
        let kind = item.kind.ok_or_else(|| BrokerError::missing(format!("attachments[{i}].kind")))?;
        if kind != AttachmentKind::Other && parsed.iter().any(|a| a.kind == kind) {
            return Err(BrokerError::invalid(
                format!("attachments[{i}].kind"),
                "listed twice: give the total pages once",
            ));
        }
        let pages = item.pages.ok_or_else(|| BrokerError::missing(format!("attachments[{i}].pages")))?;
        if !(1..=MAX_PAGES).contains(&pages) {
            return Err(BrokerError::invalid(format!("attachments[{i}].pages"), format!("between 1 and {MAX_PAGES}")));
        }
        let field = format!("attachments[{i}].description");
        let description = match kind {
            AttachmentKind::Other => Some(forms::required(item.description, &field, 200, Lines::One)?),
            _ => forms::optional(item.description, &field, 200, Lines::One)?,
        };
        parsed.push(Attachment { kind, pages, description });
    }
    Ok(parsed)
}

/// The follow-up document is due on the third day after the Taipei business date of the fax.
pub fn due_on(faxed_at: DateTime<Utc>) -> NaiveDate {
    let fax_date = business_date(faxed_at);
    // Only fails at the end of the calendar (year 262143).
    fax_date.checked_add_days(Days::new(FOLLOW_UP_DAYS)).unwrap_or(fax_date)
}

/// Overdue: the Taipei business date at `now` is after the due date and no follow-up is recorded.
pub fn is_overdue(due_on: NaiveDate, followed_up: bool, now: DateTime<Utc>) -> bool {
    !followed_up && business_date(now) > due_on
}

/// The official follow-up document (補送公文) of a doubt query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FollowUpView {
    /// 文號.
    pub document_number: String,
    /// When the document was sent (Taipei date).
    pub sent_on: NaiveDate,
    /// Sent after the due date.
    pub late: bool,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// A filed doubt query with its follow-up state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DoubtQueryView {
    pub id: String,
    /// 查詢機關 (agency code).
    pub agency: String,
    pub filed_by: String,
    pub filer_unit: Option<String>,
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    /// The supervisor approval it was filed under (R-QRY-10), for purposes that need one.
    pub purpose_approval_id: Option<String>,
    pub requester_name: String,
    pub requester_title: String,
    pub requester_phone: String,
    pub requester_fax: Option<String>,
    pub subject_nationality_kind: NationalityKind,
    pub subject_name_zh: Option<String>,
    pub subject_name_en: Option<String>,
    pub subject_sex: Option<Sex>,
    pub subject_birth_date: Option<NaiveDate>,
    pub subject_national_id: Option<String>,
    pub subject_passport_number: Option<String>,
    pub subject_arc_number: Option<String>,
    pub subject_phone: Option<String>,
    pub reason: String,
    pub attachments: Vec<Attachment>,
    /// 附件共 … 頁.
    pub attachment_pages: i64,
    /// 受理查詢單位, from the subject's nationality.
    pub receiving_unit: ReceivingUnit,
    pub faxed_at: DateTime<Utc>,
    /// Taipei business date of the fax (查詢日期).
    pub fax_date: NaiveDate,
    /// The follow-up document is due by the end of this Taipei date.
    pub due_on: NaiveDate,
    pub lookup_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub follow_up: Option<FollowUpView>,
    /// Past the due date without a recorded follow-up, at the time of the answer.
    pub overdue: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dq)]
struct Row {
    id: String,
    agency: String,
    filed_by: String,
    filer_unit: Option<String>,
    query_type: String,
    legal_basis: String,
    purpose_code: String,
    case_number: String,
    purpose_approval_id: Option<String>,
    requester_name: String,
    requester_title: String,
    requester_phone: String,
    requester_fax: Option<String>,
    subject_nationality_kind: String,
    subject_name_zh: Option<String>,
    subject_name_en: Option<String>,
    subject_sex: Option<String>,
    subject_birth_date: Option<NaiveDate>,
    subject_national_id: Option<String>,
    subject_passport_number: Option<String>,
    subject_arc_number: Option<String>,
    subject_phone: Option<String>,
    reason: String,
    attachments: String,
    receiving_unit: String,
    faxed_at: NaiveDateTime,
    due_on: NaiveDate,
    lookup_id: Option<String>,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fu)]
struct FollowUpRow {
    doubt_query_id: String,
    document_number: String,
    sent_on: NaiveDate,
    late: bool,
    recorded_at: NaiveDateTime,
    recorded_by: String,
}

fn corrupt(id: &str, what: &str) -> BrokerError {
    BrokerError::Internal(format!("doubt query {id}: stored {what} does not parse"))
}

impl Row {
    fn visible_to(&self, caller: &Caller) -> bool {
        self.agency == caller.agency && (self.filed_by == caller.user_id || caller.has_any(&OVERSEERS))
    }

    fn view(self, follow_up: Option<FollowUpRow>, now: DateTime<Utc>) -> Result<DoubtQueryView, BrokerError> {
        let id = self.id.clone();
        let query_type = QueryType::parse(&self.query_type).ok_or_else(|| corrupt(&id, "query type"))?;
        let nationality =
            NationalityKind::parse(&self.subject_nationality_kind).ok_or_else(|| corrupt(&id, "nationality"))?;
        let receiving_unit =
            ReceivingUnit::parse(&self.receiving_unit).ok_or_else(|| corrupt(&id, "receiving unit"))?;
        let subject_sex =
            self.subject_sex.as_deref().map(|s| Sex::parse(s).ok_or_else(|| corrupt(&id, "sex"))).transpose()?;
        let attachments: Vec<Attachment> =
            serde_json::from_str(&self.attachments).map_err(|_| corrupt(&id, "attachments"))?;
        let faxed_at = from_db(self.faxed_at);
        Ok(DoubtQueryView {
            overdue: is_overdue(self.due_on, follow_up.is_some(), now),
            follow_up: follow_up.map(|f| FollowUpView {
                document_number: f.document_number,
                sent_on: f.sent_on,
                late: f.late,
                recorded_at: from_db(f.recorded_at),
                recorded_by: f.recorded_by,
            }),
            attachment_pages: attachments.iter().map(|a| a.pages).sum(),
            attachments,
            query_type,
            subject_nationality_kind: nationality,
            subject_sex,
            receiving_unit,
            faxed_at,
            fax_date: business_date(faxed_at),
            due_on: self.due_on,
            created_at: from_db(self.created_at),
            id: self.id,
            agency: self.agency,
            filed_by: self.filed_by,
            filer_unit: self.filer_unit,
            legal_basis: self.legal_basis,
            purpose_code: self.purpose_code,
            case_number: self.case_number,
            purpose_approval_id: self.purpose_approval_id,
            requester_name: self.requester_name,
            requester_title: self.requester_title,
            requester_phone: self.requester_phone,
            requester_fax: self.requester_fax,
            subject_name_zh: self.subject_name_zh,
            subject_name_en: self.subject_name_en,
            subject_birth_date: self.subject_birth_date,
            subject_national_id: self.subject_national_id,
            subject_passport_number: self.subject_passport_number,
            subject_arc_number: self.subject_arc_number,
            subject_phone: self.subject_phone,
            reason: self.reason,
            lookup_id: self.lookup_id,
        })
    }
}

fn find(conn: &mut DbConn, id: &str) -> Result<Option<Row>, BrokerError> {
    Ok(dq::table.filter(dq::id.eq(id)).select(Row::as_select()).first(conn).optional()?)
}

fn follow_up_of(conn: &mut DbConn, id: &str) -> Result<Option<FollowUpRow>, BrokerError> {
    Ok(fu::table.filter(fu::doubt_query_id.eq(id)).select(FollowUpRow::as_select()).first(conn).optional()?)
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the doubt query")
}

/// Records a doubt query the caller faxed, with its `doubt_query.filed` audit event naming the
/// subject, in one transaction. The caller's permission (R-QRY-02) is checked before, with
/// [`NewDoubtQuery::authorise`]; here, a purpose that needs a supervisor's approval needs one in force
/// (R-QRY-10), and a named lookup must be one of the caller's.
pub fn file(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewDoubtQuery,
) -> Result<DoubtQueryView, BrokerError> {
    let id = forms::new_id();
    let identifiers = new.identifiers();
    let primary = identifiers.first().map(|(_, id)| (*id).to_owned());
    let due = due_on(new.faxed_at);
    let receiving_unit = new.nationality.receiving_unit();
    let attachments = serde_json::to_string(&new.attachments).map_err(|err| BrokerError::Internal(err.to_string()))?;
    conn.write_transaction(|conn| {
        let purpose_approval_id = if approvals::requires_approval(&new.purpose_code) {
            Some(approvals::approval_for(
                conn,
                now,
                &caller.user_id,
                &caller.agency,
                &new.case_number,
                &new.purpose_code,
            )?)
        } else {
            None
        };
        if let Some(lookup_id) = &new.lookup_id {
            let own: i64 = lookups::table
                .filter(lookups::id.eq(lookup_id))
                .filter(lookups::user_id.eq(&caller.user_id))
                .filter(lookups::agency.eq(&caller.agency))
                .count()
                .get_result(conn)?;
            if own == 0 {
                return Err(BrokerError::invalid("lookup_id", "no lookup of yours has this id"));
            }
        }
        let row = Row {
            id: id.clone(),
            agency: caller.agency.clone(),
            filed_by: caller.user_id.clone(),
            filer_unit: caller.unit.clone(),
            query_type: new.query_type.code().to_owned(),
            legal_basis: new.legal_basis.clone(),
            purpose_code: new.purpose_code.clone(),
            case_number: new.case_number.clone(),
            purpose_approval_id: purpose_approval_id.clone(),
            requester_name: new.requester_name.clone(),
            requester_title: new.requester_title.clone(),
            requester_phone: new.requester_phone.clone(),
            requester_fax: new.requester_fax.clone(),
            subject_nationality_kind: new.nationality.code().to_owned(),
            subject_name_zh: new.subject_name_zh.clone(),
            subject_name_en: new.subject_name_en.clone(),
            subject_sex: new.subject_sex.map(|s| s.code().to_owned()),
            subject_birth_date: new.subject_birth_date,
            subject_national_id: new.national_id.as_ref().map(|id| id.as_str().to_owned()),
            subject_passport_number: new.passport_number.as_ref().map(|id| id.as_str().to_owned()),
            subject_arc_number: new.arc_number.as_ref().map(|id| id.as_str().to_owned()),
            subject_phone: new.subject_phone.clone(),
            reason: new.reason.clone(),
            attachments: attachments.clone(),
            receiving_unit: receiving_unit.code().to_owned(),
            faxed_at: to_db(new.faxed_at),
            due_on: due,
            lookup_id: new.lookup_id.clone(),
            created_at: to_db(now),
        };
        diesel::insert_into(dq::table).values(&row).execute(conn)?;
        let event = forms::event(
            kind::DOUBT_QUERY_FILED,
            now,
            caller,
            &id,
            primary.clone(),
            json!({
                "query_type": new.query_type.code(),
                "legal_basis": new.legal_basis,
                "purpose_code": new.purpose_code,
                "case_number": new.case_number,
                "purpose_approval_id": purpose_approval_id,
                "subject_nationality_kind": new.nationality.code(),
                "subject_identifiers": identifiers
                    .iter()
                    .map(|(kind, id)| json!({"kind": kind, "id": id}))
                    .collect::<Vec<_>>(),
                "reason": new.reason,
                "receiving_unit": receiving_unit.code(),
                "faxed_at": new.faxed_at,
                "due_on": due,
                "lookup_id": new.lookup_id,
                "session_id": caller.session_id,
            }),
        );
        outbox::enqueue(conn, now, &event)
    })?;
    get(conn, now, caller, &id)
}

/// `GET /v1/doubt-queries` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoubtFilter {
    /// `true`: only those past their due date without a follow-up; `false`: only the others.
    pub overdue: Option<bool>,
    /// At most this many (1–500, default 100), newest first.
    pub limit: Option<i64>,
    /// Only those older than the one with this id (paging).
    pub before: Option<String>,
}

/// The caller's own doubt queries; unit supervisors, account managers and auditors see their
/// agency's.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &DoubtFilter,
) -> Result<Vec<DoubtQueryView>, BrokerError> {
    let mut query = dq::table.filter(dq::agency.eq(caller.agency.clone())).select(Row::as_select()).into_boxed();
    if !caller.has_any(&OVERSEERS) {
        query = query.filter(dq::filed_by.eq(caller.user_id.clone()));
    }
    let today = business_date(now);
    let followed_up = fu::table.select(fu::doubt_query_id);
    query = match filter.overdue {
        None => query,
        Some(true) => query.filter(dq::due_on.lt(today)).filter(dq::id.ne_all(followed_up)),
        Some(false) => query.filter(dq::due_on.ge(today).or(dq::id.eq_any(followed_up))),
    };
    if let Some(before) = &filter.before {
        query = query.filter(dq::id.lt(before.clone()));
    }
    let rows: Vec<Row> = query.order(dq::id.desc()).limit(forms::page_size(filter.limit)).load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut follow_ups: std::collections::HashMap<String, FollowUpRow> = fu::table
        .filter(fu::doubt_query_id.eq_any(&ids))
        .select(FollowUpRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|f| (f.doubt_query_id.clone(), f))
        .collect();
    rows.into_iter()
        .map(|row| {
            let follow_up = follow_ups.remove(&row.id);
            row.view(follow_up, now)
        })
        .collect()
}

/// One doubt query: for its filer, and the unit supervisors, account managers and auditors of its
/// agency; 404 for anyone else.
pub fn get(conn: &mut DbConn, now: DateTime<Utc>, caller: &Caller, id: &str) -> Result<DoubtQueryView, BrokerError> {
    let row = find(conn, id)?.filter(|row| row.visible_to(caller)).ok_or_else(not_found)?;
    let follow_up = follow_up_of(conn, id)?;
    row.view(follow_up, now)
}

/// The official document sent after the fax.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"document_number": "北市社助字第1153012345號", "sent_on": "2026-11-25"}))]
pub struct FollowUpBody {
    /// 文號 of the official document.
    #[schema(required = true, nullable = false)]
    pub document_number: Option<String>,
    /// When it was sent (Taipei date): not before the fax date, not in the future.
    #[schema(required = true, nullable = false)]
    pub sent_on: Option<NaiveDate>,
}

/// Records the follow-up document of a doubt query: by its filer or a unit supervisor of the filer's
/// unit, once. A document sent after the due date is recorded as late.
pub fn record_follow_up(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    body: FollowUpBody,
) -> Result<DoubtQueryView, BrokerError> {
    let document_number =
        forms::required(body.document_number, "document_number", 64, Lines::One).map_err(|err| err.or_rule(RULE))?;
    let sent_on = body.sent_on.ok_or_else(|| BrokerError::missing("sent_on").rule(RULE))?;
    let today = business_date(now);
    conn.write_transaction(|conn| {
        let row = find(conn, id)?.filter(|row| row.visible_to(caller)).ok_or_else(not_found)?;
        let by_filer = row.filed_by == caller.user_id;
        if !by_filer && !caller.is_in_unit_as(roles::UNIT_SUPERVISOR, row.filer_unit.as_deref()) {
            return Err(BrokerError::NotFiler);
        }
        if follow_up_of(conn, id)?.is_some() {
            return Err(BrokerError::FollowUpAlreadyRecorded);
        }
        let fax_date = business_date(from_db(row.faxed_at));
        if sent_on < fax_date {
            return Err(BrokerError::invalid("sent_on", format!("cannot be before the fax date {fax_date}")).rule(RULE));
        }
        if sent_on > today {
            return Err(BrokerError::invalid("sent_on", "cannot be in the future").rule(RULE));
        }
        let late = sent_on > row.due_on;
        let inserted = diesel::insert_into(fu::table)
            .values((
                fu::doubt_query_id.eq(id),
                fu::document_number.eq(&document_number),
                fu::sent_on.eq(sent_on),
                fu::late.eq(late),
                fu::recorded_at.eq(to_db(now)),
                fu::recorded_by.eq(&caller.user_id),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            Err(err) if forms::is_unique_violation(&err) => return Err(BrokerError::FollowUpAlreadyRecorded),
            Err(err) => return Err(err.into()),
        }
        let event = forms::event(
            kind::DOUBT_QUERY_FOLLOWED_UP,
            now,
            caller,
            id,
            None,
            json!({
                "document_number": document_number,
                "sent_on": sent_on,
                "due_on": row.due_on,
                "late": late,
                "filed_by": row.filed_by,
                "case_number": row.case_number,
            }),
        );
        outbox::enqueue(conn, now, &event)
    })?;
    get(conn, now, caller, id)
}

/// The printable form of a doubt query the caller may read.
pub fn form(conn: &mut DbConn, now: DateTime<Utc>, caller: &Caller, id: &str) -> Result<String, BrokerError> {
    get(conn, now, caller, id).map(|view| render_form(&view))
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Escaped multi-line text: line breaks become `<br>`.
fn esc_lines(text: &str) -> String {
    text.lines().map(esc).collect::<Vec<_>>().join("<br>")
}

fn opt(value: &Option<String>) -> String {
    value.as_deref().map(esc).unwrap_or_default()
}

/// A date as ROC reports show it: 民國115年11月23日.
pub fn roc_date(date: NaiveDate) -> String {
    format!("民國{}年{}月{}日", roc_year(date.year()), date.month(), date.day())
}

fn check(marked: bool) -> &'static str {
    if marked {
        "■"
    } else {
        "□"
    }
}

const FORM_STYLE: &str = r#"
body { font-family: "Noto Serif CJK TC", "Noto Serif TC", "PMingLiU", "MingLiU", serif; color: #000;
       background: #fff; max-width: 186mm; margin: 1.5em auto; font-size: 11pt; line-height: 1.5; }
h1 { font-size: 16pt; text-align: center; margin: 0; letter-spacing: .05em; }
.edition { text-align: right; font-size: 9pt; margin: 0 0 .4em; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
td, th { border: 1px solid #000; padding: 4px 6px; vertical-align: top; text-align: left; }
.pair { display: grid; grid-template-columns: 1fr 1fr; column-gap: 1.5em; }
.value { font-weight: bold; }
.stamp { height: 5.5em; }
.reply { height: 5em; }
.notes ol { margin: .2em 0 0 1.4em; padding: 0; }
.contacts { margin-top: .8em; font-size: 9.5pt; }
.contacts th { text-align: center; }
.contacts caption { font-weight: bold; letter-spacing: 1em; padding: .3em; }
.remarks { font-size: 9.5pt; margin: .5em 0; }
.due { border: 2px solid #000; padding: .4em .6em; margin-top: .8em; font-weight: bold; }
.record { font-size: 8.5pt; color: #333; margin-top: .4em; }
@media print {
  @page { size: A4 portrait; margin: 12mm; }
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  tr, .due { page-break-inside: avoid; }
}
"#;

/// 附件二 with the recorded values, in Traditional Chinese, self-contained (no external resources).
/// Every recorded value is escaped.
pub fn render_form(view: &DoubtQueryView) -> String {
    let national = view.subject_nationality_kind == NationalityKind::National;
    let basis =
        catalogue::legal_basis(&view.legal_basis).map(|b| b.name_zh).unwrap_or_else(|| view.legal_basis.clone());
    let purpose =
        catalogue::purpose(&view.purpose_code).map(|p| p.name_zh).unwrap_or_else(|| view.purpose_code.clone());
    let attachment_lines: String = AttachmentKind::ALL
        .into_iter()
        .map(|kind| {
            let listed: Vec<&Attachment> = view.attachments.iter().filter(|a| a.kind == kind).collect();
            let pages: i64 = listed.iter().map(|a| a.pages).sum();
            let mark = if listed.is_empty() { "　".to_owned() } else { format!("✓ {pages}頁") };
            let descriptions: Vec<String> = listed.iter().filter_map(|a| a.description.as_deref()).map(esc).collect();
            let described = if descriptions.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"value\">{}</span>", descriptions.join("；"))
            };
            format!("<div>（{mark}）{}{described}</div>\n", kind.label_zh())
        })
        .collect();
    let follow_up = match &view.follow_up {
        Some(f) => format!(
            "已補送公文：文號 {}，{}寄出{}。",
            esc(&f.document_number),
            roc_date(f.sent_on),
            if f.late { "（逾期）" } else { "" }
        ),
        None if view.overdue => "尚未補送公文（已逾期）。".to_owned(),
        None => "尚未補送公文。".to_owned(),
    };
    let faxed_at = view.faxed_at.with_timezone(&taipei()).format("%H:%M");
    let receiving = |unit: ReceivingUnit| format!("{} {}", check(view.receiving_unit == unit), unit.name_zh());
    format!(
        r#"<!DOCTYPE html>
<html lang="zh-Hant-TW">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>內政部移民署 國人/外國人入出境紀錄疑義查詢表 {case}</title>
<style>{FORM_STYLE}</style>
</head>
<body>
<h1>內政部移民署 {national_mark}國人 {foreigner_mark}外國人 入出境紀錄疑義查詢表</h1>
<p class="edition">(105年1月版)</p>
<table>
<tr><td colspan="2"><div class="pair">
<div>查詢機關：<span class="value">{agency}</span></div><div>查詢日期：<span class="value">{fax_date}</span></div>
<div>姓名：<span class="value">{requester_name}</span></div><div>職　　稱：<span class="value">{requester_title}</span></div>
<div>聯絡電話：<span class="value">{requester_phone}</span></div><div>傳真電話：<span class="value">{requester_fax}</span></div>
</div></td></tr>
<tr><td colspan="2">查詢對象：<span class="value">{national_mark}國人 {foreigner_mark}外國人</span><div class="pair">
<div>中文姓名：<span class="value">{name_zh}</span></div><div>性　　別：<span class="value">{sex}</span></div>
<div>英文姓名：<span class="value">{name_en}</span></div><div>出生日期：<span class="value">{birth_date}</span></div>
<div>國民身分證統一編號：<span class="value">{national_id}</span></div><div>護照號碼：<span class="value">{passport}</span></div>
<div>外國人居留證號：<span class="value">{arc}</span></div><div>聯絡電話：<span class="value">{subject_phone}</span></div>
</div></td></tr>
<tr><td colspan="2">查詢事由：<span class="value">{reason}</span>
<div>案號：<span class="value">{case}</span>　法令依據：{basis}　查詢目的：{purpose}　查詢項目：{query_type}</div></td></tr>
<tr><td colspan="2">附件共 <span class="value">{pages}</span> 頁：
{attachment_lines}<div>＊以上附件請加蓋與正本無誤章</div></td></tr>
<tr><td>機關（單位）章<div class="stamp"></div></td><td>單位主管及承辦人章<div class="stamp"></div></td></tr>
<tr><td colspan="2">受理查詢單位：<span class="value">{border_corps}　{info_division}</span></td></tr>
<tr><td colspan="2">受理查詢單位回覆：<div class="reply"></div></td></tr>
<tr><td colspan="2" class="notes">說明：<ol>
<li>本表限已申請移民署線上應用服務系統權限使用。</li>
<li>查詢內容限以國人或外國人出入境資料有關者。</li>
<li>請加蓋機關單位、單位主管及承辦人職名章。</li>
<li>本項查詢僅供各機關內部公務參考，不作他項證明使用。</li>
</ol></td></tr>
</table>
<table class="contacts">
<caption>入出境紀錄疑義</caption>
<tr><th>國人查詢電話</th><th>外國人查詢電話</th></tr>
<tr><td>移民資訊組（資訊處理科）<br>傳真：（02）23149288<br>電話：（02）23889393<br>分機：2231、2232</td>
<td>國境事務大隊（桃園國際機場）<br>傳真：（03）3931973<br>電話：（03）3985010</td></tr>
<tr><td>移民資訊組（客服中心）<br>傳真：（02）23886862<br>電話：（02）23889393<br>分機：3274、2436、2439</td>
<td>國境事務大隊（高雄國際機場）<br>傳真：（07）8026016<br>電話：（07）8017311<br>＊（台中以南）</td></tr>
</table>
<div class="remarks">備註：<ol>
<li>有關國人入出境紀錄疑義，請查詢機關傳真移民資訊組（資訊處理科）辦理。</li>
<li>有關外國人入出境紀錄疑義，請查詢機關傳真至本署國境事務大隊辦理，查復結果請查詢單位逕行於e政府平臺線上查詢。</li>
<li>經使用自動通關之旅客，如因電子共通平臺系統異常，請查詢機關傳真移民資訊組辦理。</li>
</ol></div>
<p class="due">應於 {due_on} 前補送公文（傳真後翌日起三日內補送公文備查）</p>
<p class="record">immilink 紀錄編號：{id}；傳真時間：{fax_date} {faxed_at}（臺北時間）；{follow_up}</p>
</body>
</html>
"#,
        case = esc(&view.case_number),
        national_mark = check(national),
        foreigner_mark = check(!national),
        agency = esc(&view.agency),
        fax_date = roc_date(view.fax_date),
        requester_name = esc(&view.requester_name),
        requester_title = esc(&view.requester_title),
        requester_phone = esc(&view.requester_phone),
        requester_fax = opt(&view.requester_fax),
        name_zh = opt(&view.subject_name_zh),
        sex = view.subject_sex.map(Sex::name_zh).unwrap_or_default(),
        name_en = opt(&view.subject_name_en),
        birth_date = view.subject_birth_date.map(roc_date).unwrap_or_default(),
        national_id = opt(&view.subject_national_id),
        passport = opt(&view.subject_passport_number),
        arc = opt(&view.subject_arc_number),
        subject_phone = opt(&view.subject_phone),
        reason = esc_lines(&view.reason),
        basis = esc(&basis),
        purpose = esc(&purpose),
        query_type = esc(view.query_type.name_zh()),
        pages = view.attachment_pages,
        border_corps = receiving(ReceivingUnit::BorderAffairsCorps),
        info_division = receiving(ReceivingUnit::ImmigrationInformationDivision),
        due_on = roc_date(view.due_on),
        id = esc(&view.id),
    )
}

#[cfg(test)]
mod tests {
    use immilink_shared::ApiError;

    use super::*;
    use crate::domain::approvals::{self, DecisionBody, NewPurposeApproval, ParsedDecision, PurposeApprovalBody};
    use crate::domain::forms::testkit::{caller, conn, t0, TestConn};
    use chrono::TimeZone;
    use immilink_shared::clock::{Clock, ManualClock};
    use immilink_shared::testing::TestDb;

    const FILER: &str = "01930000-0000-7000-8000-0000000000f1";
    const BOSS: &str = "01930000-0000-7000-8000-0000000000b1";
    const COLLEAGUE: &str = "01930000-0000-7000-8000-0000000000c1";

    fn filer() -> Caller {
        caller(FILER, "TPE-SW", Some("unit-a"), &["caseworker"])
    }

    fn boss() -> Caller {
        caller(BOSS, "TPE-SW", Some("unit-a"), &["unit_supervisor"])
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("a valid instant")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    fn body() -> DoubtQueryBody {
        DoubtQueryBody {
            query_type: Some("entry_exit_last_year".into()),
            legal_basis: Some("social_assistance_act".into()),
            purpose_code: Some("sw_statutory_business".into()),
            case_number: Some("TPE-2026-7".into()),
            requester_name: Some("王小明".into()),
            requester_title: Some("社會工作員".into()),
            requester_phone: Some("(02)2720-8889 分機 1234".into()),
            requester_fax: Some("(02)2720-6552".into()),
            subject_nationality_kind: Some(NationalityKind::National),
            subject_name_zh: Some("陳怡君".into()),
            subject_sex: Some(Sex::F),
            subject_birth_date: Some(date(1980, 1, 2)),
            subject_national_id: Some("a123456789".into()),
            reason: Some("低收入戶資格審查\n線上查詢系統異常".into()),
            attachments: Some(vec![AttachmentBody {
                kind: Some(AttachmentKind::EntryExitStampCopy),
                pages: Some(2),
                description: None,
            }]),
            ..DoubtQueryBody::default()
        }
    }

    fn filed(conn: &mut TestConn, body: DoubtQueryBody, now: DateTime<Utc>) -> DoubtQueryView {
        let new = NewDoubtQuery::parse(body, now).unwrap();
        file(conn, now, &filer(), &new).unwrap()
    }

    fn field_of(body: DoubtQueryBody) -> Option<String> {
        NewDoubtQuery::parse(body, t0()).map_err(ApiError::from).unwrap_err().field_name().map(str::to_owned)
    }

    #[test]
    fn r_qry_09_due_on_is_the_third_day_after_the_taipei_fax_date() {
        assert_eq!(due_on(utc(2026, 11, 23, 2, 0)), date(2026, 11, 26));
        // Faxed on 28 November in Taipei: due 1 December, across the month end.
        assert_eq!(due_on(utc(2026, 11, 28, 3, 0)), date(2026, 12, 1));
        // 2026-11-27T17:00Z is 28 November 01:00 in Taipei: the Taipei date counts, not UTC's.
        assert_eq!(due_on(utc(2026, 11, 27, 17, 0)), date(2026, 12, 1));
        // 27 November 23:59 in Taipei is still the 27th.
        assert_eq!(due_on(utc(2026, 11, 27, 15, 59)), date(2026, 11, 30));
        // Across the year end and a leap day.
        assert_eq!(due_on(utc(2026, 12, 30, 4, 0)), date(2027, 1, 2));
        assert_eq!(due_on(utc(2028, 2, 27, 4, 0)), date(2028, 3, 1));
    }

    #[test]
    fn r_qry_09_overdue_flips_after_the_due_date_in_taipei() {
        let due = date(2026, 12, 1);
        // 1 December 23:59 in Taipei: still on time.
        assert!(!is_overdue(due, false, utc(2026, 12, 1, 15, 59)));
        // 2 December 00:00 in Taipei (16:00Z on the 1st): overdue.
        assert!(is_overdue(due, false, utc(2026, 12, 1, 16, 0)));
        assert!(!is_overdue(due, true, utc(2026, 12, 31, 0, 0)), "a recorded follow-up is never overdue");
    }

    #[test]
    fn r_qry_01_the_declaration_is_required_and_known() {
        for field in ["legal_basis", "purpose_code", "case_number"] {
            let mut b = body();
            match field {
                "legal_basis" => b.legal_basis = None,
                "purpose_code" => b.purpose_code = Some(" ".into()),
                _ => b.case_number = None,
            }
            let err = NewDoubtQuery::parse(b, t0()).map_err(ApiError::from).unwrap_err();
            assert_eq!((err.status().as_u16(), err.field_name()), (422, Some(field)));
            assert_eq!(err.to_problem().rule.as_deref(), Some("R-QRY-01"));
        }
        let mut b = body();
        b.legal_basis = Some("made_up_act".into());
        assert_eq!(
            NewDoubtQuery::parse(b, t0()).map_err(ApiError::from).unwrap_err().to_problem().rule.as_deref(),
            Some("R-QRY-01")
        );
        let mut b = body();
        b.purpose_code = Some("curiosity".into());
        assert_eq!(field_of(b).as_deref(), Some("purpose_code"));
        let mut b = body();
        b.query_type = Some("eid_photo".into());
        assert_eq!(field_of(b).as_deref(), Some("query_type"), "the form is about entry/exit records");
        let mut b = body();
        b.query_type = None;
        assert_eq!(field_of(b).as_deref(), Some("query_type"));
    }

    #[test]
    fn r_qry_09_the_form_fields_are_checked_by_name() {
        type Edit = Box<dyn Fn(&mut DoubtQueryBody)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("requester_name", Box::new(|b| b.requester_name = None)),
            ("requester_title", Box::new(|b| b.requester_title = Some(" ".into()))),
            ("requester_phone", Box::new(|b| b.requester_phone = Some("call me".into()))),
            ("requester_fax", Box::new(|b| b.requester_fax = Some("123".into()))),
            ("subject_nationality_kind", Box::new(|b| b.subject_nationality_kind = None)),
            ("subject_national_id", Box::new(|b| b.subject_national_id = Some("A123456788".into()))),
            ("subject_passport_number", Box::new(|b| b.subject_passport_number = Some("ABCDEFG".into()))),
            ("subject_arc_number", Box::new(|b| b.subject_arc_number = Some("A800000015".into()))),
            ("subject_birth_date", Box::new(|b| b.subject_birth_date = Some(date(2027, 1, 1)))),
            ("subject_name_zh", Box::new(|b| b.subject_name_zh = Some("名".repeat(51)))),
            ("reason", Box::new(|b| b.reason = None)),
            ("faxed_at", Box::new(|b| b.faxed_at = Some(t0() + Duration::hours(1)))),
            ("faxed_at", Box::new(|b| b.faxed_at = Some(t0() - Duration::days(31)))),
            ("lookup_id", Box::new(|b| b.lookup_id = Some("x".repeat(65)))),
            (
                "attachments[0].pages",
                Box::new(|b| {
                    b.attachments = Some(vec![AttachmentBody {
                        kind: Some(AttachmentKind::PassportCopy),
                        pages: Some(0),
                        description: None,
                    }])
                }),
            ),
            (
                "attachments[0].description",
                Box::new(|b| {
                    b.attachments = Some(vec![AttachmentBody {
                        kind: Some(AttachmentKind::Other),
                        pages: Some(1),
                        description: None,
                    }])
                }),
            ),
            (
                "attachments[1].kind",
                Box::new(|b| {
                    let stamp = || AttachmentBody {
                        kind: Some(AttachmentKind::EntryExitStampCopy),
                        pages: Some(1),
                        description: None,
                    };
                    b.attachments = Some(vec![stamp(), stamp()])
                }),
            ),
            (
                "attachments[0].kind",
                Box::new(|b| {
                    b.attachments = Some(vec![AttachmentBody { kind: None, pages: Some(1), description: None }])
                }),
            ),
        ];
        for (field, edit) in cases {
            let mut b = body();
            edit(&mut b);
            let err = NewDoubtQuery::parse(b, t0()).map_err(ApiError::from).unwrap_err();
            assert_eq!((err.status().as_u16(), err.field_name()), (422, Some(field)), "{err}");
            assert!(err.to_problem().rule.is_some(), "{field} names a rule");
        }
    }

    #[test]
    fn r_qry_04_subject_identifiers_are_validated_and_at_least_one_is_given() {
        let mut b = body();
        b.subject_national_id = None;
        let err = NewDoubtQuery::parse(b, t0()).map_err(ApiError::from).unwrap_err();
        assert_eq!(
            (err.field_name(), err.to_problem().rule.as_deref()),
            (Some("subject_national_id"), Some("R-QRY-04"))
        );

        let mut b = body();
        b.subject_nationality_kind = Some(NationalityKind::Foreigner);
        let err = NewDoubtQuery::parse(b, t0()).map_err(ApiError::from).unwrap_err();
        assert_eq!(err.field_name(), Some("subject_national_id"), "a foreigner has no national ID");

        // A passport alone does not do for a query type that takes resident IDs only.
        let mut b = body();
        b.subject_national_id = None;
        b.subject_passport_number = Some("x1234567".into());
        assert_eq!(field_of(b).as_deref(), Some("subject_national_id"));
        let mut b = body();
        b.query_type = Some("traveler_history".into());
        b.subject_nationality_kind = Some(NationalityKind::Foreigner);
        b.subject_national_id = None;
        b.subject_passport_number = Some("x1234567".into());
        b.subject_arc_number = Some(" a800000014 ".into());
        let new = NewDoubtQuery::parse(b, t0()).unwrap();
        assert_eq!(new.passport_number.as_ref().map(PassportNumber::as_str), Some("X1234567"));
        assert_eq!(new.identifiers(), [("ui_number", "A800000014"), ("passport", "X1234567")]);
        assert_eq!(new.nationality.receiving_unit(), ReceivingUnit::BorderAffairsCorps);
    }

    #[test]
    fn r_qry_02_the_declaration_must_be_permitted() {
        let new = NewDoubtQuery::parse(body(), t0()).unwrap();
        let permission = |basis: &str, purpose: &str, query: &str| Permission {
            legal_basis: basis.into(),
            purpose_code: purpose.into(),
            query_type: query.into(),
        };
        assert!(new
            .authorise(&[permission("social_assistance_act", "sw_statutory_business", "entry_exit_last_year")])
            .is_ok());
        let split = [
            permission("social_assistance_act", "sw_statutory_business", "traveler_history"),
            permission("senior_welfare_act", "sw_statutory_business", "entry_exit_last_year"),
        ];
        let err = new.authorise(&split).map_err(ApiError::from).unwrap_err();
        assert_eq!((err.status().as_u16(), err.to_problem().rule.as_deref()), (403, Some("R-QRY-02")));
    }

    #[test]
    fn r_qry_09_filing_records_the_form_and_an_audit_event_naming_the_subject() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = filed(&mut conn, body(), t0());
        assert_eq!(view.subject_national_id.as_deref(), Some("A123456789"));
        assert_eq!(view.receiving_unit, ReceivingUnit::ImmigrationInformationDivision);
        assert_eq!((view.fax_date, view.due_on), (date(2026, 11, 23), date(2026, 11, 26)));
        assert_eq!((view.attachment_pages, view.overdue, view.follow_up.clone()), (2, false, None));
        assert_eq!(view.filer_unit.as_deref(), Some("unit-a"));

        let events = outbox::pending(&mut conn, 10).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.kind, kind::DOUBT_QUERY_FILED);
        assert_eq!(event.subject_id.as_deref(), Some("A123456789"));
        assert_eq!(event.actor_user_id.as_deref(), Some(FILER));
        assert_eq!(event.agency.as_deref(), Some("TPE-SW"));
        assert_eq!(event.correlation_id.as_deref(), Some(view.id.as_str()));
        assert_eq!(event.payload["legal_basis"], "social_assistance_act");
        assert_eq!(event.payload["purpose_code"], "sw_statutory_business");
        assert_eq!(event.payload["case_number"], "TPE-2026-7");
        assert_eq!(event.payload["subject_identifiers"][0]["id"], "A123456789");
        assert_eq!(event.payload["due_on"], "2026-11-26");
    }

    #[test]
    fn r_qry_09_faxed_after_taipei_midnight_counts_from_the_taipei_date() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let now = utc(2026, 11, 27, 17, 30);
        let mut b = body();
        b.faxed_at = Some(utc(2026, 11, 27, 17, 0));
        let view = filed(&mut conn, b, now);
        assert_eq!((view.fax_date, view.due_on), (date(2026, 11, 28), date(2026, 12, 1)));
    }

    #[test]
    fn r_qry_09_the_overdue_flag_flips_with_the_clock_and_the_filter_follows() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        // Faxed 28 November 2026, 11:00 in Taipei: due 1 December.
        let clock = ManualClock::starting_at(utc(2026, 11, 28, 3, 0));
        let late_one = filed(&mut conn, body(), clock.now());
        let answered = filed(&mut conn, body(), clock.now());
        let overdue = DoubtFilter { overdue: Some(true), ..DoubtFilter::default() };
        let not_overdue = DoubtFilter { overdue: Some(false), ..DoubtFilter::default() };
        let ids = |views: Vec<DoubtQueryView>| views.into_iter().map(|v| v.id).collect::<Vec<_>>();

        clock.set(utc(2026, 12, 1, 15, 59)); // 1 December 23:59 in Taipei
        assert!(!get(&mut conn, clock.now(), &filer(), &late_one.id).unwrap().overdue);
        assert!(list(&mut conn, clock.now(), &filer(), &overdue).unwrap().is_empty());
        let follow_up = FollowUpBody {
            document_number: Some("北市社助字第1153012345號".into()),
            sent_on: Some(date(2026, 12, 1)),
        };
        let recorded = record_follow_up(&mut conn, clock.now(), &filer(), &answered.id, follow_up).unwrap();
        assert_eq!(recorded.follow_up.as_ref().map(|f| f.late), Some(false));

        clock.advance(Duration::minutes(1)); // 2 December 00:00 in Taipei
        assert!(get(&mut conn, clock.now(), &filer(), &late_one.id).unwrap().overdue);
        assert!(!get(&mut conn, clock.now(), &filer(), &answered.id).unwrap().overdue);
        assert_eq!(ids(list(&mut conn, clock.now(), &filer(), &overdue).unwrap()), [late_one.id.as_str()]);
        assert_eq!(ids(list(&mut conn, clock.now(), &filer(), &not_overdue).unwrap()), [answered.id.as_str()]);
        let all = list(&mut conn, clock.now(), &filer(), &DoubtFilter::default()).unwrap();
        assert_eq!(
            all.iter().map(|v| (v.id.clone(), v.overdue)).collect::<Vec<_>>(),
            [(answered.id.clone(), false), (late_one.id.clone(), true)]
        );

        // A late document is recorded as late and ends the overdue state.
        clock.advance(Duration::days(2));
        let late = FollowUpBody {
            document_number: Some("北市社助字第1153099999號".into()),
            sent_on: Some(date(2026, 12, 3)),
        };
        let view = record_follow_up(&mut conn, clock.now(), &boss(), &late_one.id, late).unwrap();
        let follow_up = view.follow_up.expect("recorded");
        assert_eq!((follow_up.late, follow_up.recorded_by.as_str(), view.overdue), (true, BOSS, false));
        assert!(list(&mut conn, clock.now(), &filer(), &overdue).unwrap().is_empty());
        let kinds: Vec<String> = outbox::pending(&mut conn, 10).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| *k == kind::DOUBT_QUERY_FOLLOWED_UP).count(), 2);
    }

    #[test]
    fn r_qry_09_follow_ups_are_recorded_once_by_the_filer_or_their_supervisor() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = filed(&mut conn, body(), t0());
        let doc = |sent_on: Option<NaiveDate>| FollowUpBody {
            document_number: Some("北市社助字第1號".into()),
            sent_on,
        };
        let now = t0() + Duration::days(1);

        let colleague = caller(COLLEAGUE, "TPE-SW", Some("unit-a"), &["caseworker"]);
        assert_eq!(
            record_follow_up(&mut conn, now, &colleague, &view.id, doc(Some(date(2026, 11, 24))))
                .map_err(ApiError::from)
                .unwrap_err()
                .status(),
            404
        );
        let other_unit = caller(COLLEAGUE, "TPE-SW", Some("unit-b"), &["unit_supervisor"]);
        let err = record_follow_up(&mut conn, now, &other_unit, &view.id, doc(Some(date(2026, 11, 24))))
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!((err.status().as_u16(), err.code()), (403, "not_filer"));
        let auditor = caller(COLLEAGUE, "TPE-SW", None, &["auditor"]);
        assert_eq!(
            record_follow_up(&mut conn, now, &auditor, &view.id, doc(Some(date(2026, 11, 24))))
                .map_err(ApiError::from)
                .unwrap_err()
                .status(),
            403
        );
        let foreign = caller(COLLEAGUE, "HLN-HR", Some("unit-a"), &["unit_supervisor"]);
        assert_eq!(
            record_follow_up(&mut conn, now, &foreign, &view.id, doc(Some(date(2026, 11, 24))))
                .map_err(ApiError::from)
                .unwrap_err()
                .status(),
            404
        );

        let err = record_follow_up(&mut conn, now, &filer(), &view.id, doc(Some(date(2026, 11, 22))))
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!(err.field_name(), Some("sent_on"), "before the fax");
        let err = record_follow_up(&mut conn, now, &filer(), &view.id, doc(Some(date(2026, 11, 25))))
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!(err.field_name(), Some("sent_on"), "in the future");
        assert_eq!(
            record_follow_up(&mut conn, now, &filer(), &view.id, doc(None))
                .map_err(ApiError::from)
                .unwrap_err()
                .field_name(),
            Some("sent_on")
        );
        let nameless = FollowUpBody { document_number: None, sent_on: Some(date(2026, 11, 24)) };
        assert_eq!(
            record_follow_up(&mut conn, now, &filer(), &view.id, nameless)
                .map_err(ApiError::from)
                .unwrap_err()
                .field_name(),
            Some("document_number")
        );

        let done = record_follow_up(&mut conn, now, &filer(), &view.id, doc(Some(date(2026, 11, 23)))).unwrap();
        assert_eq!(done.follow_up.as_ref().map(|f| (f.sent_on, f.late)), Some((date(2026, 11, 23), false)));
        let again = record_follow_up(&mut conn, now, &boss(), &view.id, doc(Some(date(2026, 11, 24))))
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!((again.status().as_u16(), again.code()), (409, "follow_up_already_recorded"));
    }

    #[test]
    fn r_qry_09_lists_and_reads_are_scoped() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mine = filed(&mut conn, body(), t0());
        let colleague = caller(COLLEAGUE, "TPE-SW", Some("unit-b"), &["caseworker"]);
        let theirs = file(&mut conn, t0(), &colleague, &NewDoubtQuery::parse(body(), t0()).unwrap()).unwrap();
        let all = DoubtFilter::default();
        let ids = |views: Vec<DoubtQueryView>| views.into_iter().map(|v| v.id).collect::<Vec<_>>();

        assert_eq!(ids(list(&mut conn, t0(), &filer(), &all).unwrap()), [mine.id.as_str()]);
        assert_eq!(ids(list(&mut conn, t0(), &colleague, &all).unwrap()), [theirs.id.as_str()]);
        for overseer in ["unit_supervisor", "account_manager", "auditor"] {
            let who = caller(BOSS, "TPE-SW", Some("unit-c"), &[overseer]);
            assert_eq!(
                ids(list(&mut conn, t0(), &who, &all).unwrap()),
                [theirs.id.clone(), mine.id.clone()],
                "{overseer}"
            );
            assert!(get(&mut conn, t0(), &who, &mine.id).is_ok());
        }
        let foreign = caller(BOSS, "HLN-HR", None, &["auditor"]);
        assert!(list(&mut conn, t0(), &foreign, &all).unwrap().is_empty());
        assert_eq!(get(&mut conn, t0(), &foreign, &mine.id).map_err(ApiError::from).unwrap_err().status(), 404);
        assert_eq!(get(&mut conn, t0(), &colleague, &mine.id).map_err(ApiError::from).unwrap_err().status(), 404);
        assert_eq!(form(&mut conn, t0(), &colleague, &mine.id).map_err(ApiError::from).unwrap_err().status(), 404);
        let page = DoubtFilter { limit: Some(1), before: Some(theirs.id.clone()), ..DoubtFilter::default() };
        assert_eq!(ids(list(&mut conn, t0(), &foreign_free_auditor(), &page).unwrap()), [mine.id.as_str()]);
    }

    fn foreign_free_auditor() -> Caller {
        caller(BOSS, "TPE-SW", None, &["auditor"])
    }

    #[test]
    fn r_qry_10_other_business_needs_an_approval_in_force_to_file() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let worker = caller(FILER, "HLN-HR", Some("unit-a"), &["caseworker"]);
        let mut b = body();
        b.legal_basis = Some("household_registration_act".into());
        b.purpose_code = Some("hr_other_approved".into());
        let new = NewDoubtQuery::parse(b, t0()).unwrap();
        let err = file(&mut conn, t0(), &worker, &new).map_err(ApiError::from).unwrap_err();
        assert_eq!((err.code(), err.field_name()), ("supervisor_approval_required", Some("purpose_code")));
        assert!(outbox::pending(&mut conn, 10).unwrap().is_empty(), "nothing recorded");

        let asked = approvals::request(
            &mut conn,
            t0(),
            &worker,
            &NewPurposeApproval::parse(PurposeApprovalBody {
                purpose_code: Some("hr_other_approved".into()),
                case_number: Some("TPE-2026-7".into()),
                business_description: Some("戶籍登記疑義".into()),
            })
            .unwrap(),
        )
        .unwrap();
        let supervisor = caller(BOSS, "HLN-HR", Some("unit-a"), &["unit_supervisor"]);
        let approve = ParsedDecision::parse(
            DecisionBody { decision: Some(approvals::Decision::Approved), reason: None, valid_until: None },
            t0(),
        )
        .unwrap();
        approvals::decide(&mut conn, t0(), &supervisor, &asked.id, &approve).unwrap();
        let view = file(&mut conn, t0(), &worker, &new).unwrap();
        assert_eq!(view.purpose_approval_id.as_deref(), Some(asked.id.as_str()));
    }

    #[test]
    fn r_qry_09_a_named_lookup_must_be_the_callers_own() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mut b = body();
        b.lookup_id = Some("01930000-0000-7000-8000-00000000dead".into());
        let new = NewDoubtQuery::parse(b, t0()).unwrap();
        let err = file(&mut conn, t0(), &filer(), &new).map_err(ApiError::from).unwrap_err();
        assert_eq!((err.status().as_u16(), err.field_name()), (422, Some("lookup_id")));
        let count: i64 = dq::table.count().get_result(&mut *conn).unwrap();
        assert_eq!(count, 0, "no partial write");
    }

    #[test]
    fn r_qry_09_what_was_filed_cannot_be_edited_in_the_database() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = filed(&mut conn, body(), t0());
        let edited = diesel::update(dq::table.filter(dq::id.eq(&view.id)))
            .set(dq::due_on.eq(date(2027, 1, 1)))
            .execute(&mut *conn);
        assert!(edited.is_err(), "the due date cannot be moved");
        let doc =
            FollowUpBody { document_number: Some("北市社助字第1號".into()), sent_on: Some(date(2026, 11, 23)) };
        record_follow_up(&mut conn, t0(), &filer(), &view.id, doc).unwrap();
        let rewritten = diesel::update(fu::table.filter(fu::doubt_query_id.eq(&view.id)))
            .set(fu::late.eq(false))
            .execute(&mut *conn);
        assert!(rewritten.is_err(), "the follow-up is recorded once");
    }

    #[test]
    fn r_qry_09_the_printable_form_reproduces_attachment_two_and_escapes_values() {
        let mut b = body();
        b.requester_name = Some("<script>alert('x')</script>".into());
        b.reason = Some("事由 & \"引號\"\n第二行".into());
        b.attachments = Some(vec![
            AttachmentBody { kind: Some(AttachmentKind::PassportCopy), pages: Some(1), description: None },
            AttachmentBody {
                kind: Some(AttachmentKind::Other),
                pages: Some(3),
                description: Some("<b>戶籍謄本</b>".into()),
            },
        ]);
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = filed(&mut conn, b, utc(2026, 11, 23, 2, 0));
        let html = form(&mut conn, t0(), &filer(), &view.id).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("內政部移民署 ■國人 □外國人 入出境紀錄疑義查詢表"));
        assert!(html.contains("查詢機關：<span class=\"value\">TPE-SW</span>"));
        assert!(html.contains("查詢日期：<span class=\"value\">民國115年11月23日</span>"));
        assert!(html.contains("出生日期：<span class=\"value\">民國69年1月2日</span>"));
        assert!(html.contains("國民身分證統一編號：<span class=\"value\">A123456789</span>"));
        assert!(html.contains("附件共 <span class=\"value\">4</span> 頁"));
        assert!(html.contains("（✓ 1頁）1.查詢對象護照基本資料頁影本"));
        assert!(html.contains("（✓ 3頁）4.其他相關佐證資料。 <span class=\"value\">&lt;b&gt;戶籍謄本&lt;/b&gt;</span>"));
        assert!(html.contains("□ 國境事務大隊　■ 移民資訊組"));
        assert!(html.contains("本項查詢僅供各機關內部公務參考，不作他項證明使用。"));
        assert!(html.contains("應於 民國115年11月26日 前補送公文"));
        assert!(html.contains("@media print"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("事由 &amp; &quot;引號&quot;<br>第二行"));
        assert!(!html.contains("<script"), "no recorded value is markup");
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="), "self-contained");
    }

    #[test]
    fn r_qry_09_foreigners_go_to_the_border_affairs_corps() {
        let mut b = body();
        b.query_type = Some("foreign_resident_entry_exit".into());
        b.subject_nationality_kind = Some(NationalityKind::Foreigner);
        b.subject_national_id = None;
        b.subject_arc_number = Some("A800000014".into());
        b.subject_name_en = Some("NGUYEN VAN A".into());
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = filed(&mut conn, b, t0());
        assert_eq!(view.receiving_unit, ReceivingUnit::BorderAffairsCorps);
        let html = render_form(&view);
        assert!(html.contains("內政部移民署 □國人 ■外國人 入出境紀錄疑義查詢表"));
        assert!(html.contains("■ 國境事務大隊　□ 移民資訊組"));
        assert!(html.contains("外國人居留證號：<span class=\"value\">A800000014</span>"));
        let event = outbox::pending(&mut conn, 1).unwrap().remove(0);
        assert_eq!(event.subject_id.as_deref(), Some("A800000014"));
    }
}
