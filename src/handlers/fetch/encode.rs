//! Hand encoder of Fetch responses (v4..=17) as body parts: framing fields as bytes, each
//! partition's records as the segment-file ranges storage returned, so the connection can
//! splice them to the socket (or copy them, `fetch.zero.copy = false`) without the handler ever
//! reading record bytes.
//!
//! Invariants: the parts, with every file range replaced by its contents, are byte-for-byte what
//! kafka-protocol's `FetchResponse::encode` writes for the same response (tests below, every
//! version); of the optional tagged fields only KIP-951's current leader (v12+, on a
//! NOT_LEADER_OR_FOLLOWER partition), the diverging epoch (v12+, on a replica fetch) and node
//! endpoints (v16+) are written (snapshot id never is), aborted transactions are an array (empty, never null, when there are
//! none) and preferred read replica is -1.

use bytes::{BufMut, BytesMut};

use crate::handlers::BodyPart;

/// Versions this encoder writes (the registry's Fetch range).
pub const VERSIONS: std::ops::RangeInclusive<i16> = 4..=17;
/// First version with compact arrays, compact strings/bytes and tagged fields.
const FLEXIBLE_VERSION: i16 = 12;
/// First version with top-level error code and session id.
const SESSION_VERSION: i16 = 7;
/// First version with log start offset per partition.
const LOG_START_VERSION: i16 = 5;
/// First version with preferred read replica.
const READ_REPLICA_VERSION: i16 = 11;
/// First version naming topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// First version with the response's node endpoints (KIP-951).
const NODE_ENDPOINTS_VERSION: i16 = 16;
/// Tag of a partition's current leader, and of the response's node endpoints.
const CURRENT_LEADER_TAG: u32 = 1;
const DIVERGING_EPOCH_TAG: u32 = 0;
const NODE_ENDPOINTS_TAG: u32 = 0;
/// Framing bytes per partition are well under this; sizes the first allocation only.
const PARTITION_FRAMING_BYTES_HINT: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("fetch response version {0} is not supported")]
    UnsupportedVersion(i16),
    #[error("session id {0} set on a version without sessions")]
    SessionBeforeV7(i32),
    #[error("topic name of {0} bytes does not fit a Kafka string")]
    NameTooLong(usize),
    #[error("array of {0} entries does not fit a Kafka array")]
    ArrayTooLong(usize),
    #[error("records of {0} bytes do not fit a Kafka bytes field")]
    RecordsTooLarge(u64),
}

/// One partition of the response.
#[derive(Debug, Default)]
pub struct PartitionOut {
    pub index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Whole batches in offset order; empty for an error or no data.
    pub records: Vec<storage::FileRange>,
    /// read_committed: (producer id, first offset) of the aborted transactions overlapping
    /// the records (empty for read_uncommitted).
    pub aborted_transactions: Vec<(i64, i64)>,
    /// KIP-951: (leader id, leader epoch) of a partition this broker does not lead.
    pub current_leader: Option<(i32, i32)>,
    /// KIP-595/320: a follower's fetch diverges from the leader's log at (epoch, end offset)
    /// (v12+; only on replica fetches).
    pub diverging_epoch: Option<(i32, i64)>,
}

/// One topic of the response (named by `name` up to v12, by `topic_id` from v13).
#[derive(Debug, Default)]
pub struct TopicOut {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionOut>,
}

#[derive(Debug, Default)]
pub struct ResponseOut {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<TopicOut>,
    /// KIP-951: the endpoints of the leaders named by `current_leader`.
    pub node_endpoints: Vec<crate::cluster::view::Node>,
}

/// Accumulates framing bytes and cuts them into a part at each file range.
struct Parts {
    buf: BytesMut,
    parts: Vec<BodyPart>,
}

impl Parts {
    fn file(&mut self, range: &storage::FileRange) {
        if range.len == 0 {
            return;
        }
        if !self.buf.is_empty() {
            self.parts.push(BodyPart::Bytes(self.buf.split().freeze()));
        }
        self.parts.push(BodyPart::File(range.clone()));
    }

    fn finish(mut self) -> Vec<BodyPart> {
        if !self.buf.is_empty() {
            self.parts.push(BodyPart::Bytes(self.buf.split().freeze()));
        }
        self.parts
    }
}

fn put_uvarint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Array length: INT32 (classic) or UNSIGNED_VARINT length + 1 (compact).
fn put_array_len(buf: &mut BytesMut, len: usize, flexible: bool) -> Result<(), EncodeError> {
    if flexible {
        let n = u32::try_from(len)
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or(EncodeError::ArrayTooLong(len))?;
        put_uvarint(buf, n);
    } else {
        let n = i32::try_from(len).map_err(|_| EncodeError::ArrayTooLong(len))?;
        buf.put_i32(n);
    }
    Ok(())
}

