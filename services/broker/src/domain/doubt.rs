//! Doubt queries (國人/外國人入出境紀錄疑義查詢表, seed 002 附件二; R-QRY-09). When the immigration
//! agency's query service does not answer and the data is needed at once, the caseworker faxes this
//! form to the agency (002 pt 10) and must send the official document (公文) 「於傳真後翌日起三日內」:
//! faxed on Taipei business date D, the document is due on D+3; after that day a doubt query without a
//! recorded follow-up is overdue.
//!
//! Filing one is a query of personal data like a lookup: it declares legal basis, purpose and case
//! (R-QRY-01), must be permitted (R-QRY-02) and, for "other business", approved (R-QRY-10), validates
//! the subject's identifiers (R-QRY-04), and its audit event names the subject. What was filed is never
//! edited; the follow-up document is a separate record. The printable form is a document
//! (`crate::documents`), filled from the [`DoubtQuery`] record.

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::catalogue::{QueryType, SubjectKinds};
use immilink_shared::clock::{business_date, from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::ids::{IdError, NationalId, PassportNumber, UiNumber};
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, CaseNumber, UnitId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::colleagues::Entitlements;
use super::fields::{self, Lines};
use super::{approvals, is_unique_violation, new_id, BrokerError, DoubtQueryId, LookupId, PurposeApprovalId};
use crate::schema::{doubt_queries as dq, doubt_query_follow_ups as fu, lookups};
use immilink_shared::outbox;

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

text_enum! {
    /// 查詢對象: a national (國人) or a foreigner (外國人).
    pub enum NationalityKind {
        National = "national",
        Foreigner = "foreigner",
    }
}

impl NationalityKind {
    /// Who at the immigration agency answers (附件二 備註 1, 2).
    pub fn receiving_unit(self) -> ReceivingUnit {
        match self {
            NationalityKind::National => ReceivingUnit::ImmigrationInformationDivision,
            NationalityKind::Foreigner => ReceivingUnit::BorderAffairsCorps,
        }
    }
}

text_enum! {
    /// 受理查詢單位: 移民資訊組 answers for nationals, 國境事務大隊 for foreigners.
    pub enum ReceivingUnit {
        ImmigrationInformationDivision = "immigration_information_division",
        BorderAffairsCorps = "border_affairs_corps",
    }
}

impl ReceivingUnit {
    pub fn name_zh(self) -> &'static str {
        match self {
            ReceivingUnit::ImmigrationInformationDivision => "移民資訊組",
            ReceivingUnit::BorderAffairsCorps => "國境事務大隊",
        }
    }
}

text_enum! {
    /// 性別.
    pub enum Sex {
        M = "M",
        F = "F",
        X = "X",
    }
}

impl Sex {
    pub fn name_zh(self) -> &'static str {
        match self {
            Sex::M => "男",
            Sex::F => "女",
            Sex::X => "其他",
        }
    }
}

text_enum! {
    /// The attachments the form lists (附件): 1. a copy of the passport's data page, 2. copies of
    /// entry/exit stamps, 3. an exit or entry notice, 4. other supporting papers (described).
    pub enum AttachmentKind {
        PassportCopy = "passport_copy",
        EntryExitStampCopy = "entry_exit_stamp_copy",
        ExitOrEntryNotice = "exit_or_entry_notice",
        Other = "other",
    }
}

impl AttachmentKind {
    /// The line of the form that lists it.
    pub fn label_zh(self) -> &'static str {
        match self {
            AttachmentKind::PassportCopy => "1.查詢對象護照基本資料頁影本",
            AttachmentKind::EntryExitStampCopy => "2.入出境查驗章影本",
            AttachmentKind::ExitOrEntryNotice => "3.出境或入境通報",
            AttachmentKind::Other => "4.其他相關佐證資料。",
        }
    }
}

text_enum! {
    /// Where a filed doubt query stands: its follow-up document is awaited (until the end of its due
    /// date), overdue, or recorded. Computed from the due date, the clock and the follow-up record.
    pub enum DoubtQueryState {
        AwaitingFollowUp = "awaiting_follow_up",
        Overdue = "overdue",
        FollowedUp = "followed_up",
    }
}

impl DoubtQueryState {
    /// The state at `now` of a doubt query due on `due_on` (a Taipei date).
    pub fn of(due_on: NaiveDate, followed_up: bool, now: DateTime<Utc>) -> Self {
        if followed_up {
            DoubtQueryState::FollowedUp
        } else if business_date(now) > due_on {
            DoubtQueryState::Overdue
        } else {
            DoubtQueryState::AwaitingFollowUp
        }
    }

    /// The one change a doubt query takes by an act: its follow-up document is recorded, on time or
    /// late, once. (Becoming overdue comes with the clock.)
    pub fn transition(self, to: DoubtQueryState) -> Result<DoubtQueryState, BrokerError> {
        match (self, to) {
            (DoubtQueryState::AwaitingFollowUp | DoubtQueryState::Overdue, DoubtQueryState::FollowedUp) => Ok(to),
            (DoubtQueryState::FollowedUp, _) => Err(BrokerError::FollowUpAlreadyRecorded),
            (from, to) => {
                Err(BrokerError::IllegalTransition { what: "doubt query", from: from.as_str(), to: to.as_str() })
            }
        }
    }
}

/// One attachment of a filed doubt query (kept as JSON with the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub pages: i64,
    pub description: Option<String>,
}

/// One line of the attachment list as the caseworker wrote it, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct AttachmentEntry {
    pub kind: Option<AttachmentKind>,
    pub pages: Option<i64>,
    pub description: Option<String>,
}

/// The subject's identifiers: at least one, each checked (R-QRY-04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifiers {
    pub national_id: Option<NationalId>,
    pub passport_number: Option<PassportNumber>,
    pub arc_number: Option<UiNumber>,
}

