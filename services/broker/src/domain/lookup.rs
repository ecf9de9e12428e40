//! The life of a lookup (R-QRY-08): `record_requested` commits the lookup and its audit event together
//! BEFORE anything is forwarded; `record_outcome` commits the result and its event after. A lookup
//! that a crash interrupted between the two is closed as `outcome_unknown` at the next start: never
//! unrecorded.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UserId};
use serde_json::json;

use super::request::LookupRequest;
use super::{
    approvals, new_id, proxy, AuditEventId, BatchId, BrokerError, LookupId, ProxyAuthorizationId, PurposeApprovalId,
};
use crate::schema::lookups;
use immilink_shared::outbox;

text_enum! {
    /// A lookup's life: recorded before it is forwarded, then its outcome, recorded once (R-QRY-08,
    /// R-QRY-12).
    pub enum LookupStatus {
        /// Recorded and (about to be) forwarded; no outcome yet.
        Requested = "requested",
        Succeeded = "succeeded",
        Failed = "failed",
        /// The broker stopped before the upstream's answer was recorded.
        OutcomeUnknown = "outcome_unknown",
    }
}

impl LookupStatus {
    /// A requested lookup takes one outcome; an outcome is never changed.
    pub fn transition(self, to: LookupStatus) -> Result<LookupStatus, BrokerError> {
        use LookupStatus::*;
        match (self, to) {
            (Requested, Succeeded | Failed | OutcomeUnknown) => Ok(to),
            (from, to) => Err(BrokerError::IllegalTransition { what: "lookup", from: from.as_str(), to: to.as_str() }),
        }
    }

    /// The guard of a write that records `to`: the states a lookup may be in for it (none for a state
    /// that is no outcome, so such a write changes nothing).
    pub fn sources(to: LookupStatus) -> Vec<LookupStatus> {
        LookupStatus::ALL.iter().copied().filter(|from| from.transition(to).is_ok()).collect()
    }
}

/// What, besides the declaration, a lookup was accepted under.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// R-QRY-06: the proxy authorization it runs under, and the user it runs for (the grantor).
    pub proxy: Option<ProxyContext>,
    /// R-QRY-10: the unit supervisor's approval of an "other business" purpose.
    pub supervisor_approval_id: Option<PurposeApprovalId>,
    /// R-QRY-05: the bulk job it belongs to.
    pub batch_id: Option<BatchId>,
}

#[derive(Debug, Clone)]
pub struct ProxyContext {
    pub authorization_id: ProxyAuthorizationId,
    pub on_behalf_of_user_id: UserId,
}

/// R-QRY-06 and R-QRY-10: what a lookup runs under. The proxy authorization it names must serve
/// exactly this caller, case and query type; a purpose that needs a unit supervisor's approval needs
/// one in force for whoever the lookup serves (the grantor, when it runs on their behalf). The
/// grantor's account is checked with identity separately ([`proxy::check_grantor`]).
pub fn context_for(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    request: &LookupRequest,
) -> Result<Context, BrokerError> {
    let proxy = match &request.proxy_authorization_id {
        Some(id) => {
            let grant = proxy::authorization_for(conn, now, caller, id, &request.case_number, request.query_type)?;
            Some(ProxyContext { authorization_id: grant.id, on_behalf_of_user_id: grant.grantor_user_id })
        }
        None => None,
    };
    let beneficiary = proxy.as_ref().map_or(&caller.user_id, |p| &p.on_behalf_of_user_id);
    let supervisor_approval_id = approvals::approval_if_required(
        conn,
        now,
        beneficiary,
        &caller.agency,
        &request.case_number,
        &request.purpose_code,
    )?;
    Ok(Context { proxy, supervisor_approval_id, batch_id: None })
}

/// A lookup whose audit record is durable.
#[derive(Debug, Clone)]
pub struct RecordedLookup {
    pub lookup_id: LookupId,
    pub audit_id: AuditEventId,
}

