//! `cargo run --release -p immilink-bench --bin lookup-bench`
//!
//! What an audited lookup costs next to the floor its durability sets. On PostgreSQL and then on
//! SQLite (a stack start each), at 1 and at 64 concurrent clients, all in one run:
//! - **lookups**: `POST /v1/lookups` through the gateway as the demo caseworker (token, session,
//!   cached permissions, the durable audit record through the broker's group-commit journal,
//!   nia-mock, minimisation);
//! - **nia-direct**: the same query straight to nia-mock, with the agency's key: the upstream alone;
//! - **INSERTs**: one-row autocommit INSERTs from as many threads, each with its own connection, into
//!   the broker's own database: one durable commit each, the least a lookup could cost.
//!
//! Then whether the audit trail kept up (every answered lookup reaches the audit service), and the
//! ratios: lookups / INSERTs and the lookups' p99 at 64 clients against their targets, lookups /
//! nia-direct. Exits 0 whether or not the targets are met; non-zero only when a stack could not be
//! set up (2 when wrk is missing).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use immilink_bench::db::Conn;
use immilink_bench::inserts::{self, InsertReport};
use immilink_bench::machine::{CpuShares, CpuSnapshot};
use immilink_bench::report::{self, ms, verdict};
use immilink_bench::stack::{self, Tuning, SERVICES};
use immilink_bench::trail::{Drain, Trail};
use immilink_bench::wrk::{self, PostScript};
use immilink_bench::{clients, env_number, postgres};
use immilink_shared::clock::system_clock;
use immilink_stack::RunningStack;
use serde_json::json;

/// The demo caseworker of TPE-SW: every lookup is theirs, on one token (one session per user).
const USER: &str = "tpe.caseworker";
const AGENCY: &str = "TPE-SW";
const QUERY_TYPE: &str = "entry_exit_last_year";
const SUBJECT: &str = "A123456789";
/// Concurrent clients (wrk connections, INSERT threads) of the two measurements per database.
const CLIENTS: [u32; 2] = [1, 64];
const WARM_UP: Duration = Duration::from_secs(2);
/// Lookups per INSERT at 64 clients: the journal should keep lookups near the commit floor.
const TARGET_VS_INSERTS: f64 = 0.4;
const TARGET_P99: Duration = Duration::from_millis(25);
/// The broker's per-user and per-agency limits for the run: far above anything one machine reaches,
/// or the defaults (120 and 6000 a minute) would answer most of the load with 429.
const RAISED_LIMIT: u32 = 1_000_000_000;
/// Above this share of the CPUs taken by other processes, a measurement is flagged as unreliable.
const NOISY: f64 = 0.05;
const DRAIN_POLL: Duration = Duration::from_millis(100);
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }

    /// Processes whose CPU time counts as the benchmark's own in the noise check: the database
    /// server, and the kernel threads that carry out fsyncs (on this kind of VM they take a tenth
    /// of the CPUs under a commit-heavy load).
    fn servers(self) -> &'static [&'static str] {
        match self {
            Backend::Postgres => &["postgres", "kworker/", "jbd2/"],
            Backend::Sqlite => &["kworker/", "jbd2/"],
        }
    }

    /// What [`Backend::servers`] and the interrupts are called in the report.
    fn servers_label(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres + kernel",
            Backend::Sqlite => "kernel",
        }
    }
}

/// Knobs: `BENCH_DURATION_SECS` (default 10), `BENCH_PG_URL` (the PostgreSQL admin URL, default
/// `postgres://postgres@127.0.0.1:5432`), `BENCH_DATABASES` (`postgres,sqlite`), and the stack's own
/// `IMMILINK_WORKERS` (2) and `IMMILINK_SESSION_CACHE_MS` (500), production's defaults.
struct Options {
    duration: Duration,
    admin_url: String,
    backends: Vec<Backend>,
    tuning: Tuning,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        let backends = std::env::var("BENCH_DATABASES").unwrap_or_else(|_| "postgres,sqlite".into());
        let backends = backends
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| match b {
                "postgres" | "postgresql" | "pg" => Ok(Backend::Postgres),
                "sqlite" => Ok(Backend::Sqlite),
                other => bail!("BENCH_DATABASES: unknown database {other:?} (postgres, sqlite)"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            duration: Duration::from_secs(env_number("BENCH_DURATION_SECS", 10)?.max(1)),
            admin_url: postgres::admin_url(),
            backends,
            tuning: Tuning::from_env()?,
        })
    }
}

