//! The narrow contexts the modules below the handlers take, built here from the shard's
//! state: each module names only what it uses (its config section, the partition service,
//! the metadata image, its metrics), never the whole `Shard`.
//!
//! Invariants: a context borrows from the shard and lives no longer than the task or call it
//! was built for; building one is a handful of copies, cheap enough per call.

use super::Shard;
use crate::cluster::kraft_metrics::MetricsContext;
use crate::cluster::reassign_local::ReassignContext;
use crate::coordinator_log::io::LogContext;
use crate::groups::GroupContext;
use crate::log_cleaner::CleanerContext;
use crate::txn::TxnContext;

impl Shard {
    /// What the coordinator log (`coordinator_log::io`) uses.
    pub fn log_context(&self) -> LogContext<'_> {
        LogContext {
            shard_id: self.id,
            placement: &self.placement,
            image: &self.topics,
            node_id: self.config.server.node_id,
            partitions: &self.partitions,
        }
    }

    /// What the log cleaner (`log_cleaner::run`) uses.
    pub fn cleaner_context(&self) -> CleanerContext<'_> {
        CleanerContext {
            shard_count: self.mesh.shard_count(),
            config: &self.config.log_cleaner,
            partitions: &self.partitions,
            image: &self.topics,
            metrics: &self.metrics.cleaner,
        }
    }

    /// What the group coordinator (`groups::coordinator`, `store`, `txn_offsets`) uses.
    pub fn group_context(&self) -> GroupContext<'_> {
        GroupContext {
            groups: &self.groups,
            config: &self.config.group,
            log: self.log_context(),
        }
    }

    /// What the transaction log (`txn::store`, `txn::owner_of`) uses.
    pub fn txn_context(&self) -> TxnContext<'_> {
        TxnContext {
            txns: &self.txns,
            config: &self.config.transaction,
            log: self.log_context(),
        }
    }

    /// What the cluster's `/metrics` gauges (`cluster::kraft_metrics`,
    /// `cluster::replication_metrics`) read.
    pub fn metrics_context(&self) -> MetricsContext<'_> {
        MetricsContext {
            cluster: self.cluster.as_deref(),
            image: &self.topics,
            cluster_synced: self.cluster_synced.get(),
            dynamic_configs: &self.dynamic_configs,
            default_log: &self.default_log,
            node_id: self.config.server.node_id,
        }
    }

    /// What dropping reassigned-away copies (`cluster::reassign_local`) uses.
    pub fn reassign_context(&self) -> ReassignContext<'_> {
        ReassignContext {
            is_cluster: self.cluster.is_some(),
            node_id: self.config.server.node_id,
            shard_id: self.id,
            placement: &self.placement,
            partitions: &self.partitions,
            replica_fetchers: &self.replica_fetchers,
            data_dir: &self.config.server.data_dir,
        }
    }
}
