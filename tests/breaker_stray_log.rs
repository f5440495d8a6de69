//! A partition directory another topic of the same name left behind must never give its
//! records to a new topic. Found by corrupting the stores: with `__cluster/topics.toml` emptied
//! (or lost) the broker started with no topics, and a topic created again under an old name
//! reopened the old directory and served the old records. Kafka keeps the topic id in each
//! partition directory (`partition.metadata`) and treats a log of another topic id as stray;
//! Sluice now does the same and moves such a directory aside.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::kafka;
use common::{unique_name, Broker, BrokerOpts};

#[test]
fn a_new_topic_never_reopens_a_directory_of_an_old_one() {
    let mut broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("stray");
    kafka::create_topic(&broker, &topic, 2);
    let old = kafka::keyed_records(50, 5, 20);
    let producer = kafka::producer(&broker, &[]);
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &old, None));
    drop(producer);
    let marker = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("partition.metadata");
    assert!(marker.exists(), "no topic id in the partition directory");
    broker.stop();

    // The registry lost: the broker starts without the topic (and keeps its directories).
    std::fs::write(broker.data_dir().join("__cluster").join("topics.toml"), b"").unwrap();
    broker.start_again();
    kafka::create_topic(&broker, &topic, 2);
    let marks = kafka::watermarks(&broker, &topic, 2);
    assert!(
        marks.iter().all(|&(low, high)| low == 0 && high == 0),
        "the new topic holds the old topic's records: {marks:?}"
    );
    assert!(kafka::consume_all(&broker, &topic, 2).is_empty());
    // The old records are kept aside, not destroyed.
    let strays = std::fs::read_dir(broker.data_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&topic) && n.ends_with("-stray"))
        .count();
    assert_eq!(strays, 2, "both old partition directories moved aside");

    // The new topic's own records survive a restart (its directories are its own now).
    let new = kafka::keyed_records(10, 2, 20);
    kafka::round_trip(&broker, &unique_name("after"), 1, &new, &[]);
    let producer = kafka::producer(&broker, &[]);
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &new, None));
    drop(producer);
    broker.restart();
    let total: i64 = kafka::watermarks(&broker, &topic, 2)
        .iter()
        .map(|(low, high)| high - low)
        .sum();
    assert_eq!(total, 10);
}
