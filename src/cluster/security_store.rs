//! Persistence of the image's security part (ACLs, SCRAM credentials, client quotas) on the single-node
//! controller: `data_dir/__cluster/security.json`, the part's snapshot records
//! (`AccessControlEntryRecord`, `UserScramCredentialRecord`) as JSON, written atomically by the
//! controller after applying a change to a copy of the image and before any shard adopts it
//! (`controller::commit`), like the topics' registry file.
//!
//! Adoption of older data directories: before the image held them, ACLs lived in
//! `__cluster/acls.toml` and credentials in `__cluster/scram_credentials.toml`. At start, before
//! any shard loads its image, [`migrate_legacy`] turns those files into records once (each ACL
//! gets an id), writes `security.json`, and only then renames the old files to
//! `<name>.migrated` (kept, never deleted). A crash in between leaves either the old files alone
//! (migrated again) or both (the old ones are then ignored and renamed), never neither.
//! Client quotas (`__cluster/client_quotas.toml`) became image records later, so they migrate
//! on their own, into an existing `security.json`: unless it already holds quota records (a
//! crash after the write), the old file's quotas are added as `ClientQuotaRecord`s, then the
//! file is renamed the same way.
//!
//! When the metadata log is replicated (openraft), this file becomes part of its snapshot and
//! the records its entries; `MetadataImage::apply` stays the same.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::image::MetadataImage;
use super::records::MetadataRecord;
use super::security_image::{is_security_record, SecurityImage};
use crate::quotas;
use crate::security::{acl_store, scram};

/// The part's file under `__cluster/`.
pub const SECURITY_FILE: &str = "security.json";

#[derive(Debug, thiserror::Error)]
pub enum SecurityStoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate the old ACL/SCRAM/quota files: {0}")]
    Legacy(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SecurityFile {
    records: Vec<MetadataRecord>,
}

pub fn security_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster").join(SECURITY_FILE)
}

/// The records `security.json` holds (none when absent). Blocking: called at start.
pub fn load_records(data_dir: &Path) -> Result<Vec<MetadataRecord>, SecurityStoreError> {
    let path = security_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SecurityStoreError::Read { path, source }),
    };
    let file: SecurityFile =
        serde_json::from_str(&text).map_err(|e| SecurityStoreError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if let Some(other) = file.records.iter().find(|r| !is_security_record(r)) {
        return Err(SecurityStoreError::Parse {
            path,
            reason: format!("record type {} is not ACL/SCRAM", other.kafka_type_id()),
        });
    }
    Ok(file.records)
}

fn render(records: Vec<MetadataRecord>) -> Vec<u8> {
    serde_json::to_vec_pretty(&SecurityFile { records }).unwrap_or_default()
}

