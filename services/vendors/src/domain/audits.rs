//! Audits of vendors and their findings (R-VEN-05; seed 001 pt 8): a vendor accepts audits, and each
//! finding is tracked to closure like the agency's own (R-AUD-07): a remediation deadline (a Taipei
//! date), open → remediated → closed through one transition, the remediation recorded, closed by
//! someone other than who recorded the remediation, and flagged once by the sweep when its deadline
//! passes before it is closed ([`flag_overdue`]).

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UserId};
use serde_json::json;

use super::vendors;
use super::{
    new_id, optional_text, record, record_system, require_manager, text, FindingId, VendorAuditId, VendorId,
    VendorsError,
};
use crate::schema::{vendor_audits, vendor_findings};

text_enum! {
    /// A finding's life: open → remediated → closed, judged by `FindingStatus::transition`.
    pub enum FindingStatus {
        Open = "open",
        /// The vendor's remediation was recorded; it awaits closure by someone else.
        Remediated = "remediated",
        /// Closed: the remediation was checked.
        Closed = "closed",
    }
}

impl FindingStatus {
    /// The one place the lifecycle is decided: open → remediated → closed, nothing else (a finding is
    /// closed only once its remediation is on record). Every status write goes through here, and its
    /// UPDATE is guarded by the status the finding was read in.
    pub fn transition(self, to: FindingStatus) -> Result<FindingStatus, VendorsError> {
        use FindingStatus::{Closed, Open, Remediated};
        match (self, to) {
            (Open, Remediated) | (Remediated, Closed) => Ok(to),
            (from, to) => Err(VendorsError::IllegalFindingMove { from, to }),
        }
    }
}

/// Days to remediate when a finding names no deadline (as the agency's own findings, R-AUD-07).
pub const DEFAULT_REMEDIATION_DAYS: u64 = 30;

/// An audit of a vendor.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = vendor_audits)]
pub struct VendorAudit {
    pub id: VendorAuditId,
    pub vendor_id: VendorId,
    pub agency: AgencyCode,
    /// The day of the audit (a Taipei date).
    pub audited_on: NaiveDate,
    /// Who audited (a person or a unit, as written).
    pub auditor: String,
    pub scope: String,
    pub summary: String,
    pub recorded_by: UserId,
    pub recorded_at: NaiveDateTime,
}

/// A finding of a vendor audit.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = vendor_findings)]
pub struct Finding {
    pub id: FindingId,
    pub audit_id: VendorAuditId,
    pub vendor_id: VendorId,
    pub agency: AgencyCode,
    pub description: String,
    /// The remediation deadline (a Taipei date).
    pub deadline: NaiveDate,
    pub status: FindingStatus,
    pub remediation: Option<String>,
    pub remediated_by: Option<UserId>,
    pub remediated_at: Option<NaiveDateTime>,
    pub closure_note: Option<String>,
    pub closed_by: Option<UserId>,
    pub closed_at: Option<NaiveDateTime>,
    /// When the sweep flagged it as past its deadline.
    pub overdue_flagged_at: Option<NaiveDateTime>,
    pub opened_at: NaiveDateTime,
}

impl Finding {
    /// Past its deadline (a Taipei date before `today`) and not closed.
    pub fn overdue_on(&self, today: NaiveDate) -> bool {
        self.deadline < today && self.status != FindingStatus::Closed
    }
}

/// An audit with its findings.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditWithFindings {
    pub audit: VendorAudit,
    pub findings: Vec<Finding>,
}

// --- input ------------------------------------------------------------------------------------------

const MAX_AUDITOR: usize = 200;
const MAX_TEXT: usize = 4000;
const MAX_FINDINGS: usize = 100;

/// A business date as the API writes it: `YYYY-MM-DD`.
pub fn parse_date(value: Option<String>, field: &str) -> Result<NaiveDate, VendorsError> {
    let value =
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| VendorsError::missing(field))?;
    NaiveDate::parse_from_str(&value, "%Y-%m-%d")
        .map_err(|_| VendorsError::invalid(field, "must be a date written YYYY-MM-DD"))
}

/// One finding as sent.
#[derive(Debug, Clone, Default)]
pub struct FindingInput {
    pub description: Option<String>,
    pub deadline: Option<String>,
}

/// A finding to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFinding {
    pub description: String,
    /// By default [`DEFAULT_REMEDIATION_DAYS`] after the day it is recorded.
    pub deadline: Option<NaiveDate>,
}

