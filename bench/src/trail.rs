//! Whether the audit trail kept up with the lookups: the broker answers a lookup once its record is
//! durable in the broker's own outbox, and relays it to the audit service afterwards. After a load
//! the bench counts, straight from the two databases (a benchmark may; a service may not),
//! `lookup.requested` records in the audit service and outbox events not yet delivered, until every
//! answered lookup is in the audit service and nothing is left to relay.

use std::time::{Duration, Instant};

use anyhow::Context;
use immilink_shared::events::kind::LOOKUP_REQUESTED;

use crate::db::Conn;

/// Where the relay stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `lookup.requested` records the audit service holds.
    pub requested: i64,
    /// Broker outbox events (of any kind) not yet accepted by the audit service.
    pub undelivered: i64,
}

/// Connections to the audit service's and the broker's databases.
pub struct Trail {
    audit: Conn,
    broker: Conn,
}

/// How a wait for the relay ended.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Where it stood when the wait began (the end of the load).
    pub at_start: Progress,
    /// Where it stood at the end.
    pub at_end: Progress,
    /// From the start of the wait until it had caught up; `None` if it never did within the limit.
    pub caught_up_after: Option<Duration>,
}

impl Trail {
    pub fn open(audit_url: &str, broker_url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            audit: Conn::establish(audit_url).context("connecting to the audit database")?,
            broker: Conn::establish(broker_url).context("connecting to the broker database")?,
        })
    }

    pub fn progress(&mut self) -> anyhow::Result<Progress> {
        let requested = self
            .audit
            .count(&format!("SELECT count(*) AS n FROM audit_records WHERE kind = '{LOOKUP_REQUESTED}'"))
            .context("counting audit records")?;
        let undelivered = self
            .broker
            .count("SELECT count(*) AS n FROM outbox WHERE delivered_at IS NULL")
            .context("counting undelivered outbox events")?;
        Ok(Progress { requested, undelivered })
    }

    /// Polls every `every` until the audit service holds at least `expected` `lookup.requested`
    /// records and the outbox is empty, or `limit` has passed. Blocking.
    pub fn wait_until_drained(&mut self, expected: i64, every: Duration, limit: Duration) -> anyhow::Result<Drain> {
        let started = Instant::now();
        let at_start = self.progress()?;
        let mut now = at_start;
        loop {
            if now.requested >= expected && now.undelivered == 0 {
                return Ok(Drain { at_start, at_end: now, caught_up_after: Some(started.elapsed()) });
            }
            if started.elapsed() >= limit {
                return Ok(Drain { at_start, at_end: now, caught_up_after: None });
            }
            std::thread::sleep(every);
            now = self.progress()?;
        }
    }
}
