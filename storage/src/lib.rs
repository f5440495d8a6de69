//! The partition log: Kafka v2 record batches stored byte-for-byte in segment files.
//! See CONTRACT.md beside this file for the public API.

pub mod batch;
pub mod builder;
pub mod checkpoint;
mod config;
mod error;
pub mod fault;
pub mod index;
mod io;
mod offset;

pub use batch::{split_batches, BatchHeader};
pub use builder::BatchBuilder;
pub use config::{LogConfig, TimestampType};
pub use error::StorageError;
pub use offset::{Offset, TimestampOffset};
mod commit;
mod log;
mod open;
mod ops;
mod read;
mod recovery;
mod segment;

pub use log::{AppendInfo, AppendOptions, Log};
pub use open::OpenOptions;
pub use read::{FileRange, ReadSlice};
pub use recovery::{IndexRebuild, RecoveryReport, RemovedSegment, Truncation};
pub use segment::file_stem;
