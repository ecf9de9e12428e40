//! The vendors service's rules: contractor registration per agency ([`vendors`]), their contracts
//! ([`contracts`], R-VEN-02) and personnel ([`personnel`]: suitability checks R-VEN-01, confidentiality
//! agreements R-VEN-04, offboarding R-VEN-06, registration R-VEN-08; identity's contractor check for
//! R-ACC-08), and the messages that tell identity about offboardings and registrations
//! ([`identity_messages`], delivered by `crate::identity_relay`). Domain functions
//! take a connection, the time, the shared [`Caller`] and parsed domain types, and fail with a case
//! of [`VendorsError`]; `routes::problems` is the one place a case becomes a problem.

pub mod audits;
pub mod contracts;
pub mod devices;
pub mod identity_messages;
pub mod incidents;
pub mod personnel;
pub mod sweep;
pub mod vendors;

use chrono::{DateTime, Utc};
use immilink_shared::auth::{roles, Caller};
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::outbox::{self, OutboxError};
use immilink_shared::text_id;

use audits::FindingStatus;
use contracts::ContractStatus;
use devices::DeviceStatus;
use personnel::{AccessRule, PersonnelStatus};

text_id! {
    /// A registered vendor's id (UUIDv7).
    pub struct VendorId;
}

text_id! {
    /// A person on a vendor's staff list (UUIDv7).
    pub struct PersonId;
}

text_id! {
    /// A vendor's contract with the agency (UUIDv7).
    pub struct ContractId;
}

// --- devices, incidents, audits
text_id! {
    /// A dedicated machine registered to a contract (UUIDv7, R-VEN-07).
    pub struct DeviceId;
}

text_id! {
    /// A vendor's incident report (UUIDv7, R-VEN-03).
    pub struct IncidentId;
}

text_id! {
    /// An audit of a vendor (UUIDv7, R-VEN-05).
    pub struct VendorAuditId;
}

text_id! {
    /// A finding of a vendor audit (UUIDv7, R-VEN-05).
    pub struct FindingId;
}

/// Every way a vendors operation can fail, one case per reason.
#[derive(Debug, thiserror::Error)]
pub enum VendorsError {
    /// The caller manages no contractors (vendor manager or account manager).
    #[error("this action needs one of the roles: {}", .roles.join(", "))]
    RoleRequired { roles: &'static [&'static str] },
    /// Missing, or another agency's (which is not revealed).
    #[error("{0} was not found")]
    NotFound(&'static str),
    #[error("this agency already registered a vendor with business number {business_number}")]
    VendorExists { business_number: String },
    /// The message never repeats the national ID.
    #[error("this vendor already lists a person with this ID")]
    PersonnelExists,
    /// A personnel status change [`PersonnelStatus::transition`] refuses.
    #[error("a person who is {from} cannot become {to}")]
    IllegalMove { from: PersonnelStatus, to: PersonnelStatus },
    /// A required field is absent or blank.
    #[error("the field `{field}` is required")]
    Missing { field: String },
    /// A field is present but its value is not acceptable (never repeating a national ID).
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    // --- contracts and personnel
    /// R-VEN-02: custom system development needs a security test certificate on file first.
    #[error(
        "a contract with custom system development cannot become active without a security test certificate on file"
    )]
    CertificateRequired,
    /// A contract status change [`ContractStatus::transition`] refuses.
    #[error("a contract that is {from} cannot become {to}")]
    ContractMove { from: ContractStatus, to: ContractStatus },
    /// The contract has ended: nothing more is filed on it or added to it.
    #[error("the contract has ended")]
    ContractEnded,
    /// The person has departed: their record is closed (R-VEN-06).
    #[error("the person has departed; their record is closed")]
    PersonDeparted,
    /// [`personnel::may_access_personal_data`] refuses: the rule names what is missing.
    #[error("{}", .rule.refusal())]
    PersonalDataRefused { rule: AccessRule },
    // --- devices, incidents, audits
    /// R-VEN-07: the machine (by this field) is registered already, not retired: to another contract
    /// (a dedicated machine never serves two projects) or to this one. `contract_id` is unknown when a
    /// concurrent registration won the race.
    #[error("this machine's {field} is already registered to {}; a dedicated machine serves one project only",
        .contract_id.as_ref().map_or_else(|| "a contract".to_owned(), |id| format!("contract {id}")))]
    DeviceAssigned { field: &'static str, contract_id: Option<ContractId> },
    /// R-VEN-07 refuses the attestation: the machine is online, or a program has no licence reference.
    #[error("{field}: {detail}")]
    AttestationRefused { field: String, detail: String },
    /// A machine status change [`DeviceStatus::transition`] refuses.
    #[error("a machine that is {from} cannot become {to}")]
    IllegalDeviceMove { from: DeviceStatus, to: DeviceStatus },
    /// R-VEN-03: the incident's times do not fit (learned after the report, or before it happened).
    #[error("{field}: {detail}")]
    IncidentTimes { field: &'static str, detail: String },
    /// A finding status change [`FindingStatus::transition`] refuses.
    #[error("a finding that is {from} cannot become {to}")]
    IllegalFindingMove { from: FindingStatus, to: FindingStatus },
    /// R-VEN-05 (as R-AUD-07): who closes a finding is not who recorded its remediation.
    #[error("a finding is closed by someone other than who recorded its remediation")]
    CloserIsRemediator,
    /// A guarded status write matched nothing: someone else changed the record since it was read.
    #[error("{0} was changed by someone else meanwhile; read it again")]
    ChangedMeanwhile(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl VendorsError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        VendorsError::Invalid { field: field.into(), detail: detail.into() }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        VendorsError::Missing { field: field.into() }
    }
}

impl From<OutboxError> for VendorsError {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Db(db) => VendorsError::Db(db),
            // A JSON value always serialises: treat it as the database failing the write.
            OutboxError::Serialise(detail) => {
                VendorsError::Db(DbError::Query(diesel::result::Error::SerializationError(detail.into())))
            }
        }
    }
}