/// One wrk measurement and where the CPUs' time went meanwhile.
struct Measured {
    report: wrk::Report,
    cpu: CpuShares,
}

/// Everything measured at one concurrency on one database.
struct Row {
    clients: u32,
    lookups: Measured,
    drain: Result<Drain, String>,
    /// `lookup.requested` records the audit service should hold by then: every 200 answer so far.
    expected: i64,
    nia: Measured,
    inserts: Result<InsertReport, String>,
}

struct DatabaseRun {
    backend: Backend,
    rows: Vec<Row>,
}

#[actix_web::main]
async fn main() -> ExitCode {
    if !report::on_path("wrk") {
        eprintln!("lookup-bench needs wrk, which is not installed.");
        eprintln!("Install it with:  bash bench/setup.sh   (apt-get; sudo when not root)");
        return ExitCode::from(2);
    }
    let options = match Options::from_env() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("lookup-bench: {err:#}");
            return ExitCode::from(2);
        }
    };
    print_header(&options);
    let telemetry = immilink_shared::telemetry::init_with_default_filter("immilink-bench", "error");
    let mut runs = Vec::new();
    let mut setup_failed = false;
    for backend in &options.backends {
        println!("== {} ==", backend.name());
        match bench_database(*backend, &options).await {
            Ok(Some(run)) => runs.push(run),
            Ok(None) => {}
            Err(err) => {
                setup_failed = true;
                println!("  SETUP FAILED on {}: {err:#}", backend.name());
            }
        }
        println!();
    }
    print_summary(&runs, &options);
    telemetry.shutdown().await;
    if setup_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_header(options: &Options) {
    println!("== immilink lookup-bench ==");
    report::print_machine();
    println!("tools:    {}", report::first_line("wrk", &["-v"]));
    options.tuning.print();
    println!(
        "limits:   the broker's lookup limits are RAISED for this run to {RAISED_LIMIT} per minute per user and per \
         agency (defaults 120 and 6000: IMMILINK_LOOKUPS_PER_USER_PER_MINUTE, ..._PER_AGENCY_PER_MINUTE)"
    );
    println!(
        "load:     per database and for {} clients (wrk -t1 -c1, -t2 -c64; as many INSERT threads): {}s warm-up, \
         then {}s measured, of lookups, nia-direct and INSERTs in turn; everything shares this machine's CPUs",
        CLIENTS.map(|c| c.to_string()).join(" and "),
        WARM_UP.as_secs(),
        options.duration.as_secs()
    );
    let databases: Vec<String> = options
        .backends
        .iter()
        .map(|backend| match backend {
            Backend::Postgres => format!(
                "PostgreSQL (throwaway databases on {}, dropped at the end)",
                postgres::redact(&options.admin_url)
            ),
            Backend::Sqlite => "SQLite (files in a temp folder)".to_owned(),
        })
        .collect();
    println!("databases: {}", databases.join(", then "));
    report::print_load_average();
    println!();
}

/// Sets up the backend's databases and measures a stack on them; `None` when PostgreSQL is not there.
async fn bench_database(backend: Backend, options: &Options) -> anyhow::Result<Option<DatabaseRun>> {
    let keys = tempfile::Builder::new().prefix("immilink-bench-keys-").tempdir()?;
    match backend {
        Backend::Postgres => {
            let admin_url = options.admin_url.clone();
            let databases = match blocking(move || postgres::Throwaway::create(&admin_url, SERVICES)).await {
                Ok(databases) => databases,
                Err(err) => {
                    let reason = format!("{err:#}").split_whitespace().collect::<Vec<_>>().join(" ");
                    println!("  PostgreSQL SKIPPED: {reason}");
                    return Ok(None);
                }
            };
            println!("  databases {} (dropped at the end)", databases.names().join(", "));
            let run = bench_stack(backend, &databases.urls, keys.path(), options).await;
            // Dropping the databases blocks on the server: not on the executor thread.
            blocking(move || {
                drop(databases);
                Ok(())
            })
            .await?;
            run.map(Some)
        }
        Backend::Sqlite => {
            let dir = tempfile::Builder::new().prefix("immilink-bench-").tempdir()?;
            println!("  files in {}", dir.path().display());
            bench_stack(backend, &stack::sqlite_urls(dir.path()), keys.path(), options).await.map(Some)
        }
    }
}

