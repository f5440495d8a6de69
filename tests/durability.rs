//! Durability through the real broker with librdkafka: a graceful restart (SIGTERM, exit 0)
//! keeps every message and topic; a kill -9 loses no acknowledged (acks=all) message and
//! recovers a log with contiguous offsets that accepts new appends where it left off.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::kafka::{self, TestRecord};
use common::{unique_name, Broker, BrokerOpts};
use rdkafka::producer::{Producer, PurgeConfig};

#[test]
fn graceful_restart_keeps_every_message() {
    let mut broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("restart");
    let empty_topic = unique_name("restart-empty");
    kafka::create_topic(&broker, &topic, 4);
    kafka::create_topic(&broker, &empty_topic, 3);
    let records = kafka::keyed_records(10_000, 100, 200);
    let producer = kafka::producer(&broker, &[]);
    let acked = kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, None));
    drop(producer);
    let marks_before = kafka::watermarks(&broker, &topic, 4);

    broker.restart();

    kafka::wait_for_topic(&broker, &empty_topic, 3);
    assert_eq!(kafka::watermarks(&broker, &empty_topic, 3), vec![(0, 0); 3]);
    assert_eq!(kafka::watermarks(&broker, &topic, 4), marks_before);
    let received = kafka::consume_all(&broker, &topic, 4);
    kafka::assert_exactly_once(&records, &acked, &received);
    assert_appends_continue(&broker, &topic, &marks_before);
}

/// After a restart, a new record in each partition lands at the old high watermark.
fn assert_appends_continue(broker: &Broker, topic: &str, marks: &[(i64, i64)]) {
    let extra: Vec<TestRecord> = kafka::keyed_records(marks.len(), 1, 50);
    let producer = kafka::producer(broker, &[]);
    for (p, rec) in extra.iter().enumerate() {
        kafka::send_one(&producer, topic, rec, Some(i32::try_from(p).unwrap_or(0)));
    }
    let deliveries = kafka::flush_all(&producer, extra.len());
    for d in deliveries {
        let (p, offset) = d
            .result
            .unwrap_or_else(|e| panic!("append after restart: {e}"));
        let high = marks[usize::try_from(p).unwrap_or(usize::MAX)].1;
        assert_eq!(offset, high, "partition {p}: first offset after restart");
    }
}

#[test]
fn kill_9_loses_no_acknowledged_message() {
    kill_9_loses_nothing_acknowledged(BrokerOpts::default(), false);
}

/// The same with zero-ahead on (`log.zero.ahead.bytes`, `storage/src/prealloc.rs`): the
/// killed broker's active segments end in zeros, which recovery must read as their end.
#[test]
fn kill_9_with_zeros_ahead_of_the_active_segments_loses_no_acknowledged_message() {
    let opts = BrokerOpts::default().config("\"log.zero.ahead.bytes\" = 65536\n");
    kill_9_loses_nothing_acknowledged(opts, true);
}

/// Bytes of the `.log` files under `dir` that follow the last nonzero byte of each.
fn zero_tail_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            total += zero_tail_bytes(&path);
        } else if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).unwrap();
            let data = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            total += (bytes.len() - data) as u64;
        }
    }
    total
}

/// Produces with acks=all, kill -9s the broker mid-stream, restarts it: every acknowledged
/// record is there at its offset, offsets are contiguous, appends continue. `zeros`: the
/// killed broker's segment files must end in zeros (zero-ahead was on), so the recovery read
/// them (how it reports them is `storage/tests/prealloc.rs`'s).
fn kill_9_loses_nothing_acknowledged(opts: BrokerOpts, zeros: bool) {
    let mut broker = Broker::start(opts);
    let topic = unique_name("crash");
    let partitions = 4;
    kafka::create_topic(&broker, &topic, partitions);
    let records = kafka::keyed_records(60_000, 100, 200);
    let acked_before_kill = 10_000;
    let producer = kafka::producer(
        &broker,
        &[("linger.ms", "1"), ("message.timeout.ms", "10000")],
    );
    // Keep at most `window` records unacknowledged, so the kill lands mid-stream.
    let window = 2_000;
    let mut sent = 0;
    for rec in &records {
        kafka::send_one(&producer, &topic, rec, None);
        sent += 1;
        while sent - producer.context().delivered_count() > window {
            producer.poll(Duration::from_millis(10));
        }
        if sent % 100 == 0 {
            producer.poll(Duration::ZERO);
            if producer.context().acked_count() >= acked_before_kill {
                break;
            }
        }
    }
    assert!(
        sent < records.len(),
        "the broker acknowledged {acked_before_kill} records only after all {sent} were sent"
    );
    broker.kill9();
    // Every ack we can still collect was sent before the broker died, so it counts too.
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = producer.flush(Duration::from_secs(5));
    let deliveries = producer.context().take();
    drop(producer);
    let acked: HashMap<usize, (i32, i64)> = deliveries
        .iter()
        .filter_map(|d| d.result.as_ref().ok().map(|r| (d.id, *r)))
        .collect();
    assert!(acked.len() >= acked_before_kill);
    if zeros {
        assert!(
            zero_tail_bytes(&broker.data_dir()) > 0,
            "no zeros ahead when killed"
        );
    }

    broker.start_again();

    let marks = kafka::watermarks(&broker, &topic, partitions);
    for (p, (low, _)) in marks.iter().enumerate() {
        assert_eq!(*low, 0, "partition {p}: log start after recovery");
    }
    let received = kafka::consume_all(&broker, &topic, partitions);
    let mut present = HashSet::new();
    for r in &received {
        let rec = kafka::record_of(&records, r);
        assert!(present.insert(rec.id), "record {} stored twice", rec.id);
        kafka::assert_matches_sent(rec, r);
        if let Some(&at) = acked.get(&rec.id) {
            assert_eq!((r.partition, r.offset), at, "record {} moved", rec.id);
        }
    }
    let lost: Vec<_> = acked.keys().filter(|id| !present.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    // Offsets contiguous from 0 in every partition, per-key order kept.
    kafka::assert_partition_order(&records, &received);
    for (p, (_, high)) in marks.iter().enumerate() {
        let count = received
            .iter()
            .filter(|r| usize::try_from(r.partition).ok() == Some(p))
            .count();
        assert_eq!(
            i64::try_from(count).ok(),
            Some(*high),
            "partition {p}: 0..high all present"
        );
    }
    assert_appends_continue(&broker, &topic, &marks);
}
