//! The hash chain (R-AUD-02). Appends are serialised by the head row, idempotent by event id, and
//! atomic per batch. Verification walks the chain in sequence order and names the first record whose
//! link or content does not match.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::{AuditEvent, BatchReceipt};
use immilink_shared::extractors::Page;
use immilink_shared::typed::{AgencyCode, UserId};
use sha2::{Digest, Sha256};

use super::AuditError;
use crate::schema::{audit_chain_head, audit_records};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A stored record, every field as hashed (the texts exactly as they were received).
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = audit_records)]
pub struct AuditRecord {
    pub sequence: i64,
    pub id: String,
    pub kind: String,
    pub occurred_at: NaiveDateTime,
    pub recorded_at: NaiveDateTime,
    pub source: String,
    pub actor_user_id: Option<String>,
    pub agency: Option<String>,
    pub correlation_id: Option<String>,
    pub subject_id: Option<String>,
    /// Canonical JSON text of the event details.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record: SHA-256 over the previous hash and every stored field except
/// `recorded_at`, separated by a byte that cannot occur in them unescaped.
pub fn record_hash(record: &AuditRecord) -> String {
    let at = |t: &chrono::NaiveDateTime| t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let parts = [
        record.prev_hash.clone(),
        record.sequence.to_string(),
        record.id.clone(),
        record.kind.clone(),
        at(&record.occurred_at),
        record.source.clone(),
        opt(&record.actor_user_id),
        opt(&record.agency),
        opt(&record.correlation_id),
        opt(&record.subject_id),
        record.payload.clone(),
    ];
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.len().to_string().as_bytes());
        hasher.update(b":");
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Appends a batch atomically; events already stored are counted as duplicates and skipped.
pub fn append(conn: &mut DbConn, now: DateTime<Utc>, events: &[AuditEvent]) -> Result<BatchReceipt, AuditError> {
    conn.write_transaction(|conn| {
        conn.plan_for_actual_values()?;
        // Take the chain lock first, before reading anything, so concurrent appenders queue here.
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
            .set(audit_chain_head::next_sequence.eq(audit_chain_head::next_sequence))
            .execute(conn)?;
        let (mut next_sequence, mut last_hash): (i64, String) = audit_chain_head::table
            .filter(audit_chain_head::id.eq(1))
            .select((audit_chain_head::next_sequence, audit_chain_head::last_hash))
            .first(conn)?;
        let mut receipt = BatchReceipt { appended: 0, duplicates: 0 };
        // Which of the batch are stored already (redeliveries), in one query per chunk.
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|e| e.id.as_str()).collect();
            let stored: Vec<String> =
                audit_records::table.filter(audit_records::id.eq_any(ids)).select(audit_records::id).load(conn)?;
            seen.extend(stored);
        }
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            if !seen.insert(event.id.clone()) {
                receipt.duplicates += 1;
                continue;
            }
            let mut record = AuditRecord {
                sequence: next_sequence,
                id: event.id.clone(),
                kind: event.kind.clone(),
                occurred_at: to_db(event.occurred_at),
                recorded_at: to_db(now),
                source: event.source.clone(),
                actor_user_id: event.actor_user_id.clone(),
                agency: event.agency.clone(),
                correlation_id: event.correlation_id.clone(),
                subject_id: event.subject_id.clone(),
                payload: serde_json::to_string(&event.payload).unwrap_or_else(|_| "null".into()),
                prev_hash: last_hash.clone(),
                hash: String::new(),
            };
            record.hash = record_hash(&record);
            last_hash = record.hash.clone();
            next_sequence += 1;
            receipt.appended += 1;
            records.push(record);
        }
        insert_all(conn, &records)?;
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
            .set((audit_chain_head::next_sequence.eq(next_sequence), audit_chain_head::last_hash.eq(&last_hash)))
            .execute(conn)?;
        Ok(receipt)
    })
}

