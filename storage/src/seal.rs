//! Sealing a rolled segment in the background, as Kafka does: `UnifiedLog.roll` schedules the
//! flush of the old segment (`flushUptoOffsetExclusive`) instead of running it under the log's
//! lock, because the fsync of a full segment (hundreds of ms for 64 MiB on a slow disk) would
//! otherwise stall every append to the partition and every request queued behind it.
//!
//! A roll (under `append_lock`) writes the old segment's final time index entry and pending
//! index entries (Kafka's `onBecomeInactiveSegment`, also under the lock), creates the new
//! active segment and starts the seal of the old one in the background: fdatasync of its
//! data, then of its index files. The background part only fsyncs descriptors it holds; it
//! writes nothing and opens nothing by name, so a seal still running after its log was
//! dropped (a simulated crash, a failed close) cannot change files a new instance of the log
//! owns. When the seal completes, the old segment's end
//! becomes durable and the in-memory recovery point moves to it; the checkpoint file takes
//! that recovery point at the next roll, retention, truncation or close (Kafka too writes the
//! recovery-point checkpoint apart from the flush; a lagging recovery point only means that
//! an unclean restart scans one more segment).
//!
//! Invariants:
//! - Durability is unchanged for callers: the durable end offset moves past the old
//!   segment only when its seal completed, and a group-commit fsync of the new active
//!   segment (`commit.rs`) that started while a seal was running waits for that seal before
//!   it marks anything durable. So an acks=all answer still means its bytes are fsynced,
//!   including the bytes of the segment before it.
//! - At most one seal per log runs: a roll, and every operation that removes or replaces
//!   segments or closes the log (truncation, retention, the cleaner's swap, close), waits for
//!   the running one first (under `append_lock`). Bounded, and nothing else ever sees a
//!   segment that is both sealing and being changed.
//! - A failed seal is a sticky fsync failure of the log (`GroupCommit`), like a failed
//!   group-commit fsync: every later append, flush and wait fails, and the broker stops.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures_util::future::FutureExt;

use crate::commit::{FsyncFailure, GroupCommit};
use crate::error::StorageError;
use crate::log::Log;
use crate::segment::Segment;
use crate::state::State;

/// What the log looked like when the roll sealed `seg` (what the seal makes durable).
#[derive(Clone, Copy)]
pub(crate) struct SealSnapshot {
    /// The old segment's end offset (the new active segment's base).
    pub end: i64,
    /// Appended-message counter at the roll.
    pub messages_total: u64,
    pub started_ms: i64,
    pub generation: u64,
}

/// What a segment gets when it stops being the active one, under `append_lock` (Kafka's
/// `LogSegment.onBecomeInactiveSegment`, which `UnifiedLog.roll` runs under the log's lock):
/// the final time index entry (its largest timestamp) and every pending index entry are
/// written to its index files (page cache writes, no fsync). So the background part of a seal
/// only fsyncs descriptors it already holds: it never writes a file, and never opens one by
/// name, which matters once the log that started it is gone (a crashed or dropped instance
/// whose seal still runs while a new instance recovers, cleans or deletes those files).
pub(crate) async fn finish_indexes(seg: &Segment) -> Result<(), StorageError> {
    let mut tracker = seg.tracker.get();
    let mut times = Vec::new();
    tracker.time_entry(seg.base, &mut times);
    if let Some(idx) = seg.indexes.borrow_mut().as_mut() {
        idx.times.extend_from_slice(&times);
    }
    seg.tracker.set(tracker);
    seg.persist_index_entries().await
}

/// fsyncs a segment's data and its (already written, `finish_indexes`) index files through
/// the descriptors the segment holds.
pub(crate) async fn sync_segment(
    seg: &Segment,
    gc: &GroupCommit,
    durable_end: i64,
) -> Result<(), StorageError> {
    let synced = seg.log.active_fd()?.sync_segment_data().await;
    gc.record_fsync(&synced, durable_end);
    // The sticky failure's error, which says it was an fsync and what is not durable.
    gc.check()?;
    seg.sync_index_files().await
}

/// Starts sealing `seg`, just rolled (its indexes finished: `finish_indexes`), in a spawned
/// task (it completes even if nobody waits); `GroupCommit::sealing` holds it until it is
/// done. Caller holds `append_lock` and has waited for the previous seal.
pub(crate) fn start(
    state: &Rc<RefCell<State>>,
    gc: &Rc<GroupCommit>,
    seg: Rc<Segment>,
    snap: SealSnapshot,
) {
    let done = run(state.clone(), gc.clone(), seg, snap)
        .boxed_local()
        .shared();
    gc.set_sealing(done.clone());
    compio::runtime::spawn(done).detach();
}

async fn run(
    state: Rc<RefCell<State>>,
    gc: Rc<GroupCommit>,
    seg: Rc<Segment>,
    snap: SealSnapshot,
) -> Result<(), FsyncFailure> {
    if let Some(gate) = gc.seal_gate() {
        gate.opened().await;
    }
    let durable_end = state.borrow().durable_end;
    let res = sync_segment(&seg, &gc, durable_end).await;
    gc.clear_sealing();
    if let Err(e) = res {
        // An fsync failure is already sticky; an index write or sync failure becomes one
        // (the page cache and the disk may disagree about the segment now).
        let io = match e {
            StorageError::Io(io) => io,
            other => io::Error::other(other.to_string()),
        };
        return Err(gc.fail_once(&io, durable_end));
    }
    // Sealed: its file may now be closed when the per-shard bound needs room.
    seg.index_fds.borrow_mut().take();
    seg.log.unpin();
    let mut st = state.borrow_mut();
    if st.generation == snap.generation
        && st
            .segments
            .get(&seg.base)
            .is_some_and(|s| Rc::ptr_eq(s, &seg))
    {
        st.recovery_point = st.recovery_point.max(snap.end);
    }
    st.mark_durable(
        snap.end,
        snap.messages_total,
        snap.started_ms,
        snap.generation,
    );
    Ok(())
}

impl Log {
    /// Waits for the background seal of the last rolled segment, if one is running; its
    /// failure (sticky) is returned. Callers hold `append_lock`.
    pub(crate) async fn await_seal(&self) -> Result<(), StorageError> {
        if let Some(f) = self.commit.sealing() {
            f.await.map_err(|f| f.to_error())?;
        }
        self.commit.check()
    }

    /// Whether a rolled segment is still being sealed (tests, metrics).
    pub fn seal_in_flight(&self) -> bool {
        self.commit.sealing().is_some()
    }

    /// Test hook: background seals of this log started from now on wait (before their
    /// fsync) until the returned gate is opened, so a test can observe a roll whose seal has
    /// not run. Never used by the broker.
    #[doc(hidden)]
    pub fn hold_seals(&self) -> Rc<SealGate> {
        let gate = Rc::new(SealGate::default());
        self.commit.set_seal_gate(Some(gate.clone()));
        gate
    }
}

/// A gate background seals wait at (`Log::hold_seals`).
#[doc(hidden)]
#[derive(Default)]
pub struct SealGate {
    open: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl SealGate {
    /// Lets every held seal (and later ones) go on.
    pub fn open(&self) {
        self.open.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    async fn opened(&self) {
        poll_fn(|cx| {
            if self.open.get() {
                return Poll::Ready(());
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
