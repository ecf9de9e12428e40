//! The immigration agency as a witness of immilink's audit log (c2sp.org/tlog-witness): it cosigns a
//! checkpoint (c2sp.org/tlog-cosignature, Ed25519) only when the log's own signature verifies and
//! the checkpoint is consistent with the last one it cosigned for that log, so a log rewritten by
//! someone with database access can never again match what the agency holds. What it last
//! cosigned is kept in a state file when one is configured, so a restart does not forget it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use immilink_shared::transparency::{self, Cosigner, KeyError};
use serde::{Deserialize, Serialize};
use signed_note::{Note, Signer as _, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// The witness's settings: its name and key, the logs it witnesses, where it keeps its state.
#[derive(Debug, Clone)]
pub struct WitnessSettings {
    /// `IMMILINK_NIA_WITNESS_NAME`, default `nia.witness.local/immilink`.
    pub name: String,
    /// `IMMILINK_NIA_WITNESS_KEY_FILE`: the witness's Ed25519 key (32-byte seed, base64).
    pub key_file: PathBuf,
    pub generate_key: bool,
    /// `IMMILINK_NIA_WITNESS_LOGS`: the verifier keys of the logs it witnesses, comma-separated; each
    /// key's name is the log's origin.
    pub logs: Vec<String>,
    /// `IMMILINK_NIA_WITNESS_STATE_FILE`: where what it last cosigned is kept (none: memory only).
    pub state_file: Option<PathBuf>,
}

/// Why a checkpoint was not cosigned; each has the status c2sp.org/tlog-witness gives it.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the request is malformed: {0}")]
    Malformed(&'static str),
    #[error("this witness does not witness the log {0}")]
    UnknownLog(String),
    #[error("the checkpoint is not signed by the log")]
    NotSignedByLog,
    /// The old size is not the size this witness last cosigned (which it answers with).
    #[error("this witness holds {0} records of the log")]
    Conflict(u64),
    #[error("the consistency proof does not prove the checkpoint extends what was cosigned")]
    Inconsistent,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cosigned {
    size: u64,
    /// Base64.
    root: String,
    /// The checkpoint note as cosigned: the log's signature and this witness's.
    note: String,
}

pub struct Witness {
    name: String,
    key: SigningKey,
    logs: BTreeMap<String, String>,
    state: Mutex<BTreeMap<String, Cosigned>>,
    state_file: Option<PathBuf>,
}

/// Most hashes a consistency proof can need (two per level of a 2^64-record tree).
const MAX_PROOF_HASHES: usize = 128;

impl Witness {
    pub fn new(settings: &WitnessSettings) -> anyhow::Result<Self> {
        let key = transparency::load_or_generate_key(&settings.key_file, settings.generate_key)?;
        let mut logs = BTreeMap::new();
        for log in &settings.logs {
            let (origin, ..) = transparency::parse_verifier_key(log)?;
            StandardVerifier::new(log).map_err(|_| KeyError::Malformed("not an Ed25519 note key"))?;
            logs.insert(origin, log.clone());
        }
        let state = match &settings.state_file {
            Some(path) if path.exists() => serde_json::from_slice(&std::fs::read(path)?)?,
            _ => BTreeMap::new(),
        };
        Ok(Self {
            name: settings.name.clone(),
            key,
            logs,
            state: Mutex::new(state),
            state_file: settings.state_file.clone(),
        })
    }

    /// The witness's cosignature verifier key, for the log to trust.
    pub fn verifier_key(&self) -> String {
        Cosigner::new(&self.name, self.key.clone(), 0).verifier_key()
    }

    /// The note this witness last cosigned for `origin`.
    pub fn latest(&self, origin: &str) -> Option<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).get(origin).map(|c| c.note.clone())
    }

    /// `add-checkpoint`: checks the request and, if the checkpoint extends what it cosigned before,
    /// cosigns it at `timestamp` and answers the cosignature line.
    pub fn add_checkpoint(&self, body: &str, timestamp: u64) -> Result<String, Refusal> {
        let (old, proof, text) = parse_request(body)?;
        let note = Note::from_bytes(text.as_bytes()).map_err(|_| Refusal::Malformed("the note"))?;
        let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|_| Refusal::Malformed("the checkpoint"))?;
        let origin = checkpoint.origin().to_owned();
        let log_key = self.logs.get(&origin).ok_or_else(|| Refusal::UnknownLog(origin.clone()))?;
        let verifier = StandardVerifier::new(log_key).map_err(|_| Refusal::UnknownLog(origin.clone()))?;
        note.verify(&VerifierList::new(vec![Box::new(verifier) as Box<dyn Verifier>]))
            .map_err(|_| Refusal::NotSignedByLog)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let held = state.get(&origin);
        let held_size = held.map_or(0, |c| c.size);
        if old != held_size {
            return Err(Refusal::Conflict(held_size));
        }
        if checkpoint.size() < old {
            return Err(Refusal::Malformed("the checkpoint is smaller than the old size"));
        }
        if let Some(held) = held {
            let held_root = Hash::parse_hash(&held.root).map_err(|_| Refusal::Malformed("the stored root"))?;
            let consistent = if checkpoint.size() == old {
                *checkpoint.hash() == held_root && proof.is_empty()
            } else {
                tlog_tiles::check_tree(&proof, checkpoint.size(), *checkpoint.hash(), old, held_root).is_ok()
            };
            if !consistent {
                return Err(Refusal::Inconsistent);
            }
        } else if !proof.is_empty() {
            return Err(Refusal::Malformed("a first checkpoint takes no proof"));
        }
        let cosigner = Cosigner::new(&self.name, self.key.clone(), timestamp);
        let signature = cosigner.sign(note.text()).map_err(|_| Refusal::Malformed("the note cannot be signed"))?;
        let line = signed_note::Signature::new(self.name.clone(), cosigner.key_id(), signature)
            .map_err(|_| Refusal::Malformed("the witness name"))?
            .to_bytes();
        let line = String::from_utf8_lossy(&line).into_owned();
        let cosigned = Cosigned {
            size: checkpoint.size(),
            root: BASE64.encode(checkpoint.hash().0),
            note: format!("{}{line}", text),
        };
        state.insert(origin, cosigned);
        self.save(&state);
        Ok(line)
    }

    /// Keeps the state on disk (written whole, then renamed into place).
    fn save(&self, state: &BTreeMap<String, Cosigned>) {
        let Some(path) = &self.state_file else { return };
        let written = serde_json::to_vec_pretty(state).map_err(std::io::Error::other).and_then(|json| {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, json)?;
            std::fs::rename(&partial, path)
        });
        if let Err(err) = written {
            tracing::error!(error = %err, path = %path.display(), "the witness state was not saved");
        }
    }
}

