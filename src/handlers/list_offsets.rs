//! ListOffsets: earliest (-2), latest (-1, the high watermark; the LSO for isolation_level
//! READ_COMMITTED), max timestamp (-3), earliest local (-4, same as earliest: no tiered storage)
//! or the first offset at/after a timestamp (below the LSO for READ_COMMITTED, as Kafka's
//! `fetchOffsetForTimestamp`).
//!
//! Each answer carries the leader epoch of its offset, from the partition's leader-epoch cache;
//! a `current_leader_epoch` other than the partition's is fenced (KIP-320).
//!
//! Invariant: every requested partition gets exactly one answer, in request order; a partition
//! named more than once gets INVALID_REQUEST on each entry (Kafka's rule).

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::error::partition_error_code;
use super::{authz, HandlerFuture, Outcome, Request};
use crate::router::{OffsetQuery, OffsetResult, PartitionError, Router};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: ListOffsetsRequest = request.decode()?;
        // Kafka answers every entry of a partition named more than once INVALID_REQUEST and
        // looks none of them up.
        let repeated = super::dedup::repeated(body.topics.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        }));
        // Kafka: TOPIC DESCRIBE per topic, else TOPIC_AUTHORIZATION_FAILED per partition.
        let denied = authz::denied_topics(
            &shard,
            &request,
            Operation::Describe,
            body.topics.iter().map(|t| t.name.0.to_string()),
        );
        let read_committed = body.isolation_level == 1;
        let from_replica = body.replica_id.0 >= 0;
        let queries = body
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    let wanted = Wanted {
                        timestamp: p.timestamp,
                        current_leader_epoch: p.current_leader_epoch,
                        end_of_epoch: None,
                        read_committed,
                        from_replica,
                    };
                    (t.name.0.to_string(), p.partition_index, wanted)
                })
            })
            .filter(|(name, index, _)| !repeated.contains(&(name.clone(), *index)))
            .filter(|(name, _, _)| !denied.contains(name))
            .collect();
        let mut results = query(&shard, queries).await.into_iter();
        let topics = body
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        if repeated.contains(&(topic.name.0.to_string(), p.partition_index)) {
                            return response.with_error_code(ResponseError::InvalidRequest.code());
                        }
                        if denied.contains(topic.name.0.as_str()) {
                            return response
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let result = results.next().unwrap_or(Err(PartitionError::Unavailable));
                        match result {
                            Ok(ok) => {
                                let answer =
                                    response.with_offset(ok.offset).with_timestamp(ok.timestamp);
                                // leader_epoch exists from v4 on; setting it earlier fails to encode.
                                if version >= 4 {
                                    answer.with_leader_epoch(ok.leader_epoch)
                                } else {
                                    answer
                                }
                            }
                            Err(e) => response.with_error_code(partition_error_code(&e)),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::encoded(&ListOffsetsResponse::default().with_topics(topics), version)
    })
}

/// What one partition of ListOffsets / OffsetForLeaderEpoch asks.
pub struct Wanted {
    pub timestamp: i64,
    /// -1 when the request carries none (or an old version).
    pub current_leader_epoch: i32,
    /// OffsetForLeaderEpoch: the epoch whose end offset is wanted.
    pub end_of_epoch: Option<i32>,
    /// ListOffsets isolation_level READ_COMMITTED: bounded by the LSO.
    pub read_committed: bool,
    /// ListOffsets from a follower broker: latest is the log end.
    pub from_replica: bool,
}

/// Answers (topic, partition, wanted) queries in order; unknown partitions are errors.
pub async fn query(shard: &Rc<Shard>, queries: Vec<(String, i32, Wanted)>) -> Vec<OffsetResult> {
    let router = Router::new(shard.router_context());
    super::route::route_known(
        shard,
        queries,
        |tp, w: Wanted| OffsetQuery {
            tp,
            timestamp: w.timestamp,
            current_leader_epoch: w.current_leader_epoch,
            end_of_epoch: w.end_of_epoch,
            read_committed: w.read_committed,
            from_replica: w.from_replica,
        },
        |items| router.offsets(items),
    )
    .await
}
