//! Subject identifiers, parsed at the edge so that nothing is forwarded to the immigration agency
//! unless it is well formed (R-QRY-04). Code past the edge holds these types and never re-checks.
//!
//! - National ID (國民身分證統一編號): a region letter, 1 or 2, 7 digits and a check digit.
//! - New-style UI number (新式統一證號, since 2021): a region letter, 8 or 9, 7 digits and a check
//!   digit, using the national ID's checksum.
//! - Old-style UI number (舊式統一證號): a region letter, a second letter A–D, 7 digits and a check
//!   digit; the second letter's code (mod 10) takes part in the checksum.
//! - Passport number: 6–9 letters and digits with at least one digit. Foreign passports have no check
//!   digit we can verify; Taiwanese ones are 9 digits.
//!
//! Caseworkers type or paste these by hand, often with an IME left in full-width mode, in lower case
//! or with stray padding. [`normalise`] therefore maps every input to one canonical form first, so
//! the same person always gets the same identifier (and the same audit trail). Whatever is still odd
//! after that is refused with a reason a caseworker can act on. Nothing here panics on any input.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused. `Display` is a sentence for the caseworker; [`IdError::code`] is
/// the stable machine code for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("no identifier was given: please enter the ID, UI or passport number")]
    Empty,
    #[error("the identifier contains a space: please remove the space and try again")]
    InteriorWhitespace,
    #[error("the character {ch:?} at position {position} is not allowed: use only letters and digits")]
    InvalidCharacter { ch: char, position: usize },
    #[error("the identifier has {actual} characters but should have {expected}: please check for missing or extra characters")]
    WrongLength { expected: &'static str, actual: usize },
    #[error("the identifier should be {expected}: please re-check the number")]
    BadFormat { expected: &'static str },
    #[error("the identifier must start with a region letter (A to Z): please re-check the number")]
    BadRegionLetter,
    #[error("the second letter of an old-style UI number must be A, B, C or D: please re-check the number")]
    BadGenderLetter,
    #[error("the check digit does not match: please re-check the number")]
    CheckDigitMismatch,
}

impl IdError {
    /// Stable snake_case code, safe to match on in clients and problem documents.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Empty => "empty",
            IdError::InteriorWhitespace => "interior_whitespace",
            IdError::InvalidCharacter { .. } => "invalid_character",
            IdError::WrongLength { .. } => "wrong_length",
            IdError::BadFormat { .. } => "bad_format",
            IdError::BadRegionLetter => "bad_region_letter",
            IdError::BadGenderLetter => "bad_gender_letter",
            IdError::CheckDigitMismatch => "check_digit_mismatch",
        }
    }
}

const RESIDENT_LEN: usize = 10;
const RESIDENT_LEN_TEXT: &str = "10 characters";
const NATIONAL_FORMAT: &str = "a letter followed by 1 or 2 and 8 digits";
const NEW_UI_FORMAT: &str = "a letter followed by 8 or 9 and 8 digits";
const OLD_UI_FORMAT: &str = "two letters followed by 8 digits";
const UI_FORMAT: &str = "a letter followed by 8 or 9 and 8 digits, or two letters followed by 8 digits";
const RESIDENT_FORMAT: &str =
    "a national ID (a letter, 1 or 2, 8 digits) or a UI number (a letter, 8 or 9 or A to D, 8 digits)";
const PASSPORT_LEN_TEXT: &str = "6 to 9 characters";
const ANY_LEN_TEXT: &str = "6 to 9 characters (passport) or 10 (national ID or UI number)";
const PASSPORT_FORMAT: &str = "letters and digits including at least one digit";

