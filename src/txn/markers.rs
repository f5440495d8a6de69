//! Completing a transaction: the coordinator's side of Kafka's
//! `TransactionMarkerChannelManager`. For a transaction in PrepareCommit/PrepareAbort, one
//! COMMIT/ABORT marker (a control batch) per partition of the transaction, written through the
//! partition service on each partition's owner shard (`PartitionMsg::WriteMarkers`, which also
//! moves the partition's LSO); then, for each `__consumer_offsets` partition among them, the
//! group coordinator commits or drops the producer's pending TxnOffsetCommit offsets. In a
//! cluster, partitions led by other brokers get their markers over WriteTxnMarkers
//! (`channel`), their leaders re-read from the metadata image at every attempt.
//!
//! Invariants: a partition that no longer exists (its topic was deleted) needs no marker, as in
//! Kafka; any other failure is retried by the caller for the partitions still missing one, so a
//! transaction is never completed before all its markers are written.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

use super::channel::{RemoteMarker, Resolver};
use super::state::{TxnMetadata, TxnPartition, TxnState};
use super::TxnCoordinatorContext;
use crate::partition::api::MarkerItem;
use crate::partition::{PartitionError, TopicPartition};

/// The coordinator epoch written into markers: the leader epoch of the id's
/// `__transaction_state` partition (a marker from an older coordinator is refused).
fn coordinator_epoch(shard: &TxnCoordinatorContext<'_>, transactional_id: &str) -> i32 {
    let (_, partition) = super::owner_of(&shard.txn, transactional_id);
    shard
        .router
        .image
        .borrow()
        .partition(super::TRANSACTION_STATE_TOPIC, partition)
        .map_or(0, |r| r.leader_epoch)
}

/// Where a partition's marker is written: on this broker (through the partition service) or
/// sent to its leader on another broker; `None` while the image names no leader.
fn destination(shard: &TxnCoordinatorContext<'_>, tp: &TopicPartition) -> Option<Option<i32>> {
    if !shard.router.is_cluster {
        return Some(None);
    }
    let image = shard.router.image.borrow();
    match image.partition(&tp.topic, tp.partition) {
        // Unknown to the image: the local write answers (a deleted topic needs no marker).
        None => Some(None),
        Some(r) if r.leader == shard.router.node_id => Some(None),
        Some(r) if r.leader >= 0 => Some(Some(r.leader)),
        Some(_) => None,
    }
}

/// Writes the markers of `meta`'s prepared transaction to the partitions not in `done`, adding
/// each written one to `done`: the ones this broker leads through the partition service, the
/// others as WriteTxnMarkers to their leaders (`channel`), each leader re-read from the image
/// at every attempt. Err when some partition still needs its marker.
pub async fn write_missing(
    shard: &TxnCoordinatorContext<'_>,
    meta: &TxnMetadata,
    done: &mut BTreeSet<TxnPartition>,
) -> Result<(), ()> {
    let commit = match meta.state {
        TxnState::PrepareCommit => true,
        TxnState::PrepareAbort => false,
        _ => return Ok(()),
    };
    let coordinator_epoch = coordinator_epoch(shard, &meta.transactional_id);
    let mut local: Vec<(TxnPartition, MarkerItem)> = Vec::new();
    let mut remote: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
    let mut missing = false;
    for (topic, partition) in meta.partitions.iter().filter(|p| !done.contains(*p)) {
        let Ok(index) = u32::try_from(*partition) else {
            continue;
        };
        let tp = TopicPartition::new(topic, index);
        let key = (topic.clone(), *partition);
        match destination(shard, &tp) {
            None => missing = true,
            Some(Some(broker)) => remote.entry(broker).or_default().push(key),
            Some(None) => {
                let item = MarkerItem {
                    tp,
                    producer_id: meta.producer_id,
                    producer_epoch: meta.producer_epoch,
                    coordinator_epoch,
                    commit,
                    transaction_version: meta.client_txn_version,
                };
                local.push((key, item));
            }
        }
    }
    let sent = send_remote(shard, meta, coordinator_epoch, commit, remote);
    let (local_missing, remote_missing) =
        futures_util::future::join(write_local(shard, meta, commit, local, done), sent).await;
    let (remote_missing, written) = remote_missing;
    done.extend(written);
    if missing || local_missing || remote_missing {
        Err(())
    } else {
        Ok(())
    }
}

