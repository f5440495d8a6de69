//! ListOffsets EARLIEST (-2) and EARLIEST_LOCAL (-4) on a replicated partition answer the log
//! start offset also when it is at the high watermark (breaker B8): an empty partition answers
//! 0 and a partition whose records were all deleted answers the high watermark, as Kafka's
//! `Partition.fetchOffsetForTimestamp` (only timestamp lookups are bounded by the last
//! fetchable offset). Sluice answered -1 there (no offset), which `kafka-get-offsets --time -2`
//! printed and consumers with `auto.offset.reset=earliest` could not start from.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{Cluster, ClusterOpts};
use common::kafka;
use rdkafka::{Offset, TopicPartitionList};

/// (error code, offset) of ListOffsets for partition 0 of `topic` at `timestamp`.
fn list_offset(addr: SocketAddr, topic: &str, timestamp: i64) -> (i16, i64) {
    common::cluster::list_offset(addr, topic, 0, timestamp)
}

#[test]
fn earliest_is_the_log_start_offset_on_empty_and_emptied_replicated_partitions() {
    let opts = ClusterOpts {
        extra_toml: "\"default.replication.factor\" = 3\n".into(),
        ..ClusterOpts::default()
    };
    let cluster = Cluster::start(opts);
    let topic = "earliest";
    assert_eq!(cluster.create_topic(topic, 1, Duration::from_secs(30)), 0);
    // The leader broker 0 names, once it applied its leadership.
    let index = cluster.wait_leader_serving(0, topic, 0);
    let addr = cluster.broker(index).socket_addr();
    // Empty: the log start offset, 0, for both earliest kinds; latest is 0 too.
    assert_eq!(list_offset(addr, topic, -2), (0, 0), "earliest, empty");
    assert_eq!(
        list_offset(addr, topic, -4),
        (0, 0),
        "earliest local, empty"
    );
    assert_eq!(list_offset(addr, topic, -1), (0, 0), "latest, empty");

    let producer = kafka::producer(cluster.broker(index), &[("acks", "all")]);
    let records = kafka::keyed_records(10, 2, 20);
    kafka::assert_all_acked(&kafka::produce(&producer, topic, &records, Some(0)));
    drop(producer);
    assert_eq!(list_offset(addr, topic, -2), (0, 0), "earliest, 10 records");

    // Every record deleted: the log start offset is the high watermark.
    let admin = kafka::admin(cluster.broker(index));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(10))
        .unwrap();
    let answer = common::block_on(admin.delete_records(&tpl, &kafka::admin_opts()))
        .expect("DeleteRecords answered");
    let elem = answer.find_partition(topic, 0).expect("partition answered");
    assert!(elem.error().is_ok(), "{:?}", elem.error());
    assert_eq!(
        list_offset(addr, topic, -2),
        (0, 10),
        "earliest, all deleted"
    );
    assert_eq!(
        list_offset(addr, topic, -4),
        (0, 10),
        "earliest local, all deleted"
    );
    assert_eq!(list_offset(addr, topic, -1), (0, 10), "latest, all deleted");
    // A timestamp past every record still finds none (-1), as Kafka.
    assert_eq!(
        list_offset(addr, topic, i64::MAX / 2).1,
        -1,
        "future timestamp"
    );
}