/// A lookup row about to be written, with the event that goes with it.
#[derive(Debug, Clone)]
pub struct NewLookup {
    pub id: LookupId,
    pub audit_id: AuditEventId,
    pub requested_at: DateTime<Utc>,
    /// Who runs it (a bulk job's submitter as the batch recorded them).
    pub who: Caller,
    pub request: LookupRequest,
    pub context: Context,
}

impl NewLookup {
    pub fn new(now: DateTime<Utc>, who: &Caller, request: &LookupRequest, context: &Context) -> Self {
        Self {
            id: LookupId::new(new_id()),
            audit_id: AuditEventId::new(new_id()),
            requested_at: now,
            who: who.clone(),
            request: request.clone(),
            context: context.clone(),
        }
    }

    pub fn recorded(&self) -> RecordedLookup {
        RecordedLookup { lookup_id: self.id.clone(), audit_id: self.audit_id.clone() }
    }

    /// The `lookup.requested` audit event: who, for whom, what, why, under which authorizations.
    pub fn requested_event(&self) -> AuditEvent {
        let request = &self.request;
        let proxy = self.context.proxy.as_ref();
        AuditEvent {
            id: self.audit_id.to_string(),
            kind: kind::LOOKUP_REQUESTED.into(),
            occurred_at: self.requested_at,
            source: crate::SERVICE.into(),
            actor_user_id: Some(self.who.user_id.to_string()),
            agency: Some(self.who.agency.to_string()),
            correlation_id: Some(self.id.to_string()),
            subject_id: Some(request.subject.as_str().to_owned()),
            unit: self.who.unit.as_ref().map(|unit| unit.to_string()),
            payload: json!({
                "query_type": request.query_type.code(),
                "subject_kind": request.subject.kind(),
                "legal_basis": request.legal_basis,
                "purpose_code": request.purpose_code,
                "case_number": request.case_number,
                "remarks": request.remarks,
                "session_id": self.who.session_id,
                // Who reviews this lookup in the monthly review depends on the roles held (R-AUD-04).
                "actor_roles": self.who.roles,
                "proxy_authorization_id": proxy.map(|p| &p.authorization_id),
                "on_behalf_of_user_id": proxy.map(|p| &p.on_behalf_of_user_id),
                "supervisor_approval_id": self.context.supervisor_approval_id,
                "batch_id": self.context.batch_id,
            }),
        }
    }

    /// The `lookup.completed` event for this lookup's outcome.
    pub fn completion_event(&self, now: DateTime<Utc>, outcome: &Outcome) -> AuditEvent {
        completion_event(
            now,
            &self.id,
            self.who.user_id.clone(),
            self.who.agency.clone(),
            self.who.unit.as_ref().map(|unit| unit.to_string()),
            self.request.subject.as_str().to_owned(),
            outcome,
        )
    }
}

/// Inserts the lookup row (status `requested`); the caller writes its event in the same transaction.
pub fn insert_requested(conn: &mut DbConn, lookup: &NewLookup) -> Result<(), BrokerError> {
    insert_requested_many(conn, &[lookup])
}

/// Rows per INSERT statement: 18 columns each stays well under both backends' parameter limits.
const ROWS_PER_INSERT: usize = 500;

/// Inserts many lookup rows with one multi-row INSERT per few hundred (the journal's group commit).
pub fn insert_requested_many(conn: &mut DbConn, new: &[&NewLookup]) -> Result<(), BrokerError> {
    for chunk in new.chunks(ROWS_PER_INSERT) {
        let rows: Vec<_> = chunk.iter().map(|lookup| row_of(lookup)).collect();
        immilink_shared::insert_rows!(conn, lookups::table, &rows);
    }
    Ok(())
}

