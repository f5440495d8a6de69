//! Owner-side execution: what a shard does with the partitions it owns, whether the work came
//! from one of its own connections or through its inbox.
//!
//! Invariants: storage write/fsync I/O errors stop the process (`shards::fatal`), they are never
//! reported to a client as if the data might be there; a long-poll wait always ends by its
//! deadline; topic creation is serialised on shard 0 (registry write lock held from snapshot
//! to rename) and a topic is reported created only after every shard opened its partitions.

use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::join_all;

use super::{CreateResult, NewTopic};
use crate::partition::timestamps::TimestampLimits;
use crate::partition::{Partition, TopicPartition, LEADER_EPOCH};
use crate::producers;
use crate::shard::Shard;
use crate::shard::ShardMsg;
use crate::topics::{self, TopicError, TopicId, TopicMeta};

/// Shard 0 only: validates each topic, persists the registry with the new ones, has every shard
/// open its partitions, then answers per topic.
pub async fn create_topics(
    shard: &Shard,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<CreateResult> {
    assert_eq!(
        shard.id,
        super::REGISTRY_SHARD,
        "topic creation must run on the registry shard"
    );
    let mut results: Vec<CreateResult> = Vec::with_capacity(topics.len());
    let mut created = Vec::new();
    // Names created by this request, keyed by their collision form ('.' and '_' alike).
    let mut created_names: HashMap<String, String> = HashMap::new();
    // The registry lock serialises validate-snapshot-persist, so two concurrent creates never
    // both succeed for one name and an older snapshot never overwrites a newer file.
    let _guard = shard.registry_lock.lock().await;
    for topic in topics {
        let checked = validate_new_topic(shard, &topic);
        let checked = checked.and_then(|meta| {
            let unified = topics::unify_collision_chars(&meta.name);
            match created_names.get(&unified) {
                Some(name) if *name == meta.name => Err(TopicError::AlreadyExists(meta.name)),
                Some(name) => Err(TopicError::Collision {
                    name: meta.name,
                    existing: name.clone(),
                }),
                None => Ok(meta),
            }
        });
        if let (Ok(meta), false) = (&checked, validate_only) {
            created_names.insert(topics::unify_collision_chars(&meta.name), meta.name.clone());
            created.push(meta.clone());
        }
        results.push(checked);
    }
    if created.is_empty() {
        return results;
    }
    let mut table = shard.topics.borrow().clone();
    for meta in &created {
        table.upsert(meta.clone());
    }
    if let Err(e) = topics::persist(&shard.config.data_dir, &table).await {
        tracing::error!(error = %e, "cannot persist topic registry");
        let message = e.to_string();
        return results
            .into_iter()
            .map(|r| r.and_then(|_| Err(TopicError::Io(message.clone()))))
            .collect();
    }
    broadcast_topics(shard, created).await;
    results
}

fn validate_new_topic(shard: &Shard, topic: &NewTopic) -> Result<TopicMeta, TopicError> {
    topics::validate_name(&topic.name)?;
    if shard.topics.borrow().get(&topic.name).is_some() {
        return Err(TopicError::AlreadyExists(topic.name.clone()));
    }
    if let Some(existing) = shard.topics.borrow().collision(&topic.name) {
        return Err(TopicError::Collision {
            name: topic.name.clone(),
            existing: existing.to_owned(),
        });
    }
    let partitions = if topic.partitions == -1 {
        shard.config.num_partitions
    } else {
        topic.partitions
    };
    if partitions < 1 || partitions > shard.config.max_partitions_per_topic {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err(TopicError::InvalidReplicationFactor(
            topic.replication_factor,
        ));
    }
    let dynamic = shard.dynamic_configs.borrow().clone();
    topics::config::resolve_with(&shard.default_log, &dynamic, &topic.configs)?;
    Ok(TopicMeta {
        name: topic.name.clone(),
        id: TopicId::generate(&topic.name),
        partitions: partitions.unsigned_abs(),
        configs: topic.configs.clone(),
    })
}

/// Sends the changed topics to every shard (itself directly) and waits until all adopted them.
pub async fn broadcast_topics(shard: &Shard, changed: Vec<TopicMeta>) {
    let others = shard.mesh.shards().filter(|&id| id != shard.id).map(|id| {
        let topics = changed.clone();
        async move {
            if let Err(e) = shard
                .mesh
                .call(id, |reply| {
                    ShardMsg::run(move |shard| async move {
                        adopt_topics(&shard, topics).await;
                        reply.send(());
                    })
                })
                .await
            {
                tracing::warn!(shard = %id, error = %e, "topic broadcast not delivered");
            }
        }
    });
    let others: Vec<_> = others.collect();
    adopt_topics(shard, changed).await;
    join_all(others).await;
}

/// Records the topics in this shard's table and opens the partitions this shard owns.
pub async fn adopt_topics(shard: &Shard, changed: Vec<TopicMeta>) {
    for meta in &changed {
        shard.topics.borrow_mut().upsert(meta.clone());
    }
    open_owned(shard, &changed).await;
    // Modules that load state from new topics (the group coordinator, for the offsets topic).
    for hook in &shard.on_topics_adopted {
        hook(shard, &changed).await;
    }
}

/// Opens every not-yet-open partition of `metas` that this shard owns. A partition that cannot
/// be opened stops the broker (see [`storage_offline`]): it is never left in the registry,
/// advertised in Metadata, without a log behind it.
pub async fn open_owned(shard: &Shard, metas: &[TopicMeta]) {
    use futures_util::stream::{self, StreamExt};
    let mut to_open = Vec::new();
    for meta in metas {
        let dynamic = shard.dynamic_configs.borrow().clone();
        let resolved = topics::config::resolve_with(&shard.default_log, &dynamic, &meta.configs);
        let topic_config = match resolved {
            Ok(config) => config,
            Err(e) => storage_offline(shard, &meta.name, &format!("invalid topic config: {e}")),
        };
        let limits = TimestampLimits {
            before_max_ms: topic_config.message_timestamp_before_max_ms,
            after_max_ms: topic_config.message_timestamp_after_max_ms,
        };
        let config = topic_config.log;
        let compression_type = topic_config.compression_type;
        let compacted = topics::compaction::policy(&meta.configs).compact;
        for index in 0..meta.partitions {
            if shard.placement.shard_for(&meta.name, index) != shard.id {
                continue;
            }
            let tp = TopicPartition::new(meta.name.clone(), index);
            // Already open: a config change (AlterConfigs) applies to the live log.
            if let Some(open) = shard.partitions.get(&tp) {
                open.storage().set_config(config.clone());
                open.set_timestamp_limits(limits);
                open.set_compression_type(&compression_type);
                open.set_compacted(compacted);
                continue;
            }
            let settings = (limits, compression_type.clone(), compacted);
            to_open.push((tp, config.clone(), settings));
        }
    }
    // Several at a time: each open is a chain of small io_uring operations, so start-up and
    // CreateTopics of thousands of partitions are not one long sequence of round trips.
    stream::iter(to_open)
        .for_each_concurrent(OPENS_IN_FLIGHT_MAX, |(tp, config, settings)| {
            open_one(shard, tp, config, settings)
        })
        .await;
}

/// Partitions of one shard opened at the same time.
const OPENS_IN_FLIGHT_MAX: usize = 64;

async fn open_one(
    shard: &Shard,
    tp: TopicPartition,
    config: storage::LogConfig,
    (limits, compression_type, compacted): (TimestampLimits, String, bool),
) {
    let dir = shard.config.data_dir.join(tp.dir_name());
    let options = storage::OpenOptions {
        previous_shutdown_clean: shard.previous_shutdown_clean,
        // The data directory's clean-shutdown marker is gone while the broker runs.
        mark_unclean_on_open: false,
    };
    match storage::Log::open_with(dir, config, options).await {
        Ok(log) => {
            let waiters_max = shard.config.fetch_waiters_per_partition_max;
            let producers = producer_states(shard, &tp, &log).await;
            let partition = Partition::new(tp, log, waiters_max, producers);
            partition.set_timestamp_limits(limits);
            partition.set_compression_type(&compression_type);
            partition.set_compacted(compacted);
            // Kafka's makeLeader: the epoch cache gets this node's epoch first.
            if let Err(e) = partition.become_leader(LEADER_EPOCH).await {
                let reason = format!("cannot open the leader-epoch cache: {e}");
                storage_offline(shard, &partition.tp.dir_name(), &reason);
            }
            shard.partitions.insert(Rc::new(partition));
        }
        Err(e) => storage_offline(shard, &tp.dir_name(), &e.to_string()),
    }
}

/// A partition of the registry cannot be opened (permission denied, disk full, a file where its
/// directory should be...). Kafka takes the log directory offline on such an I/O error and,
/// with no other directory, stops; Sluice has one data directory, so it stops too (exit 70),
/// naming the partition, instead of advertising a partition it cannot serve.
fn storage_offline(shard: &Shard, what: &str, why: &str) -> ! {
    shards::fatal(format!(
        "cannot open partition {what} in {}: {why}; the data directory is offline (Kafka stops \
         when its only log directory fails); fix it and restart",
        shard.config.data_dir.display()
    ))
}

/// The producer state of a partition being opened, rebuilt from its newest batch headers
/// (clients cannot write the offsets topic, so it has none to rebuild).
async fn producer_states(
    shard: &Shard,
    tp: &TopicPartition,
    log: &storage::Log,
) -> producers::ProducerStates {
    let limits = shard.config.producer_rebuild_limits();
    if tp.topic == crate::internal_topics::OFFSETS_TOPIC {
        return producers::ProducerStates::new(limits.state);
    }
    producers::rebuild::rebuild(log, limits, crate::clock::system_now_ms()).await
}
