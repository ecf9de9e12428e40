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

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::ids::SubjectId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::lookup::Requester;
use super::{outbox, BrokerError};
use crate::schema::{batch_items, batches, lookups};

/// Batch statuses.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const COMPLETED: &str = "completed";
pub const CANCELLED: &str = "cancelled";
const OPEN: [&str; 2] = [QUEUED, RUNNING];

/// Item statuses.
pub mod item {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
    /// Statuses an item ends in; results list only these.
    pub const FINISHED: [&str; 3] = [SUCCEEDED, FAILED, CANCELLED];
}

/// Most subject IDs one batch may carry.
pub const MAX_SUBJECTS: usize = 10_000;

/// Rows per multi-row insert (well under SQLite's bound-parameter limit).
const INSERT_CHUNK: usize = 500;

/// A validated batch, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: String,
    pub who: Requester,
    pub query_type: QueryType,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub remarks: Option<String>,
    /// R-QRY-10: the unit supervisor's approval its purpose needed, if any.
    pub supervisor_approval_id: Option<String>,
    pub subjects: Vec<SubjectId>,
}

impl NewBatch {
    /// The `batch.submitted` audit event. The IDs themselves are not listed here: each becomes its
    /// own `lookup.requested` record (naming its subject and this batch) when it is run.
    pub fn submitted_event(&self, now: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind::BATCH_SUBMITTED.into(),
            occurred_at: now,
            source: crate::SERVICE.into(),
            actor_user_id: Some(self.who.user_id.clone()),
            agency: Some(self.who.agency.clone()),
            correlation_id: Some(self.id.clone()),
            subject_id: None,
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
    pub id: String,
    pub agency: String,
    pub user_id: String,
    pub session_id: String,
    pub query_type: String,
    pub legal_basis: String,
    pub purpose_code: String,
    pub case_number: String,
    pub remarks: Option<String>,
    pub supervisor_approval_id: Option<String>,
    pub status: String,
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
        OPEN.contains(&self.status.as_str())
    }

    pub fn requester(&self) -> Requester {
        Requester { user_id: self.user_id.clone(), session_id: self.session_id.clone(), agency: self.agency.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = batch_items)]
pub struct ItemRow {
    pub batch_id: String,
    pub position: i32,
    pub subject_id: String,
    pub status: String,
    pub lookup_id: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    pub batch_id: String,
    pub position: i32,
    pub subject_id: String,
}

/// Stores a validated batch: the batch, all its items (`pending`) and its `batch.submitted` event,
/// in one transaction. Nothing is stored if any part fails.
pub fn submit(conn: &mut DbConn, now: DateTime<Utc>, batch: &NewBatch) -> Result<BatchRow, BrokerError> {
    let total = i32::try_from(batch.subjects.len())
        .map_err(|_| BrokerError::BatchTooLarge { count: batch.subjects.len(), max: MAX_SUBJECTS })?;
    let event = batch.submitted_event(now);
    conn.write_transaction(|conn| {
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
                batches::status.eq(QUEUED),
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
                    let row =
                        NewItem { batch_id: &batch.id, position, subject_id: subject.as_str(), status: item::PENDING };
                    position += 1;
                    row
                })
                .collect();
            insert_items(conn, &rows)?;
        }
        outbox::enqueue(conn, now, &event)?;
        batches::table.find(&batch.id).select(BatchRow::as_select()).first(conn).map_err(BrokerError::from)
    })
}

#[derive(Insertable)]
#[diesel(table_name = batch_items)]
struct NewItem<'a> {
    batch_id: &'a str,
    position: i32,
    subject_id: &'a str,
    status: &'a str,
}

