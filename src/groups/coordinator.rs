//! The group coordinator of one shard: runs the state machine for the groups this shard owns,
//! parks JoinGroup/SyncGroup answers until the state machine releases them, persists group and
//! offset records before answering, and drives the timers (session/rebalance expiry every
//! `group.timer.interval.ms`; offset expiry and dropped topics every
//! `offsets.retention.check.interval.ms`). The offsets log itself is compacted by the shard's
//! log cleaner (`cleanup.policy=compact`), not here.
//!
//! Invariants: all state is shard-local (`RefCell`, never borrowed across an `.await`); a
//! group's metadata record is written before the answers that depend on it are delivered, and
//! when it cannot be written they carry the store's error instead (Kafka's `storeGroup`); a
//! commit is acknowledged only after its records were appended, and the in-memory offsets are
//! updated under the partition's write lock so the log holds records in the order memory
//! changed (what a replay after a restart rebuilds); the number of
//! groups per shard is bounded by `group.max.count.per.shard`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use super::code::GroupCode;
use super::codec::OffsetValue;
use super::state::{Effect, Group, GroupState, JoinArgs, JoinReply, SyncArgs, SyncReply};
use super::store::{self, KeyValue};
use super::{
    CommitRequest, Described, DescribedMember, FetchedOffset, GroupAnswer, GroupOp, Listed,
};
use super::{GroupContext, GroupError};

pub use crate::clock::system_now_ms as now_ms;

pub use super::table::{Coordinator, GroupEntry, OffsetsLog};

/// Runs one op on this shard (the group's owner).
pub async fn execute(shard: &GroupContext<'_>, op: GroupOp) -> GroupAnswer {
    if let Some(group) = op.group() {
        if group.is_empty() && !matches!(op, GroupOp::FetchOffsets { .. }) {
            return GroupAnswer::Error(GroupCode::InvalidGroupId);
        }
        if let Err(code) = check_owner(shard, group) {
            return GroupAnswer::Error(code);
        }
    }
    match op {
        GroupOp::Join { group, args } => join(shard, group, args).await,
        GroupOp::Sync { group, args } => sync(shard, group, args).await,
        GroupOp::Heartbeat {
            group,
            member_id,
            instance_id,
            generation,
        } => heartbeat(
            shard,
            &group,
            &member_id,
            instance_id.as_deref(),
            generation,
        ),
        GroupOp::Leave { group, members } => leave(shard, group, members).await,
        GroupOp::Commit(request) => commit(shard, request).await,
        GroupOp::FetchOffsets {
            group,
            topics,
            require_stable,
        } => fetch_offsets(shard, &group, topics, require_stable),
        GroupOp::Describe { group } => describe(shard, &group),
        GroupOp::List => list(shard),
        GroupOp::Delete { group } => delete(shard, group).await,
        GroupOp::DeleteOffsets { group, topics } => delete_offsets(shard, group, topics).await,
        GroupOp::CompleteTxn {
            partition,
            producer_id,
            commit,
        } => super::txn_offsets::complete(shard, partition, producer_id, commit).await,
    }
}

fn check_owner(shard: &GroupContext<'_>, group: &str) -> Result<u32, GroupCode> {
    let (owner, partition) = super::owner_of(shard, group);
    if owner != shard.log.shard_id {
        return Err(GroupCode::NotCoordinator);
    }
    if shard.groups.log(partition).is_none() {
        return Err(GroupCode::CoordinatorLoadInProgress);
    }
    Ok(partition)
}

