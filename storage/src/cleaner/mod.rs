//! The log cleaner (Kafka's log compaction) for one partition log: keep the latest record per
//! key, remove tombstones once their delete horizon has passed, never renumber.
//!
//! A clean (`Log::clean`) works on sealed segments only, never the active one:
//! 1. **Dirty section.** From the first dirty offset (the `cleaner.checkpoint` file, else the
//!    log start) up to the first uncleanable offset: the active segment's base, or the base of
//!    the first segment holding a record newer than `min.compaction.lag.ms`.
//! 2. **Offset map.** The dirty section is read batch by batch (CRC and records checked,
//!    compressed batches decompressed with a bound) and the latest offset of every key is put
//!    in a bounded map (`log.cleaner.dedupe.buffer.size`). When the next batch's keys might not
//!    fit, the section ends before that batch: the rest is cleaned by a later pass.
//! 3. **Rewrite.** Every sealed segment from the log start up to the end of the mapped
//!    section is rewritten, in groups of consecutive segments no larger than `segment.bytes`
//!    together, into one new segment per group based at the group's first base offset. A
//!    record is kept unless a later offset of its key is in the map, it has no key, or it is a
//!    tombstone in a batch whose delete horizon has passed. A batch is copied byte for byte
//!    when it keeps everything (and needs no new horizon); otherwise it is rebuilt with its
//!    original base offset, last offset delta, producer id/epoch/sequence, max timestamp and
//!    codec (recompressed). A batch that keeps tombstones and has no delete horizon gets one:
//!    `now + delete.retention.ms`, stored as Kafka stores it (KIP-534: attribute bit 0x40,
//!    base timestamp = horizon, record timestamp deltas re-based so timestamps are
//!    unchanged). A batch that keeps nothing is dropped, except the last batch of a group,
//!    which stays as an empty batch so the group's last offset survives (the swap protocol
//!    relies on it), and an idempotent producer's last batch (`is_last_producer_batch`).
//! 4. **Swap.** Each group is installed atomically (`swap`), then the checkpoint moves to the
//!    end of the mapped section.
//!
//! Transactions do not exist yet: control batches are copied unchanged; when they come,
//! aborted data is removed and markers kept until safe in `retain` / `clean_batch` (Kafka's
//! `CleanedTransactionMetadata`), and the dirty section must end at the LSO.
//!
//! A batch that fails its checks stops the clean with `CorruptBatch` before anything is
//! installed (the `.cleaned` files written so far are removed): the data is not touched.
//! Throttling and yielding are the caller's (`CleanOptions::pace`), since storage knows no
//! scheduler.

pub mod codec;
mod offset_map;
pub mod records;
pub mod swap;

use std::path::Path;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use crate::batch::BatchHeader;
use crate::error::StorageError;
use crate::index::{self, BatchMeta, Indexes, Tracker};
use crate::io::{sync_dir, Fd};
use crate::log::Log;
use crate::segment::Segment;

pub use offset_map::{key_hash, OffsetMap};
pub use swap::CrashPoint;

/// The first dirty offset of the partition, persisted after each clean.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";
/// Bytes of cleaner I/O between two calls to `pace`.
const PACE_STEP_BYTES: u64 = 64 * 1024;

/// Per-topic compaction settings (Kafka topic configs, Kafka's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionConfig {
    /// min.cleanable.dirty.ratio: clean when dirty / (clean + dirty) bytes reaches this.
    pub min_cleanable_dirty_ratio: f64,
    /// delete.retention.ms: how long a tombstone stays after its batch was first cleaned.
    pub delete_retention_ms: i64,
    /// min.compaction.lag.ms: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: dirty data older than this is cleaned whatever the ratio.
    pub max_compaction_lag_ms: i64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// Memory and I/O bounds of one clean (broker settings).
