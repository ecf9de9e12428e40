//! Endpoints for other immilink services only (the gateway does not route /internal/). Each call
//! presents a service token, except the one that issues service tokens, which takes the calling
//! service's own credential. Not part of the public OpenAPI document.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use immilink_shared::auth::{IssuedServiceToken, SERVICE_TOKEN_TTL_SECONDS};
use immilink_shared::context::SERVICE_CREDENTIAL;
use immilink_shared::extractors::ApiJson;
use immilink_shared::extractors::InternalCaller;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

use super::me::{LinkRightsView, Permission};
use crate::domain::accounts::{self, AccountStatus};
use crate::domain::contractors::{self, PersonnelEvent, PersonnelEventForm, Receipt};
use crate::domain::{notices, sessions, IdentityError, SessionId, UserId};
use crate::State;

#[derive(Debug, Deserialize)]
pub struct LivenessRequest {
    /// The end client's IP; the session must have been opened from it (R-ACC-11).
    pub ip: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Liveness {
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Is this session live for a request from this IP? Records activity for the idle timeout.
#[post("/internal/v1/sessions/{sid}/liveness")]
pub async fn session_liveness(
    caller: InternalCaller,
    state: web::Data<State>,
    sid: web::Path<String>,
    body: ApiJson<LivenessRequest>,
) -> ApiResult<web::Json<Liveness>> {
    caller.require(&["gateway", "broker", "audit", "vendors"])?;
    let ip = match body.into_inner().ip {
        Some(raw) => Some(raw.parse().map_err(|_| ApiError::invalid_field("ip", "not an IP address"))?),
        None => None,
    };
    let now = state.clock.now();
    let idle = state.idle_timeout;
    let sid = SessionId::new(sid.into_inner());
    let result = state.db.run(move |conn| sessions::check_live(conn, now, &sid, ip, idle)).await;
    match result {
        Ok(user_id) => Ok(web::Json(Liveness { live: true, user_id: Some(user_id.into_inner()), reason: None })),
        Err(IdentityError::SessionEnded(reason)) => {
            Ok(web::Json(Liveness { live: false, user_id: None, reason: Some(reason.to_string()) }))
        }
        Err(other) => Err(other.into()),
    }
}

/// A service token for the calling service, which proves itself with its own credential
/// (`x-immilink-service-credential: <service>:<secret>`). Every refusal is the same 401.
#[post("/internal/v1/service-tokens")]
pub async fn service_token(req: HttpRequest, state: web::Data<State>) -> ApiResult<web::Json<IssuedServiceToken>> {
    let presented = req.headers().get(&SERVICE_CREDENTIAL).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(service) = state.service_credentials.check(presented) else {
        tracing::warn!("service token refused: unknown service credential");
        return Err(ApiError::unauthenticated("unknown service credential"));
    };
    let token = crate::tokens::issue_service(state.keys.kid(), state.keys.encoding_key(), &service)
        .map_err(ApiError::internal)?;
    Ok(web::Json(IssuedServiceToken { token, expires_in: SERVICE_TOKEN_TTL_SECONDS }))
}

/// Who a user is, as the broker reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserSummary {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    /// Agency code, as in access tokens.
    pub agency: String,
    pub unit: Option<String>,
    pub status: AccountStatus,
    pub roles: Vec<String>,
    pub permissions: Vec<Permission>,
    /// The caller's standing now (the agency's link, or their own grants suspended, R-VEN-08), as
    /// `/v1/me` shows it.
    pub link: LinkRightsView,
}

impl From<accounts::UserSummary> for UserSummary {
    fn from(user: accounts::UserSummary) -> Self {
        Self {
            user_id: user.user_id.into_inner(),
            username: user.username,
            display_name: user.display_name,
            agency: user.agency.into_inner(),
            unit: user.unit.map(|unit| unit.into_inner()),
            status: user.status,
            roles: user.roles,
            permissions: user.permissions.into_iter().map(Permission::from).collect(),
            link: user.link.into(),
        }
    }
}

/// Who a user is (agency, unit, status, roles, permissions), for the broker: the grantee of a proxy
/// authorization (R-QRY-06) must be an active colleague of the grantor, and a bulk job stops when its
/// submitter is no longer active or no longer holds the job's permission. 404 for an unknown id.
#[get("/internal/v1/users/{id}")]
pub async fn user_summary(
    caller: InternalCaller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> ApiResult<web::Json<UserSummary>> {
    caller.require(&["broker"])?;
    let (id, now) = (UserId::new(id.into_inner()), state.clock.now());
    let found = state.db.run(move |conn| accounts::summary(conn, now, &id)).await?;
    found.map(|user| web::Json(user.into())).ok_or_else(|| ApiError::not_found("the user"))
}

/// A notice from the audit service (R-AUD-07: a finding for the ethics and IT units; R-AUD-04: an
/// overdue review), as audit's notice relay sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoticeJson {
    pub id: String,
    /// Agency code, as in access tokens.
    pub agency: String,
    /// Only the holders in this unit (its id, as in access tokens).
    pub unit: Option<String>,
    pub roles: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// What became of a notice: how many notifications it queued now, and whether it had been taken
/// before (then nothing was added).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoticeReceipt {
    pub id: String,
    pub queued: usize,
    pub duplicate: bool,
}

/// Takes a notice from the audit service into the notification outbox: one notification per active
/// user of the agency (and unit) holding any of its roles. Idempotent by notice id.
#[post("/internal/v1/notices")]
pub async fn notice_intake(
    caller: InternalCaller,
    state: web::Data<State>,
    body: ApiJson<NoticeJson>,
) -> ApiResult<web::Json<NoticeReceipt>> {
    caller.require(&["audit"])?;
    let body = body.into_inner();
    let notice =
        notices::Notice::parse(&body.id, &body.agency, body.unit.as_deref(), &body.roles, &body.subject, &body.body)?;
    let now = state.clock.now();
    let intake = state.db.run(move |conn| notices::receive(conn, now, &notice)).await?;
    Ok(web::Json(NoticeReceipt { id: body.id, queued: intake.queued, duplicate: intake.duplicate }))
}

/// A personnel message from the vendors service (its outbox relay, at least once, oldest first).
/// Deliberately no `Debug`: it carries a national ID.
#[derive(Deserialize)]
pub struct PersonnelEventJson {
    /// The message id (UUIDv7): a redelivered id changes nothing.
    pub id: Option<String>,
    /// `offboarded` (R-VEN-06) or `registered` (R-VEN-08).
    pub kind: Option<String>,
    pub national_id: Option<String>,
    /// The agency whose vendor reported it (agency code).
    pub agency: Option<String>,
    pub vendor_id: Option<String>,
    pub person_id: Option<String>,
    /// `departure`, `role_change` or `contract_end` (offboarded); `registered`.
    pub reason: Option<String>,
}

impl From<PersonnelEventJson> for PersonnelEventForm {
    fn from(body: PersonnelEventJson) -> Self {
        Self {
            id: body.id,
            kind: body.kind,
            national_id: body.national_id,
            agency: body.agency,
            vendor_id: body.vendor_id,
            person_id: body.person_id,
            reason: body.reason,
        }
    }
}

/// A person left a contractor's staff (`offboarded`: every account of theirs is cancelled and its
/// sessions end, R-VEN-06) or became its personnel (`registered`: the lookup grants of their
/// accounts are suspended, R-VEN-08). From the vendors service only; idempotent by message id:
/// 204 whether it was applied now or before. A malformed body is a 422 naming the field.
#[post("/internal/v1/personnel-events")]
pub async fn personnel_event(
    caller: InternalCaller,
    state: web::Data<State>,
    body: ApiJson<PersonnelEventJson>,
) -> ApiResult<HttpResponse> {
    caller.require(&["vendors"])?;
    let event = PersonnelEvent::parse(body.into_inner().into())?;
    let (now, id, kind) = (state.clock.now(), event.id, event.kind);
    let receipt = state.db.run(move |conn| contractors::receive(conn, now, &event)).await?;
    match receipt {
        Receipt::Applied { accounts } => {
            state.relay.wake();
            tracing::info!(message = %id, %kind, accounts, "personnel message applied");
        }
        Receipt::Duplicate => tracing::info!(message = %id, %kind, "personnel message taken before"),
    }
    Ok(HttpResponse::NoContent().finish())
}
