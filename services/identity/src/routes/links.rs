//! Agency links (seed 003): applications and change applications (the 申請暨異動書), the immigration
//! agency's decision per item, suspension, resumption, termination notice, necessity reviews and
//! dormancy answers, and the printable form.

use actix_web::http::header::ContentType;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::as_caller;
use crate::domain::fields;
use crate::domain::link_forms::{
    self, ApplicationKind, ChangeKind, Contact, FileTransfer, ItemDecision, ItemVerdict, LinkApplication,
    LinkApplicationId, LinkApplicationStatus, LinkForm, ManagementRules, Provisioning, RequestedItem, RulesCoverage,
    RulesItem, TransferMethod,
};
use crate::domain::links::{
    self, LinkCause, LinkDetail, LinkId, LinkRow, LinkStatus, NiaDecision, ResumptionRequest, ResumptionRequestId,
    ResumptionStatus,
};
use crate::domain::{AgencyCode, IdentityError};
use crate::State;

type Json<T> = ApiResult<web::Json<T>>;

/// Longest name, title, phone or e-mail on the form.
const MAX_SHORT: usize = 200;

// --- the form --------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct ItemRequest {
    #[schema(required = true, nullable = false, example = "entry_exit_last_year")]
    pub query_type: Option<String>,
    /// One of the form's `legal_bases` (R-LINK-03).
    #[schema(required = true, nullable = false, example = "social_assistance_act")]
    pub legal_basis: Option<String>,
    #[schema(required = true, nullable = false, example = "sw_statutory_business")]
    pub purpose_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FileTransferRequest {
    #[schema(required = true, nullable = false)]
    pub method: Option<TransferMethod>,
    /// What the method is, when it is `other`.
    pub method_other: Option<String>,
    /// 指定之帳號或 IP 位址.
    #[schema(required = true, nullable = false, example = "sftp://10.20.0.5 (account tpe-sw-link)")]
    pub designated_account_or_ip: Option<String>,
}

/// 資料提供方式 (R-LINK-01): online query and/or file transfer.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProvisioningRequest {
    #[schema(required = true, nullable = false)]
    pub online_query: Option<bool>,
    pub online_query_detail: Option<String>,
    pub file_transfer: Option<FileTransferRequest>,
}

/// 資料利用期間, Taipei dates, `until` inclusive (R-LINK-12).
#[derive(Debug, Deserialize, ToSchema)]
pub struct UsagePeriodRequest {
    #[schema(required = true, nullable = false, value_type = String, format = Date, example = "2026-12-10")]
    pub from: Option<NaiveDate>,
    #[schema(required = true, nullable = false, value_type = String, format = Date, example = "2028-12-31")]
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactRequest {
    #[schema(required = true, nullable = false)]
    pub name: Option<String>,
    #[schema(required = true, nullable = false)]
    pub title: Option<String>,
    #[schema(required = true, nullable = false)]
    pub phone: Option<String>,
    #[schema(required = true, nullable = false)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CoverageRequest {
    #[schema(required = true, nullable = false)]
    pub item: Option<RulesItem>,
    /// Where the rules cover it, e.g. 第五點.
    #[schema(required = true, nullable = false, example = "第五點")]
    pub section: Option<String>,
}

/// The agency's management rules, attached (R-LINK-04): all eight items of 003 pt 4 must be covered.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RulesRequest {
    #[schema(required = true, nullable = false)]
    pub title: Option<String>,
    #[schema(required = true, nullable = false)]
    pub version: Option<String>,
    #[schema(required = true, nullable = false)]
    pub coverage: Option<Vec<CoverageRequest>>,
}

