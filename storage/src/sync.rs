//! Shard-wide group commit for acknowledgements that need durable data (a produce with
//! acks=all): one sync batch per loop turn, across every partition log of the shard.
//!
//! Why: a log's own group commit (`commit.rs`) starts an fsync as soon as the first waiter
//! asks, and every waiter whose append came after that start waits for the next fsync. When
//! several requests of a shard (one client's pipelined requests, or several clients') append
//! to the same partitions in one loop turn, all but the first appender of the turn paid two
//! fsync latencies, and the fsyncs of different partitions started whenever their first
//! waiter happened to run. Here a waiter first joins the shard's open batch, which notes its
//! log as dirty. The batch's task runs after the tasks already runnable in this loop turn
//! (optionally it stays open for up to `passes` more yields while waiters keep joining) and
//! then, in one poll, starts one fsync per dirty log
//! covering everything appended to it so far (or, where an fsync started earlier is still in
//! flight, asks it to chain the next one when it ends): the fsyncs of all dirty logs go to the
//! kernel together (one `io_uring_enter`, made as the batch closes rather than after the rest
//! of the loop turn) and run concurrently, not one after another. Its waiters then wait on
//! their own log's fsync only.
//!
//! Appends still in flight on a dirty log when the batch would close (queued behind a write
//! of the log, or written and answered but their callers not yet resumed) would each need the
//! next fsync of that log: the batch waits for them, up to `APPEND_WAIT_PASSES_MAX` passes,
//! so the appends of one loop turn are made first and then share one fsync per log. Measured
//! with 4 producers awaiting each 16 KiB append on one log: 2 appends per fsync before, ~4
//! after (BENCHMARKS.md, "Storage write path").
//!
//! The broker's batch closes in the turn it opened (`BATCH_PASSES_DEFAULT` = 0): a connection
//! handles one request at a time (decision 0005), so with few producers each waiter holding
//! the batch open is a request whose next one cannot start; holding it for 4 more passes made
//! acks=all 12-23% slower on the 2-core VM with 4 native producers (BENCHMARKS.md, "acks=all").
//!
//! Invariants:
//! - `wait_durable` returns `Ok` only once the log's durable end offset is past `offset`: the
//!   batch only decides when the fsyncs start; `Log::wait_durable` still does the waiting and
//!   its check. A failed fsync fails the waiters of that log (sticky, `commit.rs`), no other's.
//! - Order: a log's durable end only grows, so a waiter for an earlier offset of a log is
//!   never answered after one for a later offset of the same log was told it is durable. (The
//!   answers of one connection stay in request order: the network layer's job.)
//! - Bounded: a batch holds one entry per dirty log (at most the shard's partitions) and one
//!   shared future that its waiters hold. The waiters are produce requests in flight, bounded
//!   by `queued.max.requests` per connection and `max.connections.per.shard`. A batch closes
//!   after at most `passes` yields.
//! - Per thread: a shard's logs live on its thread (thread-per-core), so the batch is a
//!   thread-local with no locks; `SyncBatch::new` makes a private one for tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};

use crate::commit::{self, GroupCommit};
use crate::counters::Counters;
use crate::error::StorageError;
use crate::io::yield_now;
use crate::log::Log;
use crate::offset::Offset;
use crate::state::State;

/// Passes through the run queue the broker's batches stay open for while waiters keep joining
/// (see the module header for why 0).
pub const BATCH_PASSES_DEFAULT: u32 = 0;

/// Most passes a batch waits for appends still in flight on its dirty logs before it starts
/// their fsyncs (an inline append completes within one pass, one queued behind it in the
/// next, so a few passes cover the appends of one loop turn).
pub const APPEND_WAIT_PASSES_MAX: u32 = 4;

type Closed = Shared<LocalBoxFuture<'static, ()>>;

/// Counters of one shard's sync batches (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Batches closed.
    pub batches_total: u64,
    /// Waiters that joined a batch (those already durable, or covered by an fsync in flight,
    /// skip it).
    pub waiters_total: u64,
    /// Dirty logs the closed batches synced (one fsync started, joined or chained per log
    /// per batch, however many waiters it had).
    pub logs_synced_total: u64,
}

/// The log state an fsync needs (what `commit::start` takes).
struct Dirty {
    state: Rc<RefCell<State>>,
    commit: Rc<GroupCommit>,
}

struct Batch {
    /// Sequence number of this batch on its shard.
    seq: u64,
    closed: Closed,
    waiters: u64,
    /// Keyed by the log's group-commit state address: one entry per log.
    dirty: HashMap<*const GroupCommit, Dirty>,
}

#[derive(Default)]
struct Inner {
    /// Most extra yields a batch stays open for while waiters keep joining.
    passes: u32,
    open: RefCell<Option<Batch>>,
    batches_opened: Cell<u64>,
    stats: Counters<SyncStats>,
}

/// One shard's sync batch (`wait_durable` uses the calling thread's).
#[derive(Clone)]
pub struct SyncBatch {
    inner: Rc<Inner>,
}

thread_local! {
    static SHARD_BATCH: SyncBatch = SyncBatch::new();
}

/// Waits until `log` is durable past `offset` through this thread's (this shard's) batch: the
/// acks=all path of a produce.
pub async fn wait_durable(log: &Log, offset: Offset) -> Result<Offset, StorageError> {
    let batch = SHARD_BATCH.with(SyncBatch::clone);
    batch.wait_durable(log, offset).await
}

