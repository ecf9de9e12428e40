//! The account lifecycle, driven by the agency's account manager (IP bindings also by its IT unit).
//! Every endpoint is scoped to the caller's own agency: another agency's account is a 404.

use actix_web::{get, post, put, web, HttpRequest};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::as_caller;
use crate::domain::accounts::{self, AccountEventKind, AccountStatus, Actor, HrEvent};
use crate::domain::contractors::{self, ConflictDecision};
use crate::domain::fields::{self, RegisteredIps};
use crate::domain::sessions::SessionEndReason;
use crate::domain::UserId;
use crate::{workflow, State};

type Json<T> = ApiResult<web::Json<T>>;

/// An account as its managers see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub agency_code: String,
    pub unit_id: Option<String>,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub roles: Vec<String>,
    /// The registered IP addresses logins and requests must come from (R-ACC-11).
    pub ips: Vec<String>,
    /// Granted (query type, purpose) pairs.
    pub grants: Vec<Grant>,
    /// Set while the grants are suspended because the holder was registered as contractor
    /// personnel (R-VEN-08): the account's lookups are refused until an account manager resolves
    /// the conflict (`POST /v1/accounts/{user_id}/contractor-conflict/resolution`).
    pub grants_suspended: Option<GrantsSuspension>,
    pub events: Vec<AccountEvent>,
}

/// Why and since when an account's lookup grants are suspended (R-VEN-08).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantsSuspension {
    /// `R-VEN-08`.
    pub rule: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub since: NaiveDateTime,
    pub reason: String,
}

impl From<accounts::GrantsSuspension> for GrantsSuspension {
    fn from(suspension: accounts::GrantsSuspension) -> Self {
        Self { rule: contractors::RULE.to_owned(), since: suspension.since, reason: suspension.reason }
    }
}

impl From<accounts::Account> for AccountView {
    fn from(account: accounts::Account) -> Self {
        Self {
            user_id: account.user_id.into_inner(),
            username: account.username,
            display_name: account.display_name,
            agency_code: account.agency_code.into_inner(),
            unit_id: account.unit_id.map(|unit| unit.into_inner()),
            status: account.status,
            status_reason: account.status_reason,
            roles: account.roles,
            ips: account.ips,
            grants: account.grants.into_iter().map(Grant::from).collect(),
            grants_suspended: account.grants_suspension.map(GrantsSuspension::from),
            events: account.events.into_iter().map(AccountEvent::from).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    #[schema(example = "entry_exit_last_year")]
    pub query_type: String,
    #[schema(example = "sw_statutory_business")]
    pub purpose_code: String,
}

impl From<accounts::Grant> for Grant {
    fn from(grant: accounts::Grant) -> Self {
        Self { query_type: grant.query_type, purpose_code: grant.purpose_code }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountEvent {
    pub id: String,
    pub kind: AccountEventKind,
    pub reason: String,
    pub actor_id: Option<String>,
    /// Business date (Asia/Taipei) the event took effect.
    pub effective_date: NaiveDate,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
}

impl From<accounts::AccountEvent> for AccountEvent {
    fn from(event: accounts::AccountEvent) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            reason: event.reason,
            actor_id: event.actor_id.map(UserId::into_inner),
            effective_date: event.effective_date,
            created_at: event.created_at,
        }
    }
}

/// One session as the record table shows it (R-ACC-12).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionRecord {
    pub session_id: String,
    pub ip: String,
    pub user_agent: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub login_at: NaiveDateTime,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub logout_at: Option<NaiveDateTime>,
    /// Why it ended.
    pub end_reason: Option<SessionEndReason>,
}

impl From<accounts::SessionRecord> for SessionRecord {
    fn from(record: accounts::SessionRecord) -> Self {
        Self {
            session_id: record.session_id.into_inner(),
            ip: record.ip,
            user_agent: record.user_agent,
            login_at: record.login_at,
            logout_at: record.logout_at,
            end_reason: record.end_reason,
        }
    }
}

fn views<T, V: From<T>>(items: Vec<T>) -> Vec<V> {
    items.into_iter().map(V::from).collect()
}

/// The accounts of the caller's agency by username (account manager, agency head, auditor, IT
/// unit), a page at a time: `before` is the last `user_id` of the previous page.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Vec<AccountView>), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/accounts")]
pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    page: ApiQuery<PageQuery>,
) -> Json<Vec<AccountView>> {
    let page = page.into_inner().page()?;
    let found = as_caller(&state, &req, caller.caller(), move |conn, _, actor| accounts::list(conn, &actor, &page));
    Ok(web::Json(views(found.await?)))
}

