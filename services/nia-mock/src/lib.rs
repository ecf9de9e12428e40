//! nia-mock: a stand-in for the immigration agency's cloud query service (雲端資料查詢及交換服務).
//! It is outside immilink's trust boundary: the broker treats it as a remote system, reaches it only
//! over HTTP with the agency's API key, and never trusts its answers' shape beyond what it minimises.
//!
//! Provided so far: `entry_exit_last_year`. The other query types answer 501 until the broker issue
//! adds them. Account reviews (R-ACC-01's last step) are decided by a policy the test harness can
//! change at runtime through an admin endpoint of its own (`IMMILINK_NIA_ADMIN_KEY`).

pub mod review;
mod routes;
pub mod synthetic;
#[cfg(test)]
mod tests;

use std::sync::RwLock;

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret};
use immilink_shared::http::{serve, Routes, Running};
use utoipa::OpenApi;

pub use review::{AccountReview, ReviewDecision, ReviewPolicy, ReviewSetting};
pub use routes::ADMIN_KEY_HEADER;

pub const SERVICE: &str = "nia-mock";

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_NIA_MOCK_ADDR`, default `127.0.0.1:8085`.
    pub addr: String,
    /// `IMMILINK_NIA_API_KEY`: the key callers must present (none: any caller is accepted).
    pub api_key: Option<Secret>,
    pub workers: usize,
    /// `IMMILINK_NIA_ACCOUNT_REVIEW`: how account reviews are decided at start, `approve` (default) or
    /// `reject`.
    pub account_review: ReviewPolicy,
    /// `IMMILINK_NIA_ADMIN_KEY`: the key the test harness presents (`x-nia-admin-key`) to change the
    /// review policy at runtime. None: the admin endpoints are disabled.
    pub admin_key: Option<Secret>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::string_or("NIA_MOCK_ADDR", "127.0.0.1:8085"),
            api_key: config::var("NIA_API_KEY").map(Secret::new),
            workers: config::parse_or("WORKERS", 2)?,
            account_review: config::parse_or("NIA_ACCOUNT_REVIEW", ReviewPolicy::Approve)?,
            admin_key: config::var("NIA_ADMIN_KEY").map(Secret::new),
        })
    }
}

pub struct State {
    pub clock: SharedClock,
    pub api_key: Option<Secret>,
    pub admin_key: Option<Secret>,
    /// The account review policy in force; the admin endpoint changes it.
    review: RwLock<ReviewSetting>,
}

impl State {
    pub fn new(clock: SharedClock, settings: &Settings) -> Self {
        Self {
            clock,
            api_key: settings.api_key.clone(),
            admin_key: settings.admin_key.clone(),
            review: RwLock::new(ReviewSetting { decision: settings.account_review, reason: None }),
        }
    }

    pub fn review_setting(&self) -> ReviewSetting {
        self.review.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn set_review_setting(&self, setting: ReviewSetting) {
        *self.review.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = setting;
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "nia-mock", description = "Stand-in for the immigration agency's cloud query service."),
    tags((name = "queries"), (name = "reviews"), (name = "health"))
)]
struct ApiDoc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

const ROUTES: Routes = Routes {
    service: SERVICE,
    doc: ApiDoc::openapi,
    public: routes::configure,
    internal: routes::configure_admin,
    serve_document: true,
};

pub struct Application;

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let state = web::Data::new(State::new(clock, &settings));
        Ok(serve(&settings.addr, settings.workers, ROUTES, move |cfg| {
            cfg.app_data(state.clone());
        })?)
    }
}
