//! What the two benchmark binaries share: the stack as they start it, wrk and its reports, the
//! in-process clients, database access for the write floor and the audit trail, the machine and
//! the noise check, and the formatting of the printed report.
//!
//! - `gateway-bench` (src/main.rs): the gateway's per-request checks against nginx and the bare service.
//! - `lookup-bench` (src/bin/lookup-bench.rs): audited lookups against the durability floor.

pub mod clients;
pub mod db;
pub mod inserts;
pub mod machine;
pub mod nginx;
pub mod postgres;
pub mod report;
pub mod stack;
pub mod trail;
pub mod wrk;

use anyhow::Context;

/// A whole number from the environment variable `name`; `default` when unset or blank.
pub fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse().with_context(|| format!("{name}={raw}")),
        _ => Ok(default),
    }
}