/// Canonical form of a typed identifier: surrounding whitespace (ASCII, U+3000 and any other Unicode
/// space, since pasted text often carries no-break spaces) trimmed, full-width ASCII mapped to ASCII,
/// letters upper-cased. Refuses empty input, interior whitespace and anything else that is not an
/// ASCII letter or digit; `position` in the error counts characters from 1 after trimming.
pub fn normalise(raw: &str) -> Result<String, IdError> {
    let trimmed = raw.trim_matches(char::is_whitespace);
    if trimmed.is_empty() {
        return Err(IdError::Empty);
    }
    let mut out = String::with_capacity(trimmed.len());
    for (index, typed) in trimmed.chars().enumerate() {
        let ch = to_half_width(typed);
        if ch.is_whitespace() {
            return Err(IdError::InteriorWhitespace);
        }
        if !ch.is_ascii_alphanumeric() {
            // Report what the caseworker actually typed, not our converted form.
            return Err(IdError::InvalidCharacter { ch: typed, position: index + 1 });
        }
        out.push(ch.to_ascii_uppercase());
    }
    Ok(out)
}

/// Full-width forms U+FF01..=U+FF5E sit exactly 0xFEE0 above their ASCII counterparts.
fn to_half_width(ch: char) -> char {
    match ch {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(ch) - 0xFEE0).unwrap_or(ch),
        _ => ch,
    }
}

/// Two-digit letter codes; I, O, W–Z are out of sequence because they were added later.
const LETTER_CODES: [u8; 26] =
    [10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24, 25, 26, 27, 28, 29, 32, 30, 31, 33];

fn letter_code(letter: u8) -> Option<u32> {
    let index = letter.checked_sub(b'A')?;
    LETTER_CODES.get(usize::from(index)).map(|&code| u32::from(code))
}

/// The region letter's share of the checksum: tens digit ×1, ones digit ×9.
fn region_sum(first: Option<&u8>) -> Result<u32, IdError> {
    let code = first.copied().and_then(letter_code).ok_or(IdError::BadRegionLetter)?;
    Ok(code / 10 + (code % 10) * 9)
}

/// Σ digit × weight, or `None` if a byte is not a digit or the lengths differ.
fn weighted_digits(bytes: &[u8], weights: &[u32]) -> Option<u32> {
    if bytes.len() != weights.len() {
        return None;
    }
    bytes.iter().zip(weights).try_fold(0, |sum, (&b, &w)| b.is_ascii_digit().then(|| sum + u32::from(b - b'0') * w))
}

fn check_sum(sum: u32) -> Result<(), IdError> {
    sum.is_multiple_of(10).then_some(()).ok_or(IdError::CheckDigitMismatch)
}

fn expect_len(id: &str, len: usize, expected: &'static str) -> Result<(), IdError> {
    // `normalise` leaves only ASCII, so bytes are characters.
    if id.len() == len {
        Ok(())
    } else {
        Err(IdError::WrongLength { expected, actual: id.len() })
    }
}

/// Letter + nine digits with the national checksum (national IDs and new-style UI numbers).
fn check_letter_nine_digits(bytes: &[u8], format: &'static str) -> Result<(), IdError> {
    let region = region_sum(bytes.first())?;
    let digits = bytes.get(1..).and_then(|rest| weighted_digits(rest, &[8, 7, 6, 5, 4, 3, 2, 1, 1]));
    check_sum(region + digits.ok_or(IdError::BadFormat { expected: format })?)
}

/// Old-style UI: region letter, gender/type letter A–D (its code mod 10, ×8), eight digits.
fn check_old_ui(bytes: &[u8]) -> Result<(), IdError> {
    let region = region_sum(bytes.first())?;
    let second = match bytes.get(1) {
        Some(&b @ b'A'..=b'D') => letter_code(b).ok_or(IdError::BadGenderLetter)?,
        _ => return Err(IdError::BadGenderLetter),
    };
    let digits = bytes.get(2..).and_then(|rest| weighted_digits(rest, &[7, 6, 5, 4, 3, 2, 1, 1]));
    check_sum(region + (second % 10) * 8 + digits.ok_or(IdError::BadFormat { expected: OLD_UI_FORMAT })?)
}

/// Display and Serialize as the plain canonical string.
macro_rules! string_form {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// `as_str`, the string form, and a Deserialize that goes through `parse`, so that no instance ever
/// exists without having been validated.
macro_rules! parsed_string_id {
    ($name:ident, $field:tt) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.$field
            }
        }

        string_form!($name);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// 國民身分證統一編號, normalised and checksum-verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NationalId(String);

