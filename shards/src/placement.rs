//! Which shard owns a partition or a key.
//!
//! Invariant: the owner is a pure function of (name, index, shard count) computed with FNV-1a 64,
//! which is defined byte by byte, so it does not change with the process, the Rust version
//! (unlike `DefaultHasher`) or the platform. Every shard therefore agrees on ownership without
//! talking to the others.

use crate::ShardId;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Largest shard count a `ShardId(u16)` can address.
pub const SHARD_COUNT_MAX: usize = u16::MAX as usize + 1;

/// FNV-1a 64 of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// Maps partitions and keys onto `shard_count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    shard_count: usize,
}

impl Placement {
    /// `shard_count` comes from the runtime config, never from a client; it must be in
    /// `1..=SHARD_COUNT_MAX` (checked by `run` before any placement exists).
    pub fn new(shard_count: usize) -> Self {
        assert!(
            (1..=SHARD_COUNT_MAX).contains(&shard_count),
            "shard count {shard_count} outside 1..={SHARD_COUNT_MAX}"
        );
        Self { shard_count }
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Owner of partition `index` of `name`: consecutive partitions of one topic land on
    /// consecutive shards, so a topic spreads evenly whatever its hash.
    pub fn shard_for(&self, name: &str, index: u32) -> ShardId {
        self.reduce(stable_hash(name.as_bytes()).wrapping_add(u64::from(index)))
    }

    /// Owner of an arbitrary key.
    pub fn shard_for_key(&self, key: &[u8]) -> ShardId {
        self.reduce(stable_hash(key))
    }

    fn reduce(&self, hash: u64) -> ShardId {
        // shard_count <= 65536, so the remainder always fits in u16.
        let shard_count = self.shard_count as u64;
        ShardId((hash % shard_count) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn placement_is_deterministic() {
        let a = Placement::new(7);
        let b = Placement::new(7);
        for index in 0..100 {
            assert_eq!(a.shard_for("orders", index), b.shard_for("orders", index));
        }
        assert_eq!(a.shard_for_key(b"user-42"), b.shard_for_key(b"user-42"));
        // Pinned values: a change here would move partitions between shards on upgrade.
        let hash = stable_hash(b"orders");
        assert_eq!(a.shard_for("orders", 3), ShardId(((hash + 3) % 7) as u16));
        assert_eq!(a.shard_for_key(b"orders"), ShardId((hash % 7) as u16));
    }

    #[test]
    fn partitions_of_one_topic_spread_evenly() {
        let partition_count = 1000u32;
        for shard_count in 2..=16usize {
            let placement = Placement::new(shard_count);
            for topic in ["orders", "clicks", "a", ""] {
                let mut per_shard = vec![0usize; shard_count];
                for index in 0..partition_count {
                    let shard = placement.shard_for(topic, index);
                    assert!(shard.index() < shard_count);
                    per_shard[shard.index()] += 1;
                }
                let mean = partition_count as usize / shard_count;
                for count in &per_shard {
                    assert!(
                        *count == mean || *count == mean + 1,
                        "{topic} over {shard_count} shards: {per_shard:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn consecutive_partitions_are_round_robin() {
        let placement = Placement::new(5);
        let first = placement.shard_for("t", 0).index();
        for index in 0..20u32 {
            let expected = (first + index as usize) % 5;
            assert_eq!(placement.shard_for("t", index).index(), expected);
        }
    }

    #[test]
    fn one_shard_owns_everything() {
        let placement = Placement::new(1);
        assert_eq!(placement.shard_for("x", u32::MAX), ShardId(0));
        assert_eq!(placement.shard_for_key(&[0xff; 64]), ShardId(0));
    }

    #[test]
    #[should_panic(expected = "shard count 0")]
    fn zero_shards_is_rejected() {
        let _ = Placement::new(0);
    }
}
