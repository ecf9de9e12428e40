//! Legal holds (R-AUD-01): placed with a reason, lifted by someone else, never deleted.

use actix_web::{get, post, web, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::retention::{self, HoldRequest, LegalHold};
use crate::State;

/// A legal hold to place: one agency's records (the caller's own; the immigration agency may name
/// any, or none for every agency), narrowed to at most one of a subject, a case or a sequence range.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject_id": "A123456789", "reason": "臺北地方法院 115 年度訴字第 42 號調閱"}))]
pub struct PlaceHold {
    pub agency: Option<String>,
    pub subject_id: Option<String>,
    pub case_number: Option<String>,
    pub from_sequence: Option<i64>,
    pub to_sequence: Option<i64>,
    /// Why the records must be kept (a court order, an investigation, an inspection).
    pub reason: String,
}

/// Lifting a hold: why it no longer applies.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftHold {
    pub reason: String,
}

/// A legal hold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct HoldView {
    pub id: String,
    pub agency: Option<String>,
    pub subject_id: Option<String>,
    pub case_number: Option<String>,
    pub from_sequence: Option<i64>,
    pub to_sequence: Option<i64>,
    pub reason: String,
    pub placed_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub placed_at: NaiveDateTime,
    pub lifted_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub lifted_at: Option<NaiveDateTime>,
    pub lift_reason: Option<String>,
}

impl From<LegalHold> for HoldView {
    fn from(hold: LegalHold) -> Self {
        Self {
            id: hold.id,
            agency: hold.agency,
            subject_id: hold.subject_id,
            case_number: hold.case_number,
            from_sequence: hold.from_sequence,
            to_sequence: hold.to_sequence,
            reason: hold.reason,
            placed_by: hold.placed_by,
            placed_at: hold.placed_at,
            lifted_by: hold.lifted_by,
            lifted_at: hold.lifted_at,
            lift_reason: hold.lift_reason,
        }
    }
}

/// Place a legal hold: the records it covers are kept past retention until it is lifted. Auditors,
/// account managers and ethics officers for their own agency; the immigration agency's reviewer for
/// any. Recorded in the audit log.
#[utoipa::path(post, path = "/v1/audit/holds",
    extensions(("x-immilink-rules" = json!(["R-AUD-01"]))),
    operation_id = "place_legal_hold", tag = "audit", security(("bearer" = [])), request_body = PlaceHold, responses(
    (status = 201, body = HoldView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/holds")]
pub async fn place(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<PlaceHold>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let request = HoldRequest {
        agency: body.agency,
        subject_id: body.subject_id,
        case_number: body.case_number,
        from_sequence: body.from_sequence,
        to_sequence: body.to_sequence,
        reason: body.reason,
    };
    let (caller, now) = (caller.caller(), state.clock.now());
    let hold =
        state.db.run(move |conn| retention::place_hold(conn, now, &caller, &request)).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Created().json(HoldView::from(hold)))
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoldFilter {
    /// Only holds in force.
    pub active: Option<bool>,
}

/// The legal holds the caller may see (their agency's; the immigration agency every one).
#[utoipa::path(get, path = "/v1/audit/holds",
    extensions(("x-immilink-rules" = json!(["R-AUD-01"]))),
    operation_id = "list_legal_holds", tag = "audit", security(("bearer" = [])), params(HoldFilter), responses(
    (status = 200, body = Vec<HoldView>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/holds")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<HoldFilter>,
) -> ApiResult<web::Json<Vec<HoldView>>> {
    let (caller, active) = (caller.caller(), filter.into_inner().active.unwrap_or(false));
    let holds = state.db.run(move |conn| retention::list_holds(conn, &caller, active)).await.map_err(ApiError::from)?;
    Ok(web::Json(holds.into_iter().map(HoldView::from).collect()))
}

/// Lift a legal hold: by someone other than who placed it. Recorded in the audit log.
#[utoipa::path(post, path = "/v1/audit/holds/{id}/lift",
    extensions(("x-immilink-rules" = json!(["R-AUD-01"]))),
    operation_id = "lift_legal_hold", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Legal hold id")), request_body = LiftHold, responses(
    (status = 200, body = HoldView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/holds/{id}/lift")]
pub async fn lift(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<LiftHold>,
) -> ApiResult<web::Json<HoldView>> {
    let (caller, now, id, reason) = (caller.caller(), state.clock.now(), id.into_inner(), body.into_inner().reason);
    let hold = state
        .db
        .run(move |conn| retention::lift_hold(conn, now, &caller, &id, &reason))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(hold.into()))
}
