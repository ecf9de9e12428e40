//! The broker's printable documents: askama templates (`services/broker/templates/`) that extend the
//! shared `print.html` (A4, Traditional Chinese, the one print stylesheet), filled from domain records.
//! Dates are ROC dates and check boxes are printed as on paper (`immilink_shared::documents`); every
//! recorded value is escaped by askama.

use askama::Template;
use immilink_shared::catalogue;
use immilink_shared::documents::{check_box, roc_date, roc_date_time};

use crate::domain::doubt::{AttachmentKind, DoubtQuery, DoubtQueryState, NationalityKind, ReceivingUnit};
use crate::domain::BrokerError;

/// The doubt-query form (國人/外國人入出境紀錄疑義查詢表, seed 002 附件二) with the recorded values, to
/// print, stamp and fax (R-QRY-09).
#[derive(Debug, Template)]
#[template(path = "doubt_query_form.html")]
pub struct DoubtQueryForm {
    national_mark: &'static str,
    foreigner_mark: &'static str,
    agency: String,
    /// 查詢日期: the Taipei date of the fax.
    fax_date: String,
    requester_name: String,
    requester_title: String,
    requester_phone: String,
    requester_fax: String,
    name_zh: String,
    sex: &'static str,
    name_en: String,
    birth_date: String,
    national_id: String,
    passport_number: String,
    arc_number: String,
    subject_phone: String,
    reason_lines: Vec<String>,
    case_number: String,
    legal_basis: String,
    purpose: String,
    query_type: &'static str,
    attachment_pages: i64,
    attachment_lines: Vec<AttachmentLine>,
    border_affairs_corps: String,
    information_division: String,
    due_on: String,
    id: String,
    faxed_at: String,
    follow_up: String,
}

/// One of the four attachment lines of the form, ticked with its pages when listed.
#[derive(Debug)]
struct AttachmentLine {
    mark: String,
    label: &'static str,
    described: Option<String>,
}

impl DoubtQueryForm {
    pub fn of(query: &DoubtQuery) -> Self {
        let national = query.nationality == NationalityKind::National;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let receiving = |unit: ReceivingUnit| format!("{} {}", check_box(query.receiving_unit == unit), unit.name_zh());
        Self {
            national_mark: check_box(national),
            foreigner_mark: check_box(!national),
            agency: query.agency.to_string(),
            fax_date: roc_date(query.fax_date()),
            requester_name: query.requester_name.clone(),
            requester_title: query.requester_title.clone(),
            requester_phone: query.requester_phone.clone(),
            requester_fax: text(&query.requester_fax),
            name_zh: text(&query.subject_name_zh),
            sex: query.subject_sex.map(|sex| sex.name_zh()).unwrap_or_default(),
            name_en: text(&query.subject_name_en),
            birth_date: query.subject_birth_date.map(roc_date).unwrap_or_default(),
            national_id: text(&query.subject_national_id),
            passport_number: text(&query.subject_passport_number),
            arc_number: text(&query.subject_arc_number),
            subject_phone: text(&query.subject_phone),
            reason_lines: query.reason.lines().map(str::to_owned).collect(),
            case_number: query.case_number.to_string(),
            legal_basis: catalogue::legal_basis(&query.legal_basis)
                .map(|basis| basis.name_zh)
                .unwrap_or_else(|| query.legal_basis.clone()),
            purpose: catalogue::purpose(&query.purpose_code)
                .map(|purpose| purpose.name_zh)
                .unwrap_or_else(|| query.purpose_code.clone()),
            query_type: query.query_type.name_zh(),
            attachment_pages: query.attachment_pages(),
            attachment_lines: AttachmentKind::ALL.iter().map(|kind| AttachmentLine::of(query, *kind)).collect(),
            border_affairs_corps: receiving(ReceivingUnit::BorderAffairsCorps),
            information_division: receiving(ReceivingUnit::ImmigrationInformationDivision),
            due_on: roc_date(query.due_on),
            id: query.id.to_string(),
            faxed_at: roc_date_time(query.faxed_at),
            follow_up: follow_up(query),
        }
    }

