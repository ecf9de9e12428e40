//! The reply letter to a citizen's request under PDPA art. 10 (個人資料查詢答覆函, R-GOV-02): which
//! agencies looked the person up, when, what, under which legal basis and for which purpose, as a
//! printable A4 letter (`templates/access_letter.html`, extending the shared `print.html`), with ROC
//! dates and the person's identifier partly masked.

use askama::Template;
use immilink_shared::clock::{business_date, taipei};
use immilink_shared::documents::{roc_date, roc_date_time};

use crate::domain::accesses::AccessReport;

/// A person's identifier as the letter prints it: the last four characters masked
/// (`A123456789` → `A12345****`), so a letter that goes astray does not carry the whole number.
pub fn mask_subject(subject_id: &str) -> String {
    let chars: Vec<char> = subject_id.chars().collect();
    let shown = chars.len().saturating_sub(4);
    let masked = chars.len() - shown;
    chars[..shown].iter().collect::<String>() + &"*".repeat(masked)
}

/// 個人資料查詢答覆函: the reply to the person, filled from an access report.
#[derive(Debug, Template)]
#[template(path = "access_letter.html")]
pub struct AccessLetter {
    /// 發文機關: the agency replying.
    agency: String,
    /// 發文日期 (ROC date, Taipei).
    date: String,
    /// The person's identifier, masked.
    masked_subject: String,
    /// 本機關 or 各使用機關, with the agency's code.
    scope: String,
    /// The period the letter covers, in words.
    period: String,
    rows: Vec<LetterRow>,
    /// The report's audit record.
    report_id: String,
    reported_at: String,
}

/// One lookup as the letter's table lists it.
#[derive(Debug)]
struct LetterRow {
    agency: String,
    /// 查詢日期時間: the ROC date and the time, in Taipei.
    date: String,
    time: String,
    query_type: String,
    legal_basis: String,
    purpose: String,
    case_number: String,
}

impl AccessLetter {
    pub fn of(report: &AccessReport) -> Self {
        let scope = match &report.agency {
            Some(agency) => format!("本機關（{agency}）"),
            None => "各使用機關".to_owned(),
        };
        let period = match (report.from, report.to) {
            (Some(from), Some(to)) => format!("{}起至{}止", roc_date_time(from), roc_date_time(to)),
            (Some(from), None) => format!("{}起至今", roc_date_time(from)),
            (None, Some(to)) => format!("查詢紀錄保存期間內至{}止", roc_date_time(to)),
            (None, None) => "查詢紀錄保存期間（五年）內".to_owned(),
        };
        Self {
            agency: report.reporting_agency.clone(),
            date: roc_date(business_date(report.reported_at)),
            masked_subject: mask_subject(&report.subject_id),
            scope,
            period,
            rows: report
                .accesses
                .iter()
                .map(|access| LetterRow {
                    agency: access.agency.clone(),
                    date: roc_date(business_date(access.requested_at.and_utc())),
                    time: access.requested_at.and_utc().with_timezone(&taipei()).format("%H:%M").to_string(),
                    query_type: access.query_type.label().to_owned(),
                    legal_basis: access.legal_basis.label().to_owned(),
                    purpose: access.purpose.label().to_owned(),
                    case_number: access.case_number.clone(),
                })
                .collect(),
            report_id: report.report_id.clone(),
            reported_at: roc_date_time(report.reported_at),
        }
    }

    /// The letter as a self-contained HTML page.
    pub fn html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_masked_at_the_end() {
        assert_eq!(mask_subject("A123456789"), "A12345****");
        assert_eq!(mask_subject("AC01234567"), "AC0123****");
        assert_eq!(mask_subject("31234567"), "3123****");
        assert_eq!(mask_subject("X12345"), "X1****");
        assert_eq!(mask_subject("AB12"), "****");
        assert_eq!(mask_subject(""), "");
    }
}
