//! Self-audits (R-AUD-05; seed 002 pt 12, 附件三 and 附件四). Each agency audits its own use of the
//! immigration data at least twice a year with the checklist of 附件三 (花蓮縣戶政事務所應用移民資訊內部
//! 稽核紀錄表); the county government audits its household-registration offices with 附件四, the same
//! items plus whether the office ran its two self-audits. Every item is answered yes or no with an
//! explanation; each "no" opens a finding (R-AUD-07). The record is signed by the auditor, the section
//! chief and the unit head (稽核人員, 股長, 單位主管), three different people, and is completed with the
//! third signature. An agency with fewer than two completed self-audits in a calendar year (by the
//! Taipei date of the audit) is flagged. Every act is a record in the log.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::text_enum;
use serde_json::json;

use super::findings::{self, FindingOrigin, NewFinding};
use super::records::{scope_of, Scope};
use super::retention::own_act;
use super::{chain, AuditError};
use crate::schema::{audit_records, self_audit_items, self_audits};

/// 附件三: 花蓮縣戶政事務所應用移民資訊內部稽核紀錄表, the agency's own checklist, verbatim.
pub const ANNEX_3_ITEMS: &[&str] = &[
    "帳號申請是否依規定辦理。",
    "使用者職務異動，是否依規定終止帳號使用權限。",
    "是否至少指定一名承辦人員，管理機關人員使用者帳號申請及註銷事宜。",
    "使用人員（機關）依「花蓮縣戶政機關應用移民資訊連結作業管理要點」第四點使用移民署入出境查詢作業系統，是否逐案填寫查詢紀錄表，於年度結束後裝釘成冊，並保存五年。",
    "每月十日前是否下載上一月份之主管稽核月明細表，查核查詢紀錄表使用者查詢目的與業務是否相符；主管稽核月明細表至少保存五年。",
    "處理個人資料之安全維護措施及資料安全管制作業，是否符合「花蓮縣戶政機關應用移民資訊連結作業管理要點」。",
    "應用移民資料日誌相關查詢文件保存年限至少5年。",
];

/// 附件四: 花蓮縣政府稽核所屬戶政事務所使用應用移民資訊內部辦理情形紀錄表, the county's checklist for
/// its offices, verbatim: 附件三's items and whether the office ran its self-audits.
pub const ANNEX_4_ITEMS: &[&str] = &[
    "帳號申請是否依規定辦理。",
    "使用者職務異動，是否依規定終止帳號使用權限。",
    "是否至少指定一名承辦人員，管理機關人員使用者帳號申請及註銷事宜。",
    "使用人員（機關）依「花蓮縣戶政機關應用移民資訊連結作業管理要點」第四點使用移民署入出境查詢作業系統，是否逐案填寫查詢紀錄表，於年度結束後裝釘成冊，並保存五年。",
    "每月十日前是否下載上一月份之主管稽核月明細表，查核查詢紀錄表使用者查詢目的與業務是否相符；主管稽核月明細表至少保存五年。",
    "處理個人資料之安全維護措施及資料安全管制作業，是否符合「花蓮縣戶政機關應用移民資訊連結作業管理要點」。",
    "應用移民資料日誌相關查詢文件保存年限至少5年。",
    "每年是否至少辦理二次以上自主稽核作業。",
];

/// Completed self-audits an agency owes in a calendar year (002 pt 12).
pub const REQUIRED_PER_YEAR: i64 = 2;

/// Longest explanation, audited unit or signer's name kept.
pub const MAX_TEXT: usize = 2000;
const MAX_NAME: usize = 100;
const MAX_AGENCY: usize = 32;

/// A signature other than the last one (the last one is `kind::AUDIT_SELF_AUDIT_COMPLETED`).
pub const SELF_AUDIT_SIGNED: &str = kind::AUDIT_SELF_AUDIT_SIGNED;

