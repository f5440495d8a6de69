//! `Log`: one partition's segments, appends, reads, flushing, retention and truncation.
//!
//! Concurrency: a `Log` belongs to one shard and is shared by that shard's tasks through
//! `&self`. State lives in `RefCell`s that are never borrowed across an `.await`. Appends,
//! rolls, retention and truncation are serialised by `append_lock`; fsyncs go through group
//! commit (`commit.rs`: at most one in flight, appends keep writing meanwhile); reads take a
//! snapshot of segment handles and committed sizes and never wait for either.
//!
//! Durability: `flush.messages` / `flush.ms` are applied at the end of each append (`flush.ms`
//! lazily: an append, or the caller ticking `maybe_flush`, notices the oldest unflushed append
//! is old enough). An append only *starts* the fsync the policy asks for; callers that need
//! durability await `wait_durable` / `flush`, which share fsyncs. Message counts are
//! cumulative (`appended_messages_total` / `flushed_messages_total`), so fsyncs finishing
//! while other appends land never leave the policy permanently due. The recovery point
//! (everything below is fsynced, data and indexes) moves at roll and close and is persisted
//! in the checkpoint file. New index entries stay in memory (reads use them) and are written
//! to the index files at policy fsyncs, `flush`, roll and close, or when
//! `INDEX_PENDING_ENTRIES_MAX` accumulate; recovery rebuilds indexes past the recovery point.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::BytesMut;
use futures_util::lock::Mutex;

use crate::batch::BatchHeader;
use crate::batch::{self, BatchInfo};
use crate::checkpoint;
use crate::commit::{self, GroupCommit};
use crate::config::{LogConfig, TimestampType};
use crate::error::StorageError;
use crate::index::{self, BatchMeta};
use crate::offset::{Offset, TimestampOffset};
use crate::read::{self, ReadRequest, ReadSlice, SegmentView};
use crate::recovery::RecoveryReport;
use crate::segment::Segment;
use crate::state::State;

/// Positions in index entries are u32 and relative offsets must fit an i32 (as in Kafka),
/// whatever the configuration says.
const SEGMENT_BYTES_HARD_MAX: u64 = i32::MAX as u64;
const RELATIVE_OFFSET_MAX: i64 = i32::MAX as i64;
/// Index entries (offset + time) kept only in memory before an append writes them out
/// regardless of the flush policy, bounding the write-behind.
pub(crate) const INDEX_PENDING_ENTRIES_MAX: usize = 1024;

/// Options of one append.
#[derive(Clone, Copy, Debug)]
pub struct AppendOptions {
    /// Written into every batch's partition leader epoch.
    pub leader_epoch: i32,
    /// Broker wall clock: LogAppendTime, segment.ms and flush.ms use it.
    pub now_ms: i64,
}

/// Result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// -1 for CreateTime topics.
    pub log_append_time_ms: i64,
    pub record_count: u32,
    pub batch_count: u32,
    pub bytes: u32,
}

/// A partition log (see the module docs and CONTRACT.md).
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: RefCell<LogConfig>,
    /// Shared with the group-commit fsync tasks.
    pub(crate) state: Rc<RefCell<State>>,
    pub(crate) commit: Rc<GroupCommit>,
    pub(crate) append_lock: Mutex<()>,
    /// Appends written with `pwrite` on the shard thread (`write_inline_max_bytes`).
    inline_writes_total: Cell<u64>,
    report: RecoveryReport,
    /// What the checkpoint file holds, as far as this log wrote or read it (`None`: unknown or
    /// absent). `close` skips all its work when the file already says what it would write.
    pub(crate) disk_checkpoint: Cell<Option<crate::checkpoint::Checkpoint>>,
    /// Opened with `OpenOptions::mark_unclean_on_open` false: the caller's data-directory
    /// marker, not this checkpoint, says whether the last shutdown was clean.
    pub(crate) marker_managed: bool,
}

impl Log {
    pub(crate) fn from_parts(
        dir: PathBuf,
        config: LogConfig,
        state: State,
        report: RecoveryReport,
        disk_checkpoint: Option<crate::checkpoint::Checkpoint>,
        marker_managed: bool,
    ) -> Log {
        Log {
            marker_managed,
            disk_checkpoint: Cell::new(disk_checkpoint),
            dir,
            config: RefCell::new(config),
            state: Rc::new(RefCell::new(state)),
            commit: Rc::new(GroupCommit::default()),
            append_lock: Mutex::new(()),
            inline_writes_total: Cell::new(0),
            report,
        }
    }

