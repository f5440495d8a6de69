//! Persistence of groups and committed offsets in `__consumer_offsets`.
//!
//! Writes: records in Kafka's key/value schemas (`codec`), appended to the group's offsets
//! partition through the shared coordinator log (`coordinator_log`: batches through the
//! partition service's write path). Reads: at start (or when the topic is first created) each
//! shard replays the offsets partitions it owns from log start to the log end, last
//! value per key wins, a null value deletes the key. Offsets of a transactional batch
//! (TxnOffsetCommit) stay pending per producer id until that producer's control batch: a
//! COMMIT marker applies them, an ABORT marker drops them (Kafka's
//! `pendingTransactionalOffsetCommits`).
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
use std::time::Instant;

use super::codec::{self, GroupValue, MemberValue, OffsetValue, RecordKey};
use super::coordinator::{now_ms, GroupEntry};
use super::state::{Group, RestoredMember};
use super::GroupContext;
use super::{GroupError, OFFSETS_TOPIC};
use crate::coordinator_log::{self as log, LogError, TxnProducer};

/// max.message.bytes of the offsets topic: room for large groups' metadata records.
pub const BATCH_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// One record: key and value (None = tombstone).
pub type KeyValue = log::KeyValue;

impl From<LogError> for GroupError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::NotLoaded(index) => GroupError::NotLoaded(index),
            LogError::Storage(e) => GroupError::Storage(e),
            LogError::Partition(e) => GroupError::Partition(e),
        }
    }
}

/// Appends records to offsets partition `index`; the caller holds that partition's lock.
pub async fn append_locked(
    shard: &GroupContext<'_>,
    index: u32,
    records: Vec<KeyValue>,
) -> Result<(), GroupError> {
    Ok(log::io::append_locked(&shard.log, OFFSETS_TOPIC, index, &records, None).await?)
}

/// Appends a transactional producer's offset records (TxnOffsetCommit); the caller holds the
/// partition's lock. They count once the producer's commit marker follows them.
pub async fn append_txn_locked(
    shard: &GroupContext<'_>,
    index: u32,
    records: Vec<KeyValue>,
    producer: TxnProducer,
) -> Result<(), GroupError> {
    Ok(log::io::append_locked(&shard.log, OFFSETS_TOPIC, index, &records, Some(producer)).await?)
}

/// Appends under the partition's lock.
pub async fn append(
    shard: &GroupContext<'_>,
    index: u32,
    records: Vec<KeyValue>,
) -> Result<(), GroupError> {
    Ok(log::io::append(
        &shard.log,
        OFFSETS_TOPIC,
        shard.groups.loaded(),
        index,
        &records,
    )
    .await?)
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
pub async fn load_owned(shard: &GroupContext<'_>) {
    for index in log::io::owned_unloaded(&shard.log, OFFSETS_TOPIC, shard.groups.loaded()) {
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
    /// Transactional offsets not yet completed by a marker, per producer id.
    pending: super::table::PendingTxnOffsets,
}

async fn load_partition(shard: &GroupContext<'_>, index: u32) -> Result<usize, GroupError> {
    let mut replayed: HashMap<String, Replayed> = HashMap::new();
    log::io::replay(&shard.log, OFFSETS_TOPIC, index, |header, records| {
        if header.is_control() {
            let commit = records
                .first()
                .and_then(|r| r.key.as_deref())
                .and_then(control_is_commit);
            if let Some(commit) = commit {
                complete_replayed(&mut replayed, header.producer_id, commit);
            }
            return;
        }
        let txn = header.is_transactional().then_some(header.producer_id);
        for record in records {
            if let Err(e) = apply_record(&mut replayed, record.key, record.value, txn) {
                tracing::warn!(partition = index, error = %e, "skipping offsets record");
            }
        }
    })
    .await?;
    let now = Instant::now();
    let count = replayed.len();
    for (id, state) in replayed {
        let (group, since) = match state.group {
            Some(v) => {
                let since = v.current_state_timestamp_ms;
                (restore_group(id.clone(), v, now), since)
            }
            None if state.offsets.is_empty() && state.pending.is_empty() => continue,
            None => (Group::new(id.clone()), now_ms()),
        };
        let mut entry = GroupEntry::new(group, state.offsets, index, since);
        entry.pending_txn = state.pending;
        shard.groups.insert_loaded(entry);
    }
    shard.groups.mark_loaded(index);
    Ok(count)
}

/// A control record's key (Kafka's `ControlRecordType`: version int16, type int16 with 0 =
/// ABORT, 1 = COMMIT): Some(true) for a commit marker, Some(false) for an abort.
pub fn control_is_commit(key: &[u8]) -> Option<bool> {
    match key.get(2..4)? {
        [0, 0] => Some(false),
        [0, 1] => Some(true),
        _ => None,
    }
}

fn complete_replayed(replayed: &mut HashMap<String, Replayed>, producer_id: i64, commit: bool) {
    for state in replayed.values_mut() {
        if let Some(offsets) = state.pending.remove(&producer_id) {
            if commit {
                state.offsets.extend(offsets);
            }
        }
    }
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
    txn_producer: Option<i64>,
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
            match (value, txn_producer) {
                (Some(v), Some(producer_id)) => {
                    entry
                        .pending
                        .entry(producer_id)
                        .or_default()
                        .insert((topic, partition), codec::decode_offset_value(&v)?);
                }
                (Some(v), None) => {
                    entry
                        .offsets
                        .insert((topic, partition), codec::decode_offset_value(&v)?);
                }
                (None, _) => {
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
