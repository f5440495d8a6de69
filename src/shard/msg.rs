//! What shards say to each other. `ShardMsg` carries each module's own typed message (the
//! partition service's `PartitionMsg`, the group coordinator's `GroupMsg`), the shard's own
//! (ping, metrics), and `Run`: a task to run on the target shard, which is how the registry
//! (shard 0's topic and broker-config changes, producer-id blocks) reaches the others until the
//! cluster module defines its own message. The inbox loop in `shard::serve_inbox` hands each
//! message to its module.
//!
//! Invariants: every message is `Send` and carries only owned data; a message is served in a
//! task of its own, so a long poll never blocks the inbox.

use std::future::Future;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;
use shards::Reply;

use super::Shard;
use crate::groups::api::GroupMsg;
use crate::partition::api::PartitionMsg;

/// A task another shard asks this one to run (with this shard's state).
pub type ShardTask = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, ()> + Send>;

/// Every message a shard can receive from another.
pub enum ShardMsg {
    /// To a partition's owner: the partition service's operations (`partition::api`).
    Partition(PartitionMsg),
    /// To a group's coordinator shard (see `groups::route`).
    Group(GroupMsg),
    /// To a transactional id's coordinator shard (see `txn::route`).
    Txn(crate::txn::api::TxnMsg),
    /// Answered once the shard serves its inbox (startup barrier).
    Ping { reply: Reply<()> },
    /// From the shard serving /metrics: this shard's metrics now.
    Metrics {
        reply: Reply<crate::metrics::ShardSnapshot>,
    },
    /// Run a task on the receiving shard (the registry's changes and broadcasts).
    Run(ShardTask),
}

impl ShardMsg {
    /// A message that runs `task` on the receiving shard.
    pub fn run<F, Fut>(task: F) -> Self
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Self::Run(Box::new(move |shard| Box::pin(task(shard))))
    }
}

impl From<PartitionMsg> for ShardMsg {
    fn from(msg: PartitionMsg) -> Self {
        Self::Partition(msg)
    }
}

impl From<GroupMsg> for ShardMsg {
    fn from(msg: GroupMsg) -> Self {
        Self::Group(msg)
    }
}

impl From<crate::txn::api::TxnMsg> for ShardMsg {
    fn from(msg: crate::txn::api::TxnMsg) -> Self {
        Self::Txn(msg)
    }
}