    /// Atomically replaces the checkpoint file and remembers what it now holds.
    pub(crate) async fn write_checkpoint(
        &self,
        cp: &crate::checkpoint::Checkpoint,
    ) -> Result<(), StorageError> {
        // Unknown while the write is under way: a failed write may leave either version.
        self.disk_checkpoint.set(None);
        checkpoint::write(&self.dir, cp).await?;
        self.disk_checkpoint.set(Some(*cp));
        Ok(())
    }

    /// The partition directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// What `open` found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Validates `batches` (all of them, before writing anything), assigns offsets, rewrites
    /// base offset / leader epoch (and LogAppendTime fields), writes them with one write,
    /// rolling first if needed, then applies the flush policy: an fsync it calls for is
    /// started, not awaited (await `wait_durable(last_offset)` for durability).
    pub async fn append(
        &self,
        batches: BytesMut,
        opts: AppendOptions,
    ) -> Result<AppendInfo, StorageError> {
        let cfg = self.config();
        let infos = batch::validate_all(
            &batches,
            cfg.max_message_bytes,
            cfg.inflated_batch_bytes_max,
        )?;
        self.append_validated(batches, infos, opts).await
    }

    /// `append` for the broker's own batches that may be control batches (transaction
    /// markers, Kafka's `AppendOrigin.COORDINATOR`): the same validation except that control
    /// batches are allowed.
    pub async fn append_control(
        &self,
        batches: BytesMut,
        opts: AppendOptions,
    ) -> Result<AppendInfo, StorageError> {
        let cfg = self.config();
        let infos = batch::validate_all_control(
            &batches,
            cfg.max_message_bytes,
            cfg.inflated_batch_bytes_max,
        )?;
        self.append_validated(batches, infos, opts).await
    }

    /// Base offset of the segment holding `offset` (the last segment based at or below it);
    /// `None` below the first segment. Per-segment files kept above storage (the aborted
    /// transaction index) are named by it.
    pub fn segment_base_of(&self, offset: Offset) -> Option<Offset> {
        let state = self.state.borrow();
        state
            .segments
            .range(..=offset.0)
            .next_back()
            .map(|(base, _)| Offset(*base))
    }

    /// Base offset of the active segment (`None` once closed).
    pub fn active_segment_base(&self) -> Option<Offset> {
        self.state.borrow().active().ok().map(|s| Offset(s.base))
    }

    /// Base offsets of every segment, oldest first.
    pub fn segment_bases(&self) -> Vec<Offset> {
        self.state
            .borrow()
            .segments
            .keys()
            .map(|b| Offset(*b))
            .collect()
    }

