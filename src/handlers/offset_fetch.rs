//! OffsetFetch: one group (v1-7) or several (v8+); each group is asked on its coordinator
//! shard. An unknown group or partition answers offset -1 without error, as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::group_common::error_of;
use super::{authz, str_bytes, HandlerFuture, Outcome, Request};
use crate::groups::{FetchedOffset, GroupAnswer, GroupCode, GroupOp};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

type Wanted = Option<Vec<(String, Vec<i32>)>>;
type Fetched = Result<Vec<(String, Vec<FetchedOffset>)>, GroupCode>;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: OffsetFetchRequest = request.decode()?;
        let response = if version >= 8 {
            let lookups = body.groups.iter().map(|g| {
                let wanted: Wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                fetch(
                    &shard,
                    &request,
                    g.group_id.0.to_string(),
                    wanted,
                    body.require_stable,
                )
            });
            let results = super::dedup::in_order(lookups).await;
            let groups = body
                .groups
                .iter()
                .zip(results)
                .map(|(g, result)| group_entry(g.group_id.clone(), result))
                .collect();
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            let wanted: Wanted = body.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let result = fetch(
                &shard,
                &request,
                body.group_id.0.to_string(),
                wanted.clone(),
                version >= 7 && body.require_stable,
            )
            .await;
            single_group(result, wanted, version)
        };
        Outcome::encoded(&response, version)
    })
}

async fn fetch(
    shard: &Rc<Shard>,
    request: &Request,
    group: String,
    topics: Wanted,
    require_stable: bool,
) -> Fetched {
    let all_topics = topics.is_none();
    let op = GroupOp::FetchOffsets {
        group,
        topics,
        require_stable,
    };
    match super::authz::route_group(shard, request, op).await {
        GroupAnswer::Fetched(found) => Ok(authorized_topics(shard, request, found, all_topics)),
        other => Err(error_of(&other)),
    }
}

/// Kafka: TOPIC DESCRIBE per topic. Asked for all topics, the others are left out; named,
/// their partitions answer TOPIC_AUTHORIZATION_FAILED without an offset.
fn authorized_topics(
    shard: &Shard,
    request: &Request,
    found: Vec<(String, Vec<FetchedOffset>)>,
    all_topics: bool,
) -> Vec<(String, Vec<FetchedOffset>)> {
    let describe = |topic: &str| {
        if all_topics {
            authz::allowed_quietly(
                shard,
                request,
                Operation::Describe,
                ResourceType::Topic,
                topic,
            )
        } else {
            authz::allowed(
                shard,
                request,
                Operation::Describe,
                ResourceType::Topic,
                topic,
            )
        }
    };
    found
        .into_iter()
        .filter_map(|(topic, offsets)| {
            if describe(&topic) {
                return Some((topic, offsets));
            }
            if all_topics {
                return None;
            }
            let refused = offsets
                .into_iter()
                .map(|o| FetchedOffset {
                    partition: o.partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error: crate::groups::GroupCode::TopicAuthorizationFailed,
                })
                .collect();
            Some((topic, refused))
        })
        .collect()
}

fn single_group(result: Fetched, wanted: Wanted, version: i16) -> OffsetFetchResponse {
    let (found, code) = match result {
        Ok(found) => (found, GroupCode::None),
        // v0-1 have no top-level error: the code goes on every requested partition.
        Err(code) => {
            let found = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let offsets = ps
                        .into_iter()
                        .map(|p| FetchedOffset {
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: Some(String::new()),
                            error: code,
                        })
                        .collect();
                    (t, offsets)
                })
                .collect();
            (found, code)
        }
    };
    let topics = found
        .into_iter()
        .map(|(topic, offsets)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&topic)))
                .with_partitions(
                    offsets
                        .into_iter()
                        .map(|o| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(o.partition)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(o.leader_epoch)
                                .with_metadata(o.metadata.as_deref().map(str_bytes))
                                .with_error_code(o.error.kafka_code())
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.error_code = code.kafka_code();
    }
    response
}

fn group_entry(group_id: GroupId, result: Fetched) -> OffsetFetchResponseGroup {
    let (found, code) = match result {
        Ok(found) => (found, GroupCode::None),
        Err(code) => (Vec::new(), code),
    };
    let topics = found
        .into_iter()
        .map(|(topic, offsets)| {
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(&topic)))
                .with_partitions(
                    offsets
                        .into_iter()
                        .map(|o| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(o.partition)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(o.leader_epoch)
                                .with_metadata(o.metadata.as_deref().map(str_bytes))
                                .with_error_code(o.error.kafka_code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
        .with_error_code(code.kafka_code())
}
