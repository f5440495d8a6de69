//! The follower side of replication over a real connection: a `ReplicaFetcher` in this
//! process takes the replica id of a stopped follower of an RF=3 partition of a three-broker
//! cluster and replicates the partition from its leader into a local follower log, through
//! the replica Fetch (`replication::wire`); the follower's segment files end byte-identical to
//! the leader's (offsets, leader epochs, CRCs as the leader wrote them); the high watermark is
//! learnt. (A leader serves replica fetches only to the partition's replicas.)

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

use common::cluster::{topics_view, Cluster, ClusterOpts};
use common::{kafka, wait_until};
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

/// A three-broker cluster with an RF=3 topic `topic` whose follower `absent` is stopped (and
/// fenced out of the ISR): (cluster, leader index, absent node id, leader epoch).
fn cluster_with_absent_follower(topic: &str) -> (Cluster, usize, i32, i32) {
    let mut cluster = Cluster::start(ClusterOpts {
        extra_toml: "\"default.replication.factor\" = 3\n".into(),
        ..ClusterOpts::default()
    });
    assert_eq!(cluster.create_topic(topic, 1, Duration::from_secs(30)), 0);
    let partition = |cluster: &Cluster, i: usize| {
        topics_view(&cluster.metadata(i))
            .into_iter()
            .find(|t| t.0 == topic)
            .and_then(|t| t.2.first().cloned())
    };
    let mut leader = -1;
    wait_until(Duration::from_secs(20), "a leader", || {
        leader = partition(&cluster, 0).map_or(-1, |p| p.1);
        leader > 0
    });
    let leader_index = usize::try_from(leader - 1).unwrap();
    let absent_index = (leader_index + 1) % 3;
    let absent = Cluster::node_id(absent_index);
    cluster.broker_mut(absent_index).stop();
    let mut epoch = -1;
    wait_until(
        Duration::from_secs(30),
        "the stopped follower out of the ISR",
        || {
            partition(&cluster, leader_index).is_some_and(|p| {
                epoch = p.2;
                p.1 == leader && !p.4.contains(&absent)
            })
        },
    );
    (cluster, leader_index, absent, epoch)
}

#[test]
fn follower_replicates_byte_identical_over_the_wire() {
    let topic = "replica".to_owned();
    let (cluster, leader_index, absent, leader_epoch) = cluster_with_absent_follower(&topic);
    let broker = cluster.broker(leader_index);
    let producer = kafka::producer(broker, &[("acks", "all"), ("linger.ms", "5")]);
    kafka::produce(
        &producer,
        &topic,
        &kafka::keyed_records(300, 7, 64),
        Some(0),
    );
    let end = kafka::watermarks(broker, &topic, 1)[0].1;
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
        follower.become_follower(-1).unwrap();
        let config = FetcherConfig {
            replica_fetch_max_bytes: 4096,
            replica_fetch_wait_max_ms: 50,
            ..FetcherConfig::default()
        };
        let source = Cluster::node_id(leader_index);
        let mut fetcher = ReplicaFetcher::new(source, addr, absent, -1, 12, config, limits);
        fetcher.add_partition(follower.clone(), uuid::Uuid::nil(), -1);
        replicate_until(&mut fetcher, &follower, end).await;
        assert_eq!(
            segment_bytes(follower_dir.path()),
            segment_bytes(&leader_dir)
        );
        // More data: the follower continues from its log end.
        let producer = kafka::producer(broker, &[("acks", "all")]);
        kafka::produce(&producer, &topic, &kafka::keyed_records(50, 3, 10), Some(0));
        replicate_until(&mut fetcher, &follower, end + 50).await;
        fetcher
            .run_once(sluice::clock::system_now_ms())
            .await
            .unwrap();
        assert_eq!(fetcher.high_watermark(&topic, 0), Some(end + 50));
        assert_eq!(
            follower.latest_epoch(),
            leader_epoch,
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
    let topic = "replica-oor".to_owned();
    let (cluster, leader_index, absent, _) = cluster_with_absent_follower(&topic);
    let broker = cluster.broker(leader_index);
    let producer = kafka::producer(broker, &[("acks", "all")]);
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
        follower.become_follower(-1).unwrap();
        let source = Cluster::node_id(leader_index);
        let config = FetcherConfig::default();
        let mut fetcher = ReplicaFetcher::new(source, addr, absent, -1, 12, config, limits);
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
            verification_guard: None,
            records: tail,
            origin: sluice::partition::AppendOrigin::Client,
            acks: 1,
            flush_on_acks_all: false,
            now_ms: 0,
            timeout_ms: None,
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
        let producer = kafka::producer(broker, &[("acks", "all")]);
        kafka::produce(&producer, &topic, &kafka::keyed_records(10, 3, 16), Some(0));
        replicate_until(&mut fetcher, &follower, 50).await;
        assert_eq!(
            segment_bytes(follower_dir.path()),
            segment_bytes(&leader_dir)
        );
    });
}
