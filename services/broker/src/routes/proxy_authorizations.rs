//! Proxy authorisations (移民資料代查授權單, R-QRY-06): issued by the user who needs the data to a
//! colleague of the same agency who runs the lookups on their behalf.

use actix_web::{get, post, web, HttpResponse};
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{ApiJson, ApiQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::forms::Caller;
use crate::domain::proxy::{self, NewProxyAuthorization, ProxyAuthorizationBody, ProxyAuthorizationView, ProxyFilter};
use crate::State;

/// Issue a proxy authorisation (R-QRY-06).
///
/// The caller is the grantor. The grantee must be an active user of the same agency; the validity
/// period starts now or later and lasts at most 90 days. Lookups on the grantor's behalf name this
/// authorisation (`proxy_authorization_id`) and are audited with both users.
#[utoipa::path(post, path = "/v1/proxy-authorizations", tag = "proxy-authorizations", security(("bearer" = [])),
    request_body = ProxyAuthorizationBody,
    responses(
        (status = 201, body = ProxyAuthorizationView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid, or the grantee is not an active colleague (R-QRY-06)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity or the database is not answering", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/proxy-authorizations")]
pub async fn create(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<ProxyAuthorizationBody>,
) -> ApiResult<HttpResponse> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let new = NewProxyAuthorization::parse(body.into_inner(), &caller, now)?;
    let (grantor, grantee) =
        futures_util::future::try_join(state.identity.user(&caller.user_id), state.identity.user(&new.grantee_user_id))
            .await?;
    let view =
        state.db.run(move |conn| proxy::issue(conn, now, &caller, grantor.as_ref(), grantee.as_ref(), &new)).await?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(view))
}

/// Proxy authorisations the caller gave or received; account managers and auditors see all of their
/// agency's. Newest first.
#[utoipa::path(get, path = "/v1/proxy-authorizations", tag = "proxy-authorizations", security(("bearer" = [])),
    params(ProxyFilter),
    responses(
        (status = 200, body = Vec<ProxyAuthorizationView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown filter value", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/proxy-authorizations")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ProxyFilter>,
) -> ApiResult<web::Json<Vec<ProxyAuthorizationView>>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let filter = query.into_inner();
    Ok(web::Json(state.db.run(move |conn| proxy::list(conn, now, &caller, &filter)).await?))
}

/// One proxy authorisation, for its grantor, its grantee, and the account managers and auditors of
/// its agency.
#[utoipa::path(get, path = "/v1/proxy-authorizations/{id}", tag = "proxy-authorizations", security(("bearer" = [])),
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
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let id = id.into_inner();
    Ok(web::Json(state.db.run(move |conn| proxy::get(conn, now, &caller, &id)).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "案件已結案"}))]
pub struct RevocationBody {
    /// Why the authorisation ends early.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// Revoke a proxy authorisation before its end: its grantor or an account manager of its agency.
/// Its terms stay as they were; the revocation is recorded beside them.
#[utoipa::path(post, path = "/v1/proxy-authorizations/{id}/revocation", tag = "proxy-authorizations", security(("bearer" = [])),
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
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let id = id.into_inner();
    let reason = body.into_inner().reason;
    let view = state.db.run(move |conn| proxy::revoke(conn, now, &caller, &id, reason)).await?;
    state.relay.wake();
    Ok(web::Json(view))
}

#[cfg(test)]
mod tests {
    #[test]
    fn r_qry_06_proxy_authorization_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method, statuses) in [
            ("/v1/proxy-authorizations", "post", &["201", "401", "422"][..]),
            ("/v1/proxy-authorizations", "get", &["200", "401"][..]),
            ("/v1/proxy-authorizations/{id}", "get", &["200", "404"][..]),
            ("/v1/proxy-authorizations/{id}/revocation", "post", &["200", "403", "404", "409", "422"][..]),
        ] {
            for status in statuses {
                assert!(paths[path][method]["responses"][status].is_object(), "{method} {path} {status}");
            }
        }
    }
}
