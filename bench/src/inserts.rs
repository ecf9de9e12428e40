//! The durability floor: single-row INSERTs, each its own committed transaction, from N threads
//! with a connection each, into the database the broker writes to. Every audited lookup needs at
//! least one durable commit before it may be forwarded (R-QRY-08), so this is what a lookup could
//! cost at best on this disk and this database, with no HTTP, no checks and no upstream. The
//! broker's journal groups many lookups into one commit, so lookups may even beat it.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::clients::percentile;
use crate::db::Conn;
use crate::machine::{CpuShares, CpuSnapshot};

/// About the size of what the broker commits for one lookup's record, less its bookkeeping columns.
const PAYLOAD: &str = r#"{"kind":"bench.insert","query_type":"entry_exit_last_year","subject_id":"A123456789","purpose_code":"sw_statutory_business","case_number":"TPE-SW-2026-000123"}"#;

/// What one run measured. As wrk counts requests, only INSERTs committed within the run's time
/// count for the rate and the percentiles; one still waiting for the SQLite lock at the end may
/// finish seconds later (up to the busy timeout), and shows in `late` and `slowest`.
#[derive(Debug, Clone, Default)]
pub struct InsertReport {
    /// Committed within the run's time.
    pub committed: u64,
    /// Committed after the run's time was up (started before).
    pub late: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// The run's time: from the moment every thread had its connection.
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// The slowest INSERT of all, late ones included.
    pub slowest: Duration,
    /// Where the CPUs' time went meanwhile.
    pub cpu: CpuShares,
}

impl InsertReport {
    pub fn per_sec(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Creates the table (if missing) in the database at `url`.
pub fn prepare(url: &str) -> anyhow::Result<()> {
    let mut conn = Conn::establish(url).context("connecting for the INSERT table")?;
    conn.batch_execute("CREATE TABLE IF NOT EXISTS bench_inserts (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
        .context("creating bench_inserts")?;
    Ok(())
}

/// `threads` threads, each with its own connection, INSERTing one row per transaction for
/// `duration`. Blocking: run it off the async executor (the stack's background tasks share it).
/// `servers`: the database server's process names, whose CPU time is the run's own, not noise.
pub fn run(url: &str, threads: usize, duration: Duration, servers: &[&str]) -> anyhow::Result<InsertReport> {
    let threads = threads.max(1);
    // Every worker and this thread meet once all connections are open (the clock starts), again
    // once all have stopped inserting, and a last time once this thread has read the CPU use: so
    // connection setup is not timed, and a database server's backends are still alive, and so
    // counted, when the CPU use is read.
    let start = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(Barrier::new(threads + 1));
    let read = Arc::new(Barrier::new(threads + 1));
    let deadline = Arc::new(std::sync::OnceLock::<Instant>::new());
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (url, deadline) = (url.to_owned(), deadline.clone());
            let (start, stop, read) = (start.clone(), stop.clone(), read.clone());
            thread::spawn(move || {
                let mut conn = Conn::establish(&url);
                start.wait();
                let outcome = match &mut conn {
                    Ok(conn) => Ok(insert_until(conn, *deadline.wait())),
                    Err(err) => Err(anyhow::anyhow!("{err:#}")),
                };
                stop.wait();
                read.wait();
                drop(conn);
                outcome
            })
        })
        .collect();
    start.wait();
    let before = CpuSnapshot::take_counting(servers);
    let started = Instant::now();
    let _ = deadline.set(started + duration);
    stop.wait();
    let cpu = CpuSnapshot::take_counting(servers).shares_since(&before);
    read.wait();
    let mut report = InsertReport { elapsed: duration, cpu, ..InsertReport::default() };
    let mut latencies = Vec::new();
    let mut connect_errors = Vec::new();
    for worker in workers {
        match worker.join() {
            Ok(Ok(one)) => {
                report.committed += one.latencies.len() as u64;
                report.late += one.late;
                report.slowest = report.slowest.max(one.slowest);
                report.failed += one.failed;
                report.first_error = report.first_error.or(one.first_error);
                latencies.extend(one.latencies);
            }
            Ok(Err(err)) => connect_errors.push(format!("{err:#}")),
            Err(_) => connect_errors.push("a writer thread panicked".into()),
        }
    }
    if let Some(first) = connect_errors.first() {
        bail!("{} of {threads} writer connections failed; the first: {first}", connect_errors.len());
    }
    latencies.sort_unstable();
    report.p50 = percentile(&latencies, 50.0);
    report.p99 = percentile(&latencies, 99.0);
    Ok(report)
}

/// One writer's share of a run.
#[derive(Default)]
struct Writer {
    /// Latency of every INSERT committed before the deadline.
    latencies: Vec<Duration>,
    late: u64,
    slowest: Duration,
    failed: u64,
    first_error: Option<String>,
}

fn insert_until(conn: &mut Conn, deadline: Instant) -> Writer {
    let mut writer = Writer::default();
    while Instant::now() < deadline {
        let id = uuid::Uuid::now_v7().to_string();
        let begun = Instant::now();
        match conn.insert(&id, PAYLOAD) {
            Ok(()) => {
                let latency = begun.elapsed();
                writer.slowest = writer.slowest.max(latency);
                if begun + latency <= deadline {
                    writer.latencies.push(latency);
                } else {
                    writer.late += 1;
                }
            }
            Err(err) => {
                writer.failed += 1;
                writer.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    writer
}
