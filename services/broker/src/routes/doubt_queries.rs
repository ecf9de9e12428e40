//! Doubt queries (疑義查詢表, 附件二) filed while the upstream is down, and their official follow-up
//! documents (R-QRY-09).

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::extractors::{client_ip, ApiJson, ApiQuery, Authenticated, PageQuery};
use immilink_shared::problem::Problem;
use immilink_shared::ApiResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::documents::DoubtQueryForm;
use crate::domain::doubt::{
    self, AttachmentEntry, AttachmentKind, DoubtFilter, DoubtQuery, FollowUp, NationalityKind, NewDoubtQuery,
    NewFollowUp, ReceivingUnit, Sex,
};
use crate::domain::fields::{self, Lines};
use crate::domain::{request, BrokerError, DoubtQueryId};
use crate::State;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AttachmentBody {
    #[schema(required = true, nullable = false)]
    pub kind: Option<AttachmentKind>,
    /// Number of pages, at least 1.
    #[schema(required = true, nullable = false, minimum = 1, maximum = 500)]
    pub pages: Option<i64>,
    /// What it is; required for `other`.
    pub description: Option<String>,
}

// Option fields: a missing one is refused by name (422), not as a generic parse failure.
/// A doubt query as the caseworker fills in 附件二, with the declaration every lookup makes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "query_type": "entry_exit_last_year",
    "legal_basis": "social_assistance_act",
    "purpose_code": "sw_statutory_business",
    "case_number": "TPE-SW-2026-000123",
    "requester_name": "王小明",
    "requester_title": "社會工作員",
    "requester_phone": "(02)2720-8889 分機 1234",
    "requester_fax": "(02)2720-6552",
    "subject_nationality_kind": "national",
    "subject_name_zh": "陳怡君",
    "subject_sex": "F",
    "subject_birth_date": "1980-01-02",
    "subject_national_id": "A123456789",
    "reason": "低收入戶資格審查，需確認最近一年出境期間；線上查詢系統異常",
    "attachments": [{"kind": "entry_exit_stamp_copy", "pages": 2}]
}))]
pub struct DoubtQueryBody {
    /// One of `entry_exit_last_year`, `foreign_resident_entry_exit`, `traveler_history`.
    #[schema(value_type = QueryType, required = true)]
    pub query_type: Option<String>,
    #[schema(schema_with = catalogue::legal_basis_code_schema, required = true)]
    pub legal_basis: Option<String>,
    #[schema(schema_with = catalogue::purpose_code_schema, required = true)]
    pub purpose_code: Option<String>,
    /// 案號.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub case_number: Option<String>,
    /// 姓名 of the caseworker filing it.
    #[schema(required = true, nullable = false)]
    pub requester_name: Option<String>,
    /// 職稱.
    #[schema(required = true, nullable = false)]
    pub requester_title: Option<String>,
    /// 聯絡電話.
    #[schema(required = true, nullable = false)]
    pub requester_phone: Option<String>,
    /// 傳真電話.
    pub requester_fax: Option<String>,
    /// 查詢對象: 國人 or 外國人; decides the receiving unit.
    #[schema(required = true, nullable = false)]
    pub subject_nationality_kind: Option<NationalityKind>,
    /// 中文姓名.
    pub subject_name_zh: Option<String>,
    /// 英文姓名.
    pub subject_name_en: Option<String>,
    /// 性別.
    pub subject_sex: Option<Sex>,
    /// 出生日期.
    pub subject_birth_date: Option<NaiveDate>,
    /// 國民身分證統一編號 (nationals only). At least one of the three identifiers is required.
    pub subject_national_id: Option<String>,
    /// 護照號碼.
    pub subject_passport_number: Option<String>,
    /// 外國人居留證號 (統一證號, old or new style).
    pub subject_arc_number: Option<String>,
    /// 聯絡電話 of the subject.
    pub subject_phone: Option<String>,
    /// 查詢事由.
    #[schema(required = true, nullable = false)]
    pub reason: Option<String>,
    /// 附件.
    pub attachments: Option<Vec<AttachmentBody>>,
    /// When the form was faxed (RFC 3339); default now; never in the future.
    pub faxed_at: Option<DateTime<Utc>>,
    /// The lookup that failed, if any.
    pub lookup_id: Option<String>,
}

