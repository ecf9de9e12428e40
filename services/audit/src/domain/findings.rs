//! Findings (R-AUD-07): a rule found violated, from a monthly review's "does not match", a sample, a
//! self-audit, or entered by hand. Opening one notifies the agency's ethics and IT units in the same
//! transaction ([`super::notifications`]), sets a remediation deadline, and is tracked to closure
//! with the reward or penalty recommended (seed 001 pt 7(5)). Every act is a record in the log.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use serde_json::json;

use super::records::{self, Scope};
use super::retention::own_act;
use super::{chain, notifications, AuditError};
use crate::schema::findings;

text_enum! {
    /// Where a finding came from.
    pub enum FindingOrigin {
        /// A lookup marked "does not match the business" in a monthly review (R-AUD-04).
        Review = "review",
        /// A sampled record the auditor found wrong (R-AUD-06).
        Sample = "sample",
        /// A self-audit item answered "no" (R-AUD-05).
        SelfAudit = "self_audit",
        /// Entered by hand (an inspection, a complaint, the immigration agency's notice).
        Manual = "manual",
    }
}

text_enum! {
    /// A finding's life: open → remediated → closed (or open → closed).
    pub enum FindingStatus {
        Open = "open",
        /// The remediation was recorded; it awaits closure.
        Remediated = "remediated",
        /// Closed with the reward or penalty recommended.
        Closed = "closed",
    }
}

text_enum! {
    /// What the closure recommends for those involved (seed 001 pt 7(5): 獎懲).
    pub enum Recommendation {
        Reward = "reward",
        Penalty = "penalty",
        /// Neither.
        NoAction = "none",
    }
}

/// The units told at once of every finding: the agency's ethics and IT units (R-AUD-07).
pub const NOTIFIED_ROLES: &[&str] = &[roles::ETHICS_OFFICER, roles::IT_OFFICER];

/// Days to remediate when the opener names no deadline.
pub const DEFAULT_REMEDIATION_DAYS: u64 = 30;

/// A finding as stored.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = findings)]
pub struct Finding {
    pub id: String,
    pub agency: String,
    pub unit: Option<String>,
    pub origin: FindingOrigin,
    pub origin_ref: Option<String>,
    pub description: String,
    pub opened_by: String,
    pub opened_at: NaiveDateTime,
    pub deadline: NaiveDate,
    pub status: FindingStatus,
    pub remediation: Option<String>,
    pub recommendation: Option<Recommendation>,
    pub recommendation_note: Option<String>,
    pub closed_by: Option<String>,
    pub closed_at: Option<NaiveDateTime>,
    pub overdue_flagged_at: Option<NaiveDateTime>,
}

/// A finding to open.
#[derive(Debug, Clone)]
pub struct NewFinding {
    pub agency: String,
    pub unit: Option<String>,
    pub origin: FindingOrigin,
    /// What it came from: the review entry (`report_id/lookup_id`), the sample record, the
    /// self-audit item.
    pub origin_ref: Option<String>,
    pub description: String,
    /// The remediation deadline (a Taipei date); by default [`DEFAULT_REMEDIATION_DAYS`] from today.
    pub deadline: Option<NaiveDate>,
}