/// An audit to record, built at the edge.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub vendor_id: VendorId,
    pub audited_on: NaiveDate,
    pub auditor: String,
    pub scope: String,
    pub summary: String,
    pub findings: Vec<NewFinding>,
}

impl NewAudit {
    /// The audit from what the caller sent; each refusal names its field (`findings[2].deadline`).
    /// Dates are checked against today by [`record_audit`].
    pub fn parse(
        vendor_id: VendorId,
        audited_on: Option<String>,
        auditor: Option<String>,
        scope: Option<String>,
        summary: Option<String>,
        findings: Option<Vec<FindingInput>>,
    ) -> Result<Self, VendorsError> {
        let audited_on = parse_date(audited_on, "audited_on")?;
        let auditor = text(auditor, "auditor", MAX_AUDITOR)?;
        let scope = text(scope, "scope", MAX_TEXT)?;
        let summary = text(summary, "summary", MAX_TEXT)?;
        let findings = findings.unwrap_or_default();
        if findings.len() > MAX_FINDINGS {
            return Err(VendorsError::invalid("findings", format!("at most {MAX_FINDINGS} findings per audit")));
        }
        let findings = findings
            .into_iter()
            .enumerate()
            .map(|(i, finding)| {
                let description = text(finding.description, &format!("findings[{i}].description"), MAX_TEXT)?;
                let deadline = finding
                    .deadline
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| parse_date(Some(d), &format!("findings[{i}].deadline")))
                    .transpose()?;
                Ok(NewFinding { description, deadline })
            })
            .collect::<Result<Vec<_>, VendorsError>>()?;
        Ok(Self { vendor_id, audited_on, auditor, scope, summary, findings })
    }
}

/// The remediation recorded for a finding: what the vendor did.
pub fn remediation_text(value: Option<String>) -> Result<String, VendorsError> {
    text(value, "remediation", MAX_TEXT)
}

/// The closure's note, optional.
pub fn closure_note(value: Option<String>) -> Result<Option<String>, VendorsError> {
    optional_text(value, "note", MAX_TEXT)
}

// --- acts -------------------------------------------------------------------------------------------

/// Records an audit of a vendor of the caller's agency with its findings (vendor or account
/// managers): the audit, each finding open with its deadline, and their audit events, in one
/// transaction. The audit day must not be after today; a deadline must not be before today.
pub fn record_audit(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewAudit,
) -> Result<AuditWithFindings, VendorsError> {
    require_manager(caller)?;
    let today = business_date(now);
    if new.audited_on > today {
        return Err(VendorsError::invalid("audited_on", format!("must not be after today ({today})")));
    }
    let mut deadlines = Vec::with_capacity(new.findings.len());
    for (i, finding) in new.findings.iter().enumerate() {
        deadlines.push(match finding.deadline {
            Some(deadline) if deadline < today => {
                return Err(VendorsError::invalid(
                    format!("findings[{i}].deadline"),
                    format!("must not be before today ({today})"),
                ))
            }
            Some(deadline) => deadline,
            None => today.checked_add_days(Days::new(DEFAULT_REMEDIATION_DAYS)).unwrap_or(today),
        });
    }
    conn.write_transaction(|conn| {
        vendors::of_caller(conn, caller, &new.vendor_id)?;
        let audit = VendorAudit {
            id: VendorAuditId::new(new_id()),
            vendor_id: new.vendor_id.clone(),
            agency: caller.agency.clone(),
            audited_on: new.audited_on,
            auditor: new.auditor.clone(),
            scope: new.scope.clone(),
            summary: new.summary.clone(),
            recorded_by: caller.user_id.clone(),
            recorded_at: to_db(now),
        };
        diesel::insert_into(vendor_audits::table)
            .values((
                vendor_audits::id.eq(&audit.id),
                vendor_audits::vendor_id.eq(&audit.vendor_id),
                vendor_audits::agency.eq(&audit.agency),
                vendor_audits::audited_on.eq(audit.audited_on),
                vendor_audits::auditor.eq(&audit.auditor),
                vendor_audits::scope.eq(&audit.scope),
                vendor_audits::summary.eq(&audit.summary),
                vendor_audits::recorded_by.eq(&audit.recorded_by),
                vendor_audits::recorded_at.eq(audit.recorded_at),
            ))
            .execute(conn)?;
        let payload = json!({
            "audit_id": audit.id,
            "vendor_id": audit.vendor_id,
            "audited_on": audit.audited_on,
            "auditor": audit.auditor,
            "scope": audit.scope,
            "summary": audit.summary,
            "findings": new.findings.len(),
        });
        record(conn, now, kind::VENDOR_AUDIT_RECORDED, caller, audit.id.as_str(), payload)?;
        let mut findings = Vec::with_capacity(new.findings.len());
        for (finding, deadline) in new.findings.iter().zip(deadlines) {
            let finding = Finding {
                id: FindingId::new(new_id()),
                audit_id: audit.id.clone(),
                vendor_id: audit.vendor_id.clone(),
                agency: audit.agency.clone(),
                description: finding.description.clone(),
                deadline,
                status: FindingStatus::Open,
                remediation: None,
                remediated_by: None,
                remediated_at: None,
                closure_note: None,
                closed_by: None,
                closed_at: None,
                overdue_flagged_at: None,
                opened_at: to_db(now),
            };
            diesel::insert_into(vendor_findings::table)
                .values((
                    vendor_findings::id.eq(&finding.id),
                    vendor_findings::audit_id.eq(&finding.audit_id),
                    vendor_findings::vendor_id.eq(&finding.vendor_id),
                    vendor_findings::agency.eq(&finding.agency),
                    vendor_findings::description.eq(&finding.description),
                    vendor_findings::deadline.eq(finding.deadline),
                    vendor_findings::status.eq(finding.status),
                    vendor_findings::opened_at.eq(finding.opened_at),
                ))
                .execute(conn)?;
            let payload = json!({
                "finding_id": finding.id,
                "audit_id": finding.audit_id,
                "vendor_id": finding.vendor_id,
                "description": finding.description,
                "deadline": finding.deadline,
                "status": finding.status,
            });
            record(conn, now, kind::VENDOR_FINDING_OPENED, caller, finding.id.as_str(), payload)?;
            findings.push(finding);
        }
        tracing::info!(audit_id = %audit.id, vendor_id = %audit.vendor_id, findings = findings.len(), "vendor audit recorded");
        Ok(AuditWithFindings { audit, findings })
    })
}

