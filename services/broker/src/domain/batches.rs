//! Bulk lookup jobs (R-QRY-05). A batch is one declaration (query type, legal basis, purpose, case)
//! and a list of subject IDs, all validated before anything is stored; submitting it writes the
//! batch, every item and its `batch.submitted` audit event in one transaction. The worker
//! ([`crate::batch_worker`]) then runs each item as its own audited lookup through the same pipeline
//! as a single lookup, and records the item's outcome here.
//!
//! Item life: `pending` → `running` (claimed by exactly one worker, by a conditional update, so two
//! replicas never run the same item) → `succeeded` / `failed`; or `pending` → `cancelled` when the
//! batch is cancelled. An item's outcome, counters and (for the last item) the batch's completion
//! change in one transaction. A stored result is never altered (R-QRY-12: a database trigger refuses
//! any update of `batch_items.result` once set, and no endpoint writes it).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::extractors::Page;
use immilink_shared::ids::SubjectId;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, CaseNumber, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::colleagues::{AccountStatus, Entitlements, UserSummary};
use super::lookup::LookupStatus;
use super::{approvals, new_id, request, BatchId, BrokerError, LookupId, PurposeApprovalId};
use crate::schema::{batch_items, batches, lookups};
use immilink_shared::outbox;

text_enum! {
    /// A bulk job's life.
    pub enum BatchStatus {
        /// Submitted; no item claimed yet.
        Queued = "queued",
        /// A worker claimed its first item.
        Running = "running",
        /// Every item finished.
        Completed = "completed",
        /// Stopped (its submitter may no longer run it); its pending items were cancelled.
        Cancelled = "cancelled",
    }
}

impl BatchStatus {
    /// Work is left: `queued` or `running`.
    pub const OPEN: [BatchStatus; 2] = [BatchStatus::Queued, BatchStatus::Running];

    /// `queued` → `running` (first claim) → `completed` (last item); `queued` or `running` →
    /// `cancelled`. Nothing leaves `completed` or `cancelled`.
    pub fn transition(self, to: BatchStatus) -> Result<BatchStatus, BrokerError> {
        use BatchStatus::*;
        match (self, to) {
            (Queued, Running) | (Running, Completed) | (Queued | Running, Cancelled) => Ok(to),
            (from, to) => Err(BrokerError::IllegalTransition { what: "batch", from: from.as_str(), to: to.as_str() }),
        }
    }

    /// The states a batch may be in for a write to move it to `to`: the guard of that write, so the
    /// database itself refuses an illegal move (a concurrent one updates nothing).
    pub fn sources(to: BatchStatus) -> Vec<BatchStatus> {
        BatchStatus::ALL.iter().copied().filter(|from| from.transition(to).is_ok()).collect()
    }

    pub fn is_open(self) -> bool {
        BatchStatus::OPEN.contains(&self)
    }
}

text_enum! {
    /// One subject ID of a bulk job, from submission to its outcome.
    pub enum ItemStatus {
        Pending = "pending",
        /// Claimed by exactly one worker.
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Never run: its batch was cancelled first.
        Cancelled = "cancelled",
    }
}

impl ItemStatus {
    /// Statuses an item ends in; results list only these.
    pub const FINISHED: [ItemStatus; 3] = [ItemStatus::Succeeded, ItemStatus::Failed, ItemStatus::Cancelled];

    /// `pending` → `running` (claimed) → `succeeded` / `failed`, or back to `pending` (released,
    /// nothing was forwarded); `pending` → `cancelled`. Finished items never change.
    pub fn transition(self, to: ItemStatus) -> Result<ItemStatus, BrokerError> {
        use ItemStatus::*;
        match (self, to) {
            (Pending, Running | Cancelled) | (Running, Pending | Succeeded | Failed) => Ok(to),
            (from, to) => {
                Err(BrokerError::IllegalTransition { what: "batch item", from: from.as_str(), to: to.as_str() })
            }
        }
    }

    /// The guard of a write that moves an item to `to` (see [`BatchStatus::sources`]).
    pub fn sources(to: ItemStatus) -> Vec<ItemStatus> {
        ItemStatus::ALL.iter().copied().filter(|from| from.transition(to).is_ok()).collect()
    }
}

/// Most subject IDs one batch may carry.
pub const MAX_SUBJECTS: usize = 10_000;

/// Rows per multi-row insert (well under SQLite's bound-parameter limit).
const INSERT_CHUNK: usize = 500;

/// Roles that follow the progress of every batch of their agency (not its results).
const OVERSEERS: [&str; 2] = [roles::ACCOUNT_MANAGER, roles::AUDITOR];

/// A subject ID as submitted: its text and, from a CSV file, its line and how many fields the line
/// had (one is the only acceptable number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedId {
    pub raw: String,
    pub line: Option<usize>,
    pub fields: usize,
}

impl SubmittedId {
    /// An ID from a JSON list.
    pub fn listed(raw: impl Into<String>) -> Self {
        Self { raw: raw.into(), line: None, fields: 1 }
    }
}

/// R-QRY-05: a batch carries 1 to 10 000 subject IDs.
pub fn check_size(count: usize) -> Result<(), BrokerError> {
    match count {
        0 => Err(BrokerError::EmptyBatch),
        count if count > MAX_SUBJECTS => Err(BrokerError::BatchTooLarge { count, max: MAX_SUBJECTS }),
        _ => Ok(()),
    }
}

/// A batch never runs on another's behalf (R-QRY-06 lookups are run one by one): a named proxy
/// authorization is refused.
pub fn refuse_proxy(proxy_authorization_id: Option<String>) -> Result<(), BrokerError> {
    match request::proxy_authorization_id(proxy_authorization_id) {
        None => Ok(()),
        Some(_) => Err(BrokerError::ProxyOnBatch),
    }
}

/// A subject ID of the list that was refused, and where it stands in the list.
#[derive(Debug)]
pub struct RefusedSubject {
    pub index: usize,
    pub error: BrokerError,
}

/// R-QRY-04: every ID of the list, each checked as `query_type` takes it, before anything is stored;
/// the first that fails is refused naming its place in the list (and its CSV line). The first ID
/// is checked as a single lookup's `subject_id` (a blank one is missing).
pub fn subjects(query_type: QueryType, submitted: &[SubmittedId]) -> Result<Vec<SubjectId>, RefusedSubject> {
    submitted
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let refuse = |error| RefusedSubject { index, error };
            if id.fields > 1 {
                let line = id.line.unwrap_or(index + 1);
                return Err(refuse(BrokerError::NotOneIdPerLine { index, line, fields: id.fields }));
            }
            let parsed = if index == 0 {
                request::subject(query_type, Some(id.raw.clone()))
            } else {
                request::parse_subject(query_type, &id.raw)
            };
            parsed.map_err(|err| {
                let field = format!("subject_ids[{index}]");
                refuse(match err {
                    BrokerError::InvalidIdentifier { error, .. } => {
                        BrokerError::InvalidIdentifier { field, error, line: id.line }
                    }
                    BrokerError::Missing { rule, .. } => BrokerError::Missing { field, rule },
                    other => other,
                })
            })
        })
        .collect()
}