/// A doubt query that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewDoubtQuery {
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub requester_name: String,
    pub requester_title: String,
    pub requester_phone: String,
    pub requester_fax: Option<String>,
    pub nationality: NationalityKind,
    pub subject_name_zh: Option<String>,
    pub subject_name_en: Option<String>,
    pub subject_sex: Option<Sex>,
    pub subject_birth_date: Option<NaiveDate>,
    pub identifiers: Identifiers,
    pub subject_phone: Option<String>,
    pub reason: String,
    pub attachments: Vec<Attachment>,
    pub faxed_at: DateTime<Utc>,
    pub lookup_id: Option<LookupId>,
}

impl NewDoubtQuery {
    /// R-LINK and R-QRY-02, as for a lookup ([`check_permitted`](crate::domain::colleagues::check_permitted)): the agency's link
    /// must serve it now and the declared (legal basis, purpose, query type) must be among the
    /// caller's permissions.
    pub fn authorize(&self, entitlements: &Entitlements) -> Result<(), BrokerError> {
        entitlements.check(&self.legal_basis, &self.purpose_code, self.query_type)
    }

    /// The identifiers given, most specific first: (kind, id).
    pub fn identifiers(&self) -> Vec<(&'static str, &str)> {
        let ids = &self.identifiers;
        let mut listed = Vec::new();
        if let Some(id) = &ids.national_id {
            listed.push(("national_id", id.as_str()));
        }
        if let Some(id) = &ids.arc_number {
            listed.push(("ui_number", id.as_str()));
        }
        if let Some(id) = &ids.passport_number {
            listed.push(("passport", id.as_str()));
        }
        listed
    }
}

/// The query type: one of the entry/exit types the form is about (R-QRY-03).
pub fn query_type(value: Option<String>) -> Result<QueryType, BrokerError> {
    let raw = fields::required(value, "query_type", 64, Lines::One)?;
    let allowed: Vec<&str> = QUERY_TYPES.iter().map(|q| q.code()).collect();
    QueryType::parse(&raw).filter(|q| QUERY_TYPES.contains(q)).ok_or_else(|| {
        BrokerError::invalid(
            "query_type",
            format!("a doubt query is about entry/exit records: one of {}", allowed.join(", ")),
        )
        .rule("R-QRY-03")
    })
}

/// 查詢對象: 國人 or 外國人, which decides the receiving unit.
pub fn nationality(value: Option<NationalityKind>) -> Result<NationalityKind, BrokerError> {
    value.ok_or_else(|| BrokerError::missing("subject_nationality_kind"))
}

/// A plausible date of birth at `now`: not in the future, not before 1900.
pub fn birth_date(now: DateTime<Utc>, value: Option<NaiveDate>) -> Result<Option<NaiveDate>, BrokerError> {
    if let Some(born) = value {
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
        if born > business_date(now) || born < earliest {
            return Err(BrokerError::invalid("subject_birth_date", "not a plausible date of birth"));
        }
    }
    Ok(value)
}

fn identifier<T>(
    raw: Option<String>,
    field: &'static str,
    parse: impl FnOnce(&str) -> Result<T, IdError>,
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

/// R-QRY-04: the subject's identifiers, each checked; at least one; a foreigner has no national ID;
/// a query type that takes resident IDs only needs a national ID or a UI number.
pub fn identifiers(
    nationality: NationalityKind,
    query_type: QueryType,
    national_id: Option<String>,
    passport_number: Option<String>,
    arc_number: Option<String>,
) -> Result<Identifiers, BrokerError> {
    let national_id = identifier(national_id, "subject_national_id", NationalId::parse)?;
    let passport_number = identifier(passport_number, "subject_passport_number", PassportNumber::parse)?;
    let arc_number = identifier(arc_number, "subject_arc_number", UiNumber::parse)?;
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
    Ok(Identifiers { national_id, passport_number, arc_number })
}

/// The attachment list: at most 10 lines, each kind once (but "other" as often as needed), 1–500
/// pages each, "other" described.
pub fn attachments(entries: Vec<AttachmentEntry>) -> Result<Vec<Attachment>, BrokerError> {
    if entries.len() > MAX_ATTACHMENTS {
        return Err(BrokerError::invalid("attachments", format!("at most {MAX_ATTACHMENTS} entries")));
    }
    let mut parsed: Vec<Attachment> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let kind = entry.kind.ok_or_else(|| BrokerError::missing(format!("attachments[{i}].kind")))?;
        if kind != AttachmentKind::Other && parsed.iter().any(|a| a.kind == kind) {
            return Err(BrokerError::invalid(
                format!("attachments[{i}].kind"),
                "listed twice: give the total pages once",
            ));
        }
        let pages = entry.pages.ok_or_else(|| BrokerError::missing(format!("attachments[{i}].pages")))?;
        if !(1..=MAX_PAGES).contains(&pages) {
            return Err(BrokerError::invalid(format!("attachments[{i}].pages"), format!("between 1 and {MAX_PAGES}")));
        }
        let field = format!("attachments[{i}].description");
        let description = match kind {
            AttachmentKind::Other => Some(fields::required(entry.description, &field, 200, Lines::One)?),
            _ => fields::optional(entry.description, &field, 200, Lines::One)?,
        };
        parsed.push(Attachment { kind, pages, description });
    }
    Ok(parsed)
}

