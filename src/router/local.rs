//! Owner-side execution: what a shard does with the partitions it owns, whether the work came
//! from one of its own connections or through its inbox.
//!
//! Invariants: storage write/fsync I/O errors stop the process (`shards::fatal`), they are never
//! reported to a client as if the data might be there; a long-poll wait always ends by its
//! deadline; topic creation is serialised on shard 0 (registry write lock held from snapshot
//! to rename) and a topic is reported created only after every shard opened its partitions.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use futures_util::future::{join_all, select_all};

use super::{
    CreateResult, NewTopic, OffsetOk, OffsetQuery, OffsetResult, PartitionError, ProduceItem,
    ProduceOk, ProduceResult, ReadItem, ReadOk, ReadResult, ShardMsg,
};
use crate::partition::timestamps::TimestampLimits;
use crate::partition::{Partition, TopicPartition, LEADER_EPOCH};
use crate::producers::{self, BatchMeta, Plan};
use crate::shard::Shard;
use crate::topics::{self, TopicError, TopicId, TopicMeta};

/// Serves one inbox message (spawned, so a long poll never blocks the inbox).
pub async fn serve(shard: Rc<Shard>, msg: ShardMsg) {
    match msg {
        ShardMsg::Produce { items, acks, reply } => reply.send(produce(&shard, items, acks).await),
        ShardMsg::Read { items, reply } => reply.send(read(&shard, items).await),
        ShardMsg::Wait {
            items,
            deadline,
            reply,
        } => {
            wait(&shard, items, deadline).await;
            reply.send(());
        }
        ShardMsg::Offsets { items, reply } => reply.send(offsets(&shard, items).await),
        ShardMsg::CreateTopics {
            topics,
            validate_only,
            reply,
        } => reply.send(create_topics(&shard, topics, validate_only).await),
        ShardMsg::BrokerConfigs {
            scope,
            change,
            validate_only,
            reply,
        } => reply
            .send(super::admin::alter_broker_configs(&shard, scope, change, validate_only).await),
        ShardMsg::BrokerConfigsChanged { configs, reply } => {
            super::admin::adopt_broker_configs(&shard, configs).await;
            reply.send(());
        }
        ShardMsg::TopicsChanged { topics, reply } => {
            adopt_topics(&shard, topics).await;
            reply.send(());
        }
        ShardMsg::Ping { reply } => reply.send(()),
        ShardMsg::Metrics { reply } => reply.send(crate::metrics::snapshot(&shard)),
        ShardMsg::Group { op, reply } => {
            reply.send(crate::groups::coordinator::execute(&shard, op).await)
        }
        ShardMsg::Admin { change, reply } => {
            reply.send(super::admin::apply_change(&shard, change).await)
        }
        ShardMsg::TopicsRemoved { topics, reply } => {
            reply.send(super::admin::remove_topics(&shard, topics).await);
        }
        ShardMsg::DeleteRecords { items, reply } => {
            reply.send(super::admin::delete_records(&shard, items).await)
        }
        ShardMsg::ProducerIdBlock { reply } => {
            assert_eq!(
                shard.id,
                super::REGISTRY_SHARD,
                "producer id blocks come from shard 0"
            );
            reply.send(shard.producer_ids.allocate_block().await)
        }
    }
}

