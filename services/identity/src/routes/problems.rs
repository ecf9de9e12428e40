//! The one place identity errors become HTTP problems: the status, the stable `code`, the offending
//! `field` and the SPEC `rule` of every case. Clients depend on these; the table test below states
//! each of them.

use actix_web::http::StatusCode;
use immilink_shared::ApiError;

use crate::domain::{Dependency, IdentityError};

impl From<IdentityError> for ApiError {
    fn from(err: IdentityError) -> Self {
        use IdentityError as E;
        let detail = err.to_string();
        match err {
            E::LoginRefused => ApiError::new(StatusCode::UNAUTHORIZED, "login_refused", "Login refused", "登入失敗")
                .detail(
                    "the login was refused: check the username, password, certificate and that you use your \
                     registered workstation",
                ),
            E::Throttled { retry_after_seconds } => ApiError::too_many_requests(
                "too_many_attempts",
                "too many attempts from this address; wait before trying again",
                retry_after_seconds,
            ),
            E::SessionEnded(reason) => {
                ApiError::unauthenticated(format!("the session has ended ({reason}); log in again"))
            }
            E::LoginBusy => ApiError::unavailable("login_busy", detail),
            E::RoleRequired { .. } => ApiError::forbidden("role_required", detail),
            E::NotFound(what) => ApiError::not_found(what),
            E::NotAwaitingReview { .. } | E::ReviewedMeanwhile => {
                ApiError::conflict("not_awaiting_review", detail).rule("R-ACC-01")
            }
            E::NotYourStep { .. } | E::NotApplicantsSupervisor => {
                ApiError::forbidden("wrong_reviewer", detail).rule("R-ACC-01")
            }
            E::OwnApplication => ApiError::forbidden("own_application", detail).rule("R-ACC-04"),
            E::AlreadyReviewed => ApiError::forbidden("already_reviewed", detail).rule("R-ACC-04"),
            E::ContractorApplicant => ApiError::forbidden("vendor_personnel", detail).rule("R-ACC-08"),
            E::UsernameTaken => ApiError::conflict("username_taken", detail).field("username"),
            E::CertificateInUse => ApiError::conflict("certificate_in_use", detail).field("certificate_serial"),
            E::OwnAccount { .. } => ApiError::forbidden("own_account", detail).rule("R-ACC-04"),
            E::AccountClosed { .. } => ApiError::conflict("account_closed", detail),
            E::NotActive { .. } => ApiError::conflict("not_active", detail),
            E::NotSuspended { .. } => ApiError::conflict("not_suspended", detail),
            E::LastAccountManager => ApiError::conflict("last_account_manager", detail).rule("R-ACC-06"),
            E::HandoverNotPermitted => ApiError::forbidden("handover_not_permitted", detail).rule("R-ACC-06"),
            E::VendorStaffAccount { field } => {
                unprocessable("vendor_staff_account", "委外人員帳號不得具查詢權限", detail)
                    .field(field)
                    .rule("R-VEN-08")
            }
            E::NoContractorConflict => ApiError::conflict("no_contractor_conflict", detail).rule("R-VEN-08"),
            E::StillContractorPersonnel => ApiError::conflict("contractor_conflict", detail).rule("R-VEN-08"),
            E::LinkStatusConflict { .. } | E::LinkNotInForce { .. } => ApiError::conflict("link_status", detail),
            E::LinkExists { .. } => ApiError::conflict("link_exists", detail).rule("R-LINK-05"),
            E::RequestPending => ApiError::conflict("request_pending", detail),
            E::AlreadyDecided => ApiError::conflict("already_decided", detail),
            E::NothingToDecide => ApiError::conflict("nothing_to_decide", detail).rule("R-LINK-03"),
            E::RulesIncomplete { .. } => unprocessable("rules_incomplete", "管理規定未涵蓋必要事項", detail)
                .field("management_rules.coverage")
                .rule("R-LINK-04"),
            E::ItemWithoutLegalBasis { index, .. } => {
                unprocessable("item_without_legal_basis", "申請項目無法令依據", detail)
                    .field(format!("items[{index}].legal_basis"))
                    .rule("R-LINK-03")
            }
            E::NoChange => {
                unprocessable("no_change", "異動書未勾選異動事項", detail).field("changes").rule("R-LINK-05")
            }
            E::NotEntitledToApply { .. } => ApiError::forbidden("not_entitled_to_apply", detail).rule("R-LINK-11"),
            E::RemediationOutstanding { .. } => ApiError::conflict("remediation_outstanding", detail).rule("R-LINK-07"),
            E::ResumptionTooLate { .. } => ApiError::conflict("new_application_required", detail).rule("R-LINK-07"),
            E::TerminationNoticeTooShort { .. } => {
                unprocessable("termination_notice_too_short", "終止通知未於一個月前提出", detail)
                    .field("termination_date")
                    .rule("R-LINK-08")
            }
            E::NotDormant => ApiError::conflict("not_dormant", detail).rule("R-LINK-10"),
            E::Missing { field } => ApiError::missing_field(&field),
            E::Invalid { field, detail } => ApiError::invalid_field(field, detail),
            E::Unavailable(Dependency::Vendors) => ApiError::unavailable("vendors_unavailable", detail),
            E::Unavailable(Dependency::ImmigrationAgency) => ApiError::unavailable("nia_unavailable", detail),
            E::Db(db) => db.into(),
            E::Internal(cause) => ApiError::internal(cause),
        }
    }
}

