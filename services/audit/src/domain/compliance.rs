//! The compliance matrix (R-GOV-01), for the roles that answer for compliance: the agency's auditors,
//! ethics officers and account managers, and the immigration agency's reviewers. The matrix is
//! generated from the code and the SPEC (`immilink_shared::compliance`) and compiled in.

use immilink_shared::auth::{roles, Caller};
use immilink_shared::compliance::ComplianceMatrix;

use super::AuditError;

/// Who may read the matrix.
pub const MATRIX_READERS: &[&str] =
    &[roles::AUDITOR, roles::ETHICS_OFFICER, roles::ACCOUNT_MANAGER, roles::NIA_REVIEWER];

/// The matrix, if the caller holds one of [`MATRIX_READERS`].
pub fn matrix(caller: &Caller) -> Result<&'static ComplianceMatrix, AuditError> {
    if !caller.has_any(MATRIX_READERS) {
        return Err(AuditError::RoleRequired { roles: MATRIX_READERS });
    }
    Ok(immilink_shared::compliance::committed())
}
