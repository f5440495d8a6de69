//! Which shard owns a partition: a table, seeded by the hash placement every shard computes
//! the same way (`shards::Placement`: `(fnv1a64(topic) + partition) % shards`). An entry in
//! the table overrides the hash for one partition, so ownership can move (rebalancing
//! partitions between cores, a replica becoming leader here) without changing the callers,
//! which only ever ask `shard_for`.
//!
//! Invariants: with no entry, the owner is the hash (what every shard computes alike, so the
//! table needs no coordination until something moves); an entry names a shard that exists;
//! entries of a topic die with the topic (`forget_topic`), so a new topic of the same name
//! starts from the hash.

use std::cell::RefCell;
use std::collections::HashMap;

use shards::{Placement, ShardId};

/// The owner of every partition, as seen by one shard.
pub struct PlacementTable {
    hash: Placement,
    /// Partitions whose owner is not the hash's: topic -> partition -> shard.
    moved: RefCell<HashMap<String, HashMap<u32, ShardId>>>,
}

impl PlacementTable {
    pub fn new(shard_count: usize) -> Self {
        Self {
            hash: Placement::new(shard_count),
            moved: RefCell::new(HashMap::new()),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.hash.shard_count()
    }

    /// The shard that owns partition `index` of `topic`.
    pub fn shard_for(&self, topic: &str, index: u32) -> ShardId {
        let moved = self.moved.borrow();
        if let Some(shard) = moved.get(topic).and_then(|parts| parts.get(&index)) {
            return *shard;
        }
        self.hash.shard_for(topic, index)
    }

    /// Makes `shard` the owner of partition `index` of `topic` (the caller moves the
    /// partition's state and tells every shard).
    pub fn assign(&self, topic: &str, index: u32, shard: ShardId) {
        assert!(
            usize::from(shard.0) < self.hash.shard_count(),
            "placement names shard {shard} of {}",
            self.hash.shard_count()
        );
        let mut moved = self.moved.borrow_mut();
        if self.hash.shard_for(topic, index) == shard {
            if let Some(parts) = moved.get_mut(topic) {
                parts.remove(&index);
                if parts.is_empty() {
                    moved.remove(topic);
                }
            }
            return;
        }
        moved
            .entry(topic.to_owned())
            .or_default()
            .insert(index, shard);
    }

    /// Drops every entry of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        self.moved.borrow_mut().remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_by_the_hash_and_overridden_per_partition() {
        let table = PlacementTable::new(4);
        let hash = Placement::new(4);
        for index in 0..16 {
            assert_eq!(
                table.shard_for("orders", index),
                hash.shard_for("orders", index)
            );
        }
        let other = ShardId((hash.shard_for("orders", 3).0 + 1) % 4);
        table.assign("orders", 3, other);
        assert_eq!(table.shard_for("orders", 3), other);
        assert_eq!(table.shard_for("orders", 4), hash.shard_for("orders", 4));
        // Moving it back to the hash's owner removes the entry; a deleted topic forgets its own.
        table.assign("orders", 3, hash.shard_for("orders", 3));
        assert!(table.moved.borrow().is_empty());
        table.assign(
            "orders",
            5,
            ShardId((hash.shard_for("orders", 5).0 + 1) % 4),
        );
        table.forget_topic("orders");
        assert_eq!(table.shard_for("orders", 5), hash.shard_for("orders", 5));
    }
}
