//! A vendor's personnel (R-VEN-06, R-VEN-08). Only the caller's agency's vendors are visible: another
//! agency's vendor answers 404, as a missing one does. National IDs are never logged.

use actix_web::{get, post, web, HttpResponse};
use immilink_shared::extractors::ApiJson;
use immilink_shared::extractors::Authenticated;
use immilink_shared::ids::SubjectId;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::personnel::{self, NewPerson, Person};
use crate::State;

#[derive(Deserialize, ToSchema)]
pub struct AddPerson {
    /// National ID, or UI number (統一證號) for foreign staff.
    #[schema(required = true, nullable = false, min_length = 1, example = "A123456789")]
    pub national_id: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100, example = "王小明")]
    pub name: Option<String>,
    #[schema(max_length = 100, example = "系統工程師")]
    pub job_title: Option<String>,
}

const MAX_NAME: usize = 100;
const MAX_JOB_TITLE: usize = 100;

fn parse(body: AddPerson, vendor_id: String, agency: String, created_by: String) -> ApiResult<NewPerson> {
    let raw_id = body.national_id.ok_or_else(|| ApiError::missing_field("national_id"))?;
    // The reason names the problem (length, check digit), never the value.
    let national_id =
        SubjectId::parse_resident(&raw_id).map_err(|err| ApiError::invalid_field("national_id", err.to_string()))?;
    let name = body
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::missing_field("name"))?;
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::invalid_field("name", format!("must be at most {MAX_NAME} characters")));
    }
    let job_title = body.job_title.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if job_title.as_ref().is_some_and(|t| t.chars().count() > MAX_JOB_TITLE) {
        return Err(ApiError::invalid_field("job_title", format!("must be at most {MAX_JOB_TITLE} characters")));
    }
    Ok(NewPerson { agency, vendor_id, national_id, name, job_title, created_by })
}

/// Add a person to a contractor's staff list.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel", tag = "vendors", operation_id = "add_personnel", security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id")),
    request_body = AddPerson,
    responses(
        (status = 201, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/personnel")]
pub async fn add(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    body: ApiJson<AddPerson>,
) -> ApiResult<HttpResponse> {
    caller.claims.require_any_role(super::MANAGERS)?;
    let new =
        parse(body.into_inner(), vendor_id.into_inner(), caller.claims.agency.clone(), caller.claims.sub.clone())?;
    let now = state.clock.now();
    let person = state.db.run(move |conn| personnel::add(conn, now, &new)).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Created().json(person))
}

/// A contractor's staff list, departed personnel included.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/personnel", tag = "vendors", operation_id = "list_personnel", security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id")),
    responses(
        (status = 200, body = Vec<Person>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/personnel")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
) -> ApiResult<web::Json<Vec<Person>>> {
    caller.claims.require_any_role(super::MANAGERS)?;
    let agency = caller.claims.agency.clone();
    let vendor_id = vendor_id.into_inner();
    let people = state.db.run(move |conn| personnel::list(conn, &agency, &vendor_id)).await.map_err(ApiError::from)?;
    Ok(web::Json(people))
}

/// Record that a person has left the contractor (R-VEN-06): from now on they no longer count as
/// contractor personnel. Repeating it answers the record unchanged.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel/{person_id}/departure", tag = "vendors", operation_id = "record_departure",
    security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("person_id" = String, Path, description = "The person's id")),
    responses(
        (status = 200, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/personnel/{person_id}/departure")]
pub async fn depart(
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Person>> {
    caller.claims.require_any_role(super::MANAGERS)?;
    let agency = caller.claims.agency.clone();
    let (vendor_id, person_id) = path.into_inner();
    let now = state.clock.now();
    let person = state
        .db
        .run(move |conn| personnel::mark_departed(conn, now, &agency, &vendor_id, &person_id))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(person))
}