impl DoubtQueryBody {
    /// The form as filed at `now`, through the domain's field rules; refused naming the first bad
    /// field, with the rule it breaks (R-QRY-09 unless a more specific one).
    fn parse(self, now: DateTime<Utc>) -> Result<NewDoubtQuery, BrokerError> {
        self.parse_fields(now).map_err(|err| err.or_rule(doubt::RULE))
    }

    fn parse_fields(self, now: DateTime<Utc>) -> Result<NewDoubtQuery, BrokerError> {
        let legal_basis = request::legal_basis(self.legal_basis)?;
        let purpose_code = request::purpose_code(self.purpose_code)?;
        let case_number = fields::case_number(self.case_number, request::RULE)?;
        let query_type = doubt::query_type(self.query_type)?;
        let requester_name = fields::required(self.requester_name, "requester_name", 50, Lines::One)?;
        let requester_title = fields::required(self.requester_title, "requester_title", 50, Lines::One)?;
        let requester_phone = fields::phone(self.requester_phone, "requester_phone", true)?.unwrap_or_default();
        let requester_fax = fields::phone(self.requester_fax, "requester_fax", false)?;
        let nationality = doubt::nationality(self.subject_nationality_kind)?;
        Ok(NewDoubtQuery {
            query_type,
            legal_basis,
            purpose_code,
            case_number,
            requester_name,
            requester_title,
            requester_phone,
            requester_fax,
            nationality,
            subject_name_zh: fields::optional(self.subject_name_zh, "subject_name_zh", 50, Lines::One)?,
            subject_name_en: fields::optional(self.subject_name_en, "subject_name_en", 100, Lines::One)?,
            subject_sex: self.subject_sex,
            subject_birth_date: doubt::birth_date(now, self.subject_birth_date)?,
            identifiers: doubt::identifiers(
                nationality,
                query_type,
                self.subject_national_id,
                self.subject_passport_number,
                self.subject_arc_number,
            )?,
            subject_phone: fields::phone(self.subject_phone, "subject_phone", false)?,
            reason: fields::required(self.reason, "reason", 500, Lines::Many)?,
            attachments: doubt::attachments(
                self.attachments
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| AttachmentEntry { kind: a.kind, pages: a.pages, description: a.description })
                    .collect(),
            )?,
            faxed_at: doubt::faxed_at(now, self.faxed_at)?,
            lookup_id: doubt::lookup_id(self.lookup_id)?,
        })
    }
}

/// One attachment of a filed doubt query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub pages: i64,
    pub description: Option<String>,
}

/// The official follow-up document (補送公文) of a doubt query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FollowUpView {
    /// 文號.
    pub document_number: String,
    /// When the document was sent (Taipei date).
    pub sent_on: NaiveDate,
    /// Sent after the due date.
    pub late: bool,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

impl From<FollowUp> for FollowUpView {
    fn from(f: FollowUp) -> Self {
        Self {
            document_number: f.document_number,
            sent_on: f.sent_on,
            late: f.late,
            recorded_at: f.recorded_at,
            recorded_by: f.recorded_by.into_inner(),
        }
    }
}

