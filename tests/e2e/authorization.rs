//! The authorisation matrix: who may call which operation of the merged OpenAPI document, as a table
//! a reviewer can read ([`MATRIX`]), executed cell by cell through the gateway against one spawned
//! stack, rendered into `docs/authorization.md`, and checked for completeness against
//! `openapi/immilink.json` so no new operation escapes it. A separate test refuses every read of one
//! agency's objects by every role of another.
//!
//! What a cell means. Every demo role of TPE-SW (README "Demo users") calls each operation twice: on
//! an object of its own agency (TPE-SW) and on the same kind of object of another agency (HLN-HR).
//! The immigration agency's reviewer belongs to neither; its two answers are about the two agencies
//! it oversees. The answer falls into one class:
//!
//! - `A` allowed: authorisation let the request through. The answer is 2xx, or a refusal that
//!   authorisation does not make: 409 (the object's state) or 422 (a field), or 400.
//! - `D` denied: 403, the role (or the caller's relation to the object) may not do this.
//! - `H` hidden: 404, the object is not visible to the caller (another agency's, or one this role
//!   may not see in its own), answered exactly as a missing one is.
//! - `-`: the operation addresses no other agency's object (a list of one's own, a create).
//!
//! Any other answer (401, 5xx) fails the cell whatever the table says.
//!
//! Executing without changing what later cells see. Handlers parse the body before they authorise
//! (STYLE.md: "the handler parses, authorises, calls a domain function"), so an empty body gets 422
//! from most roles and shows nothing. Each operation is therefore probed with a body that parses,
//! aimed at an object whose state makes an authorised request stop after authorisation: an
//! application review with grants outside the request, a terminated account, a closed finding, a
//! lifted hold, an ended contract, a retired machine, a departed person, a link that is not
//! suspended, and so on (the fixtures, made once by [`spawn_with_fixtures`]). The few operations
//! that have no such refusal create a harmless new object (a lookup, a bulk lookup, a draft contract,
//! an incident report, a vendor audit, a checkpoint) or repeat an idempotent act (a necessity review
//! that keeps the link). Suspending a link is the one act undone at once: the test resumes the link
//! before the next cell. Logging out runs last. So every run sends the same requests in the same
//! order to objects in the same states, and the answers do not vary.
//!
//! Two more checks ride on the cells. Every refused other-agency cell is sent again with the
//! object's ids replaced by ones that do not exist: the answers must be equal, or the refusal would
//! tell whether another agency's object exists. And every refused cell with a body is sent again
//! with `{}`: whatever parsing answers first must never be a success, and for another agency's
//! object must equal the answer for a missing one, so the parse-then-authorise order reveals
//! nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone as _, Utc};
use immilink_shared::clock::{business_date, Clock};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{permitted_lookup, within, TestStack};

// --- the table -------------------------------------------------------------------------------------

/// The roles of SPEC "Actors", in the table's column order, each with the demo user who plays it.
const ROLES: [(&str, &str); 10] = [
    ("caseworker", "tpe.caseworker"),
    ("unit_supervisor", "tpe.supervisor"),
    ("account_manager", "tpe.manager"),
    ("agency_head", "tpe.head"),
    ("auditor", "tpe.auditor"),
    ("vendor_manager", "tpe.vendors"),
    ("vendor_staff", "tpe.vendorstaff"),
    ("ethics_officer", "tpe.ethics"),
    ("it_officer", "tpe.it"),
    ("nia_reviewer", "nia.reviewer"),
];

/// HLN-HR's demo users: the roles the other agency has.
const OTHER_AGENCY_USERS: [(&str, &str); 4] = [
    ("caseworker", "hln.clerk"),
    ("unit_supervisor", "hln.supervisor"),
    ("account_manager", "hln.manager"),
    ("agency_head", "hln.head"),
];

/// One operation of the merged document and who may call it.
struct Row {
    /// `METHOD /path` exactly as in `openapi/immilink.json`.
    op: &'static str,
    who: Who,
    /// What the cells were measured on, where the object's state decides the answer.
    note: &'static str,
}

