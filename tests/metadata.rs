//! Metadata and ListOffsets through librdkafka: the broker list, topic/partition leadership,
//! unknown topics, watermarks, earliest/latest and offsets by timestamp.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::kafka::{self, CALL_TIMEOUT, TIMESTAMP_BASE_MS};
use common::{unique_name, Broker, BrokerOpts};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn metadata_lists_the_broker_and_partition_leaders() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("described");
    kafka::create_topic(&broker, &topic, 6);
    let consumer = kafka::consumer(&broker);
    let md = consumer
        .fetch_metadata(None, CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata: {e}"));

    assert_eq!(md.brokers().len(), 1, "a single-node cluster");
    let me = &md.brokers()[0];
    assert_eq!(me.host(), "127.0.0.1");
    assert_eq!(i64::from(me.port()), i64::from(broker.socket_addr().port()));

    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap_or_else(|| panic!("{topic} listed"));
    assert_eq!(t.error(), None);
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    for p in t.partitions() {
        assert_eq!(p.error(), None);
        assert_eq!(
            p.leader(),
            me.id(),
            "partition {} led by the broker",
            p.id()
        );
        assert_eq!(p.replicas(), &[me.id()]);
        assert_eq!(p.isr(), &[me.id()]);
    }
}

#[test]
fn metadata_for_an_unknown_topic_reports_it_missing() {
    let broker = Broker::start(BrokerOpts::default());
    // Consumers ask with allow_auto_topic_creation=false, so the topic must not appear.
    let consumer = kafka::consumer(&broker);
    let missing = unique_name("missing");
    let md = consumer
        .fetch_metadata(Some(&missing), CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == missing)
        .expect("the requested topic is in the response");
    assert_eq!(
        t.error(),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );
    assert!(t.partitions().is_empty());
}

#[test]
fn list_offsets_earliest_latest_and_by_time() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("offsets");
    kafka::create_topic(&broker, &topic, 2);
    assert_eq!(kafka::watermarks(&broker, &topic, 2), vec![(0, 0), (0, 0)]);

    // Timestamps BASE + id, so record i of partition 0 has timestamp BASE + i.
    let records = kafka::keyed_records(500, 10, 80);
    let producer = kafka::producer(&broker, &[("linger.ms", "20")]);
    let acked = kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(0)));
    assert!(acked
        .iter()
        .all(|(id, &(_, off))| i64::try_from(*id).ok() == Some(off)));
    assert_eq!(
        kafka::watermarks(&broker, &topic, 2),
        vec![(0, 500), (0, 0)]
    );

    let consumer = kafka::consumer(&broker);
    let lookup = |partition: i32, offset: Offset| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, offset)
            .unwrap_or_else(|e| panic!("tpl: {e}"));
        let out = consumer
            .offsets_for_times(tpl, CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("offsets_for_times: {e}"));
        let elem = out
            .find_partition(&topic, partition)
            .expect("partition in result");
        assert!(elem.error().is_ok(), "{:?}", elem.error());
        elem.offset()
    };
    // ListOffsets with timestamp -2 / -1 is earliest / latest.
    assert_eq!(lookup(0, Offset::Beginning), Offset::Offset(0));
    assert_eq!(lookup(0, Offset::End), Offset::Offset(500));
    assert_eq!(lookup(1, Offset::Beginning), Offset::Offset(0));
    assert_eq!(lookup(1, Offset::End), Offset::Offset(0));
    // By time: the first offset whose timestamp is >= the target.
    for id in [0_i64, 1, 123, 255, 256, 499] {
        assert_eq!(
            lookup(0, Offset::Offset(TIMESTAMP_BASE_MS + id)),
            Offset::Offset(id),
            "timestamp BASE+{id}"
        );
    }
    assert_eq!(
        lookup(0, Offset::Offset(1)),
        Offset::Offset(0),
        "before every record"
    );
    assert_eq!(
        lookup(0, Offset::Offset(TIMESTAMP_BASE_MS + 10_000)),
        Offset::End,
        "after every record: no offset"
    );
    assert_eq!(
        lookup(1, Offset::Offset(TIMESTAMP_BASE_MS)),
        Offset::End,
        "empty partition"
    );
}
