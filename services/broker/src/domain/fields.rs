//! The field rules every form the broker takes shares: bounded texts without control characters,
//! case numbers (案號) and telephone numbers as forms write them. Each refuses by naming its field.

use immilink_shared::typed::CaseNumber;

use super::BrokerError;

/// Whether a line of text may hold line breaks (descriptions, reasons) or not (names, numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    One,
    Many,
}

fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn bounded(value: String, field: &str, max_chars: usize, lines: Lines) -> Result<String, BrokerError> {
    if value.chars().count() > max_chars {
        return Err(BrokerError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    let allowed = |c: char| !c.is_control() || (lines == Lines::Many && matches!(c, '\n' | '\r' | '\t'));
    if !value.chars().all(allowed) {
        return Err(BrokerError::invalid(field, "must not contain control characters"));
    }
    Ok(value)
}

/// A required, trimmed text of at most `max_chars` characters.
pub fn required(value: Option<String>, field: &str, max_chars: usize, lines: Lines) -> Result<String, BrokerError> {
    let value = clean(value).ok_or_else(|| BrokerError::missing(field))?;
    bounded(value, field, max_chars, lines)
}

/// An optional text: blank is absent.
pub fn optional(
    value: Option<String>,
    field: &str,
    max_chars: usize,
    lines: Lines,
) -> Result<Option<String>, BrokerError> {
    clean(value).map(|v| bounded(v, field, max_chars, lines)).transpose()
}

pub const MAX_CASE_NUMBER: usize = 64;

/// A case number (案號): as a lookup declares it, up to 64 printable characters. `rule` is the rule
/// the paper is for.
pub fn case_number(value: Option<String>, rule: &'static str) -> Result<CaseNumber, BrokerError> {
    let value = clean(value).ok_or_else(|| BrokerError::missing("case_number").rule(rule))?;
    bounded(value, "case_number", MAX_CASE_NUMBER, Lines::One).map(CaseNumber::new).map_err(|_| {
        BrokerError::invalid("case_number", format!("must be at most {MAX_CASE_NUMBER} printable characters"))
            .rule(rule)
    })
}

/// A telephone or fax number as written on a form: digits with the usual separators and an
/// extension, e.g. `(02)2388-9393 分機 2231`.
pub fn phone(value: Option<String>, field: &str, required_: bool) -> Result<Option<String>, BrokerError> {
    let value = match clean(value) {
        Some(value) => value,
        None if required_ => return Err(BrokerError::missing(field)),
        None => return Ok(None),
    };
    let value = bounded(value, field, 40, Lines::One)?;
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = |c: char| c.is_ascii_digit() || " ()+-#,.轉分機extEXT".contains(c);
    if digits < 6 || !value.chars().all(allowed) {
        return Err(BrokerError::invalid(
            field,
            "a telephone number: at least 6 digits, with spaces, ( ) + - # or an extension (分機, 轉, ext)",
        ));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(required(Some("  王小明 ".into()), "name", 10, Lines::One).unwrap(), "王小明");
        let blank = required(Some("   ".into()), "name", 10, Lines::One).unwrap_err();
        assert!(matches!(blank, BrokerError::Missing { ref field, rule: None } if field == "name"), "{blank:?}");
        let long = required(Some("x".repeat(11)), "name", 10, Lines::One).unwrap_err();
        assert!(matches!(long, BrokerError::Invalid { ref field, .. } if field == "name"), "{long:?}");
        assert!(required(Some("a\nb".into()), "name", 10, Lines::One).is_err());
        assert!(required(Some("a\nb".into()), "reason", 10, Lines::Many).is_ok());
        assert!(required(Some("a\u{7}b".into()), "reason", 10, Lines::Many).is_err());
        assert_eq!(optional(Some(" ".into()), "fax", 10, Lines::One).unwrap(), None);
    }

    #[test]
    fn case_numbers_are_named_with_the_rule_of_the_paper() {
        let err = case_number(None, "R-QRY-06").unwrap_err();
        assert!(matches!(err, BrokerError::Missing { ref field, rule: Some("R-QRY-06") } if field == "case_number"));
        let err = case_number(Some("x".repeat(65)), "R-QRY-01").unwrap_err();
        assert!(
            matches!(err, BrokerError::Invalid { ref field, rule: Some("R-QRY-01"), .. } if field == "case_number")
        );
        assert_eq!(case_number(Some(" TPE-2026-7 ".into()), "R-QRY-01").unwrap(), "TPE-2026-7");
    }

    #[test]
    fn phone_numbers_as_written_on_forms() {
        for ok in ["(02)2388-9393 分機 2231", "03-3985010", "+886 2 2314 9288", "0912345678 ext 12"] {
            assert!(phone(Some(ok.into()), "requester_phone", true).is_ok(), "{ok}");
        }
        for bad in ["12345", "call me", "02<script>12345678"] {
            let err = phone(Some(bad.into()), "requester_phone", true).unwrap_err();
            assert!(matches!(err, BrokerError::Invalid { ref field, .. } if field == "requester_phone"), "{bad}");
        }
        assert_eq!(phone(None, "requester_fax", false).unwrap(), None);
        assert!(matches!(phone(None, "requester_phone", true), Err(BrokerError::Missing { .. })));
    }
}
