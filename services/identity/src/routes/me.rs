use actix_web::{get, web, HttpMessage, HttpRequest};
use immilink_shared::auth::CallingService;
use immilink_shared::extractors::{client_ip, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{links, permissions, sessions, IdentityError};
use crate::State;

/// The caller as `/v1/me` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub agency: AgencyRef,
    pub unit: Option<UnitRef>,
    pub roles: Vec<String>,
    /// Every (legal basis, purpose, query type) the caller may declare on a lookup.
    pub permissions: Vec<Permission>,
    /// The distinct query types among `permissions`.
    pub query_types: Vec<String>,
    /// The distinct purposes among `permissions`.
    pub purposes: Vec<String>,
    /// The caller's standing now: why their lookups cannot run, if they cannot (the agency's link,
    /// or their own grants suspended, R-VEN-08), and the query types the link carries.
    pub link: LinkRightsView,
}

/// What the agency's link allows the caller now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkRightsView {
    /// Why this caller's lookups cannot run now; `null` when they may (within `permissions`). The
    /// agency's link (e.g. `R-LINK-06`: the link is suspended), or the caller's own standing
    /// (`R-VEN-08`, `contractor_conflict`: their grants are suspended because they were registered as
    /// contractor personnel, until an account manager resolves it).
    pub refusal: Option<LinkRefusalView>,
    /// The query types the link carries.
    pub query_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkRefusalView {
    /// The SPEC rule, e.g. `R-LINK-06` or `R-VEN-08`.
    pub rule: String,
    /// A stable code, e.g. `link_suspended` or `contractor_conflict`.
    pub code: String,
    pub detail: String,
}

impl From<permissions::LinkRights> for LinkRightsView {
    fn from(rights: permissions::LinkRights) -> Self {
        Self {
            refusal: rights.refusal.map(|r| LinkRefusalView {
                rule: r.rule.into(),
                code: r.code.into(),
                detail: r.detail,
            }),
            query_types: rights.query_types,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgencyRef {
    pub id: String,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnitRef {
    pub id: String,
    pub name: String,
}

/// One permitted lookup declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Permission {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
}

impl From<permissions::Profile> for Profile {
    fn from(profile: permissions::Profile) -> Self {
        Self {
            user_id: profile.user_id.into_inner(),
            username: profile.username,
            display_name: profile.display_name,
            agency: AgencyRef {
                id: profile.agency.id.into_inner(),
                code: profile.agency.code.into_inner(),
                name: profile.agency.name,
            },
            unit: profile.unit.map(UnitRef::from),
            roles: profile.roles,
            permissions: profile.permissions.into_iter().map(Permission::from).collect(),
            query_types: profile.query_types,
            purposes: profile.purposes,
            link: profile.link.into(),
        }
    }
}

impl From<permissions::UnitRef> for UnitRef {
    fn from(unit: permissions::UnitRef) -> Self {
        Self { id: unit.id.into_inner(), name: unit.name }
    }
}

impl From<permissions::Permission> for Permission {
    fn from(permission: permissions::Permission) -> Self {
        Self {
            legal_basis: permission.legal_basis,
            purpose_code: permission.purpose_code,
            query_type: permission.query_type,
        }
    }
}

/// The caller: user, agency, unit, roles and the lookups they may declare.
#[utoipa::path(get, path = "/v1/me", tag = "sessions", security(("bearer" = [])), responses(
    (status = 200, body = Profile),
    (status = 401, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/me")]
pub async fn me(req: HttpRequest, state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Profile>> {
    let now = state.clock.now();
    let ip = client_ip(&req);
    let idle = state.idle_timeout;
    let session = caller.caller().session_id;
    let from_broker = req.extensions().get::<CallingService>().is_some_and(|service| service.0 == "broker");
    let profile = state
        .db
        .run(move |conn| {
            let user_id = sessions::check_live(conn, now, &session, ip, idle)?;
            let profile = permissions::profile(conn, now, &user_id)?;
            // The broker asks before each lookup (cached briefly): that is the link's use (R-LINK-10).
            if let (true, Some(link)) = (from_broker, &profile.link_in_use) {
                links::note_use(conn, now, link)?;
            }
            Ok::<_, IdentityError>(profile)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(profile.into()))
}
