//! Configuration comes from environment variables, all with the `IMMILINK_` prefix (plus the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` and `RUST_LOG`). Every variable has a safe default for the embedded
//! mode; README lists them. Settings are values passed into `Application::build`, never globals.

use std::fmt;
use std::str::FromStr;

pub const PREFIX: &str = "IMMILINK_";

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {name} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

/// Reads `IMMILINK_<key>`; `None` when unset or empty.
pub fn var(key: &str) -> Option<String> {
    std::env::var(format!("{PREFIX}{key}")).ok().filter(|value| !value.trim().is_empty())
}

pub fn string_or(key: &str, default: &str) -> String {
    var(key).unwrap_or_else(|| default.to_owned())
}

/// Reads and parses `IMMILINK_<key>`, falling back to `default` when unset.
pub fn parse_or<T>(key: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match var(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|err: T::Err| ConfigError { name: format!("{PREFIX}{key}"), reason: err.to_string() }),
    }
}

/// Booleans accept true/false/1/0/yes/no/on/off.
pub fn flag_or(key: &str, default: bool) -> Result<bool, ConfigError> {
    match var(key) {
        None => Ok(default),
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            other => Err(ConfigError {
                name: format!("{PREFIX}{key}"),
                reason: format!("expected true or false, got {other:?}"),
            }),
        },
    }
}

/// `IMMILINK_INTERNAL_TOKEN`; required outside the embedded mode, generated inside it.
pub fn internal_token(embedded: bool) -> Result<Secret, ConfigError> {
    match var("INTERNAL_TOKEN") {
        Some(token) => Ok(Secret::new(token)),
        None if embedded => Ok(Secret::generate()),
        None => Err(ConfigError {
            name: "IMMILINK_INTERNAL_TOKEN".into(),
            reason: "must be set outside the embedded mode".into(),
        }),
    }
}

/// A secret value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random secret for the embedded mode (256 bits, hex).
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so a caller cannot learn the secret from response timing.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_and_compares_exactly() {
        let secret = Secret::new("s3cret");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre"));
        assert!(!secret.matches("s3creT"));
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(Secret::generate().expose(), Secret::generate().expose());
    }
}
