//! The write half of an append: offsets assigned, bytes written, the append committed. The
//! appends that queue up for one log while a write of it is under way are written together,
//! with one vectored write (`pwritev` on the shard thread, or an io_uring WRITEV), whose
//! iovecs point into the received buffers themselves (`stamp.rs`: no copy of the batches).
//!
//! Why: the kernel's cost of a buffered write is mostly per write and per page-cache folio,
//! and the folio size follows the write size (ext4 large folios): 16 KiB writes reach about
//! half the rate of 1 MiB writes on the same file (`dd bs=16K` vs `bs=1M conv=fdatasync`,
//! BENCHMARKS.md "Storage write path"). Producers of one partition used to wait for the
//! append lock and write one by one; now the next holder writes all of them at once.
//!
//! Invariants:
//! - Order: appends get offsets in the order they queued (`Log::pending_appends` is FIFO; a
//!   group is every append queued when its holder got the lock, taken off the queue's front
//!   write by write, so a cancelled holder leaves the rest of its group to the next one); an
//!   append is visible only once its write completed, and one write's appends commit together
//!   in one synchronous step, in queue order.
//! - Allocations: a group of one append with one batch allocates no list (`BatchInfos`,
//!   `BatchMetas`, `PlacedAppends`, `WriteBufs` hold one element inline).
//! - Each append gets its own answer: one refused alone (a follower's batches that do not
//!   continue the log) takes no offsets and the others go on; a failed write fails every
//!   append of it and of its group (a disk fault, which stops the broker).
//! - A write handed to io_uring runs to its end in a task of its own, which holds
//!   `append_lock` until then, even when its caller is dropped (a connection closed mid-request):
//!   the kernel may still complete a cancelled io_uring write (one an io-wq worker has picked
//!   up), and the next holder writes at the same position, so without this the cancelled
//!   write could land over the next one's committed, acknowledged bytes (B22). The cancelled
//!   write's appends are answered NotWritten and nothing of them is committed, as before.
//! - Bounded: a write holds at most `APPEND_COALESCE_ENTRIES_MAX` appends, `APPEND_IOVECS_MAX`
//!   iovecs and, past its first append, `APPEND_COALESCE_BYTES_MAX` bytes, and never crosses
//!   a segment roll; the queue holds appends in flight, each one a request the network layer
//!   bounds.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures_util::future::{select, Either};
use futures_util::lock::OwnedMutexGuard;
use futures_util::pin_mut;

use smallvec::SmallVec;

use crate::batch::{BatchInfo, BatchInfos};
use crate::config::{LogConfig, TimestampType};
use crate::error::StorageError;
use crate::index;
use crate::io::Fd;
use crate::log::{
    as_stamped, check_before_write, rewrite, write_failed, AppendInfo, AppendOptions, Log,
    SegmentEnd, Stamp, INDEX_PENDING_ENTRIES_MAX, RELATIVE_OFFSET_MAX, SEGMENT_BYTES_HARD_MAX,
};
use crate::offset::Offset;
use crate::segment::Segment;
use crate::stamp::{AppendBytes, WriteBufs, APPEND_IOVECS_MAX};

/// The appends one write places (inline for the usual one: a group of one allocates no list).
type PlacedAppends = SmallVec<[Placed; 1]>;
use crate::state::State;

/// Most appends written by one vectored write (well under `IOV_MAX`, 1024).
pub(crate) const APPEND_COALESCE_ENTRIES_MAX: usize = 64;
/// Most bytes one write takes beyond its first append: past ~256 KiB per write the kernel's
/// per-write cost is amortised (`dd bs=256K` is within noise of `bs=1M` on the test VM).
pub(crate) const APPEND_COALESCE_BYTES_MAX: u64 = 1024 * 1024;

/// One append waiting for (or done by) a group write.
pub(crate) struct PendingAppend {
    input: RefCell<Option<AppendInput>>,
    result: RefCell<Option<Result<AppendInfo, StorageError>>>,
    /// The queued caller, woken when another caller's group answered it (it then needs no
    /// turn at the lock).
    waker: RefCell<Option<Waker>>,
}

/// A validated append.
pub(crate) struct AppendInput {
    batches: AppendBytes,
    infos: BatchInfos,
    opts: AppendOptions,
    stamp: Stamp,
}