/// When the form was faxed: default now; never in the future, at most 30 days ago (the record is
/// made when it is sent).
pub fn faxed_at(now: DateTime<Utc>, value: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, BrokerError> {
    match value {
        None => Ok(now),
        Some(at) if at > now + Duration::minutes(CLOCK_TOLERANCE_MINUTES) => {
            Err(BrokerError::invalid("faxed_at", "cannot be in the future").rule(RULE))
        }
        Some(at) if at < now - Duration::days(MAX_FAX_AGE_DAYS) => Err(BrokerError::invalid(
            "faxed_at",
            format!("record a doubt query when it is faxed: at most {MAX_FAX_AGE_DAYS} days ago"),
        )
        .rule(RULE)),
        Some(at) => Ok(at.min(now)),
    }
}

/// The lookup that failed, if the caseworker names one.
pub fn lookup_id(value: Option<String>) -> Result<Option<LookupId>, BrokerError> {
    Ok(fields::optional(value, "lookup_id", 64, Lines::One)?.map(LookupId::new))
}

/// The follow-up document is due on the third day after the Taipei business date of the fax.
pub fn due_on(faxed_at: DateTime<Utc>) -> NaiveDate {
    let fax_date = business_date(faxed_at);
    // Only fails at the end of the calendar (year 262143).
    fax_date.checked_add_days(Days::new(FOLLOW_UP_DAYS)).unwrap_or(fax_date)
}

/// The official follow-up document (補送公文) of a doubt query, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// 文號.
    pub document_number: String,
    /// When the document was sent (Taipei date).
    pub sent_on: NaiveDate,
    /// Sent after the due date.
    pub late: bool,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: UserId,
}

/// A follow-up document that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewFollowUp {
    pub document_number: String,
    pub sent_on: NaiveDate,
}

/// 文號 of the official document.
pub fn document_number(value: Option<String>) -> Result<String, BrokerError> {
    fields::required(value, "document_number", 64, Lines::One).map_err(|err| err.or_rule(RULE))
}

/// When the official document was sent (Taipei date).
pub fn sent_on(value: Option<NaiveDate>) -> Result<NaiveDate, BrokerError> {
    value.ok_or_else(|| BrokerError::missing("sent_on").rule(RULE))
}

/// A filed doubt query with its follow-up and its state at the time of reading.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubtQuery {
    pub id: DoubtQueryId,
    /// 查詢機關.
    pub agency: AgencyCode,
    pub filed_by: UserId,
    pub filer_unit: Option<UnitId>,
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    /// The supervisor approval it was filed under (R-QRY-10), for purposes that need one.
    pub purpose_approval_id: Option<PurposeApprovalId>,
    pub requester_name: String,
    pub requester_title: String,
    pub requester_phone: String,
    pub requester_fax: Option<String>,
    pub nationality: NationalityKind,
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
    /// 受理查詢單位, from the subject's nationality.
    pub receiving_unit: ReceivingUnit,
    pub faxed_at: DateTime<Utc>,
    /// The follow-up document is due by the end of this Taipei date.
    pub due_on: NaiveDate,
    pub lookup_id: Option<LookupId>,
    pub created_at: DateTime<Utc>,
    pub follow_up: Option<FollowUp>,
    pub state: DoubtQueryState,
}

impl DoubtQuery {
    /// Taipei business date of the fax (查詢日期).
    pub fn fax_date(&self) -> NaiveDate {
        business_date(self.faxed_at)
    }

    /// 附件共 … 頁.
    pub fn attachment_pages(&self) -> i64 {
        self.attachments.iter().map(|a| a.pages).sum()
    }

    /// Past the due date without a recorded follow-up.
    pub fn overdue(&self) -> bool {
        self.state == DoubtQueryState::Overdue
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dq)]
struct Row {
    id: DoubtQueryId,
    agency: AgencyCode,
    filed_by: UserId,
    filer_unit: Option<UnitId>,
    query_type: String,
    legal_basis: String,
    purpose_code: String,
    case_number: CaseNumber,
    purpose_approval_id: Option<PurposeApprovalId>,
    requester_name: String,
    requester_title: String,
    requester_phone: String,
    requester_fax: Option<String>,
    subject_nationality_kind: NationalityKind,
    subject_name_zh: Option<String>,
    subject_name_en: Option<String>,
    subject_sex: Option<Sex>,
    subject_birth_date: Option<NaiveDate>,
    subject_national_id: Option<String>,
    subject_passport_number: Option<String>,
    subject_arc_number: Option<String>,
    subject_phone: Option<String>,
    reason: String,
    attachments: String,
    receiving_unit: ReceivingUnit,
    faxed_at: NaiveDateTime,
    due_on: NaiveDate,
    lookup_id: Option<LookupId>,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fu)]
struct FollowUpRow {
    doubt_query_id: DoubtQueryId,
    document_number: String,
    sent_on: NaiveDate,
    late: bool,
    recorded_at: NaiveDateTime,
    recorded_by: UserId,
}

fn corrupt(id: &DoubtQueryId, what: &str) -> BrokerError {
    BrokerError::Internal(format!("doubt query {id}: stored {what} does not parse"))
}

impl Row {
    fn visible_to(&self, caller: &Caller) -> bool {
        self.agency == caller.agency && (self.filed_by == caller.user_id || caller.has_any(&OVERSEERS))
    }