/// Multi-row inserts do not go through the multi-backend connection; both backends take the same
/// statement on their own connection (inside the caller's transaction).
fn insert_items(conn: &mut DbConn, rows: &[NewItem<'_>]) -> Result<usize, diesel::result::Error> {
    match conn {
        DbConn::Pg(pg) => diesel::insert_into(batch_items::table).values(rows).execute(pg),
        DbConn::Sqlite(sqlite) => diesel::insert_into(batch_items::table).values(rows).execute(sqlite),
    }
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<BatchRow>, BrokerError> {
    Ok(batches::table.find(id).select(BatchRow::as_select()).first(conn).optional()?)
}

/// The user's own batches, newest first.
pub fn list_for_user(conn: &mut DbConn, user_id: &str, limit: i64) -> Result<Vec<BatchRow>, BrokerError> {
    Ok(batches::table
        .filter(batches::user_id.eq(user_id))
        .order((batches::created_at.desc(), batches::id.desc()))
        .limit(limit)
        .select(BatchRow::as_select())
        .load(conn)?)
}

/// How many of a batch's items were cancelled (not counted in `done`).
pub fn cancelled_items(conn: &mut DbConn, batch_id: &str) -> Result<i64, BrokerError> {
    Ok(batch_items::table
        .filter(batch_items::batch_id.eq(batch_id))
        .filter(batch_items::status.eq(item::CANCELLED))
        .count()
        .get_result(conn)?)
}

/// Batches with work left (`queued` or `running`), oldest first.
pub fn open_batches(conn: &mut DbConn, limit: i64) -> Result<Vec<BatchRow>, BrokerError> {
    Ok(batches::table
        .filter(batches::status.eq_any(OPEN))
        .order((batches::created_at.asc(), batches::id.asc()))
        .limit(limit)
        .select(BatchRow::as_select())
        .load(conn)?)
}

/// Whether the batch still has items nobody has claimed.
pub fn has_pending(conn: &mut DbConn, batch_id: &str) -> Result<bool, BrokerError> {
    Ok(diesel::select(diesel::dsl::exists(
        batch_items::table.filter(batch_items::batch_id.eq(batch_id)).filter(batch_items::status.eq(item::PENDING)),
    ))
    .get_result(conn)?)
}

/// Claims the batch's lowest pending item whose subject is not in `busy` (so one worker never runs
/// the same subject of a batch twice at once), marking it `running`, and the batch `running` if it
/// was `queued`. The conditional update makes the claim exclusive across workers and replicas.
pub fn claim_next(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &str,
    busy: &[String],
) -> Result<Option<ClaimedItem>, BrokerError> {
    conn.write_transaction(|conn| {
        // Another worker may take the candidate between the read and the update (PostgreSQL): then
        // try the next one.
        for _ in 0..16 {
            let candidate: Option<(i32, String)> = batch_items::table
                .filter(batch_items::batch_id.eq(batch_id))
                .filter(batch_items::status.eq(item::PENDING))
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
                    .filter(batch_items::status.eq(item::PENDING)),
            )
            .set(batch_items::status.eq(item::RUNNING))
            .execute(conn)?;
            if claimed == 1 {
                diesel::update(batches::table.find(batch_id).filter(batches::status.eq(QUEUED)))
                    .set((batches::status.eq(RUNNING), batches::started_at.eq(to_db(now))))
                    .execute(conn)?;
                return Ok(Some(ClaimedItem { batch_id: batch_id.to_owned(), position, subject_id }));
            }
        }
        Ok(None)
    })
}

/// Gives a claimed item back (`running` → `pending`), when its lookup could not even be recorded or
/// is to be retried later. Returns whether the item was still held.
pub fn release(conn: &mut DbConn, batch_id: &str, position: i32) -> Result<bool, BrokerError> {
    let released = diesel::update(
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::position.eq(position))
            .filter(batch_items::status.eq(item::RUNNING)),
    )
    .set(batch_items::status.eq(item::PENDING))
    .execute(conn)?;
    Ok(released == 1)
}

/// Records a claimed item's successful lookup and its minimised result.
pub fn record_success(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &str,
    position: i32,
    lookup_id: &str,
    result_json: &str,
) -> Result<bool, BrokerError> {
    conn.write_transaction(|conn| {
        finish(conn, now, batch_id, position, item::SUCCEEDED, Some(lookup_id), Some(result_json), None)
    })
}

