//! Proxy authorizations (移民資料代查授權單, R-QRY-06): issued by the user who needs the data to a
//! colleague of the same agency who runs the lookups on their behalf.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use immilink_shared::auth::Caller;
use immilink_shared::catalogue::QueryType;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::fields;
use crate::domain::proxy::{self, NewProxyAuthorization, ProxyAuthorization, ProxyFilter, ProxyStatus};
use crate::domain::{BrokerError, ProxyAuthorizationId};
use crate::State;

// Option fields: a missing one is refused by name (422), not as a generic parse failure.
/// A proxy authorization as the grantor fills it in.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "grantee_user_id": "0192f0c4-0000-7000-8000-000000000002",
    "case_number": "TPE-SW-2026-000123",
    "query_types": ["entry_exit_last_year"],
    "valid_until": "2026-12-23T00:00:00+08:00",
    "reason": "承辦人出差，請同科同仁代為查詢"
}))]
pub struct ProxyAuthorizationBody {
    /// The colleague (same agency, active account) who will run the lookups.
    #[schema(required = true, nullable = false)]
    pub grantee_user_id: Option<String>,
    /// The case the lookups serve (案號).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub case_number: Option<String>,
    /// The query types covered; at least one, each once.
    #[schema(value_type = Vec<QueryType>, required = true, nullable = false, min_items = 1)]
    pub query_types: Option<Vec<String>>,
    /// Start of validity (RFC 3339); default now. Never in the past.
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity (RFC 3339, exclusive): after `valid_from`, at most 90 days after it.
    #[schema(required = true, nullable = false)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Why the grantor cannot run the lookups themselves.
    pub reason: Option<String>,
}

impl ProxyAuthorizationBody {
    /// The authorization `grantor` fills in at `now`, through the domain's field rules; refused naming
    /// the first bad field.
    fn parse(self, grantor: &Caller, now: DateTime<Utc>) -> Result<NewProxyAuthorization, BrokerError> {
        Ok(NewProxyAuthorization {
            grantee_user_id: proxy::grantee(grantor, self.grantee_user_id)?,
            case_number: fields::case_number(self.case_number, proxy::RULE)?,
            query_types: proxy::query_types(self.query_types)?,
            validity: proxy::validity(now, self.valid_from, self.valid_until)?,
            reason: proxy::reason(self.reason)?,
        })
    }
}

/// A proxy authorization (移民資料代查授權單).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProxyAuthorizationView {
    pub id: String,
    /// Agency code of both users.
    pub agency: String,
    /// Who needs the data and authorizes the lookup (授權人).
    pub grantor_user_id: String,
    pub grantor_name: String,
    /// Who runs the lookup on the grantor's behalf (代查人).
    pub grantee_user_id: String,
    pub grantee_name: String,
    pub case_number: String,
    pub query_types: Vec<QueryType>,
    pub valid_from: DateTime<Utc>,
    /// Exclusive end of validity.
    pub valid_until: DateTime<Utc>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Computed from the clock at the time of the answer.
    pub status: ProxyStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revocation_reason: Option<String>,
}

impl From<ProxyAuthorization> for ProxyAuthorizationView {
    fn from(record: ProxyAuthorization) -> Self {
        Self {
            id: record.id.into_inner(),
            agency: record.agency.into_inner(),
            grantor_user_id: record.grantor_user_id.into_inner(),
            grantor_name: record.grantor_name,
            grantee_user_id: record.grantee_user_id.into_inner(),
            grantee_name: record.grantee_name,
            case_number: record.case_number.into_inner(),
            query_types: record.query_types,
            valid_from: record.validity.from,
            valid_until: record.validity.until,
            reason: record.reason,
            created_at: record.created_at,
            status: record.status,
            revoked_at: record.revoked_at,
            revoked_by: record.revoked_by.map(|user| user.into_inner()),
            revocation_reason: record.revocation_reason,
        }
    }
}

/// `GET /v1/proxy-authorizations` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProxyListFilter {
    /// Only authorizations in this state now.
    pub status: Option<ProxyStatus>,
}

/// Issue a proxy authorization (R-QRY-06).
///
/// The caller is the grantor. The grantee must be an active user of the same agency; the validity
/// period starts now or later and lasts at most 90 days. Lookups on the grantor's behalf name this
/// authorization (`proxy_authorization_id`) and are audited with both users. Contractor personnel
/// issue none (R-VEN-08): nobody looks up on their behalf.
#[utoipa::path(post, path = "/v1/proxy-authorizations",
    extensions(("x-immilink-rules" = json!(["R-QRY-06", "R-VEN-08"]))),
    tag = "proxy-authorizations", security(("bearer" = [])),
    request_body = ProxyAuthorizationBody,
    responses(
        (status = 201, body = ProxyAuthorizationView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The grantor is contractor personnel: nobody looks up on their behalf (`contractor_personnel`, R-VEN-08)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid, or the grantee is not an active colleague (R-QRY-06)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity or the database is not answering", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/proxy-authorizations")]
pub async fn create(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<ProxyAuthorizationBody>,
) -> ApiResult<HttpResponse> {
    let caller = caller.caller();
    let now = state.clock.now();
    let new = body.into_inner().parse(&caller, now)?;
    let (grantor, grantee) =
        futures_util::future::try_join(state.identity.user(&caller.user_id), state.identity.user(&new.grantee_user_id))
            .await?;
    let record =
        state.db.run(move |conn| proxy::issue(conn, now, &caller, grantor.as_ref(), grantee.as_ref(), &new)).await?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(ProxyAuthorizationView::from(record)))
}

