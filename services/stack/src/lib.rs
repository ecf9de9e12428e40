//! Runs the whole immilink stack in one process: `cargo run --release` for a single machine (embedded
//! SQLite under ./data, demo data, throwaway secrets), and the same code spawns the stack on free ports
//! in the end-to-end tests. In Kubernetes each service runs as its own binary instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::Context;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, Secret, ServiceSecrets, ServiceSettings};
use immilink_shared::db::DbSettings;

pub use immilink_audit as audit;
pub use immilink_broker as broker;
pub use immilink_gateway as gateway;
pub use immilink_identity as identity;
pub use immilink_nia_mock as nia_mock;
pub use immilink_vendors as vendors;

/// Settings of every service, wired together by [`start`].
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub identity: identity::Settings,
    pub broker: broker::Settings,
    pub audit: audit::Settings,
    pub vendors: vendors::Settings,
    pub nia: nia_mock::Settings,
    pub gateway: gateway::Settings,
    /// Send the broker's upstream calls here instead of the stack's nia-mock (tests put a probe there).
    pub upstream_override: Option<String>,
}

impl StackConfig {
    /// The embedded mode: every service on its own loopback port with its own SQLite file under
    /// `IMMILINK_DATA_DIR` (default `./data`) unless its `IMMILINK_<SERVICE>_DATABASE_URL` says
    /// otherwise; a service secret per service, one metrics token and one upstream API key generated
    /// for this run (the metrics token and the API key may be given).
    pub fn from_env() -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(config::string_or("DATA_DIR", "./data"));
        let metrics = config::var("METRICS_TOKEN").map(Secret::new).unwrap_or_else(Secret::generate);
        let secrets = StackSecrets::generate(metrics);
        let nia_key = config::var("NIA_API_KEY").map(Secret::new).unwrap_or_else(Secret::generate);
        let mut stack = Self {
            identity: identity::Settings::from_env_with(Some((secrets.of("identity"), secrets.credentials())))?,
            broker: broker::Settings::from_env_with(Some(secrets.of("broker")))?,
            audit: audit::settings_from_env(Some(secrets.of("audit")))?,
            vendors: vendors::settings_from_env(Some(secrets.of("vendors")))?,
            nia: nia_mock::Settings::from_env()?,
            gateway: gateway::Settings::from_env_with(Some(secrets.of("gateway")))?,
            upstream_override: None,
        };
        for (service, settings) in [
            ("identity", &mut stack.identity.service),
            ("broker", &mut stack.broker.service),
            ("audit", &mut stack.audit),
            ("vendors", &mut stack.vendors),
        ] {
            if config::var(&format!("{}_DATABASE_URL", service.to_ascii_uppercase())).is_none() {
                settings.database = DbSettings::new(sqlite_url(&data_dir, service));
            }
        }
        if config::var("SIGNING_KEY_FILE").is_none() {
            stack.identity.signing_key_file = data_dir.join("keys/identity-ed25519.pk8");
        }
        stack.nia.api_key = Some(nia_key.clone());
        stack.identity.nia_api_key = Some(nia_key.clone());
        stack.broker.nia_api_key = Some(nia_key);
        Ok(stack)
    }

    /// For tests: every service on a free port, the given database URLs (identity, broker, audit,
    /// vendors), the signing key in `key_dir`, one worker each.
    pub fn for_tests(database_urls: [&str; 4], key_dir: &Path) -> Self {
        let secrets = StackSecrets::generate(Secret::generate());
        let nia_key = Secret::generate();
        let local = |service: &str, url: &str| ServiceSettings::local(service, url, secrets.of(service));
        let unwired = "http://127.0.0.1:0".to_owned();
        Self {
            identity: identity::Settings {
                service: local("identity", database_urls[0]),
                signing_key_file: key_dir.join("signing.pk8"),
                generate_signing_key: true,
                demo: true,
                token_ttl: chrono::Duration::minutes(15),
                idle_timeout: chrono::Duration::minutes(15),
                previous_signing_key_files: Vec::new(),
                vendors_url: unwired.clone(),
                nia_url: unwired.clone(),
                nia_api_key: Some(nia_key.clone()),
                smtp_url: None,
                smtp_from: "immilink <no-reply@immilink.invalid>".into(),
                login_concurrency: 1,
                background_interval: std::time::Duration::from_millis(200),
                service_credentials: secrets.credentials(),
            },
            broker: broker::Settings {
                service: local("broker", database_urls[1]),
                audit_url: unwired.clone(),
                nia_url: unwired.clone(),
                nia_api_key: Some(nia_key.clone()),
                upstream_timeout: std::time::Duration::from_secs(5),
            },
            audit: local("audit", database_urls[2]),
            vendors: local("vendors", database_urls[3]),
            nia: nia_mock::Settings {
                addr: "127.0.0.1:0".into(),
                api_key: Some(nia_key),
                workers: 1,
                account_review: nia_mock::ReviewPolicy::Approve,
                admin_key: Some(Secret::generate()),
            },
            gateway: gateway::Settings {
                addr: "127.0.0.1:0".into(),
                identity_url: unwired.clone(),
                broker_url: unwired.clone(),
                audit_url: unwired.clone(),
                vendors_url: unwired,
                service_secret: secrets.of("gateway").service,
                metrics_token: secrets.of("gateway").metrics,
                session_cache: std::time::Duration::from_millis(500),
                workers: 1,
            },
            upstream_override: None,
        }
    }
}

