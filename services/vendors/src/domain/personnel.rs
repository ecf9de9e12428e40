//! Contractor personnel (委外人員): who works for a registered vendor, optionally on one of its
//! contracts. Identity asks whether an applicant is active personnel of any agency's vendor and
//! refuses the application (R-ACC-08, R-VEN-08).
//!
//! - Adding a person tells identity at once (a `registered` message, R-VEN-08): an account the person
//!   already holds loses its lookup grants until an account manager resolves the conflict.
//! - No access to personal data before a passed suitability check (R-VEN-01) and a signed
//!   confidentiality agreement on file (R-VEN-04): [`may_access_personal_data`] is the one place that
//!   decides, shown in the person's view and asked by identity (`/internal/v1/personnel/access`).
//! - Offboarding (R-VEN-06): a departure, a role change or the end of the person's contract writes an
//!   `offboarded` message in the same transaction; identity cancels every account the person holds
//!   and ends their sessions. A role change keeps the person as active personnel in the new role; a
//!   departure (and a contract's end) marks them departed.
//!
//! National IDs are personal data: they never appear in logs, errors or audit events. The `Debug`
//! forms here redact them, so even a stray `?value` in a log line cannot leak one.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::to_db;
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::ids::SubjectId;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UserId};
use serde_json::json;

use super::contracts::{self, not_after_today};
use super::identity_messages::{self, MessageReason};
use super::{
    new_id, optional_text, record, require_manager, text, vendors, ContractId, PersonId, VendorId, VendorsError,
};
use crate::schema::{vendor_personnel, vendors as vendors_table};

text_enum! {
    /// Whether a person still works for the vendor. Added active; the one move is to departed
    /// (R-VEN-06), judged by `PersonnelStatus::transition`.
    pub enum PersonnelStatus {
        Active = "active",
        Departed = "departed",
    }
}

impl PersonnelStatus {
    /// Active → departed; nothing else (a person who returns is added again).
    pub fn transition(self, to: PersonnelStatus) -> Result<PersonnelStatus, VendorsError> {
        match (self, to) {
            (PersonnelStatus::Active, PersonnelStatus::Departed) => Ok(to),
            (from, to) => Err(VendorsError::IllegalMove { from, to }),
        }
    }
}

text_enum! {
    /// The outcome of a person's suitability check (R-VEN-01).
    pub enum SuitabilityStatus {
        Passed = "passed",
        Failed = "failed",
    }
}

text_enum! {
    /// The rule that keeps a person from personal data, as [`may_access_personal_data`] names it.
    pub enum AccessRule {
        /// No passed suitability check on file.
        SuitabilityCheck = "R-VEN-01",
        /// No signed confidentiality agreement on file.
        Agreement = "R-VEN-04",
        /// The person has departed.
        Departed = "R-VEN-06",
    }
}

impl AccessRule {
    /// Why access is refused, in a sentence.
    pub const fn refusal(self) -> &'static str {
        match self {
            AccessRule::SuitabilityCheck => {
                "no access to personal data before a passed suitability check is on file (R-VEN-01)"
            }
            AccessRule::Agreement => {
                "no access to personal data before a signed confidentiality agreement is on file (R-VEN-04)"
            }
            AccessRule::Departed => "a departed person has no access to personal data (R-VEN-06)",
        }
    }
}

/// One person on a vendor's staff list.
#[derive(Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = vendor_personnel)]
pub struct Person {
    pub id: PersonId,
    pub vendor_id: VendorId,
    /// The agency the vendor is registered with.
    pub agency: AgencyCode,
    /// National ID, or UI number for foreign staff, in canonical form.
    pub national_id: String,
    pub name: String,
    /// The person's role on the contract.
    pub job_title: Option<String>,
    pub status: PersonnelStatus,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
    /// When the person was marked departed (R-VEN-06).
    pub departed_at: Option<NaiveDateTime>,
    /// The contract the person works on; none for personnel added without one.
    pub contract_id: Option<ContractId>,
    pub suitability_status: Option<SuitabilityStatus>,
    pub suitability_checked_on: Option<NaiveDate>,
    pub suitability_checker: Option<String>,
    pub suitability_recorded_by: Option<UserId>,
    pub suitability_recorded_at: Option<NaiveDateTime>,
    pub agreement_signed_on: Option<NaiveDate>,
    pub agreement_reference: Option<String>,
    pub agreement_filed_by: Option<UserId>,
    pub agreement_filed_at: Option<NaiveDateTime>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("id", &self.id)
            .field("vendor_id", &self.vendor_id)
            .field("agency", &self.agency)
            .field("national_id", &"<redacted>")
            .field("status", &self.status)
            .field("contract_id", &self.contract_id)
            .field("suitability_status", &self.suitability_status)
            .field("agreement_filed_at", &self.agreement_filed_at)
            .finish_non_exhaustive()
    }
}

/// A suitability check on file (R-VEN-01).
#[derive(Debug, Clone, PartialEq)]
pub struct SuitabilityCheck {
    pub status: SuitabilityStatus,
    pub checked_on: NaiveDate,
    /// Who checked (a name or office, as the check's paperwork states it).
    pub checker: String,
    pub recorded_by: UserId,
    pub recorded_at: NaiveDateTime,
}

/// A signed confidentiality agreement on file (R-VEN-04).
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub signed_on: NaiveDate,
    pub reference: String,
    pub filed_by: UserId,
    pub filed_at: NaiveDateTime,
}

/// Whether a person may access personal data, and if not, the rule that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub allowed: bool,
    pub refused_by: Option<AccessRule>,
}

impl Person {
    pub fn suitability_check(&self) -> Option<SuitabilityCheck> {
        match (
            self.suitability_status,
            self.suitability_checked_on,
            &self.suitability_checker,
            &self.suitability_recorded_by,
            self.suitability_recorded_at,
        ) {
            (Some(status), Some(checked_on), Some(checker), Some(recorded_by), Some(recorded_at)) => {
                Some(SuitabilityCheck {
                    status,
                    checked_on,
                    checker: checker.clone(),
                    recorded_by: recorded_by.clone(),
                    recorded_at,
                })
            }
            _ => None,
        }
    }

    pub fn agreement(&self) -> Option<Agreement> {
        match (self.agreement_signed_on, &self.agreement_reference, &self.agreement_filed_by, self.agreement_filed_at) {
            (Some(signed_on), Some(reference), Some(filed_by), Some(filed_at)) => {
                Some(Agreement { signed_on, reference: reference.clone(), filed_by: filed_by.clone(), filed_at })
            }
            _ => None,
        }
    }

    /// [`may_access_personal_data`] as a value for the person's view.
    pub fn access(&self) -> Access {
        match may_access_personal_data(self) {
            Ok(()) => Access { allowed: true, refused_by: None },
            Err(VendorsError::PersonalDataRefused { rule }) => Access { allowed: false, refused_by: Some(rule) },
            // The function refuses with no other case; should it ever, access stays closed.
            Err(_) => Access { allowed: false, refused_by: Some(AccessRule::SuitabilityCheck) },
        }
    }
}