/// A 422 with its own code: the request is well formed but a rule refuses it.
fn unprocessable(code: &'static str, title_zh: &'static str, detail: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Refused by a rule", title_zh).detail(detail)
}

#[cfg(test)]
mod tests {
    use immilink_shared::db::DbError;
    use immilink_shared::problem::{assert_every_case_maps, WireAnswer};

    use super::*;
    use crate::domain::accounts::AccountStatus;
    use crate::domain::applications::{ApplicationStatus, ReviewStep};
    use crate::domain::link_forms::RulesItem;
    use crate::domain::links::{LinkId, LinkStatus};
    use crate::domain::sessions::{SessionEndReason, SessionRefusal};
    use crate::domain::AgencyCode;

    /// The wire answer (status, code, field, rule) of each case, by an exhaustive match: a new case
    /// does not compile until it has a row here, and `every_case_maps_to_its_wire_answer` fails until
    /// it has a sample.
    fn expected(err: &IdentityError) -> WireAnswer {
        use IdentityError as E;
        match err {
            E::LoginRefused => (401, "login_refused", None, None),
            E::Throttled { .. } => (429, "too_many_attempts", None, None),
            E::SessionEnded(_) => (401, "unauthenticated", None, None),
            E::LoginBusy => (503, "login_busy", None, None),
            E::RoleRequired { .. } => (403, "role_required", None, None),
            E::NotFound(_) => (404, "not_found", None, None),
            E::NotAwaitingReview { .. } => (409, "not_awaiting_review", None, Some("R-ACC-01")),
            E::ReviewedMeanwhile => (409, "not_awaiting_review", None, Some("R-ACC-01")),
            E::NotYourStep { .. } => (403, "wrong_reviewer", None, Some("R-ACC-01")),
            E::NotApplicantsSupervisor => (403, "wrong_reviewer", None, Some("R-ACC-01")),
            E::OwnApplication => (403, "own_application", None, Some("R-ACC-04")),
            E::AlreadyReviewed => (403, "already_reviewed", None, Some("R-ACC-04")),
            E::ContractorApplicant => (403, "vendor_personnel", None, Some("R-ACC-08")),
            E::UsernameTaken => (409, "username_taken", Some("username"), None),
            E::CertificateInUse => (409, "certificate_in_use", Some("certificate_serial"), None),
            E::OwnAccount { .. } => (403, "own_account", None, Some("R-ACC-04")),
            E::AccountClosed { .. } => (409, "account_closed", None, None),
            E::NotActive { .. } => (409, "not_active", None, None),
            E::NotSuspended { .. } => (409, "not_suspended", None, None),
            E::LastAccountManager => (409, "last_account_manager", None, Some("R-ACC-06")),
            E::HandoverNotPermitted => (403, "handover_not_permitted", None, Some("R-ACC-06")),
            E::VendorStaffAccount { .. } => (422, "vendor_staff_account", Some("grants"), Some("R-VEN-08")),
            E::NoContractorConflict => (409, "no_contractor_conflict", None, Some("R-VEN-08")),
            E::StillContractorPersonnel => (409, "contractor_conflict", None, Some("R-VEN-08")),
            E::LinkStatusConflict { .. } => (409, "link_status", None, None),
            E::LinkNotInForce { .. } => (409, "link_status", None, None),
            E::LinkExists { .. } => (409, "link_exists", None, Some("R-LINK-05")),
            E::RequestPending => (409, "request_pending", None, None),
            E::AlreadyDecided => (409, "already_decided", None, None),
            E::NothingToDecide => (409, "nothing_to_decide", None, Some("R-LINK-03")),
            E::RulesIncomplete { .. } => {
                (422, "rules_incomplete", Some("management_rules.coverage"), Some("R-LINK-04"))
            }
            E::ItemWithoutLegalBasis { .. } => {
                (422, "item_without_legal_basis", Some("items[2].legal_basis"), Some("R-LINK-03"))
            }
            E::NoChange => (422, "no_change", Some("changes"), Some("R-LINK-05")),
            E::NotEntitledToApply { .. } => (403, "not_entitled_to_apply", None, Some("R-LINK-11")),
            E::RemediationOutstanding { .. } => (409, "remediation_outstanding", None, Some("R-LINK-07")),
            E::ResumptionTooLate { .. } => (409, "new_application_required", None, Some("R-LINK-07")),
            E::TerminationNoticeTooShort { .. } => {
                (422, "termination_notice_too_short", Some("termination_date"), Some("R-LINK-08"))
            }
            E::NotDormant => (409, "not_dormant", None, Some("R-LINK-10")),
            E::Missing { .. } => (422, "missing_field", Some("reason"), None),
            E::Invalid { .. } => (422, "invalid_field", Some("ips[1]"), None),
            E::Unavailable(Dependency::Vendors) => (503, "vendors_unavailable", None, None),
            E::Unavailable(Dependency::ImmigrationAgency) => (503, "nia_unavailable", None, None),
            E::Db(_) => (503, "database_unavailable", None, None),
            E::Internal(_) => (500, "internal_error", None, None),
        }
    }