/// This thread's batch counters.
pub fn stats() -> SyncStats {
    SHARD_BATCH.with(SyncBatch::stats)
}

impl Default for SyncBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncBatch {
    /// A batch of its own (tests); the broker uses the thread's through [`wait_durable`].
    pub fn new() -> Self {
        Self::with_passes(BATCH_PASSES_DEFAULT)
    }

    /// A batch that stays open for up to `passes` yields while waiters keep joining.
    pub fn with_passes(passes: u32) -> Self {
        SyncBatch {
            inner: Rc::new(Inner {
                passes,
                ..Inner::default()
            }),
        }
    }

    pub fn stats(&self) -> SyncStats {
        self.inner.stats.get()
    }

    /// Waits until `log` is durable past `offset`, its fsync started together with those of
    /// every other log that got a waiter in the same loop turn.
    pub async fn wait_durable(&self, log: &Log, offset: Offset) -> Result<Offset, StorageError> {
        if let Some(e) = log.durability_error() {
            return Err(e);
        }
        let durable = log.durable_end_offset();
        if durable > offset {
            return Ok(durable);
        }
        // An fsync in flight that covers the offset: joining the batch would only delay.
        if log.fsync_in_flight().is_none_or(|end| end <= offset) {
            self.join(log).await;
        }
        log.wait_durable(offset).await
    }

    /// Joins the open batch (opening one if none is) with `log` as dirty: resolves when the
    /// batch closed, which started (or chained) the log's fsync.
    fn join(&self, log: &Log) -> Closed {
        let inner = &self.inner;
        inner.stats.count(|s| s.waiters_total += 1);
        let mut open = inner.open.borrow_mut();
        let batch = open.get_or_insert_with(|| {
            let seq = inner.batches_opened.get() + 1;
            inner.batches_opened.set(seq);
            let guard = ForgetOnDrop {
                inner: inner.clone(),
                seq,
            };
            let task = compio::runtime::spawn(close_when_settled(guard));
            Batch {
                seq,
                closed: task.map(|_| ()).boxed_local().shared(),
                waiters: 0,
                dirty: HashMap::new(),
            }
        });
        batch.waiters += 1;
        batch
            .dirty
            .entry(Rc::as_ptr(&log.commit))
            .or_insert_with(|| Dirty {
                state: log.state.clone(),
                commit: log.commit.clone(),
            });
        batch.closed.clone()
    }
}

/// The batch's task: yields until a pass through the run queue added no waiter (at most
/// `passes` times; not at all by default), then closes the batch and, in the same poll, starts the fsync
/// of every dirty log; its end wakes all the batch's waiters.
async fn close_when_settled(guard: ForgetOnDrop) {
    let inner = guard.inner.clone();
    let waiters = |inner: &Inner| inner.open.borrow().as_ref().map_or(0, |b| b.waiters);
    let mut seen = waiters(&inner);
    for _ in 0..inner.passes {
        yield_now().await;
        let now = waiters(&inner);
        if now == seen {
            break;
        }
        seen = now;
    }
    // Appends of a dirty log still being written (queued behind a write, or answered but not
    // yet resumed) would need the next fsync: let them land and join first. Bounded, and
    // only while such appends exist, so a lone waiter is not delayed (see the module header).
    for _ in 0..APPEND_WAIT_PASSES_MAX {
        let writing = inner.open.borrow().as_ref().is_some_and(|b| {
            b.dirty
                .values()
                .any(|d| d.state.borrow().appends_in_flight > 0)
        });
        if !writing {
            break;
        }
        yield_now().await;
    }
    // Same poll as the last check: no waiter can join between it and the close.
    let Some(batch) = inner.open.borrow_mut().take() else {
        return;
    };
    inner.stats.count(|s| {
        s.batches_total += 1;
        s.logs_synced_total += batch.dirty.len() as u64;
    });
    for dirty in batch.dirty.into_values() {
        start_or_chain(&dirty);
    }
    // The fsyncs just started are in the ring: into the kernel now, together, not after the
    // rest of this loop turn's tasks (BENCHMARKS.md, "Issue 16, session 10: the
    // write-to-fdatasync hand-off").
    crate::io::submit_pushed();
}

/// Owned by a batch's task: if the task is dropped before it closed the batch (its runtime
/// went away), the batch is forgotten, so that later waiters open a new one instead of
/// joining one that can never close.
struct ForgetOnDrop {
    inner: Rc<Inner>,
    seq: u64,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        let mut open = self.inner.open.borrow_mut();
        if open.as_ref().is_some_and(|b| b.seq == self.seq) {
            open.take();
        }
    }
}

/// Starts an fsync covering everything the log committed; if one started earlier is still in
/// flight and does not cover it all, that fsync's task starts the next when it ends. Errors
/// (a sticky fsync failure, a closed log) reach the waiters through `Log::wait_durable`.
fn start_or_chain(dirty: &Dirty) {
    match commit::start(&dirty.state, &dirty.commit) {
        Ok(Some(in_flight)) if in_flight.end < dirty.state.borrow().log_end => {
            dirty.commit.chain_next();
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "sync batch: no fsync started"),
    }
}