impl PendingAppend {
    fn finish(&self, result: Result<AppendInfo, StorageError>) {
        *self.result.borrow_mut() = Some(result);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves once the append has its answer.
    fn answered(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.result.borrow().is_some() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// Counts an append in `State::appends_in_flight` until it has its answer (or its caller
/// was dropped).
struct InFlightAppend<'a> {
    state: &'a RefCell<State>,
}

impl<'a> InFlightAppend<'a> {
    fn new(state: &'a RefCell<State>) -> Self {
        let mut st = state.borrow_mut();
        st.appends_in_flight = st.appends_in_flight.saturating_add(1);
        InFlightAppend { state }
    }
}

impl Drop for InFlightAppend<'_> {
    fn drop(&mut self) {
        let mut st = self.state.borrow_mut();
        st.appends_in_flight = st.appends_in_flight.saturating_sub(1);
    }
}

/// An append placed in the write being built.
struct Placed {
    pending: Rc<PendingAppend>,
    info: AppendInfo,
    now_ms: i64,
}

/// A hold of `Log::append_lock` that can move into a task.
type AppendGuard = OwnedMutexGuard<()>;

/// Writes `bufs` at `pos` through io_uring in a task of its own that holds the caller's
/// `guard` until the write has completed, and hands both back. When the caller is dropped
/// mid-write, the write still runs to its end and only then releases the lock: dropping an
/// io_uring write does not stop one the kernel has started (an io-wq worker picked it up
/// before the cancel arrived; a buffered ext4 write always goes to a worker, `io.rs`), and
/// the next holder writes the same position (nothing of the dropped write was committed),
/// inline with `pwritev` as often as not, so the late write would land over its committed
/// bytes (B22, `storage/tests/breaker_cancelled_write.rs`). A write done inline on the shard
/// thread needs none of this: it has completed before the caller can be dropped.
async fn write_to_completion(
    fd: Fd,
    bufs: WriteBufs,
    pos: u64,
    guard: &mut Option<AppendGuard>,
) -> io::Result<WriteBufs> {
    let (tx, rx) = futures_channel::oneshot::channel();
    let held = guard.take();
    let write = async move {
        let written = fd.write_segment_vectored(bufs, pos, false).await;
        // The caller gone: the result is dropped here, and the lock with it, only now.
        let _caller_gone_is_fine = tx.send((written, held));
    };
    compio::runtime::spawn(write).detach();
    match rx.await {
        Ok((written, held)) => {
            *guard = held;
            written
        }
        Err(_) => Err(io::Error::other(
            "segment write task ended without an answer",
        )),
    }
}

/// Offsets an append's batches take.
fn offsets_needed(infos: &[BatchInfo]) -> i64 {
    infos
        .iter()
        .map(|i| i64::from(i.header.last_offset_delta) + 1)
        .sum()
}

/// The log end after `input` is appended at `log_end`: a leader's batches take consecutive
/// offsets from there; a follower's keep their own, which may skip offsets (a compacted
/// leader's gaps), so the end is past its last batch.
fn end_after(input: &AppendInput, log_end: i64) -> i64 {
    match input.stamp {
        Stamp::Leader => log_end + offsets_needed(&input.infos),
        Stamp::Follower => input
            .infos
            .last()
            .map_or(log_end, |i| i.header.last_offset() + 1)
            .max(log_end),
    }
}

/// The same error for every append of a failed write or group (`StorageError` is not Clone;
/// the kind, which decides whether the broker treats it as a disk fault, is kept).
fn duplicate(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io(io) => StorageError::Io(io::Error::new(io.kind(), io.to_string())),
        StorageError::OutOfFiles(m) => StorageError::OutOfFiles(m.clone()),
        StorageError::Closed => StorageError::Closed,
        StorageError::NotWritten => StorageError::NotWritten,
        other => StorageError::CorruptState(other.to_string()),
    }
}

/// Index entries (offset, time) a write earns, added to the segment's indexes at commit
/// (inline for the one entry of each kind a write of one batch can earn).
type NewIndexEntries = (SmallVec<[(u32, u32); 1]>, SmallVec<[(i64, u32); 1]>);

/// Where a write being built has got to: the roll check of its next append uses it.
#[derive(Clone, Copy)]
struct WriteEnd {
    size: u64,
    log_end: i64,
    /// Batches already placed in the write (index entries they may add).
    batches: usize,
}

