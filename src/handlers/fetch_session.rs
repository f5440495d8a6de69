//! KIP-227 incremental fetch sessions, cached per shard (a client's connection, and so its
//! sessions, stay on one shard).
//!
//! Protocol: epoch -1 = sessionless (closing `session_id` if given); epoch 0 = open a new
//! session with the request's partitions (closing `session_id` if given); epoch n > 0 = an
//! incremental fetch of session `session_id`, whose expected epoch must be n; the request then
//! only carries changed or added partitions, `forgotten` ones are removed, and the response only
//! carries partitions with records, errors or a changed high watermark / log start offset.
//!
//! Invariants: at most `slots_max` sessions (the least recently used is evicted for a new one);
//! a session holds at most `partitions_max` partitions; session ids are positive and never 0.

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::ResponseError;
use shards::ShardId;

use crate::partition::TopicPartition;

/// One partition a fetch reads, with what the last response told the client about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPartition {
    pub tp: TopicPartition,
    pub topic_id: uuid::Uuid,
    pub fetch_offset: i64,
    pub max_bytes: u32,
    /// KIP-320: the leader epoch the client last sent for this partition (-1: none). Kept in
    /// the session, so incremental fetches that omit the partition are still checked
    /// (KAFKA-9338).
    pub current_leader_epoch: i32,
    last_high_watermark: i64,
    last_log_start: i64,
    /// Kafka's `CachedPartition.lastStableOffset`: a moved LSO is news for the client.
    last_stable_offset: i64,
}

impl SessionPartition {
    pub fn new(
        tp: TopicPartition,
        topic_id: uuid::Uuid,
        fetch_offset: i64,
        max_bytes: u32,
    ) -> Self {
        Self {
            tp,
            topic_id,
            fetch_offset,
            max_bytes,
            current_leader_epoch: -1,
            last_high_watermark: -1,
            last_log_start: -1,
            last_stable_offset: -1,
        }
    }

    pub fn with_current_leader_epoch(mut self, epoch: i32) -> Self {
        self.current_leader_epoch = epoch;
        self
    }
}

/// What one partition's read showed, to decide whether an incremental response includes it.
#[derive(Debug, Clone, Copy)]
pub struct PartitionSeen {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub has_records: bool,
    pub has_error: bool,
}

#[derive(Debug)]
struct Session {
    epoch: i32,
    partitions: Vec<SessionPartition>,
    last_used: Instant,
}

/// The plan for one fetch request.
#[derive(Debug)]
pub struct Plan {
    /// 0 when the fetch has no session.
    pub session_id: i32,
    pub incremental: bool,
    pub partitions: Vec<SessionPartition>,
}

pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    slots_max: usize,
    partitions_max: usize,
    next_id: i32,
}

const FINAL_EPOCH: i32 = -1;
const INITIAL_EPOCH: i32 = 0;

