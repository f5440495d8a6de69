//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the partition's leader-epoch
//! cache (Kafka's `LeaderEpochFileCache.endOffsetFor`): the current epoch ends at the log end,
//! an older one where the next starts, an unknown (future) epoch or -1 is (-1, -1). Clients
//! use it to detect truncation (KIP-320).
//!
//! Invariant: a `current_leader_epoch` other than the partition's is answered
//! UNKNOWN_LEADER_EPOCH (newer) or FENCED_LEADER_EPOCH (older), before any lookup.

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::error::partition_error_code;
use super::list_offsets::Wanted;
use super::{authz, HandlerFuture, Outcome, Request};
use crate::router::PartitionError;
use crate::security::acl::Operation;
use crate::shard::Shard;

/// ListOffsets' "latest" query (unused: `end_of_epoch` decides the answer).
const LATEST: i64 = -1;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: OffsetForLeaderEpochRequest = request.decode()?;
        // Kafka: TOPIC DESCRIBE, else TOPIC_AUTHORIZATION_FAILED per partition.
        let denied = authz::denied_topics(
            &shard,
            &request,
            Operation::Describe,
            body.topics.iter().map(|t| t.topic.0.to_string()),
        );
        let queries = body
            .topics
            .iter()
            .filter(|t| !denied.contains(t.topic.0.as_str()))
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    let wanted = Wanted {
                        timestamp: LATEST,
                        current_leader_epoch: p.current_leader_epoch,
                        end_of_epoch: Some(p.leader_epoch),
                        read_committed: false,
                        from_replica: false,
                    };
                    (t.topic.0.to_string(), p.partition, wanted)
                })
            })
            .collect();
        let mut results = super::list_offsets::query(&shard, queries)
            .await
            .into_iter();
        let topics = body
            .topics
            .into_iter()
            .map(|topic| {
                let refused = denied.contains(topic.topic.0.as_str());
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = if refused {
                            Err(PartitionError::TopicAuthorizationFailed)
                        } else {
                            results.next().unwrap_or(Err(PartitionError::Unavailable))
                        };
                        let answer = EpochEndOffset::default().with_partition(p.partition);
                        match result {
                            Ok(ok) => answer
                                .with_leader_epoch(ok.leader_epoch)
                                .with_end_offset(ok.offset),
                            Err(e) => answer.with_error_code(partition_error_code(&e)),
                        }
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic)
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::encoded(
            &OffsetForLeaderEpochResponse::default().with_topics(topics),
            version,
        )
    })
}
