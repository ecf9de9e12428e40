//! The broker's write path (R-QRY-08) with group commit. Every lookup's audit record must be durable
//! before the lookup is forwarded, so each lookup costs at least one synchronous commit; one writer
//! thread takes everything queued since its last commit and writes it in ONE transaction, so 64
//! concurrent lookups share a handful of commits (fsyncs) instead of queueing for 64.
//!
//! - `record_requested` waits for its commit: only then may the caller forward the lookup.
//! - `record_refusal` waits too (a refusal is answered either way; a failure is logged).
//! - `record_outcome` does not wait: it rides on the next commit. A crash before that commit leaves
//!   the lookup `requested`, which [`crate::domain::lookup::close_interrupted`] later closes as
//!   `outcome_unknown`: never unrecorded.
//!
//! The database going away must not stop the broker (every lookup waits on this thread):
//! - Transactions run on a committer thread with a connection of its own (not a pooled one). On
//!   PostgreSQL the writer waits for a batch at most [`Db::work_bound`] (the connect timeout plus the
//!   statement timeout); a committer that has not answered by then (its connection stopped
//!   answering) is abandoned with its connection, the batch is failed, and the next batch gets a new
//!   committer and a fresh connection. The connection's own bounds (keepalives, `tcp_user_timeout`)
//!   end the abandoned thread later.
//! - A batch whose connection was lost, that could not get one, or that timed out is failed as a
//!   whole: its commit may or may not have happened, so its lookups are refused (503
//!   `audit_unavailable`) and NOT forwarded; one left recorded that way is closed as
//!   `outcome_unknown` like a crash's. The dead connection is dropped and the next batch opens a new
//!   one, so a refused or reset connection refuses lookups at once instead of holding them. Only a
//!   batch that failed before anything was sent (its `BEGIN` found the connection dead) is tried
//!   again, once, on a new connection.
//! - A batch that failed on a healthy connection (a bad entry) is retried entry by entry, so one bad
//!   entry cannot fail its neighbours, within the same bound.
//! - An outcome that cannot be written is kept and retried with the next batch (bounded); writing
//!   it twice is harmless (only a lookup still open takes an outcome).
//!
//! On SQLite nothing is bounded here: waits are bounded by its busy timeout, as before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::r2d2::R2D2Connection;
use immilink_shared::clock::SharedClock;
use immilink_shared::db::{Db, DbConn};
use immilink_shared::events::AuditEvent;
use tokio::sync::{mpsc, oneshot};

use crate::domain::lookup::{self, NewLookup, Outcome};
use crate::domain::BrokerError;
use immilink_shared::outbox;

/// Entries one transaction takes at most.
const MAX_BATCH: usize = 512;
/// Entries waiting for the writer; senders wait (backpressure) when it is full.
const QUEUE: usize = 8192;
/// Outcomes kept for retry while the database is down; beyond this they are dropped and their
/// lookups end as `outcome_unknown`.
const MAX_RETAINED_OUTCOMES: usize = 100_000;

/// What one entry writes.
#[derive(Clone)]
enum Record {
    Requested { lookup: Box<NewLookup>, event: AuditEvent },
    Outcome { lookup_id: String, outcome: Outcome, event: AuditEvent },
    Event { event: AuditEvent },
}

/// A record and who waits for its commit (nobody for an outcome).
struct Entry {
    record: Record,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Why a record could not be made durable.
#[derive(Debug, thiserror::Error)]
#[error("the audit record could not be stored: {0}")]
pub struct NotRecorded(pub String);

/// Handle to the writer thread. Cheap to clone; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Journal {
    queue: mpsc::Sender<Entry>,
    commits: Arc<AtomicU64>,
}