/// Starts the stack on `urls`, measures, stops it.
async fn bench_stack(
    backend: Backend,
    urls: &[String; 4],
    keys: &Path,
    options: &Options,
) -> anyhow::Result<DatabaseRun> {
    let mut config = stack::config(urls, keys, &options.tuning);
    config.broker.lookups_per_user_per_minute = RAISED_LIMIT;
    config.broker.lookups_per_agency_per_minute = RAISED_LIMIT;
    // The key nia-mock expects from TPE-SW: the launcher generates one per demo agency for the run.
    let nia_key = config.nia.agency_keys.get(AGENCY).with_context(|| format!("no nia-mock key for {AGENCY}"))?;
    let nia_key = nia_key.expose().to_owned();
    let running = immilink_stack::start(config, system_clock()).await.context("starting the stack")?;
    let result = measure(backend, &running, urls, &nia_key, options).await;
    running.stop().await;
    result
}

/// Runs `work` on the blocking pool: diesel, and anything else that must not hold up the stack's
/// background tasks, which share this thread's executor.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("a blocking task failed")?
}

fn lookup_body() -> serde_json::Value {
    json!({
        "query_type": QUERY_TYPE,
        "subject_id": SUBJECT,
        "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business",
        "case_number": "TPE-SW-2026-000123"
    })
}

/// One request of each kind before any load: a setup that cannot answer 200 is reported with the
/// answer's body, not measured.
async fn probe(http: &reqwest::Client, url: &str, headers: &[(&str, &str)], body: &str) -> anyhow::Result<()> {
    let mut request = http.post(url).header("content-type", "application/json").body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status != 200 {
        bail!("POST {url} answered {status} before the load started: {text}");
    }
    Ok(())
}

/// The two loads' requests, each checked once before any load.
struct Targets {
    lookup_url: String,
    lookup_script: PostScript,
    nia_url: String,
    nia_script: PostScript,
}

impl Targets {
    /// Logs the caseworker in, sends one lookup and one direct query (each must answer 200) and
    /// writes the wrk scripts that repeat them.
    async fn prepare(running: &RunningStack, nia_key: &str) -> anyhow::Result<Self> {
        let http = immilink_shared::tls::outbound_builder().build()?;
        let token = clients::login(&http, &running.gateway_url, USER).await?;
        let bearer = format!("Bearer {token}");
        let lookup_url = format!("{}/v1/lookups", running.gateway_url);
        let lookup_headers = [("Authorization", bearer.as_str())];
        let lookup = lookup_body().to_string();
        probe(&http, &lookup_url, &lookup_headers, &lookup).await.context("the first lookup")?;
        let nia_url = format!("{}/v1/queries/{QUERY_TYPE}", running.nia_url);
        let nia_headers = [("x-nia-agency", AGENCY), ("x-nia-api-key", nia_key)];
        let nia = json!({ "subject_id": SUBJECT }).to_string();
        probe(&http, &nia_url, &nia_headers, &nia).await.context("the first direct query to nia-mock")?;
        Ok(Self {
            lookup_script: PostScript::write("lookup", &lookup_headers, &lookup)?,
            nia_script: PostScript::write("nia-direct", &nia_headers, &nia)?,
            lookup_url,
            nia_url,
        })
    }
}

async fn measure(
    backend: Backend,
    running: &RunningStack,
    urls: &[String; 4],
    nia_key: &str,
    options: &Options,
) -> anyhow::Result<DatabaseRun> {
    let broker_db = urls[1].clone();
    let settings_db = broker_db.clone();
    match blocking(move || Conn::establish(&settings_db)?.durability().map_err(anyhow::Error::from)).await {
        Ok(settings) => println!("  commit settings (the broker's database): {settings}"),
        Err(err) => println!("  commit settings could not be read: {err:#}"),
    }
    let targets = Targets::prepare(running, nia_key).await?;
    blocking(move || inserts::prepare(&broker_db)).await?;
    // The probe is the first 200 answer the audit trail must show.
    let mut answered: i64 = 1;
    let mut rows = Vec::new();
    for clients in CLIENTS {
        println!("  -- {clients} client{} --", if clients == 1 { "" } else { "s" });
        rows.push(measure_clients(clients, backend, &targets, urls, &mut answered, options).await?);
    }
    Ok(DatabaseRun { backend, rows })
}

