//! Vendor registration. An agency registers the contractors it works with; later issues hang their
//! contracts, personnel, agreements, devices and incidents on these records (R-VEN).

pub mod personnel;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema::vendors;

/// 統一編號: the 8-digit business number with its check rule (weights 1,2,1,2,1,2,4,1; the digit sums
/// of the products add up to a multiple of 5, or, when the 7th digit is 7, that sum plus one does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber(String);

impl BusinessNumber {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let value = raw.trim();
        if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a business number (統一編號) is exactly 8 digits");
        }
        const WEIGHTS: [u32; 8] = [1, 2, 1, 2, 1, 2, 4, 1];
        let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum: u32 = digits
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| {
                let product = d * w;
                product / 10 + product % 10
            })
            .sum();
        let valid = sum.is_multiple_of(5) || (digits[6] == 7 && (sum + 1).is_multiple_of(5));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err("the business number's check digit does not match")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Queryable, Selectable, PartialEq)]
#[diesel(table_name = vendors)]
pub struct Vendor {
    pub id: String,
    /// The registering agency's code.
    pub agency: String,
    pub name: String,
    pub business_number: String,
    pub contact_email: Option<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: chrono::NaiveDateTime,
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct NewVendor {
    pub agency: String,
    pub name: String,
    pub business_number: BusinessNumber,
    pub contact_email: Option<String>,
    pub created_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    #[error("this agency already registered a vendor with business number {0}")]
    Duplicate(String),
    /// Missing, or another agency's (which is not revealed).
    #[error("{0} was not found")]
    NotFound(&'static str),
    /// The message never repeats the national ID.
    #[error("this vendor already lists a person with this ID")]
    PersonnelExists,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for VendorError {
    fn from(err: diesel::result::Error) -> Self {
        VendorError::Db(DbError::Query(err))
    }
}

impl From<VendorError> for ApiError {
    fn from(err: VendorError) -> Self {
        match err {
            VendorError::Duplicate(_) => ApiError::conflict("vendor_exists", err.to_string()).field("business_number"),
            VendorError::NotFound(what) => ApiError::not_found(what),
            VendorError::PersonnelExists => {
                ApiError::conflict("personnel_exists", err.to_string()).field("national_id")
            }
            VendorError::Db(db) => db.into(),
        }
    }
}

pub fn register(conn: &mut DbConn, now: DateTime<Utc>, new: &NewVendor) -> Result<Vendor, VendorError> {
    let existing: i64 = vendors::table
        .filter(vendors::agency.eq(&new.agency))
        .filter(vendors::business_number.eq(new.business_number.as_str()))
        .count()
        .get_result(conn)?;
    if existing > 0 {
        return Err(VendorError::Duplicate(new.business_number.as_str().to_owned()));
    }
    let vendor = Vendor {
        id: uuid::Uuid::now_v7().to_string(),
        agency: new.agency.clone(),
        name: new.name.clone(),
        business_number: new.business_number.as_str().to_owned(),
        contact_email: new.contact_email.clone(),
        created_by: new.created_by.clone(),
        created_at: to_db(now),
    };
    diesel::insert_into(vendors::table)
        .values((
            vendors::id.eq(&vendor.id),
            vendors::agency.eq(&vendor.agency),
            vendors::name.eq(&vendor.name),
            vendors::business_number.eq(&vendor.business_number),
            vendors::contact_email.eq(&vendor.contact_email),
            vendors::created_by.eq(&vendor.created_by),
            vendors::created_at.eq(vendor.created_at),
        ))
        .execute(conn)
        .map_err(|err| match DbError::Query(err) {
            // A concurrent registration of the same number lost the race: same answer as above.
            e if e.is_unique_violation() => VendorError::Duplicate(vendor.business_number.clone()),
            e => VendorError::Db(e),
        })?;
    Ok(vendor)
}

pub fn list(conn: &mut DbConn, agency: &str) -> Result<Vec<Vendor>, VendorError> {
    Ok(vendors::table
        .filter(vendors::agency.eq(agency))
        .order(vendors::name.asc())
        .select(Vendor::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_number_check_rule() {
        assert!(BusinessNumber::parse("22099131").is_ok());
        assert!(BusinessNumber::parse(" 22099131 ").is_ok());
        assert!(BusinessNumber::parse("22099132").is_err());
        assert!(BusinessNumber::parse("2209913").is_err());
        assert!(BusinessNumber::parse("2209913a").is_err());
        assert!(BusinessNumber::parse("２２０９９１３１").is_err());
    }

    #[test]
    fn business_number_seventh_digit_seven_accepts_either_sum() {
        // 10458575: digit sums 1+0+4+1+8+1+(2+8)+5 = 30 → valid on its own.
        assert!(BusinessNumber::parse("10458575").is_ok());
        // 10458570: 25 → valid; 10458574: 29, 7th digit 7 → 29 + 1 = 30 → valid by the special case.
        assert!(BusinessNumber::parse("10458574").is_ok());
        assert!(BusinessNumber::parse("10458573").is_err());
    }
}

#[cfg(test)]
mod db_tests {
    use chrono::Utc;
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::testing::TestDb;

    use super::*;

    fn new_vendor(agency: &str) -> NewVendor {
        NewVendor {
            agency: agency.into(),
            name: "臺灣資訊服務股份有限公司".into(),
            business_number: BusinessNumber::parse("22099131").unwrap(),
            contact_email: None,
            created_by: "user-1".into(),
        }
    }

    #[test]
    fn vendors_are_unique_per_agency_and_listed_per_agency() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let mut conn = db.get().unwrap();
        register(&mut conn, Utc::now(), &new_vendor("TPE-SW")).unwrap();
        assert!(matches!(register(&mut conn, Utc::now(), &new_vendor("TPE-SW")), Err(VendorError::Duplicate(_))));
        // Another agency may register the same contractor.
        register(&mut conn, Utc::now(), &new_vendor("HLN-HR")).unwrap();
        assert_eq!(list(&mut conn, "TPE-SW").unwrap().len(), 1);
        assert_eq!(list(&mut conn, "HLN-HR").unwrap().len(), 1);
        assert!(list(&mut conn, "KHH-SW").unwrap().is_empty());
    }
}
