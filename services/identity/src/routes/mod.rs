//! HTTP handlers: parse, authorise, call a domain function, map the result.

mod accounts;
mod applications;
mod auth;
mod internal;
mod jwks;
mod me;
mod problems;

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use immilink_shared::db::DbConn;
use immilink_shared::extractors::client_ip;
use immilink_shared::extractors::Authenticated;
use immilink_shared::{ApiError, ApiResult};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::domain::accounts::{load_actor, Actor};
use crate::domain::{sessions, IdentityError};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(immilink_shared::server::healthz)
        .service(immilink_shared::server::readyz)
        .service(jwks::jwks)
        .service(auth::login)
        .service(auth::logout)
        .service(me::me)
        .service(applications::agencies)
        .service(applications::submit)
        .service(applications::list)
        .service(applications::get)
        .service(applications::review)
        .service(accounts::list)
        .service(accounts::lending_flags)
        .service(accounts::detail)
        .service(accounts::sessions)
        .service(accounts::hr_event)
        .service(accounts::certificate_loss)
        .service(accounts::suspend)
        .service(accounts::reinstate)
        .service(accounts::set_ips)
        .service(accounts::handover);
}

/// Internal routes, registered outside the public OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::session_liveness).service(internal::service_token).service(internal::user_summary);
}

/// Runs `work` for the caller: their session must be live from their IP (identity checks it itself,
/// with no cache, so a revoked session is refused here at once), and they act as the database knows
/// them now.
pub async fn as_caller<T, F>(
    state: &web::Data<State>,
    req: &HttpRequest,
    caller: Authenticated,
    work: F,
) -> ApiResult<T>
where
    F: FnOnce(&mut DbConn, DateTime<Utc>, Actor) -> Result<T, IdentityError> + Send + 'static,
    T: Send + 'static,
{
    let now = state.clock.now();
    let ip = client_ip(req);
    let idle = state.idle_timeout;
    let sid = caller.claims.sid;
    state
        .db
        .run(move |conn| {
            let user_id = sessions::check_live(conn, now, &sid, ip, idle)?;
            let actor = load_actor(conn, &user_id)?;
            work(conn, now, actor)
        })
        .await
        .map_err(ApiError::from)
}

/// A required, trimmed text field of bounded length.
pub fn text(value: Option<String>, field: &str, max_chars: usize) -> ApiResult<String> {
    let value =
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| ApiError::missing_field(field))?;
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid_field(field, format!("must be at most {max_chars} characters")));
    }
    Ok(value)
}

/// An optional free-text reason, bounded.
pub fn reason(value: Option<String>, required: bool) -> ApiResult<String> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None if required => Err(ApiError::missing_field("reason")),
        None => Ok(String::new()),
        Some(v) if v.chars().count() > 1000 => {
            Err(ApiError::invalid_field("reason", "must be at most 1000 characters"))
        }
        Some(v) => Ok(v),
    }
}
