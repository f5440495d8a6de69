//! Transactions: the transaction coordinator (KIP-98, with KIP-890's transaction version 2).
//!
//! Each transactional id is owned by one shard: the owner of partition
//! `java_hash(transactional_id) % P` of `__transaction_state` (P = its partition count, Kafka's
//! formula), found and loaded through the shared coordinator log (`coordinator_log`), like the
//! group coordinator's groups. `state` is the pure state machine, `codec` Kafka's record
//! schemas, `store` persistence and load, `coordinator` runs the machine on the shard, and
//! `markers` completes transactions by writing their markers through the partition service.
//!
//! Invariants: an op for an id runs only on its owner shard; the owner answers
//! COORDINATOR_LOAD_IN_PROGRESS until it has replayed the id's partition; every transition is
//! in the log before it is answered; every message between shards carries owned data only.

pub mod api;
pub mod channel;
pub mod code;
pub mod codec;
pub mod coordinator;
pub mod failures;
pub mod markers;
pub mod state;
pub mod store;
pub mod table;
pub mod verify;

#[cfg(test)]
mod state_tests;

use std::net::SocketAddr;

use shards::ShardId;

pub use self::api::*;
pub use self::table::Coordinator;
use crate::groups::{GroupContext, GroupRoutingContext};
pub use crate::internal_topics::TRANSACTION_STATE_TOPIC;
use crate::router::{Router, RouterContext};

/// What the transaction log (`store`) and the id-to-partition mapping use of the shard (built
/// by the shard, `shard::contexts`).
#[derive(Clone, Copy)]
pub struct TxnContext<'a> {
    /// The transactional ids this shard coordinates.
    pub txns: &'a Coordinator,
    pub config: &'a crate::config::TransactionSection,
    /// `__transaction_state`'s log on this shard: placement, image, partitions.
    pub log: crate::coordinator_log::io::LogContext<'a>,
}

/// What the coordinator's ops, their routing between shards, the markers and KIP-890's
/// verification use (built by the shard, `shard::contexts_txn`).
#[derive(Clone, Copy)]
pub struct TxnCoordinatorContext<'a> {
    /// The transaction log: this shard's ids, the config, `__transaction_state`'s partitions.
    pub txn: TxnContext<'a>,
    /// The other shards (mesh), partitions' owners (markers), the registry (producer ids, the
    /// log topic's creation), the metadata image (leaders, this broker).
    pub router: RouterContext<'a>,
    /// This shard's group coordinator: the offsets of a transaction whose marker is written.
    pub groups: GroupContext<'a>,
    pub shutdown: &'a shards::Shutdown,
    /// What the shard does for the coordinator: completion tasks, brokers' addresses.
    pub host: &'a dyn TxnHost,
}

impl<'a> TxnCoordinatorContext<'a> {
    /// Routing to the group coordinator (`groups::complete_txn`).
    pub fn group_routing(&self) -> GroupRoutingContext<'a> {
        GroupRoutingContext {
            group: self.groups,
            router: self.router,
        }
    }
}

/// What the coordinator asks of the shard it runs on beyond borrowed state (implemented by
/// the shard, `shard::contexts_txn`).
pub trait TxnHost {
    /// Runs `coordinator::complete` for `transactional_id` in a task of its own (a completion
    /// outlives the op that starts it), with a context that task owns.
    fn spawn_completion(&self, transactional_id: String);
    /// A broker's inter-broker address from the metadata image (`None`: not registered, or no
    /// endpoint).
    fn broker_addr(&self, broker: i32) -> Option<SocketAddr>;
    /// `broker_addr` for the marker channels' sender tasks: holds the shard weakly (the
    /// channels live as long as the shard).
    fn resolver(&self) -> channel::Resolver;
}

/// The partition count of `__transaction_state` (the existing topic's, else the config's).
pub fn log_partitions(shard: &TxnContext<'_>) -> u32 {
    shard
        .log
        .image
        .borrow()
        .get(TRANSACTION_STATE_TOPIC)
        .map_or(shard.config.transaction_state_log_num_partitions, |m| {
            m.partitions
        })
}

/// The shard coordinating `transactional_id`, and its `__transaction_state` partition.
pub fn owner_of(shard: &TxnContext<'_>, transactional_id: &str) -> (ShardId, u32) {
    let partition = crate::coordinator_log::partition_for(transactional_id, log_partitions(shard));
    (
        shard
            .log
            .placement
            .shard_for(TRANSACTION_STATE_TOPIC, partition),
        partition,
    )
}

/// Serves a [`TxnMsg`] from another shard.
pub async fn serve(shard: &TxnCoordinatorContext<'_>, msg: TxnMsg) {
    msg.reply.send(coordinator::execute(shard, msg.op).await);
}

