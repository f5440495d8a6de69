//! Thread-per-core runtime for Sluice.
//!
//! Each shard is one OS thread, optionally pinned to one core, running one compio executor with
//! its own io_uring. Shards share nothing mutable: they talk only through typed, bounded mailboxes
//! (`Mesh::send`, `Mesh::call`), and a full mailbox makes the sender wait (back-pressure) rather
//! than grow a queue. The crate knows nothing about Kafka: the message type `M` is the caller's.
//!
//! Invariants:
//! - every mailbox is bounded by `RuntimeConfig::mailbox_capacity`;
//! - `Placement` is a pure function of (name, index, shard count), so every shard computes the
//!   same owner without shared state;
//! - an unrecoverable error anywhere goes through [`fatal`], which stops the whole process.

// TODO(shards helper): mod error;
// TODO(shards helper): mod listener;
// TODO(shards helper): mod mesh;
// TODO(shards helper): mod placement;
// TODO(shards helper): mod runtime;
// TODO(shards helper): mod shutdown;

// TODO(shards helper): pub use error::{MeshError, RuntimeError};
// TODO(shards helper): pub use listener::reuseport_listener;
// TODO(shards helper): pub use mesh::{Inbox, Mesh, Reply};
// TODO(shards helper): pub use placement::Placement;
// TODO(shards helper): pub use runtime::{run, RuntimeConfig, ShardContext};
// TODO(shards helper): pub use shutdown::{fatal, Shutdown};

/// Index of a shard (and of its core, when pinned). Newtype so it is never confused with a
/// partition index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}
