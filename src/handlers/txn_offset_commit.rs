//! TxnOffsetCommit v0-5: a transactional producer commits a group's offsets inside its
//! transaction (`send_offsets_to_transaction`). The offsets are written to the group's
//! `__consumer_offsets` partition as a transactional batch and stay invisible to OffsetFetch
//! until the transaction's COMMIT marker lands there (an ABORT drops them).
//!
//! As Kafka: TRANSACTIONAL_ID WRITE else TRANSACTIONAL_ID_AUTHORIZATION_FAILED, GROUP READ else
//! GROUP_AUTHORIZATION_FAILED, TOPIC READ per topic else TOPIC_AUTHORIZATION_FAILED. First the
//! transaction coordinator (on this broker or another, `txn::verify`) verifies (KIP-890) that the
//! producer's epoch is current and the group's offsets partition is in its transaction
//! (AddOffsetsToTxn); from v5 (transaction version 2) it adds that partition itself. Else its
//! code for every partition (`verification_code`).

use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError as K;

use super::group_common::{owned, owned_opt};
use super::txn_common::txn_allowed;
use super::{str_bytes, HandlerFuture, Outcome, Request};
use crate::coordinator_log::TxnProducer;
use crate::groups::{CommitPartition, CommitRequest, GroupAnswer, GroupOp};
use crate::security::acl::Operation;
use crate::shard::Shard;

const PRODUCER_FENCED_SINCE: i16 = 2;
/// TxnOffsetCommit v5+: transaction version 2 (the offsets partition is added implicitly).
const TV2_SINCE: i16 = 5;

/// The code a failed verification answers at `version`: PRODUCER_FENCED is
/// INVALID_PRODUCER_EPOCH before v2; TRANSACTION_ABORTABLE (partition not in the transaction)
/// is INVALID_TXN_STATE before v5; the coordinator's transient errors are
/// COORDINATOR_NOT_AVAILABLE, which clients retry (Kafka's group coordinator maps them so).
fn verification_code(code: i16, version: i16) -> i16 {
    match code {
        c if c == K::ProducerFenced.code() && version < PRODUCER_FENCED_SINCE => {
            K::InvalidProducerEpoch.code()
        }
        c if c == K::TransactionAbortable.code() && version < TV2_SINCE => {
            K::InvalidTxnState.code()
        }
        c if c == K::NetworkException.code()
            || c == K::NotCoordinator.code()
            || c == K::CoordinatorLoadInProgress.code() =>
        {
            K::CoordinatorNotAvailable.code()
        }
        c => c,
    }
}

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
    // The group's offsets partition must be in the producer's transaction (TV2, v5+: the
    // coordinator adds it, as AddOffsetsToTxn would), wherever its coordinator is.
    let (_, offsets_partition) = crate::groups::owner_of(&shard.group_context(), &group);
    let verify = crate::txn::verify::VerifyRequest {
        transactional_id: id,
        producer_id: body.producer_id.0,
        producer_epoch: body.producer_epoch,
        partitions: vec![(
            crate::groups::OFFSETS_TOPIC.to_owned(),
            i32::try_from(offsets_partition).unwrap_or(i32::MAX),
        )],
        add: version >= TV2_SINCE && shard.config.transaction.transaction_version >= 2,
    };
    let verified = crate::txn::verify::verify(&shard.txn_coordinator_context(), verify)
        .await
        .first()
        .copied()
        .unwrap_or(0);
    if verified != 0 {
        let mut codes = all(&topics, verification_code(verified, version));
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