    async fn append_validated(
        &self,
        mut batches: BytesMut,
        infos: Vec<batch::BatchInfo>,
        opts: AppendOptions,
    ) -> Result<AppendInfo, StorageError> {
        let cfg = self.config();
        let offsets_needed: i64 = infos
            .iter()
            .map(|i| i64::from(i.header.last_offset_delta) + 1)
            .sum();
        self.commit.check()?;
        let guard = self.append_lock.lock().await;
        self.state.borrow_mut().last_now_ms = opts.now_ms;
        let active = self.state.borrow().active()?;
        if self.should_roll(
            &active,
            &cfg,
            &infos,
            batches.len() as u64,
            offsets_needed,
            opts.now_ms,
        ) {
            self.roll_locked(opts.now_ms).await?;
        }
        let active = self.state.borrow().active()?;
        let base_offset = self.state.borrow().log_end;
        let metas = rewrite(&mut batches, &infos, base_offset, &cfg, opts);
        let pos = active.size.get();
        let (new_offsets, new_times, tracker) = {
            let mut tracker = active.tracker.get();
            let (mut offs, mut times) = (Vec::new(), Vec::new());
            let mut p = pos;
            for m in &metas {
                tracker.step(
                    active.base,
                    p,
                    m,
                    cfg.index_interval_bytes,
                    &mut offs,
                    &mut times,
                );
                p += m.size;
            }
            (offs, times, tracker)
        };
        let len = batches.len() as u64;
        check_before_write(
            &batches,
            &infos,
            &metas,
            SegmentEnd {
                base: active.base,
                next_offset: active.next_offset.get(),
                size: active.size.get(),
            },
            base_offset,
            pos,
        );
        if let Err(e) = index::entries_fit(
            active.indexes.borrow().as_ref(),
            &new_offsets,
            &new_times,
            pos + len,
            u64::try_from(base_offset + offsets_needed - active.base).unwrap_or(u64::MAX),
        ) {
            crate::invariant::violated(
                file!(),
                line!(),
                format_args!(
                    "index entries of an append at offset {base_offset}, position {pos} do not \
                     fit segment {}: {e}",
                    active.base
                ),
            );
        }
        // While an fsync of the segment runs, a `pwrite` can wait for its writeback (17 ms
        // measured): the io_uring write waits in a kernel worker instead of the shard.
        let inline = len <= u64::from(cfg.write_inline_max_bytes) && !self.commit.is_syncing();
        active
            .log
            .pinned_fd()
            .write_segment_data(batches, pos, inline)
            .await
            .map_err(|e| write_failed(&active, pos, len, e))?;
        if inline {
            self.inline_writes_total
                .set(self.inline_writes_total.get() + 1);
        }
        // Commit: one synchronous step, so readers see all of it or none.
        let last_offset = base_offset + offsets_needed - 1;
        let record_count: u32 = infos.iter().map(|i| i.header.record_count as u32).sum();
        {
            if let Some(idx) = active.indexes.borrow_mut().as_mut() {
                idx.offsets.extend_from_slice(&new_offsets);
                idx.times.extend_from_slice(&new_times);
            }
            active.tracker.set(tracker);
            active.size.set(pos + len);
            active.next_offset.set(last_offset + 1);
            active.max_ts.set(tracker.max_ts);
            active.mtime_ms.set(opts.now_ms);
            let mut st = self.state.borrow_mut();
            // Paired with `check_before_write`: nothing moved the log end while the write was
            // in flight (append_lock), and the new end is past the old one.
            crate::invariant!(
                st.log_end == base_offset && last_offset >= base_offset,
                "append of offsets {base_offset}..={last_offset} committed at log end {}",
                st.log_end
            );
            st.log_end = last_offset + 1;
            if let Some(m) = tracker.max_ts {
                if st
                    .max_ts
                    .is_none_or(|cur| m.timestamp_ms > cur.timestamp_ms)
                {
                    st.max_ts = Some(m);
                }
            }
            st.appended_messages_total = st
                .appended_messages_total
                .saturating_add(u64::from(record_count));
            st.oldest_unflushed_ms.get_or_insert(opts.now_ms);
        }
        let flush_due = self.flush_due(opts.now_ms);
        if flush_due || active.pending_index_entries() >= INDEX_PENDING_ENTRIES_MAX {
            active.persist_index_entries().await?;
        }
        drop(guard);
        if flush_due {
            self.start_policy_fsync()?;
        }
        Ok(AppendInfo {
            base_offset: Offset(base_offset),
            last_offset: Offset(last_offset),
            log_append_time_ms: match cfg.timestamp_type {
                TimestampType::LogAppendTime => opts.now_ms,
                TimestampType::CreateTime => -1,
            },
            record_count,
            batch_count: infos.len() as u32,
            bytes: len as u32,
        })
    }

