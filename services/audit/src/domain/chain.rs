//! The hash chain (R-AUD-02). Appends are serialised by the head row, idempotent by event id, and
//! atomic per batch. Verification walks the chain in sequence order and names the first record whose
//! link or content does not match.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::events::{AuditEvent, BatchReceipt};
use immilink_shared::extractors::Page;
use immilink_shared::typed::{AgencyCode, UserId};
use sha2::{Digest, Sha256};

use super::{checkpoints, tree, AuditError};
use crate::schema::{audit_chain_head, audit_records};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A stored record, every field as hashed (the texts exactly as they were received).
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = audit_records)]
pub struct AuditRecord {
    pub sequence: i64,
    pub id: String,
    pub kind: String,
    pub occurred_at: NaiveDateTime,
    pub recorded_at: NaiveDateTime,
    pub source: String,
    pub actor_user_id: Option<String>,
    pub agency: Option<String>,
    pub correlation_id: Option<String>,
    pub subject_id: Option<String>,
    /// Canonical JSON text of the event details.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
    /// Which fields the hash covers: see [`HashScheme`].
    pub hash_scheme: i16,
    /// When the record's content was disposed of after retention (R-AUD-01): its personal data
    /// (actor, correlation, subject, payload) is gone, its hash and place in the chain and tree stay.
    /// Not hashed: it is set after the fact, and a disposal record in the log names every disposal.
    pub disposed_at: Option<NaiveDateTime>,
    /// The unit the act was done for (lookups, bulk jobs, refusals); a unit supervisor reads these.
    pub unit: Option<String>,
}

/// What a record's hash covers. Records are appended under [`HashScheme::EveryField`]; records
/// stored before it existed keep the hash they were stored with, and may only precede it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// Every field but `recorded_at` (records appended before the Merkle tree existed).
    WithoutRecordedAt = 1,
    /// Every stored field, the scheme's own number included.
    EveryField = 2,
}

impl HashScheme {
    pub fn of(record: &AuditRecord) -> Option<Self> {
        match record.hash_scheme {
            1 => Some(Self::WithoutRecordedAt),
            2 => Some(Self::EveryField),
            _ => None,
        }
    }
}

/// The hash of a record: SHA-256 over the previous hash and the stored fields its scheme covers,
/// each prefixed by its length, so no two different records hash alike. `None` for an unknown
/// scheme.
pub fn record_hash(record: &AuditRecord) -> Option<String> {
    let scheme = HashScheme::of(record)?;
    let at = |t: &chrono::NaiveDateTime| t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    fn opt(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update(bytes.len().to_string().as_bytes());
        hasher.update(b":");
        hasher.update(bytes);
    };
    part(record.prev_hash.as_bytes());
    part(record.sequence.to_string().as_bytes());
    part(record.id.as_bytes());
    part(record.kind.as_bytes());
    part(at(&record.occurred_at).as_bytes());
    part(record.source.as_bytes());
    part(opt(&record.actor_user_id).as_bytes());
    part(opt(&record.agency).as_bytes());
    part(opt(&record.correlation_id).as_bytes());
    part(opt(&record.subject_id).as_bytes());
    part(record.payload.as_bytes());
    if scheme == HashScheme::EveryField {
        part(at(&record.recorded_at).as_bytes());
        part(record.hash_scheme.to_string().as_bytes());
        part(opt(&record.unit).as_bytes());
    }
    Some(hex::encode(hasher.finalize()))
}

/// Appends a batch atomically; events already stored are counted as duplicates and skipped.
pub fn append(conn: &mut DbConn, now: DateTime<Utc>, events: &[AuditEvent]) -> Result<BatchReceipt, AuditError> {
    conn.write_transaction(|conn| {
        conn.plan_for_actual_values()?;
        lock_chain(conn)?;
        append_locked(conn, now, events)
    })
}

/// Takes the chain lock: every transaction that appends, or reads the tree to sign or dispose,
/// updates the head row first, which takes its row lock on PostgreSQL (SQLite's IMMEDIATE
/// transactions hold the write lock already), so appenders queue here.
pub fn lock_chain(conn: &mut DbConn) -> Result<(), AuditError> {
    diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
        .set(audit_chain_head::next_sequence.eq(audit_chain_head::next_sequence))
        .execute(conn)?;
    Ok(())
}