/// The 各機關應用移民資訊申請暨異動書 (R-LINK-02, R-LINK-05).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LinkFormRequest {
    /// First applications only: the agency applied for, by default the caller's. A non-public agency
    /// is applied for by its competent authority (R-LINK-11).
    pub agency_code: Option<String>,
    #[schema(required = true, nullable = false)]
    pub legal_bases: Option<Vec<String>>,
    /// 使用目的.
    #[schema(required = true, nullable = false)]
    pub purpose: Option<String>,
    /// 申請項目: each backed by one of `legal_bases` (R-LINK-03).
    #[schema(required = true, nullable = false)]
    pub items: Option<Vec<ItemRequest>>,
    /// 資料使用部門.
    #[schema(required = true, nullable = false)]
    pub using_department: Option<String>,
    #[schema(required = true, nullable = false)]
    pub provisioning: Option<ProvisioningRequest>,
    #[schema(required = true, nullable = false)]
    pub usage_period: Option<UsagePeriodRequest>,
    /// 特定目的消失或期限屆滿時之處理.
    #[schema(required = true, nullable = false)]
    pub handling_on_end: Option<String>,
    /// 單位主管.
    #[schema(required = true, nullable = false)]
    pub supervisor: Option<ContactRequest>,
    /// 承辦人員.
    #[schema(required = true, nullable = false)]
    pub handler: Option<ContactRequest>,
    #[schema(required = true, nullable = false)]
    pub management_rules: Option<RulesRequest>,
    /// Change applications only: what changes (at least one).
    pub changes: Option<Vec<ChangeKind>>,
}

fn text(value: Option<String>, field: &str) -> Result<String, IdentityError> {
    fields::text(value, field, link_forms::MAX_TEXT)
}

fn short(value: Option<String>, field: &str) -> Result<String, IdentityError> {
    fields::text(value, field, MAX_SHORT)
}

fn optional(value: Option<String>, field: &str) -> Result<Option<String>, IdentityError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) => text(Some(v), field).map(Some),
        None => Ok(None),
    }
}

fn contact(contact: Option<ContactRequest>, field: &str) -> Result<Contact, IdentityError> {
    let contact = fields::present(contact, field)?;
    let email = short(contact.email, &format!("{field}.email"))?;
    if !email.contains('@') {
        return Err(IdentityError::invalid(format!("{field}.email"), "not an e-mail address"));
    }
    Ok(Contact {
        name: short(contact.name, &format!("{field}.name"))?,
        title: short(contact.title, &format!("{field}.title"))?,
        phone: short(contact.phone, &format!("{field}.phone"))?,
        email,
    })
}

fn provisioning(request: Option<ProvisioningRequest>) -> Result<Provisioning, IdentityError> {
    let request = fields::present(request, "provisioning")?;
    let file_transfer = match request.file_transfer {
        Some(transfer) => Some(FileTransfer {
            method: fields::present(transfer.method, "provisioning.file_transfer.method")?,
            method_other: optional(transfer.method_other, "provisioning.file_transfer.method_other")?,
            designated_account_or_ip: short(
                transfer.designated_account_or_ip,
                "provisioning.file_transfer.designated_account_or_ip",
            )?,
        }),
        None => None,
    };
    Ok(Provisioning {
        online_query: fields::present(request.online_query, "provisioning.online_query")?,
        online_query_detail: optional(request.online_query_detail, "provisioning.online_query_detail")?,
        file_transfer,
    })
}

fn rules(request: Option<RulesRequest>) -> Result<ManagementRules, IdentityError> {
    let request = fields::present(request, "management_rules")?;
    let coverage = fields::present(request.coverage, "management_rules.coverage")?
        .into_iter()
        .enumerate()
        .map(|(index, c)| {
            Ok(RulesCoverage {
                item: fields::present(c.item, &format!("management_rules.coverage[{index}].item"))?,
                section: short(c.section, &format!("management_rules.coverage[{index}].section"))?,
            })
        })
        .collect::<Result<_, IdentityError>>()?;
    Ok(ManagementRules {
        title: short(request.title, "management_rules.title")?,
        version: short(request.version, "management_rules.version")?,
        coverage,
    })
}

