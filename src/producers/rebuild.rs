//! Rebuilds a partition's producer state when its log opens, as Kafka's
//! `UnifiedLog.rebuildProducerState`: from the newest producer-state snapshot (`snapshot`)
//! inside the log, then the 61-byte batch headers from the snapshot's offset to the log end
//! (from the log start when there is no snapshot: open transactions may begin in any
//! segment, and the LSO depends on them). Only control batches (transaction markers) are read
//! past their header. The aborts the replay sees are kept for the partition's
//! aborted-transaction index (`ProducerStates::take_recovered_aborts`).
//!
//! Invariants: runs after `storage::Log::open` (torn tails are already truncated); never reads
//! past a segment's end or past the log end offset; a header that does not parse ends that
//! segment's scan (the log stays the truth); reads are chunked, so memory is bounded by
//! `SCAN_CHUNK_BYTES` (a control batch by `CONTROL_BATCH_BYTES_MAX`) whatever the segment size.

use std::path::{Path, PathBuf};

use compio::io::AsyncReadAt;
use compio::BufResult;
use storage::batch::BATCH_HEADER_LEN;
use storage::BatchHeader;

use super::state::{BatchIdent, BatchMeta, ProducerId, ProducerStates, StateLimits};
use super::txn::EndTxnMarker;

/// Bytes read per I/O while walking headers (small batches: many headers per read).
const SCAN_CHUNK_BYTES: usize = 64 * 1024;
/// Segment file names: 20-digit base offset + ".log".
const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_DIGITS: usize = 20;
/// A control batch holds one small record; a larger one is not a marker this broker wrote.
const CONTROL_BATCH_BYTES_MAX: usize = 64 * 1024;

/// What to scan.
#[derive(Debug, Clone, Copy)]
pub struct RebuildLimits {
    pub state: StateLimits,
    /// With no snapshot after a clean shutdown: the previous segment is read too when at
    /// most this size (else only the active one), as Kafka's upgrade path.
    pub previous_segment_bytes_max: u64,
}

/// Loads the newest snapshot and replays the log past it; returns the producer state.
pub async fn rebuild(log: &storage::Log, limits: RebuildLimits, now_ms: i64) -> ProducerStates {
    let log_end = log.log_end_offset().0;
    let log_start = log.log_start_offset().0;
    let snapshot = super::snapshot::load_latest(log.dir(), log_start, log_end, limits.state);
    let segments = match segment_files(log.dir()) {
        Ok(segments) => segments,
        Err(e) => {
            tracing::warn!(dir = %log.dir().display(), error = %e, "producer state: cannot list segments");
            return snapshot.map_or_else(|| ProducerStates::new(limits.state), |(_, s)| s);
        }
    };
    let (mut states, from) = match snapshot {
        Some((offset, states)) => (states, offset),
        // Kafka's upgrade path: after a clean shutdown with no snapshot (a log written before
        // snapshots existed; a clean close snapshots any producer) only the newest segments
        // are read: the active one, and the previous one when at most
        // `previous_segment_bytes_max`. After a crash, the whole log.
        None if log.recovery_report().clean_shutdown => (
            ProducerStates::new(limits.state),
            newest_segments_start(&segments, limits.previous_segment_bytes_max, log_start),
        ),
        None => (ProducerStates::new(limits.state), log_start),
    };
    // The segment holding `from` and every later one.
    let first = segments.iter().rposition(|s| s.0 <= from).unwrap_or(0);
    let range = Range {
        from: from.max(log_start),
        log_end,
    };
    for (base, path, _) in segments.get(first..).unwrap_or(&[]) {
        // Nothing at or past the log end is part of the log.
        if *base >= log_end {
            continue;
        }
        if let Err(e) = scan_segment(path, range, &mut states, now_ms).await {
            tracing::warn!(segment = %path.display(), error = %e, "producer state: scan stopped");
        }
    }
    tracing::debug!(dir = %log.dir().display(), producers = states.len(), from, "producer state rebuilt");
    states
}

/// Base offset of the previous segment when it is at most `previous_max` bytes, else of the
/// active one (the log start when there are no segments).
fn newest_segments_start(
    segments: &[(i64, PathBuf, u64)],
    previous_max: u64,
    log_start: i64,
) -> i64 {
    let mut newest = segments.iter().rev();
    let active = newest.next();
    match (newest.next(), active) {
        (Some(previous), _) if previous.2 <= previous_max => previous.0,
        (_, Some(active)) => active.0,
        _ => log_start,
    }
}

/// The offsets replayed: [from, log_end).
#[derive(Debug, Clone, Copy)]
struct Range {
    from: i64,
    log_end: i64,
}

