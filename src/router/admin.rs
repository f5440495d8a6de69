//! Admin operations behind the handlers: registry changes on shard 0 (delete topics, add
//! partitions, change config overrides) and DeleteRecords on a partition's owner.
//!
//! Invariants: every registry change is serialised on shard 0 by the registry lock, from
//! snapshot to persist; a change is answered only after every shard adopted it (new partitions
//! open, new configs applied to live logs with `Log::set_config`, deleted partitions closed and
//! their directories gone). Deletion renames a partition directory to
//! `<topic>-<partition>.<topic-id>-delete` before the registry forgets the topic, so a crash in
//! between never lets a later topic of the same name adopt the old data. The marker name is
//! truncated to 255 bytes as in Kafka; when a partition cannot be moved away the topic stays
//! (reopened) and DeleteTopics answers KAFKA_STORAGE_ERROR, never success over data in place.

use std::path::PathBuf;
use std::rc::Rc;

use futures_util::future::join_all;

use super::{local, Router, REGISTRY_SHARD};
use crate::partition::api::PartitionMsg;
use crate::partition::{Partition, TopicPartition};
use crate::shard::Shard;
use crate::shard::ShardMsg;
use crate::topics::alter::{self, AlterError, IncrementalEntry};
use crate::topics::dynamic::{BrokerChange, DynamicConfigs, Scope};
use crate::topics::{self, TopicId, TopicMeta};

/// Why one item of an admin change failed (crosses shards, so plain data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("This server does not host this topic ID")]
    UnknownTopicId,
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic registry: {0}")]
    Storage(String),
    /// The authorizer refused the operation on the topic (handlers::authz).
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
    #[error("Cluster authorization failed.")]
    ClusterAuthorizationFailed,
}

impl From<AlterError> for AdminError {
    fn from(error: AlterError) -> Self {
        match error {
            AlterError::InvalidRequest(m) => Self::InvalidRequest(m),
            AlterError::InvalidConfig(m) => Self::InvalidConfig(m),
        }
    }
}

/// A topic named in DeleteTopics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicRef {
    Name(String),
    Id(TopicId),
}

/// CreatePartitions for one topic: the new total, and the optional manual assignment of the
/// added partitions (one broker list per new partition).
#[derive(Debug, Clone)]
pub struct PartitionGrowth {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// How a topic's overrides change.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// AlterConfigs: the pairs become the whole override set.
    Replace(Vec<(String, Option<String>)>),
    IncrementalAlter(Vec<IncrementalEntry>),
}

/// A registry change, executed on shard 0.
#[derive(Debug, Clone)]
pub enum RegistryChange {
    DeleteTopics(Vec<TopicRef>),
    CreatePartitions {
        topics: Vec<PartitionGrowth>,
        validate_only: bool,
    },
    AlterConfigs {
        topics: Vec<(String, ConfigChange)>,
        validate_only: bool,
    },
}

impl RegistryChange {
    fn len(&self) -> usize {
        match self {
            Self::DeleteTopics(refs) => refs.len(),
            Self::CreatePartitions { topics, .. } => topics.len(),
            Self::AlterConfigs { topics, .. } => topics.len(),
        }
    }
}

/// Per item, the topic as it is after the change (as it was, for a deletion).
pub type ChangeResult = Result<TopicMeta, AdminError>;

pub use crate::partition::api::{DeleteRecordsItem, DeleteRecordsResult};

impl Router {
    /// Runs a registry change on shard 0; one answer per item, in request order.
    pub async fn change_registry(&self, change: RegistryChange) -> Vec<ChangeResult> {
        let len = change.len();
        self.on_registry(
            change,
            len,
            |change| apply_change(&self.shard, change),
            |change, reply| {
                ShardMsg::run(move |shard| async move {
                    reply.send(apply_change(&shard, change).await);
                })
            },
            || Err(AdminError::Storage("registry shard unavailable".into())),
        )
        .await
    }

    pub async fn delete_records(&self, items: Vec<DeleteRecordsItem>) -> Vec<DeleteRecordsResult> {
        self.scatter(
            items,
            |item| self.owner(&item.tp),
            |items| self.shard.partitions.delete_records(items),
            |items, reply| PartitionMsg::DeleteRecords { items, reply }.into(),
        )
        .await
    }
}

