//! The broker's rules: what a lookup must declare, who may run it, and the order in which it is
//! recorded and forwarded. Functions take a connection, the time and the caller, so they test without
//! HTTP; they return [`BrokerError`], whose cases are domain cases. It becomes a problem in exactly
//! one place, at the HTTP edge (`routes::problems`: `impl From<BrokerError> for ApiError`).

pub mod approvals;
pub mod batches;
pub mod colleagues;
pub mod doubt;
pub mod fields;
pub mod link;
pub mod lookup;
pub mod proxy;
pub mod request;
#[cfg(test)]
pub(crate) mod testkit;

use immilink_shared::catalogue::QueryType;
use immilink_shared::db::DbError;
use immilink_shared::ids::IdError;
use immilink_shared::outbox::OutboxError;
use immilink_shared::text_id;

use approvals::{ApprovalMissing, PurposeRefusal};
use link::LinkRefusal;
use proxy::ProxyRefusal;

text_id! {
    /// A lookup's id (UUIDv7); its audit records carry it as `correlation_id`.
    pub struct LookupId;
}

text_id! {
    /// The id of an audit event the broker recorded (UUIDv7).
    pub struct AuditEventId;
}

text_id! {
    /// A bulk job's id (UUIDv7).
    pub struct BatchId;
}

text_id! {
    /// A proxy authorization's (代查授權單) id (UUIDv7).
    pub struct ProxyAuthorizationId;
}

text_id! {
    /// A purpose approval's id (UUIDv7).
    pub struct PurposeApprovalId;
}

text_id! {
    /// A doubt query's (疑義查詢表) id (UUIDv7).
    pub struct DoubtQueryId;
}

/// The text of a new id: a UUIDv7, so ids sort by their creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether a write failed on a unique index (a concurrent writer got there first).
fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(err, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}

/// Whose lookups a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    User,
    Agency,
}