/// Appends inside the caller's transaction, which holds the chain lock ([`lock_chain`]): for the
/// audit service's own acts, recorded in the same transaction as the act.
pub fn append_locked(conn: &mut DbConn, now: DateTime<Utc>, events: &[AuditEvent]) -> Result<BatchReceipt, AuditError> {
    {
        let (mut next_sequence, mut last_hash): (i64, String) = audit_chain_head::table
            .filter(audit_chain_head::id.eq(1))
            .select((audit_chain_head::next_sequence, audit_chain_head::last_hash))
            .first(conn)?;
        let mut receipt = BatchReceipt { appended: 0, duplicates: 0 };
        // Which of the batch are stored already (redeliveries), in one query per chunk.
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|e| e.id.as_str()).collect();
            let stored: Vec<String> =
                audit_records::table.filter(audit_records::id.eq_any(ids)).select(audit_records::id).load(conn)?;
            seen.extend(stored);
        }
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            if !seen.insert(event.id.clone()) {
                receipt.duplicates += 1;
                continue;
            }
            let mut record = AuditRecord {
                sequence: next_sequence,
                id: event.id.clone(),
                kind: event.kind.clone(),
                occurred_at: to_db(event.occurred_at),
                recorded_at: to_db(now),
                source: event.source.clone(),
                actor_user_id: event.actor_user_id.clone(),
                agency: event.agency.clone(),
                correlation_id: event.correlation_id.clone(),
                subject_id: event.subject_id.clone(),
                payload: serde_json::to_string(&event.payload).unwrap_or_else(|_| "null".into()),
                prev_hash: last_hash.clone(),
                hash: String::new(),
                hash_scheme: HashScheme::EveryField as i16,
                disposed_at: None,
                unit: event.unit.clone(),
            };
            record.hash = record_hash(&record).unwrap_or_default();
            last_hash = record.hash.clone();
            next_sequence += 1;
            receipt.appended += 1;
            records.push(record);
        }
        insert_all(conn, &records)?;
        super::projection::project_appended(conn, &records)?;
        // The tree covers every record before these (older records are added first), then these.
        let tree_size = tree::catch_up(conn)?;
        let leaves: Vec<_> = records.iter().filter_map(|r| tree::leaf_hash(&r.hash)).collect();
        let tree_size = tree::extend(conn, tree_size, &leaves)?;
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
            .set((
                audit_chain_head::next_sequence.eq(next_sequence),
                audit_chain_head::last_hash.eq(&last_hash),
                audit_chain_head::tree_size.eq(tree_size as i64),
            ))
            .execute(conn)?;
        Ok(receipt)
    }
}

/// Adds to the Merkle tree any records it does not cover yet (those stored before it existed), under
/// the chain lock. Run when the service starts, so proofs cover every record from the start.
pub fn complete_tree(conn: &mut DbConn) -> Result<u64, AuditError> {
    conn.write_transaction(|conn| {
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
            .set(audit_chain_head::tree_size.eq(audit_chain_head::tree_size))
            .execute(conn)?;
        super::projection::catch_up(conn)?;
        tree::catch_up(conn)
    })
}

/// Rows per statement: 15 columns each stays well under both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts the records with one multi-row INSERT per few hundred.
fn insert_all(conn: &mut DbConn, records: &[AuditRecord]) -> QueryResult<()> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    audit_records::sequence.eq(r.sequence),
                    audit_records::id.eq(&r.id),
                    audit_records::kind.eq(&r.kind),
                    audit_records::occurred_at.eq(r.occurred_at),
                    audit_records::recorded_at.eq(r.recorded_at),
                    audit_records::source.eq(&r.source),
                    audit_records::actor_user_id.eq(&r.actor_user_id),
                    audit_records::agency.eq(&r.agency),
                    audit_records::correlation_id.eq(&r.correlation_id),
                    audit_records::subject_id.eq(&r.subject_id),
                    audit_records::payload.eq(&r.payload),
                    audit_records::prev_hash.eq(&r.prev_hash),
                    audit_records::hash.eq(&r.hash),
                    audit_records::hash_scheme.eq(r.hash_scheme),
                    audit_records::unit.eq(&r.unit),
                )
            })
            .collect();
        immilink_shared::insert_rows!(conn, audit_records::table, &rows);
    }
    Ok(())
}