/// The one rule on a contractor person's access to personal data: only active personnel with a
/// passed suitability check (R-VEN-01) and a signed confidentiality agreement on file (R-VEN-04).
/// The refusal names the first rule not met (a departure first, then the check, then the agreement).
pub fn may_access_personal_data(person: &Person) -> Result<(), VendorsError> {
    let refuse = |rule| Err(VendorsError::PersonalDataRefused { rule });
    if person.status != PersonnelStatus::Active {
        return refuse(AccessRule::Departed);
    }
    if person.suitability_check().is_none_or(|check| check.status != SuitabilityStatus::Passed) {
        return refuse(AccessRule::SuitabilityCheck);
    }
    if person.agreement().is_none() {
        return refuse(AccessRule::Agreement);
    }
    Ok(())
}

/// A validated addition, built at the edge.
#[derive(Clone)]
pub struct NewPerson {
    pub vendor_id: VendorId,
    pub national_id: SubjectId,
    pub name: String,
    pub job_title: Option<String>,
    /// The vendor's contract the person works on (optional: clients that name none keep working).
    pub contract_id: Option<ContractId>,
}

const MAX_NAME: usize = 100;
const MAX_JOB_TITLE: usize = 100;
const MAX_CHECKER: usize = 200;
const MAX_REFERENCE: usize = 100;
const MAX_REASON: usize = 1000;

/// A national ID or UI number in any form a caseworker might type it; the refusal names the problem
/// (length, check digit), never the value.
pub fn resident_id(raw: &str) -> Result<SubjectId, VendorsError> {
    SubjectId::parse_resident(raw).map_err(|err| VendorsError::invalid("national_id", err.to_string()))
}

impl NewPerson {
    /// The addition from what the caller sent; each refusal names its field.
    pub fn parse(
        vendor_id: VendorId,
        national_id: Option<String>,
        name: Option<String>,
        job_title: Option<String>,
        contract_id: Option<String>,
    ) -> Result<Self, VendorsError> {
        let raw_id = national_id.ok_or_else(|| VendorsError::missing("national_id"))?;
        let national_id = resident_id(&raw_id)?;
        let name = text(name, "name", MAX_NAME)?;
        let job_title = optional_text(job_title, "job_title", MAX_JOB_TITLE)?;
        let contract_id = optional_text(contract_id, "contract_id", 64)?.map(ContractId::new);
        Ok(Self { vendor_id, national_id, name, job_title, contract_id })
    }
}

impl fmt::Debug for NewPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPerson")
            .field("vendor_id", &self.vendor_id)
            .field("national_id", &"<redacted>")
            .field("contract_id", &self.contract_id)
            .finish_non_exhaustive()
    }
}

/// A validated suitability check to record.
#[derive(Debug, Clone)]
pub struct NewSuitabilityCheck {
    pub status: SuitabilityStatus,
    pub checked_on: NaiveDate,
    pub checker: String,
}

impl NewSuitabilityCheck {
    pub fn parse(
        status: Option<SuitabilityStatus>,
        checked_on: Option<NaiveDate>,
        checker: Option<String>,
    ) -> Result<Self, VendorsError> {
        Ok(Self {
            status: status.ok_or_else(|| VendorsError::missing("status"))?,
            checked_on: checked_on.ok_or_else(|| VendorsError::missing("checked_on"))?,
            checker: text(checker, "checker", MAX_CHECKER)?,
        })
    }
}

/// A validated confidentiality agreement to file.
#[derive(Debug, Clone)]
pub struct NewAgreement {
    pub signed_on: NaiveDate,
    pub reference: String,
}

impl NewAgreement {
    pub fn parse(signed_on: Option<NaiveDate>, reference: Option<String>) -> Result<Self, VendorsError> {
        Ok(Self {
            signed_on: signed_on.ok_or_else(|| VendorsError::missing("signed_on"))?,
            reference: text(reference, "reference", MAX_REFERENCE)?,
        })
    }
}

/// A validated role change.
#[derive(Debug, Clone)]
pub struct RoleChange {
    pub job_title: String,
    pub reason: String,
}

impl RoleChange {
    pub fn parse(job_title: Option<String>, reason: Option<String>) -> Result<Self, VendorsError> {
        Ok(Self {
            job_title: text(job_title, "job_title", MAX_JOB_TITLE)?,
            reason: text(reason, "reason", MAX_REASON)?,
        })
    }
}

/// A vendor for which an ID is active personnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonnelVendor {
    pub vendor_id: VendorId,
    /// The agency the vendor is registered with.
    pub agency: AgencyCode,
    pub vendor_name: String,
}

/// Adds a person to a vendor of the caller's agency (and to one of its contracts when named), and
/// tells identity in the same transaction (a `registered` message, R-VEN-08). The same ID twice on
/// one vendor is a conflict (whether or not the earlier record has departed).
pub fn add(conn: &mut DbConn, now: DateTime<Utc>, caller: &Caller, new: &NewPerson) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let vendor = vendors::of_caller(conn, caller, &new.vendor_id)?;
        if let Some(contract_id) = &new.contract_id {
            contracts::open_for_personnel(conn, &vendor.id, contract_id)?;
        }
        let existing: i64 = vendor_personnel::table
            .filter(vendor_personnel::vendor_id.eq(&vendor.id))
            .filter(vendor_personnel::national_id.eq(new.national_id.as_str()))
            .count()
            .get_result(conn)?;
        if existing > 0 {
            return Err(VendorsError::PersonnelExists);
        }
        let id = PersonId::new(new_id());
        diesel::insert_into(vendor_personnel::table)
            .values((
                vendor_personnel::id.eq(&id),
                vendor_personnel::vendor_id.eq(&vendor.id),
                vendor_personnel::agency.eq(&vendor.agency),
                vendor_personnel::national_id.eq(new.national_id.as_str()),
                vendor_personnel::name.eq(&new.name),
                vendor_personnel::job_title.eq(&new.job_title),
                vendor_personnel::status.eq(PersonnelStatus::Active),
                vendor_personnel::created_by.eq(&caller.user_id),
                vendor_personnel::created_at.eq(to_db(now)),
                vendor_personnel::contract_id.eq(&new.contract_id),
            ))
            .execute(conn)
            .map_err(|err| match DbError::Query(err) {
                // A concurrent addition of the same person lost the race: same answer as above.
                e if e.is_unique_violation() => VendorsError::PersonnelExists,
                e => VendorsError::Db(e),
            })?;
        let person = person_of(conn, &vendor.id, &id)?;
        // The national ID stays out of the event: the person's id finds it in this service.
        let payload = json!({
            "vendor_id": person.vendor_id,
            "person_id": person.id,
            "contract_id": person.contract_id,
            "name": person.name,
            "job_title": person.job_title,
            "status": person.status,
        });
        record(conn, now, kind::VENDOR_PERSONNEL_ADDED, caller, person.id.as_str(), payload)?;
        identity_messages::enqueue(conn, now, &person, MessageReason::Registered)?;
        tracing::info!(vendor_id = %person.vendor_id, person_id = %person.id, "vendor personnel added");
        Ok(person)
    })
}

