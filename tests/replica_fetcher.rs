//! The follower side of replication over a real connection: a `ReplicaFetcher` (replica id 2)
//! replicates a partition from a running broker into a local follower log, through the
//! replica Fetch (`replication::wire`), and the follower's segment files end byte-identical to
//! the broker's (offsets, leader epochs, CRCs as the leader wrote them); the high watermark is
//! learnt. The broker does not yet serve replica fetches specially (it answers them as a
//! consumer's, up to its high watermark, which for a single replica is its log end), so this
//! pins the follower half only.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::kafka;
use common::{unique_name, Broker, BrokerOpts};
use sluice::cluster::replica_fetcher::ReplicaFetcher;
use sluice::partition::{Partition, PartitionProxy, TopicPartition};
use sluice::replication::fetcher::FetcherConfig;

fn segment_bytes(dir: &Path) -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect()
}

async fn replicate_until(fetcher: &mut ReplicaFetcher, follower: &Partition, end: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while follower.log_end_offset() < end {
        assert!(
            Instant::now() < deadline,
            "follower stuck at {}",
            follower.log_end_offset()
        );
        fetcher
            .run_once(sluice::clock::system_now_ms())
            .await
            .unwrap();
    }
}

#[test]
fn follower_replicates_byte_identical_over_the_wire() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let topic = unique_name("replica");
    kafka::create_topic(&broker, &topic, 1);
    kafka::wait_for_topic(&broker, &topic, 1);
    let producer = kafka::producer(&broker, &[("acks", "all"), ("linger.ms", "5")]);
    kafka::produce(
        &producer,
        &topic,
        &kafka::keyed_records(300, 7, 64),
        Some(0),
    );
    let end = kafka::watermarks(&broker, &topic, 1)[0].1;
    assert_eq!(end, 300);
    let leader_dir = broker.data_dir().join(format!("{topic}-0"));
    let follower_dir = tempfile::tempdir().unwrap();
    let addr = broker.socket_addr();

    compio::runtime::Runtime::new().unwrap().block_on(async {
        let log = storage::Log::open(
            follower_dir.path().to_path_buf(),
            storage::LogConfig::default(),
        )
        .await
        .unwrap();
        let limits = sluice::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = sluice::producers::ProducerStates::new(limits.state);
        let follower = Rc::new(Partition::new(
            TopicPartition::new(&topic, 0),
            log,
            8,
            producers,
        ));
        follower.become_follower(0).unwrap();
        let config = FetcherConfig {
            replica_fetch_max_bytes: 4096,
            replica_fetch_wait_max_ms: 50,
            ..FetcherConfig::default()
        };
        let mut fetcher = ReplicaFetcher::new(1, addr, 2, -1, 12, config, limits);
        fetcher.add_partition(follower.clone(), uuid::Uuid::nil(), -1);
        replicate_until(&mut fetcher, &follower, end).await;
        assert_eq!(
            segment_bytes(follower_dir.path()),
            segment_bytes(&leader_dir)
        );
        // More data: the follower continues from its log end.
        let producer = kafka::producer(&broker, &[("acks", "all")]);
        kafka::produce(&producer, &topic, &kafka::keyed_records(50, 3, 10), Some(0));
        replicate_until(&mut fetcher, &follower, end + 50).await;
        fetcher
            .run_once(sluice::clock::system_now_ms())
            .await
            .unwrap();
        assert_eq!(fetcher.high_watermark(&topic, 0), Some(end + 50));
        assert_eq!(
            follower.latest_epoch(),
            0,
            "the leader's epoch, learnt from its batches"
        );
        assert_eq!(
            segment_bytes(follower_dir.path()),
            segment_bytes(&leader_dir)
        );
    });
}

/// A follower whose log runs past the leader's end (what an unclean election leaves behind)
/// gets OFFSET_OUT_OF_RANGE, asks the leader's log end and start (ListOffsets), truncates to
/// the leader's end and continues byte-identical (Kafka's `fetchOffsetAndTruncate`).
#[test]
fn follower_past_the_leaders_end_truncates_to_it() {
    let broker = Broker::start(BrokerOpts::default().cores(1));
    let topic = unique_name("replica-oor");
    kafka::create_topic(&broker, &topic, 1);
    kafka::wait_for_topic(&broker, &topic, 1);
    let producer = kafka::producer(&broker, &[("acks", "all")]);
    kafka::produce(&producer, &topic, &kafka::keyed_records(40, 3, 16), Some(0));
    let leader_dir = broker.data_dir().join(format!("{topic}-0"));
    let follower_dir = tempfile::tempdir().unwrap();
    let addr = broker.socket_addr();

    compio::runtime::Runtime::new().unwrap().block_on(async {
        let log = storage::Log::open(
            follower_dir.path().to_path_buf(),
            storage::LogConfig::default(),
        )
        .await
        .unwrap();
        let limits = sluice::config::BrokerConfig::default().producer_rebuild_limits();
        let producers = sluice::producers::ProducerStates::new(limits.state);
        let follower = Rc::new(Partition::new(
            TopicPartition::new(&topic, 0),
            log,
            8,
            producers,
        ));
        follower.become_follower(0).unwrap();
        let mut fetcher = ReplicaFetcher::new(1, addr, 2, -1, 12, FetcherConfig::default(), limits);
        fetcher.add_partition(follower.clone(), uuid::Uuid::nil(), -1);
        replicate_until(&mut fetcher, &follower, 40).await;
        // This replica then led in a later epoch and wrote records nobody else has.
        follower.become_leader(7).await.unwrap();
        let tail = storage::BatchBuilder::new(1_000)
            .record(Some(b"k"), Some(b"divergent"), &[])
            .record(Some(b"k"), Some(b"divergent-2"), &[])
            .build()
            .freeze();
        let request = sluice::partition::AppendRequest {
            records: tail,
            origin: sluice::partition::AppendOrigin::Client,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: 0,
        };
        follower.clone().append(request).await.unwrap();
        assert_eq!(follower.log_end_offset(), 42);
        follower.become_follower(7).unwrap();
        fetcher.remove_partition(&topic, 0);
        fetcher.add_partition(follower.clone(), uuid::Uuid::nil(), -1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let round = fetcher
                .run_once(sluice::clock::system_now_ms())
                .await
                .unwrap();
            if round.truncations > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no out-of-range reset");
        }
        assert_eq!(
            follower.log_end_offset(),
            40,
            "truncated to the leader's end"
        );
        assert_eq!(
            segment_bytes(follower_dir.path()),
            segment_bytes(&leader_dir)
        );
        let producer = kafka::producer(&broker, &[("acks", "all")]);
        kafka::produce(&producer, &topic, &kafka::keyed_records(10, 3, 16), Some(0));
        replicate_until(&mut fetcher, &follower, 50).await;
        assert_eq!(
            segment_bytes(follower_dir.path()),
            segment_bytes(&leader_dir)
        );
    });
}