/// Persists the group if asked to, then delivers the answers.
async fn after(shard: &GroupContext<'_>, group_id: &str, fx: Vec<Effect>) {
    let coordinator = &shard.groups;
    let persist = {
        let mut groups = coordinator.groups.borrow_mut();
        match groups.get_mut(group_id) {
            Some(entry) => {
                entry.note_state_change();
                if fx.contains(&Effect::Persist) {
                    Some((entry.partition, store::group_record(entry)))
                } else {
                    None
                }
            }
            None => None,
        }
    };
    let mut fx = fx;
    if let Some((partition, record)) = persist {
        let written = match record {
            Ok(record) => store::append(shard, partition, vec![record]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let code = store_error_code(&e);
            tracing::warn!(group = group_id, error = %e, ?code, "cannot persist group metadata; answering the waiting members with the error");
            fx = store_failed(shard, group_id, fx, code);
        }
    }
    coordinator.deliver(fx);
}

/// The answers waiting on a group store that failed (see `Group::store_failed`); a group
/// unloaded meanwhile (this broker resigned its offsets partition) only has its answers
/// turned into the error.
fn store_failed(
    shard: &GroupContext<'_>,
    group_id: &str,
    fx: Vec<Effect>,
    code: GroupCode,
) -> Vec<Effect> {
    let coordinator = &shard.groups;
    let mut groups = coordinator.groups.borrow_mut();
    let mut detached = Group::new(group_id.to_owned());
    let group = groups
        .get_mut(group_id)
        .map_or(&mut detached, |entry| &mut entry.group);
    group.store_failed(fx, code, &coordinator.limits, Instant::now())
}

/// The code a member gets when its group or offsets could not be written to the offsets
/// partition. Kafka 4's group coordinator has one table for every API that writes there
/// (`GroupMetadataManager.appendGroupMetadataErrorToResponseError` for JoinGroup / SyncGroup
/// stores, `CoordinatorOperationExceptionHelper.handleOperationException` for OffsetCommit and
/// TxnOffsetCommit), applied to the append's error:
///
/// | append error | answer |
/// |---|---|
/// | UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT | COORDINATOR_NOT_AVAILABLE |
/// | NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR | NOT_COORDINATOR |
/// | MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_FETCH_SIZE | UNKNOWN_SERVER_ERROR |
/// | any other | itself |
///
/// (Kafka 3's Scala coordinator answered INVALID_COMMIT_OFFSET_SIZE for too large commits and
/// REBALANCE_IN_PROGRESS for a timed out group store; Kafka 4 removed it.) One exhaustive
/// match, so a new partition error cannot go unmapped. Errors an append of the coordinator's
/// own batches cannot produce (client input checks) answer UNKNOWN_SERVER_ERROR.
pub fn store_error_code(error: &GroupError) -> GroupCode {
    use crate::coordinator_log::{append_failure, AppendFailure};
    match error {
        // Not hosted on this shard (any more): Kafka's append finds no partition of a topic
        // the image still holds, NOT_LEADER_OR_FOLLOWER.
        GroupError::NotLoaded(_) => GroupCode::NotCoordinator,
        // KAFKA_STORAGE_ERROR.
        GroupError::Storage(_) => GroupCode::NotCoordinator,
        // The records could not be encoded: Kafka's unexpected exception.
        GroupError::Codec(_) => GroupCode::UnknownServerError,
        GroupError::Partition(error) => match append_failure(error) {
            AppendFailure::CoordinatorNotAvailable => GroupCode::CoordinatorNotAvailable,
            AppendFailure::NotCoordinator => GroupCode::NotCoordinator,
            AppendFailure::UnknownServerError => GroupCode::UnknownServerError,
            // A TxnOffsetCommit batch the partition's producer state refused: passed through.
            AppendFailure::InvalidProducerEpoch => GroupCode::InvalidProducerEpoch,
            AppendFailure::InvalidTxnState => GroupCode::InvalidTxnState,
        },
    }
}

fn fresh_member_id(prefix: &str, group: &str) -> String {
    let uuid = crate::topics::TopicId::generate(group).uuid();
    format!("{prefix}-{uuid}")
}

async fn join(shard: &GroupContext<'_>, group_id: String, mut args: JoinArgs) -> GroupAnswer {
    let coordinator = &shard.groups;
    let prefix = args
        .instance_id
        .clone()
        .unwrap_or_else(|| args.client_id.clone());
    args.fresh_member_id = fresh_member_id(&prefix, &group_id);
    let waiter = coordinator.waiter_id();
    let (tx, rx) = oneshot::channel();
    let fx = {
        let mut groups = coordinator.groups.borrow_mut();
        if !groups.contains_key(&group_id) {
            let error = if !args.member_id.is_empty() {
                Some(GroupCode::UnknownMemberId)
            } else if groups.len() >= coordinator.groups_max {
                Some(GroupCode::CoordinatorNotAvailable)
            } else {
                None
            };
            if let Some(error) = error {
                return GroupAnswer::Join(JoinReply {
                    error,
                    generation: -1,
                    member_id: args.member_id,
                    ..JoinReply::default()
                });
            }
            let (_, partition) = super::owner_of(shard, &group_id);
            let entry = GroupEntry::new(
                Group::new(group_id.clone()),
                BTreeMap::new(),
                partition,
                now_ms(),
            );
            groups.insert(group_id.clone(), entry);
        }
        let Some(entry) = groups.get_mut(&group_id) else {
            return GroupAnswer::Error(GroupCode::CoordinatorNotAvailable);
        };
        coordinator.join_waiters.borrow_mut().insert(waiter, tx);
        entry
            .group
            .join(args, waiter, &coordinator.limits, Instant::now())
    };
    after(shard, &group_id, fx).await;
    drop_if_unused(shard, &group_id);
    match rx.await {
        Ok(reply) => GroupAnswer::Join(reply),
        Err(_) => GroupAnswer::Error(GroupCode::CoordinatorNotAvailable),
    }
}

fn drop_if_unused(shard: &GroupContext<'_>, group_id: &str) {
    let mut groups = shard.groups.groups.borrow_mut();
    if groups.get(group_id).is_some_and(GroupEntry::is_unused) {
        groups.remove(group_id);
    }
}

async fn sync(shard: &GroupContext<'_>, group_id: String, args: SyncArgs) -> GroupAnswer {
    let coordinator = &shard.groups;
    let waiter = coordinator.waiter_id();
    let (tx, rx) = oneshot::channel();
    let fx = {
        let mut groups = coordinator.groups.borrow_mut();
        let Some(entry) = groups.get_mut(&group_id) else {
            return GroupAnswer::Sync(SyncReply {
                error: GroupCode::UnknownMemberId,
                ..SyncReply::default()
            });
        };
        coordinator.sync_waiters.borrow_mut().insert(waiter, tx);
        entry.group.sync(args, waiter, Instant::now())
    };
    after(shard, &group_id, fx).await;
    match rx.await {
        Ok(reply) => GroupAnswer::Sync(reply),
        Err(_) => GroupAnswer::Error(GroupCode::CoordinatorNotAvailable),
    }
}

fn heartbeat(
    shard: &GroupContext<'_>,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> GroupAnswer {
    let mut groups = shard.groups.groups.borrow_mut();
    let code = match groups.get_mut(group_id) {
        Some(entry) => entry
            .group
            .heartbeat(member_id, instance_id, generation, Instant::now()),
        None => GroupCode::UnknownMemberId,
    };
    GroupAnswer::Code(code)
}

async fn leave(
    shard: &GroupContext<'_>,
    group_id: String,
    members: Vec<(String, Option<String>)>,
) -> GroupAnswer {
    let coordinator = &shard.groups;
    let (codes, fx) = {
        let mut groups = coordinator.groups.borrow_mut();
        match groups.get_mut(&group_id) {
            Some(entry) => entry
                .group
                .leave(&members, &coordinator.limits, Instant::now()),
            None => (vec![GroupCode::UnknownMemberId; members.len()], Vec::new()),
        }
    };
    after(shard, &group_id, fx).await;
    GroupAnswer::Leave(codes)
}

/// Codes per partition (request order) and the accepted (topic, partition, value)s.
type CommitPlan = (
    Vec<(String, Vec<(i32, GroupCode)>)>,
    Vec<(String, i32, OffsetValue)>,
);

/// Per-partition validation of a commit; the records to write for the valid ones.
fn commit_plan(shard: &GroupContext<'_>, request: &CommitRequest, commit_ms: i64) -> CommitPlan {
    let table = shard.log.image.borrow();
    let metadata_max = shard.config.offset_metadata_max_bytes;
    let mut codes = Vec::with_capacity(request.topics.len());
    let mut accepted = Vec::new();
    for (topic, partitions) in &request.topics {
        let meta = table.get(topic);
        let mut topic_codes = Vec::with_capacity(partitions.len());
        for p in partitions {
            let exists =
                meta.is_some_and(|m| u32::try_from(p.partition).is_ok_and(|i| i < m.partitions));
            let metadata = p.metadata.clone().unwrap_or_default();
            let code = if !exists || topic == super::OFFSETS_TOPIC {
                GroupCode::UnknownTopicOrPartition
            } else if metadata.len() > metadata_max {
                GroupCode::OffsetMetadataTooLarge
            } else {
                accepted.push((
                    topic.clone(),
                    p.partition,
                    OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata,
                        commit_timestamp_ms: commit_ms,
                    },
                ));
                GroupCode::None
            };
            topic_codes.push((p.partition, code));
        }
        codes.push((topic.clone(), topic_codes));
    }
    (codes, accepted)
}

