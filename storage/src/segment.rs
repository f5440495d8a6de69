//! One segment: a `.log` file of whole v2 batches plus its sparse `.index` / `.timeindex`.
//!
//! Invariants: `size` and `next_offset` describe only committed batches (fully written);
//! in-memory index entries never point at or beyond `size`; indexes of sealed segments are
//! loaded lazily on first use and rebuilt from the log when missing or failing sanity checks;
//! the active segment always has its indexes loaded and its index files open. The index
//! files hold a prefix of the in-memory entries (`index_persisted` of them): new entries are
//! written behind, at flush / roll / close (recovery rebuilds what a crash loses).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use std::rc::Rc;

use crate::batch::{BatchHeader, BATCH_HEADER_LEN};
use crate::error::StorageError;
use crate::files::SegmentFile;
use crate::index::{self, Indexes, Tracker, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::io::Fd;
use crate::offset::TimestampOffset;
use crate::recovery;

/// Bytes read at once while walking batch headers (reads, index look-ups).
pub(crate) const SCAN_CHUNK_BYTES: usize = 16 * 1024;

/// Kafka's file name stem: the base offset, zero padded to 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

pub(crate) fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.log", file_stem(base)))
}
pub(crate) fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.index", file_stem(base)))
}
pub(crate) fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.timeindex", file_stem(base)))
}
/// Kafka's aborted-transaction index of a segment (written by the partition layer; storage
/// only deletes it with its segment).
pub fn txn_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.txnindex", file_stem(base)))
}

/// A segment of the log.
pub(crate) struct Segment {
    pub base: i64,
    pub dir: PathBuf,
    /// The `.log` file: pinned open while active, opened on demand once sealed.
    pub log: Rc<SegmentFile>,
    /// Committed bytes.
    pub size: Cell<u64>,
    /// Offset after the last committed batch (== base when empty).
    pub next_offset: Cell<i64>,
    /// Largest timestamp in the segment, when known.
    pub max_ts: Cell<Option<TimestampOffset>>,
    pub mtime_ms: Cell<i64>,
    /// When the segment was created (or, for one found at open, its file's mtime): the age
    /// `segment.ms` measures when the segment holds no timestamp.
    pub created_ms: Cell<i64>,
    /// Index-building state of the active segment.
    pub tracker: Cell<Tracker>,
    pub indexes: RefCell<Option<Indexes>>,
    /// Open `.index` / `.timeindex` of the active segment.
    pub index_fds: RefCell<Option<(Fd, Fd)>>,
    /// How many (offset, time) entries of `indexes` the index files hold.
    pub index_persisted: Cell<(usize, usize)>,
    /// Bumped when the segment is truncated, so an in-flight lazy load is discarded.
    pub generation: Cell<u64>,
    /// Damage in the file was logged (once per segment, not per read).
    pub damage_logged: Cell<bool>,
}

impl Segment {
    /// Creates the (empty) files of a new segment.
    pub async fn create(dir: &Path, base: i64, now_ms: i64) -> Result<Segment, StorageError> {
        let path = log_path(dir, base);
        let fd = Fd::open_rw(&path, true).await?;
        fd.truncate(0).await?;
        let seg = Segment::new(dir, base, SegmentFile::new(path, fd, true), 0, now_ms);
        *seg.indexes.borrow_mut() = Some(Indexes::default());
        // Created empty now (a leftover of an earlier life is cut), kept open only once
        // entries are written (`persist_index_entries`).
        seg.open_index_files(true).await?;
        seg.index_fds.borrow_mut().take();
        Ok(seg)
    }

    /// Opens an existing segment's log file (indexes untouched), unpinned: it stays open
    /// only as long as the per-shard bound on sealed files allows (`files.rs`).
    pub async fn open(dir: &Path, base: i64) -> Result<Segment, StorageError> {
        let path = log_path(dir, base);
        let fd = Fd::open_rw(&path, false).await?;
        let (size, mtime_ms) = fd.stat().await?;
        let log = SegmentFile::new(path, fd, false);
        Ok(Segment::new(dir, base, log, size, mtime_ms))
    }