/// Records a claimed item's failure (with its lookup when one was recorded).
pub fn record_failure(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &str,
    position: i32,
    lookup_id: Option<&str>,
    error: &ItemError,
) -> Result<bool, BrokerError> {
    conn.write_transaction(|conn| {
        finish(conn, now, batch_id, position, item::FAILED, lookup_id, None, Some(&error.to_json()))
    })
}

/// Sets a `running` item's outcome, counts it, and completes the batch when it was the last one; the
/// caller holds a write transaction. Returns whether the item was still `running` (an item another
/// worker already settled is left alone).
#[allow(clippy::too_many_arguments)]
fn finish(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &str,
    position: i32,
    status: &'static str,
    lookup_id: Option<&str>,
    result: Option<&str>,
    failure: Option<&str>,
) -> Result<bool, BrokerError> {
    let updated = diesel::update(
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::position.eq(position))
            .filter(batch_items::status.eq(item::RUNNING)),
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
    let (succeeded, failed) = if status == item::SUCCEEDED { (1, 0) } else { (0, 1) };
    diesel::update(batches::table.find(batch_id))
        .set((
            batches::done.eq(batches::done + 1),
            batches::succeeded.eq(batches::succeeded + succeeded),
            batches::failed.eq(batches::failed + failed),
        ))
        .execute(conn)?;
    diesel::update(
        batches::table.find(batch_id).filter(batches::status.eq_any(OPEN)).filter(batches::done.ge(batches::total)),
    )
    .set((batches::status.eq(COMPLETED), batches::finished_at.eq(to_db(now))))
    .execute(conn)?;
    Ok(true)
}

/// Cancels an open batch with a reason: it ends `cancelled` and its pending items are `cancelled`,
/// so no worker starts another of its lookups. Items already running finish and are recorded.
/// Returns whether the batch was still open.
pub fn cancel(conn: &mut DbConn, now: DateTime<Utc>, batch_id: &str, reason: &str) -> Result<bool, BrokerError> {
    let failure = ItemError::new("cancelled", reason).to_json();
    conn.write_transaction(|conn| {
        let updated = diesel::update(batches::table.find(batch_id).filter(batches::status.eq_any(OPEN)))
            .set((batches::status.eq(CANCELLED), batches::finished_at.eq(to_db(now)), batches::failure.eq(reason)))
            .execute(conn)?;
        if updated == 0 {
            return Ok(false);
        }
        let cancelled = diesel::update(
            batch_items::table.filter(batch_items::batch_id.eq(batch_id)).filter(batch_items::status.eq(item::PENDING)),
        )
        .set((
            batch_items::status.eq(item::CANCELLED),
            batch_items::failure.eq(&failure),
            batch_items::completed_at.eq(to_db(now)),
        ))
        .execute(conn)?;
        let (user_id, agency): (String, String) =
            batches::table.find(batch_id).select((batches::user_id, batches::agency)).first(conn)?;
        let event = AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind::BATCH_CANCELLED.into(),
            occurred_at: now,
            source: crate::SERVICE.into(),
            actor_user_id: Some(user_id),
            agency: Some(agency),
            correlation_id: Some(batch_id.to_owned()),
            subject_id: None,
            payload: json!({ "batch_id": batch_id, "reason": reason, "cancelled_items": cancelled }),
        };
        outbox::enqueue(conn, now, &event)?;
        Ok(true)
    })
}

/// Items marked `running` in the given batches: `(batch_id, position)`.
pub fn running_items(conn: &mut DbConn, batch_ids: &[String]) -> Result<Vec<(String, i32)>, BrokerError> {
    Ok(batch_items::table
        .filter(batch_items::batch_id.eq_any(batch_ids))
        .filter(batch_items::status.eq(item::RUNNING))
        .select((batch_items::batch_id, batch_items::position))
        .load(conn)?)
}