/// Records a finding's remediation (open → remediated) by a manager of its agency.
pub fn remediate(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &FindingId,
    remediation: &str,
) -> Result<Finding, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let finding = finding_of(conn, &caller.agency, id)?;
        let to = finding.status.transition(FindingStatus::Remediated)?;
        let updated = diesel::update(
            vendor_findings::table
                .filter(vendor_findings::id.eq(id))
                .filter(vendor_findings::status.eq(finding.status)),
        )
        .set((
            vendor_findings::status.eq(to),
            vendor_findings::remediation.eq(Some(remediation)),
            vendor_findings::remediated_by.eq(Some(&caller.user_id)),
            vendor_findings::remediated_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(VendorsError::ChangedMeanwhile("the finding"));
        }
        let payload = json!({
            "finding_id": id,
            "audit_id": finding.audit_id,
            "vendor_id": finding.vendor_id,
            "from": finding.status,
            "status": to,
            "remediation": remediation,
            "deadline": finding.deadline,
            "after_deadline": finding.deadline < business_date(now),
        });
        record(conn, now, kind::VENDOR_FINDING_UPDATED, caller, id.as_str(), payload)?;
        finding_of(conn, &caller.agency, id)
    })
}

/// Closes a remediated finding (remediated → closed) by a manager of its agency other than who
/// recorded the remediation (four eyes).
pub fn close(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &FindingId,
    note: Option<String>,
) -> Result<Finding, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let finding = finding_of(conn, &caller.agency, id)?;
        let to = finding.status.transition(FindingStatus::Closed)?;
        if finding.remediated_by.as_ref() == Some(&caller.user_id) {
            return Err(VendorsError::CloserIsRemediator);
        }
        let updated = diesel::update(
            vendor_findings::table
                .filter(vendor_findings::id.eq(id))
                .filter(vendor_findings::status.eq(finding.status)),
        )
        .set((
            vendor_findings::status.eq(to),
            vendor_findings::closure_note.eq(&note),
            vendor_findings::closed_by.eq(Some(&caller.user_id)),
            vendor_findings::closed_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(VendorsError::ChangedMeanwhile("the finding"));
        }
        let payload = json!({
            "finding_id": id,
            "audit_id": finding.audit_id,
            "vendor_id": finding.vendor_id,
            "from": finding.status,
            "status": to,
            "note": note,
            "remediated_by": finding.remediated_by,
            "deadline": finding.deadline,
        });
        record(conn, now, kind::VENDOR_FINDING_UPDATED, caller, id.as_str(), payload)?;
        finding_of(conn, &caller.agency, id)
    })
}

