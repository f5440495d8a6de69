//! Kafka's key and value schemas for the records of `__consumer_offsets`, so the internal topic
//! holds what a Kafka broker would write there (and Kafka's tools can read it):
//!
//! - offset commit: key v1 `{i16 version=1, string group, string topic, i32 partition}`,
//!   value v3 `{i16 version=3, i64 offset, i32 leader_epoch, string metadata, i64 commit_ts}`;
//! - group metadata: key v2 `{i16 version=2, string group}`, value v3 `{i16 version=3, string
//!   protocol_type, i32 generation, nullable string protocol, nullable string leader, i64
//!   current_state_timestamp, [member]}` with member `{string member_id, nullable string
//!   instance_id, string client_id, string client_host, i32 rebalance_timeout, i32
//!   session_timeout, bytes subscription, bytes assignment}`;
//! - a tombstone (null value) deletes the key.
//!
//! Invariant: decoding never panics and never allocates more than the input holds; older value
//! versions Kafka wrote (offsets v0..=v3, group v0..=v3) decode too.

use bytes::{Buf, BufMut, Bytes};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("string or array too long to encode")]
    TooLong,
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// An offset commit value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member of a group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut out, group)?;
    put_str(&mut out, topic)?;
    out.put_i32(partition);
    Ok(out)
}

pub fn encode_group_key(group: &str) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.put_i16(GROUP_KEY_VERSION);
    put_str(&mut out, group)?;
    Ok(out)
}

pub fn encode_offset_value(value: &OffsetValue) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(26 + value.metadata.len());
    out.put_i16(OFFSET_VALUE_VERSION);
    out.put_i64(value.offset);
    out.put_i32(value.leader_epoch);
    put_str(&mut out, &value.metadata)?;
    out.put_i64(value.commit_timestamp_ms);
    Ok(out)
}

pub fn encode_group_value(value: &GroupValue) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    out.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut out, &value.protocol_type)?;
    out.put_i32(value.generation);
    put_nullable_str(&mut out, value.protocol.as_deref())?;
    put_nullable_str(&mut out, value.leader.as_deref())?;
    out.put_i64(value.current_state_timestamp_ms);
    out.put_i32(i32::try_from(value.members.len()).map_err(|_| CodecError::TooLong)?);
    for m in &value.members {
        put_str(&mut out, &m.member_id)?;
        put_nullable_str(&mut out, m.instance_id.as_deref())?;
        put_str(&mut out, &m.client_id)?;
        put_str(&mut out, &m.client_host)?;
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription)?;
        put_bytes(&mut out, &m.assignment)?;
    }
    Ok(out)
}

pub fn decode_key(bytes: &[u8]) -> Result<RecordKey, CodecError> {
    let mut buf = bytes;
    let version = get_i16(&mut buf)?;
    match version {
        0 | 1 => Ok(RecordKey::Offset {
            group: get_str(&mut buf)?,
            topic: get_str(&mut buf)?,
            partition: get_i32(&mut buf)?,
        }),
        2 => Ok(RecordKey::Group {
            group: get_str(&mut buf)?,
        }),
        version => Err(CodecError::Version {
            what: "key",
            version,
        }),
    }
}

pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, CodecError> {
    let mut buf = bytes;
    let version = get_i16(&mut buf)?;
    if !(0..=3).contains(&version) {
        return Err(CodecError::Version {
            what: "offset value",
            version,
        });
    }
    let offset = get_i64(&mut buf)?;
    let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
    let metadata = get_str(&mut buf)?;
    let commit_timestamp_ms = get_i64(&mut buf)?;
    if version == 1 {
        let _expire_timestamp_ms = get_i64(&mut buf)?;
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

pub fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, CodecError> {
    let mut buf = bytes;
    let version = get_i16(&mut buf)?;
    if !(0..=3).contains(&version) {
        return Err(CodecError::Version {
            what: "group value",
            version,
        });
    }
    let protocol_type = get_str(&mut buf)?;
    let generation = get_i32(&mut buf)?;
    let protocol = get_nullable_str(&mut buf)?;
    let leader = get_nullable_str(&mut buf)?;
    let current_state_timestamp_ms = if version >= 2 { get_i64(&mut buf)? } else { -1 };
    let count = get_i32(&mut buf)?;
    let count = usize::try_from(count).map_err(|_| CodecError::Invalid("member count"))?;
    // Each member takes at least 24 bytes: never reserve more than the input can hold.
    let mut members = Vec::with_capacity(count.min(buf.len() / 24));
    for _ in 0..count {
        let member_id = get_str(&mut buf)?;
        let instance_id = if version >= 3 {
            get_nullable_str(&mut buf)?
        } else {
            None
        };
        let client_id = get_str(&mut buf)?;
        let client_host = get_str(&mut buf)?;
        let session_first = version == 0;
        let (rebalance_timeout_ms, session_timeout_ms) = if session_first {
            let session = get_i32(&mut buf)?;
            (session, session)
        } else {
            (get_i32(&mut buf)?, get_i32(&mut buf)?)
        };
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: get_bytes(&mut buf)?,
            assignment: get_bytes(&mut buf)?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    out.put_i16(i16::try_from(s.len()).map_err(|_| CodecError::TooLong)?);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) -> Result<(), CodecError> {
    match s {
        Some(s) => put_str(out, s),
        None => {
            out.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), CodecError> {
    out.put_i32(i32::try_from(b.len()).map_err(|_| CodecError::TooLong)?);
    out.put_slice(b);
    Ok(())
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, CodecError> {
    (buf.remaining() >= 2)
        .then(|| buf.get_i16())
        .ok_or(CodecError::Truncated)
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, CodecError> {
    (buf.remaining() >= 4)
        .then(|| buf.get_i32())
        .ok_or(CodecError::Truncated)
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, CodecError> {
    (buf.remaining() >= 8)
        .then(|| buf.get_i64())
        .ok_or(CodecError::Truncated)
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], CodecError> {
    let (head, tail) = buf.split_at_checked(len).ok_or(CodecError::Truncated)?;
    *buf = tail;
    Ok(head)
}

fn get_nullable_str(buf: &mut &[u8]) -> Result<Option<String>, CodecError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let raw = take(buf, len.unsigned_abs().into())?;
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| CodecError::Invalid("utf-8 string"))
}

fn get_str(buf: &mut &[u8]) -> Result<String, CodecError> {
    get_nullable_str(buf)?.ok_or(CodecError::Invalid("null string"))
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes, CodecError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = usize::try_from(len).map_err(|_| CodecError::Invalid("bytes length"))?;
    Ok(Bytes::copy_from_slice(take(buf, len)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_key_and_value_round_trip_in_kafkas_layout() {
        let key = encode_offset_key("g", "t", 7).unwrap();
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        assert_eq!(
            decode_key(&key).unwrap(),
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7
            }
        );
        let value = OffsetValue {
            offset: 42,
            leader_epoch: -1,
            metadata: "meta ✓".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let bytes = encode_offset_value(&value).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_offset_value(&bytes).unwrap(), value);
    }

    #[test]
    fn older_offset_value_versions_decode() {
        // v1: offset, metadata, commit ts, expire ts.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&6i64.to_be_bytes());
        let decoded = decode_offset_value(&v1).unwrap();
        assert_eq!(decoded.offset, 9);
        assert_eq!(decoded.leader_epoch, -1);
        assert_eq!(decoded.commit_timestamp_ms, 5);
    }

    #[test]
    fn group_value_round_trips() {
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp_ms: 77,
            members: vec![MemberValue {
                member_id: "m-1".into(),
                instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assign"),
            }],
        };
        let bytes = encode_group_value(&value).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_group_value(&bytes).unwrap(), value);
        let key = encode_group_key("grp").unwrap();
        assert_eq!(
            decode_key(&key).unwrap(),
            RecordKey::Group {
                group: "grp".into()
            }
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert_eq!(decode_key(&[]), Err(CodecError::Truncated));
        assert!(matches!(
            decode_key(&[0, 9, 0, 0]),
            Err(CodecError::Version { .. })
        ));
        assert_eq!(decode_key(&[0, 2, 0, 5, b'a']), Err(CodecError::Truncated));
        // A huge member count with no members behind it.
        let mut bad = vec![0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        bad.extend_from_slice(&0i64.to_be_bytes());
        bad.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_group_value(&bad), Err(CodecError::Truncated));
        for len in 0..bad.len() {
            let _ = decode_group_value(&bad[..len]);
            let _ = decode_offset_value(&bad[..len]);
        }
    }
}