impl NationalId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        expect_len(&id, RESIDENT_LEN, RESIDENT_LEN_TEXT)?;
        let bytes = id.as_bytes();
        region_sum(bytes.first())?;
        // Only 1 (male) and 2 (female) are issued; anything else is a typo or another kind of ID.
        if !matches!(bytes.get(1), Some(b'1' | b'2')) {
            return Err(IdError::BadFormat { expected: NATIONAL_FORMAT });
        }
        check_letter_nine_digits(bytes, NATIONAL_FORMAT)?;
        Ok(Self(id))
    }
}
parsed_string_id!(NationalId, 0);

/// Which generation of UI number: old (two letters) or new (letter then 8/9, since 2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UiStyle {
    Old,
    New,
}

/// 居留證統一證號, either style, normalised and checksum-verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UiNumber {
    id: String,
    style: UiStyle,
}

impl UiNumber {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        expect_len(&id, RESIDENT_LEN, RESIDENT_LEN_TEXT)?;
        let bytes = id.as_bytes();
        let style = match bytes.get(1) {
            Some(b'8' | b'9') => check_letter_nine_digits(bytes, NEW_UI_FORMAT).map(|()| UiStyle::New)?,
            Some(b) if b.is_ascii_uppercase() => check_old_ui(bytes).map(|()| UiStyle::Old)?,
            _ => return Err(IdError::BadFormat { expected: UI_FORMAT }),
        };
        Ok(Self { id, style })
    }

    pub fn style(&self) -> UiStyle {
        self.style
    }
}
parsed_string_id!(UiNumber, id);

/// A passport number, checked by format only (there is no check digit we can verify).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PassportNumber(String);

impl PassportNumber {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        if !(6..=9).contains(&id.len()) {
            return Err(IdError::WrongLength { expected: PASSPORT_LEN_TEXT, actual: id.len() });
        }
        // All-letter strings are names or words typed in the wrong field, never passport numbers.
        if !id.bytes().any(|b| b.is_ascii_digit()) {
            return Err(IdError::BadFormat { expected: PASSPORT_FORMAT });
        }
        Ok(Self(id))
    }
}
parsed_string_id!(PassportNumber, 0);

/// Whom a lookup is about. No `Deserialize`: whether a passport is acceptable depends on the query
/// type, so callers must choose [`SubjectId::parse_resident`] or [`SubjectId::parse_any`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectId {
    National(NationalId),
    Ui(UiNumber),
    Passport(PassportNumber),
}

impl SubjectId {
    /// A national ID or a UI number, told apart by the second character: 1/2 national ID, 8/9 new
    /// UI number, a letter old UI number.
    pub fn parse_resident(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        expect_len(&id, RESIDENT_LEN, RESIDENT_LEN_TEXT)?;
        match id.as_bytes().get(1) {
            Some(b'1' | b'2') => NationalId::parse(&id).map(SubjectId::National),
            Some(b) if matches!(b, b'8' | b'9') || b.is_ascii_uppercase() => UiNumber::parse(&id).map(SubjectId::Ui),
            _ => Err(IdError::BadFormat { expected: RESIDENT_FORMAT }),
        }
    }

    /// A resident identifier if it has that shape, otherwise a passport number. Every resident form
    /// is exactly 10 characters and no passport is, so a 10-character input is always judged as a
    /// resident ID: a typo in one is reported against that format, not as a "too long passport".
    pub fn parse_any(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        if id.len() == RESIDENT_LEN {
            return Self::parse_resident(&id);
        }
        PassportNumber::parse(&id).map(SubjectId::Passport).map_err(|err| match err {
            IdError::WrongLength { actual, .. } => IdError::WrongLength { expected: ANY_LEN_TEXT, actual },
            other => other,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            SubjectId::National(id) => id.as_str(),
            SubjectId::Ui(id) => id.as_str(),
            SubjectId::Passport(id) => id.as_str(),
        }
    }

    /// `national_id`, `ui_number_old`, `ui_number_new` or `passport`.
    pub fn kind(&self) -> &'static str {
        match self {
            SubjectId::National(_) => "national_id",
            SubjectId::Ui(ui) => match ui.style() {
                UiStyle::Old => "ui_number_old",
                UiStyle::New => "ui_number_new",
            },
            SubjectId::Passport(_) => "passport",
        }
    }
}

