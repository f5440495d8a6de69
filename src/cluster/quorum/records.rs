//! The binary codec of the metadata log: `cluster::records::MetadataRecord` (Kafka's KRaft
//! records, one type for the image, the controller and the log) as bytes, numbered by Kafka's
//! `apiKey`s (`MetadataRecord::kafka_type_id`).
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

/// Format byte of a [`RecordBatch`] encoding.
const BATCH_FORMAT_V0: u8 = 0;
/// Version written for every record type (the first version of each).
const RECORD_VERSION_V0: u8 = 0;

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

use crate::cluster::records::{
    AccessControlEntryRecord, ClientQuotaEntityData, ClientQuotaRecord, ConfigRecord,
    FenceBrokerRecord, PartitionChangeRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, RemoveAccessControlEntryRecord, RemoveTopicRecord,
    RemoveUserScramCredentialRecord, TopicId, TopicRecord, UnfenceBrokerRecord,
    UnregisterBrokerRecord, UserScramCredentialRecord,
};
pub use crate::cluster::records::{BrokerEndpoint, MetadataRecord, NO_LEADER_CHANGE};

/// The record type number of `record` (Kafka's `apiKey`), as written in the header.
fn record_type(record: &MetadataRecord) -> u16 {
    u16::try_from(record.kafka_type_id()).unwrap_or(u16::MAX)
}

fn encode_body(record: &MetadataRecord, out: &mut Vec<u8>) {
    match record {
        MetadataRecord::RegisterBroker(r) => {
            put_i32(out, r.broker_id);
            put_u128(out, r.incarnation_id);
            put_i64(out, r.broker_epoch);
            put_u32(out, len_u32(r.end_points.len()));
            for e in &r.end_points {
                put_str(out, &e.name);
                put_str(out, &e.host);
                out.extend_from_slice(&e.port.to_be_bytes());
                put_str(out, &e.security_protocol);
            }
            put_opt_str(out, r.rack.as_deref());
            out.push(u8::from(r.fenced));
        }
        MetadataRecord::UnregisterBroker(r) => {
            put_i32(out, r.broker_id);
            put_i64(out, r.broker_epoch);
        }
        MetadataRecord::Topic(r) => {
            put_str(out, &r.name);
            put_u128(out, r.topic_id.0);
        }
        MetadataRecord::Partition(r) => {
            out.extend_from_slice(&r.partition_id.to_be_bytes());
            put_u128(out, r.topic_id.0);
            put_i32s(out, &r.replicas);
            put_i32s(out, &r.isr);
            put_i32(out, r.leader);
            put_i32(out, r.leader_epoch);
            put_i32(out, r.partition_epoch);
            // Appended (KIP-455 reassignment); an older reader ignores them.
            put_i32s(out, &r.adding_replicas);
            put_i32s(out, &r.removing_replicas);
        }
        MetadataRecord::Config(r) => {
            out.extend_from_slice(&r.resource_type.to_be_bytes());
            put_str(out, &r.resource_name);
            put_str(out, &r.name);
            put_opt_str(out, r.value.as_deref());
        }
        MetadataRecord::PartitionChange(r) => {
            out.extend_from_slice(&r.partition_id.to_be_bytes());
            put_u128(out, r.topic_id.0);
            put_opt_i32s(out, r.isr.as_deref());
            put_i32(out, r.leader);
            put_opt_i32s(out, r.replicas.as_deref());
            // Appended (KIP-455 reassignment); an older reader ignores them.
            put_opt_i32s(out, r.removing_replicas.as_deref());
            put_opt_i32s(out, r.adding_replicas.as_deref());
        }
        MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })
        | MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch }) => {
            put_i32(out, *id);
            put_i64(out, *epoch);
        }
        MetadataRecord::RemoveTopic(r) => put_u128(out, r.topic_id.0),
        MetadataRecord::ProducerIds(r) => {
            put_i32(out, r.broker_id);
            put_i64(out, r.broker_epoch);
            put_i64(out, r.next_producer_id);
        }
        MetadataRecord::UserScramCredential(r) => {
            put_str(out, &r.name);
            out.extend_from_slice(&r.mechanism.to_be_bytes());
            put_bytes(out, &r.salt);
            put_bytes(out, &r.stored_key);
            put_bytes(out, &r.server_key);
            put_i32(out, r.iterations);
        }
        MetadataRecord::RemoveUserScramCredential(r) => {
            put_str(out, &r.name);
            out.extend_from_slice(&r.mechanism.to_be_bytes());
        }
        MetadataRecord::AccessControlEntry(r) => {
            put_u128(out, r.id.0);
            out.extend_from_slice(&r.resource_type.to_be_bytes());
            put_str(out, &r.resource_name);
            out.extend_from_slice(&r.pattern_type.to_be_bytes());
            put_str(out, &r.principal);
            put_str(out, &r.host);
            out.extend_from_slice(&r.operation.to_be_bytes());
            out.extend_from_slice(&r.permission_type.to_be_bytes());
        }
        MetadataRecord::RemoveAccessControlEntry(r) => put_u128(out, r.id.0),
        MetadataRecord::ClientQuota(r) => {
            put_u32(out, len_u32(r.entity.len()));
            for part in &r.entity {
                put_str(out, &part.entity_type);
                put_opt_str(out, part.entity_name.as_deref());
            }
            put_str(out, &r.key);
            out.extend_from_slice(&r.value.to_bits().to_be_bytes());
            out.push(u8::from(r.remove));
        }
    }
}

