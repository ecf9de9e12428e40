//! 各機關應用移民資訊申請暨異動書 (the form at the end of seed 003) filled from a filed link
//! application (R-LINK-02): the opening sentence with the data-receiving agency (and the competent
//! authority applying for it, R-LINK-11), sections 一 to 九 in the form's words, the requested items
//! with the immigration agency's decision on each (R-LINK-03), the check boxes of a first or a change
//! application (R-LINK-05, R-LINK-12), the attached management rules against the eight items of
//! 003 pt 4 (R-LINK-04), a blank seal box and the ROC submission date. A4 portrait
//! (`templates/link_application.html`, extending the shared `print.html`).

use askama::Template;
use chrono::Datelike;
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::clock::{business_date, from_db, roc_year};
use immilink_shared::documents::{check_box, roc_date, roc_date_time};

use crate::domain::link_forms::{
    ApplicationKind, ChangeKind, Contact, ItemDecision, ItemRecord, LinkApplicationStatus, PrintableApplication,
    RequestedItem, RulesItem, TransferMethod,
};

/// The form as a self-contained HTML page.
pub fn link_application_html(printable: &PrintableApplication) -> Result<String, askama::Error> {
    LinkApplicationForm::of(printable).render()
}

/// The printable application and change form, filled from a filed application.
#[derive(Debug, Template)]
#[template(path = "link_application.html")]
pub struct LinkApplicationForm {
    /// 資料取得機關.
    agency: String,
    /// The competent authority applying for a non-public agency (R-LINK-11).
    sponsor: Option<String>,
    /// 提供_____資料: the query types requested, each once, in the order filed.
    data: String,
    /// 一、取得資料之法令依據: the declared bases by name.
    legal_bases: String,
    purpose_lines: Vec<String>,
    items: Vec<ItemRow>,
    approved: usize,
    rejected: usize,
    pending: usize,
    /// 二、資料使用部門.
    using_department: String,
    /// 首次申請 (§3 and §4).
    first: &'static str,
    /// §3 變更: the provisioning changes.
    provisioning_changed: &'static str,
    file_transfer: &'static str,
    email: &'static str,
    sftp: &'static str,
    other: &'static str,
    method_other: String,
    designated: String,
    online_query: &'static str,
    online_query_detail: String,
    /// 四、資料利用期間 (ROC dates, the last day included).
    usage_from: String,
    usage_until: String,
    extension: &'static str,
    /// 五、特定目的消失或期限屆滿時之處理.
    handling_lines: Vec<String>,
    /// 六、應用移民資訊管理異動.
    supervisor: ContactRow,
    handler: ContactRow,
    rules_changed: &'static str,
    stop: &'static str,
    /// The attached management rules (R-LINK-04).
    rules_title: String,
    rules_version: String,
    rules: Vec<RulesRow>,
    /// 中華民國 年 月 日: the Taipei date the application was submitted.
    year: i32,
    month: u32,
    day: u32,
    /// The footer: the application as immilink records it.
    id: String,
    agency_code: String,
    kind: &'static str,
    changes: String,
    submitted_at: String,
    status: String,
}

/// One requested item and the immigration agency's decision on it.
#[derive(Debug)]
struct ItemRow {
    query_type: String,
    legal_basis: String,
    purpose: String,
    /// 核准, 不核准 or 待審.
    decision: &'static str,
    rejected: bool,
    reason: Option<String>,
}

/// 變更單位主管 or 變更承辦人員, with the person on the form.
#[derive(Debug)]
struct ContactRow {
    changed: &'static str,
    name: String,
    title: String,
    phone: String,
    email: String,
}

/// One of the eight items of 003 pt 4 and where the attached rules cover it.
#[derive(Debug)]
struct RulesRow {
    number: &'static str,
    item: &'static str,
    /// The article or section; `None` when the rules do not say.
    section: Option<String>,
}

/// The item numbers of 003 pt 4: (一) to (八).
const NUMERALS: [&str; 8] = ["一", "二", "三", "四", "五", "六", "七", "八"];

