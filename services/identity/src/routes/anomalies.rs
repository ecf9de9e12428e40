//! Anomaly notices (R-AUD-09): the immigration agency notifies an anomaly with a deadline; the agency
//! explains and remediates; unremediated by the deadline, the sweep suspends the link (R-LINK-06).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::as_caller;
use crate::domain::anomalies::{self, AnomalyNotice, AnomalyNoticeId, AnomalyStatus};
use crate::domain::fields;
use crate::domain::link_forms::MAX_TEXT;
use crate::domain::links::LinkId;
use crate::domain::AgencyCode;
use crate::State;

/// An anomaly notice with the agency's explanation and remediation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnomalyNoticeView {
    pub id: String,
    pub agency_code: String,
    pub status: AnomalyStatus,
    pub link_id: String,
    pub finding: String,
    /// The deadline for explanation and remediation (a Taipei date).
    #[schema(value_type = String, format = Date)]
    pub deadline: NaiveDate,
    pub issued_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub issued_at: NaiveDateTime,
    pub explanation: Option<String>,
    pub remediation: Option<String>,
    pub remediated_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub remediated_at: Option<NaiveDateTime>,
    /// When the sweep found it past its deadline (and suspended the link).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub overdue_at: Option<NaiveDateTime>,
}

impl From<(AnomalyNotice, AgencyCode)> for AnomalyNoticeView {
    fn from((notice, agency_code): (AnomalyNotice, AgencyCode)) -> Self {
        Self {
            id: notice.id.to_string(),
            agency_code: agency_code.to_string(),
            status: notice.status,
            link_id: notice.link_id.to_string(),
            finding: notice.finding,
            deadline: notice.deadline,
            issued_by: notice.issued_by.to_string(),
            issued_at: notice.issued_at,
            explanation: notice.explanation,
            remediation: notice.remediation,
            remediated_by: notice.remediated_by.map(|u| u.to_string()),
            remediated_at: notice.remediated_at,
            overdue_at: notice.overdue_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AnomalyNoticeRequest {
    #[schema(required = true, nullable = false)]
    pub link_id: Option<String>,
    /// What the immigration agency found.
    #[schema(required = true, nullable = false)]
    pub finding: Option<String>,
    /// After today (Taipei).
    #[schema(required = true, nullable = false, value_type = String, format = Date, example = "2027-01-15")]
    pub deadline: Option<NaiveDate>,
}

/// The immigration agency notifies an anomaly with a deadline for explanation and remediation
/// (R-AUD-09); the agency's account managers are told.
#[utoipa::path(post, path = "/v1/anomaly-notices",
    extensions(("x-immilink-rules" = json!(["R-AUD-09"]))),
    tag = "agency links", security(("bearer" = [])), request_body = AnomalyNoticeRequest,
    responses(
        (status = 201, body = AnomalyNoticeView),
        (status = 403, description = "Only the immigration agency's reviewer notifies", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The link is not live", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/anomaly-notices")]
pub async fn issue_notice(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<AnomalyNoticeRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let link_id = LinkId::new(fields::text(body.link_id, "link_id", 100)?);
    let finding = fields::text(body.finding, "finding", MAX_TEXT)?;
    let deadline = fields::present(body.deadline, "deadline")?;
    let notice = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        let notice = anomalies::issue(conn, now, &actor, &link_id, &finding, deadline)?;
        anomalies::with_agency(conn, notice)
    })
    .await?;
    Ok(HttpResponse::Created().json(AnomalyNoticeView::from(notice)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyFilter {
    /// Only this link's notices.
    pub link_id: Option<String>,
    /// Only notices in this status.
    #[param(value_type = Option<AnomalyStatus>)]
    pub status: Option<AnomalyStatus>,
}

/// Anomaly notices with their remediation: every agency's for the immigration agency's reviewer,
/// the agency's own for its account managers and head. Newest first.
#[utoipa::path(get, path = "/v1/anomaly-notices",
    extensions(("x-immilink-rules" = json!(["R-AUD-09"]))),
    tag = "agency links", security(("bearer" = [])), params(AnomalyFilter),
    responses((status = 200, body = [AnomalyNoticeView]), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/anomaly-notices")]
pub async fn list_notices(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<AnomalyFilter>,
) -> ApiResult<web::Json<Vec<AnomalyNoticeView>>> {
    let filter = filter.into_inner();
    let link_id = filter.link_id.map(LinkId::new);
    let found = as_caller(&state, &req, caller.caller(), move |conn, _, actor| {
        anomalies::list(conn, &actor, link_id.as_ref(), filter.status)
    })
    .await?;
    Ok(web::Json(found.into_iter().map(AnomalyNoticeView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RemediationRequest {
    /// The agency's explanation of the anomaly (說明).
    #[schema(required = true, nullable = false)]
    pub explanation: Option<String>,
    /// The remediation measures taken (改善措施).
    #[schema(required = true, nullable = false)]
    pub remediation: Option<String>,
}

/// The agency explains the anomaly and records its remediation (a late answer still counts towards
/// resumption, R-LINK-07).
#[utoipa::path(post, path = "/v1/anomaly-notices/{id}/remediation",
    extensions(("x-immilink-rules" = json!(["R-AUD-09", "R-LINK-07"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RemediationRequest,
    responses(
        (status = 200, body = AnomalyNoticeView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Remediated already", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/anomaly-notices/{id}/remediation")]
pub async fn remediate_notice(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<RemediationRequest>,
) -> ApiResult<web::Json<AnomalyNoticeView>> {
    let body = body.into_inner();
    let explanation = fields::text(body.explanation, "explanation", MAX_TEXT)?;
    let remediation = fields::text(body.remediation, "remediation", MAX_TEXT)?;
    let id = AnomalyNoticeId::new(id.into_inner());
    let notice = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        let notice = anomalies::remediate(conn, now, &actor, &id, &explanation, &remediation)?;
        anomalies::with_agency(conn, notice)
    });
    Ok(web::Json(notice.await?.into()))
}
