//! Test hook: disk-fault injection, so tests can prove what an unrecoverable disk error does
//! (a sticky log failure here; a fatal exit with code 70 in the broker) on the real binary.
//! Never set these variables in production.
//!
//! - `SLUICE_FAULT_FSYNC_EIO_AFTER=N`: the (N+1)-th segment data fsync of this process (group
//!   commit or segment seal, any partition) fails with EIO without reaching the disk.
//! - `SLUICE_FAULT_WRITE_EIO_AFTER=N`: the (N+1)-th segment data write of an append fails with
//!   EIO, nothing of it written.
//! - `SLUICE_BENCH_ROLL_SEAL_INLINE=1`: a segment roll waits for the old segment's seal under
//!   the append lock, as before decision 0030 (A/B benchmarks of the background seal with one
//!   binary, BENCHMARKS.md).
//!
//! Invariants:
//! - The variables are read once per process (at the first `Log::open`); when neither is set
//!   every check is one load of an initialised `OnceLock`, no counter is touched.
//! - Exactly one operation fails per variable: later ones reach the disk again, as on a real
//!   disk whose fsync reported EIO once and then dropped the dirty pages (the case the sticky
//!   failure in `commit.rs` exists for).
//! - Index, checkpoint and directory fsyncs and recovery's fsyncs are never counted, so `N`
//!   counts only what the append path does.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Environment variable arming the injected fsync EIO.
pub const FSYNC_EIO_AFTER_VAR: &str = "SLUICE_FAULT_FSYNC_EIO_AFTER";
/// Environment variable arming the injected write EIO.
pub const WRITE_EIO_AFTER_VAR: &str = "SLUICE_FAULT_WRITE_EIO_AFTER";

/// Environment variable making rolls seal the old segment inline (benchmarks only).
pub const ROLL_SEAL_INLINE_VAR: &str = "SLUICE_BENCH_ROLL_SEAL_INLINE";

/// Whether rolls wait for the old segment's seal (`ROLL_SEAL_INLINE_VAR`, read once).
pub(crate) fn roll_seal_inline() -> bool {
    static INLINE: OnceLock<bool> = OnceLock::new();
    *INLINE.get_or_init(|| {
        let on = std::env::var(ROLL_SEAL_INLINE_VAR).is_ok_and(|v| v.trim() == "1");
        if on {
            tracing::warn!("benchmark hook {ROLL_SEAL_INLINE_VAR}=1: rolls seal inline");
        }
        on
    })
}

/// A segment data operation the hook can fail.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// fdatasync of a segment's `.log` file (group commit, seal).
    SegmentFsync,
    /// An append's write to the active segment's `.log` file.
    SegmentWrite,
}

/// One armed fault: fail the operation whose 0-based sequence number is `fail_at`.
struct Armed {
    fail_at: u64,
    seen: AtomicU64,
    var: &'static str,
}

struct Plan {
    fsync: Option<Armed>,
    write: Option<Armed>,
}

static PLAN: OnceLock<Plan> = OnceLock::new();

/// Reads the variables (first call only) and logs any armed fault.
pub(crate) fn arm() {
    plan();
}

fn plan() -> &'static Plan {
    PLAN.get_or_init(|| Plan {
        fsync: armed(FSYNC_EIO_AFTER_VAR),
        write: armed(WRITE_EIO_AFTER_VAR),
    })
}

fn armed(var: &'static str) -> Option<Armed> {
    let raw = std::env::var(var).ok()?;
    match raw.trim().parse::<u64>() {
        Ok(fail_at) => {
            tracing::warn!("test hook {var}={fail_at}: disk fault injection armed");
            Some(Armed {
                fail_at,
                seen: AtomicU64::new(0),
                var,
            })
        }
        Err(e) => {
            tracing::warn!("test hook {var}={raw:?} ignored: not a count ({e})");
            None
        }
    }
}

/// `Err(EIO)` when `op` is the one operation an armed fault picks; `Ok` otherwise.
pub(crate) fn check(op: Op) -> io::Result<()> {
    let plan = plan();
    let armed = match op {
        Op::SegmentFsync => plan.fsync.as_ref(),
        Op::SegmentWrite => plan.write.as_ref(),
    };
    let Some(armed) = armed else {
        return Ok(());
    };
    let seq = armed.seen.fetch_add(1, Ordering::Relaxed);
    if seq != armed.fail_at {
        return Ok(());
    }
    tracing::warn!(
        "test hook {}: injecting EIO into {op:?} #{}",
        armed.var,
        seq + 1
    );
    Err(io::Error::from_raw_os_error(libc::EIO))
}
