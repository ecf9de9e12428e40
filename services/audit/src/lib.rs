//! immilink audit: the append-only, hash-chained audit log (R-AUD-02), with an RFC 6962 Merkle tree
//! over its records. Services deliver events to `/internal/v1/events` (idempotent by event id);
//! authorized roles search records, verify the log and fetch inclusion and consistency proofs.
//!
//! Invariants: records are never updated or deleted (database triggers refuse it on both backends);
//! every append goes through [`domain::chain::append`], which serialises on the chain head and
//! writes the records' Merkle tree hashes in the same transaction.

pub mod documents;
pub mod domain;
pub mod notifier;
mod routes;
pub mod schema;
#[cfg(test)]
mod tests;
pub mod witness;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use immilink_shared::clock::SharedClock;
use immilink_shared::config::{self, ConfigError, ServiceSecrets, ServiceSettings};
use immilink_shared::db::{Db, Migrations};
use immilink_shared::openapi::BearerSecurity;
use immilink_shared::server::{Routes, Running, Service};
use immilink_shared::tls::UpstreamTls;
use utoipa::OpenApi;

pub const SERVICE: &str = "audit";

pub static MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("../../migrations/audit/postgres"),
    sqlite: diesel_migrations::embed_migrations!("../../migrations/audit/sqlite"),
};

/// The common service settings (default port 8083) and the log's.
#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub log: LogSettings,
}

/// The log's identity, its witness and how often it issues checkpoints.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `IMMILINK_AUDIT_LOG_ORIGIN`, default `immilink.local/audit`: the checkpoints' origin line and
    /// the log key's name.
    pub origin: String,
    /// `IMMILINK_AUDIT_LOG_KEY_FILE`: the log's Ed25519 key (its 32-byte seed, base64), a Secret in
    /// Kubernetes; default `./data/keys/audit-log.key`, generated there in the embedded mode.
    pub key_file: PathBuf,
    /// Generate the key file when it does not exist (the embedded mode and tests only).
    pub generate_key: bool,
    /// `IMMILINK_AUDIT_WITNESS_URL`: the witness (the immigration agency); none: checkpoints are
    /// signed but not witnessed.
    pub witness_url: Option<String>,
    /// `IMMILINK_AUDIT_WITNESS_KEYS`: the verifier keys of the witnesses whose cosignatures count,
    /// comma-separated.
    pub witness_keys: Vec<String>,
    /// `IMMILINK_NIA_CA_FILE`, `IMMILINK_NIA_CLIENT_CERT_FILE`, `IMMILINK_NIA_CLIENT_KEY_FILE`: the
    /// witness is the immigration agency, reached with the same TLS as its query service.
    pub witness_tls: UpstreamTls,
    /// `IMMILINK_AUDIT_CHECKPOINT_INTERVAL_SECS`, default 10: how often a checkpoint is issued while
    /// the log grows.
    pub checkpoint_interval: Duration,
    /// `IMMILINK_AUDIT_RETENTION_YEARS`, default 5, refused below 5 (R-AUD-01).
    pub retention: domain::retention::Retention,
    /// `IMMILINK_AUDIT_DISPOSAL_INTERVAL_SECS`, default 86400: how often the disposal job runs in the
    /// service (in Kubernetes a CronJob runs `immilink-audit dispose` instead, and this is 0: off).
    pub disposal_interval: Option<Duration>,
    /// `IMMILINK_AUDIT_OVERSIGHT_INTERVAL_SECS`, default 3600: how often the oversight job runs in
    /// the service (opening last month's review reports from the 1st, flagging overdue reviews and
    /// findings); in Kubernetes a CronJob runs `immilink-audit oversight` instead, and this is 0: off.
    pub oversight_interval: Option<Duration>,
}