/// Writes the audit event of a change to the outbox (source `vendors`, correlated with the vendor or
/// person changed, no subject: a contractor's staff list is not a lookup of immigration data). Part
/// of the caller's transaction: the event commits or rolls back with the change.
pub fn record(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    kind: &str,
    caller: &Caller,
    correlation_id: &str,
    payload: serde_json::Value,
) -> Result<(), VendorsError> {
    let event = outbox::event(crate::SERVICE, kind, now, caller, correlation_id, None, payload);
    Ok(outbox::enqueue(conn, now, &event)?)
}

/// Writes the audit event of an act of the service itself (the sweep): no actor, the agency the record
/// belongs to. Part of the caller's transaction.
pub fn record_system(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    kind: &str,
    agency: &immilink_shared::typed::AgencyCode,
    correlation_id: &str,
    payload: serde_json::Value,
) -> Result<(), VendorsError> {
    let event = immilink_shared::events::AuditEvent {
        agency: Some(agency.to_string()),
        correlation_id: Some(correlation_id.to_owned()),
        ..immilink_shared::events::AuditEvent::new(crate::SERVICE, kind, now, payload)
    };
    Ok(outbox::enqueue(conn, now, &event)?)
}

impl From<diesel::result::Error> for VendorsError {
    fn from(err: diesel::result::Error) -> Self {
        VendorsError::Db(DbError::Query(err))
    }
}

/// Roles that manage an agency's contractors.
pub const MANAGERS: &[&str] = &[roles::VENDOR_MANAGER, roles::ACCOUNT_MANAGER];

/// Only a vendor manager or account manager manages the agency's contractors and their personnel.
pub fn require_manager(caller: &Caller) -> Result<(), VendorsError> {
    if caller.has_any(MANAGERS) {
        Ok(())
    } else {
        Err(VendorsError::RoleRequired { roles: MANAGERS })
    }
}

/// A required text, trimmed, of at most `max_chars` characters.
pub fn text(value: Option<String>, field: &str, max_chars: usize) -> Result<String, VendorsError> {
    let value =
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| VendorsError::missing(field))?;
    if value.chars().count() > max_chars {
        return Err(VendorsError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    Ok(value)
}

/// An optional text, trimmed (blank is absent), of at most `max_chars` characters.
pub fn optional_text(value: Option<String>, field: &str, max_chars: usize) -> Result<Option<String>, VendorsError> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if value.as_ref().is_some_and(|v| v.chars().count() > max_chars) {
        return Err(VendorsError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    Ok(value)
}

/// A fresh UUIDv7.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
pub(crate) mod testing {
    use immilink_shared::auth::Caller;
    use immilink_shared::typed::{AgencyCode, SessionId, UserId};

    /// A caller of `agency` holding `roles`.
    pub fn caller(agency: &str, roles: &[&str]) -> Caller {
        Caller {
            user_id: UserId::new(format!("manager-{agency}")),
            session_id: SessionId::new("session-1"),
            agency: AgencyCode::new(agency),
            unit: None,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }
}
