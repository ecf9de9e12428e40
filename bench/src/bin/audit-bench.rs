//! `cargo run --release -p immilink-bench --bin audit-bench`
//!
//! What the audit log as evidence costs, each against a floor measured in the same run, on
//! PostgreSQL and then on SQLite:
//! - **append**: events through the audit intake (`Batch::parse` and `records::ingest`, what
//!   `POST /internal/v1/events` calls, without HTTP), 1,000 per batch, against plain multi-row
//!   INSERTs of rows of the same shape into a table with the same columns and indexes (target ≥ 0.5);
//! - **full verify** of a log of `AUDIT_BENCH_RECORDS` records (default 1,000,000): chain, tree and
//!   the latest checkpoint, against reading the same rows (`COPY audit_records TO STDOUT` through
//!   psql on PostgreSQL, a SELECT of every column on SQLite) (target ≤ 1.5), and the growth of the
//!   process's peak RSS during it (memory must stay flat: the log is streamed);
//! - **incremental verify** of 1,000 records appended after a checkpoint of the whole log, against
//!   the same on a log of 1,000 records alone (target ≈ 1), each the median of 7 runs;
//! - **inclusion proofs** of a record of the large log through the gateway, with wrk, against a
//!   trivial authenticated GET (`/v1/audit/log-key`) through the same gateway (p99 target ≤ 2×).
//!
//! Exits 0 whether or not the targets are met; non-zero when a run could not be set up.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use diesel::prelude::*;
use immilink_bench::report::{ms, verdict};
use immilink_bench::stack::{self, Tuning, SERVICES};
use immilink_bench::{clients, env_number, postgres, wrk};
use immilink_shared::clock::system_clock;
use immilink_shared::db::{Db, DbConn, DbSettings};
use immilink_shared::events::AuditEvent;
use immilink_stack::audit::domain::records::{self, Batch};
use immilink_stack::audit::domain::{chain, checkpoints, tree};
use serde_json::json;

const BATCH: usize = 1000;
/// Events appended (and plain rows inserted) for the append measurement.
const APPEND_MEASURED: usize = 100_000;
const INCREMENT: usize = 1000;
const WRK_DURATION: Duration = Duration::from_secs(10);
const WRK_CONNECTIONS: u32 = 16;

diesel::table! {
    bench_plain_records (sequence) {
        sequence -> BigInt,
        id -> Text,
        kind -> Text,
        occurred_at -> Timestamp,
        recorded_at -> Timestamp,
        source -> Text,
        actor_user_id -> Nullable<Text>,
        agency -> Nullable<Text>,
        correlation_id -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        payload -> Text,
        prev_hash -> Text,
        hash -> Text,
        hash_scheme -> SmallInt,
    }
}

/// The same columns and indexes as `audit_records`, without the chain, the tree or the triggers.
const PLAIN_TABLE: &str = "CREATE TABLE bench_plain_records (
    sequence BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL, recorded_at TIMESTAMP NOT NULL, source TEXT NOT NULL,
    actor_user_id TEXT, agency TEXT, correlation_id TEXT, subject_id TEXT, payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL, hash_scheme SMALLINT NOT NULL);
    CREATE INDEX bench_plain_agency_idx ON bench_plain_records (agency, occurred_at);
    CREATE INDEX bench_plain_subject_idx ON bench_plain_records (subject_id);
    CREATE INDEX bench_plain_correlation_idx ON bench_plain_records (correlation_id);";