    fn should_roll(
        &self,
        active: &Segment,
        cfg: &LogConfig,
        infos: &[BatchInfo],
        len: u64,
        offsets_needed: i64,
        now_ms: i64,
    ) -> bool {
        if active.size.get() == 0 {
            return false;
        }
        let bytes_max = cfg.segment_bytes_max.min(SEGMENT_BYTES_HARD_MAX);
        let full_bytes = active.size.get() + len > bytes_max;
        let full_index = active
            .indexes
            .borrow()
            .as_ref()
            .is_some_and(|i| i.is_full(cfg.segment_index_bytes_max, infos.len()));
        // Kafka's `LogSegment.timeWaitedForRoll`: the incoming batches' largest timestamp
        // minus the segment's first, or the segment's age when it has no timestamp. Measuring
        // a client's old CreateTime against the wall clock instead would let every request
        // roll a segment.
        let incoming_ts = match cfg.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => infos.iter().map(|i| i.max_timestamp).max().unwrap_or(-1),
        };
        let waited = match active.tracker.get().first_ts {
            Some(first) if first >= 0 => incoming_ts.saturating_sub(first),
            _ => now_ms.saturating_sub(active.created_ms.get()),
        };
        let aged = i64::try_from(cfg.segment_ms).is_ok_and(|ms| waited > ms);
        let log_end = self.state.borrow().log_end;
        let rel_overflow = log_end + offsets_needed - 1 - active.base > RELATIVE_OFFSET_MAX;
        full_bytes || full_index || aged || rel_overflow
    }

    /// Whether `flush.messages` / `flush.ms` call for an fsync beyond the one in flight.
    fn flush_due(&self, now_ms: i64) -> bool {
        let cfg = self.config.borrow();
        let st = self.state.borrow();
        let in_flight = self.commit.in_flight();
        // What an fsync in flight will cover counts as flushed; appends after its start are
        // at least as young as that start.
        let (covered_end, flushed, oldest) = match &in_flight {
            Some(f) => (
                f.end.max(st.durable_end),
                f.messages_total.max(st.flushed_messages_total),
                Some(f.started_ms),
            ),
            None => (
                st.durable_end,
                st.flushed_messages_total,
                st.oldest_unflushed_ms,
            ),
        };
        let unflushed = st.appended_messages_total.saturating_sub(flushed);
        let by_count = unflushed >= cfg.flush_messages.max(1);
        let by_age = unflushed > 0
            && oldest.is_some_and(|t| {
                i64::try_from(cfg.flush_ms).is_ok_and(|ms| now_ms.saturating_sub(t) >= ms)
            });
        st.log_end > covered_end && (by_count || by_age)
    }

    /// Starts the fsync the policy asked for, or has the one in flight start it when done.
    fn start_policy_fsync(&self) -> Result<(), StorageError> {
        if self.commit.in_flight().is_some() {
            self.commit.chain_next();
            return Ok(());
        }
        commit::start(&self.state, &self.commit).map(|_| ())
    }

    /// Applies the flush policy and waits for the fsync it calls for: `flush.messages`
    /// records or `flush.ms` ms of appends unflushed. Call it periodically to honour
    /// `flush.ms` on an idle log.
    pub async fn maybe_flush(&self, now_ms: i64) -> Result<(), StorageError> {
        self.commit.check()?;
        if self.flush_due(now_ms) {
            self.flush().await?;
        }
        Ok(())
    }

    /// fsyncs everything appended so far (joining an fsync in flight, sharing the next one
    /// with concurrent callers) and writes pending index entries if no append is running;
    /// returns the durable end offset.
    pub async fn flush(&self) -> Result<Offset, StorageError> {
        self.commit.check()?;
        if let Some(_guard) = self.append_lock.try_lock() {
            let active = self.state.borrow().active().ok();
            if let Some(active) = active {
                active.persist_index_entries().await?;
            }
        }
        let (end, durable) = {
            let st = self.state.borrow();
            (st.log_end, st.durable_end)
        };
        if end <= durable {
            return Ok(Offset(durable));
        }
        self.wait_durable(Offset(end - 1)).await
    }

    /// Resolves once the durable end offset is past `offset` (so `offset` is fsynced),
    /// joining the fsync in flight when it covers `offset`, else starting the next one,
    /// which concurrent callers share (group commit). Returns the durable end offset.
    /// `OffsetOutOfRange` when `offset` is not below the log end (nothing to wait for).
    pub async fn wait_durable(&self, offset: Offset) -> Result<Offset, StorageError> {
        loop {
            self.commit.check()?;
            let (durable, log_start, log_end) = {
                let st = self.state.borrow();
                (st.durable_end, st.log_start, st.log_end)
            };
            if durable > offset.0 {
                return Ok(Offset(durable));
            }
            if offset.0 >= log_end {
                return Err(StorageError::OffsetOutOfRange {
                    offset: offset.0,
                    log_start,
                    log_end,
                });
            }
            // Either the fsync in flight (covering us or not: then the next one will) or
            // a new one covering everything committed.
            match commit::start(&self.state, &self.commit)? {
                Some(f) => f.wait().await?,
                None => return Ok(self.durable_end_offset()),
            }
        }
    }

    /// The sticky fsync failure, if a data fsync of this log has failed (including one the
    /// flush policy started in the background, which no caller was waiting on).
    pub fn durability_error(&self) -> Option<StorageError> {
        self.commit.check().err()
    }

    /// Data fsyncs of segment files since open (group-commit fsyncs and seals).
    pub fn fsync_count(&self) -> u64 {
        self.commit.fsync_count()
    }

    /// Appends since open whose data was written with `pwrite` on the calling thread rather
    /// than an io_uring write (`LogConfig::write_inline_max_bytes`).
    pub fn inline_write_count(&self) -> u64 {
        self.inline_writes_total.get()
    }

    /// End offset the fsync in flight will make durable, if one is in flight.
    pub fn fsync_in_flight(&self) -> Option<Offset> {
        self.commit.in_flight().map(|f| Offset(f.end))
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.state.borrow().log_start)
    }
    /// Next offset to assign.
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.state.borrow().log_end)
    }
    /// End offset covered by fsync.
    pub fn durable_end_offset(&self) -> Offset {
        Offset(self.state.borrow().durable_end)
    }
    /// Single node: the durable end offset.
    pub fn high_watermark(&self) -> Offset {
        self.durable_end_offset()
    }
    /// Number of segments (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .values()
            .map(|s| s.size.get())
            .sum()
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch with
    /// `min_one_batch`), never reaching `upper_bound` (exclusive).
    pub async fn read(
        &self,
        offset: Offset,
        max_bytes: u32,
        min_one_batch: bool,
        upper_bound: Offset,
    ) -> Result<ReadSlice, StorageError> {
        let (views, req) = {
            let st = self.state.borrow();
            if st.closed {
                return Err(StorageError::Closed);
            }
            if offset.0 < st.log_start || offset.0 > st.log_end {
                return Err(StorageError::OffsetOutOfRange {
                    offset: offset.0,
                    log_start: st.log_start,
                    log_end: st.log_end,
                });
            }
            let upper = upper_bound.0.min(st.log_end);
            if offset.0 >= upper {
                return Ok(ReadSlice::default());
            }
            let first = st
                .segments
                .range(..=offset.0)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            let views: Vec<SegmentView> = st
                .segments
                .range(first..upper)
                .map(|(_, s)| SegmentView {
                    seg: s.clone(),
                    size: s.size.get(),
                })
                .collect();
            let req = ReadRequest {
                offset: offset.0,
                max_bytes,
                min_one_batch,
                upper_bound: upper,
                index_interval_bytes: self.config.borrow().index_interval_bytes,
            };
            (views, req)
        };
        read::read_segments(&views, &req).await
    }

    /// Largest timestamp in the log and the offset holding it (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        self.state.borrow().max_ts
    }

    /// Rolls a new active segment (no-op when the active one is empty).
    pub async fn roll(&self) -> Result<(), StorageError> {
        let _g = self.append_lock.lock().await;
        let now_ms = self.state.borrow().last_now_ms;
        self.roll_locked(now_ms).await
    }

    /// Seals the active segment (fsync data + indexes, final time entry) and starts a new one
    /// at the log end; the recovery point moves to the new segment. Caller holds append_lock.
    pub(crate) async fn roll_locked(&self, now_ms: i64) -> Result<(), StorageError> {
        let (active, log_end) = {
            let st = self.state.borrow();
            (st.active()?, st.log_end)
        };
        if active.size.get() == 0 {
            return Ok(());
        }
        self.seal(&active).await?;
        self.state.borrow_mut().mark_all_durable();
        let seg = match Segment::create(&self.dir, log_end, now_ms).await {
            Ok(seg) => Rc::new(seg),
            // Out of fds is not a disk fault: the sealed segment stays active, the append
            // fails, the broker keeps serving.
            Err(StorageError::Io(e))
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) =>
            {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot roll a segment");
                return Err(StorageError::OutOfFiles(format!(
                    "{}: {e}",
                    self.dir.display()
                )));
            }
            Err(e) => return Err(e),
        };
        crate::io::sync_dir(&self.dir).await?;
        active.index_fds.borrow_mut().take();
        active.log.unpin();
        let cp = {
            let mut st = self.state.borrow_mut();
            st.segments.insert(log_end, seg);
            st.recovery_point = log_end;
            st.checkpoint(false)
        };
        self.write_checkpoint(&cp).await?;
        Ok(())
    }

    /// fsyncs a segment's data, adds the final time index entry, fsyncs its indexes.
    /// Caller holds append_lock.
    pub(crate) async fn seal(&self, seg: &Segment) -> Result<(), StorageError> {
        let synced = seg.log.pinned_fd().sync_segment_data().await;
        self.commit
            .record_fsync(&synced, self.state.borrow().durable_end);
        // The sticky failure's error, which says it was an fsync and what is not durable.
        self.commit.check()?;
        let mut tracker = seg.tracker.get();
        let mut times = Vec::new();
        tracker.time_entry(seg.base, &mut times);
        if let Some(idx) = seg.indexes.borrow_mut().as_mut() {
            idx.times.extend_from_slice(&times);
        }
        seg.tracker.set(tracker);
        seg.persist_index_entries().await?;
        seg.sync_index_files().await
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }

    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
}