fn all_codes(request: &CommitRequest, code: GroupCode) -> GroupAnswer {
    GroupAnswer::Partitions(
        request
            .topics
            .iter()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
            .collect(),
    )
}

async fn commit(shard: &GroupContext<'_>, request: CommitRequest) -> GroupAnswer {
    let coordinator = &shard.groups;
    let (_, partition) = super::owner_of(shard, &request.group);
    let Some(log_state) = coordinator.log(partition) else {
        return all_codes(&request, GroupCode::CoordinatorLoadInProgress);
    };
    // Validate, append and apply under the offsets partition's lock, which DeleteGroups also
    // takes: the order of records in the log is then the order of changes in memory, so a
    // commit racing a delete replays after a restart exactly as it ended before it.
    let _guard = log_state.lock.lock().await;
    let validation = {
        let mut groups = coordinator.groups.borrow_mut();
        match groups.get_mut(&request.group) {
            Some(entry) if request.txn.is_some() => super::txn_offsets::validate(entry, &request),
            None if request.generation < 0 || request.txn.is_some() => {
                if groups.len() >= coordinator.groups_max {
                    GroupCode::CoordinatorNotAvailable
                } else {
                    let group = Group::new(request.group.clone());
                    let entry = GroupEntry::new(group, BTreeMap::new(), partition, now_ms());
                    groups.insert(request.group.clone(), entry);
                    GroupCode::None
                }
            }
            None => GroupCode::IllegalGeneration,
            Some(entry) => entry.group.validate_commit(
                &request.member_id,
                request.instance_id.as_deref(),
                request.generation,
                Instant::now(),
            ),
        }
    };
    if validation != GroupCode::None {
        return all_codes(&request, validation);
    }
    let (codes, accepted) = commit_plan(shard, &request, now_ms());
    let records: Result<Vec<KeyValue>, _> = accepted
        .iter()
        .map(|(t, p, v)| store::offset_record(&request.group, t, *p, Some(v)))
        .collect();
    let written = match (records, request.txn) {
        (Ok(records), None) => store::append_locked(shard, partition, records).await,
        (Ok(records), Some(txn)) => store::append_txn_locked(shard, partition, records, txn).await,
        (Err(e), _) => Err(e),
    };
    if let Err(e) = written {
        let code = store_error_code(&e);
        tracing::warn!(group = %request.group, error = %e, ?code, "offset commit not written");
        drop_if_unused(shard, &request.group);
        return all_codes(&request, code);
    }
    if let Some(entry) = coordinator.groups.borrow_mut().get_mut(&request.group) {
        let offsets = match request.txn {
            None => &mut entry.offsets,
            Some(txn) => entry.pending_txn.entry(txn.producer_id).or_default(),
        };
        for (topic, p, value) in accepted {
            offsets.insert((topic, p), value);
        }
    }
    drop_if_unused(shard, &request.group);
    GroupAnswer::Partitions(codes)
}

