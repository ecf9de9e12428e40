//! Who read a person's data (R-GOV-02, PDPA art. 10) and the account managers' export of query
//! records (R-AUD-08), both read from the `oversight_lookups` read model.
//!
//! - [`report`] lists every lookup of one subject the caller may see (auditors, ethics officers and
//!   account managers their agency's; the immigration agency's reviewer every agency's), and records
//!   the report in the log in the same transaction: telling someone who read a person's data is
//!   itself a read of personal data. Only lookups are listed, never the log's own `audit.*` acts.
//! - [`start_export`] records an export (who, which filters, how many rows, up to which sequence)
//!   before anything is sent; [`export_page`] then reads the rows a page at a time by
//!   `(requested_at, lookup_id)`, so the export's memory stays flat whatever its size, and the
//!   sequence bound keeps the rows exactly those counted in the record.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::ids::SubjectId;
use serde_json::json;

use super::records::{scope_of, Scope};
use super::retention::own_act;
use super::{chain, AuditError};
use crate::schema::{oversight_lookups, oversight_sessions};

/// Who may learn who read a person's data (R-GOV-02): the agency's overseers for their agency's
/// lookups, the immigration agency's reviewer for every agency's. Unit supervisors and caseworkers
/// may not.
pub const INQUIRERS: &[&str] = &[roles::AUDITOR, roles::ETHICS_OFFICER, roles::ACCOUNT_MANAGER, roles::NIA_REVIEWER];

/// Who exports users' query records (R-AUD-08): the agency's account managers.
pub const EXPORTERS: &[&str] = &[roles::ACCOUNT_MANAGER];

/// Most lookups one report lists; a person looked up more often than this in the period asked is
/// reported period by period (`from`/`to`).
pub const MAX_ACCESSES: i64 = 5_000;

/// Longest user id or unit id accepted as an export filter.
const MAX_FILTER_TEXT: usize = 64;

fn invalid(field: &str, detail: impl Into<String>) -> AuditError {
    AuditError::Invalid { field: field.into(), detail: detail.into() }
}

/// A person's identifier as typed by whoever asks on their behalf: a national ID, a UI number or a
/// passport number, normalised (trimmed, half-width, upper case) as the broker stores it.
pub fn parse_subject(raw: &str) -> Result<SubjectId, AuditError> {
    SubjectId::parse_any(raw).map_err(|err| invalid("subject_id", err.to_string()))
}

/// A period `[from, to)`; either end open. `from` must come before `to`.
fn period(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), AuditError> {
    match (from, to) {
        (Some(from), Some(to)) if from >= to => Err(invalid("to", "must be later than from")),
        _ => Ok(()),
    }
}

/// What a report is for: the JSON list an overseer reads, or the reply letter to a citizen's
/// request under PDPA art. 10. Recorded in the report's audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportForm {
    List,
    ReplyLetter,
}

impl ReportForm {
    fn as_str(self) -> &'static str {
        match self {
            ReportForm::List => "list",
            ReportForm::ReplyLetter => "reply_letter",
        }
    }
}

/// A report asked for: whose data, optionally within `[from, to)`.
#[derive(Debug, Clone)]
pub struct AccessInquiry {
    pub subject: SubjectId,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub form: ReportForm,
}

impl AccessInquiry {
    /// The inquiry, with its subject and period checked (422 naming `subject_id`, `to`).
    pub fn parse(
        subject_id: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        form: ReportForm,
    ) -> Result<Self, AuditError> {
        let subject = parse_subject(subject_id)?;
        period(from, to)?;
        Ok(Self { subject, from, to, form })
    }
}

/// A code with its Traditional Chinese name from the catalogue (none for a code it does not know,
/// such as one retired since the lookup).
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub code: String,
    pub name_zh: Option<String>,
}

impl Named {
    /// The name, or the code when the catalogue does not know it.
    pub fn label(&self) -> &str {
        self.name_zh.as_deref().unwrap_or(&self.code)
    }
}

/// One lookup of the person.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub lookup_id: String,
    /// The lookup's `lookup.requested` audit record.
    pub record_id: String,
    pub agency: String,
    pub unit: Option<String>,
    pub requested_at: NaiveDateTime,
    pub query_type: Named,
    pub legal_basis: Named,
    pub purpose: Named,
    pub case_number: String,
    /// `succeeded`, `failed`, `outcome_unknown`, or none while the lookup has no outcome yet.
    pub outcome: Option<String>,
}

