//! The rustls server configuration built from Kafka's `ssl.*` settings (PEM keystore and
//! truststore, `ssl.client.auth`, `ssl.enabled.protocols`), with the ring crypto provider.
//!
//! Invariants: built at start, before any shard listens, so a bad key or certificate stops the
//! broker with a config error instead of failing handshakes later; rebuilt only by a dynamic
//! listener config change (`security::listener_configs`), which swaps a listener's `TlsSlot`
//! only once the new config is built and checked (new connections use it, live ones keep
//! theirs); client certificates are verified against the truststore only (never the system
//! roots).

use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::config::{BrokerConfig, ConfigError};

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "requested" => Some(Self::Requested),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS protocol versions of `ssl.enabled.protocols`.
pub fn protocol_versions(
    text: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, ConfigError> {
    let mut versions = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let version = match name {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            other => {
                return Err(invalid(
                    "ssl.enabled.protocols",
                    format!("{other} is not supported (TLSv1.2, TLSv1.3)"),
                ))
            }
        };
        versions.push(version);
    }
    if versions.is_empty() {
        return Err(invalid("ssl.enabled.protocols", "no protocol"));
    }
    Ok(versions)
}

fn keystore(
    config: &BrokerConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    const KEY: &str = "ssl.keystore.location";
    if !config.ssl.ssl_keystore_type.eq_ignore_ascii_case("PEM") {
        return Err(invalid("ssl.keystore.type", "only PEM is supported"));
    }
    if config.ssl.ssl_key_password.is_some() {
        return Err(invalid(
            "ssl.key.password",
            "encrypted private keys are not supported; give an unencrypted PEM key",
        ));
    }
    let (certs, key) =
        match (
            &config.ssl.ssl_keystore_location,
            &config.ssl.ssl_keystore_certificate_chain,
            &config.ssl.ssl_keystore_key,
        ) {
            (Some(path), None, None) => {
                let bytes = read_pem_file(path)
                    .map_err(|e| invalid(KEY, format!("{}: {e}", path.display())))?;
                (pem_certs(KEY, &bytes)?, pem_key(KEY, &bytes)?)
            }
            (None, Some(chain), Some(key)) => (
                pem_certs("ssl.keystore.certificate.chain", chain.as_bytes())?,
                pem_key("ssl.keystore.key", key.as_bytes())?,
            ),
            _ => return Err(invalid(
                KEY,
                "a TLS listener needs ssl.keystore.location, or ssl.keystore.certificate.chain \
                 and ssl.keystore.key",
            )),
        };
    if certs.is_empty() {
        return Err(invalid(KEY, "no certificate in the keystore"));
    }
    Ok((certs, key))
}

/// Largest keystore or truststore file read: a PEM chain, key or CA bundle is kilobytes (the
/// system CA bundle about 200 KiB).
pub const PEM_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Reads a keystore or truststore file. The path may come from a client (AlterConfigs of
/// `listener.name.<l>.ssl.keystore.location`): only a regular file of at most
/// `PEM_FILE_BYTES_MAX` bytes is read, so `/dev/zero` cannot exhaust memory and a FIFO cannot
/// block the reader (and the listener-config lock) forever.
pub fn read_pem_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(PEM_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "larger than {PEM_FILE_BYTES_MAX} bytes"
        )));
    }
    Ok(bytes)
}

fn pem_certs(key: &'static str, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("bad PEM certificate: {e}")))
}

fn pem_key(key: &'static str, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(bytes)
        .map_err(|e| invalid(key, format!("no usable PEM private key: {e}")))
}

