//! OffsetForLeaderEpoch: a single node that never changes leader has one epoch, 0, whose end
//! offset is the log's end (the high watermark); clients use it to validate their position.
//!
//! Invariant: a requested epoch above ours is FENCED_LEADER_EPOCH-free: we answer epoch 0 and
//! our end offset, and the client truncates to it, which is what Kafka's leader would say.

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::error::partition_error_code;
use super::{HandlerFuture, Outcome, Request};
use crate::router::PartitionError;
use crate::shard::Shard;

/// ListOffsets' "latest" query: the high watermark.
const LATEST: i64 = -1;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: OffsetForLeaderEpochRequest = request.decode()?;
        let queries = body
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), p.partition, LATEST))
            })
            .collect();
        let mut results = super::list_offsets::query(&shard, queries)
            .await
            .into_iter();
        let topics = body
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = results.next().unwrap_or(Err(PartitionError::Unavailable));
                        let answer = EpochEndOffset::default().with_partition(p.partition);
                        match result {
                            Ok(ok) => answer.with_leader_epoch(0).with_end_offset(ok.offset),
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
