//! Group commit: fsyncs of the active segment that appends never wait for and that callers
//! needing durability join.
//!
//! Invariants:
//! - At most one fsync started here is in flight per log. It covers what was committed
//!   (written and visible) when it started: its snapshot of the log end offset and of the
//!   appended-message counter. On success the durable end offset moves to that snapshot,
//!   never further, and only if no truncation happened meanwhile (`State::generation`).
//! - Waiters whose offset the in-flight fsync does not cover wait for it, then start (or
//!   join) the next one: every waiter that arrived during one fsync shares the next one.
//! - The fsync runs in a spawned task, so it completes even when nobody waits for it (the
//!   flush policy's fsyncs); if appends made the policy due again meanwhile, the task starts
//!   the next fsync itself when it finishes.
//! - An fsync that started while a rolled segment's background seal was running (`seal.rs`)
//!   waits for that seal too before moving the durable end: the old segment's offsets lie
//!   below the snapshot's end, and only the seal fsyncs them.
//! - A failed fsync is sticky: every later append, flush or wait fails with it, because the
//!   page cache may no longer match the disk (the broker treats it as fatal).

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};

use crate::error::StorageError;
use crate::state::State;

pub(crate) type FsyncFuture = Shared<LocalBoxFuture<'static, Result<(), FsyncFailure>>>;

/// A failed fsync, kept to fail every later operation with (io::Error is not Clone).
#[derive(Clone, Debug)]
pub(crate) struct FsyncFailure {
    kind: io::ErrorKind,
    message: String,
}

impl FsyncFailure {
    /// `durable_end`: what the log had made durable before the failure, so the error says
    /// which offsets may be lost.
    fn new(e: &io::Error, durable_end: i64) -> Self {
        FsyncFailure {
            kind: e.kind(),
            message: format!("{e}; offsets from {durable_end} on are not durable"),
        }
    }

    pub(crate) fn to_error(&self) -> StorageError {
        StorageError::Io(io::Error::new(
            self.kind,
            format!("fsync failed: {}", self.message),
        ))
    }
}

/// The fsync in flight and what it will make durable.
#[derive(Clone)]
pub(crate) struct InFlight {
    /// Durable end offset once it succeeds.
    pub end: i64,
    /// Appended-message counter at its start.
    pub messages_total: u64,
    /// Broker clock at its start: every append it does not cover came later.
    pub started_ms: i64,
    done: FsyncFuture,
}

impl InFlight {
    /// Waits for this fsync (not for any later one).
    pub async fn wait(self) -> Result<(), StorageError> {
        self.done.await.map_err(|f| f.to_error())
    }
}

/// Per-log group-commit state (shared with the spawned fsync tasks).
#[derive(Default)]
pub(crate) struct GroupCommit {
    in_flight: RefCell<Option<InFlight>>,
    /// The flush policy became due while an fsync was in flight: start another after it.
    chain: Cell<bool>,
    fsyncs_total: Cell<u64>,
    failure: RefCell<Option<FsyncFailure>>,
    /// The background seal of the last rolled segment (`seal.rs`), while it runs: an fsync
    /// of the active segment started meanwhile waits for it before marking anything durable.
    sealing: RefCell<Option<FsyncFuture>>,
    /// Test hook (`Log::hold_seals`).
    seal_gate: RefCell<Option<Rc<crate::seal::SealGate>>>,
}

impl GroupCommit {
    /// The sticky fsync failure, if any.
    pub fn check(&self) -> Result<(), StorageError> {
        match self.failure.borrow().as_ref() {
            Some(f) => Err(f.to_error()),
            None => Ok(()),
        }
    }

    pub fn in_flight(&self) -> Option<InFlight> {
        self.in_flight.borrow().clone()
    }

    /// Whether an fsync of this log is running (its writeback holds ext4's block-mapping
    /// lock of the segment, which a `pwrite` on the shard thread would block on).
    pub fn is_syncing(&self) -> bool {
        self.in_flight.borrow().is_some()
    }

    /// Asks the in-flight fsync's task to start the next one when it completes.
    pub fn chain_next(&self) {
        self.chain.set(true);
    }

    pub fn fsync_count(&self) -> u64 {
        self.fsyncs_total.get()
    }

