//! The one place vendors errors become HTTP problems: the status, the stable `code` and the
//! offending `field` of every case, stated by the table test below.

use immilink_shared::ApiError;

use crate::domain::VendorsError;

impl From<VendorsError> for ApiError {
    fn from(err: VendorsError) -> Self {
        use VendorsError as E;
        let detail = err.to_string();
        match err {
            E::RoleRequired { .. } => ApiError::forbidden("role_required", detail),
            E::NotFound(what) => ApiError::not_found(what),
            E::VendorExists { .. } => ApiError::conflict("vendor_exists", detail).field("business_number"),
            E::PersonnelExists => ApiError::conflict("personnel_exists", detail).field("national_id"),
            E::IllegalMove { .. } => ApiError::conflict("illegal_status_change", detail),
            E::Missing { field } => ApiError::missing_field(&field),
            E::Invalid { field, detail } => ApiError::invalid_field(field, detail),
            E::Db(db) => db.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use immilink_shared::db::DbError;
    use immilink_shared::problem::{assert_every_case_maps, WireAnswer};

    use super::*;
    use crate::domain::personnel::PersonnelStatus;

    /// Each case's wire answer, by an exhaustive match: a new case needs a row here and a sample below.
    fn expected(err: &VendorsError) -> WireAnswer {
        use VendorsError as E;
        match err {
            E::RoleRequired { .. } => (403, "role_required", None, None),
            E::NotFound(_) => (404, "not_found", None, None),
            E::VendorExists { .. } => (409, "vendor_exists", Some("business_number"), None),
            E::PersonnelExists => (409, "personnel_exists", Some("national_id"), None),
            E::IllegalMove { .. } => (409, "illegal_status_change", None, None),
            E::Missing { .. } => (422, "missing_field", Some("name"), None),
            E::Invalid { .. } => (422, "invalid_field", Some("national_id"), None),
            E::Db(_) => (503, "database_unavailable", None, None),
        }
    }

    #[test]
    fn every_case_maps_to_its_wire_answer() {
        use VendorsError as E;
        let samples = vec![
            E::RoleRequired { roles: crate::domain::MANAGERS },
            E::NotFound("the vendor"),
            E::VendorExists { business_number: "22099131".into() },
            E::PersonnelExists,
            E::IllegalMove { from: PersonnelStatus::Departed, to: PersonnelStatus::Active },
            E::Missing { field: "name".into() },
            E::Invalid { field: "national_id".into(), detail: "the check digit does not match".into() },
            E::Db(DbError::Unavailable("timed out waiting for a connection".into())),
        ];
        assert_every_case_maps(samples, 8, expected);
    }

    #[test]
    fn refusals_say_what_was_refused_without_the_national_id() {
        let role = ApiError::from(VendorsError::RoleRequired { roles: crate::domain::MANAGERS });
        assert_eq!(role.to_problem().detail, "this action needs one of the roles: vendor_manager, account_manager");
        let twice = ApiError::from(VendorsError::PersonnelExists).to_problem();
        assert_eq!(twice.detail, "this vendor already lists a person with this ID");
    }
}