/// Opens a finding inside the caller's transaction, which holds the chain lock
/// ([`chain::lock_chain`]): the row, the notification of the ethics and IT units, and its record in
/// the log, all or nothing.
pub fn open_locked(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    opened_by: &Caller,
    new: NewFinding,
) -> Result<Finding, AuditError> {
    let today = business_date(now);
    let deadline = match new.deadline {
        Some(deadline) if deadline < today => {
            return Err(AuditError::Invalid {
                field: "deadline".into(),
                detail: format!("must not be before today ({today})"),
            })
        }
        Some(deadline) => deadline,
        None => today.checked_add_days(Days::new(DEFAULT_REMEDIATION_DAYS)).unwrap_or(today),
    };
    let finding = Finding {
        id: uuid::Uuid::now_v7().to_string(),
        agency: new.agency,
        unit: new.unit,
        origin: new.origin,
        origin_ref: new.origin_ref,
        description: new.description,
        opened_by: opened_by.user_id.to_string(),
        opened_at: to_db(now),
        deadline,
        status: FindingStatus::Open,
        remediation: None,
        recommendation: None,
        recommendation_note: None,
        closed_by: None,
        closed_at: None,
        overdue_flagged_at: None,
    };
    diesel::insert_into(findings::table)
        .values((
            findings::id.eq(&finding.id),
            findings::agency.eq(&finding.agency),
            findings::unit.eq(&finding.unit),
            findings::origin.eq(finding.origin),
            findings::origin_ref.eq(&finding.origin_ref),
            findings::description.eq(&finding.description),
            findings::opened_by.eq(&finding.opened_by),
            findings::opened_at.eq(finding.opened_at),
            findings::deadline.eq(finding.deadline),
            findings::status.eq(finding.status),
        ))
        .execute(conn)?;
    notifications::enqueue(
        conn,
        now,
        notifications::Notice {
            agency: &finding.agency,
            unit: None,
            roles: NOTIFIED_ROLES,
            subject: format!("稽核發現 Audit finding {}", finding.id),
            body: format!(
                "A finding was opened ({}): {}\nRemediation is due by {}.",
                finding.origin, finding.description, finding.deadline
            ),
        },
    )?;
    let payload = json!({
        "finding_id": finding.id,
        "origin": finding.origin,
        "origin_ref": finding.origin_ref,
        "unit": finding.unit,
        "description": finding.description,
        "deadline": finding.deadline,
        "notified_roles": NOTIFIED_ROLES,
    });
    let act =
        own_act(kind::AUDIT_FINDING_OPENED, now, Some(opened_by), Some(finding.agency.clone()), &finding.id, payload);
    chain::append_locked(conn, now, &[act])?;
    Ok(finding)
}

// --- the lifecycle ---------------------------------------------------------------------------------

/// The `code` of every refusal of a status change (409).
pub const STATUS_CONFLICT: &str = "finding_status";

impl FindingStatus {
    /// The one place the lifecycle is decided: open → remediated, remediated → closed, and open →
    /// closed (the closure then says why, [`close`]). Anything else is a conflict. Every status write
    /// ([`remediate`], [`close`]) goes through here, and its UPDATE is guarded by the status the
    /// finding was read in, so of two acts racing on one finding only the first changes it.
    pub fn transition(self, to: FindingStatus) -> Result<FindingStatus, AuditError> {
        use FindingStatus::{Closed, Open, Remediated};
        match (self, to) {
            (Open, Remediated) | (Remediated, Closed) | (Open, Closed) => Ok(to),
            (Closed, _) => Err(AuditError::Conflict {
                code: STATUS_CONFLICT,
                detail: format!("the finding is closed already; it cannot become {to}"),
            }),
            (from, to) => Err(AuditError::Conflict {
                code: STATUS_CONFLICT,
                detail: format!("a {from} finding cannot become {to}"),
            }),
        }
    }
}

impl Finding {
    /// Past its remediation deadline (a Taipei date) and not closed.
    pub fn overdue_on(&self, today: NaiveDate) -> bool {
        self.deadline < today && self.status != FindingStatus::Closed
    }
}

// --- who may do what ---------------------------------------------------------------------------------

/// Who enters a finding by hand: the agency's auditors, ethics officers and account managers, and the
/// immigration agency's reviewer for any agency.
pub const OPENERS: &[&str] = &[roles::AUDITOR, roles::ETHICS_OFFICER, roles::ACCOUNT_MANAGER, roles::NIA_REVIEWER];
/// Who records the remediation: the agency's account manager or head.
pub const REMEDIATORS: &[&str] = &[roles::ACCOUNT_MANAGER, roles::AGENCY_HEAD];
/// Who closes a finding with a recommendation: the agency's auditors and ethics officers, and the
/// immigration agency's reviewer (seed 001 pt 7(5): 辦理查核之單位可依查核結果提出獎懲建議).
pub const CLOSERS: &[&str] = &[roles::AUDITOR, roles::ETHICS_OFFICER, roles::NIA_REVIEWER];
/// Who reads findings: the audit log's readers (each within their [`Scope`]), and the agency head
/// and IT officers of the agency, who remediate findings and are told of each.
pub const READERS: &[&str] = &[
    roles::AUDITOR,
    roles::ACCOUNT_MANAGER,
    roles::ETHICS_OFFICER,
    roles::NIA_REVIEWER,
    roles::UNIT_SUPERVISOR,
    roles::AGENCY_HEAD,
    roles::IT_OFFICER,
];
/// Who is told of an overdue finding: the ethics and IT units, and the account managers.
pub const OVERDUE_NOTIFIED_ROLES: &[&str] = &[roles::ETHICS_OFFICER, roles::IT_OFFICER, roles::ACCOUNT_MANAGER];

