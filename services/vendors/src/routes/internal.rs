//! Endpoints for other immilink services only (the gateway does not route /internal/, and each call
//! must present a service token). Not part of the public OpenAPI document.

use std::fmt;

use actix_web::{post, web};
use immilink_shared::extractors::{ApiJson, InternalCaller};
use immilink_shared::typed::AgencyCode;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

use crate::domain::personnel;
use crate::State;

/// Body of `POST /internal/v1/personnel/lookup`: is this person contractor personnel?
#[derive(Clone, Serialize, Deserialize)]
pub struct PersonnelLookup {
    /// National ID or UI number, in any form a caseworker might type it.
    pub national_id: String,
}

impl fmt::Debug for PersonnelLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonnelLookup").field("national_id", &"<redacted>").finish()
    }
}

/// A vendor for which an ID is active personnel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersonnelVendor {
    pub vendor_id: String,
    /// The agency the vendor is registered with.
    pub agency: String,
    pub vendor_name: String,
}

impl From<personnel::PersonnelVendor> for PersonnelVendor {
    fn from(vendor: personnel::PersonnelVendor) -> Self {
        Self {
            vendor_id: vendor.vendor_id.into_inner(),
            agency: vendor.agency.into_inner(),
            vendor_name: vendor.vendor_name,
        }
    }
}

/// The answer: whether the person is ACTIVE personnel of a vendor of any agency (R-ACC-08, R-VEN-08),
/// and of which vendors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersonnelLookupAnswer {
    pub vendor_personnel: bool,
    pub vendors: Vec<PersonnelVendor>,
}

/// Is this person active contractor personnel of any agency? Identity asks before it accepts an
/// account application (R-ACC-08).
#[post("/internal/v1/personnel/lookup")]
pub async fn personnel_lookup(
    caller: InternalCaller,
    state: web::Data<State>,
    body: ApiJson<PersonnelLookup>,
) -> ApiResult<web::Json<PersonnelLookupAnswer>> {
    caller.require(&["identity"])?;
    let id = personnel::resident_id(&body.into_inner().national_id)?;
    let vendors = state.db.run(move |conn| personnel::is_active_personnel(conn, &id)).await.map_err(ApiError::from)?;
    let vendors: Vec<PersonnelVendor> = vendors.into_iter().map(PersonnelVendor::from).collect();
    Ok(web::Json(PersonnelLookupAnswer { vendor_personnel: !vendors.is_empty(), vendors }))
}

/// Body of `POST /internal/v1/personnel/access`: may this person, as contractor personnel, access
/// personal data?
#[derive(Clone, Serialize, Deserialize)]
pub struct PersonnelAccessQuery {
    /// National ID or UI number, in any form a caseworker might type it.
    pub national_id: String,
    /// Only this agency's vendors' records count (the agency of the account identity is deciding);
    /// absent: any agency's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
}

impl fmt::Debug for PersonnelAccessQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonnelAccessQuery")
            .field("national_id", &"<redacted>")
            .field("agency", &self.agency)
            .finish()
    }
}

/// The answer: `allowed` only for active personnel with a passed suitability check (R-VEN-01) and a
/// signed confidentiality agreement (R-VEN-04) on file; otherwise `rule` names what is missing for the
/// record closest to allowed (`R-VEN-04`, then `R-VEN-01`; `R-VEN-06` when every record has departed;
/// null when the ID is no one's personnel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersonnelAccessAnswer {
    pub allowed: bool,
    pub rule: Option<String>,
    /// The ID is active contractor personnel.
    pub personnel: bool,
}

/// May this person access personal data as contractor personnel? Identity asks before it gives a
/// `vendor_staff` account (R-VEN-01, R-VEN-04), and may refuse it when not allowed.
#[post("/internal/v1/personnel/access")]
pub async fn personnel_access(
    caller: InternalCaller,
    state: web::Data<State>,
    body: ApiJson<PersonnelAccessQuery>,
) -> ApiResult<web::Json<PersonnelAccessAnswer>> {
    caller.require(&["identity"])?;
    let body = body.into_inner();
    let id = personnel::resident_id(&body.national_id)?;
    let agency = match body.agency.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()) {
        Some(agency) if agency.len() <= 64 && !agency.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Some(AgencyCode::new(agency))
        }
        Some(_) => return Err(ApiError::invalid_field("agency", "not an agency code")),
        None => None,
    };
    let access = state
        .db
        .run(move |conn| personnel::personal_data_access(conn, &id, agency.as_ref()))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(PersonnelAccessAnswer {
        allowed: access.allowed,
        rule: access.rule.map(|rule| rule.as_str().to_owned()),
        personnel: access.personnel,
    }))
}