/// Who records self-audits: the agency's auditor or account manager (SPEC: the account manager
/// "runs self-audits"), or the immigration agency's reviewer for any.
pub const RECORDERS: &[&str] = &[roles::AUDITOR, roles::ACCOUNT_MANAGER, roles::NIA_REVIEWER];

/// Who reads self-audits: the log's readers and the agency head who signs them, each their own
/// agency's; the immigration agency's reviewer every agency's.
pub const SELF_AUDIT_READERS: &[&str] = &[
    roles::AUDITOR,
    roles::ACCOUNT_MANAGER,
    roles::ETHICS_OFFICER,
    roles::NIA_REVIEWER,
    roles::UNIT_SUPERVISOR,
    roles::AGENCY_HEAD,
];

text_enum! {
    /// Which checklist a self-audit follows.
    pub enum SelfAuditForm {
        /// 附件三: the agency audits itself.
        Annex3 = "annex_3",
        /// 附件四: the county government audits one of its household-registration offices.
        Annex4 = "annex_4",
    }
}

impl SelfAuditForm {
    /// The form's checklist, item 1 first.
    pub fn items(self) -> &'static [&'static str] {
        match self {
            SelfAuditForm::Annex3 => ANNEX_3_ITEMS,
            SelfAuditForm::Annex4 => ANNEX_4_ITEMS,
        }
    }

    /// The text of item `number` (1-based).
    pub fn item(self, number: i32) -> Option<&'static str> {
        usize::try_from(number).ok().and_then(|n| n.checked_sub(1)).and_then(|i| self.items().get(i).copied())
    }

    /// The form's name in the seed.
    pub fn name_zh(self) -> &'static str {
        match self {
            SelfAuditForm::Annex3 => "附件三",
            SelfAuditForm::Annex4 => "附件四",
        }
    }
}

text_enum! {
    /// A self-audit's life: recorded as a draft, completed by its third signature.
    pub enum SelfAuditStatus {
        Draft = "draft",
        Completed = "completed",
    }
}

impl SelfAuditStatus {
    /// The one judge of status changes: draft → completed; a completed self-audit changes no more.
    pub fn transition(self, to: SelfAuditStatus) -> Result<SelfAuditStatus, AuditError> {
        match (self, to) {
            (SelfAuditStatus::Draft, SelfAuditStatus::Completed) => Ok(to),
            (from, to) => Err(AuditError::Conflict {
                code: "self_audit_completed",
                detail: format!("a {from} self-audit cannot become {to}"),
            }),
        }
    }
}

text_enum! {
    /// In which capacity someone signs.
    pub enum SignerCapacity {
        /// 稽核人員, an auditor.
        Auditor = "auditor",
        /// 股長 (附件三) / 受稽核單位系統管理人員 (附件四), a unit supervisor.
        SectionChief = "section_chief",
        /// 單位主管 (附件三) / 受稽核單位主管 (附件四), the agency head.
        UnitHead = "unit_head",
    }
}

impl SignerCapacity {
    /// The role a signer in this capacity holds.
    pub fn role(self) -> &'static [&'static str] {
        match self {
            SignerCapacity::Auditor => &[roles::AUDITOR],
            SignerCapacity::SectionChief => &[roles::UNIT_SUPERVISOR],
            SignerCapacity::UnitHead => &[roles::AGENCY_HEAD],
        }
    }

    /// The signature line's label on the form.
    pub fn label_zh(self, form: SelfAuditForm) -> &'static str {
        match (form, self) {
            (_, SignerCapacity::Auditor) => "稽核人員",
            (SelfAuditForm::Annex3, SignerCapacity::SectionChief) => "股長",
            (SelfAuditForm::Annex3, SignerCapacity::UnitHead) => "單位主管",
            (SelfAuditForm::Annex4, SignerCapacity::SectionChief) => "受稽核單位系統管理人員",
            (SelfAuditForm::Annex4, SignerCapacity::UnitHead) => "受稽核單位主管",
        }
    }
}

