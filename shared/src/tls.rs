//! TLS for the calls that leave the agency's network, and for a server that must speak it.
//!
//! The immigration agency's cloud service is reached over HTTPS with mutual TLS: government
//! gateways know an agency by its certificate. The broker (queries), identity (account reviews) and
//! audit (the witness of its log) call it through one [`UpstreamTls`]: the CA bundle the server's
//! certificate must chain to (`IMMILINK_NIA_CA_FILE`; unset: the system's trust store) and the
//! agency's client certificate and key (`IMMILINK_NIA_CLIENT_CERT_FILE`,
//! `IMMILINK_NIA_CLIENT_KEY_FILE`). A server whose certificate does not chain to the configured CA
//! is never sent anything: the handshake fails, and the caller treats it as the upstream being
//! unavailable. nia-mock serves TLS through [`ServerTls`].
//!
//! rustls with the ring provider ([`install_crypto_provider`]): reqwest and lettre both use the
//! process default. Every file is read and checked when a service starts, so a missing or malformed
//! file stops the service with the variable's name rather than failing the first lookup.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{self, ConfigError, PREFIX};

/// Installs ring as the process's rustls provider. Idempotent: installing fails only when a
/// provider is already installed, ours or one the embedding process chose, and either will do.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The settings of every outbound HTTP client (`server::outbound_client`): idle connections are
/// not kept forever (a peer that restarted must not leave dead connections in the pool) and
/// redirects are not followed.
pub fn outbound_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
}

const CA_FILE: &str = "NIA_CA_FILE";
const CLIENT_CERT_FILE: &str = "NIA_CLIENT_CERT_FILE";
const CLIENT_KEY_FILE: &str = "NIA_CLIENT_KEY_FILE";

/// How immilink calls the immigration agency's service over TLS.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// `IMMILINK_NIA_CA_FILE`: PEM certificates; when set, the only anchors trusted, and plain
    /// `http://` is refused.
    pub ca_file: Option<PathBuf>,
    /// `IMMILINK_NIA_CLIENT_CERT_FILE` and `IMMILINK_NIA_CLIENT_KEY_FILE`: the agency's certificate
    /// chain and its private key (PKCS#8, PKCS#1 or SEC1, PEM), presented in the handshake. Both or
    /// neither.
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate chain and its key, as files.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl UpstreamTls {
    pub fn from_env() -> Result<Self, ConfigError> {
        let client_identity = match (config::var(CLIENT_CERT_FILE), config::var(CLIENT_KEY_FILE)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientIdentity { cert_file: cert.into(), key_file: key.into() }),
            (Some(_), None) => return Err(invalid(CLIENT_KEY_FILE, "must be set with the client certificate")),
            (None, Some(_)) => return Err(invalid(CLIENT_CERT_FILE, "must be set with the client key")),
        };
        Ok(Self { ca_file: config::var(CA_FILE).map(PathBuf::from), client_identity })
    }

    /// The HTTP client for the agency's service: the [`outbound_builder`] settings,
    /// trusting only the configured CA (and then HTTPS only), presenting the client certificate
    /// when one is configured. `url_variable` and `url` name the address it will call: a plain
    /// `http://` address is refused when TLS is configured, since the agency's credential and a
    /// person's data would cross in clear.
    pub fn client(&self, url_variable: &str, url: &str) -> Result<reqwest::Client, ConfigError> {
        let mut builder = outbound_builder();
        if let Some(ca_file) = &self.ca_file {
            if !url.starts_with("https://") {
                return Err(invalid(url_variable, "must be an https:// address when IMMILINK_NIA_CA_FILE is set"));
            }
            let anchors = read_certificates(CA_FILE, ca_file)?
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| invalid(CA_FILE, &err.to_string()))?;
            builder = builder.tls_certs_only(anchors).https_only(true);
        }
        if let Some(identity) = &self.client_identity {
            builder = builder.identity(identity.load()?);
        }
        builder.build().map_err(|err| invalid(CA_FILE, &format!("the TLS client cannot be built: {err}")))
    }
}

impl ClientIdentity {
    /// Reads and checks both files, then joins them into the one PEM reqwest reads.
    fn load(&self) -> Result<reqwest::Identity, ConfigError> {
        read_certificates(CLIENT_CERT_FILE, &self.cert_file)?;
        read_private_key(CLIENT_KEY_FILE, &self.key_file)?;
        let mut pem = read_file(CLIENT_CERT_FILE, &self.cert_file)?;
        pem.push(b'\n');
        pem.extend(read_file(CLIENT_KEY_FILE, &self.key_file)?);
        reqwest::Identity::from_pem(&pem).map_err(|err| invalid(CLIENT_KEY_FILE, &err.to_string()))
    }
}