/// Shard 0 only: validates and applies a registry change.
pub async fn apply_change(shard: &Shard, change: RegistryChange) -> Vec<ChangeResult> {
    assert_eq!(
        shard.id, REGISTRY_SHARD,
        "registry changes must run on the registry shard"
    );
    let _guard = shard.registry_lock.lock().await;
    match change {
        RegistryChange::DeleteTopics(refs) => delete_topics(shard, refs).await,
        RegistryChange::CreatePartitions {
            topics,
            validate_only,
        } => {
            let results = topics.iter().map(|g| grow(shard, g)).collect();
            commit(shard, results, validate_only).await
        }
        RegistryChange::AlterConfigs {
            topics,
            validate_only,
        } => {
            let results = topics
                .iter()
                .map(|(name, c)| alter_configs(shard, name, c))
                .collect();
            commit(shard, results, validate_only).await
        }
    }
}

/// Persists the successful items' new metadata and broadcasts it (unless `validate_only`).
async fn commit(
    shard: &Shard,
    results: Vec<ChangeResult>,
    validate_only: bool,
) -> Vec<ChangeResult> {
    let changed: Vec<TopicMeta> = results.iter().filter_map(|r| r.clone().ok()).collect();
    if validate_only || changed.is_empty() {
        return results;
    }
    let mut table = shard.topics.borrow().clone();
    for meta in &changed {
        table.upsert(meta.clone());
    }
    if let Err(e) = topics::persist(&shard.config.data_dir, &table).await {
        tracing::error!(error = %e, "cannot persist topic registry");
        return fail_all(results, &e.to_string());
    }
    local::broadcast_topics(shard, changed).await;
    results
}

fn fail_all(results: Vec<ChangeResult>, message: &str) -> Vec<ChangeResult> {
    results
        .into_iter()
        .map(|r| r.and_then(|_| Err(AdminError::Storage(message.to_owned()))))
        .collect()
}

fn existing(shard: &Shard, name: &str) -> Result<TopicMeta, AdminError> {
    if topics::validate_name(name).is_err() {
        return Err(AdminError::InvalidTopic(format!(
            "Topic name {name:?} is illegal"
        )));
    }
    shard
        .topics
        .borrow()
        .get(name)
        .cloned()
        .ok_or_else(|| AdminError::UnknownTopic(name.to_owned()))
}

fn grow(shard: &Shard, growth: &PartitionGrowth) -> ChangeResult {
    let mut meta = existing(shard, &growth.name)?;
    if meta.name == crate::internal_topics::OFFSETS_TOPIC {
        // A group's coordinator is hash(group) % partitions: growing it would move groups away
        // from their committed offsets.
        return Err(AdminError::InvalidTopic(format!(
            "Cannot add partitions to internal topic {}",
            meta.name
        )));
    }
    let current = i64::from(meta.partitions);
    let wanted = i64::from(growth.count);
    if wanted < current {
        return Err(AdminError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {wanted}."
        )));
    }
    if wanted == current {
        return Err(AdminError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    if growth.count > shard.config.max_partitions_per_topic {
        return Err(AdminError::InvalidPartitions(format!(
            "{wanted} partitions exceed max.partitions.per.topic {}",
            shard.config.max_partitions_per_topic
        )));
    }
    if let Some(assignments) = &growth.assignments {
        let added = usize::try_from(wanted - current).unwrap_or(usize::MAX);
        if assignments.len() != added {
            return Err(AdminError::InvalidReplicaAssignment(format!(
                "Increasing the number of partitions by {added} but {} assignments provided.",
                assignments.len()
            )));
        }
        let node = shard.config.node_id;
        if !assignments
            .iter()
            .all(|a| !a.is_empty() && a.iter().all(|b| *b == node))
        {
            return Err(AdminError::InvalidReplicaAssignment(
                "replicas must be on this node only".into(),
            ));
        }
    }
    meta.partitions = growth.count.unsigned_abs();
    Ok(meta)
}

fn alter_configs(shard: &Shard, name: &str, change: &ConfigChange) -> ChangeResult {
    if name.is_empty() {
        return Err(AdminError::InvalidRequest(
            "Default topic resources are not allowed.".into(),
        ));
    }
    let mut meta = existing(shard, name)?;
    let overrides = match change {
        ConfigChange::Replace(pairs) => alter::replace_all(pairs)?,
        ConfigChange::IncrementalAlter(entries) => {
            // APPEND/SUBTRACT start from the value in force: the dynamic broker value when
            // there is one and no override.
            let mut layered = shard.dynamic_configs.borrow().topic_layer();
            layered.extend(meta.configs.iter().map(|(k, v)| (k.clone(), v.clone())));
            let effective = |key: &str| {
                topics::config::describe(&shard.default_log, &layered)
                    .into_iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, v, _)| v)
            };
            alter::apply_incremental(&meta.configs, entries, effective)?
        }
    };
    let dynamic = shard.dynamic_configs.borrow().clone();
    topics::config::resolve_with(&shard.default_log, &dynamic, &overrides)
        .map_err(|e| AdminError::InvalidConfig(e.to_string()))?;
    meta.configs = overrides;
    Ok(meta)
}

