//! The monthly supervisor review (主管稽核月明細表, seed 002 pt 11, R-AUD-04). From the 1st of each
//! month (Asia/Taipei) every unit's lookups of the month before are in a report for its reviewer,
//! who marks each as matching the business or not, with a note, by the 10th. Nobody reviews their
//! own lookups: a unit supervisor's go to the account manager, an account manager's to the agency
//! head ([`reviewer_for`]). Overdue reports are flagged and their reviewers and the account managers
//! notified; a "does not match" opens a finding. Reports are kept with the log (five years).

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::text_enum;
use serde_json::json;

use super::findings::{self, FindingOrigin, NewFinding};
use super::query_records::day_start;
use super::records::scope_of;
use super::retention::own_act;
use super::{chain, notifications, AuditError};
use crate::schema::{oversight_lookups, oversight_sessions, review_entries, review_reports};

text_enum! {
    /// A reviewer's judgement of one lookup.
    pub enum Verdict {
        /// The declared purpose matches the business (查詢目的與業務相符).
        Matches = "matches",
        /// It does not: a finding is opened.
        DoesNotMatch = "does_not_match",
    }
}

/// The day of the month by which last month's review is due.
pub const DUE_DAY: u32 = 10;

/// The role that reviews a lookup, from the roles its user held: nobody reviews their own. A unit's
/// lookups go to its supervisor; a supervisor's (or an agency head's) to the account manager; an
/// account manager's to the agency head.
pub fn reviewer_for(actor_roles: &str) -> &'static str {
    let held = |role: &str| actor_roles.split(',').any(|r| r.trim() == role);
    if held(roles::ACCOUNT_MANAGER) {
        roles::AGENCY_HEAD
    } else if held(roles::UNIT_SUPERVISOR) || held(roles::AGENCY_HEAD) {
        roles::ACCOUNT_MANAGER
    } else {
        roles::UNIT_SUPERVISOR
    }
}

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month(NaiveDate);

impl Month {
    pub fn of(date: NaiveDate) -> Self {
        Self(date.with_day(1).unwrap_or(date))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let date = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
        (text.len() == 7).then_some(Self(date))
    }

    pub fn previous(self) -> Self {
        Self(self.0.checked_sub_months(Months::new(1)).unwrap_or(self.0))
    }

    pub fn next(self) -> Self {
        Self(self.0.checked_add_months(Months::new(1)).unwrap_or(self.0))
    }

    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// The day the month's review is due: the 10th of the month after.
    pub fn due_on(self) -> NaiveDate {
        self.next().0.with_day(DUE_DAY).unwrap_or(self.next().0)
    }

    /// The month's bounds as stored instants (UTC), Taipei midnight to Taipei midnight.
    pub fn bounds(self) -> Option<(NaiveDateTime, NaiveDateTime)> {
        Some((day_start(self.0)?, day_start(self.next().0)?))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.0.year(), self.0.month())
    }
}

/// A report as stored.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = review_reports)]
pub struct Report {
    pub id: String,
    pub agency: String,
    /// The unit reviewed; empty for lookups done for no unit.
    pub unit: String,
    pub month: String,
    pub reviewer_role: String,
    pub opened_at: NaiveDateTime,
    pub due_on: NaiveDate,
    pub completed_at: Option<NaiveDateTime>,
    pub overdue_flagged_at: Option<NaiveDateTime>,
}

impl Report {
    /// Past its due date (Taipei) and not completed.
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.completed_at.is_none() && today > self.due_on
    }
}

/// What one run of the monthly job did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonthlyRun {
    pub month: String,
    pub reports_opened: usize,
    pub entries_added: usize,
    pub overdue_flagged: usize,
}

