//! One lookup, from an accepted declaration to a minimised answer, in the order R-QRY-08 demands:
//! refuse early if the audit trail or the upstream cannot take it, make the audit record durable,
//! only then forward, then record the outcome. Single lookups and each ID of a bulk job go through
//! here. Refusals are recorded too (`lookup.refused`, naming the rule).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use immilink_shared::auth::Caller;
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::SharedClock;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::typed::AgencyCode;
use immilink_shared::ApiError;
use serde_json::json;
use tracing::Instrument;

use crate::domain::lookup::{Context, LookupStatus, NewLookup, Outcome, RecordedLookup};
use crate::domain::request::LookupRequest;
use crate::domain::BrokerError;
use crate::journal::Journal;
use crate::results::{minimise, LookupResult};
use crate::upstream::{NiaClient, NotSent, UpstreamAnswer};
use immilink_shared::outbox::Relay;

/// A declaration that passed every check, with what it was accepted under.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub who: Caller,
    pub request: LookupRequest,
    pub context: Context,
}

/// What a refused request declared, kept for its audit record (bounded, as sent).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Declared {
    pub query_type: Option<String>,
    pub subject_id: Option<String>,
    pub legal_basis: Option<String>,
    pub purpose_code: Option<String>,
    pub case_number: Option<String>,
    pub proxy_authorization_id: Option<String>,
}

impl Declared {
    /// A declared value as kept on the record: trimmed, at most 64 characters.
    pub fn bounded(value: Option<&str>) -> Option<String> {
        value.map(|v| v.trim().chars().take(64).collect())
    }
}

pub struct Lookups {
    journal: Journal,
    nia: NiaClient,
    relay: Relay,
    clock: SharedClock,
    /// Refuse new lookups once the oldest event not yet in the audit service is older than this.
    backlog_max_age: chrono::Duration,
}

impl Lookups {
    pub fn new(
        journal: Journal,
        nia: NiaClient,
        relay: Relay,
        clock: SharedClock,
        backlog_max_age: chrono::Duration,
    ) -> Self {
        Self { journal, nia, relay, clock, backlog_max_age }
    }

