//! Subject identifiers, parsed at the edge so code inside never re-checks them (R-QRY-04):
//!
//! - national ID (國民身分證統一編號): a region letter, 1 or 2 (sex), 7 digits, a check digit;
//! - new-style UI number (新式統一證號, since 2021): a region letter, 8 or 9, 7 digits, a check digit,
//!   with the national ID's checksum;
//! - old-style UI number (舊式統一證號): a region letter, A–D, 8 digits (the last a check digit);
//! - passport number: 6–9 letters and digits with at least one digit (no check digit is published for
//!   foreign passports; Taiwanese ones are 9 digits).
//!
//! Caseworkers type these by hand, often with an IME switched to full width, in lower case or with
//! padding. Input is therefore normalised first (trim, full-width → ASCII, upper case); anything still
//! odd is refused with a reason they can act on. Nothing here panics on any input.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the identifier is empty")]
    Empty,
    #[error("the identifier contains spaces inside it: remove them")]
    InteriorWhitespace,
    #[error("the identifier contains {ch:?} at position {position}: only letters and digits are allowed")]
    InvalidCharacter { ch: char, position: usize },
    #[error("the identifier has {actual} characters; expected {expected}")]
    WrongLength { expected: &'static str, actual: usize },
    #[error("the identifier is not in the expected form: {expected}")]
    BadFormat { expected: &'static str },
    #[error("the first letter is not a valid region letter")]
    BadRegionLetter,
    #[error("the second letter of an old-style UI number must be A, B, C or D")]
    BadGenderLetter,
    #[error("the check digit does not match: please re-check the number")]
    CheckDigitMismatch,
}

impl IdError {
    /// Stable machine code for problem documents.
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

/// Trims (ASCII and ideographic spaces), maps full-width ASCII to ASCII, upper-cases, and refuses
/// interior whitespace and anything that is not a letter or digit.
pub fn normalise(raw: &str) -> Result<String, IdError> {
    let is_space = |c: char| c.is_whitespace() || c == '\u{3000}';
    let trimmed = raw.trim_matches(is_space);
    if trimmed.is_empty() {
        return Err(IdError::Empty);
    }
    let mut out = String::with_capacity(trimmed.len());
    for (position, ch) in trimmed.chars().enumerate() {
        let ch = match ch {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch),
            other => other,
        };
        if is_space(ch) {
            return Err(IdError::InteriorWhitespace);
        }
        if !ch.is_ascii_alphanumeric() {
            return Err(IdError::InvalidCharacter { ch, position: position + 1 });
        }
        out.push(ch.to_ascii_uppercase());
    }
    Ok(out)
}

/// The two-digit code of a region letter (A=10 … with I, O, W, X, Y, Z out of sequence).
fn letter_code(letter: u8) -> Option<u32> {
    const CODES: [u32; 26] =
        [10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24, 25, 26, 27, 28, 29, 32, 30, 31, 33];
    letter.is_ascii_uppercase().then(|| CODES[usize::from(letter - b'A')])
}

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

/// Checksum shared by national IDs and new-style UI numbers: letter code tens ×1, ones ×9, then the
/// nine digits weighted 8,7,6,5,4,3,2,1,1.
fn checksum_ok_letter_nine_digits(id: &[u8]) -> Result<bool, IdError> {
    let region = letter_code(id[0]).ok_or(IdError::BadRegionLetter)?;
    let mut sum = region / 10 + (region % 10) * 9;
    const WEIGHTS: [u32; 9] = [8, 7, 6, 5, 4, 3, 2, 1, 1];
    for (b, w) in id[1..].iter().zip(WEIGHTS) {
        sum += digit(*b).ok_or(IdError::BadFormat { expected: "a letter followed by 9 digits" })? * w;
    }
    Ok(sum.is_multiple_of(10))
}

fn expect_len(id: &str, len: usize, expected: &'static str) -> Result<(), IdError> {
    if id.len() == len {
        Ok(())
    } else {
        Err(IdError::WrongLength { expected, actual: id.chars().count() })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// 國民身分證統一編號.
    NationalId
);
id_type!(
    /// 居留證統一證號, old or new style.
    UiNumber
);
id_type!(
    /// A passport number, checked by format only.
    PassportNumber
);

impl NationalId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        expect_len(&id, 10, "10 (a letter and 9 digits)")?;
        let bytes = id.as_bytes();
        if !bytes[0].is_ascii_uppercase() {
            return Err(IdError::BadFormat { expected: "a letter followed by 1 or 2 and 8 digits" });
        }
        if !matches!(bytes[1], b'1' | b'2') {
            return Err(IdError::BadFormat { expected: "a letter followed by 1 or 2 and 8 digits" });
        }
        if checksum_ok_letter_nine_digits(bytes)? {
            Ok(Self(id))
        } else {
            Err(IdError::CheckDigitMismatch)
        }
    }
}

/// Old (two letters) or new (letter, 8/9) UI number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiStyle {
    Old,
    New,
}

