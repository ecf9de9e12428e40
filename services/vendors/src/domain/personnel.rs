//! Contractor personnel (委外人員): who works for a registered vendor. Identity asks whether an applicant
//! is active personnel of any agency's vendor and refuses the application (R-ACC-08, R-VEN-08); a
//! departure ends that match at once (R-VEN-06).
//!
//! National IDs are personal data: they never appear in logs or error messages. The `Debug` forms
//! here redact them, so even a stray `?value` in a log line cannot leak one.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
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

use super::vendors::Vendor;
use super::{new_id, optional_text, record, require_manager, text, PersonId, VendorId, VendorsError};
use crate::schema::{vendor_personnel, vendors};

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
    pub job_title: Option<String>,
    pub status: PersonnelStatus,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
    /// When the person was marked departed (R-VEN-06).
    pub departed_at: Option<NaiveDateTime>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("id", &self.id)
            .field("vendor_id", &self.vendor_id)
            .field("agency", &self.agency)
            .field("national_id", &"<redacted>")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A validated addition, built at the edge.
#[derive(Clone)]
pub struct NewPerson {
    pub vendor_id: VendorId,
    pub national_id: SubjectId,
    pub name: String,
    pub job_title: Option<String>,
}

const MAX_NAME: usize = 100;
const MAX_JOB_TITLE: usize = 100;

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
    ) -> Result<Self, VendorsError> {
        let raw_id = national_id.ok_or_else(|| VendorsError::missing("national_id"))?;
        let national_id = resident_id(&raw_id)?;
        let name = text(name, "name", MAX_NAME)?;
        let job_title = optional_text(job_title, "job_title", MAX_JOB_TITLE)?;
        Ok(Self { vendor_id, national_id, name, job_title })
    }
}

impl fmt::Debug for NewPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPerson")
            .field("vendor_id", &self.vendor_id)
            .field("national_id", &"<redacted>")
            .finish_non_exhaustive()
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

/// The vendor, if it is one of the caller's agency's. Another agency's vendor is "not found" like a
/// missing one, so its existence is not revealed.
fn vendor_of(conn: &mut DbConn, caller: &Caller, vendor_id: &VendorId) -> Result<Vendor, VendorsError> {
    vendors::table
        .filter(vendors::id.eq(vendor_id))
        .filter(vendors::agency.eq(&caller.agency))
        .select(Vendor::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorsError::NotFound("the vendor"))
}

/// Adds a person to a vendor of the caller's agency. The same ID twice on one vendor is a conflict
/// (whether or not the earlier record has departed).
pub fn add(conn: &mut DbConn, now: DateTime<Utc>, caller: &Caller, new: &NewPerson) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        let vendor = vendor_of(conn, caller, &new.vendor_id)?;
        let existing: i64 = vendor_personnel::table
            .filter(vendor_personnel::vendor_id.eq(&vendor.id))
            .filter(vendor_personnel::national_id.eq(new.national_id.as_str()))
            .count()
            .get_result(conn)?;
        if existing > 0 {
            return Err(VendorsError::PersonnelExists);
        }
        let person = Person {
            id: PersonId::new(new_id()),
            vendor_id: vendor.id,
            agency: vendor.agency,
            national_id: new.national_id.as_str().to_owned(),
            name: new.name.clone(),
            job_title: new.job_title.clone(),
            status: PersonnelStatus::Active,
            created_by: caller.user_id.clone(),
            created_at: to_db(now),
            departed_at: None,
        };
        diesel::insert_into(vendor_personnel::table)
            .values((
                vendor_personnel::id.eq(&person.id),
                vendor_personnel::vendor_id.eq(&person.vendor_id),
                vendor_personnel::agency.eq(&person.agency),
                vendor_personnel::national_id.eq(&person.national_id),
                vendor_personnel::name.eq(&person.name),
                vendor_personnel::job_title.eq(&person.job_title),
                vendor_personnel::status.eq(person.status),
                vendor_personnel::created_by.eq(&person.created_by),
                vendor_personnel::created_at.eq(person.created_at),
                vendor_personnel::departed_at.eq(person.departed_at),
            ))
            .execute(conn)
            .map_err(|err| match DbError::Query(err) {
                // A concurrent addition of the same person lost the race: same answer as above.
                e if e.is_unique_violation() => VendorsError::PersonnelExists,
                e => VendorsError::Db(e),
            })?;
        // The national ID stays out of the event: the person's id finds it in this service.
        let payload = json!({
            "vendor_id": person.vendor_id,
            "person_id": person.id,
            "name": person.name,
            "job_title": person.job_title,
            "status": person.status,
        });
        record(conn, now, kind::VENDOR_PERSONNEL_ADDED, caller, person.id.as_str(), payload)?;
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
    vendor_of(conn, caller, vendor_id)?;
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

/// Marks a person departed (R-VEN-06): from `now` on they no longer match the lookup. Marking a
/// departed person again changes nothing and answers the record as it is.
pub fn mark_departed(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    vendor_id: &VendorId,
    person_id: &PersonId,
) -> Result<Person, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| {
        vendor_of(conn, caller, vendor_id)?;
        let person = person_of(conn, vendor_id, person_id)?;
        if person.status == PersonnelStatus::Departed {
            return Ok(person);
        }
        let to = person.status.transition(PersonnelStatus::Departed)?;
        // Guarded by the status it was read in: a concurrent departure cannot overwrite the first
        // departure time.
        let departed = diesel::update(
            vendor_personnel::table
                .filter(vendor_personnel::id.eq(person_id))
                .filter(vendor_personnel::vendor_id.eq(vendor_id))
                .filter(vendor_personnel::status.eq(person.status)),
        )
        .set((vendor_personnel::status.eq(to), vendor_personnel::departed_at.eq(Some(to_db(now)))))
        .execute(conn)?;
        if departed > 0 {
            let payload = json!({
                "vendor_id": vendor_id,
                "person_id": person_id,
                "name": person.name,
                "from": person.status,
                "status": to,
            });
            record(conn, now, kind::VENDOR_PERSONNEL_DEPARTED, caller, person_id.as_str(), payload)?;
            tracing::info!(vendor_id = %vendor_id, person_id = %person_id, "vendor personnel departed");
        }
        person_of(conn, vendor_id, person_id)
    })
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
        .inner_join(vendors::table)
        .filter(vendor_personnel::national_id.eq(id.as_str()))
        .filter(vendor_personnel::status.eq(PersonnelStatus::Active))
        .order((vendors::agency.asc(), vendors::name.asc(), vendors::id.asc()))
        .select((vendors::id, vendors::agency, vendors::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(vendor_id, agency, vendor_name)| PersonnelVendor { vendor_id, agency, vendor_name })
        .collect())
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
    use crate::domain::vendors::{register, BusinessNumber, NewVendor};

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
        let vendors: i64 = vendors::table.count().get_result(&mut conn).unwrap();
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
