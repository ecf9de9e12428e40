//! Dedicated machines (專屬設備, R-VEN-07; seed 003 pt 8): the machines a contractor works on for one
//! project (a contract), registered by asset tag and serial number, attested offline (no internet)
//! with the list of the software on them and each program's licence, and attested again before each
//! due date. A machine is never registered to two projects: its asset tag and serial number are
//! unique in the agency among the machines not retired.
//!
//! A machine's first attestation is due the day it is registered (it is attested before it is used);
//! each attestation pushes the due date by the [`AttestationPeriod`]. A due date that passes is
//! flagged once by the sweep ([`flag_overdue`]); the next attestation clears the flag.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::contracts::{self, ContractStatus};
use super::{new_id, optional_text, record, record_system, text, ContractId, DeviceId, VendorId, VendorsError};
use crate::schema::vendor_devices;

text_enum! {
    /// A dedicated machine's life: registered → attested (again at each re-attestation) → retired;
    /// a machine never attested may be retired too. Judged by `DeviceStatus::transition`.
    pub enum DeviceStatus {
        /// Registered to its contract, not attested yet.
        Registered = "registered",
        /// Attested offline with licensed software only.
        Attested = "attested",
        /// No longer used for the project; its asset tag and serial number may be registered again.
        Retired = "retired",
    }
}

impl DeviceStatus {
    /// The one place the lifecycle is decided: registered or attested → attested (a re-attestation
    /// keeps it attested) or → retired. A retired machine moves no more.
    pub fn transition(self, to: DeviceStatus) -> Result<DeviceStatus, VendorsError> {
        use DeviceStatus::{Attested, Registered, Retired};
        match (self, to) {
            (Registered | Attested, Attested | Retired) => Ok(to),
            (from, to) => Err(VendorsError::IllegalDeviceMove { from, to }),
        }
    }
}

/// Who attests a machine: the agency's vendor and account managers, and the vendor's staff with an
/// account (role `vendor_staff`). They also read the agency's machines (to find the one they attest).
pub const ATTESTERS: &[&str] = &[roles::VENDOR_MANAGER, roles::ACCOUNT_MANAGER, roles::VENDOR_STAFF];

/// How long an attestation holds: the next one is due this many days after the day it was made
/// (`IMMILINK_VENDOR_DEVICE_ATTESTATION_DAYS`, default 90).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestationPeriod(u32);

impl AttestationPeriod {
    pub const DEFAULT_DAYS: u32 = 90;

    /// A period of 1 to 366 days.
    pub fn days(days: u32) -> Result<Self, String> {
        if (1..=366).contains(&days) {
            Ok(Self(days))
        } else {
            Err(format!("an attestation period is 1 to 366 days, not {days}"))
        }
    }

    pub fn as_days(self) -> u32 {
        self.0
    }

    /// The due date of the next attestation after one made on `day`.
    pub fn due_after(self, day: NaiveDate) -> NaiveDate {
        day.checked_add_days(Days::new(u64::from(self.0))).unwrap_or(NaiveDate::MAX)
    }
}

impl Default for AttestationPeriod {
    fn default() -> Self {
        Self(Self::DEFAULT_DAYS)
    }
}

/// One program on a machine and the reference of its licence (licence number, contract or agreement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicensedSoftware {
    pub name: String,
    pub licence_ref: String,
}

/// A machine's latest attestation.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    /// Always true: an attestation of a machine with internet access is refused.
    pub offline: bool,
    pub software: Vec<LicensedSoftware>,
    pub attested_by: UserId,
    pub attested_at: NaiveDateTime,
}

/// A dedicated machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub vendor_id: VendorId,
    /// The project (contract) it is dedicated to.
    pub contract_id: ContractId,
    pub agency: AgencyCode,
    pub asset_tag: String,
    pub serial_number: String,
    pub description: String,
    pub status: DeviceStatus,
    pub attestation: Option<Attestation>,
    /// When the next attestation is due (a Taipei date).
    pub attestation_due_on: NaiveDate,
    /// When the sweep flagged the current due date as passed; cleared by the next attestation.
    pub overdue_flagged_at: Option<NaiveDateTime>,
    pub registered_by: UserId,
    pub registered_at: NaiveDateTime,
    pub retired_by: Option<UserId>,
    pub retired_at: Option<NaiveDateTime>,
    pub retirement_reason: Option<String>,
}

impl Device {
    /// In use and its attestation due date (a Taipei date) is before `today`.
    pub fn overdue_on(&self, today: NaiveDate) -> bool {
        self.status != DeviceStatus::Retired && self.attestation_due_on < today
    }
}

/// The stored row; [`Device`] is what the rest of the code sees.
#[derive(Queryable, Selectable)]
#[diesel(table_name = vendor_devices)]
struct DeviceRow {
    id: DeviceId,
    vendor_id: VendorId,
    contract_id: ContractId,
    agency: AgencyCode,
    asset_tag: String,
    serial_number: String,
    description: String,
    status: DeviceStatus,
    offline: Option<bool>,
    licensed_software: Option<String>,
    attested_by: Option<UserId>,
    attested_at: Option<NaiveDateTime>,
    attestation_due_on: NaiveDate,
    overdue_flagged_at: Option<NaiveDateTime>,
    registered_by: UserId,
    registered_at: NaiveDateTime,
    retired_by: Option<UserId>,
    retired_at: Option<NaiveDateTime>,
    retirement_reason: Option<String>,
}

impl TryFrom<DeviceRow> for Device {
    type Error = VendorsError;

