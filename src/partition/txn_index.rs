//! The aborted-transaction index of a partition: Kafka's `TransactionIndex` (`.txnindex`, one
//! file per segment, named by the segment's base offset; the segment that holds the abort
//! marker). Each entry is Kafka's `AbortedTxn`, 34 bytes big-endian: version i16 (0),
//! producerId i64, firstOffset i64, lastOffset i64 (the marker's offset), lastStableOffset i64
//! (the LSO once the transaction was closed). read_committed fetches answer the entries that
//! overlap the range they read, so clients drop the aborted records.
//!
//! Invariants: entries stay on disk (only the list of files and their entry counts is kept in
//! memory) and are read per read_committed fetch from the segment of the fetch offset on, as
//! Kafka does; an entry is written to its segment's file (and synced) before the marker's
//! append is answered; within a file entries are in marker-offset order; a file's torn tail (a
//! partial entry) is ignored and overwritten by the next append, and a lost entry is recovered
//! from the log (the producer-state rebuild replays abort markers past the snapshot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use compio::io::AsyncWriteAtExt;

/// Size of one `AbortedTxn` entry.
pub const ENTRY_BYTES: usize = 34;
/// `AbortedTxn.CurrentVersion`.
const VERSION: i16 = 0;
const SUFFIX: &str = ".txnindex";

/// Kafka's `AbortedTxn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_BYTES);
        out.extend_from_slice(&VERSION.to_be_bytes());
        for field in [
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        ] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        out
    }

    /// `None` for a short buffer or an unknown version (Kafka's `CorruptIndexException`).
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let version = i16::from_be_bytes(buf.get(..2)?.try_into().ok()?);
        if version != VERSION {
            return None;
        }
        let field = |i: usize| -> Option<i64> {
            let at = 2 + 8 * i;
            Some(i64::from_be_bytes(buf.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Self {
            producer_id: field(0)?,
            first_offset: field(1)?,
            last_offset: field(2)?,
            last_stable_offset: field(3)?,
        })
    }
}

/// One partition's aborted-transaction index: which segments have a `.txnindex` file and how
/// many entries each holds. The entries stay on disk and are read per use (Kafka's way), so
/// memory is bounded by the number of segments, not of aborts.
#[derive(Debug, Default)]
pub struct TxnIndex {
    /// Segment base -> whole entries in its file.
    files: BTreeMap<i64, u64>,
}

/// A `.txnindex` file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TxnIndexError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl TxnIndex {
    /// Lists the `.txnindex` files of the partition directory (read once at open).
    pub fn open(dir: &Path) -> Result<Self, TxnIndexError> {
        let err = |source| TxnIndexError {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(base) = stem.parse::<i64>() {
                let len = entry.metadata().map_err(err)?.len();
                files.insert(base, len / ENTRY_BYTES as u64);
            }
        }
        Ok(Self { files })
    }

    /// Entries over all files (as listed or appended since).
    pub fn len(&self) -> u64 {
        self.files.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segments with aborts, from the one based at `from_segment` on, oldest first.
    pub fn segments_from(&self, from_segment: i64) -> Vec<i64> {
        self.files.range(from_segment..).map(|(b, _)| *b).collect()
    }

    /// Every segment with aborts.
    pub fn segments(&self) -> Vec<i64> {
        self.files.keys().copied().collect()
    }

    /// Records an entry `persist` appended to the file of `segment_base`.
    pub fn appended(&mut self, segment_base: i64) {
        *self.files.entry(segment_base).or_insert(0) += 1;
    }

    /// Forgets the files of segments below `first_segment` (storage deletes them with their
    /// segments).
    pub fn prune_before(&mut self, first_segment: i64) {
        self.files = self.files.split_off(&first_segment);
    }
}

/// The entries of one segment's file (none when it is gone); a torn tail (a partial entry from
/// a crash) is ignored, a bad entry ends the file (the rest is rebuilt from the log at open).
pub async fn read_entries(dir: &Path, segment_base: i64) -> Result<Vec<AbortedTxn>, TxnIndexError> {
    let path = storage::txn_index_path(dir, segment_base);
    let bytes = match compio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TxnIndexError { path, source }),
    };
    let (out, bad_entry) = decode_entries(&bytes);
    if bad_entry {
        tracing::warn!(file = %path.display(), "aborted-transaction index: bad entry, rest ignored");
    }
    Ok(out)
}

/// The whole entries of a `.txnindex` file's bytes, up to the first that does not decode
/// (answered true: the rest is ignored); a torn tail (a partial entry) is dropped silently.
pub fn decode_entries(bytes: &[u8]) -> (Vec<AbortedTxn>, bool) {
    let mut out = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for chunk in bytes.chunks_exact(ENTRY_BYTES) {
        let Some(txn) = AbortedTxn::decode(chunk) else {
            return (out, true);
        };
        out.push(txn);
    }
    (out, false)
}

