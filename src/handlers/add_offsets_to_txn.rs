//! AddOffsetsToTxn v0-4: a producer about to send TxnOffsetCommit adds the group's
//! `__consumer_offsets` partition to its transaction, so the transaction's marker completes the
//! offsets there.
//!
//! As Kafka: TRANSACTIONAL_ID WRITE else TRANSACTIONAL_ID_AUTHORIZATION_FAILED, GROUP READ else
//! GROUP_AUTHORIZATION_FAILED; then the coordinator's code (PRODUCER_FENCED is
//! INVALID_PRODUCER_EPOCH before v2).

use std::rc::Rc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::ResponseError as K;

use super::txn_common::{error_of, route, txn_allowed};
use super::{HandlerFuture, Outcome, Request};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;
use crate::txn::{TxnAnswer, TxnCode, TxnOp};

const PRODUCER_FENCED_SINCE: i16 = 2;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: AddOffsetsToTxnRequest = request.decode()?;
        let id = body.transactional_id.0.to_string();
        let group = body.group_id.0.to_string();
        let code = if !txn_allowed(&shard, &request, Operation::Write, &id) {
            K::TransactionalIdAuthorizationFailed.code()
        } else if !super::authz::allowed(
            &shard,
            &request,
            Operation::Read,
            ResourceType::Group,
            &group,
        ) {
            K::GroupAuthorizationFailed.code()
        } else {
            let (_, offsets_partition) = crate::groups::owner_of(&shard.group_context(), &group);
            let partition = i32::try_from(offsets_partition).unwrap_or(i32::MAX);
            let op = TxnOp::AddPartitions {
                transactional_id: id,
                producer_id: body.producer_id.0,
                producer_epoch: body.producer_epoch,
                partitions: vec![(crate::groups::OFFSETS_TOPIC.to_owned(), partition)],
                verify_only: false,
            };
            let code = match route(&shard, op).await {
                TxnAnswer::Partitions(codes) => codes
                    .first()
                    .copied()
                    .unwrap_or(TxnCode::UnknownServerError),
                other => error_of(&other),
            };
            code.for_version(version, PRODUCER_FENCED_SINCE)
        };
        let response = AddOffsetsToTxnResponse::default().with_error_code(code);
        Outcome::encoded(&response, version)
    })
}