/// A filed doubt query with its follow-up state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DoubtQueryView {
    pub id: String,
    /// 查詢機關 (agency code).
    pub agency: String,
    pub filed_by: String,
    pub filer_unit: Option<String>,
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    /// The supervisor approval it was filed under (R-QRY-10), for purposes that need one.
    pub purpose_approval_id: Option<String>,
    pub requester_name: String,
    pub requester_title: String,
    pub requester_phone: String,
    pub requester_fax: Option<String>,
    pub subject_nationality_kind: NationalityKind,
    pub subject_name_zh: Option<String>,
    pub subject_name_en: Option<String>,
    pub subject_sex: Option<Sex>,
    pub subject_birth_date: Option<NaiveDate>,
    pub subject_national_id: Option<String>,
    pub subject_passport_number: Option<String>,
    pub subject_arc_number: Option<String>,
    pub subject_phone: Option<String>,
    pub reason: String,
    pub attachments: Vec<Attachment>,
    /// 附件共 … 頁.
    pub attachment_pages: i64,
    /// 受理查詢單位, from the subject's nationality.
    pub receiving_unit: ReceivingUnit,
    pub faxed_at: DateTime<Utc>,
    /// Taipei business date of the fax (查詢日期).
    pub fax_date: NaiveDate,
    /// The follow-up document is due by the end of this Taipei date.
    pub due_on: NaiveDate,
    pub lookup_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub follow_up: Option<FollowUpView>,
    /// Past the due date without a recorded follow-up, at the time of the answer.
    pub overdue: bool,
}

impl From<DoubtQuery> for DoubtQueryView {
    fn from(q: DoubtQuery) -> Self {
        Self {
            overdue: q.overdue(),
            attachment_pages: q.attachment_pages(),
            fax_date: q.fax_date(),
            id: q.id.into_inner(),
            agency: q.agency.into_inner(),
            filed_by: q.filed_by.into_inner(),
            filer_unit: q.filer_unit.map(|unit| unit.into_inner()),
            query_type: q.query_type,
            legal_basis: q.legal_basis,
            purpose_code: q.purpose_code,
            case_number: q.case_number.into_inner(),
            purpose_approval_id: q.purpose_approval_id.map(|id| id.into_inner()),
            requester_name: q.requester_name,
            requester_title: q.requester_title,
            requester_phone: q.requester_phone,
            requester_fax: q.requester_fax,
            subject_nationality_kind: q.nationality,
            subject_name_zh: q.subject_name_zh,
            subject_name_en: q.subject_name_en,
            subject_sex: q.subject_sex,
            subject_birth_date: q.subject_birth_date,
            subject_national_id: q.subject_national_id,
            subject_passport_number: q.subject_passport_number,
            subject_arc_number: q.subject_arc_number,
            subject_phone: q.subject_phone,
            reason: q.reason,
            attachments: q
                .attachments
                .into_iter()
                .map(|a| Attachment { kind: a.kind, pages: a.pages, description: a.description })
                .collect(),
            receiving_unit: q.receiving_unit,
            faxed_at: q.faxed_at,
            due_on: q.due_on,
            lookup_id: q.lookup_id.map(|id| id.into_inner()),
            created_at: q.created_at,
            follow_up: q.follow_up.map(FollowUpView::from),
        }
    }
}

/// `GET /v1/doubt-queries` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoubtListFilter {
    /// `true`: only those past their due date without a follow-up; `false`: only the others.
    pub overdue: Option<bool>,
}

/// The official document sent after the fax.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"document_number": "北市社助字第1153012345號", "sent_on": "2026-11-25"}))]
pub struct FollowUpBody {
    /// 文號 of the official document.
    #[schema(required = true, nullable = false)]
    pub document_number: Option<String>,
    /// When it was sent (Taipei date): not before the fax date, not in the future.
    #[schema(required = true, nullable = false)]
    pub sent_on: Option<NaiveDate>,
}

impl FollowUpBody {
    fn parse(self) -> Result<NewFollowUp, BrokerError> {
        Ok(NewFollowUp {
            document_number: doubt::document_number(self.document_number)?,
            sent_on: doubt::sent_on(self.sent_on)?,
        })
    }
}