/// Who read a person's data, as the caller may see it, and the audit record of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessReport {
    /// The id of the report's `audit.subject_accesses_reported` record.
    pub report_id: String,
    pub reported_at: DateTime<Utc>,
    /// Who reports: the caller's agency.
    pub reporting_agency: String,
    /// The agency whose lookups are listed; none: every agency's (the immigration agency).
    pub agency: Option<String>,
    pub subject_id: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// In the order they were requested.
    pub accesses: Vec<Access>,
}

impl AccessReport {
    /// The agencies whose lookups are listed, each once, in order.
    pub fn agencies(&self) -> Vec<String> {
        let mut agencies: Vec<String> = self.accesses.iter().map(|a| a.agency.clone()).collect();
        agencies.sort();
        agencies.dedup();
        agencies
    }
}

type AccessRow =
    (String, String, String, Option<String>, NaiveDateTime, String, String, String, String, Option<String>);

impl From<AccessRow> for Access {
    fn from(row: AccessRow) -> Self {
        let (
            lookup_id,
            record_id,
            agency,
            unit,
            requested_at,
            query_type,
            legal_basis,
            purpose_code,
            case_number,
            outcome,
        ) = row;
        let query_type_name = QueryType::parse(&query_type).map(|q| q.name_zh().to_owned());
        let legal_basis_name = catalogue::legal_basis(&legal_basis).map(|basis| basis.name_zh);
        let purpose_name = catalogue::purpose(&purpose_code).map(|purpose| purpose.name_zh);
        Self {
            lookup_id,
            record_id,
            agency,
            unit,
            requested_at,
            query_type: Named { code: query_type, name_zh: query_type_name },
            legal_basis: Named { code: legal_basis, name_zh: legal_basis_name },
            purpose: Named { code: purpose_code, name_zh: purpose_name },
            case_number,
            outcome,
        }
    }
}

/// Who read the person's data (R-GOV-02): every lookup of them the caller may see, in the order
/// requested, recorded in the log in the same transaction as the read (who asked, about whom, how
/// many lookups, of which agencies). Auditors, ethics officers and account managers see their
/// agency's lookups, the immigration agency's reviewer every agency's; anyone else is refused.
pub fn report(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    inquiry: &AccessInquiry,
) -> Result<AccessReport, AuditError> {
    if !caller.has_any(INQUIRERS) {
        return Err(AuditError::RoleRequired { roles: INQUIRERS });
    }
    let agency = match scope_of(caller) {
        Scope::Everything => None,
        Scope::Agency(agency) => Some(agency),
        // Not reached: every inquirer reads agency-wide at least. Refused rather than widened.
        Scope::Unit { .. } => return Err(AuditError::RoleRequired { roles: INQUIRERS }),
    };
    let subject_id = inquiry.subject.as_str().to_owned();
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let mut found = oversight_lookups::table
            .filter(oversight_lookups::subject_id.eq(&subject_id))
            .select((
                oversight_lookups::lookup_id,
                oversight_lookups::record_id,
                oversight_lookups::agency,
                oversight_lookups::unit,
                oversight_lookups::requested_at,
                oversight_lookups::query_type,
                oversight_lookups::legal_basis,
                oversight_lookups::purpose_code,
                oversight_lookups::case_number,
                oversight_lookups::outcome,
            ))
            .into_boxed();
        if let Some(agency) = &agency {
            found = found.filter(oversight_lookups::agency.eq(agency.clone()));
        }
        if let Some(from) = inquiry.from {
            found = found.filter(oversight_lookups::requested_at.ge(to_db(from)));
        }
        if let Some(to) = inquiry.to {
            found = found.filter(oversight_lookups::requested_at.lt(to_db(to)));
        }
        let rows: Vec<AccessRow> = found
            .order((oversight_lookups::requested_at.asc(), oversight_lookups::lookup_id.asc()))
            .limit(MAX_ACCESSES + 1)
            .load(conn)?;
        if rows.len() as i64 > MAX_ACCESSES {
            return Err(invalid(
                "from",
                format!("this person was looked up more than {MAX_ACCESSES} times in the period: report a shorter period (from, to)"),
            ));
        }
        let mut report = AccessReport {
            report_id: String::new(),
            reported_at: now,
            reporting_agency: caller.agency.to_string(),
            agency: agency.clone(),
            subject_id: subject_id.clone(),
            from: inquiry.from,
            to: inquiry.to,
            accesses: rows.into_iter().map(Access::from).collect(),
        };
        let payload = json!({
            "form": inquiry.form.as_str(),
            "scope": agency.as_deref().unwrap_or("all_agencies"),
            "from": inquiry.from.map(|at| at.to_rfc3339()),
            "to": inquiry.to.map(|at| at.to_rfc3339()),
            "lookups": report.accesses.len(),
            "agencies": report.agencies(),
        });
        // The report is its record: its id is the record's, and the record's subject is the person.
        let mut act =
            own_act(kind::AUDIT_SUBJECT_ACCESSES_REPORTED, now, Some(caller), Some(caller.agency.to_string()), "", payload);
        act.correlation_id = Some(act.id.clone());
        act.subject_id = Some(subject_id.clone());
        report.report_id = act.id.clone();
        chain::append_locked(conn, now, &[act])?;
        Ok(report)
    })
}

