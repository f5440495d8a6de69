//! Opening a partition directory: list segments, read the checkpoint, verify what may be
//! damaged and rebuild what is missing.
//!
//! Segments wholly below the recovery point were fsynced (data and indexes) when they were
//! sealed: they are trusted and their indexes load lazily; only their last time index entry
//! is read now (largest timestamp, for retention and ListOffsets). After an unclean
//! shutdown every segment from the one holding the recovery point on is scanned batch by
//! batch; the first damage truncates the log there (later segments are dropped) with a
//! warning naming the offset, position and bytes cut. After a clean shutdown only the
//! active segment's tail after its last index entry is verified. Everything done is recorded
//! in a `RecoveryReport` as well as logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::batch::{BatchHeader, BATCH_HEADER_LEN};
use crate::checkpoint::{self, Checkpoint};
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::index::Tracker;
use crate::log::Log;
use crate::ops::remove_segment_files;
use crate::recovery::{
    self, IndexRebuild, RecoveryReport, RemovedSegment, ScanOutcome, Truncation,
};
use crate::segment::{HeaderReader, Segment};
use crate::state::State;
use crate::Offset;

/// Suffixes of files we may find in a partition directory.
const LOG_SUFFIX: &str = ".log";
const TEMP_SUFFIX: &str = ".tmp";

/// How `Log::open_with` treats the clean-shutdown flag of the partition checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// The caller knows the previous process closed every log of the data directory (Kafka's
    /// `.kafka_cleanshutdown` file); when false, a checkpoint's clean flag is ignored and the
    /// log is recovered from its recovery point.
    pub previous_shutdown_clean: bool,
    /// Rewrite the checkpoint at open with the clean flag cleared (temp file, fsync, rename,
    /// directory fsync), so a crash from here on is recovered. A caller that removes its own
    /// data-directory clean-shutdown marker before opening logs does not need it, and saves
    /// two fsyncs per partition at start.
    pub mark_unclean_on_open: bool,
}

impl Default for OpenOptions {
    /// Standalone use: the checkpoint's own clean flag is trusted and cleared at open.
    fn default() -> Self {
        Self {
            previous_shutdown_clean: true,
            mark_unclean_on_open: true,
        }
    }
}

impl Log {
    /// Opens (or creates) the partition directory, recovering as needed (see recovery docs).
    pub async fn open(dir: PathBuf, config: LogConfig) -> Result<Log, StorageError> {
        Self::open_with(dir, config, OpenOptions::default()).await
    }

    /// `open` for a caller that tracks clean shutdown for a whole data directory (see
    /// [`OpenOptions`]).
    pub async fn open_with(
        dir: PathBuf,
        config: LogConfig,
        options: OpenOptions,
    ) -> Result<Log, StorageError> {
        crate::fault::arm();
        open(dir, config, options).await
    }
}

pub(crate) async fn open(
    dir: PathBuf,
    config: LogConfig,
    options: OpenOptions,
) -> Result<Log, StorageError> {
    compio::fs::create_dir_all(&dir).await?;
    // Finish (or undo) a cleaned-segment swap a crash interrupted, before listing segments.
    crate::cleaner::swap::recover_dir(&dir).await?;
    let bases = list_segments(&dir).await?;
    let mut report = RecoveryReport::default();
    let cp = match checkpoint::read(&dir).await {
        Ok(cp) => cp,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "checkpoint unusable; recovering all segments");
            None
        }
    };
    let on_disk = cp;
    let cp = cp.map(|mut cp| {
        cp.clean_shutdown &= options.previous_shutdown_clean;
        cp
    });
    let mut segments: BTreeMap<i64, Rc<Segment>> = BTreeMap::new();
    for &base in &bases {
        segments.insert(base, Rc::new(Segment::open(&dir, base).await?));
    }
    let first_base = bases.first().copied();
    report.checkpoint_missing = cp.is_none() && first_base.is_some();
    let cp = cp.unwrap_or(Checkpoint {
        log_start_offset: first_base.unwrap_or(0),
        recovery_point: first_base.unwrap_or(0),
        clean_shutdown: false,
    });
    if segments.is_empty() {
        let base = cp.log_start_offset.max(0);
        segments.insert(base, Rc::new(Segment::create(&dir, base, 0).await?));
        crate::io::sync_dir(&dir).await?;
    }
    report.clean_shutdown = cp.clean_shutdown;
    recover(&dir, &mut segments, &cp, &config, &mut report).await?;
    let active = segments
        .values()
        .next_back()
        .cloned()
        .ok_or_else(|| StorageError::CorruptState("no segment after recovery".into()))?;
    active.log.pin().await?;
    // The active segment's index files are opened on its first index write.
    let log_end = active.next_offset.get();
    let first = segments.keys().next().copied().unwrap_or(log_end);
    let log_start = cp.log_start_offset.max(first).min(log_end);
    let mut state = State {
        segments,
        log_start,
        log_end,
        durable_end: log_end,
        recovery_point: log_end,
        max_ts: None,
        appended_messages_total: 0,
        flushed_messages_total: 0,
        oldest_unflushed_ms: None,
        last_now_ms: 0,
        generation: 0,
        closed: false,
        appends_in_flight: 0,
    };
    state.recompute_max_ts();
    // Files recovery rewrote are not fsynced yet: then `close` must not skip its work.
    let repaired = !report.scanned_segments.is_empty()
        || report.truncated.is_some()
        || !report.removed_segments.is_empty()
        || !report.rebuilt_indexes.is_empty();
    let on_disk = on_disk.filter(|_| !repaired);
    if !options.mark_unclean_on_open {
        // The caller's data-directory marker is already gone: a crash from here on is
        // recovered whatever this checkpoint says.
        return Ok(Log::from_parts(dir, config, state, report, on_disk, true));
    }
    // From here on a crash is an unclean shutdown.
    let cp = Checkpoint {
        log_start_offset: log_start,
        recovery_point: log_end,
        clean_shutdown: false,
    };
    checkpoint::write(&dir, &cp).await?;
    Ok(Log::from_parts(dir, config, state, report, Some(cp), false))
}