/// Result of checking the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub ok: bool,
    /// Records found intact, in sequence order from the first.
    pub records: i64,
    /// The first record whose link, content or position is wrong, or the first that is missing.
    pub first_bad_sequence: Option<i64>,
    /// What is wrong, when something is.
    pub reason: Option<String>,
    /// The latest stored checkpoint: its size, and whether it is signed by the log and is the tree
    /// of the records.
    pub checkpoint: Option<(u64, bool)>,
    /// Whether the newest checkpoint the witness cosigned is the tree of these records.
    pub witnessed: bool,
}

impl Verification {
    fn intact(records: i64) -> Self {
        Self { ok: true, records, first_bad_sequence: None, reason: None, checkpoint: None, witnessed: false }
    }

    fn broken(records: i64, first_bad_sequence: Option<i64>, reason: impl Into<String>) -> Self {
        Self { ok: false, records, first_bad_sequence, reason: Some(reason.into()), checkpoint: None, witnessed: false }
    }
}

/// What a verification checks the records against besides themselves: the log's keys, and the
/// witness's own latest cosigned checkpoint when it could be asked (otherwise the newest cosigned
/// checkpoint stored here stands in).
pub struct Anchors<'k> {
    pub keys: &'k checkpoints::LogKeys,
    pub witness_view: Option<String>,
}

/// What the chain head says the log holds.
#[derive(Debug, Clone, Queryable)]
pub struct Head {
    pub next_sequence: i64,
    pub last_hash: String,
    pub tree_size: i64,
}

pub fn head(conn: &mut DbConn) -> Result<Head, AuditError> {
    Ok(audit_chain_head::table
        .filter(audit_chain_head::id.eq(1))
        .select((audit_chain_head::next_sequence, audit_chain_head::last_hash, audit_chain_head::tree_size))
        .first(conn)?)
}

/// The walk over the records in sequence order: each must follow the previous one, carry the hash
/// of its own content, and use a scheme no older than the record before it. The Merkle root of the
/// records walked grows alongside.
struct Walk {
    expected_sequence: i64,
    expected_prev: String,
    newest_scheme: HashScheme,
    root: tree::RunningRoot,
    /// How many records the stored tree covers, as the chain head says.
    tree_size: u64,
    /// The root of the records at each tree size a checkpoint names, once the walk has passed it.
    roots: std::collections::BTreeMap<u64, Option<tlog_tiles::Hash>>,
    /// Sequence ranges whose content was disposed of, and those the log's disposal records name.
    disposed: Ranges,
    announced: Ranges,
}

/// Inclusive sequence ranges, in order, adjacent ones merged.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ranges(pub Vec<(i64, i64)>);

impl Ranges {
    pub fn push(&mut self, sequence: i64) {
        match self.0.last_mut() {
            Some((_, to)) if *to + 1 == sequence => *to = sequence,
            _ => self.0.push((sequence, sequence)),
        }
    }

    fn contains(&self, sequence: i64) -> bool {
        self.0.iter().any(|&(from, to)| (from..=to).contains(&sequence))
    }

    /// The first sequence of `self` that `other` does not contain.
    fn first_outside(&self, other: &Ranges) -> Option<i64> {
        self.0.iter().flat_map(|&(from, to)| from..=to).find(|&sequence| !other.contains(sequence))
    }
}

impl Walk {
    fn new(tree_size: u64, checkpoint_sizes: impl IntoIterator<Item = u64>) -> Self {
        Self {
            tree_size,
            roots: checkpoint_sizes.into_iter().map(|size| (size, None)).collect(),
            disposed: Ranges::default(),
            announced: Ranges::default(),
            expected_sequence: 1,
            expected_prev: GENESIS_HASH.to_owned(),
            newest_scheme: HashScheme::WithoutRecordedAt,
            root: tree::RunningRoot::default(),
        }
    }