    /// Records a refusal that names a rule (`lookup.refused`), then hands the refusal back as the
    /// problem it answers. A refusal is answered even when it cannot be recorded (refusing is the
    /// safe side); that is logged.
    pub async fn refuse(&self, who: &Caller, declared: &Declared, refusal: BrokerError) -> ApiError {
        let refusal = ApiError::from(refusal);
        let problem = refusal.to_problem();
        let Some(rule) = problem.rule.clone() else {
            return refusal;
        };
        let event = AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind::LOOKUP_REFUSED.into(),
            occurred_at: self.clock.now(),
            source: crate::SERVICE.into(),
            actor_user_id: Some(who.user_id.to_string()),
            agency: Some(who.agency.to_string()),
            correlation_id: None,
            subject_id: declared.subject_id.clone(),
            unit: who.unit.as_ref().map(|unit| unit.to_string()),
            payload: json!({
                "rule": rule,
                "code": problem.code,
                "status": problem.status,
                "field": refusal.field_name(),
                "detail": problem.detail,
                "declared": declared,
                "session_id": who.session_id,
            }),
        };
        match self.journal.record_event(event).await {
            Ok(()) => self.relay.wake(),
            Err(err) => tracing::error!(error = %err, rule, "a refusal could not be recorded"),
        }
        refusal
    }

    /// Refusals that need no record of a lookup: the audit trail is too far behind (R-QRY-08), or
    /// the upstream cannot be called (R-QRY-09).
    pub fn precheck(&self, agency: &AgencyCode, now: DateTime<Utc>) -> Result<(), BrokerError> {
        if let Some(oldest) = self.relay.oldest_undelivered() {
            if now - oldest > self.backlog_max_age {
                return Err(BrokerError::AuditBacklog);
            }
        }
        match self.nia.ready_for(agency.as_str()) {
            Ok(()) => Ok(()),
            Err(NotSent::CircuitOpen { retry_after }) => {
                Err(upstream_down("circuit open after repeated upstream failures", Some(retry_after)))
            }
            Err(NotSent::NoCredential) => Err(BrokerError::UpstreamCredentialMissing),
        }
    }

    /// Runs an accepted lookup: durable audit record first, then the upstream, then the outcome.
    /// Callers run [`Lookups::precheck`] first (and record its refusal); the upstream client checks
    /// its circuit again before sending.
    pub async fn run(self: &Arc<Self>, accepted: &Accepted) -> Result<(RecordedLookup, LookupResult), LookupFailure> {
        let now = self.clock.now();
        let lookup = NewLookup::new(now, &accepted.who, &accepted.request, &accepted.context);
        self.journal.record_requested(lookup.clone(), lookup.requested_event()).await.map_err(|err| {
            tracing::error!(error = %err, "lookup not recorded; nothing was forwarded");
            LookupFailure { recorded: None, error: BrokerError::AuditUnavailable }
        })?;
        self.relay.wake();
        // Forwarding and recording the outcome run detached: a client that goes away cannot leave a
        // forwarded lookup without its outcome.
        // The task keeps the request's span, so the trace context and request id travel upstream.
        let this = Arc::clone(self);
        let recorded = lookup.recorded();
        let (span, request) = (tracing::Span::current(), immilink_shared::context::current_request());
        let work = immilink_shared::context::within_request(request, async move { this.forward(lookup).await });
        actix_web::rt::spawn(work.instrument(span)).await.map_err(|err| LookupFailure {
            recorded: Some(recorded),
            error: BrokerError::Internal(format!("the lookup task failed: {err}")),
        })?
    }

    async fn forward(&self, lookup: NewLookup) -> Result<(RecordedLookup, LookupResult), LookupFailure> {
        let request = &lookup.request;
        let answer = self
            .nia
            .query(lookup.id.as_str(), request.query_type, request.subject.as_str(), lookup.who.agency.as_str())
            .await;
        let (outcome, reply) = interpret(request.query_type, answer);
        let event = lookup.completion_event(self.clock.now(), &outcome);
        self.journal.record_outcome(lookup.id.to_string(), outcome, event).await;
        self.relay.wake();
        match reply {
            Ok(result) => Ok((lookup.recorded(), result)),
            Err(error) => Err(LookupFailure { recorded: Some(lookup.recorded()), error }),
        }
    }
}

/// A lookup that did not produce an answer, and the record it left if it got that far (a bulk job
/// names it on the failed item).
#[derive(Debug)]
pub struct LookupFailure {
    /// `None`: nothing was recorded, so nothing was forwarded.
    pub recorded: Option<RecordedLookup>,
    pub error: BrokerError,
}

impl From<LookupFailure> for ApiError {
    fn from(failure: LookupFailure) -> Self {
        failure.error.into()
    }
}

/// The upstream cannot be called (R-QRY-09): logged here, once.
pub fn upstream_down(reason: &str, retry_after: Option<u64>) -> BrokerError {
    tracing::warn!(reason, "upstream unavailable");
    BrokerError::UpstreamUnavailable { reason: reason.to_owned(), retry_after }
}

/// Turns the upstream's answer into what is recorded and what the caller gets.
pub fn interpret(query_type: QueryType, answer: UpstreamAnswer) -> (Outcome, Result<LookupResult, BrokerError>) {
    match answer {
        UpstreamAnswer::Ok(body) => match minimise(query_type, &body) {
            Ok(result) => {
                (Outcome { status: LookupStatus::Succeeded, upstream_status: Some(200), failure: None }, Ok(result))
            }
            Err(err) => (
                Outcome { status: LookupStatus::Failed, upstream_status: Some(200), failure: Some(err.to_string()) },
                Err(BrokerError::UpstreamMalformed(err.to_string())),
            ),
        },
        UpstreamAnswer::Rejected { status, detail } => (
            Outcome { status: LookupStatus::Failed, upstream_status: Some(status), failure: Some(detail) },
            Err(BrokerError::UpstreamRejected { status }),
        ),
        UpstreamAnswer::Unavailable { status, reason, retry_after } => (
            Outcome { status: LookupStatus::Failed, upstream_status: status, failure: Some(reason.clone()) },
            Err(upstream_down(&reason, retry_after)),
        ),
    }
}