#[allow(clippy::type_complexity)]
fn row_of(
    lookup: &NewLookup,
) -> (
    (
        diesel::dsl::Eq<lookups::id, &LookupId>,
        diesel::dsl::Eq<lookups::audit_id, &AuditEventId>,
        diesel::dsl::Eq<lookups::user_id, &UserId>,
        diesel::dsl::Eq<lookups::session_id, &immilink_shared::typed::SessionId>,
        diesel::dsl::Eq<lookups::agency, &AgencyCode>,
        diesel::dsl::Eq<lookups::query_type, &'static str>,
        diesel::dsl::Eq<lookups::subject_id, &str>,
        diesel::dsl::Eq<lookups::subject_kind, &'static str>,
        diesel::dsl::Eq<lookups::legal_basis, &String>,
    ),
    (
        diesel::dsl::Eq<lookups::purpose_code, &String>,
        diesel::dsl::Eq<lookups::case_number, &immilink_shared::typed::CaseNumber>,
        diesel::dsl::Eq<lookups::remarks, &Option<String>>,
        diesel::dsl::Eq<lookups::status, LookupStatus>,
        diesel::dsl::Eq<lookups::requested_at, chrono::NaiveDateTime>,
        diesel::dsl::Eq<lookups::proxy_authorization_id, Option<&ProxyAuthorizationId>>,
        diesel::dsl::Eq<lookups::on_behalf_of_user_id, Option<&UserId>>,
        diesel::dsl::Eq<lookups::supervisor_approval_id, &Option<PurposeApprovalId>>,
        diesel::dsl::Eq<lookups::batch_id, &Option<BatchId>>,
    ),
) {
    let request = &lookup.request;
    let proxy = lookup.context.proxy.as_ref();
    (
        (
            lookups::id.eq(&lookup.id),
            lookups::audit_id.eq(&lookup.audit_id),
            lookups::user_id.eq(&lookup.who.user_id),
            lookups::session_id.eq(&lookup.who.session_id),
            lookups::agency.eq(&lookup.who.agency),
            lookups::query_type.eq(request.query_type.code()),
            lookups::subject_id.eq(request.subject.as_str()),
            lookups::subject_kind.eq(request.subject.kind()),
            lookups::legal_basis.eq(&request.legal_basis),
        ),
        (
            lookups::purpose_code.eq(&request.purpose_code),
            lookups::case_number.eq(&request.case_number),
            lookups::remarks.eq(&request.remarks),
            lookups::status.eq(LookupStatus::Requested),
            lookups::requested_at.eq(to_db(lookup.requested_at)),
            lookups::proxy_authorization_id.eq(proxy.map(|p| &p.authorization_id)),
            lookups::on_behalf_of_user_id.eq(proxy.map(|p| &p.on_behalf_of_user_id)),
            lookups::supervisor_approval_id.eq(&lookup.context.supervisor_approval_id),
            lookups::batch_id.eq(&lookup.context.batch_id),
        ),
    )
}

