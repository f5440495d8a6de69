//! The groups one shard coordinates, with their offsets and the offsets partitions it loaded:
//! plain shard-local state (the coordinator's operations on it are in `coordinator`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use futures_channel::oneshot;

use super::codec::OffsetValue;
use super::state::{Effect, Group, JoinReply, Limits, SyncReply, WaiterId};
use crate::config::BrokerConfig;

pub use crate::clock::system_now_ms as now_ms;

/// Per loaded offsets partition: its write lock (commits, group records and expiry
/// tombstones are decided and appended under it); the shared coordinator-log type.
pub use crate::coordinator_log::PartitionLog as OffsetsLog;

/// Transactional offsets (TxnOffsetCommit) waiting for their producer's marker, per producer id.
pub type PendingTxnOffsets = HashMap<i64, BTreeMap<(String, i32), OffsetValue>>;

/// A group with its committed offsets.
pub struct GroupEntry {
    pub group: Group,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// The offsets partition holding this group's records.
    pub partition: u32,
    /// Wall time of the group's last state change (Kafka's current_state_timestamp).
    pub state_since_ms: i64,
    /// TxnOffsetCommit offsets not yet committed or aborted by a marker (not visible to
    /// OffsetFetch until committed).
    pub pending_txn: PendingTxnOffsets,
    pub(super) seen_state_changes: u64,
}

impl GroupEntry {
    pub fn new(
        group: Group,
        offsets: BTreeMap<(String, i32), OffsetValue>,
        partition: u32,
        state_since_ms: i64,
    ) -> Self {
        let seen_state_changes = group.state_changes();
        Self {
            group,
            offsets,
            partition,
            state_since_ms,
            pending_txn: PendingTxnOffsets::new(),
            seen_state_changes,
        }
    }

    pub(super) fn note_state_change(&mut self) {
        if self.group.state_changes() != self.seen_state_changes {
            self.seen_state_changes = self.group.state_changes();
            self.state_since_ms = now_ms();
        }
    }

    /// A group that never got members, offsets or a generation (e.g. a rejected first join).
    pub(super) fn is_unused(&self) -> bool {
        self.group.is_empty()
            && self.offsets.is_empty()
            && self.pending_txn.is_empty()
            && self.group.generation() == 0
    }
}

pub struct Coordinator {
    pub(super) limits: Limits,
    pub(super) groups_max: usize,
    pub(super) groups: RefCell<HashMap<String, GroupEntry>>,
    pub(super) join_waiters: RefCell<HashMap<WaiterId, oneshot::Sender<JoinReply>>>,
    pub(super) sync_waiters: RefCell<HashMap<WaiterId, oneshot::Sender<SyncReply>>>,
    pub(super) next_waiter: Cell<u64>,
    /// The offsets partitions this shard has replayed.
    pub(super) logs: crate::coordinator_log::Loaded,
}

impl Coordinator {
    pub fn new(config: &BrokerConfig) -> Self {
        Self {
            limits: Limits {
                session_timeout_min_ms: config.group.group_min_session_timeout_ms,
                session_timeout_max_ms: config.group.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group.group_initial_rebalance_delay_ms,
                members_max: config.group.group_max_size,
            },
            groups_max: config.group.group_max_count_per_shard,
            groups: RefCell::new(HashMap::new()),
            join_waiters: RefCell::new(HashMap::new()),
            sync_waiters: RefCell::new(HashMap::new()),
            next_waiter: Cell::new(0),
            logs: crate::coordinator_log::Loaded::default(),
        }
    }

    pub fn log(&self, index: u32) -> Option<Rc<OffsetsLog>> {
        self.logs.get(index)
    }

    pub fn mark_loaded(&self, index: u32) {
        self.logs.mark_loaded(index);
    }

    pub fn loaded(&self) -> &crate::coordinator_log::Loaded {
        &self.logs
    }

    /// The offsets partitions loaded here.
    pub fn loaded_partitions(&self) -> Vec<u32> {
        self.logs.indexes()
    }

    /// Forgets an offsets partition and its groups (Kafka's `onResignation`: another broker
    /// leads it now and reloads them from its log); their parked Join/SyncGroup requests are
    /// answered NOT_COORDINATOR. Answers how many groups went.
    pub fn unload(&self, index: u32) -> usize {
        self.logs.remove(index);
        let mut fx = Vec::new();
        let mut gone = 0;
        self.groups.borrow_mut().retain(|_, entry| {
            let keep = entry.partition != index;
            if !keep {
                fx.extend(entry.group.resign());
                gone += 1;
            }
            keep
        });
        self.deliver(fx);
        gone
    }

    pub fn insert_loaded(&self, entry: GroupEntry) {
        self.groups
            .borrow_mut()
            .insert(entry.group.id.clone(), entry);
    }

    pub fn group_count(&self) -> usize {
        self.groups.borrow().len()
    }

    pub(super) fn waiter_id(&self) -> WaiterId {
        let id = self.next_waiter.get();
        self.next_waiter.set(id.wrapping_add(1));
        WaiterId(id)
    }

    pub(super) fn deliver(&self, fx: Vec<Effect>) {
        for effect in fx {
            match effect {
                Effect::Join(id, reply) => {
                    if let Some(tx) = self.join_waiters.borrow_mut().remove(&id) {
                        let _gone_is_fine = tx.send(reply);
                    }
                }
                Effect::Sync(id, reply) => {
                    if let Some(tx) = self.sync_waiters.borrow_mut().remove(&id) {
                        let _gone_is_fine = tx.send(reply);
                    }
                }
                Effect::Persist => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unloading_a_partition_forgets_only_its_groups() {
        let coordinator = Coordinator::new(&BrokerConfig::default());
        for (group, partition) in [("a", 1), ("b", 2), ("c", 1)] {
            coordinator.insert_loaded(GroupEntry::new(
                Group::new(group.into()),
                BTreeMap::new(),
                partition,
                0,
            ));
        }
        coordinator.mark_loaded(1);
        coordinator.mark_loaded(2);
        assert_eq!(coordinator.unload(1), 2);
        assert!(coordinator.log(1).is_none());
        assert!(coordinator.log(2).is_some());
        assert_eq!(coordinator.loaded_partitions(), vec![2]);
        assert_eq!(coordinator.group_count(), 1);
        assert!(coordinator.groups.borrow().contains_key("b"));
    }
}
