//! Delivers the audit service's notices (`domain::notifications`) to identity, which knows who holds
//! a role and their addresses: at least once, oldest first, idempotent there by notice id. Outside
//! the domain because it speaks HTTP, like `witness.rs`.

use std::sync::Arc;
use std::time::Duration;

use immilink_shared::auth::ServiceTokens;
use immilink_shared::clock::SharedClock;
use immilink_shared::db::Db;

use crate::domain::notifications::{self, StoredNotice};
use crate::domain::AuditError;

/// A notice as identity takes it at `POST /internal/v1/notices` (idempotent there by `id`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NoticeDelivery {
    pub id: String,
    pub agency: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    pub roles: Vec<String>,
    pub subject: String,
    pub body: String,
}

impl From<&StoredNotice> for NoticeDelivery {
    fn from(notice: &StoredNotice) -> Self {
        Self {
            id: notice.id.clone(),
            agency: notice.agency.clone(),
            unit: notice.unit.clone(),
            roles: notice.recipient_roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
            subject: notice.subject.clone(),
            body: notice.body.clone(),
        }
    }
}

/// Notices per round.
const RELAY_BATCH: i64 = 100;
/// How often the relay looks for new notices while idle.
const RELAY_POLL: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one delivery may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers `audit_notifications` to identity: at least once, one by one in the order they were
/// written (a failure stops the round, so no notice overtakes an earlier one), each attempt counted;
/// identity stores each notice id once, so redelivery is harmless. Backs off while identity fails.
#[derive(Clone)]
pub struct NoticeRelay {
    db: Db,
    clock: SharedClock,
    http: reqwest::Client,
    url: String,
    tokens: Arc<ServiceTokens>,
}

impl NoticeRelay {
    pub fn new(
        db: Db,
        clock: SharedClock,
        http: reqwest::Client,
        identity_url: &str,
        tokens: Arc<ServiceTokens>,
    ) -> Self {
        let url = format!("{}/internal/v1/notices", identity_url.trim_end_matches('/'));
        Self { db, clock, http, url, tokens }
    }

    /// Runs until the runtime stops.
    pub async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.deliver_once().await {
                Ok(delivered) if delivered as i64 == RELAY_BATCH => backoff = FIRST_BACKOFF,
                Ok(_) => {
                    backoff = FIRST_BACKOFF;
                    tokio::time::sleep(RELAY_POLL).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "notices not delivered to identity");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One round: delivers the pending notices in order until one fails; returns how many were
    /// delivered, or why the round stopped.
    pub async fn deliver_once(&self) -> Result<usize, String> {
        let pending = self
            .db
            .run(|conn| notifications::pending(conn, RELAY_BATCH))
            .await
            .map_err(|err: AuditError| err.to_string())?;
        let mut delivered = 0;
        for notice in &pending {
            let id = notice.id.clone();
            match self.post(&NoticeDelivery::from(notice)).await {
                Ok(()) => {
                    let now = self.clock.now();
                    self.db
                        .run(move |conn| notifications::mark_delivered(conn, now, &id))
                        .await
                        .map_err(|err: AuditError| err.to_string())?;
                    delivered += 1;
                }
                Err(reason) => {
                    if let Err(err) = self.db.run(move |conn| notifications::mark_failed(conn, &id)).await {
                        let err: AuditError = err;
                        tracing::warn!(error = %err, "could not count the failed notice delivery");
                    }
                    return Err(format!("notice {}: {reason}", notice.id));
                }
            }
        }
        Ok(delivered)
    }

    async fn post(&self, notice: &NoticeDelivery) -> Result<(), String> {
        let headers = self.tokens.headers().await.map_err(|err| err.to_string())?;
        let response = self
            .http
            .post(&self.url)
            .headers(headers)
            .timeout(CALL_TIMEOUT)
            .json(notice)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!("identity answered {status}: {}", body.chars().take(300).collect::<String>()));
        }
        Ok(())
    }
}

/// The relay as a background task of the service (see [`NoticeRelay`]).
pub async fn run_relay(
    db: Db,
    clock: SharedClock,
    http: reqwest::Client,
    identity_url: String,
    tokens: Arc<ServiceTokens>,
) {
    NoticeRelay::new(db, clock, http, &identity_url, tokens).run().await
}