/// Possible account lending (R-ACC-07): logins refused because the account had a live session from
/// another IP or device, newest first. The manager decides whether to suspend. `before` is the last
/// `id` of the previous page.
#[utoipa::path(get, path = "/v1/lending-flags",
    extensions(("x-immilink-rules" = json!(["R-ACC-07"]))),
    tag = "accounts", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Vec<AccountEvent>), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/lending-flags")]
pub async fn lending_flags(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    page: ApiQuery<PageQuery>,
) -> Json<Vec<AccountEvent>> {
    let page = page.into_inner().page()?;
    let found =
        as_caller(&state, &req, caller.caller(), move |conn, _, actor| accounts::lending_flags(conn, &actor, &page));
    Ok(web::Json(views(found.await?)))
}

/// One account with its roles, bound IPs, grants and history. Anyone may read their own.
#[utoipa::path(get, path = "/v1/accounts/{user_id}", tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, body = AccountView),
        (status = 403, description = "Another's account, without a role that reads accounts", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/accounts/{user_id}")]
pub async fn detail(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
) -> Json<AccountView> {
    let user_id = UserId::new(user_id.into_inner());
    let found =
        as_caller(&state, &req, caller.caller(), move |conn, _, actor| accounts::detail(conn, &actor, &user_id));
    Ok(web::Json(found.await?.into()))
}

/// The account's sessions with login and logout times (R-ACC-12), newest first: `before` is the
/// last `session_id` of the previous page.
#[utoipa::path(get, path = "/v1/accounts/{user_id}/sessions",
    extensions(("x-immilink-rules" = json!(["R-ACC-12"]))),
    tag = "accounts", security(("bearer" = [])),
    params(("user_id" = String, Path), PageQuery),
    responses((status = 200, body = Vec<SessionRecord>),
        (status = 403, description = "Another's account, without a role that reads accounts", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/accounts/{user_id}/sessions")]
pub async fn sessions(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    page: ApiQuery<PageQuery>,
) -> Json<Vec<SessionRecord>> {
    let user_id = UserId::new(user_id.into_inner());
    let page = page.into_inner().page()?;
    let found = as_caller(&state, &req, caller.caller(), move |conn, _, actor| {
        accounts::sessions_of(conn, &actor, &user_id, &page)
    });
    Ok(web::Json(views(found.await?)))
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
#[utoipa::path(post, path = "/v1/accounts/{user_id}/hr-events",
    extensions(("x-immilink-rules" = json!(["R-ACC-05"]))),
    tag = "accounts", security(("bearer" = [])),
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
    let event = fields::present(body.event, "event")?;
    let reason = fields::reason(body.reason, true)?;
    let user_id = UserId::new(user_id.into_inner());
    let done = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        accounts::record_hr_event(conn, now, &actor, &user_id, event, &reason)
    });
    Ok(web::Json(done.await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "自然人憑證遺失"}))]
pub struct ReasonRequest {
    pub reason: Option<String>,
}

/// Report a lost citizen certificate: the account is terminated at once (R-ACC-09). The holder may
/// report it themselves.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/certificate-loss",
    extensions(("x-immilink-rules" = json!(["R-ACC-09"]))),
    tag = "accounts", security(("bearer" = [])),
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
    let reason = fields::reason(body.into_inner().reason, false)?;
    let user_id = UserId::new(user_id.into_inner());
    let done = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        accounts::report_certificate_lost(conn, now, &actor, &user_id, &reason)
    });
    Ok(web::Json(done.await?.into()))
}

