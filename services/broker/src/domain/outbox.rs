//! The transactional outbox. Events are inserted in the same transaction as the state they describe,
//! and the relay delivers them to the audit service at least once, in id (UUIDv7, time) order.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::AuditEvent;

use super::{new_id, BrokerError};
use crate::schema::outbox;

/// An audit event the caller's act records, correlated with the record it is about.
pub fn event(
    kind: &str,
    now: DateTime<Utc>,
    caller: &Caller,
    correlation_id: &str,
    subject_id: Option<String>,
    payload: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        id: new_id(),
        kind: kind.to_owned(),
        occurred_at: now,
        source: crate::SERVICE.into(),
        actor_user_id: Some(caller.user_id.to_string()),
        agency: Some(caller.agency.to_string()),
        correlation_id: Some(correlation_id.to_owned()),
        subject_id,
        payload,
    }
}

pub fn enqueue(conn: &mut DbConn, now: DateTime<Utc>, event: &AuditEvent) -> Result<(), BrokerError> {
    enqueue_many(conn, now, std::slice::from_ref(event))
}

/// Rows per INSERT statement: well under both backends' bound-parameter limits.
const ROWS_PER_INSERT: usize = 500;

/// Enqueues several events with one multi-row INSERT per few hundred (the journal's group commit).
pub fn enqueue_many(conn: &mut DbConn, now: DateTime<Utc>, events: &[AuditEvent]) -> Result<(), BrokerError> {
    let created_at = to_db(now);
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let rows = chunk
            .iter()
            .map(|event| {
                let json = serde_json::to_string(event)
                    .map_err(|err| BrokerError::Internal(format!("event does not serialise: {err}")))?;
                Ok((
                    outbox::id.eq(&event.id),
                    outbox::event.eq(json),
                    outbox::created_at.eq(created_at),
                    outbox::attempts.eq(0),
                ))
            })
            .collect::<Result<Vec<_>, BrokerError>>()?;
        immilink_shared::insert_rows!(conn, outbox::table, &rows);
    }
    Ok(())
}

/// The oldest undelivered events, at most `limit`. A row that no longer parses is reported, not
/// skipped silently: it stays in the outbox for an operator.
pub fn pending(conn: &mut DbConn, limit: i64) -> Result<Vec<AuditEvent>, BrokerError> {
    let rows: Vec<(String, String)> = outbox::table
        .filter(outbox::delivered_at.is_null())
        .order(outbox::id.asc())
        .limit(limit)
        .select((outbox::id, outbox::event))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, json)| match serde_json::from_str(&json) {
            Ok(event) => Some(event),
            Err(err) => {
                tracing::error!(id, error = %err, "outbox row does not parse; left for an operator");
                None
            }
        })
        .collect())
}

/// Marks events delivered. The mark need not wait for its own flush: if a crash loses it, the events
/// are delivered again and the audit service stores each id once.
pub fn mark_delivered(conn: &mut DbConn, now: DateTime<Utc>, ids: &[String]) -> Result<(), BrokerError> {
    conn.write_transaction(|conn| {
        conn.relax_commit_durability()?;
        conn.plan_for_actual_values()?;
        diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
            .set((outbox::delivered_at.eq(to_db(now)), outbox::attempts.eq(outbox::attempts + 1)))
            .execute(conn)?;
        Ok(())
    })
}

pub fn mark_failed(conn: &mut DbConn, ids: &[String], error: &str) -> Result<(), BrokerError> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((outbox::attempts.eq(outbox::attempts + 1), outbox::last_error.eq(error)))
        .execute(conn)?;
    Ok(())
}

/// How many events wait for delivery (for readiness and metrics).
pub fn backlog(conn: &mut DbConn) -> Result<i64, BrokerError> {
    Ok(outbox::table.filter(outbox::delivered_at.is_null()).count().get_result(conn)?)
}