/// The findings a reader sees: the immigration agency every agency's, the agency-wide roles their
/// agency's, a unit supervisor their unit's.
fn reader_scope(caller: &Caller) -> Result<Scope, AuditError> {
    if !caller.has_any(READERS) {
        return Err(AuditError::RoleRequired { roles: READERS });
    }
    Ok(match records::scope_of(caller) {
        Scope::Unit { .. } if caller.has_any(&[roles::AGENCY_HEAD, roles::IT_OFFICER]) => {
            Scope::Agency(caller.agency.to_string())
        }
        scope => scope,
    })
}

/// Whether the caller acts on `finding`: their own agency's, or, for the immigration agency's
/// reviewer where `cross_agency`, any agency's.
fn acts_on(caller: &Caller, finding: &Finding, cross_agency: bool) -> bool {
    (cross_agency && caller.has(roles::NIA_REVIEWER)) || finding.agency == caller.agency.as_str()
}

// --- input ---------------------------------------------------------------------------------------------

/// Longest description, remediation or note kept.
pub const MAX_TEXT: usize = 2000;

/// A free text of 1..=`max` characters once trimmed; line breaks and tabs are kept, other control
/// characters refused.
fn text(field: &str, value: &str, max: usize) -> Result<String, AuditError> {
    let value = value.trim();
    let invalid = |detail: String| AuditError::Invalid { field: field.into(), detail };
    if value.is_empty() {
        return Err(invalid("is required".into()));
    }
    if value.chars().count() > max {
        return Err(invalid(format!("at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(invalid("must not contain control characters".into()));
    }
    Ok(value.to_owned())
}

/// A code (agency, unit): 1..=64 characters, no spaces or control characters.
fn code(field: &str, value: &str) -> Result<String, AuditError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 64 || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AuditError::Invalid { field: field.into(), detail: "must be a code of 1 to 64 characters".into() });
    }
    Ok(value.to_owned())
}

/// A business date as the API writes it: `YYYY-MM-DD`.
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, AuditError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| AuditError::Invalid { field: field.into(), detail: "must be a date written YYYY-MM-DD".into() })
}

/// A finding entered by hand, as asked for.
#[derive(Debug, Clone, Default)]
pub struct ManualFinding {
    /// Required of the immigration agency's reviewer; others may only name their own.
    pub agency: Option<String>,
    pub unit: Option<String>,
    pub description: String,
    /// The remediation deadline (a Taipei date, not before today); by default
    /// [`DEFAULT_REMEDIATION_DAYS`] from today.
    pub deadline: Option<NaiveDate>,
}

impl ManualFinding {
    fn parse(self, caller: &Caller) -> Result<NewFinding, AuditError> {
        if !caller.has_any(OPENERS) {
            return Err(AuditError::RoleRequired { roles: OPENERS });
        }
        let agency = match (self.agency.as_deref().map(str::trim), caller.has(roles::NIA_REVIEWER)) {
            (Some(agency), true) => code("agency", agency)?,
            (None, true) => {
                return Err(AuditError::Invalid {
                    field: "agency".into(),
                    detail: "name the agency the finding is about".into(),
                })
            }
            (Some(agency), false) if agency != caller.agency.as_str() => return Err(AuditError::OtherAgency),
            (_, false) => caller.agency.to_string(),
        };
        let unit = self.unit.as_deref().map(|unit| code("unit", unit)).transpose()?;
        let description = text("description", &self.description, MAX_TEXT)?;
        Ok(NewFinding {
            agency,
            unit,
            origin: FindingOrigin::Manual,
            origin_ref: None,
            description,
            deadline: self.deadline,
        })
    }
}

// --- acts ------------------------------------------------------------------------------------------------

/// Enters a finding by hand (origin `manual`): the row, the notice to the ethics and IT units and
/// its record in the log, in one transaction.
pub fn open(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    manual: ManualFinding,
) -> Result<Finding, AuditError> {
    let new = manual.parse(caller)?;
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        open_locked(conn, now, caller, new)
    })
}

