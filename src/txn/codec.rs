//! `__transaction_state` records in Kafka's schemas (`TransactionLogKey` v0,
//! `TransactionLogValue` v0 and v1), so the topic reads like Kafka's.
//!
//! Key v0: version int16, transactional_id string. Value v0: version int16, producer_id int64,
//! producer_epoch int16, transaction_timeout_ms int32, transaction_status int8,
//! transaction_partitions nullable [topic string, partition_ids [int32]],
//! last_update_timestamp_ms int64, start_timestamp_ms int64. Value v1 is the flexible form
//! (compact strings and arrays, tagged fields: 0 previous_producer_id, 1 next_producer_id,
//! 2 client_transaction_version). As Kafka, v1 is written only for TV2 clients.
//!
//! Invariant: decoding reads only within the given bytes (no panics on a corrupt record).

use std::collections::BTreeSet;

use super::state::{TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record truncated")]
    Truncated,
    #[error("unsupported record version {0}")]
    Version(i16),
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

type Result<T> = std::result::Result<T, CodecError>;

pub fn encode_key(transactional_id: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id)?;
    Ok(out)
}

pub fn decode_key(key: &[u8]) -> Result<String> {
    let mut r = Reader(key);
    match r.i16()? {
        0 => r.string(),
        v => Err(CodecError::Version(v)),
    }
}

/// Kafka writes partitions as null for Empty (and after completion, as an empty list).
fn partitions_field(meta: &TxnMetadata) -> Option<Vec<(String, Vec<i32>)>> {
    if meta.state == TxnState::Empty {
        return None;
    }
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    for (topic, partition) in &meta.partitions {
        match topics.last_mut() {
            Some((t, ps)) if t == topic => ps.push(*partition),
            _ => topics.push((topic.clone(), vec![*partition])),
        }
    }
    Some(topics)
}

pub fn encode_value(meta: &TxnMetadata) -> Result<Vec<u8>> {
    let flexible = meta.client_txn_version >= 2;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&i16::from(flexible).to_be_bytes());
    out.extend_from_slice(&meta.producer_id.to_be_bytes());
    out.extend_from_slice(&meta.producer_epoch.to_be_bytes());
    out.extend_from_slice(&meta.timeout_ms.to_be_bytes());
    out.push(meta.state.id().to_be_bytes()[0]);
    let topics = partitions_field(meta);
    if flexible {
        match &topics {
            None => put_uvarint(&mut out, 0),
            Some(topics) => {
                put_uvarint(&mut out, len_u32(topics.len())? + 1);
                for (topic, partitions) in topics {
                    put_uvarint(&mut out, len_u32(topic.len())? + 1);
                    out.extend_from_slice(topic.as_bytes());
                    put_uvarint(&mut out, len_u32(partitions.len())? + 1);
                    for p in partitions {
                        out.extend_from_slice(&p.to_be_bytes());
                    }
                    put_uvarint(&mut out, 0); // the topic's tagged fields
                }
            }
        }
    } else {
        match &topics {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(topics) => {
                out.extend_from_slice(&len_i32(topics.len())?.to_be_bytes());
                for (topic, partitions) in topics {
                    put_string(&mut out, topic)?;
                    out.extend_from_slice(&len_i32(partitions.len())?.to_be_bytes());
                    for p in partitions {
                        out.extend_from_slice(&p.to_be_bytes());
                    }
                }
            }
        }
    }
    out.extend_from_slice(&meta.last_update_ms.to_be_bytes());
    out.extend_from_slice(&meta.start_ms.to_be_bytes());
    if flexible {
        put_tagged(&mut out, meta);
    }
    Ok(out)
}

fn put_tagged(out: &mut Vec<u8>, meta: &TxnMetadata) {
    let mut fields: Vec<(u32, Vec<u8>)> = Vec::new();
    if meta.previous_producer_id != NO_PRODUCER_ID {
        fields.push((0, meta.previous_producer_id.to_be_bytes().to_vec()));
    }
    if meta.next_producer_id != NO_PRODUCER_ID {
        fields.push((1, meta.next_producer_id.to_be_bytes().to_vec()));
    }
    if meta.client_txn_version != 0 {
        fields.push((2, meta.client_txn_version.to_be_bytes().to_vec()));
    }
    put_uvarint(out, fields.len() as u32);
    for (tag, data) in fields {
        put_uvarint(out, tag);
        put_uvarint(out, data.len() as u32);
        out.extend_from_slice(&data);
    }
}

