//! The query record table (查詢紀錄表, seed 002 附件一, R-AUD-03): one row per lookup with the form's
//! columns — serial (序號), the session's login and logout (登入登出日期及時間), the query criteria
//! (query type and subject), the result (成功/失敗), the reason (the purpose), remarks, the user's
//! name, and the supervisor's sign-off from the monthly review (主管簽核). A year's table is the book
//! seed 002 pt 7 has bound and kept five years. Rows come from the projection of the log
//! (`oversight_lookups`, `oversight_sessions`) and the monthly review (`review_entries`), read a page
//! at a time in the table's order (requested_at, lookup_id), so a year of any size streams.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::{business_date, taipei, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use serde_json::json;

use super::records::{require_reader, scope_of};
use super::retention::own_act;
use super::{chain, AuditError};
use crate::schema::{oversight_lookups, oversight_sessions, review_entries};

/// The filters of a table, as asked.
#[derive(Debug, Clone, Default)]
pub struct TableRequest {
    /// The Taipei calendar year; the current one by default.
    pub year: Option<i32>,
    pub agency: Option<String>,
    pub unit: Option<String>,
    pub user: Option<String>,
    pub case_number: Option<String>,
}

/// A table's filters after authorisation: the year's bounds and the agency and unit the reader may
/// read.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFilter {
    pub year: i32,
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
    pub agency: Option<String>,
    pub unit: Option<String>,
    pub user: Option<String>,
    pub case_number: Option<String>,
}

/// The earliest and latest years a table is asked for (the log began in 2026; kept five years).
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

/// The UTC instant a Taipei calendar year starts.
pub fn year_start(year: i32) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let local = taipei().from_local_datetime(&date.and_hms_opt(0, 0, 0)?).single()?;
    Some(local.with_timezone(&Utc).naive_utc())
}

/// Authorises a reader's table and records the read in the log (the table names people and what
/// was looked up about them: reading it is itself an act on personal data). `None`: the reader sees
/// nothing (a unit supervisor with no unit).
pub fn open_table(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    request: TableRequest,
    format: &str,
) -> Result<Option<TableFilter>, AuditError> {
    require_reader(caller)?;
    let year = request.year.unwrap_or_else(|| chrono::Datelike::year(&business_date(now)));
    let invalid = |detail: String| AuditError::Invalid { field: "year".into(), detail };
    if !YEARS.contains(&year) {
        return Err(invalid(format!("must be between {} and {}", YEARS.start(), YEARS.end())));
    }
    let (from, to) = match (year_start(year), year_start(year + 1)) {
        (Some(from), Some(to)) => (from, to),
        _ => return Err(invalid("is not a calendar year".into())),
    };
    let text = |field: &str, value: Option<String>| -> Result<Option<String>, AuditError> {
        match value.map(|v| v.trim().to_owned()) {
            Some(v) if v.is_empty() || v.chars().count() > 128 => {
                Err(AuditError::Invalid { field: field.into(), detail: "must be 1 to 128 characters".into() })
            }
            other => Ok(other),
        }
    };
    let (agency, unit) = (text("agency", request.agency)?, text("unit", request.unit)?);
    let (user, case_number) = (text("user", request.user)?, text("case_number", request.case_number)?);
    let Some(narrowed) = scope_of(caller).narrow(agency, unit)? else {
        return Ok(None);
    };
    let filter = TableFilter { year, from, to, agency: narrowed.agency, unit: narrowed.unit, user, case_number };
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let payload = json!({
            "year": filter.year,
            "agency": filter.agency,
            "unit": filter.unit,
            "user": filter.user,
            "case_number": filter.case_number,
            "format": format,
        });
        let correlation = uuid::Uuid::now_v7().to_string();
        let act =
            own_act(kind::AUDIT_QUERY_RECORDS_READ, now, Some(caller), filter.agency.clone(), &correlation, payload);
        chain::append_locked(conn, now, &[act])?;
        Ok::<_, AuditError>(())
    })?;
    Ok(Some(filter))
}

/// The supervisor's sign-off of a row, from the monthly review.
#[derive(Debug, Clone, PartialEq)]
pub struct SignOff {
    pub verdict: String,
    pub note: Option<String>,
    pub reviewed_by: String,
    pub reviewer_name: Option<String>,
    pub reviewed_at: NaiveDateTime,
}

