//! A transactional request sent to a broker that is not its id's coordinator (another broker
//! leads the id's `__transaction_state` partition) answers NOT_COORDINATOR (16), as Kafka's
//! `TransactionStateManager` does, so the client looks the coordinator up again; it answered
//! COORDINATOR_LOAD_IN_PROGRESS (14), which makes a client retry the same broker. Found trying
//! the cluster as a new user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::cluster::{Cluster, ClusterOpts};
use common::wait_until;
use common::wire;
use kafka_protocol::messages::{
    ApiKey, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const TXN_ID: &str = "newuser-not-coordinator";

/// The node id of `TXN_ID`'s coordinator as broker `index` reports it (key type 1), once known.
fn coordinator(cluster: &Cluster, index: usize) -> Option<i32> {
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str(TXN_ID)]);
    let resp: FindCoordinatorResponse = wire::call(
        cluster.broker(index).socket_addr(),
        ApiKey::FindCoordinator,
        4,
        &req,
    );
    let found = resp.coordinators.first()?;
    (found.error_code == 0 && found.node_id.0 > 0).then_some(found.node_id.0)
}

#[test]
fn a_broker_that_is_not_the_coordinator_answers_not_coordinator() {
    let cluster = Cluster::start(ClusterOpts::default());
    let mut found = None;
    wait_until(Duration::from_secs(30), "the id's coordinator", || {
        found = coordinator(&cluster, 0);
        found.is_some()
    });
    let coordinator_id = found.expect("a coordinator");
    let coordinator_index = usize::try_from(coordinator_id - 1).expect("node ids from 1");
    let other = (coordinator_index + 1) % 3;
    let addr = cluster.broker(other).socket_addr();

    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(TXN_ID))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp: InitProducerIdResponse = wire::call(addr, ApiKey::InitProducerId, 4, &init);
    assert_ne!(resp.error_code, COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(
        resp.error_code, NOT_COORDINATOR,
        "InitProducerId off the coordinator"
    );

    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str(TXN_ID)))
        .with_producer_id(ProducerId(1))
        .with_producer_epoch(0)
        .with_committed(true);
    let resp: EndTxnResponse = wire::call(addr, ApiKey::EndTxn, 3, &end);
    assert_eq!(
        resp.error_code, NOT_COORDINATOR,
        "EndTxn off the coordinator"
    );

    // The coordinator itself serves the id (once its partition is loaded).
    let coordinator_addr = cluster.broker(coordinator_index).socket_addr();
    wait_until(
        Duration::from_secs(30),
        "InitProducerId on the coordinator",
        || {
            let resp: InitProducerIdResponse =
                wire::call(coordinator_addr, ApiKey::InitProducerId, 4, &init);
            assert_ne!(
                resp.error_code, NOT_COORDINATOR,
                "the coordinator refused its id"
            );
            resp.error_code == 0
        },
    );
}
