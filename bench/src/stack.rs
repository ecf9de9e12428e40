//! The stack as the benchmarks start it: the end-to-end tests' launcher (`immilink_stack::start` with
//! `StackConfig::for_tests`), but with production's worker counts and cache times, which the test
//! configuration lowers to one worker each.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use immilink_shared::config::parse_or;
use immilink_stack::StackConfig;

/// The services with a database, in the order `StackConfig::for_tests` takes their URLs.
pub const SERVICES: [&str; 4] = ["identity", "broker", "audit", "vendors"];

/// The settings production runs with that the test configuration changes. From the stack's own
/// variables: `IMMILINK_WORKERS` (default 2), `IMMILINK_SESSION_CACHE_MS` (500) and
/// `IMMILINK_LOGIN_CONCURRENCY` (1), production's defaults.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub workers: usize,
    pub session_cache: Duration,
    pub login_concurrency: usize,
}

impl Tuning {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            workers: parse_or("WORKERS", 2)?,
            session_cache: Duration::from_millis(parse_or("SESSION_CACHE_MS", 500)?),
            login_concurrency: parse_or("LOGIN_CONCURRENCY", 1)?,
        })
    }

    /// `for_tests` gives every service one worker; production runs `IMMILINK_WORKERS` (default 2).
    pub fn apply(&self, config: &mut StackConfig) {
        config.identity.service.workers = self.workers;
        config.broker.service.workers = self.workers;
        config.audit.service.workers = self.workers;
        config.vendors.service.workers = self.workers;
        config.nia.workers = self.workers;
        config.gateway.workers = self.workers;
        config.gateway.session_cache = self.session_cache;
        config.identity.service.session_cache = self.session_cache;
        config.broker.service.session_cache = self.session_cache;
        config.audit.service.session_cache = self.session_cache;
        config.vendors.service.session_cache = self.session_cache;
        config.identity.login_concurrency = self.login_concurrency;
    }

    /// The `workers:` and `session:` lines of a report's header.
    pub fn print(&self) {
        println!(
            "workers:  gateway {w}, identity {w}, broker {w}, audit {w}, vendors {w}, nia-mock {w} (IMMILINK_WORKERS)",
            w = self.workers
        );
        println!(
            "session:  gateway and services reuse a \"live\" answer for {} ms (IMMILINK_SESSION_CACHE_MS); \
             identity hashes {} password(s) at once (IMMILINK_LOGIN_CONCURRENCY)",
            self.session_cache.as_millis(),
            self.login_concurrency
        );
    }
}

/// One SQLite file per service in `dir`, in [`SERVICES`] order.
pub fn sqlite_urls(dir: &Path) -> [String; 4] {
    SERVICES.map(|service| format!("sqlite://{}", dir.join(format!("{service}.db")).display()))
}

/// The test configuration on these databases (in [`SERVICES`] order), tuned as production runs.
pub fn config(database_urls: &[String; 4], key_dir: &Path, tuning: &Tuning) -> StackConfig {
    let mut config = StackConfig::for_tests(database_urls.each_ref().map(String::as_str), key_dir);
    tuning.apply(&mut config);
    config
}

/// The port of `http://host:port`.
pub fn port_of(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {url}"))
}
