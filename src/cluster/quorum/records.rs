//! The metadata records of the controller quorum's log, in the spirit of Kafka's KRaft records
//! (`metadata/src/main/resources/common/metadata/*.json`), and their versioned binary codec.
//!
//! One raft log entry carries one [`RecordBatch`]: records that commit (and are applied)
//! together at one metadata offset.
//!
//! Wire format (all integers big-endian):
//! - batch: `format u8 (= 0)`, `count u32`, then `count` records;
//! - record: `type u16`, `version u8`, `body length u32`, body.
//!
//! Invariants:
//! - Decoding never trusts a length: every count and length is checked against the bytes left
//!   before anything is reserved, so garbage yields [`RecordError`], never a panic or a large
//!   allocation.
//! - Forward compatibility: a record's fields are only ever appended in later versions. A reader
//!   ignores trailing body bytes of a version newer than its own (the body length frames it),
//!   and refuses an unknown record type (a replicated state machine must not skip what it does
//!   not understand: that would silently diverge from the nodes that do).

use std::fmt;

use uuid::Uuid;

/// Format byte of a [`RecordBatch`] encoding.
const BATCH_FORMAT_V0: u8 = 0;
/// Version written for every record type (the first version of each).
const RECORD_VERSION_V0: u8 = 0;
/// Kafka's "no change" marker for `PartitionChangeRecord.Leader`.
pub const NO_LEADER_CHANGE: i32 = -2;

/// Why bytes do not decode as records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("metadata record bytes end early (needed {needed} more at byte {at})")]
    Truncated { at: usize, needed: usize },
    #[error("unknown metadata batch format {0}")]
    UnknownBatchFormat(u8),
    #[error("unknown metadata record type {0}")]
    UnknownRecordType(u16),
    #[error("invalid metadata record: {0}")]
    Invalid(&'static str),
}

/// A listener a broker registers (Kafka's `BrokerEndpoint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: i16,
}

/// One metadata change. Field names follow Kafka's record schemas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    /// `RegisterBrokerRecord` (type 0): a broker joined or re-registered with a new epoch.
    RegisterBroker {
        broker_id: i32,
        incarnation_id: Uuid,
        broker_epoch: i64,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
        fenced: bool,
    },
    /// `UnregisterBrokerRecord` (type 1).
    UnregisterBroker { broker_id: i32, broker_epoch: i64 },
    /// `TopicRecord` (type 2).
    Topic { name: String, topic_id: Uuid },
    /// `PartitionRecord` (type 3): a partition's full assignment and leadership.
    Partition {
        partition_id: i32,
        topic_id: Uuid,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        removing_replicas: Vec<i32>,
        adding_replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// `ConfigRecord` (type 4): `value` `None` deletes the config.
    Config {
        resource_type: i8,
        resource_name: String,
        name: String,
        value: Option<String>,
    },
    /// `PartitionChangeRecord` (type 5): `None` fields are unchanged; `leader` is
    /// [`NO_LEADER_CHANGE`] when the leader is unchanged. Applying it bumps the partition epoch,
    /// and the leader epoch when the leader changes, as Kafka does.
    PartitionChange {
        partition_id: i32,
        topic_id: Uuid,
        isr: Option<Vec<i32>>,
        leader: i32,
        replicas: Option<Vec<i32>>,
        removing_replicas: Option<Vec<i32>>,
        adding_replicas: Option<Vec<i32>>,
    },
    /// `FenceBrokerRecord` (type 7).
    FenceBroker { id: i32, epoch: i64 },
    /// `UnfenceBrokerRecord` (type 8).
    UnfenceBroker { id: i32, epoch: i64 },
    /// `RemoveTopicRecord` (type 9).
    RemoveTopic { topic_id: Uuid },
    /// `ProducerIdsRecord` (type 15): the next producer-id block starts at `next_producer_id`.
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next_producer_id: i64,
    },
}