impl Journal {
    /// Starts the writer thread on `db`.
    pub fn start(db: Db, clock: SharedClock) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let bound = db.work_bound();
        let writer = Writer { db, clock, bound, committer: None, retained: Vec::new(), commits: Arc::clone(&commits) };
        std::thread::Builder::new().name("broker-journal".into()).spawn(move || writer.run(receiver))?;
        Ok(Self { queue, commits })
    }

    /// Transactions committed so far (each made everything queued before it durable).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn submit(&self, entry: Entry) -> Result<(), NotRecorded> {
        self.queue.send(entry).await.map_err(|_| NotRecorded("the journal has stopped".into()))
    }

    /// Commits the lookup and its `lookup.requested` event; returns once they are durable.
    pub async fn record_requested(&self, lookup: NewLookup, event: AuditEvent) -> Result<(), NotRecorded> {
        let (done, committed) = oneshot::channel();
        self.submit(Entry { record: Record::Requested { lookup: Box::new(lookup), event }, done: Some(done) }).await?;
        committed.await.map_err(|_| NotRecorded("the journal stopped before committing".into()))?.map_err(NotRecorded)
    }

    /// Queues the outcome and its `lookup.completed` event for the next commit.
    pub async fn record_outcome(&self, lookup_id: String, outcome: Outcome, event: AuditEvent) {
        let record = Record::Outcome { lookup_id: lookup_id.clone(), outcome, event };
        if self.submit(Entry { record, done: None }).await.is_err() {
            tracing::error!(lookup_id, "journal stopped; the lookup will be closed as outcome_unknown");
        }
    }

    /// Commits an event that no lookup row goes with (a refusal); returns once it is durable.
    pub async fn record_event(&self, event: AuditEvent) -> Result<(), NotRecorded> {
        let (done, committed) = oneshot::channel();
        self.submit(Entry { record: Record::Event { event }, done: Some(done) }).await?;
        committed.await.map_err(|_| NotRecorded("the journal stopped before committing".into()))?.map_err(NotRecorded)
    }
}

struct Writer {
    db: Db,
    clock: SharedClock,
    /// The longest a batch may take (PostgreSQL); `None`: wait for it (SQLite, bounded by its busy
    /// timeout).
    bound: Option<Duration>,
    /// The thread running transactions; replaced when one does not finish within the bound.
    committer: Option<Committer>,
    retained: Vec<Entry>,
    commits: Arc<AtomicU64>,
}

/// How one attempt at committing a batch ended.
#[derive(Debug)]
enum Attempt {
    Committed,
    /// Nothing was sent: the connection was found dead at `BEGIN`. Safe to try another.
    NotBegun(String),
    /// The transaction failed. `connection_lost`: the database could not be reached or the connection
    /// died mid-transaction (the commit's outcome is unknown); otherwise the database refused a
    /// statement and rolled the transaction back.
    Failed {
        error: String,
        connection_lost: bool,
    },
    /// No answer within the bound: the outcome is unknown.
    TimedOut(Duration),
}

