//! How admin requests reach the controller (the registry shard, `cluster::controller`), and
//! DeleteRecords on a partition's owner.
//!
//! Invariants: a registry or broker-config change always runs on the registry shard, directly
//! when this is it, else through the mesh; DeleteRecords runs on each partition's owner.

use futures_util::future::LocalBoxFuture;

use super::{CreateResult, NewTopic, Router, REGISTRY_SHARD};
pub use crate::cluster::controller::{
    AdminError, ChangeResult, ConfigChange, PartitionGrowth, RegistryChange, TopicRef,
};
pub use crate::cluster::deletion::RemovalFailures;
use crate::cluster::topics::dynamic::{BrokerChange, Scope};
use crate::partition::api::PartitionMsg;
pub use crate::partition::api::{DeleteRecordsItem, DeleteRecordsResult};
use crate::producers::{IdBlock, IdError};
use crate::shard::ShardMsg;

/// The controller's operations (`cluster::controller`) as the router runs them on the
/// registry shard: implemented by the shard (`shard::contexts_txn`), so that routing names
/// only these operations, not the shard's state.
pub trait Registry {
    /// CreateTopics (`controller::create_topics`); one answer per topic, in order.
    fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> LocalBoxFuture<'_, Vec<CreateResult>>;
    /// A registry change (`controller::apply_change`); one answer per item, in order.
    fn apply_change(&self, change: RegistryChange) -> LocalBoxFuture<'_, Vec<ChangeResult>>;
    /// A BROKER resource's dynamic configs (`controller::alter_broker_configs`).
    fn alter_broker_configs(
        &self,
        target: (Scope, i32),
        change: BrokerChange,
        validate_only: bool,
    ) -> LocalBoxFuture<'_, Result<(), AdminError>>;
    /// A block of producer ids (`controller::allocate_producer_ids`).
    fn allocate_producer_ids(&self) -> LocalBoxFuture<'_, Result<IdBlock, IdError>>;
}

impl Router<'_> {
    /// Runs a registry change on shard 0; one answer per item, in request order.
    pub async fn change_registry(&self, change: RegistryChange) -> Vec<ChangeResult> {
        let len = change.len();
        self.on_registry(
            change,
            len,
            |change| self.ctx.registry.apply_change(change),
            |change, reply| {
                ShardMsg::run(move |registry| async move {
                    reply.send(Registry::apply_change(&*registry, change).await);
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
            |items| self.ctx.partitions.delete_records(items),
            |items, reply| PartitionMsg::DeleteRecords { items, reply }.into(),
        )
        .await
    }
}

impl Router<'_> {
    /// Changes the dynamic broker configs of one BROKER resource through shard 0.
    pub async fn change_broker_configs(
        &self,
        scope: Scope,
        node_id: i32,
        change: BrokerChange,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let target = (scope, node_id);
        if self.ctx.shard_id == REGISTRY_SHARD {
            let registry = self.ctx.registry;
            return registry
                .alter_broker_configs(target, change, validate_only)
                .await;
        }
        self.ctx
            .mesh
            .call(REGISTRY_SHARD, |reply| {
                ShardMsg::run(move |registry| async move {
                    let answer =
                        Registry::alter_broker_configs(&*registry, target, change, validate_only)
                            .await;
                    reply.send(answer);
                })
            })
            .await
            .unwrap_or_else(|_| Err(AdminError::Storage("registry shard unavailable".into())))
    }
}
