//! The oversight read models, projected from the log: one `oversight_lookups` row per lookup (its
//! `lookup.requested` record, completed by its `lookup.completed` record) and one
//! `oversight_sessions` row per session (login and logout, with the user's name). The log stays the
//! evidence; these rows only make the query record table, the monthly review, sampling and the
//! right-of-inquiry report fast to read.
//!
//! Invariant: the read models hold exactly the records with sequence <= `oversight_head`. Every
//! append projects its records in its own transaction ([`project_appended`]); records stored before
//! the read models existed are projected at start ([`catch_up`]), in sequence order.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use serde::Deserialize;

use super::chain::AuditRecord;
use super::AuditError;
use crate::schema::{audit_records, oversight_head, oversight_lookups, oversight_sessions};

/// The sequence through which records are projected.
fn projected_through(conn: &mut DbConn) -> Result<i64, AuditError> {
    Ok(oversight_head::table.filter(oversight_head::id.eq(1)).select(oversight_head::projected_through).first(conn)?)
}

fn set_projected_through(conn: &mut DbConn, sequence: i64) -> Result<(), AuditError> {
    diesel::update(oversight_head::table.filter(oversight_head::id.eq(1)))
        .set(oversight_head::projected_through.eq(sequence))
        .execute(conn)?;
    Ok(())
}

/// Projects records just appended (in sequence order) inside the append's transaction, first
/// catching up with any older records not projected yet.
pub fn project_appended(conn: &mut DbConn, records: &[AuditRecord]) -> Result<(), AuditError> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(());
    };
    if projected_through(conn)? < first.sequence - 1 {
        catch_up_to(conn, first.sequence - 1)?;
    }
    apply(conn, records)?;
    set_projected_through(conn, last.sequence)
}

/// Projects every record not projected yet, a page at a time; the caller holds the chain lock.
pub fn catch_up(conn: &mut DbConn) -> Result<i64, AuditError> {
    let head: i64 =
        crate::schema::audit_chain_head::table.select(crate::schema::audit_chain_head::next_sequence).first(conn)?;
    catch_up_to(conn, head - 1)?;
    Ok(head - 1)
}

const PAGE: i64 = 2_000;

fn catch_up_to(conn: &mut DbConn, through: i64) -> Result<(), AuditError> {
    let mut after = projected_through(conn)?;
    while after < through {
        let page: Vec<AuditRecord> = audit_records::table
            .filter(audit_records::sequence.gt(after))
            .filter(audit_records::sequence.le(through))
            .order(audit_records::sequence.asc())
            .limit(PAGE)
            .select(AuditRecord::as_select())
            .load(conn)?;
        let Some(last) = page.last().map(|r| r.sequence) else { break };
        apply(conn, &page)?;
        set_projected_through(conn, last)?;
        after = last;
    }
    Ok(())
}

/// What the query record table needs from a `lookup.requested` payload.
#[derive(Debug, Deserialize)]
struct Requested {
    query_type: String,
    legal_basis: String,
    purpose_code: String,
    case_number: String,
    #[serde(default)]
    remarks: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    actor_roles: Vec<String>,
    #[serde(default)]
    proxy_authorization_id: Option<String>,
    #[serde(default)]
    batch_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Completed {
    outcome: String,
}

#[derive(Debug, Deserialize)]
struct SessionOpened {
    session_id: String,
    user_id: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SessionEnded {
    session_id: String,
    user_id: String,
    #[serde(default)]
    login_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = oversight_lookups)]
struct NewLookupRow {
    lookup_id: String,
    record_id: String,
    sequence: i64,
    agency: String,
    unit: Option<String>,
    user_id: String,
    actor_roles: String,
    session_id: Option<String>,
    requested_at: NaiveDateTime,
    query_type: String,
    subject_id: String,
    legal_basis: String,
    purpose_code: String,
    case_number: String,
    remarks: Option<String>,
    proxy_authorization_id: Option<String>,
    batch_id: Option<String>,
}

/// Rows per multi-row INSERT: 17 columns stays under both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Applies records in sequence order. A record whose content was disposed of (R-AUD-01), or whose
/// payload is not the shape its kind has, adds nothing: it stays in the log, which is the evidence.
fn apply(conn: &mut DbConn, records: &[AuditRecord]) -> Result<(), AuditError> {
    let mut requested = Vec::new();
    for record in records {
        if record.disposed_at.is_some() || record.source != "broker" && record.source != "identity" {
            continue;
        }
        match (record.source.as_str(), record.kind.as_str()) {
            ("broker", kind::LOOKUP_REQUESTED) => requested.extend(lookup_row(record)),
            ("broker", kind::LOOKUP_COMPLETED) => {
                // The completion follows its request in the log; write the requests first.
                insert_lookups(conn, &mut requested)?;
                complete_lookup(conn, record)?;
            }
            ("identity", kind::SESSION_OPENED) => open_session(conn, record)?,
            ("identity", kind::SESSION_ENDED) => end_session(conn, record)?,
            _ => {}
        }
    }
    insert_lookups(conn, &mut requested)
}

fn parsed<T: for<'de> Deserialize<'de>>(record: &AuditRecord) -> Option<T> {
    match serde_json::from_str(&record.payload) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(sequence = record.sequence, kind = %record.kind, error = %err, "record not projected");
            None
        }
    }
}

