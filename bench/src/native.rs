//! The native producer: speaks the Kafka protocol directly (kafka-protocol codecs) over one
//! blocking TCP connection per producer, so the generator's own cost per message is an encode
//! into a batch buffer and nothing else. Setup: ApiVersions (Produce version = the highest
//! both sides support, at most [`PRODUCE_VERSION_MAX`], at least 3 for v2 batches), Metadata
//! (partition count; every partition must have the same leader), then Produce requests of one
//! uncompressed v2 batch each.
//!
//! Threads: the producer thread builds batches and writes requests; a receiver thread reads
//! the responses. Kafka answers a connection's requests in order, so the in-flight queue is a
//! bounded FIFO ([`IN_FLIGHT_REQUESTS_MAX`] requests): the sender blocks when it is full (the
//! back-pressure), the receiver pops one entry per response. Each entry keeps its sealed batch,
//! and an ack walks that batch's payload headers (producer id, sequence, intended time), as
//! librdkafka's delivery report hands back each message: no per-message bookkeeping.
//!
//! Partitioning: no key = sticky (a full batch to one partition, then the next), keyed =
//! Kafka's murmur2 partitioner, one open batch per partition. A batch is sent when the next
//! record would overflow `batch_size_bytes`, or (fixed rate) `linger_ms` after its first
//! record. No reconnects: a broken connection fails the in-flight messages and stops the
//! producer, counted as produce errors.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::batch::{self, BatchEncoder};
use crate::payload::{Header, KeyChooser, PayloadBuilder, Seq};
use crate::producer::{DeliveryState, ProducerPlan};
use crate::schedule::{FixedRateSchedule, RunClock};
use crate::stats::{LiveCounters, SEQ_MAX};

/// Produce requests in flight per connection (the window); the sender blocks beyond it.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 8;
/// Highest Produce version used (v10+ only adds tagged fields this client does not need).
pub const PRODUCE_VERSION_MAX: i16 = 9;
/// Produce v3 is the first to carry v2 record batches.
const PRODUCE_VERSION_MIN: i16 = 3;
const METADATA_VERSION_MAX: i16 = 9;
const API_VERSIONS_VERSION: i16 = 3;
/// Largest response frame accepted.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long a response may take before the connection counts as broken.
pub const RESPONSE_TIMEOUT_S: u64 = 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Metadata may keep answering without the (just created) topic.
const METADATA_WAIT: Duration = Duration::from_secs(10);
const METADATA_RETRY: Duration = Duration::from_millis(100);
/// The broker's own request timeout for acks=all.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("topic {0} has no usable metadata after {1:?}")]
    NoMetadata(String, Duration),
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> NativeError + '_ {
    move |source| NativeError::Io {
        context: context.to_string(),
        source,
    }
}

/// One connection: request encoding into a reused buffer, and blocking frame reads.
struct Conn {
    stream: TcpStream,
    out: BytesMut,
    frame: Vec<u8>,
    next_correlation_id: i32,
    client_id: StrBytes,
}

impl Conn {
    fn connect(addr: &str, client_id: String) -> Result<Conn, NativeError> {
        let mut last = None;
        for sock in addr.to_socket_addrs().map_err(io(addr))? {
            match TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(io("set_nodelay"))?;
                    stream
                        .set_read_timeout(Some(Duration::from_secs(RESPONSE_TIMEOUT_S)))
                        .map_err(io("set_read_timeout"))?;
                    return Ok(Conn {
                        stream,
                        out: BytesMut::new(),
                        frame: Vec::new(),
                        next_correlation_id: 0,
                        client_id: StrBytes::from_string(client_id),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(NativeError::Io {
            context: format!("connecting to {addr}"),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    }

    /// Encodes one request frame into `self.out`; returns its correlation id.
    fn encode<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<i32, NativeError> {
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1);
        self.out.clear();
        self.out.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut self.out, key.request_header_version(version))
            .map_err(|e| NativeError::Protocol(format!("encoding {key:?} header: {e}")))?;
        body.encode(&mut self.out, version)
            .map_err(|e| NativeError::Protocol(format!("encoding {key:?}: {e}")))?;
        let len = i32::try_from(self.out.len() - 4)
            .map_err(|_| NativeError::Protocol("request over 2 GiB".into()))?;
        if let Some(prefix) = self.out.get_mut(..4) {
            prefix.copy_from_slice(&len.to_be_bytes());
        }
        Ok(id)
    }

    /// A synchronous request/response (setup only: nothing else may be in flight).
    fn call<R: Encodable, S: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<S, NativeError> {
        let id = self.encode(key, version, body)?;
        self.stream.write_all(&self.out).map_err(io("writing"))?;
        read_response(&mut self.stream, &mut self.frame, key, version, id)
    }
}

/// Reads one response frame and decodes it, checking the correlation id.
fn read_response<S: Decodable>(
    stream: &mut TcpStream,
    frame: &mut Vec<u8>,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<S, NativeError> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io("reading"))?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|&s| s <= RESPONSE_BYTES_MAX)
        .ok_or_else(|| NativeError::Protocol("bad response size".into()))?;
    frame.resize(size, 0);
    stream.read_exact(frame).map_err(io("reading"))?;
    let mut buf: &[u8] = frame;
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| NativeError::Protocol(format!("{key:?} response header: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(NativeError::Protocol(format!(
            "{key:?} response for correlation id {}, expected {correlation_id}",
            header.correlation_id
        )));
    }
    S::decode(&mut buf, version).map_err(|e| NativeError::Protocol(format!("{key:?}: {e}")))
}

