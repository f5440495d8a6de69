//! The `.log` file of a segment and the per-shard bounds on open segment files.
//!
//! A file descriptor is a bounded resource: a partition with thousands of sealed segments
//! must not hold thousands of fds, and a broker hosting 20,000 partitions must not hold
//! 20,000 (Kafka keeps every segment's file open and asks for a high `nofile` instead; Sluice
//! bounds them so that the limit is a cache size, not a crash).
//!
//! Two per-thread (per-shard) least-recently-used sets, each of open files only:
//! - **active** files (`log.active.segment.files.open.max`): the one segment per partition
//!   that takes appends. It is opened when it becomes active and kept open while it is used;
//!   when more than the bound are open, the coldest is closed, and its next append, fsync or
//!   read reopens it ([`SegmentFile::active_fd`], a synchronous `open(2)` of a path whose
//!   dentry is cached: microseconds, no disk I/O). Closing loses nothing: written data is in
//!   the page cache and an fsync through a new descriptor flushes the whole file (Linux
//!   reports a writeback error nobody has seen yet to a descriptor opened after it, too).
//! - **sealed** files (`log.sealed.segment.files.open.max`): opened on first read.
//!
//! An I/O in flight holds its own shared fd (`Fd` is an `Arc<OwnedFd>`), so closing a file in
//! the cache never breaks a write, fsync or a fetch's range in progress; the descriptor closes
//! when the last of them ends. Two sets, not one, so that a consumer scanning old segments
//! never closes the files producers are appending to.
//!
//! Invariants: an open file is in exactly one set, once (`tick` names its entry; `active`
//! says which set); a closed file is in none; neither set holds more entries than its bound
//! once an insertion returns.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use crate::error::StorageError;
use crate::io::Fd;

/// Default of `set_sealed_segment_files_open_max` (the broker's
/// `log.sealed.segment.files.open.max`).
pub const SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT: usize = 256;
/// Default of `set_active_segment_files_open_max` (the broker's
/// `log.active.segment.files.open.max`): per shard, so 4 shards keep up to 16,384 partitions'
/// active files open, well under common `nofile` limits once raised to the hard limit.
pub const ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT: usize = 4096;

struct OpenSet {
    max: usize,
    next_tick: u64,
    entries: BTreeMap<u64, Weak<SegmentFile>>,
}

impl OpenSet {
    const fn new(max: usize) -> Self {
        Self {
            max,
            next_tick: 1,
            entries: BTreeMap::new(),
        }
    }
}

thread_local! {
    static OPEN_SEALED: RefCell<OpenSet> =
        const { RefCell::new(OpenSet::new(SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT)) };
    static OPEN_ACTIVE: RefCell<OpenSet> =
        const { RefCell::new(OpenSet::new(ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT)) };
}

type Set = std::thread::LocalKey<RefCell<OpenSet>>;

fn set_of(active: bool) -> &'static Set {
    match active {
        true => &OPEN_ACTIVE,
        false => &OPEN_SEALED,
    }
}

/// Sets how many sealed segment files this thread (shard) keeps open (at least 1).
pub fn set_sealed_segment_files_open_max(max: usize) {
    OPEN_SEALED.with(|s| s.borrow_mut().max = max.max(1));
    evict_over_bound(&OPEN_SEALED);
}

/// Sealed segment files this thread keeps open now.
pub fn sealed_segment_files_open() -> usize {
    OPEN_SEALED.with(|s| s.borrow().entries.len())
}

/// Sets how many active segment files this thread (shard) keeps open (at least 1).
pub fn set_active_segment_files_open_max(max: usize) {
    OPEN_ACTIVE.with(|s| s.borrow_mut().max = max.max(1));
    evict_over_bound(&OPEN_ACTIVE);
}

/// Active segment files this thread keeps open now.
pub fn active_segment_files_open() -> usize {
    OPEN_ACTIVE.with(|s| s.borrow().entries.len())
}

fn evict_over_bound(set: &'static Set) {
    loop {
        let victim = set.with(|s| {
            let mut s = s.borrow_mut();
            if s.entries.len() <= s.max {
                return None;
            }
            s.entries.pop_first().map(|(_, w)| w)
        });
        let Some(victim) = victim else { return };
        if let Some(file) = victim.upgrade() {
            file.tick.set(0);
            file.fd.borrow_mut().take();
        }
    }
}