    /// Counts a data fsync done elsewhere (sealing a segment); a failure is sticky too.
    pub fn record_fsync(&self, res: &io::Result<()>, durable_end: i64) {
        self.fsyncs_total.set(self.fsyncs_total.get() + 1);
        if let Err(e) = res {
            self.fail(e, durable_end);
        }
    }

    pub(crate) fn sealing(&self) -> Option<FsyncFuture> {
        self.sealing.borrow().clone()
    }

    pub(crate) fn set_sealing(&self, f: FsyncFuture) {
        *self.sealing.borrow_mut() = Some(f);
    }

    pub(crate) fn seal_gate(&self) -> Option<Rc<crate::seal::SealGate>> {
        self.seal_gate.borrow().clone()
    }

    pub(crate) fn set_seal_gate(&self, gate: Option<Rc<crate::seal::SealGate>>) {
        *self.seal_gate.borrow_mut() = gate;
    }

    pub(crate) fn clear_sealing(&self) {
        self.sealing.borrow_mut().take();
    }

    /// The sticky failure: the one already recorded, else `e`.
    pub(crate) fn fail_once(&self, e: &io::Error, durable_end: i64) -> FsyncFailure {
        if let Some(f) = self.failure.borrow().clone() {
            return f;
        }
        self.fail(e, durable_end)
    }

    fn fail(&self, e: &io::Error, durable_end: i64) -> FsyncFailure {
        tracing::error!(
            error = %e,
            durable_end,
            "fsync failed; the log refuses further appends and flushes"
        );
        let f = FsyncFailure::new(e, durable_end);
        *self.failure.borrow_mut() = Some(f.clone());
        f
    }
}

/// What an fsync covers, taken synchronously when it starts.
struct Snapshot {
    /// The fdatasync, already pushed to the ring (`Fd::start_sync_segment_data`).
    sync: LocalBoxFuture<'static, io::Result<()>>,
    /// The seal of the previous segment running at the start, which must complete before
    /// this fsync's end can count as durable (`seal.rs`).
    sealing: Option<FsyncFuture>,
    end: i64,
    messages_total: u64,
    started_ms: i64,
    generation: u64,
}

/// Starts an fsync of everything committed unless one is in flight (which is returned
/// instead); `None` when everything committed is already durable.
pub(crate) fn start(
    state: &Rc<RefCell<State>>,
    gc: &Rc<GroupCommit>,
) -> Result<Option<InFlight>, StorageError> {
    gc.check()?;
    if let Some(f) = gc.in_flight() {
        return Ok(Some(f));
    }
    let snap = {
        let st = state.borrow();
        if st.log_end <= st.durable_end {
            return Ok(None);
        }
        Snapshot {
            sync: st.active()?.log.active_fd()?.start_sync_segment_data(),
            sealing: gc.sealing(),
            end: st.log_end,
            messages_total: st.appended_messages_total,
            started_ms: st.last_now_ms,
            generation: st.generation,
        }
    };
    let (end, messages_total, started_ms) = (snap.end, snap.messages_total, snap.started_ms);
    let done = run(state.clone(), gc.clone(), snap).boxed_local().shared();
    let f = InFlight {
        end,
        messages_total,
        started_ms,
        done: done.clone(),
    };
    *gc.in_flight.borrow_mut() = Some(f.clone());
    compio::runtime::spawn(done).detach();
    Ok(Some(f))
}

async fn run(
    state: Rc<RefCell<State>>,
    gc: Rc<GroupCommit>,
    snap: Snapshot,
) -> Result<(), FsyncFailure> {
    let res = snap.sync.await;
    gc.fsyncs_total.set(gc.fsyncs_total.get() + 1);
    let sealed = match snap.sealing {
        Some(seal) => seal.await,
        None => Ok(()),
    };
    gc.in_flight.borrow_mut().take();
    if let Err(e) = res {
        let durable_end = state.borrow().durable_end;
        return Err(gc.fail_once(&e, durable_end));
    }
    sealed?;
    state.borrow_mut().mark_durable(
        snap.end,
        snap.messages_total,
        snap.started_ms,
        snap.generation,
    );
    if gc.chain.replace(false) {
        // A closed log (or a failure) surfaces to the next caller, not here.
        match start(&state, &gc) {
            Ok(Some(_)) => crate::io::submit_pushed(),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "no chained fsync"),
        }
    }
    Ok(())
}