    fn new(dir: &Path, base: i64, log: Rc<SegmentFile>, size: u64, mtime_ms: i64) -> Segment {
        Segment {
            base,
            dir: dir.to_path_buf(),
            log,
            size: Cell::new(size),
            next_offset: Cell::new(base),
            max_ts: Cell::new(None),
            mtime_ms: Cell::new(mtime_ms),
            created_ms: Cell::new(mtime_ms),
            tracker: Cell::new(Tracker::default()),
            indexes: RefCell::new(None),
            index_fds: RefCell::new(None),
            index_persisted: Cell::new((0, 0)),
            generation: Cell::new(0),
            damage_logged: Cell::new(false),
        }
    }

    /// Opens the index files for appending; with `truncate` they are emptied first.
    pub async fn open_index_files(&self, truncate: bool) -> Result<(), StorageError> {
        let oi = Fd::open_rw(&index_path(&self.dir, self.base), true).await?;
        let ti = Fd::open_rw(&time_index_path(&self.dir, self.base), true).await?;
        if truncate {
            oi.truncate(0).await?;
            ti.truncate(0).await?;
        }
        *self.index_fds.borrow_mut() = Some((oi, ti));
        Ok(())
    }

    /// In-memory index entries not yet written to the index files.
    pub fn pending_index_entries(&self) -> usize {
        let (n_off, n_time) = self.index_persisted.get();
        self.indexes.borrow().as_ref().map_or(0, |i| {
            i.offsets.len().saturating_sub(n_off) + i.times.len().saturating_sub(n_time)
        })
    }

    /// Writes the pending in-memory entries to the open index files (no fsync). The caller
    /// holds `append_lock`, so the entries and files change only here meanwhile.
    pub async fn persist_index_entries(&self) -> Result<(), StorageError> {
        let (n_off, n_time) = self.index_persisted.get();
        let (offs, times, total) = match self.indexes.borrow().as_ref() {
            Some(i) => (
                index::encode_offsets(i.offsets.get(n_off..).unwrap_or(&[])),
                index::encode_times(i.times.get(n_time..).unwrap_or(&[])),
                (i.offsets.len(), i.times.len()),
            ),
            None => return Ok(()),
        };
        if offs.is_empty() && times.is_empty() {
            return Ok(());
        }
        // Opened on first use: an idle partition holds only its log file's descriptor.
        if self.index_fds.borrow().is_none() {
            self.open_index_files(false).await?;
        }
        let fds = self.index_fds.borrow().clone();
        let Some((oi, ti)) = fds else {
            return Err(StorageError::CorruptState(format!(
                "segment {} has no open index files",
                self.base
            )));
        };
        if !offs.is_empty() {
            oi.write_all(offs, (n_off * OFFSET_ENTRY_LEN) as u64)
                .await?;
        }
        if !times.is_empty() {
            ti.write_all(times, (n_time * TIME_ENTRY_LEN) as u64)
                .await?;
        }
        self.index_persisted.set(total);
        Ok(())
    }

    /// Rewrites both index files from the in-memory entries.
    pub async fn write_index_files(&self) -> Result<(), StorageError> {
        let (offs, times, total) = match self.indexes.borrow().as_ref() {
            Some(i) => (
                index::encode_offsets(&i.offsets),
                index::encode_times(&i.times),
                (i.offsets.len(), i.times.len()),
            ),
            None => return Ok(()),
        };
        for (path, bytes) in [
            (index_path(&self.dir, self.base), offs),
            (time_index_path(&self.dir, self.base), times),
        ] {
            let fd = Fd::open_rw(&path, true).await?;
            fd.truncate(0).await?;
            if !bytes.is_empty() {
                fd.write_all(bytes, 0).await?;
            }
            fd.sync(false).await?;
        }
        self.index_persisted.set(total);
        Ok(())
    }

    /// fsyncs the open index files (sealing / close).
    pub async fn sync_index_files(&self) -> Result<(), StorageError> {
        let fds = self.index_fds.borrow().clone();
        if let Some((oi, ti)) = fds {
            oi.sync(false).await?;
            ti.sync(false).await?;
        }
        Ok(())
    }

