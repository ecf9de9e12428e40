//! The query record table (查詢紀錄表, seed 002 附件一) in the forms an office keeps it: CSV (UTF-8 with
//! a byte-order mark), an ODS spreadsheet (ODF, the Taiwan government's document standard) and the
//! printable yearly book (A4, Traditional Chinese, ROC dates, page numbers).

use askama::Template;
use chrono::NaiveDateTime;
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::clock::{from_db, taipei};
use immilink_shared::documents::{check_box, roc_date, roc_date_time, spreadsheet_safe, CsvRows};

use crate::domain::query_records::{QueryRecordRow, TableFilter};

/// The CSV columns: the form's, then the identifiers an auditor needs to find the record in the log.
pub const CSV_COLUMNS: [&str; 19] = [
    "序號",
    "登入時間",
    "登出時間",
    "查詢時間",
    "查詢項目",
    "查詢對象",
    "查詢結果",
    "查詢事由",
    "法令依據",
    "案號",
    "備註",
    "使用者姓名",
    "使用者帳號",
    "單位",
    "主管簽核",
    "主管簽核備註",
    "機關",
    "lookup_id",
    "audit_record_id",
];

fn local(at: Option<NaiveDateTime>) -> String {
    at.map(|at| from_db(at).with_timezone(&taipei()).format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn query_type_zh(code: &str) -> String {
    QueryType::parse(code).map_or_else(|| code.to_owned(), |t| t.name_zh().to_owned())
}

fn purpose_zh(code: &str) -> String {
    catalogue::purpose(code).map_or_else(|| code.to_owned(), |p| p.name_zh)
}

fn legal_basis_zh(code: &str) -> String {
    catalogue::legal_basis(code).map_or_else(|| code.to_owned(), |b| b.name_zh)
}

/// The sign-off as the form's column shows it: the verdict, who and when.
fn sign_off_text(row: &QueryRecordRow) -> String {
    match &row.sign_off {
        None => String::new(),
        Some(sign_off) => {
            let verdict = if sign_off.verdict == "matches" { "相符" } else { "不符" };
            let who = sign_off.reviewer_name.clone().unwrap_or_else(|| sign_off.reviewed_by.clone());
            format!(
                "{verdict}（{who} {}）",
                roc_date(from_db(sign_off.reviewed_at).with_timezone(&taipei()).date_naive())
            )
        }
    }
}

/// The cells of one row, in [`CSV_COLUMNS`] order.
pub fn cells(row: &QueryRecordRow) -> [String; 19] {
    [
        row.serial.to_string(),
        local(row.login_at),
        local(row.logout_at),
        local(Some(row.requested_at)),
        query_type_zh(&row.query_type),
        row.subject_id.clone(),
        row.result_zh().to_owned(),
        purpose_zh(&row.purpose_code),
        legal_basis_zh(&row.legal_basis),
        row.case_number.clone(),
        row.remarks.clone().unwrap_or_default(),
        row.user_name.clone().unwrap_or_default(),
        row.user_id.clone(),
        row.unit.clone().unwrap_or_default(),
        sign_off_text(row),
        row.sign_off.as_ref().and_then(|s| s.note.clone()).unwrap_or_default(),
        row.agency.clone(),
        row.lookup_id.clone(),
        row.record_id.clone(),
    ]
}

/// The CSV header (with the byte-order mark), for the first chunk.
pub fn csv_header() -> Result<Vec<u8>, csv::Error> {
    let mut rows = CsvRows::file_start();
    rows.row(CSV_COLUMNS)?;
    rows.into_bytes()
}

/// Rows as a CSV chunk (no byte-order mark); text users typed is never a formula.
pub fn csv_rows(rows: &[QueryRecordRow]) -> Result<Vec<u8>, csv::Error> {
    let mut out = CsvRows::continuation();
    for row in rows {
        out.row(cells(row).iter().map(|cell| spreadsheet_safe(cell)))?;
    }
    out.into_bytes()
}

/// `application/vnd.oasis.opendocument.spreadsheet`.
pub const ODS_CONTENT_TYPE: &str = "application/vnd.oasis.opendocument.spreadsheet";

/// The table as an ODS spreadsheet: one sheet named for the year, the header row repeated on every
/// printed page.
pub fn ods(filter: &TableFilter, rows: &[QueryRecordRow]) -> Result<Vec<u8>, spreadsheet_ods::OdsError> {
    let mut sheet =
        spreadsheet_ods::Sheet::new(format!("查詢紀錄表 民國{}年", immilink_shared::clock::roc_year(filter.year)));
    for (col, title) in CSV_COLUMNS.iter().enumerate() {
        sheet.set_value(0, col as u32, *title);
    }
    for (i, row) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.set_value(r, 0, row.serial as f64);
        for (col, cell) in cells(row).into_iter().enumerate().skip(1) {
            sheet.set_value(r, col as u32, cell);
        }
    }
    sheet.set_header_rows(0, 0);
    let mut book = spreadsheet_ods::WorkBook::new_empty();
    book.push_sheet(sheet);
    spreadsheet_ods::write_ods_buf(&mut book, Vec::new())
}

/// One row of the printed form.
#[derive(Debug)]
struct PrintedRow {
    serial: u64,
    date: String,
    login: String,
    logout: String,
    queried_at: String,
    query_type: String,
    subject: String,
    succeeded: &'static str,
    failed: &'static str,
    pending: bool,
    /// The form's four household-registration check boxes, or the purpose's name for other agencies.
    reason_boxes: Vec<String>,
    reason_other: Option<String>,
    case_number: String,
    remarks: String,
    user_name: String,
    sign_off: String,
}

/// The household-registration reasons the form prints as check boxes, in the form's order.
const HR_REASONS: [(&str, &str); 4] = [
    ("hr_nationality_change", "國籍變更案件"),
    (
        "hr_registration_doubt",
        "受理各項戶籍登記、文件核發或人口清查業務，依相關法令規定或認有疑義，需查詢當事人或相關人之入出境(國)資料。",
    ),
    ("hr_seal_certificate", "受理受委任辦理印鑑證明。"),
    ("hr_other_approved", "因其他戶政業務需要，經單位主管核准者。"),
];

impl PrintedRow {
    fn of(row: &QueryRecordRow) -> Self {
        let time = |at: Option<NaiveDateTime>| {
            at.map(|at| from_db(at).with_timezone(&taipei()).format("%H:%M").to_string()).unwrap_or_else(|| "—".into())
        };
        let is_hr = row.purpose_code.starts_with("hr_");
        let (reason_boxes, reason_other) = if is_hr {
            (
                HR_REASONS
                    .iter()
                    .map(|(code, text)| format!("{}{}", check_box(row.purpose_code == *code), text))
                    .collect(),
                None,
            )
        } else {
            (Vec::new(), Some(purpose_zh(&row.purpose_code)))
        };
        Self {
            serial: row.serial,
            date: roc_date(from_db(row.requested_at).with_timezone(&taipei()).date_naive()),
            login: time(row.login_at),
            logout: time(row.logout_at),
            queried_at: roc_date_time(from_db(row.requested_at)),
            query_type: query_type_zh(&row.query_type),
            subject: row.subject_id.clone(),
            succeeded: check_box(row.outcome.as_deref() == Some("succeeded")),
            failed: check_box(row.outcome.is_some() && row.outcome.as_deref() != Some("succeeded")),
            pending: row.outcome.is_none(),
            reason_boxes,
            reason_other,
            case_number: row.case_number.clone(),
            remarks: row.remarks.clone().unwrap_or_default(),
            user_name: row.user_name.clone().unwrap_or_else(|| row.user_id.clone()),
            sign_off: sign_off_text(row),
        }
    }
}

/// The yearly book of the query record table, to print and bind (seed 002 pt 7).
#[derive(Debug, Template)]
#[template(path = "query_record_table.html")]
pub struct QueryRecordBook {
    agency: String,
    unit: String,
    roc_year: i32,
    filters: String,
    rows: Vec<PrintedRow>,
    printed_at: String,
}

impl QueryRecordBook {
    pub fn of(filter: &TableFilter, rows: &[QueryRecordRow], printed_at: chrono::DateTime<chrono::Utc>) -> Self {
        let mut filters = Vec::new();
        if let Some(user) = &filter.user {
            filters.push(format!("使用者 {user}"));
        }
        if let Some(case) = &filter.case_number {
            filters.push(format!("案號 {case}"));
        }
        Self {
            agency: filter.agency.clone().unwrap_or_else(|| "全部機關".into()),
            unit: filter.unit.clone().unwrap_or_default(),
            roc_year: immilink_shared::clock::roc_year(filter.year),
            filters: filters.join("，"),
            rows: rows.iter().map(PrintedRow::of).collect(),
            printed_at: roc_date_time(printed_at),
        }
    }
}