fn put_string(buf: &mut BytesMut, s: &str, flexible: bool) -> Result<(), EncodeError> {
    let len = s.len();
    let n = i16::try_from(len).map_err(|_| EncodeError::NameTooLong(len))?;
    if flexible {
        put_uvarint(buf, n.unsigned_abs() as u32 + 1);
    } else {
        buf.put_i16(n);
    }
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// An empty tagged-field section.
fn put_no_tags(buf: &mut BytesMut, flexible: bool) {
    if flexible {
        put_uvarint(buf, 0);
    }
}

/// Encodes `response` at `version` into body parts (no size prefix, no response header).
pub fn encode(response: &ResponseOut, version: i16) -> Result<Vec<BodyPart>, EncodeError> {
    if !VERSIONS.contains(&version) {
        return Err(EncodeError::UnsupportedVersion(version));
    }
    if version < SESSION_VERSION && response.session_id != 0 {
        return Err(EncodeError::SessionBeforeV7(response.session_id));
    }
    let flexible = version >= FLEXIBLE_VERSION;
    let partitions: usize = response.topics.iter().map(|t| t.partitions.len()).sum();
    let mut parts = Parts {
        buf: BytesMut::with_capacity(64 + partitions * PARTITION_FRAMING_BYTES_HINT),
        parts: Vec::with_capacity(1 + 2 * partitions),
    };
    let buf = &mut parts.buf;
    buf.put_i32(response.throttle_time_ms);
    if version >= SESSION_VERSION {
        buf.put_i16(response.error_code);
        buf.put_i32(response.session_id);
    }
    put_array_len(buf, response.topics.len(), flexible)?;
    for topic in &response.topics {
        encode_topic(&mut parts, topic, version)?;
    }
    if version >= NODE_ENDPOINTS_VERSION && !response.node_endpoints.is_empty() {
        let mut field = BytesMut::new();
        put_array_len(&mut field, response.node_endpoints.len(), true)?;
        for node in &response.node_endpoints {
            field.put_i32(node.id);
            put_string(&mut field, &node.host, true)?;
            field.put_i32(i32::from(node.port));
            match &node.rack {
                Some(rack) => put_string(&mut field, rack, true)?,
                None => put_uvarint(&mut field, 0),
            }
            put_uvarint(&mut field, 0);
        }
        put_tags(&mut parts.buf, &[(NODE_ENDPOINTS_TAG, &field)])?;
    } else {
        put_no_tags(&mut parts.buf, flexible);
    }
    Ok(parts.finish())
}

/// A tagged-field section with these (tag, bytes) fields, in tag order.
fn put_tags(buf: &mut BytesMut, fields: &[(u32, &[u8])]) -> Result<(), EncodeError> {
    put_uvarint(
        buf,
        u32::try_from(fields.len()).map_err(|_| EncodeError::ArrayTooLong(fields.len()))?,
    );
    for (tag, bytes) in fields {
        put_uvarint(buf, *tag);
        let len = u32::try_from(bytes.len()).map_err(|_| EncodeError::ArrayTooLong(bytes.len()))?;
        put_uvarint(buf, len);
        buf.put_slice(bytes);
    }
    Ok(())
}

fn encode_topic(parts: &mut Parts, topic: &TopicOut, version: i16) -> Result<(), EncodeError> {
    let flexible = version >= FLEXIBLE_VERSION;
    let buf = &mut parts.buf;
    if version >= TOPIC_ID_VERSION {
        buf.put_slice(topic.topic_id.as_bytes());
    } else {
        put_string(buf, &topic.name, flexible)?;
    }
    put_array_len(buf, topic.partitions.len(), flexible)?;
    for partition in &topic.partitions {
        encode_partition(parts, partition, version)?;
    }
    put_no_tags(&mut parts.buf, flexible);
    Ok(())
}

fn encode_partition(
    parts: &mut Parts,
    partition: &PartitionOut,
    version: i16,
) -> Result<(), EncodeError> {
    let flexible = version >= FLEXIBLE_VERSION;
    let buf = &mut parts.buf;
    buf.put_i32(partition.index);
    buf.put_i16(partition.error_code);
    buf.put_i64(partition.high_watermark);
    buf.put_i64(partition.last_stable_offset);
    if version >= LOG_START_VERSION {
        buf.put_i64(partition.log_start_offset);
    }
    // Aborted transactions (an empty array, not null, when there are none).
    put_array_len(buf, partition.aborted_transactions.len(), flexible)?;
    for (producer_id, first_offset) in &partition.aborted_transactions {
        buf.put_i64(*producer_id);
        buf.put_i64(*first_offset);
        put_no_tags(buf, flexible);
    }
    if version >= READ_REPLICA_VERSION {
        buf.put_i32(-1);
    }
    let records_bytes: u64 = partition.records.iter().map(|r| u64::from(r.len)).sum();
    let too_large = || EncodeError::RecordsTooLarge(records_bytes);
    if flexible {
        let n = u32::try_from(records_bytes)
            .ok()
            .and_then(|n| n.checked_add(1))
            .filter(|&n| i32::try_from(n).is_ok())
            .ok_or_else(too_large)?;
        put_uvarint(buf, n);
    } else {
        buf.put_i32(i32::try_from(records_bytes).map_err(|_| too_large())?);
    }
    for range in &partition.records {
        parts.file(range);
    }
    if !flexible {
        return Ok(());
    }
    // Tagged fields in tag order: DivergingEpoch (0), CurrentLeader (1).
    let diverging = partition.diverging_epoch.map(|(epoch, end_offset)| {
        // EpochEndOffset: epoch, end offset, no tags of its own.
        let mut field = BytesMut::with_capacity(13);
        field.put_i32(epoch);
        field.put_i64(end_offset);
        put_uvarint(&mut field, 0);
        field
    });
    let leader = partition.current_leader.map(|(leader, epoch)| {
        // LeaderIdAndEpoch: leader id, leader epoch, no tags of its own.
        let mut field = BytesMut::with_capacity(9);
        field.put_i32(leader);
        field.put_i32(epoch);
        put_uvarint(&mut field, 0);
        field
    });
    let mut tags: Vec<(u32, &[u8])> = Vec::with_capacity(2);
    if let Some(field) = &diverging {
        tags.push((DIVERGING_EPOCH_TAG, field));
    }
    if let Some(field) = &leader {
        tags.push((CURRENT_LEADER_TAG, field));
    }
    put_tags(&mut parts.buf, &tags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{
        FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, FetchResponse, TopicName};
    use kafka_protocol::protocol::Encodable;

    use super::*;

    struct Segment {
        _file: tempfile::NamedTempFile,
        fd: Arc<OwnedFd>,
        contents: Vec<u8>,
    }

    fn segment() -> Segment {
        let contents: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&contents).unwrap();
        let fd: OwnedFd = std::fs::File::open(file.path()).unwrap().into();
        Segment {
            _file: file,
            fd: Arc::new(fd),
            contents,
        }
    }

    fn range(seg: &Segment, position: u64, len: u32) -> storage::FileRange {
        storage::FileRange {
            fd: seg.fd.clone(),
            position,
            len,
        }
    }

    /// Replaces each file part by its contents.
    fn flatten(parts: &[BodyPart]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                BodyPart::Bytes(b) => out.extend_from_slice(b),
                BodyPart::File(r) => {
                    let file = std::fs::File::from(r.fd.try_clone().unwrap());
                    let mut buf = vec![0; r.len as usize];
                    file.read_exact_at(&mut buf, r.position).unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    /// A response with several topics, a multi-range partition (two segments), an empty one,
    /// an error and a long topic name (multi-byte varints in flexible versions).
    fn sample(seg: &Segment, version: i16) -> ResponseOut {
        let long_name = "t".repeat(200);
        let ok = |index, records| PartitionOut {
            index,
            error_code: 0,
            high_watermark: 1_000 + i64::from(index),
            last_stable_offset: 1_000 + i64::from(index),
            log_start_offset: 3,
            aborted_transactions: if index == 0 {
                vec![(5, 10), (6, 400)]
            } else {
                vec![]
            },
            records,
            current_leader: None,
            diverging_epoch: None,
        };
        ResponseOut {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: if version >= SESSION_VERSION { 77 } else { 0 },
            topics: vec![
                TopicOut {
                    name: "orders".into(),
                    topic_id: uuid::Uuid::from_u128(0x1234_5678_9abc),
                    partitions: vec![
                        ok(0, vec![range(seg, 10, 5_000), range(seg, 100_000, 150_000)]),
                        ok(1, vec![]),
                        PartitionOut {
                            index: 2,
                            error_code: 1,
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                            records: vec![],
                            aborted_transactions: vec![],
                            current_leader: None,
                            diverging_epoch: Some((4, 120)),
                        },
                        PartitionOut {
                            index: 3,
                            error_code: 6,
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                            records: vec![],
                            current_leader: Some((2, 9)),
                            aborted_transactions: vec![],
                            diverging_epoch: Some((7, 1 << 40)),
                        },
                    ],
                },
                TopicOut {
                    name: long_name,
                    topic_id: uuid::Uuid::from_u128(42),
                    partitions: vec![ok(7, vec![range(seg, 0, 130)])],
                },
            ],
            node_endpoints: vec![
                crate::cluster::view::Node {
                    id: 2,
                    host: "broker-2.example".into(),
                    port: 9093,
                    rack: Some("r2".into()),
                },
                crate::cluster::view::Node {
                    id: 3,
                    host: "b3".into(),
                    port: 9094,
                    rack: None,
                },
            ],
        }
    }

    fn to_kafka_protocol(seg: &Segment, response: &ResponseOut) -> FetchResponse {
        let topics = response
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut records = Vec::new();
                        for r in &p.records {
                            let start = r.position as usize;
                            records.extend_from_slice(&seg.contents[start..start + r.len as usize]);
                        }
                        let (leader, epoch) = p.current_leader.unwrap_or((-1, -1));
                        let (div_epoch, div_end) = p.diverging_epoch.unwrap_or((-1, -1));
                        PartitionData::default()
                            .with_diverging_epoch(
                                kafka_protocol::messages::fetch_response::EpochEndOffset::default()
                                    .with_epoch(div_epoch)
                                    .with_end_offset(div_end),
                            )
                            .with_current_leader(
                                LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(leader))
                                    .with_leader_epoch(epoch),
                            )
                            .with_partition_index(p.index)
                            .with_error_code(p.error_code)
                            .with_high_watermark(p.high_watermark)
                            .with_last_stable_offset(p.last_stable_offset)
                            .with_log_start_offset(p.log_start_offset)
                            .with_aborted_transactions(Some(
                                p.aborted_transactions
                                    .iter()
                                    .map(|&(producer_id, first_offset)| {
                                        kafka_protocol::messages::fetch_response::AbortedTransaction::default()
                                            .with_producer_id(producer_id.into())
                                            .with_first_offset(first_offset)
                                    })
                                    .collect(),
                            ))
                            .with_records(Some(Bytes::from(records)))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(TopicName(crate::handlers::str_bytes(&t.name)))
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        let nodes = response
            .node_endpoints
            .iter()
            .map(|n| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(n.id))
                    .with_host(crate::handlers::str_bytes(&n.host))
                    .with_port(i32::from(n.port))
                    .with_rack(n.rack.as_deref().map(crate::handlers::str_bytes))
            })
            .collect();
        FetchResponse::default()
            .with_node_endpoints(nodes)
            .with_throttle_time_ms(response.throttle_time_ms)
            .with_error_code(response.error_code)
            .with_session_id(response.session_id)
            .with_responses(topics)
    }

    #[test]
    fn matches_kafka_protocol_for_every_version() {
        let seg = segment();
        for version in VERSIONS {
            let response = sample(&seg, version);
            let parts = encode(&response, version).unwrap();
            let files = parts
                .iter()
                .filter(|p| matches!(p, BodyPart::File(_)))
                .count();
            assert_eq!(files, 3, "v{version}: records stay file ranges");
            let mut expected = BytesMut::new();
            to_kafka_protocol(&seg, &response)
                .encode(&mut expected, version)
                .unwrap();
            let ours = flatten(&parts);
            assert_eq!(ours.len(), expected.len(), "v{version} length");
            assert!(ours == expected[..], "v{version} bytes differ");
        }
    }

    #[test]
    fn empty_and_error_responses_match() {
        for version in VERSIONS {
            let response = ResponseOut {
                error_code: if version >= SESSION_VERSION { 70 } else { 0 },
                ..ResponseOut::default()
            };
            let parts = encode(&response, version).unwrap();
            let mut expected = BytesMut::new();
            FetchResponse::default()
                .with_error_code(response.error_code)
                .encode(&mut expected, version)
                .unwrap();
            assert_eq!(flatten(&parts), expected.to_vec(), "v{version}");
        }
    }

    #[test]
    fn rejects_what_cannot_be_encoded() {
        let empty = ResponseOut::default();
        assert_eq!(
            encode(&empty, 3).unwrap_err(),
            EncodeError::UnsupportedVersion(3)
        );
        assert_eq!(
            encode(&empty, 18).unwrap_err(),
            EncodeError::UnsupportedVersion(18)
        );
        let session = ResponseOut {
            session_id: 5,
            ..ResponseOut::default()
        };
        assert_eq!(
            encode(&session, 6).unwrap_err(),
            EncodeError::SessionBeforeV7(5)
        );
        let long = ResponseOut {
            topics: vec![TopicOut {
                name: "x".repeat(40_000),
                ..TopicOut::default()
            }],
            ..ResponseOut::default()
        };
        assert_eq!(
            encode(&long, 12).unwrap_err(),
            EncodeError::NameTooLong(40_000)
        );
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        let cases: [(u32, &[u8]); 5] = [
            (0, &[0]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (u32::MAX, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (value, expected) in cases {
            let mut ours = BytesMut::new();
            put_uvarint(&mut ours, value);
            assert_eq!(&ours[..], expected, "{value}");
        }
    }
}