impl MetadataRecord {
    /// Kafka's record type number (the `apiKey` of the record's schema).
    pub fn record_type(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker { .. } => 0,
            MetadataRecord::UnregisterBroker { .. } => 1,
            MetadataRecord::Topic { .. } => 2,
            MetadataRecord::Partition { .. } => 3,
            MetadataRecord::Config { .. } => 4,
            MetadataRecord::PartitionChange { .. } => 5,
            MetadataRecord::FenceBroker { .. } => 7,
            MetadataRecord::UnfenceBroker { .. } => 8,
            MetadataRecord::RemoveTopic { .. } => 9,
            MetadataRecord::ProducerIds { .. } => 15,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
                fenced,
            } => {
                put_i32(out, *broker_id);
                put_uuid(out, incarnation_id);
                put_i64(out, *broker_epoch);
                put_u32(out, len_u32(endpoints.len()));
                for e in endpoints {
                    put_str(out, &e.name);
                    put_str(out, &e.host);
                    out.extend_from_slice(&e.port.to_be_bytes());
                    out.extend_from_slice(&e.security_protocol.to_be_bytes());
                }
                put_opt_str(out, rack.as_deref());
                out.push(u8::from(*fenced));
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                put_i32(out, *broker_id);
                put_i64(out, *broker_epoch);
            }
            MetadataRecord::Topic { name, topic_id } => {
                put_str(out, name);
                put_uuid(out, topic_id);
            }
            MetadataRecord::Partition {
                partition_id,
                topic_id,
                replicas,
                isr,
                removing_replicas,
                adding_replicas,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                put_i32(out, *partition_id);
                put_uuid(out, topic_id);
                for list in [replicas, isr, removing_replicas, adding_replicas] {
                    put_i32s(out, list);
                }
                put_i32(out, *leader);
                put_i32(out, *leader_epoch);
                put_i32(out, *partition_epoch);
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                out.push(*resource_type as u8);
                put_str(out, resource_name);
                put_str(out, name);
                put_opt_str(out, value.as_deref());
            }
            MetadataRecord::PartitionChange {
                partition_id,
                topic_id,
                isr,
                leader,
                replicas,
                removing_replicas,
                adding_replicas,
            } => {
                put_i32(out, *partition_id);
                put_uuid(out, topic_id);
                put_opt_i32s(out, isr.as_deref());
                put_i32(out, *leader);
                for list in [replicas, removing_replicas, adding_replicas] {
                    put_opt_i32s(out, list.as_deref());
                }
            }
            MetadataRecord::FenceBroker { id, epoch }
            | MetadataRecord::UnfenceBroker { id, epoch } => {
                put_i32(out, *id);
                put_i64(out, *epoch);
            }
            MetadataRecord::RemoveTopic { topic_id } => put_uuid(out, topic_id),
            MetadataRecord::ProducerIds {
                broker_id,
                broker_epoch,
                next_producer_id,
            } => {
                put_i32(out, *broker_id);
                put_i64(out, *broker_epoch);
                put_i64(out, *next_producer_id);
            }
        }
    }

    fn decode_body(record_type: u16, r: &mut Reader<'_>) -> Result<Self, RecordError> {
        Ok(match record_type {
            0 => {
                let broker_id = r.i32()?;
                let incarnation_id = r.uuid()?;
                let broker_epoch = r.i64()?;
                let count = r.count(8)?;
                let mut endpoints = Vec::with_capacity(count);
                for _ in 0..count {
                    endpoints.push(BrokerEndpoint {
                        name: r.string()?,
                        host: r.string()?,
                        port: u16::from_be_bytes(r.array()?),
                        security_protocol: i16::from_be_bytes(r.array()?),
                    });
                }
                MetadataRecord::RegisterBroker {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    endpoints,
                    rack: r.opt_string()?,
                    fenced: r.bool()?,
                }
            }
            1 => MetadataRecord::UnregisterBroker {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
            },
            2 => MetadataRecord::Topic {
                name: r.string()?,
                topic_id: r.uuid()?,
            },
            3 => MetadataRecord::Partition {
                partition_id: r.i32()?,
                topic_id: r.uuid()?,
                replicas: r.i32s()?,
                isr: r.i32s()?,
                removing_replicas: r.i32s()?,
                adding_replicas: r.i32s()?,
                leader: r.i32()?,
                leader_epoch: r.i32()?,
                partition_epoch: r.i32()?,
            },
            4 => MetadataRecord::Config {
                resource_type: r.u8()? as i8,
                resource_name: r.string()?,
                name: r.string()?,
                value: r.opt_string()?,
            },
            5 => MetadataRecord::PartitionChange {
                partition_id: r.i32()?,
                topic_id: r.uuid()?,
                isr: r.opt_i32s()?,
                leader: r.i32()?,
                replicas: r.opt_i32s()?,
                removing_replicas: r.opt_i32s()?,
                adding_replicas: r.opt_i32s()?,
            },
            7 => MetadataRecord::FenceBroker {
                id: r.i32()?,
                epoch: r.i64()?,
            },
            8 => MetadataRecord::UnfenceBroker {
                id: r.i32()?,
                epoch: r.i64()?,
            },
            9 => MetadataRecord::RemoveTopic {
                topic_id: r.uuid()?,
            },
            15 => MetadataRecord::ProducerIds {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
                next_producer_id: r.i64()?,
            },
            other => return Err(RecordError::UnknownRecordType(other)),
        })
    }

    /// Appends this record (header and body) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.record_type().to_be_bytes());
        out.push(RECORD_VERSION_V0);
        let len_at = out.len();
        put_u32(out, 0);
        self.encode_body(out);
        let body_len = len_u32(out.len() - len_at - 4);
        if let Some(slot) = out.get_mut(len_at..len_at + 4) {
            slot.copy_from_slice(&body_len.to_be_bytes());
        }
    }

    /// Decodes one record from `r` (header and body).
    fn decode(r: &mut Reader<'_>) -> Result<Self, RecordError> {
        let record_type = u16::from_be_bytes(r.array()?);
        let _version = r.u8()?;
        let body_len = r.u32()? as usize;
        let body = r.take(body_len)?;
        let mut body_reader = Reader { bytes: body, at: 0 };
        // A newer version may append fields: what follows the known ones is ignored.
        MetadataRecord::decode_body(record_type, &mut body_reader)
    }
}