#[derive(Clone, Debug)]
pub struct CleanerLimits {
    /// log.cleaner.dedupe.buffer.size (this cleaner's share): bounds the offset map.
    pub dedupe_buffer_bytes: usize,
    /// log.cleaner.io.buffer.size: bytes read / written per I/O.
    pub io_buffer_bytes: usize,
    /// Largest records section a compressed batch may inflate to.
    pub decompressed_batch_bytes_max: usize,
}

impl Default for CleanerLimits {
    fn default() -> Self {
        CleanerLimits {
            dedupe_buffer_bytes: 128 * 1024 * 1024,
            io_buffer_bytes: 1024 * 1024,
            decompressed_batch_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// Called with the bytes of I/O done since the last call; the future it returns is awaited
/// (throttle to `log.cleaner.io.max.bytes.per.second`, yield to other tasks).
pub type Pace<'a> = &'a dyn Fn(u64) -> LocalBoxFuture<'static, ()>;

/// One clean's inputs.
pub struct CleanOptions<'a> {
    /// Cleaner clock: min lag, delete horizons.
    pub now_ms: i64,
    pub config: CompactionConfig,
    pub limits: CleanerLimits,
    pub pace: Option<Pace<'a>>,
    /// Test hook: stop as if the process died after this step of the first swap.
    pub crash_at: Option<CrashPoint>,
    /// Rewrite the clean section even with nothing dirty: tombstones whose delete horizon has
    /// passed (`CleanStats::next_delete_horizon_ms`) are removed only by a pass.
    pub force: bool,
    /// `(producer id, last offset)` of a batch that keeps no record: true keeps it as an empty
    /// batch because it is that idempotent producer's last (Kafka keeps it so the producer's
    /// sequence survives a rebuild of the producer state from the log).
    pub is_last_producer_batch: Option<&'a dyn Fn(i64, i64) -> bool>,
    /// `(producer id, base offset)` of a transactional batch: true when its transaction was
    /// aborted (the partition's aborted-transaction index). Such a batch neither enters the
    /// key map (an aborted value must not supersede a committed one) nor keeps its records,
    /// as Kafka's cleaner discards aborted transactions; its control batch is kept.
    pub is_aborted_batch: Option<&'a dyn Fn(i64, i64) -> bool>,
}

impl CleanOptions<'_> {
    fn aborted(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self
                .is_aborted_batch
                .is_some_and(|f| f(header.producer_id, header.base_offset))
    }
}

/// How dirty a log is (Kafka's `LogToClean`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DirtyInfo {
    pub first_dirty_offset: i64,
    pub first_uncleanable_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// dirty / (clean + dirty); 0 when empty.
    pub dirty_ratio: f64,
    /// The oldest dirty data is older than max.compaction.lag.ms.
    pub max_lag_exceeded: bool,
}

impl DirtyInfo {
    /// Whether the cleaner should clean this log now.
    pub fn is_due(&self, config: &CompactionConfig) -> bool {
        self.dirty_bytes > 0
            && (self.dirty_ratio >= config.min_cleanable_dirty_ratio || self.max_lag_exceeded)
    }
}

/// What one clean did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub first_dirty_offset: i64,
    /// The new first dirty offset: everything below it is now clean.
    pub end_offset: i64,
    pub segments_read: u64,
    pub segments_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_removed: u64,
    /// Distinct keys in the offset map.
    pub map_keys: u64,
    /// The offset map filled before the end of the dirty section.
    pub map_full: bool,
    /// A concurrent change of the segment set (retention, truncation) abandoned the clean.
    pub abandoned: bool,
    /// Earliest delete horizon of a batch this clean left holding tombstones: a pass after
    /// it (`CleanOptions::force`) removes them.
    pub next_delete_horizon_ms: Option<i64>,
}

fn corrupt_at(seg: &Segment, pos: u64, e: StorageError) -> StorageError {
    StorageError::CorruptBatch(format!(
        "segment {} at position {pos}: {e}",
        crate::segment::log_path(&seg.dir, seg.base).display()
    ))
}

