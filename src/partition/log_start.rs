//! A follower's log start offset follows its leader's (Kafka's
//! `UnifiedLog.maybeIncrementLogStartOffset(leaderLogStartOffset, LeaderOffsetIncremented)`,
//! called from `ReplicaFetcherThread.processPartitionData` on every fetch answer): what the
//! leader removed (DeleteRecords, retention) is removed here too, whole segments below the
//! new start deleted and the start persisted in the partition checkpoint, so a leader change
//! cannot bring deleted records back.
//!
//! Invariants: the log start only rises; it never passes this replica's log end (a leader's
//! start beyond it is the out-of-range path's, `truncate_fully_and_start_at`).

use super::proxy::PartitionProxy;
use super::{Partition, PartitionError};

impl Partition {
    /// Raises the log start offset to the leader's `leader_log_start` (bounded by the log
    /// end); the new start when it moved, None when nothing changed.
    pub async fn follow_leader_log_start(
        &self,
        leader_log_start: i64,
    ) -> Result<Option<i64>, PartitionError> {
        let target = leader_log_start.min(self.log_end_offset());
        if target <= self.log_start_offset() {
            return Ok(None);
        }
        // The local path DeleteRecords takes: durable first, segments below removed,
        // producer state below evicted, the checkpoint written.
        self.delete_records(target).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::partition::proxy::{AppendOrigin, AppendRequest};
    use crate::partition::TopicPartition;

    async fn open(dir: &std::path::Path) -> Rc<Partition> {
        let log = storage::Log::open(dir.to_path_buf(), storage::LogConfig::default())
            .await
            .unwrap();
        let limits = crate::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = crate::producers::ProducerStates::new(limits.state);
        Rc::new(Partition::new(
            TopicPartition::new("t", 0),
            log,
            8,
            producers,
        ))
    }

    async fn produce(p: &Rc<Partition>, n: usize) {
        let mut builder = storage::BatchBuilder::new(1_000);
        for _ in 0..n {
            builder = builder.record(Some(b"k"), Some(b"v"), &[]);
        }
        let request = AppendRequest {
            records: builder.build().freeze(),
            origin: AppendOrigin::Client,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: 2_000,
            timeout_ms: None,
            verification_guard: None,
        };
        p.clone().append(request).await.unwrap();
    }

    /// The start rises to the leader's, never past the log end, never back; it survives a
    /// reopen (the checkpoint).
    #[compio::test]
    async fn the_log_start_follows_the_leaders_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).await;
        produce(&p, 10).await;
        assert_eq!(p.follow_leader_log_start(0).await, Ok(None));
        assert_eq!(p.follow_leader_log_start(4).await, Ok(Some(4)));
        assert_eq!(p.log_start_offset(), 4);
        assert_eq!(p.follow_leader_log_start(2).await, Ok(None), "never back");
        assert_eq!(
            p.follow_leader_log_start(50).await,
            Ok(Some(10)),
            "the log end"
        );
        drop(p);
        let p = open(dir.path()).await;
        assert_eq!(p.log_start_offset(), 10);
    }
}
