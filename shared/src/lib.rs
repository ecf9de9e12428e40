//! Libraries every immilink service uses. Domain rules do not live here: they belong to the service
//! that owns them. What lives here is plumbing that must behave the same everywhere (errors, config,
//! database access, time, tokens, request context, telemetry, documents) and the code catalogues
//! every service validates against.
//!
//! The modules are layered: each uses only modules of a lower layer, so there is no import cycle
//! (the test `modules_use_only_lower_layers` below reads the sources and fails on one).
//!
//! 0. leaves: `context` (the request id and language of the request being served, header names),
//!    `clock`, `catalogue`, `ids`, `events`, `rate_limit`, `testing`, `transparency` (checkpoint
//!    cosignatures and key files), `compliance` (the rules matrix of R-GOV-01 and its generator)
//! 1. `problem` (problem+json errors), `telemetry`, `documents`
//! 2. `db` (the two-backend connection, migrations; database errors become problems here),
//!    `forwarded` (the client's address and scheme behind trusted proxies)
//! 3. `typed` (states and ids stored as text), `config` (plain settings data)
//! 4. `auth` (token verification, session liveness, service tokens)
//! 5. `extractors` (what handlers take from a request), `metrics`, `openapi`, `outbox` (the
//!    transactional outbox of audit events and its relay)
//! 6. `server` (a service assembled: middleware, routes, state, tasks, signals)

pub mod context;

pub mod catalogue;
pub mod clock;
pub mod compliance;
pub mod events;
pub mod ids;
pub mod rate_limit;
pub mod testing;
pub mod transparency;

pub mod documents;
pub mod problem;
pub mod telemetry;

pub mod db;
pub mod forwarded;

pub mod config;
pub mod typed;

pub mod auth;

pub mod extractors;
pub mod metrics;
pub mod openapi;
pub mod outbox;

pub mod server;
pub mod tls;

pub use problem::{ApiError, ApiResult};

/// The layer of each module, as the crate documentation above lists them.
#[cfg(test)]
const LAYERS: &[(&str, usize, &str)] = &[
    ("context", 0, include_str!("context.rs")),
    ("catalogue", 0, include_str!("catalogue.rs")),
    ("clock", 0, include_str!("clock.rs")),
    ("compliance", 0, include_str!("compliance.rs")),
    ("events", 0, include_str!("events.rs")),
    ("ids", 0, include_str!("ids.rs")),
    ("rate_limit", 0, include_str!("rate_limit.rs")),
    ("testing", 0, include_str!("testing.rs")),
    ("transparency", 0, include_str!("transparency.rs")),
    ("documents", 1, include_str!("documents.rs")),
    ("problem", 1, include_str!("problem.rs")),
    ("telemetry", 1, include_str!("telemetry.rs")),
    ("db", 2, include_str!("db.rs")),
    ("forwarded", 2, include_str!("forwarded.rs")),
    ("config", 3, include_str!("config.rs")),
    ("typed", 3, include_str!("typed.rs")),
    ("auth", 4, include_str!("auth.rs")),
    ("extractors", 5, include_str!("extractors.rs")),
    ("tls", 4, include_str!("tls.rs")),
    ("metrics", 5, include_str!("metrics.rs")),
    ("openapi", 5, include_str!("openapi.rs")),
    ("outbox", 5, include_str!("outbox.rs")),
    ("server", 6, include_str!("server.rs")),
];

#[cfg(test)]
mod tests {
    use super::LAYERS;

    /// The modules another module names as `crate::<module>` (macros' `$crate::` paths included;
    /// a macro exported at the crate root, `$crate::name!`, is not a module).
    fn uses(source: &str) -> Vec<&str> {
        source
            .match_indices("crate::")
            .map(|(at, _)| &source[at + "crate::".len()..])
            .filter_map(|rest| {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                (!rest[end..].starts_with('!')).then_some(&rest[..end])
            })
            .collect()
    }

    #[test]
    fn modules_use_only_lower_layers() {
        let layer = |name: &str| LAYERS.iter().find(|(module, ..)| *module == name).map(|(_, layer, _)| *layer);
        let mut violations = Vec::new();
        for (module, own, source) in LAYERS {
            assert!(!source.contains("crate::{"), "{module}: write `use crate::<module>::…` one module at a time");
            for used in uses(source) {
                match layer(used) {
                    Some(_) if used == *module => {}
                    Some(theirs) if theirs < *own => {}
                    Some(theirs) => violations.push(format!("{module} (layer {own}) uses {used} (layer {theirs})")),
                    None => violations.push(format!("{module} uses crate::{used}, which has no layer")),
                }
            }
        }
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }

    #[test]
    fn every_module_has_a_layer() {
        let declared: Vec<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub mod "))
            .map(|rest| rest.trim_end_matches(';'))
            .collect();
        let layered: Vec<&str> = LAYERS.iter().map(|(module, ..)| *module).collect();
        assert_eq!(declared.len(), layered.len(), "{declared:?} / {layered:?}");
        assert!(declared.iter().all(|module| layered.contains(module)), "{declared:?} / {layered:?}");
    }
}
