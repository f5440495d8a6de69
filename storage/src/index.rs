//! Sparse offset and time indexes in Kafka's on-disk formats, held in memory once loaded.
//!
//! `.index`: 8-byte entries, relative offset u32 BE + file position u32 BE; an entry names the
//! *last* offset of the batch starting at that position (as Kafka writes it).
//! `.timeindex`: 12-byte entries, timestamp i64 BE + relative offset u32 BE; the timestamp is
//! the largest seen in the segment so far and the offset the record that carries it.
//! Invariants: offset entries strictly increase in both fields; time entries strictly increase
//! in timestamp and never decrease in offset. The files hold exactly the entries (no
//! preallocation), so a file whose size is not a multiple of the entry size is corrupt.

use crate::batch::BatchHeader;
use crate::offset::{Offset, TimestampOffset};

/// Size of one `.index` entry.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one `.timeindex` entry.
pub const TIME_ENTRY_LEN: usize = 12;

/// `BatchMeta` of each batch of an append, in order (inline for the usual one batch).
pub(crate) type BatchMetas = smallvec::SmallVec<[BatchMeta; 1]>;

/// What the index maintenance needs to know about one batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchMeta {
    pub last_offset: i64,
    pub max_ts: i64,
    pub max_ts_offset: i64,
    pub size: u64,
}

impl BatchMeta {
    pub fn new(h: &BatchHeader, max_ts_delta: i32) -> Self {
        BatchMeta {
            last_offset: h.last_offset(),
            max_ts: h.max_timestamp,
            max_ts_offset: h.base_offset + i64::from(max_ts_delta),
            size: h.total_size() as u64,
        }
    }
}

/// Running state for building sparse index entries, identical for appends and rebuilds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tracker {
    pub bytes_since_index: u64,
    pub max_ts: Option<TimestampOffset>,
    pub last_time_entry_ts: Option<i64>,
    pub first_ts: Option<i64>,
}

impl Tracker {
    /// Accounts for one batch at `pos`, emitting the index entries it earns.
    pub fn step(
        &mut self,
        base: i64,
        pos: u64,
        meta: &BatchMeta,
        interval_bytes: u32,
        offsets: &mut impl Extend<(u32, u32)>,
        times: &mut impl Extend<(i64, u32)>,
    ) {
        if self.max_ts.is_none_or(|m| meta.max_ts > m.timestamp_ms) {
            self.max_ts = Some(TimestampOffset {
                timestamp_ms: meta.max_ts,
                offset: Offset(meta.max_ts_offset),
            });
        }
        if self.first_ts.is_none() {
            self.first_ts = Some(meta.max_ts);
        }
        if self.bytes_since_index > u64::from(interval_bytes) {
            if let (Ok(rel), Ok(p)) = (u32::try_from(meta.last_offset - base), u32::try_from(pos)) {
                offsets.extend([(rel, p)]);
            }
            self.time_entry(base, times);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += meta.size;
    }

    /// Adds a time entry for the running maximum if it is new (also used when sealing).
    pub fn time_entry(&mut self, base: i64, times: &mut impl Extend<(i64, u32)>) {
        let Some(m) = self.max_ts else { return };
        if self.last_time_entry_ts.is_some_and(|t| t >= m.timestamp_ms) {
            return;
        }
        if let Ok(rel) = u32::try_from(m.offset.0 - base) {
            times.extend([(m.timestamp_ms, rel)]);
            self.last_time_entry_ts = Some(m.timestamp_ms);
        }
    }
}

/// Why an index file was rejected (the caller rebuilds it).
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum IndexError {
    #[error("index size {len} is not a multiple of {entry}")]
    BadSize { len: usize, entry: usize },
    #[error("index entry {at} is not monotonic")]
    NotMonotonic { at: usize },
    #[error("index entry {at} points past the segment ({value} >= {limit})")]
    OutOfRange { at: usize, value: u64, limit: u64 },
}

/// One segment's offset and time index entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Indexes {
    /// (relative last offset of a batch, position of that batch).
    pub offsets: Vec<(u32, u32)>,
    /// (max timestamp so far, relative offset of the record holding it).
    pub times: Vec<(i64, u32)>,
}

