//! nia-mock: a stand-in for the immigration agency's cloud query service (雲端資料查詢及交換服務).
//! It is outside immilink's trust boundary: the broker treats it as a remote system, reaches it only
//! over HTTP with the agency's API key, and never trusts its answers' shape beyond what it minimises.
//!
//! It answers the eight query types (R-QRY-03) with deterministic synthetic data that carries more than
//! any agency is approved to see, checks each agency's credential (`x-nia-agency`, `x-nia-api-key`) and
//! approved items on every call, and can be made slow, failing, overloaded or absent at runtime. Account
//! reviews (R-ACC-01's last step) are decided by a policy the test harness can change. The harness's
//! admin endpoints (`IMMILINK_NIA_ADMIN_KEY`) also set the faults and read the call log.

pub mod agencies;
pub mod calls;
pub mod faults;
pub mod photo;
pub mod review;
mod routes;
pub mod synthetic;
#[cfg(test)]
mod tests;
pub mod witness;

use std::sync::RwLock;

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, NamedSecrets, Secret};
use immilink_shared::server::{Routes, Running, Server};
use utoipa::OpenApi;

pub use agencies::AgencyItems;
pub use calls::{CallLog, CallRecord};
pub use faults::{FaultSettings, Faults, RateLimitFault};
pub use review::{AccountReview, ReviewDecision, ReviewPolicy, ReviewSetting};
pub use routes::{ADMIN_KEY_HEADER, AGENCY_HEADER, API_KEY_HEADER, LOOKUP_ID_HEADER};

pub const SERVICE: &str = "nia-mock";

#[derive(Debug, Clone)]
pub struct Settings {
    /// `IMMILINK_NIA_MOCK_ADDR`, default `127.0.0.1:8085`.
    pub addr: String,
    /// `IMMILINK_NIA_API_KEY`: the key identity presents for account reviews (none: any caller is
    /// accepted). Queries use the per-agency keys instead.
    pub api_key: Option<Secret>,
    pub workers: usize,
    /// `IMMILINK_NIA_ACCOUNT_REVIEW`: how account reviews are decided at start, `approve` (default) or
    /// `reject`.
    pub account_review: ReviewPolicy,
    /// `IMMILINK_NIA_ADMIN_KEY`: the key the test harness presents (`x-nia-admin-key`) to change the
    /// review policy and the faults at runtime and to read the call log. None: the admin endpoints are
    /// disabled.
    pub admin_key: Option<Secret>,
    /// `IMMILINK_NIA_AGENCY_KEYS`: each agency's query credential, `AGENCY-CODE:secret,…` (secrets of
    /// at least 32 characters). Empty (standalone development): queries are accepted from anyone.
    pub agency_keys: NamedSecrets,
    /// `IMMILINK_NIA_AGENCY_ITEMS`: the query types each agency is approved for,
    /// `TPE-SW=entry_exit_last_year|foreigner_residence;HLN-HR=…`; default the demo agencies' links.
    pub agency_items: AgencyItems,
    /// `IMMILINK_NIA_FAULTS`: faults in force at start, as JSON (see [`FaultSettings`]); default none.
    pub faults: FaultSettings,
    /// The witness of immilink's audit log; none: the witness endpoints answer 404. Enabled by
    /// `IMMILINK_NIA_WITNESS_KEY_FILE` (see [`witness::WitnessSettings`]).
    pub witness: Option<witness::WitnessSettings>,
    /// `IMMILINK_NIA_MOCK_TLS_CERT_FILE`, `IMMILINK_NIA_MOCK_TLS_KEY_FILE` and
    /// `IMMILINK_NIA_MOCK_TLS_CLIENT_CA_FILE`: serve HTTPS, requiring client certificates that chain
    /// to that CA, as the agency's gateway does; none: plain HTTP.
    pub tls: Option<immilink_shared::tls::ServerTls>,
}

impl Settings {
    /// For tests and launchers: any free loopback port, one worker, no keys, demo approvals, no faults.
    pub fn local() -> Self {
        Self {
            addr: "127.0.0.1:0".into(),
            api_key: None,
            workers: 1,
            account_review: ReviewPolicy::Approve,
            admin_key: None,
            agency_keys: NamedSecrets::default(),
            agency_items: AgencyItems::demo(),
            faults: FaultSettings::default(),
            witness: None,
            tls: None,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config::string_or("NIA_MOCK_ADDR", "127.0.0.1:8085"),
            api_key: config::var("NIA_API_KEY").map(Secret::new),
            workers: config::parse_or("WORKERS", 2)?,
            account_review: config::parse_or("NIA_ACCOUNT_REVIEW", ReviewPolicy::Approve)?,
            admin_key: config::var("NIA_ADMIN_KEY").map(Secret::new),
            agency_keys: NamedSecrets::from_env("NIA_AGENCY_KEYS")?,
            agency_items: config::parse_or("NIA_AGENCY_ITEMS", AgencyItems::demo())?,
            faults: FaultSettings::from_env()?,
            witness: config::var("NIA_WITNESS_KEY_FILE").map(|key_file| witness::WitnessSettings {
                name: config::string_or("NIA_WITNESS_NAME", "nia.witness.local/immilink"),
                key_file: key_file.into(),
                generate_key: false,
                logs: config::var("NIA_WITNESS_LOGS")
                    .map(|logs| logs.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
                state_file: config::var("NIA_WITNESS_STATE_FILE").map(Into::into),
            }),
            tls: immilink_shared::tls::ServerTls::from_env("NIA_MOCK")?,
        })
    }
}

pub struct State {
    pub clock: SharedClock,
    pub api_key: Option<Secret>,
    pub admin_key: Option<Secret>,
    pub agency_keys: NamedSecrets,
    pub agency_items: AgencyItems,
    /// The faults in force; the admin endpoints change them.
    pub faults: Faults,
    pub calls: CallLog,
    /// The audit log's witness, when this mock plays it.
    pub witness: Option<std::sync::Arc<witness::Witness>>,
    /// The account review policy in force; the admin endpoint changes it.
    review: RwLock<ReviewSetting>,
}

impl State {
    pub fn new(clock: SharedClock, settings: &Settings, witness: Option<std::sync::Arc<witness::Witness>>) -> Self {
        Self {
            witness,
            clock,
            api_key: settings.api_key.clone(),
            admin_key: settings.admin_key.clone(),
            agency_keys: settings.agency_keys.clone(),
            agency_items: settings.agency_items.clone(),
            faults: Faults::new(settings.faults.clone()),
            calls: CallLog::default(),
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
        let witness = settings.witness.as_ref().map(witness::Witness::new).transpose()?.map(std::sync::Arc::new);
        let state = web::Data::new(State::new(clock, &settings, witness));
        let mut server = Server::new(&settings.addr, settings.workers, ROUTES).data(state);
        if let Some(tls) = &settings.tls {
            server = server.tls(tls.server_config()?);
        }
        Ok(server.start()?)
    }
}
