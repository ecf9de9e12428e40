//! Contracts per vendor: scope, period (Asia/Taipei business dates) and whether custom system
//! development is involved. A contract is drafted, becomes active and ends
//! ([`ContractStatus::transition`]); one with custom development cannot become active without a
//! security test certificate on file (R-VEN-02, checked by [`activate`] and backed by a database
//! CHECK). Its end offboards every active person on it in the same transaction (R-VEN-06): each is
//! marked departed and identity is told to disable their accounts (`identity_messages`).
//!
//! Only the vendor manager (or account manager) of the vendor's agency sees or changes a contract;
//! another agency's vendor or contract answers "not found", as a missing one does.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, UserId};
use serde_json::json;

use super::identity_messages::MessageReason;
use super::personnel::{self, Person, PersonnelStatus};
use super::{new_id, record, require_manager, text, vendors, ContractId, PersonId, VendorId, VendorsError};
use crate::schema::{vendor_contracts, vendor_personnel};

text_enum! {
    /// Where a contract stands. Drafted; active once it may start (R-VEN-02); ended for good.
    pub enum ContractStatus {
        Draft = "draft",
        Active = "active",
        Ended = "ended",
    }
}

impl ContractStatus {
    /// The one place a contract's moves are judged: draft → active, active → ended, and draft →
    /// ended (a contract that never started). Nothing leaves `ended`.
    pub fn transition(self, to: ContractStatus) -> Result<ContractStatus, VendorsError> {
        use ContractStatus::*;
        match (self, to) {
            (Draft, Active) | (Active, Ended) | (Draft, Ended) => Ok(to),
            (from, to) => Err(VendorsError::ContractMove { from, to }),
        }
    }
}

/// A vendor's contract with the agency.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = vendor_contracts)]
pub struct Contract {
    pub id: ContractId,
    pub vendor_id: VendorId,
    /// The agency the vendor is registered with.
    pub agency: AgencyCode,
    pub title: String,
    pub scope: String,
    /// The period, Asia/Taipei business dates, both included.
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// Custom system development is involved: R-VEN-02 applies.
    pub custom_development: bool,
    pub status: ContractStatus,
    pub certificate_reference: Option<String>,
    pub certificate_issuer: Option<String>,
    pub certificate_issued_on: Option<NaiveDate>,
    pub certificate_filed_by: Option<UserId>,
    pub certificate_filed_at: Option<NaiveDateTime>,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
    pub activated_by: Option<UserId>,
    pub activated_at: Option<NaiveDateTime>,
    pub ended_by: Option<UserId>,
    pub ended_at: Option<NaiveDateTime>,
    pub end_reason: Option<String>,
}

/// A security test certificate on file (R-VEN-02).
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityCertificate {
    pub reference: String,
    pub issuer: String,
    pub issued_on: NaiveDate,
    pub filed_by: UserId,
    pub filed_at: NaiveDateTime,
}

impl Contract {
    /// The certificate on file, if any.
    pub fn certificate(&self) -> Option<SecurityCertificate> {
        match (
            &self.certificate_reference,
            &self.certificate_issuer,
            self.certificate_issued_on,
            &self.certificate_filed_by,
            self.certificate_filed_at,
        ) {
            (Some(reference), Some(issuer), Some(issued_on), Some(filed_by), Some(filed_at)) => {
                Some(SecurityCertificate {
                    reference: reference.clone(),
                    issuer: issuer.clone(),
                    issued_on,
                    filed_by: filed_by.clone(),
                    filed_at,
                })
            }
            _ => None,
        }
    }

    /// R-VEN-02: may this contract become active as far as its certificate goes?
    pub fn certificate_allows_activation(&self) -> Result<(), VendorsError> {
        if self.custom_development && self.certificate().is_none() {
            Err(VendorsError::CertificateRequired)
        } else {
            Ok(())
        }
    }
}

const MAX_TITLE: usize = 200;
const MAX_SCOPE: usize = 2000;
const MAX_REFERENCE: usize = 100;
const MAX_ISSUER: usize = 200;
const MAX_REASON: usize = 1000;

/// A validated new contract.
#[derive(Debug, Clone)]
pub struct NewContract {
    pub vendor_id: VendorId,
    pub title: String,
    pub scope: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub custom_development: bool,
}

