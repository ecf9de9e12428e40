//! Vendor registration. An agency registers the contractors it works with; their contracts
//! (`contracts`), personnel with their checks and agreements (`personnel`), dedicated machines,
//! incidents and audits hang on these records (R-VEN). A vendor belongs to the agency that registered
//! it: [`of_caller`] is how every operation on a vendor's records finds it, so another agency's
//! vendor is "not found".

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::Caller;
use immilink_shared::clock::to_db;
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::typed::{AgencyCode, UserId};
use serde_json::json;

use super::{new_id, record, require_manager, text, VendorId, VendorsError};
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

/// A registered contractor.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = vendors)]
pub struct Vendor {
    pub id: VendorId,
    /// The registering agency.
    pub agency: AgencyCode,
    pub name: String,
    pub business_number: String,
    pub contact_email: Option<String>,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct NewVendor {
    pub name: String,
    pub business_number: BusinessNumber,
    pub contact_email: Option<String>,
}

const MAX_NAME: usize = 200;

impl NewVendor {
    /// The registration from what the caller sent; each refusal names its field.
    pub fn parse(
        name: Option<String>,
        business_number: Option<String>,
        contact_email: Option<String>,
    ) -> Result<Self, VendorsError> {
        let name = text(name, "name", MAX_NAME)?;
        let raw_number = business_number.ok_or_else(|| VendorsError::missing("business_number"))?;
        let business_number =
            BusinessNumber::parse(&raw_number).map_err(|reason| VendorsError::invalid("business_number", reason))?;
        let contact_email = contact_email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        if contact_email.as_deref().is_some_and(|email| !looks_like_email(email)) {
            return Err(VendorsError::invalid("contact_email", "not an e-mail address"));
        }
        Ok(Self { name, business_number, contact_email })
    }
}

fn looks_like_email(email: &str) -> bool {
    let mut parts = email.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(local), Some(domain), None)
        if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            && email.len() <= 254 && !email.chars().any(char::is_whitespace))
}

/// Registers a contractor of the caller's agency, with its audit event; one business number once per
/// agency.
pub fn register(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewVendor,
) -> Result<Vendor, VendorsError> {
    require_manager(caller)?;
    conn.write_transaction(|conn| insert(conn, now, caller, new))
}

fn insert(conn: &mut DbConn, now: DateTime<Utc>, caller: &Caller, new: &NewVendor) -> Result<Vendor, VendorsError> {
    let existing: i64 = vendors::table
        .filter(vendors::agency.eq(&caller.agency))
        .filter(vendors::business_number.eq(new.business_number.as_str()))
        .count()
        .get_result(conn)?;
    let exists = || VendorsError::VendorExists { business_number: new.business_number.as_str().to_owned() };
    if existing > 0 {
        return Err(exists());
    }
    let vendor = Vendor {
        id: VendorId::new(new_id()),
        agency: caller.agency.clone(),
        name: new.name.clone(),
        business_number: new.business_number.as_str().to_owned(),
        contact_email: new.contact_email.clone(),
        created_by: caller.user_id.clone(),
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
            e if e.is_unique_violation() => exists(),
            e => VendorsError::Db(e),
        })?;
    let payload = json!({
        "vendor_id": vendor.id,
        "name": vendor.name,
        "business_number": vendor.business_number,
        "contact_email": vendor.contact_email,
    });
    record(conn, now, kind::VENDOR_REGISTERED, caller, vendor.id.as_str(), payload)?;
    Ok(vendor)
}

/// The vendor, if it is one of the caller's agency's. Another agency's vendor is "not found" like a
/// missing one, so its existence is not revealed (the vendor manager of agency A manages A's vendors
/// only). For use inside a transaction, after the role check.
pub fn of_caller(conn: &mut DbConn, caller: &Caller, vendor_id: &VendorId) -> Result<Vendor, VendorsError> {
    vendors::table
        .filter(vendors::id.eq(vendor_id))
        .filter(vendors::agency.eq(&caller.agency))
        .select(Vendor::as_select())
        .first(conn)
        .optional()?
        .ok_or(VendorsError::NotFound("the vendor"))
}