/// Lookups (then the audit trail's catch-up), nia-direct and INSERTs at one concurrency.
/// `answered`: the 200 answers to lookups so far on this stack, which the audit trail must show.
async fn measure_clients(
    clients: u32,
    backend: Backend,
    targets: &Targets,
    urls: &[String; 4],
    answered: &mut i64,
    options: &Options,
) -> anyhow::Result<Row> {
    let load = |url: &str, script: &PostScript| wrk::Load {
        url: url.to_owned(),
        request: script.request(),
        threads: clients.min(2),
        connections: clients,
        duration: options.duration,
    };
    let (warm, lookups) = warm_then_measure(load(&targets.lookup_url, &targets.lookup_script), backend).await?;
    *answered += (warm.ok() + lookups.report.ok()) as i64;
    print_measured("lookups", &lookups, backend);
    let (audit_db, broker_db, expected) = (urls[2].clone(), urls[1].clone(), *answered);
    let drain =
        blocking(move || Trail::open(&audit_db, &broker_db)?.wait_until_drained(expected, DRAIN_POLL, DRAIN_LIMIT))
            .await
            .map_err(|err| format!("{err:#}"));
    print_drain(&drain, expected);
    let (_, nia) = warm_then_measure(load(&targets.nia_url, &targets.nia_script), backend).await?;
    print_measured("nia-direct", &nia, backend);
    let inserts = measure_inserts(&urls[1], clients as usize, options.duration, backend).await;
    print_inserts(&inserts, backend);
    Ok(Row { clients, lookups, drain, expected, nia, inserts })
}

/// A warm-up run (its report returned too: its answers count for the audit trail), then the
/// measured run with the noise check around it.
async fn warm_then_measure(load: wrk::Load, backend: Backend) -> anyhow::Result<(wrk::Report, Measured)> {
    let warm = wrk::Load { duration: WARM_UP, ..load.clone() }.run().await.context("warming up")?;
    if warm.failed() > 0 {
        println!(
            "  !!! ERRORS in the warm-up of {}: {} requests did not end with 200 ({})",
            load.url,
            warm.failed(),
            warm.describe_answers()
        );
        for (status, body) in &warm.samples {
            println!("  !!!   first {status} answer: {body}");
        }
    }
    let before = CpuSnapshot::take_counting(backend.servers());
    let report = load.run().await.with_context(|| format!("measuring: {}", load.describe()))?;
    let cpu = CpuSnapshot::take_counting(backend.servers()).shares_since(&before);
    Ok((warm, Measured { report, cpu }))
}

async fn measure_inserts(
    url: &str,
    threads: usize,
    duration: Duration,
    backend: Backend,
) -> Result<InsertReport, String> {
    let url = url.to_owned();
    let servers = backend.servers();
    blocking(move || {
        inserts::run(&url, threads, WARM_UP, servers).context("warming up")?;
        inserts::run(&url, threads, duration, servers)
    })
    .await
    .map_err(|err| format!("{err:#}"))
}

/// Where the time of all CPUs went: the stack (with the INSERT threads: this process), wrk, the
/// database server with the kernel's I/O threads and interrupt handling, and other processes
/// (noise: above 5% the measurement is flagged).
fn cpu(shares: &CpuShares, backend: Backend) -> String {
    let percent = |share: f64| format!("{:.0}%", share * 100.0);
    let flag = if shares.others > NOISY { " (UNRELIABLE)" } else { "" };
    format!(
        "CPUs: this process {}, wrk {}, {} {}, others {}{flag}",
        percent(shares.own),
        percent(shares.tools),
        backend.servers_label(),
        percent(shares.servers + shares.interrupts),
        percent(shares.others)
    )
}

fn print_measured(name: &str, measured: &Measured, backend: Backend) {
    let report = &measured.report;
    println!(
        "  {name:<11} {:>8.0}/s  p50 {:>9}  p99 {:>9}  answers {}; {}",
        report.ok_per_sec(),
        ms(report.p50),
        ms(report.p99),
        report.describe_answers(),
        cpu(&measured.cpu, backend)
    );
    if report.failed() > 0 {
        println!(
            "  !!! ERRORS: {name}: {} of {} requests did not end with 200 ({}): the rate above counts the 200s only",
            report.failed(),
            report.requests + report.socket_errors,
            report.describe_answers()
        );
        for (status, body) in &report.samples {
            println!("  !!!   first {status} answer: {body}");
        }
    }
}