/// A bulk job as submitted, every input rule passed: one declaration for every subject ID.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub remarks: Option<String>,
    pub subjects: Vec<SubjectId>,
}

impl BatchRequest {
    /// R-LINK and R-QRY-02 at submission, as for a single lookup ([`check_permitted`](crate::domain::colleagues::check_permitted)).
    pub fn authorize(&self, entitlements: &Entitlements) -> Result<(), BrokerError> {
        entitlements.check(&self.legal_basis, &self.purpose_code, self.query_type)
    }
}

/// A validated batch, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: BatchId,
    /// The submitter.
    pub who: Caller,
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub remarks: Option<String>,
    /// R-QRY-10: the unit supervisor's approval its purpose needed, if any.
    pub supervisor_approval_id: Option<PurposeApprovalId>,
    pub subjects: Vec<SubjectId>,
}

impl NewBatch {
    /// The `batch.submitted` audit event. The IDs themselves are not listed here: each becomes its
    /// own `lookup.requested` record (naming its subject and this batch) when it is run.
    pub fn submitted_event(&self, now: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            id: new_id(),
            kind: kind::BATCH_SUBMITTED.into(),
            occurred_at: now,
            source: crate::SERVICE.into(),
            actor_user_id: Some(self.who.user_id.to_string()),
            agency: Some(self.who.agency.to_string()),
            correlation_id: Some(self.id.to_string()),
            subject_id: None,
            unit: self.who.unit.as_ref().map(|unit| unit.to_string()),
            payload: json!({
                "batch_id": self.id,
                "query_type": self.query_type.code(),
                "legal_basis": self.legal_basis,
                "purpose_code": self.purpose_code,
                "case_number": self.case_number,
                "remarks": self.remarks,
                "total": self.subjects.len(),
                "session_id": self.who.session_id,
                "supervisor_approval_id": self.supervisor_approval_id,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = batches)]
pub struct BatchRow {
    pub id: BatchId,
    pub agency: AgencyCode,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub query_type: String,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub remarks: Option<String>,
    pub supervisor_approval_id: Option<PurposeApprovalId>,
    pub status: BatchStatus,
    pub total: i32,
    pub done: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub failure: Option<String>,
}

impl BatchRow {
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }

    /// The submitter as the batch recorded them at submission: the caller its lookups run for.
    pub fn submitter(&self) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            agency: self.agency.clone(),
            unit: None,
            roles: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = batch_items)]
pub struct ItemRow {
    pub batch_id: BatchId,
    pub position: i32,
    pub subject_id: String,
    pub status: ItemStatus,
    pub lookup_id: Option<LookupId>,
    pub result: Option<String>,
    pub failure: Option<String>,
    pub completed_at: Option<NaiveDateTime>,
}

impl ItemRow {
    /// The stored failure, read back; a row written by hand that does not parse is shown as is.
    pub fn error(&self) -> Option<ItemError> {
        self.failure.as_ref().map(|text| {
            serde_json::from_str(text).unwrap_or_else(|_| ItemError {
                code: "unknown".into(),
                detail: text.clone(),
                rule: None,
            })
        })
    }
}

/// Why an item did not succeed (stored as JSON in `batch_items.failure`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// The problem code a single lookup would have answered (`upstream_unavailable`, `upstream_rejected`,
    /// …), or `cancelled`, `interrupted`.
    pub code: String,
    pub detail: String,
    /// The SPEC rule that refused it, where one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ItemError {
    pub fn new(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { code: code.into(), detail: detail.into(), rule: None }
    }

    fn to_json(&self) -> String {
        // A struct of strings always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"code\":\"{}\"}}", self.code))
    }
}

/// An item a worker now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    pub batch_id: BatchId,
    pub position: i32,
    pub subject_id: String,
}

/// Submits the caller's bulk job: a purpose that needs a unit supervisor's approval needs one in force
/// for its case (R-QRY-10), then the batch, all its items (`pending`) and its `batch.submitted` event
/// are stored in one transaction. Nothing is stored if any part fails. (The caller's permission,
/// R-QRY-02, is checked before, with [`BatchRequest::authorize`].)
pub fn submit(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    request: BatchRequest,
) -> Result<BatchRow, BrokerError> {
    conn.write_transaction(|conn| {
        let supervisor_approval_id = approvals::approval_if_required(
            conn,
            now,
            &caller.user_id,
            &caller.agency,
            &request.case_number,
            &request.purpose_code,
        )?;
        let batch = NewBatch {
            id: BatchId::new(new_id()),
            who: caller.clone(),
            query_type: request.query_type,
            legal_basis: request.legal_basis,
            purpose_code: request.purpose_code,
            case_number: request.case_number,
            remarks: request.remarks,
            supervisor_approval_id,
            subjects: request.subjects,
        };
        store(conn, now, &batch)
    })
}

