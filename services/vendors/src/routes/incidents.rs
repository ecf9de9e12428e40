//! Incident reports (R-VEN-03): when it happened, when the vendor learned of it, the measures taken;
//! reported now, and flagged late past the configured limit. Only the caller's agency's vendors are
//! visible: another agency's vendor answers 404, as a missing one does.

use actix_web::{get, post, web, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::incidents::{self, NewIncident};
use crate::domain::VendorId;
use crate::State;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportIncident {
    /// The contract the incident concerns, if any (one of this vendor's).
    pub contract_id: Option<String>,
    /// When it happened, RFC 3339 with its offset.
    #[schema(required = true, nullable = false, format = DateTime, example = "2026-12-05T08:40:00+08:00")]
    pub occurred_at: Option<String>,
    /// When the vendor learned of it: not before `occurred_at`, not after now.
    #[schema(required = true, nullable = false, format = DateTime, example = "2026-12-05T09:10:00+08:00")]
    pub learned_at: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 4000, example = "專屬設備遭植入惡意程式")]
    pub description: Option<String>,
    /// The measures taken.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 4000, example = "已隔離設備並更換密碼")]
    pub measures: Option<String>,
}

/// A reported incident.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VendorIncident {
    pub id: String,
    pub vendor_id: String,
    pub agency: String,
    pub contract_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub occurred_at: NaiveDateTime,
    /// When the vendor learned of it.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub learned_at: NaiveDateTime,
    /// When it was reported: when this record was made.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub reported_at: NaiveDateTime,
    pub description: String,
    /// The measures taken.
    pub measures: String,
    /// Reported more than `report_limit_minutes` after the vendor learned of it (R-VEN-03).
    pub late: bool,
    /// The limit applied, in minutes.
    pub report_limit_minutes: i64,
    pub reported_by: String,
}

impl From<incidents::Incident> for VendorIncident {
    fn from(incident: incidents::Incident) -> Self {
        Self {
            id: incident.id.into_inner(),
            vendor_id: incident.vendor_id.into_inner(),
            agency: incident.agency.into_inner(),
            contract_id: incident.contract_id.map(|id| id.into_inner()),
            occurred_at: incident.occurred_at,
            learned_at: incident.learned_at,
            reported_at: incident.reported_at,
            description: incident.description,
            measures: incident.measures,
            late: incident.late,
            report_limit_minutes: incident.report_limit_minutes,
            reported_by: incident.reported_by.into_inner(),
        }
    }
}

/// Report an incident of a vendor (R-VEN-03): vendor and account managers, and the vendor's staff.
/// The report's time is now; `learned_at` after now or before `occurred_at` is refused naming it. A
/// report later than the configured limit after `learned_at` is flagged `late`.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/incidents",
    extensions(("x-immilink-rules" = json!(["R-VEN-03"]))),
    tag = "vendors", operation_id = "report_incident",
    security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id")),
    request_body = ReportIncident,
    responses(
        (status = 201, body = VendorIncident),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/incidents")]
pub async fn report(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    body: ApiJson<ReportIncident>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let new = NewIncident::parse(
        VendorId::new(vendor_id.into_inner()),
        body.contract_id,
        body.occurred_at,
        body.learned_at,
        body.description,
        body.measures,
    )?;
    let (caller, now, limit) = (caller.caller(), state.clock.now(), state.rules.incident_report_limit);
    let incident =
        state.db.run(move |conn| incidents::report(conn, now, &caller, limit, &new)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(VendorIncident::from(incident)))
}

/// A vendor's incidents, newest report first: `before` is the last `id` of the previous page. Vendor
/// and account managers.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/incidents",
    extensions(("x-immilink-rules" = json!(["R-VEN-03"]))),
    tag = "vendors", operation_id = "list_incidents",
    security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id"), PageQuery),
    responses(
        (status = 200, body = Vec<VendorIncident>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/incidents")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<VendorIncident>>> {
    let page = page.into_inner().page()?;
    let (caller, vendor_id) = (caller.caller(), VendorId::new(vendor_id.into_inner()));
    let found =
        state.db.run(move |conn| incidents::list(conn, &caller, &vendor_id, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(found.into_iter().map(VendorIncident::from).collect()))
}