impl Router {
    /// Changes the dynamic broker configs of one BROKER resource through shard 0.
    pub async fn change_broker_configs(
        &self,
        scope: Scope,
        change: BrokerChange,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if self.shard.id == REGISTRY_SHARD {
            return alter_broker_configs(&self.shard, scope, change, validate_only).await;
        }
        self.shard
            .mesh
            .call(REGISTRY_SHARD, |reply| {
                ShardMsg::run(move |shard| async move {
                    let answer = alter_broker_configs(&shard, scope, change, validate_only).await;
                    reply.send(answer);
                })
            })
            .await
            .unwrap_or_else(|_| Err(AdminError::Storage("registry shard unavailable".into())))
    }
}

/// Shard 0 only: validates a dynamic broker config change, persists it and has every shard
/// adopt it (and re-apply topic configs to its live logs) before answering.
pub async fn alter_broker_configs(
    shard: &Shard,
    scope: Scope,
    change: BrokerChange,
    validate_only: bool,
) -> Result<(), AdminError> {
    assert_eq!(
        shard.id, REGISTRY_SHARD,
        "broker config changes must run on the registry shard"
    );
    let _guard = shard.registry_lock.lock().await;
    let next = shard.dynamic_configs.borrow().changed(scope, &change)?;
    if validate_only || next == *shard.dynamic_configs.borrow() {
        return Ok(());
    }
    topics::dynamic::persist(&shard.config.data_dir, &next)
        .await
        .map_err(|e| AdminError::Storage(e.to_string()))?;
    let others = shard.mesh.shards().filter(|&id| id != shard.id).map(|id| {
        let configs = next.clone();
        async move {
            if let Err(e) = shard
                .mesh
                .call(id, |reply| {
                    ShardMsg::run(move |shard| async move {
                        adopt_broker_configs(&shard, configs).await;
                        reply.send(());
                    })
                })
                .await
            {
                tracing::warn!(shard = %id, error = %e, "broker config broadcast not delivered");
            }
        }
    });
    let others: Vec<_> = others.collect();
    adopt_broker_configs(shard, next).await;
    join_all(others).await;
    Ok(())
}

/// Records the dynamic broker configs on this shard and re-applies every topic's config to
/// the logs this shard owns.
pub async fn adopt_broker_configs(shard: &Shard, configs: DynamicConfigs) {
    *shard.dynamic_configs.borrow_mut() = configs;
    let metas: Vec<TopicMeta> = shard.topics.borrow().iter().cloned().collect();
    local::open_owned(shard, &metas).await;
}