fn print_drain(drain: &Result<Drain, String>, expected: i64) {
    match drain {
        Ok(Drain { at_start, at_end, caught_up_after: Some(after) }) => println!(
            "  audit trail kept up: when the load stopped the audit service held {} of {expected} answered lookups \
             ({} events still in the broker's outbox); all in {:.1} s later{}",
            at_start.requested,
            at_start.undelivered,
            after.as_secs_f64(),
            extra_records(at_end.requested, expected)
        ),
        Ok(Drain { at_start, at_end, caught_up_after: None }) => println!(
            "  !!! AUDIT TRAIL BEHIND: {} s after the load the audit service holds {} of {expected} answered lookups \
             ({} events still undelivered in the broker's outbox; {} and {} when the load stopped)",
            DRAIN_LIMIT.as_secs(),
            at_end.requested,
            at_end.undelivered,
            at_start.requested,
            at_start.undelivered
        ),
        Err(err) => println!("  !!! the audit trail could not be read: {err}"),
    }
}

/// Lookups recorded beyond the 200 answers: answered with an error after being recorded, or cut
/// off when wrk stopped (their records stand; wrk never saw their answers).
fn extra_records(requested: i64, expected: i64) -> String {
    match requested - expected {
        0 => String::new(),
        extra => {
            format!(" ({extra} more: recorded lookups whose answers wrk did not count as 200, e.g. cut off at its end)")
        }
    }
}

fn print_inserts(inserts: &Result<InsertReport, String>, backend: Backend) {
    match inserts {
        Ok(report) => {
            println!(
                "  {:<11} {:>8.0}/s  p50 {:>9}  p99 {:>9}  committed {} (+{} after the end), slowest {}; {}",
                "INSERTs",
                report.per_sec(),
                ms(report.p50),
                ms(report.p99),
                report.committed,
                report.late,
                ms(report.slowest),
                cpu(&report.cpu, backend)
            );
            if report.failed > 0 {
                println!(
                    "  !!! ERRORS: {} INSERTs failed; the first: {}",
                    report.failed,
                    report.first_error.as_deref().unwrap_or("?")
                );
            }
        }
        Err(err) => println!("  !!! INSERTs could not be measured: {err}"),
    }
}

impl DatabaseRun {
    fn row(&self, clients: u32) -> Option<&Row> {
        self.rows.iter().find(|row| row.clients == clients)
    }
}

impl Row {
    fn lookups_per_insert(&self) -> Option<f64> {
        let inserts = self.inserts.as_ref().ok()?.per_sec();
        (inserts > 0.0).then(|| self.lookups.report.ok_per_sec() / inserts)
    }

    fn lookups_per_nia(&self) -> Option<f64> {
        let nia = self.nia.report.ok_per_sec();
        (nia > 0.0).then(|| self.lookups.report.ok_per_sec() / nia)
    }

    fn drained_after(&self) -> String {
        match &self.drain {
            Ok(Drain { caught_up_after: Some(after), .. }) => format!("{:.1} s", after.as_secs_f64()),
            Ok(_) => format!("behind after {} s", DRAIN_LIMIT.as_secs()),
            Err(_) => "unread".into(),
        }
    }