/// A self-audit as stored.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = self_audits)]
pub struct SelfAudit {
    pub id: String,
    pub agency: String,
    pub form: SelfAuditForm,
    pub audited_unit: Option<String>,
    pub audit_date: NaiveDate,
    pub status: SelfAuditStatus,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub auditor_name: Option<String>,
    pub section_chief_name: Option<String>,
    pub unit_head_name: Option<String>,
    pub completed_at: Option<NaiveDateTime>,
}

impl SelfAudit {
    /// The name signed in `capacity`, if signed.
    pub fn signed_name(&self, capacity: SignerCapacity) -> Option<&str> {
        match capacity {
            SignerCapacity::Auditor => self.auditor_name.as_deref(),
            SignerCapacity::SectionChief => self.section_chief_name.as_deref(),
            SignerCapacity::UnitHead => self.unit_head_name.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = self_audit_items)]
struct ItemRow {
    item_no: i32,
    answer: Option<bool>,
    explanation: Option<String>,
}

/// One answer as given: the item's number (1-based), yes or no, and the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemAnswer {
    pub item: i32,
    pub answer: bool,
    pub explanation: Option<String>,
}

/// A self-audit to record.
#[derive(Debug, Clone)]
pub struct NewSelfAudit {
    /// The audited agency; an auditor's own when none, the immigration agency's reviewer names it.
    pub agency: Option<String>,
    pub form: SelfAuditForm,
    /// 受稽核單位: required on 附件四.
    pub audited_unit: Option<String>,
    /// 稽核日期, a Taipei date not in the future.
    pub audit_date: NaiveDate,
    pub items: Vec<ItemAnswer>,
}

/// One checklist item as answered.
#[derive(Debug, Clone, PartialEq)]
pub struct AnsweredItem {
    pub number: i32,
    pub text: &'static str,
    pub answer: Option<bool>,
    pub explanation: Option<String>,
    /// The finding a "no" opened.
    pub finding_id: Option<String>,
}

/// A self-audit with its answers.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfAuditDetail {
    pub audit: SelfAudit,
    pub items: Vec<AnsweredItem>,
}

/// The self-audits of an agency in a calendar year, and whether it fell below the minimum.
#[derive(Debug, Clone, PartialEq)]
pub struct YearOfSelfAudits {
    pub agency: String,
    pub year: i32,
    pub completed: i64,
    pub required: i64,
    /// Fewer than [`REQUIRED_PER_YEAR`] completed (R-AUD-05).
    pub below_minimum: bool,
    pub items: Vec<SelfAudit>,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> AuditError {
    AuditError::Invalid { field: field.into(), detail: detail.into() }
}

/// A trimmed text of at most `max` characters; line breaks and tabs allowed when `multiline`.
fn text(field: &str, value: &str, max: usize, multiline: bool) -> Result<String, AuditError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// The answers checked against the form: every item exactly once, a "no" explained. In item order.
fn checked_answers(form: SelfAuditForm, items: &[ItemAnswer]) -> Result<Vec<ItemAnswer>, AuditError> {
    let count = form.items().len();
    let mut seen = BTreeSet::new();
    let mut answers = Vec::with_capacity(count);
    for (i, given) in items.iter().enumerate() {
        if form.item(given.item).is_none() {
            return Err(invalid(
                format!("items[{i}].item"),
                format!("{} has items 1 to {count}; there is no item {}", form.name_zh(), given.item),
            ));
        }
        if !seen.insert(given.item) {
            return Err(invalid(format!("items[{i}].item"), format!("item {} is answered twice", given.item)));
        }
        let field = format!("items[{i}].explanation");
        let explanation = match given.explanation.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            Some(explanation) => Some(text(&field, explanation, MAX_TEXT, true)?),
            None if !given.answer => return Err(invalid(field, "a \"no\" needs an explanation (查核情形說明)")),
            None => None,
        };
        answers.push(ItemAnswer { item: given.item, answer: given.answer, explanation });
    }
    let missing: Vec<String> = (1..=count as i32).filter(|n| !seen.contains(n)).map(|n| n.to_string()).collect();
    if !missing.is_empty() {
        return Err(invalid(
            "items",
            format!("every item of {} is answered; missing: {}", form.name_zh(), missing.join(", ")),
        ));
    }
    answers.sort_by_key(|a| a.item);
    Ok(answers)
}

