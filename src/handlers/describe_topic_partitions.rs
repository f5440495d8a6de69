//! DescribeTopicPartitions (KIP-966): Metadata's topic and partition answer, paginated. Kafka
//! 4's AdminClient (`describeTopics`, `kafka-topics --describe`) asks this first.
//!
//! As Kafka's broker: an empty topic list means every topic; topics are answered sorted by
//! name, starting at the cursor's topic and partition; at most `response_partition_limit`
//! partitions (capped by `MAX_PARTITIONS_PER_RESPONSE`, Kafka's
//! max.request.partition.size.limit) go in one response, and `next_cursor` says where the next
//! request resumes. A cursor naming a topic outside a given list is INVALID_REQUEST.
//!
//! Invariant: the partitions are Metadata's (`metadata::topic_entry`), so both APIs always
//! agree on leaders, replicas and epochs.

use std::rc::Rc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{
    authz, metadata, str_bytes, HandlerFuture, Outcome, Request, AUTHORIZED_OPERATIONS_OMITTED,
};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::topics;

/// Kafka's max.request.partition.size.limit default: the most partitions one response holds.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// The Metadata version whose partition fields match this API's.
const METADATA_VERSION: i16 = 12;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: DescribeTopicPartitionsRequest = request.decode()?;
        Outcome::encoded(&respond(&shard, &request, &body), version)
    })
}

fn respond(
    shard: &Shard,
    request: &Request,
    body: &DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let cursor_topic = body.cursor.as_ref().map(|c| c.topic_name.0.to_string());
    let from = cursor_topic.clone().unwrap_or_default();
    let mut names: Vec<String> = if body.topics.is_empty() {
        // Kafka lists only the topics the principal may DESCRIBE.
        shard
            .topics
            .borrow()
            .iter()
            .map(|m| m.name.clone())
            .filter(|name| {
                authz::allowed_quietly(
                    shard,
                    request,
                    Operation::Describe,
                    ResourceType::Topic,
                    name,
                )
            })
            .collect()
    } else {
        body.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.retain(|n| *n >= from);
    names.sort_unstable();
    names.dedup();
    if let Some(cursor) = &cursor_topic {
        if !body.topics.is_empty() && !names.contains(cursor) {
            return error_response(body, ResponseError::InvalidRequest.code());
        }
    }
    let limit = body
        .response_partition_limit
        .clamp(0, MAX_PARTITIONS_PER_RESPONSE);
    let mut remaining = usize::try_from(limit).unwrap_or(0);
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            response.next_cursor = Some(cursor(&name, 0));
            break;
        }
        let start = match &body.cursor {
            Some(c) if *c.topic_name.0 == *name => usize::try_from(c.partition_index).unwrap_or(0),
            _ => 0,
        };
        if !authz::allowed(
            shard,
            request,
            Operation::Describe,
            ResourceType::Topic,
            &name,
        ) {
            let code = ResponseError::TopicAuthorizationFailed.code();
            response
                .topics
                .push(topic(&name, code, uuid::Uuid::nil(), false, Vec::new()));
            continue;
        }
        let meta = shard.topics.borrow().get(&name).cloned();
        let Some(meta) = meta else {
            // A name asked for that does not exist (an all-topics listing has none).
            let code = if topics::validate_name(&name).is_ok() {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::InvalidTopicException.code()
            };
            response
                .topics
                .push(topic(&name, code, uuid::Uuid::nil(), false, Vec::new()));
            continue;
        };
        let listener = &request.session.listener.name;
        let entry = metadata::topic_entry(shard, &meta, listener, METADATA_VERSION);
        let total = entry.partitions.len();
        let partitions: Vec<_> = entry
            .partitions
            .into_iter()
            .skip(start)
            .take(remaining)
            .map(|p| {
                // Kafka answers a leaderless partition here without an error code
                // (getPartitionMetadataForDescribeTopicResponse): leader -1 says it.
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_leader_id(p.leader_id)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replica_nodes)
                    .with_isr_nodes(p.isr_nodes)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(p.offline_replicas)
            })
            .collect();
        let next = start + partitions.len();
        remaining -= partitions.len();
        response.topics.push(topic(
            &name,
            0,
            entry.topic_id,
            entry.is_internal,
            partitions,
        ));
        if next < total {
            response.next_cursor = Some(cursor(&name, next));
            break;
        }
    }
    response
}

fn topic(
    name: &str,
    error_code: i16,
    id: uuid::Uuid,
    is_internal: bool,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error_code)
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_id(id)
        .with_is_internal(is_internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn cursor(name: &str, partition: usize) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(name)))
        .with_partition_index(i32::try_from(partition).unwrap_or(i32::MAX))
}

/// Kafka's answer to a request it rejects as a whole: each requested topic with the error.
fn error_response(
    body: &DescribeTopicPartitionsRequest,
    code: i16,
) -> DescribeTopicPartitionsResponse {
    let topics = body
        .topics
        .iter()
        .map(|t| topic(&t.name.0, code, uuid::Uuid::nil(), false, Vec::new()))
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}
