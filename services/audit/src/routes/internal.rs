//! Event delivery from other services (the outbox relays of the broker, identity and vendors), each
//! for its own source only. Idempotent by event id.

use actix_web::{post, web};
use immilink_shared::events::{BatchReceipt, EventBatch};
use immilink_shared::extractors::{ApiJson, InternalCaller};
use immilink_shared::{ApiError, ApiResult};

use crate::domain::records::{self, Batch};
use crate::State;

#[post("/internal/v1/events")]
pub async fn ingest(
    caller: InternalCaller,
    state: web::Data<State>,
    body: ApiJson<EventBatch>,
) -> ApiResult<web::Json<BatchReceipt>> {
    // Only the services that record audited work deliver events, each its own.
    caller.require(records::SOURCES)?;
    let batch = Batch::parse(&caller.service, body.into_inner().events)?;
    let now = state.clock.now();
    let started = std::time::Instant::now();
    let count = batch.len();
    let receipt = state.db.run(move |conn| records::ingest(conn, now, &batch)).await.map_err(ApiError::from)?;
    tracing::debug!(count, append_ms = started.elapsed().as_millis() as u64, "appended");
    Ok(web::Json(receipt))
}