/// The agency the caller records a self-audit for.
fn recorded_agency(caller: &Caller, asked: Option<&str>) -> Result<String, AuditError> {
    if caller.has(roles::NIA_REVIEWER) {
        return match asked {
            Some(agency) => text("agency", agency, MAX_AGENCY, false),
            None => Err(invalid("agency", "the immigration agency names the audited agency")),
        };
    }
    if !caller.has_any(RECORDERS) {
        return Err(AuditError::RoleRequired { roles: RECORDERS });
    }
    match asked.map(str::trim) {
        Some(agency) if agency != caller.agency.as_str() => Err(AuditError::OtherAgency),
        _ => Ok(caller.agency.to_string()),
    }
}

/// Records a self-audit as a draft: its answers, a finding for each "no" (with the ethics and IT
/// units notified), and its record in the log, in one transaction.
pub fn record(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewSelfAudit,
) -> Result<SelfAuditDetail, AuditError> {
    let agency = recorded_agency(caller, new.agency.as_deref())?;
    let audited_unit = match new.audited_unit.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(unit) => Some(text("audited_unit", unit, MAX_NAME, false)?),
        None if new.form == SelfAuditForm::Annex4 => {
            return Err(invalid("audited_unit", "附件四 names the audited unit (受稽核單位)"))
        }
        None => None,
    };
    let today = business_date(now);
    if new.audit_date > today {
        return Err(invalid("audit_date", format!("must not be after today ({today}, Asia/Taipei)")));
    }
    if new.audit_date.year() < 1912 {
        return Err(invalid("audit_date", "must be in the Republic of China calendar (1912 or later)"));
    }
    let answers = checked_answers(new.form, &new.items)?;
    let audit = SelfAudit {
        id: uuid::Uuid::now_v7().to_string(),
        agency,
        form: new.form,
        audited_unit,
        audit_date: new.audit_date,
        status: SelfAuditStatus::Draft,
        created_by: caller.user_id.to_string(),
        created_at: to_db(now),
        auditor_name: None,
        section_chief_name: None,
        unit_head_name: None,
        completed_at: None,
    };
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        diesel::insert_into(self_audits::table)
            .values((
                self_audits::id.eq(&audit.id),
                self_audits::agency.eq(&audit.agency),
                self_audits::form.eq(audit.form),
                self_audits::audited_unit.eq(&audit.audited_unit),
                self_audits::audit_date.eq(audit.audit_date),
                self_audits::status.eq(audit.status),
                self_audits::created_by.eq(&audit.created_by),
                self_audits::created_at.eq(audit.created_at),
            ))
            .execute(conn)?;
        // One row at a time: a checklist has at most eight, and the backend-generic connection
        // takes no batch insert.
        for a in &answers {
            diesel::insert_into(self_audit_items::table)
                .values((
                    self_audit_items::self_audit_id.eq(&audit.id),
                    self_audit_items::item_no.eq(a.item),
                    self_audit_items::answer.eq(Some(a.answer)),
                    self_audit_items::explanation.eq(a.explanation.as_deref()),
                ))
                .execute(conn)?;
        }
        let mut items = Vec::with_capacity(answers.len());
        for answer in &answers {
            let text = audit.form.item(answer.item).unwrap_or_default();
            let finding_id = if answer.answer {
                None
            } else {
                let explanation = answer.explanation.as_deref().unwrap_or_default();
                let finding = findings::open_locked(
                    conn,
                    now,
                    caller,
                    NewFinding {
                        agency: audit.agency.clone(),
                        unit: None,
                        origin: FindingOrigin::SelfAudit,
                        origin_ref: Some(format!("{}/{}", audit.id, answer.item)),
                        description: format!(
                            "自主稽核（{}，稽核日期 {}{}）第{}項「{}」查核結果為否：{}",
                            audit.form.name_zh(),
                            audit.audit_date,
                            audit.audited_unit.as_deref().map(|u| format!("，受稽核單位 {u}")).unwrap_or_default(),
                            answer.item,
                            text,
                            explanation
                        ),
                        deadline: None,
                    },
                )?;
                Some(finding.id)
            };
            items.push(AnsweredItem {
                number: answer.item,
                text,
                answer: Some(answer.answer),
                explanation: answer.explanation.clone(),
                finding_id,
            });
        }
        let payload = json!({
            "self_audit_id": audit.id,
            "form": audit.form,
            "audited_unit": audit.audited_unit,
            "audit_date": audit.audit_date,
            "items": items.iter().map(|i| json!({
                "item": i.number,
                "answer": i.answer,
                "explanation": i.explanation,
                "finding_id": i.finding_id,
            })).collect::<Vec<_>>(),
        });
        let act =
            own_act(kind::AUDIT_SELF_AUDIT_RECORDED, now, Some(caller), Some(audit.agency.clone()), &audit.id, payload);
        chain::append_locked(conn, now, &[act])?;
        Ok(SelfAuditDetail { audit: audit.clone(), items })
    })
}