/// The monthly job: opens last month's reports (adding lookups recorded late to them) and flags the
/// overdue ones. Idempotent: a second run the same day changes nothing.
pub fn run_monthly(conn: &mut DbConn, now: DateTime<Utc>) -> Result<MonthlyRun, AuditError> {
    let month = Month::of(business_date(now)).previous();
    let (reports_opened, entries_added) = open_month(conn, now, month)?;
    let overdue_flagged = flag_overdue(conn, now)?;
    Ok(MonthlyRun { month: month.to_string(), reports_opened, entries_added, overdue_flagged })
}

type Pending = (String, String, Option<String>, String, NaiveDateTime);

/// Puts every lookup of `month` not yet in a report into its unit's report for its reviewer,
/// creating the reports it needs. Returns (reports opened, entries added).
pub fn open_month(conn: &mut DbConn, now: DateTime<Utc>, month: Month) -> Result<(usize, usize), AuditError> {
    let Some((from, to)) = month.bounds() else { return Ok((0, 0)) };
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let (mut opened, mut added) = (0, 0);
        // Pages in (requested_at, lookup_id) order, each starting at its cursor in the time index.
        let mut after: Option<(NaiveDateTime, String)> = None;
        loop {
            // One lower bound (the cursor's once there is one): SQLite ranges the index on one.
            let lower = after.as_ref().map_or(from, |(at, _)| (*at).max(from));
            let mut page = oversight_lookups::table
                .filter(oversight_lookups::requested_at.ge(lower))
                .filter(oversight_lookups::requested_at.lt(to))
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    review_entries::table.filter(review_entries::lookup_id.eq(oversight_lookups::lookup_id)),
                )))
                .into_boxed();
            if let Some((at, id)) = &after {
                page = page
                    .filter(oversight_lookups::requested_at.gt(*at).or(oversight_lookups::lookup_id.gt(id.clone())));
            }
            let pending: Vec<Pending> = page
                .order((oversight_lookups::requested_at.asc(), oversight_lookups::lookup_id.asc()))
                .limit(2_000)
                .select((
                    oversight_lookups::lookup_id,
                    oversight_lookups::agency,
                    oversight_lookups::unit,
                    oversight_lookups::actor_roles,
                    oversight_lookups::requested_at,
                ))
                .load(conn)?;
            let Some(last) = pending.last() else { break };
            after = Some((last.4, last.0.clone()));
            let mut groups: std::collections::BTreeMap<(String, String, &'static str), Vec<String>> =
                std::collections::BTreeMap::new();
            for (lookup_id, agency, unit, actor_roles, _) in pending {
                let key = (agency, unit.unwrap_or_default(), reviewer_for(&actor_roles));
                groups.entry(key).or_default().push(lookup_id);
            }
            for ((agency, unit, reviewer), lookups) in groups {
                let (report_id, new) = ensure_report(conn, now, month, &agency, &unit, reviewer)?;
                opened += usize::from(new);
                let rows: Vec<_> = lookups
                    .iter()
                    .map(|lookup| (review_entries::report_id.eq(&report_id), review_entries::lookup_id.eq(lookup)))
                    .collect();
                for chunk in rows.chunks(1_000) {
                    immilink_shared::insert_rows!(conn, review_entries::table, chunk);
                }
                added += lookups.len();
                // Lookups recorded late reopen a report that was complete.
                diesel::update(review_reports::table.filter(review_reports::id.eq(&report_id)))
                    .set(review_reports::completed_at.eq(None::<NaiveDateTime>))
                    .execute(conn)?;
            }
        }
        Ok((opened, added))
    })
}

fn ensure_report(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    month: Month,
    agency: &str,
    unit: &str,
    reviewer: &'static str,
) -> Result<(String, bool), AuditError> {
    let existing: Option<String> = review_reports::table
        .filter(review_reports::agency.eq(agency))
        .filter(review_reports::unit.eq(unit))
        .filter(review_reports::month.eq(month.to_string()))
        .filter(review_reports::reviewer_role.eq(reviewer))
        .select(review_reports::id)
        .first(conn)
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(review_reports::table)
        .values((
            review_reports::id.eq(&id),
            review_reports::agency.eq(agency),
            review_reports::unit.eq(unit),
            review_reports::month.eq(month.to_string()),
            review_reports::reviewer_role.eq(reviewer),
            review_reports::opened_at.eq(to_db(now)),
            review_reports::due_on.eq(month.due_on()),
        ))
        .execute(conn)?;
    let payload = json!({ "report_id": id, "unit": unit, "month": month.to_string(), "reviewer_role": reviewer,
        "due_on": month.due_on() });
    let act = own_act(kind::AUDIT_REVIEW_OPENED, now, None, Some(agency.to_owned()), &id, payload);
    chain::append_locked(conn, now, &[act])?;
    Ok((id, true))
}

