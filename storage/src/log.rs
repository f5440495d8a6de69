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
//! (everything below is fsynced, data and indexes) moves when a rolled segment's background
//! seal completes (`seal.rs`) and at close, and is persisted in the checkpoint file at the
//! next roll, retention, truncation or close. New index entries stay in memory (reads use them) and are written
//! to the index files at policy fsyncs, `flush`, roll and close, or when
//! `INDEX_PENDING_ENTRIES_MAX` accumulate; recovery rebuilds indexes past the recovery point.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::lock::Mutex;

use crate::append::PendingAppend;
use crate::batch::BatchHeader;
use crate::batch::{self, BatchInfo, BatchInfos};
use crate::checkpoint;
use crate::commit::{self, GroupCommit};
use crate::config::{LogConfig, TimestampType};
use crate::error::StorageError;
use crate::index::{BatchMeta, BatchMetas};
use crate::offset::{Offset, TimestampOffset};
use crate::read::{self, ReadRequest, ReadSlice, SegmentView};
use crate::recovery::RecoveryReport;
use crate::segment::Segment;
use crate::stamp::AppendBytes;
use crate::state::State;

/// Positions in index entries are u32 and relative offsets must fit an i32 (as in Kafka),
/// whatever the configuration says.
pub(crate) const SEGMENT_BYTES_HARD_MAX: u64 = i32::MAX as u64;
pub(crate) const RELATIVE_OFFSET_MAX: i64 = i32::MAX as i64;
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

/// A client's batches validated once (`Log::validate`): the caller reads their headers from
/// `infos` (producer ids, counts) instead of parsing them again, and `Log::append_valid`
/// writes them without validating again. Only `validate` makes one, so the infos always
/// describe the bytes.
pub struct ValidBatches {
    bytes: Bytes,
    infos: BatchInfos,
}

impl ValidBatches {
    /// One entry per batch, in order.
    pub fn infos(&self) -> &[BatchInfo] {
        &self.infos
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// A partition log (see the module docs and CONTRACT.md).
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: RefCell<LogConfig>,
    /// Shared with the group-commit fsync tasks.
    pub(crate) state: Rc<RefCell<State>>,
    pub(crate) commit: Rc<GroupCommit>,
    /// Shared (`Arc`) so that a segment write handed to io_uring can hold it to its end when
    /// its caller is dropped (`append.rs`, `write_to_completion`).
    pub(crate) append_lock: Arc<Mutex<()>>,
    /// Appends waiting to be written: the next `append_lock` holder writes all of them
    /// (`append.rs`).
    pub(crate) pending_appends: RefCell<VecDeque<Rc<PendingAppend>>>,
    /// Appends written with `pwrite` on the shard thread (`write_inline_max_bytes`).
    inline_writes_total: Cell<u64>,
    /// Bytes of received batches `append_valid` copied: 61 per batch of a shared buffer (its
    /// header, stamped in the copy; the rest is written from the received buffer), none for a
    /// buffer only the append holds (stamped in place). `stamp.rs`.
    append_copied_bytes_total: Cell<u64>,
    /// Segment data writes of appends (one per coalesced group of appends, `append.rs`).
    segment_writes_total: Cell<u64>,
    /// Early writeback of appended ranges (`writeback.rs`).
    pub(crate) writeback: Rc<crate::writeback::Writeback>,
    /// Zeros written ahead of the active segment's end (`prealloc.rs`).
    pub(crate) zero_ahead: Rc<crate::prealloc::ZeroAhead>,
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
            append_lock: Arc::new(Mutex::new(())),
            pending_appends: RefCell::new(VecDeque::new()),
            inline_writes_total: Cell::new(0),
            append_copied_bytes_total: Cell::new(0),
            segment_writes_total: Cell::new(0),
            writeback: Rc::default(),
            zero_ahead: Rc::default(),
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
        self.append_validated(AppendBytes::Owned(batches), infos, opts, Stamp::Leader)
            .await
    }

    /// Validates a client's batches as `append` does (header, CRC, records; no control
    /// batches), once: the result carries every batch's parsed header for the caller and goes
    /// to `append_valid` as is.
    pub fn validate(&self, batches: Bytes) -> Result<ValidBatches, StorageError> {
        let cfg = self.config.borrow();
        let infos = batch::validate_all(
            &batches,
            cfg.max_message_bytes,
            cfg.inflated_batch_bytes_max,
        )?;
        // Kafka's `UnifiedLog.append`: an append no segment could hold is refused whole
        // (`max.message.bytes` may be set above `segment.bytes`).
        if batches.len() as u64 > cfg.segment_bytes_max {
            return Err(StorageError::AppendTooLarge {
                size: batches.len(),
                segment_bytes: cfg.segment_bytes_max,
            });
        }
        Ok(ValidBatches {
            bytes: batches,
            infos,
        })
    }

