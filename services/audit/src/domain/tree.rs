//! The Merkle tree over the records (RFC 6962 / RFC 9162), kept with `tlog_tiles`, a port of Go's
//! sumdb tlog: leaf index = sequence - 1, leaf hash = SHA-256(0x00 || the record's 32-byte content
//! hash), interior nodes SHA-256(0x01 || left || right). The tree's stored hashes (about two per
//! record, tlog's layout) are written in the same transaction as the records they cover, so a proof
//! never waits for a rebuild; this module holds no Merkle math of its own beyond reading and writing
//! those hashes.

use std::cell::RefCell;
use std::collections::HashMap;

use diesel::prelude::*;
use immilink_shared::db::{DbConn, DbError};
use tlog_tiles::{Hash, HashReader};

use super::AuditError;
use crate::schema::{audit_chain_head, audit_records, audit_tree_hashes};

/// The leaf hash of a record whose content hash is `content_hash` (hex, as stored).
pub fn leaf_hash(content_hash: &str) -> Option<Hash> {
    let bytes: [u8; 32] = hex::decode(content_hash).ok()?.try_into().ok()?;
    Some(tlog_tiles::record_hash(&bytes))
}

/// Reads stored hashes from the audit database, answering first from the hashes written in the
/// current append (not yet inserted) and remembering what it read.
struct StoredHashes<'c> {
    conn: RefCell<&'c mut DbConn>,
    known: RefCell<HashMap<u64, Hash>>,
    failure: RefCell<Option<diesel::result::Error>>,
}

impl<'c> StoredHashes<'c> {
    fn new(conn: &'c mut DbConn) -> Self {
        Self { conn: RefCell::new(conn), known: RefCell::default(), failure: RefCell::default() }
    }

    /// A tlog error as the domain's: a database failure stays one; anything else means the stored
    /// hashes do not form the tree they should.
    fn error(&self, err: tlog_tiles::Error) -> AuditError {
        match self.failure.borrow_mut().take() {
            Some(db) => AuditError::Db(DbError::Query(db)),
            None => AuditError::TreeInconsistent(err.to_string()),
        }
    }
}

impl HashReader for StoredHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let missing: Vec<i64> = {
            let known = self.known.borrow();
            indexes.iter().filter(|index| !known.contains_key(index)).filter_map(|&i| i64::try_from(i).ok()).collect()
        };
        if !missing.is_empty() {
            // The indexes come from tlog's arithmetic, never from input, so they are written into the
            // statement as literals: PostgreSQL plans `IN (…)` of constants with the primary key,
            // where a prepared `= ANY($1)` turns into a sequential scan of the whole table once it
            // goes generic (after five runs on a connection).
            let list = missing.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            let rows: Vec<StoredHashRow> = diesel::sql_query(format!(
                "SELECT hash_index, hash FROM audit_tree_hashes WHERE hash_index IN ({list})"
            ))
            .load(&mut **self.conn.borrow_mut())
            .map_err(|err| {
                *self.failure.borrow_mut() = Some(err);
                tlog_tiles::Error::InvalidInput("the stored hashes could not be read".into())
            })?;
            let rows = rows.into_iter().map(|row| (row.hash_index, row.hash));
            let mut known = self.known.borrow_mut();
            for (index, bytes) in rows {
                let hash = <[u8; 32]>::try_from(bytes).map_err(|_| tlog_tiles::Error::MalformedHash)?;
                known.insert(index as u64, Hash(hash));
            }
        }
        let known = self.known.borrow();
        indexes.iter().map(|index| known.get(index).copied().ok_or(tlog_tiles::Error::IndexesNotInTree)).collect()
    }
}

#[derive(QueryableByName)]
struct StoredHashRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    hash_index: i64,
    #[diesel(sql_type = diesel::sql_types::Binary)]
    hash: Vec<u8>,
}

/// Rows per INSERT: two columns each, far under both backends' parameter limits.
const ROWS_PER_INSERT: usize = 1000;

/// Adds leaves to a tree of `size` records, writing their stored hashes; returns the new size.
/// Part of the caller's transaction, which holds the chain head's lock.
pub fn extend(conn: &mut DbConn, size: u64, leaves: &[Hash]) -> Result<u64, AuditError> {
    let reader = StoredHashes::new(conn);
    let mut rows = Vec::with_capacity(leaves.len() * 2);
    for (offset, leaf) in leaves.iter().enumerate() {
        let index = size + offset as u64;
        let hashes = tlog_tiles::stored_hashes_for_record_hash(index, *leaf, &reader).map_err(|e| reader.error(e))?;
        let first = tlog_tiles::stored_hash_index(0, index);
        let mut known = reader.known.borrow_mut();
        for (k, hash) in hashes.into_iter().enumerate() {
            known.insert(first + k as u64, hash);
            rows.push((first + k as u64, hash));
        }
    }
    let conn = reader.conn.into_inner();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<_> = chunk
            .iter()
            .map(|(index, hash)| {
                (audit_tree_hashes::hash_index.eq(*index as i64), audit_tree_hashes::hash.eq(hash.0.to_vec()))
            })
            .collect();
        immilink_shared::insert_rows!(conn, audit_tree_hashes::table, &values);
    }
    Ok(size + leaves.len() as u64)
}

/// Records read per query while adding older records to the tree.
const CATCH_UP_PAGE: i64 = 1000;