/// Kafka's `TransactionIndex.collectAbortedTxns(fetchOffset, upperBoundOffset)` over one
/// file's entries: adds (producer id, first offset) of each aborted transaction overlapping
/// [fetch_offset, upper_bound); true once an entry's LSO reaches the bound (later files cannot
/// add anything).
pub fn collect_into(
    entries: &[AbortedTxn],
    fetch_offset: i64,
    upper_bound: i64,
    out: &mut Vec<(i64, i64)>,
) -> bool {
    for txn in entries {
        if txn.last_offset >= fetch_offset && txn.first_offset < upper_bound {
            out.push((txn.producer_id, txn.first_offset));
        }
        if txn.last_stable_offset >= upper_bound {
            return true;
        }
    }
    false
}

/// Whether `producer`'s batch at `offset` lies inside one of its aborted transactions;
/// `entries` sorted by last offset (a producer's transactions never overlap, so its first
/// entry ending at or after `offset` decides).
pub fn is_aborted_in(entries: &[AbortedTxn], producer: i64, offset: i64) -> bool {
    let from = entries.partition_point(|t| t.last_offset < offset);
    entries
        .get(from..)
        .unwrap_or(&[])
        .iter()
        .find(|t| t.producer_id == producer)
        .is_some_and(|t| t.first_offset <= offset)
}

/// Appends `txn` to the `.txnindex` file of the segment based at `segment_base` and syncs it
/// (an abort is answered only once its index entry is durable).
pub async fn persist(dir: &Path, segment_base: i64, txn: &AbortedTxn) -> Result<(), TxnIndexError> {
    let path = storage::txn_index_path(dir, segment_base);
    let err = |source| TxnIndexError {
        path: path.clone(),
        source,
    };
    let mut file = compio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .open(&path)
        .await
        .map_err(err)?;
    let len = file.metadata().await.map_err(err)?.len();
    // A torn tail from a crash is overwritten: entries start at whole-entry boundaries.
    let at = len - len % ENTRY_BYTES as u64;
    let compio::BufResult(written, _) = file.write_all_at(txn.encode(), at).await;
    written.map_err(err)?;
    file.sync_data().await.map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes() {
        let t = txn(7, 100, 150, 120);
        let bytes = t.encode();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &120i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Some(t));
        let mut bad = bytes.clone();
        bad[1] = 9;
        assert_eq!(AbortedTxn::decode(&bad), None);
        assert_eq!(AbortedTxn::decode(&bytes[..33]), None);
    }

    /// Kafka's collectAbortedTxns: overlapping entries, stopping at the first whose LSO
    /// reaches the upper bound; the aborted-batch test of the cleaner.
    #[test]
    fn collect_answers_overlapping_aborts() {
        let entries = [txn(1, 0, 10, 11), txn(2, 5, 20, 21), txn(3, 30, 40, 41)];
        let collect = |from, upper| {
            let mut out = Vec::new();
            let complete = collect_into(&entries, from, upper, &mut out);
            (out, complete)
        };
        assert_eq!(collect(0, 100), (vec![(1, 0), (2, 5), (3, 30)], false));
        assert_eq!(collect(11, 100).0, vec![(2, 5), (3, 30)]);
        assert_eq!(collect(11, 21), (vec![(2, 5)], true));
        assert_eq!(collect(41, 100).0, vec![]);
        assert_eq!(collect(0, 3), (vec![(1, 0)], true));
        assert!(is_aborted_in(&entries, 2, 5) && is_aborted_in(&entries, 2, 19));
        assert!(!is_aborted_in(&entries, 2, 4) && !is_aborted_in(&entries, 1, 11));
        assert!(!is_aborted_in(&entries, 3, 29) && is_aborted_in(&entries, 3, 30));
    }

    #[compio::test]
    async fn persisted_entries_read_back_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        persist(dir.path(), 0, &txn(1, 0, 10, 11)).await.unwrap();
        persist(dir.path(), 50, &txn(2, 45, 60, 61)).await.unwrap();
        let path = storage::txn_index_path(dir.path(), 50);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1]);
        std::fs::write(&path, &bytes).unwrap();
        let mut index = TxnIndex::open(dir.path()).unwrap();
        assert_eq!(index.segments(), vec![0, 50]);
        assert_eq!(index.len(), 2);
        assert_eq!(
            read_entries(dir.path(), 50).await.unwrap(),
            vec![txn(2, 45, 60, 61)]
        );
        // The next append overwrites the torn tail.
        persist(dir.path(), 50, &txn(3, 62, 70, 71)).await.unwrap();
        index.appended(50);
        assert_eq!(std::fs::read(&path).unwrap().len(), 2 * ENTRY_BYTES);
        assert_eq!(read_entries(dir.path(), 50).await.unwrap().len(), 2);
        assert_eq!(read_entries(dir.path(), 99).await.unwrap(), vec![]);
        index.prune_before(50);
        assert_eq!((index.segments_from(0), index.len()), (vec![50], 2));
    }
}
