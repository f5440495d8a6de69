//! The size of the io-wq worker pool behind each shard's io_uring
//! (`IORING_REGISTER_IOWQ_MAX_WORKERS`, Linux 5.15).
//!
//! The kernel runs an io_uring op on a regular file that cannot complete without blocking (a
//! buffered ext4 write above the inline threshold, an fsync, a SYNC_FILE_RANGE) in a "bounded"
//! io-wq worker thread of the task that submitted it. Those workers belong to the broker,
//! inherit the shard thread's CPU affinity and compete with the shard for its core. The kernel
//! starts up to min(SQ entries, 4 x CPUs) of them per shard; with more of them runnable than
//! the core can run, the shard and the workers wait in its run queue and concurrent fsyncs of
//! one file system contend for the same metadata buffers. Measured (BENCHMARKS.md, "Issue 16,
//! session 8"; decision 0032): 2 per shard made acks=all (an fsync per answer) 1.0-1.8x
//! faster on the 2-CPU VM (17 pairs) and acks=1 0.3-1.4x (mixed). The default keeps the
//! kernel's limit: a background seal fdatasyncs a whole rolled segment in a worker, so a pool
//! of 2 could be held by two seals while every large append of the shard waits. Socket ops
//! are "unbounded" work and not limited.
//!
//! Invariants:
//! - Called on the shard's own thread, after its ring exists and before it submits (the limit
//!   is the calling task's; the ring may be `SINGLE_ISSUER`).
//! - 0 keeps the kernel's limit. A refusal (an older kernel) is returned to the caller, which
//!   logs it and runs with the kernel's limit: the limit is a tuning, not a correctness need.
//! - A limit only queues ops inside the kernel; no op waits for another op's completion there,
//!   so a small pool delays, never deadlocks.

use std::io;
use std::os::fd::RawFd;

const IORING_REGISTER_IOWQ_MAX_WORKERS: libc::c_uint = 19;

/// Most bounded io-wq workers per shard (`shard.io_wq.bounded.workers.max`): 0, the kernel's.
pub const IOWQ_BOUNDED_WORKERS_MAX_DEFAULT: u32 = 0;

/// Sets the most bounded io-wq workers of the calling thread's rings (`ring_fd` is one of
/// them) to `bounded` (0 = leave it) and returns the limits in force before, as
/// `[bounded, unbounded]`.
pub fn set_iowq_bounded_workers_max(ring_fd: RawFd, bounded: u32) -> io::Result<[u32; 2]> {
    // [bounded, unbounded]; 0 = unchanged. The kernel writes the previous limits back.
    let mut counts = [bounded, 0u32];
    // SAFETY: `counts` is two u32s that live for the call; the kernel reads and writes only
    // those (nr_args = 2).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_REGISTER_IOWQ_MAX_WORKERS,
            counts.as_mut_ptr(),
            2 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn the_limit_is_set_and_read_back() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        let fd = runtime.as_raw_fd();
        let before = set_iowq_bounded_workers_max(fd, 3).unwrap();
        assert!(before[0] > 0, "the kernel's default limit: {before:?}");
        // 0 changes nothing and reports the limit in force.
        assert_eq!(set_iowq_bounded_workers_max(fd, 0).unwrap()[0], 3);
        assert_eq!(set_iowq_bounded_workers_max(fd, 0).unwrap()[1], before[1]);
    }
}
