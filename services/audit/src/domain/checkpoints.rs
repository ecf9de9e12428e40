//! Signed checkpoints (c2sp.org/tlog-checkpoint as a c2sp.org/signed-note) of the Merkle tree, and
//! what the witness says of them. The log's key never enters the database, so someone who can
//! write the database cannot issue a checkpoint for a rewritten log; the witness (the immigration
//! agency) cosigns only checkpoints consistent with what it cosigned before, so a rewrite cannot
//! match what a party outside the agency holds either.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use ed25519_dalek::SigningKey;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::transparency::{self, CosignatureVerifier, KeyError, NOTE_KEY_TYPE};
use signed_note::{Note, StandardSigner, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use super::{tree, AuditError};
use crate::schema::{audit_chain_head, audit_checkpoints};

/// The log's identity: its origin (also its key's name) and signing key, and the witnesses whose
/// cosignatures it trusts.
pub struct LogKeys {
    origin: String,
    signer: StandardSigner,
    verifier_key: String,
    witnesses: Vec<String>,
}

impl LogKeys {
    /// From the log's Ed25519 key and the witnesses' verifier keys (`<name>+<id>+<key>`, type 0x04).
    pub fn new(origin: &str, key: &SigningKey, witnesses: Vec<String>) -> Result<Self, KeyError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(KeyError::Malformed("the log origin must be a key name: no spaces or '+'"));
        }
        for witness in &witnesses {
            CosignatureVerifier::new(witness)?;
        }
        let verifier_key = transparency::verifier_key(origin, NOTE_KEY_TYPE, &key.verifying_key());
        let (_, id, _, _) = transparency::parse_verifier_key(&verifier_key)?;
        let private = [&[NOTE_KEY_TYPE][..], &key.to_bytes()[..]].concat();
        let signer_key = format!("PRIVATE+KEY+{origin}+{id:08x}+{}", BASE64.encode(private));
        let signer = StandardSigner::new(&signer_key).map_err(|_| KeyError::Malformed("the log key"))?;
        Ok(Self { origin: origin.to_owned(), signer, verifier_key, witnesses })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's verifier key, as inspectors configure it.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The trusted witnesses' verifier keys.
    pub fn witness_keys(&self) -> &[String] {
        &self.witnesses
    }

    fn log_verifier(&self) -> VerifierList {
        let verifier = StandardVerifier::new(&self.verifier_key).map(|v| Box::new(v) as Box<dyn Verifier>);
        VerifierList::new(verifier.into_iter().collect())
    }

    fn witness_verifiers(&self) -> VerifierList {
        VerifierList::new(
            self.witnesses
                .iter()
                .filter_map(|key| CosignatureVerifier::new(key).ok())
                .map(|v| Box::new(v) as Box<dyn Verifier>)
                .collect(),
        )
    }
}

/// A stored checkpoint.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = audit_checkpoints)]
pub struct StoredCheckpoint {
    pub tree_size: i64,
    /// Base64, as in the checkpoint.
    pub root_hash: String,
    /// The whole signed note, cosignature lines included once the witness has cosigned.
    pub note: String,
    pub issued_at: NaiveDateTime,
    pub witnessed_at: Option<NaiveDateTime>,
}

