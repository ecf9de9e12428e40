//! Contractor registration, per agency.

use actix_web::{get, post, web, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::vendors::{self, NewVendor};
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

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Vendor {
    pub id: String,
    /// The registering agency's code.
    pub agency: String,
    pub name: String,
    pub business_number: String,
    pub contact_email: Option<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
}

impl From<vendors::Vendor> for Vendor {
    fn from(vendor: vendors::Vendor) -> Self {
        Self {
            id: vendor.id.into_inner(),
            agency: vendor.agency.into_inner(),
            name: vendor.name,
            business_number: vendor.business_number,
            contact_email: vendor.contact_email,
            created_by: vendor.created_by.into_inner(),
            created_at: vendor.created_at,
        }
    }
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
    let body = body.into_inner();
    let new = NewVendor::parse(body.name, body.business_number, body.contact_email)?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let vendor = state.db.run(move |conn| vendors::register(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(Vendor::from(vendor)))
}

/// The caller's agency's contractors, by name: `before` is the last `id` of the previous page.
#[utoipa::path(get, path = "/v1/vendors", tag = "vendors", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Vec<Vendor>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<Vendor>>> {
    let page = page.into_inner().page()?;
    let caller = caller.caller();
    let found = state.db.run(move |conn| vendors::list(conn, &caller, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(found.into_iter().map(Vendor::from).collect()))
}