/// The capacities already signed, with the user who signed each, from the log's signature records.
fn signers(conn: &mut DbConn, id: &str) -> Result<Vec<(SignerCapacity, String)>, AuditError> {
    let records: Vec<(Option<String>, String)> = audit_records::table
        .filter(audit_records::correlation_id.eq(id))
        .filter(audit_records::kind.eq(SELF_AUDIT_SIGNED))
        .filter(audit_records::source.eq(crate::SERVICE))
        .select((audit_records::actor_user_id, audit_records::payload))
        .order(audit_records::sequence.asc())
        .load(conn)?;
    Ok(records
        .into_iter()
        .filter_map(|(actor, payload)| {
            let payload: serde_json::Value = serde_json::from_str(&payload).ok()?;
            let capacity = payload.get("as")?.as_str()?.parse().ok()?;
            Some((capacity, actor?))
        })
        .collect())
}

fn stored(conn: &mut DbConn, id: &str) -> Result<Option<SelfAudit>, AuditError> {
    Ok(self_audits::table.filter(self_audits::id.eq(id)).select(SelfAudit::as_select()).first(conn).optional()?)
}

/// Signs a self-audit in `capacity`: an auditor as 稽核人員, a unit supervisor as 股長, the agency
/// head as 單位主管, each of the audited agency, three different people, each capacity once. The
/// third signature completes it. Recorded in the log with the signer's user id.
pub fn sign(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    capacity: SignerCapacity,
    name: &str,
) -> Result<SelfAudit, AuditError> {
    if !caller.has_any(capacity.role()) {
        return Err(AuditError::RoleRequired { roles: capacity.role() });
    }
    let name = text("name", name, MAX_NAME, false)?;
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let audit = stored(conn, id)?.ok_or(AuditError::NotFound("the self-audit"))?;
        if audit.agency != caller.agency.as_str() {
            return Err(if reach(caller).is_ok_and(|scope| scope == Scope::Everything) {
                AuditError::OtherAgency
            } else {
                AuditError::NotFound("the self-audit")
            });
        }
        if audit.signed_name(capacity).is_some() {
            return Err(AuditError::Conflict {
                code: "already_signed",
                detail: format!("this self-audit was signed as {} already", capacity.label_zh(audit.form)),
            });
        }
        let signed = signers(conn, id)?;
        if let Some((other, _)) = signed.iter().find(|(_, user)| user == caller.user_id.as_str()) {
            return Err(AuditError::Conflict {
                code: "same_signer",
                detail: format!(
                    "three different people sign a self-audit; you signed it as {} already",
                    other.label_zh(audit.form)
                ),
            });
        }
        let completes = SignerCapacity::ALL.iter().all(|c| *c == capacity || audit.signed_name(*c).is_some());
        let status = if completes { audit.status.transition(SelfAuditStatus::Completed)? } else { audit.status };
        let completed_at = completes.then(|| to_db(now));
        let target = self_audits::table.filter(self_audits::id.eq(id));
        match capacity {
            SignerCapacity::Auditor => diesel::update(target).set(self_audits::auditor_name.eq(&name)).execute(conn)?,
            SignerCapacity::SectionChief => {
                diesel::update(target).set(self_audits::section_chief_name.eq(&name)).execute(conn)?
            }
            SignerCapacity::UnitHead => {
                diesel::update(target).set(self_audits::unit_head_name.eq(&name)).execute(conn)?
            }
        };
        diesel::update(self_audits::table.filter(self_audits::id.eq(id)))
            .set((self_audits::status.eq(status), self_audits::completed_at.eq(completed_at)))
            .execute(conn)?;
        let act = if completes {
            let mut all: serde_json::Map<String, serde_json::Value> =
                signed.into_iter().map(|(c, user)| (c.to_string(), json!(user))).collect();
            all.insert(capacity.to_string(), json!(caller.user_id.as_str()));
            let payload = json!({
                "self_audit_id": id,
                "as": capacity,
                "name": name,
                "signers": all,
                "audit_date": audit.audit_date,
                "form": audit.form,
            });
            own_act(kind::AUDIT_SELF_AUDIT_COMPLETED, now, Some(caller), Some(audit.agency.clone()), id, payload)
        } else {
            let payload = json!({ "self_audit_id": id, "as": capacity, "name": name });
            own_act(SELF_AUDIT_SIGNED, now, Some(caller), Some(audit.agency.clone()), id, payload)
        };
        chain::append_locked(conn, now, &[act])?;
        stored(conn, id)?.ok_or(AuditError::NotFound("the self-audit"))
    })
}