/// Stores a validated batch inside the caller's write transaction.
fn store(conn: &mut DbConn, now: DateTime<Utc>, batch: &NewBatch) -> Result<BatchRow, BrokerError> {
    let total = i32::try_from(batch.subjects.len())
        .map_err(|_| BrokerError::BatchTooLarge { count: batch.subjects.len(), max: MAX_SUBJECTS })?;
    let event = batch.submitted_event(now);
    {
        diesel::insert_into(batches::table)
            .values((
                batches::id.eq(&batch.id),
                batches::agency.eq(&batch.who.agency),
                batches::user_id.eq(&batch.who.user_id),
                batches::session_id.eq(&batch.who.session_id),
                batches::query_type.eq(batch.query_type.code()),
                batches::legal_basis.eq(&batch.legal_basis),
                batches::purpose_code.eq(&batch.purpose_code),
                batches::case_number.eq(&batch.case_number),
                batches::remarks.eq(&batch.remarks),
                batches::supervisor_approval_id.eq(&batch.supervisor_approval_id),
                batches::status.eq(BatchStatus::Queued),
                batches::total.eq(total),
                batches::done.eq(0),
                batches::succeeded.eq(0),
                batches::failed.eq(0),
                batches::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        let mut position = 0i32;
        for chunk in batch.subjects.chunks(INSERT_CHUNK) {
            let rows: Vec<NewItem<'_>> = chunk
                .iter()
                .map(|subject| {
                    let row = NewItem {
                        batch_id: &batch.id,
                        position,
                        subject_id: subject.as_str(),
                        status: ItemStatus::Pending,
                    };
                    position += 1;
                    row
                })
                .collect();
            insert_items(conn, &rows)?;
        }
        outbox::enqueue(conn, now, &event)?;
        batches::table.find(&batch.id).select(BatchRow::as_select()).first(conn).map_err(BrokerError::from)
    }
}

#[derive(Insertable)]
#[diesel(table_name = batch_items)]
struct NewItem<'a> {
    batch_id: &'a BatchId,
    position: i32,
    subject_id: &'a str,
    status: ItemStatus,
}

/// Multi-row inserts do not go through the multi-backend connection; both backends take the same
/// statement on their own connection (inside the caller's transaction).
fn insert_items(conn: &mut DbConn, rows: &[NewItem<'_>]) -> Result<usize, diesel::result::Error> {
    match conn {
        DbConn::Pg(pg) => diesel::insert_into(batch_items::table).values(rows).execute(pg),
        DbConn::Sqlite(sqlite) => diesel::insert_into(batch_items::table).values(rows).execute(sqlite),
    }
}

pub fn find(conn: &mut DbConn, id: &BatchId) -> Result<Option<BatchRow>, BrokerError> {
    Ok(batches::table.find(id).select(BatchRow::as_select()).first(conn).optional()?)
}

/// A batch with how many of its items were cancelled (not counted in `done`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchProgress {
    pub batch: BatchRow,
    pub cancelled: i64,
}

impl BatchRow {
    /// Who may follow a batch's progress: its submitter, and the account managers and auditors of
    /// its agency.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        self.user_id == caller.user_id || (self.agency == caller.agency && caller.has_any(&OVERSEERS))
    }

    /// Who may read a batch's results: only its submitter (personal data obtained for their case).
    pub fn results_readable_by(&self, caller: &Caller) -> bool {
        self.user_id == caller.user_id
    }
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the batch")
}

/// A batch's progress, for whoever may follow it ([`BatchRow::visible_to`]); not found for anyone
/// else.
pub fn progress(conn: &mut DbConn, caller: &Caller, id: &BatchId) -> Result<BatchProgress, BrokerError> {
    let batch = find(conn, id)?.filter(|batch| batch.visible_to(caller)).ok_or_else(not_found)?;
    let cancelled = cancelled_counts(conn, std::slice::from_ref(&batch.id))?.remove(&batch.id).unwrap_or(0);
    Ok(BatchProgress { batch, cancelled })
}

/// A batch whose results the caller may read ([`BatchRow::results_readable_by`]); not found for
/// anyone else.
pub fn for_results(conn: &mut DbConn, caller: &Caller, id: &BatchId) -> Result<BatchRow, BrokerError> {
    find(conn, id)?.filter(|batch| batch.results_readable_by(caller)).ok_or_else(not_found)
}

/// The caller's own batches, newest first, with their cancelled items: two queries for the page,
/// whatever its length.
pub fn list(conn: &mut DbConn, caller: &Caller, page: &Page) -> Result<Vec<BatchProgress>, BrokerError> {
    let mut query = batches::table.filter(batches::user_id.eq(&caller.user_id)).into_boxed();
    if let Some(before) = &page.cursor {
        query = query.filter(batches::id.lt(before.clone()));
    }
    let rows: Vec<BatchRow> =
        query.order(batches::id.desc()).limit(page.limit).select(BatchRow::as_select()).load(conn)?;
    let ids: Vec<BatchId> = rows.iter().map(|row| row.id.clone()).collect();
    let mut cancelled = cancelled_counts(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|batch| BatchProgress { cancelled: cancelled.remove(&batch.id).unwrap_or(0), batch })
        .collect())
}

/// How many items of each batch were cancelled, in one query (batches without any are absent).
pub fn cancelled_counts(conn: &mut DbConn, batch_ids: &[BatchId]) -> Result<HashMap<BatchId, i64>, BrokerError> {
    let counts: Vec<(BatchId, i64)> = batch_items::table
        .filter(batch_items::batch_id.eq_any(batch_ids))
        .filter(batch_items::status.eq(ItemStatus::Cancelled))
        .group_by(batch_items::batch_id)
        .select((batch_items::batch_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(counts.into_iter().collect())
}

/// Batches with work left (`queued` or `running`), oldest first.
pub fn open_batches(conn: &mut DbConn, limit: i64) -> Result<Vec<BatchRow>, BrokerError> {
    Ok(batches::table
        .filter(batches::status.eq_any(BatchStatus::OPEN))
        .order((batches::created_at.asc(), batches::id.asc()))
        .limit(limit)
        .select(BatchRow::as_select())
        .load(conn)?)
}

/// Whether the batch still has items nobody has claimed.
pub fn has_pending(conn: &mut DbConn, batch_id: &BatchId) -> Result<bool, BrokerError> {
    Ok(diesel::select(diesel::dsl::exists(
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::status.eq(ItemStatus::Pending)),
    ))
    .get_result(conn)?)
}

/// Claims the batch's lowest pending item whose subject is not in `busy` (so one worker never runs
/// the same subject of a batch twice at once), marking it `running`, and the batch `running` if it
/// was `queued`. The conditional update makes the claim exclusive across workers and replicas.
pub fn claim_next(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &BatchId,
    busy: &[String],
) -> Result<Option<ClaimedItem>, BrokerError> {
    conn.write_transaction(|conn| {
        // Another worker may take the candidate between the read and the update (PostgreSQL): then
        // try the next one.
        for _ in 0..16 {
            let candidate: Option<(i32, String)> = batch_items::table
                .filter(batch_items::batch_id.eq(batch_id))
                .filter(batch_items::status.eq(ItemStatus::Pending))
                .filter(batch_items::subject_id.ne_all(busy))
                .order(batch_items::position.asc())
                .select((batch_items::position, batch_items::subject_id))
                .first(conn)
                .optional()?;
            let Some((position, subject_id)) = candidate else {
                return Ok(None);
            };
            let claimed = diesel::update(
                batch_items::table
                    .filter(batch_items::batch_id.eq(batch_id))
                    .filter(batch_items::position.eq(position))
                    .filter(batch_items::status.eq_any(ItemStatus::sources(ItemStatus::Running))),
            )
            .set(batch_items::status.eq(ItemStatus::Running))
            .execute(conn)?;
            if claimed == 1 {
                let starting = BatchStatus::sources(BatchStatus::Running);
                diesel::update(batches::table.find(batch_id).filter(batches::status.eq_any(starting)))
                    .set((batches::status.eq(BatchStatus::Running), batches::started_at.eq(to_db(now))))
                    .execute(conn)?;
                return Ok(Some(ClaimedItem { batch_id: batch_id.clone(), position, subject_id }));
            }
        }
        Ok(None)
    })
}

/// Gives a claimed item back (`running` → `pending`), when its lookup could not even be recorded or
/// is to be retried later. Returns whether the item was still held.
pub fn release(conn: &mut DbConn, batch_id: &BatchId, position: i32) -> Result<bool, BrokerError> {
    let released = diesel::update(
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::position.eq(position))
            .filter(batch_items::status.eq_any(ItemStatus::sources(ItemStatus::Pending))),
    )
    .set(batch_items::status.eq(ItemStatus::Pending))
    .execute(conn)?;
    Ok(released == 1)
}