    fn records(&self) -> i64 {
        self.expected_sequence - 1
    }

    /// Takes one page of records with the tree hashes stored for them (in index order), or says
    /// what is wrong: a record itself, or the tree hashes stored for it.
    fn admit_page(&mut self, page: &WalkPage) -> Result<(), String> {
        let mut stored = page.hashes.iter();
        for record in &page.records {
            self.admit_record(record)?;
            let index = (record.sequence - 1) as u64;
            let leaf = tree::leaf_hash(&record.hash)
                .ok_or_else(|| format!("record {} has a malformed hash", record.sequence))?;
            let first = tlog_tiles::stored_hash_index(0, index);
            let expected = self.root.push_with_stored_hashes(leaf);
            if let Some(root) = self.roots.get_mut(&self.root.size()) {
                *root = Some(self.root.root());
            }
            // Records the tree does not cover yet have no stored hashes; the head check reports them.
            let covered = if index < self.tree_size { expected } else { Vec::new() };
            for (k, expected) in covered.into_iter().enumerate() {
                match stored.next() {
                    Some((at, hash)) if *at as u64 == first + k as u64 && hash[..] == expected.0[..] => {}
                    _ => {
                        return Err(format!(
                            "the stored Merkle tree hashes for record {} are not the tree of the records",
                            record.sequence
                        ))
                    }
                }
            }
            self.expected_prev = record.hash.clone();
            self.expected_sequence += 1;
        }
        match stored.next() {
            Some((at, _)) => Err(format!("the Merkle tree holds a hash (index {at}) no record gives")),
            None => Ok(()),
        }
    }

    fn admit_record(&mut self, record: &AuditRecord) -> Result<(), String> {
        if record.sequence != self.expected_sequence {
            return Err(format!("record {} is missing or out of place", self.expected_sequence));
        }
        if record.prev_hash != self.expected_prev {
            return Err(format!("record {} does not link to the record before it", record.sequence));
        }
        let scheme = HashScheme::of(record)
            .filter(|scheme| *scheme as i16 >= self.newest_scheme as i16)
            .ok_or_else(|| format!("record {} claims a hash scheme it may not use", record.sequence))?;
        if record.disposed_at.is_some() {
            // Its content is gone, so its hash cannot be recomputed; its link, its leaf in the tree
            // and a disposal record naming it must all hold instead.
            self.disposed.push(record.sequence);
        } else if record_hash(record).as_deref() != Some(record.hash.as_str()) {
            return Err(format!("record {} does not match its hash", record.sequence));
        } else if let Some(ranges) = disposal_ranges(record) {
            self.announced.0.extend(ranges.0);
        }
        self.newest_scheme = scheme;
        Ok(())
    }
}

/// The sequence ranges an intact disposal record of the audit service names.
fn disposal_ranges(record: &AuditRecord) -> Option<Ranges> {
    if record.kind != immilink_shared::events::kind::AUDIT_RECORDS_DISPOSED || record.source != crate::SERVICE {
        return None;
    }
    let payload: serde_json::Value = serde_json::from_str(&record.payload).ok()?;
    let ranges = payload.get("ranges")?.as_array()?;
    Some(Ranges(ranges.iter().filter_map(|range| Some((range.get(0)?.as_i64()?, range.get(1)?.as_i64()?))).collect()))
}

/// Records per page of a verification.
const VERIFY_PAGE: i64 = 5000;

/// One page of the walk: records in sequence order, and the tree hashes stored for them.
struct WalkPage {
    records: Vec<AuditRecord>,
    hashes: Vec<(i64, Vec<u8>)>,
}