impl UiNumber {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        expect_len(&id, 10, "10 characters")?;
        let bytes = id.as_bytes();
        let valid = match bytes[1] {
            b'8' | b'9' => checksum_ok_letter_nine_digits(bytes)?,
            b'A'..=b'Z' => old_style_checksum_ok(bytes)?,
            _ => {
                return Err(IdError::BadFormat {
                    expected: "a letter followed by 8 or 9 and 8 digits, or two letters and 8 digits",
                })
            }
        };
        if valid {
            Ok(Self(id))
        } else {
            Err(IdError::CheckDigitMismatch)
        }
    }

    pub fn style(&self) -> UiStyle {
        if self.0.as_bytes()[1].is_ascii_digit() {
            UiStyle::New
        } else {
            UiStyle::Old
        }
    }
}

/// Old style: region code tens ×1, ones ×9; the second letter's code mod 10 ×8; then the eight digits
/// weighted 7,6,5,4,3,2,1,1.
fn old_style_checksum_ok(id: &[u8]) -> Result<bool, IdError> {
    let region = letter_code(id[0]).ok_or(IdError::BadRegionLetter)?;
    if !matches!(id[1], b'A'..=b'D') {
        return Err(IdError::BadGenderLetter);
    }
    let second = letter_code(id[1]).ok_or(IdError::BadGenderLetter)?;
    let mut sum = region / 10 + (region % 10) * 9 + (second % 10) * 8;
    const WEIGHTS: [u32; 8] = [7, 6, 5, 4, 3, 2, 1, 1];
    for (b, w) in id[2..].iter().zip(WEIGHTS) {
        sum += digit(*b).ok_or(IdError::BadFormat { expected: "two letters followed by 8 digits" })? * w;
    }
    Ok(sum.is_multiple_of(10))
}

impl PassportNumber {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        if !(6..=9).contains(&id.len()) {
            return Err(IdError::WrongLength { expected: "6 to 9 letters and digits", actual: id.chars().count() });
        }
        if !id.bytes().any(|b| b.is_ascii_digit()) {
            return Err(IdError::BadFormat { expected: "letters and digits with at least one digit" });
        }
        Ok(Self(id))
    }
}

/// Whom a lookup is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectId {
    National(NationalId),
    Ui(UiNumber),
    Passport(PassportNumber),
}

impl SubjectId {
    /// A national ID or UI number, told apart by the second character.
    pub fn parse_resident(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        match id.as_bytes().get(1) {
            Some(b'1' | b'2') => NationalId::parse(&id).map(SubjectId::National),
            Some(b'8' | b'9' | b'A'..=b'Z') => UiNumber::parse(&id).map(SubjectId::Ui),
            Some(_) if id.len() == 10 => {
                Err(IdError::BadFormat { expected: "a national ID (letter, 1 or 2, 8 digits) or a UI number" })
            }
            _ => Err(IdError::WrongLength { expected: "10 characters", actual: id.chars().count() }),
        }
    }

