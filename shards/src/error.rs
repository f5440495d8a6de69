//! Error types of the runtime crate: one enum for mailbox traffic, one for starting and running
//! the shards. Both are plain data (no payload of the caller's message type), so callers can match
//! on them without knowing `M`.

use crate::ShardId;

/// Why a mailbox operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// The target inbox holds `mailbox_capacity` messages (only from `try_send`).
    #[error("shard mailbox is full")]
    Full,
    /// The target inbox was dropped (its shard returned), or the callee dropped the `Reply`.
    #[error("shard mailbox or reply channel is closed")]
    Closed,
    /// `to` is not below the number of shards in this mesh.
    #[error("{shard} does not exist (mesh has {shard_count} shards)")]
    UnknownShard { shard: ShardId, shard_count: usize },
}

/// Why [`crate::run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration cannot be run (e.g. zero mailbox capacity, too many shards).
    #[error("invalid runtime config: {0}")]
    Config(String),
    /// A shard's compio runtime (its io_uring) could not be created.
    #[error("{shard}: cannot build compio runtime: {source}")]
    RuntimeBuild {
        shard: ShardId,
        #[source]
        source: std::io::Error,
    },
    /// The OS refused to start a shard thread.
    #[error("{shard}: cannot spawn thread: {source}")]
    Spawn {
        shard: ShardId,
        #[source]
        source: std::io::Error,
    },
    /// Installing SIGINT/SIGTERM handling failed.
    #[error("cannot install signal handling: {0}")]
    Signal(#[source] std::io::Error),
    /// A shard thread panicked; the other shards were told to shut down.
    #[error("{shard} panicked: {message}")]
    ShardPanicked { shard: ShardId, message: String },
}
