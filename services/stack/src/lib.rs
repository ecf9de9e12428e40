//! Runs the whole immilink stack in one process: `cargo run --release` for a single machine (embedded
//! SQLite under ./data, demo data, throwaway secrets), and the same code spawns the stack on free ports
//! in the end-to-end tests. In Kubernetes each service runs as its own binary instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use anyhow::Context;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, NamedSecrets, Secret, ServiceSecrets, ServiceSettings};
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
            ("audit", &mut stack.audit.service),
            ("vendors", &mut stack.vendors.service),
        ] {
            if config::var(&format!("{}_DATABASE_URL", service.to_ascii_uppercase())).is_none() {
                settings.database = DbSettings::new(sqlite_url(&data_dir, service));
            }
        }
        if config::var("SIGNING_KEY_FILE").is_none() {
            stack.identity.signing_key_file = data_dir.join("keys/identity-ed25519.pk8");
        }
        if config::var("AUDIT_LOG_KEY_FILE").is_none() {
            stack.audit.log.key_file = data_dir.join("keys/audit-log.key");
        }
        stack.audit.log.generate_key = true;
        stack.nia.witness = Some(nia_mock::witness::WitnessSettings {
            name: config::string_or("NIA_WITNESS_NAME", "nia.witness.local/immilink"),
            key_file: data_dir.join("keys/nia-witness.key"),
            generate_key: true,
            logs: Vec::new(),
            state_file: Some(data_dir.join("nia-witness-state.json")),
        });
        stack.nia.api_key = Some(nia_key.clone());
        stack.identity.nia_api_key = Some(nia_key.clone());
        stack.broker.nia_api_key = Some(nia_key);
        if stack.broker.nia_agency_keys.is_empty() {
            stack.broker.nia_agency_keys = demo_agency_keys();
        }
        stack.nia.agency_keys = stack.broker.nia_agency_keys.clone();
        Ok(stack)
    }

    /// For tests: every service on a free port, the given database URLs (identity, broker, audit,
    /// vendors), the signing key in `key_dir`, one worker each.
    pub fn for_tests(database_urls: [&str; 4], key_dir: &Path) -> Self {
        let secrets = StackSecrets::generate(Secret::generate());
        let nia_key = Secret::generate();
        let agency_keys = demo_agency_keys();
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
                audit_url: unwired.clone(),
                nia_url: unwired.clone(),
                nia_api_key: Some(nia_key.clone()),
                nia_tls: Default::default(),
                smtp_url: None,
                smtp_ca_file: None,
                smtp_from: "immilink <no-reply@immilink.invalid>".into(),
                login_concurrency: 1,
                background_interval: std::time::Duration::from_millis(200),
                service_credentials: secrets.credentials(),
                // Tests that need the link sweep turn it on (`adjust`) or call it directly.
                link_sweep_interval: None,
            },
            broker: broker::Settings {
                nia_api_key: None,
                nia_agency_keys: agency_keys.clone(),
                upstream_timeout: std::time::Duration::from_secs(5),
                ..broker::Settings::local(local("broker", database_urls[1]))
            },
            audit: audit::Settings {
                service: local("audit", database_urls[2]),
                log: audit::LogSettings::local(key_dir),
            },
            vendors: vendors::Settings {
                service: local("vendors", database_urls[3]),
                audit_url: unwired.clone(),
                rules: vendors::VendorRules::default(),
                // Tests that need the vendors sweep call it directly.
                sweep_interval: None,
            },
            nia: nia_mock::Settings {
                api_key: Some(nia_key),
                admin_key: Some(Secret::generate()),
                agency_keys: agency_keys.clone(),
                witness: Some(nia_mock::witness::WitnessSettings {
                    name: "nia.witness.local/immilink".into(),
                    key_file: key_dir.join("nia-witness.key"),
                    generate_key: true,
                    logs: Vec::new(),
                    state_file: None,
                }),
                ..nia_mock::Settings::local()
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
                trusted_proxies: Default::default(),
                cors_allowed_origins: Vec::new(),
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
        NamedSecrets(self.services.iter().map(|(service, secret)| ((*service).to_owned(), secret.clone())).collect())
    }
}

