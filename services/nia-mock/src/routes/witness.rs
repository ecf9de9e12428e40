//! The witness endpoints (c2sp.org/tlog-witness), in plain text as the protocol has them.

use actix_web::{get, post, web, HttpResponse};
use immilink_shared::ApiError;
use serde::Deserialize;

use crate::witness::Refusal;
use crate::State;

fn witness(state: &State) -> Result<&crate::witness::Witness, ApiError> {
    state.witness.as_deref().ok_or_else(|| ApiError::not_found("the witness"))
}

/// Cosign a checkpoint of a witnessed log (`old <size>`, the consistency proof, a blank line, the
/// signed checkpoint). 200 with the cosignature line; 409 with the size this witness holds.
#[post("/witness/v1/add-checkpoint")]
pub async fn add_checkpoint(state: web::Data<State>, body: String) -> Result<HttpResponse, ApiError> {
    let witness = witness(&state)?;
    let timestamp = state.clock.now().timestamp().max(0) as u64;
    match witness.add_checkpoint(&body, timestamp) {
        Ok(line) => Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(line)),
        Err(Refusal::Conflict(size)) => {
            Ok(HttpResponse::Conflict().content_type("text/x.tlog.size").body(format!("{size}\n")))
        }
        Err(refusal @ Refusal::Malformed(_)) => Err(ApiError::invalid_field("body", refusal.to_string())),
        Err(refusal @ Refusal::UnknownLog(_)) => Err(ApiError::not_found(&refusal.to_string())),
        Err(refusal @ Refusal::NotSignedByLog) => Err(ApiError::forbidden("not_signed_by_log", refusal.to_string())),
        Err(refusal @ Refusal::Inconsistent) => Err(ApiError::invalid_field("proof", refusal.to_string())),
    }
}

#[derive(Debug, Deserialize)]
pub struct LatestQuery {
    pub origin: String,
}

/// The checkpoint this witness last cosigned for a log, with its cosignature.
#[get("/witness/v1/checkpoint")]
pub async fn latest(state: web::Data<State>, query: web::Query<LatestQuery>) -> Result<HttpResponse, ApiError> {
    let note = witness(&state)?.latest(&query.origin).ok_or_else(|| ApiError::not_found("a cosigned checkpoint"))?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(note))
}
