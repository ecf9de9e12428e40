//! nia-mock: a stand-in for the immigration agency's cloud query service (雲端資料查詢及交換服務).
//! It is outside immilink's trust boundary: the broker treats it as a remote system, reaches it only
//! over HTTP with the agency's API key, and never trusts its answers' shape beyond what it minimises.
//!
//! Provided so far: `entry_exit_last_year`. The other query types answer 501 until the broker issue
//! adds them.

mod routes;
pub mod synthetic;

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret};
use immilink_shared::http::{serve, Routes, Running};
use utoipa::OpenApi;

pub const SERVICE: &str = "nia-mock";

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_NIA_MOCK_ADDR`, default `127.0.0.1:8085`.
    pub addr: String,
    /// `IMMILINK_NIA_API_KEY`: the key callers must present (none: any caller is accepted).
    pub api_key: Option<Secret>,
    pub workers: usize,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::string_or("NIA_MOCK_ADDR", "127.0.0.1:8085"),
            api_key: config::var("NIA_API_KEY").map(Secret::new),
            workers: config::parse_or("WORKERS", 2)?,
        })
    }
}

pub struct State {
    pub clock: SharedClock,
    pub api_key: Option<Secret>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "nia-mock", description = "Stand-in for the immigration agency's cloud query service."),
    tags((name = "queries"), (name = "health"))
)]
struct ApiDoc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

const ROUTES: Routes = Routes {
    service: SERVICE,
    doc: ApiDoc::openapi,
    public: routes::configure,
    internal: immilink_shared::http::no_internal_routes,
    serve_document: true,
};

pub struct Application;

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let state = web::Data::new(State { clock, api_key: settings.api_key });
        Ok(serve(&settings.addr, settings.workers, ROUTES, move |cfg| {
            cfg.app_data(state.clone());
        })?)
    }
}
