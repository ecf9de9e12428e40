//! Audit events: what services send to the audit service. The broker writes them to its outbox in
//! the same transaction as the state they describe, and relays them at least once; the audit service
//! stores each id once (idempotent), so redelivery is harmless.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Event kinds.
pub mod kind {
    /// The audit service's own acts, recorded in the log they act on (source `audit`).
    /// A legal hold was placed on records (R-AUD-01): they are kept past retention until it is lifted.
    pub const AUDIT_HOLD_PLACED: &str = "audit.hold_placed";
    /// A legal hold was lifted, by someone other than who placed it.
    pub const AUDIT_HOLD_LIFTED: &str = "audit.hold_lifted";
    /// The content of records past retention and not held was removed (R-AUD-01, PDPA art. 11); the
    /// payload names how many, their sequence ranges and the tree they stay in. Never disposed itself.
    pub const AUDIT_RECORDS_DISPOSED: &str = "audit.records_disposed";
    /// Records were exported as a bundle for inspection: who, which period, how many, which tree.
    pub const AUDIT_EXPORTED: &str = "audit.exported";

    /// A lookup was declared and accepted; written durably before anything is forwarded (R-QRY-08).
    pub const LOOKUP_REQUESTED: &str = "lookup.requested";
    /// The upstream answered (or failed) for a requested lookup.
    pub const LOOKUP_COMPLETED: &str = "lookup.completed";
    /// A lookup was refused before anything was forwarded; the payload names the rule applied.
    pub const LOOKUP_REFUSED: &str = "lookup.refused";
    /// A bulk lookup job was accepted (R-QRY-05); each of its IDs is then its own lookup.
    pub const BATCH_SUBMITTED: &str = "batch.submitted";
    /// A bulk job was stopped before its end (its submitter's account is no longer active).
    pub const BATCH_CANCELLED: &str = "batch.cancelled";
    /// A proxy authorization (移民資料代查授權單) was issued by its grantor (R-QRY-06).
    pub const PROXY_AUTHORIZATION_ISSUED: &str = "proxy_authorization.issued";
    /// A proxy authorization was revoked before its end.
    pub const PROXY_AUTHORIZATION_REVOKED: &str = "proxy_authorization.revoked";
    /// A caseworker asked their unit supervisor to approve an "other business" purpose (R-QRY-10).
    pub const PURPOSE_APPROVAL_REQUESTED: &str = "purpose_approval.requested";
    /// The unit supervisor approved or rejected it.
    pub const PURPOSE_APPROVAL_DECIDED: &str = "purpose_approval.decided";
    /// A doubt query (疑義查詢表, 附件二) was faxed while the upstream was down (R-QRY-09); it is a
    /// query of personal data and names its subject.
    pub const DOUBT_QUERY_FILED: &str = "doubt_query.filed";
    /// The official follow-up document of a doubt query was recorded.
    pub const DOUBT_QUERY_FOLLOWED_UP: &str = "doubt_query.followed_up";
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditEvent {
    /// UUIDv7; the idempotency key.
    pub id: String,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    /// The service that recorded it.
    pub source: String,
    pub actor_user_id: Option<String>,
    pub agency: Option<String>,
    /// Groups events of one business object (the lookup id).
    pub correlation_id: Option<String>,
    /// Whose data was accessed (for the right of inquiry, R-GOV-02).
    pub subject_id: Option<String>,
    /// Event details; stored as canonical JSON (sorted keys).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventBatch {
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchReceipt {
    /// Events newly appended to the chain.
    pub appended: usize,
    /// Events already stored (redeliveries).
    pub duplicates: usize,
}
