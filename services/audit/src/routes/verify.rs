use actix_web::{get, web};
use immilink_shared::extractors::Authenticated;
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{chain, records};
use crate::State;

/// Result of checking the log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({"ok": false, "records": 41, "first_bad_sequence": 42, "reason": "the chain head counts 44 records, 41 are stored"}))]
pub struct Verification {
    pub ok: bool,
    /// Records found intact, in sequence order from the first.
    pub records: i64,
    /// The first record whose link, content or position is wrong, or the first that is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_sequence: Option<i64>,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<chain::Verification> for Verification {
    fn from(result: chain::Verification) -> Self {
        Self {
            ok: result.ok,
            records: result.records,
            first_bad_sequence: result.first_bad_sequence,
            reason: result.reason,
        }
    }
}

/// Check the whole log (R-AUD-02): every record's link, content and position, that the records end
/// where the chain head says, and that the stored Merkle tree is the tree of the records.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = Verification),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/verify")]
pub async fn verify(state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Verification>> {
    let caller = caller.caller();
    let result = state.db.run(move |conn| records::verify(conn, &caller)).await.map_err(ApiError::from)?;
    if !result.ok {
        tracing::error!(first_bad_sequence = ?result.first_bad_sequence, reason = ?result.reason, "audit log verification failed");
    }
    Ok(web::Json(result.into()))
}
