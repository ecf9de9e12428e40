//! Dedicated machines (R-VEN-07): registered per contract, attested offline with their licensed
//! software, re-attested before each due date, retired. Only the caller's agency's vendors are
//! visible: another agency's vendor, contract or machine answers 404, as a missing one does.

use actix_web::{get, post, web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::clock::business_date;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, Page, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::devices::{self, DeviceFilter, DevicePath, DeviceStatus, NewAttestation, NewDevice, SoftwareInput};
use crate::domain::{ContractId, DeviceId, VendorId};
use crate::State;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterDevice {
    /// The agency's asset tag (財產編號); upper-cased, unique in the agency among machines in use.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64, example = "TPE-IT-0042")]
    pub asset_tag: Option<String>,
    /// The maker's serial number; upper-cased, unique in the agency among machines in use.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64, example = "5CG1234XYZ")]
    pub serial_number: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 500, example = "開發用筆記型電腦")]
    pub description: Option<String>,
}

/// One program on the machine and its licence.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceSoftwareEntry {
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 200,
        example = "Microsoft Windows 11 Pro"
    )]
    pub name: Option<String>,
    /// The licence's reference (licence number, contract or agreement); required (R-VEN-07).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 200, example = "MS-VL-2026-0012")]
    pub licence_ref: Option<String>,
}

/// An attestation of a dedicated machine (R-VEN-07).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AttestDevice {
    /// The machine has no internet access. `false` is refused (R-VEN-07).
    #[schema(required = true, nullable = false, example = true)]
    pub offline: Option<bool>,
    /// Every program on the machine, each with its licence reference (may be empty, not absent).
    #[schema(required = true, nullable = false)]
    pub software: Option<Vec<DeviceSoftwareEntry>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RetireDevice {
    #[schema(max_length = 500, example = "合約結束，硬碟已銷毀")]
    pub reason: Option<String>,
}

/// One program on the machine and its licence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LicensedSoftware {
    pub name: String,
    pub licence_ref: String,
}

/// The machine's latest attestation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeviceAttestation {
    /// The machine has no internet access (always true: an online machine is not attested).
    pub offline: bool,
    pub software: Vec<LicensedSoftware>,
    pub attested_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub attested_at: NaiveDateTime,
}

/// A dedicated machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VendorDevice {
    pub id: String,
    pub vendor_id: String,
    /// The project (contract) the machine is dedicated to.
    pub contract_id: String,
    pub agency: String,
    pub asset_tag: String,
    pub serial_number: String,
    pub description: String,
    pub status: DeviceStatus,
    /// The latest attestation; none before the first.
    pub attestation: Option<DeviceAttestation>,
    /// When the next attestation is due (Asia/Taipei); the first is due the day of registration.
    #[schema(value_type = String, format = Date)]
    pub attestation_due_on: NaiveDate,
    /// In use and its attestation due date has passed, as of now.
    pub overdue: bool,
    /// When the sweep flagged the current due date as passed.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub overdue_flagged_at: Option<NaiveDateTime>,
    pub registered_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub registered_at: NaiveDateTime,
    pub retired_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub retired_at: Option<NaiveDateTime>,
    pub retirement_reason: Option<String>,
}

impl VendorDevice {
    fn of(device: devices::Device, today: NaiveDate) -> Self {
        Self {
            overdue: device.overdue_on(today),
            id: device.id.into_inner(),
            vendor_id: device.vendor_id.into_inner(),
            contract_id: device.contract_id.into_inner(),
            agency: device.agency.into_inner(),
            asset_tag: device.asset_tag,
            serial_number: device.serial_number,
            description: device.description,
            status: device.status,
            attestation: device.attestation.map(|attestation| DeviceAttestation {
                offline: attestation.offline,
                software: attestation
                    .software
                    .into_iter()
                    .map(|s| LicensedSoftware { name: s.name, licence_ref: s.licence_ref })
                    .collect(),
                attested_by: attestation.attested_by.into_inner(),
                attested_at: attestation.attested_at,
            }),
            attestation_due_on: device.attestation_due_on,
            overdue_flagged_at: device.overdue_flagged_at,
            registered_by: device.registered_by.into_inner(),
            registered_at: device.registered_at,
            retired_by: device.retired_by.map(|user| user.into_inner()),
            retired_at: device.retired_at,
            retirement_reason: device.retirement_reason,
        }
    }
}

