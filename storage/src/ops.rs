//! Log maintenance: timestamp look-ups, retention, DeleteRecords, truncation, close, delete.
//!
//! Every operation that changes the segment set holds `append_lock`, persists the new log
//! start offset / recovery point in the checkpoint *before* unlinking files (a crash in
//! between leaves extra files, never a checkpoint pointing at missing data), and leaves
//! readers holding old segment fds unaffected.

use std::rc::Rc;

use crate::batch::{self, BatchHeader};
use crate::checkpoint;
use crate::error::StorageError;
use crate::inflate;
use crate::log::Log;
use crate::offset::{Offset, TimestampOffset};
use crate::recovery;
use crate::segment::{self, HeaderReader, Segment};

impl Log {
    /// First offset whose record timestamp is >= `timestamp_ms`, with that record's
    /// timestamp (Kafka's `LogSegment.findOffsetByTimestamp`: the first batch whose max
    /// timestamp is >= the target, then its records, decompressed if need be); `None` if
    /// no such record.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        let (segs, log_start, interval, inflated_max) = {
            let st = self.state.borrow();
            if st.closed {
                return Err(StorageError::Closed);
            }
            let segs: Vec<(Rc<Segment>, u64)> = st
                .segments
                .values()
                .map(|s| (s.clone(), s.size.get()))
                .collect();
            let cfg = self.config.borrow();
            (
                segs,
                st.log_start,
                cfg.index_interval_bytes,
                cfg.inflated_batch_bytes_max,
            )
        };
        for (seg, size) in segs {
            if seg.next_offset.get() <= log_start
                || seg
                    .max_ts
                    .get()
                    .is_none_or(|m| m.timestamp_ms < timestamp_ms)
            {
                continue;
            }
            seg.ensure_indexes(interval).await?;
            let found = find_in_segment(&seg, size, timestamp_ms, log_start, inflated_max).await?;
            if let Some(found) = found {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the largest timestamp in the log and the first record
    /// carrying it (Kafka 3.8+ searches the segment for that record, so the answer is exact
    /// for compressed batches too, whatever the index recorded for them).
    pub async fn max_timestamp_record(&self) -> Result<Option<TimestampOffset>, StorageError> {
        let Some(max) = self.max_timestamp() else {
            return Ok(None);
        };
        let found = self.offset_for_timestamp(max.timestamp_ms).await?;
        Ok(Some(
            found
                .filter(|f| f.timestamp_ms == max.timestamp_ms)
                .unwrap_or(max),
        ))
    }

    /// Deletes whole segments (never the active one) older than retention.ms or beyond
    /// retention.bytes, advancing the log start offset; returns how many were deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let _g = self.append_lock.lock().await;
        let cfg = self.config();
        let count = {
            let st = self.state.borrow();
            st.active()?;
            let sealed: Vec<&Rc<Segment>> = st.segments.values().rev().skip(1).rev().collect();
            let by_time = if cfg.retention_ms < 0 {
                0
            } else {
                sealed
                    .iter()
                    .take_while(|s| {
                        let ts = s
                            .max_ts
                            .get()
                            .map(|m| m.timestamp_ms)
                            .filter(|&t| t >= 0)
                            .unwrap_or(s.mtime_ms.get());
                        now_ms.saturating_sub(ts) > cfg.retention_ms
                    })
                    .count()
            };
            let by_size = if cfg.retention_bytes < 0 {
                0
            } else {
                let total: u64 = st.segments.values().map(|s| s.size.get()).sum();
                let mut excess = total as i64 - cfg.retention_bytes;
                sealed
                    .iter()
                    .take_while(|s| {
                        let keep = excess - (s.size.get() as i64) < 0;
                        if !keep {
                            excess -= s.size.get() as i64;
                        }
                        !keep
                    })
                    .count()
            };
            by_time.max(by_size)
        };
        self.delete_leading(count).await?;
        Ok(count)
    }

    /// Removes the first `count` segments (fewer than all), moving the log start offset to
    /// the next segment's base if it was below it.
    async fn delete_leading(&self, count: usize) -> Result<(), StorageError> {
        if count == 0 {
            return Ok(());
        }
        self.await_seal().await?;
        let (victims, cp) = {
            let mut st = self.state.borrow_mut();
            let bases: Vec<i64> = st.segments.keys().copied().collect();
            let Some(&next_base) = bases.get(count) else {
                return Err(StorageError::CorruptState(
                    "retention may not delete the active segment".into(),
                ));
            };
            st.log_start = st.log_start.max(next_base);
            st.recovery_point = st.recovery_point.max(next_base);
            let victims: Vec<Rc<Segment>> = bases
                .iter()
                .take(count)
                .filter_map(|b| st.segments.remove(b))
                .collect();
            st.recompute_max_ts();
            (victims, st_checkpoint(&st))
        };
        self.write_checkpoint(&cp).await?;
        for seg in victims {
            remove_segment_files(&seg).await?;
        }
        Ok(())
    }

    /// DeleteRecords: advances the log start offset to `offset` (<= high watermark) and
    /// deletes segments wholly below it. Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        let _g = self.append_lock.lock().await;
        let count = {
            let mut st = self.state.borrow_mut();
            st.active()?;
            if offset.0 > st.durable_end || offset.0 < 0 {
                return Err(StorageError::OffsetOutOfRange {
                    offset: offset.0,
                    log_start: st.log_start,
                    log_end: st.durable_end,
                });
            }
            if offset.0 <= st.log_start {
                return Ok(Offset(st.log_start));
            }
            st.log_start = offset.0;
            let n = st.segments.len();
            st.segments
                .values()
                .take(n - 1)
                .take_while(|s| s.next_offset.get() <= offset.0)
                .count()
        };
        if count == 0 {
            let cp = st_checkpoint(&self.state.borrow());
            self.write_checkpoint(&cp).await?;
        } else {
            self.delete_leading(count).await?;
        }
        Ok(Offset(self.state.borrow().log_start))
    }

    /// Removes every batch at or after `offset` (a batch holding `offset` goes entirely).
    /// Below the first segment the log is emptied and restarts at `offset`.
    pub async fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        let _g = self.append_lock.lock().await;
        self.await_seal().await?;
        let (first_base, log_start, log_end) = {
            let st = self.state.borrow();
            st.active()?;
            let first = st.segments.keys().next().copied().unwrap_or(st.log_start);
            (first, st.log_start, st.log_end)
        };
        if offset.0 >= log_end {
            // Nothing cut: the zeros past the end stay, known, for the next roll's trim (B24).
            return Ok(());
        }
        // The cut below (or the files' removal) takes the zeros with it.
        self.zero_ahead.forget().await;
        if offset.0 <= first_base || offset.0 < log_start {
            return self.truncate_fully(offset.0).await;
        }
        // The target becomes the active segment: pin its file before it is the last one in
        // the map (an fsync started meanwhile uses the active segment's pinned file).
        let target_seg = {
            let st = self.state.borrow();
            st.segments
                .range(..offset.0)
                .next_back()
                .map(|(_, s)| s.clone())
        };
        if let Some(t) = &target_seg {
            t.log.pin().await?;
        }
        let (target, doomed) = {
            let mut st = self.state.borrow_mut();
            let target_base = target_seg.as_ref().map_or(first_base, |s| s.base);
            let doomed_keys: Vec<i64> = st.segments.range(offset.0..).map(|(b, _)| *b).collect();
            let doomed: Vec<Rc<Segment>> = doomed_keys
                .iter()
                .filter_map(|b| st.segments.remove(b))
                .collect();
            (st.segments.get(&target_base).cloned(), doomed)
        };
        for seg in doomed {
            remove_segment_files(&seg).await?;
        }
        let Some(seg) = target else {
            return self.truncate_fully(offset.0).await;
        };
        let interval = self.config.borrow().index_interval_bytes;
        seg.ensure_indexes(interval).await?;
        let cut = seg.locate(offset.0, seg.size.get()).await?;
        // A batch holding `offset` goes whole (the log then ends at its base); one past it (a
        // follower's log copied from a compacted leader has offset gaps) leaves the log
        // ending at `offset`, so nothing between is skipped when fetching again.
        let (pos, new_end) = match cut {
            Some((pos, h)) => (pos, h.base_offset.min(offset.0)),
            None => (seg.size.get(), seg.next_offset.get()),
        };
        self.cut_segment(&seg, pos).await?;
        let cp = {
            let mut st = self.state.borrow_mut();
            st.log_end = new_end.max(seg.base);
            st.durable_end = st.durable_end.min(st.log_end);
            st.recovery_point = st.recovery_point.min(seg.base);
            st.log_start = st.log_start.min(st.log_end);
            st.reset_durability();
            st.recompute_max_ts();
            st_checkpoint(&st)
        };
        self.write_checkpoint(&cp).await?;
        Ok(())
    }

    /// Truncates `seg`'s file at `pos`, re-derives its indexes and makes it the active one.
    async fn cut_segment(&self, seg: &Segment, pos: u64) -> Result<(), StorageError> {
        let interval = self.config.borrow().index_interval_bytes;
        seg.generation.set(seg.generation.get() + 1);
        seg.log.pin().await?;
        let fd = seg.log.active_fd()?;
        fd.truncate(pos).await?;
        fd.sync(false).await?;
        let scan = recovery::scan(&fd, seg.base, 0, pos, interval).await?;
        seg.size.set(scan.valid_size);
        seg.next_offset.set(scan.next_offset.unwrap_or(seg.base));
        seg.max_ts.set(scan.tracker.max_ts);
        seg.tracker.set(scan.tracker);
        *seg.indexes.borrow_mut() = Some(scan.indexes);
        seg.write_index_files().await?;
        seg.open_index_files(false).await
    }

    /// Empties the log and restarts it at `offset` (Kafka's `truncateFullyAndStartAt`: a
    /// follower whose log ends before the leader's log start).
    pub async fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), StorageError> {
        let _g = self.append_lock.lock().await;
        self.truncate_fully(offset.0).await
    }

    /// Deletes every segment and restarts the log, empty, at `offset`.
    async fn truncate_fully(&self, offset: i64) -> Result<(), StorageError> {
        let offset = offset.max(0);
        self.await_seal().await?;
        self.zero_ahead.forget().await;
        let victims: Vec<Rc<Segment>> = {
            let mut st = self.state.borrow_mut();
            std::mem::take(&mut st.segments).into_values().collect()
        };
        for seg in &victims {
            remove_segment_files(seg).await?;
        }
        let seg = Segment::create(&self.dir, offset, 0).await?;
        crate::io::sync_dir(&self.dir).await?;
        let cp = {
            let mut st = self.state.borrow_mut();
            st.segments.insert(offset, Rc::new(seg));
            st.log_start = offset;
            st.log_end = offset;
            st.durable_end = offset;
            st.recovery_point = offset;
            st.reset_durability();
            st.max_ts = None;
            st_checkpoint(&st)
        };
        self.write_checkpoint(&cp).await?;
        Ok(())
    }

    /// Flushes, seals the active segment's indexes, writes a clean-shutdown checkpoint and
    /// releases the files. Later calls (other than `close`) fail with `Closed`.
    pub async fn close(&self) -> Result<(), StorageError> {
        let _g = self.append_lock.lock().await;
        if self.state.borrow().closed {
            return Ok(());
        }
        self.await_seal().await?;
        let active = self.state.borrow().active()?;
        // The file ends where the log does before the final fdatasync (`prealloc.rs`).
        let trimmed = crate::prealloc::trim(&self.zero_ahead, &active).await?;
        if trimmed || !self.close_is_noop() {
            self.flush().await?;
            self.seal(&active).await?;
            let cp = {
                let mut st = self.state.borrow_mut();
                st.recovery_point = st.log_end;
                let mut cp = st_checkpoint(&st);
                cp.clean_shutdown = true;
                cp
            };
            self.write_checkpoint(&cp).await?;
        }
        let mut st = self.state.borrow_mut();
        st.closed = true;
        st.segments.clear();
        Ok(())
    }

    /// Whether the files already say everything `close` would write, so closing needs no I/O:
    /// nothing unflushed, and either the checkpoint file already holds the clean-shutdown
    /// checkpoint of the current state (the log was opened clean and never changed), or (when
    /// the caller's data-directory marker tracks clean shutdown) the log is one empty segment,
    /// which reopens to the same state with or without a checkpoint.
    /// This is what keeps stopping a broker with thousands of idle partitions fast.
    fn close_is_noop(&self) -> bool {
        let st = self.state.borrow();
        if st.durable_end < st.log_end || self.commit.check().is_err() {
            return false;
        }
        let mut clean = st_checkpoint(&st);
        clean.recovery_point = st.log_end;
        clean.clean_shutdown = true;
        if self.disk_checkpoint.get() == Some(clean) {
            return true;
        }
        if !self.marker_managed {
            return false;
        }
        let mut segments = st.segments.values();
        match (segments.next(), segments.next()) {
            (Some(only), None) => {
                only.size.get() == 0 && only.base == st.log_start && only.base == st.log_end
            }
            _ => false,
        }
    }

    /// Closes the log and removes its directory.
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.close().await?;
        let entries = std::fs::read_dir(&self.dir)?;
        for entry in entries {
            compio::fs::remove_file(entry?.path()).await?;
        }
        compio::fs::remove_dir(&self.dir).await?;
        Ok(())
    }
}

