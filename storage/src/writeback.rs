//! Early writeback: after an append, start the kernel's writeback of the appended range of the
//! active segment (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, submitted as io_uring's
//! SYNC_FILE_RANGE op) without waiting for it, so that the `fdatasync` that later makes the
//! range durable (an acks=all answer, the flush policy, a seal) finds less dirty data.
//!
//! Why (issue 16): an `fdatasync` writes back everything dirty in the file and then waits; with
//! one fsync at the end of many appends (`dd conv=fdatasync`'s policy) the writes and the
//! writeback run one after the other. Started early, the writeback of the first MiB runs while
//! the next MiB is being appended. The setting is `log.writeback.start.bytes`
//! (`LogConfig::writeback_start_bytes`, 0 = off): writeback starts once that many bytes were
//! appended to the active segment since the last start. Measured in BENCHMARKS.md, "Issue 16,
//! session 7: durable acks=all" (decision 0031).
//!
//! Invariants:
//! - Never a durability claim: `sync_file_range` writes no metadata (the file size of an
//!   append) and flushes no device cache (sync_file_range(2)), so nothing here moves the
//!   durable end offset; only `commit.rs`'s fdatasync does. An error here is logged and
//!   counted, never reported to an appender: the fdatasync that follows reports the same
//!   writeback error (the kernel's errseq), and that one is sticky (`commit.rs`).
//! - Bounded: at most one writeback op in flight per log; ranges appended meanwhile are taken
//!   by the next start (the started position moves only when an op is submitted).
//! - Order: the started position only grows within a segment and restarts at 0 in a new one.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use compio::driver::{OpCode, OpEntry};

use crate::counters::Counters;
use crate::io::Fd;
use crate::log::Log;

/// One `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)` as an io_uring op (the kernel
/// runs it in an io-wq worker: it may block on the block layer's queue, never the shard).
struct SyncFileRangeWrite {
    fd: Arc<OwnedFd>,
    offset: u64,
    len: u32,
}

// SAFETY: the entry refers only to the fd, which the op owns (an `Arc<OwnedFd>`) until it
// completes; no buffer is involved.
unsafe impl OpCode for SyncFileRangeWrite {
    type Control = ();

    fn create_entry(&mut self, _: &mut ()) -> OpEntry {
        io_uring::opcode::SyncFileRange::new(io_uring::types::Fd(self.fd.as_raw_fd()), self.len)
            .offset(self.offset)
            .flags(libc::SYNC_FILE_RANGE_WRITE)
            .build()
            .into()
    }

    /// Kernels without the op (< 5.2): the plain syscall on compio's blocking pool.
    fn call_blocking(&mut self, _: &mut ()) -> io::Result<usize> {
        let Ok(offset) = libc::off64_t::try_from(self.offset) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let len = libc::off64_t::from(self.len);
        // SAFETY: a syscall on an fd kept open by the `Arc<OwnedFd>` the op holds.
        let rc = unsafe {
            libc::sync_file_range(
                self.fd.as_raw_fd(),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(0)
    }
}

impl Fd {
    /// Starts writeback of `[offset, offset + len)` and resolves when the kernel has queued
    /// it (not when it is on disk).
    pub(crate) async fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let op = SyncFileRangeWrite {
            fd: self.0.clone(),
            offset,
            len,
        };
        compio::runtime::submit(op).await.0.map(|_| ())
    }
}

/// Counters of one log's early writeback (for tests and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WritebackStats {
    /// Writeback ops submitted.
    pub started_total: u64,
    /// Bytes those ops covered.
    pub bytes_total: u64,
    /// Ops completed (failed ones included): `started_total - completed_total` is 0 or 1.
    pub completed_total: u64,
    /// Ops that failed (logged; the next fdatasync reports the error to appenders).
    pub failed_total: u64,
}

impl Log {
    /// This log's early-writeback counters (`LogConfig::writeback_start_bytes`).
    pub fn writeback_stats(&self) -> WritebackStats {
        self.writeback.stats()
    }

    /// This log's zero-ahead counters (`LogConfig::zero_ahead_bytes`, `prealloc.rs`).
    pub fn zero_ahead_stats(&self) -> crate::ZeroAheadStats {
        self.zero_ahead.stats()
    }
}

/// Per-log early-writeback state (shared with its op's task).
#[derive(Default)]
pub(crate) struct Writeback {
    /// (active segment base, file position) up to which writeback was started.
    started: Cell<(i64, u64)>,
    in_flight: Cell<bool>,
    stats: Counters<WritebackStats>,
}

impl Writeback {
    pub fn stats(&self) -> WritebackStats {
        self.stats.get()
    }
}

/// Called after a write of the active segment `segment_base` ended at `end` (its size): starts
/// writeback of what was appended since the last start once that reaches `threshold_bytes`
/// (0 = never), unless one is in flight.
pub(crate) fn after_write(
    wb: &Rc<Writeback>,
    fd: &Fd,
    segment_base: i64,
    end: u64,
    threshold_bytes: u64,
) {
    if threshold_bytes == 0 || wb.in_flight.get() {
        return;
    }
    let from = match wb.started.get() {
        (base, pos) if base == segment_base && pos <= end => pos,
        _ => 0,
    };
    if end - from < threshold_bytes {
        return;
    }
    wb.started.set((segment_base, end));
    wb.in_flight.set(true);
    wb.stats.count(|s| {
        s.started_total += 1;
        s.bytes_total += end - from;
    });
    let (wb, fd) = (wb.clone(), fd.clone());
    compio::runtime::spawn(async move {
        if let Err(e) = fd.start_writeback(from, end - from).await {
            tracing::warn!(error = %e, from, end, "early writeback failed");
            wb.stats.count(|s| s.failed_total += 1);
        }
        wb.stats.count(|s| s.completed_total += 1);
        wb.in_flight.set(false);
    })
    .detach();
}
