//! The bulk lookup worker (R-QRY-05): runs each item of each open batch as its own audited lookup,
//! through the same pipeline as a single lookup ([`crate::pipeline::Lookups::run`]: audit record
//! durable first, then the upstream, then the outcome; R-QRY-08).
//!
//! - **Order and fairness.** Open batches (`queued`, `running`) are taken oldest first, one round
//!   each in turn; a round runs up to [`ROUND_ITEMS`] items (or [`ROUND_TIME`]) with [`LANES`]
//!   lookups in flight. Starting at every round, the worker also picks up batches left open by a
//!   previous process, so a restart resumes where it stopped.
//! - **The submitter must still be active, and the link usable.** Before every round (so before
//!   starting, then at least every 100 items) the worker asks identity for the submitter's account;
//!   an account that is no longer active (cancelled, suspended, terminated, moved to another agency)
//!   or unknown (R-ACC-05: access stops at once), an agency link that can no longer be used or no
//!   longer carries the query type (R-LINK), or a tuple no longer granted (R-QRY-02) ends the batch
//!   `cancelled` with the reason, and its pending items are `cancelled`, naming the rule
//!   ([`batches::may_continue`]). When identity cannot answer, nothing runs (fail closed) and the
//!   worker retries.
//! - **Waiting instead of failing.** When the audit trail is behind (R-QRY-08), the upstream's
//!   circuit is open or the upstream is down (R-QRY-09), or the agency's pace is used up, the agency's
//!   batches wait (with backoff up to 30 s) rather than fail. An item whose lookup met an upstream
//!   outage is retried later (each attempt is its own audited lookup), up to [`MAX_ATTEMPTS`]
//!   attempts in this process, then failed. After a wait the agency's batches resume on one lane
//!   until a round succeeds, so a half-open circuit sees one probe, not four. Any other refusal or upstream answer fails the item with
//!   the problem code and the lookup id, and the batch goes on.
//! - **Exclusive items.** An item is claimed by a conditional update before its lookup starts, so two
//!   workers (two replicas) never run the same item. An item left `running` by a worker that stopped
//!   is settled once it has stayed so for [`STALE_AFTER`]: put back to `pending` if no lookup was
//!   recorded for it (then nothing was forwarded), otherwise failed as `interrupted`, naming the
//!   lookup (its result was not kept).
//! - **Wake-ups.** A submission wakes the worker at once ([`wake`]); otherwise it polls every second.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix_web::web;
use immilink_shared::catalogue::QueryType;
use immilink_shared::ApiError;
use tokio::sync::Notify;

use crate::domain::batches::{self, BatchRow, ClaimedItem, ItemError, Reconciled};
use crate::domain::lookup::Context;
use crate::domain::request::{parse_subject, LookupRequest};
use crate::domain::{BatchId, BrokerError, LookupId};
use crate::pipeline::{Accepted, Declared, LookupFailure};
use crate::State;
use immilink_shared::typed::AgencyCode;

/// Lookups in flight per batch round.
pub const LANES: usize = 4;
/// Items per round; the submitter's account is checked before each round.
pub const ROUND_ITEMS: usize = 100;
/// A round claims no new item after this long, so a slow upstream cannot delay the account check.
pub const ROUND_TIME: Duration = Duration::from_secs(10);
/// Fallback poll when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// An item `running` this long without a worker of this process on it was abandoned. Far beyond
/// the longest lookup (upstream timeout × attempts), like `IMMILINK_INTERRUPTED_AFTER_SECS`.
pub const STALE_AFTER: Duration = Duration::from_secs(300);
/// Attempts of one item against an unavailable upstream before it is failed.
pub const MAX_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Open batches looked at per sweep.
const OPEN_BATCHES: i64 = 200;

/// Wakes the worker now (a batch was submitted); held in the service's `State`.
#[derive(Default)]
pub struct Wake(Notify);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_waiters();
    }
}