/// Register a dedicated machine to a contract (the project it serves), vendor and account managers.
/// A machine registered to a contract already (same asset tag or serial number, not retired) is
/// refused 409 naming R-VEN-07: never two projects.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices",
    extensions(("x-immilink-rules" = json!(["R-VEN-07"]))),
    tag = "vendors", operation_id = "register_device",
    security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id")),
    request_body = RegisterDevice,
    responses(
        (status = 201, body = VendorDevice),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts/{contract_id}/devices")]
pub async fn register(
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
    body: ApiJson<RegisterDevice>,
) -> ApiResult<HttpResponse> {
    let (vendor_id, contract_id) = path.into_inner();
    let body = body.into_inner();
    let new = NewDevice::parse(
        VendorId::new(vendor_id),
        ContractId::new(contract_id),
        body.asset_tag,
        body.serial_number,
        body.description,
    )?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let device = state.db.run(move |conn| devices::register(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(VendorDevice::of(device, business_date(now))))
}

/// The machines registered to a contract, retired ones included, in registration order: `before` is
/// the last `id` of the previous page. Managers and the vendor's staff.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices",
    extensions(("x-immilink-rules" = json!(["R-VEN-07"]))),
    tag = "vendors", operation_id = "list_contract_devices",
    security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id"),
        PageQuery),
    responses(
        (status = 200, body = Vec<VendorDevice>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/contracts/{contract_id}/devices")]
pub async fn list_for_contract(
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<VendorDevice>>> {
    let page = page.into_inner().page()?;
    let (vendor_id, contract_id) = path.into_inner();
    let (vendor_id, contract_id) = (VendorId::new(vendor_id), ContractId::new(contract_id));
    let (caller, now) = (caller.caller(), state.clock.now());
    let found = state
        .db
        .run(move |conn| devices::list_for_contract(conn, &caller, &vendor_id, &contract_id, &page))
        .await
        .map_err(ApiError::from)?;
    let today = business_date(now);
    Ok(web::Json(found.into_iter().map(|device| VendorDevice::of(device, today)).collect()))
}

/// Attest a machine (R-VEN-07): no internet access, and every program on it licensed. An online
/// machine, or a program without a licence reference, is refused 422 naming the field and R-VEN-07.
/// The next attestation is due the configured period after today. Managers and the vendor's staff.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/attestations",
    extensions(("x-immilink-rules" = json!(["R-VEN-07"]))),
    tag = "vendors",
    operation_id = "attest_device", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id"),
        ("device_id" = String, Path, description = "The machine's id")),
    request_body = AttestDevice,
    responses(
        (status = 200, body = VendorDevice),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/attestations")]
pub async fn attest(
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String, String)>,
    body: ApiJson<AttestDevice>,
) -> ApiResult<web::Json<VendorDevice>> {
    let path = device_path(path.into_inner());
    let body = body.into_inner();
    let software = body.software.map(|entries| {
        entries.into_iter().map(|e| SoftwareInput { name: e.name, licence_ref: e.licence_ref }).collect()
    });
    let attestation = NewAttestation::parse(body.offline, software)?;
    let (caller, now, period) = (caller.caller(), state.clock.now(), state.rules.attestation_period);
    let device = state
        .db
        .run(move |conn| devices::attest(conn, now, &caller, period, &path, &attestation))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(VendorDevice::of(device, business_date(now))))
}

/// Retire a machine: it no longer serves the project, and its asset tag and serial number may be
/// registered again. Repeating it answers the machine unchanged. Vendor and account managers.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/retirement",
    extensions(("x-immilink-rules" = json!(["R-VEN-07"]))),
    tag = "vendors",
    operation_id = "retire_device", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id"),
        ("device_id" = String, Path, description = "The machine's id")),
    request_body = RetireDevice,
    responses(
        (status = 200, body = VendorDevice),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/retirement")]
pub async fn retire(
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String, String)>,
    body: ApiJson<RetireDevice>,
) -> ApiResult<web::Json<VendorDevice>> {
    let path = device_path(path.into_inner());
    let reason = devices::retirement_reason(body.into_inner().reason)?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let device =
        state.db.run(move |conn| devices::retire(conn, now, &caller, &path, reason)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(VendorDevice::of(device, business_date(now))))
}

fn device_path((vendor_id, contract_id, device_id): (String, String, String)) -> DevicePath {
    DevicePath {
        vendor_id: VendorId::new(vendor_id),
        contract_id: ContractId::new(contract_id),
        device_id: DeviceId::new(device_id),
    }
}

/// Filters of the agency's machines, and the page.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only machines in use whose attestation is overdue (`true`), or only the others (`false`).
    pub overdue: Option<bool>,
    /// At most this many (1–500, default 100), in registration order.
    pub limit: Option<i64>,
    /// Continue after this id: the last id of the previous page.
    pub before: Option<String>,
}

/// The agency's dedicated machines, every vendor's, in registration order; `overdue=true` lists the
/// machines in use whose attestation is overdue. Managers and the vendor's staff.
#[utoipa::path(get, path = "/v1/vendor-devices",
    extensions(("x-immilink-rules" = json!(["R-VEN-07"]))),
    tag = "vendors", operation_id = "list_agency_devices", security(("bearer" = [])),
    params(DeviceQuery),
    responses(
        (status = 200, body = Vec<VendorDevice>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendor-devices")]
pub async fn list_for_agency(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<DeviceQuery>,
) -> ApiResult<web::Json<Vec<VendorDevice>>> {
    let query = query.into_inner();
    let page = Page::new(query.limit, query.before.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()))?;
    let filter = DeviceFilter { overdue: query.overdue };
    let (caller, now) = (caller.caller(), state.clock.now());
    let found = state
        .db
        .run(move |conn| devices::list_for_agency(conn, now, &caller, filter, &page))
        .await
        .map_err(ApiError::from)?;
    let today = business_date(now);
    Ok(web::Json(found.into_iter().map(|device| VendorDevice::of(device, today)).collect()))
}