/// A vendor's personnel, departed ones included, by name, one page at a time (the cursor is the
/// last person's id).
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    page: &Page,
) -> Result<Vec<Person>, VendorsError> {
    require_manager(caller)?;
    vendors::of_caller(conn, caller, vendor_id)?;
    let mut query = vendor_personnel::table.filter(vendor_personnel::vendor_id.eq(vendor_id.clone())).into_boxed();
    if let Some(after) = &page.cursor {
        let name: String = vendor_personnel::table
            .filter(vendor_personnel::id.eq(after))
            .filter(vendor_personnel::vendor_id.eq(vendor_id))
            .select(vendor_personnel::name)
            .first(conn)
            .optional()?
            .ok_or_else(|| VendorsError::invalid("before", "not a person of this list"))?;
        query = query.filter(
            vendor_personnel::name
                .gt(name.clone())
                .or(vendor_personnel::name.eq(name).and(vendor_personnel::id.gt(after.clone()))),
        );
    }
    Ok(query
        .order((vendor_personnel::name.asc(), vendor_personnel::id.asc()))
        .limit(page.limit)
        .select(Person::as_select())
        .load(conn)?)
}

/// One person of a vendor of the caller's agency.
pub fn get(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    vendors::of_caller(conn, caller, vendor_id)?;
    person_of(conn, vendor_id, person_id)
}

/// Marks a person departed (R-VEN-06): from `now` on they no longer match the lookup, and identity
/// is told (in the same transaction) to disable every account they hold. Marking a departed person
/// again changes nothing, tells no one, and answers the record as it is.
pub fn mark_departed(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        vendors::of_caller(conn, caller, vendor_id)?;
        let person = person_of(conn, vendor_id, person_id)?;
        if person.status == PersonnelStatus::Departed {
            return Ok(person);
        }
        match depart(conn, now, caller, &person, MessageReason::Departure)? {
            Some(departed) => Ok(departed),
            // Departed by a concurrent request since it was read: answer the record as it is.
            None => person_of(conn, vendor_id, person_id),
        }
    })
}

/// Offboards an active person for `reason` (a departure, or their contract's end) inside the caller's
/// transaction: marks them departed, writes the audit event and the `offboarded` message to identity.
/// `None` when the person was no longer active (a concurrent departure did it first: nothing more is
/// written).
pub(crate) fn depart(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    person: &Person,
    reason: MessageReason,
) -> Result<Option<Person>, VendorsError> {
    let to = person.status.transition(PersonnelStatus::Departed)?;
    // Guarded by the status it was read in: a concurrent departure cannot overwrite the first
    // departure time, nor offboard twice.
    let departed = diesel::update(
        vendor_personnel::table
            .filter(vendor_personnel::id.eq(&person.id))
            .filter(vendor_personnel::status.eq(person.status)),
    )
    .set((vendor_personnel::status.eq(to), vendor_personnel::departed_at.eq(Some(to_db(now)))))
    .execute(conn)?;
    if departed == 0 {
        return Ok(None);
    }
    let payload = json!({
        "vendor_id": person.vendor_id,
        "person_id": person.id,
        "contract_id": person.contract_id,
        "name": person.name,
        "from": person.status,
        "status": to,
        "reason": reason,
    });
    record(conn, now, kind::VENDOR_PERSONNEL_DEPARTED, caller, person.id.as_str(), payload)?;
    let departed = person_of(conn, &person.vendor_id, &person.id)?;
    identity_messages::enqueue(conn, now, &departed, reason)?;
    tracing::info!(vendor_id = %person.vendor_id, person_id = %person.id, %reason, "vendor personnel offboarded");
    Ok(Some(departed))
}

/// Records a person's suitability check (R-VEN-01), replacing an earlier one. The check's date cannot
/// lie in the future; a departed person's record is closed.
pub fn record_suitability_check(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
    check: &NewSuitabilityCheck,
) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    not_after_today(check.checked_on, now, "checked_on")?;
    conn.write_transaction(|conn| {
        let person = active_person(conn, caller, vendor_id, person_id)?;
        let changed = diesel::update(active_row(person_id))
            .set((
                vendor_personnel::suitability_status.eq(Some(check.status)),
                vendor_personnel::suitability_checked_on.eq(Some(check.checked_on)),
                vendor_personnel::suitability_checker.eq(Some(&check.checker)),
                vendor_personnel::suitability_recorded_by.eq(Some(&caller.user_id)),
                vendor_personnel::suitability_recorded_at.eq(Some(to_db(now))),
            ))
            .execute(conn)?;
        if changed == 0 {
            return Err(VendorsError::PersonDeparted);
        }
        let payload = json!({
            "vendor_id": vendor_id,
            "person_id": person_id,
            "status": check.status,
            "checked_on": check.checked_on,
            "checker": check.checker,
            "previous_status": person.suitability_status,
        });
        record(conn, now, kind::VENDOR_PERSONNEL_CHECKED, caller, person_id.as_str(), payload)?;
        person_of(conn, vendor_id, person_id)
    })
}

/// Files a person's signed confidentiality agreement (R-VEN-04), replacing an earlier one. The
/// signing date cannot lie in the future; a departed person's record is closed.
pub fn file_agreement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
    agreement: &NewAgreement,
) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    not_after_today(agreement.signed_on, now, "signed_on")?;
    conn.write_transaction(|conn| {
        let person = active_person(conn, caller, vendor_id, person_id)?;
        let changed = diesel::update(active_row(person_id))
            .set((
                vendor_personnel::agreement_signed_on.eq(Some(agreement.signed_on)),
                vendor_personnel::agreement_reference.eq(Some(&agreement.reference)),
                vendor_personnel::agreement_filed_by.eq(Some(&caller.user_id)),
                vendor_personnel::agreement_filed_at.eq(Some(to_db(now))),
            ))
            .execute(conn)?;
        if changed == 0 {
            return Err(VendorsError::PersonDeparted);
        }
        let payload = json!({
            "vendor_id": vendor_id,
            "person_id": person_id,
            "signed_on": agreement.signed_on,
            "reference": agreement.reference,
            "replaced": person.agreement_reference,
        });
        record(conn, now, kind::VENDOR_PERSONNEL_AGREEMENT_FILED, caller, person_id.as_str(), payload)?;
        person_of(conn, vendor_id, person_id)
    })
}

/// Changes an active person's role (R-VEN-06): the person stays active personnel with the new job
/// title, and identity is told in the same transaction to disable every account they hold (an
/// account for the new role is applied for afresh). The same title again is refused, naming it.
pub fn change_role(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
    change: &RoleChange,
) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let person = active_person(conn, caller, vendor_id, person_id)?;
        if person.job_title.as_deref() == Some(change.job_title.as_str()) {
            return Err(VendorsError::invalid("job_title", "is already the person's role"));
        }
        let changed = diesel::update(active_row(person_id))
            .set(vendor_personnel::job_title.eq(Some(&change.job_title)))
            .execute(conn)?;
        if changed == 0 {
            return Err(VendorsError::PersonDeparted);
        }
        let payload = json!({
            "vendor_id": vendor_id,
            "person_id": person_id,
            "contract_id": person.contract_id,
            "from_job_title": person.job_title,
            "job_title": change.job_title,
            "reason": change.reason,
        });
        record(conn, now, kind::VENDOR_PERSONNEL_ROLE_CHANGED, caller, person_id.as_str(), payload)?;
        let changed = person_of(conn, vendor_id, person_id)?;
        identity_messages::enqueue(conn, now, &changed, MessageReason::RoleChange)?;
        tracing::info!(%vendor_id, %person_id, "vendor personnel role changed; accounts offboarded");
        Ok(changed)
    })
}

