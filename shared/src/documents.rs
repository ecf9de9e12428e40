//! What every printable or exported document shares. Printable documents (forms, record tables,
//! reports a clerk files and binds) are askama templates in each service's `documents` module; they
//! extend `print.html` from `shared/templates/` (each service's `askama.toml` lists that folder), which
//! carries the one print stylesheet (`print.css`: A4, Traditional Chinese type, page numbers). Dates on
//! them are ROC dates (民國 115 年) through [`roc_date`]. CSV exports go through the `csv` crate with a
//! UTF-8 byte-order mark ([`CsvRows`]), so Excel on a government desktop opens Chinese columns
//! correctly. A leaf module apart from `clock`.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::clock::{roc_year, taipei};

/// A date as ROC documents write it: 民國115年11月23日.
pub fn roc_date(date: NaiveDate) -> String {
    format!("民國{}年{}月{}日", roc_year(date.year()), date.month(), date.day())
}

/// An instant as a Taipei date and time on ROC documents: 民國115年11月23日 10:05.
pub fn roc_date_time(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&taipei());
    format!("{} {}", roc_date(local.date_naive()), local.format("%H:%M"))
}

/// A check box as paper forms print it: ■ when marked, □ when not.
pub fn check_box(marked: bool) -> &'static str {
    if marked {
        "■"
    } else {
        "□"
    }
}

/// The UTF-8 byte-order mark that starts every CSV file immilink writes.
pub const UTF8_BOM: &str = "\u{feff}";

/// `text/csv` as immilink answers it.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// A cell a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a carriage return
/// first) prefixed with `'`, so text users typed (remarks, names) is never run when a CSV is opened
/// (CSV injection).
pub fn spreadsheet_safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// CSV rows written through the `csv` crate (quoting, embedded commas and line breaks, CRLF line
/// ends), collected as bytes. The first chunk of a file starts with the byte-order mark; a file
/// streamed in chunks writes the later ones without it.
pub struct CsvRows {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvRows {
    /// The start of a file: the byte-order mark, then the rows written.
    pub fn file_start() -> Self {
        Self::over(UTF8_BOM.as_bytes().to_vec())
    }

    /// A later chunk of a file being streamed: rows only.
    pub fn continuation() -> Self {
        Self::over(Vec::new())
    }

    fn over(buffer: Vec<u8>) -> Self {
        Self { writer: csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(buffer) }
    }

    /// Writes one row.
    pub fn row<I, T>(&mut self, fields: I) -> Result<(), csv::Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.writer.write_record(fields)
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Result<Vec<u8>, csv::Error> {
        self.writer.into_inner().map_err(|err| csv::Error::from(err.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn roc_dates_count_from_1912_and_use_taipei_time() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(roc_date(date), "民國115年11月23日");
        // 2026-11-30T16:30Z is already 1 December in Taipei.
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 16, 30, 0).unwrap();
        assert_eq!(roc_date_time(at), "民國115年12月1日 00:30");
    }

    #[test]
    fn csv_files_start_with_a_byte_order_mark_and_quote_what_needs_it() {
        let mut first = CsvRows::file_start();
        first.row(["序號", "備註"]).unwrap();
        first.row(["1", "含逗號, 與\"引號\"\n與換行"]).unwrap();
        let bytes = first.into_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with('\u{feff}'));
        assert_eq!(text, "\u{feff}序號,備註\r\n1,\"含逗號, 與\"\"引號\"\"\n與換行\"\r\n");
        let mut later = CsvRows::continuation();
        later.row(["2", "x"]).unwrap();
        assert_eq!(later.into_bytes().unwrap(), b"2,x\r\n");
    }
}
