//! The log's key and its signed checkpoints. They carry no personal data: any authenticated caller
//! may fetch them, and an inspector needs nothing else to check a proof.

use actix_web::{get, post, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use immilink_shared::extractors::{ApiQuery, Authenticated, Page};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::checkpoints::{self, StoredCheckpoint};
use crate::domain::{records, AuditError};
use crate::State;

/// The keys that check the log's checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({"log": "immilink.local/audit+5e8e6ba2+AQ4xNHmfxFBSjFjHg0f0z7hbvX4/lh9J1t4d6xmW5rJY", "witnesses": ["nia.witness.local/immilink+0bd0f5a1+BK7d0r7z3b0cnmB0Ckp2zB1x6Xq3o2h4Y8R0lQ3Jw0mM"]}))]
pub struct LogKey {
    /// The log's signed-note verifier key, `<name>+<key id>+<base64(0x01 || Ed25519 key)>`.
    pub log: String,
    /// The trusted witnesses' cosignature verifier keys (type 0x04).
    pub witnesses: Vec<String>,
}

/// The verifier keys of the log and of its witnesses.
#[utoipa::path(get, path = "/v1/audit/log-key",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "log_key", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = LogKey),
    (status = 401, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/log-key")]
pub async fn log_key(state: web::Data<State>, _caller: Authenticated) -> web::Json<LogKey> {
    web::Json(LogKey { log: state.keys.verifier_key().to_owned(), witnesses: state.keys.witness_keys().to_vec() })
}

/// A signed checkpoint of the Merkle tree.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(example = json!({
    "tree_size": 44,
    "root_hash": "Xc3aeacGWamtVZy3Ad7Zoqudgjqtl0lgz+Nw7/RgQyg=",
    "note": "immilink.local/audit\n44\nXc3aeacGWamtVZy3Ad7Zoqudgjqtl0lgz+Nw7/RgQyg=\n\n— immilink.local/audit Xo5rou...\n— nia.witness.local/immilink C9D1oQAAAABpL...\n",
    "issued_at": "2026-12-02T03:00:10Z",
    "witnessed_at": "2026-12-02T03:00:10Z"}))]
pub struct CheckpointView {
    pub tree_size: i64,
    /// Base64 root hash of the first `tree_size` records.
    pub root_hash: String,
    /// The whole signed note (c2sp.org/tlog-checkpoint), the witness's cosignature lines included.
    pub note: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub issued_at: NaiveDateTime,
    /// When the witness cosigned it (absent until then).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", skip_serializing_if = "Option::is_none", default)]
    pub witnessed_at: Option<NaiveDateTime>,
}

impl From<StoredCheckpoint> for CheckpointView {
    fn from(stored: StoredCheckpoint) -> Self {
        Self {
            tree_size: stored.tree_size,
            root_hash: stored.root_hash,
            note: stored.note,
            issued_at: stored.issued_at,
            witnessed_at: stored.witnessed_at,
        }
    }
}

/// The latest checkpoint (404 while the log is empty).
#[utoipa::path(get, path = "/v1/audit/checkpoints/latest",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "latest_checkpoint", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = CheckpointView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/checkpoints/latest")]
pub async fn latest(state: web::Data<State>, _caller: Authenticated) -> ApiResult<web::Json<CheckpointView>> {
    latest_checkpoint(&state).await
}

async fn latest_checkpoint(state: &State) -> ApiResult<web::Json<CheckpointView>> {
    let newest = state.db.run(checkpoints::latest).await.map_err(ApiError::from)?;
    newest.map(|c| web::Json(c.into())).ok_or_else(|| ApiError::from(AuditError::NotFound("a checkpoint")))
}

/// Which checkpoints to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckpointFilter {
    /// Issued at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Issued before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Those of a larger tree than this (for paging: the last tree size of the previous page).
    pub after_tree_size: Option<i64>,
    /// At most this many (1–500, default 100).
    pub limit: Option<i64>,
}

/// Checkpoints issued in [from, to), smallest tree first.
#[utoipa::path(get, path = "/v1/audit/checkpoints",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "list_checkpoints", tag = "audit", security(("bearer" = [])), params(CheckpointFilter), responses(
    (status = 200, body = Vec<CheckpointView>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/checkpoints")]
pub async fn list(
    state: web::Data<State>,
    _caller: Authenticated,
    filter: ApiQuery<CheckpointFilter>,
) -> ApiResult<web::Json<Vec<CheckpointView>>> {
    let filter = filter.into_inner();
    let page = Page::new(filter.limit, filter.after_tree_size)?;
    let (from, to) = (filter.from, filter.to);
    let found = state
        .db
        .run(move |conn| checkpoints::list(conn, from, to, page.cursor, page.limit))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(found.into_iter().map(CheckpointView::from).collect()))
}

/// Issue a checkpoint of the whole tree now (readers of the log only), and have the witness cosign
/// it; answers the latest checkpoint.
#[utoipa::path(post, path = "/v1/audit/checkpoints",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "issue_checkpoint", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = CheckpointView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/checkpoints")]
pub async fn issue(state: web::Data<State>, caller: Authenticated) -> ApiResult<web::Json<CheckpointView>> {
    records::require_reader(&caller.caller()).map_err(ApiError::from)?;
    if let Err(err) =
        crate::witness::checkpoint_once(&state.db, &state.clock, &state.keys, state.witness.as_ref()).await
    {
        // A witness that does not answer does not stop the checkpoint: it is signed and kept.
        tracing::warn!(error = %err, "checkpoint on demand not witnessed");
    }
    latest_checkpoint(&state).await
}