/// Reads the next page from sequence `from` on: the records, and the stored tree hashes written for
/// those of them the tree covers (a contiguous range of indexes in tlog's layout).
fn read_page(conn: &mut DbConn, from: i64, tree_size: u64) -> Result<WalkPage, AuditError> {
    use crate::schema::audit_tree_hashes as t;
    let records: Vec<AuditRecord> = audit_records::table
        .filter(audit_records::sequence.ge(from))
        .order(audit_records::sequence.asc())
        .limit(VERIFY_PAGE)
        .select(AuditRecord::as_select())
        .load(conn)?;
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(WalkPage { records, hashes: Vec::new() });
    };
    let covered_to = (last.sequence as u64).min(tree_size);
    let start = (first.sequence - 1).max(0) as u64;
    let hashes = if start < covered_to {
        let (lo, hi) = (tlog_tiles::stored_hash_index(0, start), tlog_tiles::stored_hash_index(0, covered_to));
        t::table
            .filter(t::hash_index.ge(lo as i64))
            .filter(t::hash_index.lt(hi as i64))
            .order(t::hash_index.asc())
            .limit((hi - lo) as i64)
            .select((t::hash_index, t::hash))
            .load(conn)?
    } else {
        Vec::new()
    };
    Ok(WalkPage { records, hashes })
}

/// Walks the records from where `walk` stands to the end, then checks the end against the chain
/// head and that no tree hash is left over. Reading and checking overlap: this thread reads pages
/// while another hashes and compares the previous one, so a verification costs about what reading
/// the rows costs, in the memory of a few pages. `Some` names what is broken.
fn walk_to_the_head(conn: &mut DbConn, head: &Head, walk: &mut Walk) -> Result<Option<Verification>, AuditError> {
    let tree_size = walk.tree_size;
    let mut from = walk.expected_sequence;
    let (pages, checked) = std::sync::mpsc::sync_channel::<WalkPage>(2);
    let checking = &mut *walk;
    let (read, check) = std::thread::scope(|scope| {
        let checker = scope.spawn(move || -> Result<(), String> {
            for page in checked {
                checking.admit_page(&page)?;
            }
            Ok(())
        });
        let read = (|| -> Result<(), AuditError> {
            loop {
                let page = read_page(conn, from, tree_size)?;
                let Some(last) = page.records.last() else { return Ok(()) };
                from = last.sequence + 1;
                if pages.send(page).is_err() {
                    return Ok(()); // the checker stopped at a broken record
                }
            }
        })();
        drop(pages);
        (read, checker.join())
    });
    read?;
    match check {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            return Ok(Some(Verification::broken(walk.records(), Some(walk.expected_sequence), reason)));
        }
        Err(_) => return Err(AuditError::TreeInconsistent("the verification thread failed".into())),
    }
    let stored = walk.records();
    if stored != head.next_sequence - 1 {
        let reason = format!("the chain head counts {} records, {stored} are stored", head.next_sequence - 1);
        return Ok(Some(Verification::broken(stored, Some(stored.min(head.next_sequence - 1) + 1), reason)));
    }
    if stored > 0 && walk.expected_prev != head.last_hash {
        let reason = "the last record is not the one the chain head names";
        return Ok(Some(Verification::broken(stored, Some(stored), reason)));
    }
    if head.tree_size != stored {
        let reason = format!("the Merkle tree covers {} of the {stored} records", head.tree_size);
        return Ok(Some(Verification::broken(stored, None, reason)));
    }
    // The first hash past the records, if any: ORDER BY the key with LIMIT 1 reads the index, where
    // a count lets PostgreSQL, with statistics not yet caught up with a grown table, scan it whole.
    let beyond = tlog_tiles::stored_hash_index(0, stored as u64) as i64;
    let extra: Option<i64> = crate::schema::audit_tree_hashes::table
        .filter(crate::schema::audit_tree_hashes::hash_index.ge(beyond))
        .order(crate::schema::audit_tree_hashes::hash_index.asc())
        .select(crate::schema::audit_tree_hashes::hash_index)
        .first(conn)
        .optional()?;
    if extra.is_some() {
        return Ok(Some(Verification::broken(stored, None, "the Merkle tree holds hashes beyond the records")));
    }
    Ok(None)
}

