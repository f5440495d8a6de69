//! The active controller's own duties on shard 0 of a controller node: adopt a single-node
//! data directory into an empty cluster image (once), and create `__consumer_offsets` once a
//! broker can host it; every `leader.imbalance.check.interval.seconds`, the auto leader
//! rebalance (`auto.leader.rebalance.enable`, `leader_election::rebalance_once`). Never fatal:
//! retried every second while this node is the active controller.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::controller::{self, ControllerContext};
use super::node::ClusterNode;
use super::{store, topics};

/// The internal topics the duties create, as their owners describe them (the group
/// coordinator's `__consumer_offsets`, the transaction coordinator's log; implemented by the
/// shard, `shard::contexts_cluster`).
pub trait InternalTopics {
    /// `__consumer_offsets` as the group coordinator wants it created.
    fn offsets_topic(&self) -> controller::NewTopic;
    /// Creates the transaction log unless it exists.
    fn ensure_transaction_log(&self) -> LocalBoxFuture<'_, ()>;
}

/// What the controller's duties use of shard 0 (built by the shard, `shard::contexts_cluster`).
pub struct DutiesContext<'a> {
    pub controller: ControllerContext<'a>,
    pub internal_topics: &'a dyn InternalTopics,
}

/// On shard 0 of a controller node, while it is the active controller: adopts the topics of a
/// single-node data directory into an empty cluster image (once), and creates
/// `__consumer_offsets` once a broker can host it. Never fatal: retried every second.
pub async fn run(duties: &DutiesContext<'_>, node: Arc<ClusterNode>) {
    let shard = &duties.controller;
    let mut adopted = false;
    let rebalance_every = std::time::Duration::from_secs(
        shard
            .config
            .controller
            .leader_imbalance_check_interval_seconds,
    );
    let mut rebalanced_at = std::time::Instant::now();
    loop {
        compio::time::sleep(std::time::Duration::from_secs(1)).await;
        if !node.is_active_controller() {
            // A controller that just became active waits a full interval (Kafka schedules
            // the first check one interval after activation).
            rebalanced_at = std::time::Instant::now();
            continue;
        }
        if shard.config.controller.auto_leader_rebalance_enable
            && rebalanced_at.elapsed() >= rebalance_every
        {
            rebalanced_at = std::time::Instant::now();
            super::leader_election::rebalance_once(shard).await;
        }
        let committed_empty = {
            let state = node.image.lock();
            state.image.is_empty() && state.image.next_producer_id() == 0
        };
        let (empty, has_offsets, usable) = {
            let image = shard.image.borrow();
            (
                committed_empty && image.is_empty() && image.next_producer_id() == 0,
                image.get(crate::internal_topics::OFFSETS_TOPIC).is_some(),
                !controller::usable_brokers(&image).is_empty(),
            )
        };
        if !adopted && empty {
            adopted = true;
            adopt_single_node_dir(shard).await;
            continue;
        }
        adopted = true;
        if !has_offsets && usable {
            let topic = duties.internal_topics.offsets_topic();
            let created = controller::create_topics(shard, vec![topic], false).await;
            if let Some(Err(e)) = created.first() {
                tracing::debug!(error = %e, "cannot create the offsets topic yet");
            }
        }
        let has_txn_log = shard
            .image
            .borrow()
            .get(crate::txn::TRANSACTION_STATE_TOPIC)
            .is_some();
        if has_offsets && !has_txn_log && usable {
            duties.internal_topics.ensure_transaction_log().await;
        }
    }
}

/// An existing single-node data directory (`__cluster/topics.toml`, producer ids, broker
/// configs) becomes the cluster's first metadata, so a node switched to KRaft keeps its
/// topics: one proposal of the records that rebuild it.
async fn adopt_single_node_dir(shard: &ControllerContext<'_>) {
    let old = match store::load(&shard.config.server.data_dir, shard.config.server.node_id) {
        Ok(image) => image,
        Err(e) => {
            tracing::warn!(error = %e, "single-node metadata in the data dir not adopted");
            return;
        }
    };
    let records = old.snapshot_records();
    if records.is_empty() {
        return;
    }
    let _guard = shard.registry_lock.lock().await;
    match controller::commit(shard, records).await {
        Ok(()) => {
            tracing::info!(
                topics = old.len(),
                "adopted the single-node metadata of the data directory into the cluster"
            );
            // Adopted once: the cluster's log owns it now.
            let registry = topics::registry_path(&shard.config.server.data_dir);
            let mut moved = registry.clone().into_os_string();
            moved.push(".adopted");
            if let Err(e) = std::fs::rename(&registry, &moved) {
                tracing::warn!(error = %e, "cannot set the adopted topic registry aside");
            }
        }
        Err(e) => tracing::warn!(error = %e, "adopting the single-node metadata failed"),
    }
}
