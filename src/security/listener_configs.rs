//! Dynamic listener configs: Kafka's certificate reload without restart. An AlterConfigs /
//! IncrementalAlterConfigs on this broker (`BROKER <node.id>`) setting
//! `listener.name.<l>.ssl.keystore.*` / `ssl.truststore.*` rebuilds listener `<l>`'s TLS config
//! from the files (setting the same path again reloads a changed file, as Kafka's
//! `SslFactory.reconfigure` does), checks it, persists the dynamic values in
//! `__cluster/listener-configs.toml` and swaps it in: new connections use it, live ones keep
//! theirs.
//!
//! Kafka's rules: only those keys (`SslConfigs.RECONFIGURABLE_CONFIGS` that Sluice has), only
//! with the listener prefix and only per broker (not the cluster default); a keystore that does
//! not load, or whose certificate's subject DN or subject alternative names differ from the
//! current one (unless `ssl.allow.dn.changes` / `ssl.allow.san.changes`, false by default as in
//! Kafka), is refused and nothing changes.
//!
//! Invariants: the file and the live TLS configs agree (persist first, then swap), changes are
//! serialised by one async lock, and files are read on a blocking thread, never on a shard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use super::config::{listener_config, split_listener_key, LISTENER_PREFIX};
use super::tls::{self, TlsSlot};
use crate::config::BrokerConfig;

/// File name of the store under `__cluster/`.
pub const STORE_FILE: &str = "listener-configs.toml";

/// The per-listener keys AlterConfigs may change at run time.
pub const DYNAMIC_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
];

#[derive(Debug, thiserror::Error)]
pub enum ListenerConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// Kafka's INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// Kafka's INVALID_CONFIG.
    #[error("{0}")]
    InvalidConfig(String),
    #[error("cannot persist listener configs: {0}")]
    Write(std::io::Error),
}

/// One change of a dynamic key.
#[derive(Debug, Clone)]
pub enum KeyChange {
    Set(String),
    Delete,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster").join(STORE_FILE)
}