/// Flags the reports past their due date and still open, once each: their reviewers and the
/// account managers are notified and the flag is a record in the log.
pub fn flag_overdue(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize, AuditError> {
    let today = business_date(now);
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let due: Vec<Report> = review_reports::table
            .filter(review_reports::completed_at.is_null())
            .filter(review_reports::overdue_flagged_at.is_null())
            .filter(review_reports::due_on.lt(today))
            .select(Report::as_select())
            .load(conn)?;
        for report in &due {
            diesel::update(review_reports::table.filter(review_reports::id.eq(&report.id)))
                .set(review_reports::overdue_flagged_at.eq(to_db(now)))
                .execute(conn)?;
            let unit = (report.reviewer_role == roles::UNIT_SUPERVISOR && !report.unit.is_empty())
                .then_some(report.unit.as_str());
            let subject = format!("主管稽核月明細表逾期 Monthly review overdue: {} {}", report.month, report.unit);
            let body = format!(
                "The review of {}'s lookups of {} (report {}) was due by {} and is not complete.",
                if report.unit.is_empty() { "the agency" } else { &report.unit },
                report.month,
                report.id,
                report.due_on
            );
            let reviewer: &[&str] = &[if report.reviewer_role == roles::UNIT_SUPERVISOR {
                roles::UNIT_SUPERVISOR
            } else if report.reviewer_role == roles::AGENCY_HEAD {
                roles::AGENCY_HEAD
            } else {
                roles::ACCOUNT_MANAGER
            }];
            let notice = |roles, unit, subject: &str, body: &str| notifications::Notice {
                agency: &report.agency,
                unit,
                roles,
                subject: subject.to_owned(),
                body: body.to_owned(),
            };
            notifications::enqueue(conn, now, notice(reviewer, unit, &subject, &body))?;
            if reviewer[0] != roles::ACCOUNT_MANAGER {
                notifications::enqueue(conn, now, notice(&[roles::ACCOUNT_MANAGER], None, &subject, &body))?;
            }
            let payload = json!({ "report_id": report.id, "unit": report.unit, "month": report.month,
                "reviewer_role": report.reviewer_role, "due_on": report.due_on });
            let act = own_act(kind::AUDIT_REVIEW_OVERDUE, now, None, Some(report.agency.clone()), &report.id, payload);
            chain::append_locked(conn, now, &[act])?;
        }
        Ok(due.len())
    })
}

/// Whether the caller may see a report: readers of its agency and unit (records::Scope), and its
/// reviewers.
fn sees(caller: &Caller, report: &Report) -> bool {
    let unit = (!report.unit.is_empty()).then_some(report.unit.as_str());
    let reader = caller.has_any(super::records::READERS) && scope_of(caller).covers(&report.agency, unit);
    reader || may_review(caller, report)
}

/// Whether the caller is one of the report's reviewers: the role it names, in its agency (and, for a
/// unit supervisor, its unit).
fn may_review(caller: &Caller, report: &Report) -> bool {
    caller.agency.as_str() == report.agency
        && caller.has(&report.reviewer_role)
        && (report.reviewer_role != roles::UNIT_SUPERVISOR
            || caller.unit.as_ref().is_some_and(|unit| unit.as_str() == report.unit))
}

/// The filters of the report list.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    pub agency: Option<String>,
    pub month: Option<String>,
}