impl LogSettings {
    pub fn from_env(embedded: bool) -> Result<Self, ConfigError> {
        let interval: u64 = config::parse_or("AUDIT_CHECKPOINT_INTERVAL_SECS", 10)?;
        if interval == 0 {
            return Err(ConfigError {
                name: "IMMILINK_AUDIT_CHECKPOINT_INTERVAL_SECS".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            origin: config::string_or("AUDIT_LOG_ORIGIN", "immilink.local/audit"),
            key_file: PathBuf::from(config::string_or("AUDIT_LOG_KEY_FILE", "./data/keys/audit-log.key")),
            generate_key: embedded,
            witness_url: config::var("AUDIT_WITNESS_URL"),
            witness_keys: config::var("AUDIT_WITNESS_KEYS")
                .map(|keys| keys.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            witness_tls: UpstreamTls::from_env()?,
            checkpoint_interval: Duration::from_secs(interval),
            retention: Self::retention(config::parse_or("AUDIT_RETENTION_YEARS", domain::retention::MINIMUM_YEARS)?)?,
            disposal_interval: match config::parse_or("AUDIT_DISPOSAL_INTERVAL_SECS", 86_400_u64)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            oversight_interval: match config::parse_or("AUDIT_OVERSIGHT_INTERVAL_SECS", 3_600_u64)? {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        })
    }

    /// The configured retention, refused below five years (R-AUD-01).
    pub fn retention(years: u32) -> Result<domain::retention::Retention, ConfigError> {
        domain::retention::Retention::years(years)
            .map_err(|err| ConfigError { name: "IMMILINK_AUDIT_RETENTION_YEARS".into(), reason: err.to_string() })
    }

    /// For tests: a generated key in `key_dir`, no witness, a checkpoint every second.
    pub fn local(key_dir: &std::path::Path) -> Self {
        Self {
            origin: "immilink.local/audit".into(),
            key_file: key_dir.join("audit-log.key"),
            generate_key: true,
            witness_url: None,
            witness_keys: Vec::new(),
            witness_tls: UpstreamTls::default(),
            checkpoint_interval: Duration::from_secs(1),
            retention: domain::retention::Retention::years(domain::retention::MINIMUM_YEARS)
                .unwrap_or_else(|_| unreachable!("the minimum is allowed")),
            disposal_interval: None,
            oversight_interval: None,
        }
    }

    /// The log's keys: its own from the key file, the witnesses' as configured.
    pub fn keys(&self) -> anyhow::Result<domain::checkpoints::LogKeys> {
        let key = immilink_shared::transparency::load_or_generate_key(&self.key_file, self.generate_key)?;
        Ok(domain::checkpoints::LogKeys::new(&self.origin, &key, self.witness_keys.clone())?)
    }
}

/// `IMMILINK_AUDIT_*` and the common variables; the launcher passes the secrets it generated.
pub fn settings_from_env(secrets: Option<ServiceSecrets>) -> Result<Settings, ConfigError> {
    let service = ServiceSettings::from_env(SERVICE, 8083, secrets)?;
    let embedded = service.database.url.starts_with("sqlite:");
    Ok(Settings { log: LogSettings::from_env(embedded)?, service })
}

pub struct State {
    pub db: Db,
    pub clock: SharedClock,
    pub keys: Arc<domain::checkpoints::LogKeys>,
    pub witness: Option<witness::WitnessClient>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "immilink audit", description = "The hash-chained audit log."),
    modifiers(&BearerSecurity),
    tags((name = "audit", description = "Audit records and chain verification"),
        (name = "oversight", description = "Query record tables, monthly reviews, samples, self-audits, findings, exports and who read a person's data"),
        (name = "compliance", description = "The rules matrix: every SPEC rule, the endpoints that enforce it and the tests that prove it (R-GOV-01)"),
        (name = "health"))
)]
struct ApiDoc;

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
    /// Reads the log's keys, connects and migrates, completes the Merkle tree, starts the
    /// checkpointer, binds.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Running> {
        let keys = Arc::new(settings.log.keys()?);
        let service = Service::open(settings.service, &MIGRATIONS).await?;
        let tree_size = service
            .db
            .run(domain::chain::complete_tree)
            .await
            .map_err(|err: domain::AuditError| anyhow::anyhow!(err))?;
        tracing::info!(tree_size, origin = keys.origin(), "audit log Merkle tree complete");
        let witness = match settings.log.witness_url.as_deref() {
            Some(url) => {
                let http = settings.log.witness_tls.client("AUDIT_WITNESS_URL", url)?;
                Some(witness::WitnessClient::new(http, url, keys.origin()))
            }
            None => None,
        };
        let checkpointer = witness::run_checkpointer(
            service.db.clone(),
            clock.clone(),
            Arc::clone(&keys),
            witness.clone(),
            settings.log.checkpoint_interval,
        );
        let disposal = settings
            .log
            .disposal_interval
            .map(|every| run_disposal(service.db.clone(), clock.clone(), settings.log.retention, every));
        // Notices (findings, overdue reviews) go to identity, which knows who holds the roles.
        let notices = notifier::run_relay(
            service.db.clone(),
            clock.clone(),
            service.http.clone(),
            service.settings.identity_url.clone(),
            Arc::clone(&service.tokens),
        );
        let (service_db, clock_for_oversight) = (service.db.clone(), clock.clone());
        let state = web::Data::new(State { db: service.db.clone(), clock, keys, witness });
        let mut server = service.server(ROUTES).data(state).task(checkpointer).task(notices);
        if let Some(disposal) = disposal {
            server = server.task(disposal);
        }
        if let Some(every) = settings.log.oversight_interval {
            server = server.task(run_oversight(service_db, clock_for_oversight, every));
        }
        Ok(server.start()?)
    }
}