    fn record(self, follow_up: Option<FollowUpRow>, now: DateTime<Utc>) -> Result<DoubtQuery, BrokerError> {
        let query_type = QueryType::parse(&self.query_type).ok_or_else(|| corrupt(&self.id, "query type"))?;
        let attachments: Vec<Attachment> =
            serde_json::from_str(&self.attachments).map_err(|_| corrupt(&self.id, "attachments"))?;
        Ok(DoubtQuery {
            state: DoubtQueryState::of(self.due_on, follow_up.is_some(), now),
            follow_up: follow_up.map(|f| FollowUp {
                document_number: f.document_number,
                sent_on: f.sent_on,
                late: f.late,
                recorded_at: from_db(f.recorded_at),
                recorded_by: f.recorded_by,
            }),
            attachments,
            query_type,
            nationality: self.subject_nationality_kind,
            subject_sex: self.subject_sex,
            receiving_unit: self.receiving_unit,
            faxed_at: from_db(self.faxed_at),
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

fn find(conn: &mut DbConn, id: &DoubtQueryId) -> Result<Option<Row>, BrokerError> {
    Ok(dq::table.filter(dq::id.eq(id)).select(Row::as_select()).first(conn).optional()?)
}

fn follow_up_of(conn: &mut DbConn, id: &DoubtQueryId) -> Result<Option<FollowUpRow>, BrokerError> {
    Ok(fu::table.filter(fu::doubt_query_id.eq(id)).select(FollowUpRow::as_select()).first(conn).optional()?)
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the doubt query")
}

/// Records a doubt query the caller faxed, with its `doubt_query.filed` audit event naming the
/// subject, in one transaction. The caller's permission (R-QRY-02) is checked before, with
/// [`NewDoubtQuery::authorize`]; here, a purpose that needs a supervisor's approval needs one in force
/// (R-QRY-10), and a named lookup must be one of the caller's.
pub fn file(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewDoubtQuery,
) -> Result<DoubtQuery, BrokerError> {
    let id = DoubtQueryId::new(new_id());
    let identifiers = new.identifiers();
    let primary = identifiers.first().map(|(_, id)| (*id).to_owned());
    let due = due_on(new.faxed_at);
    let receiving_unit = new.nationality.receiving_unit();
    let attachments = serde_json::to_string(&new.attachments).map_err(|err| BrokerError::Internal(err.to_string()))?;
    conn.write_transaction(|conn| {
        let purpose_approval_id = approvals::approval_if_required(
            conn,
            now,
            &caller.user_id,
            &caller.agency,
            &new.case_number,
            &new.purpose_code,
        )?;
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
        let subject = &new.identifiers;
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
            subject_nationality_kind: new.nationality,
            subject_name_zh: new.subject_name_zh.clone(),
            subject_name_en: new.subject_name_en.clone(),
            subject_sex: new.subject_sex,
            subject_birth_date: new.subject_birth_date,
            subject_national_id: subject.national_id.as_ref().map(|id| id.as_str().to_owned()),
            subject_passport_number: subject.passport_number.as_ref().map(|id| id.as_str().to_owned()),
            subject_arc_number: subject.arc_number.as_ref().map(|id| id.as_str().to_owned()),
            subject_phone: new.subject_phone.clone(),
            reason: new.reason.clone(),
            attachments: attachments.clone(),
            receiving_unit,
            faxed_at: to_db(new.faxed_at),
            due_on: due,
            lookup_id: new.lookup_id.clone(),
            created_at: to_db(now),
        };
        diesel::insert_into(dq::table).values(&row).execute(conn)?;
        let event = outbox::event(
            crate::SERVICE,
            kind::DOUBT_QUERY_FILED,
            now,
            caller,
            id.as_str(),
            primary.clone(),
            json!({
                "query_type": new.query_type.code(),
                "legal_basis": new.legal_basis,
                "purpose_code": new.purpose_code,
                "case_number": new.case_number,
                "purpose_approval_id": purpose_approval_id,
                "subject_nationality_kind": new.nationality,
                "subject_identifiers": identifiers
                    .iter()
                    .map(|(kind, id)| json!({"kind": kind, "id": id}))
                    .collect::<Vec<_>>(),
                "reason": new.reason,
                "receiving_unit": receiving_unit,
                "faxed_at": new.faxed_at,
                "due_on": due,
                "lookup_id": new.lookup_id,
                "session_id": caller.session_id,
            }),
        );
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    get(conn, now, caller, &id)
}

/// Which doubt queries a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct DoubtFilter {
    /// `true`: only those past their due date without a follow-up; `false`: only the others.
    pub overdue: Option<bool>,
}

/// The caller's own doubt queries, newest first; unit supervisors, account managers and auditors see
/// their agency's. Their follow-ups are read in one more query, not one per doubt query.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &DoubtFilter,
    page: &Page,
) -> Result<Vec<DoubtQuery>, BrokerError> {
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
    if let Some(before) = &page.cursor {
        query = query.filter(dq::id.lt(before.clone()));
    }
    let rows: Vec<Row> = query.order(dq::id.desc()).limit(page.limit).load(conn)?;
    let ids: Vec<&DoubtQueryId> = rows.iter().map(|row| &row.id).collect();
    let mut follow_ups: std::collections::HashMap<DoubtQueryId, FollowUpRow> = fu::table
        .filter(fu::doubt_query_id.eq_any(&ids))
        .select(FollowUpRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|f| (f.doubt_query_id.clone(), f))
        .collect();
    rows.into_iter()
        .map(|row| {
            let follow_up = follow_ups.remove(&row.id);
            row.record(follow_up, now)
        })
        .collect()
}

/// One doubt query: for its filer, and the unit supervisors, account managers and auditors of its
/// agency; not found for anyone else.
pub fn get(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &DoubtQueryId,
) -> Result<DoubtQuery, BrokerError> {
    let row = find(conn, id)?.filter(|row| row.visible_to(caller)).ok_or_else(not_found)?;
    let follow_up = follow_up_of(conn, id)?;
    row.record(follow_up, now)
}

/// Records the follow-up document of a doubt query: by its filer or a unit supervisor of the filer's
/// unit, once, sent between the fax date and today. A document sent after the due date is late.
pub fn record_follow_up(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &DoubtQueryId,
    follow_up: &NewFollowUp,
) -> Result<DoubtQuery, BrokerError> {
    let NewFollowUp { document_number, sent_on } = follow_up;
    let today = business_date(now);
    conn.write_transaction(|conn| {
        let row = find(conn, id)?.filter(|row| row.visible_to(caller)).ok_or_else(not_found)?;
        let by_filer = row.filed_by == caller.user_id;
        if !by_filer && !caller.is_in_unit_as(roles::UNIT_SUPERVISOR, row.filer_unit.as_ref()) {
            return Err(BrokerError::NotFiler);
        }
        let recorded = follow_up_of(conn, id)?.is_some();
        DoubtQueryState::of(row.due_on, recorded, now).transition(DoubtQueryState::FollowedUp)?;
        let fax_date = business_date(from_db(row.faxed_at));
        if *sent_on < fax_date {
            return Err(BrokerError::invalid("sent_on", format!("cannot be before the fax date {fax_date}")).rule(RULE));
        }
        if *sent_on > today {
            return Err(BrokerError::invalid("sent_on", "cannot be in the future").rule(RULE));
        }
        let late = *sent_on > row.due_on;
        let inserted = diesel::insert_into(fu::table)
            .values((
                fu::doubt_query_id.eq(id),
                fu::document_number.eq(document_number),
                fu::sent_on.eq(sent_on),
                fu::late.eq(late),
                fu::recorded_at.eq(to_db(now)),
                fu::recorded_by.eq(&caller.user_id),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => return Err(BrokerError::FollowUpAlreadyRecorded),
            Err(err) => return Err(err.into()),
        }
        let event = outbox::event(
            crate::SERVICE,
            kind::DOUBT_QUERY_FOLLOWED_UP,
            now,
            caller,
            id.as_str(),
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
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    get(conn, now, caller, id)
}

/// A doubt query the demo caseworker of TPE-SW files about a national; tests vary it.
#[cfg(test)]
pub(crate) fn sample(now: DateTime<Utc>) -> NewDoubtQuery {
    NewDoubtQuery {
        query_type: QueryType::EntryExitLastYear,
        legal_basis: "social_assistance_act".into(),
        purpose_code: "sw_statutory_business".into(),
        case_number: CaseNumber::new("TPE-2026-7"),
        requester_name: "王小明".into(),
        requester_title: "社會工作員".into(),
        requester_phone: "(02)2720-8889 分機 1234".into(),
        requester_fax: Some("(02)2720-6552".into()),
        nationality: NationalityKind::National,
        subject_name_zh: Some("陳怡君".into()),
        subject_name_en: None,
        subject_sex: Some(Sex::F),
        subject_birth_date: NaiveDate::from_ymd_opt(1980, 1, 2),
        identifiers: identifiers(
            NationalityKind::National,
            QueryType::EntryExitLastYear,
            Some("a123456789".into()),
            None,
            None,
        )
        .expect("a valid national ID"),
        subject_phone: None,
        reason: "低收入戶資格審查\n線上查詢系統異常".into(),
        attachments: vec![Attachment { kind: AttachmentKind::EntryExitStampCopy, pages: 2, description: None }],
        faxed_at: now,
        lookup_id: None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use immilink_shared::clock::{Clock, ManualClock};
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::approvals::{Decision, NewPurposeApproval};
    use crate::domain::colleagues::Permission;
    use crate::domain::link::{LinkStanding, Refusal};
    use crate::domain::testkit::{caller, conn, entitled, other_business_entitlements, t0, TestConn};

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

    fn filed(conn: &mut TestConn, new: NewDoubtQuery, now: DateTime<Utc>) -> DoubtQuery {
        file(conn, now, &filer(), &new).unwrap()
    }

    fn follow_up(document_number: &str, sent_on: NaiveDate) -> NewFollowUp {
        NewFollowUp { document_number: document_number.into(), sent_on }
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
        assert_eq!(DoubtQueryState::of(due, false, utc(2026, 12, 1, 15, 59)), DoubtQueryState::AwaitingFollowUp);
        // 2 December 00:00 in Taipei (16:00Z on the 1st): overdue.
        assert_eq!(DoubtQueryState::of(due, false, utc(2026, 12, 1, 16, 0)), DoubtQueryState::Overdue);
        let followed_up = DoubtQueryState::of(due, true, utc(2026, 12, 31, 0, 0));
        assert_eq!(followed_up, DoubtQueryState::FollowedUp, "a recorded follow-up is never overdue");
    }

    #[test]
    fn r_qry_09_the_follow_up_is_recorded_once_on_time_or_late() {
        use DoubtQueryState::*;
        assert_eq!(AwaitingFollowUp.transition(FollowedUp).unwrap(), FollowedUp);
        assert_eq!(Overdue.transition(FollowedUp).unwrap(), FollowedUp);
        assert!(matches!(FollowedUp.transition(FollowedUp), Err(BrokerError::FollowUpAlreadyRecorded)));
        for (from, to) in [(AwaitingFollowUp, Overdue), (Overdue, AwaitingFollowUp), (FollowedUp, Overdue)] {
            assert!(from.transition(to).is_err(), "{from} → {to}");
        }
    }

    #[test]
    fn r_qry_04_subject_identifiers_are_validated_and_at_least_one_is_given() {
        use NationalityKind::{Foreigner, National};
        let qt = QueryType::EntryExitLastYear;
        let field_of = |result: Result<Identifiers, BrokerError>| match result {
            Err(BrokerError::InvalidIdentifier { field, .. }) | Err(BrokerError::Invalid { field, .. }) => field,
            Err(BrokerError::NoSubjectIdentifier { field }) => field.to_owned(),
            other => panic!("not refused: {other:?}"),
        };
        let none = identifiers(National, qt, None, None, None).unwrap_err();
        assert!(matches!(none, BrokerError::NoSubjectIdentifier { field: "subject_national_id" }), "{none:?}");
        let bad = identifiers(National, qt, Some("A123456788".into()), None, None);
        assert_eq!(field_of(bad), "subject_national_id");
        let bad_passport = identifiers(National, QueryType::TravelerHistory, None, Some("ABCDEFG".into()), None);
        assert_eq!(field_of(bad_passport), "subject_passport_number");
        let bad_arc = identifiers(Foreigner, qt, None, None, Some("A800000015".into()));
        assert_eq!(field_of(bad_arc), "subject_arc_number");
        let foreign_national_id = identifiers(Foreigner, qt, Some("A123456789".into()), None, None);
        assert_eq!(field_of(foreign_national_id), "subject_national_id", "a foreigner has no national ID");
        // A passport alone does not do for a query type that takes resident IDs only.
        let passport_only = identifiers(National, qt, None, Some("x1234567".into()), None);
        assert_eq!(field_of(passport_only), "subject_national_id");

        let mut new = sample(t0());
        new.query_type = QueryType::TravelerHistory;
        new.nationality = Foreigner;
        new.identifiers = identifiers(
            Foreigner,
            QueryType::TravelerHistory,
            None,
            Some("x1234567".into()),
            Some(" a800000014 ".into()),
        )
        .unwrap();
        assert_eq!(new.identifiers.passport_number.as_ref().map(PassportNumber::as_str), Some("X1234567"));
        assert_eq!(new.identifiers(), [("ui_number", "A800000014"), ("passport", "X1234567")]);
        assert_eq!(new.nationality.receiving_unit(), ReceivingUnit::BorderAffairsCorps);
    }

    #[test]
    fn r_qry_09_the_attachment_list_and_the_fax_time_are_checked() {
        let entry = |kind, pages, description: Option<&str>| AttachmentEntry {
            kind,
            pages,
            description: description.map(str::to_owned),
        };
        let field_of = |result: Result<Vec<Attachment>, BrokerError>| match result {
            Err(BrokerError::Invalid { field, .. }) | Err(BrokerError::Missing { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        };
        let pages_zero = vec![entry(Some(AttachmentKind::PassportCopy), Some(0), None)];
        assert_eq!(field_of(attachments(pages_zero)), "attachments[0].pages");
        let undescribed = vec![entry(Some(AttachmentKind::Other), Some(1), None)];
        assert_eq!(field_of(attachments(undescribed)), "attachments[0].description");
        let stamp = || entry(Some(AttachmentKind::EntryExitStampCopy), Some(1), None);
        assert_eq!(field_of(attachments(vec![stamp(), stamp()])), "attachments[1].kind");
        assert_eq!(field_of(attachments(vec![entry(None, Some(1), None)])), "attachments[0].kind");
        assert_eq!(field_of(attachments(vec![stamp(); 11])), "attachments");
        let others = vec![
            entry(Some(AttachmentKind::Other), Some(1), Some("a")),
            entry(Some(AttachmentKind::Other), Some(2), Some("b")),
        ];
        assert_eq!(attachments(others).unwrap().len(), 2, "other papers are listed as often as needed");

        assert_eq!(faxed_at(t0(), None).unwrap(), t0());
        assert!(faxed_at(t0(), Some(t0() + Duration::hours(1))).is_err());
        assert!(faxed_at(t0(), Some(t0() - Duration::days(31))).is_err());
        assert_eq!(faxed_at(t0(), Some(t0() + Duration::minutes(1))).unwrap(), t0(), "a fax a moment ahead is now");
        assert!(birth_date(t0(), Some(date(2027, 1, 1))).is_err());
        assert!(birth_date(t0(), Some(date(1899, 12, 31))).is_err());
    }

    fn permission(basis: &str, purpose: &str, query: &str) -> Permission {
        Permission { legal_basis: basis.into(), purpose_code: purpose.into(), query_type: query.into() }
    }

    #[test]
    fn r_qry_02_the_declaration_must_be_permitted() {
        let new = sample(t0());
        let granted = |permissions: Vec<Permission>| Entitlements { permissions, link: None };
        assert!(new
            .authorize(&granted(vec![permission(
                "social_assistance_act",
                "sw_statutory_business",
                "entry_exit_last_year"
            )]))
            .is_ok());
        let split = vec![
            permission("social_assistance_act", "sw_statutory_business", "traveler_history"),
            permission("senior_welfare_act", "sw_statutory_business", "entry_exit_last_year"),
        ];
        assert!(matches!(new.authorize(&granted(split)), Err(BrokerError::NotPermitted { .. })));
    }

    /// A doubt query is a query of personal data: a suspended link refuses it as it refuses a lookup.
    #[test]
    fn r_link_06_a_suspended_link_refuses_a_doubt_query() {
        let suspended = LinkStanding {
            refusal: Some(Refusal::from_identity("link_suspended", Some("TPE-SW's link is suspended".into()))),
            query_types: vec!["entry_exit_last_year".into()],
        };
        let refused = sample(t0()).authorize(&Entitlements { permissions: Vec::new(), link: Some(suspended) });
        assert!(
            matches!(&refused, Err(BrokerError::LinkRefused { refusal, .. }) if refusal.rule() == "R-LINK-06"),
            "{refused:?}"
        );
    }

    #[test]
    fn r_qry_09_filing_records_the_form_and_an_audit_event_naming_the_subject() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = filed(&mut conn, sample(t0()), t0());
        assert_eq!(record.subject_national_id.as_deref(), Some("A123456789"));
        assert_eq!(record.receiving_unit, ReceivingUnit::ImmigrationInformationDivision);
        assert_eq!((record.fax_date(), record.due_on), (date(2026, 11, 23), date(2026, 11, 26)));
        assert_eq!((record.attachment_pages(), record.overdue(), record.follow_up.clone()), (2, false, None));
        assert_eq!(record.state, DoubtQueryState::AwaitingFollowUp);
        assert_eq!(record.filer_unit.as_ref().map(UnitId::as_str), Some("unit-a"));

        let events = outbox::pending(&mut conn, 10).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.kind, kind::DOUBT_QUERY_FILED);
        assert_eq!(event.subject_id.as_deref(), Some("A123456789"));
        assert_eq!(event.actor_user_id.as_deref(), Some(FILER));
        assert_eq!(event.agency.as_deref(), Some("TPE-SW"));
        assert_eq!(event.correlation_id.as_deref(), Some(record.id.as_str()));
        assert_eq!(event.payload["legal_basis"], "social_assistance_act");
        assert_eq!(event.payload["purpose_code"], "sw_statutory_business");
        assert_eq!(event.payload["case_number"], "TPE-2026-7");
        assert_eq!(event.payload["subject_nationality_kind"], "national");
        assert_eq!(event.payload["receiving_unit"], "immigration_information_division");
        assert_eq!(event.payload["subject_identifiers"][0]["id"], "A123456789");
        assert_eq!(event.payload["due_on"], "2026-11-26");
    }

    #[test]
    fn r_qry_09_faxed_after_taipei_midnight_counts_from_the_taipei_date() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let now = utc(2026, 11, 27, 17, 30);
        let mut new = sample(now);
        new.faxed_at = utc(2026, 11, 27, 17, 0);
        let record = filed(&mut conn, new, now);
        assert_eq!((record.fax_date(), record.due_on), (date(2026, 11, 28), date(2026, 12, 1)));
    }

    #[test]
    fn r_qry_09_the_overdue_flag_flips_with_the_clock_and_the_filter_follows() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        // Faxed 28 November 2026, 11:00 in Taipei: due 1 December.
        let clock = ManualClock::starting_at(utc(2026, 11, 28, 3, 0));
        let late_one = filed(&mut conn, sample(clock.now()), clock.now());
        let answered = filed(&mut conn, sample(clock.now()), clock.now());
        let overdue = DoubtFilter { overdue: Some(true) };
        let not_overdue = DoubtFilter { overdue: Some(false) };
        let page = Page::first();
        let ids = |records: Vec<DoubtQuery>| records.into_iter().map(|v| v.id).collect::<Vec<_>>();

        clock.set(utc(2026, 12, 1, 15, 59)); // 1 December 23:59 in Taipei
        assert!(!get(&mut conn, clock.now(), &filer(), &late_one.id).unwrap().overdue());
        assert!(list(&mut conn, clock.now(), &filer(), &overdue, &page).unwrap().is_empty());
        let on_time = follow_up("北市社助字第1153012345號", date(2026, 12, 1));
        let recorded = record_follow_up(&mut conn, clock.now(), &filer(), &answered.id, &on_time).unwrap();
        assert_eq!(recorded.follow_up.as_ref().map(|f| f.late), Some(false));
        assert_eq!(recorded.state, DoubtQueryState::FollowedUp);

        clock.advance(Duration::minutes(1)); // 2 December 00:00 in Taipei
        assert!(get(&mut conn, clock.now(), &filer(), &late_one.id).unwrap().overdue());
        assert!(!get(&mut conn, clock.now(), &filer(), &answered.id).unwrap().overdue());
        assert_eq!(
            ids(list(&mut conn, clock.now(), &filer(), &overdue, &page).unwrap()),
            std::slice::from_ref(&late_one.id)
        );
        assert_eq!(
            ids(list(&mut conn, clock.now(), &filer(), &not_overdue, &page).unwrap()),
            std::slice::from_ref(&answered.id)
        );
        let all = list(&mut conn, clock.now(), &filer(), &DoubtFilter::default(), &page).unwrap();
        assert_eq!(
            all.iter().map(|v| (v.id.clone(), v.overdue())).collect::<Vec<_>>(),
            [(answered.id.clone(), false), (late_one.id.clone(), true)]
        );

        // A late document is recorded as late and ends the overdue state.
        clock.advance(Duration::days(2));
        let late = follow_up("北市社助字第1153099999號", date(2026, 12, 3));
        let record = record_follow_up(&mut conn, clock.now(), &boss(), &late_one.id, &late).unwrap();
        let follow_up = record.follow_up.clone().expect("recorded");
        assert_eq!((follow_up.late, follow_up.recorded_by.as_str(), record.overdue()), (true, BOSS, false));
        assert!(list(&mut conn, clock.now(), &filer(), &overdue, &page).unwrap().is_empty());
        let kinds: Vec<String> = outbox::pending(&mut conn, 10).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| *k == kind::DOUBT_QUERY_FOLLOWED_UP).count(), 2);
    }

    #[test]
    fn r_qry_09_follow_ups_are_recorded_once_by_the_filer_or_their_supervisor() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = filed(&mut conn, sample(t0()), t0());
        let doc = |sent_on: NaiveDate| follow_up("北市社助字第1號", sent_on);
        let now = t0() + Duration::days(1);
        let mut try_as = |who: &Caller, sent_on| record_follow_up(&mut conn, now, who, &record.id, &doc(sent_on));

        let colleague = caller(COLLEAGUE, "TPE-SW", Some("unit-a"), &["caseworker"]);
        assert!(matches!(try_as(&colleague, date(2026, 11, 24)), Err(BrokerError::NotFound(_))));
        let other_unit = caller(COLLEAGUE, "TPE-SW", Some("unit-b"), &["unit_supervisor"]);
        assert!(matches!(try_as(&other_unit, date(2026, 11, 24)), Err(BrokerError::NotFiler)));
        let auditor = caller(COLLEAGUE, "TPE-SW", None, &["auditor"]);
        assert!(matches!(try_as(&auditor, date(2026, 11, 24)), Err(BrokerError::NotFiler)));
        let foreign = caller(COLLEAGUE, "HLN-HR", Some("unit-a"), &["unit_supervisor"]);
        assert!(matches!(try_as(&foreign, date(2026, 11, 24)), Err(BrokerError::NotFound(_))));

        let sent_on_field = |result: Result<DoubtQuery, BrokerError>| matches!(result, Err(BrokerError::Invalid { ref field, rule: Some(RULE), .. }) if field == "sent_on");
        assert!(sent_on_field(try_as(&filer(), date(2026, 11, 22))), "before the fax");
        assert!(sent_on_field(try_as(&filer(), date(2026, 11, 25))), "in the future");

        let done = try_as(&filer(), date(2026, 11, 23)).unwrap();
        assert_eq!(done.follow_up.as_ref().map(|f| (f.sent_on, f.late)), Some((date(2026, 11, 23), false)));
        let again = try_as(&boss(), date(2026, 11, 24));
        assert!(matches!(again, Err(BrokerError::FollowUpAlreadyRecorded)), "{again:?}");
    }

    #[test]
    fn r_qry_09_lists_and_reads_are_scoped() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mine = filed(&mut conn, sample(t0()), t0());
        let colleague = caller(COLLEAGUE, "TPE-SW", Some("unit-b"), &["caseworker"]);
        let theirs = file(&mut conn, t0(), &colleague, &sample(t0())).unwrap();
        let all = DoubtFilter::default();
        let page = Page::first();
        let ids = |records: Vec<DoubtQuery>| records.into_iter().map(|v| v.id).collect::<Vec<_>>();

        assert_eq!(ids(list(&mut conn, t0(), &filer(), &all, &page).unwrap()), std::slice::from_ref(&mine.id));
        assert_eq!(ids(list(&mut conn, t0(), &colleague, &all, &page).unwrap()), std::slice::from_ref(&theirs.id));
        for overseer in ["unit_supervisor", "account_manager", "auditor"] {
            let who = caller(BOSS, "TPE-SW", Some("unit-c"), &[overseer]);
            assert_eq!(
                ids(list(&mut conn, t0(), &who, &all, &page).unwrap()),
                [theirs.id.clone(), mine.id.clone()],
                "{overseer}"
            );
            assert!(get(&mut conn, t0(), &who, &mine.id).is_ok());
        }
        let foreign = caller(BOSS, "HLN-HR", None, &["auditor"]);
        assert!(list(&mut conn, t0(), &foreign, &all, &page).unwrap().is_empty());
        assert!(matches!(get(&mut conn, t0(), &foreign, &mine.id), Err(BrokerError::NotFound(_))));
        assert!(matches!(get(&mut conn, t0(), &colleague, &mine.id), Err(BrokerError::NotFound(_))));
        let auditor = caller(BOSS, "TPE-SW", None, &["auditor"]);
        let second = Page { limit: 1, cursor: Some(theirs.id.to_string()) };
        assert_eq!(ids(list(&mut conn, t0(), &auditor, &all, &second).unwrap()), std::slice::from_ref(&mine.id));
    }

    #[test]
    fn r_qry_10_other_business_needs_an_approval_in_force_to_file() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let worker = caller(FILER, "HLN-HR", Some("unit-a"), &["caseworker"]);
        let mut new = sample(t0());
        new.legal_basis = "household_registration_act".into();
        new.purpose_code = "hr_other_approved".into();
        let err = file(&mut conn, t0(), &worker, &new).unwrap_err();
        assert!(matches!(err, BrokerError::SupervisorApprovalRequired(_)), "{err:?}");
        assert!(outbox::pending(&mut conn, 10).unwrap().is_empty(), "nothing recorded");

        let request = NewPurposeApproval {
            purpose_code: "hr_other_approved".into(),
            case_number: CaseNumber::new("TPE-2026-7"),
            business_description: "戶籍登記疑義".into(),
        };
        let may_declare = other_business_entitlements();
        let asked = approvals::request(&mut conn, t0(), &worker, &may_declare, &request).unwrap();
        let supervisor = caller(BOSS, "HLN-HR", Some("unit-a"), &["unit_supervisor"]);
        let approve = approvals::decision(t0(), Some(Decision::Approved), None, None).unwrap();
        let requester = entitled(FILER, "HLN-HR", &may_declare);
        approvals::decide(&mut conn, t0(), &supervisor, &asked.id, &approve, Some(&requester)).unwrap();
        let record = file(&mut conn, t0(), &worker, &new).unwrap();
        assert_eq!(record.purpose_approval_id, Some(asked.id));
    }

    #[test]
    fn r_qry_09_a_named_lookup_must_be_the_callers_own() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mut new = sample(t0());
        new.lookup_id = Some(LookupId::new("01930000-0000-7000-8000-00000000dead"));
        let err = file(&mut conn, t0(), &filer(), &new).unwrap_err();
        assert!(matches!(err, BrokerError::Invalid { ref field, .. } if field == "lookup_id"), "{err:?}");
        let count: i64 = dq::table.count().get_result(&mut *conn).unwrap();
        assert_eq!(count, 0, "no partial write");
    }

