//! What the audit log, its witness and an offline verifier share about signed checkpoints:
//! Ed25519 cosignatures in the format of c2sp.org/tlog-cosignature (key type 0x04, a timestamped
//! signature over `cosignature/v1\ntime <t>\n` and the checkpoint body), as `signed_note` signers
//! and verifiers, and the key files both sides keep.
//!
//! The log's own signature is a plain c2sp.org/signed-note Ed25519 signature (`signed_note`'s
//! `StandardSigner`); only the cosignature needs code here, because `signed_note` does not know the
//! cosignature message.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use signed_note::{Signer, Verifier};

/// The signature type byte of an Ed25519 cosigner key (c2sp.org/tlog-cosignature).
pub const COSIGNATURE_KEY_TYPE: u8 = 0x04;
/// The signature type byte of a plain Ed25519 note key (c2sp.org/signed-note).
pub const NOTE_KEY_TYPE: u8 = 0x01;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    #[error("key file {path}: {reason}")]
    File { path: String, reason: String },
}

/// The message a v1 Ed25519 cosignature signs.
fn cosigned_message(timestamp: u64, checkpoint_body: &[u8]) -> Vec<u8> {
    let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    message.extend_from_slice(checkpoint_body);
    message
}

fn key_id(name: &str, key_type: u8, public: &VerifyingKey) -> u32 {
    let key = [&[key_type][..], public.as_bytes()].concat();
    signed_note::key_id(name, &key)
}

/// A verifier key `<name>+<key id>+<base64(type || public key)>` (c2sp.org/signed-note).
pub fn verifier_key(name: &str, key_type: u8, public: &VerifyingKey) -> String {
    let key = [&[key_type][..], public.as_bytes()].concat();
    format!("{name}+{:08x}+{}", key_id(name, key_type, public), BASE64.encode(key))
}

/// Splits a verifier key into its name, id and typed public key, checking the id.
pub fn parse_verifier_key(vkey: &str) -> Result<(String, u32, u8, VerifyingKey), KeyError> {
    let mut parts = vkey.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Malformed("expected <name>+<key id>+<key>"));
    };
    if name.is_empty() || id.len() != 8 {
        return Err(KeyError::Malformed("expected a name and an 8-digit key id"));
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| KeyError::Malformed("the key id is not hexadecimal"))?;
    let key = BASE64.decode(key).map_err(|_| KeyError::Malformed("the key is not base64"))?;
    let (&key_type, public) = key.split_first().ok_or(KeyError::Malformed("the key is empty"))?;
    let public: [u8; 32] = public.try_into().map_err(|_| KeyError::Malformed("not a 32-byte Ed25519 key"))?;
    let public = VerifyingKey::from_bytes(&public).map_err(|_| KeyError::Malformed("not an Ed25519 key"))?;
    if key_id(name, key_type, &public) != id {
        return Err(KeyError::Malformed("the key id does not match the name and key"));
    }
    Ok((name.to_owned(), id, key_type, public))
}

/// Signs cosignatures as a witness, stamped with the time it is given.
pub struct Cosigner {
    name: String,
    id: u32,
    key: SigningKey,
    timestamp: u64,
}

impl Cosigner {
    pub fn new(name: &str, key: SigningKey, timestamp: u64) -> Self {
        let id = key_id(name, COSIGNATURE_KEY_TYPE, &key.verifying_key());
        Self { name: name.to_owned(), id, key, timestamp }
    }

    /// The witness's verifier key, to configure into the log as trusted.
    pub fn verifier_key(&self) -> String {
        verifier_key(&self.name, COSIGNATURE_KEY_TYPE, &self.key.verifying_key())
    }
}

impl Signer for Cosigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, checkpoint_body: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let signature = self.key.sign(&cosigned_message(self.timestamp, checkpoint_body));
        Ok([&self.timestamp.to_be_bytes()[..], &signature.to_bytes()[..]].concat())
    }
}

/// Checks a witness's cosignatures; [`Cosignatures::verified`] also tells when the witness signed.
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// From the witness's verifier key (type 0x04).
    pub fn new(vkey: &str) -> Result<Self, KeyError> {
        let (name, id, key_type, key) = parse_verifier_key(vkey)?;
        if key_type != COSIGNATURE_KEY_TYPE {
            return Err(KeyError::Malformed("not an Ed25519 cosignature key (type 0x04)"));
        }
        Ok(Self { name, id, key })
    }
}