/// The disposal job on a timer (the embedded mode); Kubernetes runs `immilink-audit dispose` as a
/// CronJob instead. Idempotent: a run with nothing due changes nothing.
async fn run_disposal(db: Db, clock: SharedClock, retention: domain::retention::Retention, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = dispose_once(&db, &clock, retention).await {
            tracing::error!(error = %err, "disposal failed; records stay until the next run");
        }
    }
}

/// One disposal run, logged.
pub async fn dispose_once(
    db: &Db,
    clock: &SharedClock,
    retention: domain::retention::Retention,
) -> Result<domain::retention::Disposal, domain::AuditError> {
    let now = clock.now();
    let done = db.run(move |conn| domain::retention::dispose(conn, now, retention)).await?;
    tracing::info!(disposed = done.disposed, held = done.held, record = ?done.record_sequence, "disposal run");
    Ok(done)
}

/// What one run of the oversight job did.
#[derive(Debug, Clone, PartialEq)]
pub struct OversightRun {
    pub reviews: domain::reviews::MonthlyRun,
    /// Findings newly flagged overdue.
    pub overdue_findings: usize,
}

/// The oversight job on a timer (the embedded mode); Kubernetes runs `immilink-audit oversight` as a
/// CronJob instead. Idempotent: run as often as wanted.
async fn run_oversight(db: Db, clock: SharedClock, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = oversight_once(&db, &clock).await {
            tracing::error!(error = %err, "oversight job failed; it runs again at the next tick");
        }
    }
}

/// One run of the oversight job (R-AUD-04, R-AUD-07): last month's review reports opened (from the
/// 1st, Taipei), overdue reviews and findings flagged and their people notified. Logged.
pub async fn oversight_once(db: &Db, clock: &SharedClock) -> Result<OversightRun, domain::AuditError> {
    let now = clock.now();
    let run = db.run(move |conn| domain::reviews::run_monthly(conn, now)).await?;
    let findings = db.run(move |conn| domain::findings::flag_overdue(conn, now)).await?;
    tracing::info!(month = %run.month, reports_opened = run.reports_opened, entries_added = run.entries_added,
        overdue_reviews = run.overdue_flagged, overdue_findings = findings.flagged.len(), "oversight job run");
    Ok(OversightRun { reviews: run, overdue_findings: findings.flagged.len() })
}

/// `immilink-audit oversight`: one oversight run against the configured database, for a CronJob.
pub async fn oversight_command(settings: Settings, clock: SharedClock) -> anyhow::Result<OversightRun> {
    let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
    Ok(oversight_once(&db, &clock).await?)
}

/// `immilink-audit dispose`: one disposal run against the configured database, for a CronJob.
pub async fn dispose_command(settings: Settings, clock: SharedClock) -> anyhow::Result<domain::retention::Disposal> {
    let db = Db::open(&settings.service.database, &MIGRATIONS).await?;
    Ok(dispose_once(&db, &clock, settings.log.retention).await?)
}

/// `immilink-audit verify-bundle FILE [--log-key VKEY] [--witness-key VKEY]...`: checks an exported
/// bundle with no server and returns the process's exit code (0 intact, 1 a check failed, 2 usage).
pub fn verify_bundle_command(args: Vec<String>) -> i32 {
    const USAGE: &str = "usage: immilink-audit verify-bundle FILE [--log-key VKEY] [--witness-key VKEY]...";
    let (mut file, mut log_key, mut witness_keys) = (None, None, Vec::new());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--log-key" => args.next().map(|key| log_key = Some(key)),
            "--witness-key" => args.next().map(|key| witness_keys.push(key)),
            _ if arg.starts_with("--") || file.is_some() => None,
            _ => {
                file = Some(arg.clone());
                Some(())
            }
        };
        if parsed.is_none() {
            eprintln!("{arg}: not understood\n{USAGE}");
            return 2;
        }
    }
    let Some(file) = file else {
        eprintln!("{USAGE}");
        return 2;
    };
    let checked = std::fs::read(&file)
        .map_err(|err| format!("{file}: {err}"))
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|err| format!("{file}: not a bundle: {err}")))
        .and_then(|bundle| domain::bundle::check(&bundle, log_key.as_deref(), &witness_keys));
    match checked {
        Ok(report) => {
            let witnessed = if report.witnessed { "cosigned by the witness" } else { "NOT cosigned by a witness" };
            println!(
                "ok: {} records proven in the tree of {} records; checkpoint signed by the log, {witnessed}",
                report.records, report.tree_size
            );
            0
        }
        Err(failure) => {
            eprintln!("FAILED: {failure}");
            1
        }
    }
}
