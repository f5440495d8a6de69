//! Completing a transaction: the coordinator's side of Kafka's
//! `TransactionMarkerChannelManager`. For a transaction in PrepareCommit/PrepareAbort, one
//! COMMIT/ABORT marker (a control batch) per partition of the transaction, written through the
//! partition service on each partition's owner shard (`PartitionMsg::WriteMarkers`, which also
//! moves the partition's LSO); then, for each `__consumer_offsets` partition among them, the
//! group coordinator commits or drops the producer's pending TxnOffsetCommit offsets.
//!
//! Invariants: a partition that no longer exists (its topic was deleted) needs no marker, as in
//! Kafka; any other failure is retried by the caller for the partitions still missing one, so a
//! transaction is never completed before all its markers are written.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::state::{TxnMetadata, TxnPartition, TxnState};
use crate::partition::api::MarkerItem;
use crate::partition::{PartitionError, TopicPartition};
use crate::shard::Shard;

/// The coordinator epoch written into markers: the leader epoch of the id's
/// `__transaction_state` partition (a marker from an older coordinator is refused).
fn coordinator_epoch(shard: &Shard, transactional_id: &str) -> i32 {
    let (_, partition) = super::owner_of(shard, transactional_id);
    shard
        .topics
        .borrow()
        .partition(super::TRANSACTION_STATE_TOPIC, partition)
        .map_or(0, |r| r.leader_epoch)
}

/// Writes the markers of `meta`'s prepared transaction to the partitions not in `done`, adding
/// each written one to `done`. Err when some partition still needs its marker.
pub async fn write_missing(
    shard: &Rc<Shard>,
    meta: &TxnMetadata,
    done: &mut BTreeSet<TxnPartition>,
) -> Result<(), ()> {
    let commit = match meta.state {
        TxnState::PrepareCommit => true,
        TxnState::PrepareAbort => false,
        _ => return Ok(()),
    };
    let coordinator_epoch = coordinator_epoch(shard, &meta.transactional_id);
    let todo: Vec<(TxnPartition, MarkerItem)> = meta
        .partitions
        .iter()
        .filter(|p| !done.contains(*p))
        .filter_map(|(topic, partition)| {
            let index = u32::try_from(*partition).ok()?;
            let item = MarkerItem {
                tp: TopicPartition::new(topic, index),
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                coordinator_epoch,
                commit,
                transaction_version: meta.client_txn_version,
            };
            Some(((topic.clone(), *partition), item))
        })
        .collect();
    let items = todo.iter().map(|(_, item)| item.clone()).collect();
    let results = crate::router::markers::write_markers(shard, items).await;
    let mut missing = false;
    for ((partition, item), result) in todo.into_iter().zip(results) {
        match result {
            Ok(()) => {
                if item.tp.topic == crate::internal_topics::OFFSETS_TOPIC {
                    let producer_id = meta.producer_id;
                    crate::groups::complete_txn(shard, item.tp.partition, producer_id, commit)
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
    if missing {
        Err(())
    } else {
        Ok(())
    }
}

fn topic_exists(shard: &Shard, tp: &TopicPartition) -> bool {
    shard
        .topics
        .borrow()
        .get(&tp.topic)
        .is_some_and(|m| tp.partition < m.partitions)
}
