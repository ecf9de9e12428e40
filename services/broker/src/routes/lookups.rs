//! Purpose-bound lookups (R-QRY-01 to R-QRY-10), one at a time.

use actix_web::{post, web, HttpRequest};
use immilink_shared::auth::Caller;
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::extractors::{client_ip, ApiJson, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::lookup::{self, Context};
use crate::domain::request::{self, LookupRequest};
use crate::domain::{fields, proxy, BrokerError};
use crate::pipeline::{Accepted, Declared};
use crate::results::LookupResult;
use crate::State;

// The fields are `Option` in Rust so that a missing one is refused by name with the rule it breaks
// (R-QRY-01), not as a generic parse failure; the schema still marks them required.
/// A lookup declaration: the legal basis, purpose and case number are mandatory (R-QRY-01).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LookupBody {
    /// Query type code (see `GET /v1/catalogue/query-types`).
    #[schema(value_type = QueryType, required = true, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    /// National ID, UI number (old or new style) or, where the query type allows, a passport number.
    #[schema(required = true, nullable = false, min_length = 1, example = "A123456789")]
    pub subject_id: Option<String>,
    /// Legal basis code (see `GET /v1/catalogue/legal-bases`).
    #[schema(schema_with = catalogue::legal_basis_code_schema, required = true, example = "social_assistance_act")]
    pub legal_basis: Option<String>,
    /// Purpose code (see `GET /v1/catalogue/purposes`).
    #[schema(schema_with = catalogue::purpose_code_schema, required = true, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
    /// The case this lookup serves (案號).
    #[schema(required = true, nullable = false, min_length = 1, example = "TPE-SW-2026-000123")]
    pub case_number: Option<String>,
    /// 代查授權單: when querying on another user's behalf.
    pub proxy_authorization_id: Option<String>,
    /// Free-text remarks for the query record table.
    pub remarks: Option<String>,
}

impl LookupBody {
    /// What the body declared, kept (bounded) for the audit record of a refusal.
    fn declared(&self) -> Declared {
        Declared {
            query_type: Declared::bounded(self.query_type.as_deref()),
            subject_id: Declared::bounded(self.subject_id.as_deref()),
            legal_basis: Declared::bounded(self.legal_basis.as_deref()),
            purpose_code: Declared::bounded(self.purpose_code.as_deref()),
            case_number: Declared::bounded(self.case_number.as_deref()),
            proxy_authorization_id: Declared::bounded(self.proxy_authorization_id.as_deref()),
        }
    }