    /// Loads the indexes of a sealed segment, rebuilding them when missing or corrupt;
    /// returns why they were rebuilt, if they were.
    pub async fn ensure_indexes(
        &self,
        interval_bytes: u32,
    ) -> Result<Option<String>, StorageError> {
        if self.indexes.borrow().is_some() {
            return Ok(None);
        }
        let mut rebuilt = None;
        let generation = self.generation.get();
        let size = self.size.get();
        let rel_limit = u64::try_from(self.next_offset.get() - self.base).ok();
        let loaded = match self.read_index_files(size, rel_limit).await {
            Ok(idx) => idx,
            Err(why) => {
                tracing::warn!(segment = self.base, dir = %self.dir.display(), %why, "rebuilding index");
                let fd = self.log.get().await?;
                let mut scan = recovery::scan(&fd, self.base, 0, size, interval_bytes).await?;
                // A sealed segment's time index ends with its largest timestamp.
                scan.add_final_time_entry(self.base);
                if let Some(problem) = &scan.problem {
                    tracing::warn!(segment = self.base, %problem, valid_bytes = scan.valid_size,
                        "sealed segment has an unreadable tail; indexing what is valid");
                }
                let idx = scan.indexes;
                if self.generation.get() == generation {
                    *self.indexes.borrow_mut() = Some(idx.clone());
                    self.write_index_files().await?;
                }
                rebuilt = Some(why);
                idx
            }
        };
        if self.generation.get() == generation && self.indexes.borrow().is_none() {
            self.index_persisted
                .set((loaded.offsets.len(), loaded.times.len()));
            *self.indexes.borrow_mut() = Some(loaded);
        }
        Ok(rebuilt)
    }

    async fn read_index_files(&self, size: u64, rel_limit: Option<u64>) -> Result<Indexes, String> {
        // A segment of `size` bytes holds at most size / header batches, which bounds how
        // much of an index file can be legitimate.
        let batches_max = size / BATCH_HEADER_LEN as u64 + 1;
        let offsets = read_small(&index_path(&self.dir, self.base), batches_max * 8).await?;
        let times = read_small(&time_index_path(&self.dir, self.base), batches_max * 12).await?;
        if size > 0 && times.is_empty() {
            return Err("empty time index for a non-empty segment".into());
        }
        Ok(Indexes {
            offsets: index::parse_offsets(&offsets, size).map_err(|e| e.to_string())?,
            times: index::parse_times(&times, rel_limit).map_err(|e| e.to_string())?,
        })
    }

    /// Position of the batch named by the last `.index` entry, when that entry is proven
    /// by the log: a batch header at that position whose last offset is the entry's. 0 (walk
    /// from the start) when the index is empty, unreadable or does not match the log.
    pub async fn last_index_position(&self) -> u64 {
        let Ok(fd) = Fd::open_ro(&index_path(&self.dir, self.base)).await else {
            return 0;
        };
        let len = match fd.stat().await {
            Ok((len, _)) if len > 0 && len % OFFSET_ENTRY_LEN as u64 == 0 => len,
            _ => return 0,
        };
        let Ok(entry) = fd
            .read_exact(len - OFFSET_ENTRY_LEN as u64, OFFSET_ENTRY_LEN)
            .await
        else {
            return 0;
        };
        let Ok(entries) = index::parse_offsets(&entry, self.size.get()) else {
            return 0;
        };
        let Some(&(rel, pos)) = entries.first() else {
            return 0;
        };
        let Ok(log) = self.log.get().await else {
            return 0;
        };
        match log.read_exact(u64::from(pos), BATCH_HEADER_LEN).await {
            Ok(bytes) => match BatchHeader::parse(&bytes) {
                Ok(h) if h.last_offset() == self.base + i64::from(rel) => u64::from(pos),
                _ => 0,
            },
            Err(_) => 0,
        }
    }

    /// Reads the last `.timeindex` entry of a sealed segment: its largest timestamp.
    pub async fn read_max_timestamp(&self) -> Result<Option<TimestampOffset>, String> {
        let path = time_index_path(&self.dir, self.base);
        let fd = Fd::open_ro(&path).await.map_err(|e| e.to_string())?;
        let (len, _) = fd.stat().await.map_err(|e| e.to_string())?;
        if len % TIME_ENTRY_LEN as u64 != 0 || (len == 0 && self.size.get() > 0) {
            return Err(format!("time index size {len}"));
        }
        if len == 0 {
            return Ok(None);
        }
        let bytes = fd
            .read_exact(len - TIME_ENTRY_LEN as u64, TIME_ENTRY_LEN)
            .await
            .map_err(|e| e.to_string())?;
        let limit = u64::try_from(self.next_offset.get() - self.base).ok();
        let entries = index::parse_times(&bytes, limit).map_err(|e| e.to_string())?;
        Ok(entries.first().map(|&(ts, rel)| TimestampOffset {
            timestamp_ms: ts,
            offset: crate::Offset(self.base + i64::from(rel)),
        }))
    }