impl Attempt {
    fn error(&self) -> String {
        match self {
            Attempt::Committed => String::new(),
            Attempt::NotBegun(error) | Attempt::Failed { error, .. } => error.clone(),
            Attempt::TimedOut(bound) => {
                format!("the database did not answer within {} ms; the outcome is unknown", bound.as_millis())
            }
        }
    }
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Entry>) {
        loop {
            let first = if self.retained.is_empty() {
                match receiver.blocking_recv() {
                    Some(entry) => Some(entry),
                    None => return,
                }
            } else {
                // Outcomes wait for a retry: do not block forever on new entries.
                std::thread::sleep(Duration::from_millis(200));
                None
            };
            let mut batch: Vec<Entry> = std::mem::take(&mut self.retained);
            batch.extend(first);
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(entry) => batch.push(entry),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    /// Writes `batch` in one transaction; after a refused statement, entry by entry.
    fn commit(&mut self, batch: Vec<Entry>) {
        let attempt = self.attempt(&batch);
        match attempt {
            Attempt::Committed => self.settle_committed(batch),
            Attempt::Failed { connection_lost: false, .. } if batch.len() > 1 => {
                tracing::warn!(error = %attempt.error(), entries = batch.len(), "journal batch failed; retrying entry by entry");
                let deadline = self.bound.map(|bound| Instant::now() + bound);
                let mut entries = batch.into_iter();
                while let Some(entry) = entries.next() {
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        let rest: Vec<Entry> = std::iter::once(entry).chain(entries).collect();
                        self.settle_failed(rest, "the journal ran out of time retrying a failed batch");
                        return;
                    }
                    let single = vec![entry];
                    match self.attempt(&single) {
                        Attempt::Committed => self.settle_committed(single),
                        Attempt::Failed { connection_lost: false, error } => self.settle_failed(single, &error),
                        // The database went away meanwhile: the rest would only wait for it too.
                        lost => {
                            let error = lost.error();
                            tracing::error!(error, "journal lost its database while retrying; failing the batch");
                            self.settle_failed(single.into_iter().chain(entries).collect(), &error);
                            return;
                        }
                    }
                }
            }
            failed => {
                tracing::error!(
                    error = %failed.error(),
                    entries = batch.len(),
                    "journal batch failed; nothing in it is forwarded"
                );
                self.settle_failed(batch, &failed.error());
            }
        }
    }

    /// Commits the records of `batch` once, within the bound.
    fn attempt(&mut self, batch: &[Entry]) -> Attempt {
        let records: Arc<Vec<Record>> = Arc::new(batch.iter().map(|entry| entry.record.clone()).collect());
        let deadline = self.bound.map(|bound| Instant::now() + bound);
        self.on_committer(Job { records, now: self.clock.now() }, deadline)
    }

    /// Runs `job` on the committer thread and waits for it until `deadline`. A committer that does
    /// not answer in time is abandoned (it ends once its connection gives up) and replaced.
    fn on_committer(&mut self, job: Job, deadline: Option<Instant>) -> Attempt {
        let committer = match self.committer.take() {
            Some(committer) => committer,
            None => match Committer::start(self.db.clone()) {
                Ok(committer) => committer,
                Err(err) => {
                    return Attempt::Failed { error: format!("no committer thread: {err}"), connection_lost: true }
                }
            },
        };
        if committer.jobs.send(job).is_err() {
            return Attempt::Failed { error: "the committer thread stopped".into(), connection_lost: true };
        }
        let answer = match deadline {
            Some(deadline) => committer
                .results
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|err| match err {
                    std::sync::mpsc::RecvTimeoutError::Timeout => true,
                    std::sync::mpsc::RecvTimeoutError::Disconnected => false,
                }),
            None => committer.results.recv().map_err(|_| false),
        };
        match answer {
            Ok(attempt) => {
                self.committer = Some(committer);
                attempt
            }
            Err(true) => {
                let bound = self.bound.unwrap_or_default();
                tracing::error!(
                    bound_ms = bound.as_millis() as u64,
                    "journal commit did not finish in time; abandoning its connection"
                );
                Attempt::TimedOut(bound)
            }
            Err(false) => Attempt::Failed { error: "the committer thread stopped".into(), connection_lost: true },
        }
    }

    fn settle_committed(&mut self, batch: Vec<Entry>) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        batch.into_iter().for_each(|entry| settle(entry, Ok(())));
    }

    fn settle_failed(&mut self, batch: Vec<Entry>, err: &str) {
        for entry in batch {
            match entry.record {
                Record::Outcome { .. } if self.retained.len() < MAX_RETAINED_OUTCOMES => self.retained.push(entry),
                Record::Outcome { lookup_id, .. } => {
                    tracing::error!(lookup_id, error = %err, "outcome dropped; the lookup ends as outcome_unknown");
                }
                _ => settle(entry, Err(err.to_owned())),
            }
        }
    }
}

/// One transaction for the committer thread.
struct Job {
    records: Arc<Vec<Record>>,
    now: chrono::DateTime<chrono::Utc>,
}

/// The thread that runs the journal's transactions, so the writer can stop waiting for one.
struct Committer {
    jobs: std::sync::mpsc::Sender<Job>,
    results: std::sync::mpsc::Receiver<Attempt>,
}

impl Committer {
    fn start(db: Db) -> std::io::Result<Self> {
        let (jobs, job_queue) = std::sync::mpsc::channel::<Job>();
        let (answers, results) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("broker-journal-commit".into()).spawn(move || {
            let mut connection = None;
            for job in job_queue {
                if answers.send(commit_records(&db, &mut connection, &job)).is_err() {
                    return; // abandoned: nobody waits for this answer any more
                }
            }
        })?;
        Ok(Self { jobs, results })
    }
}