/// Record a doubt query faxed to the immigration agency (R-QRY-09).
///
/// It is a query of personal data: the declaration is checked like a lookup's (R-QRY-01, R-LINK,
/// R-QRY-02, R-QRY-10 for "other business"), the subject's identifiers are validated (R-QRY-04), and its audit
/// event names the subject. The official follow-up document is due on the third day after the Taipei
/// date of the fax.
#[utoipa::path(post, path = "/v1/doubt-queries",
    extensions(("x-immilink-rules" = json!(["R-QRY-09", "R-QRY-01", "R-QRY-02", "R-QRY-04", "R-LINK-03", "R-LINK-06", "R-LINK-08", "R-LINK-12"]))),
    tag = "doubt-queries", security(("bearer" = [])),
    request_body = DoubtQueryBody,
    responses(
        (status = 201, body = DoubtQueryView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agency's link cannot be used now, `code` and `rule` naming why (e.g. `link_suspended` R-LINK-06, `link_terminated` R-LINK-08, `outside_usage_period` R-LINK-12) or does not carry the query type (`item_not_on_link`, R-LINK-03); not permitted (R-QRY-02) or no supervisor approval in force (R-QRY-10)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or unknown declaration (R-QRY-01), invalid identifier (R-QRY-04) or form field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Identity or the database is not answering", body = Problem, content_type = "application/problem+json")))]
#[post("/v1/doubt-queries")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    caller: Authenticated,
    body: ApiJson<DoubtQueryBody>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let new = body.into_inner().parse(now)?;
    let who = caller.caller();
    let entitlements = state.identity.permissions(&who.session_id, &caller.token, client_ip(&req)).await?;
    new.authorize(&entitlements)?;
    let record = state.db.run(move |conn| doubt::file(conn, now, &who, &new)).await?;
    state.relay.wake();
    Ok(HttpResponse::Created().json(DoubtQueryView::from(record)))
}

/// The caller's own doubt queries; unit supervisors, account managers and auditors see their
/// agency's. Each says when its follow-up document is due and whether it is overdue now.
#[utoipa::path(get, path = "/v1/doubt-queries",
    extensions(("x-immilink-rules" = json!(["R-QRY-09"]))),
    tag = "doubt-queries", security(("bearer" = [])),
    params(DoubtListFilter, PageQuery),
    responses(
        (status = 200, body = Vec<DoubtQueryView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid filter value, or `limit` outside 1–500", body = Problem, content_type = "application/problem+json")))]
#[get("/v1/doubt-queries")]
pub async fn list(
    state: web::Data<State>,
    caller: Authenticated,
    filter: ApiQuery<DoubtListFilter>,
    page: ApiQuery<PageQuery>,
) -> ApiResult<web::Json<Vec<DoubtQueryView>>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let filter = DoubtFilter { overdue: filter.into_inner().overdue };
    let page = page.into_inner().page()?;
    let records = state.db.run(move |conn| doubt::list(conn, now, &caller, &filter, &page)).await?;
    Ok(web::Json(records.into_iter().map(DoubtQueryView::from).collect()))
}

/// One doubt query, for its filer and the unit supervisors, account managers and auditors of its
/// agency.
#[utoipa::path(get, path = "/v1/doubt-queries/{id}",
    extensions(("x-immilink-rules" = json!(["R-QRY-09"]))),
    tag = "doubt-queries", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DoubtQueryView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/doubt-queries/{id}")]
pub async fn get(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
) -> ApiResult<web::Json<DoubtQueryView>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let id = DoubtQueryId::new(id.into_inner());
    let record = state.db.run(move |conn| doubt::get(conn, now, &caller, &id)).await?;
    Ok(web::Json(record.into()))
}

/// Record the official follow-up document (補送公文): by the filer or a unit supervisor of the filer's
/// unit, once. One sent after the due date is recorded with `late: true`.
#[utoipa::path(post, path = "/v1/doubt-queries/{id}/follow-up",
    extensions(("x-immilink-rules" = json!(["R-QRY-09"]))),
    tag = "doubt-queries", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = FollowUpBody,
    responses(
        (status = 200, body = DoubtQueryView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the filer nor a supervisor of the filer's unit", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The follow-up is already recorded", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
#[post("/v1/doubt-queries/{id}/follow-up")]
pub async fn follow_up(
    state: web::Data<State>,
    caller: Authenticated,
    id: web::Path<String>,
    body: ApiJson<FollowUpBody>,
) -> ApiResult<web::Json<DoubtQueryView>> {
    let caller = caller.caller();
    let now = state.clock.now();
    let id = DoubtQueryId::new(id.into_inner());
    let follow_up = body.into_inner().parse()?;
    let record = state.db.run(move |conn| doubt::record_follow_up(conn, now, &caller, &id, &follow_up)).await?;
    state.relay.wake();
    Ok(web::Json(record.into()))
}

/// The doubt query as the printable form 附件二 (Traditional Chinese, dates in the ROC calendar), to
/// print, stamp and fax. Self-contained HTML; not cached (it carries personal data).
#[utoipa::path(get, path = "/v1/doubt-queries/{id}/form",
    extensions(("x-immilink-rules" = json!(["R-QRY-09"]))),
    tag = "doubt-queries", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "附件二 as a printable HTML page", body = String, content_type = "text/html"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/v1/doubt-queries/{id}/form")]
pub async fn form(state: web::Data<State>, caller: Authenticated, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let caller = caller.caller();
    let now = state.clock.now();
    let id = DoubtQueryId::new(id.into_inner());
    let record = state.db.run(move |conn| doubt::get(conn, now, &caller, &id)).await?;
    let html = DoubtQueryForm::of(&record).html()?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use immilink_shared::ApiError;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    fn body() -> DoubtQueryBody {
        DoubtQueryBody {
            query_type: Some("entry_exit_last_year".into()),
            legal_basis: Some("social_assistance_act".into()),
            purpose_code: Some("sw_statutory_business".into()),
            case_number: Some("TPE-2026-7".into()),
            requester_name: Some("王小明".into()),
            requester_title: Some("社會工作員".into()),
            requester_phone: Some("(02)2720-8889 分機 1234".into()),
            requester_fax: Some("(02)2720-6552".into()),
            subject_nationality_kind: Some(NationalityKind::National),
            subject_name_zh: Some("陳怡君".into()),
            subject_sex: Some(Sex::F),
            subject_birth_date: Some(date(1980, 1, 2)),
            subject_national_id: Some("a123456789".into()),
            reason: Some("低收入戶資格審查\n線上查詢系統異常".into()),
            attachments: Some(vec![AttachmentBody {
                kind: Some(AttachmentKind::EntryExitStampCopy),
                pages: Some(2),
                description: None,
            }]),
            ..DoubtQueryBody::default()
        }
    }

    fn refusal(body: DoubtQueryBody) -> immilink_shared::problem::Problem {
        ApiError::from(body.parse(now()).unwrap_err()).to_problem()
    }

    #[test]
    fn r_qry_01_the_declaration_is_required_and_known() {
        let new = body().parse(now()).unwrap();
        assert_eq!(new.identifiers().first().map(|(_, id)| *id), Some("A123456789"));
        for field in ["legal_basis", "purpose_code", "case_number"] {
            let mut b = body();
            match field {
                "legal_basis" => b.legal_basis = None,
                "purpose_code" => b.purpose_code = Some(" ".into()),
                _ => b.case_number = None,
            }
            let problem = refusal(b);
            assert_eq!((problem.status, problem.field.as_deref()), (422, Some(field)));
            assert_eq!(problem.rule.as_deref(), Some("R-QRY-01"));
        }
        let unknown = refusal(DoubtQueryBody { legal_basis: Some("made_up_act".into()), ..body() });
        assert_eq!(unknown.rule.as_deref(), Some("R-QRY-01"));
        let curiosity = refusal(DoubtQueryBody { purpose_code: Some("curiosity".into()), ..body() });
        assert_eq!(curiosity.field.as_deref(), Some("purpose_code"));
        let photo = refusal(DoubtQueryBody { query_type: Some("eid_photo".into()), ..body() });
        assert_eq!(photo.field.as_deref(), Some("query_type"), "the form is about entry/exit records");
        assert_eq!(refusal(DoubtQueryBody { query_type: None, ..body() }).field.as_deref(), Some("query_type"));
    }

    /// Every field of the form is checked by name, and each refusal names a rule.
    #[test]
    fn r_qry_09_the_form_fields_are_checked_by_name() {
        let attachment =
            |kind: Option<AttachmentKind>, pages: i64| AttachmentBody { kind, pages: Some(pages), description: None };
        type Edit = Box<dyn Fn(&mut DoubtQueryBody)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("requester_name", Box::new(|b| b.requester_name = None)),
            ("requester_title", Box::new(|b| b.requester_title = Some(" ".into()))),
            ("requester_phone", Box::new(|b| b.requester_phone = Some("call me".into()))),
            ("requester_fax", Box::new(|b| b.requester_fax = Some("123".into()))),
            ("subject_nationality_kind", Box::new(|b| b.subject_nationality_kind = None)),
            ("subject_national_id", Box::new(|b| b.subject_national_id = Some("A123456788".into()))),
            ("subject_passport_number", Box::new(|b| b.subject_passport_number = Some("ABCDEFG".into()))),
            ("subject_arc_number", Box::new(|b| b.subject_arc_number = Some("A800000015".into()))),
            ("subject_national_id", Box::new(|b| b.subject_national_id = None)),
            ("subject_birth_date", Box::new(|b| b.subject_birth_date = Some(date(2027, 1, 1)))),
            ("subject_name_zh", Box::new(|b| b.subject_name_zh = Some("名".repeat(51)))),
            ("reason", Box::new(|b| b.reason = None)),
            ("faxed_at", Box::new(|b| b.faxed_at = Some(now() + Duration::hours(1)))),
            ("faxed_at", Box::new(|b| b.faxed_at = Some(now() - Duration::days(31)))),
            ("lookup_id", Box::new(|b| b.lookup_id = Some("x".repeat(65)))),
            (
                "attachments[0].pages",
                Box::new(move |b| b.attachments = Some(vec![attachment(Some(AttachmentKind::PassportCopy), 0)])),
            ),
            (
                "attachments[0].description",
                Box::new(move |b| b.attachments = Some(vec![attachment(Some(AttachmentKind::Other), 1)])),
            ),
            (
                "attachments[1].kind",
                Box::new(move |b| {
                    let stamp = attachment(Some(AttachmentKind::EntryExitStampCopy), 1);
                    b.attachments = Some(vec![stamp, attachment(Some(AttachmentKind::EntryExitStampCopy), 1)])
                }),
            ),
            ("attachments[0].kind", Box::new(move |b| b.attachments = Some(vec![attachment(None, 1)]))),
        ];
        for (field, edit) in cases {
            let mut b = body();
            edit(&mut b);
            let problem = refusal(b);
            assert_eq!((problem.status, problem.field.as_deref()), (422, Some(field)), "{}", problem.detail);
            assert!(problem.rule.is_some(), "{field} names a rule");
        }
    }

    #[test]
    fn a_follow_up_body_needs_its_document_number_and_date() {
        let missing = |body: FollowUpBody| ApiError::from(body.parse().unwrap_err()).to_problem();
        let no_number = missing(FollowUpBody { document_number: None, sent_on: Some(date(2026, 11, 24)) });
        assert_eq!(
            (no_number.field.as_deref(), no_number.rule.as_deref()),
            (Some("document_number"), Some("R-QRY-09"))
        );
        let no_date = missing(FollowUpBody { document_number: Some("北市社助字第1號".into()), sent_on: None });
        assert_eq!((no_date.field.as_deref(), no_date.rule.as_deref()), (Some("sent_on"), Some("R-QRY-09")));
    }

    /// The handlers are registered and documented, the form as HTML.
    #[test]
    fn doubt_query_routes_are_registered_and_documented() {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let paths = &doc["paths"];
        for (path, method) in [
            ("/v1/doubt-queries", "post"),
            ("/v1/doubt-queries", "get"),
            ("/v1/doubt-queries/{id}", "get"),
            ("/v1/doubt-queries/{id}/follow-up", "post"),
            ("/v1/doubt-queries/{id}/form", "get"),
        ] {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path}");
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        }
        let printable = &paths["/v1/doubt-queries/{id}/form"]["get"]["responses"]["200"]["content"];
        assert!(printable["text/html"].is_object(), "{printable}");
        let created = &paths["/v1/doubt-queries"]["post"]["responses"];
        for status in ["201", "403", "422"] {
            assert!(created[status].is_object(), "{status}");
        }
    }
}
