//! Sampling (R-AUD-06): draw a reproducible sample of an agency's lookups, read it back, list them,
//! and record the auditor's outcome per sampled record.

use actix_web::{get, post, web, HttpResponse};
use chrono::NaiveDateTime;
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::domain::samples::{self, DrawRequest, DrawnSample, ResultRequest, Sample, SampleOutcome, Stratum};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(draw).service(list).service(get).service(record_results);
}

/// A sample to draw from the agency's lookups requested in `[from, to)`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agency": "TPE-SW", "from": "2026-11-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00",
    "ratio": 0.01, "seed": "2026-12 spot check", "strata": ["off_hours", "proxy"], "stratum_size": 5}))]
pub struct DrawSample {
    // Required, though optional here: the domain names the missing field (422) rather than serde.
    /// The agency whose lookups are sampled: an auditor's own; the immigration agency's reviewer any.
    #[schema(required = true, nullable = false)]
    pub agency: Option<String>,
    /// RFC 3339 instant, inclusive.
    #[schema(required = true, nullable = false)]
    pub from: Option<String>,
    /// RFC 3339 instant, exclusive; after `from`.
    #[schema(required = true, nullable = false)]
    pub to: Option<String>,
    /// At least 0.001 (1/1000), at most 1. The size is max(ceil(N × ratio), min(N, 10)).
    #[schema(required = true, nullable = false)]
    pub ratio: Option<f64>,
    /// 1 to 256 characters; generated (32 random bytes in hex) and recorded when absent.
    pub seed: Option<String>,
    /// Risk strata drawn on top of the uniform sample: `off_hours`, `proxy`, `busy_user`, `shared_subject`.
    #[serde(default)]
    pub strata: Vec<String>,
    /// Records per stratum (1–1000, default 5).
    pub stratum_size: Option<i64>,
}

/// One risk stratum drawn on top of the uniform sample.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StratumView {
    pub stratum: Stratum,
    /// In rank order.
    pub record_ids: Vec<String>,
}

/// The auditor's result for one sampled record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SampleResultView {
    pub record_id: String,
    pub stratum: Stratum,
    pub outcome: SampleOutcome,
    pub note: Option<String>,
    pub checked_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub checked_at: Option<NaiveDateTime>,
    /// The finding a non-compliant result opened.
    pub finding_id: Option<String>,
}

/// A drawn sample: the rule's inputs (enough for anyone to draw it again) and what they gave.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SampleView {
    pub id: String,
    pub agency: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub from: NaiveDateTime,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub to: NaiveDateTime,
    pub ratio: f64,
    pub seed: String,
    /// Whether the seed was generated (the caller gave none).
    pub seed_generated: bool,
    /// N: the lookups drawn from, the drawer's own left out.
    pub population: i64,
    /// n = max(ceil(N × ratio), min(N, 10)).
    pub size: i64,
    /// The drawer's own lookups in the period, left out of the population.
    pub excluded_own: i64,
    /// The n records of smallest rank SHA-256(seed || 0x00 || record id), in rank order.
    pub record_ids: Vec<String>,
    pub strata: Vec<StratumView>,
    /// The results recorded so far, in draw order.
    pub results: Vec<SampleResultView>,
    pub drawn_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub drawn_at: NaiveDateTime,
}

impl From<DrawnSample> for SampleView {
    fn from(drawn: DrawnSample) -> Self {
        let (ratio, record_ids) = (drawn.ratio(), drawn.record_ids());
        let strata =
            drawn.strata().into_iter().map(|(stratum, record_ids)| StratumView { stratum, record_ids }).collect();
        let results = drawn
            .records
            .iter()
            .filter_map(|r| {
                r.outcome.map(|outcome| SampleResultView {
                    record_id: r.record_id.clone(),
                    stratum: r.stratum,
                    outcome,
                    note: r.note.clone(),
                    checked_by: r.checked_by.clone(),
                    checked_at: r.checked_at,
                    finding_id: r.finding_id.clone(),
                })
            })
            .collect();
        let s = drawn.sample;
        Self {
            id: s.id,
            agency: s.agency,
            from: s.from_at,
            to: s.to_at,
            ratio,
            seed: s.seed,
            seed_generated: s.seed_generated,
            population: s.population,
            size: s.size,
            excluded_own: s.excluded_own,
            record_ids,
            strata,
            results,
            drawn_by: s.drawn_by,
            drawn_at: s.drawn_at,
        }
    }
}

/// A sample in a list (its records: `GET /v1/audit/samples/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SampleSummary {
    pub id: String,
    pub agency: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub from: NaiveDateTime,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub to: NaiveDateTime,
    pub ratio: f64,
    pub seed: String,
    pub seed_generated: bool,
    pub population: i64,
    pub size: i64,
    pub excluded_own: i64,
    pub drawn_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub drawn_at: NaiveDateTime,
}