/// One row of the table. `serial` counts from 1 through the whole (filtered) year.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecordRow {
    pub serial: u64,
    pub lookup_id: String,
    pub record_id: String,
    pub agency: String,
    pub unit: Option<String>,
    pub user_id: String,
    pub user_name: Option<String>,
    pub login_at: Option<NaiveDateTime>,
    pub logout_at: Option<NaiveDateTime>,
    pub requested_at: NaiveDateTime,
    pub query_type: String,
    pub subject_id: String,
    pub outcome: Option<String>,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub remarks: Option<String>,
    pub proxy_authorization_id: Option<String>,
    pub batch_id: Option<String>,
    pub sign_off: Option<SignOff>,
}

impl QueryRecordRow {
    /// 成功 when the upstream answered; 失敗 when it failed or the outcome is unknown; 處理中 while the
    /// lookup has no outcome yet.
    pub fn result_zh(&self) -> &'static str {
        match self.outcome.as_deref() {
            Some("succeeded") => "成功",
            Some(_) => "失敗",
            None => "處理中",
        }
    }
}

/// Where the next page starts: after this row of the table's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub requested_at: NaiveDateTime,
    pub lookup_id: String,
    pub serial: u64,
}

type Joined = (
    (
        String,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        NaiveDateTime,
        String,
        String,
        Option<String>,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    Option<(Option<String>, Option<NaiveDateTime>, Option<NaiveDateTime>)>,
);

/// One page of the table after `after`, at most `limit` rows.
pub fn page(
    conn: &mut DbConn,
    filter: &TableFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<QueryRecordRow>, AuditError> {
    // One lower bound, the cursor's when there is one: SQLite ranges the index on the first bound
    // only, so a second (the year's start) made every page scan from 1 January.
    let lower = after.map_or(filter.from, |a| a.requested_at.max(filter.from));
    let mut query = oversight_lookups::table
        .left_join(
            oversight_sessions::table.on(oversight_sessions::session_id.nullable().eq(oversight_lookups::session_id)),
        )
        .filter(oversight_lookups::requested_at.ge(lower))
        .filter(oversight_lookups::requested_at.lt(filter.to))
        .into_boxed();
    if let Some(agency) = &filter.agency {
        query = query.filter(oversight_lookups::agency.eq(agency.clone()));
    }
    if let Some(unit) = &filter.unit {
        query = query.filter(oversight_lookups::unit.eq(unit.clone()));
    }
    if let Some(user) = &filter.user {
        query = query.filter(oversight_lookups::user_id.eq(user.clone()));
    }
    if let Some(case_number) = &filter.case_number {
        query = query.filter(oversight_lookups::case_number.eq(case_number.clone()));
    }
    if let Some(after) = after {
        query = query.filter(
            oversight_lookups::requested_at
                .gt(after.requested_at)
                .or(oversight_lookups::lookup_id.gt(after.lookup_id.clone())),
        );
    }
    let rows: Vec<Joined> = query
        .order((oversight_lookups::requested_at.asc(), oversight_lookups::lookup_id.asc()))
        .limit(limit)
        .select((
            (
                oversight_lookups::lookup_id,
                oversight_lookups::record_id,
                oversight_lookups::agency,
                oversight_lookups::unit,
                oversight_lookups::user_id,
                oversight_lookups::session_id,
                oversight_lookups::requested_at,
                oversight_lookups::query_type,
                oversight_lookups::subject_id,
                oversight_lookups::outcome,
                oversight_lookups::legal_basis,
                oversight_lookups::purpose_code,
                oversight_lookups::case_number,
                oversight_lookups::remarks,
                oversight_lookups::proxy_authorization_id,
                oversight_lookups::batch_id,
            ),
            (oversight_sessions::display_name, oversight_sessions::login_at, oversight_sessions::logout_at).nullable(),
        ))
        .load(conn)?;
    let sign_offs = sign_offs(conn, rows.iter().map(|((id, ..), _)| id.as_str()))?;
    let first_serial = after.map_or(1, |a| a.serial + 1);
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, (l, session))| {
            let (user_name, login_at, logout_at) = session.unwrap_or((None, None, None));
            QueryRecordRow {
                serial: first_serial + i as u64,
                sign_off: sign_offs.get(&l.0).cloned(),
                lookup_id: l.0,
                record_id: l.1,
                agency: l.2,
                unit: l.3,
                user_id: l.4,
                user_name,
                login_at,
                logout_at,
                requested_at: l.6,
                query_type: l.7,
                subject_id: l.8,
                outcome: l.9,
                legal_basis: l.10,
                purpose_code: l.11,
                case_number: l.12,
                remarks: l.13,
                proxy_authorization_id: l.14,
                batch_id: l.15,
            }
        })
        .collect())
}