/// `old <size>`, the proof's base64 hashes one per line, a blank line, then the note.
fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), Refusal> {
    let (head, note) = body.split_once("\n\n").ok_or(Refusal::Malformed("no blank line before the note"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|line| line.strip_prefix("old "))
        .and_then(|size| size.parse().ok())
        .ok_or(Refusal::Malformed("the first line must be `old <size>`"))?;
    let proof: Vec<Hash> = lines
        .map(|line| Hash::parse_hash(line).map_err(|_| Refusal::Malformed("a proof line is not a base64 hash")))
        .collect::<Result<_, _>>()?;
    if proof.len() > MAX_PROOF_HASHES {
        return Err(Refusal::Malformed("the proof is too long"));
    }
    Ok((old, proof, note))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use signed_note::{Note, StandardSigner};
    use tlog_tiles::{node_hash, record_hash};

    use super::*;
    use immilink_shared::transparency::{CosignatureVerifier, NOTE_KEY_TYPE};

    const ORIGIN: &str = "immilink.test/audit";

    fn log_signer() -> (StandardSigner, String) {
        let key = SigningKey::from_bytes(&[1; 32]);
        let vkey = transparency::verifier_key(ORIGIN, NOTE_KEY_TYPE, &key.verifying_key());
        let (_, id, _, _) = transparency::parse_verifier_key(&vkey).unwrap();
        let private = [&[NOTE_KEY_TYPE][..], &key.to_bytes()[..]].concat();
        let skey = format!("PRIVATE+KEY+{ORIGIN}+{id:08x}+{}", BASE64.encode(private));
        (StandardSigner::new(&skey).unwrap(), vkey)
    }

    fn witness(dir: &std::path::Path) -> Witness {
        let (_, vkey) = log_signer();
        Witness::new(&WitnessSettings {
            name: "nia.witness.test/immilink".into(),
            key_file: dir.join("witness.key"),
            generate_key: true,
            logs: vec![vkey],
            state_file: Some(dir.join("state.json")),
        })
        .unwrap()
    }

    fn leaves(n: u8) -> Vec<Hash> {
        (0..n).map(|i| record_hash(&[i])).collect()
    }

    /// Root of leaves by the RFC 6962 definition (small trees only).
    fn root(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        node_hash(root(&leaves[..k]), root(&leaves[k..]))
    }

    fn signed_checkpoint(size: u64, hash: Hash) -> String {
        let (signer, _) = log_signer();
        let body = Checkpoint::new(ORIGIN, size, hash, "").unwrap().to_bytes();
        let mut note = Note::new(&body, &[]).unwrap();
        note.add_sigs(&[&signer]).unwrap();
        String::from_utf8(note.to_bytes()).unwrap()
    }

    fn request(old: u64, proof: &[Hash], note: &str) -> String {
        let mut body = format!("old {old}\n");
        for hash in proof {
            body.push_str(&format!("{hash}\n"));
        }
        format!("{body}\n{note}")
    }

    /// A consistency proof from 2 to 3 leaves of `l`: the third leaf and the root of the first two.
    fn proof_2_to_3(l: &[Hash]) -> Vec<Hash> {
        vec![l[2]]
    }

    #[test]
    fn cosigns_a_consistent_checkpoint_and_remembers_it_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = witness(dir.path());
        let l = leaves(3);
        let line = first.add_checkpoint(&request(0, &[], &signed_checkpoint(2, root(&l[..2]))), 100).unwrap();
        assert!(line.starts_with("— nia.witness.test/immilink "), "{line}");
        // The cosignature verifies as c2sp.org/tlog-cosignature with the witness's key.
        let cosigned = first.latest(ORIGIN).unwrap();
        let verifier = CosignatureVerifier::new(&first.verifier_key()).unwrap();
        let note = Note::from_bytes(cosigned.as_bytes()).unwrap();
        assert!(note.verify(&VerifierList::new(vec![Box::new(verifier)])).is_ok());
        // A restarted witness still holds size 2 and needs the proof from there.
        let again = witness(dir.path());
        let grown = signed_checkpoint(3, root(&l));
        assert_eq!(again.add_checkpoint(&request(0, &[], &grown), 101), Err(Refusal::Conflict(2)));
        assert!(again.add_checkpoint(&request(2, &proof_2_to_3(&l), &grown), 101).is_ok());
    }

    #[test]
    fn refuses_a_checkpoint_that_does_not_extend_what_it_cosigned() {
        let dir = tempfile::tempdir().unwrap();
        let witness = witness(dir.path());
        let honest = leaves(3);
        witness.add_checkpoint(&request(0, &[], &signed_checkpoint(2, root(&honest[..2]))), 100).unwrap();
        // A log whose first two records were rewritten: its tree of 3 does not contain the tree of 2.
        let mut rewritten = leaves(3);
        rewritten[1] = record_hash(b"rewritten");
        let forged = signed_checkpoint(3, root(&rewritten));
        assert_eq!(
            witness.add_checkpoint(&request(2, &proof_2_to_3(&rewritten), &forged), 101),
            Err(Refusal::Inconsistent)
        );
        // The same size with another root is refused too.
        let other_root = signed_checkpoint(2, root(&rewritten[..2]));
        assert_eq!(witness.add_checkpoint(&request(2, &[], &other_root), 101), Err(Refusal::Inconsistent));
        assert!(witness.latest(ORIGIN).unwrap().contains(&format!("\n{}\n", root(&honest[..2]))));
    }

    #[test]
    fn refuses_checkpoints_of_unknown_logs_unsigned_ones_and_malformed_requests() {
        let dir = tempfile::tempdir().unwrap();
        let witness = witness(dir.path());
        let l = leaves(2);
        let note = signed_checkpoint(2, root(&l));
        let unsigned = note.replace(&format!("\n\n— {ORIGIN} "), "\n\n— someone.else ");
        assert!(matches!(
            witness.add_checkpoint(&request(0, &[], &unsigned), 1),
            Err(Refusal::NotSignedByLog | Refusal::Malformed(_))
        ));
        let stranger = note.replacen(ORIGIN, "other.log/audit", 1);
        assert!(matches!(witness.add_checkpoint(&request(0, &[], &stranger), 1), Err(Refusal::UnknownLog(_))));
        assert!(matches!(witness.add_checkpoint("old x\n\n", 1), Err(Refusal::Malformed(_))));
        assert!(matches!(
            witness.add_checkpoint(&format!("old 0\nnot-base64\n\n{note}"), 1),
            Err(Refusal::Malformed(_))
        ));
        assert_eq!(witness.latest(ORIGIN), None, "nothing was cosigned");
    }
}