/// Rows per statement: 13 columns each stays well under both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts the records with one multi-row INSERT per few hundred.
fn insert_all(conn: &mut DbConn, records: &[AuditRecord]) -> QueryResult<()> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    audit_records::sequence.eq(r.sequence),
                    audit_records::id.eq(&r.id),
                    audit_records::kind.eq(&r.kind),
                    audit_records::occurred_at.eq(r.occurred_at),
                    audit_records::recorded_at.eq(r.recorded_at),
                    audit_records::source.eq(&r.source),
                    audit_records::actor_user_id.eq(&r.actor_user_id),
                    audit_records::agency.eq(&r.agency),
                    audit_records::correlation_id.eq(&r.correlation_id),
                    audit_records::subject_id.eq(&r.subject_id),
                    audit_records::payload.eq(&r.payload),
                    audit_records::prev_hash.eq(&r.prev_hash),
                    audit_records::hash.eq(&r.hash),
                )
            })
            .collect();
        immilink_shared::insert_rows!(conn, audit_records::table, &rows);
    }
    Ok(())
}

/// Result of walking the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub ok: bool,
    /// Records walked.
    pub records: i64,
    /// The first record whose link, content or position is wrong.
    pub first_bad_sequence: Option<i64>,
}

const VERIFY_PAGE: i64 = 1000;

/// Walks the whole chain page by page (memory stays flat however long the chain is).
pub fn verify(conn: &mut DbConn) -> Result<Verification, AuditError> {
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut expected_sequence = 1_i64;
    loop {
        let page: Vec<AuditRecord> = audit_records::table
            .filter(audit_records::sequence.ge(expected_sequence))
            .order(audit_records::sequence.asc())
            .limit(VERIFY_PAGE)
            .select(AuditRecord::as_select())
            .load(conn)?;
        if page.is_empty() {
            return Ok(Verification { ok: true, records: expected_sequence - 1, first_bad_sequence: None });
        }
        for record in &page {
            let intact = record.sequence == expected_sequence
                && record.prev_hash == expected_prev
                && record_hash(record) == record.hash;
            if !intact {
                return Ok(Verification {
                    ok: false,
                    records: expected_sequence - 1,
                    first_bad_sequence: Some(expected_sequence.min(record.sequence)),
                });
            }
            expected_prev = record.hash.clone();
            expected_sequence += 1;
        }
    }
}

/// What a search matches: every given field, and `occurred_at` within [from, to).
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    pub agency: Option<AgencyCode>,
    pub actor_user_id: Option<UserId>,
    pub subject_id: Option<String>,
    /// The lookup id.
    pub correlation_id: Option<String>,
    pub kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The matching records in sequence order, one page at a time: the cursor is the last sequence of
/// the previous page.
pub fn search(conn: &mut DbConn, query: &RecordQuery, page: &Page<i64>) -> Result<Vec<AuditRecord>, AuditError> {
    let mut found = audit_records::table.select(AuditRecord::as_select()).into_boxed();
    if let Some(agency) = &query.agency {
        found = found.filter(audit_records::agency.eq(agency.as_str().to_owned()));
    }
    if let Some(actor) = &query.actor_user_id {
        found = found.filter(audit_records::actor_user_id.eq(actor.as_str().to_owned()));
    }
    if let Some(subject) = &query.subject_id {
        found = found.filter(audit_records::subject_id.eq(subject.clone()));
    }
    if let Some(correlation) = &query.correlation_id {
        found = found.filter(audit_records::correlation_id.eq(correlation.clone()));
    }
    if let Some(kind) = &query.kind {
        found = found.filter(audit_records::kind.eq(kind.clone()));
    }
    if let Some(from) = query.from {
        found = found.filter(audit_records::occurred_at.ge(to_db(from)));
    }
    if let Some(to) = query.to {
        found = found.filter(audit_records::occurred_at.lt(to_db(to)));
    }
    if let Some(after) = page.cursor {
        found = found.filter(audit_records::sequence.gt(after));
    }
    Ok(found.order(audit_records::sequence.asc()).limit(page.limit).load(conn)?)
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<AuditRecord>, AuditError> {
    Ok(audit_records::table.filter(audit_records::id.eq(id)).select(AuditRecord::as_select()).first(conn).optional()?)
}