/// The caller's agency's contractors by name, one page at a time (the cursor is the last vendor's
/// id).
pub fn list(conn: &mut DbConn, caller: &Caller, page: &Page) -> Result<Vec<Vendor>, VendorsError> {
    require_manager(caller)?;
    let mut query = vendors::table.filter(vendors::agency.eq(caller.agency.clone())).into_boxed();
    if let Some(after) = &page.cursor {
        let name: String = vendors::table
            .filter(vendors::id.eq(after))
            .filter(vendors::agency.eq(&caller.agency))
            .select(vendors::name)
            .first(conn)
            .optional()?
            .ok_or_else(|| VendorsError::invalid("before", "not a vendor of this list"))?;
        query =
            query.filter(vendors::name.gt(name.clone()).or(vendors::name.eq(name).and(vendors::id.gt(after.clone()))));
    }
    Ok(query
        .order((vendors::name.asc(), vendors::id.asc()))
        .limit(page.limit)
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

    #[test]
    fn registrations_name_the_bad_field() {
        let field = |result: Result<NewVendor, VendorsError>| match result {
            Err(VendorsError::Missing { field } | VendorsError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(NewVendor::parse(Some(" ".into()), Some("22099131".into()), None)), "name");
        assert_eq!(field(NewVendor::parse(Some("x".repeat(201)), Some("22099131".into()), None)), "name");
        assert_eq!(field(NewVendor::parse(Some("x".into()), None, None)), "business_number");
        assert_eq!(field(NewVendor::parse(Some("x".into()), Some("22099132".into()), None)), "business_number");
        assert_eq!(
            field(NewVendor::parse(Some("x".into()), Some("22099131".into()), Some("a@b".into()))),
            "contact_email"
        );
        let ok = NewVendor::parse(Some(" 臺灣資訊 ".into()), Some("22099131".into()), Some("  ".into())).unwrap();
        assert_eq!((ok.name.as_str(), ok.contact_email), ("臺灣資訊", None));
    }
}

#[cfg(test)]
mod db_tests {
    use chrono::Utc;
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::testing::caller;

    fn new_vendor() -> NewVendor {
        NewVendor {
            name: "臺灣資訊服務股份有限公司".into(),
            business_number: BusinessNumber::parse("22099131").unwrap(),
            contact_email: None,
        }
    }

    #[test]
    fn vendors_are_unique_per_agency_and_listed_per_agency() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let mut conn = db.get().unwrap();
        let (tpe, hln, khh) = (
            caller("TPE-SW", &["vendor_manager"]),
            caller("HLN-HR", &["account_manager"]),
            caller("KHH-SW", &["vendor_manager"]),
        );
        register(&mut conn, Utc::now(), &tpe, &new_vendor()).unwrap();
        let again = register(&mut conn, Utc::now(), &tpe, &new_vendor());
        assert!(matches!(again, Err(VendorsError::VendorExists { .. })), "{again:?}");
        // Another agency may register the same contractor.
        register(&mut conn, Utc::now(), &hln, &new_vendor()).unwrap();
        assert_eq!(list(&mut conn, &tpe, &Page::first()).unwrap().len(), 1);
        assert_eq!(list(&mut conn, &hln, &Page::first()).unwrap().len(), 1);
        assert!(list(&mut conn, &khh, &Page::first()).unwrap().is_empty());
        // A caseworker manages no contractors.
        let caseworker = caller("TPE-SW", &["caseworker"]);
        assert!(matches!(list(&mut conn, &caseworker, &Page::first()), Err(VendorsError::RoleRequired { .. })));
        assert!(matches!(
            register(&mut conn, Utc::now(), &caseworker, &new_vendor()),
            Err(VendorsError::RoleRequired { .. })
        ));
    }

    #[test]
    fn vendors_are_listed_a_page_at_a_time_by_name() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS).unwrap();
        let mut conn = db.get().unwrap();
        let tpe = caller("TPE-SW", &["vendor_manager"]);
        for (name, number) in [("丙公司", "22099131"), ("甲公司", "10458575"), ("乙公司", "10458574")] {
            let new = NewVendor {
                name: name.into(),
                business_number: BusinessNumber::parse(number).unwrap(),
                contact_email: None,
            };
            register(&mut conn, Utc::now(), &tpe, &new).unwrap();
        }
        let all: Vec<String> = list(&mut conn, &tpe, &Page::first()).unwrap().into_iter().map(|v| v.name).collect();
        let first = list(&mut conn, &tpe, &Page::new(Some(2), None).unwrap()).unwrap();
        assert_eq!(first.iter().map(|v| v.name.clone()).collect::<Vec<_>>(), all[..2]);
        let rest = list(&mut conn, &tpe, &Page::new(Some(2), Some(first[1].id.to_string())).unwrap()).unwrap();
        assert_eq!(rest.iter().map(|v| v.name.clone()).collect::<Vec<_>>(), all[2..]);
        let unknown = list(&mut conn, &tpe, &Page::new(None, Some("no-such-vendor".into())).unwrap());
        assert!(matches!(unknown, Err(VendorsError::Invalid { field, .. }) if field == "before"));
    }
}