/// Reads the whole batches of one sealed segment, `io_bytes` at a time.
struct BatchReader<'a> {
    seg: &'a Segment,
    end: u64,
    pos: u64,
    io_bytes: usize,
    chunk: Vec<u8>,
    chunk_pos: u64,
    cur: std::ops::Range<usize>,
    bytes_read: u64,
}

impl<'a> BatchReader<'a> {
    fn new(seg: &'a Segment, io_bytes: usize) -> Self {
        BatchReader {
            seg,
            end: seg.size.get(),
            pos: 0,
            io_bytes: io_bytes.max(crate::batch::BATCH_HEADER_LEN),
            chunk: Vec::new(),
            chunk_pos: 0,
            cur: 0..0,
            bytes_read: 0,
        }
    }

    async fn fill(&mut self, need: u64) -> Result<(), StorageError> {
        let have = self.pos >= self.chunk_pos
            && self.pos + need <= self.chunk_pos + self.chunk.len() as u64;
        if have {
            return Ok(());
        }
        let len = need.max((self.end - self.pos).min(self.io_bytes as u64)) as usize;
        self.chunk = self.seg.log.get().await?.read_exact(self.pos, len).await?;
        self.chunk_pos = self.pos;
        self.bytes_read += len as u64;
        Ok(())
    }

    /// The next batch's position and header; its bytes are `batch()`.
    async fn next(&mut self) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let pos = self.pos;
        let header_len = crate::batch::BATCH_HEADER_LEN as u64;
        if self.end - pos < header_len {
            return Err(corrupt_at(
                self.seg,
                pos,
                StorageError::corrupt("partial header"),
            ));
        }
        self.fill(header_len).await?;
        let at = (pos - self.chunk_pos) as usize;
        let header = BatchHeader::parse(self.chunk.get(at..).unwrap_or(&[]))
            .map_err(|e| corrupt_at(self.seg, pos, e))?;
        let size = header.total_size() as u64;
        if pos + size > self.end {
            return Err(corrupt_at(
                self.seg,
                pos,
                StorageError::corrupt("batch crosses the segment end"),
            ));
        }
        self.fill(size).await?;
        let at = (pos - self.chunk_pos) as usize;
        self.cur = at..at + size as usize;
        self.pos += size;
        Ok(Some((pos, header)))
    }

    fn batch(&self) -> &[u8] {
        self.chunk.get(self.cur.clone()).unwrap_or(&[])
    }
}

/// Calls the pace callback every `PACE_STEP_BYTES` of I/O.
struct Pacer<'a> {
    pace: Option<Pace<'a>>,
    pending: u64,
}

impl Pacer<'_> {
    async fn io(&mut self, bytes: u64) {
        self.pending += bytes;
        if self.pending >= PACE_STEP_BYTES {
            if let Some(p) = self.pace {
                p(self.pending).await;
            }
            self.pending = 0;
        }
    }
}

/// Output of one group being written to its `.cleaned` file.
struct GroupWriter {
    base: i64,
    fd: Fd,
    buf: Vec<u8>,
    pos: u64,
    tracker: Tracker,
    indexes: Indexes,
    interval_bytes: u32,
    io_bytes: usize,
    written: u64,
}

impl GroupWriter {
    async fn create(
        dir: &Path,
        base: i64,
        interval_bytes: u32,
        io_bytes: usize,
    ) -> Result<Self, StorageError> {
        let fd = Fd::open_rw(&swap::path(dir, base, "log", swap::CLEANED_SUFFIX), true).await?;
        fd.truncate(0).await?;
        Ok(GroupWriter {
            base,
            fd,
            buf: Vec::with_capacity(io_bytes),
            pos: 0,
            tracker: Tracker::default(),
            indexes: Indexes::default(),
            interval_bytes,
            io_bytes,
            written: 0,
        })
    }

