//! What the paperwork modules share (proxy authorisations, purpose approvals, doubt queries): who is
//! acting, bounded text input, and a write that commits a state change together with its audit event.

use chrono::{DateTime, Utc};
use immilink_shared::auth::AccessClaims;
use immilink_shared::events::AuditEvent;

use super::BrokerError;

/// The authenticated user a paperwork function acts for, as their access token states them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    /// Agency code.
    pub agency: String,
    /// Unit id within the agency.
    pub unit: Option<String>,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_any(&self, roles: &[&str]) -> bool {
        roles.iter().any(|role| self.has(role))
    }

    /// Whether the caller holds `role` in `unit` of their agency.
    pub fn is_in_unit_as(&self, role: &str, unit: Option<&str>) -> bool {
        self.has(role) && unit.is_some() && self.unit.as_deref() == unit
    }
}

impl From<&AccessClaims> for Caller {
    fn from(claims: &AccessClaims) -> Self {
        Self {
            user_id: claims.sub.clone(),
            session_id: claims.sid.clone(),
            agency: claims.agency.clone(),
            unit: claims.unit.clone(),
            roles: claims.roles.clone(),
        }
    }
}

/// The page size of the paperwork lists (`?limit=`, 1–500, default 100); lists are newest first and
/// `?before=<id>` continues after the last id of the previous page.
pub fn page_size(limit: Option<i64>) -> i64 {
    limit.unwrap_or(100).clamp(1, 500)
}

pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(err, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An audit event recorded by the broker.
pub fn event(
    kind: &str,
    now: DateTime<Utc>,
    caller: &Caller,
    correlation_id: &str,
    subject_id: Option<String>,
    payload: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        id: new_id(),
        kind: kind.to_owned(),
        occurred_at: now,
        source: crate::SERVICE.into(),
        actor_user_id: Some(caller.user_id.clone()),
        agency: Some(caller.agency.clone()),
        correlation_id: Some(correlation_id.to_owned()),
        subject_id,
        payload,
    }
}

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
pub fn case_number(value: Option<String>, rule: &'static str) -> Result<String, BrokerError> {
    let value = clean(value).ok_or_else(|| BrokerError::missing("case_number").rule(rule))?;
    bounded(value, "case_number", MAX_CASE_NUMBER, Lines::One).map_err(|_| {
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

/// Fixtures of the paperwork tests.
#[cfg(test)]
pub(crate) mod testkit {
    use chrono::{DateTime, TimeZone, Utc};
    use immilink_shared::db::{Db, DbSettings, PooledConn};
    use immilink_shared::testing::TestDb;

    use super::Caller;
    use crate::identity_client::UserSummary;

    pub type TestConn = PooledConn;

    /// A connection to a migrated broker database of its own.
    pub fn conn(test_db: &TestDb) -> TestConn {
        Db::connect(&DbSettings::new(test_db.url()), &crate::MIGRATIONS)
            .expect("test database")
            .get()
            .expect("a connection")
    }

    /// 2026-11-23 10:00 in Taipei.
    pub fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).single().expect("a valid instant")
    }

    pub fn caller(user_id: &str, agency: &str, unit: Option<&str>, roles: &[&str]) -> Caller {
        Caller {
            user_id: user_id.into(),
            session_id: format!("session-of-{user_id}"),
            agency: agency.into(),
            unit: unit.map(str::to_owned),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// What identity says about a user; the display name is "name of" the id's last 4 characters.
    pub fn summary(user_id: &str, agency: &str, status: &str) -> UserSummary {
        UserSummary {
            user_id: user_id.into(),
            username: format!("user.{user_id}"),
            display_name: format!("name of {}", &user_id[user_id.len().saturating_sub(4)..]),
            agency: agency.into(),
            unit: Some("unit-a".into()),
            status: status.into(),
            roles: vec!["caseworker".into()],
            permissions: Vec::new(),
        }
    }
}
