//! The narrow contexts the cluster modules take (`cluster::controller`, `open`, `replicas`,
//! `deletion`, `follow`, `duties`, ...), built here from the shard's state, and what the
//! cluster asks of a shard without naming it: applying a broadcast change (`ShardApply`, with
//! the shard's topic hooks), the internal topics the controller's duties create
//! (`InternalTopics`), the image a broker's address is read from (`ImageSource`).
//!
//! Invariants: a context borrows from the shard and lives no longer than the task or call it
//! was built for (a long-running loop is spawned with the shard and builds its context
//! inside); building one is a handful of copies, cheap enough per call.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::Shard;
use crate::cluster::broadcast::{Broadcast, ShardApply};
use crate::cluster::controller::{AdoptContext, ControllerContext, ControllerSource};
use crate::cluster::deletion::{DeletionContext, RemovalFailures};
use crate::cluster::duties::{DutiesContext, InternalTopics};
use crate::cluster::follow::FollowContext;
use crate::cluster::open::OpenContext;
use crate::cluster::replicas::{ImageSource, ReplicasContext};
use crate::cluster::{MetadataImage, MetadataRecord};
use crate::topics::TopicMeta;

impl Shard {
    /// Every shard, this one directly (`cluster::broadcast`).
    pub fn broadcast(&self) -> Broadcast<'_> {
        Broadcast {
            shard_id: self.id,
            mesh: &self.mesh,
            local: self,
        }
    }

    /// What the controller (`cluster::controller`, `leader_election`, `reassign_run`,
    /// `security_control`) uses.
    pub fn controller_context(&self) -> ControllerContext<'_> {
        ControllerContext {
            shard_id: self.id,
            cluster: self.cluster.as_ref(),
            config: &self.config,
            default_log: &self.default_log,
            image: &self.topics,
            dynamic_configs: &self.dynamic_configs,
            registry_lock: &self.registry_lock,
            cluster_synced: &self.cluster_synced,
            broadcast: self.broadcast(),
        }
    }

    /// What replica roles and the replication loops (`cluster::replicas`) use.
    pub fn replicas_context(&self) -> ReplicasContext<'_> {
        ReplicasContext {
            shard_id: self.id,
            cluster: self.cluster.as_ref(),
            config: &self.config,
            default_log: &self.default_log,
            image: &self.topics,
            dynamic_configs: &self.dynamic_configs,
            placement: &self.placement,
            partitions: &self.partitions,
            replica_fetchers: &self.replica_fetchers,
            hw_checkpoint: &self.hw_checkpoint,
            shutdown: &self.shutdown,
        }
    }

    /// What opening the owned partitions (`cluster::open`) uses.
    pub fn open_context(&self) -> OpenContext<'_> {
        OpenContext {
            shard_id: self.id,
            config: &self.config,
            default_log: &self.default_log,
            dynamic_configs: &self.dynamic_configs,
            placement: &self.placement,
            partitions: &self.partitions,
            previous_shutdown_clean: self.previous_shutdown_clean,
            replicas: self.replicas_context(),
            reassign: self.reassign_context(),
        }
    }

    /// What adopting committed records (`cluster::controller::adopt_records`) uses.
    pub fn adopt_context(&self) -> AdoptContext<'_> {
        AdoptContext {
            shard_id: self.id,
            node_id: self.config.server.node_id,
            image: &self.topics,
            dynamic_configs: &self.dynamic_configs,
            quotas: &self.quotas,
            open: self.open_context(),
        }
    }

    /// What removing deleted topics (`cluster::deletion::remove_topics`) uses.
    pub fn deletion_context(&self) -> DeletionContext<'_> {
        DeletionContext {
            image: &self.topics,
            placement: &self.placement,
            partitions: &self.partitions,
            replica_fetchers: &self.replica_fetchers,
            data_dir: &self.config.server.data_dir,
        }
    }

    /// What following the committed image (`cluster::follow`) uses.
    pub fn follow_context(&self) -> FollowContext<'_> {
        FollowContext {
            image: &self.topics,
            cluster_synced: &self.cluster_synced,
            broadcast: self.broadcast(),
        }
    }
}

/// The controller's duties (`cluster::duties`) run with the shard's `Rc`: creating the
/// transaction log takes it.
pub fn duties_context(shard: &Rc<Shard>) -> DutiesContext<'_> {
    DutiesContext {
        controller: shard.controller_context(),
        internal_topics: shard,
    }
}

impl ShardApply for Shard {
    fn adopt(&self, records: Vec<MetadataRecord>) -> LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            let metas =
                crate::cluster::controller::adopt_records(&self.adopt_context(), records).await;
            // Modules that load state from new topics (the group coordinator, for the offsets
            // topic).
            for hook in &self.on_topics_adopted {
                hook(self, &metas).await;
            }
        })
    }

    fn remove_topics(&self, doomed: Vec<TopicMeta>) -> LocalBoxFuture<'_, RemovalFailures> {
        Box::pin(async move {
            let names: HashSet<String> = doomed.iter().map(|meta| meta.name.clone()).collect();
            let failed =
                crate::cluster::deletion::remove_topics(&self.deletion_context(), doomed).await;
            // Group offsets of the deleted topics (Kafka's GroupCoordinator.onPartitionsDeleted).
            for hook in &self.on_topics_deleted {
                hook(self, &names).await;
            }
            failed
        })
    }
}

impl ControllerSource for Shard {
    fn controller_context(&self) -> ControllerContext<'_> {
        Shard::controller_context(self)
    }
}

impl ImageSource for Shard {
    fn metadata_image(&self) -> &RefCell<MetadataImage> {
        &self.topics
    }
}

impl InternalTopics for Rc<Shard> {
    fn offsets_topic(&self) -> crate::cluster::controller::NewTopic {
        crate::groups::offsets_topic(self)
    }

    fn ensure_transaction_log(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(crate::txn::ensure_log_topic(self))
    }
}