/// A lookup's audit event as the broker sends it, about 500 bytes stored.
fn event(n: usize) -> AuditEvent {
    let lookup = uuid::Uuid::now_v7().to_string();
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        kind: "lookup.requested".into(),
        occurred_at: Utc::now(),
        source: "broker".into(),
        actor_user_id: Some(format!("0193a0c4-5b7e-7cc1-9a41-{:012x}", n % 50)),
        agency: Some("TPE-SW".into()),
        correlation_id: Some(lookup.clone()),
        subject_id: Some(format!("A{:09}", 100_000_000 + n % 1_000_000)),
        unit: Some("0193a0c4-5b7e-7cc1-9a41-0000000000aa".into()),
        payload: json!({
            "query_type": "entry_exit_last_year",
            "legal_basis": "social_assistance_act",
            "purpose_code": "sw_statutory_business",
            "case_number": format!("TPE-SW-2026-{:06}", n % 1_000_000),
            "lookup_id": lookup,
            "on_behalf_of_user_id": null,
            "supervisor_approval_id": null,
        }),
    }
}

fn batch(start: usize) -> Batch {
    Batch::parse("broker", (start..start + BATCH).map(event).collect()).expect("a valid batch")
}

/// Appends `count` events through the intake, returning the seconds it took.
fn append(conn: &mut DbConn, from: usize, count: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for start in (from..from + count).step_by(BATCH) {
        records::ingest(conn, Utc::now(), &batch(start)).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Inserts `count` rows of the same shape into the plain table, 1,000 per INSERT, one transaction
/// each (as each intake batch is), returning the seconds it took.
fn plain_inserts(conn: &mut DbConn, count: usize) -> anyhow::Result<f64> {
    use bench_plain_records as p;
    let hash = "9f2c".repeat(16);
    let started = Instant::now();
    for start in (0..count).step_by(BATCH) {
        let rows: Vec<_> = (start..start + BATCH)
            .map(|n| {
                let e = event(n);
                let at = e.occurred_at.naive_utc();
                (
                    p::sequence.eq(n as i64 + 1),
                    p::id.eq(e.id),
                    p::kind.eq(e.kind),
                    p::occurred_at.eq(at),
                    p::recorded_at.eq(at),
                    p::source.eq(e.source),
                    p::actor_user_id.eq(e.actor_user_id),
                    p::agency.eq(e.agency),
                    p::correlation_id.eq(e.correlation_id),
                    p::subject_id.eq(e.subject_id),
                    p::payload.eq(e.payload.to_string()),
                    p::prev_hash.eq(hash.clone()),
                    p::hash.eq(hash.clone()),
                    p::hash_scheme.eq(2_i16),
                )
            })
            .collect();
        conn.write_transaction(|conn| -> QueryResult<()> {
            for chunk in rows.chunks(500) {
                immilink_shared::insert_rows!(conn, p::table, chunk);
            }
            Ok(())
        })?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Reads every row of the log the plainest way the backend offers, returning the seconds.
fn read_all(conn: &mut DbConn, url: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    match conn {
        DbConn::Pg(_) => {
            let status = std::process::Command::new("psql")
                .arg(url)
                .arg("-qAtc")
                .arg("COPY audit_records TO STDOUT")
                .stdout(std::process::Stdio::null())
                .status()
                .context("running psql")?;
            anyhow::ensure!(status.success(), "psql COPY failed");
        }
        DbConn::Sqlite(sqlite) => {
            use immilink_stack::audit::schema::audit_records as r;
            let mut rows = 0_u64;
            let every_column = (
                r::sequence,
                r::id,
                r::kind,
                r::occurred_at,
                r::recorded_at,
                r::source,
                r::actor_user_id,
                r::agency,
                r::correlation_id,
                r::subject_id,
                r::payload,
                r::prev_hash,
                r::hash,
                r::hash_scheme,
            );
            type Row = (
                i64,
                String,
                String,
                chrono::NaiveDateTime,
                chrono::NaiveDateTime,
                String,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                String,
                String,
                String,
                i16,
            );
            for row in r::table.select(every_column).load_iter::<Row, diesel::connection::DefaultLoadingMode>(sqlite)? {
                row?;
                rows += 1;
            }
            anyhow::ensure!(rows > 0, "nothing read");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// This process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Row {
    backend: &'static str,
    append_per_sec: f64,
    plain_per_sec: f64,
    records: usize,
    verify_secs: f64,
    read_secs: f64,
    /// Peak RSS of a process that only opens the database and verifies: at the append measurement's
    /// size and at the full size (flat memory: about the same).
    rss_small_mib: f64,
    rss_full_mib: f64,
    incremental_secs: f64,
    alone_secs: f64,
    proof_p99: Duration,
    trivial_p99: Duration,
    proof_per_sec: f64,
}

/// `audit-bench verify-child URL KEY_DIR`: a fresh process opens the log, verifies it whole against
/// its latest checkpoint and prints the seconds and its own peak RSS, so the memory a verification
/// needs is measured apart from everything else the benchmark holds.
fn verify_child(url: &str, key_dir: &Path) -> anyhow::Result<()> {
    let db = Db::connect(&DbSettings::new(url), &immilink_stack::audit::MIGRATIONS)?;
    let mut conn = db.get()?;
    let keys = keys(key_dir)?;
    let anchors = chain::Anchors { keys: &keys, witness_view: None };
    let (verification, secs) = timed(|| Ok(chain::verify(&mut conn, Some(&anchors))?))?;
    anyhow::ensure!(verification.ok && verification.checkpoint.is_some_and(|(_, ok)| ok), "{verification:?}");
    println!("{secs} {} {}", peak_rss_mib(), verification.records);
    Ok(())
}

/// Runs [`verify_child`] and returns its seconds and peak RSS (MiB).
fn verify_in_child(url: &str, key_dir: &Path) -> anyhow::Result<(f64, f64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["verify-child", url, &key_dir.display().to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the verification child")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "verification child failed: {text}");
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(secs)), Some(Ok(rss))) => Ok((secs, rss)),
        _ => anyhow::bail!("verification child printed {text:?}"),
    }
}

fn keys(dir: &Path) -> anyhow::Result<checkpoints::LogKeys> {
    let key = immilink_shared::transparency::load_or_generate_key(&dir.join("bench-log.key"), true)?;
    Ok(checkpoints::LogKeys::new("immilink.bench/audit", &key, Vec::new())?)
}

fn timed<T>(work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let started = Instant::now();
    let value = work()?;
    Ok((value, started.elapsed().as_secs_f64()))
}

/// Runs of a short measurement; its median is reported, so one pause of the database's background
/// work (autovacuum after a million inserts, a checkpoint) does not decide it.
const RUNS: usize = 7;

fn median_of<T>(mut work: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let mut last = None;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (value, secs) = timed(&mut work)?;
        times.push(secs);
        last = Some(value);
    }
    times.sort_by(f64::total_cmp);
    let value = last.context("at least one run")?;
    println!("    runs: {}", times.iter().map(|t| format!("{:.2} ms", t * 1e3)).collect::<Vec<_>>().join(", "));
    Ok((value, times[RUNS / 2]))
}

/// Everything but the proofs, on one audit database (`small` is a second, empty one).
fn measure_log(url: &str, small_url: &str, records: usize, dir: &Path) -> anyhow::Result<Row> {
    let db = Db::connect(&DbSettings::new(url), &immilink_stack::audit::MIGRATIONS)?;
    let mut conn = db.get()?;
    diesel::sql_query(PLAIN_TABLE.split(';').next().unwrap_or_default()).execute(&mut conn)?;
    for index in PLAIN_TABLE.split(';').skip(1).filter(|s| !s.trim().is_empty()) {
        diesel::sql_query(index).execute(&mut conn)?;
    }
    println!("  append: {APPEND_MEASURED} events through the intake, then as many plain rows");
    let append_secs = append(&mut conn, 0, APPEND_MEASURED)?;
    let plain_secs = plain_inserts(&mut conn, APPEND_MEASURED)?;
    let keys = keys(dir)?;
    checkpoints::issue(&mut conn, Utc::now(), &keys)?;
    let (small_secs, rss_small_mib) = verify_in_child(url, dir)?;
    println!("  full verify of {APPEND_MEASURED} records: {small_secs:.2} s, peak RSS {rss_small_mib:.1} MiB (a process of its own)");
    println!("  growing the log to {records} records…");
    append(&mut conn, APPEND_MEASURED, records - APPEND_MEASURED)?;
    let (_, checkpoint_secs) = timed(|| Ok(checkpoints::issue(&mut conn, Utc::now(), &keys)?))?;
    println!(
        "  checkpoint of {records} records (it first verifies the {} records since the last): {checkpoint_secs:.1} s",
        records - APPEND_MEASURED
    );
    let (verify_secs, rss_full_mib) = verify_in_child(url, dir)?;
    println!("  full verify of {records} records: {verify_secs:.2} s, peak RSS {rss_full_mib:.1} MiB");
    let read_secs = read_all(&mut conn, url)?;
    println!("  reading the same rows: {read_secs:.2} s");
    let latest = checkpoints::latest(&mut conn)?.context("a checkpoint")?;
    let root = tlog_tiles_root(&latest.root_hash)?;
    append(&mut conn, records, INCREMENT)?;
    let (since, incremental_secs) = median_of(|| Ok(chain::verify_since(&mut conn, records as u64, root)?))?;
    anyhow::ensure!(since.ok && since.records == INCREMENT as i64, "{since:?}");
    let small = Db::connect(&DbSettings::new(small_url), &immilink_stack::audit::MIGRATIONS)?;
    let mut small = small.get()?;
    append(&mut small, 0, INCREMENT)?;
    let empty = tree::root(&mut small, 0)?;
    let (alone, alone_secs) = median_of(|| Ok(chain::verify_since(&mut small, 0, empty)?))?;
    anyhow::ensure!(alone.ok && alone.records == INCREMENT as i64, "{alone:?}");
    Ok(Row {
        backend: "",
        append_per_sec: APPEND_MEASURED as f64 / append_secs,
        plain_per_sec: APPEND_MEASURED as f64 / plain_secs,
        records,
        verify_secs,
        read_secs,
        rss_small_mib,
        rss_full_mib,
        incremental_secs,
        alone_secs,
        proof_p99: Duration::ZERO,
        trivial_p99: Duration::ZERO,
        proof_per_sec: 0.0,
    })
}

fn tlog_tiles_root(base64_root: &str) -> anyhow::Result<tlog_tiles::Hash> {
    tlog_tiles::Hash::parse_hash(base64_root).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Starts the stack on these databases (the audit one holding the large log) and measures proofs
/// of a record in the middle of it against a trivial authenticated GET, through the gateway.
async fn measure_proofs(urls: [String; 4], key_dir: &Path, records: usize, row: &mut Row) -> anyhow::Result<()> {
    let tuning = Tuning::from_env()?;
    let config = stack::config(&urls, key_dir, &tuning);
    let running = immilink_stack::start(config, system_clock()).await.context("starting the stack")?;
    let http = immilink_shared::tls::outbound_builder().build()?;
    let token = clients::login(&http, &running.gateway_url, "tpe.manager").await?;
    let audit_url = urls[2].clone();
    let middle = (records / 2) as i64;
    let id: String = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        use immilink_stack::audit::schema::audit_records as r;
        let db = Db::connect(&DbSettings::new(&audit_url), &immilink_stack::audit::MIGRATIONS)?;
        Ok(r::table.filter(r::sequence.eq(middle)).select(r::id).first(&mut db.get()?)?)
    })
    .await??;
    let load = |path: String| wrk::Load {
        url: format!("{}{path}", running.gateway_url),
        request: wrk::Request::BearerGet(token.clone()),
        threads: 2,
        connections: WRK_CONNECTIONS,
        duration: WRK_DURATION,
    };
    let trivial = load("/v1/audit/log-key".into()).run().await?;
    let proofs = load(format!("/v1/audit/records/{id}/proof")).run().await?;
    anyhow::ensure!(proofs.non_2xx == 0 && trivial.non_2xx == 0, "refused answers: {proofs:?} {trivial:?}");
    for (what, report) in [("log-key", &trivial), ("proofs", &proofs)] {
        println!(
            "  {what:8} {:.0}/s  p50 {}  p99 {}  ({})",
            report.requests_per_sec,
            ms(report.p50),
            ms(report.p99),
            report.describe_answers()
        );
    }
    row.proof_p99 = proofs.p99;
    row.trivial_p99 = trivial.p99;
    row.proof_per_sec = proofs.requests_per_sec;
    running.stop().await;
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!("\n== Markdown (for README) ==\n");
    println!("| database | append/s | plain INSERT rows/s | append / INSERTs (≥ 0.5) | records | full verify | read (floor) | verify / read (≤ 1.5) | verify peak RSS, 100k → all | 1,000 after a checkpoint | 1,000 alone | ratio (≈ 1) | proof p99 | log-key p99 | proof / trivial p99 (≤ 2) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let append = r.append_per_sec / r.plain_per_sec;
        let verify = r.verify_secs / r.read_secs;
        let incremental = r.incremental_secs / r.alone_secs;
        let proofs = r.proof_p99.as_secs_f64() / r.trivial_p99.as_secs_f64().max(1e-9);
        println!(
            "| {} | {:.0} | {:.0} | **{:.2}** ({}) | {} | {:.1} s | {:.1} s | **{:.2}** ({}) | {:.0} → {:.0} MiB | {} | {} | **{:.2}** | {} | {} | **{:.2}** ({}) |",
            r.backend,
            r.append_per_sec,
            r.plain_per_sec,
            append,
            verdict(append >= 0.5),
            r.records,
            r.verify_secs,
            r.read_secs,
            verify,
            verdict(verify <= 1.5),
            r.rss_small_mib,
            r.rss_full_mib,
            ms(Duration::from_secs_f64(r.incremental_secs)),
            ms(Duration::from_secs_f64(r.alone_secs)),
            incremental,
            ms(r.proof_p99),
            ms(r.trivial_p99),
            proofs,
            verdict(proofs <= 2.0),
        );
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("verify-child") {
        let (Some(url), Some(dir)) = (args.get(2), args.get(3)) else { anyhow::bail!("verify-child URL KEY_DIR") };
        return verify_child(url, Path::new(dir));
    }
    let records = env_number("AUDIT_BENCH_RECORDS", 1_000_000)? as usize;
    anyhow::ensure!(
        records >= APPEND_MEASURED && records.is_multiple_of(BATCH),
        "AUDIT_BENCH_RECORDS: a multiple of 1000, at least {APPEND_MEASURED}"
    );
    println!("audit-bench: {records} records per database; release build: {}", !cfg!(debug_assertions));
    let mut rows = Vec::new();
    for backend in ["PostgreSQL", "SQLite"] {
        println!("\n== {backend} ==");
        let dir = tempfile::Builder::new().prefix("immilink-audit-bench-").tempdir()?;
        let (urls, small_url, _databases): ([String; 4], String, Option<(postgres::Throwaway, postgres::Throwaway)>) =
            if backend == "PostgreSQL" {
                let admin = postgres::admin_url();
                let stack_dbs = postgres::Throwaway::create(&admin, SERVICES)?;
                let small = postgres::Throwaway::create(&admin, ["small", "unused1", "unused2", "unused3"])?;
                let (urls, small_url) = (stack_dbs.urls.clone(), small.urls[0].clone());
                (urls, small_url, Some((stack_dbs, small)))
            } else {
                (stack::sqlite_urls(dir.path()), format!("sqlite://{}", dir.path().join("small.db").display()), None)
            };
        let (audit_url, small, key_dir, n) = (urls[2].clone(), small_url.clone(), dir.path().to_owned(), records);
        let mut row = tokio::task::spawn_blocking(move || measure_log(&audit_url, &small, n, &key_dir)).await??;
        row.backend = backend;
        measure_proofs(urls, dir.path(), records, &mut row).await?;
        rows.push(row);
    }
    print_table(&rows);
    Ok(())
}
