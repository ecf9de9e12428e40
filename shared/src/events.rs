//! Audit events: what services send to the audit service. Each service (the broker, identity,
//! vendors) writes them to its outbox (`outbox`) in the same transaction as the state they describe,
//! and relays them at least once; the audit service stores each id once (idempotent), so redelivery
//! is harmless, and admits each service for its own `source` only.

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
    /// The query record table (附件一, R-AUD-03) was read or printed: by whom, which filters, how many rows.
    pub const AUDIT_QUERY_RECORDS_READ: &str = "audit.query_records_read";
    /// An account manager exported users' query records (R-AUD-08): by whom, which filters, how many.
    pub const AUDIT_QUERY_RECORDS_EXPORTED: &str = "audit.query_records_exported";
    /// The monthly review reports of a month were opened (R-AUD-04): which unit, month and reviewer.
    pub const AUDIT_REVIEW_OPENED: &str = "audit.review_opened";
    /// A reviewer marked a lookup as matching the business or not, with a note (R-AUD-04).
    pub const AUDIT_REVIEW_MARKED: &str = "audit.review_marked";
    /// A monthly review was not done by the 10th; its reviewers and the account managers were told.
    pub const AUDIT_REVIEW_OVERDUE: &str = "audit.review_overdue";
    /// A sample was drawn (R-AUD-06): the rule's inputs (seed included) and the records drawn.
    pub const AUDIT_SAMPLE_DRAWN: &str = "audit.sample_drawn";
    /// An auditor recorded the outcome of checking sampled records.
    pub const AUDIT_SAMPLE_CHECKED: &str = "audit.sample_checked";
    /// A self-audit (附件三/附件四, R-AUD-05) was recorded, or completed with its three signatures.
    pub const AUDIT_SELF_AUDIT_RECORDED: &str = "audit.self_audit_recorded";
    pub const AUDIT_SELF_AUDIT_COMPLETED: &str = "audit.self_audit_completed";
    /// A signature of a self-audit other than its last, with the signer as the actor.
    pub const AUDIT_SELF_AUDIT_SIGNED: &str = "audit.self_audit_signed";
    /// A finding was opened (R-AUD-07); the ethics and IT units are notified in the same transaction.
    pub const AUDIT_FINDING_OPENED: &str = "audit.finding_opened";
    /// A finding's remediation was recorded, or it was closed with a reward or penalty recommended.
    pub const AUDIT_FINDING_UPDATED: &str = "audit.finding_updated";
    /// A finding passed its remediation deadline open.
    pub const AUDIT_FINDING_OVERDUE: &str = "audit.finding_overdue";
    /// Someone was told who read a person's data (R-GOV-02): who asked, about whom, how many lookups.
    pub const AUDIT_SUBJECT_ACCESSES_REPORTED: &str = "audit.subject_accesses_reported";

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

    // --- identity: account applications (R-ACC-01..04, 08) ----------------------------------------
    /// Someone without an account applied for one (R-ACC-01); the applicant has no account yet, so
    /// the event has no actor.
    pub const ACCOUNT_APPLICATION_SUBMITTED: &str = "account_application.submitted";
    /// A review step of an application decided (the unit supervisor, the account manager, the agency
    /// head, the contractor check or the immigration agency): approved or rejected, with the reason.
    pub const ACCOUNT_APPLICATION_REVIEWED: &str = "account_application.reviewed";

    // --- identity: accounts (R-ACC-05..11) -------------------------------------------------------
    /// An approved application opened an account, with its roles, grants and registered IPs.
    pub const ACCOUNT_ACTIVATED: &str = "account.activated";
    /// An HR event (resignation, leave, suspension from duty, transfer) cancelled an account the
    /// same day (R-ACC-05).
    pub const ACCOUNT_HR_EVENT: &str = "account.hr_event";
    /// The account manager suspended an account (R-ACC-07).
    pub const ACCOUNT_SUSPENDED: &str = "account.suspended";
    /// The account manager reinstated a suspended account.
    pub const ACCOUNT_REINSTATED: &str = "account.reinstated";
    /// A lost citizen certificate terminated an account (R-ACC-09).
    pub const ACCOUNT_CERTIFICATE_LOST: &str = "account.certificate_lost";
    /// An account's registered IP addresses changed (R-ACC-11).
    pub const ACCOUNT_IPS_CHANGED: &str = "account.ips_changed";
    /// A login was refused because the account was live elsewhere: possible lending (R-ACC-07).
    pub const ACCOUNT_LENDING_FLAGGED: &str = "account.lending_flagged";
    /// Repeated failed logins locked an account for a while.
    pub const ACCOUNT_LOCKED_OUT: &str = "account.locked_out";
    /// A permission change: an account gained a role (the account-manager handover, R-ACC-06).
    pub const ACCOUNT_ROLE_GRANTED: &str = "account.role_granted";
    /// A permission change: an account lost a role (the account-manager handover, R-ACC-06).
    pub const ACCOUNT_ROLE_REVOKED: &str = "account.role_revoked";

    // --- identity: login and sessions (R-ACC-03, 07, 10..12) --------------------------------------
    /// A login succeeded and opened a session (R-ACC-12: the login time).
    pub const SESSION_OPENED: &str = "session.opened";
    /// A session ended: logout, idle timeout, superseded, or forced by a cancellation, suspension,
    /// lost certificate, role change or IP change (R-ACC-10, R-ACC-12: the logout time).
    pub const SESSION_ENDED: &str = "session.ended";
    /// A login was refused (unknown user, wrong password or certificate, locked or inactive account,
    /// unregistered IP, a live session elsewhere). Never carries the password.
    pub const LOGIN_FAILED: &str = "login.failed";

    // --- identity: agency links (R-LINK-01..12, R-AUD-09) -----------------------------------------
    /// A first or change application (申請暨異動書) was filed for an agency's link.
    pub const AGENCY_LINK_APPLIED: &str = "agency_link.applied";
    /// The immigration agency approved or rejected requested items of an application (R-LINK-03).
    pub const AGENCY_LINK_ITEMS_DECIDED: &str = "agency_link.items_decided";
    /// A link moved from one status to another (activated, suspended, resumed, terminated, lapsed,
    /// rejected), with the rule and the reason.
    pub const AGENCY_LINK_TRANSITIONED: &str = "agency_link.transitioned";
    /// An application's decided changes took effect on an active link (items, period, contacts).
    pub const AGENCY_LINK_CHANGED: &str = "agency_link.changed";
    /// The agency gave notice of termination with its date (R-LINK-08).
    pub const AGENCY_LINK_TERMINATION_NOTICED: &str = "agency_link.termination_noticed";
    /// The agency asked to resume a suspended link (R-LINK-07).
    pub const AGENCY_LINK_RESUMPTION_REQUESTED: &str = "agency_link.resumption_requested";
    /// The immigration agency decided a resumption request.
    pub const AGENCY_LINK_RESUMPTION_DECIDED: &str = "agency_link.resumption_decided";
    /// A link's necessity review fell due and the agency was told (R-LINK-09).
    pub const AGENCY_LINK_REVIEW_DUE: &str = "agency_link.review_due";
    /// The agency reviewed its link's necessity (R-LINK-09).
    pub const AGENCY_LINK_NECESSITY_REVIEWED: &str = "agency_link.necessity_reviewed";
    /// A link unused for over a year was flagged dormant and the agency told (R-LINK-10).
    pub const AGENCY_LINK_DORMANT_FLAGGED: &str = "agency_link.dormant_flagged";
    /// The agency answered a dormancy notice: still needed, or not (then the link stops).
    pub const AGENCY_LINK_DORMANCY_CONFIRMED: &str = "agency_link.dormancy_confirmed";
    /// The immigration agency notified an anomaly with a deadline (R-AUD-09).
    pub const ANOMALY_NOTICE_ISSUED: &str = "anomaly_notice.issued";
    /// The agency explained an anomaly and recorded its remediation.
    pub const ANOMALY_NOTICE_REMEDIATED: &str = "anomaly_notice.remediated";
    /// An anomaly passed its deadline unremediated (its link is suspended, R-LINK-06).
    pub const ANOMALY_NOTICE_OVERDUE: &str = "anomaly_notice.overdue";

    // --- vendors (R-VEN-06, R-ACC-08) -------------------------------------------------------------
    /// A contractor was registered with the agency.
    pub const VENDOR_REGISTERED: &str = "vendor.registered";
    /// A person was added to a contractor's staff list (their national ID is not in the event).
    pub const VENDOR_PERSONNEL_ADDED: &str = "vendor_personnel.added";
    /// A person left a contractor's staff (R-VEN-06); they no longer match the contractor check.
    pub const VENDOR_PERSONNEL_DEPARTED: &str = "vendor_personnel.departed";
    /// A person's role on the contract changed (R-VEN-06: their accounts are disabled).
    pub const VENDOR_PERSONNEL_ROLE_CHANGED: &str = "vendor_personnel.role_changed";
    /// A person's suitability check was recorded: status, date, checker (R-VEN-01).
    pub const VENDOR_PERSONNEL_CHECKED: &str = "vendor_personnel.checked";
    /// A person's signed confidentiality agreement was filed (R-VEN-04).
    pub const VENDOR_PERSONNEL_AGREEMENT_FILED: &str = "vendor_personnel.agreement_filed";
    /// A contract was registered (scope, period, custom development).
    pub const VENDOR_CONTRACT_REGISTERED: &str = "vendor_contract.registered";
    /// A contract's security test certificate was filed (R-VEN-02).
    pub const VENDOR_CONTRACT_CERTIFICATE_FILED: &str = "vendor_contract.certificate_filed";
    /// A contract became active, or ended (its personnel offboarded, R-VEN-06).
    pub const VENDOR_CONTRACT_ACTIVATED: &str = "vendor_contract.activated";
    pub const VENDOR_CONTRACT_ENDED: &str = "vendor_contract.ended";
    /// A dedicated machine was registered to a contract, or attested (R-VEN-07).
    pub const VENDOR_DEVICE_REGISTERED: &str = "vendor_device.registered";
    pub const VENDOR_DEVICE_ATTESTED: &str = "vendor_device.attested";
    /// A dedicated machine was retired from its contract.
    pub const VENDOR_DEVICE_RETIRED: &str = "vendor_device.retired";
    /// A dedicated machine's re-attestation fell overdue.
    pub const VENDOR_DEVICE_ATTESTATION_OVERDUE: &str = "vendor_device.attestation_overdue";
    /// An incident was reported (R-VEN-03), flagged late when reported after the limit.
    pub const VENDOR_INCIDENT_REPORTED: &str = "vendor_incident.reported";
    /// An audit of a vendor was recorded, and its findings opened, updated, closed (R-VEN-05).
    pub const VENDOR_AUDIT_RECORDED: &str = "vendor_audit.recorded";
    pub const VENDOR_FINDING_OPENED: &str = "vendor_finding.opened";
    pub const VENDOR_FINDING_UPDATED: &str = "vendor_finding.updated";
    pub const VENDOR_FINDING_OVERDUE: &str = "vendor_finding.overdue";

    // --- identity: contractor personnel (R-VEN-06, R-VEN-08) ---------------------------------------
    /// An account was cancelled because its holder left a contractor's staff, changed role, or the
    /// contract ended (R-VEN-06); its sessions ended at once.
    pub const ACCOUNT_CONTRACTOR_OFFBOARDED: &str = "account.contractor_offboarded";
    /// An account's lookup grants were suspended: its holder was registered as contractor personnel
    /// (R-VEN-08).
    pub const ACCOUNT_GRANTS_SUSPENDED: &str = "account.grants_suspended";
    /// The account manager resolved a contractor conflict (grants revoked, or restored once the
    /// person is no longer contractor personnel).
    pub const ACCOUNT_CONTRACTOR_CONFLICT_RESOLVED: &str = "account.contractor_conflict_resolved";
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
    /// Groups events of one business object (the lookup, application, session or vendor id).
    pub correlation_id: Option<String>,
    /// Whose data was accessed (for the right of inquiry, R-GOV-02).
    pub subject_id: Option<String>,
    /// The unit the actor acted for, where the act is a unit's (lookups, bulk jobs, refusals): a
    /// unit supervisor reads their unit's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Event details; stored as canonical JSON (sorted keys).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl AuditEvent {
    /// A new event (a fresh UUIDv7 id) recorded by `source`, with no actor, agency, correlation or
    /// subject: set those with struct update syntax.
    pub fn new(source: &str, kind: &str, occurred_at: DateTime<Utc>, payload: serde_json::Value) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.to_owned(),
            occurred_at,
            source: source.to_owned(),
            actor_user_id: None,
            agency: None,
            correlation_id: None,
            subject_id: None,
            unit: None,
            payload,
        }
    }
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
