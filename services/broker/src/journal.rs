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
//! A batch that fails is retried entry by entry, so one bad entry cannot fail its neighbours; an
//! outcome that cannot be written is kept and retried with the next batch (bounded).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use immilink_shared::clock::SharedClock;
use immilink_shared::db::{Db, DbConn};
use immilink_shared::events::AuditEvent;
use tokio::sync::{mpsc, oneshot};

use crate::domain::lookup::{self, NewLookup, Outcome};
use crate::domain::{outbox, BrokerError};

/// Entries one transaction takes at most.
const MAX_BATCH: usize = 512;
/// Entries waiting for the writer; senders wait (backpressure) when it is full.
const QUEUE: usize = 8192;
/// Outcomes kept for retry while the database is down; beyond this they are dropped and their
/// lookups end as `outcome_unknown`.
const MAX_RETAINED_OUTCOMES: usize = 100_000;

enum Entry {
    Requested { lookup: Box<NewLookup>, event: AuditEvent, done: oneshot::Sender<Result<(), String>> },
    Outcome { lookup_id: String, outcome: Outcome, event: AuditEvent },
    Event { event: AuditEvent, done: oneshot::Sender<Result<(), String>> },
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
        let writer = Writer { db, clock, retained: Vec::new(), commits: Arc::clone(&commits) };
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
        self.submit(Entry::Requested { lookup: Box::new(lookup), event, done }).await?;
        committed.await.map_err(|_| NotRecorded("the journal stopped before committing".into()))?.map_err(NotRecorded)
    }

    /// Queues the outcome and its `lookup.completed` event for the next commit.
    pub async fn record_outcome(&self, lookup_id: String, outcome: Outcome, event: AuditEvent) {
        if self.submit(Entry::Outcome { lookup_id: lookup_id.clone(), outcome, event }).await.is_err() {
            tracing::error!(lookup_id, "journal stopped; the lookup will be closed as outcome_unknown");
        }
    }

    /// Commits an event that no lookup row goes with (a refusal); returns once it is durable.
    pub async fn record_event(&self, event: AuditEvent) -> Result<(), NotRecorded> {
        let (done, committed) = oneshot::channel();
        self.submit(Entry::Event { event, done }).await?;
        committed.await.map_err(|_| NotRecorded("the journal stopped before committing".into()))?.map_err(NotRecorded)
    }
}

struct Writer {
    db: Db,
    clock: SharedClock,
    retained: Vec<Entry>,
    commits: Arc<AtomicU64>,
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

    /// Writes `batch` in one transaction; on failure, entry by entry.
    fn commit(&mut self, batch: Vec<Entry>) {
        let now = self.clock.now();
        let result = self.db.get().map_err(BrokerError::from).and_then(|mut conn| {
            conn.write_transaction(|conn| {
                conn.plan_for_actual_values()?;
                // Nobody waits on a batch of outcomes alone: it need not wait for its own flush.
                if batch.iter().all(|entry| matches!(entry, Entry::Outcome { .. })) {
                    conn.relax_commit_durability()?;
                }
                write_batch(conn, now, &batch)
            })
        });
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                batch.into_iter().for_each(|entry| settle(entry, Ok(())));
            }
            Err(err) if batch.len() == 1 => self.settle_failed(batch, &err),
            Err(err) => {
                tracing::warn!(error = %err, entries = batch.len(), "journal batch failed; retrying entry by entry");
                for entry in batch {
                    self.commit(vec![entry]);
                }
            }
        }
    }

    fn settle_failed(&mut self, batch: Vec<Entry>, err: &BrokerError) {
        for entry in batch {
            match entry {
                Entry::Outcome { .. } if self.retained.len() < MAX_RETAINED_OUTCOMES => self.retained.push(entry),
                Entry::Outcome { lookup_id, .. } => {
                    tracing::error!(lookup_id, error = %err, "outcome dropped; the lookup ends as outcome_unknown");
                }
                other => settle(other, Err(err.to_string())),
            }
        }
    }
}

/// Writes a batch with a handful of statements: one multi-row INSERT of the new lookups, one UPDATE
/// per distinct outcome, one multi-row INSERT of the events (of outcomes, only those still open).
fn write_batch(conn: &mut DbConn, now: chrono::DateTime<chrono::Utc>, batch: &[Entry]) -> Result<(), BrokerError> {
    let requested: Vec<&NewLookup> = batch
        .iter()
        .filter_map(|entry| match entry {
            Entry::Requested { lookup, .. } => Some(lookup.as_ref()),
            _ => None,
        })
        .collect();
    lookup::insert_requested_many(conn, &requested)?;
    let outcomes: Vec<(&str, &Outcome)> = batch
        .iter()
        .filter_map(|entry| match entry {
            Entry::Outcome { lookup_id, outcome, .. } => Some((lookup_id.as_str(), outcome)),
            _ => None,
        })
        .collect();
    let open = lookup::apply_outcomes(conn, now, &outcomes)?;
    let events: Vec<AuditEvent> = batch
        .iter()
        .filter_map(|entry| match entry {
            Entry::Requested { event, .. } | Entry::Event { event, .. } => Some(event.clone()),
            Entry::Outcome { lookup_id, event, .. } => open.contains(lookup_id).then(|| event.clone()),
        })
        .collect();
    outbox::enqueue_many(conn, now, &events)
}

fn settle(entry: Entry, result: Result<(), String>) {
    match entry {
        Entry::Requested { done, .. } | Entry::Event { done, .. } => {
            // The waiter may have gone (its client disconnected): the record stands regardless.
            let _ = done.send(result);
        }
        Entry::Outcome { .. } => {
            if let Err(err) = result {
                tracing::error!(error = %err, "journal entry could not be written");
            }
        }
    }
}