    async fn push(&mut self, batch: &[u8], max_ts_delta: i32) -> Result<(), StorageError> {
        let h = BatchHeader::parse(batch)?;
        let meta = BatchMeta::new(&h, max_ts_delta);
        let pos = self.pos + self.buf.len() as u64;
        self.tracker.step(
            self.base,
            pos,
            &meta,
            self.interval_bytes,
            &mut self.indexes.offsets,
            &mut self.indexes.times,
        );
        self.buf.extend_from_slice(batch);
        if self.buf.len() >= self.io_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(self.io_bytes));
        let len = buf.len() as u64;
        self.fd.write_all(buf, self.pos).await?;
        self.pos += len;
        self.written += len;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.pos + self.buf.len() as u64
    }

    /// Flushes and fsyncs the log and writes + fsyncs the two index files.
    async fn seal(&mut self, dir: &Path) -> Result<(), StorageError> {
        self.flush().await?;
        self.fd.sync(false).await?;
        self.tracker.time_entry(self.base, &mut self.indexes.times);
        for (kind, bytes) in [
            ("index", index::encode_offsets(&self.indexes.offsets)),
            ("timeindex", index::encode_times(&self.indexes.times)),
        ] {
            let fd = Fd::open_rw(
                &swap::path(dir, self.base, kind, swap::CLEANED_SUFFIX),
                true,
            )
            .await?;
            fd.truncate(0).await?;
            if !bytes.is_empty() {
                fd.write_all(bytes, 0).await?;
            }
            fd.sync(false).await?;
        }
        Ok(())
    }
}

/// Decides which records of a batch survive.
struct Retain<'a> {
    map: &'a OffsetMap,
    now_ms: i64,
}

impl Retain<'_> {
    /// Keep the record at `offset`? Tombstones are judged by `tombstone_ok`.
    fn keep(&self, rec: &records::RawRecord<'_>, offset: i64, horizon: Option<i64>) -> bool {
        let Some(key) = rec.key else {
            // Kafka's cleaner drops keyless records of a compacted log.
            return false;
        };
        if self
            .map
            .get(key_hash(key))
            .is_some_and(|latest| latest > offset)
        {
            return false;
        }
        rec.value.is_some() || horizon.is_none_or(|h| self.now_ms <= h)
    }
}