impl From<Sample> for SampleSummary {
    fn from(s: Sample) -> Self {
        Self {
            id: s.id,
            agency: s.agency,
            from: s.from_at,
            to: s.to_at,
            ratio: s.ratio.parse().unwrap_or(f64::NAN),
            seed: s.seed,
            seed_generated: s.seed_generated,
            population: s.population,
            size: s.size,
            excluded_own: s.excluded_own,
            drawn_by: s.drawn_by,
            drawn_at: s.drawn_at,
        }
    }
}

/// Draw a sample of an agency's lookups (R-AUD-06): the n = max(ceil(N × ratio), min(N, 10))
/// lookups of smallest rank SHA-256(seed || 0x00 || record id), the drawer's own lookups left out;
/// optional risk strata on top. Auditors for their own agency; the immigration agency's reviewer for
/// any. Recorded in the audit log.
#[utoipa::path(post, path = "/v1/audit/samples",
    extensions(("x-immilink-rules" = json!(["R-AUD-06"]))),
    operation_id = "draw_sample", tag = "audit", security(("bearer" = [])),
    request_body = DrawSample, responses(
    (status = 201, body = SampleView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/samples")]
pub async fn draw(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<DrawSample>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let request = DrawRequest {
        agency: body.agency,
        from: body.from,
        to: body.to,
        ratio: body.ratio,
        seed: body.seed,
        strata: body.strata,
        stratum_size: body.stratum_size,
    };
    let (caller, now) = (caller.caller(), state.clock.now());
    let drawn = state.db.run(move |conn| samples::draw(conn, now, &caller, &request)).await.map_err(ApiError::from)?;
    Ok(HttpResponse::Created().json(SampleView::from(drawn)))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SampleFilter {
    /// Only this agency's samples (an agency-bound reader may name only their own).
    pub agency: Option<String>,
}

/// The samples the caller may read, newest first: their agency's (the immigration agency every
/// agency's). `before` is the last `id` of the previous page.
#[utoipa::path(get, path = "/v1/audit/samples",
    extensions(("x-immilink-rules" = json!(["R-AUD-06"]))),
    operation_id = "list_samples", tag = "audit", security(("bearer" = [])),
    params(SampleFilter, PageQuery), responses(
    (status = 200, body = Vec<SampleSummary>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/samples")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<SampleFilter>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<SampleSummary>>> {
    let (caller, agency, page) = (caller.caller(), filter.into_inner().agency, page.into_inner().page()?);
    let found = state.db.run(move |conn| samples::list(conn, &caller, agency, &page)).await.map_err(ApiError::from)?;
    Ok(web::Json(found.into_iter().map(SampleSummary::from).collect()))
}

/// One sample with its records and the results recorded so far; another agency's is not found.
#[utoipa::path(get, path = "/v1/audit/samples/{id}",
    extensions(("x-immilink-rules" = json!(["R-AUD-06"]))),
    operation_id = "get_sample", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Sample id")), responses(
    (status = 200, body = SampleView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/samples/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<SampleView>> {
    let (caller, id) = (caller.caller(), id.into_inner());
    let drawn = state.db.run(move |conn| samples::get(conn, &caller, &id)).await.map_err(ApiError::from)?;
    Ok(web::Json(drawn.into()))
}

/// The auditor's outcome for one sampled record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleResultBody {
    /// A record of the sample (its `lookup.requested` audit record id).
    #[schema(required = true, nullable = false)]
    pub record_id: Option<String>,
    #[schema(required = true, nullable = false)]
    pub outcome: Option<SampleOutcome>,
    /// Required when non-compliant: what was wrong.
    pub note: Option<String>,
}

/// Results of checking sampled records.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"results": [
    {"record_id": "0193a1b2-0000-7000-8000-000000000001", "outcome": "compliant"},
    {"record_id": "0193a1b2-0000-7000-8000-000000000002", "outcome": "non_compliant", "note": "案號與查詢目的不符"}]}))]
pub struct RecordSampleResults {
    #[serde(default)]
    pub results: Vec<SampleResultBody>,
}

/// Record the outcome of checking sampled records: each record of the sample once, never one's own
/// lookup; a non-compliant one needs a note and opens a finding (R-AUD-07), whose id is returned.
/// Auditors of the sample's agency; the immigration agency's reviewer. Recorded in the audit log.
#[utoipa::path(post, path = "/v1/audit/samples/{id}/results",
    extensions(("x-immilink-rules" = json!(["R-AUD-06", "R-AUD-07"]))),
    operation_id = "record_sample_results", tag = "audit",
    security(("bearer" = [])), params(("id" = String, Path, description = "Sample id")),
    request_body = RecordSampleResults, responses(
    (status = 200, body = SampleView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/samples/{id}/results")]
pub async fn record_results(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<RecordSampleResults>,
) -> ApiResult<web::Json<SampleView>> {
    let results: Vec<ResultRequest> = body
        .into_inner()
        .results
        .into_iter()
        .map(|r| ResultRequest { record_id: r.record_id, outcome: r.outcome, note: r.note })
        .collect();
    let (caller, now, id) = (caller.caller(), state.clock.now(), id.into_inner());
    let drawn = state
        .db
        .run(move |conn| samples::record_results(conn, now, &caller, &id, &results))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(drawn.into()))
}
