//! Producer id allocation for InitProducerId: ids unique for the broker's lifetime and across
//! restarts, without a disk write per request.
//!
//! Shard 0 owns the authority: the start of the next unallocated block, persisted atomically in
//! `data_dir/__cluster/producer_ids` (temp file, fsync, rename, fsync dir). A block of
//! `ID_BLOCK_SIZE` ids is persisted as taken *before* any id of it is handed out, so a crash
//! loses at most the unused rest of a block (a gap), never repeats an id. Every shard hands out
//! ids from its own block and asks shard 0 (`ShardMsg::ProducerIdBlock`) for the next one when
//! it runs out; blocks are disjoint, so shards never coordinate per id.
//!
//! Invariants: the persisted value only grows; one refill per shard at a time (local lock); an
//! id is never below the value read at start.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use futures_util::lock::Mutex;

use super::state::ProducerId;

/// Ids per block (Kafka's controller hands out blocks of 1000 too).
pub const ID_BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer_ids";
const FILE_MAGIC: &str = "next_block_start=";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("producer id file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("producer id file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("producer ids exhausted")]
    Exhausted,
    #[error("the producer id authority (shard 0) is unavailable")]
    Unavailable,
}

/// [start, end) of ids given to one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBlock {
    pub start: i64,
    pub end: i64,
}

pub fn file_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster").join(FILE_NAME)
}

/// Shard 0's persisted counter (loaded on first use).
#[derive(Debug)]
struct Authority {
    next_block_start: Option<i64>,
}

/// Per-shard allocator; the authority part is only used on shard 0.
#[derive(Debug)]
pub struct IdAllocator {
    data_dir: PathBuf,
    next: Cell<i64>,
    end: Cell<i64>,
    refill: Mutex<()>,
    authority: Mutex<Authority>,
}

impl IdAllocator {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            next: Cell::new(0),
            end: Cell::new(0),
            refill: Mutex::new(()),
            authority: Mutex::new(Authority {
                next_block_start: None,
            }),
        }
    }

    fn take_local(&self) -> Option<ProducerId> {
        let next = self.next.get();
        (next < self.end.get()).then(|| {
            self.next.set(next + 1);
            ProducerId(next)
        })
    }

    /// The next id of this shard's block; `fetch_block` supplies a new block when it runs out
    /// (shard 0: `allocate_block` directly; others: a mesh call to shard 0).
    pub async fn next_id<F, Fut>(&self, fetch_block: F) -> Result<ProducerId, IdError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<IdBlock, IdError>>,
    {
        if let Some(id) = self.take_local() {
            return Ok(id);
        }
        let _refilling = self.refill.lock().await;
        // Another task may have refilled while this one waited for the lock.
        if let Some(id) = self.take_local() {
            return Ok(id);
        }
        let block = fetch_block().await?;
        assert!(block.start < block.end, "empty producer id block");
        self.next.set(block.start);
        self.end.set(block.end);
        self.take_local().ok_or(IdError::Exhausted)
    }

    /// Shard 0 only: reserves the next block, persisting its end before returning it.
    pub async fn allocate_block(&self) -> Result<IdBlock, IdError> {
        let mut authority = self.authority.lock().await;
        let start = match authority.next_block_start {
            Some(start) => start,
            None => load(&file_path(&self.data_dir)).await?,
        };
        let end = start.checked_add(ID_BLOCK_SIZE).ok_or(IdError::Exhausted)?;
        persist(&file_path(&self.data_dir), end).await?;
        authority.next_block_start = Some(end);
        Ok(IdBlock { start, end })
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> IdError {
    IdError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads the persisted next block start (0 when the file does not exist yet).
async fn load(path: &Path) -> Result<i64, IdError> {
    let owned = path.to_owned();
    let read = compio::runtime::spawn_blocking(move || std::fs::read_to_string(owned)).await;
    let text = match read {
        Ok(Ok(text)) => text,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Ok(Err(e)) => return Err(io_error(path, e)),
        Err(_) => return Err(io_error(path, "reader thread failed")),
    };
    parse(&text).map_err(|reason| IdError::Corrupt {
        path: path.display().to_string(),
        reason,
    })
}

fn parse(text: &str) -> Result<i64, String> {
    let value = text
        .trim()
        .strip_prefix(FILE_MAGIC)
        .ok_or_else(|| format!("expected {FILE_MAGIC}N"))?;
    let start: i64 = value.parse().map_err(|e| format!("{value:?}: {e}"))?;
    if start < 0 {
        return Err(format!("negative start {start}"));
    }
    Ok(start)
}

async fn persist(path: &Path, next_block_start: i64) -> Result<(), IdError> {
    let text = format!("{FILE_MAGIC}{next_block_start}\n");
    crate::atomic_file::write_off_thread(path.to_owned(), text.into_bytes())
        .await
        .map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_round_trips_and_rejects_garbage() {
        assert_eq!(parse("next_block_start=3000\n"), Ok(3000));
        assert!(parse("3000").is_err());
        assert!(parse("next_block_start=-1").is_err());
        assert!(parse("next_block_start=x").is_err());
    }

    #[test]
    fn blocks_are_persisted_and_never_reused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_owned();
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let first = IdAllocator::new(data_dir.clone());
                let a = first.next_id(|| first.allocate_block()).await.unwrap();
                let b = first.next_id(|| first.allocate_block()).await.unwrap();
                assert_eq!((a, b), (ProducerId(0), ProducerId(1)));
                let again = IdAllocator::new(data_dir.clone());
                let c = again.next_id(|| again.allocate_block()).await.unwrap();
                assert_eq!(
                    c,
                    ProducerId(ID_BLOCK_SIZE),
                    "a restart starts past the used block"
                );
                let text = std::fs::read_to_string(file_path(&data_dir)).unwrap();
                assert_eq!(parse(&text), Ok(2 * ID_BLOCK_SIZE));
            });
    }
}
