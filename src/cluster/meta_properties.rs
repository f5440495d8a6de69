//! Kafka's `meta.properties`: the identity of a data directory (`cluster.id`, `node.id`,
//! `version`), written at its first start and checked at every later one, so that a
//! directory of one cluster (or node) is never silently served as another's (Kafka's
//! `MetaPropertiesEnsemble` check: INCONSISTENT_CLUSTER_ID, or a mismatching node id).
//!
//! Invariants: the file is replaced atomically (temporary file, fsync, rename); a directory
//! without one (a data dir of an older Sluice) is adopted by writing it; a file that names
//! another cluster or node refuses the start, before anything else in the directory is read.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "meta.properties";

#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error(
        "INCONSISTENT_CLUSTER_ID: {path} belongs to cluster `{found}`, but cluster.id is \
         `{configured}` (a data directory of another cluster; use a fresh directory or the \
         cluster's id)"
    )]
    InconsistentClusterId {
        path: PathBuf,
        found: String,
        configured: String,
    },
    #[error("{path} belongs to node.id {found}, but node.id is {configured}")]
    InconsistentNodeId {
        path: PathBuf,
        found: String,
        configured: i32,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks `dir`'s `meta.properties` against `cluster_id` and `node_id` (`None`: the single node
/// of old, whose node id is not an identity), writing it when there is none.
pub fn ensure(
    dir: &Path,
    cluster_id: &str,
    node_id: Option<i32>,
) -> Result<(), MetaPropertiesError> {
    let path = dir.join(FILE_NAME);
    let io = |source| MetaPropertiesError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = parse(&text);
            if let Some(found) = found.get("cluster.id").filter(|f| *f != cluster_id) {
                return Err(MetaPropertiesError::InconsistentClusterId {
                    path,
                    found: found.clone(),
                    configured: cluster_id.to_owned(),
                });
            }
            if let (Some(node), Some(found)) = (node_id, found.get("node.id")) {
                if found.trim() != node.to_string() {
                    return Err(MetaPropertiesError::InconsistentNodeId {
                        path,
                        found: found.clone(),
                        configured: node,
                    });
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write(dir, &path, cluster_id, node_id).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

/// `key=value` lines; `#` comments and blank lines skipped.
fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn write(dir: &Path, path: &Path, cluster_id: &str, node_id: Option<i32>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = format!("#\n#Written by Sluice\nversion=1\ncluster.id={cluster_id}\n");
    if let Some(node) = node_id {
        text.push_str(&format!("node.id={node}\n"));
    }
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_once_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), "c1", Some(3)).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.contains("cluster.id=c1") && text.contains("node.id=3"),
            "{text}"
        );
        ensure(dir.path(), "c1", Some(3)).unwrap();
        ensure(dir.path(), "c1", None).unwrap();
        assert!(matches!(
            ensure(dir.path(), "c2", Some(3)),
            Err(MetaPropertiesError::InconsistentClusterId { .. })
        ));
        assert!(matches!(
            ensure(dir.path(), "c1", Some(4)),
            Err(MetaPropertiesError::InconsistentNodeId { .. })
        ));
    }

    #[test]
    fn kafka_written_files_parse() {
        let found = parse("#\n#Mon Nov 30\nnode.id=1\ndirectory.id=abc\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n");
        assert_eq!(found.get("cluster.id").unwrap(), "MkU3OEVBNTcwNTJENDM2Qk");
        assert_eq!(found.get("node.id").unwrap(), "1");
    }
}