    /// Start position of the batch holding `offset`, scanning at most up to `end` bytes.
    pub async fn locate(
        &self,
        offset: i64,
        end: u64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let rel = u32::try_from((offset - self.base).max(0)).unwrap_or(u32::MAX);
        let start = self
            .indexes
            .borrow()
            .as_ref()
            .map_or(0, |i| i.position_for(rel));
        let mut reader = HeaderReader::new(self, end);
        let mut pos = u64::from(start);
        while let Some(h) = reader.header_at(pos).await? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }
}

async fn read_small(path: &Path, len_max: u64) -> Result<Vec<u8>, String> {
    let fd = Fd::open_ro(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (len, _) = fd.stat().await.map_err(|e| e.to_string())?;
    if len > len_max {
        return Err(format!("{}: {len} bytes is too large", path.display()));
    }
    fd.read_exact(0, len as usize)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Walks batch headers of one segment file, reading in chunks, never past `end`.
///
/// Damage (a file changed behind the broker's back) is met as Kafka's `FileLogInputStream`
/// meets it: a header or batch that runs past `end` ends the segment (what follows is
/// unreadable, the read moves on to the next segment); a header that cannot be a batch
/// (bad magic, length below the minimum) is a `DamagedSegment` error, which a fetch reports
/// as CORRUPT_MESSAGE. Either is logged once per segment with its position and offsets.
pub(crate) struct HeaderReader<'a> {
    seg: &'a Segment,
    end: u64,
    chunk: Vec<u8>,
    chunk_pos: u64,
    /// Last offset of the last whole batch returned (the damage starts after it).
    last_good: Option<i64>,
}

impl<'a> HeaderReader<'a> {
    pub fn new(seg: &'a Segment, end: u64) -> Self {
        HeaderReader {
            seg,
            end,
            chunk: Vec::new(),
            chunk_pos: 0,
            last_good: None,
        }
    }

    /// The header of the batch at `pos`; `None` at `end` or where the segment is torn.
    pub async fn header_at(&mut self, pos: u64) -> Result<Option<BatchHeader>, StorageError> {
        if pos >= self.end {
            return Ok(None);
        }
        let want = BATCH_HEADER_LEN as u64;
        let cached =
            pos >= self.chunk_pos && pos + want <= self.chunk_pos + self.chunk.len() as u64;
        if !cached {
            let len = (self.end - pos).min(SCAN_CHUNK_BYTES as u64);
            if len < want {
                self.damaged(pos, &format!("partial batch header ({len} bytes)"));
                return Ok(None);
            }
            self.chunk = self
                .seg
                .log
                .get()
                .await?
                .read_exact(pos, len as usize)
                .await?;
            self.chunk_pos = pos;
        }
        let at = (pos - self.chunk_pos) as usize;
        let h = match BatchHeader::parse(self.chunk.get(at..).unwrap_or(&[])) {
            Ok(h) => h,
            Err(e) => {
                let reason = e.to_string();
                self.damaged(pos, &reason);
                return Err(StorageError::DamagedSegment {
                    file: log_path(&self.seg.dir, self.seg.base).display().to_string(),
                    position: pos,
                    reason,
                });
            }
        };
        if pos + h.total_size() as u64 > self.end {
            let reason = format!(
                "batch of {} bytes runs past the end ({} bytes left)",
                h.total_size(),
                self.end - pos
            );
            self.damaged(pos, &reason);
            return Ok(None);
        }
        self.last_good = Some(h.last_offset());
        Ok(Some(h))
    }

    /// Logs the damage at `pos` once per segment (per open), with the unreadable range.
    fn damaged(&self, pos: u64, reason: &str) {
        if self.seg.damage_logged.replace(true) {
            return;
        }
        let next = self.seg.next_offset.get();
        tracing::warn!(
            file = %log_path(&self.seg.dir, self.seg.base).display(),
            position = pos,
            bytes = self.end.saturating_sub(pos),
            last_readable_offset = self.last_good.unwrap_or(-1),
            segment_next_offset = if next == i64::MAX { -1 } else { next },
            %reason,
            "damaged segment: batches from this position on are unreadable"
        );
    }
}
