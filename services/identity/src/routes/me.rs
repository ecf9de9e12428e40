use actix_web::{get, web, HttpRequest};
use immilink_shared::extractors::client_ip;
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};

use crate::domain::permissions::{self, Profile};
use crate::domain::sessions;
use crate::State;

/// The caller: user, agency, unit, roles and the lookups they may declare.
#[utoipa::path(get, path = "/v1/me", tag = "sessions", security(("bearer" = [])), responses(
    (status = 200, body = Profile),
    (status = 401, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/me")]
pub async fn me(req: HttpRequest, state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Profile>> {
    let now = state.clock.now();
    let ip = client_ip(&req);
    let idle = state.idle_timeout;
    let sid = caller.claims.sid;
    let profile = state
        .db
        .run(move |conn| {
            let user_id = sessions::check_live(conn, now, &sid, ip, idle)?;
            permissions::profile(conn, now, &user_id)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(profile))
}
