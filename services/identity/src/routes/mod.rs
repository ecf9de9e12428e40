//! HTTP handlers: parse, authorize, call a domain function, map the result. Request and response
//! DTOs live here, beside their handlers; `problems` turns identity's errors into problems.

mod accounts;
mod anomalies;
mod applications;
mod auth;
mod internal;
mod jwks;
mod links;
mod me;
mod problems;

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use immilink_shared::auth::Caller;
use immilink_shared::db::DbConn;
use immilink_shared::extractors::client_ip;
use immilink_shared::{ApiError, ApiResult};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::domain::accounts::Actor;
use crate::domain::IdentityError;
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
        .service(accounts::handover)
        .service(accounts::resolve_contractor_conflict)
        .service(links::list_links)
        .service(links::apply_for_link)
        .service(links::link_detail)
        .service(links::apply_for_change)
        .service(links::decide_items)
        .service(links::suspend_link)
        .service(links::request_resumption)
        .service(links::decide_resumption)
        .service(links::termination_notice)
        .service(links::necessity_review)
        .service(links::dormancy_confirmation)
        .service(links::printable_form)
        .service(anomalies::issue_notice)
        .service(anomalies::list_notices)
        .service(anomalies::remediate_notice);
}

/// Internal routes, registered outside the public OpenAPI document.
pub fn configure_internal(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(internal::session_liveness)
        .service(internal::service_token)
        .service(internal::user_summary)
        .service(internal::notice_intake)
        .service(internal::personnel_event);
}

/// Runs `work` for the caller, as the database knows them now ([`Actor::of`]: their session must
/// be live from their IP).
pub async fn as_caller<T, F>(state: &web::Data<State>, req: &HttpRequest, caller: Caller, work: F) -> ApiResult<T>
where
    F: FnOnce(&mut DbConn, DateTime<Utc>, Actor) -> Result<T, IdentityError> + Send + 'static,
    T: Send + 'static,
{
    let now = state.clock.now();
    let ip = client_ip(req);
    let idle = state.idle_timeout;
    let result = state
        .db
        .run(move |conn| {
            let actor = Actor::of(conn, now, &caller, ip, idle)?;
            work(conn, now, actor)
        })
        .await;
    // Whatever the work changed committed with its audit events (a refusal may have ended a session).
    state.relay.wake();
    result.map_err(ApiError::from)
}
