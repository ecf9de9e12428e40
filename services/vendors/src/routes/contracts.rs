//! A vendor's contracts (R-VEN-02; their end offboards their personnel, R-VEN-06). Only the caller's
//! agency's vendors are visible: another agency's vendor or contract answers 404, as a missing one
//! does.

use actix_web::{get, post, web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::contracts::{self, ContractStatus, EndedContract, NewCertificate, NewContract};
use crate::domain::{ContractId, VendorId};
use crate::State;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterContract {
    /// What the contract is called.
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 200,
        example = "外來人口資料查詢系統維護案"
    )]
    pub title: Option<String>,
    /// What the vendor does under it.
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 2000,
        example = "系統維運及客製化功能開發"
    )]
    pub scope: Option<String>,
    /// First day (Asia/Taipei), `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date, required = true, nullable = false, example = "2027-01-01")]
    pub starts_on: Option<NaiveDate>,
    /// Last day (Asia/Taipei), not before `starts_on`.
    #[schema(value_type = String, format = Date, required = true, nullable = false, example = "2027-12-31")]
    pub ends_on: Option<NaiveDate>,
    /// Custom system development is involved: a security test certificate must be on file before
    /// the contract becomes active (R-VEN-02).
    #[schema(required = true, nullable = false)]
    pub custom_development: Option<bool>,
}

/// A security test certificate on file (R-VEN-02).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SecurityCertificate {
    pub reference: String,
    pub issuer: String,
    #[schema(value_type = String, format = Date)]
    pub issued_on: NaiveDate,
    pub filed_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub filed_at: NaiveDateTime,
}

/// A vendor's contract.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Contract {
    pub id: String,
    pub vendor_id: String,
    /// The agency the vendor is registered with.
    pub agency: String,
    pub title: String,
    pub scope: String,
    #[schema(value_type = String, format = Date)]
    pub starts_on: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub ends_on: NaiveDate,
    pub custom_development: bool,
    pub status: ContractStatus,
    /// The security test certificate on file; none yet.
    pub security_certificate: Option<SecurityCertificate>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
    pub activated_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub activated_at: Option<NaiveDateTime>,
    pub ended_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "immilink_shared::clock::rfc3339_option")]
    pub ended_at: Option<NaiveDateTime>,
    pub end_reason: Option<String>,
}