/// Runs until the task is aborted with the service.
pub async fn run(state: web::Data<State>) {
    let wake = std::sync::Arc::clone(&state.batch_wake);
    let mut worker = Worker::new(state);
    loop {
        let notified = std::pin::pin!(wake.0.notified());
        let mut notified = notified;
        notified.as_mut().enable();
        if !worker.sweep().await {
            let _ = tokio::time::timeout(POLL, notified).await;
        }
    }
}

struct Backoff {
    until: Instant,
    delay: Duration,
}

struct Worker {
    state: web::Data<State>,
    /// Agencies whose batches wait, and how long the next wait is.
    backoff: HashMap<AgencyCode, Backoff>,
    /// Agencies whose batches run on one lane until a round succeeds.
    degraded: HashSet<AgencyCode>,
    /// Upstream-outage attempts per item in this process.
    attempts: HashMap<(BatchId, i32), u32>,
    /// When this worker first saw an item `running` (never one of its own: between rounds it has
    /// none in flight).
    seen_running: HashMap<(BatchId, i32), Instant>,
}

/// How a round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundEnd {
    /// Items ran; more may follow.
    Progress,
    /// Nothing to do.
    Idle,
    /// Stop this agency's batches for a while: the audit trail, identity or the upstream is not ready.
    Backoff,
    /// The agency's pace is used up for this long.
    Wait(Duration),
}

/// How one lane of a round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneEnd {
    Drained,
    Budget,
    Backoff,
    Wait(Duration),
}

/// What the round's lanes share.
struct Round<'a> {
    batch: &'a BatchRow,
    query_type: QueryType,
    budget: Cell<usize>,
    deadline: Instant,
    /// Subjects in flight in this round: the same subject of a batch never runs twice at once, so
    /// each attempt's lookup can be told apart.
    busy: RefCell<Vec<String>>,
    ran: Cell<usize>,
}

impl Worker {
    fn new(state: web::Data<State>) -> Self {
        Self {
            state,
            backoff: HashMap::new(),
            degraded: HashSet::new(),
            attempts: HashMap::new(),
            seen_running: HashMap::new(),
        }
    }