/// A fresh query credential for each demo agency with a link, shared by the broker and nia-mock.
fn demo_agency_keys() -> NamedSecrets {
    NamedSecrets(["TPE-SW", "HLN-HR"].into_iter().map(|agency| (agency.to_owned(), Secret::generate())).collect())
}

fn sqlite_url(data_dir: &Path, service: &str) -> String {
    format!("sqlite://{}", data_dir.join(format!("{service}.db")).display())
}

/// Introduces the audit log and its witness (nia-mock) to each other: the witness learns the log's
/// verifier key, and the witness's key is returned for the log to trust. Both keys are read from
/// (or generated into) their key files first. Nothing to do when nia-mock plays no witness.
fn introduce_witness(nia: &mut nia_mock::Settings, audit: &audit::Settings) -> anyhow::Result<Option<String>> {
    let Some(witness) = nia.witness.as_mut() else { return Ok(None) };
    let log_keys = audit.log.keys().context("the audit log key")?;
    if !witness.logs.iter().any(|key| key == log_keys.verifier_key()) {
        witness.logs.push(log_keys.verifier_key().to_owned());
    }
    let witness_key = immilink_shared::transparency::load_or_generate_key(&witness.key_file, witness.generate_key)?;
    Ok(Some(immilink_shared::transparency::Cosigner::new(&witness.name, witness_key, 0).verifier_key()))
}

/// The running stack: where each service listens, and the handles to stop them.
pub struct RunningStack {
    pub gateway_url: String,
    pub identity_url: String,
    pub broker_url: String,
    pub audit_url: String,
    pub vendors_url: String,
    pub nia_url: String,
    services: Vec<Launched>,
    restartable: Restartable,
}

/// One running service.
struct Launched {
    name: &'static str,
    handle: ServerHandle,
    tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
}

