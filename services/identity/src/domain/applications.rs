//! Account applications (R-ACC-01..04, R-ACC-08): a caseworker applies with the legal basis, the
//! business handled and the (query type, purpose) pairs wanted; the unit supervisor reviews first,
//! the account manager second, the agency head third where the agency requires it (R-ACC-02), and
//! the immigration agency last. Only then does the account exist, with exactly the granted pairs.
//! Every step records who, when, the decision and the reason; any reviewer may reject; nobody
//! reviews their own application (R-ACC-04); the applicant is notified at every step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::catalogue::{self, AgencyKind, QueryType};
use immilink_shared::clock::to_db;
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::ids::SubjectId;
use immilink_shared::text_enum;
use serde::Serialize;
use serde_json::json;

use super::accounts::{self, AccountEventKind, AccountStatus, Actor, Grant};
use super::audit::{self, About};
use super::contractors::{self, ContractorStatus};
use super::fields::{self, RegisteredIps};
use super::{new_id, notifications, AgencyCode, AgencyId, ApplicationId, IdentityError, UnitId, UserId};
use crate::schema::{account_applications, agencies, application_reviews, user_grants, user_ips, user_roles, users};

text_enum! {
    /// Where an application stands (R-ACC-01, R-ACC-02). Every change is judged by
    /// `ApplicationStatus::transition`.
    pub enum ApplicationStatus {
        /// Waiting for the applicant's unit supervisor.
        SupervisorReview = "supervisor_review",
        /// Waiting for the agency's account manager.
        ManagerReview = "manager_review",
        /// Waiting for the agency head, where the agency requires it (R-ACC-02).
        HeadReview = "head_review",
        /// Waiting for the immigration agency (after the contractor check, R-ACC-08).
        NiaReview = "nia_review",
        /// The account exists.
        Approved = "approved",
        Rejected = "rejected",
    }
}

impl ApplicationStatus {
    /// The one judge of application moves: each local review step moves on to the next (supervisor →
    /// manager → head where required → the immigration agency) or to rejected; the immigration
    /// agency's step ends approved or rejected. Approved and rejected are final.
    pub fn transition(self, to: ApplicationStatus) -> Result<ApplicationStatus, IdentityError> {
        use ApplicationStatus::*;
        match (self, to) {
            (SupervisorReview, ManagerReview)
            | (ManagerReview, HeadReview | NiaReview)
            | (HeadReview, NiaReview)
            | (SupervisorReview | ManagerReview | HeadReview, Rejected)
            | (NiaReview, Approved | Rejected) => Ok(to),
            (status, _) => Err(IdentityError::NotAwaitingReview { status }),
        }
    }

    /// The agency's review step this status waits for, if it waits for one.
    pub fn local_step(self) -> Option<ReviewStep> {
        match self {
            ApplicationStatus::SupervisorReview => Some(ReviewStep::SupervisorReview),
            ApplicationStatus::ManagerReview => Some(ReviewStep::ManagerReview),
            ApplicationStatus::HeadReview => Some(ReviewStep::HeadReview),
            _ => None,
        }
    }

    /// Where an approval at this step leads.
    fn after_approval(self, requires_head: bool) -> ApplicationStatus {
        match self {
            ApplicationStatus::SupervisorReview => ApplicationStatus::ManagerReview,
            ApplicationStatus::ManagerReview if requires_head => ApplicationStatus::HeadReview,
            _ => ApplicationStatus::NiaReview,
        }
    }
}

text_enum! {
    /// One recorded review of an application.
    pub enum ReviewStep {
        SupervisorReview = "supervisor_review",
        ManagerReview = "manager_review",
        HeadReview = "head_review",
        /// immilink's own check against the vendors service's personnel records: refuses an account
        /// the contractor rule does not allow (R-ACC-08, R-VEN-08), and approves a vendor_staff
        /// account, which has no query access for the immigration agency to review.
        ContractorCheck = "contractor_check",
        NiaReview = "nia_review",
    }
}

impl ReviewStep {
    /// The role that reviews a local step; `None` for the outside ones.
    pub fn reviewer_role(self) -> Option<&'static str> {
        match self {
            ReviewStep::SupervisorReview => Some(roles::UNIT_SUPERVISOR),
            ReviewStep::ManagerReview => Some(roles::ACCOUNT_MANAGER),
            ReviewStep::HeadReview => Some(roles::AGENCY_HEAD),
            ReviewStep::ContractorCheck | ReviewStep::NiaReview => None,
        }
    }
}

text_enum! {
    /// What a review decided, as recorded.
    pub enum ReviewDecision {
        Approved = "approved",
        Rejected = "rejected",
    }
}

text_enum! {
    /// The role an application asks for. Default: caseworker, the lookups the application declares.
    pub enum AppliedRole {
        /// Lookups: a legal basis and the (query type, purpose) pairs wanted.
        Caseworker = "caseworker",
        /// Contractor personnel: maintenance, incident reports and device attestations, never a
        /// lookup grant (R-VEN-08). No legal basis, no grants, no review by the immigration agency
        /// (it reviews query access, and there is none).
        VendorStaff = "vendor_staff",
    }
}