impl FetchSessions {
    pub fn new(slots_max: usize, partitions_max: usize, shard: ShardId) -> Self {
        // Start shards at different ids so a client that moved shards gets NOT_FOUND, not a
        // stranger's session.
        let next_id = 1 + i32::from(shard.0) * 1_000_000;
        Self {
            sessions: HashMap::new(),
            slots_max,
            partitions_max,
            next_id,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Starts a fetch. `requested`: the request's partitions (in order); `forgotten`: partitions
    /// to drop from an incremental session. Err is a top-level Kafka error code.
    pub fn begin(
        &mut self,
        session_id: i32,
        epoch: i32,
        requested: Vec<SessionPartition>,
        forgotten: &[TopicPartition],
    ) -> Result<Plan, i16> {
        match epoch {
            FINAL_EPOCH => {
                self.sessions.remove(&session_id);
                Ok(Plan {
                    session_id: 0,
                    incremental: false,
                    partitions: requested,
                })
            }
            INITIAL_EPOCH => {
                self.sessions.remove(&session_id);
                if requested.len() > self.partitions_max {
                    // Too big to cache: serve it sessionless, as Kafka does when it cannot cache.
                    return Ok(Plan {
                        session_id: 0,
                        incremental: false,
                        partitions: requested,
                    });
                }
                let id = self.open(requested.clone());
                Ok(Plan {
                    session_id: id,
                    incremental: false,
                    partitions: requested,
                })
            }
            epoch => self.incremental(session_id, epoch, requested, forgotten),
        }
    }

    fn open(&mut self, partitions: Vec<SessionPartition>) -> i32 {
        if self.sessions.len() >= self.slots_max {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.sessions.remove(&oldest);
            }
        }
        let id = self.take_id();
        self.sessions.insert(
            id,
            Session {
                epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        id
    }

    fn take_id(&mut self) -> i32 {
        loop {
            let id = self.next_id;
            self.next_id = if self.next_id == i32::MAX {
                1
            } else {
                self.next_id + 1
            };
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn incremental(
        &mut self,
        session_id: i32,
        epoch: i32,
        requested: Vec<SessionPartition>,
        forgotten: &[TopicPartition],
    ) -> Result<Plan, i16> {
        let partitions_max = self.partitions_max;
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(ResponseError::FetchSessionIdNotFound.code())?;
        if session.epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        session.partitions.retain(|p| !forgotten.contains(&p.tp));
        for wanted in requested {
            let count = session.partitions.len();
            match session.partitions.iter_mut().find(|p| p.tp == wanted.tp) {
                Some(existing) => {
                    existing.fetch_offset = wanted.fetch_offset;
                    existing.max_bytes = wanted.max_bytes;
                    existing.current_leader_epoch = wanted.current_leader_epoch;
                    existing.topic_id = wanted.topic_id;
                }
                None if count < partitions_max => session.partitions.push(wanted),
                None => return Err(ResponseError::InvalidRequest.code()),
            }
        }
        session.epoch = if session.epoch == i32::MAX {
            1
        } else {
            session.epoch + 1
        };
        session.last_used = Instant::now();
        Ok(Plan {
            session_id,
            incremental: true,
            partitions: session.partitions.clone(),
        })
    }

    /// Records what this response tells the client; returns, per planned partition, whether the
    /// response includes it (always true for full fetches).
    pub fn finish(&mut self, plan: &Plan, seen: &[PartitionSeen]) -> Vec<bool> {
        let session = self.sessions.get_mut(&plan.session_id);
        let Some(session) = session else {
            return vec![true; plan.partitions.len()];
        };
        plan.partitions
            .iter()
            .zip(seen)
            .map(|(planned, seen)| {
                let Some(cached) = session.partitions.iter_mut().find(|p| p.tp == planned.tp)
                else {
                    return true;
                };
                let changed = seen.has_records
                    || seen.has_error
                    || cached.last_high_watermark != seen.high_watermark
                    || cached.last_log_start != seen.log_start_offset
                    || cached.last_stable_offset != seen.last_stable_offset;
                cached.last_high_watermark = seen.high_watermark;
                cached.last_stable_offset = seen.last_stable_offset;
                cached.last_log_start = seen.log_start_offset;
                !plan.incremental || changed
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, index: u32, offset: i64) -> SessionPartition {
        SessionPartition::new(
            TopicPartition::new(topic, index),
            uuid::Uuid::nil(),
            offset,
            1024,
        )
    }

    fn seen(hwm: i64, records: bool) -> PartitionSeen {
        PartitionSeen {
            high_watermark: hwm,
            last_stable_offset: hwm,
            log_start_offset: 0,
            has_records: records,
            has_error: false,
        }
    }

    #[test]
    fn full_then_incremental_fetch() {
        let mut sessions = FetchSessions::new(10, 100, ShardId(0));
        let plan = sessions
            .begin(0, 0, vec![part("a", 0, 0), part("a", 1, 0)], &[])
            .unwrap();
        assert!(plan.session_id > 0);
        assert!(!plan.incremental);
        assert_eq!(
            sessions.finish(&plan, &[seen(5, true), seen(0, false)]),
            vec![true, true]
        );

        // Epoch 1: client only sends the partition whose offset moved.
        let plan = sessions
            .begin(plan.session_id, 1, vec![part("a", 0, 5)], &[])
            .unwrap();
        assert!(plan.incremental);
        assert_eq!(plan.partitions.len(), 2);
        assert_eq!(plan.partitions[0].fetch_offset, 5);
        // Nothing new anywhere: incremental response is empty.
        assert_eq!(
            sessions.finish(&plan, &[seen(5, false), seen(0, false)]),
            vec![false, false]
        );
        // Only the LSO moved (a transaction marker): reported, as Kafka's CachedPartition does.
        let stable = PartitionSeen {
            last_stable_offset: 3,
            ..seen(5, false)
        };
        assert_eq!(
            sessions.finish(&plan, &[stable, seen(0, false)]),
            vec![true, false]
        );
        assert_eq!(
            sessions.finish(&plan, &[stable, seen(0, false)]),
            vec![false, false]
        );

        // Wrong epoch, unknown id.
        assert_eq!(
            sessions.begin(plan.session_id, 1, vec![], &[]).unwrap_err(),
            71
        );
        assert_eq!(sessions.begin(12345, 1, vec![], &[]).unwrap_err(), 70);

        // Epoch 2: forget partition 1; hwm change on partition 0 is reported.
        let forgotten = [TopicPartition::new("a", 1)];
        let plan = sessions
            .begin(plan.session_id, 2, vec![], &forgotten)
            .unwrap();
        assert_eq!(plan.partitions.len(), 1);
        assert_eq!(sessions.finish(&plan, &[seen(9, false)]), vec![true]);

        // Final epoch closes the session.
        let closed = sessions
            .begin(plan.session_id, -1, vec![part("a", 0, 9)], &[])
            .unwrap();
        assert_eq!(closed.session_id, 0);
        assert!(sessions.is_empty());
    }

    #[test]
    fn cache_is_bounded_by_lru_eviction() {
        let mut sessions = FetchSessions::new(2, 100, ShardId(1));
        let first = sessions
            .begin(0, 0, vec![part("a", 0, 0)], &[])
            .unwrap()
            .session_id;
        let second = sessions
            .begin(0, 0, vec![part("a", 0, 0)], &[])
            .unwrap()
            .session_id;
        let third = sessions
            .begin(0, 0, vec![part("a", 0, 0)], &[])
            .unwrap()
            .session_id;
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.begin(first, 1, vec![], &[]).unwrap_err(), 70);
        assert!(sessions.begin(second, 1, vec![], &[]).is_ok());
        assert!(sessions.begin(third, 1, vec![], &[]).is_ok());
    }

    #[test]
    fn oversized_sessions_are_served_sessionless() {
        let mut sessions = FetchSessions::new(2, 1, ShardId(0));
        let plan = sessions
            .begin(0, 0, vec![part("a", 0, 0), part("a", 1, 0)], &[])
            .unwrap();
        assert_eq!(plan.session_id, 0);
        assert!(sessions.is_empty());
    }
}
