//! immilink identity: agencies, units, users and roles; login (password + bound certificate serial +
//! bound IP), sessions and their liveness, access tokens and the JWKS that verifies them.
//!
//! Entry points: [`Application::build`] (the HTTP service), [`openapi`] (its generated document),
//! [`domain`] (the rules, callable without HTTP).

pub mod domain;
pub mod keys;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;
mod tokens;

use std::path::PathBuf;

use actix_web::web;
use chrono::Duration;
use immilink_shared::auth::{InternalToken, TokenVerifier};
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::http::{serve, Routes, Running};
use immilink_shared::openapi::BearerSecurity;
use utoipa::OpenApi;

pub use keys::SigningKeys;

pub const SERVICE: &str = "identity";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/identity/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/identity/sqlite"),
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_IDENTITY_ADDR` (default `127.0.0.1:8081`), `IMMILINK_IDENTITY_DATABASE_URL`, …
    pub service: ServiceSettings,
    /// `IMMILINK_SIGNING_KEY_FILE`, default `./data/keys/identity-ed25519.pk8`.
    pub signing_key_file: PathBuf,
    /// Generate the signing key when the file is missing: only in the embedded (SQLite) mode.
    pub generate_signing_key: bool,
    /// `IMMILINK_DEMO`: seed the demo agencies and users (default: on in the embedded mode only).
    pub demo: bool,
    /// `IMMILINK_TOKEN_TTL_SECONDS`, default 900.
    pub token_ttl: Duration,
    /// `IMMILINK_IDLE_TIMEOUT_SECONDS`, default 900 (R-ACC-10).
    pub idle_timeout: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(None)
    }

    /// As [`Settings::from_env`], with the internal token given by the launcher.
    pub fn from_env_with(internal_token: Option<Secret>) -> Result<Self, ConfigError> {
        let service = ServiceSettings::from_env(SERVICE, 8081, internal_token)?;
        let embedded = service.is_embedded();
        Ok(Self {
            signing_key_file: config::string_or("SIGNING_KEY_FILE", "./data/keys/identity-ed25519.pk8").into(),
            generate_signing_key: embedded,
            demo: config::flag_or("DEMO", embedded)?,
            token_ttl: Duration::seconds(config::parse_or("TOKEN_TTL_SECONDS", 900)?),
            idle_timeout: Duration::seconds(config::parse_or("IDLE_TIMEOUT_SECONDS", 900)?),
            service,
        })
    }
}

/// Everything the handlers share.
pub struct State {
    pub db: Db,
    pub keys: SigningKeys,
    pub clock: SharedClock,
    pub token_ttl: Duration,
    pub idle_timeout: Duration,
    pub internal_token: Secret,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink identity", description = "Accounts, login, sessions and token keys."),
    modifiers(&BearerSecurity),
    tags((name = "sessions", description = "Login, logout and the caller"), (name = "health"))
)]
struct ApiDoc;

/// The generated OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

const ROUTES: Routes = Routes {
    service: SERVICE,
    doc: ApiDoc::openapi,
    public: routes::configure,
    internal: routes::configure_internal,
    serve_document: true,
};

pub struct Application;

impl Application {
    /// Connects and migrates the database, seeds demo data if asked, loads the signing key and binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
        if settings.demo {
            let now = clock.now();
            let created = db.run(move |conn| domain::demo::seed(conn, now)).await?;
            if created > 0 {
                tracing::info!(created, "seeded demo agencies and users");
            }
        }
        let keys = SigningKeys::load(&settings.signing_key_file, settings.generate_signing_key)?;
        let verifier = TokenVerifier::from_jwks(&keys.jwks())?;
        let state = web::Data::new(State {
            db: db.clone(),
            keys,
            clock,
            token_ttl: settings.token_ttl,
            idle_timeout: settings.idle_timeout,
            internal_token: settings.service.internal_token.clone(),
        });
        let verifier = web::Data::new(verifier);
        let internal = web::Data::new(InternalToken(settings.service.internal_token));
        let db = web::Data::new(db);
        Ok(serve(&settings.service.addr, settings.service.workers, ROUTES, move |cfg| {
            cfg.app_data(state.clone()).app_data(db.clone()).app_data(verifier.clone()).app_data(internal.clone());
        })?)
    }
}