/// A report with its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    pub report: Report,
    pub entries: i64,
    pub reviewed: i64,
    pub mismatches: i64,
    pub overdue: bool,
}

/// The reports the caller sees (as a reader or as their reviewer), newest month first.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    query: ReportQuery,
) -> Result<Vec<ReportSummary>, AuditError> {
    if !caller.has_any(REVIEW_ROLES) {
        return Err(AuditError::RoleRequired { roles: REVIEW_ROLES });
    }
    let mut reports = review_reports::table.into_boxed();
    if let Some(month) = query.month {
        let month = Month::parse(month.trim()).ok_or_else(|| AuditError::Invalid {
            field: "month".into(),
            detail: "must be a month as YYYY-MM".into(),
        })?;
        reports = reports.filter(review_reports::month.eq(month.to_string()));
    }
    match query.agency {
        Some(agency) if agency != caller.agency.as_str() && !caller.has(roles::NIA_REVIEWER) => {
            return Err(AuditError::OtherAgency)
        }
        Some(agency) => reports = reports.filter(review_reports::agency.eq(agency)),
        None if !caller.has(roles::NIA_REVIEWER) => {
            reports = reports.filter(review_reports::agency.eq(caller.agency.to_string()))
        }
        None => {}
    }
    let reports: Vec<Report> = reports
        .order((review_reports::month.desc(), review_reports::unit.asc(), review_reports::reviewer_role.asc()))
        .limit(1_000)
        .select(Report::as_select())
        .load(conn)?;
    let reports: Vec<Report> = reports.into_iter().filter(|report| sees(caller, report)).collect();
    let today = business_date(now);
    reports.into_iter().map(|report| summarise(conn, today, report)).collect()
}

/// Roles that take part in the monthly review.
pub const REVIEW_ROLES: &[&str] = &[
    roles::UNIT_SUPERVISOR,
    roles::ACCOUNT_MANAGER,
    roles::AGENCY_HEAD,
    roles::AUDITOR,
    roles::ETHICS_OFFICER,
    roles::NIA_REVIEWER,
];

fn summarise(conn: &mut DbConn, today: NaiveDate, report: Report) -> Result<ReportSummary, AuditError> {
    let verdicts: Vec<Option<Verdict>> = review_entries::table
        .filter(review_entries::report_id.eq(&report.id))
        .select(review_entries::verdict)
        .load::<Option<String>>(conn)?
        .into_iter()
        .map(|v| v.and_then(|v| v.parse().ok()))
        .collect();
    let reviewed = verdicts.iter().filter(|v| v.is_some()).count() as i64;
    let mismatches = verdicts.iter().filter(|v| **v == Some(Verdict::DoesNotMatch)).count() as i64;
    Ok(ReportSummary { overdue: report.overdue(today), entries: verdicts.len() as i64, reviewed, mismatches, report })
}

/// One lookup of a report, with what the reviewer needs to judge it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub lookup_id: String,
    pub record_id: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub requested_at: NaiveDateTime,
    pub query_type: String,
    pub subject_id: String,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub remarks: Option<String>,
    pub outcome: Option<String>,
    pub verdict: Option<Verdict>,
    pub note: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<NaiveDateTime>,
    pub finding_id: Option<String>,
}

/// A report with every entry, in the order the lookups were made.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportDetail {
    pub summary: ReportSummary,
    pub entries: Vec<Entry>,
}

