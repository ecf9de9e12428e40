use actix_web::{get, web};
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{chain, records};
use crate::State;

/// Result of walking the chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Verification {
    pub ok: bool,
    /// Records walked.
    pub records: i64,
    /// The first record whose link, content or position is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_sequence: Option<i64>,
}

impl From<chain::Verification> for Verification {
    fn from(result: chain::Verification) -> Self {
        Self { ok: result.ok, records: result.records, first_bad_sequence: result.first_bad_sequence }
    }
}

/// Walk the hash chain and report whether every record is intact (R-AUD-02).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = Verification),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/verify")]
pub async fn verify(state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Verification>> {
    let caller = caller.caller();
    let result = state.db.run(move |conn| records::verify(conn, &caller)).await.map_err(ApiError::from)?;
    if !result.ok {
        tracing::error!(first_bad_sequence = ?result.first_bad_sequence, "audit chain verification failed");
    }
    Ok(web::Json(result.into()))
}