/// Records the remediation: open → remediated, by the agency's account manager or head.
pub fn remediate(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    remediation: &str,
) -> Result<Finding, AuditError> {
    if !caller.has_any(REMEDIATORS) {
        return Err(AuditError::RoleRequired { roles: REMEDIATORS });
    }
    let remediation = text("remediation", remediation, MAX_TEXT)?;
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let finding = find(conn, id)?.filter(|f| acts_on(caller, f, false)).ok_or(NOT_FOUND)?;
        let to = finding.status.transition(FindingStatus::Remediated)?;
        // Guarded by the status read: of two acts racing on one finding only the first changes it.
        let updated =
            diesel::update(findings::table.filter(findings::id.eq(id)).filter(findings::status.eq(finding.status)))
                .set((findings::status.eq(to), findings::remediation.eq(&remediation)))
                .execute(conn)?;
        guarded(updated)?;
        let payload = json!({
            "finding_id": id,
            "from": finding.status,
            "to": to,
            "remediation": remediation,
        });
        let act = own_act(kind::AUDIT_FINDING_UPDATED, now, Some(caller), Some(finding.agency.clone()), id, payload);
        chain::append_locked(conn, now, &[act])?;
        find(conn, id)?.ok_or(NOT_FOUND)
    })
}

/// A closure: the reward or penalty recommended for those involved, and a note (required when the
/// finding was never remediated: why it closes anyway).
#[derive(Debug, Clone)]
pub struct Closure {
    pub recommendation: Recommendation,
    pub note: Option<String>,
}

/// Closes a finding (remediated → closed, or open → closed with a note saying why), by the agency's
/// auditor or ethics officer or the immigration agency's reviewer; the closer is recorded.
pub fn close(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    closure: Closure,
) -> Result<Finding, AuditError> {
    if !caller.has_any(CLOSERS) {
        return Err(AuditError::RoleRequired { roles: CLOSERS });
    }
    let note = closure
        .note
        .as_deref()
        .filter(|note| !note.trim().is_empty())
        .map(|note| text("note", note, MAX_TEXT))
        .transpose()?;
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let finding = find(conn, id)?.filter(|f| acts_on(caller, f, true)).ok_or(NOT_FOUND)?;
        let to = finding.status.transition(FindingStatus::Closed)?;
        if finding.status == FindingStatus::Open && note.is_none() {
            return Err(AuditError::Invalid {
                field: "note".into(),
                detail: "a finding closed without a recorded remediation needs a note saying why".into(),
            });
        }
        // Guarded by the status read: of two acts racing on one finding only the first changes it.
        let updated =
            diesel::update(findings::table.filter(findings::id.eq(id)).filter(findings::status.eq(finding.status)))
                .set((
                    findings::status.eq(to),
                    findings::recommendation.eq(closure.recommendation),
                    findings::recommendation_note.eq(&note),
                    findings::closed_by.eq(caller.user_id.as_str()),
                    findings::closed_at.eq(to_db(now)),
                ))
                .execute(conn)?;
        guarded(updated)?;
        let payload = json!({
            "finding_id": id,
            "from": finding.status,
            "to": to,
            "recommendation": closure.recommendation,
            "note": note,
            "opened_by": finding.opened_by,
        });
        let act = own_act(kind::AUDIT_FINDING_UPDATED, now, Some(caller), Some(finding.agency.clone()), id, payload);
        chain::append_locked(conn, now, &[act])?;
        find(conn, id)?.ok_or(NOT_FOUND)
    })
}

/// What one sweep flagged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OverdueSweep {
    /// The findings flagged by this run (none were flagged before).
    pub flagged: Vec<String>,
}

