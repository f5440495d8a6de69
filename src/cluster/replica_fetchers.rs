//! The replica fetchers one shard runs and the partitions each follows (the shard's state holds
//! this; `cluster::replicas` drives it). Plain bookkeeping: no shard, no I/O.
//!
//! Invariants: a partition is in at most one fetcher's set; a fetcher whose last partition
//! leaves is marked stopped and forgotten.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;

use crate::partition::{Partition, TopicPartition};

/// A change handed to a fetcher task, applied between its rounds.
pub(super) enum Change {
    Add {
        partition: Rc<Partition>,
        topic_id: uuid::Uuid,
        leader_epoch: i32,
    },
    /// Answered once the task applied it: no round of that fetcher touches the partition
    /// any more.
    Remove(TopicPartition, oneshot::Sender<()>),
}

/// One fetcher task's handle on its shard.
pub(super) struct FetcherHandle {
    pub(super) changes: Rc<RefCell<Vec<Change>>>,
    pub(super) stopped: Rc<Cell<bool>>,
    pub(super) partitions: usize,
}

/// Where a followed partition is fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Following {
    pub(super) leader: i32,
    pub(super) leader_epoch: i32,
    pub(super) fetcher: usize,
}

/// The replica fetchers of one shard and the partitions each follows.
#[derive(Default)]
pub struct ReplicaFetchers {
    pub(super) fetchers: RefCell<HashMap<(i32, usize), FetcherHandle>>,
    pub(super) following: RefCell<HashMap<TopicPartition, Following>>,
    /// The high watermark each fetcher learnt per partition (what a follower starts leading
    /// with: Kafka's follower high watermark).
    pub(super) high_watermarks: Rc<RefCell<HashMap<TopicPartition, i64>>>,
    /// What this shard's fetchers throttle (`replication_quota`).
    pub(super) follower_throttle: Rc<RefCell<super::replication_quota::FollowerThrottle>>,
}

impl ReplicaFetchers {
    /// The follower high watermark a fetcher learnt for `tp`, if any yet.
    pub(super) fn learnt_high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        self.high_watermarks.borrow().get(tp).copied()
    }

    /// Stops fetching `tp` (this broker leads it now, its leader changed or is gone, or it is
    /// deleted); the receiver answers once the fetcher's current round is over (Kafka removes
    /// a partition from its fetcher thread before `makeLeader` / `makeFollower` / deletion).
    pub(super) fn unfollow(&self, tp: &TopicPartition) -> Option<oneshot::Receiver<()>> {
        let was = self.following.borrow_mut().remove(tp)?;
        let mut fetchers = self.fetchers.borrow_mut();
        let key = (was.leader, was.fetcher);
        let handle = fetchers.get_mut(&key)?;
        let (tx, rx) = oneshot::channel();
        handle
            .changes
            .borrow_mut()
            .push(Change::Remove(tp.clone(), tx));
        handle.partitions = handle.partitions.saturating_sub(1);
        if handle.partitions == 0 {
            handle.stopped.set(true);
            fetchers.remove(&key);
        }
        Some(rx)
    }
}