    /// A resident identifier if it has that shape, otherwise a passport number.
    pub fn parse_any(raw: &str) -> Result<Self, IdError> {
        let id = normalise(raw)?;
        let bytes = id.as_bytes();
        // Passports are at most 9 characters, so a 10-character letter-led ID is a resident one.
        if bytes.len() == 10 && bytes[0].is_ascii_uppercase() {
            Self::parse_resident(&id)
        } else {
            PassportNumber::parse(&id).map(SubjectId::Passport)
        }
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
            SubjectId::Ui(ui) if ui.style() == UiStyle::Old => "ui_number_old",
            SubjectId::Ui(_) => "ui_number_new",
            SubjectId::Passport(_) => "passport",
        }
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SubjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_qry_04_national_id_accepts_valid_check_digit() {
        assert_eq!(NationalId::parse("A123456789").unwrap().as_str(), "A123456789");
        // Letters with out-of-sequence codes: I=34, O=35, W=32, Z=33.
        for id in ["F131104093", "B234567894", "I100000003", "W100000001", "Z299999992"] {
            assert!(NationalId::parse(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn r_qry_04_national_id_rejects_bad_check_digit() {
        assert_eq!(NationalId::parse("A123456788"), Err(IdError::CheckDigitMismatch));
        assert_eq!(NationalId::parse("F131104094"), Err(IdError::CheckDigitMismatch));
    }

    #[test]
    fn r_qry_04_national_id_normalises_case_width_and_padding() {
        for raw in ["a123456789", "Ａ１２３４５６７８９", "  A123456789 ", "\u{3000}A123456789"] {
            assert_eq!(NationalId::parse(raw).unwrap().as_str(), "A123456789", "{raw:?}");
        }
    }

    #[test]
    fn r_qry_04_national_id_refuses_malformed_input_with_reasons() {
        assert_eq!(NationalId::parse(""), Err(IdError::Empty));
        assert_eq!(NationalId::parse("   "), Err(IdError::Empty));
        assert_eq!(NationalId::parse("A1234 56789"), Err(IdError::InteriorWhitespace));
        assert!(matches!(NationalId::parse("A12345678"), Err(IdError::WrongLength { actual: 9, .. })));
        assert!(matches!(NationalId::parse("A323456789"), Err(IdError::BadFormat { .. })));
        assert!(matches!(NationalId::parse("1123456789"), Err(IdError::BadFormat { .. })));
        assert!(matches!(NationalId::parse("A12345-789"), Err(IdError::InvalidCharacter { ch: '-', position: 7 })));
    }

    #[test]
    fn r_qry_04_new_style_ui_numbers_use_the_national_checksum() {
        // A8 + 0000001 + check: 1 + 0*9 + 8*8 + 1*1 = 66 → check 4.
        assert!(UiNumber::parse("A800000014").is_ok());
        assert_eq!(UiNumber::parse("A800000014").unwrap().style(), UiStyle::New);
        assert_eq!(UiNumber::parse("A800000015"), Err(IdError::CheckDigitMismatch));
        // A9 + 0000000 + check: 1 + 9*8 = 73 → check 7.
        assert!(UiNumber::parse("A900000007").is_ok());
    }

    #[test]
    fn r_qry_04_old_style_ui_numbers_check_the_second_letter_and_digit() {
        // A (10): 1 + 0; A (10) mod 10 = 0; digits 0 → check 9.
        assert!(UiNumber::parse("AA00000009").is_ok());
        assert_eq!(UiNumber::parse("AA00000009").unwrap().style(), UiStyle::Old);
        // A, C (12 → 2 × 8 = 16), digits 0123456 → 1 + 16 + 0+6+10+12+12+10+6 = 73 → check 7.
        assert!(UiNumber::parse("AC01234567").is_ok());
        assert_eq!(UiNumber::parse("AC01234568"), Err(IdError::CheckDigitMismatch));
        assert_eq!(UiNumber::parse("AE00000009"), Err(IdError::BadGenderLetter));
        assert!(UiNumber::parse("ac01234567").is_ok());
    }

    #[test]
    fn r_qry_04_passports_by_format() {
        for ok in ["123456789", "X1234567", "p1234567"] {
            assert!(PassportNumber::parse(ok).is_ok(), "{ok}");
        }
        assert!(matches!(PassportNumber::parse("ABCDEFGH"), Err(IdError::BadFormat { .. })));
        assert!(matches!(PassportNumber::parse("12345"), Err(IdError::WrongLength { .. })));
        assert!(matches!(PassportNumber::parse("1234567890"), Err(IdError::WrongLength { .. })));
    }

    #[test]
    fn r_qry_04_subject_ids_are_told_apart_by_shape() {
        assert_eq!(SubjectId::parse_resident("A123456789").unwrap().kind(), "national_id");
        assert_eq!(SubjectId::parse_resident("A800000014").unwrap().kind(), "ui_number_new");
        assert_eq!(SubjectId::parse_resident("AC01234567").unwrap().kind(), "ui_number_old");
        assert!(SubjectId::parse_resident("X1234567").is_err());
        assert_eq!(SubjectId::parse_any("X1234567").unwrap().kind(), "passport");
        assert_eq!(SubjectId::parse_any("123456789").unwrap().kind(), "passport");
        assert_eq!(SubjectId::parse_any("A123456789").unwrap().kind(), "national_id");
        // Resident-shaped with a bad check digit is refused, not reinterpreted as a passport.
        assert_eq!(SubjectId::parse_any("A123456788"), Err(IdError::CheckDigitMismatch));
    }

    #[test]
    fn r_qry_04_hostile_input_never_panics() {
        let nasty = [
            "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂",
            "Ａ",
            "A\u{0}23456789",
            "ÀÉÎÕÜ12345",
            "\u{FF5E}\u{FF01}",
            "A١٢٣٤٥٦٧٨٩",
            "A12345678\u{200B}",
            &"9".repeat(10_000),
            "Ｘ１２３４５６７",
            "\u{3000}\u{3000}",
            "AA",
            "A",
        ];
        for raw in nasty {
            let _ = NationalId::parse(raw);
            let _ = UiNumber::parse(raw);
            let _ = PassportNumber::parse(raw);
            let _ = SubjectId::parse_any(raw);
            let _ = SubjectId::parse_resident(raw);
        }
    }

    #[test]
    fn error_codes_are_stable_snake_case() {
        assert_eq!(IdError::CheckDigitMismatch.code(), "check_digit_mismatch");
        assert_eq!(IdError::Empty.code(), "empty");
    }

    #[test]
    fn ids_deserialize_only_through_parse() {
        let parsed: NationalId = serde_json::from_str("\"a123456789\"").unwrap();
        assert_eq!(parsed.as_str(), "A123456789");
        assert!(serde_json::from_str::<NationalId>("\"A123456788\"").is_err());
    }
}
