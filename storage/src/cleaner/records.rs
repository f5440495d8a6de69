//! Record-level view of stored v2 batches for the cleaner: walk the records of a batch
//! (decompressing it first), check a stored batch, and rebuild a batch from the records it
//! keeps with its original base offset, last offset delta, producer fields, max timestamp and
//! codec.
//!
//! The walk over a records section is the cleaner's (`batch::records` walks only
//! uncompressed batches); each record is decoded by `batch::decode_record_parts`, the crate's
//! one record parser. Nothing here panics on bad bytes: every malformed length, varint or
//! count is a `CorruptBatch` error.

use crate::batch::{
    self, write_varint, write_varlong, BatchHeader, BatchInfo, BATCH_HEADER_LEN, LOG_OVERHEAD,
    MAGIC_V2,
};
use crate::cleaner::codec;
use crate::error::StorageError;

/// Attribute bit of a batch whose base timestamp field holds its delete horizon (KIP-534):
/// tombstones in it may be removed once the cleaner's clock passes it.
pub const DELETE_HORIZON_BIT: i16 = 0x40;
const COMPRESSION_MASK: i16 = 0x07;
const MAX_CODEC: i16 = 4;

/// One record, borrowed from the (decompressed) records section.
#[derive(Clone, Debug)]
pub struct RawRecord<'a> {
    /// The whole record including its length prefix: copied verbatim when kept unchanged.
    pub bytes: &'a [u8],
    /// The record body from the offset delta on (re-encoded behind a new timestamp delta).
    pub after_timestamp: &'a [u8],
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// A record with a null value is a tombstone.
    pub value: Option<&'a [u8]>,
}

/// One record from its body (after the length prefix) and its whole bytes, parsed by the
/// crate's one record parser (`batch::decode_record_parts`).
fn parse_one<'a>(body: &'a [u8], whole: &'a [u8]) -> Result<RawRecord<'a>, StorageError> {
    let (view, after_timestamp) = batch::decode_record_parts(body)?;
    Ok(RawRecord {
        bytes: whole,
        after_timestamp,
        attributes: view.attributes,
        timestamp_delta: view.timestamp_delta,
        offset_delta: view.offset_delta,
        key: view.key,
        value: view.value,
    })
}