fn fetched(value: Option<&OffsetValue>, partition: i32) -> FetchedOffset {
    match value {
        Some(v) => FetchedOffset {
            partition,
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: Some(v.metadata.clone()),
            error: GroupCode::None,
        },
        None => FetchedOffset {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: Some(String::new()),
            error: GroupCode::None,
        },
    }
}

fn fetch_offsets(
    shard: &GroupContext<'_>,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> GroupAnswer {
    let groups = shard.groups.groups.borrow();
    let entry = groups.get(group_id);
    let offsets = entry.map(|e| &e.offsets);
    let unstable = |key: &(String, i32)| {
        require_stable && entry.is_some_and(|e| e.pending_txn.values().any(|o| o.contains_key(key)))
    };
    let answer = match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| {
                        let key = (topic.clone(), p);
                        if unstable(&key) {
                            return FetchedOffset {
                                error: GroupCode::UnstableOffsetCommit,
                                ..fetched(None, p)
                            };
                        }
                        fetched(offsets.and_then(|o| o.get(&key)), p)
                    })
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
            for ((topic, p), v) in offsets.into_iter().flatten() {
                by_topic
                    .entry(topic.clone())
                    .or_default()
                    .push(fetched(Some(v), *p));
            }
            by_topic.into_iter().collect()
        }
    };
    GroupAnswer::Fetched(answer)
}