/// The person, of a vendor of the caller's agency, still active.
fn active_person(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
) -> Result<Person, VendorsError> {
    vendors::of_caller(conn, caller, vendor_id)?;
    let person = person_of(conn, vendor_id, person_id)?;
    if person.status != PersonnelStatus::Active {
        return Err(VendorsError::PersonDeparted);
    }
    Ok(person)
}

/// The person's row while still active: an update through it does nothing once a concurrent
/// departure has committed.
type ActiveRow<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<vendor_personnel::table, diesel::dsl::Eq<vendor_personnel::id, &'a PersonId>>,
    diesel::dsl::Eq<vendor_personnel::status, PersonnelStatus>,
>;

fn active_row(person_id: &PersonId) -> ActiveRow<'_> {
    vendor_personnel::table
        .filter(vendor_personnel::id.eq(person_id))
        .filter(vendor_personnel::status.eq(PersonnelStatus::Active))
}

fn person_of(conn: &mut DbConn, vendor_id: &VendorId, person_id: &PersonId) -> Result<Person, VendorsError> {
    vendor_personnel::table
        .filter(vendor_personnel::id.eq(person_id))
        .filter(vendor_personnel::vendor_id.eq(vendor_id))
        .select(Person::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorsError::NotFound("the person"))
}

/// The vendors, of any agency, for which `id` is ACTIVE personnel (R-ACC-08, R-VEN-08). Empty when the
/// person is not contractor personnel, or has departed everywhere.
pub fn is_active_personnel(conn: &mut DbConn, id: &SubjectId) -> Result<Vec<PersonnelVendor>, VendorsError> {
    let rows: Vec<(VendorId, AgencyCode, String)> = vendor_personnel::table
        .inner_join(vendors_table::table)
        .filter(vendor_personnel::national_id.eq(id.as_str()))
        .filter(vendor_personnel::status.eq(PersonnelStatus::Active))
        .order((vendors_table::agency.asc(), vendors_table::name.asc(), vendors_table::id.asc()))
        .select((vendors_table::id, vendors_table::agency, vendors_table::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(vendor_id, agency, vendor_name)| PersonnelVendor { vendor_id, agency, vendor_name })
        .collect())
}

/// What identity learns about an ID's access to personal data as contractor personnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonnelAccess {
    /// The ID is active personnel (of `agency`'s vendors when one was named).
    pub personnel: bool,
    /// Some active record of the ID passes [`may_access_personal_data`].
    pub allowed: bool,
    /// When not allowed: the rule refusing the record closest to being allowed (R-VEN-04 before
    /// R-VEN-01), or R-VEN-06 when every record has departed; none when the ID is no one's personnel.
    pub rule: Option<AccessRule>,
}

/// May this ID, as contractor personnel (of `agency`'s vendors, or any agency's), access personal
/// data? Identity asks before it gives contractor personnel a `vendor_staff` account (R-VEN-01,
/// R-VEN-04).
pub fn personal_data_access(
    conn: &mut DbConn,
    id: &SubjectId,
    agency: Option<&AgencyCode>,
) -> Result<PersonnelAccess, VendorsError> {
    let mut query = vendor_personnel::table.filter(vendor_personnel::national_id.eq(id.as_str())).into_boxed();
    if let Some(agency) = agency {
        query = query.filter(vendor_personnel::agency.eq(agency.clone()));
    }
    let records: Vec<Person> = query.order(vendor_personnel::id.asc()).select(Person::as_select()).load(conn)?;
    let personnel = records.iter().any(|p| p.status == PersonnelStatus::Active);
    if records.iter().any(|p| may_access_personal_data(p).is_ok()) {
        return Ok(PersonnelAccess { personnel, allowed: true, rule: None });
    }
    // Closest to allowed first: only the agreement missing, then the check, then departed.
    let rank = |rule: &AccessRule| match rule {
        AccessRule::Agreement => 0,
        AccessRule::SuitabilityCheck => 1,
        AccessRule::Departed => 2,
    };
    let rule = records.iter().filter_map(|p| p.access().refused_by).min_by_key(rank);
    Ok(PersonnelAccess { personnel, allowed: false, rule })
}

#[cfg(test)]
mod transitions {
    use super::PersonnelStatus::{self, *};
    use super::VendorsError;

