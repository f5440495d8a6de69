//! The partition log: Kafka v2 record batches stored byte-for-byte in segment files.
//! See CONTRACT.md beside this file for the public API.

pub mod batch;
pub mod builder;
pub mod checkpoint;
pub mod cleaner;
mod config;
mod counters;
mod error;
pub mod fault;
mod files;
mod header;
pub mod index;
pub mod inflate;
pub mod invariant;
mod io;
mod offset;
pub mod recompress;

pub use batch::{split_batches, BatchHeader};
pub use builder::BatchBuilder;
pub use config::{LogConfig, TimestampType};
pub use error::StorageError;
pub use files::{
    active_segment_files_open, sealed_segment_files_open, set_active_segment_files_open_max,
    set_sealed_segment_files_open_max, ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT,
    SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT,
};
pub use io::yield_now;
pub use offset::{Offset, TimestampOffset};
mod append;
mod commit;
mod log;
mod open;
mod ops;
mod read;
mod recovery;
mod seal;
mod segment;
mod stamp;
mod state;

pub use log::{AppendInfo, AppendOptions, Log, ValidBatches};
pub use open::OpenOptions;
pub use read::{FileRange, ReadSlice};
pub use recovery::{IndexRebuild, RecoveryReport, RemovedSegment, Truncation};
#[doc(hidden)]
pub use seal::SealGate;
pub use segment::{file_stem, txn_index_path};
mod prealloc;
pub mod sync;
mod writeback;
pub use prealloc::ZeroAheadStats;
pub use writeback::WritebackStats;
