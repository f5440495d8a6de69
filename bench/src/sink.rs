//! A minimal Kafka-protocol sink: answers ApiVersions, Metadata, CreateTopics and Produce
//! (acknowledging every batch at once, storing nothing), so a run against it measures the load
//! generator's own ceiling. Comparing a broker's throughput with the sink's tells which side
//! limits a run.
//!
//! It advertises only what it answers, with version caps librdkafka negotiates down to. Bad
//! input never panics: an oversized frame, unknown API or undecodable request closes the
//! connection. Consumers are not served (no Fetch).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest request frame accepted (librdkafka's default message.max.bytes is 1 MB; batches of
/// large messages need more).
pub const FRAME_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Topics the sink remembers; beyond it, Metadata answers UNKNOWN_TOPIC_OR_PARTITION.
pub const TOPICS_MAX: usize = 10_000;
/// Partitions a topic gets when first seen in Metadata (auto-creation).
pub const DEFAULT_PARTITIONS: i32 = 100;
const PARTITIONS_MAX: i32 = 10_000;

const ERROR_UNKNOWN_TOPIC: i16 = 3;
const ERROR_UNSUPPORTED_VERSION: i16 = 35;
const ERROR_INVALID_PARTITIONS: i16 = 37;
const BROKER_ID: i32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds FRAME_BYTES_MAX")]
    FrameTooLarge(i64),
    #[error("request header: {0}")]
    Header(String),
    #[error("unsupported api key {0}")]
    UnknownApi(i16),
    #[error("unsupported {0:?} version {1}")]
    UnsupportedVersion(ApiKey, i16),
    #[error("decoding {0:?}: {1}")]
    Decode(ApiKey, String),
    #[error("encoding response: {0}")]
    Encode(String),
}

/// Versions the sink answers: kafka-protocol's ranges, capped where newer versions change
/// semantics it does not implement (Produce v10+ tags, v13 topic ids).
fn supported(key: ApiKey) -> Option<(i16, i16)> {
    let cap = match key {
        ApiKey::ApiVersions => 3,
        ApiKey::Metadata => 12,
        ApiKey::Produce => 9,
        ApiKey::CreateTopics => 7,
        _ => return None,
    };
    let valid = key.valid_versions();
    Some((valid.min, valid.max.min(cap)))
}

/// Shared sink state: known topics and a global offset counter.
#[derive(Debug)]
pub struct SinkState {
    addr: SocketAddr,
    default_partitions: i32,
    topics: Mutex<HashMap<String, i32>>,
    next_offset: AtomicI64,
}

impl SinkState {
    fn partitions_of(&self, topic: &str, create: bool) -> Option<i32> {
        let mut topics = match self.topics.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(p) = topics.get(topic) {
            return Some(*p);
        }
        if create && topics.len() < TOPICS_MAX {
            topics.insert(topic.to_string(), self.default_partitions);
            return Some(self.default_partitions);
        }
        None
    }

    fn create(&self, topic: &str, partitions: i32) -> i16 {
        let partitions = if partitions <= 0 {
            self.default_partitions
        } else {
            partitions
        };
        if partitions > PARTITIONS_MAX {
            return ERROR_INVALID_PARTITIONS;
        }
        let mut topics = match self.topics.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        if topics.len() >= TOPICS_MAX && !topics.contains_key(topic) {
            return ERROR_INVALID_PARTITIONS;
        }
        topics.insert(topic.to_string(), partitions);
        0
    }
}

/// Binds `addr` and serves until the runtime shuts down; returns the bound address.
pub async fn spawn(addr: SocketAddr, default_partitions: i32) -> Result<SocketAddr, SinkError> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = Arc::new(SinkState {
        addr: bound,
        default_partitions: default_partitions.clamp(1, PARTITIONS_MAX),
        topics: Mutex::new(HashMap::new()),
        next_offset: AtomicI64::new(0),
    });
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        // A client that misbehaves only loses its own connection.
                        let _ = serve(stream, state).await;
                    });
                }
                Err(e) => eprintln!("[sink] accept: {e}"),
            }
        }
    });
    Ok(bound)
}