/// The markers of partitions this broker leads; true when some is still missing.
async fn write_local(
    shard: &TxnCoordinatorContext<'_>,
    meta: &TxnMetadata,
    commit: bool,
    todo: Vec<(TxnPartition, MarkerItem)>,
    done: &mut BTreeSet<TxnPartition>,
) -> bool {
    if todo.is_empty() {
        return false;
    }
    let items = todo.iter().map(|(_, item)| item.clone()).collect();
    let results = crate::router::Router::new(shard.router)
        .write_markers(items)
        .await;
    let mut missing = false;
    for ((partition, item), result) in todo.into_iter().zip(results) {
        match result {
            Ok(()) => {
                if item.tp.topic == crate::internal_topics::OFFSETS_TOPIC {
                    let producer_id = meta.producer_id;
                    let groups = shard.group_routing();
                    crate::groups::complete_txn(&groups, item.tp.partition, producer_id, commit)
                        .await;
                }
                done.insert(partition);
            }
            Err(PartitionError::UnknownTopicOrPartition) if !topic_exists(shard, &item.tp) => {
                tracing::info!(partition = %item.tp.dir_name(), "no marker: partition deleted");
                done.insert(partition);
            }
            Err(e) => {
                tracing::debug!(partition = %item.tp.dir_name(), error = %e, "marker not written");
                missing = true;
            }
        }
    }
    missing
}

/// The markers of partitions led by other brokers, one queued request per broker; answers
/// whether some is still missing and the partitions written. The leader writes the markers
/// of `__consumer_offsets` partitions and completes their offsets itself (its
/// WriteTxnMarkers handler).
async fn send_remote(
    shard: &TxnCoordinatorContext<'_>,
    meta: &TxnMetadata,
    coordinator_epoch: i32,
    commit: bool,
    remote: BTreeMap<i32, Vec<TxnPartition>>,
) -> (bool, Vec<TxnPartition>) {
    let mut missing = false;
    let mut calls = Vec::new();
    // Holds the shard weakly: the sender task this may start lives as long as its channels.
    let resolver: Resolver = shard.host.resolver();
    for (broker, partitions) in remote {
        let marker = RemoteMarker {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            coordinator_epoch,
            commit,
            partitions: partitions
                .iter()
                .map(|(t, p)| TopicPartition::new(t, u32::try_from(*p).unwrap_or(0)))
                .collect(),
        };
        match shard.txn.txns.channels.enqueue(&resolver, broker, marker) {
            Ok(answer) => calls.push(async move { (broker, partitions, answer.await) }),
            Err(e) => {
                tracing::debug!(error = %e, "markers not queued");
                missing = true;
            }
        }
    }
    let mut written = Vec::new();
    for (broker, partitions, answer) in futures_util::future::join_all(calls).await {
        let codes = answer.unwrap_or_default();
        for (i, partition) in partitions.into_iter().enumerate() {
            let code = codes
                .get(i)
                .copied()
                .unwrap_or(ResponseError::NetworkException.code());
            let tp = TopicPartition::new(&partition.0, u32::try_from(partition.1).unwrap_or(0));
            if code == 0
                || (code == ResponseError::UnknownTopicOrPartition.code()
                    && !topic_exists(shard, &tp))
            {
                written.push(partition);
            } else {
                tracing::debug!(broker, partition = %tp.dir_name(), code, "remote marker not written");
                missing = true;
            }
        }
    }
    (missing, written)
}

fn topic_exists(shard: &TxnCoordinatorContext<'_>, tp: &TopicPartition) -> bool {
    shard
        .router
        .image
        .borrow()
        .get(&tp.topic)
        .is_some_and(|m| tp.partition < m.partitions)
}
