//! Persistence of groups and committed offsets in `__consumer_offsets`.
//!
//! Writes: records in Kafka's key/value schemas (`codec`), packed into uncompressed v2 batches
//! and appended to the group's offsets partition through the partition service's write path
//! (`PartitionService::append_coordinator`), like any produce. Reads: at start (or when the topic is first created) each shard replays the
//! offsets partitions it owns from log start to log end, last value per key wins, a null value
//! deletes the key.
//!
//! Compaction (the topic must not grow without bound) is the shared log cleaner's, as in
//! Kafka: `__consumer_offsets` is a `cleanup.policy=compact` topic (see `ensure_offsets_topic`)
//! and every record here is keyed, so cleaning keeps the last value per key and, after
//! `delete.retention.ms`, drops tombstones with the values they deleted; replay of a cleaned
//! log therefore gives the same state as replay of the whole history.
//!
//! Invariants: I/O errors on the write path stop the process (as for produce); a record that
//! does not decode during replay is skipped with a warning, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use storage::builder::{decode_batch, BatchBuilder};

use super::codec::{self, GroupValue, MemberValue, OffsetValue, RecordKey};
use super::coordinator::{now_ms, GroupEntry};
use super::state::{Group, RestoredMember};
use super::{GroupError, OFFSETS_TOPIC};
use crate::partition::{Partition, PartitionProxy, TopicPartition};
use crate::shard::Shard;

/// max.message.bytes of the offsets topic: room for large groups' metadata records.
pub const BATCH_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// Records are packed into batches of about this size.
const BATCH_BYTES_TARGET: usize = 512 * 1024;
/// Bytes read per step of a replay.
const REPLAY_READ_BYTES: u32 = 1024 * 1024;

/// One record: key and value (None = tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

fn offsets_tp(index: u32) -> TopicPartition {
    TopicPartition::new(OFFSETS_TOPIC, index)
}

fn open_partition(shard: &Shard, index: u32) -> Result<Rc<Partition>, GroupError> {
    shard
        .partitions
        .get(&offsets_tp(index))
        .ok_or(GroupError::NotLoaded(index))
}

/// Appends records to offsets partition `index`; the caller holds that partition's lock.
pub async fn append_locked(
    shard: &Shard,
    index: u32,
    records: Vec<KeyValue>,
) -> Result<(), GroupError> {
    if records.is_empty() {
        return Ok(());
    }
    let tp = offsets_tp(index);
    if !shard.partitions.contains(&tp) {
        return Err(GroupError::NotLoaded(index));
    }
    let now = now_ms();
    let mut buf = BytesMut::new();
    let mut builder = BatchBuilder::new(now);
    let mut builder_bytes = 0usize;
    for (key, value) in &records {
        builder = builder.record(Some(key), value.as_deref(), &[]);
        builder_bytes += key.len() + value.as_ref().map_or(0, Vec::len) + 16;
        if builder_bytes >= BATCH_BYTES_TARGET {
            buf.extend_from_slice(&builder.build());
            builder = BatchBuilder::new(now);
            builder_bytes = 0;
        }
    }
    if !builder.is_empty() {
        buf.extend_from_slice(&builder.build());
    }
    // Through the partition's one write path (I/O errors there stop the process).
    shard
        .partitions
        .append_coordinator(&tp, buf.freeze())
        .await
        .map_err(|e| match e {
            crate::partition::PartitionError::UnknownTopicOrPartition => {
                GroupError::NotLoaded(index)
            }
            other => GroupError::Partition(other),
        })
}

/// Appends under the partition's lock.
pub async fn append(shard: &Shard, index: u32, records: Vec<KeyValue>) -> Result<(), GroupError> {
    let log_state = shard
        .groups
        .log(index)
        .ok_or(GroupError::NotLoaded(index))?;
    let _guard = log_state.lock.lock().await;
    append_locked(shard, index, records).await
}

pub fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&OffsetValue>,
) -> Result<KeyValue, GroupError> {
    let key = codec::encode_offset_key(group, topic, partition)?;
    let value = value.map(codec::encode_offset_value).transpose()?;
    Ok((key, value))
}

