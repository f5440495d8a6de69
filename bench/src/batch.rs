//! Uncompressed Kafka v2 record batches for the native producer: an encoder that appends
//! records into one reused buffer and seals the batch (length, count, CRC-32C) in place, a
//! walker that reads the payload of each record back out of a sealed batch (so an ack needs
//! no per-message bookkeeping: the batch itself says which sequence numbers it carried), and
//! Kafka's default key partitioner (murmur2).
//!
//! Invariants: a sealed batch is a valid v2 batch of `count >= 1` records with offset deltas
//! `0..count`, attributes 0 (no compression, create time), no producer id (-1) and every
//! record's timestamp delta 0. The walker trusts nothing: it uses checked access and stops
//! with a typed error on the first malformed byte.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the v2 batch header before the first record.
pub const BATCH_HEADER_BYTES: usize = 61;
const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const RECORD_COUNT_AT: usize = 57;
const MAGIC_V2: i8 = 2;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("record batch truncated at byte {0}")]
    Truncated(usize),
    #[error("record batch malformed: {0}")]
    Malformed(&'static str),
}

/// Builds one batch at a time into a buffer that keeps its capacity between batches.
#[derive(Debug)]
pub struct BatchEncoder {
    buf: BytesMut,
    count: i32,
    capacity_bytes: usize,
}

