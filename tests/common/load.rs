//! Background load for fault tests: an idempotent acks=all producer that keeps sending unique
//! values (`<stream>-<seq>`) to a topic while the test injects faults, and a consumer in a
//! group that keeps reading and committing through them. Both feed a `QueueChecker` once
//! stopped; the producer also measures the longest gap between two acknowledgements (the
//! produce stall a fault causes).
//!
//! Invariants: every value is handed to the checker as sent before it is produced; an
//! acknowledgement is recorded in the order librdkafka reports it (per partition, the order
//! of the offsets with idempotence); every thread ends when its handle is stopped (each wait
//! bounded).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::checker::QueueChecker;

/// How long the producer may take to deliver what it has queued once stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// One acknowledgement: (partition, offset, value, when).
type Ack = (i32, i64, Vec<u8>, Instant);

#[derive(Default)]
struct Acks {
    acked: Mutex<Vec<Ack>>,
    failed: Mutex<Vec<String>>,
}

struct TimedContext(Arc<Acks>);

impl ClientContext for TimedContext {}

impl ProducerContext for TimedContext {
    type DeliveryOpaque = Box<Vec<u8>>;

    fn delivery(&self, result: &DeliveryResult<'_>, value: Box<Vec<u8>>) {
        let now = Instant::now();
        match result {
            Ok(m) => self
                .0
                .acked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((m.partition(), m.offset(), *value, now)),
            Err((e, _)) => self
                .0
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}: {e}", String::from_utf8_lossy(&value))),
        }
    }
}

/// What the producer did, once stopped.
#[derive(Debug)]
pub struct ProduceReport {
    pub stream: String,
    pub sent: Vec<Vec<u8>>,
    /// In acknowledgement order.
    pub acked: Vec<(i32, i64, Vec<u8>)>,
    /// Delivery failures (not acknowledged: may or may not be in the log).
    pub failed: Vec<String>,
    /// The longest time between two acknowledgements (or from the start to the first).
    pub longest_stall: Duration,
}

impl ProduceReport {
    /// Tells the checker what was sent and acknowledged.
    pub fn feed(&self, checker: &mut QueueChecker) {
        for v in &self.sent {
            checker.sent(v);
        }
        for (p, _, v) in &self.acked {
            checker.acked(*p, &self.stream, v);
        }
    }
}

/// A running producer; see the module documentation.
pub struct ProducerLoad {
    stop: Arc<AtomicBool>,
    acks: Arc<Acks>,
    sent_count: Arc<AtomicUsize>,
    thread: Option<JoinHandle<(Vec<Vec<u8>>, Instant)>>,
    stream: String,
}

impl ProducerLoad {
    /// Starts producing to `topic` through `bootstrap`, one record every `pace`, keyed over
    /// 16 keys (so over every partition). `extra` client settings win.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        stream: &str,
        pace: Duration,
        extra: &[(&str, &str)],
    ) -> ProducerLoad {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("broker.address.family", "v4")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("request.timeout.ms", "5000")
            .set("message.timeout.ms", "120000")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "200")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("reconnect.backoff.max.ms", "200");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let acks = Arc::new(Acks::default());
        let producer: BaseProducer<TimedContext> = config
            .create_with_context(TimedContext(Arc::clone(&acks)))
            .unwrap_or_else(|e| panic!("producer: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let sent_count = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let sent_count = Arc::clone(&sent_count);
            let topic = topic.to_owned();
            let stream = stream.to_owned();
            thread::spawn(move || {
                let started = Instant::now();
                let mut sent = Vec::new();
                let mut seq = 0_u64;
                while !stop.load(Ordering::SeqCst) {
                    let value = format!("{stream}-{seq:08}").into_bytes();
                    let key = format!("k{}", seq % 16);
                    send(&producer, &topic, &key, &value, &stop);
                    sent.push(value);
                    sent_count.store(sent.len(), Ordering::SeqCst);
                    seq += 1;
                    producer.poll(Duration::ZERO);
                    thread::sleep(pace);
                }
                // Drain: every queued record is delivered or fails (message.timeout.ms).
                let _ = producer.flush(DRAIN_TIMEOUT);
                assert_eq!(producer.in_flight_count(), 0, "records still in flight");
                (sent, started)
            })
        };
        ProducerLoad {
            stop,
            acks,
            sent_count,
            thread: Some(thread),
            stream: stream.to_owned(),
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acks
            .acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The values acknowledged so far.
    pub fn acked_values(&self) -> Vec<Vec<u8>> {
        let acked = self.acks.acked.lock().unwrap_or_else(|e| e.into_inner());
        acked.iter().map(|(_, _, v, _)| v.clone()).collect()
    }

    pub fn sent_count(&self) -> usize {
        self.sent_count.load(Ordering::SeqCst)
    }

    /// Waits until `more` acknowledgements beyond the current count arrived.
    pub fn wait_acked_more(&self, more: usize, timeout: Duration) {
        let target = self.acked_count() + more;
        super::wait_until(timeout, &format!("{more} more acknowledgements"), || {
            self.acked_count() >= target
        });
    }

    /// Stops sending, waits for every delivery report, and reports.
    pub fn stop(mut self) -> ProduceReport {
        self.stop.store(true, Ordering::SeqCst);
        let (sent, started) = self
            .thread
            .take()
            .expect("stopped once")
            .join()
            .unwrap_or_else(|_| panic!("producer thread panicked"));
        let acked: Vec<Ack> = std::mem::take(&mut *self.acks.acked.lock().unwrap());
        let failed = std::mem::take(&mut *self.acks.failed.lock().unwrap());
        let mut longest_stall = Duration::ZERO;
        let mut previous = started;
        for (_, _, _, at) in &acked {
            longest_stall = longest_stall.max(at.saturating_duration_since(previous));
            previous = previous.max(*at);
        }
        ProduceReport {
            stream: self.stream.clone(),
            sent,
            acked: acked.into_iter().map(|(p, o, v, _)| (p, o, v)).collect(),
            failed,
            longest_stall,
        }
    }
}

impl Drop for ProducerLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Enqueues one record, polling while librdkafka's queue is full (bounded by `stop`).
fn send(
    producer: &BaseProducer<TimedContext>,
    topic: &str,
    key: &str,
    value: &[u8],
    stop: &AtomicBool,
) {
    loop {
        let record = BaseRecord::with_opaque_to(topic, Box::new(value.to_vec()))
            .key(key)
            .payload(value);
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                if !stop.load(Ordering::SeqCst) =>
            {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send {}: {e}", String::from_utf8_lossy(value)),
        }
    }
}

/// What the group consumer did, once stopped.
#[derive(Debug, Default)]
pub struct ConsumeReport {
    /// (partition, offset, value) in the order read.
    pub read: Vec<(i32, i64, Vec<u8>)>,
    /// The offsets it committed last, per partition (committed synchronously).
    pub committed: BTreeMap<i32, i64>,
    /// Commit errors seen (retried at the next poll).
    pub commit_errors: usize,
}

impl ConsumeReport {
    pub fn feed(&self, checker: &mut QueueChecker) {
        for (p, o, v) in &self.read {
            checker.read(*p, *o, v);
        }
    }
}

/// A consumer in group `group` that keeps reading `topic` and committing what it read.
pub struct GroupConsumer {
    stop: Arc<AtomicBool>,
    read_count: Arc<AtomicUsize>,
    thread: Option<JoinHandle<ConsumeReport>>,
}

/// The group consumer's context: with `SLUICE_TEST_RDKAFKA_DEBUG` set (librdkafka `debug`
/// contexts, e.g. `cgrp,fetch`), librdkafka's log lines and every rebalance go to stderr
/// with a UTC wall-clock stamp, to line up with the brokers' logs (`SLUICE_TEST_LOG_DIR`).
pub struct GroupLog;

fn debugging() -> bool {
    std::env::var_os("SLUICE_TEST_RDKAFKA_DEBUG").is_some()
}

impl ClientContext for GroupLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if debugging() {
            eprintln!("{} rdkafka {level:?} {fac} {log_message}", utc_stamp());
        }
    }
}

