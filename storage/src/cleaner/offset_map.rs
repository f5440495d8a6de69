//! The cleaner's offset map: key hash -> latest offset of that key in the dirty section, in a
//! bounded amount of memory (Kafka's `SkimpyOffsetMap`, sized by
//! `log.cleaner.dedupe.buffer.size`).
//!
//! Keys are stored as a 128-bit hash (two passes of std's SipHash with different seed prefixes; the map lives only in memory
//! during one clean, so the hash need not be stable across builds), as
//! Kafka stores an MD5: a collision would make the cleaner drop a record of another key, at
//! odds of about n^2 / 2^129. Invariant: `len() <= capacity()`; a put that would exceed it is
//! refused, and the cleaner stops the dirty section before that batch.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Memory one entry costs in a `HashMap<u128, i64>`: 24 bytes of payload plus control byte
/// and the empty slots of a load factor below 1, rounded up.
pub const ENTRY_BYTES: usize = 32;
/// Fraction of the buffer the map may fill (Kafka's `log.cleaner.io.buffer.load.factor`).
const LOAD_FACTOR: f64 = 0.9;

/// 128-bit hash of a record key.
pub fn key_hash(key: &[u8]) -> u128 {
    let half = |seed: u64| {
        let mut h = std::hash::DefaultHasher::new();
        seed.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5155_4943_455f_4b31)) << 64) | u128::from(half(0x6b61_666b_615f_6d64))
}

/// Bounded map from key hash to the latest offset seen for it.
pub struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

impl OffsetMap {
    /// A map that uses at most about `buffer_bytes` of memory.
    pub fn with_buffer_bytes(buffer_bytes: usize) -> Self {
        let capacity = ((buffer_bytes / ENTRY_BYTES) as f64 * LOAD_FACTOR) as usize;
        OffsetMap {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Room for `n` more keys, counting each as new.
    pub fn has_room_for(&self, n: usize) -> bool {
        self.map.len().saturating_add(n) <= self.capacity
    }

    /// Records `offset` as the latest for `hash`. The caller checked `has_room_for`.
    pub fn put(&mut self, hash: u128, offset: i64) {
        assert!(
            self.map.len() < self.capacity || self.map.contains_key(&hash),
            "offset map over capacity"
        );
        let e = self.map.entry(hash).or_insert(offset);
        *e = (*e).max(offset);
    }

    pub fn get(&self, hash: u128) -> Option<i64> {
        self.map.get(&hash).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_latest_and_bounds_entries() {
        let mut m = OffsetMap::with_buffer_bytes(10 * ENTRY_BYTES);
        assert_eq!(m.capacity(), 9);
        m.put(key_hash(b"a"), 5);
        m.put(key_hash(b"a"), 3);
        assert_eq!(m.get(key_hash(b"a")), Some(5));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert!(m.has_room_for(8));
        assert!(!m.has_room_for(9));
    }
}
