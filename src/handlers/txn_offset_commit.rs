//! TxnOffsetCommit v0-5: a transactional producer commits a group's offsets inside its
//! transaction (`send_offsets_to_transaction`). The offsets are written to the group's
//! `__consumer_offsets` partition as a transactional batch and stay invisible to OffsetFetch
//! until the transaction's COMMIT marker lands there (an ABORT drops them).
//!
//! As Kafka: TRANSACTIONAL_ID WRITE else TRANSACTIONAL_ID_AUTHORIZATION_FAILED, GROUP READ else
//! GROUP_AUTHORIZATION_FAILED, TOPIC READ per topic else TOPIC_AUTHORIZATION_FAILED. First the
//! transaction coordinator verifies (KIP-890) that the producer's epoch is current and the
//! group's offsets partition is in its transaction (AddOffsetsToTxn), else its code for every
//! partition (INVALID_TXN_STATE, PRODUCER_FENCED: INVALID_PRODUCER_EPOCH before v2, ...).

use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError as K;

use super::group_common::{owned, owned_opt};
use super::txn_common::{error_of, route, txn_allowed};
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::coordinator_log::TxnProducer;
use crate::groups::{CommitPartition, CommitRequest, GroupAnswer, GroupOp};
use crate::security::acl::Operation;
use crate::shard::Shard;
use crate::txn::{TxnAnswer, TxnCode, TxnOp};

const PRODUCER_FENCED_SINCE: i16 = 2;

type Codes = Vec<(String, Vec<(i32, i16)>)>;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: TxnOffsetCommitRequest = request.decode()?;
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
                        leader_epoch: if version >= 2 {
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
        let codes = commit(&shard, &request, &body, topics, version).await;
        let topics = codes
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(p, code)| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(code)
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::encoded(
            &TxnOffsetCommitResponse::default().with_topics(topics),
            version,
        )
    })
}

fn all(topics: &[(String, Vec<CommitPartition>)], code: i16) -> Codes {
    topics
        .iter()
        .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
        .collect()
}

async fn commit(
    shard: &Rc<Shard>,
    request: &Request,
    body: &TxnOffsetCommitRequest,
    topics: Vec<(String, Vec<CommitPartition>)>,
    version: i16,
) -> Codes {
    let id = body.transactional_id.0.to_string();
    let group = body.group_id.0.to_string();
    if !txn_allowed(shard, request, Operation::Write, &id) {
        return all(&topics, K::TransactionalIdAuthorizationFailed.code());
    }
    let (topics, denied) =
        super::authz::split_readable_topics(shard, request, &group, Operation::Read, topics);
    let mut denied_codes = all(&denied, K::TopicAuthorizationFailed.code());
    // The group's offsets partition must be in the producer's transaction.
    let (_, offsets_partition) = crate::groups::owner_of(shard, &group);
    let verify = TxnOp::AddPartitions {
        transactional_id: id,
        producer_id: body.producer_id.0,
        producer_epoch: body.producer_epoch,
        partitions: vec![(
            crate::groups::OFFSETS_TOPIC.to_owned(),
            i32::try_from(offsets_partition).unwrap_or(i32::MAX),
        )],
        verify_only: true,
    };
    let verified = match route(shard, verify).await {
        TxnAnswer::Partitions(codes) => codes.first().copied().unwrap_or(TxnCode::None),
        other => error_of(&other),
    };
    if verified != TxnCode::None {
        let mut codes = all(
            &topics,
            verified.for_version(version, PRODUCER_FENCED_SINCE),
        );
        codes.append(&mut denied_codes);
        return codes;
    }
    let op = GroupOp::Commit(CommitRequest {
        group,
        member_id: if version >= 3 {
            owned(&body.member_id)
        } else {
            String::new()
        },
        instance_id: owned_opt(&body.group_instance_id),
        generation: if version >= 3 { body.generation_id } else { -1 },
        topics: topics.clone(),
        txn: Some(TxnProducer {
            producer_id: body.producer_id.0,
            producer_epoch: body.producer_epoch,
        }),
    });
    let mut codes: Codes = match super::authz::route_group(shard, request, op).await {
        GroupAnswer::Partitions(codes) => codes
            .into_iter()
            .map(|(t, ps)| {
                (
                    t,
                    ps.into_iter().map(|(p, c)| (p, c.kafka_code())).collect(),
                )
            })
            .collect(),
        other => all(&topics, super::group_common::error_of(&other).kafka_code()),
    };
    codes.append(&mut denied_codes);
    codes
}
