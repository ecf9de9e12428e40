//! The life of a lookup (R-QRY-08): `record_requested` commits the lookup and its audit event together
//! BEFORE anything is forwarded; `record_outcome` commits the result and its event after. A lookup
//! that a crash interrupted between the two is closed as `outcome_unknown` at the next start: never
//! unrecorded.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use serde_json::json;

use super::request::LookupRequest;
use super::{outbox, BrokerDbError};
use crate::schema::lookups;

pub const REQUESTED: &str = "requested";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// Who asked.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user_id: String,
    pub session_id: String,
    pub agency: String,
}

/// A lookup whose audit record is durable.
#[derive(Debug, Clone)]
pub struct RecordedLookup {
    pub lookup_id: String,
    pub audit_id: String,
}

pub fn record_requested(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    who: &Requester,
    request: &LookupRequest,
) -> Result<RecordedLookup, BrokerDbError> {
    let recorded =
        RecordedLookup { lookup_id: uuid::Uuid::now_v7().to_string(), audit_id: uuid::Uuid::now_v7().to_string() };
    let event = AuditEvent {
        id: recorded.audit_id.clone(),
        kind: kind::LOOKUP_REQUESTED.into(),
        occurred_at: now,
        source: crate::SERVICE.into(),
        actor_user_id: Some(who.user_id.clone()),
        agency: Some(who.agency.clone()),
        correlation_id: Some(recorded.lookup_id.clone()),
        subject_id: Some(request.subject.as_str().to_owned()),
        payload: json!({
            "query_type": request.query_type.code(),
            "subject_kind": request.subject.kind(),
            "legal_basis": request.legal_basis,
            "purpose_code": request.purpose_code,
            "case_number": request.case_number,
            "remarks": request.remarks,
            "session_id": who.session_id,
        }),
    };
    conn.write_transaction(|conn| {
        diesel::insert_into(lookups::table)
            .values((
                lookups::id.eq(&recorded.lookup_id),
                lookups::audit_id.eq(&recorded.audit_id),
                lookups::user_id.eq(&who.user_id),
                lookups::session_id.eq(&who.session_id),
                lookups::agency.eq(&who.agency),
                lookups::query_type.eq(request.query_type.code()),
                lookups::subject_id.eq(request.subject.as_str()),
                lookups::subject_kind.eq(request.subject.kind()),
                lookups::legal_basis.eq(&request.legal_basis),
                lookups::purpose_code.eq(&request.purpose_code),
                lookups::case_number.eq(&request.case_number),
                lookups::remarks.eq(&request.remarks),
                lookups::status.eq(REQUESTED),
                lookups::requested_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, now, &event)
    })?;
    Ok(recorded)
}

/// What the upstream did with a forwarded lookup.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: &'static str,
    pub upstream_status: Option<u16>,
    pub failure: Option<String>,
}

pub fn record_outcome(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    lookup_id: &str,
    outcome: &Outcome,
) -> Result<(), BrokerDbError> {
    conn.write_transaction(|conn| {
        let (user_id, agency, subject_id): (String, String, String) = lookups::table
            .filter(lookups::id.eq(lookup_id))
            .select((lookups::user_id, lookups::agency, lookups::subject_id))
            .first(conn)?;
        diesel::update(lookups::table.filter(lookups::id.eq(lookup_id)))
            .set((
                lookups::status.eq(outcome.status),
                lookups::completed_at.eq(to_db(now)),
                lookups::upstream_status.eq(outcome.upstream_status.map(i32::from)),
                lookups::failure.eq(&outcome.failure),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, now, &completion_event(now, lookup_id, user_id, agency, subject_id, outcome))
    })
}

fn completion_event(
    now: DateTime<Utc>,
    lookup_id: &str,
    user_id: String,
    agency: String,
    subject_id: String,
    outcome: &Outcome,
) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind::LOOKUP_COMPLETED.into(),
        occurred_at: now,
        source: crate::SERVICE.into(),
        actor_user_id: Some(user_id),
        agency: Some(agency),
        correlation_id: Some(lookup_id.to_owned()),
        subject_id: Some(subject_id),
        payload: json!({
            "outcome": outcome.status,
            "upstream_status": outcome.upstream_status,
            "failure": outcome.failure,
        }),
    }
}

/// Closes lookups left `requested` for longer than `stale_after` (the broker stopped between forwarding
/// and recording the result) as `outcome_unknown`, each with its completion event.
pub fn close_interrupted(conn: &mut DbConn, now: DateTime<Utc>, stale_after: Duration) -> Result<usize, BrokerDbError> {
    let stale: Vec<String> = lookups::table
        .filter(lookups::status.eq(REQUESTED))
        .filter(lookups::requested_at.lt(to_db(now - stale_after)))
        .select(lookups::id)
        .load(conn)?;
    let outcome = Outcome {
        status: OUTCOME_UNKNOWN,
        upstream_status: None,
        failure: Some("the broker stopped before the upstream's answer was recorded".into()),
    };
    for id in &stale {
        record_outcome(conn, now, id, &outcome)?;
    }
    Ok(stale.len())
}