    fn try_from(row: DeviceRow) -> Result<Self, VendorsError> {
        let attestation = match (row.offline, row.licensed_software, row.attested_by, row.attested_at) {
            (Some(offline), Some(software), Some(attested_by), Some(attested_at)) => Some(Attestation {
                offline,
                software: serde_json::from_str(&software).map_err(|err| {
                    VendorsError::Db(DbError::Query(diesel::result::Error::DeserializationError(err.into())))
                })?,
                attested_by,
                attested_at,
            }),
            _ => None,
        };
        Ok(Device {
            id: row.id,
            vendor_id: row.vendor_id,
            contract_id: row.contract_id,
            agency: row.agency,
            asset_tag: row.asset_tag,
            serial_number: row.serial_number,
            description: row.description,
            status: row.status,
            attestation,
            attestation_due_on: row.attestation_due_on,
            overdue_flagged_at: row.overdue_flagged_at,
            registered_by: row.registered_by,
            registered_at: row.registered_at,
            retired_by: row.retired_by,
            retired_at: row.retired_at,
            retirement_reason: row.retirement_reason,
        })
    }
}

fn devices(rows: Vec<DeviceRow>) -> Result<Vec<Device>, VendorsError> {
    rows.into_iter().map(Device::try_from).collect()
}

// --- input ------------------------------------------------------------------------------------------

const MAX_IDENTIFIER: usize = 64;
const MAX_DESCRIPTION: usize = 500;
const MAX_SOFTWARE: usize = 200;
const MAX_SOFTWARE_TEXT: usize = 200;
const MAX_REASON: usize = 500;

/// An asset tag or serial number: trimmed, upper-cased (so `sn-1` and `SN-1` are one machine), 1 to
/// 64 characters without spaces or control characters.
fn identifier(value: Option<String>, field: &str) -> Result<String, VendorsError> {
    let value = text(value, field, MAX_IDENTIFIER)?.to_uppercase();
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(VendorsError::invalid(field, "must not contain spaces or control characters"));
    }
    Ok(value)
}

/// A machine to register, built at the edge.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub vendor_id: VendorId,
    pub contract_id: ContractId,
    pub asset_tag: String,
    pub serial_number: String,
    pub description: String,
}

impl NewDevice {
    /// The registration from what the caller sent; each refusal names its field.
    pub fn parse(
        vendor_id: VendorId,
        contract_id: ContractId,
        asset_tag: Option<String>,
        serial_number: Option<String>,
        description: Option<String>,
    ) -> Result<Self, VendorsError> {
        Ok(Self {
            vendor_id,
            contract_id,
            asset_tag: identifier(asset_tag, "asset_tag")?,
            serial_number: identifier(serial_number, "serial_number")?,
            description: text(description, "description", MAX_DESCRIPTION)?,
        })
    }
}

/// One software entry as sent: name and licence reference, either possibly absent.
#[derive(Debug, Clone, Default)]
pub struct SoftwareInput {
    pub name: Option<String>,
    pub licence_ref: Option<String>,
}

/// An attestation R-VEN-07 accepts: the machine has no internet access, and every program on it has
/// a licence reference.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttestation {
    pub software: Vec<LicensedSoftware>,
}

impl NewAttestation {
    /// The attestation from what the caller sent. A machine said to be online, or a program without a
    /// licence reference, is refused naming the field (R-VEN-07); the list may be empty but not absent.
    pub fn parse(offline: Option<bool>, software: Option<Vec<SoftwareInput>>) -> Result<Self, VendorsError> {
        match offline {
            None => return Err(VendorsError::missing("offline")),
            Some(false) => {
                return Err(VendorsError::AttestationRefused {
                    field: "offline".into(),
                    detail: "a dedicated machine must have no internet access; it cannot be attested while online"
                        .into(),
                })
            }
            Some(true) => {}
        }
        let software = software.ok_or_else(|| VendorsError::missing("software"))?;
        if software.len() > MAX_SOFTWARE {
            return Err(VendorsError::invalid("software", format!("at most {MAX_SOFTWARE} entries")));
        }
        let software = software
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let name = text(entry.name, &format!("software[{i}].name"), MAX_SOFTWARE_TEXT)?;
                let field = format!("software[{i}].licence_ref");
                let licence_ref = optional_text(entry.licence_ref, &field, MAX_SOFTWARE_TEXT)?.ok_or_else(|| {
                    VendorsError::AttestationRefused {
                        field: field.clone(),
                        detail: format!(
                            "{name} has no licence reference; only licensed software may be on a dedicated machine"
                        ),
                    }
                })?;
                Ok(LicensedSoftware { name, licence_ref })
            })
            .collect::<Result<Vec<_>, VendorsError>>()?;
        Ok(Self { software })
    }
}

/// A retirement's reason, optional.
pub fn retirement_reason(reason: Option<String>) -> Result<Option<String>, VendorsError> {
    optional_text(reason, "reason", MAX_REASON)
}

// --- where a machine belongs ------------------------------------------------------------------------

/// The machine, if it is registered to that contract of that vendor of the caller's agency.
fn device_of(conn: &mut DbConn, caller: &Caller, path: &DevicePath) -> Result<Device, VendorsError> {
    let (contract_id, device_id) = (&path.contract_id, &path.device_id);
    contracts::of_vendor(conn, caller, &path.vendor_id, contract_id)?;
    let row = vendor_devices::table
        .filter(vendor_devices::id.eq(device_id))
        .filter(vendor_devices::contract_id.eq(contract_id))
        .filter(vendor_devices::agency.eq(&caller.agency))
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorsError::NotFound("the device"))?;
    row.try_into()
}

