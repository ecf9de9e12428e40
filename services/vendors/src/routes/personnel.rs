//! A vendor's personnel: registration (R-VEN-08), suitability checks (R-VEN-01), confidentiality
//! agreements (R-VEN-04), role changes and departures (R-VEN-06). Only the caller's agency's vendors
//! are visible: another agency's vendor or person answers 404, as a missing one does. National IDs are
//! never logged.

use actix_web::{get, post, web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::personnel::{
    self, AccessRule, NewAgreement, NewPerson, NewSuitabilityCheck, PersonnelStatus, RoleChange, SuitabilityStatus,
};
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
    /// The vendor's contract the person works on (optional; a contract that has ended is refused).
    /// Ending that contract offboards the person (R-VEN-06).
    pub contract_id: Option<String>,
}

/// A suitability check on file (R-VEN-01).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SuitabilityCheck {
    pub status: SuitabilityStatus,
    #[schema(value_type = String, format = Date)]
    pub checked_on: NaiveDate,
    /// Who checked, as the check's paperwork states it.
    pub checker: String,
    pub recorded_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub recorded_at: NaiveDateTime,
}

/// A signed confidentiality agreement on file (R-VEN-04).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Agreement {
    #[schema(value_type = String, format = Date)]
    pub signed_on: NaiveDate,
    pub reference: String,
    pub filed_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub filed_at: NaiveDateTime,
}

/// Whether the person may access personal data: only active personnel with a passed suitability
/// check (R-VEN-01) and a signed confidentiality agreement (R-VEN-04) on file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Access {
    pub allowed: bool,
    /// The rule that refuses access (the first one not met); null when allowed.
    pub refused_by: Option<AccessRule>,
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
    /// The contract the person works on; null for personnel added without one.
    #[serde(default)]
    pub contract_id: Option<String>,
    /// The suitability check on file (R-VEN-01); null until one is recorded.
    #[serde(default)]
    pub suitability_check: Option<SuitabilityCheck>,
    /// The confidentiality agreement on file (R-VEN-04); null until one is filed.
    #[serde(default)]
    pub agreement: Option<Agreement>,
    pub access: Access,
}