fn describe(shard: &GroupContext<'_>, group_id: &str) -> GroupAnswer {
    let groups = shard.groups.groups.borrow();
    let Some(entry) = groups.get(group_id) else {
        return GroupAnswer::Described(Described {
            found: false,
            state: GroupState::Dead.name(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        });
    };
    let group = &entry.group;
    let stable = group.state() == GroupState::Stable;
    let protocol = group.protocol_name().unwrap_or_default().to_owned();
    let members = group
        .members()
        .map(|m| DescribedMember {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            metadata: if stable {
                m.protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, meta)| meta.clone())
                    .unwrap_or_default()
            } else {
                bytes::Bytes::new()
            },
            assignment: if stable {
                m.assignment.clone()
            } else {
                bytes::Bytes::new()
            },
        })
        .collect();
    GroupAnswer::Described(Described {
        found: true,
        state: group.state().name(),
        protocol_type: group.protocol_type().unwrap_or_default().to_owned(),
        protocol: if stable { protocol } else { String::new() },
        members,
    })
}

fn list(shard: &GroupContext<'_>) -> GroupAnswer {
    let groups = shard.groups.groups.borrow();
    GroupAnswer::Listed(
        groups
            .values()
            .map(|e| Listed {
                group: e.group.id.clone(),
                protocol_type: e.group.protocol_type().unwrap_or_default().to_owned(),
                state: e.group.state().name(),
            })
            .collect(),
    )
}

/// Removes the whole group from memory and returns its tombstones (group + offsets).
fn remove_group(entry: &mut GroupEntry) -> Vec<KeyValue> {
    entry.group.kill();
    let mut records = Vec::with_capacity(entry.offsets.len() + 1);
    for (topic, partition) in std::mem::take(&mut entry.offsets).into_keys() {
        if let Ok(r) = store::offset_record(&entry.group.id, &topic, partition, None) {
            records.push(r);
        }
    }
    if let Ok(r) = store::group_record(entry) {
        records.push(r);
    }
    records
}

