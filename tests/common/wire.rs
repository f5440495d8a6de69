//! Raw Kafka wire helpers for sending hand-made (often malformed) frames over `std::net`.
//!
//! A frame is a 4-byte big-endian size followed by that many bytes; a request header v1 is
//! api_key i16, api_version i16, correlation_id i32, client_id nullable string (i16 length);
//! header v2 adds an empty tagged-field section (one zero byte). Well-formed requests are
//! encoded with kafka-protocol (`encode_request`, `decode_response`, `call`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

/// How long a malformed connection may take to be answered or closed.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub const API_VERSIONS: i16 = 18;
pub const UNSUPPORTED_VERSION: i16 = 35;

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("set_read_timeout: {e}"));
    stream.set_nodelay(true).ok();
    stream
}

/// Request header v1 (or v2 when `flexible`).
pub fn request_header(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    flexible: bool,
) -> Vec<u8> {
    let client_id = b"sluice-bad-input";
    let mut out = Vec::new();
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&api_version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    out.extend_from_slice(client_id);
    if flexible {
        out.push(0);
    }
    out
}

/// Prefixes `payload` with its size.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let size = i32::try_from(payload.len()).expect("test frame fits i32");
    let mut out = size.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A whole request frame (size, header, body) for `request` at `version` (the CLI's encoder).
pub fn encode_request<Req: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &Req,
) -> Vec<u8> {
    sluice::cli::client::encode_frame(key, version, correlation_id, client_id, request)
        .unwrap_or_else(|e| panic!("encode {key:?}: {e}"))
}

/// Decodes a response frame's body (without its size prefix), checking the correlation id.
pub fn decode_response<Resp: Decodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: Vec<u8>,
) -> Resp {
    sluice::cli::client::decode_frame(key, version, correlation_id, Bytes::from(body))
        .unwrap_or_else(|e| panic!("decode {key:?} v{version} response: {e}"))
}

/// A topic name as the protocol types take it.
/// A consumer's Fetch (session-less, replica id -1) of one partition from `offset`, waiting
/// up to `max_wait_ms` for one byte; `max_bytes` bounds the response and the partition.
pub fn fetch_one(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    max_bytes: i32,
) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    kafka_protocol::messages::FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

/// Produce v8 of one topic's partitions (index, records) without a transactional id, over a
/// fresh connection: (error code, base offset) of each partition answered, in answer order.
pub fn produce_partitions(
    addr: SocketAddr,
    topic: &str,
    acks: i16,
    batches: &[(i32, Bytes)],
) -> Vec<(i16, i64)> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    let partitions = batches
        .iter()
        .map(|(index, records)| {
            PartitionProduceData::default()
                .with_index(*index)
                .with_records(Some(records.clone()))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(partitions)]);
    let response: ProduceResponse = call(addr, ApiKey::Produce, 8, &request);
    response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| (p.error_code, p.base_offset))
        .collect()
}

pub fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
        name.to_owned(),
    ))
}

/// One request over a fresh connection; returns the decoded response body.
pub fn call<Req: Encodable, Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    call_within(addr, key, version, request, REPLY_TIMEOUT)
}

/// [`call`] for a request the broker may take up to `within` to answer (one it retries).
pub fn call_within<Req: Encodable, Resp: Decodable>(
    addr: SocketAddr,
    key: ApiKey,
    version: i16,
    request: &Req,
    within: Duration,
) -> Resp {
    const CORRELATION_ID: i32 = 7;
    let mut stream = connect(addr);
    send(
        &mut stream,
        &encode_request(key, version, CORRELATION_ID, "sluice-tests", request),
    );
    let Outcome::Response(body) = read_outcome_by(&mut stream, Instant::now() + within) else {
        panic!("no {key:?} v{version} response within {within:?}");
    };
    decode_response(key, version, CORRELATION_ID, body)
}

/// What the broker did with a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// EOF or reset.
    Closed,
    /// One whole response frame (without its size prefix).
    Response(Vec<u8>),
    /// Neither within [`REPLY_TIMEOUT`].
    Silent,
}

/// Writes `bytes`, ignoring a reset: the broker may close before reading everything.
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    match stream.write_all(bytes) {
        Ok(()) => {}
        Err(e) if is_closed(&e) => {}
        Err(e) => panic!("write: {e}"),
    }
}

/// Reads one response frame, or notices the connection closed, within [`REPLY_TIMEOUT`].
pub fn read_outcome(stream: &mut TcpStream) -> Outcome {
    read_outcome_by(stream, Instant::now() + REPLY_TIMEOUT)
}

/// [`read_outcome`] by `deadline`.
pub fn read_outcome_by(stream: &mut TcpStream, deadline: Instant) -> Outcome {
    let mut size = [0_u8; 4];
    match read_exact_by(stream, &mut size, deadline) {
        ReadResult::Done => {}
        ReadResult::Closed => return Outcome::Closed,
        ReadResult::TimedOut => return Outcome::Silent,
    }
    let len = i32::from_be_bytes(size);
    assert!(
        (0..=64 << 20).contains(&len),
        "response size {len} is not sane"
    );
    let mut body = vec![0_u8; usize::try_from(len).unwrap_or(0)];
    match read_exact_by(stream, &mut body, deadline) {
        ReadResult::Done => Outcome::Response(body),
        ReadResult::Closed => panic!("connection closed inside a response frame"),
        ReadResult::TimedOut => panic!("response frame cut short"),
    }
}

/// Asserts the broker closes the connection (draining anything it sends first is not
/// allowed: a malformed frame gets no response).
pub fn assert_closed(stream: &mut TcpStream, what: &str) {
    let outcome = read_outcome(stream);
    assert_eq!(
        outcome,
        Outcome::Closed,
        "{what}: broker should close the connection"
    );
}

enum ReadResult {
    Done,
    Closed,
    TimedOut,
}

fn read_exact_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> ReadResult {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return ReadResult::Closed,
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return ReadResult::TimedOut;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_closed(&e) => return ReadResult::Closed,
            Err(e) => panic!("read: {e}"),
        }
    }
    ReadResult::Done
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// A cursor over a response body, for the few fields the tests check.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let end = self.at + N;
        let slice = self.bytes.get(self.at..end).unwrap_or_else(|| {
            panic!(
                "response too short: need {end} bytes, have {}",
                self.bytes.len()
            )
        });
        self.at = end;
        let mut out = [0_u8; N];
        out.copy_from_slice(slice);
        out
    }

    pub fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }

    pub fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// ApiVersions v0 response body: error code and (api_key, min, max) entries.
pub fn parse_api_versions_v0(body: &[u8]) -> (i32, i16, Vec<(i16, i16, i16)>) {
    let mut c = Cursor::new(body);
    let correlation_id = c.i32();
    let error_code = c.i16();
    let count = c.i32();
    assert!((0..1000).contains(&count), "api_keys count {count}");
    let keys = (0..count).map(|_| (c.i16(), c.i16(), c.i16())).collect();
    (correlation_id, error_code, keys)
}