/// The lookup a batch item's attempt recorded: the newest lookup of this batch and subject, requested
/// at or after `since`, that no item of the batch names yet. `None` when the attempt recorded none.
pub fn unclaimed_lookup(
    conn: &mut DbConn,
    batch_id: &str,
    subject_id: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Option<(String, String)>, BrokerError> {
    let since = since.unwrap_or(DateTime::UNIX_EPOCH);
    let candidates: Vec<(String, String)> = lookups::table
        .filter(lookups::batch_id.eq(batch_id))
        .filter(lookups::subject_id.eq(subject_id))
        .filter(lookups::requested_at.ge(to_db(since)))
        .order(lookups::id.desc())
        .select((lookups::id, lookups::status))
        .load(conn)?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&str> = candidates.iter().map(|(id, _)| id.as_str()).collect();
    let named: Vec<Option<String>> = batch_items::table
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
    Failed { lookup_id: String },
}

/// Settles an item left `running` by a worker that stopped (the caller decides it was abandoned: it
/// stayed `running` far longer than any lookup takes).
pub fn reconcile_abandoned(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    batch_id: &str,
    position: i32,
) -> Result<Reconciled, BrokerError> {
    conn.write_transaction(|conn| {
        let found: Option<(String, String)> = batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .filter(batch_items::position.eq(position))
            .select((batch_items::status, batch_items::subject_id))
            .first(conn)
            .optional()?;
        let Some((status, subject_id)) = found else {
            return Ok(Reconciled::Untouched);
        };
        if status != item::RUNNING {
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
                finish(conn, now, batch_id, position, item::FAILED, Some(&lookup_id), None, Some(&error.to_json()))?;
                Ok(Reconciled::Failed { lookup_id })
            }
        }
    })
}