impl AppliedRole {
    /// The account role it becomes (`immilink_shared::auth::roles`).
    pub fn role(self) -> &'static str {
        match self {
            AppliedRole::Caseworker => roles::CASEWORKER,
            AppliedRole::VendorStaff => roles::VENDOR_STAFF,
        }
    }
}

text_enum! {
    /// What a reviewer decides.
    pub enum Decision {
        Approve = "approve",
        Reject = "reject",
    }
}

impl Decision {
    fn recorded(self) -> ReviewDecision {
        match self {
            Decision::Approve => ReviewDecision::Approved,
            Decision::Reject => ReviewDecision::Rejected,
        }
    }
}

/// An application as the applicant sent it, before any rule was applied.
#[derive(Debug, Clone, Default)]
pub struct ApplicationForm {
    pub agency_code: Option<String>,
    pub unit_id: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub national_id: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub certificate_serial: Option<String>,
    pub ips: Option<Vec<String>>,
    pub legal_basis: Option<String>,
    pub business_handled: Option<String>,
    pub grants: Option<Vec<GrantForm>>,
    /// `None`: a caseworker, as before roles could be asked for.
    pub role: Option<AppliedRole>,
}

/// A requested (query type, purpose) pair as sent.
#[derive(Debug, Clone, Default)]
pub struct GrantForm {
    pub query_type: Option<String>,
    pub purpose_code: Option<String>,
}

/// A validated application, ready to store.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub agency_code: AgencyCode,
    pub unit_id: UnitId,
    pub username: String,
    pub display_name: String,
    /// Normalised national ID (or UI number) of the applicant.
    pub national_id: String,
    pub email: String,
    pub certificate_serial: String,
    pub ips: RegisteredIps,
    /// Empty for a vendor_staff application.
    pub legal_basis: String,
    pub business_handled: String,
    /// Empty for a vendor_staff application.
    pub grants: Vec<Grant>,
    pub submitted_ip: IpAddr,
    pub role: AppliedRole,
}

/// Most (query type, purpose) pairs one application may request.
pub const MAX_GRANTS: usize = 50;

impl NewApplication {
    /// The application from what the applicant sent, field by field (each refusal names its
    /// field), with the password apart: it is stored only as a hash.
    pub fn parse(form: ApplicationForm, submitted_ip: IpAddr) -> Result<(NewApplication, String), IdentityError> {
        let national_id = fields::text(form.national_id, "national_id", 20)?;
        let national_id = SubjectId::parse_resident(&national_id)
            .map_err(|err| IdentityError::invalid("national_id", err.to_string()))?
            .as_str()
            .to_owned();
        let password = form.password.filter(|p| !p.is_empty()).ok_or_else(|| IdentityError::missing("password"))?;
        if password.chars().count() < 12 || password.len() > 256 {
            return Err(IdentityError::invalid("password", "between 12 and 256 characters"));
        }
        let role = form.role.unwrap_or(AppliedRole::Caseworker);
        let (legal_basis, grants) = match role {
            AppliedRole::Caseworker => (fields::text(form.legal_basis, "legal_basis", 64)?, parse_grants(form.grants)?),
            AppliedRole::VendorStaff => {
                if form.legal_basis.as_deref().is_some_and(|basis| !basis.trim().is_empty()) {
                    return Err(IdentityError::invalid(
                        "legal_basis",
                        "a vendor_staff account has no lookup permission, so it declares no legal basis",
                    ));
                }
                let grants = match form.grants {
                    Some(grants) if !grants.is_empty() => parse_grants(Some(grants))?,
                    _ => Vec::new(),
                };
                (String::new(), grants)
            }
        };
        // R-VEN-08, as far as the application itself tells: a vendor_staff application asks for no
        // grant. Whether the applicant is contractor personnel is asked at submission.
        contractors::check_account(ContractorStatus::NotPersonnel, &[role.role()], grants.len())?;
        let application = NewApplication {
            agency_code: AgencyCode::new(fields::text(form.agency_code, "agency_code", 32)?),
            unit_id: UnitId::new(fields::text(form.unit_id, "unit_id", 64)?),
            username: username(form.username)?,
            display_name: fields::text(form.display_name, "display_name", 100)?,
            national_id,
            email: email(form.email)?,
            certificate_serial: certificate_serial(form.certificate_serial)?,
            ips: RegisteredIps::parse_or(form.ips, submitted_ip)?,
            legal_basis,
            business_handled: fields::text(form.business_handled, "business_handled", 500)?,
            grants,
            submitted_ip,
            role,
        };
        Ok((application, password))
    }
}

/// 3–64 characters: lowercase letters, digits, `.`, `_`, `-`.
fn username(raw: Option<String>) -> Result<String, IdentityError> {
    let username = fields::text(raw, "username", 64)?;
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if username.len() < 3 || !username.chars().all(allowed) {
        return Err(IdentityError::invalid("username", "3–64 characters: lowercase letters, digits, '.', '_' or '-'"));
    }
    Ok(username)
}

fn email(raw: Option<String>) -> Result<String, IdentityError> {
    let email = fields::text(raw, "email", 254)?;
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(IdentityError::invalid("email", "not an e-mail address"));
    }
    Ok(email)
}

/// The citizen certificate's serial (R-ACC-03): letters, digits and dashes.
fn certificate_serial(raw: Option<String>) -> Result<String, IdentityError> {
    let serial = fields::text(raw, "certificate_serial", 64)?;
    if !serial.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(IdentityError::invalid("certificate_serial", "letters, digits and '-' only"));
    }
    Ok(serial)
}

