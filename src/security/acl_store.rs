//! The authorizer (its settings, checking against the ACLs of a metadata image) and the reader
//! of the pre-image ACL file `__cluster/acls.toml`, which is migrated into
//! `AccessControlEntryRecord`s once (`cluster::security_store`).
//!
//! Invariants: checks never wait on disk or on another shard (the ACLs are the shard's own
//! image). Every check is linear in the number of bindings (Kafka's StandardAuthorizer indexes
//! them; a broker with thousands of ACLs would want that too).

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

/// The authorizer's settings; the ACLs it checks come from the caller's metadata image
/// (`cluster::security_image`), so every shard decides from its own copy.
#[derive(Debug, Clone)]
pub struct Authorizer {
    config: AuthorizerConfig,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig) -> Self {
        Self { config }
    }

    /// Whether an authorizer is configured (`authorizer.class.name`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn authorize(&self, acls: &Acls, action: &Action) -> bool {
        if !self.config.enabled {
            return true;
        }
        acl::authorize(&self.config, acls, action)
    }

    /// Whether the principal may do `operation` on some resource of the type (KIP-679).
    pub fn authorize_by_resource_type(
        &self,
        acls: &Acls,
        principal: &str,
        host: &str,
        operation: acl::Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.config.enabled {
            return true;
        }
        acl::authorize_by_resource_type(
            &self.config,
            acls,
            principal,
            host,
            operation,
            resource_type,
        )
    }

    /// Kafka's authorized-operations bitfield for one resource.
    pub fn authorized_operations(
        &self,
        acls: &Acls,
        principal: &str,
        host: &str,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> i32 {
        acl::authorized_operations(
            &self.config,
            acls,
            principal,
            host,
            resource_type,
            resource_name,
        )
    }
}

/// Reads the pre-image `<data_dir>/__cluster/acls.toml` (absent = no ACLs): what
/// `cluster::security_store::migrate_legacy` turns into records once.
pub fn load_legacy(data_dir: &Path) -> Result<Acls, AclStoreError> {
    let path = data_dir.join("__cluster").join(STORE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|reason| AclStoreError::Parse { path, reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Acls::new()),
        Err(source) => Err(AclStoreError::Read { path, source }),
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

#[cfg(test)]
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
    fn the_old_file_reads_and_its_acls_apply() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthorizerConfig::parse(acl::AUTHORIZER_CLASSES[0], "", false).unwrap();
        let authorizer = Authorizer::new(config);
        assert!(load_legacy(dir.path()).unwrap().is_empty(), "absent = none");
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
        assert!(!authorizer.authorize(&Acls::new(), &action));
        let acls: Acls = [binding].into_iter().collect();
        let path = dir.path().join("__cluster").join(STORE_FILE);
        crate::atomic_file::write(&path, render(&acls).as_bytes()).unwrap();
        let reloaded = load_legacy(dir.path()).unwrap();
        assert_eq!(reloaded, acls);
        assert!(authorizer.authorize(&reloaded, &action));
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
        assert!(load_legacy(dir.path()).is_err());
    }
}