impl LinkFormRequest {
    /// Every field present and bounded; the form's rules are the domain's (`link_forms::check_form`).
    fn parse(self) -> Result<(Option<AgencyCode>, LinkForm), IdentityError> {
        let items = fields::present(self.items, "items")?
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                Ok(RequestedItem {
                    query_type: short(item.query_type, &format!("items[{index}].query_type"))?,
                    legal_basis: short(item.legal_basis, &format!("items[{index}].legal_basis"))?,
                    purpose_code: short(item.purpose_code, &format!("items[{index}].purpose_code"))?,
                })
            })
            .collect::<Result<_, IdentityError>>()?;
        let legal_bases = fields::present(self.legal_bases, "legal_bases")?
            .into_iter()
            .enumerate()
            .map(|(index, basis)| short(Some(basis), &format!("legal_bases[{index}]")))
            .collect::<Result<_, IdentityError>>()?;
        let period = fields::present(self.usage_period, "usage_period")?;
        let form = LinkForm {
            legal_bases,
            purpose: text(self.purpose, "purpose")?,
            items,
            using_department: short(self.using_department, "using_department")?,
            provisioning: provisioning(self.provisioning)?,
            usage_from: fields::present(period.from, "usage_period.from")?,
            usage_until: fields::present(period.until, "usage_period.until")?,
            handling_on_end: text(self.handling_on_end, "handling_on_end")?,
            supervisor: contact(self.supervisor, "supervisor")?,
            handler: contact(self.handler, "handler")?,
            management_rules: rules(self.management_rules)?,
            changes: self.changes.unwrap_or_default(),
        };
        let agency = match self.agency_code {
            Some(code) => Some(AgencyCode::new(short(Some(code), "agency_code")?)),
            None => None,
        };
        Ok((agency, form))
    }
}

// --- views -----------------------------------------------------------------------------------------

/// A link as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkSummary {
    pub id: String,
    pub agency_code: String,
    pub status: LinkStatus,
    /// Why it is where it is, and the SPEC rule of that.
    pub cause: Option<LinkCause>,
    pub rule: Option<String>,
    #[schema(value_type = String, format = Date)]
    pub usage_from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub usage_until: NaiveDate,
    /// The next necessity review (R-LINK-09).
    #[schema(value_type = Option<String>, format = Date)]
    pub review_due_on: Option<NaiveDate>,
    /// The notified termination date (R-LINK-08).
    #[schema(value_type = Option<String>, format = Date)]
    pub termination_date: Option<NaiveDate>,
    /// Flagged unused for over a year (R-LINK-10), awaiting the agency's answer.
    pub dormant: bool,
    /// Applied for through this competent authority (R-LINK-11).
    pub sponsored: bool,
}