/// A connected, negotiated producer, ready for [`run`].
pub struct NativeProducer {
    conn: Conn,
    produce_version: i16,
    partitions: u32,
    topic: TopicName,
    acks: i16,
}

/// Connects and negotiates; the caller runs [`run`] on the producer's own thread.
pub fn start(plan: &ProducerPlan) -> Result<NativeProducer, NativeError> {
    let client_id = format!("sluice-bench-native-p{}", plan.id.0);
    let mut conn = Conn::connect(&plan.bootstrap, client_id.clone())?;
    let versions: ApiVersionsResponse = conn.call(
        ApiKey::ApiVersions,
        API_VERSIONS_VERSION,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-bench"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))),
    )?;
    if versions.error_code != 0 {
        return Err(NativeError::Protocol(format!(
            "ApiVersions error {}",
            versions.error_code
        )));
    }
    let max_of = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    let (produce_min, produce_max) = max_of(ApiKey::Produce)
        .ok_or_else(|| NativeError::Unsupported("broker does not list Produce".into()))?;
    let produce_version = produce_max.min(PRODUCE_VERSION_MAX);
    if produce_version < PRODUCE_VERSION_MIN.max(produce_min) {
        return Err(NativeError::Unsupported(format!(
            "Produce versions {produce_min}..={produce_max}"
        )));
    }
    let metadata_version = max_of(ApiKey::Metadata)
        .map(|(_, max)| max.min(METADATA_VERSION_MAX))
        .ok_or_else(|| NativeError::Unsupported("broker does not list Metadata".into()))?;
    let (partitions, leader) = topic_layout(&mut conn, &plan.topic, metadata_version)?;
    if let Some(addr) = leader {
        conn = Conn::connect(&addr, client_id)?;
    }
    Ok(NativeProducer {
        conn,
        produce_version,
        partitions,
        topic: TopicName(StrBytes::from_string(plan.topic.clone())),
        acks: acks_code(&plan.workload.acks),
    })
}

fn acks_code(acks: &str) -> i16 {
    match acks {
        "0" => 0,
        "1" => 1,
        _ => -1,
    }
}

/// Partition count, and the leader's address when it is not the bootstrap broker.
fn topic_layout(
    conn: &mut Conn,
    topic: &str,
    version: i16,
) -> Result<(u32, Option<String>), NativeError> {
    let deadline = Instant::now() + METADATA_WAIT;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(true);
    loop {
        let meta: MetadataResponse = conn.call(ApiKey::Metadata, version, &request)?;
        let found = meta
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .filter(|t| t.error_code == 0 && !t.partitions.is_empty());
        if let Some(t) = found {
            let leader = t.partitions.first().map(|p| p.leader_id);
            if t.partitions.iter().any(|p| Some(p.leader_id) != leader) {
                return Err(NativeError::Unsupported(
                    "partitions led by different brokers (the native client keeps one connection)"
                        .into(),
                ));
            }
            let partitions = u32::try_from(t.partitions.len())
                .map_err(|_| NativeError::Protocol("partition count".into()))?;
            // One broker: keep the bootstrap address (the advertised one may be unreachable).
            let leader_addr = if meta.brokers.len() > 1 {
                meta.brokers
                    .iter()
                    .find(|b| Some(b.node_id) == leader)
                    .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            } else {
                None
            };
            return Ok((partitions, leader_addr));
        }
        if Instant::now() >= deadline {
            return Err(NativeError::NoMetadata(topic.to_string(), METADATA_WAIT));
        }
        std::thread::sleep(METADATA_RETRY);
    }
}

