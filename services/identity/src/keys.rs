//! The Ed25519 key that signs access tokens. In production it comes from a file (a mounted Secret);
//! in the embedded mode a missing file is generated at start (mode 0600 under ./data), never committed.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use immilink_shared::auth::{Jwk, JwkSet};
use jsonwebtoken::EncodingKey;
use sha2::{Digest, Sha256};

pub struct SigningKeys {
    kid: String,
    encoding: EncodingKey,
    public: Jwk,
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
        Ok(Self { kid, encoding: EncodingKey::from_ed_der(der), public: jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.public.clone()] }
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
    fn missing_key_without_generation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SigningKeys::load(&dir.path().join("none.pk8"), false).is_err());
    }
}