enum Who {
    /// No token needed: anyone, including nobody logged in.
    Anyone,
    /// Per role in [`ROLES`] order: `own/other` answer classes (see the module documentation).
    Roles([&'static str; 10]),
}

const fn anyone(op: &'static str, note: &'static str) -> Row {
    Row { op, who: Who::Anyone, note }
}

const fn roles(op: &'static str, cells: [&'static str; 10], note: &'static str) -> Row {
    Row { op, who: Who::Roles(cells), note }
}

/// Every public operation × every role, own agency / other agency. Columns: caseworker,
/// unit_supervisor, account_manager, agency_head, auditor, vendor_manager, vendor_staff,
/// ethics_officer, it_officer, nia_reviewer.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    // --- no token
    anyone("GET /.well-known/jwks.json", "the public keys that verify tokens"),
    anyone("GET /healthz", ""),
    anyone("GET /readyz", ""),
    anyone("GET /openapi.json", ""),
    anyone("GET /v1/agencies", "agencies and units, for applicants"),
    anyone("POST /v1/auth/login", ""),
    anyone("POST /v1/account-applications", "applicants have no account yet"),
    //                                                            caseworker supervisor manager head   auditor vendor_mgr vendor_staff ethics it     nia
    // --- sessions
    roles("GET /v1/me",                                          ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], ""),
    roles("POST /v1/auth/logout",                                ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], "run last: it ends the caller's session"),
    // --- account applications and accounts
    roles("GET /v1/account-applications",                        ["D/-", "A/-", "A/-", "A/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-"], ""),
    roles("GET /v1/account-applications/{id}",                   ["D/D", "A/H", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/account-applications/{id}/reviews",          ["D/H", "D/H", "A/H", "D/H", "D/H", "D/H", "D/H", "D/H", "D/H", "H/H"], "the application awaits the account manager's review"),
    roles("POST /v1/account-manager-handovers",                  ["D/D", "D/D", "A/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "from the agency's account manager to a terminated account"),
    roles("GET /v1/accounts",                                    ["D/-", "D/-", "A/-", "A/-", "A/-", "D/-", "D/-", "D/-", "A/-", "D/-"], ""),
    roles("GET /v1/accounts/{user_id}",                          ["D/D", "D/D", "A/H", "A/H", "A/H", "D/D", "D/D", "D/D", "A/H", "D/D"], "another person's account"),
    roles("GET /v1/accounts/{user_id}/sessions",                 ["D/D", "D/D", "A/H", "A/H", "A/H", "D/D", "D/D", "D/D", "A/H", "D/D"], "another person's account"),
    roles("POST /v1/accounts/{user_id}/certificate-loss",        ["D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "a terminated account; a holder may report their own"),
    roles("POST /v1/accounts/{user_id}/contractor-conflict/resolution", ["D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "an account without a conflict"),
    roles("POST /v1/accounts/{user_id}/hr-events",               ["D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "a terminated account"),
    roles("PUT /v1/accounts/{user_id}/ips",                      ["D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "A/H", "D/D"], "a terminated account"),
    roles("POST /v1/accounts/{user_id}/reinstatement",           ["D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "a terminated account"),
    roles("POST /v1/accounts/{user_id}/suspension",              ["D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "a terminated account"),
    roles("GET /v1/lending-flags",                               ["D/-", "D/-", "A/-", "A/-", "A/-", "D/-", "D/-", "D/-", "A/-", "D/-"], ""),
    // --- agency links and anomaly notices
    roles("GET /v1/agency-links",                                ["D/-", "D/-", "A/-", "A/-", "D/-", "D/-", "D/-", "D/-", "D/-", "A/-"], ""),
    roles("POST /v1/agency-links",                               ["D/D", "D/D", "A/D", "A/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "the agency already has a live link; other: for HLN-HR"),
    roles("GET /v1/agency-links/{id}",                           ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "A/A"], ""),
    roles("GET /v1/agency-links/{id}/applications/{application_id}/form", ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "A/A"], ""),
    roles("POST /v1/agency-links/{id}/change-applications",      ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "rules missing two of the eight items"),
    roles("POST /v1/agency-links/{id}/dormancy-confirmation",    ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "the link is not dormant"),
    roles("POST /v1/agency-links/{id}/item-decisions",           ["D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "A/A"], "nothing under review"),
    roles("POST /v1/agency-links/{id}/necessity-reviews",        ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "still needed: the link goes on"),
    roles("POST /v1/agency-links/{id}/resumption-requests",      ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "the link is not suspended"),
    roles("POST /v1/agency-links/{id}/resumption-requests/{request_id}/decision", ["D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "A/A"], "a request decided already"),
    roles("POST /v1/agency-links/{id}/suspension",               ["D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "A/A"], "the test resumes the link at once"),
    roles("POST /v1/agency-links/{id}/termination-notice",       ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "a notice shorter than a month"),
    roles("GET /v1/anomaly-notices",                             ["D/-", "D/-", "A/-", "A/-", "D/-", "D/-", "D/-", "D/-", "D/-", "A/-"], ""),
    roles("POST /v1/anomaly-notices",                            ["D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "A/A"], "a deadline in the past"),
    roles("POST /v1/anomaly-notices/{id}/remediation",           ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "a notice remediated already"),
    // --- lookups and what runs under them
    roles("POST /v1/lookups",                                    ["A/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-"], "a permitted lookup: it runs"),
    roles("GET /v1/batches",                                     ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], "each sees the batches they may"),
    roles("POST /v1/batches",                                    ["A/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-"], "a permitted bulk lookup: it runs"),
    roles("GET /v1/batches/{id}",                                ["A/H", "H/H", "A/H", "H/H", "A/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "the caseworker's batch"),
    roles("GET /v1/batches/{id}/results",                        ["A/H", "H/H", "H/H", "H/H", "H/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "the caseworker's batch: results for the submitter only"),
    roles("GET /v1/catalogue/legal-bases",                       ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], ""),
    roles("GET /v1/catalogue/purposes",                          ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], ""),
    roles("GET /v1/catalogue/query-types",                       ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], ""),
    roles("GET /v1/doubt-queries",                               ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], "each sees the doubt queries they may"),
    roles("POST /v1/doubt-queries",                              ["A/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-"], "naming a lookup that is not the caller's"),
    roles("GET /v1/doubt-queries/{id}",                          ["A/H", "A/H", "A/H", "H/H", "A/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "the caseworker's doubt query"),
    roles("POST /v1/doubt-queries/{id}/follow-up",               ["A/H", "A/H", "D/H", "H/H", "D/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "followed up already"),
    roles("GET /v1/doubt-queries/{id}/form",                     ["A/H", "A/H", "A/H", "H/H", "A/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "the caseworker's doubt query"),
    roles("GET /v1/proxy-authorizations",                        ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], "each sees the authorizations they may"),
    roles("POST /v1/proxy-authorizations",                       ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "D/-", "A/-", "A/-", "A/-"], "to a terminated account; contractor personnel grant none (R-VEN-08)"),
    roles("GET /v1/proxy-authorizations/{id}",                   ["A/H", "A/H", "A/H", "H/H", "A/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "from the supervisor to the caseworker"),
    roles("POST /v1/proxy-authorizations/{id}/revocation",       ["D/H", "A/H", "A/H", "H/H", "D/H", "H/H", "H/H", "H/H", "H/H", "H/H"], "revoked already"),
    roles("GET /v1/purpose-approvals",                           ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], "each sees the approvals they may"),
    roles("POST /v1/purpose-approvals",                          ["D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-", "D/-"], "no TPE-SW purpose needs an approval"),
    roles("GET /v1/purpose-approvals/{id}",                      ["-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H"], "only HLN-HR's purposes need one"),
    roles("POST /v1/purpose-approvals/{id}/decision",            ["-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H", "-/H"], "only HLN-HR's purposes need one"),
    // --- the audit log and oversight
    roles("GET /v1/audit/checkpoints",                           ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], "signed tree heads, for anyone to check"),
    roles("POST /v1/audit/checkpoints",                          ["D/-", "A/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], ""),
    roles("GET /v1/audit/checkpoints/latest",                    ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], ""),
    roles("GET /v1/audit/log-key",                               ["A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-", "A/-"], ""),
    roles("GET /v1/audit/consistency",                           ["D/-", "A/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], ""),
    roles("GET /v1/audit/export",                                ["D/-", "A/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], ""),
    roles("GET /v1/audit/verify",                                ["D/-", "A/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], ""),
    roles("GET /v1/audit/records",                               ["D/D", "A/D", "A/D", "D/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "other: agency=HLN-HR"),
    roles("GET /v1/audit/records/{id}",                          ["D/D", "A/H", "A/H", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "A/A"], "a lookup's record"),
    roles("GET /v1/audit/records/{id}/proof",                    ["D/D", "A/H", "A/H", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "A/A"], "a lookup's record"),
    roles("GET /v1/audit/findings",                              ["D/D", "A/D", "A/D", "A/D", "A/D", "D/D", "D/D", "A/D", "A/D", "A/A"], "other: agency=HLN-HR"),
    roles("POST /v1/audit/findings",                             ["D/D", "D/D", "A/D", "D/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "a blank description"),
    roles("GET /v1/audit/findings/{id}",                         ["D/D", "A/H", "A/H", "A/H", "A/H", "D/D", "D/D", "A/H", "A/H", "A/A"], "a finding of the supervisor's unit"),
    roles("POST /v1/audit/findings/{id}/closure",                ["D/D", "D/D", "D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "A/A"], "closed already"),
    roles("POST /v1/audit/findings/{id}/remediation",            ["D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "closed already"),
    roles("GET /v1/audit/holds",                                 ["D/-", "D/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], ""),
    roles("POST /v1/audit/holds",                                ["D/D", "D/D", "A/D", "D/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "naming two scopes at once"),
    roles("POST /v1/audit/holds/{id}/lift",                      ["D/D", "D/D", "A/H", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "A/A"], "lifted already"),
    roles("GET /v1/audit/query-records",                         ["D/D", "A/D", "A/D", "D/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "other: agency=HLN-HR"),
    roles("GET /v1/audit/query-records/export",                  ["D/D", "D/D", "A/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D", "D/D"], "other: agency=HLN-HR"),
    roles("GET /v1/audit/reviews",                               ["D/D", "A/D", "A/D", "A/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "other: agency=HLN-HR"),
    roles("GET /v1/audit/reviews/{id}",                          ["H/H", "A/H", "A/H", "H/H", "A/H", "H/H", "H/H", "A/H", "H/H", "A/A"], "the unit supervisor's report of last month"),
    roles("POST /v1/audit/reviews/{id}/marks",                   ["H/H", "A/H", "D/H", "H/H", "D/H", "H/H", "H/H", "D/H", "H/H", "D/D"], "every entry marked already"),
    roles("GET /v1/audit/samples",                               ["D/D", "A/D", "A/D", "D/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "other: agency=HLN-HR"),
    roles("POST /v1/audit/samples",                              ["D/D", "D/D", "D/D", "D/D", "A/D", "D/D", "D/D", "D/D", "D/D", "A/A"], "a period that ends in the future"),
    roles("GET /v1/audit/samples/{id}",                          ["D/D", "H/H", "A/H", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "A/A"], ""),
    roles("POST /v1/audit/samples/{id}/results",                 ["D/D", "D/D", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D", "A/A"], "a record not in the sample"),
    roles("GET /v1/audit/self-audits",                           ["D/D", "A/D", "A/D", "A/D", "A/D", "D/D", "D/D", "A/D", "D/D", "A/A"], "other: agency=HLN-HR"),
    roles("POST /v1/audit/self-audits",                          ["D/D", "D/D", "A/D", "D/D", "A/D", "D/D", "D/D", "D/D", "D/D", "A/A"], "an audit date in the future"),
    roles("GET /v1/audit/self-audits/{id}",                      ["D/D", "A/H", "A/H", "A/H", "A/H", "D/D", "D/D", "A/H", "D/D", "A/A"], ""),
    roles("POST /v1/audit/self-audits/{id}/signatures",          ["D/D", "A/H", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D", "D/D", "D/D"], "signed in every capacity already"),
    roles("GET /v1/compliance/rules",                            ["D/-", "D/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], "the compliance matrix (R-GOV-01)"),
    roles("GET /v1/audit/subjects/{subject_id}/accesses",        ["D/-", "D/-", "A/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "A/-"], ""),
    // --- vendors
    roles("GET /v1/vendors",                                     ["D/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "D/-", "D/-", "D/-"], ""),
    roles("POST /v1/vendors",                                    ["D/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "D/-", "D/-", "D/-"], "a business number registered already"),
    roles("GET /v1/vendors/{vendor_id}/audits",                  ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/audits",                 ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "recorded: a new audit without findings"),
    roles("GET /v1/vendors/{vendor_id}/contracts",               ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/contracts",              ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "registered: a new draft"),
    roles("GET /v1/vendors/{vendor_id}/contracts/{contract_id}", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/contracts/{contract_id}/activation", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "an ended contract"),
    roles("GET /v1/vendors/{vendor_id}/contracts/{contract_id}/devices", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/contracts/{contract_id}/devices", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "an ended contract"),
    roles("POST /v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/attestations", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D"], "a retired machine"),
    roles("POST /v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/retirement", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "a retired machine"),
    roles("POST /v1/vendors/{vendor_id}/contracts/{contract_id}/end", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "an ended contract"),
    roles("POST /v1/vendors/{vendor_id}/contracts/{contract_id}/security-certificate", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "an ended contract"),
    roles("GET /v1/vendors/{vendor_id}/incidents",               ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/incidents",              ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "A/H", "D/D", "D/D", "D/D"], "reported: a new incident"),
    roles("GET /v1/vendors/{vendor_id}/personnel",               ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/personnel",              ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "a person listed already"),
    roles("GET /v1/vendors/{vendor_id}/personnel/{person_id}",   ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], ""),
    roles("POST /v1/vendors/{vendor_id}/personnel/{person_id}/agreement", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "a departed person"),
    roles("POST /v1/vendors/{vendor_id}/personnel/{person_id}/departure", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "a departed person"),
    roles("POST /v1/vendors/{vendor_id}/personnel/{person_id}/role", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "a departed person"),
    roles("POST /v1/vendors/{vendor_id}/personnel/{person_id}/suitability-check", ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "a departed person"),
    roles("GET /v1/vendor-devices",                              ["D/-", "D/-", "A/-", "D/-", "D/-", "A/-", "A/-", "D/-", "D/-", "D/-"], ""),
    roles("GET /v1/vendor-findings",                             ["D/-", "D/-", "A/-", "D/-", "D/-", "A/-", "D/-", "D/-", "D/-", "D/-"], ""),
    roles("POST /v1/vendor-findings/{finding_id}/closure",       ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "closed already"),
    roles("POST /v1/vendor-findings/{finding_id}/remediation",   ["D/D", "D/D", "A/H", "D/D", "D/D", "A/H", "D/D", "D/D", "D/D", "D/D"], "closed already (other: remediated)"),
];

// --- answer classes ---------------------------------------------------------------------------------

/// What an answer says about authorisation (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Allow,
    Deny,
    Hidden,
}

impl Class {
    /// The class of an HTTP status; `None` for an answer no cell may give (401, 5xx, anything else).
    fn of(status: u16) -> Option<Class> {
        match status {
            200..=299 | 400 | 409 | 422 => Some(Class::Allow),
            403 => Some(Class::Deny),
            404 => Some(Class::Hidden),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Allow => "allowed",
            Class::Deny => "denied (403)",
            Class::Hidden => "hidden (404)",
        }
    }
}

/// One cell's letter: a class, or `None` for `-`.
fn class_of_letter(letter: &str) -> Result<Option<Class>, String> {
    match letter {
        "A" => Ok(Some(Class::Allow)),
        "D" => Ok(Some(Class::Deny)),
        "H" => Ok(Some(Class::Hidden)),
        "-" => Ok(None),
        other => Err(format!("`{other}` is not A, D, H or -")),
    }
}

/// A cell `own/other`.
fn parse_cell(cell: &str) -> Result<(Option<Class>, Option<Class>), String> {
    let (own, other) = cell.split_once('/').ok_or_else(|| format!("cell `{cell}` is not own/other"))?;
    Ok((class_of_letter(own)?, class_of_letter(other)?))
}

/// Which agency's object a cell is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Own,
    Other,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Own => "own agency",
            Side::Other => "other agency",
        }
    }
}

// --- the objects the cells act on --------------------------------------------------------------------

/// One agency's objects, made in [`setup`], in the states the module documentation describes.
#[derive(Debug, Clone)]
struct Objects {
    agency: &'static str,
    /// The agency's account manager (who undoes a suspension of its link).
    manager: &'static str,
    /// An account application awaiting the account manager's review.
    application: String,
    /// A terminated account (not one of the demo users).
    account: String,
    /// The account manager's own user id.
    manager_id: String,
    link: String,
    link_application: String,
    /// A resumption request of the link, decided.
    resumption_request: String,
    /// An anomaly notice of the link, remediated.
    anomaly_notice: String,
    /// The caseworker's bulk lookup, completed.
    batch: String,
    /// The caseworker's doubt query, followed up.
    doubt_query: String,
    /// From the unit supervisor to the caseworker, revoked.
    proxy_authorization: String,
    /// HLN-HR only (Taipei's purposes need no approval): decided.
    purpose_approval: Option<String>,
    /// The audit record of the caseworker's lookup last month.
    audit_record: String,
    /// A finding of the unit (TPE-SW) or the agency (HLN-HR), closed (TPE-SW) or remediated.
    finding: String,
    /// A legal hold, lifted.
    hold: String,
    /// Last month's review report of the unit supervisor, every entry marked.
    review: String,
    sample: String,
    /// Signed in every capacity (TPE-SW) or not at all (HLN-HR).
    self_audit: String,
    vendor: String,
    business_number: &'static str,
    /// Ended.
    contract: String,
    /// Retired.
    device: String,
    /// Departed.
    person: String,
    person_national_id: String,
    /// Closed (TPE-SW) or remediated (HLN-HR).
    vendor_finding: String,
}

impl Objects {
    /// Every id of this agency's objects: another agency's lists must show none of them.
    fn ids(&self) -> Vec<&str> {
        let mut ids = vec![
            self.application.as_str(),
            &self.account,
            &self.manager_id,
            &self.link,
            &self.link_application,
            &self.resumption_request,
            &self.anomaly_notice,
            &self.batch,
            &self.doubt_query,
            &self.proxy_authorization,
            &self.audit_record,
            &self.finding,
            &self.hold,
            &self.review,
            &self.sample,
            &self.self_audit,
            &self.vendor,
            &self.contract,
            &self.device,
            &self.person,
            &self.vendor_finding,
        ];
        ids.extend(self.purpose_approval.as_deref());
        ids
    }

    /// The same agency with every object replaced by one that does not exist.
    fn ghost(&self) -> Objects {
        let fresh = || uuid::Uuid::now_v7().to_string();
        Objects {
            application: fresh(),
            account: fresh(),
            manager_id: fresh(),
            link: fresh(),
            link_application: fresh(),
            resumption_request: fresh(),
            anomaly_notice: fresh(),
            batch: fresh(),
            doubt_query: fresh(),
            proxy_authorization: fresh(),
            purpose_approval: Some(fresh()),
            audit_record: fresh(),
            finding: fresh(),
            hold: fresh(),
            review: fresh(),
            sample: fresh(),
            self_audit: fresh(),
            vendor: fresh(),
            contract: fresh(),
            device: fresh(),
            person: fresh(),
            vendor_finding: fresh(),
            ..self.clone()
        }
    }
}

struct Fixtures {
    own: Objects,
    other: Objects,
    /// The stack's (frozen) time.
    now: DateTime<Utc>,
    /// Access tokens by username: every role's TPE-SW user, the reviewer and HLN-HR's users.
    tokens: BTreeMap<&'static str, String>,
}

impl Fixtures {
    fn token(&self, username: &str) -> &str {
        self.tokens.get(username).map(String::as_str).unwrap_or_else(|| panic!("{username} is logged in"))
    }

    fn objects(&self, side: Side) -> &Objects {
        match side {
            Side::Own => &self.own,
            Side::Other => &self.other,
        }
    }
}

// --- probes ------------------------------------------------------------------------------------------

/// One request of a cell.
#[derive(Debug, Clone)]
struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn get(path: impl Into<String>) -> Probe {
    Probe { method: Method::GET, path: path.into(), body: None }
}

fn post(path: impl Into<String>, body: Value) -> Probe {
    Probe { method: Method::POST, path: path.into(), body: Some(body) }
}

fn put(path: impl Into<String>, body: Value) -> Probe {
    Probe { method: Method::PUT, path: path.into(), body: Some(body) }
}

/// A complete link form whose management rules lack two of the eight items (R-LINK-04): refused after
/// the caller is found to act for the link's agency.
fn incomplete_link_form(o: &Objects, today: chrono::NaiveDate) -> Value {
    let mut coverage = crate::harness::rules_coverage();
    coverage.truncate(6);
    let (basis, purpose) = basis_and_purpose(o.agency);
    json!({
        "legal_bases": [basis],
        "purpose": "資格審查",
        "items": [{ "query_type": "entry_exit_last_year", "legal_basis": basis, "purpose_code": purpose }],
        "using_department": "承辦科",
        "provisioning": { "online_query": true },
        "usage_period": { "from": today.to_string(), "until": (today + chrono::Duration::days(700)).to_string() },
        "handling_on_end": "期滿即刪除",
        "supervisor": { "name": "王科長", "title": "科長", "phone": "02-1", "email": "chief@example.gov.tw" },
        "handler": { "name": "承辦人", "title": "科員", "phone": "02-2", "email": "clerk@example.gov.tw" },
        "management_rules": { "title": "應用移民資訊管理規定", "version": "9", "coverage": coverage },
        "changes": ["handler"],
    })
}

/// A legal basis and purpose of the agency's kind.
fn basis_and_purpose(agency: &str) -> (&'static str, &'static str) {
    match agency {
        "HLN-HR" => ("household_registration_act", "hr_nationality_change"),
        _ => ("social_assistance_act", "sw_statutory_business"),
    }
}

/// The request a cell sends: `role` (a column of [`ROLES`]) acting on `o`, the objects of the
/// cell's side. Bodies parse, so the answer is authorisation's or what comes after it; the objects'
/// states make an authorised request stop without a change (module documentation).
fn probe(op: &str, role: &str, f: &Fixtures, o: &Objects) -> Probe {
    let today = business_date(f.now);
    let tomorrow = today + chrono::Duration::days(1);
    let (basis, purpose) = basis_and_purpose(o.agency);
    let agency = o.agency;
    let (vendor, contract, device, person) = (&o.vendor, &o.contract, &o.device, &o.person);
    let contract_path = format!("/v1/vendors/{vendor}/contracts/{contract}");
    let person_path = format!("/v1/vendors/{vendor}/personnel/{person}");
    let device_path = format!("{contract_path}/devices/{device}");
    match op {
        "GET /.well-known/jwks.json" | "GET /healthz" | "GET /readyz" | "GET /openapi.json" | "GET /v1/agencies" => {
            get(op.split_once(' ').map_or(op, |(_, path)| path))
        }
        "POST /v1/auth/login" => post("/v1/auth/login", json!({ "username": "tpe.caseworker" })),
        "POST /v1/account-applications" => post("/v1/account-applications", json!({ "agency_code": agency })),
        "GET /v1/me" => get("/v1/me"),
        "POST /v1/auth/logout" => post("/v1/auth/logout", json!({})),
        // Accounts and their applications.
        "GET /v1/account-applications" => get("/v1/account-applications"),
        "GET /v1/account-applications/{id}" => get(format!("/v1/account-applications/{}", o.application)),
        // Grants outside the request: refused once the reviewer is this step's.
        "POST /v1/account-applications/{id}/reviews" => post(
            format!("/v1/account-applications/{}/reviews", o.application),
            json!({ "decision": "approve", "grants": [{ "query_type": "eid_photo", "purpose_code": purpose }] }),
        ),
        "POST /v1/account-manager-handovers" => post(
            "/v1/account-manager-handovers",
            json!({ "from_user_id": o.manager_id, "to_user_id": o.account, "reason": "業務移交" }),
        ),
        "GET /v1/accounts" => get("/v1/accounts"),
        "GET /v1/accounts/{user_id}" => get(format!("/v1/accounts/{}", o.account)),
        "GET /v1/accounts/{user_id}/sessions" => get(format!("/v1/accounts/{}/sessions", o.account)),
        "POST /v1/accounts/{user_id}/certificate-loss" => {
            post(format!("/v1/accounts/{}/certificate-loss", o.account), json!({ "reason": "憑證遺失" }))
        }
        "POST /v1/accounts/{user_id}/contractor-conflict/resolution" => post(
            format!("/v1/accounts/{}/contractor-conflict/resolution", o.account),
            json!({ "decision": "revoke_grants", "reason": "確為委外人員" }),
        ),
        "POST /v1/accounts/{user_id}/hr-events" => {
            post(format!("/v1/accounts/{}/hr-events", o.account), json!({ "event": "resignation", "reason": "離職" }))
        }
        "PUT /v1/accounts/{user_id}/ips" => {
            put(format!("/v1/accounts/{}/ips", o.account), json!({ "ips": ["127.0.0.1"], "reason": "座位調整" }))
        }
        "POST /v1/accounts/{user_id}/reinstatement" => {
            post(format!("/v1/accounts/{}/reinstatement", o.account), json!({ "reason": "復職" }))
        }
        "POST /v1/accounts/{user_id}/suspension" => {
            post(format!("/v1/accounts/{}/suspension", o.account), json!({ "reason": "調查中" }))
        }
        "GET /v1/lending-flags" => get("/v1/lending-flags"),
        // Agency links.
        "GET /v1/agency-links" => get("/v1/agency-links"),
        "POST /v1/agency-links" => {
            let mut form = incomplete_link_form(o, today);
            form["management_rules"]["coverage"] = incomplete_link_form(o, today)["management_rules"]["coverage"]
                .as_array()
                .cloned()
                .map(|mut items| {
                    items.push(json!({ "item": "user_liability", "section": "第7點" }));
                    items.push(json!({ "item": "account_permission_changes", "section": "第8點" }));
                    Value::Array(items)
                })
                .unwrap_or_default();
            form.as_object_mut().map(|form| form.remove("changes"));
            if o.agency != f.own.agency {
                form["agency_code"] = json!(agency);
            }
            post("/v1/agency-links", form)
        }
        "GET /v1/agency-links/{id}" => get(format!("/v1/agency-links/{}", o.link)),
        "GET /v1/agency-links/{id}/applications/{application_id}/form" => {
            get(format!("/v1/agency-links/{}/applications/{}/form", o.link, o.link_application))
        }
        "POST /v1/agency-links/{id}/change-applications" => {
            post(format!("/v1/agency-links/{}/change-applications", o.link), incomplete_link_form(o, today))
        }
        "POST /v1/agency-links/{id}/dormancy-confirmation" => {
            post(format!("/v1/agency-links/{}/dormancy-confirmation", o.link), json!({ "still_needed": true }))
        }
        "POST /v1/agency-links/{id}/item-decisions" => post(
            format!("/v1/agency-links/{}/item-decisions", o.link),
            json!({ "decisions": [{ "query_type": "entry_exit_last_year", "legal_basis": basis,
                                    "purpose_code": purpose, "decision": "approve" }] }),
        ),
        "POST /v1/agency-links/{id}/necessity-reviews" => post(
            format!("/v1/agency-links/{}/necessity-reviews", o.link),
            json!({ "still_needed": true, "note": "業務仍需" }),
        ),
        "POST /v1/agency-links/{id}/resumption-requests" => {
            post(format!("/v1/agency-links/{}/resumption-requests", o.link), json!({ "remediation": "已改善" }))
        }
        "POST /v1/agency-links/{id}/resumption-requests/{request_id}/decision" => post(
            format!("/v1/agency-links/{}/resumption-requests/{}/decision", o.link, o.resumption_request),
            json!({ "decision": "approve" }),
        ),
        "POST /v1/agency-links/{id}/suspension" => {
            post(format!("/v1/agency-links/{}/suspension", o.link), json!({ "reason": "授權矩陣測試" }))
        }
        "POST /v1/agency-links/{id}/termination-notice" => post(
            format!("/v1/agency-links/{}/termination-notice", o.link),
            json!({ "termination_date": tomorrow.to_string(), "reason": "業務終止" }),
        ),
        "GET /v1/anomaly-notices" => get("/v1/anomaly-notices"),
        "POST /v1/anomaly-notices" => post(
            "/v1/anomaly-notices",
            json!({ "link_id": o.link, "finding": "夜間大量查詢", "deadline": (today - chrono::Duration::days(1)).to_string() }),
        ),
        "POST /v1/anomaly-notices/{id}/remediation" => post(
            format!("/v1/anomaly-notices/{}/remediation", o.anomaly_notice),
            json!({ "explanation": "批次誤用", "remediation": "限制批次權限" }),
        ),
        // Lookups and what runs under them.
        "POST /v1/lookups" => post("/v1/lookups", permitted_lookup()),
        "GET /v1/batches" => get("/v1/batches"),
        "POST /v1/batches" => post(
            "/v1/batches",
            json!({ "query_type": "entry_exit_last_year", "legal_basis": basis, "purpose_code": purpose,
                    "case_number": "TPE-SW-2026-000321", "subject_ids": ["A123456789"] }),
        ),
        "GET /v1/batches/{id}" => get(format!("/v1/batches/{}", o.batch)),
        "GET /v1/batches/{id}/results" => get(format!("/v1/batches/{}/results", o.batch)),
        "GET /v1/catalogue/legal-bases" | "GET /v1/catalogue/purposes" | "GET /v1/catalogue/query-types" => {
            get(op.trim_start_matches("GET "))
        }
        "GET /v1/doubt-queries" => get("/v1/doubt-queries"),
        "POST /v1/doubt-queries" => {
            let mut body = doubt_query(agency);
            body["lookup_id"] = json!(uuid::Uuid::now_v7().to_string());
            post("/v1/doubt-queries", body)
        }
        "GET /v1/doubt-queries/{id}" => get(format!("/v1/doubt-queries/{}", o.doubt_query)),
        "POST /v1/doubt-queries/{id}/follow-up" => post(
            format!("/v1/doubt-queries/{}/follow-up", o.doubt_query),
            json!({ "document_number": "北市社助字第1150000002號", "sent_on": today.to_string() }),
        ),
        "GET /v1/doubt-queries/{id}/form" => get(format!("/v1/doubt-queries/{}/form", o.doubt_query)),
        "GET /v1/proxy-authorizations" => get("/v1/proxy-authorizations"),
        "POST /v1/proxy-authorizations" => post(
            "/v1/proxy-authorizations",
            json!({ "grantee_user_id": o.account, "case_number": "TPE-SW-2026-000901",
                    "query_types": ["entry_exit_last_year"],
                    "valid_until": (f.now + chrono::Duration::days(7)).to_rfc3339() }),
        ),
        "GET /v1/proxy-authorizations/{id}" => get(format!("/v1/proxy-authorizations/{}", o.proxy_authorization)),
        "POST /v1/proxy-authorizations/{id}/revocation" => {
            post(format!("/v1/proxy-authorizations/{}/revocation", o.proxy_authorization), json!({ "reason": "結案" }))
        }
        "GET /v1/purpose-approvals" => get("/v1/purpose-approvals"),
        "POST /v1/purpose-approvals" => post(
            "/v1/purpose-approvals",
            json!({ "purpose_code": "hr_other_approved", "case_number": "HLN-2026-0042",
                    "business_description": "協助法院查詢當事人出境日期" }),
        ),
        "GET /v1/purpose-approvals/{id}" => {
            get(format!("/v1/purpose-approvals/{}", o.purpose_approval.as_deref().unwrap_or("none")))
        }
        "POST /v1/purpose-approvals/{id}/decision" => post(
            format!("/v1/purpose-approvals/{}/decision", o.purpose_approval.as_deref().unwrap_or("none")),
            json!({ "decision": "rejected", "reason": "非屬其他業務" }),
        ),
        // The audit log.
        "GET /v1/audit/checkpoints" => get("/v1/audit/checkpoints"),
        "POST /v1/audit/checkpoints" => post("/v1/audit/checkpoints", json!({})),
        "GET /v1/audit/checkpoints/latest" => get("/v1/audit/checkpoints/latest"),
        "GET /v1/audit/log-key" => get("/v1/audit/log-key"),
        "GET /v1/audit/consistency" => get("/v1/audit/consistency?first=1&second=2"),
        "GET /v1/audit/export" => get("/v1/audit/export"),
        "GET /v1/audit/verify" => get("/v1/audit/verify"),
        "GET /v1/audit/records" => get(format!("/v1/audit/records?agency={agency}&limit=5")),
        "GET /v1/audit/records/{id}" => get(format!("/v1/audit/records/{}", o.audit_record)),
        "GET /v1/audit/records/{id}/proof" => get(format!("/v1/audit/records/{}/proof", o.audit_record)),
        "GET /v1/audit/findings" => get(format!("/v1/audit/findings?agency={agency}")),
        "POST /v1/audit/findings" => post("/v1/audit/findings", json!({ "agency": agency, "description": " " })),
        "GET /v1/audit/findings/{id}" => get(format!("/v1/audit/findings/{}", o.finding)),
        "POST /v1/audit/findings/{id}/closure" => {
            post(format!("/v1/audit/findings/{}/closure", o.finding), json!({ "recommendation": "none" }))
        }
        "POST /v1/audit/findings/{id}/remediation" => {
            post(format!("/v1/audit/findings/{}/remediation", o.finding), json!({ "remediation": "已改善" }))
        }
        "GET /v1/audit/holds" => get("/v1/audit/holds"),
        "POST /v1/audit/holds" => post(
            "/v1/audit/holds",
            json!({ "agency": agency, "reason": "訴訟保全", "subject_id": "A123456789", "case_number": "X-1" }),
        ),
        "POST /v1/audit/holds/{id}/lift" => {
            post(format!("/v1/audit/holds/{}/lift", o.hold), json!({ "reason": "結案" }))
        }
        "GET /v1/audit/query-records" => {
            get(format!("/v1/audit/query-records?year={}&agency={agency}", f.now.with_timezone(&taipei()).year()))
        }
        "GET /v1/audit/query-records/export" => get(format!(
            "/v1/audit/query-records/export?from={}&to={}&agency={agency}",
            urlencode(&(f.now - chrono::Duration::days(60)).to_rfc3339()),
            urlencode(&f.now.to_rfc3339())
        )),
        "GET /v1/audit/reviews" => get(format!("/v1/audit/reviews?agency={agency}")),
        "GET /v1/audit/reviews/{id}" => get(format!("/v1/audit/reviews/{}", o.review)),
        "POST /v1/audit/reviews/{id}/marks" => post(
            format!("/v1/audit/reviews/{}/marks", o.review),
            json!({ "marks": [{ "lookup_id": uuid::Uuid::now_v7().to_string(), "verdict": "matches" }] }),
        ),
        "GET /v1/audit/samples" => get(format!("/v1/audit/samples?agency={agency}")),
        "POST /v1/audit/samples" => post(
            "/v1/audit/samples",
            json!({ "agency": agency, "from": (f.now - chrono::Duration::days(1)).to_rfc3339(),
                    "to": (f.now + chrono::Duration::days(1)).to_rfc3339(), "ratio": 0.01 }),
        ),
        "GET /v1/audit/samples/{id}" => get(format!("/v1/audit/samples/{}", o.sample)),
        "POST /v1/audit/samples/{id}/results" => post(
            format!("/v1/audit/samples/{}/results", o.sample),
            json!({ "results": [{ "record_id": uuid::Uuid::now_v7().to_string(), "outcome": "compliant" }] }),
        ),
        "GET /v1/audit/self-audits" => get(format!("/v1/audit/self-audits?agency={agency}")),
        "POST /v1/audit/self-audits" => post(
            "/v1/audit/self-audits",
            json!({ "agency": agency, "form": "annex_3", "audit_date": tomorrow.to_string(), "items": [] }),
        ),
        "GET /v1/audit/self-audits/{id}" => get(format!("/v1/audit/self-audits/{}", o.self_audit)),
        "POST /v1/audit/self-audits/{id}/signatures" => {
            // Each role signs in the capacity it could hold.
            let capacity = match role {
                "unit_supervisor" => "section_chief",
                "agency_head" => "unit_head",
                _ => "auditor",
            };
            post(
                format!("/v1/audit/self-audits/{}/signatures", o.self_audit),
                json!({ "as": capacity, "name": "簽名" }),
            )
        }
        "GET /v1/audit/subjects/{subject_id}/accesses" => get("/v1/audit/subjects/A123456789/accesses"),
        "GET /v1/compliance/rules" => get("/v1/compliance/rules"),
        // Vendors.
        "GET /v1/vendors" => get("/v1/vendors"),
        "POST /v1/vendors" => {
            post("/v1/vendors", json!({ "name": "重複登記廠商", "business_number": o.business_number }))
        }
        "GET /v1/vendors/{vendor_id}/audits" => get(format!("/v1/vendors/{vendor}/audits")),
        "POST /v1/vendors/{vendor_id}/audits" => post(
            format!("/v1/vendors/{vendor}/audits"),
            json!({ "audited_on": today.to_string(), "auditor": "資訊室", "scope": "例行查核", "summary": "無缺失" }),
        ),
        "GET /v1/vendors/{vendor_id}/contracts" => get(format!("/v1/vendors/{vendor}/contracts")),
        "POST /v1/vendors/{vendor_id}/contracts" => post(
            format!("/v1/vendors/{vendor}/contracts"),
            json!({ "title": "草約", "scope": "系統維護", "starts_on": today.to_string(),
                    "ends_on": (today + chrono::Duration::days(30)).to_string(), "custom_development": false }),
        ),
        "GET /v1/vendors/{vendor_id}/contracts/{contract_id}" => get(contract_path),
        "POST /v1/vendors/{vendor_id}/contracts/{contract_id}/activation" => {
            post(format!("{contract_path}/activation"), json!({}))
        }
        "GET /v1/vendors/{vendor_id}/contracts/{contract_id}/devices" => get(format!("{contract_path}/devices")),
        "POST /v1/vendors/{vendor_id}/contracts/{contract_id}/devices" => post(
            format!("{contract_path}/devices"),
            json!({ "asset_tag": "TPE-PC-9999", "serial_number": "SN-MATRIX-9", "description": "專屬電腦" }),
        ),
        "POST /v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/attestations" => post(
            format!("{device_path}/attestations"),
            json!({ "offline": true, "software": [{ "name": "LibreOffice", "licence_ref": "MPL-2.0" }] }),
        ),
        "POST /v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/retirement" => {
            post(format!("{device_path}/retirement"), json!({ "reason": "汰換" }))
        }
        "POST /v1/vendors/{vendor_id}/contracts/{contract_id}/end" => {
            post(format!("{contract_path}/end"), json!({ "reason": "契約期滿" }))
        }
        "POST /v1/vendors/{vendor_id}/contracts/{contract_id}/security-certificate" => post(
            format!("{contract_path}/security-certificate"),
            json!({ "reference": "STC-2026-0412", "issuer": "檢測中心", "issued_on": today.to_string() }),
        ),
        "GET /v1/vendors/{vendor_id}/incidents" => get(format!("/v1/vendors/{vendor}/incidents")),
        "POST /v1/vendors/{vendor_id}/incidents" => post(
            format!("/v1/vendors/{vendor}/incidents"),
            json!({ "occurred_at": (f.now - chrono::Duration::minutes(20)).to_rfc3339(),
                    "learned_at": (f.now - chrono::Duration::minutes(10)).to_rfc3339(),
                    "description": "授權矩陣測試通報", "measures": "隔離設備" }),
        ),
        "GET /v1/vendors/{vendor_id}/personnel" => get(format!("/v1/vendors/{vendor}/personnel")),
        "POST /v1/vendors/{vendor_id}/personnel" => post(
            format!("/v1/vendors/{vendor}/personnel"),
            json!({ "national_id": o.person_national_id, "name": "重複人員" }),
        ),
        "GET /v1/vendors/{vendor_id}/personnel/{person_id}" => get(person_path),
        "POST /v1/vendors/{vendor_id}/personnel/{person_id}/agreement" => post(
            format!("{person_path}/agreement"),
            json!({ "signed_on": today.to_string(), "reference": "保密切結書 115-009" }),
        ),
        "POST /v1/vendors/{vendor_id}/personnel/{person_id}/departure" => {
            post(format!("{person_path}/departure"), json!({}))
        }
        "POST /v1/vendors/{vendor_id}/personnel/{person_id}/role" => {
            post(format!("{person_path}/role"), json!({ "job_title": "資深工程師", "reason": "升任" }))
        }
        "POST /v1/vendors/{vendor_id}/personnel/{person_id}/suitability-check" => post(
            format!("{person_path}/suitability-check"),
            json!({ "status": "passed", "checked_on": today.to_string(), "checker": "人事室" }),
        ),
        "GET /v1/vendor-devices" => get("/v1/vendor-devices"),
        "GET /v1/vendor-findings" => get("/v1/vendor-findings"),
        "POST /v1/vendor-findings/{finding_id}/closure" => {
            post(format!("/v1/vendor-findings/{}/closure", o.vendor_finding), json!({ "note": "複查確認" }))
        }
        "POST /v1/vendor-findings/{finding_id}/remediation" => {
            post(format!("/v1/vendor-findings/{}/remediation", o.vendor_finding), json!({ "remediation": "已修補" }))
        }
        other => panic!("no probe for `{other}`: add one beside its row"),
    }
}

/// A doubt query (附件二) of the agency's kind.
fn doubt_query(agency: &str) -> Value {
    let (basis, purpose) = basis_and_purpose(agency);
    json!({
        "query_type": "entry_exit_last_year", "legal_basis": basis, "purpose_code": purpose,
        "case_number": format!("{agency}-2026-000777"),
        "requester_name": "承辦人", "requester_title": "科員", "requester_phone": "02-2720-8889",
        "subject_nationality_kind": "national", "subject_name_zh": "陳怡君", "subject_sex": "F",
        "subject_birth_date": "1980-01-02", "subject_national_id": "A123456789",
        "reason": "移民署系統異常，需確認出境日期",
        "attachments": [{ "kind": "passport_copy", "pages": 1 }]
    })
}

fn taipei() -> chrono::FixedOffset {
    immilink_shared::clock::taipei()
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

// --- talking to the stack ----------------------------------------------------------------------------

/// Sends a probe (with `token`, or none); returns the status and the body as text.
async fn send(t: &TestStack, token: Option<&str>, probe: &Probe) -> (u16, String) {
    let mut request = t.http.request(probe.method.clone(), t.url(&probe.path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &probe.body {
        request = request.json(body);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A setup step that must succeed: its JSON answer.
async fn must(t: &TestStack, token: Option<&str>, probe: Probe) -> Value {
    let (status, body) = send(t, token, &probe).await;
    assert!((200..300).contains(&status), "setup: {} {} answered {status}: {body}", probe.method, probe.path);
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

#[track_caller]
fn text_of(value: &Value, key: &str) -> String {
    match value[key].as_str() {
        Some(text) => text.to_owned(),
        None => panic!("no `{key}` in {value}"),
    }
}

/// Waits (bounded) until GET `path` answers something `found` picks.
async fn eventually<T>(t: &TestStack, token: &str, path: &str, found: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send(t, Some(token), &get(path)).await;
        if status == 200 {
            if let Some(value) = serde_json::from_str::<Value>(&body).ok().as_ref().and_then(&found) {
                return value;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{path} never answered as awaited (last: {status} {body})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- setup -------------------------------------------------------------------------------------------

/// The 1st of the month after `now`'s (Taipei), half past midnight: the monthly review is open.
fn first_of_next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let next = business_date(now)
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.with_day(1))
        .expect("a next month");
    taipei()
        .from_local_datetime(&next.and_hms_opt(0, 30, 0).expect("a time"))
        .single()
        .expect("Taipei has no daylight saving")
        .with_timezone(&Utc)
}

/// An application for an account of `agency` (anonymous, as applicants send it); returns its id.
async fn apply(t: &TestStack, agency: &str, unit: &str, username: &str, person: u32) -> String {
    let (basis, purpose) = basis_and_purpose(agency);
    let body = json!({
        "agency_code": agency, "unit_id": unit, "username": username, "display_name": "矩陣測試",
        "national_id": immilink_shared::ids::synthetic_national_id(person),
        "email": format!("{username}@example.gov.tw"), "password": "a-long-passphrase-2026",
        "certificate_serial": format!("CERT-{}", username.replace('.', "-")),
        "legal_basis": basis, "business_handled": "資格審查",
        "grants": [{ "query_type": "entry_exit_last_year", "purpose_code": purpose }]
    });
    text_of(&must(t, None, post("/v1/account-applications", body)).await, "application_id")
}

async fn approve(t: &TestStack, token: &str, application: &str) -> Value {
    let path = format!("/v1/account-applications/{application}/reviews");
    must(t, Some(token), post(path, json!({ "decision": "approve", "reason": "業務需要" }))).await
}

/// Makes one agency's objects. `users`: its caseworker, unit supervisor, account manager and agency
/// head (HLN-HR has no auditor or vendor manager: the reviewer and the account manager stand in).
async fn objects_of(
    t: &TestStack,
    tokens: &BTreeMap<&'static str, String>,
    now: DateTime<Utc>,
    agency: &'static str,
    people: (u32, u32, u32),
    business_number: &'static str,
    last_lookup: &Value,
) -> Objects {
    let tpe = agency == "TPE-SW";
    let (caseworker, supervisor, manager, head) = if tpe {
        ("tpe.caseworker", "tpe.supervisor", "tpe.manager", "tpe.head")
    } else {
        ("hln.clerk", "hln.supervisor", "hln.manager", "hln.head")
    };
    let (auditor, vendor_manager) = if tpe { ("tpe.auditor", "tpe.vendors") } else { ("nia.reviewer", "hln.manager") };
    let tok = |username: &str| tokens.get(username).cloned().unwrap_or_else(|| panic!("{username} is logged in"));
    let (nia, today) = (tok("nia.reviewer"), business_date(now));
    let prefix = if tpe { "tpe" } else { "hln" };

    // An application at the account manager's step, and a terminated account.
    let agencies = must(t, None, get("/v1/agencies")).await;
    let unit = agencies
        .as_array()
        .and_then(|all| all.iter().find(|a| a["code"] == agency))
        .map(|a| text_of(&a["units"][0], "id"))
        .expect("the agency's unit");
    let application = apply(t, agency, &unit, &format!("{prefix}.matrixa"), people.0).await;
    approve(t, &tok(supervisor), &application).await;
    let second = apply(t, agency, &unit, &format!("{prefix}.matrixb"), people.1).await;
    approve(t, &tok(supervisor), &second).await;
    let mut decided = approve(t, &tok(manager), &second).await;
    if !tpe {
        decided = approve(t, &tok(head), &second).await;
    }
    assert_eq!(decided["status"], "approved", "the immigration agency approved: {decided}");
    let account = text_of(&decided, "user_id");
    must(t, Some(&tok(manager)), post(format!("/v1/accounts/{account}/certificate-loss"), json!({ "reason": "遺失" })))
        .await;
    let manager_id = text_of(&must(t, Some(&tok(manager)), get("/v1/me")).await, "user_id");

    // The link: an anomaly notice remediated; suspended and resumed (a decided resumption request).
    let links = must(t, Some(&nia), get("/v1/agency-links")).await;
    let link = links
        .as_array()
        .and_then(|all| all.iter().find(|l| l["agency_code"] == agency))
        .map(|l| text_of(l, "id"))
        .expect("the agency's link");
    let detail = must(t, Some(&nia), get(format!("/v1/agency-links/{link}"))).await;
    let link_application = text_of(&detail["applications"][0], "id");
    let deadline = (today + chrono::Duration::days(14)).to_string();
    let notice = must(
        t,
        Some(&nia),
        post("/v1/anomaly-notices", json!({ "link_id": link, "finding": "夜間大量查詢", "deadline": deadline })),
    )
    .await;
    let anomaly_notice = text_of(&notice, "id");
    must(
        t,
        Some(&tok(manager)),
        post(
            format!("/v1/anomaly-notices/{anomaly_notice}/remediation"),
            json!({ "explanation": "批次誤用", "remediation": "限制批次權限" }),
        ),
    )
    .await;
    let resumption_request = suspend_and_resume(t, &nia, &tok(manager), &link).await;

    // Broker: a completed batch, a followed-up doubt query, a revoked proxy authorization, and (HLN-HR)
    // a decided purpose approval.
    let (basis, purpose) = basis_and_purpose(agency);
    let batch = must(
        t,
        Some(&tok(caseworker)),
        post(
            "/v1/batches",
            json!({ "query_type": "entry_exit_last_year", "legal_basis": basis, "purpose_code": purpose,
                    "case_number": format!("{agency}-2026-000124"), "subject_ids": ["A123456789"] }),
        ),
    )
    .await;
    let batch = text_of(&batch, "batch_id");
    eventually(t, &tok(caseworker), &format!("/v1/batches/{batch}"), |b| (b["status"] == "completed").then_some(()))
        .await;
    let doubt = must(t, Some(&tok(caseworker)), post("/v1/doubt-queries", doubt_query(agency))).await;
    let doubt_query = text_of(&doubt, "id");
    must(
        t,
        Some(&tok(caseworker)),
        post(
            format!("/v1/doubt-queries/{doubt_query}/follow-up"),
            json!({ "document_number": "字第1150000001號", "sent_on": today.to_string() }),
        ),
    )
    .await;
    let caseworker_id = text_of(&must(t, Some(&tok(caseworker)), get("/v1/me")).await, "user_id");
    let proxy = must(
        t,
        Some(&tok(supervisor)),
        post(
            "/v1/proxy-authorizations",
            json!({ "grantee_user_id": caseworker_id, "case_number": format!("{agency}-2026-000900"),
                    "query_types": ["entry_exit_last_year"],
                    "valid_until": (now + chrono::Duration::days(7)).to_rfc3339(), "reason": "科長請承辦代查" }),
        ),
    )
    .await;
    let proxy_authorization = text_of(&proxy, "id");
    must(
        t,
        Some(&tok(supervisor)),
        post(format!("/v1/proxy-authorizations/{proxy_authorization}/revocation"), json!({ "reason": "結案" })),
    )
    .await;
    let purpose_approval = if tpe {
        None
    } else {
        let asked = must(
            t,
            Some(&tok(caseworker)),
            post(
                "/v1/purpose-approvals",
                json!({ "purpose_code": "hr_other_approved", "case_number": "HLN-2026-0042",
                        "business_description": "協助法院查詢當事人出境日期" }),
            ),
        )
        .await;
        let id = text_of(&asked, "id");
        must(
            t,
            Some(&tok(supervisor)),
            post(format!("/v1/purpose-approvals/{id}/decision"), json!({ "decision": "rejected", "reason": "非屬之" })),
        )
        .await;
        Some(id)
    };

    // Audit: a finding, a lifted hold, last month's review marked, a sample, a self-audit.
    let opened = if tpe {
        json!({ "unit": unit, "description": "查詢目的與業務不符" })
    } else {
        json!({ "agency": agency, "description": "查詢目的與業務不符" })
    };
    let finding = text_of(&must(t, Some(&tok(auditor)), post("/v1/audit/findings", opened)).await, "id");
    must(
        t,
        Some(&tok(manager)),
        post(format!("/v1/audit/findings/{finding}/remediation"), json!({ "remediation": "已教育訓練" })),
    )
    .await;
    must(
        t,
        Some(&tok(auditor)),
        post(format!("/v1/audit/findings/{finding}/closure"), json!({ "recommendation": "none" })),
    )
    .await;
    let placer = if tpe { "tpe.auditor" } else { "hln.manager" };
    let lifter = if tpe { "tpe.manager" } else { "nia.reviewer" };
    let hold = must(
        t,
        Some(&tok(placer)),
        post(
            "/v1/audit/holds",
            json!({ "agency": agency, "reason": "訴訟保全", "case_number": format!("{agency}-1") }),
        ),
    )
    .await;
    let hold = text_of(&hold, "id");
    must(t, Some(&tok(lifter)), post(format!("/v1/audit/holds/{hold}/lift"), json!({ "reason": "結案" }))).await;
    let reviews = must(t, Some(&nia), get(format!("/v1/audit/reviews?agency={agency}"))).await;
    let review = reviews
        .as_array()
        .and_then(|all| all.iter().find(|r| r["reviewer_role"] == "unit_supervisor" && r["unit"] == unit.as_str()))
        .map(|r| text_of(r, "id"))
        .unwrap_or_else(|| panic!("last month's review of {agency}: {reviews}"));
    let report = must(t, Some(&tok(supervisor)), get(format!("/v1/audit/reviews/{review}"))).await;
    let marks: Vec<Value> = report["items"]
        .as_array()
        .map(|items| items.iter().map(|e| json!({ "lookup_id": e["lookup_id"], "verdict": "matches" })).collect())
        .unwrap_or_default();
    assert!(!marks.is_empty(), "the report lists last month's lookup: {report}");
    let marked =
        must(t, Some(&tok(supervisor)), post(format!("/v1/audit/reviews/{review}/marks"), json!({ "marks": marks })))
            .await;
    assert!(marked["completed_at"].is_string(), "{marked}");
    let sample = must(
        t,
        Some(&tok(auditor)),
        post(
            "/v1/audit/samples",
            json!({ "agency": agency, "from": (now - chrono::Duration::days(62)).to_rfc3339(),
                    "to": now.to_rfc3339(), "ratio": 0.01, "seed": "matrix" }),
        ),
    )
    .await;
    let sample = text_of(&sample, "id");
    let items: Vec<Value> = (1..=7).map(|item| json!({ "item": item, "answer": true })).collect();
    let recorder = if tpe { "tpe.auditor" } else { "hln.manager" };
    let self_audit = must(
        t,
        Some(&tok(recorder)),
        post("/v1/audit/self-audits", json!({ "form": "annex_3", "audit_date": today.to_string(), "items": items })),
    )
    .await;
    let self_audit = text_of(&self_audit, "id");
    if tpe {
        for (signer, capacity) in
            [("tpe.auditor", "auditor"), ("tpe.supervisor", "section_chief"), ("tpe.head", "unit_head")]
        {
            let path = format!("/v1/audit/self-audits/{self_audit}/signatures");
            must(t, Some(&tok(signer)), post(path, json!({ "as": capacity, "name": signer }))).await;
        }
    }

    // Vendors: an ended contract with a departed person and a retired machine; a vendor audit's
    // finding closed (TPE-SW) or remediated (HLN-HR: one account manager, who may not close it too).
    let vm = tok(vendor_manager);
    let vendor =
        must(t, Some(&vm), post("/v1/vendors", json!({ "name": "矩陣資訊", "business_number": business_number })))
            .await;
    let vendor = text_of(&vendor, "id");
    let contract = must(
        t,
        Some(&vm),
        post(
            format!("/v1/vendors/{vendor}/contracts"),
            json!({ "title": "維運", "scope": "系統維護", "starts_on": today.to_string(),
                    "ends_on": (today + chrono::Duration::days(365)).to_string(), "custom_development": false }),
        ),
    )
    .await;
    let contract = text_of(&contract, "id");
    let contract_path = format!("/v1/vendors/{vendor}/contracts/{contract}");
    must(t, Some(&vm), post(format!("{contract_path}/activation"), json!({}))).await;
    let person_national_id = immilink_shared::ids::synthetic_national_id(people.2);
    let person = must(
        t,
        Some(&vm),
        post(
            format!("/v1/vendors/{vendor}/personnel"),
            json!({ "national_id": person_national_id, "name": "簡工程師", "contract_id": contract }),
        ),
    )
    .await;
    let person = text_of(&person, "id");
    let device = must(
        t,
        Some(&vm),
        post(
            format!("{contract_path}/devices"),
            json!({ "asset_tag": format!("{prefix}-PC-1"), "serial_number": format!("SN-{prefix}-1"), "description": "專屬電腦" }),
        ),
    )
    .await;
    let device = text_of(&device, "id");
    must(t, Some(&vm), post(format!("{contract_path}/devices/{device}/retirement"), json!({ "reason": "汰換" }))).await;
    let audit = must(
        t,
        Some(&vm),
        post(
            format!("/v1/vendors/{vendor}/audits"),
            json!({ "audited_on": today.to_string(), "auditor": "資訊室", "scope": "例行查核", "summary": "一項缺失",
                    "findings": [{ "description": "未更新防毒" }] }),
        ),
    )
    .await;
    let vendor_finding = text_of(&audit["findings"][0], "id");
    must(
        t,
        Some(&vm),
        post(format!("/v1/vendor-findings/{vendor_finding}/remediation"), json!({ "remediation": "已更新" })),
    )
    .await;
    if tpe {
        must(t, Some(&tok(manager)), post(format!("/v1/vendor-findings/{vendor_finding}/closure"), json!({}))).await;
    }
    must(t, Some(&vm), post(format!("{contract_path}/end"), json!({ "reason": "契約期滿" }))).await;

    Objects {
        agency,
        manager,
        application,
        account,
        manager_id,
        link,
        link_application,
        resumption_request,
        anomaly_notice,
        batch,
        doubt_query,
        proxy_authorization,
        purpose_approval,
        audit_record: text_of(last_lookup, "audit_id"),
        finding,
        hold,
        review,
        sample,
        self_audit,
        vendor,
        business_number,
        contract,
        device,
        person,
        person_national_id,
        vendor_finding,
    }
}

/// The reviewer suspends the link, the agency asks to resume it, the reviewer approves: the link is
/// active again. Returns the (decided) resumption request.
async fn suspend_and_resume(t: &TestStack, nia: &str, manager: &str, link: &str) -> String {
    must(t, Some(nia), post(format!("/v1/agency-links/{link}/suspension"), json!({ "reason": "授權矩陣測試" }))).await;
    let request = must(
        t,
        Some(manager),
        post(format!("/v1/agency-links/{link}/resumption-requests"), json!({ "remediation": "已改善" })),
    )
    .await;
    let request = text_of(&request, "id");
    let path = format!("/v1/agency-links/{link}/resumption-requests/{request}/decision");
    let decided = must(t, Some(nia), post(path, json!({ "decision": "approve" }))).await;
    assert_eq!(decided["status"], "approved", "{decided}");
    request
}

/// Spawns a stack on a clock of its own and makes every fixture: last month's lookups (for the
/// monthly review), then, on the 1st of this month, the objects of both agencies.
async fn spawn_with_fixtures() -> (TestStack, Fixtures) {
    let (t, clock) = crate::harness::spawn_with_oversight_clock().await;
    let (caseworker, clerk, nia) =
        (t.login("tpe.caseworker").await, t.login("hln.clerk").await, t.login("nia.reviewer").await);
    let tpe_lookup = must(&t, Some(&caseworker), post("/v1/lookups", permitted_lookup())).await;
    let hln_body = json!({ "query_type": "entry_exit_last_year", "subject_id": "A123456789",
        "legal_basis": "household_registration_act", "purpose_code": "hr_nationality_change", "case_number": "HLN-2026-0007" });
    let hln_lookup = must(&t, Some(&clerk), post("/v1/lookups", hln_body)).await;
    for lookup in [&tpe_lookup, &hln_lookup] {
        t.wait_for_audit_record(&nia, &text_of(lookup, "audit_id")).await;
    }
    clock.set(first_of_next_month(clock.now()));
    let now = clock.now();
    // A month idle ended every session: everyone logs in again, once the review is open.
    let nia = t.login("nia.reviewer").await;
    for agency in ["TPE-SW", "HLN-HR"] {
        eventually(&t, &nia, &format!("/v1/audit/reviews?agency={agency}"), |reports| {
            reports.as_array().filter(|all| all.iter().any(|r| r["entries"].as_i64() >= Some(1))).map(|_| ())
        })
        .await;
    }
    let mut tokens = BTreeMap::new();
    for (_, username) in ROLES.iter().chain(OTHER_AGENCY_USERS.iter()) {
        tokens.insert(*username, t.login(username).await);
    }
    let own = objects_of(&t, &tokens, now, "TPE-SW", (901, 902, 905), "22099131", &tpe_lookup).await;
    let other = objects_of(&t, &tokens, now, "HLN-HR", (903, 904, 906), "10458575", &hln_lookup).await;
    let f = Fixtures { own, other, now, tokens };
    must(&t, Some(f.token("tpe.auditor")), post("/v1/audit/checkpoints", json!({}))).await;
    (t, f)
}

// --- executing the table -----------------------------------------------------------------------------

/// What a run of the matrix counted.
#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    allowed: usize,
    denied: usize,
    hidden: usize,
    /// Other-agency cells compared with the same request on objects that do not exist.
    ghosts: usize,
    /// Refused cells of operations with a body, sent again with an empty JSON object `{}`.
    empty_tried: usize,
    /// ... of which parsing refused first (400/422): the handler parses before it authorises.
    empty_parsed_first: usize,
}

/// The problem code of an answer, if it is a problem.
fn code_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).ok().and_then(|v| v["code"].as_str().map(str::to_owned)).unwrap_or_default()
}

fn describe(status: u16, body: &str) -> String {
    let class = Class::of(status).map_or("no cell's answer", Class::name);
    match code_of(body) {
        code if code.is_empty() => format!("{status} ({class})"),
        code => format!("{status} {code} ({class})"),
    }
}

/// Runs every cell of [`MATRIX`]; returns what it counted and every cell whose answer differs.
async fn run_matrix(t: &TestStack, f: &Fixtures) -> (Tally, Vec<String>) {
    let (mut tally, mut differ) = (Tally::default(), Vec::new());
    let last = |row: &&Row| row.op == "POST /v1/auth/logout";
    let rows = MATRIX.iter().filter(|row| !last(row)).chain(MATRIX.iter().filter(last));
    for row in rows {
        let cells = match &row.who {
            Who::Anyone => {
                let (status, body) = send(t, None, &probe(row.op, "", f, &f.own)).await;
                tally.tried += 1;
                match Class::of(status) {
                    Some(Class::Allow) => tally.allowed += 1,
                    _ => differ.push(format!(
                        "{} · no token: the table says anyone, got {}",
                        row.op,
                        describe(status, &body)
                    )),
                }
                continue;
            }
            Who::Roles(cells) => cells,
        };
        for ((role, username), cell) in ROLES.iter().zip(cells) {
            let (own, other) = parse_cell(cell).unwrap_or_else(|err| panic!("{}: {err}", row.op));
            for (side, expected) in [(Side::Own, own), (Side::Other, other)] {
                let Some(expected) = expected else { continue };
                let objects = f.objects(side);
                let request = probe(row.op, role, f, objects);
                let (status, body) = send(t, Some(f.token(username)), &request).await;
                tally.tried += 1;
                let got = Class::of(status);
                match got {
                    Some(Class::Allow) => tally.allowed += 1,
                    Some(Class::Deny) => tally.denied += 1,
                    Some(Class::Hidden) => tally.hidden += 1,
                    None => {}
                }
                if got != Some(expected) {
                    differ.push(format!(
                        "{} · {role} ({username}) · {}: the table says {}, got {}",
                        row.op,
                        side.name(),
                        expected.name(),
                        describe(status, &body)
                    ));
                }
                if row.op == "POST /v1/agency-links/{id}/suspension" && (200..300).contains(&status) {
                    resume(t, f, objects).await;
                }
                if expected != Class::Allow && request.body.is_some() {
                    empty_body(t, f, row.op, role, username, side, expected, &mut tally, &mut differ).await;
                }
                // Another agency's object must answer as a missing one does: no existence oracle. (Not
                // asked of the immigration agency's reviewer, who oversees every agency.)
                if side == Side::Other && expected != Class::Allow && *role != "nia_reviewer" {
                    let ghost = probe(row.op, role, f, &objects.ghost());
                    let (ghost_status, ghost_body) = send(t, Some(f.token(username)), &ghost).await;
                    tally.ghosts += 1;
                    if ghost_status != status {
                        differ.push(format!(
                            "{} · {role} ({username}): another agency's object answers {}, a missing one {}",
                            row.op,
                            describe(status, &body),
                            describe(ghost_status, &ghost_body)
                        ));
                    }
                }
            }
        }
    }
    (tally, differ)
}

/// A refused cell sent again with `{}`, a body that parses into nothing: handlers parse before they
/// authorise (STYLE.md), so the answer may be 422 instead of the cell's 403 or 404. That order must
/// reveal nothing: the answer is never a success, and for another agency's object it is the answer
/// for a missing object.
#[allow(clippy::too_many_arguments)]
async fn empty_body(
    t: &TestStack,
    f: &Fixtures,
    op: &str,
    role: &str,
    username: &str,
    side: Side,
    expected: Class,
    tally: &mut Tally,
    differ: &mut Vec<String>,
) {
    let empty = |objects: &Objects| Probe { body: Some(json!({})), ..probe(op, role, f, objects) };
    let (status, body) = send(t, Some(f.token(username)), &empty(f.objects(side))).await;
    tally.empty_tried += 1;
    match status {
        400 | 422 => tally.empty_parsed_first += 1,
        _ if Class::of(status) == Some(expected) => {}
        _ => differ.push(format!(
            "{op} · {role} ({username}) · {} with {{}}: the table says {}, got {}",
            side.name(),
            expected.name(),
            describe(status, &body)
        )),
    }
    if side == Side::Other && role != "nia_reviewer" {
        let (ghost_status, ghost_body) = send(t, Some(f.token(username)), &empty(&f.other.ghost())).await;
        if ghost_status != status {
            differ.push(format!(
                "{op} · {role} ({username}) with {{}}: another agency's object answers {}, a missing one {}",
                describe(status, &body),
                describe(ghost_status, &ghost_body)
            ));
        }
    }
}

/// Undoes a suspension a cell made: the agency asks to resume, the reviewer approves.
async fn resume(t: &TestStack, f: &Fixtures, o: &Objects) {
    let link = &o.link;
    let request = must(
        t,
        Some(f.token(o.manager)),
        post(format!("/v1/agency-links/{link}/resumption-requests"), json!({ "remediation": "已改善" })),
    )
    .await;
    let path = format!("/v1/agency-links/{link}/resumption-requests/{}/decision", text_of(&request, "id"));
    must(t, Some(f.token("nia.reviewer")), post(path, json!({ "decision": "approve" }))).await;
}

// --- the tests ---------------------------------------------------------------------------------------

/// Every cell of the matrix, executed through the gateway: every role, own agency and other, gets the
/// answer the table gives; another agency's object answers as a missing one does.
#[actix_web::test]
async fn every_role_gets_the_answer_the_authorization_matrix_gives_for_every_operation() {
    let started = std::time::Instant::now();
    let (t, f) = spawn_with_fixtures().await;
    let set_up = started.elapsed();
    let ended = within(Duration::from_secs(600), async {
        let (tally, differ) = run_matrix(&t, &f).await;
        eprintln!(
            "authorization matrix: {} operations, {} cells tried: {} allowed, {} denied, {} hidden; \
             {} other-agency answers compared with a missing object's; {} refused cells sent again with {{}}: \
             {} refused by parsing first, the rest as the table says; setup {set_up:?}, cells {:?}",
            MATRIX.len(),
            tally.tried,
            tally.allowed,
            tally.denied,
            tally.hidden,
            tally.ghosts,
            tally.empty_tried,
            tally.empty_parsed_first,
            started.elapsed() - set_up
        );
        assert!(
            differ.is_empty(),
            "{} cell(s) differ from the authorization matrix (tests/e2e/authorization.rs):\n  {}",
            differ.len(),
            differ.join("\n  ")
        );
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// Every operation of the merged OpenAPI document has exactly one row, and every row is one of its
/// operations: a new endpoint cannot escape the matrix. An operation needs no token exactly when its
/// row says "anyone", and every cell reads `own/other` in A, D, H or -.
#[test]
fn every_operation_of_the_merged_openapi_document_has_a_row_in_the_authorization_matrix() {
    let path = repo_file("openapi/immilink.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the merged document is JSON");
    let mut documented = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                let needs_token = operation["security"].as_array().is_some_and(|s| !s.is_empty());
                documented.insert(format!("{} {path}", method.to_uppercase()), needs_token);
            }
        }
    }
    let mut problems = Vec::new();
    let mut rows = BTreeSet::new();
    for row in MATRIX {
        if !rows.insert(row.op) {
            problems.push(format!("{}: two rows", row.op));
        }
        match (documented.get(row.op), &row.who) {
            (None, _) => problems.push(format!("{}: a row for an operation the document does not have", row.op)),
            (Some(true), Who::Anyone) => problems.push(format!("{}: needs a token, but its row says anyone", row.op)),
            (Some(false), Who::Roles(_)) => problems.push(format!("{}: needs no token: its row says anyone", row.op)),
            _ => {}
        }
        if let Who::Roles(cells) = &row.who {
            for (cell, (role, _)) in cells.iter().zip(ROLES) {
                if let Err(err) = parse_cell(cell) {
                    problems.push(format!("{} · {role}: {err}", row.op));
                }
            }
        }
    }
    for op in documented.keys().filter(|op| !rows.contains(op.as_str())) {
        problems.push(format!("{op}: no row in the authorization matrix (tests/e2e/authorization.rs)"));
    }
    assert!(problems.is_empty(), "the matrix and openapi/immilink.json disagree:\n  {}", problems.join("\n  "));
    eprintln!(
        "authorization matrix: {} rows for the {} operations of the merged document",
        MATRIX.len(),
        documented.len()
    );
}

fn repo_file(relative: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// The matrix as the reviewer reads it: `docs/authorization.md`.
fn render_markdown() -> String {
    let mut md = String::new();
    md.push_str("# Who may do what: the authorisation matrix\n\n");
    md.push_str(
        "Generated from the table in `tests/e2e/authorization.rs` by its test; do not edit by hand. After changing \
         the table run\n`IMMILINK_UPDATE_DOCS=1 cargo test -p immilink-e2e --test e2e authorization` to rewrite this \
         file (the test fails while\nthey differ). Every cell is executed through the gateway against a spawned stack \
         on every run of the test suite.\n\n",
    );
    md.push_str("## Legend\n\n");
    md.push_str(
        "Each role is played by its TPE-SW demo user (README, \"Demo users\"). A cell is `own/other`: the answer on \
         an object of\nthe caller's own agency (TPE-SW), and on the same kind of object of another agency (HLN-HR). \
         The immigration agency's\nreviewer belongs to neither: its two answers are about two agencies it oversees.\n\n",
    );
    md.push_str("| mark | meaning |\n|---|---|\n");
    md.push_str(
        "| A | allowed: authorisation let the request through (2xx, or a refusal authorisation does not make: 400, \
         409 for the object's state, 422 for a field) |\n",
    );
    md.push_str("| D | denied: 403, the role (or the caller's relation to the object) may not do this |\n");
    md.push_str(
        "| H | hidden: 404, the object is not visible to the caller (another agency's, or one the role may not see in \
         its own); it answers exactly as a missing object does |\n",
    );
    md.push_str("| - | not applicable: the operation addresses no such object (a list of one's own, a create) |\n\n");
    md.push_str(
        "Mutating operations are probed with a body that parses (handlers parse before they authorise), aimed at \
         an object whose\nstate stops an authorised request after authorisation (the notes say which), so the \
         matrix runs without changing what\nlater cells see.\n\n",
    );
    md.push_str("## No token needed\n\n| operation | note |\n|---|---|\n");
    for row in MATRIX.iter().filter(|row| matches!(row.who, Who::Anyone)) {
        md.push_str(&format!("| `{}` | anyone{} |\n", row.op, note_suffix(row.note)));
    }
    md.push_str("\n## With a token\n\n| operation |");
    for (role, _) in ROLES {
        md.push_str(&format!(" {role} |"));
    }
    md.push_str(" note |\n|---|");
    md.push_str(&"---|".repeat(ROLES.len()));
    md.push_str("---|\n");
    for row in MATRIX {
        if let Who::Roles(cells) = &row.who {
            md.push_str(&format!("| `{}` |", row.op));
            for cell in cells {
                md.push_str(&format!(" {cell} |"));
            }
            md.push_str(&format!(" {} |\n", row.note));
        }
    }
    md
}

fn note_suffix(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

/// `docs/authorization.md` is the table rendered; `IMMILINK_UPDATE_DOCS=1` rewrites it.
#[test]
fn the_authorization_document_is_the_matrix_rendered() {
    let path = repo_file("docs/authorization.md");
    let rendered = render_markdown();
    if std::env::var("IMMILINK_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("docs/ can be made");
        }
        std::fs::write(&path, &rendered).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/authorization.md differs from the matrix in tests/e2e/authorization.rs; regenerate it with \
         `IMMILINK_UPDATE_DOCS=1 cargo test -p immilink-e2e --test e2e authorization`"
    );
}

/// No role of one agency reads another agency's objects: every GET of an HLN-HR object by every role
/// of TPE-SW, and of a TPE-SW object by every role of HLN-HR, is refused (403 or 404); every other
/// read (a list, one filtered to the other agency, a person's accesses) is refused or shows none of
/// the other agency's objects. (The immigration agency's reviewer, who oversees every agency, is not
/// of either.)
#[actix_web::test]
async fn no_role_of_one_agency_reads_another_agencys_objects() {
    let (t, f) = spawn_with_fixtures().await;
    let ended = within(Duration::from_secs(600), async {
        let mut readers: Vec<(&str, &str, &Objects, &Objects)> = ROLES
            .iter()
            .filter(|(role, _)| *role != "nia_reviewer")
            .map(|(role, username)| (*role, *username, &f.other, &f.own))
            .collect();
        readers.extend(OTHER_AGENCY_USERS.iter().map(|(role, username)| (*role, *username, &f.own, &f.other)));
        let (mut tried, mut refused, mut lists_clean) = (0, 0, 0);
        let mut leaks = Vec::new();
        for row in MATRIX.iter().filter(|row| row.op.starts_with("GET ") && matches!(row.who, Who::Roles(_))) {
            for (role, username, theirs, mine) in &readers {
                let foreign_ids = theirs.ids();
                // An object of an agency (a person's accesses are not one: their report is the caller's
                // agency's part of it).
                let object = row.op.contains('{') && !row.op.contains("{subject_id}");
                // Addressed to their object (or, for a list, filtered to their agency), and a list of mine.
                let mut requests = vec![probe(row.op, role, &f, theirs)];
                if !object {
                    requests.push(probe(row.op, role, &f, mine));
                }
                for request in requests {
                    let (status, body) = send(&t, Some(f.token(username)), &request).await;
                    tried += 1;
                    let shown: Vec<&str> = foreign_ids.iter().copied().filter(|id| body.contains(id)).collect();
                    match status {
                        403 | 404 => refused += 1,
                        200..=299 if !object && shown.is_empty() => lists_clean += 1,
                        _ => leaks.push(format!(
                            "{username} ({role}, {}) GET {}: {}{}",
                            mine.agency,
                            request.path,
                            describe(status, &body),
                            if shown.is_empty() { String::new() } else { format!(", showing {}", shown.join(", ")) }
                        )),
                    }
                }
            }
        }
        eprintln!(
            "cross-agency reads: {tried} tried by {} users: {refused} refused, {lists_clean} lists without another \
             agency's objects, {} leaks",
            readers.len(),
            leaks.len()
        );
        assert!(leaks.is_empty(), "another agency's objects were read:\n  {}", leaks.join("\n  "));
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}