impl ConsumerContext for GroupLog {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if debugging() {
            eprintln!("{} rdkafka rebalance {rebalance:?}", utc_stamp());
        }
    }
}

/// The UTC time of day `HH:MM:SS.micros`, as in the brokers' log lines.
fn utc_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let day_s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}Z",
        day_s / 3600,
        day_s / 60 % 60,
        day_s % 60,
        now.subsec_micros()
    )
}

/// The group consumer's client settings.
pub fn group_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    if let Ok(debug) = std::env::var("SLUICE_TEST_RDKAFKA_DEBUG") {
        // The crate derives librdkafka's log level from the `log` crate's (off in tests).
        config
            .set("debug", debug)
            .set_log_level(RDKafkaLogLevel::Debug);
    }
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "200");
    config
}

impl GroupConsumer {
    pub fn start(bootstrap: &str, topic: &str, group: &str) -> GroupConsumer {
        let consumer: BaseConsumer<GroupLog> = group_config(bootstrap, group)
            .create_with_context(GroupLog)
            .unwrap_or_else(|e| panic!("consumer: {e}"));
        consumer
            .subscribe(&[topic])
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let read_count = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let read_count = Arc::clone(&read_count);
            thread::spawn(move || consume_loop(&consumer, &stop, &read_count))
        };
        GroupConsumer {
            stop,
            read_count,
            thread: Some(thread),
        }
    }

    pub fn read_count(&self) -> usize {
        self.read_count.load(Ordering::SeqCst)
    }

    pub fn stop(mut self) -> ConsumeReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| panic!("consumer thread panicked"))
            })
            .unwrap_or_default()
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn consume_loop(
    consumer: &BaseConsumer<GroupLog>,
    stop: &AtomicBool,
    count: &AtomicUsize,
) -> ConsumeReport {
    let mut report = ConsumeReport::default();
    // Next offset to commit per partition, and whether it changed since the last commit.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut dirty = false;
    while !stop.load(Ordering::SeqCst) {
        // Errors (a coordinator or leader moving) are retried by the next poll.
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let value = m.payload().unwrap_or_default().to_vec();
            report.read.push((m.partition(), m.offset(), value));
            count.store(report.read.len(), Ordering::SeqCst);
            next.insert(m.partition(), m.offset() + 1);
            dirty = true;
            continue;
        }
        if dirty {
            let mut list = TopicPartitionList::new();
            let topic = consumer
                .subscription()
                .ok()
                .and_then(|s| s.elements().first().map(|e| e.topic().to_owned()))
                .unwrap_or_default();
            for (p, o) in &next {
                let _ = list.add_partition_offset(&topic, *p, Offset::Offset(*o));
            }
            match consumer.commit(&list, CommitMode::Sync) {
                Ok(()) => {
                    report.committed.extend(next.iter().map(|(p, o)| (*p, *o)));
                    dirty = false;
                }
                Err(_) => report.commit_errors += 1,
            }
        }
    }
    report
}

/// The offsets group `group` has committed on `topic`'s `partitions`, as a new member of the
/// group reads them (OffsetFetch through the coordinator).
pub fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer<GroupLog> = group_config(bootstrap, group)
        .create_with_context(GroupLog)
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("committed offsets: {e}"));
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
