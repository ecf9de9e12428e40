//! immilink vendors: contractors and (in later issues) their contracts, personnel, agreements, devices
//! and incidents (R-VEN).
//!

pub mod domain;
mod routes;
pub mod schema;

use actix_web::web;
use immilink_shared::auth::{InternalToken, TokenVerifier};
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret};
use immilink_shared::db::{Db, DbSettings, Migrations};
use immilink_shared::http::{serve, Routes, Running};
use immilink_shared::openapi::BearerSecurity;
use utoipa::OpenApi;

pub const SERVICE: &str = "vendors";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/vendors/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/vendors/sqlite"),
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_VENDORS_ADDR`, default `127.0.0.1:8084`.
    pub addr: String,
    /// `IMMILINK_VENDORS_DATABASE_URL`, default `sqlite://./data/vendors.db`.
    pub database: DbSettings,
    /// `IMMILINK_IDENTITY_URL`: where the token keys come from.
    pub identity_url: String,
    pub internal_token: Secret,
    pub workers: usize,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(None)
    }

    /// As [`Settings::from_env`], with the internal token given by the launcher.
    pub fn from_env_with(internal_token: Option<Secret>) -> Result<Self, ConfigError> {
        let url = config::string_or("VENDORS_DATABASE_URL", "sqlite://./data/vendors.db");
        let embedded = url.starts_with("sqlite:");
        Ok(Self {
            addr: config::string_or("VENDORS_ADDR", "127.0.0.1:8084"),
            database: DbSettings::new(url),
            identity_url: config::string_or("IDENTITY_URL", "http://127.0.0.1:8081"),
            internal_token: match internal_token {
                Some(token) => token,
                None => config::internal_token(embedded)?,
            },
            workers: config::parse_or("WORKERS", 2)?,
        })
    }
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink vendors", description = "Contractors and their personnel."),
    modifiers(&BearerSecurity),
    tags((name = "vendors", description = "Contractor registration"), (name = "health"))
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
        let db_settings = settings.database.clone();
        let db = web::block(move || Db::connect(&db_settings, &MIGRATIONS)).await??;
        let http = reqwest::Client::new();
        let verifier = web::Data::new(TokenVerifier::remote(
            format!("{}/.well-known/jwks.json", settings.identity_url.trim_end_matches('/')),
            http,
        ));
        let state = web::Data::new(State { db, clock });
        let internal = web::Data::new(InternalToken(settings.internal_token));
        Ok(serve(&settings.addr, settings.workers, ROUTES, move |cfg| {
            cfg.app_data(state.clone()).app_data(verifier.clone()).app_data(internal.clone());
        })?)
    }
}