/// Persists the security part of `image` (off the shard thread).
pub async fn persist(data_dir: &Path, image: &MetadataImage) -> Result<(), String> {
    let path = security_path(data_dir);
    let bytes = render(image.security().snapshot_records());
    crate::atomic_file::write_off_thread(path.clone(), bytes)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Adopts the pre-image ACL and SCRAM files of `data_dir` (see the module documentation).
/// Blocking; call once at start before the shards load their images. Returns how many ACLs
/// and credentials were migrated.
pub fn migrate_legacy(data_dir: &Path) -> Result<(usize, usize), SecurityStoreError> {
    migrate_legacy_quotas(data_dir)?;
    let cluster = data_dir.join("__cluster");
    let acl_file = cluster.join(acl_store::STORE_FILE);
    let scram_file = cluster.join(scram::STORE_FILE);
    if !acl_file.exists() && !scram_file.exists() {
        return Ok((0, 0));
    }
    let path = security_path(data_dir);
    let mut counts = (0, 0);
    if !path.exists() {
        let acls = acl_store::load_legacy(data_dir)
            .map_err(|e| SecurityStoreError::Legacy(e.to_string()))?;
        let users =
            scram::load_legacy(data_dir).map_err(|e| SecurityStoreError::Legacy(e.to_string()))?;
        let empty = SecurityImage::default();
        let mut records = empty.diff_acls(&acls);
        records.extend(empty.diff_scram(&users));
        // Through `apply`, so the file holds only what an image accepts.
        let mut image = MetadataImage::default();
        image
            .apply_all(&records)
            .map_err(|e| SecurityStoreError::Legacy(e.to_string()))?;
        crate::atomic_file::write(&path, &render(image.security().snapshot_records())).map_err(
            |source| SecurityStoreError::Write {
                path: path.clone(),
                source,
            },
        )?;
        counts = (acls.len(), users.values().map(|m| m.len()).sum());
        tracing::info!(
            acls = counts.0,
            credentials = counts.1,
            "migrated ACLs and SCRAM credentials into the metadata image"
        );
    }
    for old in [acl_file, scram_file].into_iter().filter(|f| f.exists()) {
        set_aside(&old)?;
    }
    Ok(counts)
}

fn set_aside(old: &Path) -> Result<(), SecurityStoreError> {
    let mut kept = old.to_path_buf().into_os_string();
    kept.push(".migrated");
    std::fs::rename(old, &kept).map_err(|source| SecurityStoreError::Write {
        path: old.to_path_buf(),
        source,
    })
}

/// Adopts `__cluster/client_quotas.toml` into `security.json` (see the module documentation);
/// returns how many quota keys were migrated.
fn migrate_legacy_quotas(data_dir: &Path) -> Result<usize, SecurityStoreError> {
    let Some(map) =
        quotas::load_legacy(data_dir).map_err(|e| SecurityStoreError::Legacy(e.to_string()))?
    else {
        return Ok(0);
    };
    let mut records = load_records(data_dir)?;
    let mut migrated = 0;
    if !records
        .iter()
        .any(|r| matches!(r, MetadataRecord::ClientQuota(_)))
    {
        let added = SecurityImage::default().diff_quotas(&map);
        migrated = added.len();
        records.extend(added);
        // Through `apply`, so the file holds only what an image accepts.
        let mut image = MetadataImage::default();
        image
            .apply_all(&records)
            .map_err(|e| SecurityStoreError::Legacy(e.to_string()))?;
        let path = security_path(data_dir);
        crate::atomic_file::write(&path, &render(image.security().snapshot_records()))
            .map_err(|source| SecurityStoreError::Write { path, source })?;
        tracing::info!(
            quotas = migrated,
            "migrated client quotas into the metadata image"
        );
    }
    set_aside(&data_dir.join("__cluster").join(quotas::STORE_FILE))?;
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{Credential, Mechanism};

    #[test]
    fn old_files_are_migrated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("__cluster");
        std::fs::create_dir_all(&cluster).unwrap();
        std::fs::write(
            cluster.join(acl_store::STORE_FILE),
            "[[acl]]\nresource_type = 2\nresource_name = \"t\"\npattern_type = 3\n\
             principal = \"User:a\"\nhost = \"*\"\noperation = 3\npermission = 3\n",
        )
        .unwrap();
        let c = Credential::from_password(Mechanism::Sha512, "pw", b"salt", 4096);
        std::fs::write(
            cluster.join(scram::STORE_FILE),
            scram::render_legacy_for_tests("alice", Mechanism::Sha512, &c),
        )
        .unwrap();
        assert_eq!(migrate_legacy(dir.path()).unwrap(), (1, 1));
        assert!(!cluster.join(acl_store::STORE_FILE).exists());
        assert!(cluster.join("acls.toml.migrated").exists());
        assert!(cluster.join("scram_credentials.toml.migrated").exists());
        let mut image = MetadataImage::default();
        image.apply_all(&load_records(dir.path()).unwrap()).unwrap();
        assert_eq!(image.security().acls().len(), 1);
        assert_eq!(
            image
                .security()
                .scram_credential("alice", Mechanism::Sha512),
            Some(c)
        );
        // Once: a second start finds nothing to migrate and keeps the records.
        assert_eq!(migrate_legacy(dir.path()).unwrap(), (0, 0));
        assert_eq!(load_records(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn old_quotas_are_migrated_into_an_existing_file_once() {
        use crate::quotas::entity::{EntityName, QuotaEntity, QuotaMap};
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("__cluster");
        std::fs::create_dir_all(&cluster).unwrap();
        // ACLs migrated by an earlier version: security.json exists already.
        let mut image = MetadataImage::default();
        let acls = SecurityImage::default().diff_acls(
            &[crate::security::acl::AclBinding {
                resource_type: crate::security::acl::ResourceType::Topic,
                resource_name: "t".into(),
                pattern_type: crate::security::acl::PatternType::Literal,
                principal: "User:a".into(),
                host: "*".into(),
                operation: crate::security::acl::Operation::Read,
                permission: crate::security::acl::Permission::Allow,
            }]
            .into_iter()
            .collect(),
        );
        image.apply_all(&acls).unwrap();
        std::fs::write(
            security_path(dir.path()),
            render(image.security().snapshot_records()),
        )
        .unwrap();
        let mut map = QuotaMap::new();
        map.entry(QuotaEntity::client(
            Some(EntityName::Named("alice".into())),
            Some(EntityName::Default),
        ))
        .or_default()
        .insert("producer_byte_rate".into(), 2048.0);
        map.entry(QuotaEntity {
            user: None,
            client_id: None,
            ip: Some(EntityName::Default),
        })
        .or_default()
        .insert("connection_creation_rate".into(), 30.0);
        std::fs::write(
            cluster.join(quotas::STORE_FILE),
            quotas::render_legacy_for_tests(&map),
        )
        .unwrap();
        assert_eq!(migrate_legacy(dir.path()).unwrap(), (0, 0));
        assert!(cluster.join("client_quotas.toml.migrated").exists());
        assert!(!cluster.join(quotas::STORE_FILE).exists());
        let mut loaded = MetadataImage::default();
        loaded
            .apply_all(&load_records(dir.path()).unwrap())
            .unwrap();
        assert_eq!(loaded.security().client_quotas(), &map);
        assert_eq!(loaded.security().acls().len(), 1, "the ACL is kept");
        // A crash after the write, before the rename: the old file is only set aside.
        std::fs::write(
            cluster.join(quotas::STORE_FILE),
            quotas::render_legacy_for_tests(&QuotaMap::new()),
        )
        .unwrap();
        migrate_legacy(dir.path()).unwrap();
        let mut again = MetadataImage::default();
        again.apply_all(&load_records(dir.path()).unwrap()).unwrap();
        assert_eq!(again.security().client_quotas(), &map);
    }

    #[test]
    fn a_file_with_other_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = security_path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"records":[{"RemoveTopic":{"topic_id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8"}}]}"#,
        )
        .unwrap();
        assert!(load_records(dir.path()).is_err());
        std::fs::write(&path, "not json").unwrap();
        assert!(load_records(dir.path()).is_err());
    }
}