    /// `append` of batches `validate` checked, without copying them: a buffer only this
    /// append holds is stamped in place; a shared one (a slice of a request frame) is written
    /// from where it was received, with only each batch's 61-byte header copied and stamped
    /// (`stamp.rs`; counted: `append_copied_bytes`).
    pub async fn append_valid(
        &self,
        valid: ValidBatches,
        opts: AppendOptions,
    ) -> Result<AppendInfo, StorageError> {
        let (batches, copied) = AppendBytes::from_received(valid.bytes, &valid.infos);
        self.append_copied_bytes_total
            .set(self.append_copied_bytes_total.get() + copied);
        self.append_validated(batches, valid.infos, opts, Stamp::Leader)
            .await
    }

    /// Bytes of received batches `append_valid` copied since open: 61 (the header) per batch
    /// of a shared buffer, none otherwise.
    pub fn append_copied_bytes(&self) -> u64 {
        self.append_copied_bytes_total.get()
    }

    /// A follower's append (Kafka's `appendAsFollower`): the leader's batches stored unchanged,
    /// with the offsets and leader epochs the leader gave them. Each batch is validated as a
    /// stored one (header, CRC, uncompressed records); the first must start at the log end
    /// and each next one where the previous ended (OffsetOutOfRange otherwise, nothing
    /// written). `leader_epoch` in `opts` is ignored; `now_ms` drives rolls and flush.ms.
    /// The bytes are written from `batches` itself (a slice of the Fetch response, say),
    /// not copied.
    pub async fn append_as_follower(
        &self,
        batches: impl Into<Bytes>,
        opts: AppendOptions,
    ) -> Result<AppendInfo, StorageError> {
        let batches: Bytes = batches.into();
        let mut infos = BatchInfos::new();
        for one in batch::split_batches(&batches) {
            infos.push(validate_replicated(one?)?);
        }
        if infos.is_empty() {
            return Err(StorageError::InvalidRecord("no record batches".into()));
        }
        self.append_validated(
            AppendBytes::Unstamped(batches),
            infos,
            opts,
            Stamp::Follower,
        )
        .await
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
        self.append_validated(AppendBytes::Owned(batches), infos, opts, Stamp::Leader)
            .await
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

    /// Whether `flush.messages` / `flush.ms` call for an fsync beyond the one in flight.
    pub(crate) fn flush_due(&self, now_ms: i64) -> bool {
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
    pub(crate) fn start_policy_fsync(&self) -> Result<(), StorageError> {
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
    /// Counts one completed segment data write, and whether it was inline.
    pub(crate) fn count_write(&self, inline: bool) {
        self.segment_writes_total
            .set(self.segment_writes_total.get() + 1);
        if inline {
            self.inline_writes_total
                .set(self.inline_writes_total.get() + 1);
        }
    }

    /// Segment data writes of appends so far: fewer than appends when appends queued for
    /// one log while it was being written were written together (`append.rs`).
    pub fn segment_write_count(&self) -> u64 {
        self.segment_writes_total.get()
    }

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

    /// Starts a new active segment at the log end and seals the old one: its final time entry
    /// and pending index entries written now, the fsyncs of its data and indexes in the
    /// background (`seal.rs`): appends go on meanwhile, and
    /// the durable end and recovery point move past the old segment when its seal completes.
    /// Caller holds append_lock.
    pub(crate) async fn roll_locked(&self, now_ms: i64) -> Result<(), StorageError> {
        let (active, log_end) = {
            let st = self.state.borrow();
            (st.active()?, st.log_end)
        };
        if active.size.get() == 0 {
            return Ok(());
        }
        // One seal at a time: the previous segment's, if still running, first.
        self.await_seal().await?;
        // A sealed segment's file ends where its data does (the seal's fdatasync makes it so).
        crate::prealloc::trim(&self.zero_ahead, &active).await?;
        // The old segment's last index entries are written now, under the lock (only fsyncs
        // run in the background), then the new segment is created.
        let created = async {
            crate::seal::finish_indexes(&active).await?;
            Segment::create(&self.dir, log_end, now_ms).await
        };
        let seg = match created.await {
            Ok(seg) => Rc::new(seg),
            // Out of fds is not a disk fault: the old segment stays active, the append
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
        let (cp, snap) = {
            let mut st = self.state.borrow_mut();
            st.segments.insert(log_end, seg);
            let snap = crate::seal::SealSnapshot {
                end: log_end,
                messages_total: st.appended_messages_total,
                started_ms: now_ms,
                generation: st.generation,
            };
            // The recovery point is what earlier seals reached: the old segment's own seal
            // has not run yet.
            (st.checkpoint(false), snap)
        };
        crate::seal::start(&self.state, &self.commit, active, snap);
        if crate::fault::roll_seal_inline() {
            self.await_seal().await?;
        }
        if self.disk_checkpoint.get() != Some(cp) {
            self.write_checkpoint(&cp).await?;
        }
        Ok(())
    }

    /// Seals a segment inline: the final time index entry and pending entries written, its
    /// data and indexes fsynced. Caller holds append_lock.
    pub(crate) async fn seal(&self, seg: &Segment) -> Result<(), StorageError> {
        crate::seal::finish_indexes(seg).await?;
        let durable_end = self.state.borrow().durable_end;
        crate::seal::sync_segment(seg, &self.commit, durable_end).await
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
pub(crate) struct SegmentEnd {
    pub base: i64,
    pub next_offset: i64,
    pub size: u64,
}

/// Invariants of the bytes about to be written at `pos` of `active` (stay on in release;
/// `crate::invariant`): the batches continue the log end (`base_offset`, the segment's next
/// offset) with strictly increasing offsets, each one's CRC matches its bytes after the
/// rewrite, and their sizes are what the index entries were computed from. Read-side
/// counterparts: recovery and `check_stored` verify the CRC of what they read, a fetch from
/// inside a batch and a timestamp look-up check the CRC before decoding records.
pub(crate) fn check_before_write(
    buf: &AppendBytes,
    infos: &[BatchInfo],
    metas: &[BatchMeta],
    active: SegmentEnd,
    base_offset: i64,
    pos: u64,
    stamp: Stamp,
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
    let mut batches = buf.batches(infos);
    for (info, meta) in infos.iter().zip(metas) {
        let (header_bytes, rest) = batches.next().unwrap_or((&[], &[]));
        let header = BatchHeader::parse(header_bytes);
        // CRC: a CRC field still equal to the one validation verified over these bytes
        // proves them, since the rewrite of base offset and leader epoch writes only below
        // the CRC's range (REWRITE_OUTSIDE_CRC, checked at compile time in batch.rs) and the
        // rest is written as received; a CRC the rewrite recomputed (LogAppendTime, a
        // corrected max timestamp) is verified in full, over the header and rest written.
        let ok = header.as_ref().is_ok_and(|h| {
            // A leader's batches continue the log; a follower's may skip offsets (`as_stamped`).
            (h.base_offset == next || (stamp == Stamp::Follower && h.base_offset > next))
                && h.last_offset() == meta.last_offset
                && h.total_size() as u64 == meta.size
                && header_bytes.len() + rest.len() == h.total_size()
                && (h.crc == info.header.crc
                    || batch::compute_crc_parts(header_bytes, rest) == h.crc)
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
pub(crate) fn write_failed(seg: &Segment, pos: u64, len: u64, e: std::io::Error) -> StorageError {
    let path = crate::segment::log_path(&seg.dir, seg.base);
    StorageError::Io(std::io::Error::new(
        e.kind(),
        format!(
            "write of {len} bytes at {pos} to {} failed: {e}",
            path.display()
        ),
    ))
}

/// Whether an append assigns offsets and the leader epoch (a leader) or keeps the batches'
/// own (a follower).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stamp {
    Leader,
    Follower,
}

/// One batch of a leader's log as a follower receives it (Kafka's `appendAsFollower`
/// validation): the append checks, or, for what the leader's cleaner left (offset-delta gaps,
/// fewer records than the offset span, empty batches), the checks of a stored batch; the CRC
/// is verified either way. No size limit: the leader accepted the batch, and a
/// `max.message.bytes` lowered since must not stop its replication for good (Kafka's
/// `appendAsFollower`, `ignoreRecordSize = true`: "the record is already accepted by
/// leader").
fn validate_replicated(one: &[u8]) -> Result<BatchInfo, StorageError> {
    match batch::validate_batch(one, u32::MAX) {
        Ok(info) => Ok(info),
        Err(e) => crate::cleaner::records::check_stored(one).map_err(|_| e),
    }
}

/// A follower's batches as the leader stamped them: their offsets only increase from the log
/// end (`log_end`): a batch may start past it (a compacted leader's log has offset gaps,
/// Kafka's follower appends them as they are) but never below; metadata comes from their
/// headers, bytes stay unchanged.
pub(crate) fn as_stamped(
    infos: &[BatchInfo],
    log_end: i64,
    log_start: i64,
) -> Result<BatchMetas, StorageError> {
    let mut metas = BatchMetas::with_capacity(infos.len());
    let mut next = log_end;
    for info in infos {
        let header = &info.header;
        if header.base_offset < next || header.last_offset() < header.base_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: header.base_offset,
                log_start,
                log_end: next,
            });
        }
        // LogAppendTime batches were indexed by the leader at their first record.
        let delta = if header.is_log_append_time() {
            0
        } else {
            info.max_timestamp_delta
        };
        metas.push(BatchMeta::new(header, delta));
        next = header.last_offset() + 1;
    }
    Ok(metas)
}

pub(crate) fn rewrite(
    buf: &mut AppendBytes,
    infos: &[BatchInfo],
    base_offset: i64,
    cfg: &LogConfig,
    opts: AppendOptions,
) -> BatchMetas {
    let mut metas = BatchMetas::with_capacity(infos.len());
    let mut infos_left = infos.iter();
    let mut next = base_offset;
    buf.stamp_each(infos.iter().map(|i| i.size), |header, rest| {
        let Some(info) = infos_left.next() else {
            return;
        };
        batch::set_base_offset(header, next);
        batch::set_leader_epoch(header, opts.leader_epoch);
        let mut parsed = info.header.clone();
        parsed.base_offset = next;
        let mut max_ts_delta = info.max_timestamp_delta;
        if cfg.timestamp_type == TimestampType::LogAppendTime {
            batch::stamp_log_append_time(header, rest, opts.now_ms);
            parsed.max_timestamp = opts.now_ms;
            max_ts_delta = 0;
        } else {
            batch::stamp_create_time_max(header, rest, info.max_timestamp);
            parsed.max_timestamp = info.max_timestamp;
        }
        metas.push(BatchMeta::new(&parsed, max_ts_delta));
        next = parsed.last_offset() + 1;
    });
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
        let held = buf.clone().freeze();
        let (shared, _) = AppendBytes::from_received(held.clone(), &infos);
        assert!(matches!(shared, AppendBytes::Shared { .. }));
        check_before_write(&shared, &infos, &metas, END, 10, 500, Stamp::Leader);
        let owned = AppendBytes::Owned(buf);
        check_before_write(&owned, &infos, &metas, END, 10, 500, Stamp::Leader);
    }

    /// Each broken case runs in a child process (the check ends the process): a record
    /// byte changed after the CRC was set, a base offset that does not continue the log, a
    /// write position that is not the segment's end.
    #[test]
    fn broken_appends_stop_the_process() {
        if let Ok(case) = std::env::var(CHILD_ENV) {
            let (mut buf, infos, metas) = two_batches(10);
            if case.ends_with("crc") {
                // A rewrite that changed a CRC-covered byte and the CRC field wrongly.
                let last = buf.len() - 1;
                buf[last] ^= 0x40;
                let second = metas[0].size as usize;
                buf[second + 17] ^= 0x01;
            }
            let held = buf.freeze();
            let buf = match case.as_str() {
                // Written from a buffer others hold: the header copied, the rest as received.
                "shared-crc" => AppendBytes::from_received(held.clone(), &infos).0,
                _ => AppendBytes::Owned(BytesMut::from(&held[..])),
            };
            assert_eq!(
                matches!(buf, AppendBytes::Shared { .. }),
                case == "shared-crc"
            );
            match case.as_str() {
                "offset" => check_before_write(&buf, &infos, &metas, END, 11, 500, Stamp::Leader),
                "position" => check_before_write(&buf, &infos, &metas, END, 10, 499, Stamp::Leader),
                _ => check_before_write(&buf, &infos, &metas, END, 10, 500, Stamp::Leader),
            }
            std::process::exit(0);
        }
        for (case, says) in [
            ("crc", "a matching CRC"),
            ("shared-crc", "a matching CRC"),
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