/// The export asked for (R-AUD-08), before it is checked.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    pub agency: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub user: Option<String>,
    pub unit: Option<String>,
}

/// Which query records an export holds: one agency's lookups requested in `[from, to)`, optionally
/// one user's or one unit's, stored up to `through_sequence` (set when the export is recorded, so
/// the rows streamed are exactly those counted in its record).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFilter {
    pub agency: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub user: Option<String>,
    pub unit: Option<String>,
    pub through_sequence: i64,
}

fn filter_text(field: &str, value: Option<String>) -> Result<Option<String>, AuditError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_FILTER_TEXT {
        return Err(invalid(field, format!("at most {MAX_FILTER_TEXT} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(Some(value))
}

impl ExportFilter {
    /// The export an account manager may make: their own agency's records (naming another agency is
    /// refused), over a period they must give, `from` before `to`.
    pub fn parse(caller: &Caller, request: ExportRequest) -> Result<Self, AuditError> {
        if !caller.has_any(EXPORTERS) {
            return Err(AuditError::RoleRequired { roles: EXPORTERS });
        }
        if request.agency.as_deref().map(str::trim).is_some_and(|asked| asked != caller.agency.as_str()) {
            return Err(AuditError::OtherAgency);
        }
        let from = request.from.ok_or_else(|| invalid("from", "is required (RFC 3339)"))?;
        let to = request.to.ok_or_else(|| invalid("to", "is required (RFC 3339)"))?;
        period(Some(from), Some(to))?;
        Ok(Self {
            agency: caller.agency.to_string(),
            from,
            to,
            user: filter_text("user", request.user)?,
            unit: filter_text("unit", request.unit)?,
            through_sequence: i64::MAX,
        })
    }
}

/// Where the previous page of an export ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportCursor {
    pub requested_at: NaiveDateTime,
    pub lookup_id: String,
}

/// One query record of an export, with the user's name from their session.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub lookup_id: String,
    pub record_id: String,
    pub requested_at: NaiveDateTime,
    pub agency: String,
    pub unit: Option<String>,
    pub user_id: String,
    pub user_name: Option<String>,
    pub query_type: String,
    pub subject_id: String,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub outcome: Option<String>,
    pub remarks: Option<String>,
}

impl ExportRow {
    /// Where the next page starts.
    pub fn cursor(&self) -> ExportCursor {
        ExportCursor { requested_at: self.requested_at, lookup_id: self.lookup_id.clone() }
    }
}

/// A recorded export: its id and how many rows it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportStarted {
    pub export_id: String,
    pub rows: i64,
    pub filter: ExportFilter,
}