/// The records of one raft log entry: they commit together at one metadata offset.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RecordBatch(pub Vec<MetadataRecord>);

impl RecordBatch {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 64 * self.0.len());
        out.push(BATCH_FORMAT_V0);
        put_u32(&mut out, len_u32(self.0.len()));
        for record in &self.0 {
            record.encode_into(&mut out);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader { bytes, at: 0 };
        let format = r.u8()?;
        if format != BATCH_FORMAT_V0 {
            return Err(RecordError::UnknownBatchFormat(format));
        }
        // Each record is at least 7 header bytes: the count cannot exceed what is left / 7.
        let count = r.count(7)?;
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            records.push(MetadataRecord::decode(&mut r)?);
        }
        if r.at != bytes.len() {
            return Err(RecordError::Invalid("trailing bytes after the last record"));
        }
        Ok(RecordBatch(records))
    }
}

impl fmt::Display for RecordBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordBatch({} records)", self.0.len())
    }
}

// openraft's payload must be serde: a batch travels as the opaque bytes of its own versioned
// codec, so the wire and disk format of records is ours, not serde's.
impl serde::Serialize for RecordBatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for RecordBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = RecordBatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoded metadata record batch")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RecordBatch, E> {
                RecordBatch::decode(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<RecordBatch, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(BytesVisitor)
    }
}

fn len_u32(len: usize) -> u32 {
    // Records are built by the controller from validated requests; a list or string past 4 GiB
    // is a programming error, not input.
    assert!(
        len <= u32::MAX as usize,
        "metadata record field too long: {len}"
    );
    len as u32
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_uuid(out: &mut Vec<u8>, v: &Uuid) {
    out.extend_from_slice(v.as_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, len_u32(s.len()));
    out.extend_from_slice(s.as_bytes());
}

/// A nullable string: length -1 (as u32::MAX) is null, as in Kafka's schemas.
fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => put_u32(out, u32::MAX),
    }
}

fn put_i32s(out: &mut Vec<u8>, list: &[i32]) {
    put_u32(out, len_u32(list.len()));
    for v in list {
        put_i32(out, *v);
    }
}

fn put_opt_i32s(out: &mut Vec<u8>, list: Option<&[i32]>) {
    match list {
        Some(list) => put_i32s(out, list),
        None => put_u32(out, u32::MAX),
    }
}

