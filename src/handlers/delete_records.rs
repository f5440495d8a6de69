//! DeleteRecords: advances each partition's log start offset on its owning shard (offset -1 =
//! the high watermark) and answers the new low watermark.
//!
//! Invariant: every distinct requested partition gets exactly one answer (Kafka keys the request
//! by topic-partition: a repeated one is answered once, its last offset winning); a failed
//! partition answers low watermark -1 (Kafka's INVALID_LOW_WATERMARK). A partition of a topic
//! whose `cleanup.policy` lacks `delete` (compact alone: `__consumer_offsets`, changelogs) is
//! refused with POLICY_VIOLATION and left untouched, as Kafka's `Partition.deleteRecordsOnLeader`;
//! like Kafka, only on its leader: another broker answers NOT_LEADER_OR_FOLLOWER.

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::error::partition_error_code;
use super::{authz, HandlerFuture, Outcome, Request};
use crate::router::admin::{DeleteRecordsItem, DeleteRecordsResult};
use crate::router::{PartitionError, Router};
use crate::security::acl::Operation;
use crate::shard::Shard;

/// Kafka's low watermark of a failed partition.
const INVALID_LOW_WATERMARK: i64 = -1;

/// Why a partition is answered without being routed to its owner.
enum Refused {
    Authorization,
    /// `cleanup.policy` without `delete`.
    Policy,
}

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DeleteRecordsRequest = request.decode()?;
        // Kafka keys the request by topic-partition: one answer per distinct partition, the
        // last offset asked for it winning.
        let flat = body.topics.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.clone(), p.partition_index, p.offset))
        });
        let distinct = super::dedup::last_wins(flat, |(name, index, _)| (name.clone(), *index));
        let by_topic = super::dedup::group_in_order(
            distinct
                .into_iter()
                .map(|(name, index, offset)| (name, (index, offset))),
        );
        // Kafka: TOPIC DELETE, else TOPIC_AUTHORIZATION_FAILED for the topic's partitions.
        let denied = authz::denied_topics(
            &shard,
            &request,
            Operation::Delete,
            by_topic.iter().map(|(name, _)| name.0.to_string()),
        );
        let refused = |name: &str, index: i32| {
            if denied.contains(name) {
                Some(Refused::Authorization)
            } else if keeps_records(&shard, name, index) {
                Some(Refused::Policy)
            } else {
                None
            }
        };
        // Routed in the answer's order, so the results line up with it.
        let wanted = by_topic
            .iter()
            .flat_map(|(name, partitions)| {
                partitions
                    .iter()
                    .filter(|&&(index, _)| refused(name.0.as_str(), index).is_none())
                    .map(move |&(index, offset)| (name.0.to_string(), index, offset))
            })
            .collect();
        let mut results = delete(&shard, wanted, body.timeout_ms).await.into_iter();
        let topics = by_topic
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, _)| {
                        let result = match refused(name.0.as_str(), index) {
                            Some(Refused::Authorization) => Err(partition_error_code(
                                &PartitionError::TopicAuthorizationFailed,
                            )),
                            Some(Refused::Policy) => Err(ResponseError::PolicyViolation.code()),
                            None => results
                                .next()
                                .unwrap_or(Err(PartitionError::Unavailable))
                                .map_err(|e| partition_error_code(&e)),
                        };
                        let answer =
                            DeleteRecordsPartitionResult::default().with_partition_index(index);
                        match result {
                            Ok(low) => answer.with_low_watermark(low),
                            Err(code) => answer
                                .with_low_watermark(INVALID_LOW_WATERMARK)
                                .with_error_code(code),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::encoded(
            &DeleteRecordsResponse::default().with_topics(topics),
            version,
        )
    })
}

/// Whether the topic exists with this partition, this broker leads it, and its
/// `cleanup.policy` keeps records by key only (no `delete`): Kafka refuses DeleteRecords there
/// (`PolicyViolationException`). Kafka checks the policy on the leader's log
/// (`Partition.deleteRecordsOnLeader`), so a partition led elsewhere is left to the routing,
/// which answers NOT_LEADER_OR_FOLLOWER first; an unknown one, UNKNOWN_TOPIC_OR_PARTITION.
fn keeps_records(shard: &Shard, topic: &str, index: i32) -> bool {
    let Ok(index) = u32::try_from(index) else {
        return false;
    };
    let image = shard.topics.borrow();
    let led_here = shard.cluster.is_none()
        || crate::cluster::view::check_leader(&image, topic, index, shard.config.server.node_id)
            .is_ok();
    led_here
        && image.get(topic).is_some_and(|meta| {
            index < meta.partitions && !crate::topics::compaction::policy(&meta.configs).delete
        })
}

/// Routes (topic, partition, offset) items to their owners; unknown partitions fail here.
async fn delete(
    shard: &Rc<Shard>,
    wanted: Vec<(String, i32, i64)>,
    timeout_ms: i32,
) -> Vec<DeleteRecordsResult> {
    let router = Router::new(shard.router_context());
    super::route::route_known(
        shard,
        wanted,
        |tp, offset| DeleteRecordsItem {
            tp,
            offset,
            timeout_ms,
        },
        |items| router.delete_records(items),
    )
    .await
}