// --- reads ------------------------------------------------------------------------------------------

/// The finding, if it is the agency's; another agency's is "not found" like a missing one.
fn finding_of(conn: &mut DbConn, agency: &AgencyCode, id: &FindingId) -> Result<Finding, VendorsError> {
    vendor_findings::table
        .filter(vendor_findings::id.eq(id))
        .filter(vendor_findings::agency.eq(agency))
        .select(Finding::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorsError::NotFound("the finding"))
}

/// A vendor's audits with their findings, newest recorded first (`cursor`: the last id of the
/// previous page), in two queries.
pub fn list_audits(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    page: &Page,
) -> Result<Vec<AuditWithFindings>, VendorsError> {
    require_manager(caller)?;
    vendors::of_caller(conn, caller, vendor_id)?;
    let mut query = vendor_audits::table
        .filter(vendor_audits::vendor_id.eq(vendor_id))
        .filter(vendor_audits::agency.eq(&caller.agency))
        .select(VendorAudit::as_select())
        .into_boxed();
    if let Some(before) = &page.cursor {
        query = query.filter(vendor_audits::id.lt(before.clone()));
    }
    let audits: Vec<VendorAudit> = query.order(vendor_audits::id.desc()).limit(page.limit).load(conn)?;
    let ids: Vec<&VendorAuditId> = audits.iter().map(|audit| &audit.id).collect();
    let mut findings: HashMap<VendorAuditId, Vec<Finding>> = HashMap::new();
    for finding in vendor_findings::table
        .filter(vendor_findings::audit_id.eq_any(ids))
        .order(vendor_findings::id.asc())
        .select(Finding::as_select())
        .load::<Finding>(conn)?
    {
        findings.entry(finding.audit_id.clone()).or_default().push(finding);
    }
    Ok(audits
        .into_iter()
        .map(|audit| {
            let findings = findings.remove(&audit.id).unwrap_or_default();
            AuditWithFindings { audit, findings }
        })
        .collect())
}

/// Filters of the agency's findings.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub status: Option<FindingStatus>,
    pub vendor_id: Option<VendorId>,
    /// Only past their deadline and not closed (`true`), or only the others (`false`), as of today.
    pub overdue: Option<bool>,
}

/// The caller's agency's vendor findings, newest first (`cursor`: the last id of the previous page).
pub fn list_findings(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &FindingFilter,
    page: &Page,
) -> Result<Vec<Finding>, VendorsError> {
    require_manager(caller)?;
    let mut query = vendor_findings::table
        .filter(vendor_findings::agency.eq(&caller.agency))
        .select(Finding::as_select())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(vendor_findings::status.eq(status));
    }
    if let Some(vendor_id) = &filter.vendor_id {
        query = query.filter(vendor_findings::vendor_id.eq(vendor_id.clone()));
    }
    let today = business_date(now);
    match filter.overdue {
        Some(true) => {
            query = query
                .filter(vendor_findings::deadline.lt(today))
                .filter(vendor_findings::status.ne(FindingStatus::Closed))
        }
        Some(false) => {
            query =
                query.filter(vendor_findings::deadline.ge(today).or(vendor_findings::status.eq(FindingStatus::Closed)))
        }
        None => {}
    }
    if let Some(before) = &page.cursor {
        query = query.filter(vendor_findings::id.lt(before.clone()));
    }
    Ok(query.order(vendor_findings::id.desc()).limit(page.limit).load(conn)?)
}

// --- the sweep --------------------------------------------------------------------------------------