    #[test]
    fn personnel_status_moves_only_from_active_to_departed() {
        for &from in PersonnelStatus::ALL {
            for &to in PersonnelStatus::ALL {
                match (from, to, from.transition(to)) {
                    (Active, Departed, Ok(moved)) => assert_eq!(moved, Departed),
                    (_, _, Err(VendorsError::IllegalMove { from: f, to: t })) => {
                        assert!((from, to) != (Active, Departed));
                        assert_eq!((f, t), (from, to));
                    }
                    (_, _, other) => panic!("{from} → {to}: {other:?}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod db_tests {
    use chrono::{Duration, TimeZone};
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::testing::caller;
    use crate::domain::vendors::{register, BusinessNumber, NewVendor, Vendor};

    fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
    }

    /// A vendor manager of `agency`.
    fn manager(agency: &str) -> Caller {
        caller(agency, &["vendor_manager"])
    }

    fn vendor(conn: &mut DbConn, agency: &str, name: &str, business_number: &str) -> Vendor {
        let new = NewVendor {
            name: name.into(),
            business_number: BusinessNumber::parse(business_number).unwrap(),
            contact_email: None,
        };
        register(conn, now(), &manager(agency), &new).unwrap()
    }

    fn person(vendor_id: &VendorId, id: &str, name: &str) -> NewPerson {
        NewPerson {
            vendor_id: vendor_id.clone(),
            national_id: SubjectId::parse_resident(id).unwrap(),
            name: name.into(),
            job_title: Some("系統工程師".into()),
            contract_id: None,
        }
    }

    #[test]
    fn personnel_are_added_listed_and_departed() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        // Typed in lower case: stored in canonical form.
        let wang = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "a123456789", "王小明")).unwrap();
        assert_eq!((wang.national_id.as_str(), wang.status), ("A123456789", PersonnelStatus::Active));
        assert_eq!((wang.agency.as_str(), wang.vendor_id.as_str()), ("TPE-SW", acme.id.as_str()));
        // Foreign staff with a UI number.
        let smith = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A800000014", "John Smith")).unwrap();
        let listed = list(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap();
        assert_eq!(listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [smith.id.as_str(), wang.id.as_str()]);

        let later = now() + Duration::hours(3);
        let departed = mark_departed(&mut conn, later, &manager("TPE-SW"), &acme.id, &wang.id).unwrap();
        assert_eq!(departed.status, PersonnelStatus::Departed);
        assert_eq!(departed.departed_at, Some(to_db(later)));
        // Again: nothing changes, the first departure time stays.
        let again =
            mark_departed(&mut conn, later + Duration::hours(1), &manager("TPE-SW"), &acme.id, &wang.id).unwrap();
        assert_eq!(again, departed);
        assert_eq!(list(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap().len(), 2);
    }

    /// Every change writes its audit event in the transaction that makes it: source vendors, the
    /// manager as actor, the agency, the vendor or person as correlation, no subject, and no
    /// national ID. A second departure changes nothing and records nothing.
    #[test]
    fn every_vendor_change_writes_its_audit_event_in_the_same_transaction() {
        use immilink_shared::events::kind;
        use immilink_shared::outbox::pending;
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let wang = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A123456789", "王小明")).unwrap();
        mark_departed(&mut conn, now(), &manager("TPE-SW"), &acme.id, &wang.id).unwrap();
        mark_departed(&mut conn, now(), &manager("TPE-SW"), &acme.id, &wang.id).unwrap();
        let events = pending(&mut conn, 10).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, [kind::VENDOR_REGISTERED, kind::VENDOR_PERSONNEL_ADDED, kind::VENDOR_PERSONNEL_DEPARTED]);
        let manager = manager("TPE-SW");
        for event in &events {
            assert_eq!(event.source, "vendors");
            assert_eq!(event.actor_user_id.as_deref(), Some(manager.user_id.as_str()));
            assert_eq!(event.agency.as_deref(), Some("TPE-SW"));
            assert_eq!(event.subject_id, None);
            assert_eq!(event.occurred_at, now());
        }
        assert_eq!(events[0].correlation_id.as_deref(), Some(acme.id.as_str()));
        assert_eq!(events[0].payload["business_number"], "22099131");
        assert_eq!(events[1].correlation_id.as_deref(), Some(wang.id.as_str()));
        assert_eq!(events[1].payload["vendor_id"], acme.id.as_str());
        assert_eq!(events[1].payload["job_title"], "系統工程師");
        assert_eq!((&events[2].payload["from"], &events[2].payload["status"]), (&json!("active"), &json!("departed")));
        assert!(!serde_json::to_string(&events).unwrap().contains("A123456789"), "no national ID");
    }

    /// When the event cannot be written, the change is not made either.
    #[test]
    fn a_failed_audit_event_insert_rolls_back_the_vendor_change() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let wang = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A123456789", "王小明")).unwrap();
        // Sabotage the outbox so the next event insert fails.
        diesel::sql_query("DROP TABLE outbox").execute(&mut conn).unwrap();
        let new = NewVendor {
            name: "另一家資訊公司".into(),
            business_number: BusinessNumber::parse("10458575").unwrap(),
            contact_email: None,
        };
        assert!(register(&mut conn, now(), &manager("TPE-SW"), &new).is_err());
        assert!(add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A800000014", "John Smith")).is_err());
        assert!(mark_departed(&mut conn, now(), &manager("TPE-SW"), &acme.id, &wang.id).is_err());
        let vendors: i64 = vendors_table::table.count().get_result(&mut conn).unwrap();
        let people: Vec<PersonnelStatus> =
            vendor_personnel::table.select(vendor_personnel::status).load(&mut conn).unwrap();
        assert_eq!((vendors, people), (1, vec![PersonnelStatus::Active]), "nothing changed");
    }

    #[test]
    fn the_same_person_twice_on_one_vendor_is_a_conflict_but_other_vendors_may_list_them() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "花蓮系統整合有限公司", "22099131");
        add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A123456789", "王小明")).unwrap();
        let twice = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "Ａ１２３４５６７８９", "王小明"));
        assert!(matches!(twice, Err(VendorsError::PersonnelExists)), "{twice:?}");
        add(&mut conn, now(), &manager("HLN-HR"), &person(&other.id, "A123456789", "王小明")).unwrap();
        // The conflict does not repeat the ID.
        assert!(!twice.unwrap_err().to_string().contains("A123456789"));
    }

    #[test]
    fn debug_forms_never_show_the_national_id() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let new = person(&acme.id, "A123456789", "王小明");
        let added = add(&mut conn, now(), &manager("TPE-SW"), &new).unwrap();
        for debug in
            [format!("{new:?}"), format!("{added:?}"), format!("{:?}", Err::<(), _>(VendorsError::PersonnelExists))]
        {
            assert!(!debug.contains("A123456789"), "{debug}");
        }
    }

    #[test]
    fn another_agencys_vendor_is_not_found() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let wang = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A123456789", "王小明")).unwrap();
        let foreign = add(&mut conn, now(), &manager("HLN-HR"), &person(&acme.id, "B200000004", "陳美玲"));
        assert!(matches!(foreign, Err(VendorsError::NotFound("the vendor"))), "{foreign:?}");
        assert!(matches!(
            list(&mut conn, &manager("HLN-HR"), &acme.id, &Page::first()),
            Err(VendorsError::NotFound(_))
        ));
        assert!(matches!(
            mark_departed(&mut conn, now(), &manager("HLN-HR"), &acme.id, &wang.id),
            Err(VendorsError::NotFound(_))
        ));
        assert!(matches!(
            list(&mut conn, &manager("TPE-SW"), &VendorId::new("no-such-vendor"), &Page::first()),
            Err(VendorsError::NotFound(_))
        ));
        // A person id under the wrong vendor is not found either.
        let other = vendor(&mut conn, "TPE-SW", "另一家資訊公司", "10458575");
        let moved = mark_departed(&mut conn, now(), &manager("TPE-SW"), &other.id, &wang.id);
        assert!(matches!(moved, Err(VendorsError::NotFound("the person"))), "{moved:?}");
        assert_eq!(
            list(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap()[0].status,
            PersonnelStatus::Active
        );
    }

    /// The vendors half of R-ACC-08: identity refuses whoever this lookup finds.
    #[test]
    fn r_acc_08_lookup_matches_active_personnel_of_any_agency() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "花蓮系統整合有限公司", "22099131");
        add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A123456789", "王小明")).unwrap();
        add(&mut conn, now(), &manager("HLN-HR"), &person(&other.id, "A123456789", "王小明")).unwrap();
        let id = SubjectId::parse_resident("A123456789").unwrap();
        let found = is_active_personnel(&mut conn, &id).unwrap();
        assert_eq!(
            found,
            [
                PersonnelVendor {
                    vendor_id: other.id.clone(),
                    agency: AgencyCode::new("HLN-HR"),
                    vendor_name: "花蓮系統整合有限公司".into()
                },
                PersonnelVendor {
                    vendor_id: acme.id.clone(),
                    agency: AgencyCode::new("TPE-SW"),
                    vendor_name: "臺灣資訊服務股份有限公司".into()
                },
            ]
        );
        let stranger = SubjectId::parse_resident("B200000004").unwrap();
        assert!(is_active_personnel(&mut conn, &stranger).unwrap().is_empty());
    }

    #[test]
    fn departed_personnel_no_longer_match_the_lookup() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "花蓮系統整合有限公司", "22099131");
        let at_acme = add(&mut conn, now(), &manager("TPE-SW"), &person(&acme.id, "A800000014", "John Smith")).unwrap();
        let at_other =
            add(&mut conn, now(), &manager("HLN-HR"), &person(&other.id, "A800000014", "John Smith")).unwrap();
        let id = SubjectId::parse_resident("a800000014").unwrap();
        mark_departed(&mut conn, now(), &manager("TPE-SW"), &acme.id, &at_acme.id).unwrap();
        let found = is_active_personnel(&mut conn, &id).unwrap();
        assert_eq!(found.iter().map(|v| v.vendor_id.as_str()).collect::<Vec<_>>(), [other.id.as_str()]);
        mark_departed(&mut conn, now(), &manager("HLN-HR"), &other.id, &at_other.id).unwrap();
        assert!(is_active_personnel(&mut conn, &id).unwrap().is_empty());
    }

    #[test]
    fn personnel_are_listed_a_page_at_a_time_and_only_to_managers() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let tpe = manager("TPE-SW");
        for (id, name) in [("A123456789", "王小明"), ("B200000004", "陳美玲"), ("A800000014", "John Smith")] {
            add(&mut conn, now(), &tpe, &person(&acme.id, id, name)).unwrap();
        }
        let all = list(&mut conn, &tpe, &acme.id, &Page::first()).unwrap();
        let first = list(&mut conn, &tpe, &acme.id, &Page::new(Some(2), None).unwrap()).unwrap();
        assert_eq!(first, all[..2]);
        let rest =
            list(&mut conn, &tpe, &acme.id, &Page::new(Some(2), Some(first[1].id.to_string())).unwrap()).unwrap();
        assert_eq!(rest, all[2..]);
        let caseworker = caller("TPE-SW", &["caseworker"]);
        let refused = list(&mut conn, &caseworker, &acme.id, &Page::first());
        assert!(matches!(refused, Err(VendorsError::RoleRequired { .. })), "{refused:?}");
        let refused = add(&mut conn, now(), &caseworker, &person(&acme.id, "A123456789", "王小明"));
        assert!(matches!(refused, Err(VendorsError::RoleRequired { .. })), "{refused:?}");
    }
}

