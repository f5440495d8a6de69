//! Deleting topics on every shard: the data first, then everything keyed by the topic.
//!
//! Invariants: deletion renames a partition directory to `<topic>-<partition>.<topic-id>-delete`
//! before the registry forgets the topic, so a crash in between never lets a later topic of the
//! same name adopt the old data (at worst the topic comes back empty). The marker name is
//! truncated to 255 bytes as in Kafka; when a partition cannot be moved away the topic stays
//! (reopened) and DeleteTopics answers KAFKA_STORAGE_ERROR, never success over data in place.
//! Nothing keyed by a deleted topic outlives it on a shard (see `remove_topics`): its partitions
//! (log, leader-epoch cache and producer state live in the partition), its registration and
//! config overrides in the image, and the committed offsets of the groups this shard
//! coordinates (Kafka's `GroupCoordinator.onPartitionsDeleted`). Fetch sessions are keyed by
//! topic id where the client uses ids, and answer UNKNOWN_TOPIC_ID for a topic id the image no
//! longer has (`handlers::fetch`); the log cleaner keys its per-partition memory by topic id.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use std::cell::RefCell;

use futures_util::future::join_all;

use super::image::MetadataImage;
use super::records::{MetadataRecord, RemoveTopicRecord};
use super::replica_fetchers::ReplicaFetchers;
use super::topics::{TopicId, TopicMeta};
use crate::partition::{Partition, PartitionService, TopicPartition};
use crate::router::placement::PlacementTable;

/// Topics (name, why) some partition of which could not be moved away, on any shard.
pub type RemovalFailures = Vec<(String, String)>;

/// What removing deleted topics uses of a shard (built by the shard,
/// `shard::contexts_cluster`).
pub struct DeletionContext<'a> {
    pub image: &'a RefCell<MetadataImage>,
    pub placement: &'a PlacementTable,
    pub partitions: &'a PartitionService,
    pub replica_fetchers: &'a ReplicaFetchers,
    /// Where the partitions' directories are (`data_dir`).
    pub data_dir: &'a Path,
}

/// Forgets the topics (a `RemoveTopicRecord` each, applied to this shard's image) and deletes
/// the partitions of them this shard owns; answers the topics (name, why) a partition of which
/// could not be moved away (its data is still in place; the controller re-creates such a
/// topic, empty). The shard then drops the committed offsets of them in the groups it
/// coordinates (its `on_topics_deleted` hooks, `shard::contexts_cluster`).
pub async fn remove_topics(shard: &DeletionContext<'_>, doomed: Vec<TopicMeta>) -> RemovalFailures {
    // No replica fetcher appends to a partition being deleted.
    let names: std::collections::HashSet<String> =
        doomed.iter().map(|meta| meta.name.clone()).collect();
    super::replicas::stop_following_topics(shard.replica_fetchers, &names).await;
    let mut victims = Vec::new();
    for meta in &doomed {
        let record = MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: meta.id });
        if let Err(e) = shard.image.borrow_mut().apply(&record) {
            shards::fatal(format!(
                "metadata image diverged removing {}: {e}",
                meta.name
            ));
        }
        shard.placement.forget_topic(&meta.name);
        for index in 0..meta.partitions {
            let tp = TopicPartition::new(meta.name.clone(), index);
            if let Some(partition) = shard.partitions.remove(&tp) {
                victims.push((partition, meta.id));
            }
        }
    }
    let deletions = victims
        .into_iter()
        .map(|(partition, id)| delete_partition(shard.data_dir, partition, id));
    let mut failed: RemovalFailures = Vec::new();
    let outcomes = join_all(deletions).await;
    for (topic, outcome) in outcomes {
        if let Err(why) = outcome {
            if !failed.iter().any(|(name, _)| *name == topic) {
                failed.push((topic, why));
            }
        }
    }
    failed
}

