//! Operations against a real broker process: stopping with many idle connections, deleting
//! topics whose names are near Kafka's length limit, partitions that cannot be opened.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{kafka, wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::error::RDKafkaErrorCode;

/// Idle connections the shutdown test holds (clamped to what the fd limit allows).
const IDLE_CONNECTIONS: usize = 10_000;
/// `shutdown.timeout.ms` of the shutdown test.
const SHUTDOWN_TIMEOUT_MS: u64 = 2_000;

/// Raises this process's soft fd limit to its hard limit; returns the new soft limit.
fn raise_own_fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Sum of one metric over all its label sets on the admin endpoint.
pub fn metric_sum(broker: &Broker, name: &str) -> f64 {
    let mut stream = TcpStream::connect(broker.admin_addr()).expect("connect admin");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read metrics");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// SIGTERM with 10,000 idle client connections (far more than the 64-entry remote-wake queue of
/// a shard) stops the broker within `shutdown.timeout.ms` plus a bounded close time, exit 0.
#[test]
fn sigterm_with_ten_thousand_idle_connections_stops_promptly() {
    let connections = IDLE_CONNECTIONS.min(raise_own_fd_limit().saturating_sub(500));
    assert!(
        connections >= 1_000,
        "the fd limit allows only {connections} connections"
    );
    let mut broker = Broker::start(BrokerOpts::default().cores(2).config(&format!(
        "\"shutdown.timeout.ms\" = {SHUTDOWN_TIMEOUT_MS}\n"
    )));
    let addr: SocketAddr = broker.socket_addr();
    let mut idle = Vec::with_capacity(connections);
    for _ in 0..connections {
        idle.push(TcpStream::connect(addr).expect("connect"));
    }
    wait_until(
        Duration::from_secs(30),
        "broker accepted every connection",
        || metric_sum(&broker, "sluice_connections_active") >= connections as f64,
    );
    let started = Instant::now();
    let status = broker.terminate();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", broker.log_text());
    // Idle connections close at once on shutdown; the bound leaves room for a slow CI machine.
    let bound = Duration::from_millis(SHUTDOWN_TIMEOUT_MS) + Duration::from_secs(5);
    assert!(
        took < bound,
        "stop took {took:?} with {connections} idle connections"
    );
    // The broker closed every connection: each client sees EOF.
    for stream in idle.iter_mut().take(50) {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).unwrap_or(0), 0);
    }
}

/// A client that sent a frame's size and part of its body, then nothing (breaker B7): the
/// half-received request is not in flight, so SIGTERM drops it with the connection (Kafka's
/// SocketServer closes every channel) instead of waiting `shutdown.timeout.ms` for it.
#[test]
fn sigterm_does_not_wait_for_a_half_received_request() {
    const LONG_SHUTDOWN_TIMEOUT_MS: u64 = 20_000;
    let mut broker = Broker::start(BrokerOpts::default().config(&format!(
        "\"shutdown.timeout.ms\" = {LONG_SHUTDOWN_TIMEOUT_MS}\n"
    )));
    let mut partial = TcpStream::connect(broker.socket_addr()).expect("connect");
    // A 256-byte frame announced, one byte of it sent.
    partial.write_all(&[0, 0, 1, 0, 0]).expect("send");
    wait_until(Duration::from_secs(10), "the connection accepted", || {
        metric_sum(&broker, "sluice_connections_active") >= 1.0
    });
    // The broker reads the 5 bytes as soon as they arrive; a moment for it to be inside the
    // body read (the state the fault needs; before it the size read already raced shutdown).
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = broker.terminate();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", broker.log_text());
    assert!(
        took < Duration::from_secs(5),
        "stop took {took:?} (shutdown.timeout.ms {LONG_SHUTDOWN_TIMEOUT_MS})"
    );
    partial
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert_eq!(partial.read(&mut byte).unwrap_or(0), 0, "closed");
}

/// A topic name of Kafka's maximum length (249): its delete marker `<topic>-<p>.<id>-delete`
/// would be ~290 bytes, past the 255-byte file-name limit, so the topic part is truncated as in
/// Kafka. The data is gone, and re-creating the topic starts empty.
#[test]
fn deleting_a_topic_with_a_249_character_name_removes_its_data() {
    let broker = Broker::start(BrokerOpts::default());
    let mut topic = common::unique_name("long");
    while topic.len() < 249 {
        topic.push('r');
    }
    const PARTITIONS: i32 = 2;
    kafka::create_topic(&broker, &topic, PARTITIONS);
    let producer = kafka::producer(&broker, &[]);
    let deliveries = kafka::produce(&producer, &topic, &kafka::keyed_records(20, 5, 10), None);
    kafka::assert_all_acked(&deliveries);
    drop(producer);
    let admin = kafka::admin(&broker);
    let results = common::block_on(admin.delete_topics(&[&topic], &kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(results, vec![Ok(topic.clone())]);
    let left: Vec<_> = std::fs::read_dir(broker.data_dir())
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&topic[..200]))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    kafka::create_topic(&broker, &topic, PARTITIONS);
    assert_eq!(
        kafka::watermarks(&broker, &topic, PARTITIONS),
        vec![(0, 0); PARTITIONS as usize],
        "a re-created topic starts empty"
    );
}

