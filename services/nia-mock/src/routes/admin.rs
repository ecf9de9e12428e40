//! Endpoints only the test harness reaches: they need `x-nia-admin-key` equal to
//! `IMMILINK_NIA_ADMIN_KEY`, and without that setting they do not exist (404). Left out of the OpenAPI
//! document.

use actix_web::{put, web, HttpRequest};
use immilink_shared::http::parse_json;
use immilink_shared::{ApiError, ApiResult};

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
