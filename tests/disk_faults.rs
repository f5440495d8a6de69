//! An unrecoverable disk error stops the whole broker: with the storage test hook injecting one
//! EIO (`storage::fault`) into a segment fsync or append write of a 2-shard broker under
//! acks=all load, the process exits with code 70 within seconds, logs one fatal line naming the
//! partition and the error, stops listening, never acknowledged a produce the failed fsync
//! should have covered, and after a restart without the fault keeps every acknowledged record
//! and serves produce and consume again.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::kafka::{self, TestRecord};
use common::{unique_name, Broker, BrokerOpts};
use rdkafka::producer::{Producer, PurgeConfig};
use storage::fault::{FSYNC_EIO_AFTER_VAR, WRITE_EIO_AFTER_VAR};

/// `shards::FATAL_EXIT_CODE` (EX_SOFTWARE).
const FATAL_EXIT_CODE: i32 = 70;
/// The fault hits after this many segment fsyncs / writes went through, early in the load.
const FAULT_AFTER: &str = "20";
/// From the injection to the process being gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// From the exit to the listening port refusing connections.
const LISTENER_GONE_TIMEOUT: Duration = Duration::from_secs(5);
/// Logged by the hook when it fails an operation.
const INJECTED_MARK: &str = "injecting EIO";
const FATAL_MARK: &str = "fatal: storage I/O error on ";
const PARTITIONS: i32 = 4;
/// Records produced at most before the fault must have hit.
const RECORDS_MAX: usize = 50_000;
/// Unacknowledged records in flight at most.
const WINDOW: usize = 500;

/// What a broker that died of an injected fault left behind.
struct Fatal {
    /// The partition named by the fatal line.
    partition: i32,
    /// The fatal line's text after `fatal: `.
    message: String,
    /// Acknowledged record id -> (partition, offset).
    acked: HashMap<usize, (i32, i64)>,
}

#[test]
fn fsync_eio_stops_the_broker_and_loses_no_acknowledged_record() {
    let topic = unique_name("fsync-eio");
    let records = kafka::keyed_records(RECORDS_MAX, 100, 200);
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .env(FSYNC_EIO_AFTER_VAR, FAULT_AFTER),
    );
    let fatal = produce_until_fatal(&mut broker, &topic, &records);
    assert!(fatal.message.contains("fsync failed"), "{}", fatal.message);
    // Nothing at or past the durable end the failed fsync left was acknowledged.
    let lost_from = not_durable_from(&fatal.message);
    let acked_past: Vec<_> = fatal
        .acked
        .values()
        .filter(|&&(p, off)| p == fatal.partition && off >= lost_from)
        .collect();
    assert!(
        acked_past.is_empty(),
        "acknowledged after the failed fsync (not durable from {lost_from}): {acked_past:?}"
    );
    restart_and_check(&mut broker, &topic, &records, &fatal.acked);
}

#[test]
fn write_eio_stops_the_broker_and_loses_no_acknowledged_record() {
    let topic = unique_name("write-eio");
    let records = kafka::keyed_records(RECORDS_MAX, 100, 200);
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .env(WRITE_EIO_AFTER_VAR, FAULT_AFTER),
    );
    let fatal = produce_until_fatal(&mut broker, &topic, &records);
    assert!(fatal.message.contains("write of "), "{}", fatal.message);
    assert!(fatal.message.contains(".log"), "{}", fatal.message);
    restart_and_check(&mut broker, &topic, &records, &fatal.acked);
}

/// Produces `records` (acks=all) until the hook injects its fault; asserts the broker exits
/// with code 70 promptly, stops listening and logged one fatal line; returns what it left.
fn produce_until_fatal(broker: &mut Broker, topic: &str, records: &[TestRecord]) -> Fatal {
    kafka::create_topic(broker, topic, PARTITIONS);
    let producer = kafka::producer(
        broker,
        &[("linger.ms", "1"), ("message.timeout.ms", "10000")],
    );
    let injected = |b: &Broker| b.log_text().contains(INJECTED_MARK);
    let mut sent = 0;
    for rec in records {
        if sent % 50 == 0 && injected(broker) {
            break;
        }
        kafka::send_one(&producer, topic, rec, None);
        sent += 1;
        while sent - producer.context().delivered_count() > WINDOW && !injected(broker) {
            producer.poll(Duration::from_millis(10));
        }
    }
    let fault_seen = Instant::now();
    assert!(
        injected(broker),
        "the hook never injected its fault ({sent} records sent)"
    );
    let status = broker.wait_for_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "broker still running {EXIT_TIMEOUT:?} after the fault; log:\n{}",
            broker.log_text()
        )
    });
    assert_eq!(
        status.code(),
        Some(FATAL_EXIT_CODE),
        "exit status after the fault: {status:?}; log:\n{}",
        broker.log_text()
    );
    assert!(fault_seen.elapsed() < EXIT_TIMEOUT);
    // No shard keeps serving: the listener goes with the process. The kernel tears down an
    // exited process's io_uring (and the listening sockets its pending accepts hold) in the
    // background, so a connect may still succeed for a moment after the exit.
    let addr = broker.socket_addr();
    common::wait_until(
        LISTENER_GONE_TIMEOUT,
        "the port refuses connections",
        || {
            matches!(
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        },
    );
    let (partition, message) = fatal_line(&broker.log_text(), topic);

    // Every report we can still collect was decided before the broker died.
    producer.purge(PurgeConfig::default().queue().inflight());
    let _ = producer.flush(Duration::from_secs(5));
    let acked: HashMap<usize, (i32, i64)> = producer
        .context()
        .take()
        .iter()
        .filter_map(|d| d.result.as_ref().ok().map(|r| (d.id, *r)))
        .collect();
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the fault"
    );
    Fatal {
        partition,
        message,
        acked,
    }
}