impl Log {
    /// Whether the log was closed (or deleted): a clean failing then is no disk error.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    async fn cleaner_checkpoint(&self) -> i64 {
        let path = self.dir.join(CLEANER_CHECKPOINT_FILE);
        let Ok(fd) = Fd::open_ro(&path).await else {
            return 0;
        };
        let Ok(bytes) = fd.read_upto(0, 13).await else {
            return 0;
        };
        let (Some(off), Some(crc)) = (bytes.get(..8), bytes.get(8..12)) else {
            return 0;
        };
        if bytes.len() != 12 || crc32c::crc32c(off).to_be_bytes() != crc {
            tracing::warn!(file = %path.display(), "cleaner checkpoint unusable; cleaning from the log start");
            return 0;
        }
        off.try_into().map(i64::from_be_bytes).unwrap_or(0)
    }

    async fn write_cleaner_checkpoint(&self, offset: i64) -> Result<(), StorageError> {
        let mut bytes = offset.to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(&offset.to_be_bytes()).to_be_bytes());
        let tmp = self.dir.join(format!("{CLEANER_CHECKPOINT_FILE}.tmp"));
        let fd = Fd::open_rw(&tmp, true).await?;
        fd.truncate(0).await?;
        fd.write_all(bytes, 0).await?;
        fd.sync(true).await?;
        drop(fd);
        compio::fs::rename(&tmp, self.dir.join(CLEANER_CHECKPOINT_FILE)).await?;
        sync_dir(&self.dir).await?;
        Ok(())
    }

    /// Sealed segments (all but the active one), in offset order.
    fn sealed_segments(&self) -> Result<Vec<Rc<Segment>>, StorageError> {
        let st = self.state.borrow();
        st.active()?;
        let n = st.segments.len();
        Ok(st.segments.values().take(n - 1).cloned().collect())
    }

    /// How dirty the log is, for `config` at `now_ms`.
    pub async fn dirty_info(
        &self,
        config: &CompactionConfig,
        now_ms: i64,
    ) -> Result<DirtyInfo, StorageError> {
        let stored = self.cleaner_checkpoint().await;
        let sealed = self.sealed_segments()?;
        let (log_start, active_base) = {
            let st = self.state.borrow();
            (st.log_start, st.active()?.base)
        };
        let first_dirty = stored.clamp(log_start, active_base.max(log_start));
        let lag_cutoff = now_ms.saturating_sub(config.min_compaction_lag_ms.max(0));
        let mut first_uncleanable = active_base;
        let mut info = DirtyInfo {
            first_dirty_offset: first_dirty,
            ..DirtyInfo::default()
        };
        let mut oldest_dirty_ts = None;
        for seg in &sealed {
            // Kafka's `LogSegment.largestTimestamp`: the file's mtime when no record carries
            // a timestamp, so a segment of unknown age is never taken as old enough.
            let largest_ts = seg
                .max_ts
                .get()
                .map_or(seg.mtime_ms.get(), |m| m.timestamp_ms);
            if seg.next_offset.get() <= first_dirty {
                info.clean_bytes += seg.size.get();
                continue;
            }
            if config.min_compaction_lag_ms > 0 && largest_ts > lag_cutoff {
                first_uncleanable = first_uncleanable.min(seg.base.max(first_dirty));
                break;
            }
            oldest_dirty_ts.get_or_insert(largest_ts);
            info.dirty_bytes += seg.size.get();
        }
        info.first_uncleanable_offset = first_uncleanable;
        let total = info.clean_bytes + info.dirty_bytes;
        if total > 0 {
            info.dirty_ratio = info.dirty_bytes as f64 / total as f64;
        }
        info.max_lag_exceeded = config.max_compaction_lag_ms < i64::MAX
            && oldest_dirty_ts
                .is_some_and(|t: i64| now_ms.saturating_sub(t) > config.max_compaction_lag_ms);
        Ok(info)
    }

    /// Cleans the log once (see the module docs); a no-op when nothing is dirty.
    pub async fn clean(&self, opts: CleanOptions<'_>) -> Result<CleanStats, StorageError> {
        let info = self
            .dirty_info(&opts.config, opts.now_ms)
            .await
            .map_err(out_of_files)?;
        let mut stats = CleanStats {
            first_dirty_offset: info.first_dirty_offset,
            end_offset: info.first_dirty_offset,
            ..CleanStats::default()
        };
        if info.dirty_bytes == 0 && !opts.force {
            return Ok(stats);
        }
        let mut pacer = Pacer {
            pace: opts.pace,
            pending: 0,
        };
        let sealed = self.sealed_segments()?;
        let mut map = OffsetMap::with_buffer_bytes(opts.limits.dedupe_buffer_bytes);
        let end = self
            .build_offset_map(&sealed, &info, &opts, &mut map, &mut stats, &mut pacer)
            .await
            .map_err(out_of_files)?;
        stats.end_offset = end;
        stats.map_keys = map.len() as u64;
        if end <= info.first_dirty_offset && !opts.force {
            return Ok(stats);
        }
        let cfg = self.config();
        let to_clean: Vec<Rc<Segment>> = sealed.into_iter().filter(|s| s.base < end).collect();
        for group in group_segments(&to_clean, cfg.segment_bytes_max) {
            let retain = Retain {
                map: &map,
                now_ms: opts.now_ms,
            };
            let installed = self
                .clean_group(group, end, &retain, &opts, &mut stats, &mut pacer)
                .await?;
            if !installed {
                stats.abandoned = true;
                stats.end_offset = info.first_dirty_offset;
                return Ok(stats);
            }
        }
        if opts.crash_at == Some(CrashPoint::Installed) {
            return Err(StorageError::Io(std::io::Error::other(
                "simulated crash after Installed",
            )));
        }
        // The groups are installed: a checkpoint not written only makes the next pass clean
        // the same section again.
        self.write_cleaner_checkpoint(end)
            .await
            .map_err(out_of_files)?;
        Ok(stats)
    }

    /// Phase 2: the latest offset per key over the dirty section; returns where the mapped
    /// section ends (exclusive).
    async fn build_offset_map(
        &self,
        sealed: &[Rc<Segment>],
        info: &DirtyInfo,
        opts: &CleanOptions<'_>,
        map: &mut OffsetMap,
        stats: &mut CleanStats,
        pacer: &mut Pacer<'_>,
    ) -> Result<i64, StorageError> {
        let (first, limit) = (info.first_dirty_offset, info.first_uncleanable_offset);
        let lim = &opts.limits;
        for seg in sealed
            .iter()
            .filter(|s| s.next_offset.get() > first && s.base < limit)
        {
            let mut reader = BatchReader::new(seg, lim.io_buffer_bytes);
            while let Some((pos, h)) = reader.next().await? {
                if h.base_offset >= limit {
                    break;
                }
                if h.last_offset() < first {
                    continue;
                }
                let bytes = reader.batch();
                let check = records::check_stored(bytes).map_err(|e| corrupt_at(seg, pos, e))?;
                if h.is_control() || opts.aborted(&h) {
                    continue;
                }
                let section = records::records_section(
                    bytes,
                    &check.header,
                    lim.decompressed_batch_bytes_max,
                )
                .map_err(|e| corrupt_at(seg, pos, e))?;
                let recs = records::parse_records(&section, &check.header)
                    .map_err(|e| corrupt_at(seg, pos, e))?;
                if !map.has_room_for(recs.len()) {
                    if map.is_empty() {
                        return Err(StorageError::CorruptState(format!(
                            "log.cleaner.dedupe.buffer.size holds {} keys, a batch at offset {} has {}",
                            map.capacity(),
                            h.base_offset,
                            recs.len()
                        )));
                    }
                    stats.map_full = true;
                    stats.bytes_read += reader.bytes_read;
                    return Ok(h.base_offset);
                }
                for r in &recs {
                    if let Some(k) = r.key {
                        map.put(key_hash(k), h.base_offset + i64::from(r.offset_delta));
                    }
                }
                pacer.io(h.total_size() as u64).await;
            }
            stats.bytes_read += reader.bytes_read;
        }
        Ok(limit)
    }

    /// Phase 3 + 4 for one group; false when the group changed meanwhile (nothing installed).
    async fn clean_group(
        &self,
        group: &[Rc<Segment>],
        end: i64,
        retain: &Retain<'_>,
        opts: &CleanOptions<'_>,
        stats: &mut CleanStats,
        pacer: &mut Pacer<'_>,
    ) -> Result<bool, StorageError> {
        let Some(first) = group.first() else {
            return Ok(true);
        };
        let base = first.base;
        let interval = self.config.borrow().index_interval_bytes;
        let mut out =
            match GroupWriter::create(&self.dir, base, interval, opts.limits.io_buffer_bytes).await
            {
                Ok(out) => out,
                Err(e) => {
                    swap::discard_cleaned(&self.dir, base).await?;
                    return Err(out_of_files(e));
                }
            };
        let written = self
            .write_group(group, end, retain, opts, stats, pacer, &mut out)
            .await;
        let wrote_any = match written {
            Ok(any) => any,
            Err(e) => {
                drop(out);
                swap::discard_cleaned(&self.dir, base).await?;
                return Err(out_of_files(e));
            }
        };
        if !wrote_any {
            swap::discard_cleaned(&self.dir, base).await?;
            return Ok(true);
        }
        if let Err(e) = self.seal_group(group, &mut out, interval).await {
            drop(out);
            swap::discard_cleaned(&self.dir, base).await?;
            return Err(out_of_files(e));
        }
        stats.bytes_written += out.size();
        stats.segments_read += group.len() as u64;
        stats.segments_written += 1;
        let installed = self.install_group(group, out, opts.crash_at).await?;
        if installed {
            sync_dir(&self.dir).await?;
        }
        Ok(installed)
    }

    /// Seals the written group and makes sure the segments it replaces have their indexes.
    async fn seal_group(
        &self,
        group: &[Rc<Segment>],
        out: &mut GroupWriter,
        interval: u32,
    ) -> Result<(), StorageError> {
        out.seal(&self.dir).await?;
        for seg in group {
            seg.ensure_indexes(interval).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_group(
        &self,
        group: &[Rc<Segment>],
        end: i64,
        retain: &Retain<'_>,
        opts: &CleanOptions<'_>,
        stats: &mut CleanStats,
        pacer: &mut Pacer<'_>,
        out: &mut GroupWriter,
    ) -> Result<bool, StorageError> {
        let mut any = false;
        // The last batch seen, when it kept nothing: written empty if it ends the group.
        let mut dropped_last: Option<(BatchHeader, i32)> = None;
        for seg in group {
            let mut reader = BatchReader::new(seg, opts.limits.io_buffer_bytes);
            while let Some((pos, _)) = reader.next().await? {
                let bytes = reader.batch();
                let check = records::check_stored(bytes).map_err(|e| corrupt_at(seg, pos, e))?;
                any = true;
                let cleaned = if check.header.base_offset >= end || check.header.is_control() {
                    None
                } else {
                    clean_batch(bytes, &check.header, retain, opts, stats)
                        .map_err(|e| corrupt_at(seg, pos, e))?
                };
                match cleaned {
                    None => {
                        stats.records_read += check.header.record_count as u64;
                        stats.records_kept += check.header.record_count as u64;
                        out.push(bytes, check.max_timestamp_delta).await?;
                        dropped_last = None;
                    }
                    Some(Some(b)) => {
                        out.push(&b, check.max_timestamp_delta).await?;
                        dropped_last = None;
                    }
                    Some(None) => {
                        dropped_last = Some((check.header.clone(), check.max_timestamp_delta))
                    }
                }
                pacer.io(check.header.total_size() as u64).await;
            }
            stats.bytes_read += reader.bytes_read;
        }
        if let Some((h, delta)) = dropped_last {
            let empty = records::encode_batch(&h, &[], 0, None)?;
            out.push(&empty, delta).await?;
        }
        Ok(any)
    }

    /// Swaps one written group in, under the append lock; false if the group's segments are
    /// no longer the log's (retention or truncation ran meanwhile).
    async fn install_group(
        &self,
        group: &[Rc<Segment>],
        out: GroupWriter,
        crash_at: Option<CrashPoint>,
    ) -> Result<bool, StorageError> {
        let _g = self.append_lock.lock().await;
        self.await_seal().await?;
        let current = {
            let st = self.state.borrow();
            !st.closed
                && group
                    .iter()
                    .all(|s| st.segments.get(&s.base).is_some_and(|c| Rc::ptr_eq(c, s)))
        };
        if !current {
            swap::discard_cleaned(&self.dir, out.base).await?;
            return Ok(false);
        }
        let old_bases: Vec<i64> = group.iter().map(|s| s.base).collect();
        swap::install(&self.dir, out.base, &old_bases, crash_at).await?;
        let seg = Rc::new(Segment::open(&self.dir, out.base).await?);
        let last_old = old_bases.last().copied().unwrap_or(out.base);
        let mtime = group.iter().map(|s| s.mtime_ms.get()).max().unwrap_or(0);
        seg.max_ts.set(out.tracker.max_ts);
        seg.mtime_ms.set(mtime);
        seg.index_persisted
            .set((out.indexes.offsets.len(), out.indexes.times.len()));
        *seg.indexes.borrow_mut() = Some(out.indexes);
        let mut st = self.state.borrow_mut();
        let next_base = st
            .segments
            .range(last_old + 1..)
            .next()
            .map(|(b, _)| *b)
            .ok_or_else(|| StorageError::CorruptState("cleaned the active segment".into()))?;
        seg.next_offset.set(next_base);
        for b in &old_bases {
            st.segments.remove(b);
        }
        st.segments.insert(out.base, seg);
        st.recompute_max_ts();
        Ok(true)
    }
}

/// Out of file descriptors (EMFILE/ENFILE) before a group is installed is not a disk fault:
/// nothing of the log changed, so the clean is given up as `OutOfFiles` and retried by a later
/// pass (connections or other logs may hold the fds now). Any other error is returned as is.
fn out_of_files(e: StorageError) -> StorageError {
    match e {
        StorageError::Io(io) if matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            StorageError::OutOfFiles(format!("log cleaner: {io}"))
        }
        e => e,
    }
}