/// Requested or granted pairs: one to [`MAX_GRANTS`], each with both codes (checked against the
/// catalogues where the agency's kind is known).
pub fn parse_grants(raw: Option<Vec<GrantForm>>) -> Result<Vec<Grant>, IdentityError> {
    let raw = fields::present(raw, "grants")?;
    if raw.is_empty() || raw.len() > MAX_GRANTS {
        return Err(IdentityError::invalid("grants", format!("between 1 and {MAX_GRANTS} entries")));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            Ok(Grant {
                query_type: fields::text(g.query_type, &format!("grants[{i}].query_type"), 64)?,
                purpose_code: fields::text(g.purpose_code, &format!("grants[{i}].purpose_code"), 64)?,
            })
        })
        .collect()
}

/// An application as reviewers see it.
#[derive(Debug, Clone)]
pub struct Application {
    pub id: ApplicationId,
    pub status: ApplicationStatus,
    /// The role asked for.
    pub role: AppliedRole,
    pub agency_code: AgencyCode,
    pub unit_id: UnitId,
    pub username: String,
    pub display_name: String,
    /// The applicant's national ID, masked (e.g. `A12****789`).
    pub national_id_masked: String,
    pub email: String,
    pub certificate_serial: String,
    pub ips: Vec<String>,
    pub legal_basis: String,
    pub business_handled: String,
    pub requested_grants: Vec<Grant>,
    /// What the account manager granted (a subset of the request); `None` until then.
    pub granted_grants: Option<Vec<Grant>>,
    /// The account, once the application is approved.
    pub user_id: Option<UserId>,
    pub nia_reference: Option<String>,
    pub submitted_at: NaiveDateTime,
    /// Every step so far, in order.
    pub reviews: Vec<Review>,
}

/// One recorded step.
#[derive(Debug, Clone, Queryable)]
pub struct Review {
    pub step: ReviewStep,
    /// The reviewing user; `None` for the immigration agency and automatic checks.
    pub reviewer_id: Option<UserId>,
    pub reviewer_name: String,
    pub decision: ReviewDecision,
    pub reason: String,
    pub decided_at: NaiveDateTime,
}

/// Masks all but the first three and last three characters.
pub fn mask(national_id: &str) -> String {
    let chars: Vec<char> = national_id.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let (head, tail) = (&chars[..3], &chars[chars.len() - 3..]);
    format!("{}{}{}", head.iter().collect::<String>(), "*".repeat(chars.len() - 6), tail.iter().collect::<String>())
}

/// Checks the declarations against the catalogues for the agency's kind.
fn validate_declarations(kind: AgencyKind, legal_basis: &str, grants: &[Grant]) -> Result<(), IdentityError> {
    if !catalogue::legal_basis(legal_basis).is_some_and(|b| b.agency_kind == kind) {
        return Err(IdentityError::invalid(
            "legal_basis",
            "not a legal basis of this agency's kind (see /v1/catalogue/legal-bases)",
        ));
    }
    if grants.is_empty() {
        return Err(IdentityError::invalid("grants", "request at least one query type and purpose"));
    }
    for (i, grant) in grants.iter().enumerate() {
        if QueryType::parse(&grant.query_type).is_none() {
            return Err(IdentityError::invalid(format!("grants[{i}].query_type"), "unknown query type"));
        }
        if !catalogue::purpose(&grant.purpose_code).is_some_and(|p| p.agency_kind == kind) {
            return Err(IdentityError::invalid(
                format!("grants[{i}].purpose_code"),
                "not a purpose of this agency's kind",
            ));
        }
    }
    Ok(())
}

