use actix_web::{get, post, web, HttpResponse};
use immilink_shared::extractors::ApiJson;
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{self, BusinessNumber, NewVendor, Vendor};
use crate::State;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterVendor {
    #[schema(required = true, nullable = false, min_length = 1, example = "臺灣資訊服務股份有限公司")]
    pub name: Option<String>,
    /// 統一編號, 8 digits with its check rule.
    #[schema(required = true, nullable = false, min_length = 1, example = "22099131")]
    pub business_number: Option<String>,
    #[schema(example = "pm@vendor.example.com.tw")]
    pub contact_email: Option<String>,
}

const MAX_NAME: usize = 200;

fn parse(body: RegisterVendor, agency: String, created_by: String) -> ApiResult<NewVendor> {
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::missing_field("name"))?;
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::invalid_field("name", format!("must be at most {MAX_NAME} characters")));
    }
    let raw_number = body.business_number.ok_or_else(|| ApiError::missing_field("business_number"))?;
    let business_number =
        BusinessNumber::parse(&raw_number).map_err(|reason| ApiError::invalid_field("business_number", reason))?;
    let contact_email = match body.contact_email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()) {
        Some(email) if !looks_like_email(&email) => {
            return Err(ApiError::invalid_field("contact_email", "not an e-mail address"));
        }
        other => other,
    };
    Ok(NewVendor { agency, name, business_number, contact_email, created_by })
}

fn looks_like_email(email: &str) -> bool {
    let mut parts = email.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(local), Some(domain), None)
        if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            && email.len() <= 254 && !email.chars().any(char::is_whitespace))
}

/// Register a contractor of the caller's agency.
#[utoipa::path(post, path = "/v1/vendors", tag = "vendors", security(("bearer" = [])), request_body = RegisterVendor,
    responses(
        (status = 201, body = Vendor),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors")]
pub async fn create(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<RegisterVendor>,
) -> ApiResult<HttpResponse> {
    caller.claims.require_any_role(super::MANAGERS)?;
    let new = parse(body.into_inner(), caller.claims.agency.clone(), caller.claims.sub.clone())?;
    let now = state.clock.now();
    let vendor = state.db.run(move |conn| domain::register(conn, now, &new)).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Created().json(vendor))
}

/// The caller's agency's contractors.
#[utoipa::path(get, path = "/v1/vendors", tag = "vendors", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Vendor>),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors")]
pub async fn list(state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Vec<Vendor>>> {
    caller.claims.require_any_role(super::MANAGERS)?;
    let agency = caller.claims.agency.clone();
    let vendors = state.db.run(move |conn| domain::list(conn, &agency)).await.map_err(ApiError::from)?;
    Ok(web::Json(vendors))
}
