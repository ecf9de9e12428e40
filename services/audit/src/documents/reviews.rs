//! The monthly supervisor review report (主管稽核月明細表, seed 002 pt 11) as printed and kept five years.

use askama::Template;
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::clock::{from_db, roc_year, taipei};
use immilink_shared::documents::{check_box, roc_date, roc_date_time};

use crate::domain::reviews::{ReportDetail, Verdict};

#[derive(Debug)]
struct PrintedEntry {
    serial: usize,
    queried_at: String,
    user: String,
    query_type: String,
    subject: String,
    purpose: String,
    case_number: String,
    matches: &'static str,
    does_not_match: &'static str,
    note: String,
    reviewed: String,
}

/// The report with every lookup and its judgement.
#[derive(Debug, Template)]
#[template(path = "monthly_review.html")]
pub struct MonthlyReviewReport {
    agency: String,
    unit: String,
    roc_month: String,
    reviewer: &'static str,
    due_on: String,
    status: String,
    entries: Vec<PrintedEntry>,
    reviewed: i64,
    mismatches: i64,
    printed_at: String,
}

fn reviewer_zh(role: &str) -> &'static str {
    match role {
        "account_manager" => "帳號管理人員",
        "agency_head" => "機關首長",
        _ => "單位主管",
    }
}

impl MonthlyReviewReport {
    pub fn of(detail: &ReportDetail, printed_at: chrono::DateTime<chrono::Utc>) -> Self {
        let report = &detail.summary.report;
        let roc_month = chrono::NaiveDate::parse_from_str(&format!("{}-01", report.month), "%Y-%m-%d")
            .map(|d| format!("民國{}年{}月", roc_year(chrono::Datelike::year(&d)), chrono::Datelike::month(&d)))
            .unwrap_or_else(|_| report.month.clone());
        let entries = detail
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| PrintedEntry {
                serial: i + 1,
                queried_at: roc_date_time(from_db(e.requested_at)),
                user: e.user_name.clone().unwrap_or_else(|| e.user_id.clone()),
                query_type: QueryType::parse(&e.query_type)
                    .map_or_else(|| e.query_type.clone(), |t| t.name_zh().to_owned()),
                subject: e.subject_id.clone(),
                purpose: catalogue::purpose(&e.purpose_code).map_or_else(|| e.purpose_code.clone(), |p| p.name_zh),
                case_number: e.case_number.clone(),
                matches: check_box(e.verdict == Some(Verdict::Matches)),
                does_not_match: check_box(e.verdict == Some(Verdict::DoesNotMatch)),
                note: e.note.clone().unwrap_or_default(),
                reviewed: e
                    .reviewed_at
                    .map(|at| roc_date(from_db(at).with_timezone(&taipei()).date_naive()))
                    .unwrap_or_default(),
            })
            .collect();
        let status = if report.completed_at.is_some() {
            "已完成".to_owned()
        } else if detail.summary.overdue {
            "逾期未完成".to_owned()
        } else {
            "稽核中".to_owned()
        };
        Self {
            agency: report.agency.clone(),
            unit: if report.unit.is_empty() { "（未屬單位）".into() } else { report.unit.clone() },
            roc_month,
            reviewer: reviewer_zh(&report.reviewer_role),
            due_on: roc_date(report.due_on),
            status,
            entries,
            reviewed: detail.summary.reviewed,
            mismatches: detail.summary.mismatches,
            printed_at: roc_date_time(printed_at),
        }
    }
}
