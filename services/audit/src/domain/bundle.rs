//! The export bundle an inspector takes away, and its offline check: records of a period, each with
//! its RFC 9162 inclusion proof in the tree of a signed (and, when witnessed, cosigned) checkpoint,
//! and the keys. `immilink-audit verify-bundle FILE` checks it with no server: every record against
//! its own hash, every proof against the checkpoint's root, the checkpoint against the log's key and
//! the witness's, and names the first failure.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use immilink_shared::auth::Caller;
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use super::chain::{self, AuditRecord, RecordQuery};
use super::checkpoints::StoredCheckpoint;
use super::{records, tree, AuditError};
use immilink_shared::transparency::CosignatureVerifier;

/// The bundle format's name and version.
pub const FORMAT: &str = "immilink-audit-bundle/1";
/// Most records one export carries: a longer period is exported in parts.
pub const MAX_RECORDS: i64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub format: String,
    /// The log's signed-note verifier key.
    pub log_key: String,
    /// The witnesses' cosignature verifier keys.
    pub witness_keys: Vec<String>,
    pub checkpoint: BundleCheckpoint,
    /// The period exported, [from, to), by when the records occurred.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<DateTime<Utc>>,
    pub records: Vec<BundleRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleCheckpoint {
    pub tree_size: u64,
    pub root_hash: String,
    /// The whole signed note, cosignature lines included.
    pub note: String,
}

/// A record as stored, every hashed field, with its inclusion proof (base64 hashes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleRecord {
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
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
    pub hash_scheme: i16,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disposed_at: Option<NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    pub proof: Vec<String>,
}

impl BundleRecord {
    fn stored(&self) -> AuditRecord {
        AuditRecord {
            sequence: self.sequence,
            id: self.id.clone(),
            kind: self.kind.clone(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            source: self.source.clone(),
            actor_user_id: self.actor_user_id.clone(),
            agency: self.agency.clone(),
            correlation_id: self.correlation_id.clone(),
            subject_id: self.subject_id.clone(),
            payload: self.payload.clone(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
            hash_scheme: self.hash_scheme,
            disposed_at: self.disposed_at,
            unit: self.unit.clone(),
        }
    }
}

/// Builds the bundle of the records the caller may read that occurred in [from, to), proven in the
/// tree of `checkpoint`, and records the export in the log.
pub fn export(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    keys: &super::checkpoints::LogKeys,
    checkpoint: &StoredCheckpoint,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Bundle, AuditError> {
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Err(AuditError::Invalid { field: "to".into(), detail: "must be after from".into() });
        }
    }
    let size = checkpoint.tree_size as u64;
    let query = RecordQuery { from, to, ..RecordQuery::default() };
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = immilink_shared::extractors::Page::new(Some(500), after)
            .map_err(|_| AuditError::Invalid { field: "limit".into(), detail: "internal page size".into() })?;
        let batch = records::search(conn, caller, query.clone(), &page)?;
        let Some(last) = batch.last().map(|r| r.sequence) else { break };
        after = Some(last);
        found.extend(batch.into_iter().filter(|r| (r.sequence as u64) <= size));
        if found.len() as i64 > MAX_RECORDS {
            return Err(AuditError::Invalid {
                field: "to".into(),
                detail: format!("more than {MAX_RECORDS} records in the period: export it in parts"),
            });
        }
    }
    let mut exported = Vec::with_capacity(found.len());
    for record in found {
        let proof = tree::inclusion_proof(conn, (record.sequence - 1) as u64, size)?;
        exported.push(BundleRecord {
            sequence: record.sequence,
            id: record.id,
            kind: record.kind,
            occurred_at: record.occurred_at,
            recorded_at: record.recorded_at,
            source: record.source,
            actor_user_id: record.actor_user_id,
            agency: record.agency,
            correlation_id: record.correlation_id,
            subject_id: record.subject_id,
            payload: record.payload,
            prev_hash: record.prev_hash,
            hash: record.hash,
            hash_scheme: record.hash_scheme,
            disposed_at: record.disposed_at,
            unit: record.unit,
            proof: proof.iter().map(|h| BASE64.encode(h.0)).collect(),
        });
    }
    let act = super::retention::own_act(
        kind::AUDIT_EXPORTED,
        now,
        Some(caller),
        Some(caller.agency.to_string()),
        &uuid::Uuid::now_v7().to_string(),
        json!({
            "from": from.map(|t| t.to_rfc3339()),
            "to": to.map(|t| t.to_rfc3339()),
            "records": exported.len(),
            "tree_size": size,
        }),
    );
    chain::append(conn, now, &[act])?;
    Ok(Bundle {
        format: FORMAT.into(),
        log_key: keys.verifier_key().to_owned(),
        witness_keys: keys.witness_keys().to_vec(),
        checkpoint: BundleCheckpoint {
            tree_size: size,
            root_hash: checkpoint.root_hash.clone(),
            note: checkpoint.note.clone(),
        },
        from,
        to,
        records: exported,
    })
}