fn decode_body(record_type: u16, r: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    Ok(match record_type {
        0 => {
            let broker_id = r.i32()?;
            let incarnation_id = r.u128()?;
            let broker_epoch = r.i64()?;
            let count = r.count(8)?;
            let mut end_points = Vec::with_capacity(count);
            for _ in 0..count {
                end_points.push(BrokerEndpoint {
                    name: r.string()?,
                    host: r.string()?,
                    port: u16::from_be_bytes(r.array()?),
                    security_protocol: r.string()?,
                });
            }
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id,
                incarnation_id,
                broker_epoch,
                end_points,
                rack: r.opt_string()?,
                fenced: r.bool()?,
            })
        }
        1 => MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
            broker_id: r.i32()?,
            broker_epoch: r.i64()?,
        }),
        2 => MetadataRecord::Topic(TopicRecord {
            name: r.string()?,
            topic_id: TopicId(r.u128()?),
        }),
        3 => MetadataRecord::Partition(PartitionRecord {
            partition_id: r.u32()?,
            topic_id: TopicId(r.u128()?),
            replicas: r.i32s()?,
            isr: r.i32s()?,
            leader: r.i32()?,
            leader_epoch: r.i32()?,
            partition_epoch: r.i32()?,
            adding_replicas: r.i32s_or_empty()?,
            removing_replicas: r.i32s_or_empty()?,
        }),
        4 => MetadataRecord::Config(ConfigRecord {
            resource_type: i8::from_be_bytes(r.array()?),
            resource_name: r.string()?,
            name: r.string()?,
            value: r.opt_string()?,
        }),
        5 => MetadataRecord::PartitionChange(PartitionChangeRecord {
            partition_id: r.u32()?,
            topic_id: TopicId(r.u128()?),
            isr: r.opt_i32s()?,
            leader: r.i32()?,
            replicas: r.opt_i32s()?,
            removing_replicas: r.opt_i32s_or_none()?,
            adding_replicas: r.opt_i32s_or_none()?,
        }),
        7 => MetadataRecord::FenceBroker(FenceBrokerRecord {
            id: r.i32()?,
            epoch: r.i64()?,
        }),
        8 => MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
            id: r.i32()?,
            epoch: r.i64()?,
        }),
        9 => MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: TopicId(r.u128()?),
        }),
        15 => MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: r.i32()?,
            broker_epoch: r.i64()?,
            next_producer_id: r.i64()?,
        }),
        11 => MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: r.string()?,
            mechanism: i8::from_be_bytes(r.array()?),
            salt: r.bytes()?,
            stored_key: r.bytes()?,
            server_key: r.bytes()?,
            iterations: r.i32()?,
        }),
        18 => MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
            id: TopicId(r.u128()?),
            resource_type: i8::from_be_bytes(r.array()?),
            resource_name: r.string()?,
            pattern_type: i8::from_be_bytes(r.array()?),
            principal: r.string()?,
            host: r.string()?,
            operation: i8::from_be_bytes(r.array()?),
            permission_type: i8::from_be_bytes(r.array()?),
        }),
        19 => MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
            id: TopicId(r.u128()?),
        }),
        22 => MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: r.string()?,
            mechanism: i8::from_be_bytes(r.array()?),
        }),
        14 => {
            // Each part is at least two 4-byte lengths.
            let count = r.count(8)?;
            let mut entity = Vec::with_capacity(count);
            for _ in 0..count {
                entity.push(ClientQuotaEntityData {
                    entity_type: r.string()?,
                    entity_name: r.opt_string()?,
                });
            }
            MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity,
                key: r.string()?,
                value: f64::from_bits(u64::from_be_bytes(r.array()?)),
                remove: r.bool()?,
            })
        }
        other => return Err(RecordError::UnknownRecordType(other)),
    })
}