/// Where the active segment ends before an append.
#[derive(Clone, Copy, Debug)]
struct SegmentEnd {
    base: i64,
    next_offset: i64,
    size: u64,
}

/// Invariants of the bytes about to be written at `pos` of `active` (stay on in release;
/// `crate::invariant`): the batches continue the log end (`base_offset`, the segment's next
/// offset) with strictly increasing offsets, each one's CRC matches its bytes after the
/// rewrite, and their sizes are what the index entries were computed from. Read-side
/// counterparts: recovery and `check_stored` verify the CRC of what they read, a fetch from
/// inside a batch and a timestamp look-up check the CRC before decoding records.
fn check_before_write(
    buf: &[u8],
    infos: &[BatchInfo],
    metas: &[BatchMeta],
    active: SegmentEnd,
    base_offset: i64,
    pos: u64,
) {
    crate::invariant!(
        active.next_offset <= base_offset && active.base <= base_offset,
        "append at offset {base_offset} into segment {} ending at offset {}",
        active.base,
        active.next_offset
    );
    crate::invariant!(
        active.size == pos,
        "append at position {pos} of segment {} of {} bytes",
        active.base,
        active.size
    );
    let mut at = 0usize;
    let mut next = base_offset;
    crate::invariant!(
        infos.len() == metas.len(),
        "{} batches validated, {} rewritten",
        infos.len(),
        metas.len()
    );
    for (info, meta) in infos.iter().zip(metas) {
        let bytes = buf.get(at..).unwrap_or(&[]);
        let header = BatchHeader::parse(bytes);
        // CRC: a CRC field still equal to the one validation verified over these bytes
        // proves them, since the rewrite of base offset and leader epoch writes only below
        // the CRC's range (REWRITE_OUTSIDE_CRC, checked at compile time in batch.rs); a CRC the rewrite recomputed
        // (LogAppendTime, a corrected max timestamp) is verified in full.
        let ok = header.as_ref().is_ok_and(|h| {
            h.base_offset == next
                && h.last_offset() == meta.last_offset
                && h.total_size() as u64 == meta.size
                && (h.crc == info.header.crc
                    || bytes
                        .get(..h.total_size())
                        .is_some_and(|b| batch::compute_crc(b) == h.crc))
        });
        crate::invariant!(
            ok,
            "batch at buffer position {at} of an append at offset {base_offset} is not ready \
             to write (expected base offset {next}, last offset {}, {} bytes, a matching CRC): \
             {header:?}",
            meta.last_offset,
            meta.size
        );
        next = meta.last_offset + 1;
        at += meta.size as usize;
    }
    crate::invariant!(
        at == buf.len(),
        "append of {} bytes holds {at} bytes of batches",
        buf.len()
    );
}