impl From<personnel::Person> for Person {
    fn from(person: personnel::Person) -> Self {
        let access = person.access();
        let check = person.suitability_check().map(|check| SuitabilityCheck {
            status: check.status,
            checked_on: check.checked_on,
            checker: check.checker,
            recorded_by: check.recorded_by.into_inner(),
            recorded_at: check.recorded_at,
        });
        let filed = person.agreement().map(|filed| Agreement {
            signed_on: filed.signed_on,
            reference: filed.reference,
            filed_by: filed.filed_by.into_inner(),
            filed_at: filed.filed_at,
        });
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
            contract_id: person.contract_id.map(|id| id.into_inner()),
            suitability_check: check,
            agreement: filed,
            access: Access { allowed: access.allowed, refused_by: access.refused_by },
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordSuitabilityCheck {
    #[schema(required = true, nullable = false)]
    pub status: Option<SuitabilityStatus>,
    /// When the check was made (Asia/Taipei), not after today.
    #[schema(value_type = String, format = Date, required = true, nullable = false, example = "2026-11-30")]
    pub checked_on: Option<NaiveDate>,
    /// Who checked (a name or office).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 200, example = "政風室 林志明")]
    pub checker: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FileAgreement {
    /// When the person signed (Asia/Taipei), not after today.
    #[schema(value_type = String, format = Date, required = true, nullable = false, example = "2026-11-30")]
    pub signed_on: Option<NaiveDate>,
    /// The signed agreement's document reference.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100, example = "NDA-2026-0087")]
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRole {
    /// The new role on the contract.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100, example = "專案經理")]
    pub job_title: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1000, example = "調任專案經理")]
    pub reason: Option<String>,
}

type PersonPath = web::Path<(String, String)>;

fn ids(path: PersonPath) -> (VendorId, PersonId) {
    let (vendor_id, person_id) = path.into_inner();
    (VendorId::new(vendor_id), PersonId::new(person_id))
}

/// Add a person to a contractor's staff list (and to one of its contracts when `contract_id` is
/// given). Identity is told at once (R-VEN-08): an account the person already holds loses its lookup
/// grants until its account manager resolves the conflict.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel",
    extensions(("x-immilink-rules" = json!(["R-VEN-08", "R-ACC-08"]))),
    tag = "vendors", operation_id = "add_personnel", security(("bearer" = [])),
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
    let new = NewPerson::parse(vendor_id, body.national_id, body.name, body.job_title, body.contract_id)?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state.db.run(move |conn| personnel::add(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    state.wake_relays();
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
/// contractor personnel, and identity is told at once to disable every account they hold. Repeating
/// it answers the record unchanged.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel/{person_id}/departure",
    extensions(("x-immilink-rules" = json!(["R-VEN-06"]))),
    tag = "vendors", operation_id = "record_departure",
    security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("person_id" = String, Path, description = "The person's id")),
    responses(
        (status = 200, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/personnel/{person_id}/departure")]
pub async fn depart(state: web::Data<State>, caller: Authenticated, path: PersonPath) -> ApiResult<web::Json<Person>> {
    let (vendor_id, person_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state
        .db
        .run(move |conn| personnel::mark_departed(conn, now, &caller, &vendor_id, &person_id))
        .await
        .map_err(ApiError::from)?;
    state.wake_relays();
    Ok(web::Json(person.into()))
}

/// One person on a contractor's staff list, with their check, agreement and access.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/personnel/{person_id}",
    extensions(("x-immilink-rules" = json!(["R-VEN-01", "R-VEN-04"]))),
    tag = "vendors", operation_id = "get_personnel",
    security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("person_id" = String, Path, description = "The person's id")),
    responses(
        (status = 200, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/personnel/{person_id}")]
pub async fn get_one(state: web::Data<State>, caller: Authenticated, path: PersonPath) -> ApiResult<web::Json<Person>> {
    let (vendor_id, person_id) = ids(path);
    let caller = caller.caller();
    let person = state
        .db
        .run(move |conn| personnel::get(conn, &caller, &vendor_id, &person_id))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(person.into()))
}

/// Record a person's suitability check (R-VEN-01), replacing an earlier one: no access to personal
/// data before a passed check is on file.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel/{person_id}/suitability-check",
    extensions(("x-immilink-rules" = json!(["R-VEN-01"]))),
    tag = "vendors",
    operation_id = "record_suitability_check", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("person_id" = String, Path, description = "The person's id")),
    request_body = RecordSuitabilityCheck,
    responses(
        (status = 200, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/personnel/{person_id}/suitability-check")]
pub async fn suitability_check(
    state: web::Data<State>,
    caller: Authenticated,
    path: PersonPath,
    body: ApiJson<RecordSuitabilityCheck>,
) -> ApiResult<web::Json<Person>> {
    let body = body.into_inner();
    let check = NewSuitabilityCheck::parse(body.status, body.checked_on, body.checker)?;
    let (vendor_id, person_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state
        .db
        .run(move |conn| personnel::record_suitability_check(conn, now, &caller, &vendor_id, &person_id, &check))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(person.into()))
}

/// File a person's signed confidentiality agreement (R-VEN-04), replacing an earlier one: no access
/// to personal data without one on file.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel/{person_id}/agreement",
    extensions(("x-immilink-rules" = json!(["R-VEN-04"]))),
    tag = "vendors",
    operation_id = "file_agreement", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("person_id" = String, Path, description = "The person's id")),
    request_body = FileAgreement,
    responses(
        (status = 200, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/personnel/{person_id}/agreement")]
pub async fn agreement(
    state: web::Data<State>,
    caller: Authenticated,
    path: PersonPath,
    body: ApiJson<FileAgreement>,
) -> ApiResult<web::Json<Person>> {
    let body = body.into_inner();
    let agreement = NewAgreement::parse(body.signed_on, body.reference)?;
    let (vendor_id, person_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state
        .db
        .run(move |conn| personnel::file_agreement(conn, now, &caller, &vendor_id, &person_id, &agreement))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(person.into()))
}

/// Change a person's role (R-VEN-06): identity is told at once to disable every account they hold;
/// the person stays active personnel in the new role (an account for it is applied for afresh).
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/personnel/{person_id}/role",
    extensions(("x-immilink-rules" = json!(["R-VEN-06"]))),
    tag = "vendors",
    operation_id = "change_personnel_role", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("person_id" = String, Path, description = "The person's id")),
    request_body = ChangeRole,
    responses(
        (status = 200, body = Person),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/personnel/{person_id}/role")]
pub async fn change_role(
    state: web::Data<State>,
    caller: Authenticated,
    path: PersonPath,
    body: ApiJson<ChangeRole>,
) -> ApiResult<web::Json<Person>> {
    let body = body.into_inner();
    let change = RoleChange::parse(body.job_title, body.reason)?;
    let (vendor_id, person_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let person = state
        .db
        .run(move |conn| personnel::change_role(conn, now, &caller, &vendor_id, &person_id, &change))
        .await
        .map_err(ApiError::from)?;
    state.wake_relays();
    Ok(web::Json(person.into()))
}
