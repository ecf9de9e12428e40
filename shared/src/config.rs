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

/// The secrets of one service: its own credential for obtaining service tokens from identity
/// (`IMMILINK_SERVICE_SECRET`) and the token Prometheus presents at `/metrics` (`IMMILINK_METRICS_TOKEN`).
#[derive(Debug, Clone)]
pub struct ServiceSecrets {
    pub service: Secret,
    pub metrics: Option<Secret>,
}

impl ServiceSecrets {
    /// Read from the environment; outside the embedded mode the service secret is required, inside it
    /// both are generated (the launcher normally passes its own instead).
    pub fn from_env(embedded: bool) -> Result<Self, ConfigError> {
        let service = match var("SERVICE_SECRET") {
            Some(secret) => Secret::new(secret),
            None if embedded => Secret::generate(),
            None => {
                return Err(ConfigError {
                    name: "IMMILINK_SERVICE_SECRET".into(),
                    reason: "must be set outside the embedded mode (identity holds the same value in IMMILINK_SERVICE_CREDENTIALS)".into(),
                })
            }
        };
        Ok(Self { service, metrics: Self::for_token_issuer(embedded).metrics })
    }

    /// Identity's: it mints its own service tokens, so it needs no credential (a random, unused one).
    pub fn for_token_issuer(embedded: bool) -> Self {
        let metrics = var("METRICS_TOKEN").map(Secret::new).or_else(|| embedded.then(Secret::generate));
        Self { service: Secret::generate(), metrics }
    }

    /// Fresh secrets (tests and the launcher).
    pub fn generate() -> Self {
        Self { service: Secret::generate(), metrics: Some(Secret::generate()) }
    }
}

/// What every service with a database reads: `IMMILINK_<SERVICE>_ADDR`,
/// `IMMILINK_<SERVICE>_DATABASE_URL`, `IMMILINK_IDENTITY_URL`, `IMMILINK_SERVICE_SECRET`,
/// `IMMILINK_METRICS_TOKEN`, `IMMILINK_WORKERS`, `IMMILINK_SESSION_CACHE_MS`.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Listen address; default `127.0.0.1:<the service's port>`.
    pub addr: String,
    /// Default `sqlite://./data/<service>.db` (the embedded mode).
    pub database: crate::db::DbSettings,
    /// Where the token keys and session answers come from; default `http://127.0.0.1:8081`.
    pub identity_url: String,
    /// The service's name, as its service tokens name it (`broker`, `audit`, ...).
    pub name: String,
    pub secrets: ServiceSecrets,
    /// HTTP worker threads; default 2.
    pub workers: usize,
    /// `IMMILINK_SESSION_CACHE_MS`, default 500: how long a "session live" answer from identity is
    /// reused. Revocation takes effect everywhere within this time (R-ACC-10).
    pub session_cache: std::time::Duration,
}

impl ServiceSettings {
    /// Reads the variables of `service` (e.g. `audit` → `IMMILINK_AUDIT_ADDR`). The launcher passes the
    /// secrets it generated for the service; otherwise they are read (generated in the embedded mode).
    pub fn from_env(service: &str, default_port: u16, secrets: Option<ServiceSecrets>) -> Result<Self, ConfigError> {
        let prefix = service.to_ascii_uppercase().replace('-', "_");
        let database = service_database_from_env(service)?;
        let embedded = database.url.starts_with("sqlite:");
        Ok(Self {
            addr: string_or(&format!("{prefix}_ADDR"), &format!("127.0.0.1:{default_port}")),
            database,
            identity_url: string_or("IDENTITY_URL", "http://127.0.0.1:8081"),
            name: service.to_owned(),
            secrets: match secrets {
                Some(secrets) => secrets,
                // Identity issues service tokens and signs its own: it holds no credential.
                None if service == "identity" => ServiceSecrets::for_token_issuer(embedded),
                None => ServiceSecrets::from_env(embedded)?,
            },
            workers: parse_or("WORKERS", 2)?,
            session_cache: std::time::Duration::from_millis(parse_or("SESSION_CACHE_MS", 500)?),
        })
    }

    /// For tests and the launcher: any free loopback port, the given database, one worker.
    pub fn local(service: &str, database_url: &str, secrets: ServiceSecrets) -> Self {
        Self {
            addr: "127.0.0.1:0".into(),
            database: crate::db::DbSettings::for_service(service, database_url),
            identity_url: "http://127.0.0.1:0".into(),
            name: service.to_owned(),
            secrets,
            workers: 1,
            session_cache: std::time::Duration::from_millis(500),
        }
    }

    /// The embedded mode is the SQLite one.
    pub fn is_embedded(&self) -> bool {
        self.database.url.starts_with("sqlite:")
    }
}