fn reload(conn: &mut DbConn, device_id: &DeviceId) -> Result<Device, VendorsError> {
    vendor_devices::table
        .filter(vendor_devices::id.eq(device_id))
        .select(DeviceRow::as_select())
        .first(conn)?
        .try_into()
}

// --- acts -------------------------------------------------------------------------------------------

/// Registers a machine to a contract of a vendor of the caller's agency (vendor or account managers).
/// A machine whose asset tag or serial number is registered already, and not retired, is refused
/// naming the contract it serves (R-VEN-07: never two projects); so is a contract that has ended.
pub fn register(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewDevice,
) -> Result<Device, VendorsError> {
    super::require_manager(caller)?;
    conn.write_transaction(|conn| {
        let contract = contracts::of_vendor(conn, caller, &new.vendor_id, &new.contract_id)?;
        if contract.status == ContractStatus::Ended {
            return Err(VendorsError::ContractEnded);
        }
        let assigned: Option<(ContractId, String)> = vendor_devices::table
            .filter(vendor_devices::agency.eq(&caller.agency))
            .filter(vendor_devices::status.ne(DeviceStatus::Retired))
            .filter(
                vendor_devices::asset_tag.eq(&new.asset_tag).or(vendor_devices::serial_number.eq(&new.serial_number)),
            )
            .select((vendor_devices::contract_id, vendor_devices::asset_tag))
            .first(conn)
            .optional()?;
        if let Some((contract_id, asset_tag)) = assigned {
            let field = if asset_tag == new.asset_tag { "asset_tag" } else { "serial_number" };
            return Err(VendorsError::DeviceAssigned { field, contract_id: Some(contract_id) });
        }
        let id = DeviceId::new(new_id());
        let due_on = business_date(now);
        diesel::insert_into(vendor_devices::table)
            .values((
                vendor_devices::id.eq(&id),
                vendor_devices::vendor_id.eq(&new.vendor_id),
                vendor_devices::contract_id.eq(&new.contract_id),
                vendor_devices::agency.eq(&caller.agency),
                vendor_devices::asset_tag.eq(&new.asset_tag),
                vendor_devices::serial_number.eq(&new.serial_number),
                vendor_devices::description.eq(&new.description),
                vendor_devices::status.eq(DeviceStatus::Registered),
                vendor_devices::attestation_due_on.eq(due_on),
                vendor_devices::registered_by.eq(&caller.user_id),
                vendor_devices::registered_at.eq(to_db(now)),
            ))
            .execute(conn)
            .map_err(|err| match DbError::Query(err) {
                // A concurrent registration of the same machine lost the race (the partial unique
                // indexes): the same refusal, without the contract it lost to.
                e if e.is_unique_violation() => {
                    VendorsError::DeviceAssigned { field: "serial_number", contract_id: None }
                }
                e => VendorsError::Db(e),
            })?;
        let payload = json!({
            "device_id": id,
            "vendor_id": new.vendor_id,
            "contract_id": new.contract_id,
            "asset_tag": new.asset_tag,
            "serial_number": new.serial_number,
            "description": new.description,
            "status": DeviceStatus::Registered,
            "attestation_due_on": due_on,
        });
        record(conn, now, kind::VENDOR_DEVICE_REGISTERED, caller, id.as_str(), payload)?;
        tracing::info!(device_id = %id, contract_id = %new.contract_id, "dedicated machine registered");
        reload(conn, &id)
    })
}

/// Which machine: vendor, contract, device.
#[derive(Debug, Clone)]
pub struct DevicePath {
    pub vendor_id: VendorId,
    pub contract_id: ContractId,
    pub device_id: DeviceId,
}

