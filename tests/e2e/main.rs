//! End-to-end tests: the whole stack spawned in-process on free ports, each test with its own
//! databases (SQLite files, or PostgreSQL schemas when TEST_DATABASE_URL is set), driven over real HTTP
//! through the gateway.

mod accounts;
mod audit_log;
mod audit_sources;
mod authorization;
mod batches;
mod compliance;
mod edge;
mod faults;
mod harness;
mod hostile_input;
mod links;
mod lookup_rules;
mod lookups;
mod migrations;
mod outbox_faults;
mod oversight;
mod platform;
mod sessions;
mod tcp_proxy;
mod tls;
mod token_attacks;
mod tools;
mod traces;
mod vendors;