/// Everything the broker refuses or fails at, as domain cases. Each case knows nothing of HTTP; the
/// one mapping (`routes::problems`) decides its status, stable `code`, `field`, SPEC `rule`, hint and
/// `Retry-After`. The `Display` text is the problem's `detail`.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    // --- what the caller sent --------------------------------------------------------------------
    /// A required field is absent or blank.
    #[error("the field `{field}` is required")]
    Missing { field: String, rule: Option<&'static str> },
    /// A field is present but not acceptable.
    #[error("{detail}")]
    Invalid { field: String, detail: String, rule: Option<&'static str> },
    /// A code that is not in its catalogue (`catalogue` names where the codes are listed).
    #[error("unknown code {value:?}")]
    UnknownCode { field: String, value: String, catalogue: &'static str, rule: &'static str },
    /// A query type code that does not exist (R-QRY-03).
    #[error("unknown query type {value:?}")]
    UnknownQueryType { field: String, value: String, rule: &'static str },
    /// A subject identifier that fails its check (R-QRY-04); `line` is its CSV line, when it came
    /// from one.
    #[error("{}{error}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
    InvalidIdentifier { field: String, error: IdError, line: Option<usize> },
    /// A doubt query names no identifier of its subject (R-QRY-04).
    #[error("give at least one of subject_national_id, subject_passport_number, subject_arc_number")]
    NoSubjectIdentifier { field: &'static str },
    /// A CSV line of a batch holds more than the one subject ID (R-QRY-04).
    #[error("line {line}: one subject ID per line; this line has {fields} fields")]
    NotOneIdPerLine { index: usize, line: usize, fields: usize },
    /// A batch without subject IDs.
    #[error("list at least one subject ID")]
    EmptyBatch,
    /// A batch with more subject IDs than one batch may carry.
    #[error("at most {max} subject IDs per batch; this one has {count}: split it")]
    BatchTooLarge { count: usize, max: usize },
    /// A batch names a proxy authorization: batches never run on another's behalf.
    #[error("batches cannot run on another user's behalf; run proxy lookups one by one with POST /v1/lookups")]
    ProxyOnBatch,

    // --- who may do it -----------------------------------------------------------------------------
    /// R-QRY-02: the declared tuple is not among the caller's permissions.
    #[error(
        "{} for purpose {purpose_code} under {legal_basis} is not approved for your agency's link or not granted to you",
        query_type.code()
    )]
    NotPermitted { query_type: QueryType, purpose_code: String, legal_basis: String },
    /// R-LINK: the agency's link does not serve the lookup now (identity refuses the link, or it does
    /// not carry the query type); `detail` is identity's sentence or the broker's.
    #[error("{detail}")]
    LinkRefused { refusal: LinkRefusal, detail: String },
    /// R-QRY-06: the named proxy authorization does not serve this lookup.
    #[error("{0}")]
    ProxyAuthorizationInvalid(ProxyRefusal),
    /// R-QRY-10: the purpose needs a unit supervisor's approval in force, and there is none.
    #[error("{0}")]
    SupervisorApprovalRequired(ApprovalMissing),
    /// R-QRY-10 with R-QRY-02: an approval is asked for or given only for a purpose the requester
    /// may declare now (their agency's link carries it and it is granted to them).
    #[error("{0}")]
    PurposeNotPermitted(PurposeRefusal),
    /// R-QRY-10: only a caseworker asks for approval of a purpose.
    #[error("only a caseworker asks for approval of a purpose for their lookups")]
    CaseworkerRequired,
    /// R-QRY-10: only a unit supervisor decides on a purpose approval.
    #[error("only a unit supervisor decides on a purpose approval")]
    UnitSupervisorRequired,
    /// R-QRY-10: the caller belongs to no unit, so no unit supervisor can approve for them.
    #[error("your account has no unit, so no unit supervisor can approve for you")]
    NoUnit,
    /// R-QRY-10: separation of duties.
    #[error("nobody decides their own request (separation of duties)")]
    OwnRequest,
    /// R-QRY-10: a supervisor of another unit.
    #[error("only a supervisor of the requester's unit decides on this request")]
    OtherUnit,
    /// R-QRY-06: neither the grantor nor an account manager of the agency.
    #[error("only the grantor or an account manager of the agency may revoke a proxy authorization")]
    NotGrantor,
    /// R-VEN-08 with R-QRY-06: the grantor is contractor personnel (a `vendor_staff` account, or one
    /// whose grants are suspended for a contractor conflict), and no lookup runs on their behalf.
    #[error("contractor personnel never have immigration data looked up, not even on their behalf by a colleague")]
    ContractorGrantor,
    /// R-QRY-09: neither the filer nor a unit supervisor of the filer's unit.
    #[error("only the filer or a unit supervisor of the filer's unit records the follow-up document")]
    NotFiler,
    /// Identity does not know the caller (any more).
    #[error("your account is not known to identity; log in again")]
    UnknownToIdentity,
    /// Identity says the caller's session has ended.
    #[error("the session has ended; log in again")]
    SessionEnded,

    // --- what is there -----------------------------------------------------------------------------
    /// Nothing the caller may see has this id (`what`: "the batch", …).
    #[error("{0} was not found")]
    NotFound(&'static str),
    /// R-QRY-10: a request for this case and purpose already waits.
    #[error("a request for this case and purpose already waits for your unit supervisor")]
    AlreadyPending,
    /// R-QRY-10: a decision is made once.
    #[error("this request has already been decided")]
    AlreadyDecided,
    /// R-QRY-06.
    #[error("this proxy authorization is already revoked")]
    AlreadyRevoked,
    /// R-QRY-06.
    #[error("this proxy authorization has already expired")]
    AlreadyExpired,
    /// R-QRY-09: the follow-up document is recorded once.
    #[error("the follow-up document of this doubt query is already recorded")]
    FollowUpAlreadyRecorded,
    /// A state change its lifecycle does not allow.
    #[error("a {what} cannot go from {from} to {to}")]
    IllegalTransition { what: &'static str, from: &'static str, to: &'static str },

    // --- what the broker depends on ---------------------------------------------------------------
    /// R-QRY-08: the audit trail is too far behind.
    #[error("audit records are not reaching the audit service; lookups are paused until they do")]
    AuditBacklog,
    /// R-QRY-08: the lookup's record could not be made durable, so it was not sent.
    #[error("the lookup could not be recorded, so it was not sent")]
    AuditUnavailable,
    /// R-QRY-09: the upstream is down or its circuit is open (`reason` is for the log).
    #[error("the immigration agency's query service is not answering")]
    UpstreamUnavailable { reason: String, retry_after: Option<u64> },
    /// The agency has no credential for the upstream.
    #[error("your agency has no credential for the immigration agency's query service; tell your IT unit")]
    UpstreamCredentialMissing,
    /// The upstream refused the query.
    #[error("the immigration service answered {status}")]
    UpstreamRejected { status: u16 },
    /// The upstream's answer could not be minimised (R-QRY-07).
    #[error("{0}")]
    UpstreamMalformed(String),
    /// Identity did not answer.
    #[error("permissions cannot be checked right now")]
    IdentityUnavailable,
    /// Over a per-user or per-agency lookup rate.
    #[error("at most {limit} lookups per minute {}", match scope { RateScope::User => "per user", RateScope::Agency => "for your agency" })]
    RateLimited { scope: RateScope, limit: u32, retry_after: u64 },
    #[error(transparent)]
    Db(#[from] DbError),
    /// Something that should not happen (a stored value that does not parse, a task that died).
    #[error("{0}")]
    Internal(String),
}

impl From<OutboxError> for BrokerError {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Db(db) => BrokerError::Db(db),
            OutboxError::Serialise(detail) => BrokerError::Internal(detail),
        }
    }
}

impl From<diesel::result::Error> for BrokerError {
    fn from(err: diesel::result::Error) -> Self {
        BrokerError::Db(DbError::Query(err))
    }
}

impl BrokerError {
    /// `field` is present but not acceptable.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        BrokerError::Invalid { field: field.into(), detail: detail.into(), rule: None }
    }

    /// `field` is absent or blank.
    pub fn missing(field: impl Into<String>) -> Self {
        BrokerError::Missing { field: field.into(), rule: None }
    }

    /// The same refusal of input, naming `rule`.
    pub fn rule(self, rule: &'static str) -> Self {
        match self {
            BrokerError::Missing { field, .. } => BrokerError::Missing { field, rule: Some(rule) },
            BrokerError::Invalid { field, detail, .. } => BrokerError::Invalid { field, detail, rule: Some(rule) },
            other => other,
        }
    }

    /// The same refusal of input, naming `rule` unless it already names a more specific one.
    pub fn or_rule(self, rule: &'static str) -> Self {
        match self {
            BrokerError::Missing { rule: None, .. } | BrokerError::Invalid { rule: None, .. } => self.rule(rule),
            other => other,
        }
    }

    /// "Not now" rather than "no": the audit trail or the upstream cannot take a lookup at the
    /// moment. A bulk job waits on these instead of failing its items.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            BrokerError::AuditBacklog | BrokerError::AuditUnavailable | BrokerError::UpstreamUnavailable { .. }
        )
    }

    /// Whether this is an upstream outage (R-QRY-09).
    pub fn is_upstream_outage(&self) -> bool {
        matches!(self, BrokerError::UpstreamUnavailable { .. })
    }
}
