//! The self-audit as the paper form it replaces (R-AUD-05): 附件三 (花蓮縣戶政事務所應用移民資訊內部稽核
//! 紀錄表) or 附件四 (花蓮縣政府稽核所屬戶政事務所使用應用移民資訊內部辦理情形紀錄表), laid out like the
//! seed's table — 查核項目 / 查核結果 (■是 □否) / 查核情形說明 — with the audit date as an ROC date and
//! the three signature lines at the bottom.

use askama::Template;
use immilink_shared::clock::from_db;
use immilink_shared::documents::{check_box, roc_date, roc_date_time};

use crate::domain::self_audits::{SelfAuditDetail, SelfAuditForm, SelfAuditStatus, SignerCapacity};

/// The printable self-audit form, filled from the record.
#[derive(Debug, Template)]
#[template(path = "self_audit.html")]
pub struct SelfAuditSheet {
    annex: &'static str,
    /// 附件四 is the county's audit of an office; 附件三 the office's own.
    county: bool,
    agency: String,
    audited_unit: Option<String>,
    audit_date: String,
    rows: Vec<Row>,
    signatures: Vec<Signature>,
    id: String,
    status: String,
}

/// One checklist item.
#[derive(Debug)]
struct Row {
    number: i32,
    text: &'static str,
    yes: &'static str,
    no: &'static str,
    explanation_lines: Vec<String>,
    finding_id: Option<String>,
}

/// One signature line: its label and the name signed (blank while unsigned).
#[derive(Debug)]
struct Signature {
    label: &'static str,
    name: String,
}

impl SelfAuditSheet {
    pub fn of(detail: &SelfAuditDetail) -> Self {
        let audit = &detail.audit;
        Self {
            annex: audit.form.name_zh(),
            county: audit.form == SelfAuditForm::Annex4,
            agency: audit.agency.clone(),
            audited_unit: audit.audited_unit.clone(),
            audit_date: roc_date(audit.audit_date),
            rows: detail
                .items
                .iter()
                .map(|item| Row {
                    number: item.number,
                    text: item.text,
                    yes: check_box(item.answer == Some(true)),
                    no: check_box(item.answer == Some(false)),
                    explanation_lines: item
                        .explanation
                        .as_deref()
                        .map(|e| e.lines().map(str::to_owned).collect())
                        .unwrap_or_default(),
                    finding_id: item.finding_id.clone(),
                })
                .collect(),
            signatures: SignerCapacity::ALL
                .iter()
                .map(|capacity| Signature {
                    label: capacity.label_zh(audit.form),
                    name: audit.signed_name(*capacity).unwrap_or_default().to_owned(),
                })
                .collect(),
            id: audit.id.clone(),
            status: match (audit.status, audit.completed_at) {
                (SelfAuditStatus::Completed, Some(at)) => {
                    format!("已完成簽核（{}，臺北時間）", roc_date_time(from_db(at)))
                }
                (SelfAuditStatus::Completed, None) => "已完成簽核".to_owned(),
                (SelfAuditStatus::Draft, _) => "尚待簽核".to_owned(),
            },
        }
    }

    /// The form as a self-contained HTML page.
    pub fn html(&self) -> askama::Result<String> {
        self.render()
    }
}