/// What it takes to start a service again on its port (the fault tests stop them).
struct Restartable {
    identity: identity::Settings,
    vendors: vendors::Settings,
    broker: broker::Settings,
    audit: audit::Settings,
    clock: SharedClock,
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn launch(services: &mut Vec<Launched>, name: &'static str, running: immilink_shared::server::Running) -> String {
    services.push(Launched { name, handle: running.server.handle(), tasks: running.tasks });
    actix_web::rt::spawn(running.server);
    url(running.port)
}

/// Starts every service, identity first (the others need its address), the gateway last.
pub async fn start(mut config: StackConfig, clock: SharedClock) -> anyhow::Result<RunningStack> {
    let mut services = Vec::new();
    // Identity's address is needed by the others only when they verify a token, and identity needs
    // vendors and nia-mock only when an application is reviewed: bind identity's port first.
    let identity_listener = immilink_shared::server::bind(&config.identity.service.addr)?;
    let identity_url = url(identity_listener.1);
    // Identity and vendors relay their audit events to audit, which starts after them (it verifies
    // tokens with identity): reserve audit's port first too.
    let audit_listener = immilink_shared::server::bind(&config.audit.service.addr)?;
    let audit_url = url(audit_listener.1);
    config.identity.audit_url = audit_url.clone();
    config.vendors.audit_url = audit_url.clone();
    config.vendors.service.identity_url = identity_url.clone();
    let vendors =
        vendors::Application::build(config.vendors.clone(), Arc::clone(&clock)).await.context("starting vendors")?;
    config.vendors.service.addr = format!("127.0.0.1:{}", vendors.port);
    let vendors_url = launch(&mut services, "vendors", vendors);
    let witness_keys = introduce_witness(&mut config.nia, &config.audit)?;
    let nia_over_tls = config.nia.tls.is_some();
    let nia = nia_mock::Application::build(config.nia, Arc::clone(&clock)).await.context("starting nia-mock")?;
    let mut nia_url = launch(&mut services, "nia-mock", nia);
    if nia_over_tls {
        nia_url = nia_url.replacen("http://", "https://", 1);
    }
    if let Some(witness_key) = witness_keys {
        config.audit.log.witness_url = Some(nia_url.clone());
        config.audit.log.witness_keys = vec![witness_key];
    }
    config.identity.vendors_url = vendors_url.clone();
    config.identity.nia_url = nia_url.clone();
    config.identity.service.addr = format!("127.0.0.1:{}", identity_listener.1);
    drop(identity_listener);
    let identity =
        identity::Application::build(config.identity.clone(), Arc::clone(&clock)).await.context("starting identity")?;
    launch(&mut services, "identity", identity);
    config.audit.service.identity_url = identity_url.clone();
    config.audit.service.addr = format!("127.0.0.1:{}", audit_listener.1);
    drop(audit_listener);
    let audit = audit::Application::build(config.audit.clone(), Arc::clone(&clock)).await.context("starting audit")?;
    config.audit.service.addr = format!("127.0.0.1:{}", audit.port);
    launch(&mut services, "audit", audit);
    config.broker.service.identity_url = identity_url.clone();
    config.broker.audit_url = audit_url.clone();
    config.broker.nia_url = config.upstream_override.clone().unwrap_or_else(|| nia_url.clone());
    let broker =
        broker::Application::build(config.broker.clone(), Arc::clone(&clock)).await.context("starting broker")?;
    config.broker.service.addr = format!("127.0.0.1:{}", broker.port);
    let broker_url = launch(&mut services, "broker", broker);
    config.gateway.identity_url = identity_url.clone();
    config.gateway.broker_url = broker_url.clone();
    config.gateway.audit_url = audit_url.clone();
    config.gateway.vendors_url = vendors_url.clone();
    let gateway = gateway::Application::build(config.gateway).await.context("starting gateway")?;
    let gateway_url = launch(&mut services, "gateway", gateway);
    let restartable = Restartable {
        identity: config.identity,
        vendors: config.vendors,
        broker: config.broker,
        audit: config.audit,
        clock,
    };
    Ok(RunningStack { gateway_url, identity_url, broker_url, audit_url, vendors_url, nia_url, services, restartable })
}

impl RunningStack {
    /// Stops every service gracefully (in-flight requests finish).
    /// Background work stops first (the outbox keeps what it had not delivered), so nothing is left
    /// calling a service that is already gone.
    pub async fn stop(self) {
        let services = self.services;
        for service in &services {
            service.tasks.iter().for_each(|task| task.abort());
        }
        for service in services.into_iter().rev() {
            service.handle.stop(true).await;
        }
    }

    /// Stops one service at once, as a crash would: its background work is dropped and requests in
    /// flight are cut off. For the fault tests.
    pub async fn kill(&mut self, name: &str) {
        let Some(index) = self.services.iter().position(|service| service.name == name) else {
            return;
        };
        let service = self.services.swap_remove(index);
        service.tasks.iter().for_each(|task| task.abort());
        service.handle.stop(false).await;
    }

    /// Starts a killed `identity`, `vendors`, `broker` or `audit` again on its own port, database
    /// and settings.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let clock = Arc::clone(&self.restartable.clock);
        let (name, running) = match name {
            "identity" => ("identity", identity::Application::build(self.restartable.identity.clone(), clock).await?),
            "vendors" => ("vendors", vendors::Application::build(self.restartable.vendors.clone(), clock).await?),
            "broker" => ("broker", broker::Application::build(self.restartable.broker.clone(), clock).await?),
            "audit" => ("audit", audit::Application::build(self.restartable.audit.clone(), clock).await?),
            other => anyhow::bail!("{other} cannot be restarted by the test stack"),
        };
        launch(&mut self.services, name, running);
        Ok(())
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

