//! Zero-ahead: keeps the blocks just past the active segment's end written with zeros, so an
//! append overwrites blocks the file already has instead of extending it, and the fdatasync
//! that makes the append durable (acks=all, the flush policy) writes only the data.
//!
//! Why (issue 16, session 9): on ext4 an append past the end allocates its blocks at writeback
//! and grows the file, so each fdatasync also writes the extent-tree block and the inode, one
//! synchronous write after the other; measured on this VM's ext4 (`perf/prealloc_fsync.py`):
//! 3.0-3.8 device writes per 128 KiB append + fdatasync, 2.0-2.9 when the blocks were written
//! with zeros beforehand. `fallocate` (Kafka's `log.preallocate` sets the length, which is a
//! sparse file on Linux) does not remove it: unwritten extents are converted at writeback,
//! which changes the extent tree too (3.0-4.0 writes). The setting is `log.zero.ahead.bytes`
//! (`LogConfig::zero_ahead_bytes`, 0 = off): once the append position comes within half of it
//! of the zeroed end, zeros are written up to that many bytes past the position (never past
//! `segment.bytes`), then fdatasynced, in a spawned task (decision 0034).
//!
//! Invariants:
//! - Zeros never land on data: an op zeroes `[from, to)` with `from` >= the segment's size
//!   when it started (it starts under `append_lock`, after the write that set the size), and
//!   a write that reaches `from` first waits for the op (`before_write`). At most one op is in
//!   flight per log.
//! - The file is longer than the log only in the active segment: a roll, a truncation and a
//!   close wait for the op and cut the file back to the segment's size (`trim`), before the
//!   seal's (or close's) fdatasync. After a crash, recovery reads a tail of zeros as the end
//!   of the segment, not as damage (`recovery::scan`).
//! - Never a durability claim: the op's fdatasync moves no durable end. A failure of it is
//!   recorded as the log's sticky fsync failure (the kernel reports a writeback error to one
//!   fsync of the file only, which may be this one).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};

use crate::commit::GroupCommit;
use crate::counters::Counters;
use crate::error::StorageError;
use crate::io::Fd;
use crate::segment::Segment;
use crate::state::State;

type Done = Shared<LocalBoxFuture<'static, ()>>;

/// Counters of one log's zero-ahead (for tests and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroAheadStats {
    /// Zeroing ops started.
    pub started_total: u64,
    /// Bytes of zeros they wrote.
    pub bytes_total: u64,
    /// Ops completed (failed ones included): `started_total - completed_total` is 0 or 1.
    pub completed_total: u64,
    /// Ops that failed (the write or its fdatasync).
    pub failed_total: u64,
    /// Writes that waited for an op zeroing the range they were about to write.
    pub waits_total: u64,
    /// Files cut back to the segment's size (roll, truncation, close).
    pub trims_total: u64,
}

/// An op in flight: it zeroes `[from, to)` of segment `base`.
struct Op {
    base: i64,
    from: u64,
    done: Done,
}

/// Per-log zero-ahead state (shared with the op's task).
#[derive(Default)]
pub(crate) struct ZeroAhead {
    /// (segment base, file position) up to which the file holds zeros past the log.
    zeroed: Cell<Option<(i64, u64)>>,
    op: RefCell<Option<Op>>,
    stats: Counters<ZeroAheadStats>,
}

impl ZeroAhead {
    pub fn stats(&self) -> ZeroAheadStats {
        self.stats.get()
    }

    /// Whether the file of segment `base` may extend past `size` (zeros written or being
    /// written there).
    pub fn extends_past(&self, base: i64, size: u64) -> bool {
        let zeroed = self
            .zeroed
            .get()
            .is_some_and(|(b, end)| b == base && end > size);
        zeroed || self.op.borrow().as_ref().is_some_and(|op| op.base == base)
    }

    /// Waits for the op in flight and forgets the zeroed range (a truncation: the caller cuts
    /// the file itself).
    pub async fn forget(&self) {
        self.settle().await;
        self.zeroed.set(None);
    }