async fn serve(stream: TcpStream, state: Arc<SinkState>) -> Result<(), SinkError> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(256 * 1024, read);
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let size = match read.read_i32().await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let size_usize =
            usize::try_from(size).map_err(|_| SinkError::FrameTooLarge(size.into()))?;
        if size_usize > FRAME_BYTES_MAX {
            return Err(SinkError::FrameTooLarge(size.into()));
        }
        let mut frame = BytesMut::zeroed(size_usize);
        read.read_exact(&mut frame).await?;
        out.clear();
        if handle(frame.freeze(), &state, &mut out)? {
            write.write_all(&out).await?;
        }
    }
}

/// Decodes one request and encodes its response (length-prefixed) into `out`.
/// Returns false when no response is due (Produce with acks=0).
pub fn handle(mut frame: Bytes, state: &SinkState, out: &mut BytesMut) -> Result<bool, SinkError> {
    let (api_key_raw, version) = match frame.get(..4) {
        Some(&[a, b, c, d]) => (i16::from_be_bytes([a, b]), i16::from_be_bytes([c, d])),
        _ => return Err(SinkError::Header("frame shorter than a header".into())),
    };
    let key = ApiKey::try_from(api_key_raw).map_err(|_| SinkError::UnknownApi(api_key_raw))?;
    let (min, max) = supported(key).ok_or(SinkError::UnknownApi(api_key_raw))?;
    if key == ApiKey::ApiVersions && version > max {
        // Kafka's rule: answer an unknown ApiVersions version with v0 and the error code.
        let header = RequestHeader::decode(&mut frame, key.request_header_version(0))
            .map_err(|e| SinkError::Header(e.to_string()))?;
        let body = api_versions(ERROR_UNSUPPORTED_VERSION);
        encode_response(out, header.correlation_id, key, 0, &body)?;
        return Ok(true);
    }
    if version < min || version > max {
        return Err(SinkError::UnsupportedVersion(key, version));
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| SinkError::Header(e.to_string()))?;
    let id = header.correlation_id;
    match key {
        ApiKey::ApiVersions => encode_response(out, id, key, version, &api_versions(0))?,
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(&mut frame, version)
                .map_err(|e| SinkError::Decode(key, e.to_string()))?;
            encode_response(out, id, key, version, &metadata(state, &req))?;
        }
        ApiKey::CreateTopics => {
            let req = CreateTopicsRequest::decode(&mut frame, version)
                .map_err(|e| SinkError::Decode(key, e.to_string()))?;
            encode_response(out, id, key, version, &create_topics(state, &req))?;
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut frame, version)
                .map_err(|e| SinkError::Decode(key, e.to_string()))?;
            if req.acks == 0 {
                return Ok(false);
            }
            encode_response(out, id, key, version, &produce(state, &req))?;
        }
        _ => return Err(SinkError::UnknownApi(api_key_raw)),
    }
    Ok(true)
}

fn encode_response<M: Encodable>(
    out: &mut BytesMut,
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &M,
) -> Result<(), SinkError> {
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(out, key.response_header_version(version))
        .map_err(|e| SinkError::Encode(e.to_string()))?;
    body.encode(out, version)
        .map_err(|e| SinkError::Encode(e.to_string()))?;
    let len = i32::try_from(out.len() - start - 4)
        .map_err(|_| SinkError::Encode("response over 2 GiB".into()))?;
    if let Some(prefix) = out.get_mut(start..start + 4) {
        prefix.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let keys = [
        ApiKey::Produce,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
    ];
    let api_keys = keys
        .iter()
        .filter_map(|k| {
            supported(*k).map(|(min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

fn metadata(state: &SinkState, req: &MetadataRequest) -> MetadataResponse {
    let names: Vec<String> = match &req.topics {
        Some(topics) => topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string()))
            .collect(),
        None => match state.topics.lock() {
            Ok(t) => t.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        },
    };
    let topics = names
        .into_iter()
        .map(|name| {
            let partitions = state.partitions_of(&name, req.allow_auto_topic_creation);
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))));
            match partitions {
                Some(n) => topic.with_partitions(
                    (0..n)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(BROKER_ID))
                                .with_replica_nodes(vec![BrokerId(BROKER_ID)])
                                .with_isr_nodes(vec![BrokerId(BROKER_ID)])
                        })
                        .collect(),
                ),
                None => topic.with_error_code(ERROR_UNKNOWN_TOPIC),
            }
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(BROKER_ID))
            .with_host(StrBytes::from_string(state.addr.ip().to_string()))
            .with_port(i32::from(state.addr.port()))])
        .with_cluster_id(Some(StrBytes::from_static_str("sluice-bench-sink")))
        .with_controller_id(BrokerId(BROKER_ID))
        .with_topics(topics)
}