/// Records a claimed item's successful lookup and its minimised result.
pub fn record_success(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &BatchId,
    position: i32,
    lookup_id: &LookupId,
    result_json: &str,
) -> Result<bool, BrokerError> {
    conn.write_transaction(|conn| {
        finish(conn, now, batch_id, position, ItemStatus::Succeeded, Some(lookup_id), Some(result_json), None)
    })
}

/// Records a claimed item's failure (with its lookup when one was recorded).
pub fn record_failure(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &BatchId,
    position: i32,
    lookup_id: Option<&LookupId>,
    error: &ItemError,
) -> Result<bool, BrokerError> {
    conn.write_transaction(|conn| {
        finish(conn, now, batch_id, position, ItemStatus::Failed, lookup_id, None, Some(&error.to_json()))
    })
}

/// Sets a `running` item's outcome, counts it, and completes the batch when it was the last one; the
/// caller holds a write transaction. Returns whether the item was still `running` (an item another
/// worker already settled is left alone).
#[allow(clippy::too_many_arguments)]
fn finish(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &BatchId,
    position: i32,
    status: ItemStatus,
    lookup_id: Option<&LookupId>,
    result: Option<&str>,
    failure: Option<&str>,
) -> Result<bool, BrokerError> {
    let updated = diesel::update(
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::position.eq(position))
            .filter(batch_items::status.eq_any(ItemStatus::sources(status))),
    )
    .set((
        batch_items::status.eq(status),
        batch_items::lookup_id.eq(lookup_id),
        batch_items::result.eq(result),
        batch_items::failure.eq(failure),
        batch_items::completed_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Ok(false);
    }
    let (succeeded, failed) = if status == ItemStatus::Succeeded { (1, 0) } else { (0, 1) };
    diesel::update(batches::table.find(batch_id))
        .set((
            batches::done.eq(batches::done + 1),
            batches::succeeded.eq(batches::succeeded + succeeded),
            batches::failed.eq(batches::failed + failed),
        ))
        .execute(conn)?;
    diesel::update(
        batches::table
            .find(batch_id)
            .filter(batches::status.eq_any(BatchStatus::sources(BatchStatus::Completed)))
            .filter(batches::done.ge(batches::total)),
    )
    .set((batches::status.eq(BatchStatus::Completed), batches::finished_at.eq(to_db(now))))
    .execute(conn)?;
    Ok(true)
}

/// Why a bulk job stops before its next chunk: the sentence kept on the batch and its items, and the
/// rule that stops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub reason: String,
    pub rule: &'static str,
}

/// Whether a bulk job may run its next chunk, by what identity says about its submitter now
/// (`None`: identity does not know them): an account no longer active in the batch's agency stops
/// it (R-ACC-05), and so does anything the one rule of a declaration refuses now
/// ([`check_permitted`](crate::domain::colleagues::check_permitted)): the agency's link no longer
/// usable or no longer carrying the query type (R-LINK), the tuple no longer granted (R-QRY-02).
pub fn may_continue(batch: &BatchRow, query_type: QueryType, submitter: Option<&UserSummary>) -> Result<(), Stop> {
    let stopped = |why: String, rule: &'static str| Stop {
        reason: format!("{why}; its remaining lookups were stopped ({rule})"),
        rule,
    };
    let Some(user) = submitter else {
        return Err(stopped("the submitter's account no longer exists".into(), "R-ACC-05"));
    };
    if !user.is_active_member_of(&batch.agency) {
        return Err(if user.status == Some(AccountStatus::Active) {
            stopped("the submitter no longer belongs to the batch's agency".into(), "R-ACC-05")
        } else {
            stopped(format!("the submitter's account is {}", user.status_text()), "R-ACC-05")
        });
    }
    match user.check_permitted(&batch.legal_basis, &batch.purpose_code, query_type) {
        Ok(()) => Ok(()),
        Err(BrokerError::LinkRefused { refusal, detail }) => Err(stopped(detail, refusal.rule())),
        Err(_) => Err(stopped(
            format!(
                "the submitter no longer holds {} for purpose {} under {}",
                batch.query_type, batch.purpose_code, batch.legal_basis
            ),
            "R-QRY-02",
        )),
    }
}

/// Cancels an open batch with a reason and the rule that stopped it, where one did: it ends
/// `cancelled` and its pending items are `cancelled` (each naming the reason and the rule), so no
/// worker starts another of its lookups; its `batch.cancelled` event names both. Items already
/// running finish and are recorded. Returns whether the batch was still open.
pub fn cancel(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &BatchId,
    reason: &str,
    rule: Option<&str>,
) -> Result<bool, BrokerError> {
    let failure =
        ItemError { code: "cancelled".into(), detail: reason.to_owned(), rule: rule.map(str::to_owned) }.to_json();
    conn.write_transaction(|conn| {
        let open = BatchStatus::sources(BatchStatus::Cancelled);
        let updated = diesel::update(batches::table.find(batch_id).filter(batches::status.eq_any(open)))
            .set((
                batches::status.eq(BatchStatus::Cancelled),
                batches::finished_at.eq(to_db(now)),
                batches::failure.eq(reason),
            ))
            .execute(conn)?;
        if updated == 0 {
            return Ok(false);
        }
        let cancelled = diesel::update(
            batch_items::table
                .filter(batch_items::batch_id.eq(batch_id))
                .filter(batch_items::status.eq_any(ItemStatus::sources(ItemStatus::Cancelled))),
        )
        .set((
            batch_items::status.eq(ItemStatus::Cancelled),
            batch_items::failure.eq(&failure),
            batch_items::completed_at.eq(to_db(now)),
        ))
        .execute(conn)?;
        let (user_id, agency): (UserId, AgencyCode) =
            batches::table.find(batch_id).select((batches::user_id, batches::agency)).first(conn)?;
        let event = AuditEvent {
            id: new_id(),
            kind: kind::BATCH_CANCELLED.into(),
            occurred_at: now,
            source: crate::SERVICE.into(),
            actor_user_id: Some(user_id.into_inner()),
            agency: Some(agency.into_inner()),
            correlation_id: Some(batch_id.to_string()),
            subject_id: None,
            // The job's unit is not kept with it: the cancellation is read with the agency's records.
            unit: None,
            payload: json!({ "batch_id": batch_id, "reason": reason, "rule": rule, "cancelled_items": cancelled }),
        };
        outbox::enqueue(conn, now, &event)?;
        Ok(true)
    })
}