impl Indexes {
    /// Position to start scanning from for relative offset `rel`: the batch named by the
    /// largest entry with offset <= rel, or the segment start. (That batch may end before
    /// `rel`; the caller scans forward.)
    pub fn position_for(&self, rel: u32) -> u32 {
        let n = self.offsets.partition_point(|&(o, _)| o <= rel);
        match n.checked_sub(1).and_then(|i| self.offsets.get(i)) {
            Some(&(_, pos)) => pos,
            None => 0,
        }
    }

    /// The largest indexed batch position that is <= `pos` (0 if none).
    pub fn floor_position(&self, pos: u64) -> u32 {
        let n = self.offsets.partition_point(|&(_, p)| u64::from(p) <= pos);
        n.checked_sub(1)
            .and_then(|i| self.offsets.get(i))
            .map_or(0, |&(_, p)| p)
    }

    /// Relative offset to start a timestamp search from: every record before it has a
    /// timestamp < `ts`. `None` means "from the segment start".
    pub fn offset_before_time(&self, ts: i64) -> Option<u32> {
        let n = self.times.partition_point(|&(t, _)| t < ts);
        n.checked_sub(1)
            .and_then(|i| self.times.get(i))
            .map(|&(_, o)| o)
    }

    /// Bytes the index files would take with `extra` more entries each.
    pub fn is_full(&self, index_bytes_max: u32, extra: usize) -> bool {
        let max = index_bytes_max as usize;
        (self.offsets.len() + extra) * OFFSET_ENTRY_LEN > max
            || (self.times.len() + extra) * TIME_ENTRY_LEN > max
    }

    /// Adds a time entry if `ts` is a new maximum (keeps the strictly-increasing invariant).
    pub fn push_time(&mut self, ts: i64, rel: u32) -> bool {
        if self.times.last().is_some_and(|&(t, _)| t >= ts) {
            return false;
        }
        self.times.push((ts, rel));
        true
    }

    /// Drops entries for offsets >= `rel_end` or positions >= `size`.
    pub fn truncate(&mut self, rel_end: u32, size: u64) {
        self.offsets
            .retain(|&(o, p)| o < rel_end && u64::from(p) < size);
        self.times.retain(|&(_, o)| o < rel_end);
    }
}

/// Encodes offset entries in `.index` format.
pub fn encode_offsets(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY_LEN);
    for &(o, p) in entries {
        out.extend_from_slice(&o.to_be_bytes());
        out.extend_from_slice(&p.to_be_bytes());
    }
    out
}

/// Encodes time entries in `.timeindex` format.
pub fn encode_times(entries: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY_LEN);
    for &(t, o) in entries {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&o.to_be_bytes());
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Parses and sanity-checks a `.index` file of a segment holding `log_size` bytes.
pub fn parse_offsets(bytes: &[u8], log_size: u64) -> Result<Vec<(u32, u32)>, IndexError> {
    if bytes.len() % OFFSET_ENTRY_LEN != 0 {
        return Err(IndexError::BadSize {
            len: bytes.len(),
            entry: OFFSET_ENTRY_LEN,
        });
    }
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_LEN);
    for (at, e) in bytes.chunks_exact(OFFSET_ENTRY_LEN).enumerate() {
        let entry = (u32_at(e, 0), u32_at(e, 4));
        check_offset_entry(out.last().copied(), entry, at, log_size)?;
        out.push(entry);
    }
    Ok(out)
}