/// Records a lookup and its audit event in one transaction (the journal batches many of these).
pub fn record_requested(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    who: &Caller,
    request: &LookupRequest,
) -> Result<RecordedLookup, BrokerError> {
    let lookup = NewLookup::new(now, who, request, &Context::default());
    let event = lookup.requested_event();
    conn.write_transaction(|conn| -> Result<(), BrokerError> {
        insert_requested(conn, &lookup)?;
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    Ok(lookup.recorded())
}

/// What the upstream did with a forwarded lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: LookupStatus,
    pub upstream_status: Option<u16>,
    pub failure: Option<String>,
}

pub fn record_outcome(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    lookup_id: &LookupId,
    outcome: &Outcome,
) -> Result<(), BrokerError> {
    conn.write_transaction(|conn| {
        let (user_id, agency, subject_id): (UserId, AgencyCode, String) = lookups::table
            .filter(lookups::id.eq(lookup_id))
            .select((lookups::user_id, lookups::agency, lookups::subject_id))
            .first(conn)?;
        if apply_outcome(conn, now, lookup_id, outcome)? {
            // The lookup row keeps no unit: this completion is read with the agency's records.
            let event = completion_event(now, lookup_id, user_id, agency, None, subject_id, outcome);
            outbox::enqueue(conn, now, &event)?;
        }
        Ok(())
    })
}

/// Sets a requested lookup's outcome. Only a lookup still `requested` changes: an outcome is
/// recorded once and never altered after (R-QRY-12). Returns whether it was still open.
pub fn apply_outcome(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    lookup_id: &LookupId,
    outcome: &Outcome,
) -> Result<bool, BrokerError> {
    let open = LookupStatus::sources(outcome.status);
    let updated = diesel::update(lookups::table.filter(lookups::id.eq(lookup_id)).filter(lookups::status.eq_any(open)))
        .set((
            lookups::status.eq(outcome.status),
            lookups::completed_at.eq(to_db(now)),
            lookups::upstream_status.eq(outcome.upstream_status.map(i32::from)),
            lookups::failure.eq(&outcome.failure),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

fn completion_event(
    now: DateTime<Utc>,
    lookup_id: &LookupId,
    user_id: UserId,
    agency: AgencyCode,
    unit: Option<String>,
    subject_id: String,
    outcome: &Outcome,
) -> AuditEvent {
    AuditEvent {
        id: new_id(),
        kind: kind::LOOKUP_COMPLETED.into(),
        occurred_at: now,
        source: crate::SERVICE.into(),
        actor_user_id: Some(user_id.into_inner()),
        agency: Some(agency.into_inner()),
        correlation_id: Some(lookup_id.to_string()),
        subject_id: Some(subject_id),
        unit,
        payload: json!({
            "outcome": outcome.status,
            "upstream_status": outcome.upstream_status,
            "failure": outcome.failure,
        }),
    }
}

/// Sets the outcomes of many lookups at once: one UPDATE per distinct outcome (in a busy batch they
/// are nearly all "succeeded, 200"). Returns the ids that were still open, whose events the caller
/// writes (an outcome is recorded once, R-QRY-12).
pub fn apply_outcomes(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    outcomes: &[(&str, &Outcome)],
) -> Result<std::collections::HashSet<String>, BrokerError> {
    let ids: Vec<&str> = outcomes.iter().map(|(id, _)| *id).collect();
    let mut open = std::collections::HashSet::new();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let still_open: Vec<String> = lookups::table
            .filter(lookups::id.eq_any(chunk))
            .filter(lookups::status.eq(LookupStatus::Requested))
            .select(lookups::id)
            .load(conn)?;
        open.extend(still_open);
    }
    let mut groups: Vec<(&Outcome, Vec<&str>)> = Vec::new();
    for (id, outcome) in outcomes.iter().filter(|(id, _)| open.contains(*id)) {
        match groups.iter_mut().find(|(o, _)| *o == *outcome) {
            Some((_, members)) => members.push(id),
            None => groups.push((outcome, vec![id])),
        }
    }
    for (outcome, members) in groups {
        for chunk in members.chunks(ROWS_PER_INSERT) {
            let open = LookupStatus::sources(outcome.status);
            diesel::update(lookups::table.filter(lookups::id.eq_any(chunk)).filter(lookups::status.eq_any(open)))
                .set((
                    lookups::status.eq(outcome.status),
                    lookups::completed_at.eq(to_db(now)),
                    lookups::upstream_status.eq(outcome.upstream_status.map(i32::from)),
                    lookups::failure.eq(&outcome.failure),
                ))
                .execute(conn)?;
        }
    }
    Ok(open)
}

/// Closes lookups left `requested` for longer than `stale_after` (the broker stopped between forwarding
/// and recording the result) as `outcome_unknown`, each with its completion event.
pub fn close_interrupted(conn: &mut DbConn, now: DateTime<Utc>, stale_after: Duration) -> Result<usize, BrokerError> {
    let stale: Vec<LookupId> = lookups::table
        .filter(lookups::status.eq(LookupStatus::Requested))
        .filter(lookups::requested_at.lt(to_db(now - stale_after)))
        .select(lookups::id)
        .load(conn)?;
    let outcome = Outcome {
        status: LookupStatus::OutcomeUnknown,
        upstream_status: None,
        failure: Some("the broker stopped before the upstream's answer was recorded".into()),
    };
    for id in &stale {
        record_outcome(conn, now, id, &outcome)?;
    }
    Ok(stale.len())
}