/// Flags every finding past its deadline (a Taipei date before today) and not closed that is not
/// flagged yet: sets `overdue_flagged_at`, tells the agency's ethics and IT units and account
/// managers, and records `audit.finding_overdue`, all in one transaction. Idempotent: a second run
/// flags nothing. Called by the monthly job and its timer.
pub fn flag_overdue(conn: &mut DbConn, now: DateTime<Utc>) -> Result<OverdueSweep, AuditError> {
    let today = business_date(now);
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let due: Vec<Finding> = findings::table
            .filter(findings::overdue_flagged_at.is_null())
            .filter(findings::status.ne(FindingStatus::Closed))
            .filter(findings::deadline.lt(today))
            .order((findings::opened_at.asc(), findings::id.asc()))
            .select(Finding::as_select())
            .load(conn)?;
        let mut acts = Vec::with_capacity(due.len());
        let mut flagged = Vec::with_capacity(due.len());
        for finding in due {
            let updated = diesel::update(
                findings::table.filter(findings::id.eq(&finding.id)).filter(findings::overdue_flagged_at.is_null()),
            )
            .set(findings::overdue_flagged_at.eq(to_db(now)))
            .execute(conn)?;
            if updated == 0 {
                continue;
            }
            let days = (today - finding.deadline).num_days();
            notifications::enqueue(
                conn,
                now,
                notifications::Notice {
                    agency: &finding.agency,
                    unit: None,
                    roles: OVERDUE_NOTIFIED_ROLES,
                    subject: format!("稽核發現逾期未改善 Audit finding overdue {}", finding.id),
                    body: format!(
                        "The finding opened on {} ({}) was due for remediation by {} and is {} ({days} {} overdue): {}",
                        business_date(immilink_shared::clock::from_db(finding.opened_at)),
                        finding.origin,
                        finding.deadline,
                        finding.status,
                        if days == 1 { "day" } else { "days" },
                        finding.description
                    ),
                },
            )?;
            let payload = json!({
                "finding_id": finding.id,
                "deadline": finding.deadline,
                "status": finding.status,
                "days_overdue": days,
                "notified_roles": OVERDUE_NOTIFIED_ROLES,
            });
            acts.push(own_act(
                kind::AUDIT_FINDING_OVERDUE,
                now,
                None,
                Some(finding.agency.clone()),
                &finding.id,
                payload,
            ));
            flagged.push(finding.id);
        }
        if !acts.is_empty() {
            chain::append_locked(conn, now, &acts)?;
        }
        Ok(OverdueSweep { flagged })
    })
}

// --- reads ---------------------------------------------------------------------------------------------------

const NOT_FOUND: AuditError = AuditError::NotFound("the finding");

fn find(conn: &mut DbConn, id: &str) -> Result<Option<Finding>, AuditError> {
    Ok(findings::table.filter(findings::id.eq(id)).select(Finding::as_select()).first(conn).optional()?)
}

/// A status write that changed no row: the finding left the status it was read in (every status
/// write is guarded by it).
fn guarded(updated: usize) -> Result<(), AuditError> {
    if updated == 0 {
        return Err(AuditError::Conflict {
            code: STATUS_CONFLICT,
            detail: "the finding was changed by someone else meanwhile; read it again".into(),
        });
    }
    Ok(())
}

/// One finding, if the caller may read it (another agency's, or unit's, is "not found").
pub fn get(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<Finding, AuditError> {
    let scope = reader_scope(caller)?;
    find(conn, id)?.filter(|f| scope.covers(&f.agency, f.unit.as_deref())).ok_or(NOT_FOUND)
}

/// Filters of the list of findings.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub agency: Option<String>,
    pub status: Option<FindingStatus>,
    /// Only overdue ones (`true`) or only the others (`false`), as of `today`.
    pub overdue: Option<bool>,
}

/// The findings the caller may read, newest first, a page at a time (`cursor`: the last id of the
/// previous page).
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &FindingFilter,
    page: &Page<String>,
) -> Result<Vec<Finding>, AuditError> {
    let scope = reader_scope(caller)?;
    let asked = filter.agency.as_deref().map(|agency| code("agency", agency)).transpose()?;
    let Some(narrowed) = scope.narrow(asked, None)? else {
        return Ok(Vec::new());
    };
    let mut query = findings::table.select(Finding::as_select()).into_boxed();
    if let Some(agency) = narrowed.agency {
        query = query.filter(findings::agency.eq(agency));
    }
    if let Some(unit) = narrowed.unit {
        query = query.filter(findings::unit.eq(unit));
    }
    if let Some(status) = filter.status {
        query = query.filter(findings::status.eq(status));
    }
    let today = business_date(now);
    match filter.overdue {
        Some(true) => {
            query = query.filter(findings::deadline.lt(today)).filter(findings::status.ne(FindingStatus::Closed))
        }
        Some(false) => {
            query = query.filter(findings::deadline.ge(today).or(findings::status.eq(FindingStatus::Closed)))
        }
        None => {}
    }
    if let Some(before) = &page.cursor {
        query = query.filter(findings::id.lt(before.clone()));
    }
    Ok(query.order(findings::id.desc()).limit(page.limit).load(conn)?)
}