/// When a partition's data cannot be moved away, DeleteTopics answers KAFKA_STORAGE_ERROR and
/// the topic (with its data) stays, instead of answering success over data still in place.
#[test]
fn delete_topics_fails_when_the_data_cannot_be_moved() {
    let broker = Broker::start(BrokerOpts::default());
    let topic = common::unique_name("stuck");
    kafka::create_topic(&broker, &topic, 1);
    let producer = kafka::producer(&broker, &[]);
    kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &kafka::keyed_records(3, 1, 10),
        None,
    ));
    drop(producer);
    let metadata: MetadataResponse = wire::call(
        broker.socket_addr(),
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))])),
    );
    let id = metadata.topics[0].topic_id;
    // A non-empty directory where the marker goes makes the rename fail (even for root).
    let marker = broker
        .data_dir()
        .join(format!("{topic}-0.{}-delete", id.simple()));
    std::fs::create_dir_all(marker.join("blocker")).expect("marker dir");

    let admin = kafka::admin(&broker);
    let results = common::block_on(admin.delete_topics(&[&topic], &kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("DeleteTopics: {e}"));
    assert_eq!(
        results,
        vec![Err((topic.clone(), RDKafkaErrorCode::KafkaStorageError))]
    );
    wait_until(Duration::from_secs(10), "topic still served", || {
        kafka::watermarks(&broker, &topic, 1) == vec![(0, 3)]
    });
}

/// Runs the broker binary on `data_dir` and waits up to 30 s for it to exit on its own;
/// returns (exit code, stderr). Panics if it keeps running (it then serves a broken log dir).
fn run_until_exit(data_dir: &std::path::Path) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--cores",
            "2",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "broker kept running on an unopenable partition; log:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap_or_default())
}

/// A partition whose log cannot be opened at start-up stops the broker (Kafka takes its only
/// log directory offline and stops) with a message naming it, instead of advertising a
/// partition that answers UNKNOWN_TOPIC_OR_PARTITION to every use.
#[test]
fn a_partition_that_cannot_be_opened_stops_the_broker_naming_it() {
    let mut broker = Broker::start(BrokerOpts::default());
    let topic = common::unique_name("vict");
    kafka::create_topic(&broker, &topic, 1);
    let producer = kafka::producer(&broker, &[]);
    kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &kafka::keyed_records(1, 1, 10),
        None,
    ));
    drop(producer);
    broker.stop();
    // A directory where the segment file was: opening it fails even for root.
    let segment = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    std::fs::remove_file(&segment).expect("remove segment");
    std::fs::create_dir(&segment).expect("dir in its place");

    let (code, log) = run_until_exit(&broker.data_dir());
    assert_eq!(code, Some(70), "log:\n{log}");
    assert!(
        log.contains(&format!("cannot open partition {topic}-0")),
        "log names the partition:\n{log}"
    );
    assert!(!log.contains("ready listening="), "never ready:\n{log}");
}

/// The data directory's clean-shutdown marker (Kafka's `.kafka_cleanshutdown`) exists only
/// after a clean stop: it is gone while the broker runs and after a crash, so a crash is always
/// recovered even though opening a partition no longer rewrites its checkpoint.
#[test]
fn clean_shutdown_marker_exists_only_after_a_clean_stop() {
    let mut broker = Broker::start(BrokerOpts::default());
    let marker = broker.data_dir().join(".kafka_cleanshutdown");
    let topic = common::unique_name("marker");
    kafka::create_topic(&broker, &topic, 2);
    assert!(!marker.exists(), "absent while running");
    broker.stop();
    assert!(marker.exists(), "written by a clean stop");
    broker.start_again();
    assert!(!marker.exists(), "removed at start");
    let producer = kafka::producer(&broker, &[]);
    kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &kafka::keyed_records(10, 2, 10),
        None,
    ));
    drop(producer);
    broker.kill9();
    assert!(!marker.exists(), "a crash leaves no marker");
    broker.start_again();
    let total: i64 = kafka::watermarks(&broker, &topic, 2)
        .iter()
        .map(|(_, high)| high)
        .sum();
    assert_eq!(total, 10, "acknowledged records recovered after the crash");
}
