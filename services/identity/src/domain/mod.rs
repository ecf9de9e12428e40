//! Identity's domain functions. Each takes a connection and the current time, so it tests without
//! HTTP; handlers only parse, authorize, call one of these and map the result. Nothing here knows
//! HTTP: every refusal is a case of [`IdentityError`], and `routes::problems` is the one place that
//! turns a case into a status, a stable code and the SPEC rule.

pub mod accounts;
pub mod applications;
pub mod audit;
pub mod demo;
pub mod fields;
pub mod notices;
pub mod notifications;
pub mod permissions;
pub mod sessions;

use immilink_shared::db::DbError;
use immilink_shared::text_id;
pub use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};

text_id! {
    /// An agency's row id (UUIDv7); clients know agencies by their [`AgencyCode`].
    pub struct AgencyId;
}

text_id! {
    /// An account application's id (UUIDv7).
    pub struct ApplicationId;
}

text_id! {
    /// A queued notification's id (UUIDv7).
    pub struct NotificationId;
}

/// Every way an identity operation can fail, one case per reason, each carrying only what its
/// message needs.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    // --- login and sessions ----------------------------------------------------------------------
    /// Deliberately one case for every login refusal, so the response cannot reveal whether the
    /// account exists (the cause is logged server-side).
    #[error("login refused")]
    LoginRefused,
    /// Too many failed logins (or applications) from one address.
    #[error("too many attempts from this address")]
    Throttled { retry_after_seconds: u64 },
    /// The session is not live (ended, unknown, or used from another IP).
    #[error("the session has ended: {0}")]
    SessionEnded(sessions::SessionRefusal),
    /// More logins at once than the password hasher takes.
    #[error("too many logins at once; try again in a moment")]
    LoginBusy,

    // --- who may act -----------------------------------------------------------------------------
    /// The actor holds none of the roles the action needs.
    #[error("this action needs one of the roles: {}", .roles.join(", "))]
    RoleRequired { roles: &'static [&'static str] },
    /// Missing, or another agency's (which is not revealed).
    #[error("{0} was not found")]
    NotFound(&'static str),

    // --- applications (R-ACC-01..04, 08) ---------------------------------------------------------
    /// The application is not at a step its agency reviews (R-ACC-01).
    #[error("the application is at `{status}`, not awaiting a review by the agency")]
    NotAwaitingReview { status: applications::ApplicationStatus },
    /// Another reviewer took the same step a moment earlier (R-ACC-01).
    #[error("this step was just reviewed by someone else")]
    ReviewedMeanwhile,
    /// The step belongs to another role (R-ACC-01).
    #[error("the `{step}` step is reviewed by the {role}")]
    NotYourStep { step: applications::ReviewStep, role: &'static str },
    /// The first review belongs to the supervisor of the applicant's own unit (R-ACC-01).
    #[error("the first review belongs to the applicant's own unit supervisor")]
    NotApplicantsSupervisor,
    /// R-ACC-04.
    #[error("nobody reviews their own application")]
    OwnApplication,
    /// One person reviews at most one step of an application (R-ACC-04).
    #[error("each step needs a different reviewer; you reviewed an earlier step")]
    AlreadyReviewed,
    /// The applicant is contractor personnel (R-ACC-08).
    #[error("contractor and outsourced personnel cannot apply for an account")]
    ContractorApplicant,
    #[error("the username is taken")]
    UsernameTaken,
    /// A certificate binds one live account or pending application (R-ACC-03).
    #[error("this certificate is already bound to an account or a pending application")]
    CertificateInUse,

    // --- accounts (R-ACC-04..07) -----------------------------------------------------------------
    /// A manager acting on their own account (R-ACC-04): `action` is what they tried.
    #[error("managers cannot {action} their own account")]
    OwnAccount { action: &'static str },
    /// The account is cancelled or terminated already.
    #[error("the account is already {status}")]
    AccountClosed { status: accounts::AccountStatus },
    /// Only an active account can be suspended.
    #[error("only an active account can be suspended; this one is {status}")]
    NotActive { status: accounts::AccountStatus },
    /// Only a suspended account can be reinstated.
    #[error("only a suspended account can be reinstated; this one is {status}")]
    NotSuspended { status: accounts::AccountStatus },
    /// The agency's only active account manager cannot leave before a handover (R-ACC-06).
    #[error("this is the agency's only active account manager: hand the role over first")]
    LastAccountManager,
    /// R-ACC-06.
    #[error("only the outgoing account manager or the agency head can hand the role over")]
    HandoverNotPermitted,

    // --- input -----------------------------------------------------------------------------------
    /// A required field is absent or blank.
    #[error("the field `{field}` is required")]
    Missing { field: String },
    /// A field is present but its value is not acceptable.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },

    // --- infrastructure --------------------------------------------------------------------------
    /// A system identity depends on is not answering; nothing was approved.
    #[error("{0} is not answering; try again shortly")]
    Unavailable(Dependency),
    #[error(transparent)]
    Db(#[from] DbError),
    /// Something that cannot happen with sane data (a stored record that does not parse, a failed
    /// password hash): a 500.
    #[error("{0}")]
    Internal(String),
}

/// The systems identity calls (R-ACC-08, R-ACC-01's last step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The vendors service: is this person contractor personnel?
    Vendors,
    /// The immigration agency's account review.
    ImmigrationAgency,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dependency::Vendors => "the vendors service",
            Dependency::ImmigrationAgency => "the immigration agency's review",
        })
    }
}

impl IdentityError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        IdentityError::Invalid { field: field.into(), detail: detail.into() }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        IdentityError::Missing { field: field.into() }
    }
}

impl From<diesel::result::Error> for IdentityError {
    fn from(err: diesel::result::Error) -> Self {
        IdentityError::Db(DbError::Query(err))
    }
}

/// A fresh UUIDv7 id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