/// Base offsets of the `.log` files; removes stray temp files and orphan indexes.
async fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    // Listing a directory has no io_uring op; this runs once per partition open.
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(LOG_SUFFIX) {
            match parse_stem(stem) {
                Some(base) => bases.push(base),
                None => {
                    tracing::warn!(dir = %dir.display(), file = %name, "ignoring unexpected file")
                }
            }
        } else {
            others.push(name);
        }
    }
    bases.sort_unstable();
    for name in others {
        let orphan_index = [".index", ".timeindex", ".txnindex"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .and_then(parse_stem)
                .is_some_and(|b| bases.binary_search(&b).is_err())
        });
        if name.ends_with(TEMP_SUFFIX) || orphan_index {
            tracing::warn!(dir = %dir.display(), file = %name, "removing leftover file");
            compio::fs::remove_file(dir.join(&name)).await?;
        }
    }
    Ok(bases)
}

fn parse_stem(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

async fn recover(
    dir: &Path,
    segments: &mut BTreeMap<i64, Rc<Segment>>,
    cp: &Checkpoint,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    let bases: Vec<i64> = segments.keys().copied().collect();
    let last = bases.len() - 1;
    // Index of the first segment that must be scanned in full.
    let scan_from = if cp.clean_shutdown {
        bases.len()
    } else {
        bases
            .iter()
            .rposition(|&b| b <= cp.recovery_point)
            .unwrap_or(0)
    };
    for (i, &base) in bases.iter().enumerate() {
        let Some(seg) = segments.get(&base).cloned() else {
            continue;
        };
        if i >= scan_from {
            let next_base = bases.get(i + 1).copied();
            let damaged = full_scan(&seg, config, report, next_base).await?;
            if damaged || (seg.size.get() == 0 && i != last) {
                if !damaged {
                    report.removed_segments.push(RemovedSegment {
                        segment: Offset(base),
                        bytes: 0,
                        reason: "empty".into(),
                    });
                    remove_segment_files(&seg).await?;
                    segments.remove(&base);
                    continue;
                }
                drop_after(segments, base, dir, report).await?;
                return Ok(());
            }
        } else if i == last {
            trusted_active(&seg, config, report).await?;
        } else {
            let next = bases.get(i + 1).copied().unwrap_or(base);
            seg.next_offset.set(next);
            verify_sealed_end(&seg, report).await?;
            match seg.read_max_timestamp().await {
                Ok(m) => seg.max_ts.set(m),
                Err(why) => {
                    tracing::warn!(segment = base, %why, "time index unusable; rebuilding");
                    let rebuilt = seg.ensure_indexes(config.index_interval_bytes).await?;
                    report.rebuilt_indexes.push(IndexRebuild {
                        segment: Offset(base),
                        reason: rebuilt.unwrap_or(why),
                    });
                    let m = seg
                        .indexes
                        .borrow()
                        .as_ref()
                        .and_then(|i| i.times.last().copied());
                    seg.max_ts.set(m.map(|(ts, rel)| crate::TimestampOffset {
                        timestamp_ms: ts,
                        offset: crate::Offset(base + i64::from(rel)),
                    }));
                }
            }
        }
    }
    Ok(())
}

/// A sealed segment is trusted, but its size must agree with its offset index: the batches
/// from the last index entry on must end exactly at the end of the file. When they do not
/// (a torn or truncated file), the damage is logged with its range and reported, and the
/// segment is served up to its last whole batch; the file itself is left as found (Kafka
/// never rewrites a sealed segment either). Costs one small index read and a header walk
/// of at most about `index.interval.bytes`.
async fn verify_sealed_end(seg: &Segment, report: &mut RecoveryReport) -> Result<(), StorageError> {
    let size = seg.size.get();
    let start = seg.last_index_position().await;
    // This check logs what it finds itself, with the offsets lost.
    seg.damage_logged.set(true);
    let mut reader = HeaderReader::new(seg, size);
    let mut pos = start;
    let mut last_offset = None;
    let problem = loop {
        match reader.header_at(pos).await {
            Ok(Some(h)) => {
                last_offset = Some(h.last_offset());
                pos += h.total_size() as u64;
            }
            Ok(None) if pos == size => break None,
            Ok(None) => break Some("torn batch at the end of the file".to_owned()),
            Err(StorageError::DamagedSegment { reason, .. }) => break Some(reason),
            Err(e) => return Err(e),
        }
    };
    let Some(reason) = problem else {
        seg.damage_logged.set(false);
        return Ok(());
    };
    // The damaged batch's own header names its first offset when it is still readable.
    let damaged_base = match seg.log.get().await?.read_exact(pos, BATCH_HEADER_LEN).await {
        Ok(bytes) => BatchHeader::parse(&bytes).ok().map(|h| h.base_offset),
        Err(_) => None,
    };
    let first_lost = damaged_base
        .filter(|&b| b >= seg.base && b < seg.next_offset.get())
        .or(last_offset.map(|o| o + 1))
        .unwrap_or(seg.base);
    tracing::warn!(
        file = %crate::segment::log_path(&seg.dir, seg.base).display(),
        position = pos,
        bytes = size - pos,
        offsets = %format!("{first_lost}..{}", seg.next_offset.get()),
        %reason,
        "sealed segment does not end where its index says; serving it up to its last whole batch"
    );
    report.damaged_segments.push(Truncation {
        segment: Offset(seg.base),
        offset: Offset(first_lost),
        position: pos,
        bytes: size - pos,
        reason,
    });
    seg.size.set(pos);
    Ok(())
}

/// Removes every segment after `base` (they follow damaged data).
async fn drop_after(
    segments: &mut BTreeMap<i64, Rc<Segment>>,
    base: i64,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    let later: Vec<i64> = segments.range(base + 1..).map(|(b, _)| *b).collect();
    for b in later {
        if let Some(seg) = segments.remove(&b) {
            tracing::warn!(dir = %dir.display(), segment = b, bytes = seg.size.get(),
                "removing segment after damaged data");
            report.removed_segments.push(RemovedSegment {
                segment: Offset(b),
                bytes: seg.size.get(),
                reason: "after damaged data".into(),
            });
            remove_segment_files(&seg).await?;
        }
    }
    Ok(())
}

/// Verifies a whole segment, truncating a damaged tail; returns whether it was damaged.
/// `next_base`: the next segment's base offset, where one follows.
async fn full_scan(
    seg: &Segment,
    config: &LogConfig,
    report: &mut RecoveryReport,
    next_base: Option<i64>,
) -> Result<bool, StorageError> {
    let size = seg.size.get();
    let fd = seg.log.get().await?;
    let mut scan = recovery::scan(&fd, seg.base, 0, size, config.index_interval_bytes).await?;
    // A segment scanned here may be a sealed one past the recovery point (a crash before its
    // seal completed): its time index must end with its largest timestamp, as a seal leaves it.
    scan.add_final_time_entry(seg.base);
    report.scanned_segments.push(Offset(seg.base));
    let damaged = apply_scan(seg, &scan, size, next_base, report).await?;
    *seg.indexes.borrow_mut() = Some(scan.indexes);
    seg.write_index_files().await?;
    fd.sync(false).await?;
    Ok(damaged)
}

/// Installs scan results on `seg`; truncates the file after the last valid batch. A tail of
/// zeros is the segment's end (zero-ahead), unless the segment has a successor that does
/// not start where the batches end (then offsets are missing: damage).
async fn apply_scan(
    seg: &Segment,
    scan: &ScanOutcome,
    size: u64,
    next_base: Option<i64>,
    report: &mut RecoveryReport,
) -> Result<bool, StorageError> {
    let next_offset = scan.next_offset.unwrap_or(seg.base);
    let zero_end = scan.zero_tail_bytes > 0
        && scan.valid_size + scan.zero_tail_bytes == size
        && next_base.is_none_or(|b| b == next_offset);
    if zero_end {
        let cut = zero_tail(seg, next_offset, scan.valid_size, size - scan.valid_size);
        report.zero_tails.push(cut);
        seg.log.get().await?.truncate(scan.valid_size).await?;
    }
    let damaged = scan.valid_size < size && !zero_end;
    if damaged {
        report.truncated = Some(Truncation {
            segment: Offset(seg.base),
            offset: Offset(scan.next_offset.unwrap_or(seg.base)),
            position: scan.valid_size,
            bytes: size - scan.valid_size,
            reason: scan.problem.clone().unwrap_or_else(|| match next_base {
                Some(b) if scan.zero_tail_bytes > 0 => {
                    format!("zeros where offsets {next_offset}..{b} should be")
                }
                _ => "unknown".into(),
            }),
        });
        tracing::warn!(
            segment = seg.base,
            file = %crate::segment::log_path(&seg.dir, seg.base).display(),
            offset = scan.next_offset.unwrap_or(seg.base),
            position = scan.valid_size,
            bytes = size - scan.valid_size,
            problem = scan.problem.as_deref().unwrap_or("unknown"),
            "truncating damaged log tail"
        );
        seg.log.get().await?.truncate(scan.valid_size).await?;
    }
    seg.size.set(scan.valid_size);
    seg.next_offset.set(scan.next_offset.unwrap_or(seg.base));
    seg.max_ts.set(scan.tracker.max_ts);
    seg.tracker.set(scan.tracker);
    Ok(damaged)
}

/// Clean shutdown: load the active segment's indexes and verify only the tail after the
/// last index entry (falling back to a full scan if the index does not match the log).
async fn trusted_active(
    seg: &Segment,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    seg.next_offset.set(i64::MAX);
    if let Some(reason) = seg.ensure_indexes(config.index_interval_bytes).await? {
        report.rebuilt_indexes.push(IndexRebuild {
            segment: Offset(seg.base),
            reason,
        });
    }
    let (start, last_entry, tracker) = {
        let idx = seg.indexes.borrow();
        let idx = idx.as_ref();
        let last_off = idx.and_then(|i| i.offsets.last().copied());
        let last_time = idx.and_then(|i| i.times.last().copied());
        let max_ts = last_time.map(|(ts, rel)| crate::TimestampOffset {
            timestamp_ms: ts,
            offset: crate::Offset(seg.base + i64::from(rel)),
        });
        let tracker = Tracker {
            bytes_since_index: 0,
            max_ts,
            last_time_entry_ts: last_time.map(|(ts, _)| ts),
            first_ts: idx.and_then(|i| i.times.first()).map(|&(ts, _)| ts),
        };
        (last_off.map_or(0, |(_, p)| u64::from(p)), last_off, tracker)
    };
    let size = seg.size.get();
    let scan = recovery::scan_from(
        &seg.log.get().await?,
        seg.base,
        start,
        size,
        config.index_interval_bytes,
        tracker,
    )
    .await?;
    let entry_matches =
        last_entry.is_none_or(|(rel, _)| scan.first_last_offset == Some(seg.base + i64::from(rel)));
    if !entry_matches {
        tracing::warn!(
            segment = seg.base,
            "index does not match the log; rescanning segment"
        );
        seg.indexes.borrow_mut().take();
        report.rebuilt_indexes.push(IndexRebuild {
            segment: Offset(seg.base),
            reason: "index does not match the log".into(),
        });
        full_scan(seg, config, report, None).await?;
        return Ok(());
    }
    apply_scan(seg, &scan, size, None, report).await?;
    if let Some(idx) = seg.indexes.borrow_mut().as_mut() {
        idx.offsets.extend_from_slice(&scan.indexes.offsets);
        idx.times.extend_from_slice(&scan.indexes.times);
    }
    if !scan.indexes.offsets.is_empty() || !scan.indexes.times.is_empty() || scan.valid_size < size
    {
        seg.write_index_files().await?;
    }
    Ok(())
}

/// Logs and describes a cut tail of zeros (`apply_scan`).
fn zero_tail(seg: &Segment, next_offset: i64, position: u64, bytes: u64) -> Truncation {
    tracing::info!(
        segment = seg.base,
        file = %crate::segment::log_path(&seg.dir, seg.base).display(),
        position,
        bytes,
        "cutting zeros past the last batch (zero-ahead)"
    );
    Truncation {
        segment: Offset(seg.base),
        offset: Offset(next_offset),
        position,
        bytes,
        reason: "zeros past the last batch".into(),
    }
}
