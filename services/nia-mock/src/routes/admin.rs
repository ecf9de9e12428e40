//! Endpoints only the test harness reaches: they need `x-nia-admin-key` equal to
//! `IMMILINK_NIA_ADMIN_KEY`, and without that setting they do not exist (404). Left out of the OpenAPI
//! document. They set the account review policy and the injected faults, and read the call log.

use actix_web::{delete, get, put, web, HttpRequest, HttpResponse};
use immilink_shared::extractors::parse_json;
use immilink_shared::{ApiError, ApiResult};

use crate::calls::CallRecord;
use crate::faults::FaultSettings;
use crate::review::ReviewSetting;
use crate::State;

pub const ADMIN_KEY_HEADER: &str = "x-nia-admin-key";

/// 404 when the admin endpoints are disabled, 403 for a missing or wrong key.
fn check_admin_key(req: &HttpRequest, state: &State) -> ApiResult<()> {
    let Some(expected) = &state.admin_key else {
        return Err(ApiError::not_found("the requested route"));
    };
    match req.headers().get(ADMIN_KEY_HEADER).and_then(|v| v.to_str().ok()) {
        Some(key) if expected.matches(key) => Ok(()),
        _ => Err(ApiError::forbidden("admin_only", "a valid admin key is required").field(ADMIN_KEY_HEADER)),
    }
}

/// Set how the mock decides account reviews from now on: body `{"decision": "approve"|"reject",
/// "reason"?}`; answers the setting now in force.
#[put("/admin/v1/account-review-policy")]
pub async fn set_review_policy(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Bytes,
) -> ApiResult<web::Json<ReviewSetting>> {
    // The key first: without it, nothing about the body is answered.
    check_admin_key(&req, &state)?;
    let mut setting: ReviewSetting = parse_json(&body)?;
    setting.reason = setting.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    state.set_review_setting(setting.clone());
    tracing::info!(decision = ?setting.decision, "account review policy changed");
    Ok(web::Json(setting))
}

/// The faults in force.
#[get("/admin/v1/faults")]
pub async fn get_faults(req: HttpRequest, state: web::Data<State>) -> ApiResult<web::Json<FaultSettings>> {
    check_admin_key(&req, &state)?;
    Ok(web::Json(state.faults.settings()))
}

/// Replace the faults (absent fields take their defaults: no fault); answers the faults now in force.
/// An out-of-range or unknown field is a 422 naming it.
#[put("/admin/v1/faults")]
pub async fn set_faults(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Bytes,
) -> ApiResult<web::Json<FaultSettings>> {
    check_admin_key(&req, &state)?;
    let settings = parse_faults(&body)?;
    state.faults.replace(settings.clone());
    tracing::info!(faults = ?settings, "injected faults changed");
    Ok(web::Json(settings))
}

/// Serde names an unknown field only in its message; the problem names it as the field.
fn parse_faults(body: &[u8]) -> ApiResult<FaultSettings> {
    let settings: FaultSettings = parse_json(body).map_err(|err| {
        let unknown = serde_json::from_slice::<FaultSettings>(body)
            .err()
            .and_then(|e| e.to_string().strip_prefix("unknown field `")?.split('`').next().map(str::to_owned));
        match unknown {
            Some(field) => ApiError::invalid_field(field, "is not a fault setting"),
            None => err,
        }
    })?;
    settings.validate().map_err(|invalid| ApiError::invalid_field(invalid.field, invalid.reason))?;
    Ok(settings)
}

/// No faults from now on.
#[delete("/admin/v1/faults")]
pub async fn reset_faults(req: HttpRequest, state: web::Data<State>) -> ApiResult<web::Json<FaultSettings>> {
    check_admin_key(&req, &state)?;
    state.faults.replace(FaultSettings::default());
    tracing::info!("injected faults cleared");
    Ok(web::Json(state.faults.settings()))
}

/// Every query call logged, oldest first.
#[get("/admin/v1/calls")]
pub async fn list_calls(req: HttpRequest, state: web::Data<State>) -> ApiResult<web::Json<Vec<CallRecord>>> {
    check_admin_key(&req, &state)?;
    Ok(web::Json(state.calls.records()))
}

#[delete("/admin/v1/calls")]
pub async fn clear_calls(req: HttpRequest, state: web::Data<State>) -> ApiResult<HttpResponse> {
    check_admin_key(&req, &state)?;
    state.calls.clear();
    Ok(HttpResponse::NoContent().finish())
}
