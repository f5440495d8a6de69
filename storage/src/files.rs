//! The `.log` file of a segment and the per-shard bound on open segment files.
//!
//! A file descriptor is a bounded resource: a partition with thousands of sealed segments
//! must not hold thousands of fds. An active segment's file is *pinned*: opened when it
//! becomes active and kept open (appends and fsyncs use it synchronously). A sealed segment's
//! file is opened on first use and kept in a per-thread (per-shard) least-recently-used set
//! of at most `sealed_segment_files_open_max` files; opening one more closes the least
//! recently used. A fetch that already holds a range of a closed file keeps its own shared fd
//! until the response is written, so closing never breaks a read in progress.
//!
//! Invariants: a pinned file is open and outside the LRU set; an unpinned open file is in
//! the set exactly once (`tick` names its entry); the set never holds more entries than the
//! bound once an insertion returns.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::{Rc, Weak};

use crate::io::Fd;

/// Default of `set_sealed_segment_files_open_max` (the broker's
/// `log.sealed.segment.files.open.max`).
pub const SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT: usize = 256;

struct OpenSet {
    max: usize,
    next_tick: u64,
    entries: BTreeMap<u64, Weak<SegmentFile>>,
}

thread_local! {
    static OPEN_SEALED: RefCell<OpenSet> = const {
        RefCell::new(OpenSet {
            max: SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT,
            next_tick: 1,
            entries: BTreeMap::new(),
        })
    };
}

/// Sets how many sealed segment files this thread (shard) keeps open (at least 1).
pub fn set_sealed_segment_files_open_max(max: usize) {
    OPEN_SEALED.with(|s| s.borrow_mut().max = max.max(1));
    evict_over_bound();
}

/// Sealed segment files this thread keeps open now.
pub fn sealed_segment_files_open() -> usize {
    OPEN_SEALED.with(|s| s.borrow().entries.len())
}

fn evict_over_bound() {
    loop {
        let victim = OPEN_SEALED.with(|s| {
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
    pinned: Cell<bool>,
    /// Key of this file's LRU entry; 0 when it has none.
    tick: Cell<u64>,
}

impl SegmentFile {
    /// A file just opened: pinned (active) or entered in the LRU set.
    pub fn new(path: PathBuf, fd: Fd, pinned: bool) -> Rc<SegmentFile> {
        let file = Rc::new(SegmentFile {
            path,
            fd: RefCell::new(Some(fd)),
            pinned: Cell::new(pinned),
            tick: Cell::new(0),
        });
        if !pinned {
            file.touch();
        }
        file
    }

    /// The fd of a pinned (active) file, which is always open.
    pub fn pinned_fd(&self) -> Fd {
        crate::invariant!(self.pinned.get(), "{} is not pinned", self.path.display());
        match self.fd.borrow().clone() {
            Some(fd) => fd,
            None => crate::invariant::violated(
                file!(),
                line!(),
                format_args!("pinned segment file {} is closed", self.path.display()),
            ),
        }
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

    /// Makes this the active segment's file: open, kept open, outside the LRU set.
    pub async fn pin(self: &Rc<Self>) -> io::Result<()> {
        self.pinned.set(true);
        self.forget();
        if self.fd.borrow().is_none() {
            let fd = Fd::open_rw(&self.path, false).await?;
            self.fd.borrow_mut().get_or_insert(fd);
        }
        Ok(())
    }

    /// The segment was sealed: its file may now be closed when the LRU needs room.
    pub fn unpin(self: &Rc<Self>) {
        self.pinned.set(false);
        self.touch();
    }

    /// Moves an unpinned open file to the most recently used end of the set.
    fn touch(self: &Rc<Self>) {
        if self.pinned.get() || self.fd.borrow().is_none() {
            return;
        }
        OPEN_SEALED.with(|s| {
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
        evict_over_bound();
    }

    fn forget(&self) {
        let old = self.tick.replace(0);
        if old != 0 {
            // The thread-local is gone only while the thread exits; nothing to keep then.
            let _ = OPEN_SEALED.try_with(|s| s.borrow_mut().entries.remove(&old));
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
            // Pinned files do not count and are never closed.
            files[1].pin().await.unwrap();
            assert_eq!(sealed_segment_files_open(), 2);
            assert!(files[3].fd.borrow().is_some());
            files[1].pinned_fd();
            files[1].unpin();
            assert!(
                files[3].fd.borrow().is_none(),
                "unpinning makes room by the bound"
            );
            drop(files);
            assert_eq!(sealed_segment_files_open(), 0);
            set_sealed_segment_files_open_max(SEALED_SEGMENT_FILES_OPEN_MAX_DEFAULT);
        });
    }
}
