//! Self-audits (R-AUD-05): recorded with the checklist of 附件三 or 附件四, signed by three people,
//! counted per agency and year, printable as the seed's form.

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime};
use immilink_shared::extractors::{ApiJson, ApiQuery, Authenticated};
use immilink_shared::problem::Problem;
use immilink_shared::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::documents::self_audits::SelfAuditSheet;
use crate::domain::self_audits::{
    self, ItemAnswer, NewSelfAudit, SelfAudit, SelfAuditDetail, SelfAuditForm, SelfAuditStatus, SignerCapacity,
    YearOfSelfAudits,
};
use crate::State;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(sign).service(get_one);
}

/// One checklist item's answer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemAnswerBody {
    /// The item's number on the form, from 1 (附件三 has 7 items, 附件四 8).
    pub item: i32,
    /// 是 (true) or 否 (false).
    pub answer: bool,
    /// 查核情形說明; required when the answer is no. At most 2000 characters.
    pub explanation: Option<String>,
}

/// A self-audit to record: every item of its form answered exactly once.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "form": "annex_3",
    "audit_date": "2026-06-15",
    "items": [
        {"item": 1, "answer": true, "explanation": "抽查 3 件帳號申請，均依規定辦理"},
        {"item": 2, "answer": true},
        {"item": 3, "answer": true},
        {"item": 4, "answer": true},
        {"item": 5, "answer": false, "explanation": "5 月份主管稽核月明細表逾 10 日始下載"},
        {"item": 6, "answer": true},
        {"item": 7, "answer": true}
    ]
}))]
pub struct NewSelfAuditBody {
    /// The audited agency: an auditor's own (the default); the immigration agency's reviewer names it.
    pub agency: Option<String>,
    pub form: SelfAuditForm,
    /// 受稽核單位; required on 附件四.
    pub audited_unit: Option<String>,
    /// 稽核日期 (YYYY-MM-DD), not after today in Asia/Taipei.
    #[schema(value_type = String, format = Date)]
    pub audit_date: NaiveDate,
    pub items: Vec<ItemAnswerBody>,
}

/// A signature.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"as": "section_chief", "name": "林股長"}))]
pub struct SignatureBody {
    /// The capacity: `auditor` (稽核人員, role auditor), `section_chief` (股長 / 受稽核單位系統管理人員,
    /// role unit_supervisor) or `unit_head` (單位主管 / 受稽核單位主管, role agency_head).
    #[serde(rename = "as")]
    pub capacity: SignerCapacity,
    /// The name written on the signature line.
    pub name: String,
}

/// One answered checklist item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ItemView {
    pub number: i32,
    /// The item's text, verbatim from the seed's form.
    pub text: String,
    pub answer: Option<bool>,
    pub explanation: Option<String>,
    /// The finding a "no" opened (R-AUD-07).
    pub finding_id: Option<String>,
}

/// One signature line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SignatureView {
    #[serde(rename = "as")]
    pub capacity: SignerCapacity,
    /// The line's label on the form.
    pub label: String,
    /// The name signed; none while unsigned.
    pub name: Option<String>,
}

/// A self-audit with its answers and signatures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SelfAuditView {
    pub id: String,
    pub agency: String,
    pub form: SelfAuditForm,
    pub audited_unit: Option<String>,
    #[schema(value_type = String, format = Date)]
    pub audit_date: NaiveDate,
    pub status: SelfAuditStatus,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339")]
    pub created_at: NaiveDateTime,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub completed_at: Option<NaiveDateTime>,
    pub items: Vec<ItemView>,
    pub signatures: Vec<SignatureView>,
}

impl From<SelfAuditDetail> for SelfAuditView {
    fn from(detail: SelfAuditDetail) -> Self {
        let audit = detail.audit;
        let signatures = SignerCapacity::ALL
            .iter()
            .map(|capacity| SignatureView {
                capacity: *capacity,
                label: capacity.label_zh(audit.form).to_owned(),
                name: audit.signed_name(*capacity).map(str::to_owned),
            })
            .collect();
        Self {
            id: audit.id,
            agency: audit.agency,
            form: audit.form,
            audited_unit: audit.audited_unit,
            audit_date: audit.audit_date,
            status: audit.status,
            created_by: audit.created_by,
            created_at: audit.created_at,
            completed_at: audit.completed_at,
            items: detail
                .items
                .into_iter()
                .map(|item| ItemView {
                    number: item.number,
                    text: item.text.to_owned(),
                    answer: item.answer,
                    explanation: item.explanation,
                    finding_id: item.finding_id,
                })
                .collect(),
            signatures,
        }
    }
}

