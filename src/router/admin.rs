//! How admin requests reach the controller (the registry shard, `cluster::controller`), and
//! DeleteRecords on a partition's owner.
//!
//! Invariants: a registry or broker-config change always runs on the registry shard, directly
//! when this is it, else through the mesh; DeleteRecords runs on each partition's owner.

use futures_util::future::join_all;

use super::{PartitionError, Router, ShardMsg, REGISTRY_SHARD};
use crate::cluster::controller;
pub use crate::cluster::controller::{
    AdminError, ChangeResult, ConfigChange, PartitionGrowth, RegistryChange, TopicRef,
};
pub use crate::cluster::deletion::RemovalFailures;
use crate::cluster::topics::dynamic::{BrokerChange, Scope};
use crate::partition::{Partition, TopicPartition};
use crate::shard::Shard;

/// DeleteRecords for one partition: `offset` -1 means the high watermark.
#[derive(Debug, Clone)]
pub struct DeleteRecordsItem {
    pub tp: TopicPartition,
    pub offset: i64,
}

/// The new low watermark (log start offset).
pub type DeleteRecordsResult = Result<i64, PartitionError>;

impl Router {
    /// Runs a registry change on shard 0; one answer per item, in request order.
    pub async fn change_registry(&self, change: RegistryChange) -> Vec<ChangeResult> {
        let len = change.len();
        self.on_registry(
            change,
            len,
            |change| controller::apply_change(&self.shard, change),
            |change, reply| ShardMsg::Admin { change, reply },
            || Err(AdminError::Storage("registry shard unavailable".into())),
        )
        .await
    }

    pub async fn delete_records(&self, items: Vec<DeleteRecordsItem>) -> Vec<DeleteRecordsResult> {
        self.scatter(
            items,
            |item| self.owner(&item.tp),
            |items| delete_records(&self.shard, items),
            |items, reply| ShardMsg::DeleteRecords { items, reply },
        )
        .await
    }
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
            return controller::alter_broker_configs(&self.shard, scope, change, validate_only)
                .await;
        }
        self.shard
            .mesh
            .call(REGISTRY_SHARD, |reply| ShardMsg::BrokerConfigs {
                scope,
                change,
                validate_only,
                reply,
            })
            .await
            .unwrap_or_else(|_| Err(AdminError::Storage("registry shard unavailable".into())))
    }
}

/// Owner side of DeleteRecords.
pub async fn delete_records(
    shard: &Shard,
    items: Vec<DeleteRecordsItem>,
) -> Vec<DeleteRecordsResult> {
    let deletions = items.into_iter().map(|item| async move {
        let partition = shard
            .partitions
            .get(&item.tp)
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        delete_records_one(&partition, item.offset).await
    });
    join_all(deletions).await
}

async fn delete_records_one(partition: &Partition, offset: i64) -> DeleteRecordsResult {
    let log = &partition.log;
    let high_watermark = partition.high_watermark().0;
    let target = if offset == -1 { high_watermark } else { offset };
    if target < 0 || target > high_watermark {
        return Err(PartitionError::OffsetOutOfRange {
            offset,
            log_start: log.log_start_offset().0,
            log_end: high_watermark,
        });
    }
    // Storage bounds deletion by the durable end; the broker's high watermark is the log end
    // (acks=1 data is visible before fsync), so make what is visible durable first.
    if target > log.durable_end_offset().0 {
        log.flush()
            .await
            .map_err(|e| io_is_fatal(&partition.tp, e))?;
    }
    let start = log
        .delete_records_before(storage::Offset(target))
        .await
        .map_err(|e| io_is_fatal(&partition.tp, e))?;
    partition.producers.borrow_mut().evict_below(start.0);
    Ok(start.0)
}

fn io_is_fatal(tp: &TopicPartition, error: storage::StorageError) -> PartitionError {
    if let storage::StorageError::Io(e) = &error {
        shards::fatal(format!("storage I/O error on {}: {e}", tp.dir_name()));
    }
    PartitionError::from_storage(error)
}