/// Runs `op` on the id's owner shard (directly when that is this shard).
pub async fn route(shard: &TxnCoordinatorContext<'_>, op: TxnOp) -> TxnAnswer {
    let Some(id) = op.transactional_id() else {
        return coordinator::execute(shard, op).await;
    };
    let (owner, partition) = owner_of(&shard.txn, id);
    if !id.is_empty()
        && !crate::coordinator_log::io::leads_partition(
            &shard.txn.log,
            TRANSACTION_STATE_TOPIC,
            partition,
        )
    {
        // Another broker coordinates the id: the client finds it again (FindCoordinator), as
        // Kafka answers NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS would keep it here).
        return TxnAnswer::Error(TxnCode::NotCoordinator);
    }
    call_shard(shard, owner, op).await
}

async fn call_shard(shard: &TxnCoordinatorContext<'_>, owner: ShardId, op: TxnOp) -> TxnAnswer {
    if owner == shard.router.shard_id {
        return coordinator::execute(shard, op).await;
    }
    let call = shard
        .router
        .mesh
        .call(owner, |reply| TxnMsg { op, reply }.into());
    call.await
        .unwrap_or(TxnAnswer::Error(TxnCode::CoordinatorNotAvailable))
}

/// ListTransactions: every shard's ids matching `filter`.
pub async fn list_all(
    shard: &TxnCoordinatorContext<'_>,
    filter: ListFilter,
) -> Result<Vec<ListedTxn>, TxnCode> {
    let calls = shard
        .router
        .mesh
        .shards()
        .map(|id| call_shard(shard, id, TxnOp::List(filter.clone())));
    let mut all = Vec::new();
    for answer in futures_util::future::join_all(calls).await {
        match answer {
            TxnAnswer::Listed(txns) => all.extend(txns),
            TxnAnswer::Error(code) => return Err(code),
            _ => return Err(TxnCode::UnknownServerError),
        }
    }
    all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(all)
}

/// Startup on every shard: replays the `__transaction_state` partitions this shard owns.
pub async fn start(shard: &TxnContext<'_>) {
    store::load_owned(shard).await;
}

/// Called after a shard adopted topic changes: forgets the transaction log partitions this
/// broker no longer leads (it never writes to them again; their new leader completes what was
/// in flight) and loads the ones it now leads.
pub async fn adopted(shard: &TxnContext<'_>, changed: &[crate::topics::TopicMeta]) {
    if changed.iter().any(|m| m.name == TRANSACTION_STATE_TOPIC) {
        for index in shard.txns.loaded_partitions() {
            if !crate::coordinator_log::io::leads_partition(
                &shard.log,
                TRANSACTION_STATE_TOPIC,
                index,
            ) {
                let ids = shard.txns.unload(index);
                tracing::info!(
                    partition = index,
                    ids,
                    "transaction log partition led elsewhere now; ids unloaded"
                );
            }
        }
        store::load_owned(shard).await;
    }
}

/// `transaction.state.log.replication.factor`. In a KRaft cluster it is Kafka's rule (as for
/// `__consumer_offsets`): the topic is created with that factor, and creation fails
/// (INVALID_REPLICATION_FACTOR; FindCoordinator answers COORDINATOR_NOT_AVAILABLE, the active
/// controller retries) until that many brokers are registered. A single node without KRaft
/// settings caps it at the brokers registered (itself).
fn log_replication_factor(shard: &TxnCoordinatorContext<'_>) -> i16 {
    let factor = shard.txn.config.transaction_state_log_replication_factor;
    if shard.router.is_cluster {
        return factor;
    }
    let brokers = shard.router.image.borrow().brokers().count().max(1);
    factor.min(i16::try_from(brokers).unwrap_or(i16::MAX))
}

/// Creates `__transaction_state` if absent (on the first FindCoordinator for a transaction,
/// or by the active controller of a KRaft cluster), with
/// Kafka's configs for it (`TransactionStateManager.transactionTopicConfigs`:
/// cleanup.policy=compact, compression.type=uncompressed, segment.bytes=
/// `transaction.state.log.segment.bytes`, unclean.leader.election.enable=false). Its
/// replication factor is `log_replication_factor`. A failure is logged, not fatal:
/// transactions then answer COORDINATOR_NOT_AVAILABLE. (Takes what converts into the
/// context: the controller's duties call it with the shard.)
pub async fn ensure_log_topic<'a>(shard: impl Into<TxnCoordinatorContext<'a>>) {
    let shard = &shard.into();
    let mut configs = crate::topics::config::TopicOverrides::new();
    configs.insert("cleanup.policy".into(), "compact".into());
    configs.insert("compression.type".into(), "uncompressed".into());
    configs.insert(
        "segment.bytes".into(),
        shard
            .txn
            .config
            .transaction_state_log_segment_bytes
            .to_string(),
    );
    configs.insert("unclean.leader.election.enable".into(), "false".into());
    let replication_factor = log_replication_factor(shard);
    let topic = crate::coordinator_log::io::InternalTopic {
        name: TRANSACTION_STATE_TOPIC,
        partitions: shard.txn.config.transaction_state_log_num_partitions,
        replication_factor,
        configs,
    };
    if let Err(e) = crate::coordinator_log::io::ensure_topic(
        shard.router.image,
        Router::new(shard.router),
        topic,
    )
    .await
    {
        tracing::error!(error = %e, "transactions unavailable");
    }
}
