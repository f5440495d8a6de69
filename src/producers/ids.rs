//! Producer ids for InitProducerId: each shard hands out ids from a block the controller gave
//! it, so no request waits on a disk write or another shard except once per block.
//!
//! The authority is the controller (`cluster::controller::allocate_producer_ids`, Kafka's
//! AllocateProducerIds): it hands out blocks of `cluster::PRODUCER_ID_BLOCK_SIZE` ids as
//! `ProducerIdsRecord`s in the metadata image, committed before any id of the block is used, so
//! blocks are disjoint across shards and restarts (a crash loses at most the unused rest of a
//! block: a gap, never a repeat). A shard asks for the next block when its block runs out.
//!
//! Invariants: one refill per shard at a time (local lock); ids of a shard only grow within a
//! block, and a block is used once.

use std::cell::Cell;

use futures_util::lock::Mutex;

use super::state::ProducerId;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("producer id file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("producer id file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("producer ids exhausted")]
    Exhausted,
    #[error("the producer id authority (the controller) is unavailable")]
    Unavailable,
}

/// [start, end) of ids given to one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBlock {
    pub start: i64,
    pub end: i64,
}

/// Per-shard allocator: the current block and the position in it.
#[derive(Debug, Default)]
pub struct IdAllocator {
    next: Cell<i64>,
    end: Cell<i64>,
    refill: Mutex<()>,
}

impl IdAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    fn take_local(&self) -> Option<ProducerId> {
        let next = self.next.get();
        (next < self.end.get()).then(|| {
            self.next.set(next + 1);
            ProducerId(next)
        })
    }

    /// The next id of this shard's block; `fetch_block` asks the controller for a new block
    /// when it runs out.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_block_and_a_new_block_is_asked_only_when_it_runs_out() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let ids = IdAllocator::new();
            let asked = Cell::new(0);
            let block = |start: i64| {
                asked.set(asked.get() + 1);
                async move {
                    Ok(IdBlock {
                        start,
                        end: start + 2,
                    })
                }
            };
            assert_eq!(ids.next_id(|| block(1000)).await, Ok(ProducerId(1000)));
            assert_eq!(ids.next_id(|| block(5000)).await, Ok(ProducerId(1001)));
            assert_eq!(asked.get(), 1);
            assert_eq!(ids.next_id(|| block(3000)).await, Ok(ProducerId(3000)));
            assert_eq!(asked.get(), 2);
            let failing = || async { Err(IdError::Unavailable) };
            assert_eq!(ids.next_id(failing).await, Ok(ProducerId(3001)));
            assert_eq!(ids.next_id(failing).await, Err(IdError::Unavailable));
        });
    }
}
