//! Contractor personnel (委外人員): who works for a registered vendor. Identity asks whether an applicant
//! is active personnel of any agency's vendor and refuses the application (R-ACC-08, R-VEN-08); a
//! departure ends that match at once (R-VEN-06).
//!
//! National IDs are personal data: they never appear in logs or error messages. The `Debug` forms
//! here redact them, so even a stray `?value` in a log line cannot leak one.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::ids::SubjectId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Vendor, VendorError};
use crate::schema::{vendor_personnel, vendors};

/// Whether a person still works for the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonnelStatus {
    Active,
    Departed,
}

impl PersonnelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonnelStatus::Active => "active",
            PersonnelStatus::Departed => "departed",
        }
    }
}

/// Reading the column back; the table's CHECK constraint allows only the two values.
impl TryFrom<String> for PersonnelStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "active" => Ok(PersonnelStatus::Active),
            "departed" => Ok(PersonnelStatus::Departed),
            other => Err(format!("unknown personnel status {other:?}")),
        }
    }
}

/// One person on a vendor's staff list.
#[derive(Clone, Serialize, Deserialize, ToSchema, Queryable, Selectable, PartialEq)]
#[diesel(table_name = vendor_personnel)]
pub struct Person {
    pub id: String,
    pub vendor_id: String,
    /// The agency the vendor is registered with.
    pub agency: String,
    /// National ID, or UI number for foreign staff, in canonical form.
    #[schema(example = "A123456789")]
    pub national_id: String,
    pub name: String,
    pub job_title: Option<String>,
    #[diesel(deserialize_as = String)]
    pub status: PersonnelStatus,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
    /// When the person was marked departed (R-VEN-06).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
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
    /// The caller's agency: only its own vendors take personnel.
    pub agency: String,
    pub vendor_id: String,
    pub national_id: SubjectId,
    pub name: String,
    pub job_title: Option<String>,
    pub created_by: String,
}

impl fmt::Debug for NewPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPerson")
            .field("agency", &self.agency)
            .field("vendor_id", &self.vendor_id)
            .field("national_id", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A vendor for which an ID is active personnel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PersonnelVendor {
    pub vendor_id: String,
    /// The agency the vendor is registered with.
    pub agency: String,
    pub vendor_name: String,
}

/// The vendor, if it is one of `agency`'s. Another agency's vendor is "not found" like a missing one,
/// so its existence is not revealed.
fn vendor_of(conn: &mut DbConn, agency: &str, vendor_id: &str) -> Result<Vendor, VendorError> {
    vendors::table
        .filter(vendors::id.eq(vendor_id))
        .filter(vendors::agency.eq(agency))
        .select(Vendor::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorError::NotFound("the vendor"))
}

/// Adds a person to a vendor of the caller's agency. The same ID twice on one vendor is a conflict
/// (whether or not the earlier record has departed).
pub fn add(conn: &mut DbConn, now: DateTime<Utc>, new: &NewPerson) -> Result<Person, VendorError> {
    conn.write_transaction(|conn| {
        let vendor = vendor_of(conn, &new.agency, &new.vendor_id)?;
        let existing: i64 = vendor_personnel::table
            .filter(vendor_personnel::vendor_id.eq(&vendor.id))
            .filter(vendor_personnel::national_id.eq(new.national_id.as_str()))
            .count()
            .get_result(conn)?;
        if existing > 0 {
            return Err(VendorError::PersonnelExists);
        }
        let person = Person {
            id: uuid::Uuid::now_v7().to_string(),
            vendor_id: vendor.id,
            agency: vendor.agency,
            national_id: new.national_id.as_str().to_owned(),
            name: new.name.clone(),
            job_title: new.job_title.clone(),
            status: PersonnelStatus::Active,
            created_by: new.created_by.clone(),
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
                vendor_personnel::status.eq(person.status.as_str()),
                vendor_personnel::created_by.eq(&person.created_by),
                vendor_personnel::created_at.eq(person.created_at),
                vendor_personnel::departed_at.eq(person.departed_at),
            ))
            .execute(conn)
            .map_err(|err| match DbError::Query(err) {
                // A concurrent addition of the same person lost the race: same answer as above.
                e if e.is_unique_violation() => VendorError::PersonnelExists,
                e => VendorError::Db(e),
            })?;
        tracing::info!(vendor_id = %person.vendor_id, person_id = %person.id, "vendor personnel added");
        Ok(person)
    })
}

/// A vendor's personnel, departed ones included, by name.
pub fn list(conn: &mut DbConn, agency: &str, vendor_id: &str) -> Result<Vec<Person>, VendorError> {
    vendor_of(conn, agency, vendor_id)?;
    Ok(vendor_personnel::table
        .filter(vendor_personnel::vendor_id.eq(vendor_id))
        .order((vendor_personnel::name.asc(), vendor_personnel::id.asc()))
        .select(Person::as_select())
        .load(conn)?)
}