/// Records an attestation (R-VEN-07) by a manager or the vendor's staff of the agency: the machine
/// becomes (or stays) attested, the next attestation is due `period` after today, and an overdue flag
/// is cleared. A retired machine is not attested.
pub fn attest(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    period: AttestationPeriod,
    path: &DevicePath,
    attestation: &NewAttestation,
) -> Result<Device, VendorsError> {
    if !caller.has_any(ATTESTERS) {
        return Err(VendorsError::RoleRequired { roles: ATTESTERS });
    }
    let software = serde_json::to_string(&attestation.software)
        .map_err(|err| VendorsError::Db(DbError::Query(diesel::result::Error::SerializationError(err.into()))))?;
    conn.write_transaction(|conn| {
        let device = device_of(conn, caller, path)?;
        let to = device.status.transition(DeviceStatus::Attested)?;
        let today = business_date(now);
        let due_on = period.due_after(today);
        // Guarded by the status and due date read: of two acts racing on one machine only the first
        // changes it.
        let updated = diesel::update(
            vendor_devices::table
                .filter(vendor_devices::id.eq(&device.id))
                .filter(vendor_devices::status.eq(device.status))
                .filter(vendor_devices::attestation_due_on.eq(device.attestation_due_on)),
        )
        .set((
            vendor_devices::status.eq(to),
            vendor_devices::offline.eq(Some(true)),
            vendor_devices::licensed_software.eq(Some(&software)),
            vendor_devices::attested_by.eq(Some(&caller.user_id)),
            vendor_devices::attested_at.eq(Some(to_db(now))),
            vendor_devices::attestation_due_on.eq(due_on),
            vendor_devices::overdue_flagged_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(VendorsError::ChangedMeanwhile("the device"));
        }
        let payload = json!({
            "device_id": device.id,
            "vendor_id": device.vendor_id,
            "contract_id": device.contract_id,
            "from": device.status,
            "status": to,
            "offline": true,
            "software": attestation.software,
            "previous_due_on": device.attestation_due_on,
            "was_overdue": device.overdue_on(today),
            "attestation_due_on": due_on,
        });
        record(conn, now, kind::VENDOR_DEVICE_ATTESTED, caller, device.id.as_str(), payload)?;
        tracing::info!(device_id = %device.id, %due_on, "dedicated machine attested");
        reload(conn, &device.id)
    })
}

/// Retires a machine (vendor or account managers): it no longer serves the project, and its asset tag
/// and serial number may be registered again. Retiring a retired machine changes nothing and answers
/// it as it is.
pub fn retire(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    path: &DevicePath,
    reason: Option<String>,
) -> Result<Device, VendorsError> {
    super::require_manager(caller)?;
    conn.write_transaction(|conn| {
        let device = device_of(conn, caller, path)?;
        if device.status == DeviceStatus::Retired {
            return Ok(device);
        }
        let to = device.status.transition(DeviceStatus::Retired)?;
        let updated = diesel::update(
            vendor_devices::table
                .filter(vendor_devices::id.eq(&device.id))
                .filter(vendor_devices::status.eq(device.status)),
        )
        .set((
            vendor_devices::status.eq(to),
            vendor_devices::retired_by.eq(Some(&caller.user_id)),
            vendor_devices::retired_at.eq(Some(to_db(now))),
            vendor_devices::retirement_reason.eq(&reason),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(VendorsError::ChangedMeanwhile("the device"));
        }
        let payload = json!({
            "device_id": device.id,
            "vendor_id": device.vendor_id,
            "contract_id": device.contract_id,
            "from": device.status,
            "status": to,
            "reason": reason,
        });
        record(conn, now, kind::VENDOR_DEVICE_RETIRED, caller, device.id.as_str(), payload)?;
        tracing::info!(device_id = %device.id, "dedicated machine retired");
        reload(conn, &device.id)
    })
}

// --- reads ------------------------------------------------------------------------------------------

/// The machines registered to a contract, retired ones included, in registration order (`cursor`:
/// the last id of the previous page).
pub fn list_for_contract(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
    page: &Page,
) -> Result<Vec<Device>, VendorsError> {
    if !caller.has_any(ATTESTERS) {
        return Err(VendorsError::RoleRequired { roles: ATTESTERS });
    }
    contracts::of_vendor(conn, caller, vendor_id, contract_id)?;
    let mut query = vendor_devices::table
        .filter(vendor_devices::contract_id.eq(contract_id))
        .filter(vendor_devices::agency.eq(&caller.agency))
        .select(DeviceRow::as_select())
        .into_boxed();
    if let Some(after) = &page.cursor {
        query = query.filter(vendor_devices::id.gt(after.clone()));
    }
    devices(query.order(vendor_devices::id.asc()).limit(page.limit).load(conn)?)
}

/// Filters of the agency's machines.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceFilter {
    /// Only machines in use whose attestation is overdue (`true`), or only the others (`false`).
    pub overdue: Option<bool>,
}

/// The caller's agency's machines, every vendor's, in registration order (`cursor`: the last id of
/// the previous page); overdue as of `now`'s Taipei date.
pub fn list_for_agency(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: DeviceFilter,
    page: &Page,
) -> Result<Vec<Device>, VendorsError> {
    if !caller.has_any(ATTESTERS) {
        return Err(VendorsError::RoleRequired { roles: ATTESTERS });
    }
    let today = business_date(now);
    let mut query = vendor_devices::table
        .filter(vendor_devices::agency.eq(&caller.agency))
        .select(DeviceRow::as_select())
        .into_boxed();
    match filter.overdue {
        Some(true) => {
            query = query
                .filter(vendor_devices::status.ne(DeviceStatus::Retired))
                .filter(vendor_devices::attestation_due_on.lt(today))
        }
        Some(false) => {
            query = query.filter(
                vendor_devices::status.eq(DeviceStatus::Retired).or(vendor_devices::attestation_due_on.ge(today)),
            )
        }
        None => {}
    }
    if let Some(after) = &page.cursor {
        query = query.filter(vendor_devices::id.gt(after.clone()));
    }
    devices(query.order(vendor_devices::id.asc()).limit(page.limit).load(conn)?)
}

// --- the sweep --------------------------------------------------------------------------------------

/// Flags every machine in use whose attestation due date (a Taipei date) is before `now`'s and that is
/// not flagged yet: sets `overdue_flagged_at` and records `vendor_device.attestation_overdue`, in one
/// transaction. Idempotent: a second run flags nothing until an attestation sets a new due date and
/// that one passes too. Returns the machines flagged by this run.
pub fn flag_overdue(conn: &mut DbConn, now: DateTime<Utc>) -> Result<Vec<DeviceId>, VendorsError> {
    let today = business_date(now);
    conn.write_transaction(|conn| {
        let due: Vec<Device> = devices(
            vendor_devices::table
                .filter(vendor_devices::status.ne(DeviceStatus::Retired))
                .filter(vendor_devices::attestation_due_on.lt(today))
                .filter(vendor_devices::overdue_flagged_at.is_null())
                .order(vendor_devices::id.asc())
                .select(DeviceRow::as_select())
                .load(conn)?,
        )?;
        let mut flagged = Vec::with_capacity(due.len());
        for device in due {
            // Guarded by what was read: an attestation meanwhile moved the due date, and a second
            // sweep finds the flag set.
            let updated = diesel::update(
                vendor_devices::table
                    .filter(vendor_devices::id.eq(&device.id))
                    .filter(vendor_devices::overdue_flagged_at.is_null())
                    .filter(vendor_devices::attestation_due_on.eq(device.attestation_due_on))
                    .filter(vendor_devices::status.ne(DeviceStatus::Retired)),
            )
            .set(vendor_devices::overdue_flagged_at.eq(Some(to_db(now))))
            .execute(conn)?;
            if updated == 0 {
                continue;
            }
            let payload = json!({
                "device_id": device.id,
                "vendor_id": device.vendor_id,
                "contract_id": device.contract_id,
                "asset_tag": device.asset_tag,
                "serial_number": device.serial_number,
                "status": device.status,
                "attestation_due_on": device.attestation_due_on,
                "days_overdue": (today - device.attestation_due_on).num_days(),
                "last_attested_at": device.attestation.as_ref().map(|a| immilink_shared::clock::from_db(a.attested_at)),
            });
            record_system(
                conn,
                now,
                kind::VENDOR_DEVICE_ATTESTATION_OVERDUE,
                &device.agency,
                device.id.as_str(),
                payload,
            )?;
            flagged.push(device.id);
        }
        Ok(flagged)
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! What the device, incident and audit tests share: a migrated database, a fixed clock, callers,
    //! a vendor and its contracts.

    use chrono::{DateTime, TimeZone, Utc};
    use immilink_shared::auth::{roles, Caller};
    use immilink_shared::db::{Db, DbConn, DbSettings};
    use immilink_shared::testing::TestDb;
    use immilink_shared::typed::{SessionId, UserId};

    use crate::domain::contracts::{self, Contract, NewContract};
    use crate::domain::testing::caller;
    use crate::domain::vendors::{register, BusinessNumber, NewVendor, Vendor};

    pub fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap()
    }

    /// 2026-12-05 10:00 in Taipei.
    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 2, 0, 0).unwrap()
    }

    /// A vendor manager of `agency`.
    pub fn manager(agency: &str) -> Caller {
        caller(agency, &[roles::VENDOR_MANAGER])
    }

    /// Another person with a manager's role in `agency` (an account manager).
    pub fn second_manager(agency: &str) -> Caller {
        Caller { user_id: UserId::new(format!("second-{agency}")), ..caller(agency, &[roles::ACCOUNT_MANAGER]) }
    }

    /// A contractor's staff member with an account in `agency`.
    pub fn staff(agency: &str) -> Caller {
        Caller {
            user_id: UserId::new(format!("staff-{agency}")),
            session_id: SessionId::new("session-2"),
            ..caller(agency, &[roles::VENDOR_STAFF])
        }
    }

    pub fn vendor(conn: &mut DbConn, agency: &str, business_number: &str) -> Vendor {
        let new = NewVendor {
            name: format!("廠商 {business_number}"),
            business_number: BusinessNumber::parse(business_number).unwrap(),
            contact_email: None,
        };
        register(conn, now(), &manager(agency), &new).unwrap()
    }

    /// A draft contract without custom development.
    pub fn contract(conn: &mut DbConn, vendor: &Vendor, title: &str) -> Contract {
        let new = NewContract {
            vendor_id: vendor.id.clone(),
            title: title.into(),
            scope: "系統維護".into(),
            starts_on: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            ends_on: chrono::NaiveDate::from_ymd_opt(2027, 12, 31).unwrap(),
            custom_development: false,
        };
        contracts::register(conn, now(), &manager(vendor.agency.as_str()), &new).unwrap()
    }
}