impl NewContract {
    /// The contract from what the caller sent; each refusal names its field.
    pub fn parse(
        vendor_id: VendorId,
        title: Option<String>,
        scope: Option<String>,
        starts_on: Option<NaiveDate>,
        ends_on: Option<NaiveDate>,
        custom_development: Option<bool>,
    ) -> Result<Self, VendorsError> {
        let title = text(title, "title", MAX_TITLE)?;
        let scope = text(scope, "scope", MAX_SCOPE)?;
        let starts_on = starts_on.ok_or_else(|| VendorsError::missing("starts_on"))?;
        let ends_on = ends_on.ok_or_else(|| VendorsError::missing("ends_on"))?;
        if ends_on < starts_on {
            return Err(VendorsError::invalid("ends_on", "must not be before starts_on"));
        }
        let custom_development = custom_development.ok_or_else(|| VendorsError::missing("custom_development"))?;
        Ok(Self { vendor_id, title, scope, starts_on, ends_on, custom_development })
    }
}

/// A validated certificate to file.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub reference: String,
    pub issuer: String,
    pub issued_on: NaiveDate,
}

impl NewCertificate {
    pub fn parse(
        reference: Option<String>,
        issuer: Option<String>,
        issued_on: Option<NaiveDate>,
    ) -> Result<Self, VendorsError> {
        Ok(Self {
            reference: text(reference, "reference", MAX_REFERENCE)?,
            issuer: text(issuer, "issuer", MAX_ISSUER)?,
            issued_on: issued_on.ok_or_else(|| VendorsError::missing("issued_on"))?,
        })
    }
}

/// The reason a contract ends, required.
pub fn end_reason(reason: Option<String>) -> Result<String, VendorsError> {
    text(reason, "reason", MAX_REASON)
}

/// A date a person or document states, which cannot lie after today in Taipei.
pub(crate) fn not_after_today(date: NaiveDate, now: DateTime<Utc>, field: &str) -> Result<NaiveDate, VendorsError> {
    if date > business_date(now) {
        Err(VendorsError::invalid(field, "must not be after today (Asia/Taipei)"))
    } else {
        Ok(date)
    }
}

/// The contract, if it is one of this vendor's and the vendor is the caller's agency's. Anything else
/// is "not found", so another agency's contract is not revealed. For use inside a transaction.
pub fn of_vendor(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
) -> Result<Contract, VendorsError> {
    vendors::of_caller(conn, caller, vendor_id)?;
    vendor_contracts::table
        .filter(vendor_contracts::id.eq(contract_id))
        .filter(vendor_contracts::vendor_id.eq(vendor_id))
        .select(Contract::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorsError::NotFound("the contract"))
}

/// Registers a draft contract of a vendor of the caller's agency, with its audit event.
pub fn register(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewContract,
) -> Result<Contract, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let vendor = vendors::of_caller(conn, caller, &new.vendor_id)?;
        let id = ContractId::new(new_id());
        diesel::insert_into(vendor_contracts::table)
            .values((
                vendor_contracts::id.eq(&id),
                vendor_contracts::vendor_id.eq(&vendor.id),
                vendor_contracts::agency.eq(&vendor.agency),
                vendor_contracts::title.eq(&new.title),
                vendor_contracts::scope.eq(&new.scope),
                vendor_contracts::starts_on.eq(new.starts_on),
                vendor_contracts::ends_on.eq(new.ends_on),
                vendor_contracts::custom_development.eq(new.custom_development),
                vendor_contracts::status.eq(ContractStatus::Draft),
                vendor_contracts::created_by.eq(&caller.user_id),
                vendor_contracts::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        let payload = json!({
            "vendor_id": vendor.id,
            "contract_id": id,
            "title": new.title,
            "starts_on": new.starts_on,
            "ends_on": new.ends_on,
            "custom_development": new.custom_development,
            "status": ContractStatus::Draft,
        });
        record(conn, now, kind::VENDOR_CONTRACT_REGISTERED, caller, id.as_str(), payload)?;
        of_vendor(conn, caller, &vendor.id, &id)
    })
}

