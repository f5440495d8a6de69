//! The raft log of the metadata quorum on disk (openraft's `RaftLogStorage`), under
//! `<metadata dir>/`:
//!
//! - `<first index, 20 digits>.log`: segments of entries, each `length u32`, `crc32c u32` (of
//!   the body), body = `version u8 (0)` + postcard of the openraft entry. A new segment starts
//!   when the active one reaches `metadata.log.segment.bytes`.
//! - `vote`, `committed`, `purged`: small files (`version u8`, `crc32c u32`, postcard), replaced
//!   atomically (temp file + rename); `vote` and `purged` are fsynced, `committed` is not (a
//!   stale committed id only means re-applying less at start; openraft catches up).
//!
//! Invariants:
//! - An append is durable (written and `fdatasync`ed) before openraft is told it is flushed.
//! - No hole: entries are contiguous from the first kept index to the last. `truncate_after`
//!   deletes later segments (newest first) before cutting the one that holds the cut point;
//!   `purge` records the purged id before deleting the segments wholly below it.
//! - A torn or corrupt tail of the last segment (a crash mid-append) is cut off at start with a
//!   warning; corruption in an older segment refuses to start (committed data would be lost).
//! - Entries after the purge point are also held in memory (they are bounded by the snapshot
//!   policy: openraft purges them after each snapshot), so reads never touch the disk.
//!
//! All file I/O is synchronous: the quorum runs on its own thread, never on a shard.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::RaftLogReader;

use super::{EntryOf, LogIdOf, QuorumTypes, VoteOf};

/// Format version of an entry body and of the small state files.
const FORMAT_V0: u8 = 0;
/// Length and CRC in front of every entry.
const ENTRY_HEADER_BYTES: usize = 8;
/// An entry larger than this on disk is corruption, not data (frames are bounded far below).
const ENTRY_BYTES_MAX: usize = 1 << 30;

const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
const PURGED_FILE: &str = "purged";

/// One segment file.
#[derive(Debug)]
struct Segment {
    base_index: u64,
    path: PathBuf,
    size_bytes: u64,
}

/// Where an entry lives: for truncation.
#[derive(Debug, Clone, Copy)]
struct Position {
    segment_base: u64,
    file_offset: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    segment_bytes_max: u64,
    segments: Vec<Segment>,
    /// The last segment's file, open for appends; `None` when there is no segment yet.
    active: Option<File>,
    entries: BTreeMap<u64, (EntryOf, Position)>,
    vote: Option<VoteOf>,
    committed: Option<LogIdOf>,
    purged: Option<LogIdOf>,
}

/// The log store; clones share one state (the log reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Rc<RefCell<Inner>>,
}

/// Errors as `io::Error` (what openraft's storage traits return), `InvalidData` for corruption.
fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, recovering from a torn tail.
    pub fn open(dir: &Path, segment_bytes_max: u64) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let vote: Option<VoteOf> = read_small(&dir.join(VOTE_FILE))?;
        let committed: Option<LogIdOf> = read_small(&dir.join(COMMITTED_FILE))?;
        let purged: Option<LogIdOf> = read_small(&dir.join(PURGED_FILE))?;
        let mut inner = Inner {
            dir: dir.to_owned(),
            segment_bytes_max,
            segments: Vec::new(),
            active: None,
            entries: BTreeMap::new(),
            vote,
            committed,
            purged,
        };
        inner.recover_segments()?;
        Ok(LogStore {
            inner: Rc::new(RefCell::new(inner)),
        })
    }
}