/// (base offset, path, size) of every segment file, by base offset.
fn segment_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if stem.len() != SEGMENT_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        out.push((base, entry.path(), entry.metadata()?.len()));
    }
    out.sort_by_key(|(base, _, _)| *base);
    Ok(out)
}

/// Walks one segment's headers, replaying every batch with a producer id inside the range.
async fn scan_segment(
    path: &Path,
    range: Range,
    states: &mut ProducerStates,
    now_ms: i64,
) -> std::io::Result<()> {
    let file = compio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let mut chunk: Vec<u8> = Vec::new();
    let mut chunk_at: u64 = 0;
    let mut pos: u64 = 0;
    while pos + BATCH_HEADER_LEN as u64 <= size {
        let in_chunk =
            pos >= chunk_at && pos + BATCH_HEADER_LEN as u64 <= chunk_at + chunk.len() as u64;
        if !in_chunk {
            let BufResult(res, buf) = file
                .read_at(Vec::with_capacity(SCAN_CHUNK_BYTES), pos)
                .await;
            res?;
            chunk = buf;
            chunk_at = pos;
            if chunk.len() < BATCH_HEADER_LEN {
                return Ok(());
            }
        }
        let from = usize::try_from(pos - chunk_at).unwrap_or(usize::MAX);
        let Some(bytes) = chunk.get(from..) else {
            return Ok(());
        };
        let header = match BatchHeader::parse(bytes) {
            Ok(header) => header,
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        };
        if header.base_offset >= range.log_end {
            return Ok(());
        }
        if header.base_offset >= range.from {
            if header.is_control() {
                let size = header.total_size();
                let in_chunk = pos + size as u64 <= chunk_at + chunk.len() as u64;
                if !in_chunk && size <= CONTROL_BATCH_BYTES_MAX {
                    let BufResult(res, buf) = file.read_at(Vec::with_capacity(size), pos).await;
                    res?;
                    chunk = buf;
                    chunk_at = pos;
                }
                let from = usize::try_from(pos - chunk_at).unwrap_or(usize::MAX);
                let batch = chunk.get(from..from.saturating_add(size));
                replay_marker(states, &header, batch, now_ms);
            } else {
                replay(states, &header, now_ms);
            }
        }
        pos += header.total_size() as u64;
    }
    Ok(())
}

/// A transaction marker: closes its producer's transaction (an unreadable one is skipped: the
/// transaction then stays open and holds the LSO, the safe side).
fn replay_marker(
    states: &mut ProducerStates,
    header: &BatchHeader,
    batch: Option<&[u8]>,
    now_ms: i64,
) {
    let Some(marker) = batch.and_then(EndTxnMarker::parse) else {
        tracing::warn!(
            offset = header.base_offset,
            "producer state: unreadable control batch skipped"
        );
        return;
    };
    states.replay_marker(
        ProducerId(header.producer_id),
        header.producer_epoch,
        marker,
        header.base_offset,
        now_ms,
    );
}