/// A vendor's contracts in the order they were registered, one page at a time (the cursor is the last
/// contract's id).
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    page: &Page,
) -> Result<Vec<Contract>, VendorsError> {
    require_manager(caller)?;
    vendors::of_caller(conn, caller, vendor_id)?;
    let mut query = vendor_contracts::table.filter(vendor_contracts::vendor_id.eq(vendor_id.clone())).into_boxed();
    if let Some(after) = &page.cursor {
        let known: i64 = vendor_contracts::table
            .filter(vendor_contracts::id.eq(after))
            .filter(vendor_contracts::vendor_id.eq(vendor_id))
            .count()
            .get_result(conn)?;
        if known == 0 {
            return Err(VendorsError::invalid("before", "not a contract of this list"));
        }
        query = query.filter(vendor_contracts::id.gt(after.clone()));
    }
    Ok(query.order(vendor_contracts::id.asc()).limit(page.limit).select(Contract::as_select()).load(conn)?)
}

/// One contract of a vendor of the caller's agency.
pub fn get(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
) -> Result<Contract, VendorsError> {
    require_manager(caller)?;
    of_vendor(conn, caller, vendor_id, contract_id)
}

/// Files the contract's security test certificate (R-VEN-02), replacing one filed earlier (a renewed
/// certificate). Not on an ended contract; the issue date cannot lie in the future.
pub fn file_certificate(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
    certificate: &NewCertificate,
) -> Result<Contract, VendorsError> {
    require_manager(caller)?;
    not_after_today(certificate.issued_on, now, "issued_on")?;
    conn.write_transaction(|conn| {
        let contract = of_vendor(conn, caller, vendor_id, contract_id)?;
        if contract.status == ContractStatus::Ended {
            return Err(VendorsError::ContractEnded);
        }
        let filed = diesel::update(
            vendor_contracts::table
                .filter(vendor_contracts::id.eq(contract_id))
                .filter(vendor_contracts::status.ne(ContractStatus::Ended)),
        )
        .set((
            vendor_contracts::certificate_reference.eq(Some(&certificate.reference)),
            vendor_contracts::certificate_issuer.eq(Some(&certificate.issuer)),
            vendor_contracts::certificate_issued_on.eq(Some(certificate.issued_on)),
            vendor_contracts::certificate_filed_by.eq(Some(&caller.user_id)),
            vendor_contracts::certificate_filed_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
        if filed == 0 {
            // Ended by a concurrent request since it was read.
            return Err(VendorsError::ContractEnded);
        }
        let payload = json!({
            "vendor_id": vendor_id,
            "contract_id": contract_id,
            "reference": certificate.reference,
            "issuer": certificate.issuer,
            "issued_on": certificate.issued_on,
            "replaced": contract.certificate_reference,
        });
        record(conn, now, kind::VENDOR_CONTRACT_CERTIFICATE_FILED, caller, contract_id.as_str(), payload)?;
        of_vendor(conn, caller, vendor_id, contract_id)
    })
}

/// Makes a draft contract active. Refused while custom development has no security test certificate
/// on file (R-VEN-02).
pub fn activate(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
) -> Result<Contract, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let contract = of_vendor(conn, caller, vendor_id, contract_id)?;
        let to = contract.status.transition(ContractStatus::Active)?;
        contract.certificate_allows_activation()?;
        let moved = diesel::update(
            vendor_contracts::table
                .filter(vendor_contracts::id.eq(contract_id))
                .filter(vendor_contracts::status.eq(contract.status)),
        )
        .set((
            vendor_contracts::status.eq(to),
            vendor_contracts::activated_by.eq(Some(&caller.user_id)),
            vendor_contracts::activated_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
        if moved == 0 {
            return Err(moved_meanwhile(conn, caller, vendor_id, contract_id, to));
        }
        let payload = json!({
            "vendor_id": vendor_id,
            "contract_id": contract_id,
            "from": contract.status,
            "status": to,
            "custom_development": contract.custom_development,
            "certificate_reference": contract.certificate_reference,
        });
        record(conn, now, kind::VENDOR_CONTRACT_ACTIVATED, caller, contract_id.as_str(), payload)?;
        of_vendor(conn, caller, vendor_id, contract_id)
    })
}

/// A contract that has ended, and who was offboarded with it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedContract {
    pub contract: Contract,
    /// The persons who were active on the contract: each marked departed, and identity told to
    /// disable their accounts (R-VEN-06).
    pub offboarded: Vec<PersonId>,
}