/// A segment's `.log` file, open or not.
pub(crate) struct SegmentFile {
    path: PathBuf,
    fd: RefCell<Option<Fd>>,
    /// The active segment's file (in the active set when open), else a sealed one's.
    active: Cell<bool>,
    /// Key of this file's LRU entry; 0 when it has none.
    tick: Cell<u64>,
}

impl SegmentFile {
    /// A file just opened: active or sealed, entered in its LRU set.
    pub fn new(path: PathBuf, fd: Fd, active: bool) -> Rc<SegmentFile> {
        let file = Rc::new(SegmentFile {
            path,
            fd: RefCell::new(Some(fd)),
            active: Cell::new(active),
            tick: Cell::new(0),
        });
        file.touch();
        file
    }

    /// The fd of the active segment's file, reopened (synchronously, see the module
    /// documentation) when the LRU closed it.
    /// Out of descriptors (EMFILE/ENFILE) is `OutOfFiles` (retriable, nothing was written);
    /// anything else (the file vanished) is an I/O error.
    pub fn active_fd(self: &Rc<Self>) -> Result<Fd, StorageError> {
        crate::invariant!(self.active.get(), "{} is not active", self.path.display());
        if let Some(fd) = self.fd.borrow().clone() {
            self.touch();
            return Ok(fd);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EMFILE) | Some(libc::ENFILE) => {
                    StorageError::OutOfFiles(format!("reopening {}: {e}", self.path.display()))
                }
                _ => StorageError::Io(io::Error::new(
                    e.kind(),
                    format!("reopening {}: {e}", self.path.display()),
                )),
            })?;
        let fd = Fd(Arc::new(std::os::fd::OwnedFd::from(file)));
        *self.fd.borrow_mut() = Some(fd.clone());
        self.touch();
        Ok(fd)
    }

    /// The fd, opening the file if the LRU closed it.
    pub async fn get(self: &Rc<Self>) -> io::Result<Fd> {
        if let Some(fd) = self.fd.borrow().clone() {
            self.touch();
            return Ok(fd);
        }
        let fd = Fd::open_rw(&self.path, false).await?;
        // Another task may have opened it meanwhile: keep one.
        let fd = self.fd.borrow_mut().get_or_insert(fd).clone();
        self.touch();
        Ok(fd)
    }

    /// Makes this the active segment's file: open, in the active set.
    pub async fn pin(self: &Rc<Self>) -> io::Result<()> {
        self.forget();
        self.active.set(true);
        if self.fd.borrow().is_none() {
            let fd = Fd::open_rw(&self.path, false).await?;
            self.fd.borrow_mut().get_or_insert(fd);
        }
        self.touch();
        Ok(())
    }

    /// The segment was sealed: its file moves to the sealed set.
    pub fn unpin(self: &Rc<Self>) {
        self.forget();
        self.active.set(false);
        self.touch();
    }

    /// Moves an open file to the most recently used end of its set.
    fn touch(self: &Rc<Self>) {
        if self.fd.borrow().is_none() {
            return;
        }
        let set = set_of(self.active.get());
        set.with(|s| {
            let mut s = s.borrow_mut();
            let old = self.tick.get();
            if old != 0 {
                s.entries.remove(&old);
            }
            let tick = s.next_tick;
            s.next_tick += 1;
            s.entries.insert(tick, Rc::downgrade(self));
            self.tick.set(tick);
        });
        evict_over_bound(set);
    }

    fn forget(&self) {
        let old = self.tick.replace(0);
        if old != 0 {
            // The thread-local is gone only while the thread exits; nothing to keep then.
            let _ = set_of(self.active.get()).try_with(|s| s.borrow_mut().entries.remove(&old));
        }
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors of this process open on files under `dir` (other tests' files are elsewhere).
    fn fds_under(dir: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    #[test]
    fn the_lru_bound_closes_the_least_recently_used_sealed_file() {
        let dir = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            set_sealed_segment_files_open_max(2);
            let mut files = Vec::new();
            for i in 0..4 {
                let path = dir.path().join(format!("{i}.log"));
                let fd = Fd::open_rw(&path, true).await.unwrap();
                files.push(SegmentFile::new(path, fd, false));
            }
            assert_eq!(sealed_segment_files_open(), 2);
            assert!(files[0].fd.borrow().is_none() && files[1].fd.borrow().is_none());
            // Reopened on use; the least recently used of the others closes.
            files[0].get().await.unwrap();
            assert!(files[2].fd.borrow().is_none());
            assert!(files[3].fd.borrow().is_some());
            // Active files are in their own set: they never close a sealed one.
            files[1].pin().await.unwrap();
            assert_eq!(sealed_segment_files_open(), 2);
            assert_eq!(active_segment_files_open(), 1);
            assert!(files[3].fd.borrow().is_some());
            files[1].active_fd().unwrap();
            files[1].unpin();
            assert_eq!(active_segment_files_open(), 0);
            assert!(
                files[3].fd.borrow().is_none(),
                "unpinning makes room by the bound"
            );
            drop(files);
            assert_eq!(sealed_segment_files_open(), 0);
            assert_eq!(fds_under(dir.path()), 0, "every descriptor closed");
            set_sealed_segment_files_open_max(SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT);
        });
    }

    #[test]
    fn cold_active_files_close_and_reopen_on_demand_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            set_active_segment_files_open_max(3);
            let mut files = Vec::new();
            for i in 0..10 {
                let path = dir.path().join(format!("{i}.log"));
                let fd = Fd::open_rw(&path, true).await.unwrap();
                files.push(SegmentFile::new(path, fd, true));
            }
            // Only the three most recently used stay open, in the set and in the process.
            assert_eq!(active_segment_files_open(), 3);
            assert_eq!(fds_under(dir.path()), 3);
            assert!(files[0].fd.borrow().is_none() && files[9].fd.borrow().is_some());
            // A write through a reopened descriptor lands in the same file.
            let fd = files[0].active_fd().unwrap();
            fd.write_all(b"hello".to_vec(), 0).await.unwrap();
            assert!(files[7].fd.borrow().is_none(), "the coldest was closed");
            assert_eq!(
                fds_under(dir.path()),
                3,
                "the caller's fd is the cached one"
            );
            drop(fd);
            // Every file in turn, many times: the count never exceeds the bound.
            for round in 0..5 {
                for f in &files {
                    let fd = f.active_fd().unwrap();
                    fd.sync(false).await.unwrap();
                    drop(fd);
                    assert!(fds_under(dir.path()) <= 3, "round {round}");
                }
            }
            let fd = files[0].active_fd().unwrap();
            assert_eq!(fd.read_exact(0, 5).await.unwrap(), b"hello");
            drop(fd);
            // An fd a caller holds outlives its eviction (an I/O in flight is never cut).
            let held = files[1].active_fd().unwrap();
            for f in &files[2..6] {
                f.active_fd().unwrap();
            }
            assert!(files[1].fd.borrow().is_none());
            assert_eq!(
                fds_under(dir.path()),
                4,
                "3 cached + the evicted one still held"
            );
            held.sync(false).await.unwrap();
            drop(held);
            assert_eq!(fds_under(dir.path()), 3);
            // Lowering the bound closes at once; dropping every file closes everything.
            set_active_segment_files_open_max(1);
            assert_eq!(fds_under(dir.path()), 1);
            drop(files);
            assert_eq!(active_segment_files_open(), 0);
            assert_eq!(fds_under(dir.path()), 0, "no descriptor leaked");
            set_active_segment_files_open_max(ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT);
        });
    }

    #[test]
    fn a_deleted_active_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            set_active_segment_files_open_max(1);
            let a = dir.path().join("a.log");
            let fd = Fd::open_rw(&a, true).await.unwrap();
            let file_a = SegmentFile::new(a.clone(), fd, true);
            let b = dir.path().join("b.log");
            let fd = Fd::open_rw(&b, true).await.unwrap();
            let _file_b = SegmentFile::new(b, fd, true);
            std::fs::remove_file(&a).unwrap();
            assert!(file_a.active_fd().is_err());
            set_active_segment_files_open_max(ACTIVE_SEGMENT_FILES_OPEN_MAX_DEFAULT);
        });
    }
}