impl LinkSummary {
    fn of(link: &LinkRow, agency_code: &AgencyCode) -> Self {
        Self {
            id: link.id.to_string(),
            agency_code: agency_code.to_string(),
            status: link.status,
            cause: link.status_cause,
            rule: link.status_cause.map(|cause| cause.rule().to_owned()),
            usage_from: link.usage_from(),
            usage_until: link.usage_until(),
            review_due_on: link.review_due_on,
            termination_date: link.termination_date,
            dormant: link.dormant_notified_at.is_some(),
            sponsored: link.sponsor_agency_id.is_some(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkItemView {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransitionView {
    pub from: Option<LinkStatus>,
    pub to: LinkStatus,
    pub cause: LinkCause,
    pub rule: String,
    pub reason: String,
    /// The acting user; `null`: the sweep (a clock rule).
    pub actor_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemDecisionView {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
    pub decision: ItemDecision,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub decided_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkApplicationView {
    pub id: String,
    pub kind: ApplicationKind,
    pub status: LinkApplicationStatus,
    /// The form as filed (the request's fields, `usage_period` as `usage_from`/`usage_until`).
    #[schema(value_type = Object)]
    pub form: serde_json::Value,
    pub submitted_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub submitted_at: NaiveDateTime,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub decided_at: Option<NaiveDateTime>,
    /// Each requested item with the immigration agency's decision (R-LINK-03).
    pub items: Vec<ItemDecisionView>,
}

impl From<LinkApplication> for LinkApplicationView {
    fn from(application: LinkApplication) -> Self {
        Self {
            id: application.id.to_string(),
            kind: application.kind,
            status: application.status,
            form: serde_json::to_value(&application.form).unwrap_or(serde_json::Value::Null),
            submitted_by: application.submitted_by.to_string(),
            submitted_at: application.submitted_at,
            decided_at: application.decided_at,
            items: application
                .items
                .into_iter()
                .map(|item| ItemDecisionView {
                    legal_basis: item.legal_basis,
                    purpose_code: item.purpose_code,
                    query_type: item.query_type,
                    decision: item.decision,
                    reason: item.reason,
                    decided_by: item.decided_by.map(|u| u.to_string()),
                    decided_at: item.decided_at,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResumptionRequestView {
    pub id: String,
    pub link_id: String,
    pub remediation: String,
    pub status: ResumptionStatus,
    pub requested_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub requested_at: NaiveDateTime,
    pub decided_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub decided_at: Option<NaiveDateTime>,
    pub decision_reason: Option<String>,
}

impl From<ResumptionRequest> for ResumptionRequestView {
    fn from(request: ResumptionRequest) -> Self {
        Self {
            id: request.id.to_string(),
            link_id: request.link_id.to_string(),
            remediation: request.remediation,
            status: request.status,
            requested_by: request.requested_by.to_string(),
            requested_at: request.requested_at,
            decided_by: request.decided_by.map(|u| u.to_string()),
            decided_at: request.decided_at,
            decision_reason: request.decision_reason,
        }
    }
}

/// A link with what it carries, its history, its applications and resumption requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkView {
    #[serde(flatten)]
    pub summary: LinkSummary,
    pub agency_name: String,
    /// The competent authority that applied for it (R-LINK-11).
    pub sponsor_code: Option<String>,
    pub status_reason: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub suspended_at: Option<NaiveDateTime>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option")]
    pub last_used_at: Option<NaiveDateTime>,
    /// Exactly the approved items of its latest decided application (R-LINK-03).
    pub items: Vec<LinkItemView>,
    pub transitions: Vec<TransitionView>,
    pub applications: Vec<LinkApplicationView>,
    pub resumption_requests: Vec<ResumptionRequestView>,
}

impl From<LinkDetail> for LinkView {
    fn from(detail: LinkDetail) -> Self {
        let link = detail.link;
        Self {
            summary: LinkSummary::of(&link, &detail.agency_code),
            agency_name: detail.agency_name,
            sponsor_code: detail.sponsor_code.map(|c| c.to_string()),
            status_reason: link.status_reason.clone(),
            suspended_at: link.suspended_at,
            last_used_at: link.last_used_at,
            items: detail
                .items
                .into_iter()
                .map(|i| LinkItemView {
                    legal_basis: i.legal_basis,
                    purpose_code: i.purpose_code,
                    query_type: i.query_type,
                })
                .collect(),
            transitions: detail
                .transitions
                .into_iter()
                .map(|t| TransitionView {
                    from: t.from_status,
                    to: t.to_status,
                    cause: t.cause,
                    rule: t.cause.rule().to_owned(),
                    reason: t.reason,
                    actor_id: t.actor_id.map(|u| u.to_string()),
                    at: t.at,
                })
                .collect(),
            applications: detail.applications.into_iter().map(LinkApplicationView::from).collect(),
            resumption_requests: detail.resumption_requests.into_iter().map(ResumptionRequestView::from).collect(),
        }
    }
}

fn detail_of(conn: &mut immilink_shared::db::DbConn, link: LinkRow) -> Result<LinkView, IdentityError> {
    Ok(links::load_detail(conn, link)?.into())
}

// --- handlers --------------------------------------------------------------------------------------

/// Links: every agency's for the immigration agency's reviewer; the agency's own (and those it
/// applied for as competent authority) for its account managers and head.
#[utoipa::path(get, path = "/v1/agency-links",
    extensions(("x-immilink-rules" = json!(["R-LINK-11"]))),
    tag = "agency links", security(("bearer" = [])),
    responses((status = 200, body = [LinkSummary]), (status = 403, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/agency-links")]
pub async fn list_links(req: HttpRequest, state: web::Data<State>, caller: Authenticated) -> Json<Vec<LinkSummary>> {
    let found = as_caller(&state, &req, caller.caller(), move |conn, _, actor| links::list(conn, &actor)).await?;
    Ok(web::Json(found.iter().map(|(link, code)| LinkSummary::of(link, code)).collect()))
}

/// A first application (申請暨異動書, 首次申請; R-LINK-01..04, 11, 12): the link is pending until the
/// immigration agency decides each item.
#[utoipa::path(post, path = "/v1/agency-links",
    extensions(("x-immilink-rules" = json!(["R-LINK-01", "R-LINK-02", "R-LINK-03", "R-LINK-04", "R-LINK-11", "R-LINK-12"]))),
    tag = "agency links", security(("bearer" = [])), request_body = LinkFormRequest,
    responses(
        (status = 201, body = LinkView),
        (status = 403, description = "Not the agency's (or its competent authority's) account manager or head (R-LINK-11)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The agency already has a live link: file a change application (R-LINK-05)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field, an item without a declared legal basis (R-LINK-03) or rules missing items of 003 pt 4 (R-LINK-04)", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links")]
pub async fn apply_for_link(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<LinkFormRequest>,
) -> ApiResult<HttpResponse> {
    let (agency, form) = body.into_inner().parse()?;
    let detail = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        link_forms::apply(conn, now, &actor, agency.as_ref(), form)
    })
    .await?;
    Ok(HttpResponse::Created().json(LinkView::from(detail)))
}

/// A link with its items, history, applications and resumption requests.
#[utoipa::path(get, path = "/v1/agency-links/{id}",
    extensions(("x-immilink-rules" = json!(["R-LINK-02", "R-LINK-11"]))),
    tag = "agency links", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = LinkView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/agency-links/{id}")]
pub async fn link_detail(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> Json<LinkView> {
    let id = LinkId::new(id.into_inner());
    let view =
        as_caller(&state, &req, caller.caller(), move |conn, _, actor| Ok(links::detail(conn, &actor, &id)?.into()));
    Ok(web::Json(view.await?))
}

/// A change application (異動, R-LINK-05): handler or supervisor, provisioning, the rules, an
/// extension of the usage period (R-LINK-12), the items, or a stop request (the link stops at once).
/// The whole form is filed again with the latest rules.
#[utoipa::path(post, path = "/v1/agency-links/{id}/change-applications",
    extensions(("x-immilink-rules" = json!(["R-LINK-02", "R-LINK-03", "R-LINK-04", "R-LINK-05", "R-LINK-12"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = LinkFormRequest,
    responses(
        (status = 201, body = LinkView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The link is not live, or an application waits for decisions", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field, no change named (R-LINK-05), R-LINK-03 or R-LINK-04", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/change-applications")]
pub async fn apply_for_change(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<LinkFormRequest>,
) -> ApiResult<HttpResponse> {
    let (agency, form) = body.into_inner().parse()?;
    if agency.is_some() {
        return Err(ApiError::invalid_field(
            "agency_code",
            "a change application is for the link's own agency: leave it out",
        ));
    }
    let id = LinkId::new(id.into_inner());
    let detail = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        link_forms::apply_for_change(conn, now, &actor, &id, form)
    })
    .await?;
    Ok(HttpResponse::Created().json(LinkView::from(detail)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ItemDecisionRequest {
    #[schema(required = true, nullable = false)]
    pub query_type: Option<String>,
    #[schema(required = true, nullable = false)]
    pub legal_basis: Option<String>,
    #[schema(required = true, nullable = false)]
    pub purpose_code: Option<String>,
    #[schema(required = true, nullable = false)]
    pub decision: Option<NiaDecision>,
    /// Required to reject.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ItemDecisionsRequest {
    #[schema(required = true, nullable = false)]
    pub decisions: Option<Vec<ItemDecisionRequest>>,
}

/// The immigration agency decides items of the application under review, one by one (R-LINK-03).
/// When the last is decided, the link carries exactly the approved items.
#[utoipa::path(post, path = "/v1/agency-links/{id}/item-decisions",
    extensions(("x-immilink-rules" = json!(["R-LINK-03"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ItemDecisionsRequest,
    responses(
        (status = 200, body = LinkView),
        (status = 403, description = "Only the immigration agency's reviewer decides", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No application waits for decisions", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/item-decisions")]
pub async fn decide_items(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<ItemDecisionsRequest>,
) -> Json<LinkView> {
    let verdicts = fields::present(body.into_inner().decisions, "decisions")?
        .into_iter()
        .enumerate()
        .map(|(index, d)| {
            let field = |name: &str| format!("decisions[{index}].{name}");
            Ok(ItemVerdict {
                item: RequestedItem {
                    query_type: short(d.query_type, &field("query_type"))?,
                    legal_basis: short(d.legal_basis, &field("legal_basis"))?,
                    purpose_code: short(d.purpose_code, &field("purpose_code"))?,
                },
                decision: fields::present(d.decision, &field("decision"))?,
                reason: optional(d.reason, &field("reason"))?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, IdentityError>>()?;
    let id = LinkId::new(id.into_inner());
    let view = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        Ok(link_forms::decide_items(conn, now, &actor, &id, &verdicts)?.into())
    });
    Ok(web::Json(view.await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SuspensionRequest {
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
}

/// The immigration agency suspends a link at once (003 pt 10): every lookup of the agency is refused
/// with `R-LINK-06` within a second.
#[utoipa::path(post, path = "/v1/agency-links/{id}/suspension",
    extensions(("x-immilink-rules" = json!(["R-LINK-06"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SuspensionRequest,
    responses(
        (status = 200, body = LinkView),
        (status = 403, description = "Only the immigration agency's reviewer suspends", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The link is not active", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/suspension")]
pub async fn suspend_link(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<SuspensionRequest>,
) -> Json<LinkView> {
    let reason = fields::reason(body.into_inner().reason, true)?;
    let id = LinkId::new(id.into_inner());
    let view = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        let link = links::suspend(conn, now, &actor, &id, &reason)?;
        detail_of(conn, link)
    });
    Ok(web::Json(view.await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResumptionRequestBody {
    /// What was remediated.
    #[schema(required = true, nullable = false)]
    pub remediation: Option<String>,
}

/// The agency asks to resume its suspended link after remediation (R-LINK-07): refused while an
/// anomaly notice is unremediated, and after six months of suspension (a new application is needed).
#[utoipa::path(post, path = "/v1/agency-links/{id}/resumption-requests",
    extensions(("x-immilink-rules" = json!(["R-LINK-07"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ResumptionRequestBody,
    responses(
        (status = 201, body = ResumptionRequestView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not suspended, remediation outstanding or suspended over 6 months (R-LINK-07)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/resumption-requests")]
pub async fn request_resumption(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<ResumptionRequestBody>,
) -> ApiResult<HttpResponse> {
    let remediation = text(body.into_inner().remediation, "remediation")?;
    let id = LinkId::new(id.into_inner());
    let request = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        links::request_resumption(conn, now, &actor, &id, &remediation)
    })
    .await?;
    Ok(HttpResponse::Created().json(ResumptionRequestView::from(request)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DecisionRequest {
    #[schema(required = true, nullable = false)]
    pub decision: Option<NiaDecision>,
    /// Required to reject.
    pub reason: Option<String>,
}

/// The immigration agency decides a resumption request: approved → the link is active again.
#[utoipa::path(post, path = "/v1/agency-links/{id}/resumption-requests/{request_id}/decision",
    extensions(("x-immilink-rules" = json!(["R-LINK-07"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path), ("request_id" = String, Path)), request_body = DecisionRequest,
    responses(
        (status = 200, body = ResumptionRequestView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Decided already, or R-LINK-07 no longer allows it", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/resumption-requests/{request_id}/decision")]
pub async fn decide_resumption(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
    body: ApiJson<DecisionRequest>,
) -> Json<ResumptionRequestView> {
    let body = body.into_inner();
    let decision = fields::present(body.decision, "decision")?;
    let reason = fields::reason(body.reason, decision == NiaDecision::Reject)?;
    let (id, request_id) = path.into_inner();
    let (id, request_id) = (LinkId::new(id), ResumptionRequestId::new(request_id));
    let decided = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        links::decide_resumption(conn, now, &actor, &id, &request_id, decision, &reason)
    });
    Ok(web::Json(decided.await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TerminationNoticeRequest {
    /// At least one month after today (Taipei); lookups stop on this date (R-LINK-08).
    #[schema(required = true, nullable = false, value_type = String, format = Date, example = "2027-02-01")]
    pub termination_date: Option<NaiveDate>,
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
}

/// The agency's written notice of termination (R-LINK-08).
#[utoipa::path(post, path = "/v1/agency-links/{id}/termination-notice",
    extensions(("x-immilink-rules" = json!(["R-LINK-08"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = TerminationNoticeRequest,
    responses(
        (status = 200, body = LinkView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Less than a month's notice (R-LINK-08)", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/termination-notice")]
pub async fn termination_notice(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<TerminationNoticeRequest>,
) -> Json<LinkView> {
    let body = body.into_inner();
    let date = fields::present(body.termination_date, "termination_date")?;
    let reason = fields::reason(body.reason, true)?;
    let id = LinkId::new(id.into_inner());
    let view = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        let link = links::give_termination_notice(conn, now, &actor, &id, date, &reason)?;
        detail_of(conn, link)
    });
    Ok(web::Json(view.await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NeedRequest {
    /// Whether the statutory purpose still needs the link.
    #[schema(required = true, nullable = false)]
    pub still_needed: Option<bool>,
    pub note: Option<String>,
}

fn need(body: NeedRequest) -> Result<(bool, String), IdentityError> {
    Ok((fields::present(body.still_needed, "still_needed")?, optional(body.note, "note")?.unwrap_or_default()))
}

/// The agency's periodic necessity review (R-LINK-09): still needed → next review in a year; not
/// needed → the link stops (a stop request).
#[utoipa::path(post, path = "/v1/agency-links/{id}/necessity-reviews",
    extensions(("x-immilink-rules" = json!(["R-LINK-09"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = NeedRequest,
    responses((status = 200, body = LinkView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/necessity-reviews")]
pub async fn necessity_review(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<NeedRequest>,
) -> Json<LinkView> {
    let (still_needed, note) = need(body.into_inner())?;
    let id = LinkId::new(id.into_inner());
    let view = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        let link = links::review_necessity(conn, now, &actor, &id, still_needed, &note)?;
        detail_of(conn, link)
    });
    Ok(web::Json(view.await?))
}

/// The agency answers a dormancy notice (R-LINK-10): not needed → the link stops.
#[utoipa::path(post, path = "/v1/agency-links/{id}/dormancy-confirmation",
    extensions(("x-immilink-rules" = json!(["R-LINK-10"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = NeedRequest,
    responses((status = 200, body = LinkView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, description = "Not flagged dormant", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/agency-links/{id}/dormancy-confirmation")]
pub async fn dormancy_confirmation(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<NeedRequest>,
) -> Json<LinkView> {
    let (still_needed, note) = need(body.into_inner())?;
    let id = LinkId::new(id.into_inner());
    let view = as_caller(&state, &req, caller.caller(), move |conn, now, actor| {
        let link = links::confirm_dormancy(conn, now, &actor, &id, still_needed, &note)?;
        detail_of(conn, link)
    });
    Ok(web::Json(view.await?))
}

/// The filled 申請暨異動書 of one application, printable (A4, Traditional Chinese, ROC dates).
#[utoipa::path(get, path = "/v1/agency-links/{id}/applications/{application_id}/form",
    extensions(("x-immilink-rules" = json!(["R-LINK-02"]))),
    tag = "agency links", security(("bearer" = [])),
    params(("id" = String, Path), ("application_id" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/agency-links/{id}/applications/{application_id}/form")]
pub async fn printable_form(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, application_id) = path.into_inner();
    let (id, application_id) = (LinkId::new(id), LinkApplicationId::new(application_id));
    let printable = as_caller(&state, &req, caller.caller(), move |conn, _, actor| {
        link_forms::printable(conn, &actor, &id, &application_id)
    })
    .await?;
    let html = crate::documents::link_application_html(&printable).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type(ContentType::html()).body(html))
}