/// Suspend an account (e.g. after a lending flag, R-ACC-07); its sessions end at once.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/suspension",
    extensions(("x-immilink-rules" = json!(["R-ACC-07"]))),
    tag = "accounts", security(("bearer" = [])),
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
    let reason = fields::reason(body.into_inner().reason, true)?;
    let user_id = UserId::new(user_id.into_inner());
    let done = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        accounts::suspend(conn, now, &actor, &user_id, &reason)
    });
    Ok(web::Json(done.await?.into()))
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
    let reason = fields::reason(body.into_inner().reason, true)?;
    let user_id = UserId::new(user_id.into_inner());
    let done = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        accounts::reinstate(conn, now, &actor, &user_id, &reason)
    });
    Ok(web::Json(done.await?.into()))
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
#[utoipa::path(put, path = "/v1/accounts/{user_id}/ips",
    extensions(("x-immilink-rules" = json!(["R-ACC-11"]))),
    tag = "accounts", security(("bearer" = [])),
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
    let ips = RegisteredIps::parse(body.ips)?;
    let reason = fields::reason(body.reason, true)?;
    let user_id = UserId::new(user_id.into_inner());
    let done = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        accounts::set_ips(conn, now, &actor, &user_id, &ips, &reason)
    });
    Ok(web::Json(done.await?.into()))
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
#[utoipa::path(post, path = "/v1/account-manager-handovers",
    extensions(("x-immilink-rules" = json!(["R-ACC-06"]))),
    tag = "accounts", security(("bearer" = [])),
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
    let from = UserId::new(fields::text(body.from_user_id, "from_user_id", 64)?);
    let to = UserId::new(fields::text(body.to_user_id, "to_user_id", 64)?);
    let reason = fields::reason(body.reason, true)?;
    let done = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        accounts::hand_over_manager(conn, now, &actor, &from, &to, &reason)
    });
    Ok(web::Json(done.await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"decision": "revoke_grants", "reason": "本人確為委外廠商人員，撤銷查詢權限"}))]
pub struct ConflictResolutionRequest {
    /// `revoke_grants`: the holder is contractor personnel, the grants go. `not_contractor`: the
    /// holder is not (or no longer) active contractor personnel, which the vendors service confirms;
    /// the grants count again.
    #[schema(required = true, nullable = false)]
    pub decision: Option<ConflictDecision>,
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
}

/// Resolve a contractor conflict (R-VEN-08): the account's lookup grants were suspended because its
/// holder was registered as contractor personnel. By an account manager of the account's agency.
/// `not_contractor` is refused (409, R-VEN-08) while the vendors service still lists the holder as
/// active personnel.
#[utoipa::path(post, path = "/v1/accounts/{user_id}/contractor-conflict/resolution",
    extensions(("x-immilink-rules" = json!(["R-VEN-08"]))),
    tag = "accounts",
    security(("bearer" = [])), params(("user_id" = String, Path)), request_body = ConflictResolutionRequest,
    responses(
        (status = 200, body = AccountView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No conflict to resolve, or the holder is still contractor personnel (R-VEN-08)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The vendors service cannot be asked right now", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/accounts/{user_id}/contractor-conflict/resolution")]
pub async fn resolve_contractor_conflict(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    user_id: web::Path<String>,
    body: ApiJson<ConflictResolutionRequest>,
) -> Json<AccountView> {
    let body = body.into_inner();
    let decision = fields::present(body.decision, "decision")?;
    let reason = fields::reason(body.reason, true)?;
    let actor: Actor = as_caller(&state, &req, caller.caller(), |_, _, actor| Ok(actor)).await?;
    let user_id = UserId::new(user_id.into_inner());
    let resolved = workflow::resolve_contractor_conflict(&state, actor, user_id, decision, reason).await?;
    Ok(web::Json(resolved.into()))
}