    /// The form as a self-contained HTML page.
    pub fn html(&self) -> Result<String, BrokerError> {
        self.render().map_err(|err| BrokerError::Internal(format!("the doubt-query form does not render: {err}")))
    }
}

impl AttachmentLine {
    fn of(query: &DoubtQuery, kind: AttachmentKind) -> Self {
        let listed: Vec<_> = query.attachments.iter().filter(|a| a.kind == kind).collect();
        let pages: i64 = listed.iter().map(|a| a.pages).sum();
        let descriptions: Vec<&str> = listed.iter().filter_map(|a| a.description.as_deref()).collect();
        Self {
            mark: if listed.is_empty() { "　".to_owned() } else { format!("✓ {pages}頁") },
            label: kind.label_zh(),
            described: (!descriptions.is_empty()).then(|| descriptions.join("；")),
        }
    }
}

fn follow_up(query: &DoubtQuery) -> String {
    match &query.follow_up {
        Some(f) => format!(
            "已補送公文：文號 {}，{}寄出{}。",
            f.document_number,
            roc_date(f.sent_on),
            if f.late { "（逾期）" } else { "" }
        ),
        None if query.state == DoubtQueryState::Overdue => "尚未補送公文（已逾期）。".to_owned(),
        None => "尚未補送公文。".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use immilink_shared::catalogue::QueryType;
    use immilink_shared::typed::{AgencyCode, CaseNumber, UnitId, UserId};

    use super::*;
    use crate::domain::doubt::{Attachment, FollowUp, Sex};
    use crate::domain::DoubtQueryId;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    /// A doubt query about a national, faxed 2026-11-23 10:00 in Taipei, due 26 November.
    fn filed() -> DoubtQuery {
        let faxed_at = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        DoubtQuery {
            id: DoubtQueryId::new("01930000-0000-7000-8000-0000000000d1"),
            agency: AgencyCode::new("TPE-SW"),
            filed_by: UserId::new("01930000-0000-7000-8000-0000000000f1"),
            filer_unit: Some(UnitId::new("unit-a")),
            query_type: QueryType::EntryExitLastYear,
            legal_basis: "social_assistance_act".into(),
            purpose_code: "sw_statutory_business".into(),
            case_number: CaseNumber::new("TPE-2026-7"),
            purpose_approval_id: None,
            requester_name: "王小明".into(),
            requester_title: "社會工作員".into(),
            requester_phone: "(02)2720-8889 分機 1234".into(),
            requester_fax: Some("(02)2720-6552".into()),
            nationality: NationalityKind::National,
            subject_name_zh: Some("陳怡君".into()),
            subject_name_en: None,
            subject_sex: Some(Sex::F),
            subject_birth_date: Some(date(1980, 1, 2)),
            subject_national_id: Some("A123456789".into()),
            subject_passport_number: None,
            subject_arc_number: None,
            subject_phone: None,
            reason: "低收入戶資格審查\n線上查詢系統異常".into(),
            attachments: vec![Attachment { kind: AttachmentKind::EntryExitStampCopy, pages: 2, description: None }],
            receiving_unit: ReceivingUnit::ImmigrationInformationDivision,
            faxed_at,
            due_on: date(2026, 11, 26),
            lookup_id: None,
            created_at: faxed_at,
            follow_up: None,
            state: DoubtQueryState::AwaitingFollowUp,
        }
    }

    fn html(query: &DoubtQuery) -> String {
        DoubtQueryForm::of(query).html().expect("the form renders")
    }

    #[test]
    fn r_qry_09_the_printable_form_reproduces_attachment_two_and_escapes_values() {
        let mut query = filed();
        query.requester_name = "<script>alert('x')</script>".into();
        query.reason = "事由 & \"引號\"\n第二行".into();
        query.attachments = vec![
            Attachment { kind: AttachmentKind::PassportCopy, pages: 1, description: None },
            Attachment { kind: AttachmentKind::Other, pages: 3, description: Some("<b>戶籍謄本</b>".into()) },
        ];
        let html = html(&query);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("內政部移民署 ■國人 □外國人 入出境紀錄疑義查詢表"));
        assert!(html.contains("查詢機關：<span class=\"value\">TPE-SW</span>"));
        assert!(html.contains("查詢日期：<span class=\"value\">民國115年11月23日</span>"));
        assert!(html.contains("出生日期：<span class=\"value\">民國69年1月2日</span>"));
        assert!(html.contains("國民身分證統一編號：<span class=\"value\">A123456789</span>"));
        assert!(html.contains("中文姓名：<span class=\"value\">陳怡君</span>"));
        assert!(html.contains("性　　別：<span class=\"value\">女</span>"));
        assert!(html.contains("傳真電話：<span class=\"value\">(02)2720-6552</span>"));
        assert!(html.contains("案號：<span class=\"value\">TPE-2026-7</span>"));
        assert!(html.contains("法令依據：社會救助法"), "the legal basis by its name");
        assert!(html.contains("附件共 <span class=\"value\">4</span> 頁"));
        assert!(html.contains("（✓ 1頁）1.查詢對象護照基本資料頁影本"));
        assert!(html.contains("（　）2.入出境查驗章影本"));
        // Askama escapes with numeric character references.
        assert!(
            html.contains("（✓ 3頁）4.其他相關佐證資料。 <span class=\"value\">&#60;b&#62;戶籍謄本&#60;/b&#62;</span>")
        );
        assert!(html.contains("□ 國境事務大隊　■ 移民資訊組"));
        assert!(html.contains("本項查詢僅供各機關內部公務參考，不作他項證明使用。"));
        assert!(html.contains("應於 民國115年11月26日 前補送公文"));
        assert!(html.contains("傳真時間：民國115年11月23日 10:00（臺北時間）；尚未補送公文。"));
        assert!(html.contains("@media print"), "the shared print stylesheet");
        assert!(html.contains("@page"), "A4 with page numbers");
        assert!(html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;"));
        assert!(html.contains("事由 &#38; &#34;引號&#34;<br>第二行"));
        assert!(!html.contains("<script"), "no recorded value is markup");
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="), "self-contained");
    }

    #[test]
    fn r_qry_09_foreigners_go_to_the_border_affairs_corps() {
        let mut query = filed();
        query.query_type = QueryType::ForeignResidentEntryExit;
        query.nationality = NationalityKind::Foreigner;
        query.receiving_unit = ReceivingUnit::BorderAffairsCorps;
        query.subject_national_id = None;
        query.subject_arc_number = Some("A800000014".into());
        query.subject_name_en = Some("NGUYEN VAN A".into());
        let html = html(&query);
        assert!(html.contains("內政部移民署 □國人 ■外國人 入出境紀錄疑義查詢表"));
        assert!(html.contains("■ 國境事務大隊　□ 移民資訊組"));
        assert!(html.contains("外國人居留證號：<span class=\"value\">A800000014</span>"));
        assert!(html.contains("英文姓名：<span class=\"value\">NGUYEN VAN A</span>"));
    }

    #[test]
    fn r_qry_09_the_form_says_whether_the_follow_up_was_sent_or_is_overdue() {
        let mut query = filed();
        query.state = DoubtQueryState::Overdue;
        assert!(html(&query).contains("尚未補送公文（已逾期）。"));
        query.state = DoubtQueryState::FollowedUp;
        query.follow_up = Some(FollowUp {
            document_number: "北市社助字第1153099999號".into(),
            sent_on: date(2026, 11, 27),
            late: true,
            recorded_at: query.faxed_at,
            recorded_by: query.filed_by.clone(),
        });
        assert!(html(&query).contains("已補送公文：文號 北市社助字第1153099999號，民國115年11月27日寄出（逾期）。"));
    }
}