/// The secrets the launcher generates for one run: a service secret per service (identity learns
/// them all as its service credentials) and one metrics token for every service.
struct StackSecrets {
    metrics: Secret,
    services: std::collections::BTreeMap<&'static str, Secret>,
}

/// The services that call others and so hold a service credential.
const CALLERS: [&str; 4] = ["gateway", "broker", "audit", "vendors"];

impl StackSecrets {
    fn generate(metrics: Secret) -> Self {
        Self { metrics, services: CALLERS.into_iter().map(|service| (service, Secret::generate())).collect() }
    }

    fn of(&self, service: &str) -> ServiceSecrets {
        ServiceSecrets {
            service: self.services.get(service).cloned().unwrap_or_else(Secret::generate),
            metrics: Some(self.metrics.clone()),
        }
    }

    fn credentials(&self) -> identity::ServiceCredentials {
        immilink_shared::config::NamedSecrets(
            self.services.iter().map(|(service, secret)| ((*service).to_owned(), secret.clone())).collect(),
        )
    }
}

fn sqlite_url(data_dir: &Path, service: &str) -> String {
    format!("sqlite://{}", data_dir.join(format!("{service}.db")).display())
}

/// The running stack: where each service listens, and the handles to stop them.
pub struct RunningStack {
    pub gateway_url: String,
    pub identity_url: String,
    pub broker_url: String,
    pub audit_url: String,
    pub vendors_url: String,
    pub nia_url: String,
    handles: Vec<ServerHandle>,
    tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Starts every service, identity first (the others need its address), the gateway last.
pub async fn start(mut config: StackConfig, clock: SharedClock) -> anyhow::Result<RunningStack> {
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    let mut launch = |running: immilink_shared::http::Running| {
        handles.push(running.server.handle());
        tasks.extend(running.tasks);
        actix_web::rt::spawn(running.server);
        url(running.port)
    };
    // Identity's address is needed by the others only when they verify a token, and identity needs
    // vendors and nia-mock only when an application is reviewed: bind identity's port first.
    let identity_listener = immilink_shared::http::bind(&config.identity.service.addr)?;
    let identity_url = url(identity_listener.1);
    config.vendors.identity_url = identity_url.clone();
    let vendors_url =
        launch(vendors::Application::build(config.vendors, Arc::clone(&clock)).await.context("starting vendors")?);
    let nia_url =
        launch(nia_mock::Application::build(config.nia, Arc::clone(&clock)).await.context("starting nia-mock")?);
    config.identity.vendors_url = vendors_url.clone();
    config.identity.nia_url = nia_url.clone();
    config.identity.service.addr = format!("127.0.0.1:{}", identity_listener.1);
    drop(identity_listener);
    launch(identity::Application::build(config.identity, Arc::clone(&clock)).await.context("starting identity")?);
    config.audit.identity_url = identity_url.clone();
    let audit_url =
        launch(audit::Application::build(config.audit, Arc::clone(&clock)).await.context("starting audit")?);
    config.broker.service.identity_url = identity_url.clone();
    config.broker.audit_url = audit_url.clone();
    config.broker.nia_url = config.upstream_override.clone().unwrap_or_else(|| nia_url.clone());
    let broker_url =
        launch(broker::Application::build(config.broker, Arc::clone(&clock)).await.context("starting broker")?);
    config.gateway.identity_url = identity_url.clone();
    config.gateway.broker_url = broker_url.clone();
    config.gateway.audit_url = audit_url.clone();
    config.gateway.vendors_url = vendors_url.clone();
    let gateway_url = launch(gateway::Application::build(config.gateway).await.context("starting gateway")?);
    Ok(RunningStack { gateway_url, identity_url, broker_url, audit_url, vendors_url, nia_url, handles, tasks })
}

impl RunningStack {
    /// Stops every service gracefully (in-flight requests finish).
    /// Background work stops first (the outbox keeps what it had not delivered), so nothing is left
    /// calling a service that is already gone.
    pub async fn stop(self) {
        immilink_shared::http::Running::abort_tasks(self.tasks);
        for handle in self.handles.into_iter().rev() {
            handle.stop(true).await;
        }
    }
}

/// The merged public document, as the gateway serves it: the gateway's paths, then each service's.
pub fn merged_openapi() -> utoipa::openapi::OpenApi {
    immilink_shared::openapi::merge(
        gateway::own_openapi(),
        [identity::openapi(), broker::openapi(), audit::openapi(), vendors::openapi()],
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use immilink_shared::openapi::check_committed;

    fn committed(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi").join(name)
    }

    /// openapi/*.json must equal what the code generates; CI fails on drift.
    #[test]
    fn openapi_documents_match_the_committed_files() {
        let documents = [
            ("immilink.json", super::merged_openapi()),
            ("identity.json", super::identity::openapi()),
            ("broker.json", super::broker::openapi()),
            ("audit.json", super::audit::openapi()),
            ("vendors.json", super::vendors::openapi()),
            ("nia-mock.json", super::nia_mock::openapi()),
        ];
        let drift: Vec<String> =
            documents.iter().filter_map(|(name, doc)| check_committed(&committed(name), doc).err()).collect();
        assert!(drift.is_empty(), "{}", drift.join("\n"));
    }

    #[test]
    fn merged_document_has_every_public_path_and_no_internal_one() {
        let doc = super::merged_openapi();
        for path in ["/v1/auth/login", "/v1/auth/logout", "/v1/me", "/v1/lookups", "/v1/audit/verify", "/v1/vendors"] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
        assert!(doc.paths.paths.keys().all(|p| !p.starts_with("/internal")));
    }
}
