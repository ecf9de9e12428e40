//! A vendor's personnel (R-VEN-06, R-VEN-08). Only the caller's agency's vendors are visible: another
//! agency's vendor answers 404, as a missing one does. National IDs are never logged.

use actix_web::{get, post, web, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::personnel::{self, NewPerson, PersonnelStatus};
use crate::domain::{PersonId, VendorId};
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

/// One person on a vendor's staff list.
#[derive(Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Person {
    pub id: String,
    pub vendor_id: String,
    /// The agency the vendor is registered with.
    pub agency: String,
    /// National ID, or UI number for foreign staff, in canonical form.
    #[schema(example = "A123456789")]
    pub national_id: String,
    pub name: String,
    pub job_title: Option<String>,
    pub status: PersonnelStatus,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
    /// When the person was marked departed (R-VEN-06).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub departed_at: Option<NaiveDateTime>,
}

impl From<personnel::Person> for Person {
    fn from(person: personnel::Person) -> Self {
        Self {
            id: person.id.into_inner(),
            vendor_id: person.vendor_id.into_inner(),
            agency: person.agency.into_inner(),
            national_id: person.national_id,
            name: person.name,
            job_title: person.job_title,
            status: person.status,
            created_by: person.created_by.into_inner(),
            created_at: person.created_at,
            departed_at: person.departed_at,
        }
    }
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
    let body = body.into_inner();
    let vendor_id = VendorId::new(vendor_id.into_inner());
    let new = NewPerson::parse(vendor_id, body.national_id, body.name, body.job_title)?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state.db.run(move |conn| personnel::add(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(Person::from(person)))
}

/// A contractor's staff list by name, departed personnel included: `before` is the last `id` of the
/// previous page.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/personnel", tag = "vendors", operation_id = "list_personnel", security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id"), PageQuery),
    responses(
        (status = 200, body = Vec<Person>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/personnel")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<Person>>> {
    let page = page.into_inner().page()?;
    let (caller, vendor_id) = (caller.caller(), VendorId::new(vendor_id.into_inner()));
    let people =
        state.db.run(move |conn| personnel::list(conn, &caller, &vendor_id, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(people.into_iter().map(Person::from).collect()))
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
    let (vendor_id, person_id) = path.into_inner();
    let (vendor_id, person_id) = (VendorId::new(vendor_id), PersonId::new(person_id));
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state
        .db
        .run(move |conn| personnel::mark_departed(conn, now, &caller, &vendor_id, &person_id))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(person.into()))
}
