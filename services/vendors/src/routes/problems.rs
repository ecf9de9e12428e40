//! The one place vendors errors become HTTP problems: the status, the stable `code` and the
//! offending `field` of every case, stated by the table test below.

use actix_web::http::StatusCode;
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
            // --- contracts and personnel
            E::CertificateRequired => {
                ApiError::conflict("security_certificate_required", detail).field("certificate").rule("R-VEN-02")
            }
            E::ContractMove { .. } => ApiError::conflict("illegal_status_change", detail),
            E::ContractEnded => ApiError::conflict("contract_ended", detail),
            E::PersonDeparted => ApiError::conflict("person_departed", detail).rule("R-VEN-06"),
            E::PersonalDataRefused { rule } => {
                ApiError::forbidden("personal_data_access_refused", detail).rule(rule.as_str())
            }
            // --- devices, incidents, audits
            E::DeviceAssigned { field, .. } => {
                ApiError::conflict("device_already_assigned", detail).field(field).rule("R-VEN-07")
            }
            E::AttestationRefused { field, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "attestation_refused",
                "Refused by a rule",
                "專屬設備自主檢核未符規定",
            )
            .detail(detail)
            .field(field)
            .rule("R-VEN-07"),
            E::IllegalDeviceMove { .. } => ApiError::conflict("illegal_status_change", detail),
            E::IncidentTimes { field, .. } => ApiError::invalid_field(field, detail).rule("R-VEN-03"),
            E::IllegalFindingMove { .. } => ApiError::conflict("finding_status", detail).rule("R-VEN-05"),
            E::CloserIsRemediator => ApiError::forbidden("four_eyes", detail).rule("R-VEN-05"),
            E::ChangedMeanwhile(_) => ApiError::conflict("changed_meanwhile", detail),
            E::Db(db) => db.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use immilink_shared::db::DbError;
    use immilink_shared::problem::{assert_every_case_maps, WireAnswer};

    use super::*;
    use crate::domain::audits::FindingStatus;
    use crate::domain::contracts::ContractStatus;
    use crate::domain::devices::DeviceStatus;
    use crate::domain::personnel::{AccessRule, PersonnelStatus};
    use crate::domain::ContractId;

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
            // --- contracts and personnel
            E::CertificateRequired => (409, "security_certificate_required", Some("certificate"), Some("R-VEN-02")),
            E::ContractMove { .. } => (409, "illegal_status_change", None, None),
            E::ContractEnded => (409, "contract_ended", None, None),
            E::PersonDeparted => (409, "person_departed", None, Some("R-VEN-06")),
            E::PersonalDataRefused { rule: AccessRule::Agreement } => {
                (403, "personal_data_access_refused", None, Some("R-VEN-04"))
            }
            E::PersonalDataRefused { rule: AccessRule::SuitabilityCheck } => {
                (403, "personal_data_access_refused", None, Some("R-VEN-01"))
            }
            E::PersonalDataRefused { rule: AccessRule::Departed } => {
                (403, "personal_data_access_refused", None, Some("R-VEN-06"))
            }
            // --- devices, incidents, audits
            E::DeviceAssigned { .. } => (409, "device_already_assigned", Some("serial_number"), Some("R-VEN-07")),
            E::AttestationRefused { .. } => (422, "attestation_refused", Some("offline"), Some("R-VEN-07")),
            E::IllegalDeviceMove { .. } => (409, "illegal_status_change", None, None),
            E::IncidentTimes { .. } => (422, "invalid_field", Some("learned_at"), Some("R-VEN-03")),
            E::IllegalFindingMove { .. } => (409, "finding_status", None, Some("R-VEN-05")),
            E::CloserIsRemediator => (403, "four_eyes", None, Some("R-VEN-05")),
            E::ChangedMeanwhile(_) => (409, "changed_meanwhile", None, None),
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
            // --- contracts and personnel
            E::CertificateRequired,
            E::ContractMove { from: ContractStatus::Ended, to: ContractStatus::Active },
            E::ContractEnded,
            E::PersonDeparted,
            E::PersonalDataRefused { rule: AccessRule::Agreement },
            // --- devices, incidents, audits
            E::DeviceAssigned { field: "serial_number", contract_id: Some(ContractId::new("contract-1")) },
            E::AttestationRefused { field: "offline".into(), detail: "the machine is online".into() },
            E::IllegalDeviceMove { from: DeviceStatus::Retired, to: DeviceStatus::Attested },
            E::IncidentTimes { field: "learned_at", detail: "must not be after the time of the report".into() },
            E::IllegalFindingMove { from: FindingStatus::Open, to: FindingStatus::Closed },
            E::CloserIsRemediator,
            E::ChangedMeanwhile("the finding"),
            E::Db(DbError::Unavailable("timed out waiting for a connection".into())),
        ];
        assert_every_case_maps(samples, 20, expected);
    }

    #[test]
    fn refusals_say_what_was_refused_without_the_national_id() {
        let role = ApiError::from(VendorsError::RoleRequired { roles: crate::domain::MANAGERS });
        assert_eq!(role.to_problem().detail, "this action needs one of the roles: vendor_manager, account_manager");
        let twice = ApiError::from(VendorsError::PersonnelExists).to_problem();
        assert_eq!(twice.detail, "this vendor already lists a person with this ID");
    }
}