    /// One pass over the open batches; whether any item ran.
    async fn sweep(&mut self) -> bool {
        let batches = match self.state.db.run(|conn| batches::open_batches(conn, OPEN_BATCHES)).await {
            Ok(batches) => batches,
            Err(err) => {
                tracing::warn!(error = %err, "batch worker cannot read open batches; retrying");
                return false;
            }
        };
        if batches.is_empty() {
            self.seen_running.clear();
            return false;
        }
        self.settle_abandoned(&batches).await;
        let mut worked = false;
        for batch in &batches {
            if self.backoff.get(&batch.agency).is_some_and(|b| Instant::now() < b.until) {
                continue;
            }
            let id = batch.id.clone();
            match self.state.db.run(move |conn| batches::has_pending(conn, &id)).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, batch_id = %batch.id, "batch worker cannot read a batch");
                    continue;
                }
            }
            match self.round(batch).await {
                RoundEnd::Progress => {
                    worked = true;
                    self.backoff.remove(&batch.agency);
                    self.degraded.remove(&batch.agency);
                }
                RoundEnd::Idle => {}
                RoundEnd::Backoff => {
                    self.back_off(&batch.agency);
                    self.degraded.insert(batch.agency.clone());
                }
                RoundEnd::Wait(wait) => {
                    self.backoff.insert(batch.agency.clone(), Backoff { until: Instant::now() + wait, delay: wait });
                }
            }
        }
        worked
    }

    fn back_off(&mut self, agency: &AgencyCode) {
        let delay = self.backoff.get(agency).map_or(FIRST_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
        tracing::info!(%agency, delay_ms = delay.as_millis() as u64, "batch lookups of the agency wait");
        self.backoff.insert(agency.clone(), Backoff { until: Instant::now() + delay, delay });
    }

    /// Items `running` with nobody of this process on them: settled once stale.
    async fn settle_abandoned(&mut self, open: &[BatchRow]) {
        let ids: Vec<BatchId> = open.iter().map(|b| b.id.clone()).collect();
        let running = match self.state.db.run(move |conn| batches::running_items(conn, &ids)).await {
            Ok(running) => running,
            Err(err) => {
                tracing::warn!(error = %err, "batch worker cannot read running items");
                return;
            }
        };
        let now = Instant::now();
        self.seen_running.retain(|key, _| running.contains(key));
        for key in running {
            let first_seen = *self.seen_running.entry(key.clone()).or_insert(now);
            if now.duration_since(first_seen) < STALE_AFTER {
                continue;
            }
            let at = self.state.clock.now();
            let (batch_id, position) = key.clone();
            match self.state.db.run(move |conn| batches::reconcile_abandoned(conn, at, &batch_id, position)).await {
                Ok(outcome) => {
                    self.seen_running.remove(&key);
                    if outcome != Reconciled::Untouched {
                        tracing::warn!(batch_id = %key.0, position = key.1, ?outcome, "settled an abandoned batch item");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "settling an abandoned batch item failed; retried later"),
            }
        }
    }

    /// One round of a batch: the account check, then up to [`ROUND_ITEMS`] items on [`LANES`] lanes.
    async fn round(&mut self, batch: &BatchRow) -> RoundEnd {
        let Some(query_type) = QueryType::parse(&batch.query_type) else {
            self.cancel(batch, &format!("the batch names an unknown query type {:?}", batch.query_type), None).await;
            return RoundEnd::Idle;
        };
        match self.submitter_may_continue(batch, query_type).await {
            Ok(true) => {}
            Ok(false) => return RoundEnd::Idle,
            Err(()) => return RoundEnd::Backoff,
        }
        let round = Round {
            batch,
            query_type,
            budget: Cell::new(ROUND_ITEMS),
            deadline: Instant::now() + ROUND_TIME,
            busy: RefCell::new(Vec::new()),
            ran: Cell::new(0),
        };
        let attempts = RefCell::new(std::mem::take(&mut self.attempts));
        let lanes = if self.degraded.contains(&batch.agency) { 1 } else { LANES };
        let ends = futures_util::future::join_all((0..lanes).map(|_| self.lane(&round, &attempts))).await;
        self.attempts = attempts.into_inner();
        if let Some(wait) = ends.iter().find_map(|end| match end {
            LaneEnd::Wait(wait) => Some(*wait),
            _ => None,
        }) {
            return RoundEnd::Wait(wait);
        }
        if ends.contains(&LaneEnd::Backoff) {
            return RoundEnd::Backoff;
        }
        if round.ran.get() > 0 {
            RoundEnd::Progress
        } else {
            RoundEnd::Idle
        }
    }

    /// R-ACC-05, R-LINK and R-QRY-02: `Ok(false)` when the batch was cancelled because its
    /// submitter is no longer active in its agency, its agency's link no longer serves it, or the
    /// submitter no longer holds its permission; `Err` when identity cannot say (nothing runs then).
    async fn submitter_may_continue(&self, batch: &BatchRow, query_type: QueryType) -> Result<bool, ()> {
        let submitter = match self.state.identity.user(&batch.user_id).await {
            Ok(submitter) => submitter,
            Err(err) => {
                tracing::warn!(error = %err, batch_id = %batch.id, "cannot check the submitter's account; the batch waits");
                return Err(());
            }
        };
        match batches::may_continue(batch, query_type, submitter.as_ref()) {
            Ok(()) => Ok(true),
            Err(stop) => {
                self.cancel(batch, &stop.reason, Some(stop.rule)).await;
                Ok(false)
            }
        }
    }

    async fn cancel(&self, batch: &BatchRow, reason: &str, rule: Option<&'static str>) {
        let (id, reason_owned, now) = (batch.id.clone(), reason.to_owned(), self.state.clock.now());
        match self.state.db.run(move |conn| batches::cancel(conn, now, &id, &reason_owned, rule)).await {
            Ok(true) => {
                tracing::warn!(batch_id = %batch.id, user_id = %batch.user_id, reason, rule = ?rule, "batch cancelled")
            }
            Ok(false) => {}
            Err(err) => {
                tracing::error!(error = %err, batch_id = %batch.id, "cancelling a batch failed; retried next round")
            }
        }
    }

    /// Claims and runs items until the round's budget or time is spent, the batch has no pending
    /// item left, or the agency must wait.
    async fn lane(&self, round: &Round<'_>, attempts: &RefCell<HashMap<(BatchId, i32), u32>>) -> LaneEnd {
        let batch = round.batch;
        loop {
            if round.budget.get() == 0 || Instant::now() >= round.deadline {
                return LaneEnd::Budget;
            }
            let now = self.state.clock.now();
            let refusal = match self.state.lookups.precheck(&batch.agency, now) {
                Ok(()) => None,
                Err(err) if err.is_temporary() => return LaneEnd::Backoff,
                Err(err) => Some(err),
            };
            if refusal.is_none() {
                if let Err(seconds) = self.state.limits.admit_agency(&batch.agency) {
                    return LaneEnd::Wait(Duration::from_secs(seconds.max(1)));
                }
            }
            round.budget.set(round.budget.get() - 1);
            let busy = round.busy.borrow().clone();
            let id = batch.id.clone();
            let claimed = match self.state.db.run(move |conn| batches::claim_next(conn, now, &id, &busy)).await {
                Ok(Some(item)) => item,
                Ok(None) => {
                    round.budget.set(round.budget.get() + 1);
                    return LaneEnd::Drained;
                }
                Err(err) => {
                    tracing::warn!(error = %err, batch_id = %batch.id, "claiming a batch item failed");
                    return LaneEnd::Backoff;
                }
            };
            round.busy.borrow_mut().push(claimed.subject_id.clone());
            let end = match refusal {
                Some(refusal) => {
                    self.refuse_item(round, &claimed, refusal).await;
                    None
                }
                None => self.run_item(round, &claimed, attempts).await,
            };
            round.busy.borrow_mut().retain(|s| s != &claimed.subject_id);
            round.ran.set(round.ran.get() + 1);
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Runs one claimed item's lookup and records its outcome; `Some` when the lane must stop.
    async fn run_item(
        &self,
        round: &Round<'_>,
        item: &ClaimedItem,
        attempts: &RefCell<HashMap<(BatchId, i32), u32>>,
    ) -> Option<LaneEnd> {
        let batch = round.batch;
        let subject = match parse_subject(round.query_type, &item.subject_id) {
            Ok(subject) => subject,
            Err(err) => {
                self.fail(item, None, &item_error(err)).await;
                return None;
            }
        };
        let accepted = Accepted {
            who: batch.submitter(),
            request: LookupRequest {
                query_type: round.query_type,
                subject,
                legal_basis: batch.legal_basis.clone(),
                purpose_code: batch.purpose_code.clone(),
                case_number: batch.case_number.clone(),
                proxy_authorization_id: None,
                remarks: batch.remarks.clone(),
            },
            context: Context {
                proxy: None,
                supervisor_approval_id: batch.supervisor_approval_id.clone(),
                batch_id: Some(batch.id.clone()),
            },
        };
        let key = (item.batch_id.clone(), item.position);
        match self.state.lookups.run(&accepted).await {
            Ok((recorded, result)) => {
                attempts.borrow_mut().remove(&key);
                match serde_json::to_string(&result) {
                    Ok(json) => self.succeed(item, &recorded.lookup_id, &json).await,
                    Err(err) => {
                        self.fail(item, Some(&recorded.lookup_id), &ItemError::new("internal_error", err.to_string()))
                            .await
                    }
                }
                None
            }
            // Not recorded, so not forwarded (R-QRY-08): the item is simply run later.
            Err(failure) if failure.recorded.is_none() => {
                self.release(item).await;
                Some(LaneEnd::Backoff)
            }
            Err(LookupFailure { recorded, error: err }) => {
                let lookup_id = recorded.map(|r| r.lookup_id);
                let outage = err.is_upstream_outage();
                let tries = {
                    let mut attempts = attempts.borrow_mut();
                    let tries = attempts.entry(key.clone()).or_insert(0);
                    *tries += 1;
                    *tries
                };
                if outage && tries < MAX_ATTEMPTS {
                    tracing::info!(
                        batch_id = %item.batch_id,
                        position = item.position,
                        tries,
                        lookup_id = ?lookup_id,
                        "upstream unavailable; the item is retried later"
                    );
                    self.release(item).await;
                    return Some(LaneEnd::Backoff);
                }
                attempts.borrow_mut().remove(&key);
                self.fail(item, lookup_id.as_ref(), &item_error(err)).await;
                outage.then_some(LaneEnd::Backoff)
            }
        }
    }

    /// A refusal before anything was recorded that is not transient (e.g. no upstream credential):
    /// the item fails, and the refusal is audited as a single lookup's would be.
    async fn refuse_item(&self, round: &Round<'_>, item: &ClaimedItem, refusal: BrokerError) {
        let batch = round.batch;
        let declared = Declared {
            query_type: Some(batch.query_type.clone()),
            subject_id: Some(item.subject_id.clone()),
            legal_basis: Some(batch.legal_basis.clone()),
            purpose_code: Some(batch.purpose_code.clone()),
            case_number: Some(batch.case_number.to_string()),
            proxy_authorization_id: None,
        };
        let refusal = self.state.lookups.refuse(&batch.submitter(), &declared, refusal).await;
        self.fail(item, None, &item_of_problem(&refusal)).await;
    }

    async fn succeed(&self, item: &ClaimedItem, lookup_id: &LookupId, result: &str) {
        let (item, lookup_id, result) = (item.clone(), lookup_id.clone(), result.to_owned());
        self.store(&item.clone(), move |conn, now| {
            batches::record_success(conn, now, &item.batch_id, item.position, &lookup_id, &result)
        })
        .await;
    }

    async fn fail(&self, item: &ClaimedItem, lookup_id: Option<&LookupId>, error: &ItemError) {
        let (item, lookup_id, error) = (item.clone(), lookup_id.cloned(), error.clone());
        self.store(&item.clone(), move |conn, now| {
            batches::record_failure(conn, now, &item.batch_id, item.position, lookup_id.as_ref(), &error)
        })
        .await;
    }

    /// Stores an item's outcome, retrying briefly; one that cannot be stored leaves the item
    /// `running`, and it is settled as abandoned later (its lookup stays on the audit trail).
    async fn store<F>(&self, item: &ClaimedItem, write: F)
    where
        F: Fn(&mut immilink_shared::db::DbConn, chrono::DateTime<chrono::Utc>) -> Result<bool, BrokerError>
            + Send
            + Sync
            + Clone
            + 'static,
    {
        for wait_ms in [0u64, 200, 1000, 5000] {
            if wait_ms > 0 {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            let now = self.state.clock.now();
            let write = write.clone();
            match self.state.db.run(move |conn| write(conn, now)).await {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        batch_id = %item.batch_id,
                        position = item.position,
                        "batch item was settled elsewhere"
                    );
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, batch_id = %item.batch_id, position = item.position, "storing a batch item failed")
                }
            }
        }
        tracing::error!(
            batch_id = %item.batch_id,
            position = item.position,
            "batch item outcome not stored; settled later as abandoned"
        );
    }

    async fn release(&self, item: &ClaimedItem) {
        let (batch_id, position) = (item.batch_id.clone(), item.position);
        if let Err(err) = self.state.db.run(move |conn| batches::release(conn, &batch_id, position)).await {
            tracing::warn!(error = %err, batch_id = %item.batch_id, "releasing a batch item failed; settled later as abandoned");
        }
    }
}

/// An item's failure as a single lookup's problem would have named it.
fn item_error(err: BrokerError) -> ItemError {
    item_of_problem(&ApiError::from(err))
}

fn item_of_problem(problem: &ApiError) -> ItemError {
    let problem = problem.to_problem();
    ItemError { code: problem.code, detail: problem.detail, rule: problem.rule }
}
