use actix_web::http::header;
use actix_web::{post, web, HttpRequest, HttpResponse};
use immilink_shared::extractors::Authenticated;
use immilink_shared::extractors::{client_ip, ApiJson};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::sessions::{self, LoginAttempt, SessionEndReason};
use crate::domain::IdentityError;
use crate::{tokens, State};

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(required = true, nullable = false, min_length = 1, example = "tpe.caseworker")]
    pub username: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, example = "immilink-demo")]
    pub password: Option<String>,
    /// Serial of the bound citizen digital certificate (自然人憑證).
    #[schema(required = true, nullable = false, min_length = 1, example = "DEMO-tpe.caseworker")]
    pub certificate_serial: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    pub session_id: String,
}

/// Log in with username, password and the bound certificate serial, from a registered IP.
///
/// Every refusal (unknown user, wrong password or certificate, disabled or locked account,
/// unregistered IP, a live session elsewhere) is the same 401, so the answer never reveals whether an
/// account exists. Five failures in a row lock the account for 15 minutes; an address with too many
/// failures is told to wait (429). A second session from another IP or device is refused and flagged
/// as possible account lending (R-ACC-07).
#[utoipa::path(post, path = "/v1/auth/login",
    extensions(("x-immilink-rules" = json!(["R-ACC-03", "R-ACC-07", "R-ACC-11", "R-ACC-12"]))),
    tag = "sessions", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, description = "Login refused", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field is missing", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "Too many failed logins from this address", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Too many logins at once", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/auth/login")]
pub async fn login(req: HttpRequest, state: web::Data<State>, body: ApiJson<LoginRequest>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ip = client_ip(&req).ok_or_else(|| ApiError::internal("no client address"))?;
    let attempt = LoginAttempt::parse(body.username, body.password, body.certificate_serial, ip, user_agent)?;
    if let Err(retry_after_seconds) = state.login_failures.check(&ip) {
        return Err(IdentityError::Throttled { retry_after_seconds }.into());
    }
    let username = attempt.username.clone();
    let credentials =
        state.db.run(move |conn| sessions::find_credentials(conn, &username)).await.map_err(ApiError::from)?;
    // The slow hash runs on a bounded pool and holds no database connection.
    let password_ok = state.hasher.verify(attempt.password.clone(), credentials.clone()).await?;
    let now = state.clock.now();
    let idle = state.idle_timeout;
    let result = state
        .db
        .run(move |conn| sessions::complete_login(conn, now, &attempt, credentials.as_ref(), password_ok, idle))
        .await;
    state.relay.wake();
    if matches!(result, Err(IdentityError::LoginRefused)) {
        // Counting only: the refusal itself stays the same 401.
        let _over_limit = state.login_failures.hit(&ip);
    }
    let session = result?;
    let access_token = tokens::issue(&state, &session, now)?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(LoginResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.token_ttl.num_seconds(),
        session_id: session.session_id.into_inner(),
    }))
}

/// End the caller's session; its token is refused everywhere from then on.
#[utoipa::path(post, path = "/v1/auth/logout",
    extensions(("x-immilink-rules" = json!(["R-ACC-10", "R-ACC-12"]))),
    tag = "sessions", security(("bearer" = [])), responses(
    (status = 204, description = "Logged out"),
    (status = 401, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/auth/logout")]
pub async fn logout(req: HttpRequest, state: web::Data<State>, caller: Authenticated) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let caller = caller.caller();
    let (ip, idle) = (client_ip(&req), state.idle_timeout);
    let ended = state
        .db
        .run(move |conn| {
            // Only a live session, used from its own address, is ended with its token (R-ACC-10,
            // R-ACC-11): a token replayed after its session ended, or presented from another
            // address, is refused here as everywhere else, and cannot log its holder out.
            sessions::check_live(conn, now, &caller.session_id, ip, idle)?;
            sessions::end_session(conn, now, &caller.session_id, SessionEndReason::Logout, Some(&caller.user_id))
        })
        .await;
    // What ended (this session, or one found idle or of an inactive account) has its event to relay.
    state.relay.wake();
    ended.map_err(|err: IdentityError| ApiError::from(err))?;
    Ok(HttpResponse::NoContent().finish())
}
