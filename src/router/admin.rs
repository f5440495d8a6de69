//! How admin requests reach the controller (the registry shard, `cluster::controller`), and
//! DeleteRecords on a partition's owner.
//!
//! Invariants: a registry or broker-config change always runs on the registry shard, directly
//! when this is it, else through the mesh; DeleteRecords runs on each partition's owner.

use super::{Router, REGISTRY_SHARD};
use crate::cluster::controller;
pub use crate::cluster::controller::{
    AdminError, ChangeResult, ConfigChange, PartitionGrowth, RegistryChange, TopicRef,
};
pub use crate::cluster::deletion::RemovalFailures;
use crate::cluster::topics::dynamic::{BrokerChange, Scope};
use crate::partition::api::PartitionMsg;
pub use crate::partition::api::{DeleteRecordsItem, DeleteRecordsResult};
use crate::shard::ShardMsg;

impl Router {
    /// Runs a registry change on shard 0; one answer per item, in request order.
    pub async fn change_registry(&self, change: RegistryChange) -> Vec<ChangeResult> {
        let len = change.len();
        self.on_registry(
            change,
            len,
            |change| controller::apply_change(&self.shard, change),
            |change, reply| {
                ShardMsg::run(move |shard| async move {
                    reply.send(controller::apply_change(&shard, change).await);
                })
            },
            || Err(AdminError::Storage("registry shard unavailable".into())),
        )
        .await
    }

    pub async fn delete_records(&self, items: Vec<DeleteRecordsItem>) -> Vec<DeleteRecordsResult> {
        self.scatter(
            items,
            |item| &item.tp,
            |items| self.shard.partitions.delete_records(items),
            |items, reply| PartitionMsg::DeleteRecords { items, reply }.into(),
        )
        .await
    }
}

impl Router {
    /// Changes the dynamic broker configs of one BROKER resource through shard 0.
    pub async fn change_broker_configs(
        &self,
        scope: Scope,
        node_id: i32,
        change: BrokerChange,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let target = (scope, node_id);
        if self.shard.id == REGISTRY_SHARD {
            return controller::alter_broker_configs(&self.shard, target, change, validate_only)
                .await;
        }
        self.shard
            .mesh
            .call(REGISTRY_SHARD, |reply| {
                ShardMsg::run(move |shard| async move {
                    let answer =
                        controller::alter_broker_configs(&shard, target, change, validate_only)
                            .await;
                    reply.send(answer);
                })
            })
            .await
            .unwrap_or_else(|_| Err(AdminError::Storage("registry shard unavailable".into())))
    }
}