pub fn decode_value(transactional_id: String, value: &[u8]) -> Result<TxnMetadata> {
    let mut r = Reader(value);
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        v => return Err(CodecError::Version(v)),
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_id(r.i8()?).ok_or(CodecError::Invalid("transaction status"))?;
    let mut partitions = BTreeSet::new();
    let topics = if flexible {
        r.uvarint()?.checked_sub(1)
    } else {
        u32::try_from(r.i32()?).ok()
    };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible {
            r.compact_string()?
        } else {
            r.string()?
        };
        let count = if flexible {
            r.uvarint()?
                .checked_sub(1)
                .ok_or(CodecError::Invalid("null partition ids"))?
        } else {
            u32::try_from(r.i32()?).map_err(|_| CodecError::Invalid("null partition ids"))?
        };
        for _ in 0..count {
            partitions.insert((topic.clone(), r.i32()?));
        }
        if flexible {
            r.skip_tagged()?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut meta = TxnMetadata {
        transactional_id,
        producer_id,
        previous_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch,
        last_producer_epoch: NO_PRODUCER_EPOCH,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        client_txn_version: 0,
    };
    if flexible {
        let fields = r.uvarint()?;
        for _ in 0..fields {
            let tag = r.uvarint()?;
            let size = r.uvarint()? as usize;
            let mut data = Reader(r.take(size)?);
            match tag {
                0 => meta.previous_producer_id = data.i64()?,
                1 => meta.next_producer_id = data.i64()?,
                2 => meta.client_txn_version = data.i16()?,
                _ => {}
            }
        }
    }
    Ok(meta)
}

fn len_i32(len: usize) -> Result<i32> {
    i32::try_from(len).map_err(|_| CodecError::Invalid("too long"))
}

fn len_u32(len: usize) -> Result<u32> {
    u32::try_from(len)
        .ok()
        .filter(|l| *l < u32::MAX)
        .ok_or(CodecError::Invalid("too long"))
}

fn put_string(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = i16::try_from(s.len()).map_err(|_| CodecError::Invalid("string too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| CodecError::Truncated)
    }

    fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let [byte] = self.array::<1>()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::Invalid("varint too long"))
    }

    fn utf8(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Invalid("string not UTF-8"))
    }

    fn string(&mut self) -> Result<String> {
        let len = usize::try_from(self.i16()?).map_err(|_| CodecError::Invalid("null string"))?;
        self.utf8(len)
    }

    fn compact_string(&mut self) -> Result<String> {
        let len = self
            .uvarint()?
            .checked_sub(1)
            .ok_or(CodecError::Invalid("null string"))?;
        self.utf8(len as usize)
    }

    fn skip_tagged(&mut self) -> Result<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: TxnState, version: i16) -> TxnMetadata {
        let mut m = TxnMetadata::new("tx-1".into(), 4000, 60_000, 1_700_000_000_000);
        m.producer_epoch = 3;
        m.state = state;
        m.start_ms = 1_700_000_000_100;
        m.client_txn_version = version;
        if state != TxnState::Empty {
            m.partitions.insert(("a".into(), 0));
            m.partitions.insert(("a".into(), 2));
            m.partitions.insert(("b".into(), 1));
        }
        m
    }

    #[test]
    fn key_is_kafkas_v0() {
        let key = encode_key("tx").expect("encode");
        assert_eq!(key, vec![0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&key).expect("decode"), "tx");
        assert_eq!(decode_key(&[0, 1, 0, 0]), Err(CodecError::Version(1)));
        assert_eq!(decode_key(&[0, 0, 0, 9, b'x']), Err(CodecError::Truncated));
    }

    #[test]
    fn values_round_trip_in_both_versions() {
        for state in [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit] {
            for version in [0, 2] {
                let mut m = meta(state, version);
                if version == 2 {
                    m.previous_producer_id = 17;
                }
                let bytes = encode_value(&m).expect("encode");
                assert_eq!(bytes[..2], [0, u8::from(version == 2)]);
                let back = decode_value("tx-1".into(), &bytes).expect("decode");
                assert_eq!(back, m, "{state:?} v{version}");
            }
        }
    }

    #[test]
    fn v0_layout_matches_kafkas_schema() {
        let bytes = encode_value(&meta(TxnState::Ongoing, 0)).expect("encode");
        // version, producer id, epoch, timeout, status.
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &4000i64.to_be_bytes());
        assert_eq!(&bytes[10..12], &3i16.to_be_bytes());
        assert_eq!(&bytes[12..16], &60_000i32.to_be_bytes());
        assert_eq!(bytes[16], 1);
        // two topics: "a" [0, 2], "b" [1].
        assert_eq!(&bytes[17..21], &2i32.to_be_bytes());
        assert_eq!(&bytes[21..24], &[0, 1, b'a']);
        assert_eq!(&bytes[24..28], &2i32.to_be_bytes());
        // Empty: null partitions.
        let empty = encode_value(&meta(TxnState::Empty, 0)).expect("encode");
        assert_eq!(&empty[17..21], &(-1i32).to_be_bytes());
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let bytes = encode_value(&meta(TxnState::Ongoing, 2)).expect("encode");
        for len in 0..bytes.len() {
            assert!(
                decode_value("t".into(), &bytes[..len]).is_err(),
                "len {len}"
            );
        }
        let mut bad_state = encode_value(&meta(TxnState::Ongoing, 0)).expect("encode");
        bad_state[16] = 42;
        assert!(decode_value("t".into(), &bad_state).is_err());
    }
}
