//! Proofs anyone can check: a record's inclusion in the Merkle tree, and the consistency of two tree
//! sizes (RFC 9162), each hash base64-encoded as in c2sp.org/tlog-checkpoint.

use actix_web::{get, web};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use immilink_shared::extractors::{ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::records;
use crate::State;

fn encode(hashes: Vec<tlog_tiles::Hash>) -> Vec<String> {
    hashes.into_iter().map(|hash| BASE64.encode(hash.0)).collect()
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProofQuery {
    /// The size of the tree to prove inclusion in (default: the latest checkpoint's, which must
    /// cover the record).
    #[param(minimum = 1)]
    pub tree_size: Option<u64>,
}

/// The RFC 9162 inclusion proof of one record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({"index": 2, "tree_size": 5, "hashes": ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125", "..."]}))]
pub struct InclusionProof {
    /// The record's leaf index: its sequence - 1.
    pub index: u64,
    pub tree_size: u64,
    /// The audit path, base64, leaf side first.
    pub hashes: Vec<String>,
}

/// Prove that a record is in the audit log's Merkle tree. The leaf hash is SHA-256(0x00 || the
/// record's `hash`, hex-decoded); check the proof against the root hash of a checkpoint of the same
/// tree size. Only readers who may read the record get its proof.
#[utoipa::path(get, path = "/v1/audit/records/{id}/proof",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "inclusion_proof", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Audit record id"), ProofQuery), responses(
    (status = 200, body = InclusionProof),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/records/{id}/proof")]
pub async fn inclusion(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    query: ApiQuery<ProofQuery>,
) -> ApiResult<web::Json<InclusionProof>> {
    let (caller, id, tree_size) = (caller.caller(), id.into_inner(), query.into_inner().tree_size);
    let proof = state
        .db
        .run(move |conn| records::inclusion_proof(conn, &caller, &id, tree_size))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(InclusionProof { index: proof.index, tree_size: proof.tree_size, hashes: encode(proof.hashes) }))
}

#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The smaller tree size (at least 1).
    #[param(minimum = 1)]
    pub first: u64,
    /// The larger tree size (at most the tree's size).
    #[param(minimum = 1)]
    pub second: u64,
}

/// The RFC 9162 consistency proof between two tree sizes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({"first": 3, "second": 7, "hashes": ["..."]}))]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    /// The proof's hashes, base64.
    pub hashes: Vec<String>,
}

/// Prove that the tree of `second` records extends the tree of `first` records: nothing in the
/// first was changed or removed. Carries hashes only.
#[utoipa::path(get, path = "/v1/audit/consistency",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "consistency_proof", tag = "audit", security(("bearer" = [])),
    params(ConsistencyQuery), responses(
    (status = 200, body = ConsistencyProof),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/consistency")]
pub async fn consistency(
    state: web::Data<State>,
    caller: Authenticated,
    query: ApiQuery<ConsistencyQuery>,
) -> ApiResult<web::Json<ConsistencyProof>> {
    let (caller, ConsistencyQuery { first, second }) = (caller.caller(), query.into_inner());
    let hashes = state
        .db
        .run(move |conn| records::consistency_proof(conn, &caller, first, second))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(ConsistencyProof { first, second, hashes: encode(hashes) }))
}