/// Parses every record of a records section; checks the count against the header, offset
/// deltas strictly increasing within `[0, last_offset_delta]`, and no trailing bytes.
pub fn parse_records<'a>(
    section: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<RawRecord<'a>>, StorageError> {
    let count = usize::try_from(header.record_count)
        .map_err(|_| StorageError::corrupt(format!("record count {}", header.record_count)))?;
    // Every record takes at least 7 bytes, so the section bounds a believable count.
    if count > section.len() / 7 + 1 {
        return Err(StorageError::corrupt(format!(
            "record count {count} in {} bytes",
            section.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    let mut rest = section;
    let mut prev_delta = -1i64;
    while !rest.is_empty() {
        let start = rest;
        let mut c = batch::Cursor { buf: rest };
        let len = c.varint()?;
        if len < 0 {
            return Err(StorageError::corrupt(format!("record length {len}")));
        }
        let body = c.take(len as usize)?;
        let used = start.len() - c.buf.len();
        let rec = parse_one(body, start.get(..used).unwrap_or(&[]))?;
        let delta = i64::from(rec.offset_delta);
        if delta <= prev_delta || delta > i64::from(header.last_offset_delta) {
            return Err(StorageError::corrupt(format!(
                "record offset delta {delta} after {prev_delta} (last offset delta {})",
                header.last_offset_delta
            )));
        }
        prev_delta = delta;
        out.push(rec);
        rest = c.buf;
        if out.len() > count {
            break;
        }
    }
    if out.len() != count {
        return Err(StorageError::corrupt(format!(
            "header says {count} records, batch holds {}",
            out.len()
        )));
    }
    Ok(out)
}

/// The records section of `batch`, decompressed (at most `limit` bytes).
pub fn records_section(
    batch: &[u8],
    header: &BatchHeader,
    limit: usize,
) -> Result<Vec<u8>, StorageError> {
    let body = batch
        .get(BATCH_HEADER_LEN..header.total_size())
        .ok_or_else(|| StorageError::corrupt("batch shorter than its length field"))?;
    codec::decompress(header.compression(), body, limit)
}

/// Checks a batch read back from a segment: header, length, CRC, codec, and (uncompressed)
/// records. Unlike append validation it accepts what compaction leaves behind: offset-delta
/// gaps, fewer records than `last_offset_delta + 1`, and empty batches.
pub fn check_stored(batch: &[u8]) -> Result<BatchInfo, StorageError> {
    let header = BatchHeader::parse(batch)?;
    let size = header.total_size();
    if size != batch.len() {
        return Err(StorageError::corrupt(format!(
            "batch length {size} does not match buffer {}",
            batch.len()
        )));
    }
    let crc = batch::compute_crc(batch);
    if crc != header.crc {
        return Err(StorageError::corrupt(format!(
            "crc mismatch: header {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    if header.compression() > MAX_CODEC
        || header.record_count < 0
        || header.last_offset_delta < 0
        || header.last_offset_delta < header.record_count - 1
    {
        return Err(StorageError::InvalidRecord(format!(
            "codec {}, {} records, last offset delta {}",
            header.compression(),
            header.record_count,
            header.last_offset_delta
        )));
    }
    let mut max_timestamp_delta = header.last_offset_delta;
    let mut max_timestamp = header.max_timestamp;
    if !header.is_compressed() {
        let section = batch.get(BATCH_HEADER_LEN..).unwrap_or(&[]);
        let mut best = i64::MIN;
        for r in parse_records(section, &header)? {
            let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
            if ts > best {
                best = ts;
                max_timestamp_delta = r.offset_delta;
            }
        }
        if best != i64::MIN {
            max_timestamp = best;
        }
    }
    Ok(BatchInfo {
        header,
        size,
        max_timestamp,
        max_timestamp_delta,
    })
}

/// Append-time validation first; a batch it rejects is accepted if it is a valid stored
/// (compacted) batch. Recovery and index rebuilds use this, so cleaned segments reopen.
pub fn validate_for_recovery(batch: &[u8]) -> Result<BatchInfo, StorageError> {
    match batch::validate_batch(batch, u32::MAX) {
        Ok(info) => Ok(info),
        Err(e) => check_stored(batch).map_err(|_| e),
    }
}

/// Encodes a batch from `header` (base offset, epoch, last offset delta, producer fields,
/// max timestamp and codec kept) around `records`, a concatenation of whole records; sets a
/// new base timestamp (the delete horizon, with its attribute bit) when `horizon` is given.
/// An empty batch is written uncompressed, as Kafka writes one.
pub fn encode_batch(
    header: &BatchHeader,
    records: &[u8],
    record_count: i32,
    horizon: Option<i64>,
) -> Result<Vec<u8>, StorageError> {
    let mut attributes = header.attributes;
    if record_count == 0 {
        attributes &= !COMPRESSION_MASK;
    }
    let codec = attributes & COMPRESSION_MASK;
    let section = codec::compress(codec, records)?;
    let base_timestamp = match horizon {
        Some(h) => {
            attributes |= DELETE_HORIZON_BIT;
            h
        }
        None => header.base_timestamp,
    };
    let batch_length = i32::try_from(BATCH_HEADER_LEN - LOG_OVERHEAD + section.len())
        .map_err(|_| StorageError::corrupt("cleaned batch too large"))?;
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    out.extend_from_slice(&section);
    let crc = batch::compute_crc(&out);
    if let Some(b) = out.get_mut(17..21) {
        b.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

/// Appends `rec` to `out`, re-encoding its timestamp delta against `new_base` when given.
pub fn push_record(out: &mut Vec<u8>, rec: &RawRecord<'_>, old_base: i64, new_base: Option<i64>) {
    let Some(new_base) = new_base else {
        out.extend_from_slice(rec.bytes);
        return;
    };
    let ts = old_base.wrapping_add(rec.timestamp_delta);
    let mut body = Vec::with_capacity(rec.bytes.len() + 8);
    body.push(rec.attributes as u8);
    write_varlong(&mut body, ts.wrapping_sub(new_base));
    body.extend_from_slice(rec.after_timestamp);
    write_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

/// The delete horizon of a batch, if it carries one.
pub fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    (header.attributes & DELETE_HORIZON_BIT != 0).then_some(header.base_timestamp)
}

/// Recompresses an uncompressed batch (as `BatchBuilder` makes) with `codec`: what a
/// producer with `compression.type` would send. For tests, benches and tools.
pub fn compress_batch(batch: &[u8], codec_id: i16) -> Result<Vec<u8>, StorageError> {
    let header = BatchHeader::parse(batch)?;
    let section = batch
        .get(BATCH_HEADER_LEN..header.total_size())
        .ok_or_else(|| StorageError::corrupt("short batch"))?;
    let mut h = header.clone();
    h.attributes = (h.attributes & !COMPRESSION_MASK) | (codec_id & COMPRESSION_MASK);
    encode_batch(&h, section, header.record_count, None)
}

/// Whether every record of `batch` (one batch, any codec) has a key: a compacted topic
/// rejects a batch holding a keyless record (Kafka's LogValidator). Control batches pass.
pub fn all_records_keyed(batch: &[u8], limit: usize) -> Result<bool, StorageError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() {
        return Ok(true);
    }
    let section = records_section(batch, &header, limit)?;
    let recs = parse_records(&section, &header)?;
    Ok(recs.iter().all(|r| r.key.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BatchBuilder;

    fn sample() -> Vec<u8> {
        BatchBuilder::new(1_000)
            .base_offset(100)
            .producer(7, 1, 40)
            .record(Some(b"a"), Some(b"1"), &[(b"h", b"x")])
            .record_at(1_010, Some(b"b"), None, &[])
            .record_at(1_020, Some(b"c"), Some(b"3"), &[])
            .build()
            .to_vec()
    }

    #[test]
    fn rebuilt_batch_keeps_offsets_producer_and_timestamps() {
        for codec_id in 0..=4 {
            let b = compress_batch(&sample(), codec_id).unwrap();
            let h = BatchHeader::parse(&b).unwrap();
            assert_eq!(h.compression(), codec_id);
            let section = records_section(&b, &h, 1 << 20).unwrap();
            let recs = parse_records(&section, &h).unwrap();
            assert_eq!(recs.len(), 3);
            // Keep a and c, with a delete horizon.
            let mut out = Vec::new();
            push_record(&mut out, &recs[0], h.base_timestamp, Some(9_999));
            push_record(&mut out, &recs[2], h.base_timestamp, Some(9_999));
            let nb = encode_batch(&h, &out, 2, Some(9_999)).unwrap();
            let info = check_stored(&nb).unwrap();
            let nh = info.header;
            assert_eq!(
                (
                    nh.base_offset,
                    nh.last_offset_delta,
                    nh.producer_id,
                    nh.base_sequence
                ),
                (100, 2, 7, 40)
            );
            assert_eq!(nh.compression(), codec_id);
            assert_eq!(delete_horizon(&nh), Some(9_999));
            assert_eq!(nh.max_timestamp, 1_020);
            let s2 = records_section(&nb, &nh, 1 << 20).unwrap();
            let r2 = parse_records(&s2, &nh).unwrap();
            let ts: Vec<i64> = r2
                .iter()
                .map(|r| nh.base_timestamp + r.timestamp_delta)
                .collect();
            assert_eq!(ts, vec![1_000, 1_020]);
            assert_eq!(r2[1].offset_delta, 2);
            assert!(batch::validate_batch(&nb, u32::MAX).is_err() || codec_id != 0);
            assert!(validate_for_recovery(&nb).is_ok());
        }
    }

    #[test]
    fn empty_batch_is_uncompressed_and_valid() {
        let b = compress_batch(&sample(), 4).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        let nb = encode_batch(&h, &[], 0, None).unwrap();
        let info = check_stored(&nb).unwrap();
        assert_eq!(info.header.record_count, 0);
        assert_eq!(info.header.compression(), 0);
        assert_eq!(info.header.last_offset(), 102);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut b = sample();
        for byte in b.iter_mut().skip(61) {
            *byte = 0xff;
        }
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(check_stored(&b).is_err());
        let h = BatchHeader::parse(&b).unwrap();
        assert!(parse_records(&b[61..], &h).is_err());
        assert!(!all_records_keyed(&sample(), 1 << 20).map(|k| !k).unwrap());
        let keyless = BatchBuilder::new(1).record(None, Some(b"v"), &[]).build();
        assert!(!all_records_keyed(&keyless, 1 << 20).unwrap());
    }
}