string_form!(SubjectId);

/// The `n`-th of a series of valid national IDs (`A1…`, male, Taipei letter) for demo data,
/// tests and benchmarks: the check digit is computed, so they pass [`NationalId::parse`].
pub fn synthetic_national_id(n: u32) -> String {
    let body = format!("1{:07}", n % 10_000_000);
    // Letter A is 10: its digits weigh 1 and 9, then the eight digits weigh 8..1.
    let weighted: u32 = 1 + body.bytes().zip((1..=8).rev()).map(|(b, w)| u32::from(b - b'0') * w).sum::<u32>();
    format!("A{body}{}", (10 - weighted % 10) % 10)
}

#[cfg(test)]
mod tests {

    #[test]
    fn synthetic_national_ids_are_valid_and_distinct() {
        let ids: std::collections::BTreeSet<String> = (0..500).map(super::synthetic_national_id).collect();
        assert_eq!(ids.len(), 500);
        assert!(ids.iter().all(|id| super::NationalId::parse(id).is_ok()), "{ids:?}");
    }

    use super::*;
    use serde::de::value::{Error as DeError, StrDeserializer};
    use serde::de::IntoDeserializer;

    fn wrong_length(expected: &'static str, actual: usize) -> Result<(), IdError> {
        Err(IdError::WrongLength { expected, actual })
    }

    #[test]
    fn normalise_trims_converts_full_width_and_upper_cases() {
        assert_eq!(normalise("  a123456789 \t").as_deref(), Ok("A123456789"));
        assert_eq!(normalise("\u{3000}Ａｂ１２\u{3000}").as_deref(), Ok("AB12"));
        assert_eq!(normalise("\u{3000} \n"), Err(IdError::Empty));
        assert_eq!(normalise("A1\u{3000}2"), Err(IdError::InteriorWhitespace));
        assert_eq!(normalise("A1-2"), Err(IdError::InvalidCharacter { ch: '-', position: 3 }));
        assert_eq!(normalise("A1－2"), Err(IdError::InvalidCharacter { ch: '－', position: 3 }));
        assert_eq!(normalise("A\u{200B}1"), Err(IdError::InvalidCharacter { ch: '\u{200B}', position: 2 }));
    }