/// Marks a person departed (R-VEN-06): from `now` on they no longer match the lookup. Marking a
/// departed person again changes nothing and answers the record as it is.
pub fn mark_departed(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency: &str,
    vendor_id: &str,
    person_id: &str,
) -> Result<Person, VendorError> {
    conn.write_transaction(|conn| {
        vendor_of(conn, agency, vendor_id)?;
        // One atomic statement: a concurrent departure cannot overwrite the first departure time.
        let departed = diesel::update(
            vendor_personnel::table
                .filter(vendor_personnel::id.eq(person_id))
                .filter(vendor_personnel::vendor_id.eq(vendor_id))
                .filter(vendor_personnel::status.eq(PersonnelStatus::Active.as_str())),
        )
        .set((
            vendor_personnel::status.eq(PersonnelStatus::Departed.as_str()),
            vendor_personnel::departed_at.eq(Some(to_db(now))),
        ))
        .execute(conn)?;
        let person = vendor_personnel::table
            .filter(vendor_personnel::id.eq(person_id))
            .filter(vendor_personnel::vendor_id.eq(vendor_id))
            .select(Person::as_select())
            .first(conn)
            .optional()?
            .ok_or(VendorError::NotFound("the person"))?;
        if departed > 0 {
            tracing::info!(vendor_id, person_id, "vendor personnel departed");
        }
        Ok(person)
    })
}

/// The vendors, of any agency, for which `id` is ACTIVE personnel (R-ACC-08, R-VEN-08). Empty when the
/// person is not contractor personnel, or has departed everywhere.
pub fn is_active_personnel(conn: &mut DbConn, id: &SubjectId) -> Result<Vec<PersonnelVendor>, VendorError> {
    let rows: Vec<(String, String, String)> = vendor_personnel::table
        .inner_join(vendors::table)
        .filter(vendor_personnel::national_id.eq(id.as_str()))
        .filter(vendor_personnel::status.eq(PersonnelStatus::Active.as_str()))
        .order((vendors::agency.asc(), vendors::name.asc(), vendors::id.asc()))
        .select((vendors::id, vendors::agency, vendors::name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(vendor_id, agency, vendor_name)| PersonnelVendor { vendor_id, agency, vendor_name })
        .collect())
}

#[cfg(test)]
mod db_tests {
    use chrono::{Duration, TimeZone};
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::{register, BusinessNumber, NewVendor};

    fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
    }

    fn vendor(conn: &mut DbConn, agency: &str, name: &str, business_number: &str) -> Vendor {
        let new = NewVendor {
            agency: agency.into(),
            name: name.into(),
            business_number: BusinessNumber::parse(business_number).unwrap(),
            contact_email: None,
            created_by: "manager-1".into(),
        };
        register(conn, now(), &new).unwrap()
    }

    fn person(agency: &str, vendor_id: &str, id: &str, name: &str) -> NewPerson {
        NewPerson {
            agency: agency.into(),
            vendor_id: vendor_id.into(),
            national_id: SubjectId::parse_resident(id).unwrap(),
            name: name.into(),
            job_title: Some("系統工程師".into()),
            created_by: "manager-1".into(),
        }
    }

    #[test]
    fn personnel_are_added_listed_and_departed() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        // Typed in lower case: stored in canonical form.
        let wang = add(&mut conn, now(), &person("TPE-SW", &acme.id, "a123456789", "王小明")).unwrap();
        assert_eq!((wang.national_id.as_str(), wang.status), ("A123456789", PersonnelStatus::Active));
        assert_eq!((wang.agency.as_str(), wang.vendor_id.as_str()), ("TPE-SW", acme.id.as_str()));
        // Foreign staff with a UI number.
        let smith = add(&mut conn, now(), &person("TPE-SW", &acme.id, "A800000014", "John Smith")).unwrap();
        let listed = list(&mut conn, "TPE-SW", &acme.id).unwrap();
        assert_eq!(listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [smith.id.as_str(), wang.id.as_str()]);

        let later = now() + Duration::hours(3);
        let departed = mark_departed(&mut conn, later, "TPE-SW", &acme.id, &wang.id).unwrap();
        assert_eq!(departed.status, PersonnelStatus::Departed);
        assert_eq!(departed.departed_at, Some(to_db(later)));
        // Again: nothing changes, the first departure time stays.
        let again = mark_departed(&mut conn, later + Duration::hours(1), "TPE-SW", &acme.id, &wang.id).unwrap();
        assert_eq!(again, departed);
        assert_eq!(list(&mut conn, "TPE-SW", &acme.id).unwrap().len(), 2);
    }

    #[test]
    fn the_same_person_twice_on_one_vendor_is_a_conflict_but_other_vendors_may_list_them() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "花蓮系統整合有限公司", "22099131");
        add(&mut conn, now(), &person("TPE-SW", &acme.id, "A123456789", "王小明")).unwrap();
        let twice = add(&mut conn, now(), &person("TPE-SW", &acme.id, "Ａ１２３４５６７８９", "王小明"));
        assert!(matches!(twice, Err(VendorError::PersonnelExists)), "{twice:?}");
        add(&mut conn, now(), &person("HLN-HR", &other.id, "A123456789", "王小明")).unwrap();
        // The conflict answer does not repeat the ID.
        let api: immilink_shared::ApiError = VendorError::PersonnelExists.into();
        assert_eq!((api.status().as_u16(), api.field_name()), (409, Some("national_id")));
        assert!(!api.to_string().contains("A123456789"));
    }

    #[test]
    fn debug_forms_never_show_the_national_id() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let new = person("TPE-SW", &acme.id, "A123456789", "王小明");
        let added = add(&mut conn, now(), &new).unwrap();
        for debug in
            [format!("{new:?}"), format!("{added:?}"), format!("{:?}", Err::<(), _>(VendorError::PersonnelExists))]
        {
            assert!(!debug.contains("A123456789"), "{debug}");
        }
    }

    #[test]
    fn another_agencys_vendor_is_not_found() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let wang = add(&mut conn, now(), &person("TPE-SW", &acme.id, "A123456789", "王小明")).unwrap();
        let foreign = add(&mut conn, now(), &person("HLN-HR", &acme.id, "B200000004", "陳美玲"));
        assert!(matches!(foreign, Err(VendorError::NotFound("the vendor"))), "{foreign:?}");
        assert!(matches!(list(&mut conn, "HLN-HR", &acme.id), Err(VendorError::NotFound(_))));
        assert!(matches!(mark_departed(&mut conn, now(), "HLN-HR", &acme.id, &wang.id), Err(VendorError::NotFound(_))));
        assert!(matches!(list(&mut conn, "TPE-SW", "no-such-vendor"), Err(VendorError::NotFound(_))));
        // A person id under the wrong vendor is not found either.
        let other = vendor(&mut conn, "TPE-SW", "另一家資訊公司", "10458575");
        let moved = mark_departed(&mut conn, now(), "TPE-SW", &other.id, &wang.id);
        assert!(matches!(moved, Err(VendorError::NotFound("the person"))), "{moved:?}");
        assert_eq!(list(&mut conn, "TPE-SW", &acme.id).unwrap()[0].status, PersonnelStatus::Active);
    }

    /// The vendors half of R-ACC-08: identity refuses whoever this lookup finds.
    #[test]
    fn r_acc_08_lookup_matches_active_personnel_of_any_agency() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "花蓮系統整合有限公司", "22099131");
        add(&mut conn, now(), &person("TPE-SW", &acme.id, "A123456789", "王小明")).unwrap();
        add(&mut conn, now(), &person("HLN-HR", &other.id, "A123456789", "王小明")).unwrap();
        let id = SubjectId::parse_resident("A123456789").unwrap();
        let found = is_active_personnel(&mut conn, &id).unwrap();
        assert_eq!(
            found,
            [
                PersonnelVendor {
                    vendor_id: other.id.clone(),
                    agency: "HLN-HR".into(),
                    vendor_name: "花蓮系統整合有限公司".into()
                },
                PersonnelVendor {
                    vendor_id: acme.id.clone(),
                    agency: "TPE-SW".into(),
                    vendor_name: "臺灣資訊服務股份有限公司".into()
                },
            ]
        );
        let stranger = SubjectId::parse_resident("B200000004").unwrap();
        assert!(is_active_personnel(&mut conn, &stranger).unwrap().is_empty());
    }

    #[test]
    fn r_ven_06_departed_personnel_no_longer_match_the_lookup() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "臺灣資訊服務股份有限公司", "22099131");
        let other = vendor(&mut conn, "HLN-HR", "花蓮系統整合有限公司", "22099131");
        let at_acme = add(&mut conn, now(), &person("TPE-SW", &acme.id, "A800000014", "John Smith")).unwrap();
        let at_other = add(&mut conn, now(), &person("HLN-HR", &other.id, "A800000014", "John Smith")).unwrap();
        let id = SubjectId::parse_resident("a800000014").unwrap();
        mark_departed(&mut conn, now(), "TPE-SW", &acme.id, &at_acme.id).unwrap();
        let found = is_active_personnel(&mut conn, &id).unwrap();
        assert_eq!(found.iter().map(|v| v.vendor_id.as_str()).collect::<Vec<_>>(), [other.id.as_str()]);
        mark_departed(&mut conn, now(), "HLN-HR", &other.id, &at_other.id).unwrap();
        assert!(is_active_personnel(&mut conn, &id).unwrap().is_empty());
    }
}
