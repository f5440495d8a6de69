//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`): for every leader
//! epoch the partition had, the first offset written in it. It answers OffsetForLeaderEpoch
//! (`end_offset_for`), the epoch of an offset (`epoch_for_offset`, for ListOffsets) and, once
//! there is replication, where a follower's log diverges.
//!
//! Persisted as `<partition dir>/leader-epoch-checkpoint` in Kafka's text format (version line
//! `0`, entry count, then one `epoch start_offset` line per entry), written atomically.
//!
//! Invariants: entries are strictly increasing in both epoch and start offset; an epoch is
//! only added when it is above the latest one (a lower or equal epoch never rewrites history).

use std::io;
use std::path::{Path, PathBuf};

/// Kafka's file name, inside the partition directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: i32 = 0;
/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;
/// A checkpoint with more entries than this is refused as corrupt (a leader epoch is a
/// leadership change; no real partition has millions).
const ENTRIES_MAX: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EpochCacheError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt leader-epoch checkpoint: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// (leader epoch, first offset of that epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`). True when the cache
    /// changed and must be written; a stale epoch or offset is ignored, as in Kafka.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if epoch <= last.epoch => false,
            Some(last) if start_offset < last.start_offset => false,
            _ => {
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
                true
            }
        }
    }

    /// Kafka's `endOffsetFor`: the (epoch, end offset) a client asking about `requested` gets.
    /// The latest epoch ends at the log end; an older one ends where the next higher epoch
    /// starts (answered with the largest known epoch at or below it); an unknown future epoch
    /// or -1 is (UNDEFINED_EPOCH, UNDEFINED_OFFSET).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The epoch `offset` was written in: the latest entry starting at or before it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Kafka's checkpoint text.
    pub fn to_text(&self) -> String {
        let entries = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset));
        crate::checkpoint_file::encode(CHECKPOINT_VERSION, entries)
    }

    pub fn from_text(text: &str) -> Result<Self, String> {
        let lines = crate::checkpoint_file::entry_lines(text, CHECKPOINT_VERSION, ENTRIES_MAX)?;
        let mut cache = Self::default();
        for line in lines {
            let mut fields = line.split_whitespace();
            let epoch = fields.next().and_then(|f| f.parse::<i32>().ok());
            let offset = fields.next().and_then(|f| f.parse::<i64>().ok());
            let (Some(epoch), Some(offset), None) = (epoch, offset, fields.next()) else {
                return Err(format!("bad entry {line:?}"));
            };
            if !cache.assign(epoch, offset) {
                return Err(format!("entry {line:?} is not after the previous one"));
            }
        }
        Ok(cache)
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CHECKPOINT_FILE)
    }

    /// Loads the checkpoint of the partition in `dir`; `None` when there is none yet. Blocking
    /// (a few bytes, read once when the partition opens).
    pub fn load(dir: &Path) -> Result<Option<Self>, EpochCacheError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(EpochCacheError::Io { path, source }),
        };
        Self::from_text(&text)
            .map(Some)
            .map_err(|reason| EpochCacheError::Corrupt { path, reason })
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename, directory fsync) off the
    /// shard thread.
    pub async fn persist(&self, dir: &Path) -> Result<(), EpochCacheError> {
        let path = Self::path(dir);
        crate::atomic_file::write_off_thread(path.clone(), self.to_text().into_bytes())
            .await
            .map_err(|source| EpochCacheError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for (epoch, offset) in entries {
            assert!(c.assign(*epoch, *offset));
        }
        c
    }

    #[test]
    fn end_offsets_follow_kafkas_end_offset_for() {
        let one = cache(&[(0, 0)]);
        assert_eq!(one.end_offset_for(0, 3), (0, 3));
        for unknown in [1, 5, -1] {
            assert_eq!(one.end_offset_for(unknown, 3), (-1, -1), "{unknown}");
        }
        let many = cache(&[(1, 10), (3, 20), (6, 35)]);
        assert_eq!(many.end_offset_for(6, 50), (6, 50));
        assert_eq!(many.end_offset_for(3, 50), (3, 35));
        // An epoch between known ones ends where the next starts, answered with the floor.
        assert_eq!(many.end_offset_for(2, 50), (1, 20));
        assert_eq!(many.end_offset_for(5, 50), (3, 35));
        // Older than the first known epoch: the requested epoch, ending at the first start.
        assert_eq!(many.end_offset_for(0, 50), (0, 10));
        assert_eq!(many.end_offset_for(7, 50), (-1, -1));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 5), (-1, -1));
    }

    #[test]
    fn assign_only_moves_forward() {
        let mut c = cache(&[(2, 10)]);
        assert!(!c.assign(2, 15), "same epoch again");
        assert!(!c.assign(1, 20), "older epoch");
        assert!(!c.assign(3, 5), "offset before the latest start");
        assert!(!c.assign(-1, 30));
        assert!(c.assign(3, 10));
        assert_eq!(c.epoch_for_offset(9), None);
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.latest_epoch(), Some(3));
    }

    #[test]
    fn checkpoint_text_is_kafkas_and_round_trips() {
        let c = cache(&[(0, 0), (4, 120)]);
        assert_eq!(c.to_text(), "0\n2\n0 0\n4 120\n");
        assert_eq!(LeaderEpochCache::from_text(&c.to_text()), Ok(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\nx 0\n",
            "0\n2\n3 5\n1 9\n",
            "0\n1\n0 0 7\n",
            "0\n99999999999\n",
        ] {
            assert!(LeaderEpochCache::from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[compio::test]
    async fn persists_and_loads_from_the_partition_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), None);
        let c = cache(&[(0, 7)]);
        c.persist(dir.path()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(),
            "0\n1\n0 7\n"
        );
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), Some(c));
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "garbage").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).is_err());
    }
}