/// Stores a new application (first step: the unit supervisor's review) and tells the applicant.
/// `personnel` is the vendors service's answer about the applicant, asked by the caller over HTTP
/// before this: contractor personnel may apply only for a vendor_staff account, without grants
/// (R-ACC-08, R-VEN-08: [`contractors::check_account`]).
pub fn submit(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    new: &NewApplication,
    password_hash: &str,
    personnel: ContractorStatus,
) -> Result<Application, IdentityError> {
    contractors::check_account(personnel, &[new.role.role()], new.grants.len())?;
    let id = ApplicationId::new(new_id());
    conn.write_transaction(|conn| {
        let (agency_id, kind): (AgencyId, String) = agencies::table
            .filter(agencies::code.eq(&new.agency_code))
            .select((agencies::id, agencies::kind))
            .first(conn)
            .optional()?
            .ok_or_else(|| IdentityError::invalid("agency_code", "no such agency"))?;
        let kind =
            AgencyKind::parse(&kind).ok_or_else(|| IdentityError::invalid("agency_code", "agency of unknown kind"))?;
        if !accounts::unit_in_agency(conn, &agency_id, &new.unit_id)? {
            return Err(IdentityError::invalid("unit_id", "no such unit in this agency"));
        }
        if new.role == AppliedRole::Caseworker {
            validate_declarations(kind, &new.legal_basis, &new.grants)?;
        }
        ensure_username_free(conn, &new.username)?;
        ensure_certificate_free(conn, &new.certificate_serial)?;
        let ips: Vec<String> = new.ips.as_slice().iter().map(IpAddr::to_string).collect();
        diesel::insert_into(account_applications::table)
            .values((
                account_applications::id.eq(&id),
                account_applications::agency_id.eq(&agency_id),
                account_applications::unit_id.eq(&new.unit_id),
                account_applications::username.eq(&new.username),
                account_applications::display_name.eq(&new.display_name),
                account_applications::national_id.eq(&new.national_id),
                account_applications::email.eq(&new.email),
                account_applications::password_hash.eq(password_hash),
                account_applications::certificate_serial.eq(&new.certificate_serial),
                account_applications::ips.eq(to_json(&ips)?),
                account_applications::legal_basis.eq(&new.legal_basis),
                account_applications::business_handled.eq(&new.business_handled),
                account_applications::requested_grants.eq(to_json(&new.grants)?),
                account_applications::status.eq(ApplicationStatus::SupervisorReview),
                account_applications::role.eq(new.role),
                account_applications::submitted_ip.eq(new.submitted_ip.to_string()),
                account_applications::submitted_at.eq(to_db(now)),
                account_applications::updated_at.eq(to_db(now)),
            ))
            .execute(conn)
            .map_err(|err| match DbError::Query(err) {
                e if e.is_unique_violation() => IdentityError::UsernameTaken,
                e => IdentityError::Db(e),
            })?;
        // The applicant has no account yet: no actor. No password (nor its hash), no national ID.
        let about = About { actor: None, agency: Some(&new.agency_code), correlation_id: Some(id.as_str()) };
        let payload = json!({
            "application_id": id,
            "username": new.username,
            "display_name": new.display_name,
            "unit_id": new.unit_id,
            "legal_basis": new.legal_basis,
            "business_handled": new.business_handled,
            "requested_grants": new.grants,
            "role": new.role,
            "ips": ips,
            "submitted_ip": new.submitted_ip.to_string(),
            "status": ApplicationStatus::SupervisorReview,
        });
        audit::record(conn, now, kind::ACCOUNT_APPLICATION_SUBMITTED, about, payload)?;
        notifications::enqueue(
            conn,
            now,
            &new.email,
            "帳號申請已收件 Account application received",
            &format!("Your application {id} was received and awaits your unit supervisor's review."),
        )?;
        Ok(())
    })?;
    load(conn, &id)
}

fn ensure_username_free(conn: &mut DbConn, username: &str) -> Result<(), IdentityError> {
    let accounts: i64 = users::table.filter(users::username.eq(username)).count().get_result(conn)?;
    let pending: i64 = account_applications::table
        .filter(account_applications::username.eq(username))
        .filter(account_applications::status.ne(ApplicationStatus::Rejected))
        .count()
        .get_result(conn)?;
    if accounts + pending > 0 {
        return Err(IdentityError::UsernameTaken);
    }
    Ok(())
}