/// Appends `record` (header and body) to `out`.
pub fn encode_record(record: &MetadataRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(&record_type(record).to_be_bytes());
    out.push(RECORD_VERSION_V0);
    let len_at = out.len();
    put_u32(out, 0);
    encode_body(record, out);
    let body_len = len_u32(out.len() - len_at - 4);
    if let Some(slot) = out.get_mut(len_at..len_at + 4) {
        slot.copy_from_slice(&body_len.to_be_bytes());
    }
}

/// Decodes one record from `r` (header and body).
fn decode_record(r: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    let record_type = u16::from_be_bytes(r.array()?);
    let _version = r.u8()?;
    let body_len = r.u32()? as usize;
    let body = r.take(body_len)?;
    let mut body_reader = Reader { bytes: body, at: 0 };
    // A newer version may append fields: what follows the known ones is ignored.
    decode_body(record_type, &mut body_reader)
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
            encode_record(record, &mut out);
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
            records.push(decode_record(&mut r)?);
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

fn put_u128(out: &mut Vec<u8>, v: u128) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, len_u32(s.len()));
    out.extend_from_slice(s.as_bytes());
}

/// Bytes: a u32 length, then the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, len_u32(bytes.len()));
    out.extend_from_slice(bytes);
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

    fn u128(&mut self) -> Result<u128, RecordError> {
        Ok(u128::from_be_bytes(self.array()?))
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

    fn bytes(&mut self) -> Result<Vec<u8>, RecordError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
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

    /// A field a later version appended: empty when an older writer's body ends before it.
    fn i32s_or_empty(&mut self) -> Result<Vec<i32>, RecordError> {
        if self.at >= self.bytes.len() {
            return Ok(Vec::new());
        }
        self.i32s()
    }

    /// An optional field a later version appended: `None` when the body ends before it.
    fn opt_i32s_or_none(&mut self) -> Result<Option<Vec<i32>>, RecordError> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        self.opt_i32s()
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
        let topic_id = TopicId(0x1234);
        vec![
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 1,
                incarnation_id: 7,
                broker_epoch: 10,
                end_points: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
                rack: Some("r1".into()),
                fenced: true,
            }),
            MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 10 }),
            MetadataRecord::FenceBroker(FenceBrokerRecord { id: 1, epoch: 10 }),
            MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id: 1,
                broker_epoch: 10,
            }),
            MetadataRecord::Topic(TopicRecord {
                name: "orders".into(),
                topic_id,
            }),
            MetadataRecord::Partition(PartitionRecord {
                partition_id: 0,
                topic_id,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 9,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: 0,
                topic_id,
                isr: Some(vec![1]),
                leader: NO_LEADER_CHANGE,
                replicas: None,
                removing_replicas: None,
                adding_replicas: None,
            }),
            MetadataRecord::Config(ConfigRecord {
                resource_type: 2,
                resource_name: "orders".into(),
                name: "retention.ms".into(),
                value: None,
            }),
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: 10,
                next_producer_id: 2000,
            }),
            MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id }),
            MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: "alice".into(),
                mechanism: 2,
                salt: vec![1, 2, 3],
                stored_key: vec![4; 32],
                server_key: vec![5; 32],
                iterations: 4096,
            }),
            MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                name: "alice".into(),
                mechanism: 2,
            }),
            MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                id: TopicId(0x99),
                resource_type: 2,
                resource_name: "orders".into(),
                pattern_type: 3,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: 3,
                permission_type: 3,
            }),
            MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
                id: TopicId(0x99),
            }),
            MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: vec![
                    ClientQuotaEntityData {
                        entity_type: "user".into(),
                        entity_name: Some("alice".into()),
                    },
                    ClientQuotaEntityData {
                        entity_type: "client-id".into(),
                        entity_name: None,
                    },
                ],
                key: "producer_byte_rate".into(),
                value: 1024.0,
                remove: false,
            }),
        ]
    }

    #[test]
    fn every_record_type_round_trips() {
        let batch = RecordBatch(sample_records());
        let bytes = batch.encode();
        assert_eq!(RecordBatch::decode(&bytes), Ok(batch));
    }

    #[test]
    fn type_numbers_are_kafkas_api_keys() {
        let types: Vec<u16> = sample_records().iter().map(record_type).collect();
        assert_eq!(
            types,
            vec![0, 8, 7, 1, 2, 3, 5, 4, 15, 9, 11, 22, 18, 19, 14]
        );
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
        let mut bytes = RecordBatch(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: TopicId(0),
        })])
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
        let record = MetadataRecord::FenceBroker(FenceBrokerRecord { id: 3, epoch: 5 });
        let mut one = Vec::new();
        encode_record(&record, &mut one);
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