async fn delete(shard: &GroupContext<'_>, group_id: String) -> GroupAnswer {
    let (_, partition) = super::owner_of(shard, &group_id);
    let Some(log_state) = shard.groups.log(partition) else {
        return GroupAnswer::Code(GroupCode::CoordinatorLoadInProgress);
    };
    // Under the same lock as commits (see `commit`).
    let _guard = log_state.lock.lock().await;
    let removed = {
        let mut groups = shard.groups.groups.borrow_mut();
        match groups.get_mut(&group_id) {
            None => Err(GroupCode::GroupIdNotFound),
            Some(entry) if entry.group.state() == GroupState::Dead => {
                Err(GroupCode::GroupIdNotFound)
            }
            Some(entry) if entry.group.state() != GroupState::Empty => {
                Err(GroupCode::NonEmptyGroup)
            }
            Some(entry) => {
                let records = remove_group(entry);
                let partition = entry.partition;
                groups.remove(&group_id);
                Ok((partition, records))
            }
        }
    };
    match removed {
        Err(code) => GroupAnswer::Code(code),
        Ok((partition, records)) => match store::append_locked(shard, partition, records).await {
            Ok(()) => GroupAnswer::Code(GroupCode::None),
            Err(e) => {
                tracing::warn!(group = %group_id, error = %e, "group tombstones not written");
                GroupAnswer::Code(GroupCode::CoordinatorNotAvailable)
            }
        },
    }
}

async fn delete_offsets(
    shard: &GroupContext<'_>,
    group_id: String,
    topics: Vec<(String, Vec<i32>)>,
) -> GroupAnswer {
    let (_, partition) = super::owner_of(shard, &group_id);
    let Some(log_state) = shard.groups.log(partition) else {
        return GroupAnswer::Error(GroupCode::CoordinatorLoadInProgress);
    };
    // Under the same lock as commits (see `commit`).
    let _guard = log_state.lock.lock().await;
    let planned = {
        let table = shard.log.image.borrow();
        let mut groups = shard.groups.groups.borrow_mut();
        match groups.get_mut(&group_id) {
            None => Err(GroupCode::GroupIdNotFound),
            Some(e) if e.group.state() == GroupState::Dead => Err(GroupCode::GroupIdNotFound),
            Some(e)
                if e.group.state() != GroupState::Empty
                    && e.group.protocol_type() != Some("consumer") =>
            {
                Err(GroupCode::NonEmptyGroup)
            }
            Some(entry) => {
                let empty = entry.group.state() == GroupState::Empty;
                let mut codes = Vec::new();
                let mut records = Vec::new();
                for (topic, partitions) in topics {
                    let subscribed = !empty && entry.group.subscribed_to(&topic);
                    let known = table.get(&topic).is_some();
                    let mut topic_codes = Vec::new();
                    for p in partitions {
                        let code = if !known {
                            GroupCode::UnknownTopicOrPartition
                        } else if subscribed {
                            GroupCode::GroupSubscribedToTopic
                        } else {
                            if entry.offsets.remove(&(topic.clone(), p)).is_some() {
                                if let Ok(r) = store::offset_record(&group_id, &topic, p, None) {
                                    records.push(r);
                                }
                            }
                            GroupCode::None
                        };
                        topic_codes.push((p, code));
                    }
                    codes.push((topic, topic_codes));
                }
                Ok((entry.partition, codes, records))
            }
        }
    };
    match planned {
        Err(code) => GroupAnswer::Error(code),
        Ok((partition, codes, records)) => {
            if let Err(e) = store::append_locked(shard, partition, records).await {
                tracing::warn!(group = %group_id, error = %e, "offset tombstones not written");
                return GroupAnswer::Error(GroupCode::CoordinatorNotAvailable);
            }
            GroupAnswer::Partitions(codes)
        }
    }
}

// ---- Timers ---------------------------------------------------------------------------------

/// Drives the state machines' timers and the periodic cleanup until the task is dropped.
pub async fn timer_loop(shard: GroupContext<'_>) {
    let tick = Duration::from_millis(shard.config.group_timer_interval_ms);
    let cleanup_every = Duration::from_millis(shard.config.offsets_retention_check_interval_ms);
    let mut next_cleanup = Instant::now() + cleanup_every;
    loop {
        compio::time::sleep(tick).await;
        tick_all(&shard).await;
        if Instant::now() >= next_cleanup {
            cleanup(&shard).await;
            next_cleanup = Instant::now() + cleanup_every;
        }
    }
}