    /// compliance/rules.json is what the SPEC, the code and the tests generate (R-GOV-01): every SPEC
    /// rule is listed with the operations that declare it (`x-immilink-rules` on their `utoipa::path`)
    /// and the tests that carry its id, and fails the build when a rule has no test, when code or a
    /// test names a rule the SPEC lacks, when the committed matrix lists a test that no longer exists,
    /// or when the committed matrix differs from the generated one. `IMMILINK_UPDATE_COMPLIANCE=1`
    /// rewrites the file.
    #[test]
    fn r_gov_01_the_committed_compliance_matrix_is_generated_from_spec_code_and_tests() {
        use immilink_shared::compliance;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let spec_path = root.join("../shared/SPEC.md");
        let spec = std::fs::read_to_string(&spec_path).unwrap_or_else(|err| panic!("{}: {err}", spec_path.display()));
        let spec = compliance::spec_rules(&spec);
        assert!(spec.len() > 50, "SPEC.md lists {} rules", spec.len());
        let openapi = serde_json::to_value(super::merged_openapi()).expect("the merged document serialises");
        let found = compliance::find_tests(&root).expect("the source tree reads");
        let generated = compliance::generate(&spec, &compliance::declared_endpoints(&openapi), &found)
            .unwrap_or_else(|errors| panic!("the compliance matrix cannot be generated:\n{}", errors.join("\n")));

        let path = root.join("compliance/rules.json");
        let text = compliance::render(&generated);
        if std::env::var("IMMILINK_UPDATE_COMPLIANCE").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &text).expect("compliance/rules.json is writable");
            return;
        }
        let committed: compliance::ComplianceMatrix =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
                .unwrap_or_else(|err| panic!("compliance/rules.json does not parse: {err}"));
        let missing = compliance::missing_tests(&committed, &found);
        assert!(missing.is_empty(), "compliance/rules.json lists tests the source does not hold: {missing:?}");
        assert!(
            committed == generated,
            "compliance/rules.json differs from the code; regenerate with `IMMILINK_UPDATE_COMPLIANCE=1 cargo test -p immilink-stack compliance`"
        );
        assert_eq!(&committed, compliance::committed(), "the binaries carry the committed matrix");
    }

    /// Every documented operation is reachable through the gateway, and to the service that serves
    /// it (a new resource that the routing table forgot would be unreachable for clients).
    #[test]
    fn the_gateway_routes_every_documented_operation_to_its_service() {
        use super::gateway::routing::{route, Backend};
        let services = [
            (Backend::Identity, super::identity::openapi()),
            (Backend::Broker, super::broker::openapi()),
            (Backend::Audit, super::audit::openapi()),
            (Backend::Vendors, super::vendors::openapi()),
        ];
        for (backend, doc) in services {
            let doc = serde_json::to_value(doc).unwrap();
            for (path, item) in doc["paths"].as_object().unwrap() {
                if ["/healthz", "/readyz", "/openapi.json"].contains(&path.as_str()) {
                    continue;
                }
                let concrete = path.replace('{', "x").replace('}', "");
                for method in item.as_object().unwrap().keys() {
                    let routed = route(&method.to_uppercase(), &concrete).map(|r| r.backend);
                    assert_eq!(routed, Some(backend), "{method} {path}");
                }
            }
        }
    }

    /// nia-mock approves, by default, exactly what identity's demo links approve: every demo
    /// agency's query types (TPE-SW all eight, seed 001 pt 3(2)), so a demo lookup identity permits is
    /// never refused upstream as an item the agency lacks.
    #[test]
    fn the_upstream_approves_the_demo_links_items() {
        let upstream = super::nia_mock::AgencyItems::demo();
        for agency in super::identity::domain::demo::agency_codes() {
            let linked = super::identity::domain::demo::linked_query_types(agency);
            let approved = upstream.approved(agency).unwrap_or_default();
            assert_eq!(approved, linked, "{agency}");
        }
        assert_eq!(upstream.approved("TPE-SW").map(<[_]>::len), Some(8));
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