/// Items marked `running` in the given batches: `(batch_id, position)`.
pub fn running_items(conn: &mut DbConn, batch_ids: &[BatchId]) -> Result<Vec<(BatchId, i32)>, BrokerError> {
    Ok(batch_items::table
        .filter(batch_items::batch_id.eq_any(batch_ids))
        .filter(batch_items::status.eq(ItemStatus::Running))
        .select((batch_items::batch_id, batch_items::position))
        .load(conn)?)
}

/// The lookup a batch item's attempt recorded: the newest lookup of this batch and subject, requested
/// at or after `since`, that no item of the batch names yet. `None` when the attempt recorded none.
pub fn unclaimed_lookup(
    conn: &mut DbConn,
    batch_id: &BatchId,
    subject_id: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Option<(LookupId, LookupStatus)>, BrokerError> {
    let since = since.unwrap_or(DateTime::UNIX_EPOCH);
    let candidates: Vec<(LookupId, LookupStatus)> = lookups::table
        .filter(lookups::batch_id.eq(batch_id))
        .filter(lookups::subject_id.eq(subject_id))
        .filter(lookups::requested_at.ge(to_db(since)))
        .order(lookups::id.desc())
        .select((lookups::id, lookups::status))
        .load(conn)?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&LookupId> = candidates.iter().map(|(id, _)| id).collect();
    let named: Vec<Option<LookupId>> = batch_items::table
        .filter(batch_items::batch_id.eq(batch_id))
        .filter(batch_items::lookup_id.eq_any(&ids))
        .select(batch_items::lookup_id)
        .load(conn)?;
    Ok(candidates.into_iter().find(|(id, _)| !named.iter().flatten().any(|n| n == id)))
}

/// What [`reconcile_abandoned`] did with an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// It was no longer `running`.
    Untouched,
    /// No lookup was recorded for it, so nothing was forwarded (R-QRY-08): it is pending again.
    Requeued,
    /// Its lookup was recorded but the worker stopped before storing the result: failed, naming it.
    Failed { lookup_id: LookupId },
}

/// Settles an item left `running` by a worker that stopped (the caller decides it was abandoned: it
/// stayed `running` far longer than any lookup takes).
pub fn reconcile_abandoned(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &BatchId,
    position: i32,
) -> Result<Reconciled, BrokerError> {
    conn.write_transaction(|conn| {
        let found: Option<(ItemStatus, String)> = batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::position.eq(position))
            .select((batch_items::status, batch_items::subject_id))
            .first(conn)
            .optional()?;
        let Some((status, subject_id)) = found else {
            return Ok(Reconciled::Untouched);
        };
        if status != ItemStatus::Running {
            return Ok(Reconciled::Untouched);
        }
        match unclaimed_lookup(conn, batch_id, &subject_id, None)? {
            None => {
                release(conn, batch_id, position)?;
                Ok(Reconciled::Requeued)
            }
            Some((lookup_id, lookup_status)) => {
                let error = ItemError::new(
                    "interrupted",
                    format!(
                        "the broker stopped while this lookup was in flight; the lookup is on the audit trail \
                         (outcome: {lookup_status}) but its result was not kept; submit the ID again if needed"
                    ),
                );
                finish(
                    conn,
                    now,
                    batch_id,
                    position,
                    ItemStatus::Failed,
                    Some(&lookup_id),
                    None,
                    Some(&error.to_json()),
                )?;
                Ok(Reconciled::Failed { lookup_id })
            }
        }
    })
}