/// Cleans one data batch: `None` = copy unchanged, `Some(None)` = keeps nothing,
/// `Some(Some(bytes))` = rebuilt batch.
fn clean_batch(
    bytes: &[u8],
    header: &BatchHeader,
    retain: &Retain<'_>,
    opts: &CleanOptions<'_>,
    stats: &mut CleanStats,
) -> Result<Option<Option<Vec<u8>>>, StorageError> {
    let section =
        records::records_section(bytes, header, opts.limits.decompressed_batch_bytes_max)?;
    let recs = records::parse_records(&section, header)?;
    let horizon = records::delete_horizon(header);
    let mut kept = Vec::with_capacity(recs.len());
    let mut tombstones_kept = false;
    let aborted = opts.aborted(header);
    for r in &recs {
        let offset = header.base_offset + i64::from(r.offset_delta);
        let keep = !aborted && retain.keep(r, offset, horizon);
        if keep && r.value.is_none() {
            tombstones_kept = true;
        }
        if !keep && r.value.is_none() && r.key.is_some() {
            stats.tombstones_removed += 1;
        }
        kept.push(keep);
    }
    let kept_count = kept.iter().filter(|k| **k).count();
    stats.records_read += recs.len() as u64;
    stats.records_kept += kept_count as u64;
    let new_horizon = (tombstones_kept && horizon.is_none()).then(|| {
        opts.now_ms
            .saturating_add(opts.config.delete_retention_ms.max(0))
    });
    if tombstones_kept {
        let h = new_horizon.or(horizon).unwrap_or(i64::MAX);
        stats.next_delete_horizon_ms = Some(stats.next_delete_horizon_ms.map_or(h, |c| c.min(h)));
    }
    if kept_count == recs.len() && new_horizon.is_none() {
        return Ok(None);
    }
    if kept_count == 0 {
        let last_of_producer = header.producer_id >= 0
            && opts
                .is_last_producer_batch
                .is_some_and(|f| f(header.producer_id, header.last_offset()));
        if last_of_producer {
            return records::encode_batch(header, &[], 0, None).map(|b| Some(Some(b)));
        }
        return Ok(Some(None));
    }
    let mut out = Vec::with_capacity(section.len());
    for (r, _) in recs.iter().zip(&kept).filter(|(_, k)| **k) {
        records::push_record(&mut out, r, header.base_timestamp, new_horizon);
    }
    let count = i32::try_from(kept_count).map_err(|_| StorageError::corrupt("record count"))?;
    records::encode_batch(header, &out, count, new_horizon).map(|b| Some(Some(b)))
}

/// Consecutive segments whose sizes add up to at most `segment_bytes_max` (and whose offsets
/// span less than i32::MAX, as relative index offsets require); one segment at least.
fn group_segments(segs: &[Rc<Segment>], segment_bytes_max: u64) -> Vec<&[Rc<Segment>]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segs.len() {
        let mut size = 0u64;
        let mut endi = start;
        while let Some(s) = segs.get(endi) {
            let span = s.next_offset.get() - segs.get(start).map_or(0, |f| f.base);
            if endi > start
                && (size + s.size.get() > segment_bytes_max || span > i64::from(i32::MAX))
            {
                break;
            }
            size += s.size.get();
            endi += 1;
        }
        groups.push(segs.get(start..endi).unwrap_or(&[]));
        start = endi;
    }
    groups
}
