//! rdkafka helpers shared by the integration tests: clients pointed at a test broker, a
//! producer that records every delivery report, a consumer that reads partitions up to their
//! high watermark, and the checks that compare what was sent with what came back.
//!
//! Consumers never join a group: they `assign` explicit partitions and offsets and never
//! commit (consumer groups are a later issue). librdkafka refuses `assign` without a
//! `group.id` ("Local: Unknown group"), so consumers carry one that is never used.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, Timestamp, TopicPartitionList};

use super::{block_on, Broker};

/// Deadline for one client round trip (metadata, admin call, watermarks).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for all produced messages to be acknowledged.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for consuming everything that was produced.
pub const CONSUME_TIMEOUT: Duration = Duration::from_secs(120);
/// Base of the explicit CreateTime timestamps of generated records (2020-09-13).
pub const TIMESTAMP_BASE_MS: i64 = 1_600_000_000_000;

/// Config every client shares.
pub fn client_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.addr())
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "30000");
    config
}

pub fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    client_config(broker)
        .create()
        .unwrap_or_else(|e| panic!("admin client: {e}"))
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CALL_TIMEOUT))
        .operation_timeout(Some(CALL_TIMEOUT))
}

/// Creates a topic with `partitions` partitions (replication factor 1) and asserts success.
pub fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    create_topic_with(broker, topic, partitions, &[]);
}

pub fn create_topic_with(broker: &Broker, topic: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin = admin(broker);
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        new_topic = new_topic.set(k, v);
    }
    let results = block_on(admin.create_topics([&new_topic], &admin_opts()))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    assert_eq!(results.len(), 1);
    if let Err((name, code)) = &results[0] {
        panic!("CreateTopics {name}: {code:?}");
    }
    wait_for_topic(broker, topic, partitions);
}

/// Waits until metadata shows `topic` with `partitions` partitions, each with a leader.
pub fn wait_for_topic(broker: &Broker, topic: &str, partitions: i32) {
    let consumer = consumer(broker);
    super::wait_until(CALL_TIMEOUT, &format!("metadata lists {topic}"), || {
        let Ok(md) = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT) else {
            return false;
        };
        md.topics().iter().any(|t| {
            t.name() == topic
                && t.error().is_none()
                && t.partitions().len() == usize::try_from(partitions).unwrap_or(0)
                && t.partitions().iter().all(|p| p.leader() >= 0)
        })
    });
}

/// One delivery report: the record's id and where it landed, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: usize,
    pub result: Result<(i32, i64), String>,
}

/// Producer context that records every delivery report.
#[derive(Default)]
pub struct Recorder {
    pub deliveries: Mutex<Vec<Delivery>>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let result = match result {
            Ok(msg) => Ok((msg.partition(), msg.offset())),
            Err((err, _)) => Err(err.to_string()),
        };
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        deliveries.push(Delivery { id, result });
    }
}

impl Recorder {
    pub fn acked_count(&self) -> usize {
        let deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        deliveries.iter().filter(|d| d.result.is_ok()).count()
    }