fn truststore(config: &BrokerConfig) -> Result<Option<RootCertStore>, ConfigError> {
    const KEY: &str = "ssl.truststore.location";
    if !config.ssl.ssl_truststore_type.eq_ignore_ascii_case("PEM") {
        return Err(invalid("ssl.truststore.type", "only PEM is supported"));
    }
    let certs = match (
        &config.ssl.ssl_truststore_location,
        &config.ssl.ssl_truststore_certificates,
    ) {
        (None, None) => return Ok(None),
        (Some(path), None) => {
            let bytes = read_pem_file(path)
                .map_err(|e| invalid(KEY, format!("{}: {e}", path.display())))?;
            pem_certs(KEY, &bytes)?
        }
        (None, Some(text)) => pem_certs("ssl.truststore.certificates", text.as_bytes())?,
        (Some(_), Some(_)) => {
            return Err(invalid(
                KEY,
                "set ssl.truststore.location or ssl.truststore.certificates, not both",
            ))
        }
    };
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| invalid(KEY, format!("bad CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid(KEY, "no CA certificate in the truststore"));
    }
    Ok(Some(roots))
}

/// A TLS listener's current server config and its certificate, replaceable at run time
/// (certificate reload without restart).
#[derive(Debug)]
pub struct TlsSlot {
    current: RwLock<(Arc<rustls::ServerConfig>, CertificateDer<'static>)>,
}

impl TlsSlot {
    pub fn new(config: Arc<rustls::ServerConfig>, leaf: CertificateDer<'static>) -> Self {
        Self {
            current: RwLock::new((config, leaf)),
        }
    }

    /// The config a new connection's handshake uses.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The listener's current (leaf) certificate.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    pub fn replace(&self, config: Arc<rustls::ServerConfig>, leaf: CertificateDer<'static>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (config, leaf);
    }
}

/// The client side of TLS for connections this broker opens to other brokers (the
/// inter-broker listener's settings): the truststore verifies the other broker's certificate
/// (required), the keystore, when set, is presented as this broker's client certificate.
pub fn client_config(config: &BrokerConfig) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let versions = protocol_versions(&config.ssl.ssl_enabled_protocols)?;
    let roots = truststore(config)?.ok_or_else(|| {
        invalid(
            "ssl.truststore.location",
            "an SSL inter-broker listener needs a truststore to verify other brokers",
        )
    })?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid("ssl.enabled.protocols", e.to_string()))?
        .with_root_certificates(roots);
    let has_keystore = config.ssl.ssl_keystore_location.is_some()
        || config.ssl.ssl_keystore_certificate_chain.is_some();
    let client = if has_keystore {
        let (certs, key) = keystore(config)?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| invalid("ssl.keystore.location", e.to_string()))?
    } else {
        builder.with_no_client_auth()
    };
    Ok(Arc::new(client))
}

/// Builds a listener's server config from its settings (`security::config::listener_config`).
pub fn server_config(config: &BrokerConfig) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    server_config_and_leaf(config).map(|(server, _)| server)
}

/// As `server_config`, with the keystore's leaf certificate.
pub fn server_config_and_leaf(
    config: &BrokerConfig,
) -> Result<(Arc<rustls::ServerConfig>, CertificateDer<'static>), ConfigError> {
    let provider = provider();
    let versions = protocol_versions(&config.ssl.ssl_enabled_protocols)?;
    let client_auth = ClientAuth::parse(&config.ssl.ssl_client_auth)
        .ok_or_else(|| invalid("ssl.client.auth", "must be none, requested or required"))?;
    let (certs, key) = keystore(config)?;
    let leaf = certs
        .first()
        .cloned()
        .ok_or_else(|| invalid("ssl.keystore.location", "no certificate in the keystore"))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid("ssl.enabled.protocols", e.to_string()))?;
    let builder = match (client_auth, truststore(config)?) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(invalid(
                "ssl.truststore.location",
                "ssl.client.auth requested/required needs a truststore",
            ))
        }
        (auth, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| invalid("ssl.truststore.location", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("ssl.keystore.location", format!("key does not fit: {e}")))?;
    // Kafka's clients do not negotiate ALPN; no session tickets keep handshakes stateless.
    server.send_tls13_tickets = 0;
    Ok((Arc::new(server), leaf))
}

#[cfg(test)]
mod pem_file_tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ok.pem");
        std::fs::write(&pem, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(read_pem_file(&pem).is_ok());
        // A device never ends; a directory and a FIFO are not files (opening a FIFO would
        // block until a writer came).
        assert!(read_pem_file(std::path::Path::new("/dev/zero")).is_err());
        assert!(read_pem_file(dir.path()).is_err());
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(read_pem_file(&fifo).is_err());
        let big = dir.path().join("big.pem");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(PEM_FILE_BYTES_MAX + 1).unwrap();
        assert!(read_pem_file(&big).is_err());
    }
}