fn find(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<Report, AuditError> {
    review_reports::table
        .filter(review_reports::id.eq(id))
        .select(Report::as_select())
        .first(conn)
        .optional()?
        .filter(|report| sees(caller, report))
        .ok_or(AuditError::NotFound("the review report"))
}

type EntryRow = (
    (String, String, String, NaiveDateTime, String, String, String, String, String, Option<String>, Option<String>),
    (Option<String>, Option<String>, Option<String>, Option<NaiveDateTime>, Option<String>),
    Option<String>,
);

/// A report the caller sees, with its entries.
pub fn get(conn: &mut DbConn, now: DateTime<Utc>, caller: &Caller, id: &str) -> Result<ReportDetail, AuditError> {
    let report = find(conn, caller, id)?;
    let rows: Vec<EntryRow> = review_entries::table
        .inner_join(oversight_lookups::table.on(oversight_lookups::lookup_id.eq(review_entries::lookup_id)))
        .left_join(
            oversight_sessions::table.on(oversight_sessions::session_id.nullable().eq(oversight_lookups::session_id)),
        )
        .filter(review_entries::report_id.eq(&report.id))
        .order((oversight_lookups::requested_at.asc(), oversight_lookups::lookup_id.asc()))
        .select((
            (
                oversight_lookups::lookup_id,
                oversight_lookups::record_id,
                oversight_lookups::user_id,
                oversight_lookups::requested_at,
                oversight_lookups::query_type,
                oversight_lookups::subject_id,
                oversight_lookups::legal_basis,
                oversight_lookups::purpose_code,
                oversight_lookups::case_number,
                oversight_lookups::remarks,
                oversight_lookups::outcome,
            ),
            (
                review_entries::verdict,
                review_entries::note,
                review_entries::reviewed_by,
                review_entries::reviewed_at,
                review_entries::finding_id,
            ),
            oversight_sessions::display_name.nullable(),
        ))
        .load(conn)?;
    let entries = rows
        .into_iter()
        .map(|(l, r, name)| Entry {
            lookup_id: l.0,
            record_id: l.1,
            user_id: l.2,
            user_name: name,
            requested_at: l.3,
            query_type: l.4,
            subject_id: l.5,
            legal_basis: l.6,
            purpose_code: l.7,
            case_number: l.8,
            remarks: l.9,
            outcome: l.10,
            verdict: r.0.and_then(|v| v.parse().ok()),
            note: r.1,
            reviewed_by: r.2,
            reviewed_at: r.3,
            finding_id: r.4,
        })
        .collect();
    let summary = summarise(conn, business_date(now), report)?;
    Ok(ReportDetail { summary, entries })
}

/// One judgement to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub lookup_id: String,
    pub verdict: Verdict,
    pub note: Option<String>,
}

/// Longest note.
pub const MAX_NOTE: usize = 1_000;

/// Records the reviewer's judgements of lookups of a report, all or none: only the report's
/// reviewer, never on their own lookups, each lookup once; "does not match" needs a note and opens a
/// finding. The report is complete when every entry is judged.
pub fn mark(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    report_id: &str,
    marks: &[Mark],
) -> Result<ReportDetail, AuditError> {
    if marks.is_empty() {
        return Err(AuditError::Invalid { field: "marks".into(), detail: "name at least one lookup".into() });
    }
    for (i, mark) in marks.iter().enumerate() {
        let note = mark.note.as_deref().map(str::trim).unwrap_or_default();
        if note.chars().count() > MAX_NOTE {
            return Err(AuditError::Invalid {
                field: format!("marks[{i}].note"),
                detail: format!("at most {MAX_NOTE} characters"),
            });
        }
        if mark.verdict == Verdict::DoesNotMatch && note.is_empty() {
            return Err(AuditError::Invalid {
                field: format!("marks[{i}].note"),
                detail: "say why the purpose does not match the business".into(),
            });
        }
        if marks[..i].iter().any(|earlier| earlier.lookup_id == mark.lookup_id) {
            return Err(AuditError::Invalid { field: format!("marks[{i}].lookup_id"), detail: "named twice".into() });
        }
    }
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let report = find(conn, caller, report_id)?;
        if !may_review(caller, &report) {
            return Err(AuditError::RoleRequired { roles: reviewer_roles(&report.reviewer_role) });
        }
        for (i, mark) in marks.iter().enumerate() {
            record_mark(conn, now, caller, &report, i, mark)?;
        }
        let open: i64 = review_entries::table
            .filter(review_entries::report_id.eq(&report.id))
            .filter(review_entries::verdict.is_null())
            .count()
            .get_result(conn)?;
        if open == 0 {
            diesel::update(review_reports::table.filter(review_reports::id.eq(&report.id)))
                .set(review_reports::completed_at.eq(to_db(now)))
                .execute(conn)?;
        }
        let payload = json!({
            "report_id": report.id,
            "month": report.month,
            "unit": report.unit,
            "marks": marks.iter().map(|m| json!({"lookup_id": m.lookup_id, "verdict": m.verdict, "note": m.note})).collect::<Vec<_>>(),
            "complete": open == 0,
        });
        let act = own_act(kind::AUDIT_REVIEW_MARKED, now, Some(caller), Some(report.agency.clone()), &report.id, payload);
        chain::append_locked(conn, now, &[act])?;
        Ok(())
    })?;
    get(conn, now, caller, report_id)
}

