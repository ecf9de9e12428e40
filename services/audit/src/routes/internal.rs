//! Event delivery from other services (the broker's outbox relay). Idempotent by event id.

use actix_web::{post, web};
use immilink_shared::events::{BatchReceipt, EventBatch};
use immilink_shared::extractors::ApiJson;
use immilink_shared::extractors::InternalCaller;
use immilink_shared::{ApiError, ApiResult};

use crate::{chain, State};

const MAX_BATCH: usize = 1000;

#[post("/internal/v1/events")]
pub async fn ingest(
    caller: InternalCaller,
    state: web::Data<State>,
    body: ApiJson<EventBatch>,
) -> ApiResult<web::Json<BatchReceipt>> {
    // Only the services that record audited work deliver events.
    caller.require(&["broker"])?;
    let events = body.into_inner().events;
    if events.len() > MAX_BATCH {
        return Err(ApiError::invalid_field("events", format!("at most {MAX_BATCH} events per batch")));
    }
    if let Some(index) = events.iter().position(|e| e.id.trim().is_empty() || e.kind.trim().is_empty()) {
        return Err(ApiError::invalid_field(format!("events[{index}]"), "id and kind are required"));
    }
    let now = state.clock.now();
    let started = std::time::Instant::now();
    let count = events.len();
    let receipt = state.db.run(move |conn| chain::append(conn, now, &events)).await.map_err(ApiError::from)?;
    tracing::debug!(count, append_ms = started.elapsed().as_millis() as u64, "appended");
    Ok(web::Json(receipt))
}