/// A request waiting for its response.
struct InFlight {
    correlation_id: i32,
    partition: i32,
    batch: Bytes,
    records: u32,
}

/// What an ack or a failure does to the run's books; shared by sender and receiver.
#[derive(Clone)]
struct Books {
    clock: RunClock,
    window_ns: (u64, u64),
    state: Arc<Mutex<DeliveryState>>,
    counters: Arc<LiveCounters>,
    errors: Arc<crate::producer::ErrorKinds>,
    label: String,
}

impl Books {
    /// Every record of `batch` is acknowledged now.
    fn settle(&self, batch: &[u8]) {
        let now_ns = self.clock.now_ns();
        let (from, to) = self.window_ns;
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut msgs = 0u64;
        let mut bytes = 0u64;
        let walked = batch::for_each_value(batch, |value| {
            msgs += 1;
            bytes += value.len() as u64;
            let Ok(header) = Header::read_from(value) else {
                return;
            };
            if header.seq.0 < SEQ_MAX {
                state.acked.insert(header.seq);
            }
            if (from..to).contains(&header.intended_ns) {
                state
                    .publish_latency
                    .record_ns(now_ns.saturating_sub(header.intended_ns));
            }
        });
        drop(state);
        LiveCounters::add(&self.counters.acked_msgs, msgs);
        LiveCounters::add(&self.counters.acked_bytes, bytes);
        if let Err(e) = walked {
            self.fail(0, &format!("own batch unreadable: {e}"));
        }
    }

    fn fail(&self, records: u32, kind: &str) {
        LiveCounters::add(&self.counters.produce_errors, u64::from(records));
        if self.errors.count(format!("native: {kind}")) {
            eprintln!("[{}] native producer: {kind}", self.label);
        }
    }
}

/// The send loop; returns after the last response (or a broken connection).
pub fn run(
    plan: ProducerPlan,
    producer: NativeProducer,
    state: Arc<Mutex<DeliveryState>>,
) -> Result<(), NativeError> {
    let books = Books {
        clock: plan.clock,
        window_ns: (plan.measure_start_ns, plan.end_ns),
        state,
        counters: plan.counters.clone(),
        errors: plan.errors.clone(),
        label: plan.label.clone(),
    };
    let broken = Arc::new(AtomicBool::new(false));
    let (tx, receiver) = if producer.acks == 0 {
        (None, None)
    } else {
        let (tx, rx) = sync_channel::<InFlight>(IN_FLIGHT_REQUESTS_MAX);
        let read = producer.conn.stream.try_clone().map_err(io("try_clone"))?;
        let (books, broken, version) = (books.clone(), broken.clone(), producer.produce_version);
        let handle = std::thread::Builder::new()
            .name(format!("native-rx-{}", plan.id.0))
            .spawn(move || receive(read, rx, version, &books, &broken))
            .map_err(io("spawning receiver"))?;
        (Some(tx), Some(handle))
    };
    let mut sender = Sender::new(&plan, producer, books, broken, tx);
    sender.send_all(&plan);
    sender.flush_all();
    // Closing the queue lets the receiver finish the in-flight entries and exit.
    drop(sender);
    if let Some(handle) = receiver {
        let _ = handle.join();
    }
    Ok(())
}

fn receive(
    mut stream: TcpStream,
    rx: Receiver<InFlight>,
    version: i16,
    books: &Books,
    broken: &AtomicBool,
) {
    let mut frame = Vec::new();
    let mut failure: Option<String> = None;
    while let Ok(entry) = rx.recv() {
        if let Some(reason) = &failure {
            books.fail(entry.records, reason);
            continue;
        }
        let response: Result<ProduceResponse, _> = read_response(
            &mut stream,
            &mut frame,
            ApiKey::Produce,
            version,
            entry.correlation_id,
        );
        match response.map(|r| partition_outcome(&r, entry.partition)) {
            Ok(Ok(())) => books.settle(&entry.batch),
            Ok(Err(code)) => books.fail(entry.records, &format!("Produce error code {code}")),
            Err(e) => {
                let reason = format!("connection broken: {e}");
                books.fail(entry.records, &reason);
                broken.store(true, Ordering::Relaxed);
                failure = Some(reason);
            }
        }
    }
}

