//! Identity's domain functions. Each takes a connection and the current time, so it tests without
//! HTTP; handlers only parse, authorize, call one of these and map the result. Nothing here knows
//! HTTP: every refusal is a case of [`IdentityError`], and `routes::problems` is the one place that
//! turns a case into a status, a stable code and the SPEC rule.

pub mod accounts;
pub mod anomalies;
pub mod applications;
pub mod audit;
pub mod contractors;
pub mod demo;
pub mod fields;
pub mod link_forms;
pub mod link_sweep;
pub mod links;
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

    // --- contractor personnel (R-VEN-06, R-VEN-08) ----------------------------------------------
    /// R-VEN-08: a vendor_staff account holds that one role and no lookup grant; `field` names what
    /// would break it.
    #[error("a vendor_staff account holds only the vendor_staff role and no lookup grant: contractor personnel never hold lookup permission")]
    VendorStaffAccount { field: &'static str },
    /// The account's lookup grants are not suspended for a contractor conflict: nothing to resolve.
    #[error("the account's lookup grants are not suspended for a contractor conflict")]
    NoContractorConflict,
    /// R-VEN-08: resolved as `not_contractor`, but the vendors service still lists the holder as
    /// active contractor personnel.
    #[error(
        "the holder is still active contractor personnel: the conflict is resolved by revoking the account's grants"
    )]
    StillContractorPersonnel,

    // --- agency links (R-LINK, R-AUD-09) ---------------------------------------------------------
    /// The link is not in a status the action applies to.
    #[error("the agency link is {status}; it cannot become {wanted}")]
    LinkStatusConflict { status: links::LinkStatus, wanted: links::LinkStatus },
    /// Only a link in force (active or suspended) takes changes, notices, reviews and termination.
    #[error("the agency link is {status}: only an active or suspended link takes this")]
    LinkNotInForce { status: links::LinkStatus },
    /// The agency already has a live link: changes are change applications (R-LINK-05).
    #[error("the agency already has a live link ({link_id}): file a change application for it")]
    LinkExists { link_id: links::LinkId },
    /// A request or application of the same kind waits for a decision already.
    #[error("an earlier request for this link still waits for the immigration agency's decision")]
    RequestPending,
    /// The item, request or notice was decided (or answered) already.
    #[error("this was decided already")]
    AlreadyDecided,
    /// No application of the link waits for item decisions.
    #[error("no application of this link waits for decisions")]
    NothingToDecide,
    /// R-LINK-04: the attached rules miss items of 003 pt 4.
    #[error("the management rules do not cover: {}", .missing.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", "))]
    RulesIncomplete { missing: Vec<link_forms::RulesItem> },
    /// R-LINK-03: a requested query type without a declared legal basis behind it.
    #[error("items[{index}] ({query_type}) is not backed by a legal basis declared in legal_bases")]
    ItemWithoutLegalBasis { index: usize, query_type: String },
    /// R-LINK-05: a change application that changes nothing.
    #[error("a change application names at least one change")]
    NoChange,
    /// R-LINK-11: only an agency itself, or for a non-public agency its competent authority, applies.
    #[error(
        "{agency}'s link is applied for by {agency} itself or, for a non-public agency, by its competent authority"
    )]
    NotEntitledToApply { agency: AgencyCode },
    /// R-LINK-07: anomaly notices of the link are not remediated yet.
    #[error("{notices} anomaly notice(s) of this link are not remediated yet")]
    RemediationOutstanding { notices: i64 },
    /// R-LINK-07: suspended more than six months before remediation.
    #[error("the link has been suspended since {suspended_on}, more than 6 months: a new application is required")]
    ResumptionTooLate { suspended_on: chrono::NaiveDate },
    /// R-LINK-08: less than a month's notice.
    #[error("termination needs notice at least one month ahead: the earliest date is {earliest}")]
    TerminationNoticeTooShort { earliest: chrono::NaiveDate },
    /// The link was not flagged dormant (R-LINK-10).
    #[error("the link is not flagged dormant")]
    NotDormant,

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