/// A service's database settings: its URL, and the bounds on every wait of a PostgreSQL connection
/// (see [`crate::db::PgTimeouts`]), each with a documented default and a variable to change it:
/// - `IMMILINK_DB_CONNECT_TIMEOUT_SECS` (5): opening a connection (libpq `connect_timeout`), and the
///   longest a request waits for a pooled one;
/// - `IMMILINK_DB_KEEPALIVE_IDLE_SECS` (5), `IMMILINK_DB_KEEPALIVE_INTERVAL_SECS` (5),
///   `IMMILINK_DB_KEEPALIVE_COUNT` (3): TCP keepalives, both ends;
/// - `IMMILINK_DB_TCP_USER_TIMEOUT_MS` (15000): unacknowledged data or probes this long close the
///   connection, so a silent peer is noticed within about 15 s;
/// - `IMMILINK_<SERVICE>_DB_STATEMENT_TIMEOUT_MS` (broker 5000, audit 60000, others 10000);
/// - `IMMILINK_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECS` (60): the server ends a session idle inside a
///   transaction this long, releasing its locks;
/// - `IMMILINK_MIGRATE_ON_START` (true): run pending migrations at start; false (Kubernetes, where
///   the migrate Job runs them) only checks that none is pending.
pub fn database_settings(service: &str, url: String) -> Result<crate::db::DbSettings, ConfigError> {
    use std::time::Duration;
    let mut settings = crate::db::DbSettings::for_service(service, url);
    let prefix = service.to_ascii_uppercase().replace('-', "_");
    let defaults = settings.postgres.clone();
    settings.connect_timeout =
        Duration::from_secs(parse_or("DB_CONNECT_TIMEOUT_SECS", settings.connect_timeout.as_secs())?.max(1));
    let pg = &mut settings.postgres;
    pg.keepalive_idle = Duration::from_secs(parse_or("DB_KEEPALIVE_IDLE_SECS", defaults.keepalive_idle.as_secs())?);
    pg.keepalive_interval =
        Duration::from_secs(parse_or("DB_KEEPALIVE_INTERVAL_SECS", defaults.keepalive_interval.as_secs())?);
    pg.keepalive_count = parse_or("DB_KEEPALIVE_COUNT", defaults.keepalive_count)?;
    pg.tcp_user_timeout =
        Duration::from_millis(parse_or("DB_TCP_USER_TIMEOUT_MS", defaults.tcp_user_timeout.as_millis() as u64)?);
    pg.statement = Duration::from_millis(parse_or(
        &format!("{prefix}_DB_STATEMENT_TIMEOUT_MS"),
        defaults.statement.as_millis() as u64,
    )?);
    pg.idle_in_transaction =
        Duration::from_secs(parse_or("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECS", defaults.idle_in_transaction.as_secs())?);
    settings.migrate_on_start = flag_or("MIGRATE_ON_START", true)?;
    Ok(settings)
}

/// The database settings of `service` alone, as [`ServiceSettings::from_env`] reads them
/// (`IMMILINK_<SERVICE>_DATABASE_URL`, default `sqlite://./data/<service>.db`): for commands that
/// need nothing else, such as `migrate`.
pub fn service_database_from_env(service: &str) -> Result<crate::db::DbSettings, ConfigError> {
    let prefix = service.to_ascii_uppercase().replace('-', "_");
    database_settings(service, string_or(&format!("{prefix}_DATABASE_URL"), &format!("sqlite://./data/{service}.db")))
}

/// Secrets by name, from a variable of comma-separated `name:secret` pairs: the service credentials
/// identity accepts (`IMMILINK_SERVICE_CREDENTIALS`), the NIA credential of each agency
/// (`IMMILINK_NIA_AGENCY_KEYS`). Every secret must be at least 32 characters.
#[derive(Debug, Clone, Default)]
pub struct NamedSecrets(pub std::collections::BTreeMap<String, Secret>);

impl NamedSecrets {
    pub const MIN_SECRET_LEN: usize = 32;

    /// Reads `IMMILINK_<key>`; unset is empty.
    pub fn from_env(key: &str) -> Result<Self, ConfigError> {
        Self::parse(&var(key).unwrap_or_default())
            .map_err(|reason| ConfigError { name: format!("{PREFIX}{key}"), reason })
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut secrets = std::collections::BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, secret) =
                pair.split_once(':').ok_or_else(|| "expected name:secret pairs separated by commas".to_owned())?;
            let name = name.trim();
            if name.is_empty() {
                return Err("a pair has an empty name".into());
            }
            if secret.len() < Self::MIN_SECRET_LEN {
                return Err(format!("the secret of {name} is shorter than {} characters", Self::MIN_SECRET_LEN));
            }
            secrets.insert(name.to_owned(), Secret::new(secret));
        }
        Ok(Self(secrets))
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` (`name:secret`) is a known name's secret; returns the name.
    pub fn check(&self, presented: &str) -> Option<String> {
        let (name, secret) = presented.split_once(':')?;
        self.0.get(name).filter(|expected| expected.matches(secret)).map(|_| name.to_owned())
    }

    /// The `name:secret,…` form [`NamedSecrets::parse`] reads (for launchers passing secrets on).
    pub fn to_env_value(&self) -> String {
        self.0.iter().map(|(name, secret)| format!("{name}:{}", secret.expose())).collect::<Vec<_>>().join(",")
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
    fn named_secrets_parse_pairs_and_refuse_short_or_malformed_ones() {
        let long = "x".repeat(32);
        let secrets = NamedSecrets::parse(&format!(" TPE-SW:{long} , HLN-HR:{long}y ")).unwrap();
        assert_eq!(secrets.0.len(), 2);
        assert_eq!(secrets.check(&format!("TPE-SW:{long}")).as_deref(), Some("TPE-SW"));
        assert_eq!(secrets.check(&format!("TPE-SW:{long}y")), None);
        assert_eq!(NamedSecrets::parse(&secrets.to_env_value()).unwrap().0.len(), 2);
        assert!(NamedSecrets::parse("TPE-SW:short").is_err());
        assert!(NamedSecrets::parse("no-colon").is_err());
        assert!(NamedSecrets::parse("").unwrap().is_empty());
    }

    #[test]
    fn secret_never_prints_and_compares_exactly() {
        let secret = Secret::new("s3cret");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre"));
        assert!(!secret.matches("s3creT"));
    }

    #[test]
    fn only_identity_may_start_without_a_service_secret_outside_the_embedded_mode() {
        // The variables are unset in the test environment.
        assert!(ServiceSecrets::from_env(false).is_err());
        assert!(ServiceSecrets::from_env(true).is_ok());
        let identity = ServiceSecrets::for_token_issuer(false);
        assert!(identity.metrics.is_none());
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(Secret::generate().expose(), Secret::generate().expose());
    }
}