/// Parses and sanity-checks a `.timeindex` file; `rel_limit` bounds relative offsets
/// (exclusive), when known.
pub fn parse_times(bytes: &[u8], rel_limit: Option<u64>) -> Result<Vec<(i64, u32)>, IndexError> {
    if bytes.len() % TIME_ENTRY_LEN != 0 {
        return Err(IndexError::BadSize {
            len: bytes.len(),
            entry: TIME_ENTRY_LEN,
        });
    }
    let mut out: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY_LEN);
    for (at, e) in bytes.chunks_exact(TIME_ENTRY_LEN).enumerate() {
        let ts = e
            .get(0..8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, i64::from_be_bytes);
        let entry = (ts, u32_at(e, 8));
        check_time_entry(out.last().copied(), entry, at, rel_limit)?;
        out.push(entry);
    }
    Ok(out)
}

/// One `.index` entry may follow `prev` in a segment of `log_size` bytes: both fields strictly
/// increase and the position lies inside the segment. What a loaded file must satisfy, and
/// (as an invariant, [`entries_fit`]) what an append adds.
fn check_offset_entry(
    prev: Option<(u32, u32)>,
    entry: (u32, u32),
    at: usize,
    log_size: u64,
) -> Result<(), IndexError> {
    if prev.is_some_and(|(o, p)| entry.0 <= o || entry.1 <= p) {
        return Err(IndexError::NotMonotonic { at });
    }
    if u64::from(entry.1) >= log_size {
        return Err(IndexError::OutOfRange {
            at,
            value: entry.1.into(),
            limit: log_size,
        });
    }
    Ok(())
}

/// One `.timeindex` entry may follow `prev`: timestamps strictly increase, offsets never
/// decrease, and the relative offset is below `rel_limit` when known.
fn check_time_entry(
    prev: Option<(i64, u32)>,
    entry: (i64, u32),
    at: usize,
    rel_limit: Option<u64>,
) -> Result<(), IndexError> {
    if prev.is_some_and(|(t, o)| entry.0 <= t || entry.1 < o) {
        return Err(IndexError::NotMonotonic { at });
    }
    if let Some(limit) = rel_limit.filter(|&l| u64::from(entry.1) >= l) {
        return Err(IndexError::OutOfRange {
            at,
            value: entry.1.into(),
            limit,
        });
    }
    Ok(())
}