async fn delete_topics(shard: &Shard, refs: Vec<TopicRef>) -> Vec<ChangeResult> {
    let mut doomed: Vec<TopicMeta> = Vec::new();
    let mut doomed_names = std::collections::HashSet::new();
    let mut results: Vec<ChangeResult> = Vec::with_capacity(refs.len());
    // Kafka: every mention of a topic named (or id given) more than once is INVALID_REQUEST,
    // and that topic is not deleted.
    let mut mentions: std::collections::HashMap<&TopicRef, usize> =
        std::collections::HashMap::new();
    for topic in &refs {
        *mentions.entry(topic).or_default() += 1;
    }
    let repeated: std::collections::HashSet<TopicRef> = mentions
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(r, _)| r.clone())
        .collect();
    for topic in refs {
        if repeated.contains(&topic) {
            results.push(Err(AdminError::InvalidRequest(match topic {
                TopicRef::Name(_) => "Duplicate topic name.".into(),
                TopicRef::Id(_) => "Duplicate topic id.".into(),
            })));
            continue;
        }
        let found = {
            let table = shard.topics.borrow();
            match &topic {
                TopicRef::Name(name) => table
                    .get(name)
                    .cloned()
                    .ok_or_else(|| AdminError::UnknownTopic(name.clone())),
                TopicRef::Id(id) => table.by_id(*id).cloned().ok_or(AdminError::UnknownTopicId),
            }
        };
        let found = found.and_then(|meta| {
            if meta.name == crate::internal_topics::OFFSETS_TOPIC {
                // Deleting it would drop every group's committed offsets.
                Err(AdminError::InvalidTopic(format!(
                    "Cannot delete internal topic {}",
                    meta.name
                )))
            } else if doomed_names.contains(&meta.name) {
                Err(AdminError::InvalidRequest(
                    "Duplicate topic in request.".into(),
                ))
            } else {
                Ok(meta)
            }
        });
        if let Ok(meta) = &found {
            doomed_names.insert(meta.name.clone());
            doomed.push(meta.clone());
        }
        results.push(found);
    }
    if doomed.is_empty() {
        return results;
    }
    // Data first, registry second: see the module invariant.
    let failed = broadcast_removal(shard, &doomed).await;
    let (kept, doomed): (Vec<TopicMeta>, Vec<TopicMeta>) = doomed
        .into_iter()
        .partition(|meta| failed.iter().any(|(name, _)| *name == meta.name));
    if !kept.is_empty() {
        // Some partition's data could not be moved away: the topic stays (its partitions are
        // reopened, the moved ones empty) and the client is told, so it never re-creates the
        // topic on top of old data believing it gone.
        local::broadcast_topics(shard, kept).await;
        results = results
            .into_iter()
            .map(|r| match r {
                Ok(meta) => match failed.iter().find(|(name, _)| *name == meta.name) {
                    Some((_, why)) => Err(AdminError::Storage(why.clone())),
                    None => Ok(meta),
                },
                Err(e) => Err(e),
            })
            .collect();
    }
    if doomed.is_empty() {
        return results;
    }
    let mut table = shard.topics.borrow().clone();
    for meta in &doomed {
        table.remove(&meta.name);
    }
    if let Err(e) = topics::persist(&shard.config.data_dir, &table).await {
        tracing::error!(error = %e, "cannot persist topic registry after deleting topics");
        // The registry still lists them: every shard re-adopts them (empty).
        local::broadcast_topics(shard, doomed).await;
        return fail_all(results, &e.to_string());
    }
    results
}

/// Topics (name, why) some partition of which could not be moved away, on any shard.
pub type RemovalFailures = Vec<(String, String)>;

/// Removes the topics' partitions on every shard; answers the topics whose data stayed.
async fn broadcast_removal(shard: &Shard, doomed: &[TopicMeta]) -> RemovalFailures {
    let others = shard.mesh.shards().filter(|&id| id != shard.id).map(|id| {
        let topics = doomed.to_vec();
        async move {
            match shard
                .mesh
                .call(id, |reply| {
                    ShardMsg::run(move |shard| async move {
                        reply.send(remove_topics(&shard, topics).await);
                    })
                })
                .await
            {
                Ok(failed) => failed,
                Err(e) => {
                    tracing::warn!(shard = %id, error = %e, "topic removal not delivered");
                    topics_of(doomed, &format!("shard {id} did not answer: {e}"))
                }
            }
        }
    });
    let others: Vec<_> = others.collect();
    let mut failed = remove_topics(shard, doomed.to_vec()).await;
    for more in join_all(others).await {
        failed.extend(more);
    }
    failed
}

fn topics_of(doomed: &[TopicMeta], why: &str) -> RemovalFailures {
    doomed
        .iter()
        .map(|meta| (meta.name.clone(), why.to_owned()))
        .collect()
}

/// Forgets the topics and deletes the partitions of them this shard owns; answers the topics
/// (name, why) a partition of which could not be moved away (its data is still in place).
pub async fn remove_topics(shard: &Shard, doomed: Vec<TopicMeta>) -> RemovalFailures {
    let mut victims = Vec::new();
    for meta in &doomed {
        shard.topics.borrow_mut().remove(&meta.name);
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
        .map(|(partition, id)| delete_partition(shard, partition, id));
    let mut failed: RemovalFailures = Vec::new();
    for (topic, outcome) in join_all(deletions).await {
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
async fn delete_partition(
    shard: &Shard,
    partition: Rc<Partition>,
    id: TopicId,
) -> (String, Result<(), String>) {
    // Long polls on it answer now (the partition is gone from the map).
    partition.notify_appended();
    let name = partition.tp.dir_name();
    if let Err(e) = partition.storage().close().await {
        tracing::warn!(partition = %name, error = %e, "closing deleted partition failed");
    }
    let dir = shard.config.data_dir.join(&name);
    let doomed = shard.config.data_dir.join(delete_dir_name(
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
