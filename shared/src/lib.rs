//! Libraries every immilink service uses. Domain rules do not live here: they belong to the service
//! that owns them. What lives here is plumbing that must behave the same everywhere (errors, config,
//! database access, time, tokens, request context, telemetry) and the code catalogues that every
//! service validates against.

pub mod auth;
pub mod catalogue;
pub mod clock;
pub mod config;
pub mod db;
pub mod events;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod telemetry;
pub mod testing;

pub use problem::{ApiError, ApiResult};