/// The SPEC rules on personnel: checks and agreements before personal data (R-VEN-01, R-VEN-04), the
/// messages to identity on offboarding (R-VEN-06) and registration (R-VEN-08).
#[cfg(test)]
mod rules {
    use chrono::{Duration, TimeZone};
    use immilink_shared::clock::business_date;
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::outbox::pending;
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::contracts::{self as contract_rules, NewContract};
    use crate::domain::identity_messages::{MessageKind, StoredMessage};
    use crate::domain::testing::caller;
    use crate::domain::vendors::{register, BusinessNumber, NewVendor, Vendor};
    use crate::schema::identity_messages;

    const WANG: &str = "A123456789";

    fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap()
    }

    /// 2026-12-07 10:00 in Taipei.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
    }

    fn today() -> NaiveDate {
        business_date(now())
    }

    fn manager(agency: &str) -> Caller {
        caller(agency, &["vendor_manager"])
    }

    fn vendor(conn: &mut DbConn, agency: &str, business_number: &str) -> Vendor {
        let new = NewVendor {
            name: "臺灣資訊服務股份有限公司".into(),
            business_number: BusinessNumber::parse(business_number).unwrap(),
            contact_email: None,
        };
        register(conn, now(), &manager(agency), &new).unwrap()
    }

    fn person(vendor: &Vendor, id: &str) -> NewPerson {
        NewPerson::parse(vendor.id.clone(), Some(id.into()), Some("王小明".into()), Some("系統工程師".into()), None)
            .unwrap()
    }

    fn passed() -> NewSuitabilityCheck {
        NewSuitabilityCheck::parse(Some(SuitabilityStatus::Passed), Some(today()), Some("政風室 林志明".into()))
            .unwrap()
    }

    fn agreement() -> NewAgreement {
        NewAgreement::parse(Some(today()), Some("NDA-2026-0087".into())).unwrap()
    }

    fn messages(conn: &mut DbConn) -> Vec<StoredMessage> {
        identity_messages::table
            .order(identity_messages::id.asc())
            .select(StoredMessage::as_select())
            .load(conn)
            .unwrap()
    }

    /// The messages about one person, as (kind, reason).
    fn sent_about(conn: &mut DbConn, person: &PersonId) -> Vec<(MessageKind, MessageReason)> {
        messages(conn).into_iter().filter(|m| &m.person_id == person).map(|m| (m.kind, m.reason)).collect()
    }

    fn refused_by(result: Result<(), VendorsError>) -> Option<AccessRule> {
        match result {
            Ok(()) => None,
            Err(VendorsError::PersonalDataRefused { rule }) => Some(rule),
            Err(other) => panic!("{other:?}"),
        }
    }

    /// R-VEN-01: no access to personal data before a PASSED suitability check is on file: not with
    /// the agreement alone, not with a failed check. A check dated in the future is refused naming
    /// `checked_on`; a recorded check is an audit event without the national ID.
    #[test]
    fn r_ven_01_no_access_to_personal_data_before_a_passed_suitability_check() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        assert_eq!(refused_by(may_access_personal_data(&wang)), Some(AccessRule::SuitabilityCheck));
        let id = SubjectId::parse_resident(WANG).unwrap();
        let asked = personal_data_access(&mut conn, &id, None).unwrap();
        assert_eq!(
            asked,
            PersonnelAccess { personnel: true, allowed: false, rule: Some(AccessRule::SuitabilityCheck) }
        );

        let with_agreement = file_agreement(&mut conn, now(), &tpe, &acme.id, &wang.id, &agreement()).unwrap();
        assert_eq!(refused_by(may_access_personal_data(&with_agreement)), Some(AccessRule::SuitabilityCheck));

        let failed = NewSuitabilityCheck { status: SuitabilityStatus::Failed, ..passed() };
        let failed = record_suitability_check(&mut conn, now(), &tpe, &acme.id, &wang.id, &failed).unwrap();
        assert_eq!(failed.suitability_check().map(|c| c.status), Some(SuitabilityStatus::Failed));
        assert_eq!(failed.access(), Access { allowed: false, refused_by: Some(AccessRule::SuitabilityCheck) });

        let tomorrow = NewSuitabilityCheck { checked_on: today() + Duration::days(1), ..passed() };
        let future = record_suitability_check(&mut conn, now(), &tpe, &acme.id, &wang.id, &tomorrow);
        assert!(matches!(&future, Err(VendorsError::Invalid { field, .. }) if field == "checked_on"), "{future:?}");

        let checked = record_suitability_check(&mut conn, now(), &tpe, &acme.id, &wang.id, &passed()).unwrap();
        let check = checked.suitability_check().unwrap();
        assert_eq!(
            (check.status, check.checked_on, check.checker.as_str()),
            (SuitabilityStatus::Passed, today(), "政風室 林志明")
        );
        assert_eq!((check.recorded_by, check.recorded_at), (tpe.user_id.clone(), to_db(now())));
        assert_eq!(refused_by(may_access_personal_data(&checked)), None);
        assert_eq!(checked.access(), Access { allowed: true, refused_by: None });
        let asked = personal_data_access(&mut conn, &id, None).unwrap();
        assert_eq!(asked, PersonnelAccess { personnel: true, allowed: true, rule: None });

        let events = pending(&mut conn, 50).unwrap();
        let checks: Vec<_> = events.iter().filter(|e| e.kind == kind::VENDOR_PERSONNEL_CHECKED).collect();
        assert_eq!(checks.len(), 2, "each recorded check, and not the refused one");
        assert_eq!(
            (&checks[1].payload["status"], &checks[1].payload["previous_status"]),
            (&json!("passed"), &json!("failed"))
        );
        assert_eq!(checks[1].correlation_id.as_deref(), Some(wang.id.as_str()));
        assert!(!serde_json::to_string(&events).unwrap().contains(WANG), "no national ID");
    }

    /// R-VEN-04: a passed check is not enough: no access before the person's signed confidentiality
    /// agreement is on file. A departed person has none at all, and their record takes no more checks
    /// or agreements (R-VEN-06).
    #[test]
    fn r_ven_04_no_access_to_personal_data_without_a_signed_confidentiality_agreement() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        let checked = record_suitability_check(&mut conn, now(), &tpe, &acme.id, &wang.id, &passed()).unwrap();
        assert_eq!(refused_by(may_access_personal_data(&checked)), Some(AccessRule::Agreement));
        let id = SubjectId::parse_resident(WANG).unwrap();
        assert_eq!(personal_data_access(&mut conn, &id, None).unwrap().rule, Some(AccessRule::Agreement));

        let tomorrow = NewAgreement { signed_on: today() + Duration::days(1), ..agreement() };
        let future = file_agreement(&mut conn, now(), &tpe, &acme.id, &wang.id, &tomorrow);
        assert!(matches!(&future, Err(VendorsError::Invalid { field, .. }) if field == "signed_on"), "{future:?}");

        let filed = file_agreement(&mut conn, now(), &tpe, &acme.id, &wang.id, &agreement()).unwrap();
        let on_file = filed.agreement().unwrap();
        assert_eq!((on_file.signed_on, on_file.reference.as_str()), (today(), "NDA-2026-0087"));
        assert_eq!(refused_by(may_access_personal_data(&filed)), None);
        let events = pending(&mut conn, 50).unwrap();
        let filings: Vec<_> = events.iter().filter(|e| e.kind == kind::VENDOR_PERSONNEL_AGREEMENT_FILED).collect();
        assert_eq!(filings.len(), 1);
        assert_eq!(filings[0].payload["reference"], "NDA-2026-0087");

        // Departed: no access, whatever is on file, and the record is closed.
        let departed = mark_departed(&mut conn, now(), &tpe, &acme.id, &wang.id).unwrap();
        assert_eq!(refused_by(may_access_personal_data(&departed)), Some(AccessRule::Departed));
        let asked = personal_data_access(&mut conn, &id, None).unwrap();
        assert_eq!(asked, PersonnelAccess { personnel: false, allowed: false, rule: Some(AccessRule::Departed) });
        let closed = file_agreement(&mut conn, now(), &tpe, &acme.id, &wang.id, &agreement());
        assert!(matches!(closed, Err(VendorsError::PersonDeparted)), "{closed:?}");
        let closed = record_suitability_check(&mut conn, now(), &tpe, &acme.id, &wang.id, &passed());
        assert!(matches!(closed, Err(VendorsError::PersonDeparted)), "{closed:?}");
    }

    /// Identity's question (may this ID access personal data as contractor personnel?) looks at every
    /// record of the ID, or only the named agency's; an ID that is no one's personnel is not allowed
    /// and no rule is named.
    #[test]
    fn r_ven_01_r_ven_04_identity_asks_across_records_or_within_one_agency() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let (tpe, hln) = (manager("TPE-SW"), manager("HLN-HR"));
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "10458575");
        let at_acme = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        add(&mut conn, now(), &hln, &person(&other, WANG)).unwrap();
        record_suitability_check(&mut conn, now(), &tpe, &acme.id, &at_acme.id, &passed()).unwrap();
        file_agreement(&mut conn, now(), &tpe, &acme.id, &at_acme.id, &agreement()).unwrap();
        let id = SubjectId::parse_resident(WANG).unwrap();
        assert!(personal_data_access(&mut conn, &id, None).unwrap().allowed);
        assert!(personal_data_access(&mut conn, &id, Some(&AgencyCode::new("TPE-SW"))).unwrap().allowed);
        let at_hln = personal_data_access(&mut conn, &id, Some(&AgencyCode::new("HLN-HR"))).unwrap();
        assert_eq!(
            at_hln,
            PersonnelAccess { personnel: true, allowed: false, rule: Some(AccessRule::SuitabilityCheck) }
        );
        let stranger = SubjectId::parse_resident("B200000004").unwrap();
        assert_eq!(
            personal_data_access(&mut conn, &stranger, None).unwrap(),
            PersonnelAccess { personnel: false, allowed: false, rule: None }
        );
    }

    /// R-VEN-08: adding a person tells identity in the same transaction, one `registered` message
    /// with what identity needs to find the person's accounts. An addition that is refused sends
    /// nothing.
    #[test]
    fn r_ven_08_registration_writes_one_registered_message() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, " a123456789 ")).unwrap();
        let sent = messages(&mut conn);
        assert_eq!(sent.len(), 1);
        let message = &sent[0];
        assert_eq!((message.kind, message.reason), (MessageKind::Registered, MessageReason::Registered));
        assert_eq!(message.national_id, WANG, "canonical form");
        assert_eq!((message.agency.as_str(), &message.vendor_id, &message.person_id), ("TPE-SW", &acme.id, &wang.id));
        assert_eq!((message.created_at, message.delivered_at, message.attempts), (to_db(now()), None, 0));
        assert!(!format!("{message:?}").contains(WANG), "its Debug form redacts the ID");

        let twice = add(&mut conn, now(), &tpe, &person(&acme, WANG));
        assert!(matches!(twice, Err(VendorsError::PersonnelExists)));
        let elsewhere = add(&mut conn, now(), &manager("HLN-HR"), &person(&acme, "B200000004"));
        assert!(matches!(elsewhere, Err(VendorsError::NotFound(_))));
        assert_eq!(messages(&mut conn).len(), 1, "a refused addition tells no one");
    }

    /// R-VEN-06, departure: exactly one `offboarded` message (reason departure), written with the
    /// departure; marking the person departed again sends nothing more.
    #[test]
    fn r_ven_06_a_departure_writes_exactly_one_offboarded_message() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        let chen = add(&mut conn, now(), &tpe, &person(&acme, "B200000004")).unwrap();
        mark_departed(&mut conn, now(), &tpe, &acme.id, &wang.id).unwrap();
        mark_departed(&mut conn, now() + Duration::minutes(5), &tpe, &acme.id, &wang.id).unwrap();
        assert_eq!(
            sent_about(&mut conn, &wang.id),
            [(MessageKind::Registered, MessageReason::Registered), (MessageKind::Offboarded, MessageReason::Departure)]
        );
        assert_eq!(sent_about(&mut conn, &chen.id), [(MessageKind::Registered, MessageReason::Registered)]);
        let departure = pending(&mut conn, 50).unwrap().into_iter().find(|e| e.kind == kind::VENDOR_PERSONNEL_DEPARTED);
        assert_eq!(departure.map(|e| e.payload["reason"].clone()), Some(json!("departure")));
    }

    /// R-VEN-06, role change: the person stays active personnel in the new role, and identity gets
    /// exactly one `offboarded` message (reason role_change) to disable the accounts of the old one.
    /// The same title again is refused naming `job_title`; a departed person's role cannot change.
    #[test]
    fn r_ven_06_a_role_change_writes_exactly_one_offboarded_message_and_keeps_the_person_active() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        let change = RoleChange::parse(Some("專案經理".into()), Some("調任專案經理".into())).unwrap();
        let changed = change_role(&mut conn, now(), &tpe, &acme.id, &wang.id, &change).unwrap();
        assert_eq!((changed.status, changed.job_title.as_deref()), (PersonnelStatus::Active, Some("專案經理")));
        let same = change_role(&mut conn, now(), &tpe, &acme.id, &wang.id, &change);
        assert!(matches!(&same, Err(VendorsError::Invalid { field, .. }) if field == "job_title"), "{same:?}");
        assert_eq!(
            sent_about(&mut conn, &wang.id),
            [
                (MessageKind::Registered, MessageReason::Registered),
                (MessageKind::Offboarded, MessageReason::RoleChange)
            ]
        );
        // Still contractor personnel: identity's contractor check still finds them.
        let id = SubjectId::parse_resident(WANG).unwrap();
        assert_eq!(is_active_personnel(&mut conn, &id).unwrap().len(), 1);
        let event = pending(&mut conn, 50).unwrap().into_iter().find(|e| e.kind == kind::VENDOR_PERSONNEL_ROLE_CHANGED);
        let payload = event.map(|e| e.payload).unwrap();
        assert_eq!((&payload["from_job_title"], &payload["job_title"]), (&json!("系統工程師"), &json!("專案經理")));

        mark_departed(&mut conn, now(), &tpe, &acme.id, &wang.id).unwrap();
        let other = RoleChange::parse(Some("顧問".into()), Some("x".into())).unwrap();
        let closed = change_role(&mut conn, now(), &tpe, &acme.id, &wang.id, &other);
        assert!(matches!(closed, Err(VendorsError::PersonDeparted)), "{closed:?}");
        let offboardings =
            sent_about(&mut conn, &wang.id).into_iter().filter(|(k, _)| *k == MessageKind::Offboarded).count();
        assert_eq!(offboardings, 2, "the role change's and the departure's, nothing for the refused change");
    }

    /// The message and the change are one transaction: when the audit event cannot be written, the
    /// change is not made and identity is told nothing; when the message cannot be written, the change
    /// and its audit event are not made either.
    #[test]
    fn r_ven_06_a_message_commits_or_rolls_back_with_its_change() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        let before = messages(&mut conn);
        let change = RoleChange::parse(Some("專案經理".into()), Some("調任".into())).unwrap();

        diesel::sql_query("ALTER TABLE outbox RENAME TO outbox_away").execute(&mut conn).unwrap();
        assert!(mark_departed(&mut conn, now(), &tpe, &acme.id, &wang.id).is_err());
        assert!(change_role(&mut conn, now(), &tpe, &acme.id, &wang.id, &change).is_err());
        assert!(add(&mut conn, now(), &tpe, &person(&acme, "B200000004")).is_err());
        assert_eq!(messages(&mut conn), before, "no message without its change");
        diesel::sql_query("ALTER TABLE outbox_away RENAME TO outbox").execute(&mut conn).unwrap();
        let events_before = pending(&mut conn, 50).unwrap().len();

        diesel::sql_query("ALTER TABLE identity_messages RENAME TO identity_messages_away").execute(&mut conn).unwrap();
        assert!(mark_departed(&mut conn, now(), &tpe, &acme.id, &wang.id).is_err());
        assert!(change_role(&mut conn, now(), &tpe, &acme.id, &wang.id, &change).is_err());
        assert!(add(&mut conn, now(), &tpe, &person(&acme, "B200000004")).is_err());
        diesel::sql_query("ALTER TABLE identity_messages_away RENAME TO identity_messages").execute(&mut conn).unwrap();
        assert_eq!(pending(&mut conn, 50).unwrap().len(), events_before, "no audit event without its message");

        let unchanged = get(&mut conn, &tpe, &acme.id, &wang.id).unwrap();
        assert_eq!(unchanged, wang, "nothing changed");
        let people: i64 = vendor_personnel::table.count().get_result(&mut conn).unwrap();
        assert_eq!(people, 1);
    }

    /// A person may be added to one of the vendor's contracts: not to an ended one, nor to another
    /// vendor's or another agency's (refused naming `contract_id`, without saying whether it exists).
    #[test]
    fn personnel_are_added_to_this_vendors_open_contracts_only() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let (tpe, hln) = (manager("TPE-SW"), manager("HLN-HR"));
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let sibling = vendor(&mut conn, "TPE-SW", "10458575");
        let foreign = vendor(&mut conn, "HLN-HR", "22099131");
        let contract = |conn: &mut DbConn, who: &Caller, vendor: &Vendor| {
            let new = NewContract::parse(
                vendor.id.clone(),
                Some("維護案".into()),
                Some("系統維運".into()),
                Some(today()),
                Some(today() + Duration::days(365)),
                Some(false),
            )
            .unwrap();
            contract_rules::register(conn, now(), who, &new).unwrap()
        };
        let own = contract(&mut conn, &tpe, &acme);
        let siblings = contract(&mut conn, &tpe, &sibling);
        let foreigners = contract(&mut conn, &hln, &foreign);
        let on = |contract_id: &ContractId, id: &str| NewPerson {
            contract_id: Some(contract_id.clone()),
            ..person(&acme, id)
        };

        let wang = add(&mut conn, now(), &tpe, &on(&own.id, WANG)).unwrap();
        assert_eq!(wang.contract_id.as_ref(), Some(&own.id));
        for (other, id) in
            [(&siblings.id, "B200000004"), (&foreigners.id, "A800000014"), (&ContractId::new("nope"), "F131104093")]
        {
            let refused = add(&mut conn, now(), &tpe, &on(other, id));
            assert!(
                matches!(&refused, Err(VendorsError::Invalid { field, .. }) if field == "contract_id"),
                "{refused:?}"
            );
        }
        contract_rules::end(&mut conn, now(), &tpe, &acme.id, &own.id, "契約終止").unwrap();
        let ended = add(&mut conn, now(), &tpe, &on(&own.id, "K222222226"));
        assert!(matches!(ended, Err(VendorsError::ContractEnded)), "{ended:?}");
    }

    /// Part 7 for the new person endpoints: another agency's manager finds no such vendor or person.
    #[test]
    fn checks_agreements_and_role_changes_stay_within_the_callers_agency() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let (tpe, hln) = (manager("TPE-SW"), manager("HLN-HR"));
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let wang = add(&mut conn, now(), &tpe, &person(&acme, WANG)).unwrap();
        let change = RoleChange::parse(Some("專案經理".into()), Some("x".into())).unwrap();
        let not_found = |result: Result<Person, VendorsError>| matches!(result, Err(VendorsError::NotFound(_)));
        assert!(not_found(get(&mut conn, &hln, &acme.id, &wang.id)));
        assert!(not_found(record_suitability_check(&mut conn, now(), &hln, &acme.id, &wang.id, &passed())));
        assert!(not_found(file_agreement(&mut conn, now(), &hln, &acme.id, &wang.id, &agreement())));
        assert!(not_found(change_role(&mut conn, now(), &hln, &acme.id, &wang.id, &change)));
        let caseworker = caller("TPE-SW", &["caseworker"]);
        let refused = record_suitability_check(&mut conn, now(), &caseworker, &acme.id, &wang.id, &passed());
        assert!(matches!(refused, Err(VendorsError::RoleRequired { .. })), "{refused:?}");
        assert_eq!(get(&mut conn, &tpe, &acme.id, &wang.id).unwrap(), wang, "nothing changed");
        assert_eq!(messages(&mut conn).len(), 1, "only the registration");
    }
}