fn st_checkpoint(st: &crate::state::State) -> checkpoint::Checkpoint {
    checkpoint::Checkpoint {
        log_start_offset: st.log_start,
        recovery_point: st.recovery_point,
        clean_shutdown: false,
    }
}

/// Unlinks a segment's files (missing index files are fine).
pub(crate) async fn remove_segment_files(seg: &Segment) -> Result<(), StorageError> {
    seg.index_fds.borrow_mut().take();
    for path in [
        segment::log_path(&seg.dir, seg.base),
        segment::index_path(&seg.dir, seg.base),
        segment::time_index_path(&seg.dir, seg.base),
        segment::txn_index_path(&seg.dir, seg.base),
    ] {
        match compio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Timestamp search inside one segment: time index, then a header scan, then records.
async fn find_in_segment(
    seg: &Segment,
    size: u64,
    timestamp_ms: i64,
    log_start: i64,
    inflated_max: u64,
) -> Result<Option<TimestampOffset>, StorageError> {
    let start_pos = {
        let idx = seg.indexes.borrow();
        let rel = idx
            .as_ref()
            .and_then(|i| i.offset_before_time(timestamp_ms));
        match (idx.as_ref(), rel) {
            (Some(i), Some(rel)) => u64::from(i.position_for(rel)),
            _ => 0,
        }
    };
    let mut reader = HeaderReader::new(seg, size);
    let mut pos = start_pos;
    while let Some(h) = reader.header_at(pos).await? {
        if h.max_timestamp >= timestamp_ms && h.last_offset() >= log_start {
            return record_in_batch(seg, pos, &h, timestamp_ms, log_start, inflated_max)
                .await
                .map(Some);
        }
        pos += h.total_size() as u64;
    }
    Ok(None)
}

/// The first record of the batch at `pos` with timestamp >= `timestamp_ms` and offset >=
/// `log_start`. LogAppendTime batches stamp every record with the batch's max timestamp.
async fn record_in_batch(
    seg: &Segment,
    pos: u64,
    h: &BatchHeader,
    timestamp_ms: i64,
    log_start: i64,
    inflated_max: u64,
) -> Result<TimestampOffset, StorageError> {
    let batch_level = TimestampOffset {
        timestamp_ms: h.max_timestamp,
        offset: Offset(h.base_offset.max(log_start)),
    };
    if h.is_log_append_time() {
        return Ok(batch_level);
    }
    let bytes = seg.log.get().await?.read_exact(pos, h.total_size()).await?;
    crate::read::check_read_crc(seg, pos, h, &bytes)?;
    let wanted =
        |delta: i32, ts: i64| ts >= timestamp_ms && h.base_offset + i64::from(delta) >= log_start;
    let found = if h.is_compressed() {
        // Validated on append; a walk that fails now (a bound lowered since) falls back to
        // the batch-level answer rather than failing the look-up.
        match inflate::find_record(&bytes, h, inflated_max, |r| {
            wanted(r.offset_delta, r.timestamp)
        }) {
            Ok(found) => found.map(|r| (r.offset_delta, r.timestamp)),
            Err(e) => {
                tracing::warn!(segment = seg.base, position = pos, error = %e,
                    "cannot walk a compressed batch for a timestamp look-up");
                None
            }
        }
    } else {
        let mut found = None;
        for rec in batch::records(&bytes)? {
            let rec = rec?;
            let ts = h.base_timestamp.wrapping_add(rec.timestamp_delta);
            if wanted(rec.offset_delta, ts) {
                found = Some((rec.offset_delta, ts));
                break;
            }
        }
        found
    };
    Ok(found.map_or(batch_level, |(delta, ts)| TimestampOffset {
        timestamp_ms: ts,
        offset: Offset(h.base_offset + i64::from(delta)),
    }))
}