/// Finished items (succeeded, failed, cancelled) after `after` (a position), at most `limit`, in order.
pub fn results_page(
    conn: &mut DbConn,
    batch_id: &BatchId,
    after: i32,
    limit: i64,
) -> Result<Vec<ItemRow>, BrokerError> {
    Ok(batch_items::table
        .filter(batch_items::batch_id.eq(batch_id))
        .filter(batch_items::position.gt(after))
        .filter(batch_items::status.eq_any(ItemStatus::FINISHED))
        .order(batch_items::position.asc())
        .limit(limit)
        .select(ItemRow::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, SubsecRound};
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::colleagues::Permission;
    use crate::domain::link::{LinkStanding, Refusal};
    use crate::domain::lookup::{self, Context, NewLookup};
    use crate::domain::request;
    use crate::domain::testkit::{caller, summary};
    use crate::MIGRATIONS;

    fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database")
    }

    fn submitter(user: &str) -> Caller {
        caller(user, "TPE-SW", None, &["caseworker"])
    }

    const IDS: [&str; 3] = ["A123456789", "F131104093", "A123456789"];

    fn new_batch(ids: &[&str]) -> BatchRequest {
        BatchRequest {
            query_type: QueryType::EntryExitLastYear,
            legal_basis: "social_assistance_act".into(),
            purpose_code: "sw_statutory_business".into(),
            case_number: CaseNumber::new("TPE-2026-7"),
            remarks: None,
            subjects: ids.iter().map(|id| SubjectId::parse_resident(id).unwrap()).collect(),
        }
    }

    /// Submits a batch of `ids` as `user`.
    fn submitted(conn: &mut DbConn, now: DateTime<Utc>, user: &str, ids: &[&str]) -> BatchRow {
        submit(conn, now, &submitter(user), new_batch(ids)).unwrap()
    }

    fn items(conn: &mut DbConn, batch_id: &BatchId) -> Vec<ItemRow> {
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .order(batch_items::position.asc())
            .select(ItemRow::as_select())
            .load(conn)
            .unwrap()
    }

    fn lookup_id(text: &str) -> LookupId {
        LookupId::new(text)
    }

    /// A lookup recorded for a batch item, as the pipeline records it.
    fn record_lookup(conn: &mut DbConn, now: DateTime<Utc>, batch: &BatchRow, subject: &str) -> LookupId {
        let mut request = request::sample();
        request.subject = SubjectId::parse_resident(subject).unwrap();
        let context = Context { batch_id: Some(batch.id.clone()), ..Context::default() };
        let new = NewLookup::new(now, &batch.submitter(), &request, &context);
        lookup::insert_requested(conn, &new).unwrap();
        new.id
    }

    #[test]
    fn r_qry_05_a_batch_its_items_and_its_audit_event_are_stored_together() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let row = submitted(&mut conn, Utc::now(), "user-1", &IDS);
        assert_eq!((row.status, row.total, row.done), (BatchStatus::Queued, 3, 0));
        assert_eq!(row.supervisor_approval_id, None, "its purpose needs none");
        let stored = items(&mut conn, &row.id);
        assert_eq!(stored.len(), 3, "duplicates are kept: each is its own lookup");
        assert!(stored.iter().all(|i| i.status == ItemStatus::Pending && i.result.is_none()));
        assert_eq!(stored.iter().map(|i| i.position).collect::<Vec<_>>(), [0, 1, 2]);
        let events = outbox::pending(&mut conn, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, kind::BATCH_SUBMITTED);
        assert_eq!(events[0].correlation_id.as_deref(), Some(row.id.as_str()));
        assert_eq!(events[0].payload["total"], 3);
        assert_eq!(events[0].payload["case_number"], "TPE-2026-7");
    }

    #[test]
    fn r_qry_10_a_batch_for_other_business_needs_an_approval_in_force_and_stores_nothing_without() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let mut request = new_batch(&IDS);
        request.legal_basis = "household_registration_act".into();
        request.purpose_code = "hr_other_approved".into();
        let clerk = caller("01930000-0000-7000-8000-00000000000a", "HLN-HR", Some("unit-a"), &["caseworker"]);
        let refused = submit(&mut conn, Utc::now(), &clerk, request).unwrap_err();
        assert!(matches!(refused, BrokerError::SupervisorApprovalRequired(_)), "{refused:?}");
        let stored: i64 = batches::table.count().get_result(&mut conn).unwrap();
        assert_eq!(stored, 0);
    }

    #[test]
    fn r_qry_05_a_batch_carries_one_to_ten_thousand_ids_none_on_another_users_behalf() {
        assert!(matches!(check_size(0), Err(BrokerError::EmptyBatch)));
        assert!(check_size(1).is_ok() && check_size(MAX_SUBJECTS).is_ok());
        assert!(matches!(check_size(MAX_SUBJECTS + 1), Err(BrokerError::BatchTooLarge { count: 10_001, .. })));
        assert!(refuse_proxy(Some("  ".into())).is_ok(), "blank is none");
        assert!(matches!(
            refuse_proxy(Some("01900000-0000-7000-8000-000000000000".into())),
            Err(BrokerError::ProxyOnBatch)
        ));
    }

    #[test]
    fn r_qry_04_every_id_is_checked_and_the_first_refused_is_named_by_its_place() {
        let listed = |ids: &[&str]| ids.iter().map(|id| SubmittedId::listed(*id)).collect::<Vec<_>>();
        let parsed = subjects(QueryType::EntryExitLastYear, &listed(&["a123456789", "F131104093"])).unwrap();
        assert_eq!(parsed.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["A123456789", "F131104093"]);
        let refused = subjects(QueryType::EntryExitLastYear, &listed(&["A123456789", "X1234567"])).unwrap_err();
        assert_eq!(refused.index, 1);
        assert!(
            matches!(refused.error, BrokerError::InvalidIdentifier { ref field, line: None, .. } if field == "subject_ids[1]")
        );
        let from_csv = [SubmittedId { raw: "A123456788".into(), line: Some(7), fields: 1 }];
        let refused = subjects(QueryType::EntryExitLastYear, &from_csv).unwrap_err();
        assert!(matches!(refused.error, BrokerError::InvalidIdentifier { line: Some(7), .. }));
        let two_fields = [SubmittedId { raw: "A123456789".into(), line: Some(2), fields: 2 }];
        let refused = subjects(QueryType::EntryExitLastYear, &two_fields).unwrap_err();
        assert!(matches!(refused.error, BrokerError::NotOneIdPerLine { index: 0, line: 2, fields: 2 }));
        let blank_first = subjects(QueryType::EntryExitLastYear, &listed(&[" "])).unwrap_err();
        assert!(
            matches!(blank_first.error, BrokerError::Missing { ref field, rule: Some("R-QRY-04") } if field == "subject_ids[0]")
        );
    }

    #[test]
    fn r_qry_05_a_submission_that_fails_part_way_leaves_nothing_behind() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        // The audit event cannot be written: neither the batch nor any item may remain.
        diesel::sql_query("DROP TABLE outbox").execute(&mut conn).unwrap();
        let many: Vec<&str> = std::iter::repeat_n("A123456789", 1200).collect();
        assert!(submit(&mut conn, Utc::now(), &submitter("user-1"), new_batch(&many)).is_err());
        let batches_left: i64 = batches::table.count().get_result(&mut conn).unwrap();
        let items_left: i64 = batch_items::table.count().get_result(&mut conn).unwrap();
        assert_eq!((batches_left, items_left), (0, 0));
    }

    #[test]
    fn r_qry_05_batches_and_items_move_only_along_their_lifecycles() {
        use BatchStatus::{Cancelled, Completed, Queued, Running};
        assert_eq!(Queued.transition(Running).unwrap(), Running);
        assert_eq!(Running.transition(Completed).unwrap(), Completed);
        assert_eq!(Queued.transition(Cancelled).unwrap(), Cancelled);
        assert_eq!(Running.transition(Cancelled).unwrap(), Cancelled);
        for (from, to) in
            [(Queued, Completed), (Completed, Running), (Cancelled, Running), (Completed, Cancelled), (Running, Queued)]
        {
            assert!(
                matches!(from.transition(to), Err(BrokerError::IllegalTransition { what: "batch", .. })),
                "{from} → {to}"
            );
        }
        assert_eq!(BatchStatus::sources(Cancelled), BatchStatus::OPEN);
        assert_eq!(BatchStatus::sources(Completed), [Running]);

        use ItemStatus as I;
        for (from, to) in [
            (I::Pending, I::Running),
            (I::Running, I::Pending),
            (I::Running, I::Succeeded),
            (I::Running, I::Failed),
            (I::Pending, I::Cancelled),
        ] {
            assert_eq!(from.transition(to).unwrap(), to);
        }
        for (from, to) in [
            (I::Pending, I::Succeeded),
            (I::Succeeded, I::Failed),
            (I::Failed, I::Pending),
            (I::Cancelled, I::Running),
            (I::Running, I::Cancelled),
        ] {
            assert!(from.transition(to).is_err(), "{from} → {to}");
        }
        assert_eq!(ItemStatus::sources(I::Succeeded), [I::Running], "only a claimed item is settled");
    }

    #[test]
    fn r_qry_05_items_are_claimed_once_counted_and_the_last_one_completes_the_batch() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = submitted(&mut conn, now, "user-1", &IDS);

        let first = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!((first.position, first.subject_id.as_str()), (0, "A123456789"));
        assert_eq!(find(&mut conn, &batch.id).unwrap().unwrap().status, BatchStatus::Running);
        // The same subject is busy in this worker: the next claim skips position 2 for now.
        let second = claim_next(&mut conn, now, &batch.id, std::slice::from_ref(&first.subject_id)).unwrap().unwrap();
        assert_eq!(second.position, 1);
        assert_eq!(claim_next(&mut conn, now, &batch.id, std::slice::from_ref(&first.subject_id)).unwrap(), None);

        assert!(record_success(&mut conn, now, &batch.id, 0, &lookup_id("lookup-0"), r#"{"crossings":[]}"#).unwrap());
        assert!(
            !record_success(&mut conn, now, &batch.id, 0, &lookup_id("lookup-x"), "{}").unwrap(),
            "a settled item is not settled again"
        );
        let error = ItemError::new("upstream_rejected", "the immigration service answered 404");
        assert!(record_failure(&mut conn, now, &batch.id, 1, Some(&lookup_id("lookup-1")), &error).unwrap());
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.status, row.done, row.succeeded, row.failed), (BatchStatus::Running, 2, 1, 1));

        let third = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!(third.position, 2);
        assert_eq!(claim_next(&mut conn, now, &batch.id, &[]).unwrap(), None, "nothing left to claim");
        assert!(release(&mut conn, &batch.id, 2).unwrap());
        assert!(has_pending(&mut conn, &batch.id).unwrap(), "a released item is claimable again");
        let again = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!(again.position, 2);
        // Whole seconds: PostgreSQL keeps microseconds.
        let done_at = (now + Duration::seconds(3)).trunc_subsecs(0);
        assert!(record_success(&mut conn, done_at, &batch.id, 2, &lookup_id("lookup-2"), "{}").unwrap());
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.status, row.done, row.succeeded, row.failed), (BatchStatus::Completed, 3, 2, 1));
        assert_eq!(row.finished_at, Some(to_db(done_at)));

        let page = results_page(&mut conn, &batch.id, -1, 2).unwrap();
        assert_eq!(page.iter().map(|i| i.position).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(page[1].error(), Some(error));
        assert_eq!(page[1].lookup_id, Some(lookup_id("lookup-1")));
        let rest = results_page(&mut conn, &batch.id, 1, 2).unwrap();
        assert_eq!(rest.iter().map(|i| i.position).collect::<Vec<_>>(), [2]);
        assert!(open_batches(&mut conn, 10).unwrap().is_empty());
    }

    #[test]
    fn results_of_a_running_batch_list_only_finished_items() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = submitted(&mut conn, now, "user-1", &IDS);
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        record_success(&mut conn, now, &batch.id, 1, &lookup_id("lookup-1"), "{}").unwrap();
        let page = results_page(&mut conn, &batch.id, -1, 500).unwrap();
        assert_eq!(page.iter().map(|i| i.position).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn r_acc_05_a_cancelled_batch_stops_its_pending_items_and_lets_running_ones_finish() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = submitted(&mut conn, now, "user-1", &IDS);
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert!(cancel(&mut conn, now, &batch.id, "the submitter's account is cancelled", Some("R-ACC-05")).unwrap());
        assert!(!cancel(&mut conn, now, &batch.id, "again", None).unwrap(), "only an open batch is cancelled");
        assert_eq!(claim_next(&mut conn, now, &batch.id, &[]).unwrap(), None, "nothing more starts");
        let counts = cancelled_counts(&mut conn, std::slice::from_ref(&batch.id)).unwrap();
        assert_eq!(counts.get(&batch.id), Some(&2));
        let cancellation =
            outbox::pending(&mut conn, 10).unwrap().into_iter().find(|e| e.kind == kind::BATCH_CANCELLED);
        let cancellation = cancellation.expect("the cancellation is on the audit trail");
        assert_eq!(cancellation.payload["cancelled_items"], 2);
        assert_eq!(cancellation.payload["rule"], "R-ACC-05");
        // The lookup already in flight is recorded; the batch stays cancelled.
        assert!(record_success(&mut conn, now, &batch.id, 0, &lookup_id("lookup-0"), "{}").unwrap());
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.status, row.done, row.succeeded), (BatchStatus::Cancelled, 1, 1));
        assert_eq!(row.failure.as_deref(), Some("the submitter's account is cancelled"));
        let listed = results_page(&mut conn, &batch.id, -1, 10).unwrap();
        assert_eq!(
            listed.iter().map(|i| i.status).collect::<Vec<_>>(),
            [ItemStatus::Succeeded, ItemStatus::Cancelled, ItemStatus::Cancelled]
        );
        let error = listed[1].error().unwrap();
        assert_eq!((error.code.as_str(), error.rule.as_deref()), ("cancelled", Some("R-ACC-05")));
    }

    fn standing(user: &str, link: Option<LinkStanding>) -> UserSummary {
        let mut summary = summary(user, "TPE-SW", AccountStatus::Active);
        summary.permissions = vec![Permission {
            legal_basis: "social_assistance_act".into(),
            purpose_code: "sw_statutory_business".into(),
            query_type: "entry_exit_last_year".into(),
        }];
        summary.link = link;
        summary
    }

    /// Between chunks, the submitter's account, the agency's link and the tuple are read again; what
    /// stops the job names its rule.
    #[test]
    fn r_link_06_a_batch_stops_when_its_agencys_link_is_suspended_meanwhile() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let batch = submitted(&mut conn, Utc::now(), "user-1", &IDS);
        let go_on = |user: Option<&UserSummary>| may_continue(&batch, QueryType::EntryExitLastYear, user);
        let usable = LinkStanding { refusal: None, query_types: vec!["entry_exit_last_year".into()] };
        assert_eq!(go_on(Some(&standing("user-1", None))), Ok(()), "no link reported: as before");
        assert_eq!(go_on(Some(&standing("user-1", Some(usable.clone())))), Ok(()));
        let suspended = LinkStanding {
            refusal: Some(Refusal::from_identity(
                "link_suspended",
                Some("TPE-SW's link is suspended since 2026-12-03".into()),
            )),
            ..usable.clone()
        };
        let stop = go_on(Some(&standing("user-1", Some(suspended)))).unwrap_err();
        assert_eq!(stop.rule, "R-LINK-06");
        assert_eq!(
            stop.reason,
            "TPE-SW's link is suspended since 2026-12-03; its remaining lookups were stopped (R-LINK-06)"
        );
        let narrowed = LinkStanding { refusal: None, query_types: vec!["eid_photo".into()] };
        assert_eq!(go_on(Some(&standing("user-1", Some(narrowed)))).unwrap_err().rule, "R-LINK-03");
        let mut revoked = standing("user-1", Some(usable));
        revoked.permissions.clear();
        assert_eq!(go_on(Some(&revoked)).unwrap_err().rule, "R-QRY-02");
        let mut suspended_account = standing("user-1", None);
        suspended_account.status = Some(AccountStatus::Suspended);
        let stop = go_on(Some(&suspended_account)).unwrap_err();
        assert_eq!(
            (stop.rule, stop.reason.as_str()),
            ("R-ACC-05", "the submitter's account is suspended; its remaining lookups were stopped (R-ACC-05)")
        );
        assert_eq!(go_on(None).unwrap_err().rule, "R-ACC-05");

        let stop = go_on(Some(&standing(
            "user-1",
            Some(LinkStanding {
                refusal: Some(Refusal::from_identity("link_terminated", Some("TPE-SW's link ended".into()))),
                query_types: Vec::new(),
            }),
        )))
        .unwrap_err();
        assert!(cancel(&mut conn, Utc::now(), &batch.id, &stop.reason, Some(stop.rule)).unwrap());
        let cancellation = outbox::pending(&mut conn, 10)
            .unwrap()
            .into_iter()
            .find(|e| e.kind == kind::BATCH_CANCELLED)
            .expect("the cancellation is on the audit trail");
        assert_eq!(cancellation.payload["rule"], "R-LINK-08");
        let items = results_page(&mut conn, &batch.id, -1, 10).unwrap();
        assert!(items.iter().all(|item| item.error().and_then(|e| e.rule).as_deref() == Some("R-LINK-08")));
    }

    #[test]
    fn r_qry_05_listing_shows_the_users_own_batches_newest_first_a_page_at_a_time() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let older = submitted(&mut conn, now - Duration::minutes(2), "user-1", &IDS[..1]);
        let newer = submitted(&mut conn, now - Duration::minutes(1), "user-1", &IDS[..2]);
        let someone_elses = submitted(&mut conn, now, "user-2", &IDS[..1]);
        claim_next(&mut conn, now, &older.id, &[]).unwrap().unwrap();
        cancel(&mut conn, now, &newer.id, "stopped", None).unwrap();
        let ids =
            |listed: Vec<BatchProgress>| listed.into_iter().map(|p| (p.batch.id, p.cancelled)).collect::<Vec<_>>();
        let me = submitter("user-1");
        assert_eq!(ids(list(&mut conn, &me, &Page::first()).unwrap()), [(newer.id.clone(), 2), (older.id.clone(), 0)]);
        let first = Page { limit: 1, cursor: None };
        assert_eq!(ids(list(&mut conn, &me, &first).unwrap()), [(newer.id.clone(), 2)]);
        let next = Page { limit: 1, cursor: Some(newer.id.to_string()) };
        assert_eq!(ids(list(&mut conn, &me, &next).unwrap()), [(older.id.clone(), 0)]);
        let open: Vec<BatchId> = open_batches(&mut conn, 10).unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(open, [older.id, someone_elses.id]);
    }

    #[test]
    fn r_qry_05_progress_is_for_the_submitter_and_overseers_results_for_the_submitter_only() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let batch = submitted(&mut conn, Utc::now(), "user-1", &IDS);
        let me = submitter("user-1");
        assert_eq!(progress(&mut conn, &me, &batch.id).unwrap().batch.id, batch.id);
        assert!(for_results(&mut conn, &me, &batch.id).is_ok());
        for overseer in ["account_manager", "auditor"] {
            let who = caller("user-9", "TPE-SW", None, &[overseer]);
            assert!(progress(&mut conn, &who, &batch.id).is_ok(), "{overseer}");
            assert!(matches!(for_results(&mut conn, &who, &batch.id), Err(BrokerError::NotFound(_))), "{overseer}");
        }
        for stranger in
            [caller("user-9", "TPE-SW", None, &["unit_supervisor"]), caller("user-9", "HLN-HR", None, &["auditor"])]
        {
            assert!(matches!(progress(&mut conn, &stranger, &batch.id), Err(BrokerError::NotFound(_))));
        }
    }

    #[test]
    fn r_qry_05_an_abandoned_item_is_requeued_when_nothing_was_recorded_and_failed_naming_its_lookup_otherwise() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = submitted(&mut conn, now, "user-1", &IDS);
        // A worker claimed two items and stopped: for position 0 it had recorded the lookup.
        let a = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        let b = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        let recorded = record_lookup(&mut conn, now, &batch, &a.subject_id);
        assert_eq!(running_items(&mut conn, std::slice::from_ref(&batch.id)).unwrap().len(), 2);

        let later = now + Duration::minutes(10);
        assert_eq!(
            reconcile_abandoned(&mut conn, later, &batch.id, a.position).unwrap(),
            Reconciled::Failed { lookup_id: recorded.clone() }
        );
        assert_eq!(reconcile_abandoned(&mut conn, later, &batch.id, b.position).unwrap(), Reconciled::Requeued);
        assert_eq!(reconcile_abandoned(&mut conn, later, &batch.id, b.position).unwrap(), Reconciled::Untouched);
        let stored = items(&mut conn, &batch.id);
        assert_eq!(stored[0].status, ItemStatus::Failed);
        assert_eq!(stored[0].lookup_id.as_ref(), Some(&recorded));
        assert_eq!(stored[0].error().unwrap().code, "interrupted");
        assert_eq!(stored[1].status, ItemStatus::Pending, "nothing was forwarded for it, so it runs again");
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.done, row.failed), (1, 1));

        // Position 2 has the same subject as position 0: its own attempt finds its own lookup, not
        // the one position 0 already names.
        let c = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!(c.position, 1);
        let d = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!(d.position, 2);
        assert_eq!(unclaimed_lookup(&mut conn, &batch.id, &d.subject_id, None).unwrap(), None);
        let own = record_lookup(&mut conn, later, &batch, &d.subject_id);
        let found = unclaimed_lookup(&mut conn, &batch.id, &d.subject_id, Some(later)).unwrap();
        assert_eq!(found.map(|(id, _)| id), Some(own));
    }

    #[test]
    fn r_qry_12_a_stored_result_cannot_be_altered_even_directly_in_the_database() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = submitted(&mut conn, now, "user-1", &IDS[..1]);
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        record_success(&mut conn, now, &batch.id, 0, &lookup_id("lookup-0"), r#"{"currently_in_taiwan":true}"#)
            .unwrap();
        let tamper = diesel::update(batch_items::table.filter(batch_items::batch_id.eq(&batch.id)))
            .set(batch_items::result.eq(r#"{"currently_in_taiwan":false}"#))
            .execute(&mut conn);
        let err = tamper.expect_err("the trigger refuses the update");
        assert!(err.to_string().contains("read-only"), "{err}");
        let erase = diesel::update(batch_items::table.filter(batch_items::batch_id.eq(&batch.id)))
            .set(batch_items::result.eq(None::<String>))
            .execute(&mut conn);
        assert!(erase.is_err(), "nor can it be erased");
        let stored = items(&mut conn, &batch.id);
        assert_eq!(stored[0].result.as_deref(), Some(r#"{"currently_in_taiwan":true}"#));
    }
}
