//! Replication (issue 11): Kafka's leader/follower protocol for a partition with several
//! replicas. This module holds the protocol's decisions as state machines without I/O, so
//! they are tested on their own and the partition service drives them:
//!
//! - `isr`: the leader side: followers' log ends from their fetches, the ISR with one
//!   AlterPartition proposal in flight, the high watermark (minimum log end over the maximal
//!   ISR, never backwards), ISR shrink after `replica.lag.time.max.ms`, expansion when caught
//!   up, min.insync.replicas checks (NOT_ENOUGH_REPLICAS / _AFTER_APPEND).
//! - `purgatory`: acks=all produces waiting for the high watermark (bounded, with the request
//!   timeout), Kafka's delayed-produce purgatory.
//! - `truncation`: where a follower's log diverges (OffsetForLeaderEpoch / the Fetch
//!   diverging-epoch field) and how far it truncates; never by high watermark alone.
//! - `checkpoint`: Kafka's `replication-offset-checkpoint` (high watermarks per partition).
//! - `fetcher`: the follower's fetch state per (source broker, fetcher id): the next Fetch,
//!   and what each partition's answer means (append, truncate, out of range, back off).
//! - `wire`: those as Kafka messages: the replica Fetch (`replica_id` / `ReplicaState`),
//!   OffsetForLeaderEpoch, and the Fetch response decoded into answers (no I/O).
//!
//! Place in the request flow: below `partition` (the replicated partition in
//! `partition::replicated` owns a `LeaderState` and a `ProducePurgatory`); this module imports
//! nothing above `partition::epochs` (constants) and `atomic_file`.

pub mod checkpoint;
pub mod fetcher;
pub mod isr;
pub mod purgatory;
pub mod truncation;
pub mod wire;