impl BatchEncoder {
    /// `capacity_bytes`: the expected sealed size (the workload's batch size); only a hint.
    pub fn new(capacity_bytes: usize) -> BatchEncoder {
        BatchEncoder {
            buf: BytesMut::new(),
            count: 0,
            capacity_bytes: capacity_bytes.max(BATCH_HEADER_BYTES),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Bytes the sealed batch would have now.
    pub fn len_bytes(&self) -> usize {
        if self.count == 0 {
            BATCH_HEADER_BYTES
        } else {
            self.buf.len()
        }
    }

    /// Encoded size of a record with this key and value (for the "batch full" check).
    pub fn record_bytes(&self, key: Option<&[u8]>, value_len: usize) -> usize {
        let body = record_body_bytes(self.count, key, value_len);
        varint_bytes(zigzag32(body as i32)) + body
    }

    /// Appends a record; the first record fixes the batch timestamp (`timestamp_ms`).
    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp_ms: i64) {
        if self.count == 0 {
            self.start(timestamp_ms);
        }
        let body = record_body_bytes(self.count, key, value.len());
        put_varint(&mut self.buf, zigzag32(body as i32));
        self.buf.put_i8(0); // attributes
        put_varint(&mut self.buf, 0); // timestamp delta
        put_varint(&mut self.buf, zigzag32(self.count));
        match key {
            Some(k) => {
                put_varint(&mut self.buf, zigzag32(k.len() as i32));
                self.buf.put_slice(k);
            }
            None => put_varint(&mut self.buf, zigzag32(-1)),
        }
        put_varint(&mut self.buf, zigzag32(value.len() as i32));
        self.buf.put_slice(value);
        put_varint(&mut self.buf, 0); // header count
        self.count += 1;
    }

    fn start(&mut self, timestamp_ms: i64) {
        assert!(self.buf.is_empty(), "a sealed batch left the buffer empty");
        self.buf.reserve(self.capacity_bytes);
        self.buf.put_i64(0); // base offset: the broker assigns it
        self.buf.put_i32(0); // length, patched on seal
        self.buf.put_i32(-1); // partition leader epoch
        self.buf.put_i8(MAGIC_V2);
        self.buf.put_u32(0); // crc, patched on seal
        self.buf.put_i16(0); // attributes: uncompressed, create time
        self.buf.put_i32(0); // last offset delta, patched
        self.buf.put_i64(timestamp_ms);
        self.buf.put_i64(timestamp_ms);
        self.buf.put_i64(-1); // producer id
        self.buf.put_i16(-1); // producer epoch
        self.buf.put_i32(-1); // base sequence
        self.buf.put_i32(0); // record count, patched
        assert_eq!(self.buf.len(), BATCH_HEADER_BYTES);
    }

    /// Seals the batch (length, counts, CRC-32C) and hands it out; the encoder starts empty.
    pub fn seal(&mut self) -> Bytes {
        assert!(self.count > 0, "sealing an empty batch");
        let length = (self.buf.len() - LENGTH_AT - 4) as i32;
        put_at(&mut self.buf, LENGTH_AT, &length.to_be_bytes());
        let last_delta = self.count - 1;
        put_at(
            &mut self.buf,
            LAST_OFFSET_DELTA_AT,
            &last_delta.to_be_bytes(),
        );
        put_at(&mut self.buf, RECORD_COUNT_AT, &self.count.to_be_bytes());
        let crc = crc32c::crc32c(self.buf.get(ATTRIBUTES_AT..).unwrap_or(&[]));
        put_at(&mut self.buf, CRC_AT, &crc.to_be_bytes());
        self.count = 0;
        self.buf.split().freeze()
    }
}

fn record_body_bytes(offset_delta: i32, key: Option<&[u8]>, value_len: usize) -> usize {
    let key_bytes = match key {
        Some(k) => varint_bytes(zigzag32(k.len() as i32)) + k.len(),
        None => varint_bytes(zigzag32(-1)),
    };
    1 + 1 // attributes, timestamp delta 0
        + varint_bytes(zigzag32(offset_delta))
        + key_bytes
        + varint_bytes(zigzag32(value_len as i32))
        + value_len
        + 1 // header count 0
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn varint_bytes(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads a zigzag varint at `*at` (at most 10 bytes: varlongs too), advancing `*at`.
fn read_varint(bytes: &[u8], at: &mut usize) -> Result<i64, BatchError> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *bytes.get(*at).ok_or(BatchError::Truncated(*at))?;
        *at += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(BatchError::Malformed("varint longer than 10 bytes"))
}

fn skip(bytes: &[u8], at: &mut usize, n: i64) -> Result<(), BatchError> {
    let n = usize::try_from(n).map_err(|_| BatchError::Malformed("negative length"))?;
    let end = at.checked_add(n).ok_or(BatchError::Truncated(*at))?;
    if end > bytes.len() {
        return Err(BatchError::Truncated(*at));
    }
    *at = end;
    Ok(())
}

/// Calls `f` with each record's value in a sealed (uncompressed) batch; returns the count.
pub fn for_each_value(batch: &[u8], mut f: impl FnMut(&[u8])) -> Result<u32, BatchError> {
    let head = batch
        .get(..BATCH_HEADER_BYTES)
        .ok_or(BatchError::Truncated(batch.len()))?;
    if head.get(16) != Some(&(MAGIC_V2 as u8)) {
        return Err(BatchError::Malformed("not a v2 batch"));
    }
    let count_bytes: [u8; 4] = head
        .get(RECORD_COUNT_AT..RECORD_COUNT_AT + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(BatchError::Truncated(RECORD_COUNT_AT))?;
    let count = u32::try_from(i32::from_be_bytes(count_bytes))
        .map_err(|_| BatchError::Malformed("negative record count"))?;
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..count {
        let length = read_varint(batch, &mut at)?;
        let record_end = at
            .checked_add(usize::try_from(length).map_err(|_| BatchError::Malformed("length"))?)
            .filter(|&end| end <= batch.len())
            .ok_or(BatchError::Truncated(at))?;
        skip(batch, &mut at, 1)?; // attributes
        read_varint(batch, &mut at)?; // timestamp delta
        read_varint(batch, &mut at)?; // offset delta
        let key_len = read_varint(batch, &mut at)?;
        if key_len > 0 {
            skip(batch, &mut at, key_len)?;
        }
        let value_len = read_varint(batch, &mut at)?;
        let start = at;
        skip(batch, &mut at, value_len.max(0))?;
        f(batch.get(start..at).ok_or(BatchError::Truncated(start))?);
        at = record_end;
    }
    Ok(count)
}

/// Kafka's default partitioner for keyed records: `murmur2(key) & 0x7fffffff % partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has partitions");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// MurmurHash2 as in Kafka's `Utils.murmur2` (seed 0x9747b28c).
/// Overwrites `bytes.len()` bytes of `buf` at `at` (a header field the encoder wrote itself,
/// so always present: the header's length is asserted when it is begun).
fn put_at(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(field) = buf.get_mut(at..at + bytes.len()) {
        field.copy_from_slice(bytes);
    }
}

pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes(c.try_into().unwrap_or([0; 4]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if let Some(&b) = tail.get(2) {
        h ^= u32::from(b) << 16;
    }
    if let Some(&b) = tail.get(1) {
        h ^= u32::from(b) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The base timestamp of a sealed batch (tests and diagnostics).
#[cfg(test)]
fn base_timestamp(batch: &[u8]) -> Option<i64> {
    const BASE_TIMESTAMP_AT: usize = 27;
    const MAX_TIMESTAMP_AT: usize = 35;
    let b: [u8; 8] = batch
        .get(BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8)?
        .try_into()
        .ok()?;
    let m: [u8; 8] = batch
        .get(MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8)?
        .try_into()
        .ok()?;
    (b == m).then(|| i64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    fn sample(enc: &mut BatchEncoder, n: usize, keyed: bool) -> (Bytes, Vec<Vec<u8>>) {
        let values: Vec<Vec<u8>> = (0..n)
            .map(|i| (0..(100 + i * 37)).map(|b| (b + i) as u8).collect())
            .collect();
        for (i, v) in values.iter().enumerate() {
            let key = format!("key-{i}");
            let key = keyed.then_some(key.as_bytes());
            let before = enc.len_bytes();
            let expect = enc.record_bytes(key, v.len());
            enc.push(key, v, 1_700_000_000_123);
            assert_eq!(enc.len_bytes(), before + expect, "record_bytes is exact");
        }
        (enc.seal(), values)
    }

    #[test]
    fn sealed_batch_decodes_with_kafka_protocol_and_crc_checks() {
        let mut enc = BatchEncoder::new(16 * 1024);
        for keyed in [false, true] {
            // 200 records: offset deltas and lengths cross the 1- to 2-byte varint boundary.
            let (batch, values) = sample(&mut enc, 200, keyed);
            assert!(enc.is_empty());
            let mut buf = batch.clone();
            // The decoder verifies the CRC-32C and fails on a mismatch.
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            assert_eq!(set.compression, Compression::None);
            assert_eq!(set.version, 2);
            assert_eq!(set.records.len(), 200);
            for (i, r) in set.records.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 1_700_000_000_123);
                assert_eq!(r.producer_id, -1);
                assert_eq!(r.value.as_deref(), Some(values[i].as_slice()));
                let key = format!("key-{i}");
                assert_eq!(r.key.as_deref(), keyed.then_some(key.as_bytes()));
                assert!(r.headers.is_empty());
            }
            assert_eq!(base_timestamp(&batch), Some(1_700_000_000_123));
            let mut walked = Vec::new();
            let n = for_each_value(&batch, |v| walked.push(v.to_vec())).unwrap();
            assert_eq!(n, 200);
            assert_eq!(walked, values);
        }
    }

    #[test]
    fn corrupted_batch_fails_the_crc_check() {
        let mut enc = BatchEncoder::new(1024);
        let (batch, _) = sample(&mut enc, 3, false);
        let mut bad = batch.to_vec();
        let last = bad.len() - 2;
        bad[last] ^= 0xff;
        let mut buf = Bytes::from(bad);
        assert!(RecordBatchDecoder::decode(&mut buf).is_err());
    }

    #[test]
    fn walker_rejects_truncated_and_foreign_bytes() {
        let mut enc = BatchEncoder::new(1024);
        let (batch, _) = sample(&mut enc, 3, true);
        for cut in [0, 10, BATCH_HEADER_BYTES, batch.len() - 1] {
            assert!(
                for_each_value(&batch[..cut], |_| {}).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(
            for_each_value(&[0u8; 80], |_| {}),
            Err(BatchError::Malformed("not a v2 batch"))
        );
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 3] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input) as i32, want, "{input:?}");
        }
        assert!(partition_for_key(b"key-1", 16) < 16);
    }
}