/// One transaction writing `job`'s records on the committer's own connection (not a pooled one: the
/// journal never queues behind request handlers for a connection, and when the database is down a
/// refused connection fails the batch at once instead of after the pool's wait). A connection found
/// broken is dropped and a new one opened; a batch whose `BEGIN` found the connection dead (nothing
/// was sent) is tried once more on the new one.
fn commit_records(db: &Db, connection: &mut Option<DbConn>, job: &Job) -> Attempt {
    let mut last = None;
    for _ in 0..2 {
        let conn = match connection {
            Some(conn) => conn,
            None => match db.open_connection() {
                Ok(conn) => connection.insert(conn),
                Err(err) => return Attempt::Failed { error: err.to_string(), connection_lost: true },
            },
        };
        let attempt = commit_on(conn, job);
        if matches!(attempt, Attempt::NotBegun(_) | Attempt::Failed { connection_lost: true, .. }) || conn.is_broken() {
            *connection = None; // dead: the next try (or batch) opens a fresh one
        }
        match attempt {
            Attempt::NotBegun(ref error) => {
                tracing::warn!(error, "journal found its database connection dead; reconnecting");
                last = Some(attempt);
            }
            other => return other,
        }
    }
    last.unwrap_or(Attempt::Failed { error: "no attempt".into(), connection_lost: true })
}

fn commit_on(conn: &mut DbConn, job: &Job) -> Attempt {
    let mut began = false;
    let result = conn.write_transaction(|conn| {
        began = true;
        conn.plan_for_actual_values()?;
        // Nobody waits on a batch of outcomes alone: it need not wait for its own flush.
        if job.records.iter().all(|record| matches!(record, Record::Outcome { .. })) {
            conn.relax_commit_durability()?;
        }
        write_batch(conn, job.now, &job.records)
    });
    match result {
        Ok(()) => Attempt::Committed,
        Err(err) => {
            let lost_by_error = matches!(&err, BrokerError::Db(db) if db.is_connection_lost());
            let connection_lost = lost_by_error || conn.is_broken() || !conn.still_answers();
            match (began, connection_lost) {
                (false, true) => Attempt::NotBegun(err.to_string()),
                _ => Attempt::Failed { error: err.to_string(), connection_lost },
            }
        }
    }
}

/// Writes a batch with a handful of statements: one multi-row INSERT of the new lookups, one UPDATE
/// per distinct outcome, one multi-row INSERT of the events (of outcomes, only those still open).
fn write_batch(conn: &mut DbConn, now: chrono::DateTime<chrono::Utc>, batch: &[Record]) -> Result<(), BrokerError> {
    let requested: Vec<&NewLookup> = batch
        .iter()
        .filter_map(|record| match record {
            Record::Requested { lookup, .. } => Some(lookup.as_ref()),
            _ => None,
        })
        .collect();
    lookup::insert_requested_many(conn, &requested)?;
    let outcomes: Vec<(&str, &Outcome)> = batch
        .iter()
        .filter_map(|record| match record {
            Record::Outcome { lookup_id, outcome, .. } => Some((lookup_id.as_str(), outcome)),
            _ => None,
        })
        .collect();
    let open = lookup::apply_outcomes(conn, now, &outcomes)?;
    let events: Vec<AuditEvent> = batch
        .iter()
        .filter_map(|record| match record {
            Record::Requested { event, .. } | Record::Event { event } => Some(event.clone()),
            Record::Outcome { lookup_id, event, .. } => open.contains(lookup_id).then(|| event.clone()),
        })
        .collect();
    Ok(outbox::enqueue_many(conn, now, &events)?)
}

fn settle(entry: Entry, result: Result<(), String>) {
    match entry.done {
        // The waiter may have gone (its client disconnected): the record stands regardless.
        Some(done) => {
            let _ = done.send(result);
        }
        None => {
            if let Err(err) = result {
                tracing::error!(error = %err, "journal entry could not be written");
            }
        }
    }
}
