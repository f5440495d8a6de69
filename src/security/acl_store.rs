//! The ACLs and the authorizer's settings, shared by every shard (like `scram::CredentialStore`):
//! persisted in `__cluster/acls.toml`.
//!
//! Invariants: a change is persisted atomically (`atomic_file`: temp file, fsync, rename)
//! before any shard sees it, and changes are serialised by one async lock, so the file and the
//! memory agree. Checks read under an `RwLock` and never wait on disk. Every check is linear in
//! the number of bindings (Kafka's StandardAuthorizer indexes them; a broker with thousands of
//! ACLs would want that too).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::acl::{self, AclBinding, Action, AuthorizerConfig, ResourceType};

/// File name of the store under `__cluster/`.
pub const STORE_FILE: &str = "acls.toml";

pub type Acls = BTreeSet<AclBinding>;

#[derive(Debug, thiserror::Error)]
pub enum AclStoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot persist ACLs: {0}")]
    Write(std::io::Error),
}

/// On-disk form of one binding (wire codes, so the file needs no second vocabulary).
#[derive(Debug, Serialize, Deserialize)]
struct StoredAcl {
    resource_type: i8,
    resource_name: String,
    pattern_type: i8,
    principal: String,
    host: String,
    operation: i8,
    permission: i8,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    acl: Vec<StoredAcl>,
}

/// The authorizer: its settings and every ACL.
#[derive(Debug)]
pub struct Authorizer {
    config: AuthorizerConfig,
    acls: crate::atomic_file::Persisted<Acls>,
}

impl Authorizer {
    /// Loads `<data_dir>/__cluster/acls.toml` (absent = no ACLs).
    pub fn load(data_dir: &Path, config: AuthorizerConfig) -> Result<Self, AclStoreError> {
        let path = data_dir.join("__cluster").join(STORE_FILE);
        let acls = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|reason| AclStoreError::Parse {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Acls::new(),
            Err(source) => return Err(AclStoreError::Read { path, source }),
        };
        Ok(Self {
            config,
            acls: crate::atomic_file::Persisted::new(path, acls),
        })
    }

    /// Whether an authorizer is configured (`authorizer.class.name`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn authorize(&self, action: &Action) -> bool {
        if !self.config.enabled {
            return true;
        }
        self.acls
            .read(|acls| acl::authorize(&self.config, acls, action))
    }

    /// Whether the principal may do `operation` on some resource of the type (KIP-679).
    pub fn authorize_by_resource_type(
        &self,
        principal: &str,
        host: &str,
        operation: acl::Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.config.enabled {
            return true;
        }
        self.acls.read(|acls| {
            acl::authorize_by_resource_type(
                &self.config,
                acls,
                principal,
                host,
                operation,
                resource_type,
            )
        })
    }

    /// Kafka's authorized-operations bitfield for one resource.
    pub fn authorized_operations(
        &self,
        principal: &str,
        host: &str,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> i32 {
        self.acls.read(|acls| {
            acl::authorized_operations(
                &self.config,
                acls,
                principal,
                host,
                resource_type,
                resource_name,
            )
        })
    }

    pub fn snapshot(&self) -> Acls {
        self.acls.snapshot()
    }

    /// Applies `change` to a copy, persists it, then publishes it; nothing is written when
    /// `change` reports no change (`false`).
    pub async fn modify<R>(
        &self,
        change: impl FnOnce(&mut Acls) -> (R, bool),
    ) -> Result<R, AclStoreError> {
        self.acls
            .modify(change, render)
            .await
            .map_err(AclStoreError::Write)
    }
}

fn parse(text: &str) -> Result<Acls, String> {
    let file: StoreFile = toml::from_str(text).map_err(|e| e.to_string())?;
    file.acl
        .into_iter()
        .map(|a| {
            AclBinding::from_wire(
                a.resource_type,
                &a.resource_name,
                a.pattern_type,
                &a.principal,
                &a.host,
                a.operation,
                a.permission,
            )
            .map_err(|e| e.to_string())
        })
        .collect()
}

fn render(acls: &Acls) -> String {
    let acl = acls
        .iter()
        .map(|a| StoredAcl {
            resource_type: a.resource_type.code(),
            resource_name: a.resource_name.clone(),
            pattern_type: a.pattern_type.code(),
            principal: a.principal.clone(),
            host: a.host.clone(),
            operation: a.operation.code(),
            permission: a.permission.code(),
        })
        .collect();
    toml::to_string(&StoreFile { acl }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{Operation, PatternType, Permission};

    #[test]
    fn acls_persist_and_reload_and_apply() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthorizerConfig::parse(acl::AUTHORIZER_CLASSES[0], "", false).unwrap();
        let store = Authorizer::load(dir.path(), config.clone()).unwrap();
        let binding = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "app-".into(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        };
        let action = Action {
            principal: "User:alice",
            host: "127.0.0.1",
            operation: Operation::Write,
            resource_type: ResourceType::Topic,
            resource_name: "app-x",
        };
        assert!(!store.authorize(&action));
        let added = binding.clone();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            store
                .modify(move |acls| ((), acls.insert(added)))
                .await
                .unwrap();
        });
        assert!(store.authorize(&action));
        let reloaded = Authorizer::load(dir.path(), config).unwrap();
        assert_eq!(reloaded.snapshot(), [binding].into_iter().collect());
        assert!(reloaded.authorize(&action));
    }

    #[test]
    fn a_corrupt_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("__cluster");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(
            path.join(STORE_FILE),
            "[[acl]]\nresource_type = 1\nresource_name = \"t\"\npattern_type = 3\nprincipal = \"User:a\"\nhost = \"*\"\noperation = 3\npermission = 3\n",
        )
        .unwrap();
        assert!(Authorizer::load(dir.path(), AuthorizerConfig::default()).is_err());
    }
}
