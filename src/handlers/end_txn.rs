//! EndTxn v0-5: a producer commits or aborts its transaction. The coordinator persists
//! PrepareCommit/PrepareAbort, writes the markers to every partition of the transaction, then
//! CompleteCommit/CompleteAbort. v5+ is KIP-890's transaction version 2: the epoch is bumped by
//! every end and answered with the producer id.
//!
//! As Kafka: TRANSACTIONAL_ID WRITE else TRANSACTIONAL_ID_AUTHORIZATION_FAILED; PRODUCER_FENCED
//! is INVALID_PRODUCER_EPOCH before v2.

use std::rc::Rc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use kafka_protocol::ResponseError as K;

use super::txn_common::{route, txn_allowed};
use super::{HandlerFuture, Outcome, Request};
use crate::security::acl::Operation;
use crate::shard::Shard;
use crate::txn::{TxnAnswer, TxnCode, TxnOp};

const PRODUCER_FENCED_SINCE: i16 = 2;
/// EndTxn v5+: transaction version 2 (epoch bump per transaction).
const TV2_SINCE: i16 = 5;

pub fn handle(shard: Rc<Shard>, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let version = request.version();
        let body: EndTxnRequest = request.decode()?;
        let id = body.transactional_id.0.to_string();
        let (code, producer_id, producer_epoch) =
            if !txn_allowed(&shard, &request, Operation::Write, &id) {
                (K::TransactionalIdAuthorizationFailed.code(), -1, -1)
            } else {
                let op = TxnOp::EndTxn {
                    transactional_id: id,
                    producer_id: body.producer_id.0,
                    producer_epoch: body.producer_epoch,
                    commit: body.committed,
                    bump_epoch: version >= TV2_SINCE,
                };
                match route(&shard, op).await {
                    TxnAnswer::Producer {
                        code,
                        producer_id,
                        producer_epoch,
                    } => (
                        code.for_version(version, PRODUCER_FENCED_SINCE),
                        producer_id,
                        producer_epoch,
                    ),
                    TxnAnswer::Error(code) => {
                        (code.for_version(version, PRODUCER_FENCED_SINCE), -1, -1)
                    }
                    _ => (TxnCode::UnknownServerError.code(), -1, -1),
                }
            };
        let response = EndTxnResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch);
        Outcome::encoded(&response, version)
    })
}