/// Flags every finding past its deadline (a Taipei date before `now`'s) and not closed that is not
/// flagged yet: sets `overdue_flagged_at` and records `vendor_finding.overdue`, in one transaction.
/// Idempotent: a second run flags nothing. Returns the findings flagged by this run.
pub fn flag_overdue(conn: &mut DbConn, now: DateTime<Utc>) -> Result<Vec<FindingId>, VendorsError> {
    let today = business_date(now);
    conn.write_transaction(|conn| {
        let due: Vec<Finding> = vendor_findings::table
            .filter(vendor_findings::overdue_flagged_at.is_null())
            .filter(vendor_findings::status.ne(FindingStatus::Closed))
            .filter(vendor_findings::deadline.lt(today))
            .order(vendor_findings::id.asc())
            .select(Finding::as_select())
            .load(conn)?;
        let mut flagged = Vec::with_capacity(due.len());
        for finding in due {
            let updated = diesel::update(
                vendor_findings::table
                    .filter(vendor_findings::id.eq(&finding.id))
                    .filter(vendor_findings::overdue_flagged_at.is_null())
                    .filter(vendor_findings::status.ne(FindingStatus::Closed)),
            )
            .set(vendor_findings::overdue_flagged_at.eq(Some(to_db(now))))
            .execute(conn)?;
            if updated == 0 {
                continue;
            }
            let payload = json!({
                "finding_id": finding.id,
                "audit_id": finding.audit_id,
                "vendor_id": finding.vendor_id,
                "description": finding.description,
                "deadline": finding.deadline,
                "status": finding.status,
                "days_overdue": (today - finding.deadline).num_days(),
            });
            record_system(conn, now, kind::VENDOR_FINDING_OVERDUE, &finding.agency, finding.id.as_str(), payload)?;
            flagged.push(finding.id);
        }
        Ok(flagged)
    })
}

#[cfg(test)]
mod transitions {
    use super::FindingStatus::{self, *};
    use super::VendorsError;