/// A server speaking TLS: its certificate chain and key, and, when clients must present a
/// certificate, the CA their certificates must chain to (mutual TLS).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Names the settings in errors: `IMMILINK_<prefix>_TLS_CERT_FILE`…
    pub prefix: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTls {
    /// `IMMILINK_<prefix>_TLS_CERT_FILE` and `IMMILINK_<prefix>_TLS_KEY_FILE` (both or neither; none:
    /// plain HTTP), and `IMMILINK_<prefix>_TLS_CLIENT_CA_FILE` to require client certificates.
    pub fn from_env(prefix: &str) -> Result<Option<Self>, ConfigError> {
        let [cert, key, client_ca] =
            ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"].map(|v| format!("{prefix}_{v}"));
        let client_ca_file = config::var(&client_ca).map(PathBuf::from);
        match (config::var(&cert), config::var(&key)) {
            (Some(cert_file), Some(key_file)) => Ok(Some(Self {
                prefix: prefix.to_owned(),
                cert_file: cert_file.into(),
                key_file: key_file.into(),
                client_ca_file,
            })),
            (None, None) if client_ca_file.is_some() => {
                Err(invalid(&client_ca, "needs the server's certificate and key"))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(&key, "must be set with the certificate")),
            (None, Some(_)) => Err(invalid(&cert, "must be set with the key")),
        }
    }

    /// The rustls configuration; every file is read and checked here.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, ConfigError> {
        let [cert_var, key_var, client_ca_var] =
            ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"].map(|v| format!("{}_{v}", self.prefix));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_certificates(&cert_var, &self.cert_file)?;
        let key = read_private_key(&key_var, &self.key_file)?;
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| invalid(&cert_var, &err.to_string()))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca_file) => {
                let mut roots = rustls::RootCertStore::empty();
                for anchor in read_certificates(&client_ca_var, ca_file)? {
                    roots.add(anchor).map_err(|err| invalid(&client_ca_var, &err.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|err| invalid(&client_ca_var, &err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        builder.with_single_cert(chain, key).map_err(|err| invalid(&key_var, &err.to_string()))
    }
}

fn invalid(key: &str, reason: &str) -> ConfigError {
    ConfigError { name: format!("{PREFIX}{key}"), reason: reason.to_owned() }
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|err| invalid(key, &format!("cannot read {}: {err}", path.display())))
}

/// Every certificate of a PEM file; a file without any is refused (an empty trust store would
/// refuse every server, a silent outage).
pub fn read_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read_file(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(key, &format!("{}: {err}", path.display())))?;
    if certificates.is_empty() {
        return Err(invalid(key, &format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certificates)
}

fn read_private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = read_file(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|err| invalid(key, &format!("{}: no private key: {err}", path.display())))
}

/// Certificates for tests, made fresh by each test run (feature `test-pki`): a CA, a server
/// certificate for `localhost` and 127.0.0.1, and a client certificate, written as PEM files.
#[cfg(feature = "test-pki")]
pub mod test_pki {
    use std::path::{Path, PathBuf};

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

    /// One certificate authority and what it issued, as files in a folder.
    #[derive(Debug, Clone)]
    pub struct TestPki {
        pub ca_file: PathBuf,
        pub server_cert_file: PathBuf,
        pub server_key_file: PathBuf,
        pub client_cert_file: PathBuf,
        pub client_key_file: PathBuf,
    }

    impl TestPki {
        /// Issues everything under `dir`, file names prefixed by `name` (two authorities can share
        /// a folder).
        pub fn issue(dir: &Path, name: &str) -> Self {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
            ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("the CA");
            let file = |suffix: &str, contents: String| {
                let path = dir.join(format!("{name}-{suffix}"));
                std::fs::write(&path, contents).expect("writing a test certificate");
                path
            };
            let leaf = |names: Vec<String>, common_name: &str| {
                let mut params = CertificateParams::new(names).expect("leaf parameters");
                params.distinguished_name.push(DnType::CommonName, common_name);
                let key = KeyPair::generate().expect("leaf key");
                let cert = params.signed_by(&key, &ca).expect("a leaf certificate");
                (cert.pem(), key.serialize_pem())
            };
            let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "nia.test");
            let (client_cert, client_key) = leaf(Vec::new(), "TPE-SW agency client");
            Self {
                ca_file: file("ca.pem", ca.pem()),
                server_cert_file: file("server.pem", server_cert),
                server_key_file: file("server.key", server_key),
                client_cert_file: file("client.pem", client_cert),
                client_key_file: file("client.key", client_key),
            }
        }

        /// nia-mock's side: this CA's server certificate, requiring clients certified by this CA.
        pub fn server(&self) -> super::ServerTls {
            super::ServerTls {
                prefix: "NIA_MOCK".into(),
                cert_file: self.server_cert_file.clone(),
                key_file: self.server_key_file.clone(),
                client_ca_file: Some(self.ca_file.clone()),
            }
        }

        /// immilink's side: trusting this CA, presenting this CA's client certificate.
        pub fn client(&self) -> super::UpstreamTls {
            super::UpstreamTls {
                ca_file: Some(self.ca_file.clone()),
                client_identity: Some(super::ClientIdentity {
                    cert_file: self.client_cert_file.clone(),
                    key_file: self.client_key_file.clone(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_variable() {
        let dir = tempfile::tempdir().expect("dir");
        let tls =
            UpstreamTls { ca_file: Some(write(dir.path(), "empty.pem", "not a certificate\n")), client_identity: None };
        let err = tls.client("NIA_URL", "https://nia.example").expect_err("no anchors");
        assert_eq!(err.name, "IMMILINK_NIA_CA_FILE");
        assert!(err.reason.contains("no PEM certificate"), "{}", err.reason);
    }

    #[test]
    fn a_missing_file_is_refused_naming_the_variable_and_the_path() {
        let tls = UpstreamTls { ca_file: Some("/nonexistent/ca.pem".into()), client_identity: None };
        let err = tls.client("NIA_URL", "https://nia.example").expect_err("missing");
        assert_eq!(err.name, "IMMILINK_NIA_CA_FILE");
        assert!(err.reason.contains("/nonexistent/ca.pem"), "{}", err.reason);
    }

    #[test]
    fn plain_http_is_refused_once_a_ca_is_configured() {
        let tls = UpstreamTls { ca_file: Some("/nonexistent/ca.pem".into()), client_identity: None };
        let err = tls.client("NIA_URL", "http://nia.example").expect_err("plain http");
        assert_eq!(err.name, "IMMILINK_NIA_URL");
    }

    #[test]
    fn without_tls_settings_the_client_is_the_plain_outbound_client() {
        assert!(UpstreamTls::default().client("NIA_URL", "http://127.0.0.1:8085").is_ok());
    }
}