/// Records the export in the log (who, which filters, how many rows, up to which sequence), in its
/// own transaction, before anything is streamed: an export that the log does not hold is never sent.
pub fn start_export(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &ExportFilter,
) -> Result<ExportStarted, AuditError> {
    if !caller.has_any(EXPORTERS) {
        return Err(AuditError::RoleRequired { roles: EXPORTERS });
    }
    if filter.agency != caller.agency.as_str() {
        return Err(AuditError::OtherAgency);
    }
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let through_sequence = chain::head(conn)?.next_sequence - 1;
        let filter = ExportFilter { through_sequence, ..filter.clone() };
        let rows: i64 = matching(&filter).count().get_result(conn)?;
        let export_id = uuid::Uuid::now_v7().to_string();
        let payload = json!({
            "export_id": export_id,
            "format": "csv",
            "from": filter.from.to_rfc3339(),
            "to": filter.to.to_rfc3339(),
            "user": filter.user,
            "unit": filter.unit,
            "rows": rows,
            "through_sequence": through_sequence,
        });
        let act = own_act(
            kind::AUDIT_QUERY_RECORDS_EXPORTED,
            now,
            Some(caller),
            Some(filter.agency.clone()),
            &export_id,
            payload,
        );
        chain::append_locked(conn, now, &[act])?;
        Ok(ExportStarted { export_id, rows, filter })
    })
}

type Backend = <DbConn as diesel::Connection>::Backend;

/// The lookups an export holds, unordered and unpaged.
fn matching(filter: &ExportFilter) -> oversight_lookups::BoxedQuery<'static, Backend> {
    let mut found = oversight_lookups::table
        .filter(oversight_lookups::agency.eq(filter.agency.clone()))
        .filter(oversight_lookups::requested_at.ge(to_db(filter.from)))
        .filter(oversight_lookups::requested_at.lt(to_db(filter.to)))
        .filter(oversight_lookups::sequence.le(filter.through_sequence))
        .into_boxed();
    if let Some(user) = &filter.user {
        found = found.filter(oversight_lookups::user_id.eq(user.clone()));
    }
    if let Some(unit) = &filter.unit {
        found = found.filter(oversight_lookups::unit.eq(unit.clone()));
    }
    found
}

/// A page's lookup, before the user's name is added.
type LookupColumns = (
    String,
    String,
    NaiveDateTime,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// One page of an export, in `(requested_at, lookup_id)` order, after `after` (the last row of the
/// previous page; none for the first page): keyset pagination, so each page costs the same however
/// far into the export it is. Two queries a page: the lookups, then their users' names.
pub fn export_page(
    conn: &mut DbConn,
    filter: &ExportFilter,
    after: Option<&ExportCursor>,
    limit: i64,
) -> Result<Vec<ExportRow>, AuditError> {
    let mut found = matching(filter);
    if let Some(after) = after {
        found = found.filter(oversight_lookups::requested_at.ge(after.requested_at)).filter(
            oversight_lookups::requested_at
                .gt(after.requested_at)
                .or(oversight_lookups::lookup_id.gt(after.lookup_id.clone())),
        );
    }
    let lookups: Vec<LookupColumns> = found
        .order((oversight_lookups::requested_at.asc(), oversight_lookups::lookup_id.asc()))
        .limit(limit)
        .select((
            oversight_lookups::lookup_id,
            oversight_lookups::record_id,
            oversight_lookups::requested_at,
            oversight_lookups::agency,
            oversight_lookups::unit,
            oversight_lookups::user_id,
            oversight_lookups::session_id,
            oversight_lookups::query_type,
            oversight_lookups::subject_id,
            oversight_lookups::legal_basis,
            oversight_lookups::purpose_code,
            oversight_lookups::case_number,
            oversight_lookups::outcome,
            oversight_lookups::remarks,
        ))
        .load(conn)?;
    let mut sessions: Vec<String> = lookups.iter().filter_map(|row| row.6.clone()).collect();
    sessions.sort();
    sessions.dedup();
    let names: std::collections::HashMap<String, String> = if sessions.is_empty() {
        std::collections::HashMap::new()
    } else {
        oversight_sessions::table
            .filter(oversight_sessions::session_id.eq_any(sessions))
            .filter(oversight_sessions::display_name.is_not_null())
            .select((oversight_sessions::session_id, oversight_sessions::display_name.assume_not_null()))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect()
    };
    Ok(lookups
        .into_iter()
        .map(
            |(
                lookup_id,
                record_id,
                requested_at,
                agency,
                unit,
                user_id,
                session_id,
                query_type,
                subject_id,
                legal_basis,
                purpose_code,
                case_number,
                outcome,
                remarks,
            )| ExportRow {
                user_name: session_id.and_then(|session| names.get(&session).cloned()),
                lookup_id,
                record_id,
                requested_at,
                agency,
                unit,
                user_id,
                query_type,
                subject_id,
                legal_basis,
                purpose_code,
                case_number,
                outcome,
                remarks,
            },
        )
        .collect())
}
