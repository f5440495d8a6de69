//! Replication across three `sluice` processes (issue 11): an RF=3 topic produced with
//! acks=all is replicated to both followers by their replica fetchers (the leader's bytes
//! unchanged: every replica's segments byte-identical) and consumers read every acknowledged
//! record from the leader.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::checker::QueueChecker;
use common::cluster::{topics_view, Cluster, ClusterOpts};
use common::wait_until;

/// The `.log` segment files of a partition directory, concatenated in name order.
fn segment_bytes(dir: &Path) -> Vec<u8> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect()
}

/// (leader, replicas, ISR) of partition 0 of `topic` as broker `index` answers it.
fn registration(cluster: &Cluster, index: usize, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    topics_view(&cluster.metadata(index))
        .into_iter()
        .find(|t| t.0 == topic)
        .and_then(|t| t.2.first().cloned())
        .map(|p| (p.1, p.3, p.4))
}

#[test]
fn acks_all_records_reach_every_replica_byte_for_byte() {
    let opts = ClusterOpts {
        extra_toml: "\"default.replication.factor\" = 3\n".into(),
        ..ClusterOpts::default()
    };
    let cluster = Cluster::start(opts);
    let topic = "replicated";
    assert_eq!(cluster.create_topic(topic, 1, Duration::from_secs(30)), 0);
    let mut leader = -1;
    wait_until(Duration::from_secs(20), "the topic on every broker, led, RF=3", || {
        let views: Vec<_> = (0..3).map(|i| registration(&cluster, i, topic)).collect();
        match &views[0] {
            Some((l, replicas, _)) if *l > 0 && replicas.len() == 3 => {
                leader = *l;
                views.iter().all(|v| v == &views[0])
            }
            _ => false,
        }
    });
    let leader_index = usize::try_from(leader - 1).unwrap();
    let producer = common::kafka::producer(cluster.broker(leader_index), &[("acks", "all")]);
    let sent = common::kafka::keyed_records(300, 7, 100);
    let mut checker = QueueChecker::new();
    for record in &sent {
        checker.sent(&record.value);
    }
    let deliveries = common::kafka::produce(&producer, topic, &sent, Some(0));
    let placed = common::kafka::assert_all_acked(&deliveries);
    // One producer stream: acknowledged in offset order.
    let mut by_offset: Vec<(i64, usize)> = placed.iter().map(|(id, (_, o))| (*o, *id)).collect();
    by_offset.sort_unstable();
    assert_eq!(by_offset.len(), sent.len(), "every record acknowledged");
    for (_, id) in by_offset {
        checker.acked(0, "p", &sent[id].value);
    }
    // acks=all answered only once the high watermark passed every batch: both followers
    // had fetched them; their segments are the leader's bytes.
    let dir = |i: usize| cluster.broker(i).data_dir().join(format!("{topic}-0"));
    let leader_bytes = segment_bytes(&dir(leader_index));
    assert!(!leader_bytes.is_empty(), "the leader stored the records");
    for i in (0..3).filter(|i| *i != leader_index) {
        wait_until(
            Duration::from_secs(20),
            &format!("broker {} to hold the leader's segment bytes", i + 1),
            || segment_bytes(&dir(i)) == leader_bytes,
        );
    }
    // Consumers read everything from the leader (high watermark = the log end).
    let received = common::kafka::consume_all(cluster.broker(leader_index), topic, 1);
    assert_eq!(received.len(), sent.len());
    for r in &received {
        checker.read(r.partition, r.offset, r.value.as_deref().unwrap_or_default());
    }
    let report = checker.report();
    assert!(report.is_clean(), "{report:?}");
}