/// Finished items (succeeded, failed, cancelled) after `after` (a position), at most `limit`, in order.
pub fn results_page(conn: &mut DbConn, batch_id: &str, after: i32, limit: i64) -> Result<Vec<ItemRow>, BrokerError> {
    Ok(batch_items::table
        .filter(batch_items::batch_id.eq(batch_id))
        .filter(batch_items::position.gt(after))
        .filter(batch_items::status.eq_any(item::FINISHED))
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
    use crate::domain::lookup::{self, Context, NewLookup};
    use crate::domain::request::{sample_body, LookupRequest};
    use crate::MIGRATIONS;

    fn db(test_db: &TestDb) -> Db {
        Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database")
    }

    fn requester(user: &str) -> Requester {
        Requester { user_id: user.into(), session_id: "session-1".into(), agency: "TPE-SW".into() }
    }

    const IDS: [&str; 3] = ["A123456789", "F131104093", "A123456789"];

    fn new_batch(user: &str, ids: &[&str]) -> NewBatch {
        NewBatch {
            id: uuid::Uuid::now_v7().to_string(),
            who: requester(user),
            query_type: QueryType::EntryExitLastYear,
            legal_basis: "social_assistance_act".into(),
            purpose_code: "sw_statutory_business".into(),
            case_number: "TPE-2026-7".into(),
            remarks: None,
            supervisor_approval_id: None,
            subjects: ids.iter().map(|id| SubjectId::parse_resident(id).unwrap()).collect(),
        }
    }

    fn items(conn: &mut DbConn, batch_id: &str) -> Vec<ItemRow> {
        batch_items::table
            .filter(batch_items::batch_id.eq(batch_id))
            .order(batch_items::position.asc())
            .select(ItemRow::as_select())
            .load(conn)
            .unwrap()
    }

    /// A lookup recorded for a batch item, as the pipeline records it.
    fn record_lookup(conn: &mut DbConn, now: DateTime<Utc>, batch: &NewBatch, subject: &str) -> String {
        let mut body = sample_body();
        body.subject_id = Some(subject.into());
        let request = LookupRequest::parse(body).unwrap();
        let context = Context { batch_id: Some(batch.id.clone()), ..Context::default() };
        let new = NewLookup::new(now, &batch.who, &request, &context);
        lookup::insert_requested(conn, &new).unwrap();
        new.id
    }

    #[test]
    fn r_qry_05_a_batch_its_items_and_its_audit_event_are_stored_together() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = new_batch("user-1", &IDS);
        let row = submit(&mut conn, now, &batch).unwrap();
        assert_eq!((row.status.as_str(), row.total, row.done), (QUEUED, 3, 0));
        let stored = items(&mut conn, &batch.id);
        assert_eq!(stored.len(), 3, "duplicates are kept: each is its own lookup");
        assert!(stored.iter().all(|i| i.status == item::PENDING && i.result.is_none()));
        assert_eq!(stored.iter().map(|i| i.position).collect::<Vec<_>>(), [0, 1, 2]);
        let events = outbox::pending(&mut conn, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, kind::BATCH_SUBMITTED);
        assert_eq!(events[0].correlation_id.as_deref(), Some(batch.id.as_str()));
        assert_eq!(events[0].payload["total"], 3);
        assert_eq!(events[0].payload["case_number"], "TPE-2026-7");
    }

    #[test]
    fn r_qry_05_a_submission_that_fails_part_way_leaves_nothing_behind() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        // The audit event cannot be written: neither the batch nor any item may remain.
        diesel::sql_query("DROP TABLE outbox").execute(&mut conn).unwrap();
        let many: Vec<&str> = std::iter::repeat_n("A123456789", 1200).collect();
        let batch = new_batch("user-1", &many);
        assert!(submit(&mut conn, Utc::now(), &batch).is_err());
        let batches_left: i64 = batches::table.count().get_result(&mut conn).unwrap();
        let items_left: i64 = batch_items::table.count().get_result(&mut conn).unwrap();
        assert_eq!((batches_left, items_left), (0, 0));
    }

    #[test]
    fn r_qry_05_items_are_claimed_once_counted_and_the_last_one_completes_the_batch() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = new_batch("user-1", &IDS);
        submit(&mut conn, now, &batch).unwrap();

        let first = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!((first.position, first.subject_id.as_str()), (0, "A123456789"));
        assert_eq!(find(&mut conn, &batch.id).unwrap().unwrap().status, RUNNING);
        // The same subject is busy in this worker: the next claim skips position 2 for now.
        let second = claim_next(&mut conn, now, &batch.id, std::slice::from_ref(&first.subject_id)).unwrap().unwrap();
        assert_eq!(second.position, 1);
        assert_eq!(claim_next(&mut conn, now, &batch.id, std::slice::from_ref(&first.subject_id)).unwrap(), None);

        assert!(record_success(&mut conn, now, &batch.id, 0, "lookup-0", r#"{"crossings":[]}"#).unwrap());
        assert!(
            !record_success(&mut conn, now, &batch.id, 0, "lookup-x", "{}").unwrap(),
            "a settled item is not settled again"
        );
        let error = ItemError::new("upstream_rejected", "the immigration service answered 404");
        assert!(record_failure(&mut conn, now, &batch.id, 1, Some("lookup-1"), &error).unwrap());
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.done, row.succeeded, row.failed), (RUNNING, 2, 1, 1));

        let third = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!(third.position, 2);
        assert_eq!(claim_next(&mut conn, now, &batch.id, &[]).unwrap(), None, "nothing left to claim");
        assert!(release(&mut conn, &batch.id, 2).unwrap());
        assert!(has_pending(&mut conn, &batch.id).unwrap(), "a released item is claimable again");
        let again = claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert_eq!(again.position, 2);
        // Whole seconds: PostgreSQL keeps microseconds.
        let done_at = (now + Duration::seconds(3)).trunc_subsecs(0);
        assert!(record_success(&mut conn, done_at, &batch.id, 2, "lookup-2", "{}").unwrap());
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.done, row.succeeded, row.failed), (COMPLETED, 3, 2, 1));
        assert_eq!(row.finished_at, Some(to_db(done_at)));

        let page = results_page(&mut conn, &batch.id, -1, 2).unwrap();
        assert_eq!(page.iter().map(|i| i.position).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(page[1].error(), Some(error));
        assert_eq!(page[1].lookup_id.as_deref(), Some("lookup-1"));
        let rest = results_page(&mut conn, &batch.id, 1, 2).unwrap();
        assert_eq!(rest.iter().map(|i| i.position).collect::<Vec<_>>(), [2]);
        assert!(open_batches(&mut conn, 10).unwrap().is_empty());
    }

    #[test]
    fn results_of_a_running_batch_list_only_finished_items() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = new_batch("user-1", &IDS);
        submit(&mut conn, now, &batch).unwrap();
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        record_success(&mut conn, now, &batch.id, 1, "lookup-1", "{}").unwrap();
        let page = results_page(&mut conn, &batch.id, -1, 500).unwrap();
        assert_eq!(page.iter().map(|i| i.position).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn r_acc_05_a_cancelled_batch_stops_its_pending_items_and_lets_running_ones_finish() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = new_batch("user-1", &IDS);
        submit(&mut conn, now, &batch).unwrap();
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        assert!(cancel(&mut conn, now, &batch.id, "the submitter's account is cancelled").unwrap());
        assert!(!cancel(&mut conn, now, &batch.id, "again").unwrap(), "only an open batch is cancelled");
        assert_eq!(claim_next(&mut conn, now, &batch.id, &[]).unwrap(), None, "nothing more starts");
        assert_eq!(cancelled_items(&mut conn, &batch.id).unwrap(), 2);
        let cancellation =
            outbox::pending(&mut conn, 10).unwrap().into_iter().find(|e| e.kind == kind::BATCH_CANCELLED);
        let cancellation = cancellation.expect("the cancellation is on the audit trail");
        assert_eq!(cancellation.payload["cancelled_items"], 2);
        // The lookup already in flight is recorded; the batch stays cancelled.
        assert!(record_success(&mut conn, now, &batch.id, 0, "lookup-0", "{}").unwrap());
        let row = find(&mut conn, &batch.id).unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.done, row.succeeded), (CANCELLED, 1, 1));
        assert_eq!(row.failure.as_deref(), Some("the submitter's account is cancelled"));
        let listed = results_page(&mut conn, &batch.id, -1, 10).unwrap();
        assert_eq!(
            listed.iter().map(|i| i.status.as_str()).collect::<Vec<_>>(),
            ["succeeded", "cancelled", "cancelled"]
        );
        assert_eq!(listed[1].error().unwrap().code, "cancelled");
    }

    #[test]
    fn r_qry_05_listing_shows_the_users_own_batches_newest_first_and_open_ones_oldest_first() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let older = new_batch("user-1", &IDS[..1]);
        let newer = new_batch("user-1", &IDS[..2]);
        let someone_elses = new_batch("user-2", &IDS[..1]);
        submit(&mut conn, now - Duration::minutes(2), &older).unwrap();
        submit(&mut conn, now - Duration::minutes(1), &newer).unwrap();
        submit(&mut conn, now, &someone_elses).unwrap();
        let mine: Vec<String> = list_for_user(&mut conn, "user-1", 10).unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(mine, [newer.id.clone(), older.id.clone()]);
        assert_eq!(list_for_user(&mut conn, "user-1", 1).unwrap().len(), 1);
        let open: Vec<String> = open_batches(&mut conn, 10).unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(open, [older.id, newer.id, someone_elses.id]);
    }

    #[test]
    fn r_qry_05_an_abandoned_item_is_requeued_when_nothing_was_recorded_and_failed_naming_its_lookup_otherwise() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let now = Utc::now();
        let batch = new_batch("user-1", &IDS);
        submit(&mut conn, now, &batch).unwrap();
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
        assert_eq!(stored[0].status, item::FAILED);
        assert_eq!(stored[0].lookup_id.as_deref(), Some(recorded.as_str()));
        assert_eq!(stored[0].error().unwrap().code, "interrupted");
        assert_eq!(stored[1].status, item::PENDING, "nothing was forwarded for it, so it runs again");
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
        let batch = new_batch("user-1", &IDS[..1]);
        submit(&mut conn, now, &batch).unwrap();
        claim_next(&mut conn, now, &batch.id, &[]).unwrap().unwrap();
        record_success(&mut conn, now, &batch.id, 0, "lookup-0", r#"{"currently_in_taiwan":true}"#).unwrap();
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
