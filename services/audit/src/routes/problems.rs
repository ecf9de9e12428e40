//! The one place audit errors become HTTP problems: the status, the stable `code` and the offending
//! `field` of every case, stated by the table test below.

use immilink_shared::ApiError;

use crate::domain::AuditError;

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        use AuditError as E;
        let detail = err.to_string();
        match err {
            E::RoleRequired { .. } => ApiError::forbidden("role_required", detail),
            E::OtherAgency => ApiError::forbidden("other_agency", detail).field("agency"),
            E::OtherUnit => ApiError::forbidden("other_unit", detail).field("unit"),
            E::NotFound(what) => ApiError::not_found(what),
            E::Invalid { field, detail } => ApiError::invalid_field(field, detail),
            E::TreeInconsistent(_) | E::Signing(_) => ApiError::internal(detail),
            E::WitnessRefused(_) => ApiError::unavailable("witness_refused", detail),
            E::LiftedByPlacer => ApiError::forbidden("four_eyes", detail),
            E::HoldAlreadyLifted => ApiError::conflict("hold_lifted", detail),
            E::WitnessAhead { .. } => ApiError::conflict("witness_ahead", detail),
            E::OwnLookup(_) => ApiError::forbidden("own_lookup", detail),
            E::Conflict { code, .. } => ApiError::conflict(code, detail),
            E::Db(db) => db.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use immilink_shared::db::DbError;
    use immilink_shared::problem::{assert_every_case_maps, WireAnswer};

    use super::*;
    use crate::domain::records::READERS;

    /// Each case's wire answer, by an exhaustive match: a new case needs a row here and a sample below.
    fn expected(err: &AuditError) -> WireAnswer {
        use AuditError as E;
        match err {
            E::RoleRequired { .. } => (403, "role_required", None, None),
            E::OtherAgency => (403, "other_agency", Some("agency"), None),
            E::OtherUnit => (403, "other_unit", Some("unit"), None),
            E::NotFound(_) => (404, "not_found", None, None),
            E::Invalid { .. } => (422, "invalid_field", Some("events[0]"), None),
            E::TreeInconsistent(_) | E::Signing(_) => (500, "internal_error", None, None),
            E::WitnessRefused(_) => (503, "witness_refused", None, None),
            E::LiftedByPlacer => (403, "four_eyes", None, None),
            E::HoldAlreadyLifted => (409, "hold_lifted", None, None),
            E::WitnessAhead { .. } => (409, "witness_ahead", None, None),
            E::OwnLookup(_) => (403, "own_lookup", None, None),
            E::Conflict { .. } => (409, "already_reviewed", None, None),
            E::Db(_) => (503, "database_unavailable", None, None),
        }
    }

    #[test]
    fn every_case_maps_to_its_wire_answer() {
        use AuditError as E;
        let samples = vec![
            E::RoleRequired { roles: READERS },
            E::OtherAgency,
            E::OtherUnit,
            E::NotFound("the audit record"),
            E::Invalid { field: "events[0]".into(), detail: "id and kind are required".into() },
            E::TreeInconsistent("index 3 is not in the tree".into()),
            E::Signing("malformed note".into()),
            E::WitnessRefused("invalid signature".into()),
            E::WitnessAhead { witness: 12, log: 10 },
            E::LiftedByPlacer,
            E::HoldAlreadyLifted,
            E::OwnLookup("nobody reviews their own lookups"),
            E::Conflict { code: "already_reviewed", detail: "this lookup was reviewed already".into() },
            E::Db(DbError::Unavailable("timed out waiting for a connection".into())),
        ];
        assert_every_case_maps(samples, 14, expected);
    }

    #[test]
    fn refusals_say_what_was_refused() {
        let role = ApiError::from(AuditError::RoleRequired { roles: READERS }).to_problem();
        assert_eq!(
            role.detail,
            "this action needs one of the roles: auditor, account_manager, ethics_officer, nia_reviewer, unit_supervisor"
        );
        let other = ApiError::from(AuditError::OtherAgency).to_problem();
        assert_eq!(other.detail, "you may only read your own agency's records");
    }
}