/// Proxy authorizations the caller gave or received; account managers and auditors see all of their
/// agency's. Newest first.
#[utoipa::path(get, path = "/v1/proxy-authorizations",
    extensions(("x-immilink-rules" = json!(["R-QRY-06"]))),
    tag = "proxy-authorizations", security(("bearer" = [])),
    params(ProxyListFilter, PageQuery),
    responses(
        (status = 200, body = Vec<ProxyAuthorizationView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown filter value, or `limit` outside 1–500", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/proxy-authorizations")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<ProxyListFilter>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<ProxyAuthorizationView>>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let filter = ProxyFilter { status: filter.into_inner().status };
    let page = page.into_inner().page()?;
    let records = state.db.run(move |conn| proxy::list(conn, now, &caller, &filter, &page)).await?;
    Ok(web::Json(records.into_iter().map(ProxyAuthorizationView::from).collect()))
}

/// One proxy authorization, for its grantor, its grantee, and the account managers and auditors of
/// its agency.
#[utoipa::path(get, path = "/v1/proxy-authorizations/{id}",
    extensions(("x-immilink-rules" = json!(["R-QRY-06"]))),
    tag = "proxy-authorizations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = ProxyAuthorizationView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/proxy-authorizations/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<ProxyAuthorizationView>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let id = ProxyAuthorizationId::new(id.into_inner());
    let record = state.db.run(move |conn| proxy::get(conn, now, &caller, &id)).await?;
    Ok(web::Json(record.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "案件已結案"}))]
pub struct RevocationBody {
    /// Why the authorization ends early.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// Revoke a proxy authorization before its end: its grantor or an account manager of its agency.
/// Its terms stay as they were; the revocation is recorded beside them.
#[utoipa::path(post, path = "/v1/proxy-authorizations/{id}/revocation",
    extensions(("x-immilink-rules" = json!(["R-QRY-06"]))),
    tag = "proxy-authorizations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RevocationBody,
    responses(
        (status = 200, body = ProxyAuthorizationView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the grantor nor an account manager", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already revoked or expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/proxy-authorizations/{id}/revocation")]
pub async fn revoke(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<RevocationBody>,
) -> ApiResult<web::Json<ProxyAuthorizationView>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let id = ProxyAuthorizationId::new(id.into_inner());
    let reason = proxy::revocation_reason(body.into_inner().reason)?;
    let record = state.db.run(move |conn| proxy::revoke(conn, now, &caller, &id, &reason)).await?;
    state.relay.wake();
    Ok(web::Json(record.into()))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use immilink_shared::typed::{AgencyCode, SessionId, UserId};
    use immilink_shared::ApiError;

    use super::*;

    const GRANTOR: &str = "01930000-0000-7000-8000-000000000001";

    fn grantor() -> Caller {
        Caller {
            user_id: UserId::new(GRANTOR),
            session_id: SessionId::new("s"),
            agency: AgencyCode::new("TPE-SW"),
            unit: None,
            roles: vec!["caseworker".into()],
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
    }

    fn body() -> ProxyAuthorizationBody {
        ProxyAuthorizationBody {
            grantee_user_id: Some("01930000-0000-7000-8000-000000000002".into()),
            case_number: Some(" TPE-2026-7 ".into()),
            query_types: Some(vec!["entry_exit_last_year".into()]),
            valid_from: None,
            valid_until: Some(now() + Duration::days(30)),
            reason: None,
        }
    }

    /// The body becomes the domain's form through its field rules; every refusal is a 422 naming its
    /// field and R-QRY-06.
    #[test]
    fn a_proxy_authorization_body_is_parsed_field_by_field() {
        let new = body().parse(&grantor(), now()).unwrap();
        assert_eq!(new.case_number.as_str(), "TPE-2026-7");
        assert_eq!(new.validity.from, now());
        type Edit = fn(&mut ProxyAuthorizationBody);
        let refusals: [(&str, Edit); 5] = [
            ("grantee_user_id", |b| b.grantee_user_id = Some(GRANTOR.into())),
            ("case_number", |b| b.case_number = None),
            ("query_types", |b| b.query_types = Some(vec![])),
            ("valid_until", |b| b.valid_until = None),
            ("reason", |b| b.reason = Some("x".repeat(501))),
        ];
        for (field, edit) in refusals {
            let mut b = body();
            edit(&mut b);
            let problem = ApiError::from(b.parse(&grantor(), now()).unwrap_err()).to_problem();
            assert_eq!((problem.status, problem.field.as_deref()), (422, Some(field)));
            assert_eq!(problem.rule.as_deref(), Some("R-QRY-06"), "{field}");
        }
    }

    #[test]
    fn proxy_authorization_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method, statuses) in [
            ("/v1/proxy-authorizations", "post", &["201", "401", "422"][..]),
            ("/v1/proxy-authorizations", "get", &["200", "401", "422"][..]),
            ("/v1/proxy-authorizations/{id}", "get", &["200", "404"][..]),
            ("/v1/proxy-authorizations/{id}/revocation", "post", &["200", "403", "404", "409", "422"][..]),
        ] {
            for status in statuses {
                assert!(paths[path][method]["responses"][status].is_object(), "{method} {path} {status}");
            }
        }
    }
}
