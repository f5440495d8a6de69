//! OffsetCommit: validated against the group's generation on its coordinator shard, written to
//! `__consumer_offsets`, answered per partition.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::group_common::{error_of, owned, owned_opt};
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::groups::{CommitPartition, CommitRequest, GroupAnswer, GroupCode, GroupOp};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: OffsetCommitRequest = request.decode()?;
        let topics: Vec<(String, Vec<CommitPartition>)> = body
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: owned_opt(&p.committed_metadata),
                    })
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect();
        // Kafka: TOPIC READ per topic, else TOPIC_AUTHORIZATION_FAILED for its partitions (the
        // GROUP READ check, and its audit line, is route_group's).
        let (topics, denied) = super::authz::split_readable_topics(
            &shard,
            &request,
            body.group_id.0.as_str(),
            Operation::Read,
            topics,
        );
        let denied_code = GroupCode::TopicAuthorizationFailed;
        let denied_codes = denied.iter().map(|(t, ps)| {
            let codes: Vec<(i32, GroupCode)> =
                ps.iter().map(|p| (p.partition, denied_code)).collect();
            (t.clone(), codes)
        });
        let op = GroupOp::Commit(CommitRequest {
            group: body.group_id.0.to_string(),
            member_id: owned(&body.member_id),
            instance_id: owned_opt(&body.group_instance_id),
            generation: body.generation_id_or_member_epoch,
            topics: topics.clone(),
            txn: None,
        });
        let codes = match super::authz::route_group(&shard, &request, op).await {
            GroupAnswer::Partitions(codes) => codes,
            other => {
                let code = error_of(&other);
                topics
                    .iter()
                    .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
                    .collect()
            }
        };
        let topics = codes
            .into_iter()
            .chain(denied_codes)
            .map(|(topic, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, code)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(code.kafka_code())
                            })
                            .collect(),
                    )
            })
            .collect();
        Outcome::encoded(
            &OffsetCommitResponse::default().with_topics(topics),
            version,
        )
    })
}