/// The group metadata record of `entry` (a tombstone once the group is dead).
pub fn group_record(entry: &GroupEntry) -> Result<KeyValue, GroupError> {
    let group = &entry.group;
    let key = codec::encode_group_key(&group.id)?;
    if group.state() == super::state::GroupState::Dead {
        return Ok((key, None));
    }
    let protocol = group.protocol_name().map(str::to_owned);
    let members = group
        .members()
        .map(|m| MemberValue {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            subscription: protocol
                .as_deref()
                .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                .map(|(_, meta)| meta.clone())
                .unwrap_or_default(),
            assignment: m.assignment.clone(),
        })
        .collect();
    let value = GroupValue {
        protocol_type: group.protocol_type().unwrap_or_default().to_owned(),
        generation: group.generation(),
        protocol,
        leader: group.leader().map(str::to_owned),
        current_state_timestamp_ms: entry.state_since_ms,
        members,
    };
    Ok((key, Some(codec::encode_group_value(&value)?)))
}

/// Loads every offsets partition this shard owns and this broker leads, and has not loaded
/// yet.
pub async fn load_owned(shard: &Shard) {
    let partitions = {
        let table = shard.topics.borrow();
        table.get(OFFSETS_TOPIC).map_or(0, |m| m.partitions)
    };
    for index in 0..partitions {
        if shard.placement.shard_for(OFFSETS_TOPIC, index) != shard.id
            || shard.groups.log(index).is_some()
            || !super::leads_offsets_partition(shard, index)
        {
            continue;
        }
        match load_partition(shard, index).await {
            Ok(groups) => {
                tracing::debug!(partition = index, groups, "offsets partition loaded");
            }
            Err(e) => {
                tracing::error!(partition = index, error = %e, "cannot load offsets partition")
            }
        }
    }
}

/// Replay state of one group while loading.
#[derive(Default)]
struct Replayed {
    group: Option<GroupValue>,
    offsets: BTreeMap<(String, i32), OffsetValue>,
}

async fn load_partition(shard: &Shard, index: u32) -> Result<usize, GroupError> {
    let partition = open_partition(shard, index)?;
    let mut replayed: HashMap<String, Replayed> = HashMap::new();
    // Replays what is committed: up to the high watermark (the log end on a single replica).
    let end = storage::Offset(partition.high_watermark());
    let mut offset = storage::Offset(partition.log_start_offset());
    while offset < end {
        let read = partition
            .read(offset.0, REPLAY_READ_BYTES, true, -1)
            .await?;
        let Some(slice) = read.slice else {
            break;
        };
        let bytes = slice.read_bytes().await?;
        let mut next = offset.0;
        for raw in storage::split_batches(&bytes) {
            let raw = raw?;
            let header = storage::BatchHeader::parse(raw)?;
            next = header.base_offset + i64::from(header.last_offset_delta) + 1;
            let batch = match decode_batch(raw) {
                Ok(batch) => batch,
                Err(e) => {
                    // Not written by the coordinator (e.g. a compressed produce): skipped.
                    tracing::warn!(partition = index, error = %e, "skipping offsets batch");
                    continue;
                }
            };
            for record in batch.records {
                if let Err(e) = apply_record(&mut replayed, record.key, record.value) {
                    tracing::warn!(partition = index, error = %e, "skipping offsets record");
                }
            }
        }
        if next <= offset.0 {
            break;
        }
        offset = storage::Offset(next);
    }
    let now = Instant::now();
    let count = replayed.len();
    for (id, state) in replayed {
        let (group, since) = match state.group {
            Some(v) => {
                let since = v.current_state_timestamp_ms;
                (restore_group(id.clone(), v, now), since)
            }
            None if state.offsets.is_empty() => continue,
            None => (Group::new(id.clone()), now_ms()),
        };
        shard
            .groups
            .insert_loaded(GroupEntry::new(group, state.offsets, index, since));
    }
    shard.groups.mark_loaded(index);
    Ok(count)
}

fn restore_group(id: String, v: GroupValue, now: Instant) -> Group {
    let members = v
        .members
        .into_iter()
        .map(|m| RestoredMember {
            id: m.member_id,
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            subscription: m.subscription,
            assignment: m.assignment,
        })
        .collect();
    Group::restore(
        id,
        v.protocol_type,
        v.generation,
        v.protocol,
        v.leader,
        members,
        now,
    )
}

fn apply_record(
    replayed: &mut HashMap<String, Replayed>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
) -> Result<(), GroupError> {
    let Some(key) = key else {
        return Ok(());
    };
    match codec::decode_key(&key)? {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            let entry = replayed.entry(group).or_default();
            match value {
                Some(v) => {
                    entry
                        .offsets
                        .insert((topic, partition), codec::decode_offset_value(&v)?);
                }
                None => {
                    entry.offsets.remove(&(topic, partition));
                }
            }
        }
        RecordKey::Group { group } => {
            let entry = replayed.entry(group).or_default();
            entry.group = value.map(|v| codec::decode_group_value(&v)).transpose()?;
        }
    }
    Ok(())
}
