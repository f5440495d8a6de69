//! Kafka's `replication-offset-checkpoint`: one file per data directory holding every local
//! partition's high watermark, so a restarted follower (or a leader elected right after its
//! restart) starts from the high watermark it had learnt instead of 0 or its log end.
//!
//! Format (Kafka's `OffsetCheckpointFile`): a version line `0`, an entry count, then one
//! `topic partition offset` line per partition. Written atomically (temp file, fsync, rename).
//!
//! Invariants: a file that does not parse is refused whole (no partial map); topic names
//! hold no whitespace (Kafka's legal characters), so a line splits unambiguously.
//!
//! [`HighWatermarkCheckpoint`] is the broker's one file across its shards: each shard
//! publishes the high watermarks of the partitions it owns into its own slot every
//! `replica.high.watermark.checkpoint.interval.ms` (and once more before it closes its logs);
//! the registry shard writes the union, and the process writes it a last time at a clean
//! shutdown. Each partition has one owning shard, so the union has no conflicts; a slot is at
//! most one interval old, and a stale high watermark is a lower one, which is safe (Kafka's
//! checkpoint is as stale). The slots' locks are taken once per interval, never per request.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Kafka's file name, in the data directory.
pub const CHECKPOINT_FILE: &str = "replication-offset-checkpoint";
const VERSION: i32 = 0;
/// A file claiming more entries is refused as corrupt (bounds what a damaged file allocates).
const ENTRIES_MAX: usize = 1 << 22;

/// (topic, partition) -> high watermark.
pub type HighWatermarks = BTreeMap<(String, u32), i64>;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt replication-offset checkpoint: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

pub fn to_text(marks: &HighWatermarks) -> String {
    let entries = marks
        .iter()
        .map(|((topic, partition), offset)| format!("{topic} {partition} {offset}"));
    crate::checkpoint_file::encode(VERSION, entries)
}

pub fn from_text(text: &str) -> Result<HighWatermarks, String> {
    let mut marks = HighWatermarks::new();
    for line in crate::checkpoint_file::entry_lines(text, VERSION, ENTRIES_MAX)? {
        let mut fields = line.split_whitespace();
        let topic = fields.next().map(str::to_owned);
        let partition = fields.next().and_then(|f| f.parse::<u32>().ok());
        let offset = fields.next().and_then(|f| f.parse::<i64>().ok());
        let (Some(topic), Some(partition), Some(offset), None) =
            (topic, partition, offset, fields.next())
        else {
            return Err(format!("bad entry {line:?}"));
        };
        if offset < 0 {
            return Err(format!("negative offset in {line:?}"));
        }
        marks.insert((topic, partition), offset);
    }
    Ok(marks)
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(CHECKPOINT_FILE)
}

/// Loads the checkpoint of `data_dir`; empty when there is none yet. Blocking (read once at
/// start-up).
pub fn load(data_dir: &Path) -> Result<HighWatermarks, CheckpointError> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HighWatermarks::new()),
        Err(source) => return Err(CheckpointError::Io { path, source }),
    };
    from_text(&text).map_err(|reason| CheckpointError::Corrupt { path, reason })
}

/// Writes the checkpoint atomically, off the shard thread.
pub async fn persist(data_dir: &Path, marks: &HighWatermarks) -> Result<(), CheckpointError> {
    let path = path(data_dir);
    crate::atomic_file::write_off_thread(path.clone(), to_text(marks).into_bytes())
        .await
        .map_err(|source| CheckpointError::Io { path, source })
}

/// The high-watermark checkpoint of one data directory shared by the shards of a broker (see
/// the module documentation).
pub struct HighWatermarkCheckpoint {
    data_dir: PathBuf,
    /// What the file held at start: the high watermark a partition starts from until this
    /// broker learns a newer one (as leader or follower).
    loaded: HighWatermarks,
    /// Each shard's latest marks.
    slots: Vec<std::sync::Mutex<HighWatermarks>>,
}

impl HighWatermarkCheckpoint {
    /// Loads the file of `data_dir` (blocking: once at start-up) for `shard_count` shards.
    pub fn open(data_dir: &Path, shard_count: usize) -> Result<Self, CheckpointError> {
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            loaded: load(data_dir)?,
            slots: (0..shard_count).map(|_| Default::default()).collect(),
        })
    }

    /// The checkpointed high watermark of (topic, partition), if the file had one.
    pub fn loaded(&self, topic: &str, partition: u32) -> Option<i64> {
        self.loaded.get(&(topic.to_owned(), partition)).copied()
    }

    /// Replaces shard `shard`'s marks (the partitions it owns now).
    pub fn publish(&self, shard: usize, marks: HighWatermarks) {
        if let Some(slot) = self.slots.get(shard) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = marks;
        }
    }

    /// Every shard's marks.
    pub fn merged(&self) -> HighWatermarks {
        let mut all = HighWatermarks::new();
        for slot in &self.slots {
            let marks = slot.lock().unwrap_or_else(|p| p.into_inner());
            all.extend(marks.iter().map(|(k, v)| (k.clone(), *v)));
        }
        all
    }

    /// Writes the union of the slots, off the shard thread.
    pub async fn persist(&self) -> Result<(), CheckpointError> {
        persist(&self.data_dir, &self.merged()).await
    }

    /// Writes the union of the slots, blocking (the clean shutdown, after the shards stopped).
    pub fn persist_blocking(&self) -> Result<(), CheckpointError> {
        let path = path(&self.data_dir);
        crate::atomic_file::write(&path, to_text(&self.merged()).as_bytes())
            .map_err(|source| CheckpointError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_text_format_round_trips() {
        let mut marks = HighWatermarks::new();
        marks.insert(("orders".into(), 0), 42);
        marks.insert(("orders".into(), 1), 0);
        marks.insert(("__consumer_offsets".into(), 7), 9);
        let text = to_text(&marks);
        assert_eq!(
            text,
            "0\n3\n__consumer_offsets 7 9\norders 0 42\norders 1 0\n"
        );
        assert_eq!(from_text(&text), Ok(marks));
    }

    #[test]
    fn damaged_files_are_refused() {
        for bad in [
            "",
            "1\n0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt x 1\n",
            "0\n1\nt 0 1 extra\n",
            "0\n1\nt 0 -5\n",
            "0\n99999999999\n",
        ] {
            assert!(from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[compio::test]
    async fn persists_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let mut marks = HighWatermarks::new();
        marks.insert(("t".into(), 3), 17);
        persist(dir.path(), &marks).await.unwrap();
        assert_eq!(load(dir.path()).unwrap(), marks);
        // The shared checkpoint: loaded at open, the union of the shards' slots written.
        let shared = HighWatermarkCheckpoint::open(dir.path(), 2).unwrap();
        assert_eq!(shared.loaded("t", 3), Some(17));
        assert_eq!(shared.loaded("t", 4), None);
        let mut first = HighWatermarks::new();
        first.insert(("a".into(), 0), 5);
        let mut second = HighWatermarks::new();
        second.insert(("b".into(), 1), 9);
        shared.publish(0, first.clone());
        shared.publish(1, second);
        shared.publish(0, first);
        shared.persist().await.unwrap();
        let written = load(dir.path()).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(written.get(&("a".to_string(), 0)), Some(&5));
        assert_eq!(written.get(&("b".to_string(), 1)), Some(&9));
        shared.publish(1, HighWatermarks::new());
        shared.persist_blocking().unwrap();
        assert_eq!(load(dir.path()).unwrap().len(), 1);
        std::fs::write(path(dir.path()), "garbage").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}