/// Checks only what was appended after a checkpoint of `size` records with root `root`, in time
/// proportional to the new records: the stored tree still gives that root, and every record since
/// follows the last one it covered, matches its hash and its stored tree hashes, up to the head. The
/// checkpointer runs it before signing the next checkpoint, so a checkpoint is never signed over a
/// log that changed beneath the previous one.
pub fn verify_since(conn: &mut DbConn, size: u64, root: tlog_tiles::Hash) -> Result<Verification, AuditError> {
    // One snapshot (appends committed meanwhile must not make the head and the records disagree),
    // whose statements are planned for their values: a plan gone generic on a pooled connection
    // must not turn these few reads into scans of the whole log.
    conn.snapshot_transaction(|conn| {
        conn.plan_for_actual_values()?;
        verify_since_locked(conn, size, root)
    })
}

/// [`verify_since`] inside the caller's transaction (the checkpointer's, which holds the chain lock).
pub fn verify_since_locked(conn: &mut DbConn, size: u64, root: tlog_tiles::Hash) -> Result<Verification, AuditError> {
    let head = head(conn)?;
    let since = size as i64;
    if since > head.tree_size {
        let reason = format!("the checkpoint covers {size} records, the tree {}", head.tree_size);
        return Ok(Verification::broken(head.tree_size, Some(head.tree_size + 1), reason));
    }
    let running = match tree::RunningRoot::from_stored(conn, size) {
        Ok(running) if running.root() == root => running,
        Ok(_) | Err(AuditError::TreeInconsistent(_)) => {
            let reason = format!("the stored tree no longer gives the root of the checkpoint of {size} records");
            return Ok(Verification::broken(0, None, reason));
        }
        Err(err) => return Err(err),
    };
    let mut walk = Walk::new(head.tree_size.max(0) as u64, []);
    walk.root = running;
    walk.expected_sequence = since + 1;
    if since > 0 {
        let last: AuditRecord = audit_records::table
            .filter(audit_records::sequence.eq(since))
            .select(AuditRecord::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| AuditError::TreeInconsistent(format!("record {since} is missing")))?;
        walk.newest_scheme = HashScheme::of(&last).unwrap_or(HashScheme::EveryField);
        walk.expected_prev = last.hash;
    }
    if let Some(mut broken) = walk_to_the_head(conn, &head, &mut walk)? {
        broken.records -= since;
        return Ok(broken);
    }
    Ok(Verification::intact(walk.records() - since))
}

/// Checks the whole log, streaming the records and the tree's stored hashes side by side page by
/// page (memory stays flat however long the log is): every record's link, content and position;
/// that every stored tree hash is the one these records give; that the records end where the
/// chain head says; and, with `anchors`, that the latest checkpoint is signed by the log and is
/// the tree of the records, and that so is the newest checkpoint the witness cosigned. A log
/// rewritten from some point, with every hash recomputed, passes the first checks and fails these.
pub fn verify(conn: &mut DbConn, anchors: Option<&Anchors>) -> Result<Verification, AuditError> {
    // One snapshot: appends and checkpoints committed while the log is read must not make the
    // records, the tree, the head and the checkpoints disagree.
    conn.snapshot_transaction(|conn| {
        conn.plan_for_actual_values()?;
        verify_in_snapshot(conn, anchors)
    })
}