/// A bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(RecordError::Truncated {
                at: self.at,
                needed: n - left,
            });
        }
        let out = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or(RecordError::Truncated {
                at: self.at,
                needed: n,
            })?;
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn bool(&mut self) -> Result<bool, RecordError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(RecordError::Invalid("boolean is neither 0 nor 1")),
        }
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    /// A count of items of at least `min_item_bytes` each: never more than the bytes left allow.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, RecordError> {
        let count = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if count.saturating_mul(min_item_bytes) > left {
            return Err(RecordError::Truncated {
                at: self.at,
                needed: count.saturating_mul(min_item_bytes) - left,
            });
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Invalid("string is not UTF-8"))
    }

    fn opt_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.u32()?;
        if len == u32::MAX {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::Invalid("string is not UTF-8"))
    }

    fn i32s_of(&mut self, count: usize) -> Result<Vec<i32>, RecordError> {
        let bytes = self.take(count.saturating_mul(4))?;
        Ok(bytes
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(i32::from_be_bytes))
            .collect())
    }

    fn i32s(&mut self) -> Result<Vec<i32>, RecordError> {
        let count = self.count(4)?;
        self.i32s_of(count)
    }

    fn opt_i32s(&mut self) -> Result<Option<Vec<i32>>, RecordError> {
        let save = self.at;
        if self.u32()? == u32::MAX {
            return Ok(None);
        }
        self.at = save;
        self.i32s().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_records() -> Vec<MetadataRecord> {
        let topic_id = Uuid::from_u128(0x1234);
        vec![
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(7),
                broker_epoch: 10,
                endpoints: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    security_protocol: 0,
                }],
                rack: Some("r1".into()),
                fenced: true,
            },
            MetadataRecord::UnfenceBroker { id: 1, epoch: 10 },
            MetadataRecord::FenceBroker { id: 1, epoch: 10 },
            MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 10,
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id,
            },
            MetadataRecord::Partition {
                partition_id: 0,
                topic_id,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                removing_replicas: vec![],
                adding_replicas: vec![3],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 9,
            },
            MetadataRecord::PartitionChange {
                partition_id: 0,
                topic_id,
                isr: Some(vec![1]),
                leader: NO_LEADER_CHANGE,
                replicas: None,
                removing_replicas: Some(vec![]),
                adding_replicas: None,
            },
            MetadataRecord::Config {
                resource_type: 2,
                resource_name: "orders".into(),
                name: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 10,
                next_producer_id: 2000,
            },
            MetadataRecord::RemoveTopic { topic_id },
        ]
    }

    #[test]
    fn every_record_type_round_trips() {
        let batch = RecordBatch(sample_records());
        let bytes = batch.encode();
        assert_eq!(RecordBatch::decode(&bytes), Ok(batch));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = RecordBatch(sample_records()).encode();
        for len in 0..bytes.len() {
            assert!(
                RecordBatch::decode(&bytes[..len]).is_err(),
                "prefix {len} decoded"
            );
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut bytes = vec![BATCH_FORMAT_V0];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            RecordBatch::decode(&bytes),
            Err(RecordError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_type_and_format_are_refused() {
        let mut bytes = RecordBatch(vec![MetadataRecord::RemoveTopic {
            topic_id: Uuid::nil(),
        }])
        .encode();
        bytes[5..7].copy_from_slice(&999u16.to_be_bytes());
        assert_eq!(
            RecordBatch::decode(&bytes),
            Err(RecordError::UnknownRecordType(999))
        );
        bytes[0] = 9;
        assert_eq!(
            RecordBatch::decode(&bytes),
            Err(RecordError::UnknownBatchFormat(9))
        );
    }

    #[test]
    fn a_newer_version_with_appended_fields_still_decodes() {
        let record = MetadataRecord::FenceBroker { id: 3, epoch: 5 };
        let mut one = Vec::new();
        record.encode_into(&mut one);
        // Version 1 appends a field: bump the version, the body length and add 4 bytes.
        one[2] = 1;
        let body_len = u32::from_be_bytes([one[3], one[4], one[5], one[6]]) + 4;
        one[3..7].copy_from_slice(&body_len.to_be_bytes());
        one.extend_from_slice(&[0xAA; 4]);
        let mut bytes = vec![BATCH_FORMAT_V0];
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&one);
        assert_eq!(RecordBatch::decode(&bytes), Ok(RecordBatch(vec![record])));
    }
}
