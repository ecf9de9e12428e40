//! Reading the audit log: a filtered search and one record by id.

use actix_web::{get, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use immilink_shared::extractors::{ApiQuery, Authenticated, Page};
use immilink_shared::problem::Problem;
use immilink_shared::typed::{AgencyCode, UserId};
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::chain::{self, RecordQuery};
use crate::domain::records;
use crate::State;

/// Filters for searching records.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordFilter {
    /// Agency code, e.g. `TPE-SW`.
    pub agency: Option<String>,
    /// The unit the act was done for (unit supervisors see only their own unit's records).
    pub unit: Option<String>,
    pub actor_user_id: Option<String>,
    pub subject_id: Option<String>,
    /// The lookup id.
    pub correlation_id: Option<String>,
    pub kind: Option<String>,
    /// Only records from this instant on (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only records before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Return records with a sequence greater than this (for paging: the last sequence of the
    /// previous page).
    pub after_sequence: Option<i64>,
    /// At most this many (1–500, default 100).
    pub limit: Option<i64>,
}

impl RecordFilter {
    /// The query and its page (`limit` checked like every list's).
    fn parse(self) -> Result<(RecordQuery, Page<i64>), ApiError> {
        let page = Page::new(self.limit, self.after_sequence)?;
        let query = RecordQuery {
            agency: self.agency.map(AgencyCode::new),
            unit: self.unit,
            actor_user_id: self.actor_user_id.map(UserId::new),
            subject_id: self.subject_id,
            correlation_id: self.correlation_id,
            kind: self.kind,
            from: self.from,
            to: self.to,
        };
        Ok((query, page))
    }
}

/// A stored record as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditRecord {
    pub sequence: i64,
    pub id: String,
    pub kind: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub occurred_at: NaiveDateTime,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub recorded_at: NaiveDateTime,
    pub source: String,
    pub actor_user_id: Option<String>,
    pub agency: Option<String>,
    pub correlation_id: Option<String>,
    pub subject_id: Option<String>,
    /// The unit the act was done for, when it was a unit's (lookups, bulk jobs, refusals).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    /// Canonical JSON text of the event details.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<chain::AuditRecord> for AuditRecord {
    fn from(record: chain::AuditRecord) -> Self {
        Self {
            sequence: record.sequence,
            id: record.id,
            kind: record.kind,
            occurred_at: record.occurred_at,
            recorded_at: record.recorded_at,
            source: record.source,
            actor_user_id: record.actor_user_id,
            agency: record.agency,
            correlation_id: record.correlation_id,
            subject_id: record.subject_id,
            unit: record.unit,
            payload: record.payload,
            prev_hash: record.prev_hash,
            hash: record.hash,
        }
    }
}

/// Search audit records in sequence order. Agency-bound roles only ever see their own agency's
/// records. Page with `after_sequence` (the last sequence of the previous page) and `limit`.
#[utoipa::path(get, path = "/v1/audit/records", tag = "audit", security(("bearer" = [])), params(RecordFilter), responses(
    (status = 200, body = Vec<AuditRecord>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/records")]
pub async fn search(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<RecordFilter>,
) -> ApiResult<web::Json<Vec<AuditRecord>>> {
    let (query, page) = filter.into_inner().parse()?;
    let caller = caller.caller();
    let found = state.db.run(move |conn| records::search(conn, &caller, query, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(found.into_iter().map(AuditRecord::from).collect()))
}

/// One audit record by its id (the `audit_id` a lookup returns).
#[utoipa::path(get, path = "/v1/audit/records/{id}", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Audit record id")), responses(
    (status = 200, body = AuditRecord),
    (status = 403, description = "No role that reads audit records", body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/records/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<AuditRecord>> {
    let (caller, id) = (caller.caller(), id.into_inner());
    let record = state.db.run(move |conn| records::get(conn, &caller, &id)).await.map_err(ApiError::from)?;
    Ok(web::Json(record.into()))
}