/// A certificate binds one live account (R-ACC-03, R-ACC-07: accounts are personal).
fn ensure_certificate_free(conn: &mut DbConn, serial: &str) -> Result<(), IdentityError> {
    let statuses: Vec<AccountStatus> =
        users::table.filter(users::certificate_serial.eq(serial)).select(users::status).load(conn)?;
    let pending: i64 = account_applications::table
        .filter(account_applications::certificate_serial.eq(serial))
        .filter(account_applications::status.ne_all([ApplicationStatus::Rejected, ApplicationStatus::Approved]))
        .count()
        .get_result(conn)?;
    if statuses.iter().any(|s| s.is_open()) || pending > 0 {
        return Err(IdentityError::CertificateInUse);
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, IdentityError> {
    serde_json::to_string(value).map_err(|err| IdentityError::Internal(err.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, IdentityError> {
    serde_json::from_str(text)
        .map_err(|err| IdentityError::Internal(format!("stored application is unreadable: {err}")))
}

type ApplicationRow = (
    ApplicationId,
    ApplicationStatus,
    AgencyCode,
    UnitId,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<UserId>,
    Option<String>,
    NaiveDateTime,
    AppliedRole,
);

/// One application with its reviews.
pub fn load(conn: &mut DbConn, id: &ApplicationId) -> Result<Application, IdentityError> {
    load_all(conn, std::slice::from_ref(id))?.pop().ok_or(IdentityError::NotFound("the application"))
}

/// The applications with these ids, in this order, with their reviews: two queries however many.
fn load_all(conn: &mut DbConn, ids: &[ApplicationId]) -> Result<Vec<Application>, IdentityError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ApplicationRow> = account_applications::table
        .inner_join(agencies::table)
        .filter(account_applications::id.eq_any(ids))
        .select((
            account_applications::id,
            account_applications::status,
            agencies::code,
            account_applications::unit_id,
            account_applications::username,
            account_applications::display_name,
            account_applications::national_id,
            account_applications::email,
            account_applications::certificate_serial,
            account_applications::ips,
            account_applications::legal_basis,
            account_applications::business_handled,
            account_applications::requested_grants,
            account_applications::granted,
            account_applications::user_id,
            account_applications::nia_reference,
            account_applications::submitted_at,
            account_applications::role,
        ))
        .load(conn)?;
    let mut reviews: BTreeMap<ApplicationId, Vec<Review>> = BTreeMap::new();
    let recorded: Vec<(ApplicationId, Review)> = application_reviews::table
        .filter(application_reviews::application_id.eq_any(ids))
        .order((application_reviews::decided_at.asc(), application_reviews::id.asc()))
        .select((
            application_reviews::application_id,
            (
                application_reviews::step,
                application_reviews::reviewer_id,
                application_reviews::reviewer_name,
                application_reviews::decision,
                application_reviews::reason,
                application_reviews::decided_at,
            ),
        ))
        .load(conn)?;
    for (id, review) in recorded {
        reviews.entry(id).or_default().push(review);
    }
    let mut found: BTreeMap<ApplicationId, ApplicationRow> = rows.into_iter().map(|row| (row.0.clone(), row)).collect();
    ids.iter()
        .filter_map(|id| found.remove(id))
        .map(|row| {
            let (id, status, agency_code, unit_id, username, display_name, national_id, email, certificate_serial) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8);
            Ok(Application {
                reviews: reviews.remove(&id).unwrap_or_default(),
                id,
                status,
                agency_code,
                unit_id,
                username,
                display_name,
                national_id_masked: mask(&national_id),
                email,
                certificate_serial,
                ips: from_json(&row.9)?,
                legal_basis: row.10,
                business_handled: row.11,
                requested_grants: from_json(&row.12)?,
                granted_grants: row.13.as_deref().map(from_json).transpose()?,
                user_id: row.14,
                nia_reference: row.15,
                submitted_at: row.16,
                role: row.17,
            })
        })
        .collect()
}

/// What the reviewers of an agency may see: the unit supervisor their unit's applications, the
/// account manager and agency head all of the agency's.
fn visible_to(actor: &Actor, agency_id: &AgencyId, unit_id: &UnitId) -> bool {
    actor.agency_id == *agency_id && (sees_whole_agency(actor) || sees_unit(actor) == Some(unit_id))
}

fn sees_whole_agency(actor: &Actor) -> bool {
    actor.has(roles::ACCOUNT_MANAGER) || actor.has(roles::AGENCY_HEAD)
}

/// The unit whose applications a unit supervisor sees.
fn sees_unit(actor: &Actor) -> Option<&UnitId> {
    actor.unit_id.as_ref().filter(|_| actor.has(roles::UNIT_SUPERVISOR))
}

const REVIEWERS: &[&str] = &[roles::UNIT_SUPERVISOR, roles::ACCOUNT_MANAGER, roles::AGENCY_HEAD];

/// The applications the actor may review, oldest first, one page at a time (the cursor is the last
/// application's id), optionally only those at one step.
pub fn list(
    conn: &mut DbConn,
    actor: &Actor,
    status: Option<ApplicationStatus>,
    page: &Page,
) -> Result<Vec<Application>, IdentityError> {
    actor.require_any(REVIEWERS)?;
    let mut query = account_applications::table
        .filter(account_applications::agency_id.eq(actor.agency_id.clone()))
        .select(account_applications::id)
        .order(account_applications::id.asc())
        .limit(page.limit)
        .into_boxed();
    if !sees_whole_agency(actor) {
        let Some(unit) = sees_unit(actor) else {
            return Ok(Vec::new());
        };
        query = query.filter(account_applications::unit_id.eq(unit.clone()));
    }
    if let Some(status) = status {
        query = query.filter(account_applications::status.eq(status));
    }
    if let Some(after) = &page.cursor {
        query = query.filter(account_applications::id.gt(after.clone()));
    }
    let ids: Vec<ApplicationId> = query.load(conn)?;
    load_all(conn, &ids)
}

pub fn get(conn: &mut DbConn, actor: &Actor, id: &ApplicationId) -> Result<Application, IdentityError> {
    actor.require_any(REVIEWERS)?;
    let (agency_id, unit_id) = locate(conn, id)?;
    if !visible_to(actor, &agency_id, &unit_id) {
        return Err(IdentityError::NotFound("the application"));
    }
    load(conn, id)
}

fn locate(conn: &mut DbConn, id: &ApplicationId) -> Result<(AgencyId, UnitId), IdentityError> {
    account_applications::table
        .filter(account_applications::id.eq(id))
        .select((account_applications::agency_id, account_applications::unit_id))
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the application"))
}

/// One local review step. Approval moves the application on; rejection ends it. The account manager
/// may narrow the grants to a subset of the request.
pub fn review(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    id: &ApplicationId,
    decision: Decision,
    reason: &str,
    granted: Option<Vec<Grant>>,
) -> Result<Application, IdentityError> {
    conn.write_transaction(|conn| {
        type Row = (AgencyId, UnitId, ApplicationStatus, String, String, String, bool, String);
        let (agency_id, unit_id, status, national_id, serial, requested, requires_head, email): Row =
            account_applications::table
                .inner_join(agencies::table)
                .filter(account_applications::id.eq(id))
                .select((
                    account_applications::agency_id,
                    account_applications::unit_id,
                    account_applications::status,
                    account_applications::national_id,
                    account_applications::certificate_serial,
                    account_applications::requested_grants,
                    agencies::requires_head_approval,
                    account_applications::email,
                ))
                .first(conn)
                .optional()?
                .ok_or(IdentityError::NotFound("the application"))?;
        if actor.agency_id != agency_id {
            return Err(IdentityError::NotFound("the application"));
        }
        let Some((step, role)) = status.local_step().and_then(|step| Some((step, step.reviewer_role()?))) else {
            return Err(IdentityError::NotAwaitingReview { status });
        };
        if !actor.has(role) {
            return Err(IdentityError::NotYourStep { step, role });
        }
        if step == ReviewStep::SupervisorReview && actor.unit_id.as_ref() != Some(&unit_id) {
            return Err(IdentityError::NotApplicantsSupervisor);
        }
        if actor.national_id.as_deref() == Some(national_id.as_str()) || actor.certificate_serial == serial {
            return Err(IdentityError::OwnApplication);
        }
        let already: i64 = application_reviews::table
            .filter(application_reviews::application_id.eq(id))
            .filter(application_reviews::reviewer_id.eq(&actor.user_id))
            .count()
            .get_result(conn)?;
        if already > 0 {
            return Err(IdentityError::AlreadyReviewed);
        }
        if decision == Decision::Reject && reason.trim().is_empty() {
            return Err(IdentityError::invalid("reason", "a rejection needs a reason"));
        }
        if let Some(granted) = &granted {
            if step != ReviewStep::ManagerReview {
                return Err(IdentityError::invalid("grants", "only the account manager's review assigns grants"));
            }
            let requested: BTreeSet<Grant> = from_json::<Vec<Grant>>(&requested)?.into_iter().collect();
            if granted.is_empty() || !granted.iter().all(|g| requested.contains(g)) {
                return Err(IdentityError::invalid(
                    "grants",
                    "grants must be a non-empty subset of the requested ones",
                ));
            }
        }
        let recorded = decision.recorded();
        let next = status.transition(match decision {
            Decision::Reject => ApplicationStatus::Rejected,
            Decision::Approve => status.after_approval(requires_head),
        })?;
        let review = Reviewing { step, reviewer_id: Some(&actor.user_id), reviewer_name: &actor.display_name, reason };
        insert_review(conn, now, id, &review, recorded, next, granted.as_deref())?;
        diesel::update(account_applications::table.filter(account_applications::id.eq(id)))
            .set((account_applications::status.eq(next), account_applications::updated_at.eq(to_db(now))))
            .execute(conn)?;
        if let Some(granted) = &granted {
            diesel::update(account_applications::table.filter(account_applications::id.eq(id)))
                .set(account_applications::granted.eq(to_json(granted)?))
                .execute(conn)?;
        }
        notifications::enqueue(
            conn,
            now,
            &email,
            "帳號申請進度 Account application update",
            &format!("Your application {id}: {step} {recorded} by {} ({reason}); next: {next}.", actor.display_name),
        )?;
        Ok(())
    })?;
    load(conn, id)
}

/// Who reviewed which step, and why.
struct Reviewing<'a> {
    step: ReviewStep,
    /// `None` for an outside review (the immigration agency, the contractor check).
    reviewer_id: Option<&'a UserId>,
    reviewer_name: &'a str,
    reason: &'a str,
}

/// Records one review step's decision and its audit event (the one place both are written, so every
/// step reaches the audit log): `next` is where the application goes, `granted` the pairs the
/// account manager narrowed the request to.
fn insert_review(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &ApplicationId,
    review: &Reviewing<'_>,
    decision: ReviewDecision,
    next: ApplicationStatus,
    granted: Option<&[Grant]>,
) -> Result<(), IdentityError> {
    let Reviewing { step, reviewer_id, reviewer_name, reason } = *review;
    let agency: AgencyCode = account_applications::table
        .inner_join(agencies::table)
        .filter(account_applications::id.eq(id))
        .select(agencies::code)
        .first(conn)?;
    let about = About { actor: reviewer_id, agency: Some(&agency), correlation_id: Some(id.as_str()) };
    let payload = json!({
        "application_id": id,
        "step": step,
        "decision": decision,
        "reviewer_name": reviewer_name,
        "reason": reason,
        "status": next,
        "granted": granted,
    });
    audit::record(conn, now, kind::ACCOUNT_APPLICATION_REVIEWED, about, payload)?;
    diesel::insert_into(application_reviews::table)
        .values((
            application_reviews::id.eq(new_id()),
            application_reviews::application_id.eq(id),
            application_reviews::step.eq(step),
            application_reviews::reviewer_id.eq(reviewer_id),
            application_reviews::reviewer_name.eq(reviewer_name),
            application_reviews::decision.eq(decision),
            application_reviews::reason.eq(reason),
            application_reviews::decided_at.eq(to_db(now)),
        ))
        .execute(conn)
        .map_err(|err| match DbError::Query(err) {
            // Two reviewers raced on the same step: the loser sees the step as done.
            e if e.is_unique_violation() => IdentityError::ReviewedMeanwhile,
            e => IdentityError::Db(e),
        })?;
    Ok(())
}

/// What goes to the immigration agency's review (and to the contractor check before it).
#[derive(Debug, Clone)]
pub struct NiaSubmission {
    pub application_id: ApplicationId,
    pub agency_code: AgencyCode,
    pub username: String,
    pub certificate_serial: String,
    pub legal_basis: String,
    pub business_handled: String,
    /// The granted pairs (the requested ones when the manager narrowed nothing).
    pub grants: Vec<Grant>,
    /// For the contractor check only; never sent to the immigration agency.
    pub national_id: String,
    /// A vendor_staff application never reaches the immigration agency ([`decide_locally`]).
    pub role: AppliedRole,
}

/// Applications the agency has approved that wait for the immigration agency (at most 100 a round).
pub fn awaiting_nia(conn: &mut DbConn) -> Result<Vec<ApplicationId>, IdentityError> {
    Ok(account_applications::table
        .filter(account_applications::status.eq(ApplicationStatus::NiaReview))
        .order(account_applications::id.asc())
        .select(account_applications::id)
        .limit(100)
        .load(conn)?)
}

pub fn nia_submission(conn: &mut DbConn, id: &ApplicationId) -> Result<Option<NiaSubmission>, IdentityError> {
    type SubmissionRow = (AgencyCode, String, String, String, String, String, Option<String>, String, AppliedRole);
    let row: Option<SubmissionRow> = account_applications::table
        .inner_join(agencies::table)
        .filter(account_applications::id.eq(id))
        .filter(account_applications::status.eq(ApplicationStatus::NiaReview))
        .select((
            agencies::code,
            account_applications::username,
            account_applications::certificate_serial,
            account_applications::legal_basis,
            account_applications::business_handled,
            account_applications::requested_grants,
            account_applications::granted,
            account_applications::national_id,
            account_applications::role,
        ))
        .first(conn)
        .optional()?;
    let Some((
        agency_code,
        username,
        certificate_serial,
        legal_basis,
        business_handled,
        requested,
        granted,
        national_id,
        role,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(NiaSubmission {
        application_id: id.clone(),
        agency_code,
        username,
        certificate_serial,
        legal_basis,
        business_handled,
        grants: from_json(granted.as_deref().unwrap_or(&requested))?,
        national_id,
        role,
    }))
}

/// What immilink decides itself when the agency has approved, before the immigration agency is
/// asked. `personnel` is the vendors service's answer now (personnel may have been registered since
/// the application): an account the rule refuses is rejected at the contractor check (R-ACC-08,
/// R-VEN-08, [`contractors::check_account`]); a vendor_staff account, which has no query access for
/// the immigration agency to review, is approved there. `None`: the immigration agency decides.
pub fn decide_locally(submission: &NiaSubmission, personnel: ContractorStatus) -> Option<OutsideDecision> {
    let checked = contractors::check_account(personnel, &[submission.role.role()], submission.grants.len());
    let reviewer_name = "immilink (vendor personnel records)".to_owned();
    let decision = |approved: bool, reason: String| OutsideDecision {
        step: ReviewStep::ContractorCheck,
        reviewer_name: reviewer_name.clone(),
        approved,
        reason,
        reference: None,
    };
    match (checked, submission.role) {
        (Err(IdentityError::ContractorApplicant), _) => {
            Some(decision(false, "the applicant is registered contractor personnel (R-ACC-08)".into()))
        }
        (Err(refusal), _) => Some(decision(false, format!("{refusal} (R-VEN-08)"))),
        (Ok(()), AppliedRole::VendorStaff) => Some(decision(
            true,
            "a vendor_staff account holds no lookup permission (R-VEN-08): nothing for the immigration agency \
             to review"
                .into(),
        )),
        (Ok(()), AppliedRole::Caseworker) => None,
    }
}

/// An outside decision on an application waiting for the immigration agency: the agency's answer,
/// or the contractor check refusing it.
#[derive(Debug, Clone)]
pub struct OutsideDecision {
    /// [`ReviewStep::NiaReview`] or [`ReviewStep::ContractorCheck`].
    pub step: ReviewStep,
    pub reviewer_name: String,
    pub approved: bool,
    pub reason: String,
    pub reference: Option<String>,
}

/// Records the outside decision; on approval creates the account, active, with exactly the granted
/// pairs, the role applied for and the registered IPs. Idempotent: an application no longer waiting
/// is returned unchanged.
pub fn finish(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &ApplicationId,
    outcome: &OutsideDecision,
) -> Result<Application, IdentityError> {
    conn.write_transaction(|conn| {
        let Some(submission) = nia_submission(conn, id)? else {
            return Ok(());
        };
        let (decision, next) = match outcome.approved {
            true => (ReviewDecision::Approved, ApplicationStatus::Approved),
            false => (ReviewDecision::Rejected, ApplicationStatus::Rejected),
        };
        let next = ApplicationStatus::NiaReview.transition(next)?;
        let review = Reviewing {
            step: outcome.step,
            reviewer_id: None,
            reviewer_name: &outcome.reviewer_name,
            reason: &outcome.reason,
        };
        insert_review(conn, now, id, &review, decision, next, None)?;
        let email: String = account_applications::table
            .filter(account_applications::id.eq(id))
            .select(account_applications::email)
            .first(conn)?;
        if !outcome.approved {
            diesel::update(account_applications::table.filter(account_applications::id.eq(id)))
                .set((
                    account_applications::status.eq(next),
                    account_applications::nia_reference.eq(&outcome.reference),
                    account_applications::updated_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            return notifications::enqueue(
                conn,
                now,
                &email,
                "帳號申請未核准 Account application rejected",
                &format!("Your application {id} was rejected at {}: {}", outcome.step, outcome.reason),
            );
        }
        let user_id = create_account(conn, now, id, &submission)?;
        diesel::update(account_applications::table.filter(account_applications::id.eq(id)))
            .set((
                account_applications::status.eq(next),
                account_applications::user_id.eq(&user_id),
                account_applications::nia_reference.eq(&outcome.reference),
                account_applications::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        let reason = format!("application {id} approved");
        accounts::record_event(conn, now, &user_id, AccountEventKind::Activated, &reason, None)?;
        notifications::enqueue(
            conn,
            now,
            &email,
            "帳號已開通 Account active",
            &format!(
                "Your account {} is active. Log in with your password and your citizen certificate from your \
                 registered workstation.",
                submission.username
            ),
        )
    })?;
    load(conn, id)
}

fn create_account(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &ApplicationId,
    submission: &NiaSubmission,
) -> Result<UserId, IdentityError> {
    let (agency_id, unit_id, display_name, password_hash, email, ips): (
        AgencyId,
        UnitId,
        String,
        String,
        String,
        String,
    ) = account_applications::table
        .filter(account_applications::id.eq(id))
        .select((
            account_applications::agency_id,
            account_applications::unit_id,
            account_applications::display_name,
            account_applications::password_hash,
            account_applications::email,
            account_applications::ips,
        ))
        .first(conn)?;
    let user_id = UserId::new(new_id());
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&user_id),
            users::agency_id.eq(&agency_id),
            users::unit_id.eq(&unit_id),
            users::username.eq(&submission.username),
            users::display_name.eq(&display_name),
            users::password_hash.eq(&password_hash),
            users::certificate_serial.eq(&submission.certificate_serial),
            users::status.eq(AccountStatus::Active),
            users::created_at.eq(to_db(now)),
            users::national_id.eq(&submission.national_id),
            users::email.eq(&email),
        ))
        .execute(conn)
        .map_err(|err| match DbError::Query(err) {
            e if e.is_unique_violation() => IdentityError::UsernameTaken,
            e => IdentityError::Db(e),
        })?;
    let role = submission.role.role();
    diesel::insert_into(user_roles::table)
        .values((user_roles::user_id.eq(&user_id), user_roles::role.eq(role)))
        .execute(conn)?;
    let ips: BTreeSet<String> = from_json::<Vec<String>>(&ips)?.into_iter().collect();
    let rows: Vec<_> = ips.iter().map(|ip| (user_ips::user_id.eq(&user_id), user_ips::ip.eq(ip))).collect();
    immilink_shared::insert_rows!(conn, user_ips::table, &rows);
    let grants: BTreeSet<&Grant> = submission.grants.iter().collect();
    // R-VEN-08: a vendor_staff account is never given a grant.
    contractors::check_account(ContractorStatus::NotPersonnel, &[role], grants.len())?;
    let rows: Vec<_> = grants
        .iter()
        .map(|grant| {
            (
                user_grants::user_id.eq(&user_id),
                user_grants::query_type.eq(&grant.query_type),
                user_grants::purpose_code.eq(&grant.purpose_code),
            )
        })
        .collect();
    immilink_shared::insert_rows!(conn, user_grants::table, &rows);
    Ok(user_id)
}

#[cfg(test)]
mod tests {
    use super::ApplicationStatus::{self, *};
    use super::{IdentityError, ReviewStep};

    /// Every (from, to) pair: the review steps move forward one at a time or to rejected, the
    /// immigration agency's step ends the application, and nothing leaves approved or rejected.
    #[test]
    fn application_status_transitions() {
        let legal = [
            (SupervisorReview, ManagerReview),
            (SupervisorReview, Rejected),
            (ManagerReview, HeadReview),
            (ManagerReview, NiaReview),
            (ManagerReview, Rejected),
            (HeadReview, NiaReview),
            (HeadReview, Rejected),
            (NiaReview, Approved),
            (NiaReview, Rejected),
        ];
        for &from in ApplicationStatus::ALL {
            for &to in ApplicationStatus::ALL {
                match from.transition(to) {
                    Ok(moved) => assert!(legal.contains(&(from, to)) && moved == to, "{from} → {to} allowed"),
                    Err(IdentityError::NotAwaitingReview { status }) => {
                        assert!(!legal.contains(&(from, to)), "{from} → {to} refused");
                        assert_eq!(status, from);
                    }
                    Err(other) => panic!("{from} → {to}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn approvals_lead_through_the_agency_to_the_immigration_agency() {
        assert_eq!(SupervisorReview.after_approval(true), ManagerReview);
        assert_eq!(ManagerReview.after_approval(true), HeadReview, "R-ACC-02");
        assert_eq!(ManagerReview.after_approval(false), NiaReview);
        assert_eq!(HeadReview.after_approval(true), NiaReview);
        let waiting: Vec<_> = ApplicationStatus::ALL.iter().filter_map(|s| s.local_step()).collect();
        assert_eq!(waiting, [ReviewStep::SupervisorReview, ReviewStep::ManagerReview, ReviewStep::HeadReview]);
        assert!(waiting.iter().all(|step| step.reviewer_role().is_some()));
        assert_eq!(ReviewStep::NiaReview.reviewer_role(), None);
    }

    #[test]
    fn masks_the_middle_of_an_id() {
        assert_eq!(super::mask("A123456789"), "A12****789");
        assert_eq!(super::mask("AB12"), "****");
    }
}