fn lookup_row(record: &AuditRecord) -> Option<NewLookupRow> {
    let payload: Requested = parsed(record)?;
    Some(NewLookupRow {
        lookup_id: record.correlation_id.clone()?,
        record_id: record.id.clone(),
        sequence: record.sequence,
        agency: record.agency.clone()?,
        unit: record.unit.clone(),
        user_id: record.actor_user_id.clone()?,
        actor_roles: payload.actor_roles.join(","),
        session_id: payload.session_id,
        requested_at: record.occurred_at,
        query_type: payload.query_type,
        subject_id: record.subject_id.clone()?,
        legal_basis: payload.legal_basis,
        purpose_code: payload.purpose_code,
        case_number: payload.case_number,
        remarks: payload.remarks.filter(|r| !r.is_empty()),
        proxy_authorization_id: payload.proxy_authorization_id,
        batch_id: payload.batch_id,
    })
}

fn insert_lookups(conn: &mut DbConn, rows: &mut Vec<NewLookupRow>) -> Result<(), AuditError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        immilink_shared::insert_rows!(conn, oversight_lookups::table, chunk);
    }
    rows.clear();
    Ok(())
}

/// An outcome is recorded once (R-QRY-12): a second completion of the same lookup changes nothing.
fn complete_lookup(conn: &mut DbConn, record: &AuditRecord) -> Result<(), AuditError> {
    let (Some(lookup_id), Some(payload)) = (record.correlation_id.as_deref(), parsed::<Completed>(record)) else {
        return Ok(());
    };
    diesel::update(
        oversight_lookups::table
            .filter(oversight_lookups::lookup_id.eq(lookup_id))
            .filter(oversight_lookups::outcome.is_null()),
    )
    .set((oversight_lookups::outcome.eq(payload.outcome), oversight_lookups::completed_at.eq(record.occurred_at)))
    .execute(conn)?;
    Ok(())
}

fn open_session(conn: &mut DbConn, record: &AuditRecord) -> Result<(), AuditError> {
    let Some(payload) = parsed::<SessionOpened>(record) else { return Ok(()) };
    let exists = oversight_sessions::table
        .filter(oversight_sessions::session_id.eq(&payload.session_id))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        diesel::update(oversight_sessions::table.filter(oversight_sessions::session_id.eq(&payload.session_id)))
            .set((
                oversight_sessions::display_name.eq(&payload.display_name),
                oversight_sessions::login_at.eq(record.occurred_at),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(oversight_sessions::table)
            .values((
                oversight_sessions::session_id.eq(&payload.session_id),
                oversight_sessions::user_id.eq(&payload.user_id),
                oversight_sessions::display_name.eq(&payload.display_name),
                oversight_sessions::agency.eq(&record.agency),
                oversight_sessions::login_at.eq(record.occurred_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn end_session(conn: &mut DbConn, record: &AuditRecord) -> Result<(), AuditError> {
    let Some(payload) = parsed::<SessionEnded>(record) else { return Ok(()) };
    let updated =
        diesel::update(oversight_sessions::table.filter(oversight_sessions::session_id.eq(&payload.session_id)))
            .set(oversight_sessions::logout_at.eq(record.occurred_at))
            .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(oversight_sessions::table)
            .values((
                oversight_sessions::session_id.eq(&payload.session_id),
                oversight_sessions::user_id.eq(&payload.user_id),
                oversight_sessions::agency.eq(&record.agency),
                oversight_sessions::login_at.eq(payload.login_at.map(immilink_shared::clock::to_db)),
                oversight_sessions::logout_at.eq(record.occurred_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Removes the read-model rows of lookups whose records were disposed of (R-AUD-01): what the log
/// no longer holds, the read models do not keep either.
pub fn forget_lookups(conn: &mut DbConn, sequences: &[i64]) -> Result<(), AuditError> {
    diesel::delete(oversight_lookups::table.filter(oversight_lookups::sequence.eq_any(sequences))).execute(conn)?;
    Ok(())
}

/// Removes the sessions that ended (or, never ended, began) before `cutoff`, with the disposal of
/// their records.
pub fn forget_sessions_before(conn: &mut DbConn, cutoff: NaiveDateTime) -> Result<(), AuditError> {
    diesel::delete(
        oversight_sessions::table.filter(
            oversight_sessions::logout_at
                .lt(cutoff)
                .or(oversight_sessions::logout_at.is_null().and(oversight_sessions::login_at.lt(cutoff))),
        ),
    )
    .execute(conn)?;
    Ok(())
}