/// What an offline check found.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleReport {
    pub records: usize,
    pub tree_size: u64,
    /// Whether a trusted witness cosigned the checkpoint.
    pub witnessed: bool,
}

/// Checks a bundle with no server. `trusted_log_key` and `trusted_witness_keys`, when given, are the
/// keys the inspector holds; the bundle's must be those. Fails naming the first problem.
pub fn check(
    bundle: &Bundle,
    trusted_log_key: Option<&str>,
    trusted_witness_keys: &[String],
) -> Result<BundleReport, String> {
    if bundle.format != FORMAT {
        return Err(format!("not an immilink audit bundle: format {:?}", bundle.format));
    }
    if trusted_log_key.is_some_and(|key| key != bundle.log_key) {
        return Err("the bundle's log key is not the one you trust".into());
    }
    let log = StandardVerifier::new(&bundle.log_key).map_err(|_| "the bundle's log key is malformed".to_string())?;
    let note = Note::from_bytes(bundle.checkpoint.note.as_bytes()).map_err(|_| "the checkpoint note is malformed")?;
    note.verify(&VerifierList::new(vec![Box::new(log) as Box<dyn Verifier>]))
        .map_err(|_| "the checkpoint is not signed by the log's key".to_string())?;
    let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|_| "the checkpoint is malformed".to_string())?;
    if checkpoint.size() != bundle.checkpoint.tree_size
        || BASE64.encode(checkpoint.hash().0) != bundle.checkpoint.root_hash
    {
        return Err("the checkpoint's size or root differs from the signed note".into());
    }
    let witnesses: Vec<&String> = if trusted_witness_keys.is_empty() {
        bundle.witness_keys.iter().collect()
    } else {
        trusted_witness_keys.iter().collect()
    };
    let verifiers: Vec<Box<dyn Verifier>> = witnesses
        .iter()
        .filter_map(|key| CosignatureVerifier::new(key).ok())
        .map(|v| Box::new(v) as Box<dyn Verifier>)
        .collect();
    let witnessed = !verifiers.is_empty() && note.verify(&VerifierList::new(verifiers)).is_ok();
    if !trusted_witness_keys.is_empty() && !witnessed {
        return Err("the checkpoint carries no valid cosignature of the witness you trust".into());
    }
    let (size, root) = (checkpoint.size(), *checkpoint.hash());
    let mut previous: Option<&BundleRecord> = None;
    for record in &bundle.records {
        let at = format!("record {} (sequence {})", record.id, record.sequence);
        check_record(record, size, root).map_err(|why| format!("{at}: {why}"))?;
        if let Some(previous) = previous.filter(|p| p.sequence + 1 == record.sequence) {
            if record.prev_hash != previous.hash {
                return Err(format!("{at}: does not link to the record before it"));
            }
        }
        previous = Some(record);
    }
    Ok(BundleReport { records: bundle.records.len(), tree_size: size, witnessed })
}

fn check_record(record: &BundleRecord, size: u64, root: Hash) -> Result<(), String> {
    if record.sequence < 1 || record.sequence as u64 > size {
        return Err(format!("is not in the checkpoint's tree of {size} records"));
    }
    if record.disposed_at.is_none() && chain::record_hash(&record.stored()).as_deref() != Some(record.hash.as_str()) {
        return Err("its content does not match its hash".into());
    }
    let leaf = tree::leaf_hash(&record.hash).ok_or("its hash is malformed")?;
    let proof: Vec<Hash> = record
        .proof
        .iter()
        .map(|h| Hash::parse_hash(h).map_err(|_| "a proof hash is malformed".to_string()))
        .collect::<Result<_, _>>()?;
    tlog_tiles::check_record(&proof, size, root, (record.sequence - 1) as u64, leaf)
        .map_err(|_| "its inclusion proof does not lead to the checkpoint's root".to_string())
}
