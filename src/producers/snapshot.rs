//! Producer-state snapshots: Kafka's `.snapshot` files (`ProducerStateManager`), so a restart
//! loads the producers and their open transactions instead of rescanning the log, and does not
//! forget producers whose batches lie in older segments. File `<20-digit offset>.snapshot` in
//! the partition directory: the state as of that log end offset.
//!
//! Format (Kafka's `ProducerSnapshot` version 1, big-endian): version i16 = 1, crc u32
//! (CRC-32C of everything after it), producer count i32, then per producer: producerId i64,
//! epoch i16, lastSequence i32, lastOffset i64, offsetDelta i32, timestamp i64 (ms of the
//! last append), coordinatorEpoch i32, currentTxnFirstOffset i64 (-1: none). Sluice writes one
//! entry per remembered batch of a producer (up to 5, oldest first, the rest of the entry
//! repeated), so retries of any of them are still recognised after a restart; Kafka, which
//! keeps one batch per producer, reads such a file as the last entry of each producer.
//!
//! Invariants: a snapshot is written atomically (temp file, fsync, rename); a snapshot that
//! does not parse or whose CRC does not match is ignored (the state is rebuilt from the log);
//! only snapshots inside [log start, log end] are used.

use std::path::{Path, PathBuf};

use super::state::{BatchMeta, Entry, ProducerId, ProducerStates, StateLimits};

const VERSION: i16 = 1;
const HEADER_BYTES: usize = 2 + 4 + 4;
const ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
const SUFFIX: &str = ".snapshot";
/// Snapshots kept per partition (the newest; older ones are deleted after a write).
const SNAPSHOTS_KEPT: usize = 2;

/// The snapshot file for the state as of `offset`.
pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{}{SUFFIX}", storage::file_stem(offset)))
}

/// Serialises the state (producers in id order, for stable files).
pub fn encode(states: &ProducerStates) -> Vec<u8> {
    let mut producers: Vec<(&ProducerId, &Entry)> = states.entries.iter().collect();
    producers.sort_by_key(|(p, _)| **p);
    // One entry per remembered batch (a producer with none: one entry without a batch).
    let rows: Vec<(&ProducerId, &Entry, Option<&BatchMeta>)> = producers
        .into_iter()
        .flat_map(|(producer, entry)| {
            let batches: Vec<Option<&BatchMeta>> = if entry.batches.is_empty() {
                vec![None]
            } else {
                entry.batches.iter().map(Some).collect()
            };
            batches.into_iter().map(move |b| (producer, entry, b))
        })
        .collect();
    let mut body = Vec::with_capacity(4 + rows.len() * ENTRY_BYTES);
    let count = i32::try_from(rows.len()).unwrap_or(i32::MAX);
    body.extend_from_slice(&count.to_be_bytes());
    for (producer, entry, batch) in rows.into_iter().take(count as usize) {
        body.extend_from_slice(&producer.0.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&batch.map_or(-1, |b| b.last_seq).to_be_bytes());
        body.extend_from_slice(&batch.map_or(-1, |b| b.last_offset).to_be_bytes());
        let delta = batch.map_or(0, |b| {
            i32::try_from(b.last_offset - b.base_offset).unwrap_or(0)
        });
        body.extend_from_slice(&delta.to_be_bytes());
        body.extend_from_slice(&entry.last_ms.to_be_bytes());
        body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Parses a snapshot; `None` when it is not a valid version-1 snapshot.
pub fn decode(bytes: &[u8], limits: StateLimits) -> Option<ProducerStates> {
    if bytes.len() < HEADER_BYTES {
        return None;
    }
    let mut r = Reader(bytes);
    if r.i16()? != VERSION {
        return None;
    }
    let crc = u32::from_be_bytes(r.take()?);
    if crc32c::crc32c(r.0) != crc {
        return None;
    }
    let count = usize::try_from(r.i32()?).ok()?;
    if r.0.len() != count.checked_mul(ENTRY_BYTES)? {
        return None;
    }
    let mut states = ProducerStates::new(limits);
    for _ in 0..count {
        let producer = ProducerId(r.i64()?);
        let epoch = r.i16()?;
        let last_seq = r.i32()?;
        let last_offset = r.i64()?;
        let offset_delta = r.i32()?;
        let last_ms = r.i64()?;
        let coordinator_epoch = r.i32()?;
        let txn_first = r.i64()?;
        if producer.0 < 0 || offset_delta < 0 {
            return None;
        }
        let batch = (last_offset >= 0).then(|| BatchMeta {
            first_seq: decrement_sequence(last_seq, offset_delta),
            last_seq,
            base_offset: last_offset - i64::from(offset_delta),
            last_offset,
            log_append_time_ms: -1,
        });
        states.restore(
            producer,
            epoch,
            batch,
            last_ms,
            coordinator_epoch,
            (txn_first >= 0).then_some(txn_first),
        );
    }
    Some(states)
}

/// Kafka's `DefaultRecordBatch.decrementSequence`: sequences wrap from 0 to i32::MAX. Java's
/// int arithmetic wraps; so does this (a corrupt snapshot's negative sequence must not
/// overflow: found by the `producer_snapshot` fuzz target).
fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX
            .wrapping_sub(decrement.wrapping_sub(sequence))
            .wrapping_add(1)
    } else {
        sequence - decrement
    }
}

/// Writes the snapshot of `states` as of `offset` and deletes all but the newest
/// `SNAPSHOTS_KEPT` (blocking I/O on a blocking thread).
pub async fn write(dir: &Path, offset: i64, states: &ProducerStates) -> std::io::Result<()> {
    write_bytes(dir, offset, encode(states)).await
}

