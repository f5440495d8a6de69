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

mod error;
mod iowq;
mod listener;
mod mesh;
mod placement;
mod ring;
mod runtime;
mod shutdown;
mod signals;

pub use error::{MeshError, RuntimeError};
pub use iowq::{set_iowq_bounded_workers_max, IOWQ_BOUNDED_WORKERS_MAX_DEFAULT};
pub use listener::{
    reuseport_listener, AcceptFailures, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN,
    ACCEPT_LOG_INTERVAL, LISTEN_BACKLOG,
};
pub use mesh::{Inbox, Mesh, Reply};
pub use placement::{stable_hash, Placement, SHARD_COUNT_MAX};
pub use ring::{RingSetup, RingSetupError};
pub use runtime::{run, run_with_shutdown, RuntimeConfig, ShardContext};
pub use shutdown::{fatal, Shutdown, FATAL_EXIT_CODE};
pub use signals::SECOND_SIGNAL_EXIT_CODE;

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