    /// Waits for the op in flight, if any.
    pub async fn settle(&self) {
        let done = self.op.borrow().as_ref().map(|op| op.done.clone());
        if let Some(done) = done {
            done.await;
        }
    }
}

/// Before a write of segment `base` ending at `end`: waits for an op zeroing a range the
/// write reaches (so the zeros cannot land after the data).
pub(crate) async fn before_write(za: &ZeroAhead, base: i64, end: u64) {
    let done = za
        .op
        .borrow()
        .as_ref()
        .filter(|op| op.base == base && end > op.from)
        .map(|op| op.done.clone());
    if let Some(done) = done {
        za.stats.count(|s| s.waits_total += 1);
        done.await;
    }
}

/// After a write of the active segment `base` that ended at `end` (its size; the caller
/// holds `append_lock`): starts an op when the zeroed end is less than `ahead_bytes / 2`
/// past `end` (0 = off).
pub(crate) fn after_write(
    za: &Rc<ZeroAhead>,
    gc: &Rc<GroupCommit>,
    state: &Rc<RefCell<State>>,
    fd: &Fd,
    (base, end): (i64, u64),
    ahead_bytes: u64,
    segment_bytes_max: u64,
) {
    if ahead_bytes == 0 || za.op.borrow().is_some() {
        return;
    }
    let zeroed = match za.zeroed.get() {
        Some((b, z)) if b == base => z.max(end),
        _ => end,
    };
    let to = end.saturating_add(ahead_bytes).min(segment_bytes_max);
    if zeroed >= to || zeroed - end >= ahead_bytes / 2 {
        return;
    }
    let from = zeroed;
    let Ok(len) = usize::try_from(to - from) else {
        return;
    };
    za.stats.count(|s| {
        s.started_total += 1;
        s.bytes_total += to - from;
    });
    let task = zero(
        za.clone(),
        gc.clone(),
        state.clone(),
        fd.clone(),
        (base, from, to),
        len,
    );
    let done = task.boxed_local().shared();
    *za.op.borrow_mut() = Some(Op {
        base,
        from,
        done: done.clone(),
    });
    compio::runtime::spawn(done).detach();
}

/// The op: writes `len` zeros at `from`, fdatasyncs them (the blocks' allocation and the
/// file size reach the disk now, not in the next append's fdatasync), then records them.
async fn zero(
    za: Rc<ZeroAhead>,
    gc: Rc<GroupCommit>,
    state: Rc<RefCell<State>>,
    fd: Fd,
    (base, from, to): (i64, u64, u64),
    len: usize,
) {
    // Whatever happens, the zeros may be (partly) there: `trim` cuts what is past the log.
    za.zeroed.set(Some((base, to)));
    if let Err(e) = fd.write_all(vec![0u8; len], from).await {
        // Not the log's failure (a full disk, say): the appends write where they would have.
        tracing::warn!(error = %e, segment = base, from, to, "zero-ahead write failed");
        za.stats.count(|s| s.failed_total += 1);
    } else if let Err(e) = fd.sync(false).await {
        tracing::warn!(error = %e, segment = base, from, to, "zero-ahead fdatasync failed");
        za.stats.count(|s| s.failed_total += 1);
        let durable_end = state.borrow().durable_end;
        gc.fail_once(&e, durable_end);
    }
    za.stats.count(|s| s.completed_total += 1);
    za.op.borrow_mut().take();
}

/// Cuts `seg`'s file back to its size if zeros were written past it (a roll or a close; the
/// caller holds `append_lock` and fdatasyncs the file afterwards); returns whether it did.
pub(crate) async fn trim(za: &ZeroAhead, seg: &Segment) -> Result<bool, StorageError> {
    za.settle().await;
    let size = seg.size.get();
    if !za.extends_past(seg.base, size) {
        return Ok(false);
    }
    seg.log.active_fd()?.truncate(size).await?;
    za.zeroed.set(None);
    za.stats.count(|s| s.trims_total += 1);
    Ok(true)
}