async fn tick_all(shard: &GroupContext<'_>) {
    let coordinator = &shard.groups;
    let now = Instant::now();
    let mut pending = Vec::new();
    {
        let mut groups = coordinator.groups.borrow_mut();
        for (id, entry) in groups.iter_mut() {
            let fx = entry.group.tick(&coordinator.limits, now);
            if !fx.is_empty() || entry.group.state_changes() != entry.seen_state_changes {
                pending.push((id.clone(), fx));
            }
        }
    }
    for (id, fx) in pending {
        after(shard, &id, fx).await;
    }
}

/// Expires offsets (empty groups past offsets.retention.minutes), drops offsets of deleted
/// topics, removes empty groups without offsets, writing their tombstones (which the log
/// cleaner later drops, after `delete.retention.ms`).
pub async fn cleanup(shard: &GroupContext<'_>) {
    let retention_ms = i64::try_from(
        shard
            .config
            .offsets_retention_minutes
            .saturating_mul(60_000),
    )
    .unwrap_or(i64::MAX);
    let loaded: Vec<u32> = shard.groups.logs.indexes();
    for partition in loaded {
        let Some(log_state) = shard.groups.log(partition) else {
            continue;
        };
        // Decide and write under the partition's lock, like commits (see `commit`), so a commit
        // racing an expiry lands in the log in the order it changed memory.
        let _guard = log_state.lock.lock().await;
        let records = expire_in_partition(shard, partition, retention_ms, now_ms());
        if let Err(e) = store::append_locked(shard, partition, records).await {
            tracing::warn!(partition, error = %e, "offset expiry not written");
        }
    }
}

/// Kafka's `GroupCoordinator.onPartitionsDeleted`: the committed offsets of deleted topics
/// leave every group this shard coordinates at once (with tombstones), so a new topic of the
/// same name never starts from a deleted topic's offsets. Called on every shard by the topic
/// deletion (`cluster::deletion`), after the topics left the image.
pub async fn topics_deleted(shard: &GroupContext<'_>, topics: &std::collections::HashSet<String>) {
    let loaded: Vec<u32> = shard.groups.logs.indexes();
    for partition in loaded {
        let Some(log_state) = shard.groups.log(partition) else {
            continue;
        };
        let _guard = log_state.lock.lock().await;
        let mut records = Vec::new();
        for (id, entry) in shard
            .groups
            .groups
            .borrow_mut()
            .iter_mut()
            .filter(|(_, e)| e.partition == partition)
        {
            let gone: Vec<(String, i32)> = entry
                .offsets
                .keys()
                .filter(|(topic, _)| topics.contains(topic))
                .cloned()
                .collect();
            for key in gone {
                entry.offsets.remove(&key);
                if let Ok(r) = store::offset_record(id, &key.0, key.1, None) {
                    records.push(r);
                }
            }
        }
        if let Err(e) = store::append_locked(shard, partition, records).await {
            tracing::warn!(partition, error = %e, "offsets of deleted topics not written");
        }
    }
}