#[cfg(test)]
mod transitions {
    use super::DeviceStatus::{self, *};
    use super::VendorsError;

    #[test]
    fn device_status_moves_only_as_its_transition_says() {
        for &from in DeviceStatus::ALL {
            for &to in DeviceStatus::ALL {
                let allowed = matches!((from, to), (Registered | Attested, Attested | Retired));
                match from.transition(to) {
                    Ok(moved) => assert!(allowed && moved == to, "{from} → {to}"),
                    Err(VendorsError::IllegalDeviceMove { from: f, to: t }) => {
                        assert!(!allowed, "{from} → {to}");
                        assert_eq!((f, t), (from, to));
                    }
                    Err(other) => panic!("{from} → {to}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_attestation_period_is_whole_days_within_a_year() {
        use super::AttestationPeriod;
        use chrono::NaiveDate;
        assert_eq!(AttestationPeriod::default().as_days(), 90);
        assert!(AttestationPeriod::days(0).is_err());
        assert!(AttestationPeriod::days(367).is_err());
        let day = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        assert_eq!(AttestationPeriod::days(30).unwrap().due_after(day), NaiveDate::from_ymd_opt(2027, 1, 4).unwrap());
    }
}

#[cfg(test)]
mod db_tests {
    use chrono::Duration;
    use immilink_shared::outbox::pending;
    use immilink_shared::testing::TestDb;

    use super::fixtures::{contract, db, manager, now, second_manager, staff, vendor};
    use super::*;
    use crate::domain::contracts;
    use crate::domain::testing::caller;

    fn machine(vendor_id: &VendorId, contract_id: &ContractId, asset_tag: &str, serial: &str) -> NewDevice {
        NewDevice::parse(
            vendor_id.clone(),
            contract_id.clone(),
            Some(asset_tag.into()),
            Some(serial.into()),
            Some("開發用筆記型電腦".into()),
        )
        .unwrap()
    }

    fn licensed() -> NewAttestation {
        let software = vec![
            SoftwareInput { name: Some("Windows 11 Pro".into()), licence_ref: Some("MS-VL-0012".into()) },
            SoftwareInput { name: Some("LibreOffice".into()), licence_ref: Some("MPL-2.0".into()) },
        ];
        NewAttestation::parse(Some(true), Some(software)).unwrap()
    }

    fn path(device: &Device) -> DevicePath {
        DevicePath {
            vendor_id: device.vendor_id.clone(),
            contract_id: device.contract_id.clone(),
            device_id: device.id.clone(),
        }
    }

    /// R-VEN-07: a machine serves one project. The same asset tag or serial number (as typed, in any
    /// case) on another contract, of the same vendor or another, is refused naming the contract it
    /// serves; once retired, it may be registered again.
    #[test]
    fn r_ven_07_a_second_assignment_of_a_machine_is_refused() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let other = vendor(&mut conn, "TPE-SW", "10458575");
        let (a, b) = (contract(&mut conn, &acme, "維護案 A"), contract(&mut conn, &acme, "開發案 B"));
        let c = contract(&mut conn, &other, "維運案 C");
        let tpe = manager("TPE-SW");
        let device = register(&mut conn, now(), &tpe, &machine(&acme.id, &a.id, "tpe-it-0042", "5cg1234xyz")).unwrap();
        assert_eq!((device.asset_tag.as_str(), device.serial_number.as_str()), ("TPE-IT-0042", "5CG1234XYZ"));
        assert_eq!((device.status, device.attestation.as_ref()), (DeviceStatus::Registered, None));
        assert_eq!(device.attestation_due_on, business_date(now()), "attested before it is used");

        let refusals = [
            (machine(&acme.id, &b.id, "TPE-IT-0099", " 5CG1234XYZ "), "serial_number"),
            (machine(&other.id, &c.id, "TPE-IT-0042", "OTHER-SERIAL"), "asset_tag"),
            (machine(&acme.id, &a.id, "TPE-IT-0042", "5CG1234XYZ"), "asset_tag"),
        ];
        for (new, expected_field) in refusals {
            match register(&mut conn, now(), &tpe, &new) {
                Err(VendorsError::DeviceAssigned { field, contract_id }) => {
                    assert_eq!((field, contract_id.as_ref()), (expected_field, Some(&a.id)));
                }
                other => panic!("{new:?}: {other:?}"),
            }
        }
        let devices_on_b = list_for_contract(&mut conn, &tpe, &acme.id, &b.id, &Page::first()).unwrap();
        assert!(devices_on_b.is_empty(), "nothing was written");

        // Retired, the machine may serve another project.
        retire(&mut conn, now(), &tpe, &path(&device), Some("移轉至開發案".into())).unwrap();
        let moved = register(&mut conn, now(), &tpe, &machine(&acme.id, &b.id, "TPE-IT-0042", "5CG1234XYZ")).unwrap();
        assert_eq!(moved.contract_id, b.id);
        let kinds: Vec<String> = pending(&mut conn, 100).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds.iter().filter(|k| k.starts_with("vendor_device.")).collect::<Vec<_>>(),
            [kind::VENDOR_DEVICE_REGISTERED, kind::VENDOR_DEVICE_RETIRED, kind::VENDOR_DEVICE_REGISTERED]
        );

        // No machine joins a contract that has ended.
        contracts::end(&mut conn, now(), &tpe, &other.id, &c.id, "合約期滿").unwrap();
        let ended = register(&mut conn, now(), &tpe, &machine(&other.id, &c.id, "TPE-IT-0100", "SN-100"));
        assert!(matches!(ended, Err(VendorsError::ContractEnded)), "{ended:?}");
    }

    /// R-VEN-07: only an offline machine with licensed software is attested; each refusal names the
    /// field.
    #[test]
    fn r_ven_07_an_online_machine_or_unlicensed_software_is_refused() {
        let field_of = |result: Result<NewAttestation, VendorsError>| match result {
            Err(VendorsError::AttestationRefused { field, .. }) => ("refused", field),
            Err(VendorsError::Missing { field } | VendorsError::Invalid { field, .. }) => ("bad", field),
            other => panic!("{other:?}"),
        };
        let program = |name: Option<&str>, licence: Option<&str>| SoftwareInput {
            name: name.map(str::to_owned),
            licence_ref: licence.map(str::to_owned),
        };
        let cases = [
            (Some(false), Some(vec![program(Some("Windows 11 Pro"), Some("MS-VL-0012"))]), ("refused", "offline")),
            (
                Some(true),
                Some(vec![program(Some("Windows"), Some("MS")), program(Some("WinRAR"), None)]),
                ("refused", "software[1].licence_ref"),
            ),
            (Some(true), Some(vec![program(Some("WinRAR"), Some("   "))]), ("refused", "software[0].licence_ref")),
            (Some(true), Some(vec![program(None, Some("MS"))]), ("bad", "software[0].name")),
            (None, Some(vec![]), ("bad", "offline")),
            (Some(true), None, ("bad", "software")),
        ];
        for (offline, software, (how, field)) in cases {
            assert_eq!(field_of(NewAttestation::parse(offline, software)), (how, field.to_owned()));
        }
        assert_eq!(NewAttestation::parse(Some(true), Some(vec![])).unwrap().software, []);
    }

    /// R-VEN-07: each attestation pushes the due date by the period; a due date that passes is flagged
    /// once by the sweep, with its audit event; the next attestation clears the flag. A retired machine
    /// is never flagged; one never attested is due the day it was registered.
    #[test]
    fn r_ven_07_an_overdue_attestation_is_flagged_once_by_the_sweep() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let a = contract(&mut conn, &acme, "維護案 A");
        let tpe = manager("TPE-SW");
        let period = AttestationPeriod::days(90).unwrap();
        let device = register(&mut conn, now(), &tpe, &machine(&acme.id, &a.id, "TPE-IT-1", "SN-1")).unwrap();
        let never = register(&mut conn, now(), &tpe, &machine(&acme.id, &a.id, "TPE-IT-2", "SN-2")).unwrap();
        let retired = register(&mut conn, now(), &tpe, &machine(&acme.id, &a.id, "TPE-IT-3", "SN-3")).unwrap();
        retire(&mut conn, now(), &tpe, &path(&retired), None).unwrap();

        // The vendor's staff attests.
        let attested = attest(&mut conn, now(), &staff("TPE-SW"), period, &path(&device), &licensed()).unwrap();
        let due = business_date(now()) + Duration::days(90);
        assert_eq!((attested.status, attested.attestation_due_on), (DeviceStatus::Attested, due));
        let attestation = attested.attestation.clone().unwrap();
        assert_eq!((attestation.offline, attestation.software.len()), (true, 2));
        assert_eq!(attestation.attested_by, staff("TPE-SW").user_id);

        assert!(flag_overdue(&mut conn, now()).unwrap().is_empty(), "nothing is due before today");
        // The next day the unattested machine is overdue, the attested one not.
        assert_eq!(flag_overdue(&mut conn, now() + Duration::days(1)).unwrap(), vec![never.id.clone()]);
        assert!(flag_overdue(&mut conn, now() + Duration::days(90)).unwrap().is_empty(), "due today is not overdue");
        let late = now() + Duration::days(91);
        assert_eq!(flag_overdue(&mut conn, late).unwrap(), vec![device.id.clone()]);
        assert!(flag_overdue(&mut conn, late).unwrap().is_empty(), "flagged once");
        assert!(flag_overdue(&mut conn, late + Duration::days(30)).unwrap().is_empty(), "still once");
        let overdue = DeviceFilter { overdue: Some(true) };
        let listed: Vec<DeviceId> = list_for_agency(&mut conn, late, &tpe, overdue, &Page::first())
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(listed, [device.id.clone(), never.id.clone()]);
        let others = DeviceFilter { overdue: Some(false) };
        let listed: Vec<DeviceId> =
            list_for_agency(&mut conn, late, &tpe, others, &Page::first()).unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(listed, vec![retired.id.clone()]);

        // Re-attested: a new due date, the flag cleared; it may be flagged again once that one passes.
        let again = attest(&mut conn, late, &tpe, period, &path(&device), &licensed()).unwrap();
        assert_eq!(again.attestation_due_on, business_date(late) + Duration::days(90));
        assert_eq!((again.overdue_flagged_at, again.overdue_on(business_date(late))), (None, false));
        assert!(flag_overdue(&mut conn, late + Duration::days(90)).unwrap().is_empty());
        assert_eq!(flag_overdue(&mut conn, late + Duration::days(91)).unwrap(), vec![device.id.clone()]);

        let events = pending(&mut conn, 100).unwrap();
        let overdue_events: Vec<_> =
            events.iter().filter(|e| e.kind == kind::VENDOR_DEVICE_ATTESTATION_OVERDUE).collect();
        assert_eq!(overdue_events.len(), 3);
        assert_eq!(overdue_events[1].correlation_id.as_deref(), Some(device.id.as_str()));
        assert_eq!(
            (overdue_events[1].actor_user_id.as_ref(), overdue_events[1].agency.as_deref()),
            (None, Some("TPE-SW"))
        );
        assert_eq!(overdue_events[1].payload["attestation_due_on"], json!(due));
        assert_eq!(overdue_events[1].payload["days_overdue"], 1);
        let attested_events: Vec<_> = events.iter().filter(|e| e.kind == kind::VENDOR_DEVICE_ATTESTED).collect();
        assert_eq!(attested_events.len(), 2);
        assert_eq!(attested_events[1].payload["was_overdue"], true);
        assert_eq!(attested_events[0].payload["software"][1]["licence_ref"], "MPL-2.0");
    }

    #[test]
    fn a_retired_machine_is_not_attested_and_retiring_it_again_changes_nothing() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let a = contract(&mut conn, &acme, "維護案 A");
        let tpe = manager("TPE-SW");
        let device = register(&mut conn, now(), &tpe, &machine(&acme.id, &a.id, "TPE-IT-1", "SN-1")).unwrap();
        let retired = retire(&mut conn, now(), &tpe, &path(&device), Some("報廢".into())).unwrap();
        assert_eq!((retired.status, retired.retirement_reason.as_deref()), (DeviceStatus::Retired, Some("報廢")));
        let again = retire(&mut conn, now() + Duration::hours(1), &second_manager("TPE-SW"), &path(&device), None);
        assert_eq!(again.unwrap(), retired);
        let refused = attest(&mut conn, now(), &tpe, AttestationPeriod::default(), &path(&device), &licensed());
        assert!(
            matches!(
                refused,
                Err(VendorsError::IllegalDeviceMove { from: DeviceStatus::Retired, to: DeviceStatus::Attested })
            ),
            "{refused:?}"
        );
        let retirements =
            pending(&mut conn, 100).unwrap().into_iter().filter(|e| e.kind == kind::VENDOR_DEVICE_RETIRED).count();
        assert_eq!(retirements, 1);
    }