    #[test]
    fn r_qry_09_what_was_filed_cannot_be_edited_in_the_database() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = filed(&mut conn, sample(t0()), t0());
        let edited = diesel::update(dq::table.filter(dq::id.eq(&record.id)))
            .set(dq::due_on.eq(date(2027, 1, 1)))
            .execute(&mut *conn);
        assert!(edited.is_err(), "the due date cannot be moved");
        record_follow_up(&mut conn, t0(), &filer(), &record.id, &follow_up("北市社助字第1號", date(2026, 11, 23)))
            .unwrap();
        let rewritten = diesel::update(fu::table.filter(fu::doubt_query_id.eq(&record.id)))
            .set(fu::late.eq(false))
            .execute(&mut *conn);
        assert!(rewritten.is_err(), "the follow-up is recorded once");
    }

    #[test]
    fn r_qry_09_foreigners_go_to_the_border_affairs_corps() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mut new = sample(t0());
        new.query_type = QueryType::ForeignResidentEntryExit;
        new.nationality = NationalityKind::Foreigner;
        new.identifiers = identifiers(
            NationalityKind::Foreigner,
            QueryType::ForeignResidentEntryExit,
            None,
            None,
            Some("A800000014".into()),
        )
        .unwrap();
        new.subject_name_en = Some("NGUYEN VAN A".into());
        let record = filed(&mut conn, new, t0());
        assert_eq!(record.receiving_unit, ReceivingUnit::BorderAffairsCorps);
        assert_eq!(record.subject_arc_number.as_deref(), Some("A800000014"));
        let event = outbox::pending(&mut conn, 1).unwrap().remove(0);
        assert_eq!(event.subject_id.as_deref(), Some("A800000014"));
    }
}