    /// Reports received so far, acknowledged or failed.
    pub fn delivered_count(&self) -> usize {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.deliveries.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub type RecordingProducer = BaseProducer<Recorder>;

/// A producer with `acks=all` plus `extra` settings.
pub fn producer(broker: &Broker, extra: &[(&str, &str)]) -> RecordingProducer {
    let mut config = client_config(broker);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
        .create_with_context(Recorder::default())
        .unwrap_or_else(|e| panic!("producer: {e}"))
}

pub fn consumer(broker: &Broker) -> BaseConsumer {
    consumer_with(broker, &[])
}

/// `consumer` with `extra` settings on top (later ones win).
pub fn consumer_with(broker: &Broker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(broker);
    config
        .set("group.id", "sluice-tests-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().unwrap_or_else(|e| panic!("consumer: {e}"))
}

/// A generated record. `id` is its index in the generated vector; `seq` counts the records of
/// its key, so per-key order is checkable after consuming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub id: usize,
    pub key: String,
    pub seq: u64,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: i64,
}

/// `count` records over `keys` keys; values carry key, seq and id plus filler up to
/// `value_bytes`. Timestamps increase with id, so they increase within every partition.
pub fn keyed_records(count: usize, keys: usize, value_bytes: usize) -> Vec<TestRecord> {
    assert!(keys > 0);
    let mut seqs = vec![0_u64; keys];
    (0..count)
        .map(|id| {
            let k = id % keys;
            let seq = seqs[k];
            seqs[k] += 1;
            let key = format!("key-{k:05}");
            let mut value = format!("{key}|seq={seq}|id={id}|").into_bytes();
            // Compressible but not constant filler.
            let mut i = 0_u8;
            while value.len() < value_bytes {
                value.push(b'a' + (i % 26));
                i = i.wrapping_add(((id % 7) + 1) as u8);
            }
            let mut headers = vec![
                ("id".to_owned(), Some(id.to_string().into_bytes())),
                ("bin".to_owned(), Some(vec![0, 255, (id % 251) as u8])),
            ];
            if id % 10 == 0 {
                headers.push(("null-value".to_owned(), None));
            }
            let timestamp_ms = TIMESTAMP_BASE_MS + i64::try_from(id).unwrap_or(i64::MAX);
            TestRecord {
                id,
                key,
                seq,
                value,
                headers,
                timestamp_ms,
            }
        })
        .collect()
}

/// Sends every record (retrying while the local queue is full), waits for all delivery
/// reports and returns them, sorted by id. `partition` pins records to one partition.
pub fn produce(
    producer: &RecordingProducer,
    topic: &str,
    records: &[TestRecord],
    partition: Option<i32>,
) -> Vec<Delivery> {
    for rec in records {
        send_one(producer, topic, rec, partition);
    }
    flush_all(producer, records.len())
}

/// Enqueues one record; polls while librdkafka's local queue is full.
pub fn send_one(
    producer: &RecordingProducer,
    topic: &str,
    rec: &TestRecord,
    partition: Option<i32>,
) {
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    loop {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (key, value) in &rec.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut record = BaseRecord::with_opaque_to(topic, rec.id)
            .key(rec.key.as_bytes())
            .payload(rec.value.as_slice())
            .headers(headers)
            .timestamp(rec.timestamp_ms);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                assert!(Instant::now() < deadline, "producer queue stayed full");
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send record {}: {e}", rec.id),
        }
    }
}

/// Flushes and returns the delivery reports (sorted by id); asserts one report per record.
pub fn flush_all(producer: &RecordingProducer, expected: usize) -> Vec<Delivery> {
    producer
        .flush(FLUSH_TIMEOUT)
        .unwrap_or_else(|e| panic!("flush: {e}"));
    let mut deliveries = producer.context().take();
    deliveries.sort_by_key(|d| d.id);
    assert_eq!(deliveries.len(), expected, "one delivery report per record");
    deliveries
}

/// Asserts every delivery succeeded; returns (partition, offset) by record id.
pub fn assert_all_acked(deliveries: &[Delivery]) -> HashMap<usize, (i32, i64)> {
    let failed: Vec<_> = deliveries.iter().filter(|d| d.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} deliveries failed, first: {:?}",
        failed.len(),
        deliveries.len(),
        failed.first()
    );
    deliveries
        .iter()
        .filter_map(|d| d.result.as_ref().ok().map(|r| (d.id, *r)))
        .collect()
}

/// A consumed message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

impl super::checker::ReadRecord for Received {
    fn placed(&self) -> (i32, i64, &[u8]) {
        (
            self.partition,
            self.offset,
            self.value.as_deref().unwrap_or_default(),
        )
    }
}

/// (low, high) watermarks of every partition of `topic`.
pub fn watermarks(broker: &Broker, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    let consumer = consumer(broker);
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, CALL_TIMEOUT)
                .unwrap_or_else(|e| panic!("watermarks {topic}/{p}: {e}"))
        })
        .collect()
}

/// Reads every partition from its low to its high watermark (as of the call) and returns the
/// messages in arrival order.
pub fn consume_all(broker: &Broker, topic: &str, partitions: i32) -> Vec<Received> {
    let marks = watermarks(broker, topic, partitions);
    let ranges: Vec<_> = marks
        .iter()
        .enumerate()
        .map(|(p, &(low, high))| (i32::try_from(p).unwrap_or(i32::MAX), low, high))
        .collect();
    consume_ranges(broker, topic, &ranges)
}

/// Reads `[start, end)` of each `(partition, start, end)` via `assign` (no group).
pub fn consume_ranges(broker: &Broker, topic: &str, ranges: &[(i32, i64, i64)]) -> Vec<Received> {
    consume_ranges_with(&consumer(broker), topic, ranges)
}

/// `consume_ranges` with a consumer of the caller's (e.g. with small fetch limits).
pub fn consume_ranges_with(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &[(i32, i64, i64)],
) -> Vec<Received> {
    let mut tpl = TopicPartitionList::new();
    let mut next: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for &(p, start, end) in ranges {
        if start < end {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .unwrap_or_else(|e| panic!("tpl: {e}"));
            next.insert(p, (start, end));
        }
    }
    let mut out = Vec::new();
    if next.is_empty() {
        return out;
    }
    consumer
        .assign(&tpl)
        .unwrap_or_else(|e| panic!("assign: {e}"));
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while next.iter().any(|(_, (at, end))| at < end) {
        assert!(
            Instant::now() < deadline,
            "consume {topic} timed out; (next, end) per partition: {next:?}"
        );
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg.unwrap_or_else(|e| panic!("consume {topic}: {e}"));
        let received = Received {
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers: msg
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: msg.timestamp(),
        };
        if let Some((at, end)) = next.get_mut(&received.partition) {
            if received.offset < *end {
                *at = received.offset + 1;
                out.push(received);
            }
        }
    }
    out
}