    /// The vendor manager of agency A manages A's machines only: another agency's vendor, contract or
    /// machine is "not found", to managers and staff alike; the agency list shows its own only.
    /// Staff attest and read, but neither register nor retire; other roles do nothing.
    #[test]
    fn machines_are_managed_within_the_agency_and_by_role() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let a = contract(&mut conn, &acme, "維護案 A");
        let hln_vendor = vendor(&mut conn, "HLN-HR", "22099131");
        let h = contract(&mut conn, &hln_vendor, "花蓮案");
        let device = register(&mut conn, now(), &manager("TPE-SW"), &machine(&acme.id, &a.id, "T-1", "SN-1")).unwrap();
        let theirs =
            register(&mut conn, now(), &manager("HLN-HR"), &machine(&hln_vendor.id, &h.id, "H-1", "SN-1")).unwrap();
        assert_eq!(theirs.serial_number, device.serial_number, "the register is per agency");

        for hln in [manager("HLN-HR"), staff("HLN-HR")] {
            let new = machine(&acme.id, &a.id, "H-2", "SN-2");
            assert!(matches!(register(&mut conn, now(), &manager("HLN-HR"), &new), Err(VendorsError::NotFound(_))));
            let listed = list_for_contract(&mut conn, &hln, &acme.id, &a.id, &Page::first());
            assert!(matches!(listed, Err(VendorsError::NotFound(_))), "{listed:?}");
            let attested = attest(&mut conn, now(), &hln, AttestationPeriod::default(), &path(&device), &licensed());
            assert!(matches!(attested, Err(VendorsError::NotFound(_))), "{attested:?}");
            // Their own contract with our machine's id: not found either.
            let crossed = DevicePath {
                vendor_id: hln_vendor.id.clone(),
                contract_id: h.id.clone(),
                device_id: device.id.clone(),
            };
            let attested = attest(&mut conn, now(), &hln, AttestationPeriod::default(), &crossed, &licensed());
            assert!(matches!(attested, Err(VendorsError::NotFound("the device"))), "{attested:?}");
            let all = list_for_agency(&mut conn, now(), &hln, DeviceFilter::default(), &Page::first()).unwrap();
            assert_eq!(all.into_iter().map(|d| d.id).collect::<Vec<_>>(), vec![theirs.id.clone()]);
        }
        assert!(matches!(
            retire(&mut conn, now(), &manager("HLN-HR"), &path(&device), None),
            Err(VendorsError::NotFound(_))
        ));