/// The timestamp of a cosignature's signature bytes (after the key id), if it has one.
pub fn cosignature_timestamp(signature: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(signature.get(..8)?.try_into().ok()?))
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, checkpoint_body: &[u8], signature: &[u8]) -> bool {
        let (Some(timestamp), Some(bytes)) = (cosignature_timestamp(signature), signature.get(8..)) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else { return false };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        timestamp < (1 << 63) && self.key.verify(&cosigned_message(timestamp, checkpoint_body), &signature).is_ok()
    }
}

/// Reads a 32-byte Ed25519 seed kept base64-encoded in `path`, or, when `generate` is set and the
/// file does not exist, generates one and writes it there (owner-only) first.
pub fn load_or_generate_key(path: &Path, generate: bool) -> Result<SigningKey, KeyError> {
    let file_error = |reason: String| KeyError::File { path: path.display().to_string(), reason };
    if !path.exists() {
        if !generate {
            return Err(file_error("does not exist".into()));
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| file_error(err.to_string()))?;
        }
        write_private(path, &BASE64.encode(key.to_bytes())).map_err(|err| file_error(err.to_string()))?;
        return Ok(key);
    }
    let text = std::fs::read_to_string(path).map_err(|err| file_error(err.to_string()))?;
    let seed = BASE64.decode(text.trim()).map_err(|_| file_error("is not base64".into()))?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| file_error("does not hold a 32-byte Ed25519 seed".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use signed_note::{Note, VerifierList};

    use super::*;

    const BODY: &[u8] = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn a_cosignature_verifies_with_the_witness_key_and_carries_its_time() {
        let cosigner = Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[7; 32]), 1_679_315_147);
        let mut note = Note::new(BODY, &[]).unwrap();
        note.add_sigs(&[&cosigner]).unwrap();
        let verifier = CosignatureVerifier::new(&cosigner.verifier_key()).unwrap();
        let text = note.to_bytes();
        let parsed = Note::from_bytes(&text).unwrap();
        let (verified, _) = parsed.verify(&VerifierList::new(vec![Box::new(verifier)])).unwrap();
        assert_eq!(cosignature_timestamp(verified[0].signature()), Some(1_679_315_147));
        // The signed message is the spec's: header, time line, then the body.
        let signature = ed25519_dalek::Signature::from_bytes(verified[0].signature()[8..].try_into().unwrap());
        let message = [b"cosignature/v1\ntime 1679315147\n".as_slice(), BODY].concat();
        assert!(SigningKey::from_bytes(&[7; 32]).verifying_key().verify(&message, &signature).is_ok());
    }

    #[test]
    fn a_cosignature_over_another_body_or_time_is_refused() {
        let cosigner = Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[7; 32]), 100);
        let verifier = CosignatureVerifier::new(&cosigner.verifier_key()).unwrap();
        let signature = cosigner.sign(BODY).unwrap();
        assert!(verifier.verify(BODY, &signature));
        assert!(!verifier.verify(b"example.com/behind-the-sofa\n1\nAAAA\n", &signature));
        let mut later = signature.clone();
        later[7] ^= 1;
        assert!(!verifier.verify(BODY, &later), "the time is signed");
    }

    #[test]
    fn verifier_keys_name_their_type_and_check_their_id() {
        let public = SigningKey::from_bytes(&[9; 32]).verifying_key();
        let vkey = verifier_key("log.example/audit", NOTE_KEY_TYPE, &public);
        let (name, _, key_type, key) = parse_verifier_key(&vkey).unwrap();
        assert_eq!((name.as_str(), key_type, key), ("log.example/audit", NOTE_KEY_TYPE, public));
        assert!(CosignatureVerifier::new(&vkey).is_err(), "a note key is not a cosigner key");
        let tampered = vkey.replacen("log.example", "log.exampla", 1);
        assert!(parse_verifier_key(&tampered).is_err());
    }

    #[test]
    fn a_key_file_is_generated_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/witness.key");
        assert!(load_or_generate_key(&path, false).is_err(), "not generated unless asked");
        let first = load_or_generate_key(&path, true).unwrap();
        let again = load_or_generate_key(&path, true).unwrap();
        assert_eq!(first.to_bytes(), again.to_bytes());
    }
}
