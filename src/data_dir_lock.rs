//! The data directory's lock, as Kafka's `.lock` file in each log directory: one broker process
//! per data directory. A second broker started on the same directory (a second `make run`, a
//! service started twice) would otherwise append to the same segment files with its own offsets
//! and overwrite the same stores: it refuses to start instead, as Kafka does ("Failed to acquire
//! lock on file .lock ... A Kafka instance in another process or thread is using this
//! directory").
//!
//! Invariant: the lock (an exclusive `flock` on `<data_dir>/.lock`) is held from start-up, before
//! anything in the directory is read or written, until the process exits; the kernel releases
//! it with the descriptor, so a kill -9 never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// File name of the lock in the data directory (Kafka's name).
pub const LOCK_FILE: &str = ".lock";

/// Holds the data directory's lock while alive.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock of `data_dir` without waiting; `ErrorKind::WouldBlock` when another process
/// holds it.
pub fn acquire(data_dir: &Path) -> io::Result<DataDirLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open conflicts, as a second
        // process would.
        let second = acquire(dir.path()).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        assert!(acquire(dir.path()).is_ok());
    }
}