impl From<contracts::Contract> for Contract {
    fn from(contract: contracts::Contract) -> Self {
        let security_certificate = contract.certificate().map(|c| SecurityCertificate {
            reference: c.reference,
            issuer: c.issuer,
            issued_on: c.issued_on,
            filed_by: c.filed_by.into_inner(),
            filed_at: c.filed_at,
        });
        Self {
            id: contract.id.into_inner(),
            vendor_id: contract.vendor_id.into_inner(),
            agency: contract.agency.into_inner(),
            title: contract.title,
            scope: contract.scope,
            starts_on: contract.starts_on,
            ends_on: contract.ends_on,
            custom_development: contract.custom_development,
            status: contract.status,
            security_certificate,
            created_by: contract.created_by.into_inner(),
            created_at: contract.created_at,
            activated_by: contract.activated_by.map(|u| u.into_inner()),
            activated_at: contract.activated_at,
            ended_by: contract.ended_by.map(|u| u.into_inner()),
            ended_at: contract.ended_at,
            end_reason: contract.end_reason,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FileCertificate {
    /// The certificate's number or document reference.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100, example = "STC-2026-0412")]
    pub reference: Option<String>,
    /// Who issued it (the testing laboratory).
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 200,
        example = "財團法人資訊安全檢測中心"
    )]
    pub issuer: Option<String>,
    /// When it was issued (Asia/Taipei), not after today.
    #[schema(value_type = String, format = Date, required = true, nullable = false, example = "2026-11-30")]
    pub issued_on: Option<NaiveDate>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndContract {
    /// Why the contract ends (expiry, termination, …).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1000, example = "契約期滿")]
    pub reason: Option<String>,
}

/// A contract that has ended, and the personnel offboarded with it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EndedContractView {
    pub contract: Contract,
    /// The ids of the persons who were active on the contract: each is now departed, and identity
    /// has been told to disable every account they hold (R-VEN-06).
    pub offboarded: Vec<String>,
}

impl From<EndedContract> for EndedContractView {
    fn from(ended: EndedContract) -> Self {
        Self {
            contract: ended.contract.into(),
            offboarded: ended.offboarded.into_iter().map(|id| id.into_inner()).collect(),
        }
    }
}

type ContractPath = web::Path<(String, String)>;

fn ids(path: ContractPath) -> (VendorId, ContractId) {
    let (vendor_id, contract_id) = path.into_inner();
    (VendorId::new(vendor_id), ContractId::new(contract_id))
}

/// Register a contract of a contractor, as a draft.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts",
    extensions(("x-immilink-rules" = json!(["R-VEN-02"]))),
    tag = "vendors", operation_id = "register_contract",
    security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id")),
    request_body = RegisterContract,
    responses(
        (status = 201, body = Contract),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts")]
pub async fn create(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    body: ApiJson<RegisterContract>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let vendor_id = VendorId::new(vendor_id.into_inner());
    let new =
        NewContract::parse(vendor_id, body.title, body.scope, body.starts_on, body.ends_on, body.custom_development)?;
    let (caller, now) = (caller.caller(), state.clock.now());
    let contract =
        state.db.run(move |conn| contracts::register(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(Contract::from(contract)))
}

/// A contractor's contracts in the order they were registered: `before` is the last `id` of the
/// previous page.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/contracts", tag = "vendors", operation_id = "list_contracts",
    security(("bearer" = [])),
    params(("vendor_id" = String, Path, description = "The vendor's id"), PageQuery),
    responses(
        (status = 200, body = Vec<Contract>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/contracts")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    vendor_id: web::Path<String>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<Contract>>> {
    let page = page.into_inner().page()?;
    let (caller, vendor_id) = (caller.caller(), VendorId::new(vendor_id.into_inner()));
    let found =
        state.db.run(move |conn| contracts::list(conn, &caller, &vendor_id, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(found.into_iter().map(Contract::from).collect()))
}

/// One contract of a contractor.
#[utoipa::path(get, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}",
    extensions(("x-immilink-rules" = json!(["R-VEN-02"]))),
    tag = "vendors", operation_id = "get_contract",
    security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id")),
    responses(
        (status = 200, body = Contract),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/vendors/{vendor_id}/contracts/{contract_id}")]
pub async fn get(state: web::Data<State>, caller: Authenticated, path: ContractPath) -> ApiResult<web::Json<Contract>> {
    let (vendor_id, contract_id) = ids(path);
    let caller = caller.caller();
    let contract = state
        .db
        .run(move |conn| contracts::get(conn, &caller, &vendor_id, &contract_id))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(contract.into()))
}

/// File the contract's security test certificate (R-VEN-02), replacing one filed before. Refused on
/// an ended contract.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/security-certificate",
    extensions(("x-immilink-rules" = json!(["R-VEN-02"]))),
    tag = "vendors",
    operation_id = "file_security_certificate", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id")),
    request_body = FileCertificate,
    responses(
        (status = 200, body = Contract),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts/{contract_id}/security-certificate")]
pub async fn file_certificate(
    state: web::Data<State>,
    caller: Authenticated,
    path: ContractPath,
    body: ApiJson<FileCertificate>,
) -> ApiResult<web::Json<Contract>> {
    let body = body.into_inner();
    let certificate = NewCertificate::parse(body.reference, body.issuer, body.issued_on)?;
    let (vendor_id, contract_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let contract = state
        .db
        .run(move |conn| contracts::file_certificate(conn, now, &caller, &vendor_id, &contract_id, &certificate))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(contract.into()))
}

/// Make a draft contract active. A contract with custom development needs its security test
/// certificate on file first: refused 409 naming R-VEN-02 otherwise.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/activation",
    extensions(("x-immilink-rules" = json!(["R-VEN-02"]))),
    tag = "vendors",
    operation_id = "activate_contract", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id")),
    responses(
        (status = 200, body = Contract),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts/{contract_id}/activation")]
pub async fn activate(
    state: web::Data<State>,
    caller: Authenticated,
    path: ContractPath,
) -> ApiResult<web::Json<Contract>> {
    let (vendor_id, contract_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let contract = state
        .db
        .run(move |conn| contracts::activate(conn, now, &caller, &vendor_id, &contract_id))
        .await
        .map_err(ApiError::from)?;
    state.relay.wake();
    Ok(web::Json(contract.into()))
}

/// End a contract (a draft or an active one). Every person active on it is offboarded in the same
/// step (R-VEN-06): marked departed, and identity told to disable every account they hold.
#[utoipa::path(post, path = "/v1/vendors/{vendor_id}/contracts/{contract_id}/end",
    extensions(("x-immilink-rules" = json!(["R-VEN-06"]))),
    tag = "vendors",
    operation_id = "end_contract", security(("bearer" = [])),
    params(
        ("vendor_id" = String, Path, description = "The vendor's id"),
        ("contract_id" = String, Path, description = "The contract's id")),
    request_body = EndContract,
    responses(
        (status = 200, body = EndedContractView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/vendors/{vendor_id}/contracts/{contract_id}/end")]
pub async fn end(
    state: web::Data<State>,
    caller: Authenticated,
    path: ContractPath,
    body: ApiJson<EndContract>,
) -> ApiResult<web::Json<EndedContractView>> {
    let reason = contracts::end_reason(body.into_inner().reason)?;
    let (vendor_id, contract_id) = ids(path);
    let (caller, now) = (caller.caller(), state.clock.now());
    let ended = state
        .db
        .run(move |conn| contracts::end(conn, now, &caller, &vendor_id, &contract_id, &reason))
        .await
        .map_err(ApiError::from)?;
    state.wake_relays();
    Ok(web::Json(ended.into()))
}