impl Inner {
    fn recover_segments(&mut self) -> io::Result<()> {
        let mut bases = Vec::new();
        for dirent in fs::read_dir(&self.dir)? {
            let name = dirent?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<u64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let purged_index = self.purged.map(|p| p.index);
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            let path = segment_path(&self.dir, base);
            let bytes = fs::read(&path)?;
            let (entries, good_len) = parse_segment(&bytes);
            if good_len < bytes.len() {
                if i + 1 < count {
                    return Err(corrupt(format!(
                        "metadata log segment {} is corrupt at byte {good_len} and is not the last",
                        path.display()
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    valid_bytes = good_len,
                    dropped_bytes = bytes.len() - good_len,
                    "metadata log: cutting a torn tail left by a crash"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(good_len as u64)?;
                file.sync_all()?;
            }
            for (file_offset, entry) in entries {
                let index = entry.log_id.index;
                if purged_index.is_some_and(|p| index <= p) {
                    continue;
                }
                let expected = self.next_index();
                if self.entries.is_empty() {
                    if purged_index.is_some_and(|p| index != p + 1) {
                        return Err(corrupt(format!(
                            "metadata log starts at {index}, after purged {purged_index:?}"
                        )));
                    }
                } else if index != expected {
                    return Err(corrupt(format!(
                        "metadata log has a hole: {index} follows {}",
                        expected - 1
                    )));
                }
                let position = Position {
                    segment_base: base,
                    file_offset,
                };
                self.entries.insert(index, (entry, position));
            }
            self.segments.push(Segment {
                base_index: base,
                path,
                size_bytes: good_len as u64,
            });
        }
        if let Some(last) = self.segments.last() {
            self.active = Some(OpenOptions::new().append(true).open(&last.path)?);
        }
        Ok(())
    }

    fn next_index(&self) -> u64 {
        match self.entries.last_key_value() {
            Some((index, _)) => index + 1,
            None => self.purged.map_or(0, |p| p.index + 1),
        }
    }

    fn last_log_id(&self) -> Option<LogIdOf> {
        match self.entries.last_key_value() {
            Some((_, (entry, _))) => Some(entry.log_id),
            None => self.purged,
        }
    }

    fn roll(&mut self, base_index: u64) -> io::Result<()> {
        if let Some(active) = self.active.take() {
            active.sync_all()?;
        }
        let path = segment_path(&self.dir, base_index);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            base_index,
            path,
            size_bytes: 0,
        });
        self.active = Some(file);
        Ok(())
    }

    fn append(&mut self, entries: Vec<EntryOf>) -> io::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first_index = first.log_id.index;
        if !self.entries.is_empty() || self.purged.is_some() {
            let expected = self.next_index();
            if first_index != expected {
                return Err(io::Error::other(format!(
                    "metadata log append at {first_index}, expected {expected}"
                )));
            }
        }
        let needs_roll = self
            .segments
            .last()
            .is_none_or(|s| s.size_bytes >= self.segment_bytes_max)
            || self.active.is_none();
        if needs_roll {
            self.roll(first_index)?;
        }
        let Some(segment) = self.segments.last_mut() else {
            return Err(io::Error::other("no segment after roll"));
        };
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in &entries {
            positions.push(segment.size_bytes + buf.len() as u64);
            encode_entry(entry, &mut buf)?;
        }
        let Some(file) = self.active.as_mut() else {
            return Err(io::Error::other("no active segment after roll"));
        };
        file.write_all(&buf)?;
        file.sync_data()?;
        segment.size_bytes += buf.len() as u64;
        let base = segment.base_index;
        for (entry, file_offset) in entries.into_iter().zip(positions) {
            let position = Position {
                segment_base: base,
                file_offset,
            };
            self.entries.insert(entry.log_id.index, (entry, position));
        }
        Ok(())
    }

    /// Removes every entry with index >= `from`, on disk and in memory.
    fn truncate_from(&mut self, from: u64) -> io::Result<()> {
        let Some((_, cut)) = self.entries.get(&from).map(|(e, p)| (e.log_id, *p)) else {
            return Ok(()); // nothing at or after `from`
        };
        // Newest segments first, so a crash in between never leaves a hole.
        while let Some(last) = self.segments.last() {
            if last.base_index <= cut.segment_base {
                break;
            }
            self.active = None;
            fs::remove_file(&last.path)?;
            self.segments.pop();
        }
        sync_dir(&self.dir)?;
        let Some(segment) = self.segments.last_mut() else {
            return Err(io::Error::other("no segment holds the cut"));
        };
        assert_eq!(
            segment.base_index, cut.segment_base,
            "cut segment is the last"
        );
        let file = OpenOptions::new().write(true).open(&segment.path)?;
        file.set_len(cut.file_offset)?;
        file.sync_all()?;
        segment.size_bytes = cut.file_offset;
        self.active = Some(OpenOptions::new().append(true).open(&segment.path)?);
        self.entries.split_off(&from);
        Ok(())
    }

    fn purge(&mut self, log_id: LogIdOf) -> io::Result<()> {
        if self.purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        write_small(&self.dir.join(PURGED_FILE), &log_id, true)?;
        self.purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        // A segment may go when every entry in it is purged: the next segment starts at or
        // below the first kept index (or, for the last one, nothing is kept at all).
        let first_kept = log_id.index + 1;
        let mut keep_from = 0;
        for i in 0..self.segments.len() {
            let wholly_purged = match self.segments.get(i + 1) {
                Some(next) => next.base_index <= first_kept,
                None => self.entries.is_empty(),
            };
            if !wholly_purged {
                break;
            }
            keep_from = i + 1;
        }
        if keep_from == self.segments.len() {
            self.active = None;
        }
        for segment in self.segments.drain(..keep_from) {
            fs::remove_file(&segment.path)?;
        }
        if keep_from > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn segment_path(dir: &Path, base_index: u64) -> PathBuf {
    dir.join(format!("{base_index:020}.log"))
}

fn encode_entry(entry: &EntryOf, out: &mut Vec<u8>) -> io::Result<()> {
    let mut body = vec![FORMAT_V0];
    body = postcard::to_extend(entry, body).map_err(io::Error::other)?;
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Parses the valid prefix of a segment: its entries (with file offsets) and its length.
fn parse_segment(bytes: &[u8]) -> (Vec<(u64, EntryOf)>, usize) {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + ENTRY_HEADER_BYTES) {
        let (Some(len), Some(crc)) = (super::be_u32_at(header, 0), super::be_u32_at(header, 4))
        else {
            break;
        };
        let len = len as usize;
        let start = at + ENTRY_HEADER_BYTES;
        if len == 0 || len > ENTRY_BYTES_MAX {
            break;
        }
        let Some(body) = bytes.get(start..start + len) else {
            break;
        };
        let Some((&FORMAT_V0, payload)) = body.split_first() else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = postcard::from_bytes::<EntryOf>(payload) else {
            break;
        };
        entries.push((at as u64, entry));
        at = start + len;
    }
    (entries, at)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces a small state file atomically: temp file, optional fsync, rename, optional dir fsync.
pub(crate) fn write_small<T: serde::Serialize>(
    path: &Path,
    value: &T,
    durable: bool,
) -> io::Result<()> {
    let body = postcard::to_allocvec(value).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(body.len() + 5);
    bytes.push(FORMAT_V0);
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    if durable {
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Reads a small state file; `None` when it does not exist, an error when it is corrupt.
pub(crate) fn read_small<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || corrupt(format!("{} is corrupt", path.display()));
    let (Some(&FORMAT_V0), Some(crc), Some(payload)) =
        (bytes.first(), super::be_u32_at(&bytes, 1), bytes.get(5..))
    else {
        return Err(bad());
    };
    if crc32c::crc32c(payload) != crc {
        return Err(bad());
    }
    postcard::from_bytes(payload).map(Some).map_err(|_| bad())
}

impl RaftLogReader<QuorumTypes> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf>, io::Error> {
        let inner = self.inner.borrow();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf>, io::Error> {
        Ok(self.inner.borrow().vote)
    }
}

impl RaftLogStorage<QuorumTypes> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<QuorumTypes>, io::Error> {
        let inner = self.inner.borrow();
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf) -> Result<(), io::Error> {
        let mut inner = self.inner.borrow_mut();
        write_small(&inner.dir.join(VOTE_FILE), vote, true)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf>) -> Result<(), io::Error> {
        let mut inner = self.inner.borrow_mut();
        if inner.committed == committed {
            return Ok(());
        }
        // The file holds a log id (never "none": committed only moves forward).
        if let Some(log_id) = &committed {
            write_small(&inner.dir.join(COMMITTED_FILE), log_id, false)?;
        }
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf>, io::Error> {
        Ok(self.inner.borrow().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<QuorumTypes>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf>,
    {
        let result = self
            .inner
            .borrow_mut()
            .append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "metadata log append failed");
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        self.inner.borrow_mut().truncate_from(from)
    }

    async fn purge(&mut self, log_id: LogIdOf) -> Result<(), io::Error> {
        self.inner.borrow_mut().purge(log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::quorum::records::{MetadataRecord, RecordBatch};
    use openraft::EntryPayload;

    fn entry(term: u64, index: u64) -> EntryOf {
        let leader = openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 };
        EntryOf {
            log_id: openraft::LogId::new(leader, index),
            payload: EntryPayload::Normal(RecordBatch(vec![MetadataRecord::FenceBroker(
                crate::cluster::records::FenceBrokerRecord {
                    id: index as i32,
                    epoch: term as i64,
                },
            )])),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.inner.borrow().entries.keys().copied().collect()
    }

    #[test]
    fn reopen_after_appends_truncation_and_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path(), 64).expect("open");
            let mut inner = store.inner.borrow_mut();
            for i in 1..=10 {
                inner.append(vec![entry(1, i)]).expect("append");
            }
            assert!(inner.segments.len() > 2, "small segments roll");
            inner.truncate_from(8).expect("truncate");
            inner
                .append(vec![entry(2, 8)])
                .expect("append after truncate");
            inner.purge(entry(1, 4).log_id).expect("purge");
        }
        let store = LogStore::open(dir.path(), 64).expect("reopen");
        assert_eq!(indexes(&store), vec![5, 6, 7, 8]);
        let inner = store.inner.borrow();
        assert_eq!(inner.entries[&8].0.log_id.leader_id.term, 2);
        assert_eq!(inner.purged.map(|p| p.index), Some(4));
        assert!(
            inner.segments.first().is_some_and(|s| s.base_index > 1),
            "wholly purged segments are deleted"
        );
    }

    #[test]
    fn a_torn_tail_is_cut_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path(), 1 << 20).expect("open");
            let mut inner = store.inner.borrow_mut();
            inner
                .append(vec![entry(1, 1), entry(1, 2), entry(1, 3)])
                .expect("append");
        }
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).expect("stat").len();
        // A crash mid-write: the last entry is half there, then garbage.
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment");
        file.set_len(len - 5).expect("cut");
        drop(file);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open segment");
        file.write_all(&[0xFF; 3]).expect("garbage");
        drop(file);
        let store = LogStore::open(dir.path(), 1 << 20).expect("torn tail is not fatal");
        assert_eq!(indexes(&store), vec![1, 2]);
        store
            .inner
            .borrow_mut()
            .append(vec![entry(1, 3)])
            .expect("append again");
        drop(store);
        let store = LogStore::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(indexes(&store), vec![1, 2, 3]);
    }

    #[test]
    fn corruption_in_an_older_segment_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path(), 10).expect("open");
            let mut inner = store.inner.borrow_mut();
            for i in 1..=3 {
                inner.append(vec![entry(1, i)]).expect("append");
            }
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        fs::write(&path, bytes).expect("write");
        let err = LogStore::open(dir.path(), 10).expect_err("corrupt middle segment");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn vote_committed_and_purged_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let committed = entry(3, 7).log_id;
        let vote = VoteOf::new_committed(3, 2);
        {
            let mut store = LogStore::open(dir.path(), 1 << 20).expect("open");
            block_on(async {
                store.save_vote(&vote).await.expect("vote");
                store
                    .save_committed(Some(committed))
                    .await
                    .expect("committed");
            });
        }
        let mut store = LogStore::open(dir.path(), 1 << 20).expect("reopen");
        block_on(async {
            assert_eq!(store.read_committed().await.expect("read"), Some(committed));
            assert_eq!(store.read_vote().await.expect("read"), Some(vote));
        });
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn small_files_reject_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        write_small(&path, &42u64, true).expect("write");
        assert_eq!(read_small::<u64>(&path).expect("read"), Some(42));
        let mut bytes = fs::read(&path).expect("read");
        bytes[5] ^= 1;
        fs::write(&path, bytes).expect("write");
        assert!(read_small::<u64>(&path).is_err());
        assert_eq!(
            read_small::<u64>(&dir.path().join("missing")).expect("read"),
            None
        );
    }
}