/// The one fatal error line: it names a partition of `topic` and the EIO.
fn fatal_line(log: &str, topic: &str) -> (i32, String) {
    let error_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") && l.contains("fatal:"))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "one fatal ERROR line expected; log:\n{log}"
    );
    let line = error_lines[0];
    let at = line
        .find(FATAL_MARK)
        .unwrap_or_else(|| panic!("not a storage fatal: {line}"));
    let message = line[at + "fatal: ".len()..].to_owned();
    assert!(
        message.contains("Input/output error (os error 5)"),
        "{line}"
    );
    let named = &line[at + FATAL_MARK.len()..];
    let prefix = format!("{topic}-");
    assert!(named.starts_with(&prefix), "names no partition: {line}");
    let partition = named[prefix.len()..]
        .split(':')
        .next()
        .and_then(|p| p.parse::<i32>().ok())
        .unwrap_or_else(|| panic!("no partition number in: {line}"));
    assert!((0..PARTITIONS).contains(&partition), "{line}");
    assert_eq!(
        log.matches(INJECTED_MARK).count(),
        1,
        "exactly one injected fault"
    );
    (partition, message)
}

/// `N` of "offsets from N on are not durable" in a failed fsync's message.
fn not_durable_from(message: &str) -> i64 {
    const MARK: &str = "offsets from ";
    message
        .find(MARK)
        .and_then(|at| message[at + MARK.len()..].split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no durable end in: {message}"))
}

/// Restarts without the fault: every acknowledged record is where its report said, every
/// partition is contiguous from 0, and the broker takes and serves new records.
fn restart_and_check(
    broker: &mut Broker,
    topic: &str,
    records: &[TestRecord],
    acked: &HashMap<usize, (i32, i64)>,
) {
    broker.clear_env();
    broker.start_again();
    let marks = kafka::watermarks(broker, topic, PARTITIONS);
    let received = kafka::consume_all(broker, topic, PARTITIONS);
    let mut present = HashSet::new();
    for r in &received {
        let rec = kafka::record_of(records, r);
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
    kafka::assert_partition_order(records, &received);
    assert_eq!(
        received.len() as i64,
        marks.iter().map(|(_, high)| high).sum::<i64>(),
        "every partition holds 0..high"
    );
    assert_eq!(
        broker.log_text().matches(INJECTED_MARK).count(),
        1,
        "the hook stays off after the restart"
    );

    // Appends continue at the old ends; a fresh topic round-trips.
    let producer = kafka::producer(broker, &[]);
    for (p, &(_, high)) in marks.iter().enumerate() {
        let rec = &records[p];
        kafka::send_one(&producer, topic, rec, Some(p as i32));
        let d = kafka::flush_all(&producer, 1).remove(0);
        let (partition, offset) = d.result.unwrap_or_else(|e| panic!("append: {e}"));
        assert_eq!(
            (partition, offset),
            (p as i32, high),
            "first append after restart"
        );
    }
    let fresh = unique_name("after-fault");
    kafka::create_topic(broker, &fresh, 2);
    let new_records = kafka::keyed_records(200, 10, 100);
    let acked_new = kafka::assert_all_acked(&kafka::produce(&producer, &fresh, &new_records, None));
    let received_new = kafka::consume_all(broker, &fresh, 2);
    kafka::assert_exactly_once(&new_records, &acked_new, &received_new);
    broker.stop();
}

/// A background fsync (the flush policy's, with no producer waiting: acks=1) that fails stops
/// the broker too, without waiting for the next append to that partition.
#[test]
fn a_failed_background_fsync_stops_the_broker_without_further_appends() {
    let topic = unique_name("bg-fsync-eio");
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .config("\"log.flush.interval.messages\" = 1\n")
            .env(FSYNC_EIO_AFTER_VAR, "0"),
    );
    kafka::create_topic(&broker, &topic, 1);
    let producer = kafka::producer(
        &broker,
        &[
            ("acks", "1"),
            ("linger.ms", "0"),
            ("message.timeout.ms", "5000"),
        ],
    );
    // One record, acknowledged after its write; the fsync the policy then starts in the
    // background is the process's first data fsync, and fails. Nothing is appended after it.
    let records = kafka::keyed_records(1, 1, 100);
    let deliveries = kafka::produce(&producer, &topic, &records, Some(0));
    assert!(deliveries[0].result.is_ok(), "{:?}", deliveries[0].result);
    common::wait_until(EXIT_TIMEOUT, "the fault is injected", || {
        broker.log_text().contains(INJECTED_MARK)
    });
    // No more produce: the broker must still notice and exit.
    drop(producer);
    let status = broker.wait_for_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "broker still running {EXIT_TIMEOUT:?} after a failed background fsync; log:\n{}",
            broker.log_text()
        )
    });
    assert_eq!(
        status.code(),
        Some(FATAL_EXIT_CODE),
        "{}",
        broker.log_text()
    );
    assert!(
        broker
            .log_text()
            .contains(&format!("{FATAL_MARK}{topic}-0")),
        "fatal line names the partition; log:\n{}",
        broker.log_text()
    );
}