fn reviewer_roles(role: &str) -> &'static [&'static str] {
    match role {
        r if r == roles::AGENCY_HEAD => &[roles::AGENCY_HEAD],
        r if r == roles::ACCOUNT_MANAGER => &[roles::ACCOUNT_MANAGER],
        _ => &[roles::UNIT_SUPERVISOR],
    }
}

fn record_mark(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    report: &Report,
    index: usize,
    mark: &Mark,
) -> Result<(), AuditError> {
    let field = || format!("marks[{index}].lookup_id");
    /// The verdict so far, and the lookup's user, unit, purpose and case number.
    type Judged = (Option<String>, String, Option<String>, String, String);
    let entry: Option<Judged> = review_entries::table
        .inner_join(oversight_lookups::table.on(oversight_lookups::lookup_id.eq(review_entries::lookup_id)))
        .filter(review_entries::report_id.eq(&report.id))
        .filter(review_entries::lookup_id.eq(&mark.lookup_id))
        .select((
            review_entries::verdict,
            oversight_lookups::user_id,
            oversight_lookups::unit,
            oversight_lookups::purpose_code,
            oversight_lookups::case_number,
        ))
        .first(conn)
        .optional()?;
    let Some((verdict, user_id, unit, purpose_code, case_number)) = entry else {
        return Err(AuditError::Invalid { field: field(), detail: "is not a lookup of this report".into() });
    };
    if user_id == caller.user_id.as_str() {
        return Err(AuditError::OwnLookup(
            "nobody reviews their own lookups: they go to the account manager or the agency head",
        ));
    }
    if verdict.is_some() {
        return Err(AuditError::Conflict {
            code: "already_reviewed",
            detail: format!("lookup {} was reviewed already", mark.lookup_id),
        });
    }
    let note = mark.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    let finding_id = match mark.verdict {
        Verdict::Matches => None,
        Verdict::DoesNotMatch => {
            let description = format!(
                "主管稽核月明細表 {}：查詢目的與業務不符 The purpose does not match the business — lookup {} by user {} (purpose {}, case {}): {}",
                report.month,
                mark.lookup_id,
                user_id,
                purpose_code,
                case_number,
                note.clone().unwrap_or_default()
            );
            let new = NewFinding {
                agency: report.agency.clone(),
                unit,
                origin: FindingOrigin::Review,
                origin_ref: Some(format!("{}/{}", report.id, mark.lookup_id)),
                description,
                deadline: None,
            };
            Some(findings::open_locked(conn, now, caller, new)?.id)
        }
    };
    diesel::update(
        review_entries::table
            .filter(review_entries::report_id.eq(&report.id))
            .filter(review_entries::lookup_id.eq(&mark.lookup_id))
            .filter(review_entries::verdict.is_null()),
    )
    .set((
        review_entries::verdict.eq(mark.verdict.as_str()),
        review_entries::note.eq(&note),
        review_entries::reviewed_by.eq(caller.user_id.as_str()),
        review_entries::reviewed_at.eq(to_db(now)),
        review_entries::finding_id.eq(&finding_id),
    ))
    .execute(conn)?;
    Ok(())
}
