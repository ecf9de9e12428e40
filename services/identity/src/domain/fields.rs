//! The field rules every body goes through at the edge, so a request becomes domain types or a
//! refusal that names the field: required and bounded texts, free-text reasons, IP address lists.
//! The rules of one business object (a username, a certificate serial) sit in its own module.

use std::net::IpAddr;

use super::IdentityError;

/// Longest free-text reason kept with an account event or a review.
pub const MAX_REASON_CHARS: usize = 1000;
/// Most addresses one account may register (R-ACC-11).
pub const MAX_IPS: usize = 10;

/// A value the request must carry.
pub fn present<T>(value: Option<T>, field: &str) -> Result<T, IdentityError> {
    value.ok_or_else(|| IdentityError::missing(field))
}

/// A required text, trimmed, of at most `max_chars` characters.
pub fn text(value: Option<String>, field: &str, max_chars: usize) -> Result<String, IdentityError> {
    let value =
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| IdentityError::missing(field))?;
    if value.chars().count() > max_chars {
        return Err(IdentityError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    Ok(value)
}

/// A free-text `reason`, trimmed and bounded; empty when it is optional and absent.
pub fn reason(value: Option<String>, required: bool) -> Result<String, IdentityError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None if required => Err(IdentityError::missing("reason")),
        None => Ok(String::new()),
        Some(v) if v.chars().count() > MAX_REASON_CHARS => {
            Err(IdentityError::invalid("reason", format!("must be at most {MAX_REASON_CHARS} characters")))
        }
        Some(v) => Ok(v),
    }
}

/// IP addresses, each named by its index when it does not parse.
fn ip_list(raw: &[String], field: &str) -> Result<Vec<IpAddr>, IdentityError> {
    raw.iter()
        .enumerate()
        .map(|(i, ip)| {
            ip.trim().parse().map_err(|_| IdentityError::invalid(format!("{field}[{i}]"), "not an IP address"))
        })
        .collect()
}

/// The addresses an account's logins and requests must come from (R-ACC-11): one to ten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredIps(Vec<IpAddr>);

impl RegisteredIps {
    /// A manager's new list for an account: one to ten addresses.
    pub fn parse(raw: Option<Vec<String>>) -> Result<Self, IdentityError> {
        let raw = present(raw, "ips")?;
        if raw.is_empty() || raw.len() > MAX_IPS {
            return Err(IdentityError::invalid("ips", format!("between 1 and {MAX_IPS} addresses")));
        }
        Ok(Self(ip_list(&raw, "ips")?))
    }

    /// An applicant's list: absent or empty means the address the application comes from.
    pub fn parse_or(raw: Option<Vec<String>>, submitted_from: IpAddr) -> Result<Self, IdentityError> {
        let Some(raw) = raw.filter(|ips| !ips.is_empty()) else {
            return Ok(Self(vec![submitted_from]));
        };
        if raw.len() > MAX_IPS {
            return Err(IdentityError::invalid("ips", format!("at most {MAX_IPS} addresses")));
        }
        Ok(Self(ip_list(&raw, "ips")?))
    }

    pub fn as_slice(&self) -> &[IpAddr] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_required_and_bounded() {
        assert_eq!(text(Some("  x ".into()), "name", 3).unwrap(), "x");
        assert!(
            matches!(text(Some("   ".into()), "name", 3), Err(IdentityError::Missing { field }) if field == "name")
        );
        assert!(
            matches!(text(Some("abcd".into()), "name", 3), Err(IdentityError::Invalid { field, .. }) if field == "name")
        );
        assert_eq!(reason(None, false).unwrap(), "");
        assert!(matches!(reason(Some(" ".into()), true), Err(IdentityError::Missing { .. })));
        assert!(reason(Some("x".repeat(MAX_REASON_CHARS + 1)), false).is_err());
    }

    #[test]
    fn ip_lists_name_the_bad_entry_and_keep_their_bounds() {
        let from: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(RegisteredIps::parse_or(None, from).unwrap().as_slice(), [from]);
        let bad = RegisteredIps::parse(Some(vec!["10.0.0.2".into(), "nope".into()]));
        assert!(matches!(bad, Err(IdentityError::Invalid { field, .. }) if field == "ips[1]"));
        assert!(
            matches!(RegisteredIps::parse(Some(vec![])), Err(IdentityError::Invalid { field, .. }) if field == "ips")
        );
        assert!(matches!(RegisteredIps::parse(None), Err(IdentityError::Missing { .. })));
        let eleven = vec!["10.0.0.3".to_owned(); MAX_IPS + 1];
        assert!(RegisteredIps::parse_or(Some(eleven), from).is_err());
    }
}
