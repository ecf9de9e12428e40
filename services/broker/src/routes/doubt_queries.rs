//! Doubt queries (疑義查詢表, 附件二) filed while the upstream is down, and their official follow-up
//! documents (R-QRY-09).

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{client_ip, ApiJson, ApiQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;

use crate::domain::doubt::{self, DoubtFilter, DoubtQueryBody, DoubtQueryView, FollowUpBody, NewDoubtQuery};
use crate::domain::forms::Caller;
use crate::State;

/// Record a doubt query faxed to the immigration agency (R-QRY-09).
///
/// It is a query of personal data: the declaration is checked like a lookup's (R-QRY-01, R-QRY-02,
/// R-QRY-10 for "other business"), the subject's identifiers are validated (R-QRY-04), and its audit
/// event names the subject. The official follow-up document is due on the third day after the Taipei
/// date of the fax.
#[utoipa::path(post, path = "/v1/doubt-queries", tag = "doubt-queries", security(("bearer" = [])),
    request_body = DoubtQueryBody,
    responses(
        (status = 201, body = DoubtQueryView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted (R-QRY-02) or no supervisor approval in force (R-QRY-10)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01), invalid identifier (R-QRY-04) or form field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity or the database is not answering", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/doubt-queries")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<DoubtQueryBody>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let new = NewDoubtQuery::parse(body.into_inner(), now)?;
    let permissions = state.identity.permissions(&caller.claims.sid, &caller.token, client_ip(&req)).await?;
    new.authorise(&permissions)?;
    let caller = Caller::from(&caller.claims);
    let view = state.db.run(move |conn| doubt::file(conn, now, &caller, &new)).await?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(view))
}

/// The caller's own doubt queries; unit supervisors, account managers and auditors see their
/// agency's. Each says when its follow-up document is due and whether it is overdue now.
#[utoipa::path(get, path = "/v1/doubt-queries", tag = "doubt-queries", security(("bearer" = [])),
    params(DoubtFilter),
    responses(
        (status = 200, body = Vec<DoubtQueryView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid filter value", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/doubt-queries")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<DoubtFilter>,
) -> ApiResult<web::Json<Vec<DoubtQueryView>>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let filter = query.into_inner();
    Ok(web::Json(state.db.run(move |conn| doubt::list(conn, now, &caller, &filter)).await?))
}

/// One doubt query, for its filer and the unit supervisors, account managers and auditors of its
/// agency.
#[utoipa::path(get, path = "/v1/doubt-queries/{id}", tag = "doubt-queries", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DoubtQueryView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/doubt-queries/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<DoubtQueryView>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let id = id.into_inner();
    Ok(web::Json(state.db.run(move |conn| doubt::get(conn, now, &caller, &id)).await?))
}

/// Record the official follow-up document (補送公文): by the filer or a unit supervisor of the filer's
/// unit, once. One sent after the due date is recorded with `late: true`.
#[utoipa::path(post, path = "/v1/doubt-queries/{id}/follow-up", tag = "doubt-queries", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = FollowUpBody,
    responses(
        (status = 200, body = DoubtQueryView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the filer nor a supervisor of the filer's unit", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The follow-up is already recorded", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/doubt-queries/{id}/follow-up")]
pub async fn follow_up(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<FollowUpBody>,
) -> ApiResult<web::Json<DoubtQueryView>> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let id = id.into_inner();
    let body = body.into_inner();
    let view = state.db.run(move |conn| doubt::record_follow_up(conn, now, &caller, &id, body)).await?;
    state.relay.wake();
    Ok(web::Json(view))
}

/// The doubt query as the printable form 附件二 (Traditional Chinese, dates in the ROC calendar), to
/// print, stamp and fax. Self-contained HTML; not cached (it carries personal data).
#[utoipa::path(get, path = "/v1/doubt-queries/{id}/form", tag = "doubt-queries", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "附件二 as a printable HTML page", body = String, content_type = "text/html"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/doubt-queries/{id}/form")]
pub async fn form(state: web::Data<State>, caller: Authenticated, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let caller = Caller::from(&caller.claims);
    let now = state.clock.now();
    let id = id.into_inner();
    let html = state.db.run(move |conn| doubt::form(conn, now, &caller, &id)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

#[cfg(test)]
mod tests {
    /// The handlers are registered and documented, the form as HTML.
    #[test]
    fn r_qry_09_doubt_query_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method) in [
            ("/v1/doubt-queries", "post"),
            ("/v1/doubt-queries", "get"),
            ("/v1/doubt-queries/{id}", "get"),
            ("/v1/doubt-queries/{id}/follow-up", "post"),
            ("/v1/doubt-queries/{id}/form", "get"),
        ] {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path}");
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        }
        let form = &paths["/v1/doubt-queries/{id}/form"]["get"]["responses"]["200"]["content"];
        assert!(form["text/html"].is_object(), "{form}");
        let created = &paths["/v1/doubt-queries"]["post"]["responses"];
        for status in ["201", "403", "422"] {
            assert!(created[status].is_object(), "{status}");
        }
    }
}
