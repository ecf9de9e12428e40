//! The export an inspector takes away and checks offline (`immilink-audit verify-bundle FILE`).

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use immilink_shared::extractors::{ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::Deserialize;

use crate::domain::{bundle, checkpoints, records, AuditError};
use crate::State;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportPeriod {
    /// Records that occurred at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Records that occurred before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// Export the records the caller may read from a period as a bundle (`immilink-audit-bundle/1`):
/// the records with every hashed field, an inclusion proof for each in the tree of a checkpoint
/// signed now (and cosigned by the witness when it answers), the checkpoint and the keys. Check it
/// offline with `immilink-audit verify-bundle FILE`. At most 10,000 records per export; the export
/// is recorded in the log.
#[utoipa::path(get, path = "/v1/audit/export",
    extensions(("x-immilink-rules" = json!(["R-AUD-02"]))),
    operation_id = "export_bundle", tag = "audit", security(("bearer" = [])), params(ExportPeriod), responses(
    (status = 200, description = "The bundle (JSON, format immilink-audit-bundle/1)", content_type = "application/json",
        body = Object, example = json!({"format": "immilink-audit-bundle/1", "log_key": "immilink.local/audit+5e8e6ba2+AQ…", "witness_keys": ["nia.witness.local/immilink+0bd0f5a1+BK…"],
            "checkpoint": {"tree_size": 44, "root_hash": "Xc3aeacGWamtVZy3Ad7Zoqudgjqtl0lgz+Nw7/RgQyg=", "note": "immilink.local/audit\n44\n…"},
            "records": [{"sequence": 3, "id": "0193…", "kind": "lookup.requested", "hash": "9f2c…", "proof": ["…"]}]})),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/export")]
pub async fn export(
    state: web::Data<State>,
    caller: Authenticated,
    period: ApiQuery<ExportPeriod>,
) -> ApiResult<HttpResponse> {
    let (caller, period) = (caller.caller(), period.into_inner());
    records::require_reader(&caller).map_err(ApiError::from)?;
    // A checkpoint of everything so far, so the bundle proves the period up to now.
    if let Err(err) =
        crate::witness::checkpoint_once(&state.db, &state.clock, &state.keys, state.witness.as_ref()).await
    {
        tracing::warn!(error = %err, "export: checkpoint not witnessed");
    }
    let (keys, now) = (std::sync::Arc::clone(&state.keys), state.clock.now());
    let exported = state
        .db
        .run(move |conn| {
            let checkpoint =
                checkpoints::latest(conn)?.ok_or(AuditError::NotFound("a checkpoint: the log is empty"))?;
            bundle::export(conn, now, &caller, &keys, &checkpoint, period.from, period.to)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok()
        .insert_header(("content-disposition", "attachment; filename=\"immilink-audit-bundle.json\""))
        .json(exported))
}