impl Log {
    /// Queues a validated append and waits until a group write (this caller's or an earlier
    /// lock holder's) has written and committed it.
    pub(crate) async fn append_validated(
        &self,
        batches: AppendBytes,
        infos: BatchInfos,
        opts: AppendOptions,
        stamp: Stamp,
    ) -> Result<AppendInfo, StorageError> {
        self.commit.check()?;
        let me = Rc::new(PendingAppend {
            input: RefCell::new(Some(AppendInput {
                batches,
                infos,
                opts,
                stamp,
            })),
            result: RefCell::new(None),
            waker: RefCell::new(None),
        });
        self.pending_appends.borrow_mut().push_back(me.clone());
        let _in_flight = InFlightAppend::new(&self.state);
        // Either a group written by the current lock holder answers this append, or this
        // caller gets the lock and writes the queue itself.
        let lock = self.append_lock.clone().lock_owned();
        let answered = me.answered();
        pin_mut!(lock, answered);
        if let Either::Left((guard, _)) = select(lock, answered).await {
            let mut guard = Some(guard);
            if me.input.borrow().is_some() {
                // The group: every append queued now (this one among them), taken from the
                // queue's front as it is written; later ones wait for the next holder.
                let group = self.pending_appends.borrow().len();
                self.append_group(group, &mut guard).await;
            }
            drop(guard);
        }
        let result = me.result.borrow_mut().take();
        // No answer: the group's writer was dropped (cancelled) before it answered. Not an
        // I/O error: the broker stops on those, and nothing failed on the disk.
        result.unwrap_or(Err(StorageError::NotWritten))
    }

    /// Writes the first `group` appends of `pending_appends` (a write per run that fits one,
    /// see the module header) and gives each its answer. Caller holds `append_lock`, so only
    /// this caller takes from the queue's front; appends queued meanwhile stay behind.
    /// `guard`: the caller's hold of `append_lock` (lent to each io_uring write's task).
    async fn append_group(&self, group: usize, guard: &mut Option<AppendGuard>) {
        let mut left = group;
        while left > 0 {
            if let Err(e) = self.write_some(&mut left, guard).await {
                while let Some((p, _)) = self.take_front(&mut left) {
                    p.finish(Err(duplicate(&e)));
                }
            }
        }
    }

    /// `f` of the first of the `left` appends of the group still queued (skipping, and
    /// dropping from the group, any without an input: nothing to write for it).
    fn peek_front<R>(&self, left: &mut usize, f: impl FnOnce(&AppendInput) -> R) -> Option<R> {
        loop {
            if *left == 0 {
                return None;
            }
            let queue = self.pending_appends.borrow();
            let Some(front) = queue.front() else {
                // Shorter than the group (a cancelled holder's leftovers): nothing left of it.
                *left = 0;
                return None;
            };
            if let Some(input) = front.input.borrow().as_ref() {
                return Some(f(input));
            }
            drop(queue);
            self.pending_appends.borrow_mut().pop_front();
            *left -= 1;
        }
    }

    /// Takes the first of the `left` appends of the group off the queue, with its input.
    fn take_front(&self, left: &mut usize) -> Option<(Rc<PendingAppend>, AppendInput)> {
        while *left > 0 {
            let Some(pending) = self.pending_appends.borrow_mut().pop_front() else {
                *left = 0;
                return None;
            };
            *left -= 1;
            let input = pending.input.borrow_mut().take();
            if let Some(input) = input {
                return Some((pending, input));
            }
        }
        None
    }

