//! The account lifecycle, driven by the agency's account manager (IP bindings also by its IT unit).
//! Every endpoint is scoped to the caller's own agency: another agency's account is a 404.

use std::net::IpAddr;

use actix_web::{get, post, put, web, HttpRequest};
use immilink_shared::extractors::ApiJson;
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{as_caller, reason, text};
use crate::domain::accounts::{self, AccountEvent, AccountView, HrEvent, SessionRecord};
use crate::State;

type Json<T> = ApiResult<web::Json<T>>;

/// The accounts of the caller's agency (account manager, agency head, auditor, IT unit).
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<AccountView>), (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/accounts")]
pub async fn list(req: HttpRequest, state: web::Data<State>, caller: Authenticated) -> Json<Vec<AccountView>> {
    Ok(web::Json(as_caller(&state, &req, caller, |conn, _, actor| accounts::list(conn, &actor)).await?))
}

/// Possible account lending (R-ACC-07): logins refused because the account had a live session from
/// another IP or device. The manager decides whether to suspend.
#[utoipa::path(get, path = "/v1/lending-flags", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<AccountEvent>), (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/lending-flags")]
pub async fn lending_flags(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
) -> Json<Vec<AccountEvent>> {
    Ok(web::Json(as_caller(&state, &req, caller, |conn, _, actor| accounts::lending_flags(conn, &actor)).await?))
}

/// One account with its roles, bound IPs, grants and history. Anyone may read their own.
#[utoipa::path(get, path = "/v1/accounts/{user_id}", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/accounts/{user_id}")]
pub async fn detail(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
) -> Json<AccountView> {
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, _, actor| accounts::detail(conn, &actor, &user_id)).await?,
    ))
}

/// The account's sessions with login and logout times (R-ACC-12), newest first.
#[utoipa::path(get, path = "/v1/accounts/{user_id}/sessions", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, body = Vec<SessionRecord>), (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/accounts/{user_id}/sessions")]
pub async fn sessions(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
) -> Json<Vec<SessionRecord>> {
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, _, actor| accounts::sessions_of(conn, &actor, &user_id, 200))
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"event": "resignation", "reason": "2026-11-23 離職"}))]
pub struct HrEventRequest {
    #[schema(required = true, nullable = false)]
    pub event: Option<HrEvent>,
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
}

/// Report an HR event (resignation, leave, suspension, transfer): the account is cancelled today and
/// its sessions end at once (R-ACC-05). The agency's last account manager must hand over first.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/hr-events", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = HrEventRequest,
    responses(
        (status = 200, body = AccountView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already closed, or the last account manager (R-ACC-06)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/accounts/{user_id}/hr-events")]
pub async fn hr_event(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    body: ApiJson<HrEventRequest>,
) -> Json<AccountView> {
    let body = body.into_inner();
    let event = body.event.ok_or_else(|| ApiError::missing_field("event"))?;
    let reason = reason(body.reason, true)?;
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, now, actor| {
            accounts::record_hr_event(conn, now, &actor, &user_id, event, &reason)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "自然人憑證遺失"}))]
pub struct ReasonRequest {
    pub reason: Option<String>,
}

/// Report a lost citizen certificate: the account is terminated at once (R-ACC-09). The holder may
/// report it themselves.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/certificate-loss", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AccountView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/accounts/{user_id}/certificate-loss")]
pub async fn certificate_loss(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    body: ApiJson<ReasonRequest>,
) -> Json<AccountView> {
    let reason = reason(body.into_inner().reason, false)?;
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, now, actor| {
            accounts::report_certificate_lost(conn, now, &actor, &user_id, &reason)
        })
        .await?,
    ))
}

/// Suspend an account (e.g. after a lending flag, R-ACC-07); its sessions end at once.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/suspension", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AccountView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/accounts/{user_id}/suspension")]
pub async fn suspend(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    body: ApiJson<ReasonRequest>,
) -> Json<AccountView> {
    let reason = reason(body.into_inner().reason, true)?;
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, now, actor| {
            accounts::suspend(conn, now, &actor, &user_id, &reason)
        })
        .await?,
    ))
}

/// Reinstate a suspended account.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/reinstatement", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AccountView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/accounts/{user_id}/reinstatement")]
pub async fn reinstate(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    body: ApiJson<ReasonRequest>,
) -> Json<AccountView> {
    let reason = reason(body.into_inner().reason, true)?;
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, now, actor| {
            accounts::reinstate(conn, now, &actor, &user_id, &reason)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"ips": ["10.20.30.40"], "reason": "座位調整，更換工作站"}))]
pub struct IpsRequest {
    #[schema(required = true, nullable = false)]
    pub ips: Option<Vec<String>>,
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
}

/// Replace the account's registered IP addresses (R-ACC-11); sessions from a removed address end.
#[utoipa::path(put, path = "/v1/accounts/{user_id}/ips", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = IpsRequest,
    responses((status = 200, body = AccountView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
#[put("/v1/accounts/{user_id}/ips")]
pub async fn set_ips(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    body: ApiJson<IpsRequest>,
) -> Json<AccountView> {
    let body = body.into_inner();
    let raw = body.ips.ok_or_else(|| ApiError::missing_field("ips"))?;
    if raw.is_empty() || raw.len() > 10 {
        return Err(ApiError::invalid_field("ips", "between 1 and 10 addresses"));
    }
    let ips = raw
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            ip.trim().parse::<IpAddr>().map_err(|_| ApiError::invalid_field(format!("ips[{i}]"), "not an IP address"))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let reason = reason(body.reason, true)?;
    let user_id = user_id.into_inner();
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, now, actor| {
            accounts::set_ips(conn, now, &actor, &user_id, &ips, &reason)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"from_user_id": "0192f0c4-…", "to_user_id": "0192f0c5-…", "reason": "業務移交"}))]
pub struct HandoverRequest {
    #[schema(required = true, nullable = false)]
    pub from_user_id: Option<String>,
    #[schema(required = true, nullable = false)]
    pub to_user_id: Option<String>,
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
}

/// Hand the account-manager role over in one step (R-ACC-06), by the outgoing manager or the agency
/// head, so the agency is never without one. Returns the new manager's account.
#[utoipa::path(post, path = "/v1/account-manager-handovers", tag = "accounts", security(("bearer" = [])),
    request_body = HandoverRequest,
    responses((status = 200, body = AccountView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/account-manager-handovers")]
pub async fn handover(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<HandoverRequest>,
) -> Json<AccountView> {
    let body = body.into_inner();
    let from = text(body.from_user_id, "from_user_id", 64)?;
    let to = text(body.to_user_id, "to_user_id", 64)?;
    let reason = reason(body.reason, true)?;
    Ok(web::Json(
        as_caller(&state, &req, caller, move |conn, now, actor| {
            accounts::hand_over_manager(conn, now, &actor, &from, &to, &reason)
        })
        .await?,
    ))
}
