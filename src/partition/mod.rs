//! Per-shard partition state: the partitions this shard owns, each a `storage::Log` plus a local
//! notifier that wakes long-poll fetches when an append makes new data visible.
//!
//! Invariants: a partition lives on exactly one shard (its `Placement` owner) and is only touched
//! there (`Rc`, `!Send`); the waiter list of a partition is bounded, and every waiter is woken
//! (and the list emptied) by the next append or by shutdown; the producer state is only read or
//! changed by an append holding `producer_lock` (check, write and record as one step).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;

/// (topic, partition index): the key of a partition on its shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// The log directory name, Kafka's `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// One owned partition.
pub struct Partition {
    pub tp: TopicPartition,
    pub log: storage::Log,
    /// Idempotent producers' epochs and recent batches (see `producers`).
    pub producers: RefCell<crate::producers::ProducerStates>,
    /// Serialises idempotent appends from their sequence check to their state update.
    pub producer_lock: futures_util::lock::Mutex<()>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    waiters_max: usize,
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        log: storage::Log,
        waiters_max: usize,
        producers: crate::producers::ProducerStates,
    ) -> Self {
        Self {
            tp,
            log,
            producers: RefCell::new(producers),
            producer_lock: futures_util::lock::Mutex::new(()),
            waiters: RefCell::new(Vec::new()),
            waiters_max,
        }
    }

    /// The exclusive end of what consumers may read. Single node, no replication: Kafka's high
    /// watermark is the log end (acks=0/1 data is readable before it is fsynced, as in Kafka).
    /// storage's `high_watermark` is the durable end instead, which would hide acks=1 data
    /// until the next flush; acks=-1 still answers only after fsync.
    pub fn high_watermark(&self) -> storage::Offset {
        self.log.log_end_offset()
    }

    /// A future-able receiver completed by the next append (or dropped at shutdown); `None` when
    /// the waiter list is full, in which case the caller waits on its timer alone.
    pub fn subscribe(&self) -> Option<oneshot::Receiver<()>> {
        let mut waiters = self.waiters.borrow_mut();
        waiters.retain(|w| !w.is_canceled());
        if waiters.len() >= self.waiters_max {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiters.push(tx);
        Some(rx)
    }

    /// Wakes every long-poll waiting on this partition.
    pub fn notify_appended(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waiter in waiters {
            let _gone_is_fine = waiter.send(());
        }
    }
}

/// The partitions owned by one shard.
#[derive(Default)]
pub struct PartitionMap {
    map: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
}

impl PartitionMap {
    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.map.borrow().get(tp).cloned()
    }

    pub fn contains(&self, tp: &TopicPartition) -> bool {
        self.map.borrow().contains_key(tp)
    }

    pub fn insert(&self, partition: Rc<Partition>) {
        self.map
            .borrow_mut()
            .insert(partition.tp.clone(), partition);
    }

    pub fn remove(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.map.borrow_mut().remove(tp)
    }

    /// A snapshot, so callers can await per partition without holding the borrow.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.map.borrow().values().cloned().collect()
    }

    /// Removes and returns every partition (shutdown).
    pub fn drain(&self) -> Vec<Rc<Partition>> {
        self.map.borrow_mut().drain().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_is_kafkas() {
        assert_eq!(TopicPartition::new("orders", 7).dir_name(), "orders-7");
    }
}