/// `write` of an already encoded state (so no borrow of the state is held across the I/O).
pub async fn write_bytes(dir: &Path, offset: i64, bytes: Vec<u8>) -> std::io::Result<()> {
    crate::atomic_file::write_off_thread(path(dir, offset), bytes).await?;
    let mut all = list(dir)?;
    all.retain(|(o, _)| *o != offset);
    let keep_older = SNAPSHOTS_KEPT.saturating_sub(1);
    let excess = all.len().saturating_sub(keep_older);
    for (_, old) in all.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(file = %old.display(), error = %e, "cannot remove an old producer snapshot");
        }
    }
    Ok(())
}

/// (offset, path) of every snapshot file, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(offset) = stem.parse::<i64>() {
            out.push((offset, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest valid snapshot inside [log_start, log_end]: (its offset, the state). Snapshots
/// past the log end (the log was truncated after them) are deleted, as Kafka does.
pub fn load_latest(
    dir: &Path,
    log_start: i64,
    log_end: i64,
    limits: StateLimits,
) -> Option<(i64, ProducerStates)> {
    let all = list(dir).ok()?;
    for (offset, path) in all.into_iter().rev() {
        if offset > log_end {
            let _stale_is_best_effort = std::fs::remove_file(&path);
            continue;
        }
        if offset < log_start {
            return None;
        }
        match std::fs::read(&path).ok().and_then(|b| decode(&b, limits)) {
            Some(states) => return Some((offset, states)),
            None => tracing::warn!(file = %path.display(), "producer snapshot unreadable, ignored"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producers::state::BatchIdent;

    const LIMITS: StateLimits = StateLimits {
        max_producers: 10,
        expiration_ms: 1_000_000,
    };

    fn commit(s: &mut ProducerStates, producer: i64, seq: i32, offset: i64, txn: bool) {
        let ident = BatchIdent {
            producer: ProducerId(producer),
            epoch: 2,
            first_seq: seq,
            offset_delta: 2,
            transactional: txn,
        };
        let meta = BatchMeta {
            first_seq: seq,
            last_seq: seq + 2,
            base_offset: offset,
            last_offset: offset + 2,
            log_append_time_ms: -1,
        };
        s.commit(&ident, meta, 500);
    }

    /// Kafka's wrap-around (the first sequence of a batch that crossed i32::MAX), and a
    /// corrupt file's negative sequence wraps as Java's int does instead of overflowing.
    #[test]
    fn sequence_decrement_wraps_like_java() {
        assert_eq!(decrement_sequence(2, 9), i32::MAX - 6);
        assert_eq!(decrement_sequence(10, 4), 6);
        assert_eq!(
            decrement_sequence(i32::MIN, 10),
            i32::MAX
                .wrapping_sub(10i32.wrapping_sub(i32::MIN))
                .wrapping_add(1)
        );
    }

    /// The snapshot keeps each producer's epoch, last batch, coordinator epoch and open
    /// transaction; a flipped byte or a wrong version is refused.
    #[test]
    fn snapshots_round_trip_in_kafkas_layout() {
        let mut s = ProducerStates::new(LIMITS);
        commit(&mut s, 1, 0, 0, false);
        commit(&mut s, 1, 3, 3, false);
        commit(&mut s, 2, 0, 6, true);
        s.complete_marker(ProducerId(3), 4, 9, 9, false, 600);
        let bytes = encode(&s);
        // Producer 1's two batches, producer 2's one, producer 3 (marker only) without.
        assert_eq!(bytes.len(), HEADER_BYTES + 4 * ENTRY_BYTES);
        assert_eq!(&bytes[..2], &[0, 1]);
        let back = decode(&bytes, LIMITS).unwrap();
        assert_eq!(back.last_sequence(ProducerId(1)), Some((2, 5)));
        assert_eq!(back.first_unstable_offset(), Some(6));
        assert_eq!(back.views(), s.views());
        assert!(
            back.is_last_batch(ProducerId(1), 5),
            "the last batch is kept"
        );
        let first = BatchIdent {
            producer: ProducerId(1),
            epoch: 2,
            first_seq: 0,
            offset_delta: 2,
            transactional: false,
        };
        assert!(
            matches!(
                back.plan(&[first], 600),
                Ok(crate::producers::Plan::Duplicate(_))
            ),
            "older remembered batches are kept too"
        );
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(decode(&bad, LIMITS).is_none());
        let mut bad = bytes;
        bad[1] = 2;
        assert!(decode(&bad, LIMITS).is_none());
    }

    #[compio::test]
    async fn the_newest_snapshot_inside_the_log_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStates::new(LIMITS);
        commit(&mut s, 1, 0, 0, true);
        write(dir.path(), 3, &s).await.unwrap();
        commit(&mut s, 2, 0, 3, false);
        write(dir.path(), 6, &s).await.unwrap();
        write(dir.path(), 9, &s).await.unwrap();
        let offsets: Vec<i64> = list(dir.path()).unwrap().iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![6, 9], "older snapshots are deleted");
        let (offset, loaded) = load_latest(dir.path(), 0, 8, LIMITS).unwrap();
        assert_eq!(offset, 6);
        assert_eq!(loaded.len(), 2);
        assert!(!path(dir.path(), 9).exists(), "past the log end: deleted");
        assert!(load_latest(dir.path(), 7, 8, LIMITS).is_none());
    }
}