/// The sign-offs of a page's lookups, with the reviewers' names as their sessions recorded them.
fn sign_offs<'a>(
    conn: &mut DbConn,
    lookup_ids: impl Iterator<Item = &'a str>,
) -> Result<std::collections::HashMap<String, SignOff>, AuditError> {
    let ids: Vec<&str> = lookup_ids.collect();
    let mut found = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    type Entry = (String, Option<String>, Option<String>, Option<String>, Option<NaiveDateTime>);
    let entries: Vec<Entry> = review_entries::table
        .filter(review_entries::lookup_id.eq_any(&ids))
        .filter(review_entries::verdict.is_not_null())
        .select((
            review_entries::lookup_id,
            review_entries::verdict,
            review_entries::note,
            review_entries::reviewed_by,
            review_entries::reviewed_at,
        ))
        .load(conn)?;
    let reviewers: Vec<String> = entries.iter().filter_map(|e| e.3.clone()).collect();
    let names = display_names(conn, &reviewers)?;
    for (lookup_id, verdict, note, reviewed_by, reviewed_at) in entries {
        if let (Some(verdict), Some(reviewed_by), Some(reviewed_at)) = (verdict, reviewed_by, reviewed_at) {
            let reviewer_name = names.get(&reviewed_by).cloned();
            found.insert(lookup_id, SignOff { verdict, note, reviewed_by, reviewer_name, reviewed_at });
        }
    }
    Ok(found)
}

/// Users' names as their latest recorded session gave them.
pub fn display_names(
    conn: &mut DbConn,
    user_ids: &[String],
) -> Result<std::collections::HashMap<String, String>, AuditError> {
    let mut names = std::collections::HashMap::new();
    if user_ids.is_empty() {
        return Ok(names);
    }
    let rows: Vec<(String, Option<String>)> = oversight_sessions::table
        .filter(oversight_sessions::user_id.eq_any(user_ids))
        .filter(oversight_sessions::display_name.is_not_null())
        .order(oversight_sessions::login_at.asc())
        .select((oversight_sessions::user_id, oversight_sessions::display_name))
        .load(conn)?;
    for (user, name) in rows {
        if let Some(name) = name {
            names.insert(user, name);
        }
    }
    Ok(names)
}

/// The cursor after a row.
pub fn cursor_after(row: &QueryRecordRow) -> Cursor {
    Cursor { requested_at: row.requested_at, lookup_id: row.lookup_id.clone(), serial: row.serial }
}

/// A whole table in memory, for the formats that are written at once (ODS, the printable book); a
/// table larger than `max_rows` is refused: narrow it by unit or user (the JSON and CSV forms stream).
pub fn whole(conn: &mut DbConn, filter: &TableFilter, max_rows: usize) -> Result<Vec<QueryRecordRow>, AuditError> {
    let mut rows: Vec<QueryRecordRow> = Vec::new();
    loop {
        let next = page(conn, filter, rows.last().map(cursor_after).as_ref(), 2_000)?;
        if next.is_empty() {
            return Ok(rows);
        }
        rows.extend(next);
        if rows.len() > max_rows {
            return Err(AuditError::Invalid {
                field: "unit".into(),
                detail: format!(
                    "more than {max_rows} rows: narrow the table by unit or user, or ask for text/csv, which streams"
                ),
            });
        }
    }
}

/// The first instant of a Taipei date, as stored (UTC).
pub fn day_start(date: NaiveDate) -> Option<NaiveDateTime> {
    Some(to_db(immilink_shared::clock::taipei_day_start(date)))
}