/// Closes the partition and moves its directory out of the way; `Err` (with the reason) when
/// the data is still under the partition's own directory name.
pub(super) async fn delete_partition(
    data_dir: &std::path::Path,
    partition: Rc<Partition>,
    id: TopicId,
) -> (String, Result<(), String>) {
    // Long polls on it answer now (the partition is gone from the map).
    partition.notify_appended();
    let name = partition.tp.dir_name();
    if let Err(e) = partition.storage().close().await {
        tracing::warn!(partition = %name, error = %e, "closing deleted partition failed");
    }
    let dir = data_dir.join(&name);
    let doomed = data_dir.join(delete_dir_name(
        &partition.tp,
        &id.uuid().simple().to_string(),
    ));
    let removed = compio::runtime::spawn_blocking(move || remove_dir(dir, doomed)).await;
    let outcome = match removed {
        Ok(Ok(())) => {
            tracing::info!(partition = %name, "partition deleted");
            Ok(())
        }
        Ok(Err(RemoveError::Rename(e))) => {
            tracing::error!(partition = %name, error = %e, "cannot move deleted partition away; topic kept");
            Err(format!("cannot delete partition {name}: {e}"))
        }
        Ok(Err(RemoveError::Remove(e))) => {
            // Out of the topic's way already; the start-up sweep removes the rest.
            tracing::warn!(partition = %name, error = %e, "cannot remove deleted partition's files");
            Ok(())
        }
        Err(_) => {
            tracing::error!(partition = %name, "partition remover thread failed");
            Err(format!("cannot delete partition {name}: remover failed"))
        }
    };
    (partition.tp.topic.clone(), outcome)
}

/// Longest file name Linux file systems take, in bytes.
const FILE_NAME_BYTES_MAX: usize = 255;

/// `<topic>-<partition>.<unique>-delete`, with the topic part truncated so the whole name fits
/// in 255 bytes, as Kafka's `LocalLog.logDeleteDirName` does (topic names are ASCII, at most 249
/// characters, so the untruncated name would not fit from ~213 characters on).
pub fn delete_dir_name(tp: &TopicPartition, unique: &str) -> String {
    let suffix = format!("-{}.{unique}-delete", tp.partition);
    let mut keep = tp
        .topic
        .len()
        .min(FILE_NAME_BYTES_MAX.saturating_sub(suffix.len()));
    while !tp.topic.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &tp.topic[..keep])
}

/// Removes the `<topic>-<partition>.<id>-delete` directories a crash left half-deleted (the
/// topic had already left the registry, so nothing opens them). Runs once on shard 0 at start-up,
/// before any partition is opened; a failure only wastes disk, so it is logged, not fatal.
pub fn sweep_deleted(data_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let doomed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("-delete"));
        if doomed && path.is_dir() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(dir = %path.display(), "removed leftover deleted partition")
                }
                Err(e) => {
                    tracing::warn!(dir = %path.display(), error = %e, "cannot remove leftover")
                }
            }
        }
    }
}

#[derive(Debug)]
enum RemoveError {
    /// The data is still under the partition's name.
    Rename(std::io::Error),
    /// Moved away, but not (all) removed.
    Remove(std::io::Error),
}

/// Renames then removes; a missing directory (never written) is fine.
fn remove_dir(dir: PathBuf, doomed: PathBuf) -> Result<(), RemoveError> {
    match std::fs::rename(&dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RemoveError::Rename(e)),
    }
    if let Some(parent) = dir.parent() {
        // Without it a crash could bring the old name (and data) back.
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(RemoveError::Rename)?;
    }
    std::fs::remove_dir_all(&doomed).map_err(RemoveError::Remove)
}

#[cfg(test)]
mod tests {
    use super::*;
    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn delete_dir_name_is_kafkas_for_short_names() {
        let tp = TopicPartition::new("orders".to_owned(), 3);
        assert_eq!(delete_dir_name(&tp, ID), format!("orders-3.{ID}-delete"));
    }

    #[test]
    fn delete_dir_name_fits_255_bytes_for_the_longest_names() {
        let topic = "t".repeat(249);
        for partition in [0, 7, 99_999, u32::MAX] {
            let tp = TopicPartition::new(topic.clone(), partition);
            let name = delete_dir_name(&tp, ID);
            assert_eq!(name.len(), FILE_NAME_BYTES_MAX, "{name}");
            assert!(name.ends_with(&format!("-{partition}.{ID}-delete")));
            assert!(name.starts_with("ttt"));
        }
    }
}