/// Signs a checkpoint of the whole tree and stores it, unless the latest already covers it.
/// Returns the latest checkpoint either way (`None` while the log is empty).
pub fn issue(conn: &mut DbConn, now: DateTime<Utc>, keys: &LogKeys) -> Result<Option<StoredCheckpoint>, AuditError> {
    conn.write_transaction(|conn| {
        // The chain lock: the tree does not grow while it is read and signed.
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
            .set(audit_chain_head::tree_size.eq(audit_chain_head::tree_size))
            .execute(conn)?;
        let size = tree::size(conn)?;
        let latest = latest(conn)?;
        if size == 0 || latest.as_ref().is_some_and(|c| c.tree_size as u64 >= size) {
            return Ok(latest);
        }
        // Never sign over a log that changed beneath the last checkpoint: check what is new since.
        let (since, since_root) = match &latest {
            Some(latest) => (
                latest.tree_size as u64,
                tlog_tiles::Hash::parse_hash(&latest.root_hash)
                    .map_err(|_| AuditError::TreeInconsistent("the latest checkpoint's root is malformed".into()))?,
            ),
            None => (0, tlog_tiles::EMPTY_HASH),
        };
        conn.plan_for_actual_values()?;
        let checked = super::chain::verify_since_locked(conn, since, since_root)?;
        if !checked.ok {
            return Err(AuditError::TreeInconsistent(checked.reason.unwrap_or_default()));
        }
        let root = tree::root(conn, size)?;
        let body = Checkpoint::new(&keys.origin, size, root, "")
            .map_err(|_| AuditError::Invalid { field: "origin".into(), detail: "not a checkpoint origin".into() })?
            .to_bytes();
        let mut note = Note::new(&body, &[]).map_err(|err| AuditError::Signing(err.to_string()))?;
        note.add_sigs(&[&keys.signer]).map_err(|err| AuditError::Signing(err.to_string()))?;
        let stored = StoredCheckpoint {
            tree_size: size as i64,
            root_hash: BASE64.encode(root.0),
            note: String::from_utf8_lossy(&note.to_bytes()).into_owned(),
            issued_at: to_db(now),
            witnessed_at: None,
        };
        diesel::insert_into(audit_checkpoints::table)
            .values((
                audit_checkpoints::tree_size.eq(stored.tree_size),
                audit_checkpoints::root_hash.eq(&stored.root_hash),
                audit_checkpoints::note.eq(&stored.note),
                audit_checkpoints::issued_at.eq(stored.issued_at),
            ))
            .execute(conn)?;
        Ok(Some(stored))
    })
}

pub fn latest(conn: &mut DbConn) -> Result<Option<StoredCheckpoint>, AuditError> {
    Ok(audit_checkpoints::table
        .order(audit_checkpoints::tree_size.desc())
        .select(StoredCheckpoint::as_select())
        .first(conn)
        .optional()?)
}

/// The newest checkpoint the witness has cosigned.
pub fn latest_witnessed(conn: &mut DbConn) -> Result<Option<StoredCheckpoint>, AuditError> {
    Ok(audit_checkpoints::table
        .filter(audit_checkpoints::witnessed_at.is_not_null())
        .order(audit_checkpoints::tree_size.desc())
        .select(StoredCheckpoint::as_select())
        .first(conn)
        .optional()?)
}

