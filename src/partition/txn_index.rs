//! The aborted-transaction index of a partition: Kafka's `TransactionIndex` (`.txnindex`, one
//! file per segment, named by the segment's base offset; the segment that holds the abort
//! marker). Each entry is Kafka's `AbortedTxn`, 34 bytes big-endian: version i16 (0),
//! producerId i64, firstOffset i64, lastOffset i64 (the marker's offset), lastStableOffset i64
//! (the LSO once the transaction was closed). read_committed fetches answer the entries that
//! overlap the range they read, so clients drop the aborted records.
//!
//! Invariants: entries are kept in memory in marker-offset order (the order markers are
//! appended), each also appended to its segment's file before the marker's append is
//! answered; entries below the log start offset are dropped (their segment is gone or going);
//! a file's torn tail (a partial entry) is ignored at load and the entry recovered from the log
//! (the producer-state rebuild replays abort markers past the snapshot).

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

/// One partition's aborted transactions.
#[derive(Debug, Default)]
pub struct TxnIndex {
    /// (segment base, entry), in marker-offset order.
    entries: Vec<(i64, AbortedTxn)>,
}

/// A `.txnindex` file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TxnIndexError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl TxnIndex {
    /// Reads every `.txnindex` file of the partition directory (small files, read once at
    /// open like the leader-epoch checkpoint); entries below `log_start` are skipped.
    pub fn load(dir: &Path, log_start: i64) -> Result<Self, TxnIndexError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TxnIndexError { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err(dir))? {
            let entry = entry.map_err(err(dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(base) = stem.parse::<i64>() {
                files.push((base, entry.path()));
            }
        }
        files.sort();
        let mut index = Self::default();
        for (base, path) in files {
            let bytes = std::fs::read(&path).map_err(err(&path))?;
            if bytes.len() % ENTRY_BYTES != 0 {
                tracing::warn!(file = %path.display(), len = bytes.len(), "aborted-transaction index: torn tail ignored");
            }
            for chunk in bytes.chunks_exact(ENTRY_BYTES) {
                let Some(txn) = AbortedTxn::decode(chunk) else {
                    tracing::warn!(file = %path.display(), "aborted-transaction index: bad entry, rest ignored");
                    break;
                };
                if txn.last_offset >= log_start {
                    index.entries.push((base, txn));
                }
            }
        }
        index.entries.sort_by_key(|(_, t)| t.last_offset);
        Ok(index)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the abort marker at `last_offset` is indexed already (recovery).
    pub fn contains(&self, last_offset: i64) -> bool {
        self.entries
            .binary_search_by_key(&last_offset, |(_, t)| t.last_offset)
            .is_ok()
    }

    /// Adds an entry (in memory; `persist` writes it). Keeps marker-offset order even for a
    /// recovered entry older than the last one.
    pub fn insert(&mut self, segment_base: i64, txn: AbortedTxn) {
        let at = self
            .entries
            .partition_point(|(_, t)| t.last_offset < txn.last_offset);
        self.entries.insert(at, (segment_base, txn));
    }

    /// Kafka's `collectAbortedTxns(fetchOffset, upperBoundOffset)`: the aborted transactions
    /// that overlap [fetch_offset, upper_bound): (producer id, first offset).
    pub fn collect(&self, fetch_offset: i64, upper_bound: i64) -> Vec<(i64, i64)> {
        let from = self
            .entries
            .partition_point(|(_, t)| t.last_offset < fetch_offset);
        let mut out = Vec::new();
        for (_, txn) in self.entries.get(from..).unwrap_or(&[]) {
            if txn.first_offset < upper_bound {
                out.push((txn.producer_id, txn.first_offset));
            }
            if txn.last_stable_offset >= upper_bound {
                break;
            }
        }
        out
    }

    /// Whether `producer`'s batch at `offset` lies inside one of its aborted transactions
    /// (a producer's transactions never overlap, so its first entry ending at or after
    /// `offset` decides).
    pub fn is_aborted(&self, producer: i64, offset: i64) -> bool {
        let from = self
            .entries
            .partition_point(|(_, t)| t.last_offset < offset);
        self.entries
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .find(|(_, t)| t.producer_id == producer)
            .is_some_and(|(_, t)| t.first_offset <= offset)
    }

    /// Forgets entries below the log start offset (their segments are deleted with their
    /// `.txnindex` by storage).
    pub fn prune_below(&mut self, log_start: i64) {
        let below = self
            .entries
            .partition_point(|(_, t)| t.last_offset < log_start);
        if below > 0 {
            self.entries.drain(..below);
        }
    }
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
    /// reaches the upper bound.
    #[test]
    fn collect_answers_overlapping_aborts() {
        let mut index = TxnIndex::default();
        index.insert(0, txn(1, 0, 10, 11));
        index.insert(0, txn(2, 5, 20, 21));
        index.insert(0, txn(3, 30, 40, 41));
        assert_eq!(index.collect(0, 100), vec![(1, 0), (2, 5), (3, 30)]);
        assert_eq!(index.collect(11, 100), vec![(2, 5), (3, 30)]);
        assert_eq!(index.collect(11, 25), vec![(2, 5)]);
        assert_eq!(index.collect(41, 100), vec![]);
        assert_eq!(index.collect(0, 3), vec![(1, 0)]);
        assert!(index.is_aborted(2, 5) && index.is_aborted(2, 19) && !index.is_aborted(2, 4));
        assert!(!index.is_aborted(1, 11) && !index.is_aborted(3, 29) && index.is_aborted(3, 30));
        index.prune_below(15);
        assert_eq!(index.len(), 2);
        assert!(index.contains(40) && !index.contains(10));
    }

    #[compio::test]
    async fn persisted_entries_load_back_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        persist(dir.path(), 0, &txn(1, 0, 10, 11)).await.unwrap();
        persist(dir.path(), 50, &txn(2, 45, 60, 61)).await.unwrap();
        let path = storage::txn_index_path(dir.path(), 50);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1]);
        std::fs::write(&path, &bytes).unwrap();
        let index = TxnIndex::load(dir.path(), 0).unwrap();
        assert_eq!(index.collect(0, 100), vec![(1, 0), (2, 45)]);
        // The next append overwrites the torn tail.
        persist(dir.path(), 50, &txn(3, 62, 70, 71)).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 2 * ENTRY_BYTES);
        let index = TxnIndex::load(dir.path(), 11).unwrap();
        assert_eq!(index.collect(0, 100), vec![(2, 45), (3, 62)]);
    }
}
