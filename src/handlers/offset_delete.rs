//! OffsetDelete: removes committed offsets of a group for partitions it is not subscribed to
//! (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use std::rc::Rc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};

use super::group_common::error_of;
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::groups::{GroupAnswer, GroupCode, GroupOp};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: OffsetDeleteRequest = request.decode()?;
        let topics = body
            .topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                (t.name.0.to_string(), partitions)
            })
            .collect();
        // Kafka: GROUP DELETE, then TOPIC READ per topic (TOPIC_AUTHORIZATION_FAILED).
        let (topics, denied) = super::authz::split_readable_topics(
            &shard,
            &request,
            body.group_id.0.as_str(),
            Operation::Delete,
            topics,
        );
        let denied_code = GroupCode::TopicAuthorizationFailed;
        let denied_codes = denied.into_iter().map(|(t, ps): (String, Vec<i32>)| {
            let codes: Vec<(i32, GroupCode)> = ps.into_iter().map(|p| (p, denied_code)).collect();
            (t, codes)
        });
        let op = GroupOp::DeleteOffsets {
            group: body.group_id.0.to_string(),
            topics,
        };
        let response = match super::authz::route_group(&shard, &request, op).await {
            GroupAnswer::Partitions(codes) => {
                let topics = codes
                    .into_iter()
                    .chain(denied_codes)
                    .map(|(topic, partitions)| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(str_bytes(&topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, code)| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code.kafka_code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetDeleteResponse::default().with_topics(topics)
            }
            other => OffsetDeleteResponse::default().with_error_code(error_of(&other).kafka_code()),
        };
        Outcome::encoded(&response, version)
    })
}
