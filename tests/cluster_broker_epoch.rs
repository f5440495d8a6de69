//! The broker epoch as Kafka defines it (issue 10): the offset of the broker's
//! `RegisterBrokerRecord` in the metadata log. A one-voter controller quorum on a loopback port
//! chosen at run time, driven over the controller listener as brokers drive it: a registration
//! answers the offset its record committed at, a new incarnation gets a new (greater) epoch,
//! and heartbeats, producer-id blocks and AlterPartition with a stale epoch are refused with
//! STALE_BROKER_EPOCH.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Serialize};
use sluice::cluster::alter_partition_rpc::{AlterPartitionAnswer, AlterPartitionCall};
use sluice::cluster::quorum::lifecycle::{
    AllocateProducerIdsRequest, Answer, HeartbeatRequest, HeartbeatResponse, LifecycleError,
    ProducerIdBlock, RegistrationRequest,
};
use sluice::cluster::quorum::network::{
    call_controller, KIND_ALLOCATE_PRODUCER_IDS, KIND_ALTER_PARTITION, KIND_BROKER_HEARTBEAT,
    KIND_BROKER_REGISTRATION,
};
use sluice::cluster::quorum::shared_image::SharedImage;
use sluice::cluster::quorum::{Quorum, QuorumConfig, Voter};
use sluice::cluster::secure_stream::SecureStream;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn call<Req: Serialize, Resp: DeserializeOwned>(
    stream: &mut SecureStream,
    kind: u8,
    request: &Req,
) -> Answer<Resp> {
    call_controller::<Req, Answer<Resp>>(stream, kind, request, 1 << 20, TIMEOUT)
        .await
        .expect("the controller answers")
}

fn registration(incarnation_id: u128) -> RegistrationRequest {
    RegistrationRequest {
        cluster_id: QuorumConfig::new(1, Vec::new(), "/nonexistent".into()).cluster_id,
        broker_id: 7,
        incarnation_id,
        end_points: Vec::new(),
        rack: None,
    }
}

fn heartbeat(broker_epoch: i64, want_shutdown: bool) -> HeartbeatRequest {
    HeartbeatRequest {
        broker_id: 7,
        broker_epoch,
        metadata_offset: u64::MAX / 2,
        want_shutdown,
    }
}

#[test]
fn the_broker_epoch_is_the_registration_records_offset() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let voters = vec![Voter { node_id: 1, addr }];
    let mut config = QuorumConfig::new(1, voters, dir.path().join("metadata"));
    config.election_timeout_ms = 300;
    config.fetch_timeout_ms = 300;
    let image = Arc::new(SharedImage::default());
    let (forwarded, _calls) = flume::bounded(1);
    let quorum =
        Quorum::start_controller(config, image.clone(), Duration::from_secs(30), forwarded)
            .expect("start the controller");
    let deadline = Instant::now() + TIMEOUT;
    while quorum.leader() != Some(1) {
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(10));
    }
    compio::runtime::Runtime::new().unwrap().block_on(async {
        let mut stream = SecureStream::connect(addr, None).await.unwrap();
        let first: i64 = call(&mut stream, KIND_BROKER_REGISTRATION, &registration(1))
            .await
            .unwrap();
        let registered = image.current().image.broker(7).cloned().unwrap();
        assert_eq!(
            registered.broker_epoch, first,
            "the image holds the answered epoch"
        );
        let offset = image.current().offset;
        assert!(
            first > 0 && first as u64 <= offset,
            "{first} is an offset <= {offset}"
        );
        // The same incarnation asking again (a lost answer) keeps its epoch.
        let again: i64 = call(&mut stream, KIND_BROKER_REGISTRATION, &registration(1))
            .await
            .unwrap();
        assert_eq!(again, first);
        let answer: HeartbeatResponse =
            call(&mut stream, KIND_BROKER_HEARTBEAT, &heartbeat(first, false))
                .await
                .unwrap();
        assert!(!answer.is_fenced, "caught up and current: unfenced");
        // Another incarnation while this one is alive: refused (duplicate node.id).
        let duplicate: Answer<i64> =
            call(&mut stream, KIND_BROKER_REGISTRATION, &registration(2)).await;
        assert_eq!(
            duplicate,
            Err(LifecycleError::DuplicateBrokerRegistration(7))
        );
        // After a controlled shutdown the next incarnation registers with a new epoch: the
        // offset of its own record, after everything committed before it.
        let _: HeartbeatResponse =
            call(&mut stream, KIND_BROKER_HEARTBEAT, &heartbeat(first, true))
                .await
                .unwrap();
        let before = image.current().offset;
        let second: i64 = call(&mut stream, KIND_BROKER_REGISTRATION, &registration(2))
            .await
            .unwrap();
        assert!(
            second as u64 > before,
            "new epoch {second} after offset {before}"
        );
        assert_eq!(
            image.current().image.broker(7).unwrap().broker_epoch,
            second
        );
        // The old epoch is stale everywhere a broker names it.
        let stale: Answer<HeartbeatResponse> =
            call(&mut stream, KIND_BROKER_HEARTBEAT, &heartbeat(first, false)).await;
        assert_eq!(stale, Err(LifecycleError::StaleBrokerEpoch));
        let request = AllocateProducerIdsRequest {
            broker_id: 7,
            broker_epoch: first,
        };
        let stale: Answer<ProducerIdBlock> =
            call(&mut stream, KIND_ALLOCATE_PRODUCER_IDS, &request).await;
        assert_eq!(stale, Err(LifecycleError::StaleBrokerEpoch));
        let alter = AlterPartitionCall {
            broker_id: 7,
            broker_epoch: first,
            topics: Vec::new(),
        };
        let stale: Answer<AlterPartitionAnswer> =
            call(&mut stream, KIND_ALTER_PARTITION, &alter).await;
        assert_eq!(stale, Err(LifecycleError::StaleBrokerEpoch));
        // The current epoch works.
        let answer: HeartbeatResponse = call(
            &mut stream,
            KIND_BROKER_HEARTBEAT,
            &heartbeat(second, false),
        )
        .await
        .unwrap();
        assert!(!answer.is_fenced);
        let alter = AlterPartitionCall {
            broker_id: 7,
            broker_epoch: second,
            topics: Vec::new(),
        };
        let ok: Answer<AlterPartitionAnswer> =
            call(&mut stream, KIND_ALTER_PARTITION, &alter).await;
        assert!(ok.is_ok(), "{ok:?}");
    });
    quorum.shutdown();
}