/// Checkpoints issued in [from, to), oldest first, a page at a time after a tree size.
pub fn list(
    conn: &mut DbConn,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after_tree_size: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredCheckpoint>, AuditError> {
    let mut found = audit_checkpoints::table.select(StoredCheckpoint::as_select()).into_boxed();
    if let Some(from) = from {
        found = found.filter(audit_checkpoints::issued_at.ge(to_db(from)));
    }
    if let Some(to) = to {
        found = found.filter(audit_checkpoints::issued_at.lt(to_db(to)));
    }
    if let Some(after) = after_tree_size {
        found = found.filter(audit_checkpoints::tree_size.gt(after));
    }
    Ok(found.order(audit_checkpoints::tree_size.asc()).limit(limit).load(conn)?)
}

/// The checkpoint of exactly `tree_size` records, if one was issued.
pub fn at_size(conn: &mut DbConn, tree_size: i64) -> Result<Option<StoredCheckpoint>, AuditError> {
    Ok(audit_checkpoints::table
        .filter(audit_checkpoints::tree_size.eq(tree_size))
        .select(StoredCheckpoint::as_select())
        .first(conn)
        .optional()?)
}

/// What the witness is sent for a checkpoint: the size it last cosigned and the consistency proof
/// from there (c2sp.org/tlog-witness `add-checkpoint`).
pub struct WitnessRequest {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    pub note: String,
}

impl WitnessRequest {
    /// The request body: `old <size>`, one base64 proof hash per line, a blank line, the note.
    pub fn body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&BASE64.encode(hash.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }
}

/// The newest checkpoint not yet cosigned, if it is newer than the newest cosigned one, with the
/// proof from the size the witness is believed to hold (`old_size`; the last cosigned size when
/// `None`).
pub fn to_witness(conn: &mut DbConn, old_size: Option<u64>) -> Result<Option<WitnessRequest>, AuditError> {
    let Some(newest) = latest(conn)? else { return Ok(None) };
    let witnessed = latest_witnessed(conn)?.map_or(0, |c| c.tree_size as u64);
    if newest.witnessed_at.is_some() || (old_size.is_none() && newest.tree_size as u64 <= witnessed) {
        return Ok(None);
    }
    let old_size = old_size.unwrap_or(witnessed);
    let new_size = newest.tree_size as u64;
    if old_size > new_size {
        return Err(AuditError::WitnessAhead { witness: old_size, log: new_size });
    }
    let proof = if old_size == 0 || old_size == new_size {
        Vec::new()
    } else {
        tree::consistency_proof(conn, old_size, new_size)?
    };
    Ok(Some(WitnessRequest { old_size, proof, note: newest.note }))
}

/// Appends the witness's cosignature lines to the stored checkpoint they sign, after checking
/// they are valid cosignatures of a trusted witness over exactly that checkpoint.
pub fn record_cosignature(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    keys: &LogKeys,
    note: &str,
    cosignature_lines: &str,
) -> Result<StoredCheckpoint, AuditError> {
    let cosigned = format!("{note}{}", cosignature_lines.trim_end_matches('\n').to_owned() + "\n");
    let parsed = Note::from_bytes(cosigned.as_bytes()).map_err(|err| AuditError::WitnessRefused(err.to_string()))?;
    parsed.verify(&keys.witness_verifiers()).map_err(|err| AuditError::WitnessRefused(err.to_string()))?;
    let size =
        Checkpoint::from_bytes(parsed.text()).map_err(|err| AuditError::WitnessRefused(err.to_string()))?.size() as i64;
    conn.write_transaction(|conn| {
        let updated = diesel::update(
            audit_checkpoints::table
                .filter(audit_checkpoints::tree_size.eq(size))
                .filter(audit_checkpoints::note.eq(note)),
        )
        .set((audit_checkpoints::note.eq(&cosigned), audit_checkpoints::witnessed_at.eq(to_db(now))))
        .execute(conn)?;
        if updated != 1 {
            return Err(AuditError::NotFound("the checkpoint the witness cosigned"));
        }
        at_size(conn, size)?.ok_or(AuditError::NotFound("the checkpoint the witness cosigned"))
    })
}

/// A checkpoint as verification reads it: its size and root, and whether it carries a valid
/// signature of this log and a valid cosignature of a trusted witness.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedNote {
    pub tree_size: u64,
    pub root: Hash,
    pub signed_by_log: bool,
    pub cosigned: bool,
}

/// Reads a signed checkpoint note and checks its signatures (no database: the offline verifier and
/// the witness's view use it too).
pub fn check_note(keys: &LogKeys, text: &str) -> Option<CheckedNote> {
    let note = Note::from_bytes(text.as_bytes()).ok()?;
    let checkpoint = Checkpoint::from_bytes(note.text()).ok()?;
    if checkpoint.origin() != keys.origin {
        return None;
    }
    Some(CheckedNote {
        tree_size: checkpoint.size(),
        root: *checkpoint.hash(),
        signed_by_log: note.verify(&keys.log_verifier()).is_ok(),
        cosigned: note.verify(&keys.witness_verifiers()).is_ok(),
    })
}