    /// Writes the first appends of the group (`left` of them still queued) that fit one write
    /// (rolling first if the first needs it), commits them and answers them; then applies the
    /// flush policy.
    async fn write_some(
        &self,
        left: &mut usize,
        guard: &mut Option<AppendGuard>,
    ) -> Result<(), StorageError> {
        let cfg = self.config();
        let active = self.state.borrow().active()?;
        let committed_end = WriteEnd {
            size: active.size.get(),
            log_end: self.state.borrow().log_end,
            batches: 0,
        };
        let Some((first_now_ms, roll)) = self.peek_front(left, |first| {
            (
                first.opts.now_ms,
                should_roll(&active, &cfg, first, committed_end),
            )
        }) else {
            return Ok(());
        };
        self.state.borrow_mut().last_now_ms = first_now_ms;
        if roll {
            self.roll_locked(first_now_ms).await?;
        }
        let active = self.state.borrow().active()?;
        let start = WriteEnd {
            size: active.size.get(),
            log_end: self.state.borrow().log_end,
            batches: 0,
        };
        let log_start = self.log_start_offset().0;
        let mut end = start;
        let mut tracker = active.tracker.get();
        let (mut new_offsets, mut new_times): NewIndexEntries = Default::default();
        let mut placed = PlacedAppends::new();
        let mut bufs = SmallVec::new();
        let mut iovecs = 0usize;
        let mut records_total = 0u64;
        loop {
            let fits = self.peek_front(left, |next| {
                placed.is_empty()
                    || !(placed.len() >= APPEND_COALESCE_ENTRIES_MAX
                        || end.size - start.size + next.batches.len() as u64
                            > APPEND_COALESCE_BYTES_MAX
                        || iovecs + next.batches.iovec_count() > APPEND_IOVECS_MAX
                        || should_roll(&active, &cfg, next, end))
            });
            if fits != Some(true) {
                break;
            }
            let Some((pending, mut input)) = self.take_front(left) else {
                break;
            };
            let metas = match input.stamp {
                Stamp::Leader => rewrite(
                    &mut input.batches,
                    &input.infos,
                    end.log_end,
                    &cfg,
                    input.opts,
                ),
                Stamp::Follower => match as_stamped(&input.infos, end.log_end, log_start) {
                    Ok(m) => m,
                    Err(e) => {
                        pending.finish(Err(e));
                        continue;
                    }
                },
            };
            let segment_end = match placed.is_empty() {
                true => SegmentEnd {
                    base: active.base,
                    next_offset: active.next_offset.get(),
                    size: active.size.get(),
                },
                false => SegmentEnd {
                    base: active.base,
                    next_offset: end.log_end,
                    size: end.size,
                },
            };
            check_before_write(
                &input.batches,
                &input.infos,
                &metas,
                segment_end,
                end.log_end,
                end.size,
                input.stamp,
            );
            let mut p = end.size;
            for m in &metas {
                tracker.step(
                    active.base,
                    p,
                    m,
                    cfg.index_interval_bytes,
                    &mut new_offsets,
                    &mut new_times,
                );
                p += m.size;
            }
            let len = input.batches.len() as u64;
            let next_end = end_after(&input, end.log_end);
            // A follower's first batch may start past the log end (a gap it keeps).
            let first_offset = match input.stamp {
                Stamp::Leader => end.log_end,
                Stamp::Follower => input
                    .infos
                    .first()
                    .map_or(end.log_end, |i| i.header.base_offset),
            };
            let record_count: u32 = input
                .infos
                .iter()
                .map(|i| i.header.record_count as u32)
                .sum();
            records_total += u64::from(record_count);
            placed.push(Placed {
                pending,
                info: AppendInfo {
                    base_offset: Offset(first_offset),
                    last_offset: Offset(next_end - 1),
                    log_append_time_ms: match cfg.timestamp_type {
                        TimestampType::LogAppendTime => input.opts.now_ms,
                        TimestampType::CreateTime => -1,
                    },
                    record_count,
                    batch_count: input.infos.len() as u32,
                    bytes: len as u32,
                },
                now_ms: input.opts.now_ms,
            });
            iovecs += input.batches.iovec_count();
            bufs.push(input.batches);
            end = WriteEnd {
                size: end.size + len,
                log_end: next_end,
                batches: end.batches + input.infos.len(),
            };
        }
        let Some(last_now_ms) = placed.last().map(|p| p.now_ms) else {
            return Ok(());
        };
        self.state.borrow_mut().last_now_ms = last_now_ms;
        if let Err(e) = index::entries_fit(
            active.indexes.borrow().as_ref(),
            &new_offsets,
            &new_times,
            end.size,
            u64::try_from(end.log_end - active.base).unwrap_or(u64::MAX),
        ) {
            crate::invariant::violated(
                file!(),
                line!(),
                format_args!(
                    "index entries of an append at offset {}, position {} do not fit segment \
                     {}: {e}",
                    start.log_end, start.size, active.base
                ),
            );
        }
        let len = end.size - start.size;
        // While an fsync of the segment runs, a `pwrite` can wait for its writeback (17 ms
        // measured): the io_uring write waits in a kernel worker instead of the shard.
        let inline = len <= u64::from(cfg.write_inline_max_bytes) && !self.commit.is_syncing();
        // The active file may have been closed as cold (`files.rs`): reopened here.
        let fd = match active.log.active_fd() {
            Ok(fd) => fd,
            Err(e) => {
                for p in &placed {
                    p.pending.finish(Err(duplicate(&e)));
                }
                return Err(e);
            }
        };
        let bufs = WriteBufs(bufs);
        crate::prealloc::before_write(&self.zero_ahead, active.base, end.size).await;
        let written = match inline {
            true => fd.write_segment_vectored(bufs, start.size, true).await,
            false => write_to_completion(fd.clone(), bufs, start.size, guard).await,
        };
        if let Err(e) = written {
            let e = write_failed(&active, start.size, len, e);
            for p in &placed {
                p.pending.finish(Err(duplicate(&e)));
            }
            return Err(e);
        }
        self.count_write(inline);
        self.commit_write(&active, start, end, tracker, (new_offsets, new_times));
        let threshold = cfg.writeback_start_bytes;
        crate::writeback::after_write(&self.writeback, &fd, active.base, end.size, threshold);
        let (za, seg_max) = (cfg.zero_ahead_bytes, cfg.segment_bytes_max);
        let at = (active.base, end.size);
        crate::prealloc::after_write(
            &self.zero_ahead,
            &self.commit,
            &self.state,
            &fd,
            at,
            za,
            seg_max,
        );
        {
            let mut st = self.state.borrow_mut();
            st.appended_messages_total = st.appended_messages_total.saturating_add(records_total);
            st.oldest_unflushed_ms.get_or_insert(first_now_ms);
        }
        active.mtime_ms.set(last_now_ms);
        for p in placed {
            p.pending.finish(Ok(p.info));
        }
        let flush_due = self.flush_due(last_now_ms);
        if flush_due || active.pending_index_entries() >= INDEX_PENDING_ENTRIES_MAX {
            active.persist_index_entries().await?;
        }
        if flush_due {
            self.start_policy_fsync()?;
        }
        Ok(())
    }