/// Who may read self-audits, and how far: the immigration agency every agency's, the others their
/// own agency's (a unit supervisor and the agency head too: they sign them).
fn reach(caller: &Caller) -> Result<Scope, AuditError> {
    if !caller.has_any(SELF_AUDIT_READERS) {
        return Err(AuditError::RoleRequired { roles: SELF_AUDIT_READERS });
    }
    Ok(match scope_of(caller) {
        Scope::Everything => Scope::Everything,
        _ => Scope::Agency(caller.agency.to_string()),
    })
}

/// A self-audit with its answers (and the findings they opened), if the caller may read it.
pub fn get(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<SelfAuditDetail, AuditError> {
    let scope = reach(caller)?;
    let audit = stored(conn, id)?
        .filter(|audit| scope.covers(&audit.agency, None))
        .ok_or(AuditError::NotFound("the self-audit"))?;
    let rows: Vec<ItemRow> = self_audit_items::table
        .filter(self_audit_items::self_audit_id.eq(id))
        .order(self_audit_items::item_no.asc())
        .select(ItemRow::as_select())
        .load(conn)?;
    let refs: Vec<String> = rows.iter().map(|row| format!("{id}/{}", row.item_no)).collect();
    let opened: Vec<(Option<String>, String)> = crate::schema::findings::table
        .filter(crate::schema::findings::origin.eq(FindingOrigin::SelfAudit))
        .filter(crate::schema::findings::origin_ref.eq_any(&refs))
        .select((crate::schema::findings::origin_ref, crate::schema::findings::id))
        .load(conn)?;
    let items = audit
        .form
        .items()
        .iter()
        .zip(1..)
        .map(|(text, number)| {
            let row = rows.iter().find(|row| row.item_no == number);
            let origin_ref = format!("{id}/{number}");
            AnsweredItem {
                number,
                text,
                answer: row.and_then(|r| r.answer),
                explanation: row.and_then(|r| r.explanation.clone()),
                finding_id: opened.iter().find(|(r, _)| r.as_deref() == Some(&origin_ref)).map(|(_, f)| f.clone()),
            }
        })
        .collect();
    Ok(SelfAuditDetail { audit, items })
}

/// An agency's self-audits in a calendar year (by the Taipei date of the audit; the current year at
/// `now` when none is named), how many were completed, and whether that is below the minimum of
/// two (R-AUD-05). The immigration agency names the agency; the others read their own.
pub fn year_of(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    agency: Option<&str>,
    year: Option<i32>,
) -> Result<YearOfSelfAudits, AuditError> {
    let agency = match reach(caller)? {
        Scope::Everything => match agency.map(str::trim).filter(|a| !a.is_empty()) {
            Some(agency) => text("agency", agency, MAX_AGENCY, false)?,
            None => return Err(invalid("agency", "the immigration agency names the agency")),
        },
        _ => match agency.map(str::trim) {
            Some(asked) if !asked.is_empty() && asked != caller.agency.as_str() => return Err(AuditError::OtherAgency),
            _ => caller.agency.to_string(),
        },
    };
    let year = year.unwrap_or_else(|| business_date(now).year());
    if !(1912..=9998).contains(&year) {
        return Err(invalid("year", "must be a year from 1912 (the Republic of China calendar) to 9998"));
    }
    let (Some(first), Some(next)) = (NaiveDate::from_ymd_opt(year, 1, 1), NaiveDate::from_ymd_opt(year + 1, 1, 1))
    else {
        return Err(invalid("year", "not a calendar year"));
    };
    let items: Vec<SelfAudit> = self_audits::table
        .filter(self_audits::agency.eq(&agency))
        .filter(self_audits::audit_date.ge(first))
        .filter(self_audits::audit_date.lt(next))
        .order((self_audits::audit_date.asc(), self_audits::created_at.asc(), self_audits::id.asc()))
        .select(SelfAudit::as_select())
        .load(conn)?;
    let completed = items.iter().filter(|a| a.status == SelfAuditStatus::Completed).count() as i64;
    Ok(YearOfSelfAudits {
        agency,
        year,
        completed,
        required: REQUIRED_PER_YEAR,
        below_minimum: completed < REQUIRED_PER_YEAR,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_aud_05_the_checklists_are_the_seeds() {
        assert_eq!(ANNEX_3_ITEMS.len(), 7);
        assert_eq!(ANNEX_4_ITEMS.len(), 8);
        assert_eq!(&ANNEX_4_ITEMS[..7], ANNEX_3_ITEMS, "附件四 is 附件三 and one more item");
        assert_eq!(SelfAuditForm::Annex4.item(8), Some("每年是否至少辦理二次以上自主稽核作業。"));
        assert_eq!(SelfAuditForm::Annex3.item(8), None);
        assert_eq!(SelfAuditForm::Annex3.item(0), None);
        assert_eq!(SelfAuditForm::Annex3.item(-1), None);
    }

    #[test]
    fn r_aud_05_a_self_audit_moves_only_from_draft_to_completed() {
        use SelfAuditStatus::*;
        assert_eq!(Draft.transition(Completed).unwrap(), Completed);
        for (from, to) in [(Completed, Completed), (Completed, Draft), (Draft, Draft)] {
            assert!(matches!(from.transition(to), Err(AuditError::Conflict { .. })), "{from} -> {to}");
        }
    }
}