impl LinkApplicationForm {
    pub fn of(printable: &PrintableApplication) -> Self {
        let application = &printable.application;
        let form = &application.form;
        let changes = |change: ChangeKind| form.changes.contains(&change);
        let first = application.kind == ApplicationKind::First;
        let transfer = form.provisioning.file_transfer.as_ref();
        let method = |method: TransferMethod| check_box(transfer.is_some_and(|t| t.method == method));
        let items = item_rows(&form.items, &application.items);
        let count = |decision: &str| items.iter().filter(|row| row.decision == decision).count();
        let submitted_on = business_date(from_db(application.submitted_at));
        Self {
            agency: printable.agency_name.clone(),
            sponsor: printable.sponsor_name.clone(),
            data: requested_data(&form.items),
            legal_bases: form.legal_bases.iter().map(|code| legal_basis_name(code)).collect::<Vec<_>>().join("、"),
            purpose_lines: lines(&form.purpose),
            approved: count(APPROVED),
            rejected: count(REJECTED),
            pending: count(PENDING),
            items,
            using_department: form.using_department.clone(),
            first: check_box(first),
            provisioning_changed: check_box(changes(ChangeKind::Provisioning)),
            file_transfer: check_box(transfer.is_some()),
            email: method(TransferMethod::Email),
            sftp: method(TransferMethod::Sftp),
            other: method(TransferMethod::Other),
            method_other: transfer
                .filter(|t| t.method == TransferMethod::Other)
                .and_then(|t| t.method_other.clone())
                .unwrap_or_default(),
            designated: transfer.map(|t| t.designated_account_or_ip.clone()).unwrap_or_default(),
            online_query: check_box(form.provisioning.online_query),
            online_query_detail: if form.provisioning.online_query {
                form.provisioning.online_query_detail.clone().unwrap_or_default()
            } else {
                String::new()
            },
            usage_from: roc_date(form.usage_from),
            usage_until: roc_date(form.usage_until),
            extension: check_box(changes(ChangeKind::Extension)),
            handling_lines: lines(&form.handling_on_end),
            supervisor: ContactRow::of(&form.supervisor, changes(ChangeKind::Supervisor)),
            handler: ContactRow::of(&form.handler, changes(ChangeKind::Handler)),
            rules_changed: check_box(changes(ChangeKind::Rules)),
            stop: check_box(changes(ChangeKind::Stop)),
            rules_title: form.management_rules.title.clone(),
            rules_version: form.management_rules.version.clone(),
            rules: RulesItem::ALL
                .iter()
                .zip(NUMERALS)
                .map(|(item, number)| {
                    let sections: Vec<&str> = form
                        .management_rules
                        .coverage
                        .iter()
                        .filter(|c| c.item == *item)
                        .map(|c| c.section.as_str())
                        .collect();
                    RulesRow {
                        number,
                        item: item.name_zh(),
                        section: (!sections.is_empty()).then(|| sections.join("、")),
                    }
                })
                .collect(),
            year: roc_year(submitted_on.year()),
            month: submitted_on.month(),
            day: submitted_on.day(),
            id: application.id.to_string(),
            agency_code: printable.agency_code.to_string(),
            kind: match application.kind {
                ApplicationKind::First => "首次申請",
                ApplicationKind::Change => "異動申請",
            },
            changes: form.changes.iter().map(|change| change_name(*change)).collect::<Vec<_>>().join("、"),
            submitted_at: roc_date_time(from_db(application.submitted_at)),
            status: match (application.status, application.decided_at) {
                (LinkApplicationStatus::Decided, Some(at)) => {
                    format!("移民署已審結（{}，臺北時間）", roc_date_time(from_db(at)))
                }
                (LinkApplicationStatus::Decided, None) => "移民署已審結".to_owned(),
                (LinkApplicationStatus::UnderReview, _) => "移民署審查中".to_owned(),
            },
        }
    }