    /// Whether anything in this row failed or was measured beside other work.
    fn troubles(&self) -> Vec<String> {
        let mut troubles = Vec::new();
        for (name, measured) in [("lookups", &self.lookups), ("nia-direct", &self.nia)] {
            if measured.report.failed() > 0 {
                troubles.push(format!("{name}: {} requests did not end with 200", measured.report.failed()));
            }
            if measured.cpu.others > NOISY {
                troubles.push(format!("{name}: other processes took {:.0}% of the CPUs", measured.cpu.others * 100.0));
            }
        }
        match &self.inserts {
            Ok(report) if report.failed > 0 => troubles.push(format!("INSERTs: {} failed", report.failed)),
            Ok(report) if report.cpu.others > NOISY => {
                troubles.push(format!("INSERTs: other processes took {:.0}% of the CPUs", report.cpu.others * 100.0))
            }
            Err(err) => troubles.push(format!("INSERTs: {err}")),
            _ => {}
        }
        match &self.drain {
            Ok(Drain { caught_up_after: Some(_), .. }) => {}
            Ok(drain) => troubles.push(format!(
                "audit trail behind: {} of {} lookup records after {} s",
                drain.at_end.requested,
                self.expected,
                DRAIN_LIMIT.as_secs()
            )),
            Err(err) => troubles.push(format!("audit trail unread: {err}")),
        }
        troubles
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

fn print_summary(runs: &[DatabaseRun], options: &Options) {
    let most = CLIENTS[CLIENTS.len() - 1];
    println!("== Summary (ratios measured in this run) ==");
    println!(
        "  the broker's lookup limits were raised to {RAISED_LIMIT}/min per user and per agency for this run \
         (defaults 120 and 6000)"
    );
    if runs.is_empty() {
        println!("  nothing was measured");
        return;
    }
    for run in runs {
        println!("  {}", run.backend.name());
        if let Some(row) = run.row(most) {
            let vs_inserts = row.lookups_per_insert();
            println!(
                "    lookups / INSERTs at {most} clients   {:>8}   target >= {TARGET_VS_INSERTS:.2}   {}",
                ratio(vs_inserts),
                vs_inserts.map_or("n/a", |r| verdict(r >= TARGET_VS_INSERTS))
            );
            let p99 = row.lookups.report.p99;
            println!(
                "    lookups p99 at {most} clients         {:>8}   target < {} ms   {}",
                ms(p99),
                TARGET_P99.as_millis(),
                verdict(p99 < TARGET_P99 && row.lookups.report.failed() == 0)
            );
        }
        let per_nia: Vec<String> = run
            .rows
            .iter()
            .map(|row| format!("{} at {} client(s)", ratio(row.lookups_per_nia()), row.clients))
            .collect();
        println!("    lookups / nia-direct               {}", per_nia.join(", "));
        let drains: Vec<String> =
            run.rows.iter().map(|row| format!("{} after {} client(s)", row.drained_after(), row.clients)).collect();
        println!("    audit trail caught up              {}", drains.join(", "));
        for row in &run.rows {
            for trouble in row.troubles() {
                println!("    !!! {} client(s): {trouble}", row.clients);
            }
        }
    }
    println!();
    print_markdown(runs, options);
}

/// The table for README, with the facts it was measured under beneath it.
fn print_markdown(runs: &[DatabaseRun], options: &Options) {
    println!("== Markdown (for README) ==");
    println!();
    println!(
        "| database | clients | lookups/s | lookups p50 | lookups p99 | nia-direct/s | nia-direct p50 | nia-direct p99 \
         | INSERTs/s | INSERT p50 | INSERT p99 | lookups / INSERTs | lookups / nia-direct | audit trail caught up |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in runs {
        for row in &run.rows {
            let (lookups, nia) = (&row.lookups.report, &row.nia.report);
            let (inserts, insert_p50, insert_p99) = match &row.inserts {
                Ok(r) => (format!("{:.0}", r.per_sec()), ms(r.p50), ms(r.p99)),
                Err(_) => ("failed".into(), "-".into(), "-".into()),
            };
            println!(
                "| {} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {inserts} | {insert_p50} | {insert_p99} | {} | {} | {} |",
                run.backend.name(),
                row.clients,
                lookups.ok_per_sec(),
                ms(lookups.p50),
                ms(lookups.p99),
                nia.ok_per_sec(),
                ms(nia.p50),
                ms(nia.p99),
                ratio(row.lookups_per_insert()),
                ratio(row.lookups_per_nia()),
                row.drained_after()
            );
        }
    }
    println!();
    println!(
        "`lookup-bench`, one run on {} × {} ({} s per measurement after {} s warm-up, {} workers per service, \
         broker rate limits raised); targets at {} clients: lookups / INSERTs ≥ {TARGET_VS_INSERTS}, lookups p99 < {} ms.",
        immilink_bench::machine::cpus(),
        immilink_bench::machine::cpu_model(),
        options.duration.as_secs(),
        WARM_UP.as_secs(),
        options.tuning.workers,
        CLIENTS[CLIENTS.len() - 1],
        TARGET_P99.as_millis()
    );
}