fn io_is_fatal(tp: &TopicPartition, error: storage::StorageError) -> PartitionError {
    if let storage::StorageError::Io(e) = &error {
        shards::fatal(format!("storage I/O error on {}: {e}", tp.dir_name()));
    }
    PartitionError::from_storage(error)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub async fn produce(shard: &Shard, items: Vec<ProduceItem>, acks: i16) -> Vec<ProduceResult> {
    let appends = items.into_iter().map(|item| async move {
        let partition = shard
            .partitions
            .get(&item.tp)
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        if crate::log_cleaner::is_compacted(shard, &item.tp.topic) {
            crate::log_cleaner::check_keyed(&item.tp, &item.records)
                .map_err(PartitionError::from_storage)?;
        }
        append_one(shard, partition, item, acks).await
    });
    join_all(appends).await
}

/// What an append did: wrote the batches, or found them already in the log (a producer retry).
enum Appended {
    New(storage::AppendInfo),
    Duplicate(BatchMeta),
}

async fn append_one(
    shard: &Shard,
    partition: Rc<Partition>,
    item: ProduceItem,
    acks: i16,
) -> ProduceResult {
    let opts = storage::AppendOptions {
        leader_epoch: partition.leader_epoch(),
        now_ms: now_ms(),
    };
    // message.timestamp.before/after.max.ms: CreateTime topics only (LogAppendTime batches
    // get the broker's clock).
    let limits = partition.timestamp_limits();
    if limits != TimestampLimits::default()
        && partition.log.config().timestamp_type == storage::TimestampType::CreateTime
    {
        limits
            .check(&item.records, opts.now_ms)
            .map_err(PartitionError::InvalidTimestamp)?;
    }
    // compression.type other than `producer`: stored in the topic's codec.
    let records = partition
        .to_topic_codec(item.records)
        .map_err(PartitionError::from_storage)?;
    let idempotent = producers::scan_batches(&records)
        .filter(|batches| batches.iter().any(|b| b.ident.is_some()));
    let appended = match idempotent {
        Some(batches) => append_idempotent(partition.clone(), records, batches, opts).await,
        None => {
            let batches = bytes::BytesMut::from(&records[..]);
            partition
                .log
                .append(batches, opts)
                .await
                .map(Appended::New)
                .map_err(AppendError::Storage)
        }
    };
    let (base_offset, last_offset, log_append_time_ms) = match appended {
        Ok(Appended::New(info)) => {
            shard.metrics.add_messages_in(info.record_count);
            (info.base_offset, info.last_offset, info.log_append_time_ms)
        }
        Ok(Appended::Duplicate(meta)) => (
            storage::Offset(meta.base_offset),
            storage::Offset(meta.last_offset),
            meta.log_append_time_ms,
        ),
        Err(AppendError::Storage(e)) => return Err(io_is_fatal(&item.tp, e)),
        Err(AppendError::Refused(e)) => return Err(e),
    };
    if acks == -1 && shard.config.log_flush_on_acks_all {
        let started = Instant::now();
        storage::sync::wait_durable(&partition.log, last_offset)
            .await
            .map_err(|e| io_is_fatal(&item.tp, e))?;
        shard.metrics.record_fsync_wait(started.elapsed());
    }
    partition.notify_appended();
    Ok(ProduceOk {
        base_offset: base_offset.0,
        log_append_time_ms,
        log_start_offset: partition.log.log_start_offset().0,
    })
}

enum AppendError {
    Storage(storage::StorageError),
    Refused(PartitionError),
}

/// Check, write and record an append of idempotent batches under the partition's producer
/// lock. Runs as its own task so that a caller going away (a closed connection) cannot stop it
/// between the write and the state update, which would let a retry be written twice.
async fn append_idempotent(
    partition: Rc<Partition>,
    records: bytes::Bytes,
    batches: Vec<producers::ScannedBatch>,
    opts: storage::AppendOptions,
) -> Result<Appended, AppendError> {
    let (tx, rx) = futures_channel::oneshot::channel();
    let task = async move {
        let _serialised = partition.producer_lock.lock().await;
        let idents: Vec<_> = batches.iter().filter_map(|b| b.ident).collect();
        let plan = partition.producers.borrow().plan(&idents, opts.now_ms);
        let result = match plan {
            Err(e) => Err(AppendError::Refused(PartitionError::from_sequence(e))),
            Ok(Plan::Duplicate(meta)) => Ok(Appended::Duplicate(meta)),
            Ok(Plan::Append) => {
                let now_ms = opts.now_ms;
                let appended = partition
                    .log
                    .append(bytes::BytesMut::from(&records[..]), opts)
                    .await;
                appended.map_err(AppendError::Storage).map(|info| {
                    let placed = producers::placements(
                        &batches,
                        info.base_offset.0,
                        info.log_append_time_ms,
                    );
                    let mut states = partition.producers.borrow_mut();
                    for (ident, meta) in placed {
                        states.commit(&ident, meta, now_ms);
                    }
                    Appended::New(info)
                })
            }
        };
        let _caller_gone_is_fine = tx.send(result);
    };
    compio::runtime::spawn(task).detach();
    rx.await
        .unwrap_or(Err(AppendError::Refused(PartitionError::Unavailable)))
}

pub async fn read(shard: &Shard, items: Vec<ReadItem>) -> Vec<ReadResult> {
    let reads = items.into_iter().map(|item| async move {
        let partition = shard
            .partitions
            .get(&item.tp)
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        read_one(&partition, &item).await
    });
    join_all(reads).await
}

async fn read_one(partition: &Partition, item: &ReadItem) -> ReadResult {
    partition.check_leader_epoch(item.current_leader_epoch)?;
    let high_watermark = partition.high_watermark();
    let log_start = partition.log.log_start_offset();
    let offset = storage::Offset(item.offset);
    // Between the high watermark and the log end nothing is visible yet: an empty answer, not
    // an error (Kafka's behaviour for a follower-less leader's uncommitted tail).
    let slice = if offset >= high_watermark
        && offset <= partition.log.log_end_offset()
        && offset >= log_start
    {
        None
    } else {
        let slice = partition
            .log
            .read(offset, item.max_bytes, item.min_one_batch, high_watermark)
            .await
            .map_err(PartitionError::from_storage)?;
        (slice.total_bytes > 0).then_some(slice)
    };
    Ok(ReadOk {
        high_watermark: high_watermark.0,
        log_start_offset: log_start.0,
        slice,
    })
}

/// Waits until a listed partition's high watermark is past its offset, shutdown, or `deadline`.
pub async fn wait(shard: &Shard, items: Vec<(TopicPartition, i64)>, deadline: Instant) {
    let mut receivers = Vec::with_capacity(items.len());
    for (tp, offset) in &items {
        let Some(partition) = shard.partitions.get(tp) else {
            continue;
        };
        if partition.high_watermark().0 > *offset {
            return;
        }
        if let Some(rx) = partition.subscribe() {
            receivers.push(rx);
        }
    }
    let timer = Box::pin(compio::time::sleep_until(deadline));
    let shutdown = Box::pin(shard.shutdown.wait());
    let stop = futures_util::future::select(timer, shutdown);
    if receivers.is_empty() {
        stop.await;
        return;
    }
    futures_util::future::select(stop, select_all(receivers)).await;
}

pub async fn offsets(shard: &Shard, items: Vec<OffsetQuery>) -> Vec<OffsetResult> {
    let queries = items.into_iter().map(|query| async move {
        let partition = shard
            .partitions
            .get(&query.tp)
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        partition.check_leader_epoch(query.current_leader_epoch)?;
        if let Some(epoch) = query.end_of_epoch {
            let (leader_epoch, offset) = partition.end_offset_for_epoch(epoch);
            return Ok(OffsetOk {
                offset,
                timestamp: -1,
                leader_epoch,
            });
        }
        let mut ok = offset_one(&partition, query.timestamp).await?;
        ok.leader_epoch = partition.epoch_of_offset(ok.offset);
        Ok(ok)
    });
    join_all(queries).await
}

async fn offset_one(partition: &Partition, timestamp: i64) -> OffsetResult {
    let log = &partition.log;
    let at = |offset: storage::Offset| OffsetOk {
        offset: offset.0,
        timestamp: -1,
        leader_epoch: -1,
    };
    match timestamp {
        -1 => Ok(at(partition.high_watermark())),
        -2 | -4 => Ok(at(log.log_start_offset())),
        -3 => log
            .max_timestamp_record()
            .await
            .map(matched)
            .map_err(PartitionError::from_storage),
        ts if ts < 0 => Ok(matched(None)),
        ts => {
            let found = log
                .offset_for_timestamp(ts)
                .await
                .map_err(PartitionError::from_storage)?;
            Ok(matched(found))
        }
    }
}

/// A timestamp lookup's answer: offset and timestamp -1 when no batch matches.
fn matched(found: Option<storage::TimestampOffset>) -> OffsetOk {
    found.map_or(
        OffsetOk {
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        },
        |t| OffsetOk {
            offset: t.offset.0,
            timestamp: t.timestamp_ms,
            leader_epoch: -1,
        },
    )
}

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
                .call(id, |reply| ShardMsg::TopicsChanged { topics, reply })
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
    crate::groups::adopted(shard, &changed).await;
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
        for index in 0..meta.partitions {
            if shard.placement.shard_for(&meta.name, index) != shard.id {
                continue;
            }
            let tp = TopicPartition::new(meta.name.clone(), index);
            // Already open: a config change (AlterConfigs) applies to the live log.
            if let Some(open) = shard.partitions.get(&tp) {
                open.log.set_config(config.clone());
                open.set_timestamp_limits(limits);
                open.set_compression_type(&compression_type);
                continue;
            }
            to_open.push((tp, config.clone(), limits, compression_type.clone()));
        }
    }
    // Several at a time: each open is a chain of small io_uring operations, so start-up and
    // CreateTopics of thousands of partitions are not one long sequence of round trips.
    stream::iter(to_open)
        .for_each_concurrent(OPENS_IN_FLIGHT_MAX, |(tp, config, limits, compression)| {
            open_one(shard, tp, config, limits, compression)
        })
        .await;
}

/// Partitions of one shard opened at the same time.
const OPENS_IN_FLIGHT_MAX: usize = 64;

async fn open_one(
    shard: &Shard,
    tp: TopicPartition,
    config: storage::LogConfig,
    limits: TimestampLimits,
    compression_type: String,
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
    if tp.topic == crate::groups::OFFSETS_TOPIC {
        return producers::ProducerStates::new(limits.state);
    }
    producers::rebuild::rebuild(log, limits, now_ms()).await
}