/// Brings the tree up to the chain: records appended before the tree existed (or by a version
/// without it) are added in sequence order. Returns the tree's size. Part of the caller's
/// transaction, which holds the chain head's lock.
pub fn catch_up(conn: &mut DbConn) -> Result<u64, AuditError> {
    let (next_sequence, tree_size): (i64, i64) = audit_chain_head::table
        .filter(audit_chain_head::id.eq(1))
        .select((audit_chain_head::next_sequence, audit_chain_head::tree_size))
        .first(conn)?;
    let mut size = tree_size;
    while size < next_sequence - 1 {
        let page: Vec<(i64, String)> = audit_records::table
            .filter(audit_records::sequence.gt(size))
            .order(audit_records::sequence.asc())
            .limit(CATCH_UP_PAGE)
            .select((audit_records::sequence, audit_records::hash))
            .load(conn)?;
        let mut leaves = Vec::with_capacity(page.len());
        for (sequence, hash) in &page {
            if *sequence != size + 1 + leaves.len() as i64 {
                return Err(AuditError::TreeInconsistent(format!("record {} is missing", size + 1)));
            }
            leaves.push(
                leaf_hash(hash)
                    .ok_or_else(|| AuditError::TreeInconsistent(format!("record {sequence} has a malformed hash")))?,
            );
        }
        if leaves.is_empty() {
            return Err(AuditError::TreeInconsistent(format!("record {} is missing", size + 1)));
        }
        size = extend(conn, size as u64, &leaves)? as i64;
    }
    if size != tree_size {
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
            .set(audit_chain_head::tree_size.eq(size))
            .execute(conn)?;
    }
    Ok(size as u64)
}

/// The size of the tree: how many records it covers.
pub fn size(conn: &mut DbConn) -> Result<u64, AuditError> {
    let size: i64 =
        audit_chain_head::table.filter(audit_chain_head::id.eq(1)).select(audit_chain_head::tree_size).first(conn)?;
    Ok(size as u64)
}

/// The root hash of the tree of the first `size` records, from the stored hashes.
pub fn root(conn: &mut DbConn, size: u64) -> Result<Hash, AuditError> {
    let reader = StoredHashes::new(conn);
    tlog_tiles::tree_hash(size, &reader).map_err(|e| reader.error(e))
}

/// The RFC 9162 inclusion proof of leaf `index` in the tree of `size` records.
pub fn inclusion_proof(conn: &mut DbConn, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
    let reader = StoredHashes::new(conn);
    tlog_tiles::prove_record(size, index, &reader).map_err(|e| reader.error(e))
}

/// The RFC 9162 consistency proof from the tree of `first` records to the tree of `second`.
pub fn consistency_proof(conn: &mut DbConn, first: u64, second: u64) -> Result<Vec<Hash>, AuditError> {
    let reader = StoredHashes::new(conn);
    tlog_tiles::prove_tree(second, first, &reader).map_err(|e| reader.error(e))
}

/// The root of a growing tree, one leaf at a time, in memory proportional to log n: the roots of
/// the perfect subtrees that make up the tree so far (its "compact range"), combined with
/// `tlog_tiles::node_hash`. A full verification streams every record through one of these, so its
/// memory stays flat however long the log is.
#[derive(Debug, Default, Clone)]
pub struct RunningRoot {
    /// (height, hash) of each perfect subtree, largest first.
    subtrees: Vec<(u32, Hash)>,
    size: u64,
}

impl RunningRoot {
    /// Adds a leaf and returns the stored hashes an append writes for it (tlog's, computed from the
    /// compact range instead of read from storage), so a verification can compare them with the
    /// stored ones as it streams.
    pub fn push_with_stored_hashes(&mut self, leaf: Hash) -> Vec<Hash> {
        let hashes =
            tlog_tiles::stored_hashes_for_record_hash(self.size, leaf, &CompactRange(self)).unwrap_or_default();
        self.push(leaf);
        hashes
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0, leaf);
        while let Some(&(height, left)) = self.subtrees.last() {
            if height != node.0 {
                break;
            }
            self.subtrees.pop();
            node = (height + 1, tlog_tiles::node_hash(left, node.1));
        }
        self.subtrees.push(node);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The compact range of the tree of the first `size` records, read from the stored hashes (the
    /// roots of its perfect subtrees, largest first), to carry on from there.
    pub fn from_stored(conn: &mut DbConn, size: u64) -> Result<Self, AuditError> {
        let indexes = tlog_tiles::sub_tree_index(0, size, Vec::new());
        let reader = StoredHashes::new(conn);
        let hashes = reader.read_hashes(&indexes).map_err(|e| reader.error(e))?;
        let subtrees = indexes
            .iter()
            .zip(hashes)
            .map(|(&index, hash)| (u32::from(tlog_tiles::split_stored_hash_index(index).0), hash))
            .collect();
        Ok(Self { subtrees, size })
    }

    /// The RFC 6962 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(&(_, mut root)) = subtrees.next() else { return tlog_tiles::EMPTY_HASH };
        for &(_, left) in subtrees {
            root = tlog_tiles::node_hash(left, root);
        }
        root
    }
}

/// The compact range as a `HashReader`: every hash tlog reads to add a leaf is the root of one of
/// the perfect subtrees the range holds.
struct CompactRange<'r>(&'r RunningRoot);

impl HashReader for CompactRange<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let mut start = 0_u64;
        let mut held = HashMap::new();
        for &(height, hash) in &self.0.subtrees {
            held.insert(tlog_tiles::stored_hash_index(height as u8, start >> height), hash);
            start += 1 << height;
        }
        indexes.iter().map(|index| held.get(index).copied().ok_or(tlog_tiles::Error::IndexesNotInTree)).collect()
    }
}