/// The persisted dynamic listener configs (absent file = none).
pub fn load(data_dir: &Path) -> Result<BTreeMap<String, String>, ListenerConfigError> {
    let path = store_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<StoreFile>(&text)
            .map(|f| f.configs)
            .map_err(|e| ListenerConfigError::Parse {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(ListenerConfigError::Read { path, source }),
    }
}

/// The broker's listeners' dynamic configs and TLS slots, shared by every shard.
#[derive(Debug)]
pub struct ListenerConfigs {
    base: Arc<BrokerConfig>,
    path: PathBuf,
    dynamic: Mutex<BTreeMap<String, String>>,
    /// Lower-case listener name -> its TLS slot (TLS listeners only).
    slots: Vec<(String, Arc<TlsSlot>)>,
    change_lock: futures_util::lock::Mutex<()>,
}

impl ListenerConfigs {
    pub fn new(
        config: &BrokerConfig,
        dynamic: BTreeMap<String, String>,
        tls_listeners: impl IntoIterator<Item = (String, Arc<TlsSlot>)>,
    ) -> Self {
        Self {
            base: Arc::new(config.clone()),
            path: store_path(&config.server.data_dir),
            dynamic: Mutex::new(dynamic),
            slots: tls_listeners
                .into_iter()
                .map(|(name, slot)| (name.to_ascii_lowercase(), slot))
                .collect(),
            change_lock: futures_util::lock::Mutex::new(()),
        }
    }

    /// Whether a config key is a per-listener one (handled here, not by the broker configs).
    pub fn is_listener_key(key: &str) -> bool {
        key.starts_with(LISTENER_PREFIX)
    }

    /// The dynamic values in force (key -> value).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn slot(&self, listener: &str) -> Option<&Arc<TlsSlot>> {
        self.slots
            .iter()
            .find(|(name, _)| name == listener)
            .map(|(_, slot)| slot)
    }

    /// Applies `changes` for this broker (`per_node`: the resource named this node's id, not
    /// the cluster default); `validate_only` checks everything and changes nothing.
    pub async fn alter(
        &self,
        per_node: bool,
        changes: Vec<(String, KeyChange)>,
        validate_only: bool,
    ) -> Result<(), ListenerConfigError> {
        let refused: Vec<&str> = changes
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| {
                !split_listener_key(k)
                    .is_some_and(|(l, key)| self.slot(&l).is_some() && DYNAMIC_KEYS.contains(&key))
            })
            .collect();
        if !refused.is_empty() {
            return Err(ListenerConfigError::InvalidRequest(format!(
                "Cannot update these configs dynamically: {refused:?} (per TLS listener: {DYNAMIC_KEYS:?})"
            )));
        }
        if !per_node {
            return Err(ListenerConfigError::InvalidRequest(format!(
                "Cannot update these configs at default cluster level, broker id must be specified: {:?}",
                changes.iter().map(|(k, _)| k).collect::<Vec<_>>()
            )));
        }
        let _serialised = self.change_lock.lock().await;
        let mut next = self.snapshot();
        let mut touched: Vec<String> = Vec::new();
        for (key, change) in changes {
            if let Some((listener, _)) = split_listener_key(&key) {
                if !touched.contains(&listener) {
                    touched.push(listener);
                }
            }
            match change {
                KeyChange::Set(value) => next.insert(key, value),
                KeyChange::Delete => next.remove(&key),
            };
        }
        let base = self.base.clone();
        let current: Vec<(String, CertificateDer<'static>)> = touched
            .iter()
            .filter_map(|l| self.slot(l).map(|s| (l.clone(), s.leaf())))
            .collect();
        let dynamic = next.clone();
        let rebuilt = compio::runtime::spawn_blocking(move || rebuild(&base, &dynamic, current))
            .await
            .unwrap_or_else(|_| {
                Err(ListenerConfigError::InvalidConfig(
                    "the TLS config could not be built".into(),
                ))
            })?;
        if validate_only {
            return Ok(());
        }
        let text = toml::to_string(&StoreFile {
            configs: next.clone(),
        })
        .unwrap_or_default();
        crate::atomic_file::write_off_thread(self.path.clone(), text.into_bytes())
            .await
            .map_err(ListenerConfigError::Write)?;
        for (listener, server, leaf) in rebuilt {
            if let Some(slot) = self.slot(&listener) {
                slot.replace(server, leaf);
                tracing::info!(listener = %listener, "TLS keystore/truststore reloaded");
            }
        }
        *self.dynamic.lock().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }
}

type Rebuilt = Vec<(String, Arc<rustls::ServerConfig>, CertificateDer<'static>)>;

/// Builds the touched listeners' TLS configs from `dynamic` over the static settings, and
/// checks each new certificate names the same subject and alternative names as the current.
fn rebuild(
    base: &BrokerConfig,
    dynamic: &BTreeMap<String, String>,
    current: Vec<(String, CertificateDer<'static>)>,
) -> Result<Rebuilt, ListenerConfigError> {
    let mut out = Vec::with_capacity(current.len());
    for (listener, old_leaf) in current {
        let invalid = |e: String| {
            ListenerConfigError::InvalidConfig(format!(
                "Validation of dynamic config update of SSLFactory failed for listener {listener}: {e}"
            ))
        };
        let config =
            listener_config(base, &listener, dynamic).map_err(|e| invalid(e.to_string()))?;
        let (server, leaf) =
            tls::server_config_and_leaf(&config).map_err(|e| invalid(e.to_string()))?;
        let old = identity(&old_leaf).map_err(&invalid)?;
        let new = identity(&leaf).map_err(&invalid)?;
        let dn_changed = old.0 != new.0 && !config.ssl.ssl_allow_dn_changes;
        let san_changed = old.1 != new.1 && !config.ssl.ssl_allow_san_changes;
        if dn_changed || san_changed {
            return Err(invalid(format!(
                "Keystore DistinguishedName or SubjectAltNames do not match: {old:?} vs {new:?}"
            )));
        }
        out.push((listener, server, leaf));
    }
    Ok(out)
}

/// A certificate's subject DN and sorted subject alternative names (Kafka's
/// `CertificateEntries`).
fn identity(der: &[u8]) -> Result<(String, Vec<String>), String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("bad certificate: {e}"))?;
    let mut sans: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("bad subjectAltName: {e}")),
    };
    sans.sort();
    Ok((cert.subject().to_string(), sans))
}
