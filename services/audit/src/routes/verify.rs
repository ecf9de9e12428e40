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
#[schema(example = json!({"ok": false, "records": 41, "first_bad_sequence": 42, "reason": "the latest checkpoint covers 44 records, 41 are stored", "checkpoint": {"tree_size": 44, "ok": false}, "witnessed": false}))]
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
    /// The latest signed checkpoint, if one was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointVerification>,
    /// Whether the newest checkpoint the witness (the immigration agency) cosigned is the tree of
    /// these records: asked of the witness itself when it answers, else the cosigned checkpoint
    /// stored here.
    pub witnessed: bool,
}

/// The latest checkpoint against the records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CheckpointVerification {
    pub tree_size: u64,
    /// Signed by this log's key, and the root of the first `tree_size` records.
    pub ok: bool,
}

impl From<chain::Verification> for Verification {
    fn from(result: chain::Verification) -> Self {
        Self {
            ok: result.ok,
            records: result.records,
            first_bad_sequence: result.first_bad_sequence,
            reason: result.reason,
            checkpoint: result.checkpoint.map(|(tree_size, ok)| CheckpointVerification { tree_size, ok }),
            witnessed: result.witnessed,
        }
    }
}

/// Check the whole log (R-AUD-02): every record's link, content and position, that the records end
/// where the chain head says, that the stored Merkle tree is the tree of the records, that the
/// latest checkpoint is signed by the log and matches, and that the newest checkpoint the witness
/// cosigned matches.
#[utoipa::path(get, path = "/v1/audit/verify",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = Verification),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/verify")]
pub async fn verify(state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<Verification>> {
    let caller = caller.caller();
    let witness_view = match &state.witness {
        Some(witness) => witness.latest().await,
        None => None,
    };
    let keys = std::sync::Arc::clone(&state.keys);
    let result = state
        .db
        .run(move |conn| records::verify(conn, &caller, Some(&chain::Anchors { keys: &keys, witness_view })))
        .await
        .map_err(ApiError::from)?;
    if !result.ok {
        tracing::error!(first_bad_sequence = ?result.first_bad_sequence, reason = ?result.reason, "audit log verification failed");
    }
    Ok(web::Json(result.into()))
}
