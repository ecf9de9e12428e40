//! The code catalogues a lookup declares against (R-QRY-03, R-QRY-10, R-QRY-11).

use actix_web::{get, web};
use immilink_shared::catalogue::{self, LegalBasis, Purpose, QueryType};
use immilink_shared::extractors::Authenticated;
use serde::Serialize;
use utoipa::ToSchema;

/// Legal bases (seed 001 pt 3 for social welfare; seed 002 pt 4 for household registration).
#[utoipa::path(get, path = "/v1/catalogue/legal-bases",
    extensions(("x-immilink-rules" = json!(["R-QRY-11"]))),
    tag = "catalogue", security(("bearer" = [])),
    responses((status = 200, body = Vec<LegalBasis>)))]
#[get("/v1/catalogue/legal-bases")]
pub async fn legal_bases(_caller: Authenticated) -> web::Json<Vec<LegalBasis>> {
    web::Json(catalogue::legal_bases())
}

/// Purposes (seed 002 pt 4; seed 001 pt 3).
#[utoipa::path(get, path = "/v1/catalogue/purposes",
    extensions(("x-immilink-rules" = json!(["R-QRY-10"]))),
    tag = "catalogue", security(("bearer" = [])),
    responses((status = 200, body = Vec<Purpose>)))]
#[get("/v1/catalogue/purposes")]
pub async fn purposes(_caller: Authenticated) -> web::Json<Vec<Purpose>> {
    web::Json(catalogue::purposes())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryTypeEntry {
    pub code: QueryType,
    pub name_zh: String,
    /// Whether a passport number is accepted besides national IDs and UI numbers.
    pub accepts_passport: bool,
}

/// The eight query types of the cloud query service (seed 001 pt 3(2)).
#[utoipa::path(get, path = "/v1/catalogue/query-types",
    extensions(("x-immilink-rules" = json!(["R-QRY-03"]))),
    tag = "catalogue", security(("bearer" = [])),
    responses((status = 200, body = Vec<QueryTypeEntry>)))]
#[get("/v1/catalogue/query-types")]
pub async fn query_types(_caller: Authenticated) -> web::Json<Vec<QueryTypeEntry>> {
    web::Json(
        QueryType::ALL
            .into_iter()
            .map(|q| QueryTypeEntry {
                code: q,
                name_zh: q.name_zh().to_owned(),
                accepts_passport: q.subject_kinds() == catalogue::SubjectKinds::ResidentOrPassport,
            })
            .collect(),
    )
}
