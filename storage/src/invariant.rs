//! Storage invariants as assertions that stay on in release builds.
//!
//! An invariant here is something the code itself guarantees (a bug breaks it, bad input or a
//! damaged disk never does): offsets assigned on append continue the log end, a batch's CRC
//! matches its bytes before they are written, index entries point inside their segment, the
//! time index never goes back in time. Bad input and damage found on read are errors
//! (`StorageError`), never invariants.
//!
//! A violated invariant stops the process, as an unrecoverable disk error does
//! (`shards::fatal`, exit 70): the state in memory no longer describes what is on disk, and
//! writing on would corrupt stored data. [`invariant!`](crate::invariant!) is the one way to
//! check one; its message names the file, line and the values involved.
//!
//! Checks are cheap (integer comparisons per batch or per index entry, one CRC-32C per written
//! batch); `validate_bench` and `storage_bench` measure them (docs/decisions/0014).

use std::fmt;

/// Exit code of a process stopped by a violated invariant (EX_SOFTWARE, the same code as
/// `shards::fatal`).
pub const INVARIANT_EXIT_CODE: i32 = 70;

/// Checks a storage invariant (on in release builds). On violation, logs
/// `storage invariant violated at FILE:LINE: MESSAGE` and ends the process with exit code
/// [`INVARIANT_EXIT_CODE`](crate::invariant::INVARIANT_EXIT_CODE).
///
/// ```ignore
/// storage::invariant!(base == log_end, "append at {base} but the log ends at {log_end}");
/// ```
#[macro_export]
macro_rules! invariant {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::invariant::violated(file!(), line!(), format_args!($($arg)+))
        }
    };
}

/// Reports a violated invariant and stops the process (see the module docs). Cold, so the
/// check itself stays a compare and a not-taken branch on the hot path.
#[cold]
#[inline(never)]
pub fn violated(file: &str, line: u32, msg: fmt::Arguments<'_>) -> ! {
    tracing::error!("fatal: storage invariant violated at {file}:{line}: {msg}");
    // Also straight to stderr: the tracing subscriber may be missing or buffered.
    eprintln!("fatal: storage invariant violated at {file}:{line}: {msg}");
    std::process::exit(INVARIANT_EXIT_CODE)
}