/// Ok when the response acknowledges `partition` with no error and a real base offset.
fn partition_outcome(response: &ProduceResponse, partition: i32) -> Result<(), i16> {
    let p = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or(-1i16)?;
    if p.error_code != 0 {
        return Err(p.error_code);
    }
    if p.base_offset < 0 {
        return Err(-1);
    }
    Ok(())
}

/// One open batch per partition (keyed) or one at a time (sticky).
struct OpenBatch {
    encoder: BatchEncoder,
    opened_ns: u64,
}

struct Sender {
    conn: Conn,
    produce_version: i16,
    acks: i16,
    topic: TopicName,
    partitions: u32,
    open: Vec<OpenBatch>,
    /// Partitions with an open batch (so the linger check is not O(partitions)).
    pending: Vec<u32>,
    sticky: u32,
    batch_size_bytes: usize,
    linger_ns: u64,
    books: Books,
    broken: Arc<AtomicBool>,
    tx: Option<SyncSender<InFlight>>,
}

impl Sender {
    fn new(
        plan: &ProducerPlan,
        producer: NativeProducer,
        books: Books,
        broken: Arc<AtomicBool>,
        tx: Option<SyncSender<InFlight>>,
    ) -> Sender {
        let batch_size_bytes = plan.workload.batch_size_bytes as usize;
        let open = (0..producer.partitions)
            .map(|_| OpenBatch {
                encoder: BatchEncoder::new(batch_size_bytes),
                opened_ns: 0,
            })
            .collect();
        Sender {
            conn: producer.conn,
            produce_version: producer.produce_version,
            acks: producer.acks,
            topic: producer.topic,
            partitions: producer.partitions,
            open,
            pending: Vec::new(),
            sticky: plan.index % producer.partitions,
            batch_size_bytes,
            linger_ns: u64::from(plan.workload.linger_ms) * 1_000_000,
            books,
            broken,
            tx,
        }
    }