/// A self-audit in a year's list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SelfAuditSummary {
    pub id: String,
    pub agency: String,
    pub form: SelfAuditForm,
    pub audited_unit: Option<String>,
    #[schema(value_type = String, format = Date)]
    pub audit_date: NaiveDate,
    pub status: SelfAuditStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "immilink_shared::clock::rfc3339_option", default)]
    pub completed_at: Option<NaiveDateTime>,
}

impl From<SelfAudit> for SelfAuditSummary {
    fn from(audit: SelfAudit) -> Self {
        Self {
            id: audit.id,
            agency: audit.agency,
            form: audit.form,
            audited_unit: audit.audited_unit,
            audit_date: audit.audit_date,
            status: audit.status,
            completed_at: audit.completed_at,
        }
    }
}

/// An agency's self-audits in a calendar year and whether it ran the two it owes (R-AUD-05).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SelfAuditYear {
    pub agency: String,
    pub year: i32,
    /// Completed (signed by all three) self-audits dated in the year.
    pub completed: i64,
    /// Always 2 (002 pt 12).
    pub required: i64,
    /// Fewer completed than required: the agency is flagged.
    pub below_minimum: bool,
    pub items: Vec<SelfAuditSummary>,
}

impl From<YearOfSelfAudits> for SelfAuditYear {
    fn from(year: YearOfSelfAudits) -> Self {
        Self {
            agency: year.agency,
            year: year.year,
            completed: year.completed,
            required: year.required,
            below_minimum: year.below_minimum,
            items: year.items.into_iter().map(SelfAuditSummary::from).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SelfAuditFilter {
    /// The agency; the caller's own by default. The immigration agency's reviewer must name one.
    pub agency: Option<String>,
    /// The calendar year of the audit date (Asia/Taipei); the current year by default.
    pub year: Option<i32>,
}

/// Record a self-audit (附件三, or 附件四 when the county audits an office): every item of the form
/// answered once, a "no" explained; each "no" opens a finding. By the agency's auditor or the
/// immigration agency's reviewer. It is a draft until signed by three people. Recorded in the log.
#[utoipa::path(post, path = "/v1/audit/self-audits",
    extensions(("x-immilink-rules" = json!(["R-AUD-05"]))),
    operation_id = "record_self_audit", tag = "audit", security(("bearer" = [])), request_body = NewSelfAuditBody, responses(
    (status = 201, body = SelfAuditView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/self-audits")]
pub async fn create(
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<NewSelfAuditBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let new = NewSelfAudit {
        agency: body.agency,
        form: body.form,
        audited_unit: body.audited_unit,
        audit_date: body.audit_date,
        items: body
            .items
            .into_iter()
            .map(|i| ItemAnswer { item: i.item, answer: i.answer, explanation: i.explanation })
            .collect(),
    };
    let (caller, now) = (caller.caller(), state.clock.now());
    let detail =
        state.db.run(move |conn| self_audits::record(conn, now, &caller, &new)).await.map_err(ApiError::from)?;
    let view = SelfAuditView::from(detail);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/audit/self-audits/{}", view.id)))
        .json(view))
}

/// An agency's self-audits in a calendar year, with the count of completed ones and whether it is
/// below the two a year required (R-AUD-05). The immigration agency's reviewer names the agency.
#[utoipa::path(get, path = "/v1/audit/self-audits",
    extensions(("x-immilink-rules" = json!(["R-AUD-05"]))),
    operation_id = "list_self_audits", tag = "audit", security(("bearer" = [])), params(SelfAuditFilter), responses(
    (status = 200, body = SelfAuditYear),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/self-audits")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<SelfAuditFilter>,
) -> ApiResult<web::Json<SelfAuditYear>> {
    let (caller, now, filter) = (caller.caller(), state.clock.now(), filter.into_inner());
    let year = state
        .db
        .run(move |conn| self_audits::year_of(conn, now, &caller, filter.agency.as_deref(), filter.year))
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(year.into()))
}

/// Sign a self-audit: the auditor as 稽核人員, a unit supervisor as 股長, the agency head as 單位主管,
/// each of the audited agency, three different people (409 `same_signer`), each line once (409
/// `already_signed`). The third signature completes it. Recorded in the log.
#[utoipa::path(post, path = "/v1/audit/self-audits/{id}/signatures",
    extensions(("x-immilink-rules" = json!(["R-AUD-05"]))),
    operation_id = "sign_self_audit", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Self-audit id")), request_body = SignatureBody, responses(
    (status = 200, body = SelfAuditView),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/audit/self-audits/{id}/signatures")]
pub async fn sign(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<SignatureBody>,
) -> ApiResult<web::Json<SelfAuditView>> {
    let (caller, now, id, body) = (caller.caller(), state.clock.now(), id.into_inner(), body.into_inner());
    let detail = state
        .db
        .run(move |conn| {
            self_audits::sign(conn, now, &caller, &id, body.capacity, &body.name)?;
            self_audits::get(conn, &caller, &id)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(detail.into()))
}

/// A self-audit with every item and its signatures: JSON, or with `Accept: text/html` the printable
/// form laid out like the seed's 附件三 / 附件四 (ROC date, ■是 □否, the three signature lines).
#[utoipa::path(get, path = "/v1/audit/self-audits/{id}",
    extensions(("x-immilink-rules" = json!(["R-AUD-05"]))),
    operation_id = "get_self_audit", tag = "audit", security(("bearer" = [])),
    params(("id" = String, Path, description = "Self-audit id")), responses(
    (status = 200, description = "The self-audit as JSON, or 附件三 / 附件四 as a printable HTML page by Accept",
        content((SelfAuditView = "application/json"), (String = "text/html"))),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/audit/self-audits/{id}")]
pub async fn get_one(
    state: web::Data<State>,
    req: HttpRequest,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (caller, id) = (caller.caller(), id.into_inner());
    let detail = state.db.run(move |conn| self_audits::get(conn, &caller, &id)).await.map_err(ApiError::from)?;
    if accepts_html(&req) {
        let html = SelfAuditSheet::of(&detail)
            .html()
            .map_err(|err| ApiError::internal(format!("the self-audit form does not render: {err}")))?;
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html));
    }
    Ok(HttpResponse::Ok().json(SelfAuditView::from(detail)))
}

/// Whether the client asked for HTML (a browser printing the form).
fn accepts_html(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html")))
}

#[cfg(test)]
mod tests {
    use immilink_shared::extractors::parse_json;

    use super::*;

    /// A body that does not parse names the field (422), before any domain check.
    #[test]
    fn r_aud_05_a_malformed_self_audit_names_the_field() {
        let field = |body: serde_json::Value| {
            let err = parse_json::<NewSelfAuditBody>(body.to_string().as_bytes()).unwrap_err().to_problem();
            (err.status, err.field)
        };
        let items = serde_json::json!([{"item": 1, "answer": true}]);
        assert_eq!(
            field(serde_json::json!({"form": "annex_9", "audit_date": "2026-06-15", "items": items})),
            (422, Some("form".to_owned()))
        );
        assert_eq!(
            field(serde_json::json!({"form": "annex_3", "audit_date": "2026/06/15", "items": items})),
            (422, Some("audit_date".to_owned()))
        );
        assert_eq!(
            field(
                serde_json::json!({"form": "annex_3", "audit_date": "2026-06-15", "items": [{"item": 1, "answer": "yes"}]})
            ),
            (422, Some("items[0].answer".to_owned()))
        );
        assert_eq!(field(serde_json::json!({"form": "annex_3", "items": items})), (422, Some("audit_date".to_owned())));
        let signature = parse_json::<SignatureBody>(br#"{"as": "director", "name": "x"}"#).unwrap_err().to_problem();
        assert_eq!(signature.field.as_deref(), Some("as"));
    }

    #[test]
    fn the_printable_form_is_chosen_by_accept() {
        use actix_web::test::TestRequest;
        let with =
            |accept: &str| accepts_html(&TestRequest::get().insert_header((header::ACCEPT, accept)).to_http_request());
        assert!(with("text/html"));
        assert!(with("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(with("application/json, TEXT/HTML; charset=utf-8"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!accepts_html(&TestRequest::get().to_http_request()));
    }

    /// The handlers are registered and documented, the form as HTML too.
    #[test]
    fn self_audit_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method) in [
            ("/v1/audit/self-audits", "post"),
            ("/v1/audit/self-audits", "get"),
            ("/v1/audit/self-audits/{id}", "get"),
            ("/v1/audit/self-audits/{id}/signatures", "post"),
        ] {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path}");
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        }
        let read = &paths["/v1/audit/self-audits/{id}"]["get"]["responses"]["200"]["content"];
        assert!(read["text/html"].is_object() && read["application/json"].is_object(), "{read}");
        let signed = &paths["/v1/audit/self-audits/{id}/signatures"]["post"]["responses"];
        for status in ["200", "403", "404", "409", "422"] {
            assert!(signed[status].is_object(), "{status}");
        }
    }
}