/// Whether `offsets` / `times` may be appended to `idx` for a segment of `log_size` bytes
/// whose relative offsets end below `rel_limit`: the rules a loaded index file is checked
/// against (`parse_offsets`, `parse_times`), applied to entries before they exist. The log
/// asserts it on every append (`crate::invariant!`), so the writer and the reader of an index
/// agree on what a valid one is.
pub(crate) fn entries_fit(
    idx: Option<&Indexes>,
    offsets: &[(u32, u32)],
    times: &[(i64, u32)],
    log_size: u64,
    rel_limit: u64,
) -> Result<(), IndexError> {
    let mut prev = idx.and_then(|i| i.offsets.last().copied());
    for (at, &e) in offsets.iter().enumerate() {
        check_offset_entry(prev, e, at, log_size)?;
        prev = Some(e);
    }
    let mut prev = idx.and_then(|i| i.times.last().copied());
    for (at, &e) in times.iter().enumerate() {
        check_time_entry(prev, e, at, Some(rel_limit))?;
        prev = Some(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_entries_must_fit_the_loaded_rules() {
        let idx = Indexes {
            offsets: vec![(3, 100)],
            times: vec![(1_000, 3)],
        };
        assert_eq!(
            entries_fit(Some(&idx), &[(9, 250)], &[(2_000, 9)], 300, 10),
            Ok(())
        );
        // Position at or past the segment's end.
        assert!(matches!(
            entries_fit(Some(&idx), &[(9, 300)], &[], 300, 10),
            Err(IndexError::OutOfRange { .. })
        ));
        // Offset or position going back.
        assert_eq!(
            entries_fit(Some(&idx), &[(3, 250)], &[], 300, 10),
            Err(IndexError::NotMonotonic { at: 0 })
        );
        assert_eq!(
            entries_fit(Some(&idx), &[(9, 250), (10, 200)], &[], 300, 11),
            Err(IndexError::NotMonotonic { at: 1 })
        );
        // Time index: a timestamp not above the last one, an offset going back, an offset
        // past the segment's end.
        assert_eq!(
            entries_fit(Some(&idx), &[], &[(1_000, 5)], 300, 10),
            Err(IndexError::NotMonotonic { at: 0 })
        );
        assert_eq!(
            entries_fit(Some(&idx), &[], &[(2_000, 2)], 300, 10),
            Err(IndexError::NotMonotonic { at: 0 })
        );
        assert!(matches!(
            entries_fit(Some(&idx), &[], &[(2_000, 10)], 300, 10),
            Err(IndexError::OutOfRange { .. })
        ));
        // No loaded index: only the new entries among themselves.
        assert_eq!(entries_fit(None, &[(0, 0)], &[(5, 0)], 1, 1), Ok(()));
    }

    #[test]
    fn offsets_round_trip_and_lookup() {
        let entries = vec![(3, 100), (9, 250), (20, 900)];
        let bytes = encode_offsets(&entries);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[0..8], &[0, 0, 0, 3, 0, 0, 0, 100]);
        let parsed = parse_offsets(&bytes, 1000).unwrap();
        assert_eq!(parsed, entries);
        let idx = Indexes {
            offsets: parsed,
            times: vec![],
        };
        assert_eq!(idx.position_for(0), 0);
        assert_eq!(idx.position_for(2), 0);
        assert_eq!(idx.position_for(3), 100);
        assert_eq!(idx.position_for(15), 250);
        assert_eq!(idx.position_for(u32::MAX), 900);
        assert_eq!(idx.floor_position(99), 0);
        assert_eq!(idx.floor_position(250), 250);
        assert_eq!(idx.floor_position(899), 250);
    }

    #[test]
    fn offsets_rejects_garbage() {
        assert_eq!(
            parse_offsets(&[0; 7], 10),
            Err(IndexError::BadSize { len: 7, entry: 8 })
        );
        let dup = encode_offsets(&[(3, 100), (3, 200)]);
        assert_eq!(
            parse_offsets(&dup, 1000),
            Err(IndexError::NotMonotonic { at: 1 })
        );
        let far = encode_offsets(&[(3, 100), (4, 2000)]);
        assert!(matches!(
            parse_offsets(&far, 1000),
            Err(IndexError::OutOfRange { at: 1, .. })
        ));
    }

    #[test]
    fn times_round_trip_and_lookup() {
        let entries = vec![(1000, 0), (1500, 7), (3000, 7)];
        let bytes = encode_times(&entries);
        assert_eq!(bytes.len(), 36);
        let parsed = parse_times(&bytes, Some(8)).unwrap();
        assert_eq!(parsed, entries);
        let idx = Indexes {
            offsets: vec![],
            times: parsed,
        };
        assert_eq!(idx.offset_before_time(1000), None);
        assert_eq!(idx.offset_before_time(1001), Some(0));
        assert_eq!(idx.offset_before_time(5000), Some(7));
        assert!(parse_times(&bytes, Some(7)).is_err());
        let back = encode_times(&[(5, 1), (4, 2)]);
        assert_eq!(
            parse_times(&back, None),
            Err(IndexError::NotMonotonic { at: 1 })
        );
    }

    #[test]
    fn push_time_keeps_maximum_only_and_full_check() {
        let mut idx = Indexes::default();
        assert!(idx.push_time(10, 0));
        assert!(!idx.push_time(10, 1));
        assert!(!idx.push_time(5, 2));
        assert!(idx.push_time(11, 3));
        assert_eq!(idx.times, vec![(10, 0), (11, 3)]);
        assert!(!idx.is_full(24, 0));
        assert!(idx.is_full(24, 1));
        idx.offsets = vec![(1, 10), (5, 20)];
        idx.truncate(5, 1000);
        assert_eq!(idx.offsets, vec![(1, 10)]);
        assert_eq!(idx.times, vec![(10, 0), (11, 3)]);
        idx.truncate(3, 1000);
        assert_eq!(idx.times, vec![(10, 0)]);
    }
}
