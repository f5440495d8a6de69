//! Sluice: a Kafka-compatible event-streaming broker, thread-per-core on io_uring.
//!
//! A request flows through the modules in this order, and each layer only calls the next:
//! `net` (framing, connections) -> `handlers` (one file per Kafka API, no I/O) -> `router`
//! (which shard owns a partition, cross-shard calls) -> `partition` (per-partition state on its
//! owning shard) -> the `storage` crate (the log: segments, indexes, recovery).