fn verify_in_snapshot(conn: &mut DbConn, anchors: Option<&Anchors>) -> Result<Verification, AuditError> {
    let head = head(conn)?;
    let latest = anchors.map(|_| checkpoints::latest(conn)).transpose()?.flatten();
    let witnessed = match anchors {
        Some(Anchors { witness_view: Some(view), .. }) => Some(view.clone()),
        Some(_) => checkpoints::latest_witnessed(conn)?.map(|c| c.note),
        None => None,
    };
    let witnessed = witnessed.and_then(|note| anchors.and_then(|a| checkpoints::check_note(a.keys, &note)));
    let sizes = latest.iter().map(|c| c.tree_size as u64).chain(witnessed.iter().map(|w| w.tree_size));
    let mut walk = Walk::new(head.tree_size.max(0) as u64, sizes);
    if let Some(broken) = walk_to_the_head(conn, &head, &mut walk)? {
        return Ok(broken);
    }
    if let Some(sequence) = walk.disposed.first_outside(&walk.announced) {
        let reason = format!("the content of record {sequence} was removed, but no disposal record names it");
        return Ok(Verification::broken(walk.records(), Some(sequence), reason));
    }
    let stored = walk.records();
    let mut verification = Verification::intact(stored);
    let Some(anchors) = anchors else { return Ok(verification) };
    if let Some(latest) = latest {
        let size = latest.tree_size as u64;
        let checked = checkpoints::check_note(anchors.keys, &latest.note);
        let matches = checked.is_some_and(|c| {
            c.signed_by_log && c.tree_size == size && walk.roots.get(&size).copied().flatten() == Some(c.root)
        });
        verification.checkpoint = Some((size, matches));
        if size > stored as u64 {
            let reason = format!("the latest checkpoint covers {size} records, {stored} are stored");
            return Ok(Verification {
                ok: false,
                reason: Some(reason),
                first_bad_sequence: Some(stored + 1),
                ..verification
            });
        }
        if !matches {
            let reason = format!(
                "the latest checkpoint ({size} records) is not signed by this log or is not the tree of the records"
            );
            return Ok(Verification { ok: false, reason: Some(reason), ..verification });
        }
    }
    if let Some(witnessed) = witnessed.filter(|w| w.signed_by_log && w.cosigned) {
        let size = witnessed.tree_size;
        if size > stored as u64 {
            let reason = format!("the witness has cosigned {size} records, {stored} are stored");
            return Ok(Verification {
                ok: false,
                reason: Some(reason),
                first_bad_sequence: Some(stored + 1),
                ..verification
            });
        }
        if walk.roots.get(&size).copied().flatten() != Some(witnessed.root) {
            let reason = format!("the records are not the tree the witness cosigned at {size} records");
            return Ok(Verification { ok: false, reason: Some(reason), ..verification });
        }
        verification.witnessed = true;
    }
    Ok(verification)
}

/// What a search matches: every given field, and `occurred_at` within [from, to).
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    pub agency: Option<AgencyCode>,
    /// The unit the act was done for.
    pub unit: Option<String>,
    pub actor_user_id: Option<UserId>,
    pub subject_id: Option<String>,
    /// The lookup id.
    pub correlation_id: Option<String>,
    pub kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The matching records in sequence order, one page at a time: the cursor is the last sequence of
/// the previous page.
pub fn search(conn: &mut DbConn, query: &RecordQuery, page: &Page<i64>) -> Result<Vec<AuditRecord>, AuditError> {
    let mut found = audit_records::table.select(AuditRecord::as_select()).into_boxed();
    if let Some(agency) = &query.agency {
        found = found.filter(audit_records::agency.eq(agency.as_str().to_owned()));
    }
    if let Some(unit) = &query.unit {
        found = found.filter(audit_records::unit.eq(unit.clone()));
    }
    if let Some(actor) = &query.actor_user_id {
        found = found.filter(audit_records::actor_user_id.eq(actor.as_str().to_owned()));
    }
    if let Some(subject) = &query.subject_id {
        found = found.filter(audit_records::subject_id.eq(subject.clone()));
    }
    if let Some(correlation) = &query.correlation_id {
        found = found.filter(audit_records::correlation_id.eq(correlation.clone()));
    }
    if let Some(kind) = &query.kind {
        found = found.filter(audit_records::kind.eq(kind.clone()));
    }
    if let Some(from) = query.from {
        found = found.filter(audit_records::occurred_at.ge(to_db(from)));
    }
    if let Some(to) = query.to {
        found = found.filter(audit_records::occurred_at.lt(to_db(to)));
    }
    if let Some(after) = page.cursor {
        found = found.filter(audit_records::sequence.gt(after));
    }
    Ok(found.order(audit_records::sequence.asc()).limit(page.limit).load(conn)?)
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<AuditRecord>, AuditError> {
    Ok(audit_records::table.filter(audit_records::id.eq(id)).select(AuditRecord::as_select()).first(conn).optional()?)
}