    /// The form as a self-contained HTML page.
    pub fn html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

impl ContactRow {
    fn of(contact: &Contact, changed: bool) -> Self {
        Self {
            changed: check_box(changed),
            name: contact.name.clone(),
            title: contact.title.clone(),
            phone: contact.phone.clone(),
            email: contact.email.clone(),
        }
    }
}

const APPROVED: &str = "核准";
const REJECTED: &str = "不核准";
const PENDING: &str = "待審";

/// The items in the order filed, each with its recorded decision (待審 until decided); a decided
/// item the form does not list (none should be) is printed after them rather than dropped.
fn item_rows(filed: &[RequestedItem], records: &[ItemRecord]) -> Vec<ItemRow> {
    let same = |item: &RequestedItem, record: &ItemRecord| {
        item.query_type == record.query_type
            && item.legal_basis == record.legal_basis
            && item.purpose_code == record.purpose_code
    };
    let mut rows: Vec<ItemRow> = filed
        .iter()
        .map(|item| {
            let record = records.iter().find(|record| same(item, record));
            ItemRow::of(&item.query_type, &item.legal_basis, &item.purpose_code, record)
        })
        .collect();
    rows.extend(
        records
            .iter()
            .filter(|record| !filed.iter().any(|item| same(item, record)))
            .map(|record| ItemRow::of(&record.query_type, &record.legal_basis, &record.purpose_code, Some(record))),
    );
    rows
}

impl ItemRow {
    fn of(query_type: &str, legal_basis: &str, purpose_code: &str, record: Option<&ItemRecord>) -> Self {
        let decision = record.map_or(ItemDecision::Pending, |record| record.decision);
        Self {
            query_type: query_type_name(query_type),
            legal_basis: legal_basis_name(legal_basis),
            purpose: catalogue::purpose(purpose_code).map(|p| p.name_zh).unwrap_or_else(|| purpose_code.to_owned()),
            decision: match decision {
                ItemDecision::Approved => APPROVED,
                ItemDecision::Rejected => REJECTED,
                ItemDecision::Pending => PENDING,
            },
            rejected: decision == ItemDecision::Rejected,
            reason: record
                .and_then(|r| r.reason.as_deref())
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        }
    }
}

/// 提供_____資料: each requested query type once, by name, in the order first filed.
fn requested_data(items: &[RequestedItem]) -> String {
    let mut codes: Vec<&str> = Vec::new();
    for item in items {
        if !codes.contains(&item.query_type.as_str()) {
            codes.push(&item.query_type);
        }
    }
    codes.into_iter().map(query_type_name).collect::<Vec<_>>().join("、")
}

fn query_type_name(code: &str) -> String {
    QueryType::parse(code).map_or_else(|| code.to_owned(), |q| q.name_zh().to_owned())
}

fn legal_basis_name(code: &str) -> String {
    catalogue::legal_basis(code).map_or_else(|| code.to_owned(), |basis| basis.name_zh)
}

/// What a change application changes, in the form's words (the footer lists them all, including a
/// change of items, which has no box of its own).
fn change_name(change: ChangeKind) -> &'static str {
    match change {
        ChangeKind::Supervisor => "變更單位主管",
        ChangeKind::Handler => "變更承辦人員",
        ChangeKind::Provisioning => "變更資料提供方式",
        ChangeKind::Rules => "變更本機關應用移民資訊管理規定",
        ChangeKind::Extension => "資料利用期間展延",
        ChangeKind::Items => "變更申請項目",
        ChangeKind::Stop => "申請停止資料提供",
    }
}