    #[test]
    fn finding_status_moves_only_open_remediated_closed() {
        for &from in FindingStatus::ALL {
            for &to in FindingStatus::ALL {
                let allowed = matches!((from, to), (Open, Remediated) | (Remediated, Closed));
                match from.transition(to) {
                    Ok(moved) => assert!(allowed && moved == to, "{from} → {to}"),
                    Err(VendorsError::IllegalFindingMove { from: f, to: t }) => {
                        assert!(!allowed, "{from} → {to}");
                        assert_eq!((f, t), (from, to));
                    }
                    Err(other) => panic!("{from} → {to}: {other:?}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod db_tests {
    use chrono::{Duration, TimeZone};
    use immilink_shared::outbox::pending;
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::devices::fixtures::{db, manager, now, second_manager, staff, vendor};
    use crate::domain::testing::caller;

    fn audit(vendor_id: &VendorId, findings: &[(&str, Option<&str>)]) -> NewAudit {
        let findings = findings
            .iter()
            .map(|(description, deadline)| FindingInput {
                description: Some((*description).to_owned()),
                deadline: deadline.map(str::to_owned),
            })
            .collect();
        NewAudit::parse(
            vendor_id.clone(),
            Some("2026-12-04".into()),
            Some("資訊室 陳稽核".into()),
            Some("專屬設備與個資存取".into()),
            Some("發現二項缺失".into()),
            Some(findings),
        )
        .unwrap()
    }

    /// R-VEN-05, as R-AUD-07: open → remediated → closed, the remediation on record, closed by someone
    /// other than who recorded it; every step an audit event.
    #[test]
    fn r_ven_05_a_finding_is_tracked_to_closure_by_someone_other_than_its_remediator() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let (first, second) = (manager("TPE-SW"), second_manager("TPE-SW"));
        let recorded = record_audit(
            &mut conn,
            now(),
            &first,
            &audit(&acme.id, &[("未安裝防毒軟體", Some("2026-12-20")), ("帳號未定期審查", None)]),
        )
        .unwrap();
        let (f1, f2) = (recorded.findings[0].clone(), recorded.findings[1].clone());
        assert_eq!((f1.status, f1.deadline), (FindingStatus::Open, NaiveDate::from_ymd_opt(2026, 12, 20).unwrap()));
        assert_eq!(f2.deadline, business_date(now()) + Duration::days(30), "30 days by default");

        // Closing before the remediation is on record is refused.
        let early = close(&mut conn, now(), &second, &f1.id, None);
        assert!(matches!(early, Err(VendorsError::IllegalFindingMove { from: FindingStatus::Open, .. })), "{early:?}");
        let later = now() + Duration::days(3);
        let remediated = remediate(&mut conn, later, &first, &f1.id, "已安裝防毒軟體").unwrap();
        assert_eq!(
            (remediated.status, remediated.remediated_by.as_ref()),
            (FindingStatus::Remediated, Some(&first.user_id))
        );
        // The remediator does not close their own remediation.
        let own = close(&mut conn, later, &first, &f1.id, None);
        assert!(matches!(own, Err(VendorsError::CloserIsRemediator)), "{own:?}");
        let closed = close(&mut conn, later, &second, &f1.id, Some("現場複查確認".into())).unwrap();
        assert_eq!((closed.status, closed.closed_by.as_ref()), (FindingStatus::Closed, Some(&second.user_id)));
        assert_eq!(closed.closure_note.as_deref(), Some("現場複查確認"));
        for refused in [
            remediate(&mut conn, later, &first, &f1.id, "again").map(|_| ()),
            close(&mut conn, later, &second, &f1.id, None).map(|_| ()),
        ] {
            assert!(
                matches!(refused, Err(VendorsError::IllegalFindingMove { from: FindingStatus::Closed, .. })),
                "{refused:?}"
            );
        }

        let open = FindingFilter { status: Some(FindingStatus::Open), ..Default::default() };
        let listed = list_findings(&mut conn, later, &first, &open, &Page::first()).unwrap();
        assert_eq!(listed.into_iter().map(|f| f.id).collect::<Vec<_>>(), vec![f2.id.clone()]);
        let audits = list_audits(&mut conn, &second, &acme.id, &Page::first()).unwrap();
        assert_eq!(audits.len(), 1);
        assert_eq!(
            audits[0].findings.iter().map(|f| f.status).collect::<Vec<_>>(),
            [FindingStatus::Closed, FindingStatus::Open]
        );

        let kinds: Vec<String> = pending(&mut conn, 100).unwrap().into_iter().map(|e| e.kind).collect();
        let ours: Vec<&str> = kinds
            .iter()
            .map(String::as_str)
            .filter(|k| k.starts_with("vendor_audit") || k.starts_with("vendor_finding"))
            .collect();
        assert_eq!(
            ours,
            [
                kind::VENDOR_AUDIT_RECORDED,
                kind::VENDOR_FINDING_OPENED,
                kind::VENDOR_FINDING_OPENED,
                kind::VENDOR_FINDING_UPDATED,
                kind::VENDOR_FINDING_UPDATED,
            ]
        );
    }

    /// R-VEN-05: a finding past its deadline (a Taipei date) and not closed is flagged once by the
    /// sweep, with its audit event; a closed one never.
    #[test]
    fn r_ven_05_a_finding_past_its_deadline_is_flagged_overdue_once() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let (first, second) = (manager("TPE-SW"), second_manager("TPE-SW"));
        let recorded = record_audit(
            &mut conn,
            now(),
            &first,
            &audit(
                &acme.id,
                &[
                    ("未安裝防毒軟體", Some("2026-12-10")),
                    ("已改善者", Some("2026-12-10")),
                    ("遠期", Some("2027-06-30")),
                ],
            ),
        )
        .unwrap();
        let [late, done, far] = [0, 1, 2].map(|i| recorded.findings[i].id.clone());
        remediate(&mut conn, now(), &first, &done, "已改善").unwrap();
        close(&mut conn, now(), &second, &done, None).unwrap();
        // Remediated but not closed still counts.
        remediate(&mut conn, now(), &second, &late, "改善中").unwrap();

        // 2026-12-10 in Taipei is not past; 2026-12-11 00:30 in Taipei is.
        let on_the_day = Utc.with_ymd_and_hms(2026, 12, 10, 15, 59, 0).unwrap();
        assert!(flag_overdue(&mut conn, on_the_day).unwrap().is_empty());
        let next_day = Utc.with_ymd_and_hms(2026, 12, 10, 16, 30, 0).unwrap();
        assert_eq!(flag_overdue(&mut conn, next_day).unwrap(), vec![late.clone()]);
        assert!(flag_overdue(&mut conn, next_day).unwrap().is_empty(), "flagged once");
        assert!(flag_overdue(&mut conn, next_day + Duration::days(10)).unwrap().is_empty(), "still once");

        let overdue = FindingFilter { overdue: Some(true), ..Default::default() };
        let listed = list_findings(&mut conn, next_day, &first, &overdue, &Page::first()).unwrap();
        assert_eq!(listed.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), vec![late.clone()]);
        assert!(listed[0].overdue_flagged_at.is_some() && listed[0].overdue_on(business_date(next_day)));
        let not_overdue =
            FindingFilter { overdue: Some(false), vendor_id: Some(acme.id.clone()), ..Default::default() };
        let listed = list_findings(&mut conn, next_day, &first, &not_overdue, &Page::first()).unwrap();
        assert_eq!(listed.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), [far, done]);

        let events = pending(&mut conn, 100).unwrap();
        let flagged: Vec<_> = events.iter().filter(|e| e.kind == kind::VENDOR_FINDING_OVERDUE).collect();
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].correlation_id.as_deref(), Some(late.as_str()));
        assert_eq!((flagged[0].actor_user_id.as_ref(), flagged[0].agency.as_deref()), (None, Some("TPE-SW")));
        assert_eq!(
            (flagged[0].payload["status"].clone(), flagged[0].payload["days_overdue"].clone()),
            (json!("remediated"), json!(1))
        );
    }

    /// The audit's day is not after today, a deadline not before today; refusals name the field and
    /// write nothing.
    #[test]
    fn audit_dates_are_checked_naming_the_field() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let tomorrow = NewAudit { audited_on: business_date(now()) + Duration::days(1), ..audit(&acme.id, &[]) };
        let past_deadline = audit(&acme.id, &[("ok", Some("2027-01-01")), ("late", Some("2026-12-04"))]);
        for (new, expected) in [(tomorrow, "audited_on"), (past_deadline, "findings[1].deadline")] {
            let refused = record_audit(&mut conn, now(), &manager("TPE-SW"), &new);
            assert!(matches!(&refused, Err(VendorsError::Invalid { field, .. }) if field == expected), "{refused:?}");
        }
        assert!(list_audits(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap().is_empty());
        let parsed = NewAudit::parse(
            acme.id.clone(),
            Some("2026-12-04".into()),
            Some("a".into()),
            Some("s".into()),
            Some("x".into()),
            Some(vec![FindingInput { description: Some("d".into()), deadline: Some("31/12/2026".into()) }]),
        );
        assert!(
            matches!(&parsed, Err(VendorsError::Invalid { field, .. }) if field == "findings[0].deadline"),
            "{parsed:?}"
        );
        let parsed = NewAudit::parse(acme.id.clone(), None, Some("a".into()), Some("s".into()), Some("x".into()), None);
        assert!(matches!(&parsed, Err(VendorsError::Missing { field }) if field == "audited_on"), "{parsed:?}");
        let none = NewAudit::parse(
            acme.id,
            Some("2026-12-04".into()),
            Some("a".into()),
            Some("s".into()),
            Some("x".into()),
            None,
        );
        assert!(none.unwrap().findings.is_empty());
    }

    /// The vendor manager of agency A manages A's vendor audits only: another agency's vendor or
    /// finding is "not found"; staff and other roles record nothing.
    #[test]
    fn vendor_audits_are_managed_within_the_agency_and_by_role() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let recorded = record_audit(&mut conn, now(), &manager("TPE-SW"), &audit(&acme.id, &[("缺失", None)])).unwrap();
        let finding = recorded.findings[0].id.clone();
        let hln = manager("HLN-HR");
        let refused = record_audit(&mut conn, now(), &hln, &audit(&acme.id, &[]));
        assert!(matches!(refused, Err(VendorsError::NotFound("the vendor"))), "{refused:?}");
        assert!(matches!(list_audits(&mut conn, &hln, &acme.id, &Page::first()), Err(VendorsError::NotFound(_))));
        assert!(matches!(remediate(&mut conn, now(), &hln, &finding, "x"), Err(VendorsError::NotFound("the finding"))));
        assert!(matches!(close(&mut conn, now(), &hln, &finding, None), Err(VendorsError::NotFound("the finding"))));
        assert!(list_findings(&mut conn, now(), &hln, &FindingFilter::default(), &Page::first()).unwrap().is_empty());
        for outsider in [staff("TPE-SW"), caller("TPE-SW", &["auditor"])] {
            assert!(matches!(
                remediate(&mut conn, now(), &outsider, &finding, "x"),
                Err(VendorsError::RoleRequired { .. })
            ));
            let listed = list_findings(&mut conn, now(), &outsider, &FindingFilter::default(), &Page::first());
            assert!(matches!(listed, Err(VendorsError::RoleRequired { .. })), "{listed:?}");
        }
        let unchanged = list_findings(&mut conn, now(), &manager("TPE-SW"), &FindingFilter::default(), &Page::first());
        assert_eq!(unchanged.unwrap()[0].status, FindingStatus::Open);
    }
}