    /// Commits a completed write: one synchronous step, so readers see all of it or none.
    fn commit_write(
        &self,
        active: &Segment,
        start: WriteEnd,
        end: WriteEnd,
        tracker: index::Tracker,
        (new_offsets, new_times): NewIndexEntries,
    ) {
        if let Some(idx) = active.indexes.borrow_mut().as_mut() {
            idx.offsets.extend_from_slice(&new_offsets);
            idx.times.extend_from_slice(&new_times);
        }
        active.tracker.set(tracker);
        active.size.set(end.size);
        active.next_offset.set(end.log_end);
        active.max_ts.set(tracker.max_ts);
        let mut st = self.state.borrow_mut();
        // Paired with `check_before_write`: nothing moved the log end while the write was in
        // flight (append_lock), and the new end is past the old one.
        crate::invariant!(
            st.log_end == start.log_end && end.log_end > start.log_end,
            "append of offsets {}..{} committed at log end {}",
            start.log_end,
            end.log_end,
            st.log_end
        );
        st.log_end = end.log_end;
        if let Some(m) = tracker.max_ts {
            if st
                .max_ts
                .is_none_or(|cur| m.timestamp_ms > cur.timestamp_ms)
            {
                st.max_ts = Some(m);
            }
        }
    }
}

/// Whether `input`, appended where the write being built ends (`at`), needs a new segment
/// first: segment.bytes, index full, segment.ms, or relative offsets past i32.
fn should_roll(active: &Segment, cfg: &LogConfig, input: &AppendInput, at: WriteEnd) -> bool {
    if at.size == 0 {
        return false;
    }
    let len = input.batches.len() as u64;
    let bytes_max = cfg.segment_bytes_max.min(SEGMENT_BYTES_HARD_MAX);
    let full_bytes = at.size + len > bytes_max;
    let full_index =
        active.indexes.borrow().as_ref().is_some_and(|i| {
            i.is_full(cfg.segment_index_bytes_max, at.batches + input.infos.len())
        });
    // Kafka's `LogSegment.timeWaitedForRoll`: the incoming batches' largest timestamp minus
    // the segment's first, or the segment's age when it has no timestamp. Measuring a
    // client's old CreateTime against the wall clock instead would let every request roll a
    // segment.
    let now_ms = input.opts.now_ms;
    let incoming_ts = match cfg.timestamp_type {
        TimestampType::LogAppendTime => now_ms,
        TimestampType::CreateTime => input
            .infos
            .iter()
            .map(|i| i.max_timestamp)
            .max()
            .unwrap_or(-1),
    };
    let waited = match active.tracker.get().first_ts {
        Some(first) if first >= 0 => incoming_ts.saturating_sub(first),
        _ => now_ms.saturating_sub(active.created_ms.get()),
    };
    let aged = i64::try_from(cfg.segment_ms).is_ok_and(|ms| waited > ms);
    let rel_overflow = end_after(input, at.log_end) - 1 - active.base > RELATIVE_OFFSET_MAX;
    full_bytes || full_index || aged || rel_overflow
}