fn create_topics(state: &SinkState, req: &CreateTopicsRequest) -> CreateTopicsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let code = if req.validate_only {
                0
            } else {
                state.create(t.name.0.as_str(), t.num_partitions)
            };
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code)
                .with_num_partitions(t.num_partitions)
                .with_replication_factor(1)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn produce(state: &SinkState, req: &ProduceRequest) -> ProduceResponse {
    let responses = req
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| {
                    let count = p.records.as_ref().map(record_count).unwrap_or(0);
                    let base = state.next_offset.fetch_add(count, Ordering::Relaxed);
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Records in a v2 record-batch blob (sum of lastOffsetDelta + 1); stops at the first
/// malformed batch instead of trusting its length.
pub fn record_count(records: &Bytes) -> i64 {
    const LENGTH_AT: usize = 8;
    const LAST_OFFSET_DELTA_AT: usize = 23;
    let mut rest = records.clone();
    let mut count = 0i64;
    while rest.len() >= LAST_OFFSET_DELTA_AT + 4 {
        let batch_len = match rest.get(LENGTH_AT..LENGTH_AT + 4) {
            Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
            _ => break,
        };
        let delta = match rest.get(LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4) {
            Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
            _ => break,
        };
        let total = usize::try_from(batch_len)
            .ok()
            .and_then(|l| l.checked_add(LENGTH_AT + 4));
        match total {
            Some(total) if total <= rest.len() && delta >= 0 => {
                count += i64::from(delta) + 1;
                rest.advance(total);
            }
            _ => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SinkState {
        SinkState {
            addr: "127.0.0.1:9092".parse().unwrap(),
            default_partitions: 3,
            topics: Mutex::new(HashMap::new()),
            next_offset: AtomicI64::new(0),
        }
    }

    #[test]
    fn garbage_frames_are_errors_not_panics() {
        let s = state();
        let mut out = BytesMut::new();
        for frame in [
            &b""[..],
            &b"\x00"[..],
            &b"\x7f\x7f\x00\x00"[..],
            &b"\x00\x12\x00\x03\xff\xff\xff"[..],
            &b"\x00\x00\x00\x07\x00\x00\x00\x01\x00\x00"[..],
        ] {
            assert!(handle(Bytes::copy_from_slice(frame), &s, &mut out).is_err());
        }
    }

    #[test]
    fn api_versions_round_trip() {
        let s = state();
        let mut req = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("t")))
            .encode(&mut req, ApiKey::ApiVersions.request_header_version(3))
            .unwrap();
        kafka_protocol::messages::ApiVersionsRequest::default()
            .encode(&mut req, 3)
            .unwrap();
        let mut out = BytesMut::new();
        assert!(handle(req.freeze(), &s, &mut out).unwrap());
        let mut resp = out.freeze();
        let len = resp.get_i32();
        assert_eq!(len as usize, resp.len());
        let header = ResponseHeader::decode(&mut resp, 0).unwrap();
        assert_eq!(header.correlation_id, 77);
        let body = ApiVersionsResponse::decode(&mut resp, 3).unwrap();
        assert_eq!(body.error_code, 0);
        assert!(body
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16 && k.max_version == 9));
    }

    #[test]
    fn record_count_reads_batch_headers() {
        // Two fake batches: lastOffsetDelta 4 and 0, batchLength covering 49 bytes each.
        let mut blob = BytesMut::new();
        for delta in [4i32, 0] {
            blob.put_i64(0);
            blob.put_i32(49);
            blob.put_i32(0);
            blob.put_u8(2);
            blob.put_u32(0);
            blob.put_i16(0);
            blob.put_i32(delta);
            blob.put_bytes(0, 49 - 15);
        }
        assert_eq!(record_count(&blob.clone().freeze()), 6);
        // Truncated: only the complete first batch counts.
        let cut = blob.freeze().slice(..70);
        assert_eq!(record_count(&cut), 5);
    }
}
