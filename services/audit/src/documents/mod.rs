//! The audit service's printable and exported documents: askama templates
//! (`services/audit/templates/`) extending the shared `print.html` (A4, Traditional Chinese, ROC
//! dates, page numbers), CSV through the `csv` crate (`immilink_shared::documents::CsvRows`), and ODS
//! spreadsheets through `spreadsheet-ods`, each filled from domain rows. Every recorded value is
//! escaped by askama.

pub mod access_letter;
pub mod query_records;
pub mod reviews;
pub mod self_audits;