/// Free text as printed lines (the template puts `<br>` between them).
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime};
    use immilink_shared::catalogue::{AgencyKind, QueryType};

    use super::*;
    use crate::domain::link_forms::{
        FileTransfer, LinkApplication, LinkApplicationId, LinkForm, ManagementRules, Provisioning, RulesCoverage,
    };
    use crate::domain::links::LinkId;
    use crate::domain::{AgencyCode, AgencyId, UserId};

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    /// Naive UTC, as stored: 2026-12-02 17:30Z is already 3 December in Taipei.
    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        date(y, m, d).and_hms_opt(h, min, 0).expect("a valid time")
    }

    fn item(query_type: QueryType, legal_basis: &str) -> RequestedItem {
        RequestedItem {
            query_type: query_type.code().into(),
            legal_basis: legal_basis.into(),
            purpose_code: "sw_statutory_business".into(),
        }
    }

    fn contact(name: &str, title: &str, who: &str) -> Contact {
        Contact {
            name: name.into(),
            title: title.into(),
            phone: "(02)2720-8889 分機 1234".into(),
            email: format!("{who}@tpe.example"),
        }
    }

    /// A first application of a social-welfare bureau: two bases, three items, online query and SFTP.
    fn filed_form() -> LinkForm {
        LinkForm {
            legal_bases: vec!["social_assistance_act".into(), "senior_welfare_act".into()],
            purpose: "低收入戶資格審查\n需查證當事人入出境紀錄".into(),
            items: vec![
                item(QueryType::EntryExitLastYear, "social_assistance_act"),
                item(QueryType::ForeignerResidence, "social_assistance_act"),
                item(QueryType::EntryExitLastYear, "senior_welfare_act"),
            ],
            using_department: "社會救助科".into(),
            provisioning: Provisioning {
                online_query: true,
                online_query_detail: Some("immilink 線上查詢（社會救助科工作站）".into()),
                file_transfer: Some(FileTransfer {
                    method: TransferMethod::Sftp,
                    method_other: None,
                    designated_account_or_ip: "sftp-tpe-sw / 10.20.30.40".into(),
                }),
            },
            usage_from: date(2026, 12, 3),
            usage_until: date(2028, 12, 2),
            handling_on_end: "查詢紀錄保存五年後銷毀".into(),
            supervisor: contact("王科長", "科長", "supervisor"),
            handler: contact("林承辦", "社工員", "handler"),
            management_rules: ManagementRules {
                title: "臺北市政府社會局應用移民資訊管理規定".into(),
                version: "2".into(),
                coverage: (1..)
                    .zip(RulesItem::ALL)
                    .map(|(n, item)| RulesCoverage { item: *item, section: format!("第{n}點") })
                    .collect(),
            },
            changes: Vec::new(),
        }
    }

    fn record(item: &RequestedItem, decision: ItemDecision, reason: Option<&str>) -> ItemRecord {
        ItemRecord {
            legal_basis: item.legal_basis.clone(),
            purpose_code: item.purpose_code.clone(),
            query_type: item.query_type.clone(),
            decision,
            reason: reason.map(str::to_owned),
            decided_by: None,
            decided_at: None,
        }
    }

    fn printable(kind: ApplicationKind, form: LinkForm) -> PrintableApplication {
        let items = form.items.iter().map(|item| record(item, ItemDecision::Pending, None)).collect();
        PrintableApplication {
            application: LinkApplication {
                id: LinkApplicationId::new("01930000-0000-7000-8000-0000000000a1"),
                link_id: LinkId::new("01930000-0000-7000-8000-0000000000b1"),
                agency_id: AgencyId::new("01930000-0000-7000-8000-0000000000c1"),
                sponsor_agency_id: None,
                kind,
                status: LinkApplicationStatus::UnderReview,
                form,
                submitted_by: UserId::new("01930000-0000-7000-8000-0000000000d1"),
                submitted_at: utc(2026, 12, 2, 17, 30),
                decided_at: None,
                items,
            },
            agency_code: AgencyCode::new("TPE-SW"),
            agency_name: "臺北市政府社會局".into(),
            sponsor_name: None,
        }
    }

    fn render(printable: &PrintableApplication) -> String {
        link_application_html(printable).expect("the form renders")
    }

    #[test]
    fn r_link_02_every_field_of_the_form_is_printed() {
        let html = render(&printable(ApplicationKind::First, filed_form()));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("@page") && html.contains("@media print"), "the shared A4 print stylesheet");
        assert!(html.contains("<h1>各機關應用移民資訊申請暨異動書</h1>"));
        assert!(html.contains(
            "<span class=\"fill\">臺北市政府社會局</span>（即資料取得機關）為業務所需，經內政部移民署（下稱移民署）提供<span class=\"fill\">使用身分證號或統一證號查詢最近1年入出境紀錄、外國人居留資料</span>資料，為確保資料安全，資料取得機關應依下列內容辦理："
        ));
        assert!(!html.contains("代為申請"), "a public agency applies for itself");
        // 一: the bases by name, the purpose, the items.
        assert!(html.contains("取得資料之法令依據：<span class=\"fill\">社會救助法、老人福利法</span>"));
        assert!(html.contains("使用目的：<span class=\"fill\">低收入戶資格審查<br>需查證當事人入出境紀錄</span>"));
        assert!(html.contains("共 <span class=\"value\">3</span> 項（移民署核准 0 項、不核准 0 項、待審 3 項）"));
        assert_eq!(html.matches("<tr class=\"item\">").count(), 3);
        assert!(html.contains(
            "<td class=\"no\">2</td><td>外國人居留資料</td><td>社會救助法</td><td>依法令辦理社政業務需使用移民資訊</td><td class=\"decision\">待審</td>"
        ));
        // 二 to 五.
        assert!(html.contains("資料使用部門：<span class=\"fill\">社會救助科</span>"));
        assert!(html.contains("資料提供方式：<span class=\"choices\">■首次申請　□變更</span>"));
        assert!(html.contains(
            "■檔案傳輸：<span class=\"choices\">□電子郵件　■SFTP　□其他，</span><span class=\"fill\"></span>"
        ));
        assert!(
            html.contains("上述傳輸方式指定之帳號或 IP 位址：<span class=\"fill\">sftp-tpe-sw / 10.20.30.40</span>")
        );
        assert!(html.contains("■線上資料查詢：<span class=\"fill\">immilink 線上查詢（社會救助科工作站）</span>"));
        assert!(html.contains(
            "資料利用期間：<span class=\"fill\">民國115年12月3日</span>起至<span class=\"fill\">民國117年12月2日</span>止　<span class=\"choices\">■首次申請　□展延</span>"
        ));
        assert!(html
            .contains("資料利用之特定目的消失或期限屆滿時之處理：<span class=\"fill\">查詢紀錄保存五年後銷毀</span>"));
        // 六: supervisor and handler, nothing changed on a first application.
        assert!(html.contains(
            "<td class=\"change\">□變更單位主管</td><td>王科長</td><td>科長</td><td>(02)2720-8889 分機 1234</td><td>supervisor@tpe.example</td>"
        ));
        assert!(html.contains(
            "<td class=\"change\">□變更承辦人員</td><td>林承辦</td><td>社工員</td><td>(02)2720-8889 分機 1234</td><td>handler@tpe.example</td>"
        ));
        assert!(html.contains("□變更本機關應用移民資訊管理規定</span>　<span class=\"choices\">□申請停止資料提供"));
        // The attached rules against the eight items of 003 pt 4.
        assert!(html.contains(
            "檢附本機關應用移民資訊管理規定：<span class=\"fill\">臺北市政府社會局應用移民資訊管理規定</span>（版次：<span class=\"fill\">2</span>）"
        ));
        for (n, item) in RulesItem::ALL.iter().enumerate() {
            let row = format!(
                "<tr><td class=\"no\">（{}）</td><td>{}</td><td>第{}點</td></tr>",
                NUMERALS[n],
                item.name_zh(),
                n + 1
            );
            assert!(html.contains(&row), "{row}");
        }
        assert!(!html.contains("未載明"));
        // 七 to 九 verbatim, the seal box and the ROC date of submission (Taipei).
        assert!(html.contains("七、</span>自移民署取得之資料，資料取得機關須負保密責任，未經移民署同意，不得任意移轉，如有不當使用或侵害個人隱私，除應依相關規定追究行政責任外，應依刑法、個人資料保護法等相關規定，移請司法機關偵辦。"));
        assert!(html.contains("八、</span>資料取得機關應依移民署之各機關應用移民資訊連結作業及管理要點辦理。"));
        assert!(html.contains("九、</span>本申請書經資料取得機關用印並正式函復同意後，即行生效。"));
        assert!(html.contains("<div>機關用印：</div><div class=\"seal\"></div>"));
        assert!(html.contains(
            "中華民國<span class=\"fill\">115</span>年<span class=\"fill\">12</span>月<span class=\"fill\">3</span>日"
        ));
        assert!(html.contains(
            "immilink 申請編號：01930000-0000-7000-8000-0000000000a1（首次申請）；機關代號：TPE-SW；送件時間：民國115年12月3日 01:30（臺北時間）；移民署審查中"
        ));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="), "self-contained");
    }

    #[test]
    fn each_item_is_printed_by_name_with_the_immigration_agencys_decision() {
        let mut printable = printable(ApplicationKind::First, filed_form());
        let form = &printable.application.form;
        // Stored in code order, not as filed: the form's order wins.
        printable.application.items = vec![
            record(&form.items[2], ItemDecision::Rejected, Some("老人福利法未規定得查詢入出境紀錄")),
            record(&form.items[1], ItemDecision::Pending, None),
            record(&form.items[0], ItemDecision::Approved, Some("  ")),
        ];
        printable.application.status = LinkApplicationStatus::Decided;
        printable.application.decided_at = Some(utc(2026, 12, 10, 2, 0));
        let html = render(&printable);
        assert!(html.contains(
            "<td class=\"no\">1</td><td>使用身分證號或統一證號查詢最近1年入出境紀錄</td><td>社會救助法</td><td>依法令辦理社政業務需使用移民資訊</td><td class=\"decision\">核准</td>"
        ));
        assert!(html.contains("<td class=\"no\">2</td><td>外國人居留資料</td>"));
        assert!(html.contains(
            "<td class=\"no\">3</td><td>使用身分證號或統一證號查詢最近1年入出境紀錄</td><td>老人福利法</td><td>依法令辦理社政業務需使用移民資訊</td><td class=\"decision rejected\">不核准<div class=\"reason\">理由：老人福利法未規定得查詢入出境紀錄</div></td>"
        ));
        assert!(html.contains("<td class=\"decision\">待審</td>"));
        assert!(html.contains("（移民署核准 1 項、不核准 1 項、待審 1 項）"));
        assert!(html.contains("；移民署已審結（民國115年12月10日 10:00，臺北時間）"));
    }

    #[test]
    fn a_change_application_ticks_what_it_changes() {
        let mut form = filed_form();
        form.provisioning = Provisioning {
            online_query: false,
            online_query_detail: Some("不再使用".into()),
            file_transfer: Some(FileTransfer {
                method: TransferMethod::Other,
                method_other: Some("公文光碟".into()),
                designated_account_or_ip: "社會救助科收發室".into(),
            }),
        };
        form.changes = vec![ChangeKind::Provisioning, ChangeKind::Extension, ChangeKind::Supervisor, ChangeKind::Items];
        let html = render(&printable(ApplicationKind::Change, form.clone()));
        assert!(html.contains("資料提供方式：<span class=\"choices\">□首次申請　■變更</span>"));
        assert!(html.contains(
            "■檔案傳輸：<span class=\"choices\">□電子郵件　□SFTP　■其他，</span><span class=\"fill\">公文光碟</span>"
        ));
        assert!(html.contains("□線上資料查詢：<span class=\"fill\"></span>"), "an unchosen method has no detail");
        assert!(html.contains("<span class=\"choices\">□首次申請　■展延</span>"));
        assert!(html.contains("<td class=\"change\">■變更單位主管</td>"));
        assert!(html.contains("<td class=\"change\">□變更承辦人員</td>"));
        assert!(html.contains("□變更本機關應用移民資訊管理規定</span>　<span class=\"choices\">□申請停止資料提供"));
        assert!(html.contains("（異動申請：變更資料提供方式、資料利用期間展延、變更單位主管、變更申請項目）"));

        form.changes = vec![ChangeKind::Rules, ChangeKind::Stop, ChangeKind::Handler];
        form.provisioning = Provisioning {
            online_query: true,
            online_query_detail: None,
            file_transfer: Some(FileTransfer {
                method: TransferMethod::Email,
                method_other: Some("ignored".into()),
                designated_account_or_ip: "sw-transfer@tpe.example".into(),
            }),
        };
        form.management_rules.coverage.retain(|c| c.item != RulesItem::AgencyLiability);
        let html = render(&printable(ApplicationKind::Change, form));
        assert!(html.contains("資料提供方式：<span class=\"choices\">□首次申請　□變更</span>"));
        assert!(html.contains(
            "■檔案傳輸：<span class=\"choices\">■電子郵件　□SFTP　□其他，</span><span class=\"fill\"></span>"
        ));
        assert!(html.contains("<span class=\"choices\">□首次申請　□展延</span>"));
        assert!(html.contains("<td class=\"change\">□變更單位主管</td>"));
        assert!(html.contains("<td class=\"change\">■變更承辦人員</td>"));
        assert!(html.contains("■變更本機關應用移民資訊管理規定</span>　<span class=\"choices\">■申請停止資料提供"));
        assert!(html
            .contains(&format!("<td>{}</td><td class=\"missing\">未載明</td>", RulesItem::AgencyLiability.name_zh())));
    }

    #[test]
    fn online_query_only_leaves_every_transfer_box_empty() {
        let mut form = filed_form();
        form.provisioning.file_transfer = None;
        let html = render(&printable(ApplicationKind::First, form));
        assert!(html.contains(
            "□檔案傳輸：<span class=\"choices\">□電子郵件　□SFTP　□其他，</span><span class=\"fill\"></span>"
        ));
        assert!(html.contains("上述傳輸方式指定之帳號或 IP 位址：<span class=\"fill\"></span>"));
        assert!(html.contains("■線上資料查詢："));
    }

    #[test]
    fn a_non_public_agency_is_applied_for_by_its_competent_authority() {
        let mut printable = printable(ApplicationKind::First, filed_form());
        printable.agency_name = "財團法人臺北市私立安康長照機構".into();
        printable.sponsor_name = Some("臺北市政府社會局".into());
        let html = render(&printable);
        assert!(html.contains(
            "<span class=\"fill\">財團法人臺北市私立安康長照機構</span>（即資料取得機關，由<span class=\"fill\">臺北市政府社會局</span>代為申請）為業務所需"
        ));
    }

    #[test]
    fn recorded_text_is_escaped() {
        let mut form = filed_form();
        form.purpose = "<script>alert('x')</script> & \"引號\"".into();
        form.using_department = "<b>救助科</b>".into();
        form.management_rules.title = "規定</td><td>".into();
        let mut printable = printable(ApplicationKind::First, form);
        printable.agency_name = "<img src=x onerror=alert(1)>".into();
        let html = render(&printable);
        assert!(html.contains("使用目的：<span class=\"fill\">&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;引號&#34;</span>"));
        assert!(html.contains("&#60;b&#62;救助科&#60;/b&#62;"));
        assert!(html.contains("規定&#60;/td&#62;&#60;td&#62;"));
        assert!(html.contains("&#60;img src=x onerror=alert(1)&#62;"));
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains("<b>"),
            "no recorded value is markup"
        );
    }

    #[test]
    fn a_long_item_list_prints_every_row_under_a_repeating_header() {
        let bases: Vec<String> = catalogue::legal_bases()
            .into_iter()
            .filter(|b| b.agency_kind == AgencyKind::SocialWelfare)
            .map(|b| b.code)
            .collect();
        let mut form = filed_form();
        form.items = bases.iter().flat_map(|basis| QueryType::ALL.iter().map(move |q| item(*q, basis))).collect();
        form.legal_bases = bases.clone();
        let html = render(&printable(ApplicationKind::First, form));
        assert_eq!(html.matches("<tr class=\"item\">").count(), bases.len() * 8);
        assert_eq!(html.matches("<thead>").count(), 3, "the items, contacts and rules tables each have one");
        for query_type in QueryType::ALL {
            assert!(html.contains(&format!("<td>{}</td>", query_type.name_zh())), "{query_type:?}");
        }
        for basis in catalogue::legal_bases().into_iter().filter(|b| b.agency_kind == AgencyKind::SocialWelfare) {
            assert!(html.contains(&format!("<td>{}</td>", basis.name_zh)), "{}", basis.code);
        }
    }
}