/// Ends a contract (a draft or an active one) and, in the same transaction, offboards every active
/// person on it (R-VEN-06): each departs with reason `contract_end`, with its audit event and one
/// `offboarded` message to identity.
pub fn end(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
    reason: &str,
) -> Result<EndedContract, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let contract = of_vendor(conn, caller, vendor_id, contract_id)?;
        let to = contract.status.transition(ContractStatus::Ended)?;
        let moved = diesel::update(
            vendor_contracts::table
                .filter(vendor_contracts::id.eq(contract_id))
                .filter(vendor_contracts::status.eq(contract.status)),
        )
        .set((
            vendor_contracts::status.eq(to),
            vendor_contracts::ended_by.eq(Some(&caller.user_id)),
            vendor_contracts::ended_at.eq(Some(to_db(now))),
            vendor_contracts::end_reason.eq(Some(reason)),
        ))
        .execute(conn)?;
        if moved == 0 {
            return Err(moved_meanwhile(conn, caller, vendor_id, contract_id, to));
        }
        let active: Vec<Person> = vendor_personnel::table
            .filter(vendor_personnel::contract_id.eq(contract_id))
            .filter(vendor_personnel::status.eq(PersonnelStatus::Active))
            .order(vendor_personnel::id.asc())
            .select(Person::as_select())
            .load(conn)?;
        let mut offboarded = Vec::with_capacity(active.len());
        for person in &active {
            if personnel::depart(conn, now, caller, person, MessageReason::ContractEnd)?.is_some() {
                offboarded.push(person.id.clone());
            }
        }
        let payload = json!({
            "vendor_id": vendor_id,
            "contract_id": contract_id,
            "from": contract.status,
            "status": to,
            "reason": reason,
            "offboarded": offboarded,
        });
        record(conn, now, kind::VENDOR_CONTRACT_ENDED, caller, contract_id.as_str(), payload)?;
        tracing::info!(%vendor_id, %contract_id, offboarded = offboarded.len(), "vendor contract ended");
        Ok(EndedContract { contract: of_vendor(conn, caller, vendor_id, contract_id)?, offboarded })
    })
}

/// A guarded status update matched nothing: a concurrent request moved the contract first. Answers
/// the move from where it stands now.
fn moved_meanwhile(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    contract_id: &ContractId,
    to: ContractStatus,
) -> VendorsError {
    match of_vendor(conn, caller, vendor_id, contract_id) {
        Ok(current) => VendorsError::ContractMove { from: current.status, to },
        Err(err) => err,
    }
}

/// The contract a person is to be added to: this vendor's, and not ended. Any other id (a missing
/// contract, another vendor's or agency's) is refused alike, naming the field, so nothing is revealed.
pub(crate) fn open_for_personnel(
    conn: &mut DbConn,
    vendor_id: &VendorId,
    contract_id: &ContractId,
) -> Result<Contract, VendorsError> {
    let contract = vendor_contracts::table
        .filter(vendor_contracts::id.eq(contract_id))
        .filter(vendor_contracts::vendor_id.eq(vendor_id))
        .select(Contract::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| VendorsError::invalid("contract_id", "not a contract of this vendor"))?;
    if contract.status == ContractStatus::Ended {
        return Err(VendorsError::ContractEnded);
    }
    Ok(contract)
}

#[cfg(test)]
mod transitions {
    use super::ContractStatus::{self, *};
    use super::VendorsError;