    fn send_all(&mut self, plan: &ProducerPlan) {
        let mut rng =
            fastrand::Rng::with_seed(u64::from(plan.id.0) ^ u64::from(plan.run_tag) << 32);
        let mut payloads = PayloadBuilder::new(&plan.workload, &mut rng);
        let mut keys = KeyChooser::new(&plan.workload, plan.id);
        let mut schedule = plan.workload.is_fixed_rate().then(|| {
            FixedRateSchedule::new(
                plan.start_ns,
                plan.workload.producer_rate_msgs_per_s,
                plan.index,
                plan.producer_count,
            )
        });
        let timestamp_ms = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        };
        let mut seq = 0u64;
        loop {
            let intended_ns = match schedule.as_mut() {
                Some(s) => s.next_intended_ns(),
                None => plan.clock.now_ns(),
            };
            if intended_ns >= plan.end_ns
                || plan.stop.load(Ordering::Relaxed)
                || self.broken.load(Ordering::Relaxed)
                || seq >= SEQ_MAX
            {
                return;
            }
            if schedule.is_some() {
                self.wait_lingering(&plan.clock, intended_ns);
            }
            let header = Header {
                producer: plan.id,
                seq: Seq(seq),
                intended_ns,
                run_tag: plan.run_tag,
            };
            let key = keys.next_key(&mut rng).map(str::as_bytes);
            let partition = match key {
                Some(k) => batch::partition_for_key(k, self.partitions),
                None => self.sticky,
            };
            let value = payloads.build(&header);
            self.append(partition, key, value, &plan.clock, timestamp_ms);
            seq += 1;
        }
    }

    fn append(
        &mut self,
        partition: u32,
        key: Option<&[u8]>,
        value: &[u8],
        clock: &RunClock,
        timestamp_ms: impl Fn() -> i64,
    ) {
        let Some(open) = self.open.get(partition as usize) else {
            return;
        };
        let record_bytes = open.encoder.record_bytes(key, value.len());
        if !open.encoder.is_empty()
            && open.encoder.len_bytes() + record_bytes > self.batch_size_bytes
        {
            self.flush(partition);
        }
        let Some(open) = self.open.get_mut(partition as usize) else {
            return;
        };
        if open.encoder.is_empty() {
            open.opened_ns = clock.now_ns();
            self.pending.push(partition);
        }
        open.encoder.push(key, value, timestamp_ms());
        if open.encoder.len_bytes() >= self.batch_size_bytes {
            self.flush(partition);
        }
    }

    /// Sleeps until `intended_ns`, sending batches whose linger ran out meanwhile.
    fn wait_lingering(&mut self, clock: &RunClock, intended_ns: u64) {
        loop {
            let now = clock.now_ns();
            let mut next_deadline = u64::MAX;
            let mut i = 0;
            while let Some(&p) = self.pending.get(i) {
                let deadline = self
                    .open
                    .get(p as usize)
                    .map_or(0, |o| o.opened_ns.saturating_add(self.linger_ns));
                if deadline <= now {
                    self.flush(p); // removes p from pending
                } else {
                    next_deadline = next_deadline.min(deadline);
                    i += 1;
                }
            }
            if intended_ns <= now {
                return;
            }
            let wake = intended_ns.min(next_deadline);
            std::thread::sleep(Duration::from_nanos(wake.saturating_sub(now)));
        }
    }

    fn flush_all(&mut self) {
        while let Some(&p) = self.pending.first() {
            self.flush(p);
        }
    }

    /// Seals `partition`'s open batch and sends it as one Produce request.
    fn flush(&mut self, partition: u32) {
        let Some(open) = self.open.get_mut(partition as usize) else {
            return;
        };
        if open.encoder.is_empty() {
            return;
        }
        let records = open.encoder.record_count().unsigned_abs();
        let batch = open.encoder.seal();
        self.pending.retain(|&p| p != partition);
        if partition == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions;
        }
        if self.broken.load(Ordering::Relaxed) {
            self.books.fail(records, "connection broken");
            return;
        }
        if let Err(e) = self.write_request(partition, batch, records) {
            self.books.fail(records, &e.to_string());
            self.broken.store(true, Ordering::Relaxed);
            return;
        }
        LiveCounters::add(&self.books.counters.sent_msgs, u64::from(records));
    }

    fn write_request(
        &mut self,
        partition: u32,
        batch: Bytes,
        records: u32,
    ) -> Result<(), NativeError> {
        let index = partition as i32;
        let request = ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(self.topic.clone())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(index)
                    .with_records(Some(batch.clone()))])]);
        let correlation_id = self
            .conn
            .encode(ApiKey::Produce, self.produce_version, &request)?;
        drop(request);
        if let Some(tx) = &self.tx {
            // Queued before the write, so the receiver always finds the entry for a response;
            // blocks while the window is full.
            let entry = InFlight {
                correlation_id,
                partition: index,
                batch: batch.clone(),
                records,
            };
            tx.send(entry)
                .map_err(|_| NativeError::Protocol("receiver gone".into()))?;
        }
        self.conn
            .stream
            .write_all(&self.conn.out)
            .map_err(io("writing Produce"))?;
        if self.tx.is_none() {
            // acks=0: no response comes; the write is the ack, as with librdkafka.
            self.books.settle(&batch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_map_to_protocol_codes() {
        assert_eq!(acks_code("all"), -1);
        assert_eq!(acks_code("-1"), -1);
        assert_eq!(acks_code("1"), 1);
        assert_eq!(acks_code("0"), 0);
    }

    #[test]
    fn partition_outcome_needs_the_partition_without_error() {
        use kafka_protocol::messages::produce_response::{
            PartitionProduceResponse, TopicProduceResponse,
        };
        let response = |code: i16, offset: i64| {
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_partition_responses(vec![PartitionProduceResponse::default()
                    .with_index(3)
                    .with_error_code(code)
                    .with_base_offset(offset)])])
        };
        assert_eq!(partition_outcome(&response(0, 42), 3), Ok(()));
        assert_eq!(partition_outcome(&response(0, 42), 4), Err(-1));
        assert_eq!(partition_outcome(&response(6, 42), 3), Err(6));
        assert_eq!(partition_outcome(&response(0, -1), 3), Err(-1));
    }
}
