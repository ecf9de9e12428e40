//! The one place a [`BrokerError`] becomes a problem (RFC 9457): its status, stable `code`, the
//! offending `field`, the SPEC `rule`, a hint and `Retry-After`. The wire answers are a contract
//! (API.md, the OpenAPI documents, the end-to-end tests); a test walks every case.

use actix_web::http::StatusCode;
use immilink_shared::ApiError;

use crate::domain::proxy::ProxyRefusal;
use crate::domain::{BrokerError, RateScope};

const UPSTREAM_DOWN_HINT: &str = "if the case cannot wait, file a doubt query (疑義查詢表, 附件二) at POST \
     /v1/doubt-queries and send the official follow-up document within 3 days counted from the day after the fax";

/// The one place a broker error becomes a problem.
impl From<BrokerError> for ApiError {
    fn from(err: BrokerError) -> Self {
        use BrokerError as E;
        let detail = err.to_string();
        let forbidden = |code: &'static str, rule: &'static str| ApiError::forbidden(code, &detail).rule(rule);
        let conflict = |code: &'static str, rule: &'static str| ApiError::conflict(code, &detail).rule(rule);
        let with_rule = |problem: ApiError, rule: Option<&'static str>| match rule {
            Some(rule) => problem.rule(rule),
            None => problem,
        };
        match err {
            E::Missing { field, rule } => with_rule(ApiError::missing_field(&field), rule),
            E::Invalid { field, rule, .. } => with_rule(ApiError::invalid_field(field, detail), rule),
            E::UnknownCode { field, catalogue, rule, .. } => {
                ApiError::invalid_field(field, detail).rule(rule).hint(format!("{catalogue} lists the codes"))
            }
            E::UnknownQueryType { field, rule, .. } => {
                ApiError::invalid_field(field, detail).rule(rule).hint("GET /v1/catalogue/query-types lists the codes")
            }
            E::InvalidIdentifier { field, error, .. } => {
                ApiError::invalid_field(field, detail).rule("R-QRY-04").hint(format!("reason code: {}", error.code()))
            }
            E::NoSubjectIdentifier { field } => ApiError::missing_field(field).detail(detail).rule("R-QRY-04"),
            E::NotOneIdPerLine { index, .. } => {
                ApiError::invalid_field(format!("subject_ids[{index}]"), detail).rule("R-QRY-04")
            }
            E::EmptyBatch | E::BatchTooLarge { .. } => ApiError::invalid_field("subject_ids", detail),
            E::ProxyOnBatch => ApiError::invalid_field("proxy_authorization_id", detail),
            E::NotPermitted { .. } => forbidden("not_permitted", "R-QRY-02"),
            // The code is the refusal's (identity's own, or `item_not_on_link`); the detail identity's sentence.
            E::LinkRefused { refusal, .. } => forbidden(refusal.as_str(), refusal.rule()),
            E::ProxyAuthorizationInvalid(refusal) => {
                let problem = forbidden("proxy_authorization_invalid", "R-QRY-06").field("proxy_authorization_id");
                match refusal {
                    // The grantor cannot issue a new one that would serve: there is nothing to hint at.
                    ProxyRefusal::GrantorInactive => problem,
                    _ => problem.hint("the grantor issues one with POST /v1/proxy-authorizations"),
                }
            }
            E::SupervisorApprovalRequired(_) => forbidden("supervisor_approval_required", "R-QRY-10")
                .field("purpose_code")
                .hint("ask your unit supervisor with POST /v1/purpose-approvals"),
            // R-QRY-02's refusal (`not_permitted`), for the purpose an approval would cover.
            E::PurposeNotPermitted(_) => forbidden("not_permitted", "R-QRY-10").field("purpose_code"),
            E::CaseworkerRequired | E::UnitSupervisorRequired => forbidden("role_required", "R-QRY-10"),
            E::NoUnit => forbidden("unit_required", "R-QRY-10"),
            E::OwnRequest => forbidden("own_request", "R-QRY-10"),
            E::OtherUnit => forbidden("other_unit", "R-QRY-10"),
            E::NotGrantor => forbidden("not_grantor", "R-QRY-06"),
            E::ContractorGrantor => forbidden("contractor_personnel", "R-VEN-08"),
            E::NotFiler => forbidden("not_filer", "R-QRY-09"),
            E::UnknownToIdentity | E::SessionEnded => ApiError::unauthenticated(detail),
            E::NotFound(what) => ApiError::not_found(what),
            E::AlreadyPending => conflict("already_pending", "R-QRY-10"),
            E::AlreadyDecided => conflict("already_decided", "R-QRY-10"),
            E::AlreadyRevoked => conflict("already_revoked", "R-QRY-06"),
            E::AlreadyExpired => conflict("already_expired", "R-QRY-06"),
            E::FollowUpAlreadyRecorded => conflict("follow_up_already_recorded", "R-QRY-09"),
            E::IllegalTransition { .. } => ApiError::conflict("illegal_transition", detail),
            E::AuditBacklog => ApiError::unavailable("audit_backlog", detail).rule("R-QRY-08").retry_after(30),
            E::AuditUnavailable => ApiError::unavailable("audit_unavailable", detail).rule("R-QRY-08").retry_after(5),
            E::UpstreamUnavailable { retry_after, .. } => {
                let problem =
                    ApiError::unavailable("upstream_unavailable", detail).rule("R-QRY-09").hint(UPSTREAM_DOWN_HINT);
                match retry_after {
                    Some(seconds) => problem.retry_after(seconds),
                    None => problem,
                }
            }
            E::UpstreamCredentialMissing => {
                ApiError::unavailable("upstream_credential_missing", detail).rule("R-QRY-02")
            }
            E::UpstreamRejected { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_rejected",
                "The upstream refused the query",
                "上游拒絕查詢",
            )
            .detail(detail),
            E::UpstreamMalformed(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_malformed",
                "The upstream answer was not usable",
                "上游回應無法使用",
            )
            .detail(detail),
            E::IdentityUnavailable => ApiError::unavailable("identity_unavailable", detail),
            E::RateLimited { scope, retry_after, .. } => {
                let code = match scope {
                    RateScope::User => "user_rate_limited",
                    RateScope::Agency => "agency_rate_limited",
                };
                ApiError::too_many_requests(code, detail, retry_after)
            }
            E::Db(err) => err.into(),
            E::Internal(cause) => ApiError::internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use immilink_shared::catalogue::QueryType;
    use immilink_shared::db::DbError;
    use immilink_shared::ids::IdError;
    use immilink_shared::problem::{assert_every_case_maps, WireAnswer};

    use super::*;
    use crate::domain::approvals::{ApprovalMissing, MissingBecause, PurposeRefusal, Whose};
    use crate::domain::link::LinkRefusal;

    /// One of every case, with what it must answer: (status, code, field, rule). The match in
    /// `expected` has no wildcard, so a new case does not compile until it is listed here.
    fn expected(err: &BrokerError) -> WireAnswer {
        use BrokerError as E;
        match err {
            E::Missing { .. } => (422, "missing_field", Some("case_number"), Some("R-QRY-01")),
            E::Invalid { .. } => (422, "invalid_field", Some("remarks"), None),
            E::UnknownCode { .. } => (422, "invalid_field", Some("legal_basis"), Some("R-QRY-01")),
            E::UnknownQueryType { .. } => (422, "invalid_field", Some("query_type"), Some("R-QRY-03")),
            E::InvalidIdentifier { .. } => (422, "invalid_field", Some("subject_ids[5]"), Some("R-QRY-04")),
            E::NoSubjectIdentifier { .. } => (422, "missing_field", Some("subject_national_id"), Some("R-QRY-04")),
            E::NotOneIdPerLine { .. } => (422, "invalid_field", Some("subject_ids[2]"), Some("R-QRY-04")),
            E::EmptyBatch => (422, "invalid_field", Some("subject_ids"), None),
            E::BatchTooLarge { .. } => (422, "invalid_field", Some("subject_ids"), None),
            E::ProxyOnBatch => (422, "invalid_field", Some("proxy_authorization_id"), None),
            E::NotPermitted { .. } => (403, "not_permitted", None, Some("R-QRY-02")),
            E::LinkRefused { refusal, .. } => match refusal {
                LinkRefusal::NoActiveLink => (403, "no_active_link", None, Some("R-LINK-02")),
                LinkRefusal::LinkPending => (403, "link_pending", None, Some("R-LINK-03")),
                LinkRefusal::LinkSuspended => (403, "link_suspended", None, Some("R-LINK-06")),
                LinkRefusal::LinkLapsed => (403, "link_lapsed", None, Some("R-LINK-07")),
                LinkRefusal::LinkTerminated => (403, "link_terminated", None, Some("R-LINK-08")),
                LinkRefusal::LinkStopped => (403, "link_stopped", None, Some("R-LINK-09")),
                LinkRefusal::LinkDormantStopped => (403, "link_dormant_stopped", None, Some("R-LINK-10")),
                LinkRefusal::OutsideUsagePeriod => (403, "outside_usage_period", None, Some("R-LINK-12")),
                LinkRefusal::ItemNotOnLink => (403, "item_not_on_link", None, Some("R-LINK-03")),
                LinkRefusal::ContractorConflict => (403, "contractor_conflict", None, Some("R-VEN-08")),
            },
            E::ProxyAuthorizationInvalid(_) => {
                (403, "proxy_authorization_invalid", Some("proxy_authorization_id"), Some("R-QRY-06"))
            }
            E::SupervisorApprovalRequired(_) => {
                (403, "supervisor_approval_required", Some("purpose_code"), Some("R-QRY-10"))
            }
            E::PurposeNotPermitted(_) => (403, "not_permitted", Some("purpose_code"), Some("R-QRY-10")),
            E::CaseworkerRequired => (403, "role_required", None, Some("R-QRY-10")),
            E::UnitSupervisorRequired => (403, "role_required", None, Some("R-QRY-10")),
            E::NoUnit => (403, "unit_required", None, Some("R-QRY-10")),
            E::OwnRequest => (403, "own_request", None, Some("R-QRY-10")),
            E::OtherUnit => (403, "other_unit", None, Some("R-QRY-10")),
            E::NotGrantor => (403, "not_grantor", None, Some("R-QRY-06")),
            E::ContractorGrantor => (403, "contractor_personnel", None, Some("R-VEN-08")),
            E::NotFiler => (403, "not_filer", None, Some("R-QRY-09")),
            E::UnknownToIdentity => (401, "unauthenticated", None, None),
            E::SessionEnded => (401, "unauthenticated", None, None),
            E::NotFound(_) => (404, "not_found", None, None),
            E::AlreadyPending => (409, "already_pending", None, Some("R-QRY-10")),
            E::AlreadyDecided => (409, "already_decided", None, Some("R-QRY-10")),
            E::AlreadyRevoked => (409, "already_revoked", None, Some("R-QRY-06")),
            E::AlreadyExpired => (409, "already_expired", None, Some("R-QRY-06")),
            E::FollowUpAlreadyRecorded => (409, "follow_up_already_recorded", None, Some("R-QRY-09")),
            E::IllegalTransition { .. } => (409, "illegal_transition", None, None),
            E::AuditBacklog => (503, "audit_backlog", None, Some("R-QRY-08")),
            E::AuditUnavailable => (503, "audit_unavailable", None, Some("R-QRY-08")),
            E::UpstreamUnavailable { .. } => (503, "upstream_unavailable", None, Some("R-QRY-09")),
            E::UpstreamCredentialMissing => (503, "upstream_credential_missing", None, Some("R-QRY-02")),
            E::UpstreamRejected { .. } => (502, "upstream_rejected", None, None),
            E::UpstreamMalformed(_) => (502, "upstream_malformed", None, None),
            E::IdentityUnavailable => (503, "identity_unavailable", None, None),
            E::RateLimited { scope: RateScope::User, .. } => (429, "user_rate_limited", None, None),
            E::RateLimited { scope: RateScope::Agency, .. } => (429, "agency_rate_limited", None, None),
            E::Db(DbError::Unavailable(_)) => (503, "database_unavailable", None, None),
            E::Db(_) => (500, "internal_error", None, None),
            E::Internal(_) => (500, "internal_error", None, None),
        }
    }

    fn every_case() -> Vec<BrokerError> {
        use BrokerError as E;
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let link_refusals = LinkRefusal::ALL
            .iter()
            .map(|refusal| E::LinkRefused { refusal: *refusal, detail: format!("TPE-SW's link: {refusal}") });
        vec![
            E::Missing { field: "case_number".into(), rule: Some("R-QRY-01") },
            E::invalid("remarks", "must be at most 500 characters"),
            E::UnknownCode {
                field: "legal_basis".into(),
                value: "made_up_act".into(),
                catalogue: "GET /v1/catalogue/legal-bases",
                rule: "R-QRY-01",
            },
            E::UnknownQueryType { field: "query_type".into(), value: "gossip".into(), rule: "R-QRY-03" },
            E::InvalidIdentifier { field: "subject_ids[5]".into(), error: IdError::Empty, line: Some(7) },
            E::NoSubjectIdentifier { field: "subject_national_id" },
            E::NotOneIdPerLine { index: 2, line: 4, fields: 2 },
            E::EmptyBatch,
            E::BatchTooLarge { count: 10_001, max: 10_000 },
            E::ProxyOnBatch,
            E::NotPermitted {
                query_type: QueryType::EidPhoto,
                purpose_code: "sw_statutory_business".into(),
                legal_basis: "social_assistance_act".into(),
            },
            E::ProxyAuthorizationInvalid(ProxyRefusal::Unknown),
            E::ProxyAuthorizationInvalid(ProxyRefusal::GrantorInactive),
            E::SupervisorApprovalRequired(ApprovalMissing {
                purpose_code: "hr_other_approved".into(),
                case_number: immilink_shared::typed::CaseNumber::new("HLN-2026-42"),
                because: MissingBecause::Lapsed { at: Some(at) },
            }),
            E::PurposeNotPermitted(PurposeRefusal { purpose_code: "hr_other_approved".into(), whose: Whose::Own }),
            E::PurposeNotPermitted(PurposeRefusal {
                purpose_code: "hr_other_approved".into(),
                whose: Whose::Requesters,
            }),
            E::CaseworkerRequired,
            E::UnitSupervisorRequired,
            E::NoUnit,
            E::OwnRequest,
            E::OtherUnit,
            E::NotGrantor,
            E::ContractorGrantor,
            E::NotFiler,
            E::UnknownToIdentity,
            E::SessionEnded,
            E::NotFound("the batch"),
            E::AlreadyPending,
            E::AlreadyDecided,
            E::AlreadyRevoked,
            E::AlreadyExpired,
            E::FollowUpAlreadyRecorded,
            E::IllegalTransition { what: "batch", from: "completed", to: "running" },
            E::AuditBacklog,
            E::AuditUnavailable,
            E::UpstreamUnavailable { reason: "connection refused".into(), retry_after: Some(15) },
            E::UpstreamCredentialMissing,
            E::UpstreamRejected { status: 404 },
            E::UpstreamMalformed("missing crossings".into()),
            E::IdentityUnavailable,
            E::RateLimited { scope: RateScope::User, limit: 120, retry_after: 7 },
            E::RateLimited { scope: RateScope::Agency, limit: 6000, retry_after: 3 },
            E::Db(DbError::Unavailable("pool timed out".into())),
            E::Db(DbError::Query(diesel::result::Error::RollbackTransaction)),
            E::Internal("a stored value does not parse".into()),
        ]
        .into_iter()
        .chain(link_refusals)
        .collect()
    }

    /// Every case keeps the wire answer clients and the OpenAPI documents rely on.
    #[test]
    fn every_broker_error_maps_to_its_problem() {
        assert_every_case_maps(every_case(), 42, expected);
    }

    #[test]
    fn r_link_06_a_link_refusal_is_a_403_with_identitys_code_rule_and_detail() {
        let detail = "TPE-SW's link is suspended since 2026-12-03: remediation overdue";
        let problem =
            ApiError::from(BrokerError::LinkRefused { refusal: LinkRefusal::LinkSuspended, detail: detail.into() })
                .to_problem();
        assert_eq!(
            (problem.status, problem.code.as_str(), problem.rule.as_deref(), problem.detail.as_str()),
            (403, "link_suspended", Some("R-LINK-06"), detail)
        );
    }

    #[test]
    fn details_hints_and_retry_after_are_kept() {
        let err = ApiError::from(BrokerError::InvalidIdentifier {
            field: "subject_ids[5]".into(),
            error: IdError::Empty,
            line: Some(7),
        });
        let problem = err.to_problem();
        assert!(problem.detail.starts_with("line 7: "), "{}", problem.detail);
        assert_eq!(problem.hint.as_deref(), Some("reason code: empty"));
        let response = actix_web::ResponseError::error_response(&ApiError::from(BrokerError::UpstreamUnavailable {
            reason: "open".into(),
            retry_after: Some(15),
        }));
        assert_eq!(response.headers().get("retry-after").unwrap(), "15");
        let backlog = actix_web::ResponseError::error_response(&ApiError::from(BrokerError::AuditBacklog));
        assert_eq!(backlog.headers().get("retry-after").unwrap(), "30");
        let limited = actix_web::ResponseError::error_response(&ApiError::from(BrokerError::RateLimited {
            scope: RateScope::User,
            limit: 3,
            retry_after: 42,
        }));
        assert_eq!(limited.headers().get("retry-after").unwrap(), "42");
        let upstream = ApiError::from(BrokerError::UpstreamUnavailable { reason: "x".into(), retry_after: None });
        assert!(upstream.to_problem().hint.is_some_and(|h| h.contains("疑義查詢表")));
        let missing = ApiError::from(BrokerError::NoSubjectIdentifier { field: "subject_arc_number" }).to_problem();
        assert!(missing.detail.starts_with("give at least one of"), "{}", missing.detail);
        assert_eq!(
            ApiError::from(BrokerError::missing("x").or_rule("R-QRY-06").or_rule("R-QRY-09"))
                .to_problem()
                .rule
                .as_deref(),
            Some("R-QRY-06")
        );
    }
}