/// Checks that `received` holds exactly the records of `sent`, each once, where its delivery
/// report said, with key, value, headers and CreateTime timestamp intact; that each partition
/// is in offset order with per-key sequence order; and that each key used one partition.
pub fn assert_exactly_once(
    sent: &[TestRecord],
    acked: &HashMap<usize, (i32, i64)>,
    received: &[Received],
) {
    assert_eq!(received.len(), sent.len(), "received count == sent count");
    let mut seen = HashSet::with_capacity(sent.len());
    for r in received {
        let rec = record_of(sent, r);
        assert!(seen.insert(rec.id), "record {} received twice", rec.id);
        assert_matches_sent(rec, r);
        if let Some(&(p, off)) = acked.get(&rec.id) {
            assert_eq!(
                (r.partition, r.offset),
                (p, off),
                "record {} is where its delivery report said",
                rec.id
            );
        }
    }
    assert_partition_order(sent, received);
}

/// The sent record a received message claims to be (by its `id` header).
pub fn record_of<'a>(sent: &'a [TestRecord], r: &Received) -> &'a TestRecord {
    let id = r
        .headers
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("message at {}/{} has no id header", r.partition, r.offset));
    sent.get(id).unwrap_or_else(|| {
        panic!(
            "message at {}/{} has unknown id {id}",
            r.partition, r.offset
        )
    })
}

pub fn assert_matches_sent(rec: &TestRecord, r: &Received) {
    let at = format!("record {} at {}/{}", rec.id, r.partition, r.offset);
    assert_eq!(r.key.as_deref(), Some(rec.key.as_bytes()), "{at}: key");
    assert_eq!(
        r.value.as_deref(),
        Some(rec.value.as_slice()),
        "{at}: value"
    );
    assert_eq!(r.headers, rec.headers, "{at}: headers");
    assert_eq!(
        r.timestamp,
        Timestamp::CreateTime(rec.timestamp_ms),
        "{at}: timestamp"
    );
}

/// Offsets strictly increase and are contiguous within each partition; each key stays in one
/// partition, with its sequence numbers increasing.
pub fn assert_partition_order(sent: &[TestRecord], received: &[Received]) {
    let mut by_partition: BTreeMap<i32, Vec<&Received>> = BTreeMap::new();
    for r in received {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let mut key_partition: HashMap<&str, i32> = HashMap::new();
    for (p, msgs) in &by_partition {
        // key -> (seq, offset, record id) of its latest message so far.
        let mut last_seq: HashMap<&str, (u64, i64, usize)> = HashMap::new();
        for pair in msgs.windows(2) {
            assert_eq!(
                pair[1].offset,
                pair[0].offset + 1,
                "partition {p}: offsets contiguous and in order"
            );
        }
        for r in msgs {
            let rec = record_of(sent, r);
            let owner = *key_partition.entry(rec.key.as_str()).or_insert(*p);
            assert_eq!(owner, *p, "key {} in partitions {owner} and {p}", rec.key);
            let now = (rec.seq, r.offset, rec.id);
            if let Some((seq, offset, id)) = last_seq.insert(rec.key.as_str(), now) {
                assert!(
                    rec.seq > seq,
                    "partition {p}: key {} out of order: offset {offset} holds seq {seq} \
                     (record {id}), later offset {} holds seq {} (record {})",
                    rec.key,
                    r.offset,
                    rec.seq,
                    rec.id
                );
            }
        }
    }
}

/// Full round trip for one topic: create it, produce `records` with `extra` producer config,
/// consume everything back and check it.
pub fn round_trip(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    records: &[TestRecord],
    extra: &[(&str, &str)],
) {
    create_topic(broker, topic, partitions);
    let producer = producer(broker, extra);
    let deliveries = produce(&producer, topic, records, None);
    let acked = assert_all_acked(&deliveries);
    let used: HashSet<i32> = acked.values().map(|(p, _)| *p).collect();
    assert!(
        used.len() > 1 || partitions == 1,
        "keys spread over partitions"
    );
    let marks = watermarks(broker, topic, partitions);
    let total: i64 = marks.iter().map(|(low, high)| high - low).sum();
    assert_eq!(
        total,
        i64::try_from(records.len()).unwrap_or(i64::MAX),
        "watermarks: {marks:?}"
    );
    let received = consume_all(broker, topic, partitions);
    assert_exactly_once(records, &acked, &received);
}