/// Removes, in memory, the expired offsets and the offsets of deleted topics of the groups
/// stored in offsets partition `partition`, and the empty groups left without offsets; returns
/// the tombstones to write.
fn expire_in_partition(
    shard: &GroupContext<'_>,
    partition: u32,
    retention_ms: i64,
    now: i64,
) -> Vec<KeyValue> {
    let table = shard.log.image.borrow();
    let mut groups = shard.groups.groups.borrow_mut();
    let mut records = Vec::new();
    let mut dead = Vec::new();
    for (id, entry) in groups.iter_mut().filter(|(_, e)| e.partition == partition) {
        let empty = entry.group.state() == GroupState::Empty;
        let consumer_group = entry.group.protocol_type().is_some();
        let group_expired = empty && now.saturating_sub(entry.state_since_ms) >= retention_ms;
        let mut gone = Vec::new();
        for ((topic, p), value) in &entry.offsets {
            let topic_gone = table
                .get(topic)
                .is_none_or(|m| u32::try_from(*p).map_or(true, |i| i >= m.partitions));
            let expired = empty
                && if consumer_group {
                    group_expired
                } else {
                    now.saturating_sub(value.commit_timestamp_ms) >= retention_ms
                };
            if topic_gone || expired {
                gone.push((topic.clone(), *p));
            }
        }
        for key in gone {
            entry.offsets.remove(&key);
            if let Ok(r) = store::offset_record(id, &key.0, key.1, None) {
                records.push(r);
            }
        }
        if empty && entry.offsets.is_empty() && entry.group.is_empty() {
            records.extend(remove_group(entry));
            dead.push(id.clone());
        }
    }
    for id in dead {
        groups.remove(&id);
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::PartitionError as P;

    /// Every row of Kafka 4's table (`appendGroupMetadataErrorToResponseError`,
    /// `handleOperationException`), per append error: a coordinator that lost (or never
    /// loaded) its offsets partition answers NOT_COORDINATOR, so the client looks the
    /// coordinator up again; too few replicas or a timeout is COORDINATOR_NOT_AVAILABLE
    /// (retried); too large is UNKNOWN_SERVER_ERROR; a TxnOffsetCommit the producer state
    /// refused passes its code through.
    #[test]
    fn store_errors_map_to_kafkas_coordinator_codes() {
        use GroupCode as C;
        let storage = storage::StorageError::InvalidRecord("x".into());
        let rows: Vec<(GroupError, GroupCode)> = vec![
            (GroupError::NotLoaded(2), C::NotCoordinator),
            (GroupError::Storage(storage), C::NotCoordinator),
            (
                GroupError::Codec(super::super::codec::CodecError::Truncated),
                C::UnknownServerError,
            ),
            (
                P::UnknownTopicOrPartition.into(),
                C::CoordinatorNotAvailable,
            ),
            (
                P::NotEnoughReplicas { isr: 1, min_isr: 2 }.into(),
                C::CoordinatorNotAvailable,
            ),
            (
                P::NotEnoughReplicasAfterAppend { isr: 1, min_isr: 2 }.into(),
                C::CoordinatorNotAvailable,
            ),
            (P::RequestTimedOut.into(), C::CoordinatorNotAvailable),
            (P::NotLeaderOrFollower.into(), C::NotCoordinator),
            (P::Unavailable.into(), C::NotCoordinator),
            (P::Storage("disk".into()).into(), C::NotCoordinator),
            (
                P::FencedLeaderEpoch {
                    requested: 1,
                    current: 2,
                }
                .into(),
                C::NotCoordinator,
            ),
            (
                P::UnknownLeaderEpoch {
                    requested: 3,
                    current: 2,
                }
                .into(),
                C::NotCoordinator,
            ),
            (
                P::TooLarge { size: 2, max: 1 }.into(),
                C::UnknownServerError,
            ),
            (
                P::AppendTooLarge {
                    size: 2,
                    segment_bytes: 1,
                }
                .into(),
                C::UnknownServerError,
            ),
            (
                P::InvalidProducerEpoch("stale".into()).into(),
                C::InvalidProducerEpoch,
            ),
            (P::InvalidTxnState("open".into()).into(), C::InvalidTxnState),
            (P::Corrupt("crc".into()).into(), C::UnknownServerError),
            (P::InvalidRecord("r".into()).into(), C::UnknownServerError),
            (P::UnknownTopicId.into(), C::UnknownServerError),
            (P::TopicAuthorizationFailed.into(), C::UnknownServerError),
        ];
        for (error, code) in &rows {
            assert_eq!(store_error_code(error), *code, "{error}");
        }
        // The wire codes of the pass-through rows.
        assert_eq!(C::InvalidProducerEpoch.kafka_code(), 47);
        assert_eq!(C::InvalidTxnState.kafka_code(), 48);
    }
}
