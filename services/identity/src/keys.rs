//! The Ed25519 key that signs access tokens. In production it comes from a file (a mounted Secret);
//! in the embedded mode a missing file is generated at start (mode 0600 under ./data), never committed.
//!
//! Rotation: put the new key in `IMMILINK_SIGNING_KEY_FILE`, list the old one in
//! `IMMILINK_PREVIOUS_SIGNING_KEY_FILES`, restart identity. New tokens carry the new `kid`; the JWKS
//! publishes both, so tokens signed before the rotation verify until they expire (at most the token
//! TTL). After that overlap, drop the old file from the list. Verifiers fetch the JWKS again when they
//! meet an unknown `kid`, and at least every few minutes, so a retired key stops verifying too.

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use immilink_shared::auth::{Jwk, JwkSet};
use jsonwebtoken::EncodingKey;
use sha2::{Digest, Sha256};

pub struct SigningKeys {
    kid: String,
    encoding: EncodingKey,
    /// The current key's public half first, then the retired ones still in their overlap.
    published: Vec<Jwk>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key file {path}: {reason}")]
    File { path: String, reason: String },
}

impl SigningKeys {
    /// Loads the PKCS#8 key at `path`; when it does not exist and `generate_missing` is set, creates it.
    pub fn load(path: &Path, generate_missing: bool) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::File { path: path.display().to_string(), reason };
        if !path.exists() {
            if !generate_missing {
                return Err(fail("does not exist (set IMMILINK_SIGNING_KEY_FILE to a PKCS#8 Ed25519 key)".into()));
            }
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let der = key.to_pkcs8_der().map_err(|e| fail(e.to_string()))?;
            write_private(path, der.as_bytes()).map_err(|e| fail(e.to_string()))?;
            tracing::info!(path = %path.display(), "generated a new token signing key");
        }
        let der = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        Self::from_pkcs8(&der).map_err(fail)
    }

    /// The current key at `path` plus retired keys whose public halves stay published.
    pub fn load_with_previous(path: &Path, generate_missing: bool, previous: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = Self::load(path, generate_missing)?;
        for old in previous {
            let retired = Self::load(old, false)?;
            if retired.kid != keys.kid {
                keys.published.extend(retired.published);
            }
        }
        Ok(keys)
    }

    /// A fresh key held only in memory (tests).
    pub fn ephemeral() -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().expect("a fresh Ed25519 key encodes as PKCS#8");
        Self::from_pkcs8(der.as_bytes()).expect("a fresh key round-trips")
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let key = SigningKey::from_pkcs8_der(der).map_err(|e| format!("not a PKCS#8 Ed25519 key: {e}"))?;
        let public = key.verifying_key().to_bytes();
        let kid = hex::encode(&Sha256::digest(public)[..8]);
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
            kid: kid.clone(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        };
        Ok(Self { kid, encoding: EncodingKey::from_ed_der(der), published: vec![jwk] })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.published.clone() }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_persisted_and_reloaded_with_the_same_kid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.pk8");
        let first = SigningKeys::load(&path, true).unwrap();
        let second = SigningKeys::load(&path, false).unwrap();
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn rotation_publishes_the_new_and_the_retired_key_and_signs_with_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let old_path = dir.path().join("old.pk8");
        let new_path = dir.path().join("new.pk8");
        let old = SigningKeys::load(&old_path, true).unwrap();
        let rotated = SigningKeys::load_with_previous(&new_path, true, std::slice::from_ref(&old_path)).unwrap();
        assert_ne!(rotated.kid(), old.kid());
        let kids: Vec<String> = rotated.jwks().keys.into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, vec![rotated.kid().to_owned(), old.kid().to_owned()]);
        // A retired key that is missing is a configuration error, not silently skipped.
        assert!(SigningKeys::load_with_previous(&new_path, false, &[dir.path().join("gone.pk8")]).is_err());
    }

    #[test]
    fn missing_key_without_generation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SigningKeys::load(&dir.path().join("none.pk8"), false).is_err());
    }
}