    #[test]
    fn contract_status_moves_only_forward_and_never_leaves_ended() {
        for &from in ContractStatus::ALL {
            for &to in ContractStatus::ALL {
                let allowed = matches!((from, to), (Draft, Active) | (Active, Ended) | (Draft, Ended));
                match from.transition(to) {
                    Ok(moved) => {
                        assert!(allowed, "{from} → {to}");
                        assert_eq!(moved, to);
                    }
                    Err(VendorsError::ContractMove { from: f, to: t }) => {
                        assert!(!allowed, "{from} → {to}");
                        assert_eq!((f, t), (from, to));
                    }
                    Err(other) => panic!("{from} → {to}: {other:?}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod db_tests {
    use chrono::{Duration, TimeZone};
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::ids::SubjectId;
    use immilink_shared::outbox::pending;
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::identity_messages::{MessageKind, StoredMessage};
    use crate::domain::personnel::{add, mark_departed, NewPerson};
    use crate::domain::testing::caller;
    use crate::domain::vendors::{register as register_vendor, BusinessNumber, NewVendor, Vendor};
    use crate::schema::identity_messages;

    fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap()
    }

    /// 2026-12-07 10:00 in Taipei.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn manager(agency: &str) -> Caller {
        caller(agency, &["vendor_manager"])
    }

    fn vendor(conn: &mut DbConn, agency: &str) -> Vendor {
        let new = NewVendor {
            name: "臺灣資訊服務股份有限公司".into(),
            business_number: BusinessNumber::parse("22099131").unwrap(),
            contact_email: None,
        };
        register_vendor(conn, now(), &manager(agency), &new).unwrap()
    }

    fn new_contract(vendor: &Vendor, custom_development: bool) -> NewContract {
        NewContract::parse(
            vendor.id.clone(),
            Some("外來人口資料查詢系統維護案".into()),
            Some("系統維運".into()),
            Some(date(2027, 1, 1)),
            Some(date(2027, 12, 31)),
            Some(custom_development),
        )
        .unwrap()
    }

    fn certificate(issued_on: NaiveDate) -> NewCertificate {
        NewCertificate::parse(Some("STC-2026-0412".into()), Some("資安檢測實驗室".into()), Some(issued_on)).unwrap()
    }

    fn person_on(vendor: &Vendor, contract: Option<&ContractId>, id: &str) -> NewPerson {
        NewPerson {
            vendor_id: vendor.id.clone(),
            national_id: SubjectId::parse_resident(id).unwrap(),
            name: "王小明".into(),
            job_title: Some("系統工程師".into()),
            contract_id: contract.cloned(),
        }
    }

    fn messages(conn: &mut DbConn) -> Vec<StoredMessage> {
        identity_messages::table
            .order(identity_messages::id.asc())
            .select(StoredMessage::as_select())
            .load(conn)
            .unwrap()
    }

    #[test]
    fn contracts_name_the_bad_field() {
        let vendor_id = VendorId::new("v");
        let field = |result: Result<NewContract, VendorsError>| match result {
            Err(VendorsError::Missing { field } | VendorsError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let (starts, ends) = (Some(date(2027, 1, 1)), Some(date(2027, 12, 31)));
        let parse = |title: Option<&str>, scope: Option<&str>, starts, ends, custom| {
            NewContract::parse(vendor_id.clone(), title.map(Into::into), scope.map(Into::into), starts, ends, custom)
        };
        assert_eq!(field(parse(Some(" "), Some("s"), starts, ends, Some(true))), "title");
        assert_eq!(field(parse(Some("t"), None, starts, ends, Some(true))), "scope");
        assert_eq!(field(parse(Some("t"), Some("s"), None, ends, Some(true))), "starts_on");
        assert_eq!(field(parse(Some("t"), Some("s"), starts, None, Some(true))), "ends_on");
        assert_eq!(field(parse(Some("t"), Some("s"), ends, starts, Some(true))), "ends_on");
        assert_eq!(field(parse(Some("t"), Some("s"), starts, ends, None)), "custom_development");
        // A one-day contract is a period too.
        assert!(parse(Some("t"), Some("s"), starts, starts, Some(false)).is_ok());
        assert_eq!(
            field(NewCertificate::parse(None, Some("i".into()), Some(date(2026, 1, 1))).map(|_| unreachable!())),
            "reference"
        );
        assert_eq!(field(end_reason(Some("  ".into())).map(|_| unreachable!())), "reason");
    }

    /// R-VEN-02: a contract with custom system development stays a draft until a security test
    /// certificate is on file; one without custom development needs none. The database refuses an
    /// active custom-development contract without a certificate too.
    #[test]
    fn r_ven_02_custom_development_cannot_become_active_without_a_security_test_certificate() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW");
        let custom = register(&mut conn, now(), &tpe, &new_contract(&acme, true)).unwrap();
        assert_eq!((custom.status, custom.certificate()), (ContractStatus::Draft, None));

        let refused = activate(&mut conn, now(), &tpe, &acme.id, &custom.id);
        assert!(matches!(refused, Err(VendorsError::CertificateRequired)), "{refused:?}");
        assert_eq!(get(&mut conn, &tpe, &acme.id, &custom.id).unwrap().status, ContractStatus::Draft);

        // A certificate dated tomorrow (Taipei) is not a certificate on file.
        let tomorrow = business_date(now()) + Duration::days(1);
        let future = file_certificate(&mut conn, now(), &tpe, &acme.id, &custom.id, &certificate(tomorrow));
        assert!(matches!(&future, Err(VendorsError::Invalid { field, .. }) if field == "issued_on"), "{future:?}");
        assert!(matches!(
            activate(&mut conn, now(), &tpe, &acme.id, &custom.id),
            Err(VendorsError::CertificateRequired)
        ));

        let filed =
            file_certificate(&mut conn, now(), &tpe, &acme.id, &custom.id, &certificate(date(2026, 11, 30))).unwrap();
        let on_file = filed.certificate().unwrap();
        assert_eq!((on_file.reference.as_str(), on_file.issued_on), ("STC-2026-0412", date(2026, 11, 30)));
        assert_eq!(on_file.filed_by, tpe.user_id);
        let active = activate(&mut conn, now(), &tpe, &acme.id, &custom.id).unwrap();
        assert_eq!((active.status, active.activated_at), (ContractStatus::Active, Some(to_db(now()))));
        // Once active, activating again is not a move.
        let again = activate(&mut conn, now(), &tpe, &acme.id, &custom.id);
        assert!(matches!(again, Err(VendorsError::ContractMove { from: ContractStatus::Active, .. })), "{again:?}");

        // No custom development: no certificate needed.
        let plain = register(&mut conn, now(), &tpe, &new_contract(&acme, false)).unwrap();
        assert_eq!(activate(&mut conn, now(), &tpe, &acme.id, &plain.id).unwrap().status, ContractStatus::Active);

        // The database backs the rule: a custom-development contract cannot be made active without one.
        let bare = register(&mut conn, now(), &tpe, &new_contract(&acme, true)).unwrap();
        let forced = diesel::update(vendor_contracts::table.filter(vendor_contracts::id.eq(&bare.id)))
            .set((
                vendor_contracts::status.eq(ContractStatus::Active),
                vendor_contracts::activated_by.eq(Some(&tpe.user_id)),
                vendor_contracts::activated_at.eq(Some(to_db(now()))),
            ))
            .execute(&mut conn);
        assert!(forced.is_err(), "the CHECK refuses it");

        let kinds: Vec<String> = pending(&mut conn, 50).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                kind::VENDOR_REGISTERED,
                kind::VENDOR_CONTRACT_REGISTERED,
                kind::VENDOR_CONTRACT_CERTIFICATE_FILED,
                kind::VENDOR_CONTRACT_ACTIVATED,
                kind::VENDOR_CONTRACT_REGISTERED,
                kind::VENDOR_CONTRACT_ACTIVATED,
                kind::VENDOR_CONTRACT_REGISTERED,
            ],
            "every change, and only the changes, is an audit event"
        );
    }

    /// R-VEN-06: the end of a contract offboards every person active on it, in its transaction: each
    /// departs and identity gets exactly one `offboarded` message (reason contract_end) for each.
    /// Personnel of other contracts, or of none, and persons who had already departed are untouched.
    #[test]
    fn r_ven_06_a_contract_end_offboards_every_active_person_on_it_exactly_once() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW");
        let ending = register(&mut conn, now(), &tpe, &new_contract(&acme, false)).unwrap();
        activate(&mut conn, now(), &tpe, &acme.id, &ending.id).unwrap();
        let other = register(&mut conn, now(), &tpe, &new_contract(&acme, false)).unwrap();
        let wang = add(&mut conn, now(), &tpe, &person_on(&acme, Some(&ending.id), "A123456789")).unwrap();
        let chen = add(&mut conn, now(), &tpe, &person_on(&acme, Some(&ending.id), "B200000004")).unwrap();
        let gone = add(&mut conn, now(), &tpe, &person_on(&acme, Some(&ending.id), "A800000014")).unwrap();
        mark_departed(&mut conn, now(), &tpe, &acme.id, &gone.id).unwrap();
        let elsewhere = add(&mut conn, now(), &tpe, &person_on(&acme, Some(&other.id), "F131104093")).unwrap();
        let unassigned = add(&mut conn, now(), &tpe, &person_on(&acme, None, "K222222226")).unwrap();
        let before = messages(&mut conn).len();

        let later = now() + Duration::hours(1);
        let ended = end(&mut conn, later, &tpe, &acme.id, &ending.id, "契約期滿").unwrap();
        assert_eq!(ended.contract.status, ContractStatus::Ended);
        assert_eq!(ended.contract.end_reason.as_deref(), Some("契約期滿"));
        let mut expected = vec![wang.id.clone(), chen.id.clone()];
        expected.sort();
        assert_eq!(ended.offboarded, expected);

        let sent: Vec<StoredMessage> = messages(&mut conn).split_off(before);
        let mut offboarded: Vec<PersonId> = sent.iter().map(|m| m.person_id.clone()).collect();
        offboarded.sort();
        assert_eq!(offboarded, expected, "exactly one message per active person on the contract");
        for message in &sent {
            assert_eq!((message.kind, message.reason), (MessageKind::Offboarded, MessageReason::ContractEnd));
            assert_eq!((message.agency.as_str(), &message.vendor_id), ("TPE-SW", &acme.id));
        }
        let status = |conn: &mut DbConn, id: &PersonId| -> PersonnelStatus {
            vendor_personnel::table
                .filter(vendor_personnel::id.eq(id))
                .select(vendor_personnel::status)
                .first(conn)
                .unwrap()
        };
        assert_eq!(status(&mut conn, &wang.id), PersonnelStatus::Departed);
        assert_eq!(status(&mut conn, &chen.id), PersonnelStatus::Departed);
        assert_eq!(status(&mut conn, &elsewhere.id), PersonnelStatus::Active);
        assert_eq!(status(&mut conn, &unassigned.id), PersonnelStatus::Active);

        // The audit trail: each departure (reason contract_end), then the contract's end naming them.
        let events = pending(&mut conn, 100).unwrap();
        let departures: Vec<_> = events
            .iter()
            .filter(|e| e.kind == kind::VENDOR_PERSONNEL_DEPARTED && e.payload["reason"] == "contract_end")
            .collect();
        assert_eq!(departures.len(), 2);
        let last = events.last().unwrap();
        assert_eq!(last.kind, kind::VENDOR_CONTRACT_ENDED);
        assert_eq!(last.payload["offboarded"].as_array().map(Vec::len), Some(2));
        assert!(!serde_json::to_string(&events).unwrap().contains("A123456789"), "no national ID");

        // Ended is final: nothing more moves it, and nothing is added to or filed on it.
        let again = end(&mut conn, later, &tpe, &acme.id, &ending.id, "again");
        assert!(matches!(again, Err(VendorsError::ContractMove { from: ContractStatus::Ended, .. })), "{again:?}");
        let late = add(&mut conn, later, &tpe, &person_on(&acme, Some(&ending.id), "A234567893"));
        assert!(matches!(late, Err(VendorsError::ContractEnded)), "{late:?}");
        let filed = file_certificate(&mut conn, later, &tpe, &acme.id, &ending.id, &certificate(date(2026, 11, 30)));
        assert!(matches!(filed, Err(VendorsError::ContractEnded)), "{filed:?}");
        assert_eq!(messages(&mut conn).len(), before + 2, "nothing more was sent");

        // A draft that never started may end too (with nobody to offboard).
        let unused = end(&mut conn, later, &tpe, &acme.id, &other.id, "未履約").unwrap();
        assert_eq!(unused.offboarded, std::slice::from_ref(&elsewhere.id));
    }

    /// The end, its departures and its messages are one transaction: when an audit event cannot be
    /// written, the contract stays active, its personnel stay active and identity is told nothing.
    #[test]
    fn r_ven_06_a_contract_end_that_fails_changes_nothing_and_tells_no_one() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW");
        let contract = register(&mut conn, now(), &tpe, &new_contract(&acme, false)).unwrap();
        activate(&mut conn, now(), &tpe, &acme.id, &contract.id).unwrap();
        let wang = add(&mut conn, now(), &tpe, &person_on(&acme, Some(&contract.id), "A123456789")).unwrap();
        let before = messages(&mut conn);
        diesel::sql_query("DROP TABLE outbox").execute(&mut conn).unwrap();
        assert!(end(&mut conn, now(), &tpe, &acme.id, &contract.id, "契約終止").is_err());
        assert_eq!(messages(&mut conn), before, "no message without the change");
        let status: PersonnelStatus = vendor_personnel::table
            .filter(vendor_personnel::id.eq(&wang.id))
            .select(vendor_personnel::status)
            .first(&mut conn)
            .unwrap();
        assert_eq!(status, PersonnelStatus::Active);
        let contract_status: ContractStatus = vendor_contracts::table
            .filter(vendor_contracts::id.eq(&contract.id))
            .select(vendor_contracts::status)
            .first(&mut conn)
            .unwrap();
        assert_eq!(contract_status, ContractStatus::Active);
    }