    #[test]
    fn r_qry_04_national_id_accepts_valid_check_digit() {
        assert_eq!(NationalId::parse("A123456789").map(|id| id.to_string()), Ok("A123456789".into()));
        // Includes the out-of-sequence letters I=34, O=35, W=32, Z=33.
        for id in ["B200000004", "F131104093", "I100000003", "O212345672", "W198765435", "Z299999992"] {
            assert!(NationalId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn r_qry_04_national_id_rejects_bad_check_digit() {
        for id in ["A123456788", "B200000005", "I100000004", "Z299999991"] {
            assert_eq!(NationalId::parse(id), Err(IdError::CheckDigitMismatch), "{id}");
        }
    }

    #[test]
    fn r_qry_04_national_id_normalises_case_width_and_padding() {
        for raw in ["a123456789", "Ａ１２３４５６７８９", "  A123456789 ", "\u{3000}A123456789\u{3000}", "ａ123456789"]
        {
            assert_eq!(NationalId::parse(raw).map(|id| id.to_string()), Ok("A123456789".into()), "{raw:?}");
        }
    }

    #[test]
    fn r_qry_04_national_id_refuses_malformed_input() {
        assert_eq!(NationalId::parse(""), Err(IdError::Empty));
        assert_eq!(NationalId::parse("A1234 56789"), Err(IdError::InteriorWhitespace));
        assert_eq!(NationalId::parse("A12345678").map(drop), wrong_length(RESIDENT_LEN_TEXT, 9));
        assert_eq!(NationalId::parse("A1234567890").map(drop), wrong_length(RESIDENT_LEN_TEXT, 11));
        assert_eq!(NationalId::parse("1123456789"), Err(IdError::BadRegionLetter));
        assert_eq!(NationalId::parse("AB23456789"), Err(IdError::BadFormat { expected: NATIONAL_FORMAT }));
        assert_eq!(NationalId::parse("A1234567X9"), Err(IdError::BadFormat { expected: NATIONAL_FORMAT }));
    }

    #[test]
    fn r_qry_04_national_id_refuses_third_gender_digit() {
        // 3 is not issued; even with a checksum that balances (A3 + 0000000 → check 5) it is refused.
        for id in ["A323456789", "A300000005"] {
            assert_eq!(NationalId::parse(id), Err(IdError::BadFormat { expected: NATIONAL_FORMAT }), "{id}");
        }
    }

    #[test]
    fn r_qry_04_new_ui_number_uses_the_national_checksum() {
        for id in ["A800000014", "A900000007", "F812345676", "Y923456784", "O800000008"] {
            assert_eq!(UiNumber::parse(id).map(|ui| ui.style()), Ok(UiStyle::New), "{id}");
        }
        for id in ["A800000015", "F812345677", "Y923456780"] {
            assert_eq!(UiNumber::parse(id), Err(IdError::CheckDigitMismatch), "{id}");
        }
        assert_eq!(UiNumber::parse("f812345676").map(|ui| ui.to_string()), Ok("F812345676".into()));
    }

    #[test]
    fn r_qry_04_old_ui_number_checks_second_letter_and_check_digit() {
        for id in ["AA00000009", "AC01234567", "FB12345672", "YD76543214", "OA00000011", "IB22222227"] {
            assert_eq!(UiNumber::parse(id).map(|ui| ui.style()), Ok(UiStyle::Old), "{id}");
        }
        for id in ["AA00000008", "AC01234568", "FB12345671", "IB22222222"] {
            assert_eq!(UiNumber::parse(id), Err(IdError::CheckDigitMismatch), "{id}");
        }
        assert_eq!(UiNumber::parse("AE00000009"), Err(IdError::BadGenderLetter));
        assert_eq!(UiNumber::parse("AZ00000009"), Err(IdError::BadGenderLetter));
        assert_eq!(UiNumber::parse("1A00000009"), Err(IdError::BadRegionLetter));
        assert_eq!(UiNumber::parse("AA0000000X"), Err(IdError::BadFormat { expected: OLD_UI_FORMAT }));
        assert_eq!(UiNumber::parse("A123456789"), Err(IdError::BadFormat { expected: UI_FORMAT }));
        assert!(UiNumber::parse("ｆｂ１２３４５６７２").is_ok());
    }

    #[test]
    fn r_qry_04_passport_is_checked_by_format() {
        for ok in ["123456789", "X1234567", "p1234567", "AB1234"] {
            assert!(PassportNumber::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(PassportNumber::parse("ABCDEFGH"), Err(IdError::BadFormat { expected: PASSPORT_FORMAT }));
        assert_eq!(PassportNumber::parse("12345").map(drop), wrong_length(PASSPORT_LEN_TEXT, 5));
        assert_eq!(PassportNumber::parse("1234567890").map(drop), wrong_length(PASSPORT_LEN_TEXT, 10));
    }

    #[test]
    fn r_qry_04_subject_id_is_told_apart_by_shape() {
        let kind = |r: Result<SubjectId, IdError>| r.map(|s| s.kind());
        assert_eq!(kind(SubjectId::parse_resident("A123456789")), Ok("national_id"));
        assert_eq!(kind(SubjectId::parse_resident("A800000014")), Ok("ui_number_new"));
        assert_eq!(kind(SubjectId::parse_resident("ac01234567")), Ok("ui_number_old"));
        assert_eq!(SubjectId::parse_resident("X1234567").map(drop), wrong_length(RESIDENT_LEN_TEXT, 8));
        assert_eq!(SubjectId::parse_resident("A323456789"), Err(IdError::BadFormat { expected: RESIDENT_FORMAT }));
        assert_eq!(kind(SubjectId::parse_any("X1234567")), Ok("passport"));
        assert_eq!(kind(SubjectId::parse_any("123456789")), Ok("passport"));
        assert_eq!(kind(SubjectId::parse_any(" Ａ１２３４５６７８９ ")), Ok("national_id"));
        assert_eq!(kind(SubjectId::parse_any("YD76543214")), Ok("ui_number_old"));
        // A resident-shaped typo stays a resident error instead of turning into a passport.
        assert_eq!(SubjectId::parse_any("A123456788"), Err(IdError::CheckDigitMismatch));
        assert_eq!(
            SubjectId::parse_any("12345678901"),
            Err(IdError::WrongLength { expected: ANY_LEN_TEXT, actual: 11 })
        );
        let subject = SubjectId::parse_any("f812345676");
        assert_eq!(subject.as_ref().map(SubjectId::as_str), Ok("F812345676"));
        assert_eq!(subject.map(|s| s.to_string()), Ok("F812345676".into()));
    }

    #[test]
    fn r_qry_04_hostile_input_never_panics() {
        let long = "9".repeat(10_000);
        #[rustfmt::skip]
        let nasty = [
            "🙂", "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂", "A🙂23456789", "👨‍👩‍👧‍👦", "Ａ", "A", "AA", "\u{0}", "A\u{0}23456789",
            "ÀÉÎÕÜ12345", "\u{FF5E}\u{FF01}", "\u{FF5F}\u{FF00}", "A١٢٣٤٥٦٧٨٩", "A12345678\u{200B}",
            "\u{FEFF}A123456789", "A\u{301}123456789", "\u{202E}987654321A", "𝐀123456789", "ａ", "\u{3000}",
            "A1234567\u{10FFFF}", "[123456789", "@123456789", "A[00000009", "\u{7F}", "中華民國", &long,
        ];
        for raw in nasty {
            for result in [
                normalise(raw).map(drop),
                NationalId::parse(raw).map(drop),
                UiNumber::parse(raw).map(drop),
                PassportNumber::parse(raw).map(drop),
                SubjectId::parse_resident(raw).map(drop),
                SubjectId::parse_any(raw).map(drop),
            ] {
                if let Err(err) = result {
                    assert!(!err.to_string().is_empty() && !err.code().is_empty(), "{raw:?}");
                }
            }
        }
    }

    #[test]
    fn error_messages_and_codes_are_actionable_and_stable() {
        let errors = [
            (IdError::Empty, "empty"),
            (IdError::InteriorWhitespace, "interior_whitespace"),
            (IdError::InvalidCharacter { ch: '-', position: 3 }, "invalid_character"),
            (IdError::WrongLength { expected: RESIDENT_LEN_TEXT, actual: 9 }, "wrong_length"),
            (IdError::BadFormat { expected: NATIONAL_FORMAT }, "bad_format"),
            (IdError::BadRegionLetter, "bad_region_letter"),
            (IdError::BadGenderLetter, "bad_gender_letter"),
            (IdError::CheckDigitMismatch, "check_digit_mismatch"),
        ];
        for (err, code) in errors {
            assert_eq!(err.code(), code);
            assert!(err.to_string().contains(": "), "{err}");
        }
        assert_eq!(
            IdError::CheckDigitMismatch.to_string(),
            "the check digit does not match: please re-check the number"
        );
    }

    #[test]
    fn ids_deserialize_only_through_parse() {
        let de = |s: &'static str| -> StrDeserializer<'static, DeError> { s.into_deserializer() };
        assert_eq!(NationalId::deserialize(de("a123456789")).map(|id| id.to_string()), Ok("A123456789".into()));
        assert!(NationalId::deserialize(de("A123456788")).is_err());
        assert_eq!(UiNumber::deserialize(de("AA00000009")).map(|ui| ui.style()), Ok(UiStyle::Old));
        assert!(UiNumber::deserialize(de("AE00000009")).is_err());
        assert!(PassportNumber::deserialize(de("X1234567")).is_ok());
        assert!(PassportNumber::deserialize(de("ABCDEFGH")).is_err());
    }
}