/// Assigns offsets and rewrites the header fields the broker owns; returns index metadata.
/// Names the file and range of a failed append write (the broker's fatal message shows it).
fn write_failed(seg: &Segment, pos: u64, len: u64, e: std::io::Error) -> StorageError {
    let path = crate::segment::log_path(&seg.dir, seg.base);
    StorageError::Io(std::io::Error::new(
        e.kind(),
        format!(
            "write of {len} bytes at {pos} to {} failed: {e}",
            path.display()
        ),
    ))
}

fn rewrite(
    buf: &mut BytesMut,
    infos: &[BatchInfo],
    base_offset: i64,
    cfg: &LogConfig,
    opts: AppendOptions,
) -> Vec<BatchMeta> {
    let mut metas = Vec::with_capacity(infos.len());
    let mut pos = 0usize;
    let mut next = base_offset;
    for info in infos {
        let Some(bytes) = buf.get_mut(pos..pos + info.size) else {
            break;
        };
        batch::set_base_offset(bytes, next);
        batch::set_leader_epoch(bytes, opts.leader_epoch);
        let mut header = info.header.clone();
        header.base_offset = next;
        let mut max_ts_delta = info.max_timestamp_delta;
        if cfg.timestamp_type == TimestampType::LogAppendTime {
            batch::set_log_append_time(bytes, opts.now_ms);
            header.max_timestamp = opts.now_ms;
            max_ts_delta = 0;
        } else {
            batch::set_create_time_max(bytes, info.max_timestamp);
            header.max_timestamp = info.max_timestamp;
        }
        metas.push(BatchMeta::new(&header, max_ts_delta));
        next = header.last_offset() + 1;
        pos += info.size;
    }
    metas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BatchBuilder;

    const CHILD_ENV: &str = "STORAGE_TEST_BAD_APPEND";

    fn two_batches(base: i64) -> (BytesMut, Vec<BatchInfo>, Vec<BatchMeta>) {
        let mut buf = BytesMut::new();
        let mut infos = Vec::new();
        let mut metas = Vec::new();
        let mut next = base;
        for n in [2usize, 3] {
            let mut b = BatchBuilder::new(1_000).base_offset(next);
            for i in 0..n {
                b = b.record(Some(b"k"), Some(format!("v{i}").as_bytes()), &[]);
            }
            let bytes = b.build();
            let info = batch::validate_batch(&bytes, u32::MAX).expect("built batch");
            let h = info.header.clone();
            infos.push(info);
            metas.push(BatchMeta::new(&h, 0));
            next = h.last_offset() + 1;
            buf.extend_from_slice(&bytes);
        }
        (buf, infos, metas)
    }

    const END: SegmentEnd = SegmentEnd {
        base: 0,
        next_offset: 10,
        size: 500,
    };

    #[test]
    fn ready_batches_pass() {
        let (buf, infos, metas) = two_batches(10);
        check_before_write(&buf, &infos, &metas, END, 10, 500);
    }

    /// Each broken case runs in a child process (the check ends the process): a record
    /// byte changed after the CRC was set, a base offset that does not continue the log, a
    /// write position that is not the segment's end.
    #[test]
    fn broken_appends_stop_the_process() {
        if let Ok(case) = std::env::var(CHILD_ENV) {
            let (mut buf, infos, metas) = two_batches(10);
            match case.as_str() {
                "crc" => {
                    // A rewrite that changed a CRC-covered byte and the CRC field wrongly.
                    let last = buf.len() - 1;
                    buf[last] ^= 0x40;
                    let second = metas[0].size as usize;
                    buf[second + 17] ^= 0x01;
                    check_before_write(&buf, &infos, &metas, END, 10, 500);
                }
                "offset" => check_before_write(&buf, &infos, &metas, END, 11, 500),
                _ => check_before_write(&buf, &infos, &metas, END, 10, 499),
            }
            std::process::exit(0);
        }
        for (case, says) in [
            ("crc", "a matching CRC"),
            ("offset", "expected base offset 11"),
            (
                "position",
                "append at position 499 of segment 0 of 500 bytes",
            ),
        ] {
            let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "log::tests::broken_appends_stop_the_process",
                    "--nocapture",
                ])
                .env(CHILD_ENV, case)
                .output()
                .expect("run the child");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(crate::invariant::INVARIANT_EXIT_CODE),
                "{case}: {stderr}"
            );
            assert!(stderr.contains(says), "{case}: {stderr}");
        }
    }
}
