//! The leader's low watermark and DeleteRecords' wait for it (Kafka's
//! `Partition.lowWatermarkIfLeader` and `DelayedDeleteRecords`): each follower reports its
//! log start offset in its Fetch; DeleteRecords answers once the lowest log start offset of
//! the leader and its followers reached the requested offset, or REQUEST_TIMED_OUT at the
//! request's timeout. Followers take the leader's start from their fetch answers
//! (`log_start.rs`), so a leader elected after the answer keeps the deletion.
//!
//! Which followers count: Kafka takes every replica on an alive broker; here the ISR's
//! followers (the replicas that can become leader in a clean election). A follower not yet
//! heard from counts as -1 (Kafka's unknown offset), so the wait goes on until it fetches.
//!
//! Invariant: the wait is bounded by the request's timeout and ends when leadership moves.

use std::time::{Duration, Instant};

use super::{PartitionError, PartitionProxy, ReplicatedPartition};

/// How often a waiting DeleteRecords looks at the followers' log start offsets again (their
/// fetches arrive at least every `replica.fetch.wait.max.ms`; the answer waits at most this
/// much longer than Kafka's, whose purgatory is checked on each fetch).
const LOW_WATERMARK_POLL_MS: u64 = 10;

impl ReplicatedPartition {
    /// A follower's Fetch carried its log start offset (-1: not sent).
    pub fn record_follower_log_start(&self, broker_id: i32, log_start_offset: i64) {
        if log_start_offset >= 0 {
            self.follower_log_starts
                .borrow_mut()
                .insert(broker_id, log_start_offset);
        }
    }

    /// Kafka's `lowWatermarkIfLeader`: the lowest log start offset of this replica and the
    /// ISR's followers (-1 for one not heard from).
    pub fn low_watermark(&self) -> i64 {
        let own = self.log_start_offset();
        let starts = self.follower_log_starts.borrow();
        let state = self.state.borrow();
        state
            .isr_state()
            .isr()
            .iter()
            .filter(|id| **id != self.config.local_broker_id)
            .map(|id| starts.get(id).copied().unwrap_or(-1))
            .fold(own, i64::min)
    }

    /// Waits until the low watermark reaches `offset` (answered as the low watermark) or
    /// `deadline` (REQUEST_TIMED_OUT); NOT_LEADER_OR_FOLLOWER once leadership moved.
    pub async fn await_low_watermark(
        &self,
        offset: i64,
        deadline: Instant,
    ) -> Result<i64, PartitionError> {
        loop {
            if !self.leading.get() {
                return Err(PartitionError::NotLeaderOrFollower);
            }
            let low = self.low_watermark();
            if low >= offset {
                return Ok(low);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PartitionError::RequestTimedOut);
            }
            let poll = Duration::from_millis(LOW_WATERMARK_POLL_MS).min(deadline - now);
            compio::time::sleep(poll).await;
        }
    }
}