    /// Part 7: the vendor manager of agency A manages A's vendors' contracts only; another agency's
    /// vendor or contract is "not found" (not revealed), and a contract id under the wrong vendor too.
    #[test]
    fn contracts_are_managed_only_within_the_callers_agency() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let (tpe, hln) = (manager("TPE-SW"), manager("HLN-HR"));
        let acme = vendor(&mut conn, "TPE-SW");
        let contract = register(&mut conn, now(), &tpe, &new_contract(&acme, true)).unwrap();
        let not_found = |result: Result<Contract, VendorsError>| matches!(result, Err(VendorsError::NotFound(_)));
        assert!(not_found(register(&mut conn, now(), &hln, &new_contract(&acme, true))));
        assert!(matches!(list(&mut conn, &hln, &acme.id, &Page::first()), Err(VendorsError::NotFound(_))));
        assert!(not_found(get(&mut conn, &hln, &acme.id, &contract.id)));
        assert!(not_found(file_certificate(
            &mut conn,
            now(),
            &hln,
            &acme.id,
            &contract.id,
            &certificate(date(2026, 11, 30))
        )));
        assert!(not_found(activate(&mut conn, now(), &hln, &acme.id, &contract.id)));
        assert!(matches!(end(&mut conn, now(), &hln, &acme.id, &contract.id, "x"), Err(VendorsError::NotFound(_))));
        // HLN's own vendor does not reach TPE's contract either.
        let hln_vendor = vendor(&mut conn, "HLN-HR");
        assert!(not_found(get(&mut conn, &hln, &hln_vendor.id, &contract.id)));
        // A caseworker manages no contracts.
        let caseworker = caller("TPE-SW", &["caseworker"]);
        assert!(matches!(get(&mut conn, &caseworker, &acme.id, &contract.id), Err(VendorsError::RoleRequired { .. })));
        // Nothing changed.
        assert_eq!(get(&mut conn, &tpe, &acme.id, &contract.id).unwrap(), contract);
    }

    #[test]
    fn contracts_are_listed_a_page_at_a_time_in_the_order_registered() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let tpe = manager("TPE-SW");
        let acme = vendor(&mut conn, "TPE-SW");
        let ids: Vec<ContractId> =
            (0..3).map(|_| register(&mut conn, now(), &tpe, &new_contract(&acme, false)).unwrap().id).collect();
        let first = list(&mut conn, &tpe, &acme.id, &Page::new(Some(2), None).unwrap()).unwrap();
        assert_eq!(first.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[..2]);
        let rest =
            list(&mut conn, &tpe, &acme.id, &Page::new(Some(2), Some(first[1].id.to_string())).unwrap()).unwrap();
        assert_eq!(rest.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[2..]);
        let unknown = list(&mut conn, &tpe, &acme.id, &Page::new(None, Some("no-such-contract".into())).unwrap());
        assert!(matches!(unknown, Err(VendorsError::Invalid { field, .. }) if field == "before"));
    }
}
