//! Rebuilds a partition's producer state when its log opens, from the 61-byte batch headers of
//! the newest segment (and the one before it when that is at most `previous_segment_bytes_max`):
//! no records are read or decoded. Older producers are not recovered; they are then unknown,
//! and an unknown producer is accepted at any sequence (Kafka 2.5+), so only duplicate detection
//! of retries older than the scanned segments is lost.
//!
//! Invariants: runs after `storage::Log::open` (torn tails are already truncated); never reads
//! past a segment's end or past the log end offset; a header that does not parse ends that
//! segment's scan (the state is best effort, the log stays the truth); reads are chunked, so
//! memory is bounded by `SCAN_CHUNK_BYTES` whatever the segment size.

use std::path::{Path, PathBuf};

use compio::io::AsyncReadAt;
use compio::BufResult;
use storage::batch::BATCH_HEADER_LEN;
use storage::BatchHeader;

use super::state::{BatchIdent, BatchMeta, ProducerStates, StateLimits};

/// Bytes read per I/O while walking headers (small batches: many headers per read).
const SCAN_CHUNK_BYTES: usize = 64 * 1024;
/// Segment file names: 20-digit base offset + ".log".
const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_DIGITS: usize = 20;

/// What to scan.
#[derive(Debug, Clone, Copy)]
pub struct RebuildLimits {
    pub state: StateLimits,
    pub previous_segment_bytes_max: u64,
}

/// Scans the newest segment(s) of `log` and returns the producer state they imply.
pub async fn rebuild(log: &storage::Log, limits: RebuildLimits, now_ms: i64) -> ProducerStates {
    let mut states = ProducerStates::new(limits.state);
    let log_end = log.log_end_offset().0;
    let log_start = log.log_start_offset().0;
    let segments = match segment_files(log.dir()) {
        Ok(segments) => segments,
        Err(e) => {
            tracing::warn!(dir = %log.dir().display(), error = %e, "producer state: cannot list segments");
            return states;
        }
    };
    let mut chosen: Vec<&(i64, PathBuf, u64)> = segments.iter().rev().take(2).collect();
    chosen.reverse();
    if chosen.len() == 2
        && chosen
            .first()
            .is_some_and(|s| s.2 > limits.previous_segment_bytes_max)
    {
        chosen.remove(0);
    }
    for (base, path, _) in chosen {
        // Nothing at or past the log end is part of the log.
        if *base >= log_end {
            continue;
        }
        if let Err(e) = scan_segment(path, log_start, log_end, &mut states, now_ms).await {
            tracing::warn!(segment = %path.display(), error = %e, "producer state: scan stopped");
        }
    }
    tracing::debug!(dir = %log.dir().display(), producers = states.len(), "producer state rebuilt");
    states
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

/// Walks one segment's headers, replaying every idempotent batch inside [log_start, log_end).
async fn scan_segment(
    path: &Path,
    log_start: i64,
    log_end: i64,
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
        if header.base_offset >= log_end {
            return Ok(());
        }
        if header.base_offset >= log_start {
            replay(states, &header, now_ms);
        }
        pos += header.total_size() as u64;
    }
    Ok(())
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

    #[test]
    fn the_previous_segment_is_scanned_only_when_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let opts = storage::AppendOptions {
                    leader_epoch: 0,
                    now_ms: 5_000,
                };
                let size = batch(7, 0, 4).len() as u64;
                // Two batches per segment: 0 and 4 in the first, 8 in the active one.
                let config = storage::LogConfig {
                    segment_bytes_max: 2 * size,
                    ..storage::LogConfig::default()
                };
                let log = storage::Log::open(path, config).await.unwrap();
                for seq in [0, 4, 8] {
                    log.append(batch(7, seq, 4), opts).await.unwrap();
                }
                assert_eq!(log.segment_count(), 2);
                let small = rebuild(&log, LIMITS, 10_000).await;
                assert!(matches!(
                    small.plan(&[ident(7, 0, 4)], 10_000),
                    Ok(Plan::Duplicate(_))
                ));
                let bounded = RebuildLimits {
                    previous_segment_bytes_max: size,
                    ..LIMITS
                };
                let active_only = rebuild(&log, bounded, 10_000).await;
                assert_eq!(active_only.last_sequence(ProducerId(7)), Some((0, 11)));
                assert!(active_only.plan(&[ident(7, 0, 4)], 10_000).is_err());
                log.close().await.unwrap();
            });
    }
}