    /// The declaration through the domain's field rules, in the order a caseworker reads the form:
    /// why (legal basis, purpose, case), then what (query type, subject).
    fn parse(self) -> Result<LookupRequest, BrokerError> {
        let legal_basis = request::legal_basis(self.legal_basis)?;
        let purpose_code = request::purpose_code(self.purpose_code)?;
        let case_number = fields::case_number(self.case_number, request::RULE)?;
        let query_type = request::query_type(self.query_type)?;
        Ok(LookupRequest {
            subject: request::subject(query_type, self.subject_id)?,
            remarks: request::remarks(self.remarks)?,
            proxy_authorization_id: request::proxy_authorization_id(self.proxy_authorization_id),
            query_type,
            legal_basis,
            purpose_code,
            case_number,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupResponse {
    pub lookup_id: String,
    /// Id of the audit record made before the query was forwarded (`GET /v1/audit/records/{id}`).
    pub audit_id: String,
    pub query_type: QueryType,
    /// The subject ID as normalised and validated.
    pub subject_id: String,
    /// R-QRY-06: the user this lookup was run for, under a proxy authorization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of_user_id: Option<String>,
    /// Only the approved data items of the query type (R-QRY-07).
    pub result: LookupResult,
}

/// Run one purpose-bound lookup.
///
/// The declaration is checked (R-QRY-01, R-QRY-04), the agency's link must be usable now and carry
/// the query type (R-LINK), the caller's permission for the exact
/// (legal basis, purpose, query type) is checked (R-QRY-02), as are a proxy authorization when the
/// lookup runs on another's behalf (R-QRY-06) and the supervisor's approval for "other business"
/// (R-QRY-10). Every refusal names its rule and is itself audited. The lookup's audit record is made
/// durable before the query is forwarded (R-QRY-08); the answer carries only the approved items
/// (R-QRY-07).
#[utoipa::path(post, path = "/v1/lookups",
    extensions(("x-immilink-rules" = json!(["R-QRY-01", "R-QRY-02", "R-QRY-03", "R-QRY-04", "R-QRY-06", "R-QRY-07", "R-QRY-08", "R-QRY-09", "R-QRY-10", "R-LINK-03", "R-LINK-06", "R-LINK-08", "R-LINK-12", "R-VEN-08"]))),
    tag = "lookups", security(("bearer" = [])), request_body = LookupBody,
    responses(
        (status = 200, body = LookupResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agency's link cannot be used now, `code` and `rule` naming why (e.g. `link_suspended` R-LINK-06, `link_terminated` R-LINK-08, `outside_usage_period` R-LINK-12) or does not carry the query type (`item_not_on_link`, R-LINK-03); not permitted (R-QRY-02), no valid proxy authorization (R-QRY-06) or no supervisor approval (R-QRY-10)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01) or invalid subject ID (R-QRY-04)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Per-user or per-agency rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Upstream down: file a doubt query (R-QRY-09); or the audit trail cannot take the record (R-QRY-08)", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/lookups")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<LookupBody>,
) -> ApiResult<web::Json<LookupResponse>> {
    look_up(&req, &state, &caller, body.into_inner()).await.map(web::Json)
}

/// The lookup of an authenticated caller: admitted by the rate limits, accepted (every refusal
/// recorded, naming its rule), then run.
pub(crate) async fn look_up(
    req: &HttpRequest,
    state: &State,
    caller: &Authenticated,
    body: LookupBody,
) -> ApiResult<LookupResponse> {
    let who = caller.caller();
    state.limits.admit(&who, 1)?;
    let declared = body.declared();
    let accepted = match accept(req, state, caller, &who, body).await {
        Ok(accepted) => accepted,
        Err(refusal) => return Err(state.lookups.refuse(&who, &declared, refusal).await),
    };
    let (recorded, result) = state.lookups.run(&accepted).await?;
    Ok(LookupResponse {
        lookup_id: recorded.lookup_id.into_inner(),
        audit_id: recorded.audit_id.into_inner(),
        query_type: accepted.request.query_type,
        subject_id: accepted.request.subject.as_str().to_owned(),
        on_behalf_of_user_id: accepted.context.proxy.map(|p| p.on_behalf_of_user_id.into_inner()),
        result,
    })
}

/// Every check a lookup must pass before anything is recorded as forwarded: the declaration, the
/// agency's link and the caller's permission as identity answers them (R-LINK, R-QRY-02:
/// `colleagues::check_permitted`), what it runs under (R-QRY-06, R-QRY-10:
/// [`lookup::context_for`]), the grantor of a proxy authorization still an active member of the agency,
/// and whether the audit trail and the upstream can take it now.
async fn accept(
    req: &HttpRequest,
    state: &State,
    caller: &Authenticated,
    who: &Caller,
    body: LookupBody,
) -> Result<Accepted, BrokerError> {
    let request = body.parse()?;
    let entitlements = state.identity.permissions(&who.session_id, &caller.token, client_ip(req)).await?;
    request.authorize(&entitlements)?;
    let now = state.clock.now();
    let context = if request.needs_context() {
        let (who, request) = (who.clone(), request.clone());
        state.db.run(move |conn| lookup::context_for(conn, now, &who, &request)).await?
    } else {
        Context::default()
    };
    if let Some(proxy) = &context.proxy {
        let grantor = state.identity.user(&proxy.on_behalf_of_user_id).await?;
        proxy::check_grantor(grantor.as_ref(), &who.agency)?;
    }
    state.lookups.precheck(&who.agency, now)?;
    Ok(Accepted { who: who.clone(), request, context })
}

#[cfg(test)]
mod tests {
    use immilink_shared::ApiError;

    use super::*;

    fn body() -> LookupBody {
        LookupBody {
            query_type: Some("entry_exit_last_year".into()),
            subject_id: Some(" a123456789 ".into()),
            legal_basis: Some("social_assistance_act".into()),
            purpose_code: Some("sw_statutory_business".into()),
            case_number: Some(" TPE-2026-7 ".into()),
            ..LookupBody::default()
        }
    }

    fn refusal(body: LookupBody) -> (u16, Option<String>, Option<String>) {
        let problem = ApiError::from(body.parse().unwrap_err()).to_problem();
        (problem.status, problem.field, problem.rule)
    }

    #[test]
    fn r_qry_01_a_complete_declaration_parses_and_each_missing_one_is_named() {
        let request = body().parse().unwrap();
        assert_eq!(request.query_type, QueryType::EntryExitLastYear);
        assert_eq!((request.subject.as_str(), request.case_number.as_str()), ("A123456789", "TPE-2026-7"));
        assert_eq!(request.proxy_authorization_id, None);
        for field in ["legal_basis", "purpose_code", "case_number"] {
            let mut b = body();
            match field {
                "legal_basis" => b.legal_basis = None,
                "purpose_code" => b.purpose_code = Some("  ".into()),
                _ => b.case_number = None,
            }
            assert_eq!(refusal(b), (422, Some(field.to_owned()), Some("R-QRY-01".to_owned())));
        }
        let unknown = LookupBody { legal_basis: Some("made_up_act".into()), ..body() };
        assert_eq!(refusal(unknown), (422, Some("legal_basis".into()), Some("R-QRY-01".into())));
        let long_case = LookupBody { case_number: Some("x".repeat(65)), ..body() };
        assert_eq!(refusal(long_case).1.as_deref(), Some("case_number"));
        let bell = LookupBody { case_number: Some("a\u{0007}b".into()), ..body() };
        assert_eq!(refusal(bell).1.as_deref(), Some("case_number"));
    }

    #[test]
    fn r_qry_04_an_invalid_subject_is_refused_naming_the_field_and_the_rule() {
        let bad = LookupBody { subject_id: Some("A123456788".into()), ..body() };
        assert_eq!(refusal(bad), (422, Some("subject_id".into()), Some("R-QRY-04".into())));
        let absent = LookupBody { subject_id: None, ..body() };
        assert_eq!(refusal(absent), (422, Some("subject_id".into()), Some("R-QRY-04".into())));
        let passport = LookupBody { subject_id: Some("X1234567".into()), ..body() };
        assert_eq!(refusal(passport).1.as_deref(), Some("subject_id"), "not for a resident-only query type");
    }

    #[test]
    fn the_declared_values_of_a_refusal_are_kept_bounded() {
        let b = LookupBody { subject_id: Some(format!(" {} ", "x".repeat(100))), ..body() };
        let declared = b.declared();
        assert_eq!(declared.subject_id.map(|s| s.chars().count()), Some(64));
        assert_eq!(declared.case_number.as_deref(), Some("TPE-2026-7"));
    }
}