    fn samples() -> Vec<IdentityError> {
        use IdentityError as E;
        vec![
            E::LoginRefused,
            E::Throttled { retry_after_seconds: 30 },
            E::SessionEnded(SessionRefusal::Ended(SessionEndReason::IdleTimeout)),
            E::LoginBusy,
            E::RoleRequired { roles: &["account_manager", "it_officer"] },
            E::NotFound("the account"),
            E::NotAwaitingReview { status: ApplicationStatus::Rejected },
            E::ReviewedMeanwhile,
            E::NotYourStep { step: ReviewStep::ManagerReview, role: "account_manager" },
            E::NotApplicantsSupervisor,
            E::OwnApplication,
            E::AlreadyReviewed,
            E::ContractorApplicant,
            E::UsernameTaken,
            E::CertificateInUse,
            E::OwnAccount { action: "suspend" },
            E::AccountClosed { status: AccountStatus::Cancelled },
            E::NotActive { status: AccountStatus::Suspended },
            E::NotSuspended { status: AccountStatus::Terminated },
            E::LastAccountManager,
            E::HandoverNotPermitted,
            E::VendorStaffAccount { field: "grants" },
            E::NoContractorConflict,
            E::StillContractorPersonnel,
            E::LinkStatusConflict { status: LinkStatus::Terminated, wanted: LinkStatus::Active },
            E::LinkNotInForce { status: LinkStatus::Lapsed },
            E::LinkExists { link_id: LinkId::new("0192f0c4-0000-7000-8000-000000000000") },
            E::RequestPending,
            E::AlreadyDecided,
            E::NothingToDecide,
            E::RulesIncomplete { missing: vec![RulesItem::AuditProcedure, RulesItem::UserLiability] },
            E::ItemWithoutLegalBasis { index: 2, query_type: "eid_photo".into() },
            E::NoChange,
            E::NotEntitledToApply { agency: AgencyCode::new("PRV-SW") },
            E::RemediationOutstanding { notices: 1 },
            E::ResumptionTooLate { suspended_on: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default() },
            E::TerminationNoticeTooShort { earliest: chrono::NaiveDate::from_ymd_opt(2027, 1, 3).unwrap_or_default() },
            E::NotDormant,
            E::Missing { field: "reason".into() },
            E::Invalid { field: "ips[1]".into(), detail: "not an IP address".into() },
            E::Unavailable(Dependency::Vendors),
            E::Unavailable(Dependency::ImmigrationAgency),
            E::Db(DbError::Unavailable("timed out waiting for a connection".into())),
            E::Internal("stored application is unreadable".into()),
        ]
    }

    #[test]
    fn every_case_maps_to_its_wire_answer() {
        // 43 cases; `Unavailable` has two samples, one per dependency.
        assert_every_case_maps(samples(), 43, expected);
    }

    #[test]
    fn refusals_say_what_was_refused() {
        let role = ApiError::from(IdentityError::RoleRequired { roles: &["account_manager", "it_officer"] });
        assert_eq!(role.to_problem().detail, "this action needs one of the roles: account_manager, it_officer");
        let closed = ApiError::from(IdentityError::AccountClosed { status: AccountStatus::Cancelled });
        assert_eq!(closed.to_problem().detail, "the account is already cancelled");
        let own = ApiError::from(IdentityError::OwnAccount { action: "reinstate" });
        assert_eq!(own.to_problem().detail, "managers cannot reinstate their own account");
        let down = ApiError::from(IdentityError::Unavailable(Dependency::Vendors));
        assert_eq!(down.to_problem().detail, "the vendors service is not answering; try again shortly");
    }
}
