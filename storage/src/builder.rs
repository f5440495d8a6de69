//! Encoder for valid uncompressed Kafka v2 record batches and a decoder back to owned
//! records: used by tests and benches of every crate (not on the broker's request path).
//!
//! Invariant: `build()` always produces a batch that `batch::validate_batch` accepts when it
//! holds at least one record (zero-record batches are buildable on purpose, for negative
//! tests).

use bytes::{BufMut, BytesMut};

use crate::batch::{
    self, write_varint, write_varlong, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};
use crate::error::StorageError;

/// One record to encode or one decoded record (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (decoded) or offset delta (while building).
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Builds one uncompressed v2 batch: `BatchBuilder::new(ts).record(k, v, &[]).build()`.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    base_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    base_offset: i64,
    /// Codec id of the records section (0 = none).
    compression: i16,
    /// Attribute bits beyond the codec: transactional (0x10), control (0x20).
    flags: i16,
    records: Vec<Record>,
}

impl BatchBuilder {
    /// A batch whose records carry `base_timestamp_ms` unless given their own timestamp.
    pub fn new(base_timestamp_ms: i64) -> Self {
        BatchBuilder {
            base_timestamp_ms,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            base_offset: 0,
            compression: 0,
            flags: 0,
            records: Vec::new(),
        }
    }

    /// Idempotent-producer fields (default: -1, -1, -1 as a plain producer sends).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Base offset written in the header (producers send 0; the log rewrites it).
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets the transactional attribute bit (a transactional producer's batch).
    pub fn transactional(mut self) -> Self {
        self.flags |= crate::header::TRANSACTIONAL_BIT;
        self
    }

    /// Sets the control attribute bit (a transaction marker; the broker's own batches).
    pub fn control(mut self) -> Self {
        self.flags |= crate::header::CONTROL_BIT;
        self
    }

    /// Compresses the records with codec `codec` (1 gzip, 2 snappy in xerial framing, 3 lz4
    /// frame, 4 zstd), as a producer does.
    pub fn compression(mut self, codec: i16) -> Self {
        self.compression = codec;
        self
    }

    /// Adds a record stamped with the batch's base timestamp.
    pub fn record(
        self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
    ) -> Self {
        let ts = self.base_timestamp_ms;
        self.record_at(ts, key, value, headers)
    }

    /// Adds a record with its own timestamp (encoded as a delta from the base timestamp).
    pub fn record_at(
        mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
    ) -> Self {
        self.records.push(Record {
            offset: self.records.len() as i64,
            timestamp_ms,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
                .collect(),
        });
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch with a correct CRC.
    pub fn build(&self) -> BytesMut {
        let mut body = Vec::new();
        for rec in &self.records {
            encode_record(&mut body, rec, self.base_timestamp_ms);
        }
        if self.compression != 0 {
            // An unknown codec id leaves the records as they are: a batch the broker refuses,
            // which is what a test asking for one wants.
            body = compress(self.compression, &body).unwrap_or(body);
        }
        let count = self.records.len() as i32;
        let max_ts = self
            .records
            .iter()
            .map(|r| r.timestamp_ms)
            .max()
            .unwrap_or(self.base_timestamp_ms);
        let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + body.len());
        out.put_i64(self.base_offset);
        out.put_i32((BATCH_HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
        out.put_i32(-1); // partition leader epoch: set by the broker
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // crc, filled below
        out.put_i16(self.compression | self.flags); // attributes: codec, flags, CreateTime
        out.put_i32((count - 1).max(0));
        out.put_i64(self.base_timestamp_ms);
        out.put_i64(max_ts);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(count);
        out.put_slice(&body);
        let crc = batch::compute_crc(&out);
        if let Some(field) = out.get_mut(17..21) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        out
    }
}

/// Compresses a records section with `codec` (tests and benches; the broker never
/// recompresses). Fails on an unknown codec.
pub fn compress(codec: i16, raw: &[u8]) -> Result<Vec<u8>, StorageError> {
    crate::cleaner::codec::compress(codec, raw)
}

fn encode_record(out: &mut Vec<u8>, rec: &Record, base_ts: i64) {
    let mut body = Vec::new();
    body.push(0u8); // record attributes (unused)
    write_varlong(&mut body, rec.timestamp_ms - base_ts);
    write_varint(&mut body, rec.offset as i32);
    put_nullable(&mut body, rec.key.as_deref());
    put_nullable(&mut body, rec.value.as_deref());
    write_varint(&mut body, rec.headers.len() as i32);
    for (k, v) in &rec.headers {
        put_nullable(&mut body, Some(k));
        put_nullable(&mut body, v.as_deref());
    }
    write_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

fn put_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// A decoded uncompressed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub records: Vec<Record>,
}

/// Decodes one uncompressed batch (absolute offsets and timestamps).
pub fn decode_batch(batch: &[u8]) -> Result<DecodedBatch, StorageError> {
    let header = BatchHeader::parse(batch)?;
    let mut records = Vec::new();
    for rec in batch::records(batch)? {
        let rec = rec?;
        records.push(Record {
            offset: header.base_offset + i64::from(rec.offset_delta),
            timestamp_ms: header.base_timestamp + rec.timestamp_delta,
            key: rec.key.map(<[u8]>::to_vec),
            value: rec.value.map(<[u8]>::to_vec),
            headers: rec
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        });
    }
    Ok(DecodedBatch { header, records })
}

/// Decodes every batch of a buffer of concatenated uncompressed batches.
pub fn decode_batches(buf: &[u8]) -> Result<Vec<DecodedBatch>, StorageError> {
    batch::split_batches(buf)
        .map(|b| b.and_then(decode_batch))
        .collect()
}
