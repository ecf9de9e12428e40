//! Delivers outbox events to the audit service: at least once, in order, in batches; idempotent there
//! by event id. Woken after every commit that adds events, and polling as a fallback, so an event whose
//! wake-up was missed (or that a previous process left behind) is still delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use immilink_shared::auth::ServiceTokens;
use immilink_shared::clock::SharedClock;
use immilink_shared::db::Db;
use immilink_shared::events::{BatchReceipt, EventBatch};
use tokio::sync::Notify;

use crate::domain::{outbox, BrokerError};

/// Events per delivery (the audit service takes at most 1000 per request).
const BATCH: i64 = 1000;
const POLL: Duration = Duration::from_millis(500);
/// After a partial batch, wait this long for more events before the next delivery: at low load one
/// delivery (one audit transaction, one fsync) carries many lookups instead of one each.
const LINGER: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Relay {
    db: Db,
    clock: SharedClock,
    http: reqwest::Client,
    events_url: String,
    tokens: std::sync::Arc<ServiceTokens>,
    wake: Arc<Notify>,
    oldest_undelivered: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl Relay {
    pub fn new(
        db: Db,
        clock: SharedClock,
        http: reqwest::Client,
        audit_url: &str,
        tokens: std::sync::Arc<ServiceTokens>,
    ) -> Self {
        Self {
            db,
            clock,
            http,
            events_url: format!("{}/internal/v1/events", audit_url.trim_end_matches('/')),
            tokens,
            wake: Arc::new(Notify::new()),
            oldest_undelivered: Arc::new(Mutex::new(None)),
        }
    }

    /// When the oldest event still waiting for the audit service was recorded, as of the relay's
    /// last look (`None`: nothing waits). Lookups are refused once this is older than the backlog
    /// bound (see `Settings::audit_backlog_max_age`).
    pub fn oldest_undelivered(&self) -> Option<DateTime<Utc>> {
        *self.oldest_undelivered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn note_oldest(&self, oldest: Option<DateTime<Utc>>) {
        *self.oldest_undelivered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = oldest;
    }

    /// Signals that new events were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until the runtime stops.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.deliver_once().await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Ok(delivered) => {
                    backoff = Duration::from_millis(100);
                    if (delivered as i64) < BATCH {
                        tokio::time::sleep(LINGER).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "audit relay failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Delivers one batch; returns how many events were delivered.
    pub async fn deliver_once(&self) -> Result<usize, String> {
        let started = std::time::Instant::now();
        let events =
            self.db.run(|conn| outbox::pending(conn, BATCH)).await.map_err(|err: BrokerError| err.to_string())?;
        self.note_oldest(events.first().map(|event| event.occurred_at));
        if events.is_empty() {
            return Ok(0);
        }
        let full_batch = events.len() as i64 == BATCH;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let read_ms = started.elapsed().as_millis() as u64;
        match self.post(EventBatch { events }).await {
            Ok(receipt) => {
                let posted_ms = started.elapsed().as_millis() as u64;
                let now = self.clock.now();
                let count = ids.len();
                self.db
                    .run(move |conn| outbox::mark_delivered(conn, now, &ids))
                    .await
                    .map_err(|err: BrokerError| err.to_string())?;
                if !full_batch {
                    self.note_oldest(None);
                }
                tracing::debug!(
                    count,
                    read_ms,
                    posted_ms,
                    marked_ms = started.elapsed().as_millis() as u64,
                    appended = receipt.appended,
                    duplicates = receipt.duplicates,
                    "relayed audit events"
                );
                Ok(count)
            }
            Err(reason) => {
                let error = reason.clone();
                let _ =
                    self.db.run(move |conn| outbox::mark_failed(conn, &ids, &error)).await.map_err(|e: BrokerError| e);
                Err(reason)
            }
        }
    }

    async fn post(&self, batch: EventBatch) -> Result<BatchReceipt, String> {
        let headers = self.tokens.headers().await.map_err(|err| err.to_string())?;
        let response = self
            .http
            .post(&self.events_url)
            .headers(headers)
            .timeout(Duration::from_secs(10))
            .json(&batch)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("audit answered {status}"));
        }
        response.json().await.map_err(|err| err.to_string())
    }
}