fn replay(states: &mut ProducerStates, header: &BatchHeader, now_ms: i64) {
    let Some(ident) = BatchIdent::from_header(header) else {
        return;
    };
    let placed = BatchMeta {
        first_seq: ident.first_seq,
        last_seq: ident.last_seq(),
        base_offset: header.base_offset,
        last_offset: header.last_offset(),
        log_append_time_ms: if header.is_log_append_time() {
            header.max_timestamp
        } else {
            -1
        },
    };
    // Dated at open, not by the batch timestamp: that is the client's CreateTime, which may be
    // arbitrarily old, and live appends are dated by the broker clock too. A rebuilt producer
    // so lives at most one expiry period longer than it would have without the restart.
    states.commit(&ident, placed, now_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producers::state::{Plan, ProducerId};

    const LIMITS: RebuildLimits = RebuildLimits {
        state: StateLimits {
            max_producers: 100,
            expiration_ms: 86_400_000,
        },
        previous_segment_bytes_max: 1 << 20,
    };

    fn batch(producer: i64, seq: i32, records: usize) -> bytes::BytesMut {
        let mut b = storage::BatchBuilder::new(1_000).producer(producer, 0, seq);
        for _ in 0..records {
            b = b.record(None, Some(b"value"), &[]);
        }
        b.build()
    }

    fn ident(producer: i64, seq: i32, records: i32) -> BatchIdent {
        BatchIdent {
            producer: ProducerId(producer),
            epoch: 0,
            first_seq: seq,
            offset_delta: records - 1,
            transactional: false,
        }
    }

    #[test]
    fn reopened_log_remembers_the_last_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let opts = || storage::AppendOptions {
                    leader_epoch: 0,
                    now_ms: 5_000,
                };
                let log = storage::Log::open(path.clone(), storage::LogConfig::default())
                    .await
                    .unwrap();
                log.append(batch(-1, -1, 2), opts()).await.unwrap();
                for seq in [0, 4, 8] {
                    log.append(batch(7, seq, 4), opts()).await.unwrap();
                }
                log.close().await.unwrap();
                let log = storage::Log::open(path, storage::LogConfig::default())
                    .await
                    .unwrap();
                let states = rebuild(&log, LIMITS, 10_000).await;
                assert_eq!(states.last_sequence(ProducerId(7)), Some((0, 11)));
                for (seq, base) in [(0, 2), (4, 6), (8, 10)] {
                    let Ok(Plan::Duplicate(meta)) = states.plan(&[ident(7, seq, 4)], 10_000) else {
                        panic!("batch at sequence {seq} is a duplicate after reopening");
                    };
                    assert_eq!(meta.base_offset, base);
                }
                assert_eq!(states.plan(&[ident(7, 12, 1)], 10_000), Ok(Plan::Append));
                log.close().await.unwrap();
            });
    }

    /// Without a snapshot every segment is replayed (a transaction opened in the first segment
    /// still holds the LSO, and its abort marker is recovered for the index); with one, only
    /// the batches from its offset on are.
    #[test]
    fn the_log_is_replayed_from_the_snapshot_or_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let opts = storage::AppendOptions {
                    leader_epoch: 0,
                    now_ms: 5_000,
                };
                let txn = |producer, seq| {
                    let mut b = storage::BatchBuilder::new(1_000)
                        .producer(producer, 0, seq)
                        .transactional();
                    for _ in 0..4 {
                        b = b.record(None, Some(b"value"), &[]);
                    }
                    b.build()
                };
                let size = txn(7, 0).len() as u64;
                let config = storage::LogConfig {
                    segment_bytes_max: 2 * size,
                    ..storage::LogConfig::default()
                };
                let log = storage::Log::open(path.clone(), config.clone())
                    .await
                    .unwrap();
                log.append(txn(7, 0), opts).await.unwrap(); // 0..=3: open until its marker
                log.append(txn(8, 0), opts).await.unwrap(); // 4..=7
                for seq in [0, 4, 8] {
                    log.append(batch(9, seq, 4), opts).await.unwrap(); // 8..=19
                }
                let abort = EndTxnMarker {
                    commit: false,
                    coordinator_epoch: 3,
                };
                log.append_control(abort.batch(8, 0, 5_000), opts)
                    .await
                    .unwrap(); // 20
                assert!(log.segment_count() >= 3);
                let mut all = rebuild(&log, LIMITS, 10_000).await;
                assert_eq!(all.first_unstable_offset(), Some(0));
                assert_eq!(all.last_sequence(ProducerId(9)), Some((0, 11)));
                let aborts = all.take_recovered_aborts();
                assert_eq!(aborts.len(), 1);
                assert_eq!((aborts[0].0.first_offset, aborts[0].0.last_offset), (4, 20));
                assert_eq!(aborts[0].1, 0, "producer 7 still holds the LSO");
                // A snapshot at 20 (taken before the marker): only the marker is replayed.
                let mut before = ProducerStates::new(LIMITS.state);
                before.commit(
                    &BatchIdent {
                        transactional: true,
                        ..ident(8, 0, 4)
                    },
                    BatchMeta {
                        first_seq: 0,
                        last_seq: 3,
                        base_offset: 4,
                        last_offset: 7,
                        log_append_time_ms: -1,
                    },
                    5_000,
                );
                super::super::snapshot::write(log.dir(), 20, &before)
                    .await
                    .unwrap();
                let mut from_snapshot = rebuild(&log, LIMITS, 10_000).await;
                assert_eq!(from_snapshot.first_unstable_offset(), None);
                assert_eq!(
                    from_snapshot.last_sequence(ProducerId(9)),
                    None,
                    "before 20"
                );
                assert_eq!(from_snapshot.take_recovered_aborts().len(), 1);
                log.close().await.unwrap();
                // Clean shutdown, no snapshot (a log from before snapshots): only the newest
                // segments are read, as Kafka's upgrade path.
                for (_, snapshot) in super::super::snapshot::list(&path).unwrap() {
                    std::fs::remove_file(snapshot).unwrap();
                }
                let log = storage::Log::open(path.clone(), config).await.unwrap();
                assert!(log.recovery_report().clean_shutdown);
                let newest = rebuild(&log, LIMITS, 10_000).await;
                assert_eq!(newest.first_unstable_offset(), None, "segment 0 not read");
                assert_eq!(newest.last_sequence(ProducerId(9)), Some((0, 11)));
                log.close().await.unwrap();
            });
    }
}