        let tpe_staff = staff("TPE-SW");
        assert!(matches!(
            register(&mut conn, now(), &tpe_staff, &machine(&acme.id, &a.id, "T-9", "SN-9")),
            Err(VendorsError::RoleRequired { .. })
        ));
        assert!(matches!(
            retire(&mut conn, now(), &tpe_staff, &path(&device), None),
            Err(VendorsError::RoleRequired { .. })
        ));
        assert_eq!(list_for_contract(&mut conn, &tpe_staff, &acme.id, &a.id, &Page::first()).unwrap().len(), 1);
        let caseworker = caller("TPE-SW", &["caseworker"]);
        let refused = attest(&mut conn, now(), &caseworker, AttestationPeriod::default(), &path(&device), &licensed());
        assert!(matches!(refused, Err(VendorsError::RoleRequired { .. })), "{refused:?}");
        let refused = list_for_agency(&mut conn, now(), &caseworker, DeviceFilter::default(), &Page::first());
        assert!(matches!(refused, Err(VendorsError::RoleRequired { .. })), "{refused:?}");
        let unchanged = list_for_contract(&mut conn, &manager("TPE-SW"), &acme.id, &a.id, &Page::first()).unwrap();
        assert_eq!(unchanged, [device]);
    }

    #[test]
    fn machines_are_listed_a_page_at_a_time_in_registration_order() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let a = contract(&mut conn, &acme, "維護案 A");
        let tpe = manager("TPE-SW");
        let ids: Vec<DeviceId> = (1..=3)
            .map(|n| {
                register(&mut conn, now(), &tpe, &machine(&acme.id, &a.id, &format!("T-{n}"), &format!("SN-{n}")))
                    .unwrap()
                    .id
            })
            .collect();
        let first = list_for_contract(&mut conn, &tpe, &acme.id, &a.id, &Page::new(Some(2), None).unwrap()).unwrap();
        assert_eq!(first.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), ids[..2]);
        let rest = Page::new(Some(2), Some(first[1].id.to_string())).unwrap();
        let rest = list_for_agency(&mut conn, now(), &tpe, DeviceFilter::default(), &rest).unwrap();
        assert_eq!(rest.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), ids[2..]);
    }

    /// Registration input is refused naming the field.
    #[test]
    fn registrations_name_the_bad_field() {
        let field = |result: Result<NewDevice, VendorsError>| match result {
            Err(VendorsError::Missing { field } | VendorsError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let parse = |tag: Option<&str>, serial: Option<&str>, description: Option<&str>| {
            NewDevice::parse(
                VendorId::new("v"),
                ContractId::new("c"),
                tag.map(str::to_owned),
                serial.map(str::to_owned),
                description.map(str::to_owned),
            )
        };
        assert_eq!(field(parse(None, Some("SN"), Some("x"))), "asset_tag");
        assert_eq!(field(parse(Some("T 1"), Some("SN"), Some("x"))), "asset_tag");
        assert_eq!(field(parse(Some("T1"), Some(&"9".repeat(65)), Some("x"))), "serial_number");
        assert_eq!(field(parse(Some("T1"), Some("SN"), Some("  "))), "description");
    }
}
