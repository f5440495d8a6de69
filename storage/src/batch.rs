//! Kafka v2 record batches: header parsing, validation and the in-place rewrites the log
//! performs at append time. No I/O.
//!
//! Layout (all big-endian): baseOffset i64 @0, batchLength i32 @8 (bytes after this field),
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..end),
//! attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35,
//! producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57,
//! records @61. Invariant kept by the log: only baseOffset, partitionLeaderEpoch and (for
//! LogAppendTime) maxTimestamp/attributes/crc are ever rewritten; records stay as received.

use crate::error::StorageError;

use crate::header::{
    be_i16, be_i32, be_i64, ATTRIBUTES_OFFSET, CRC_OFFSET, LEADER_EPOCH_OFFSET,
    MAX_COMPRESSION_CODEC, MAX_TIMESTAMP_OFFSET, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
pub use crate::header::{BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH};

/// Reads only the base offset and length fields: the framing used to split a buffer.
fn frame_len(buf: &[u8]) -> Result<usize, StorageError> {
    let len = be_i32(buf, 8)
        .ok_or_else(|| StorageError::corrupt(format!("truncated batch: {} bytes", buf.len())))?;
    if len < MIN_BATCH_LENGTH {
        return Err(StorageError::corrupt(format!(
            "batch length {len} below minimum {MIN_BATCH_LENGTH}"
        )));
    }
    let total = LOG_OVERHEAD + len as usize;
    if total > buf.len() {
        return Err(StorageError::corrupt(format!(
            "truncated batch: length says {total} bytes, {} present",
            buf.len()
        )));
    }
    Ok(total)
}

/// Splits a buffer of concatenated batches into one slice per batch, by the length fields
/// only. Stops after the first error (a truncated or absurd length).
pub fn split_batches(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], StorageError>> {
    let mut rest = Some(buf);
    std::iter::from_fn(move || {
        let cur = rest.take()?;
        if cur.is_empty() {
            return None;
        }
        match frame_len(cur) {
            Ok(total) => {
                let (batch, tail) = cur.split_at(total);
                rest = Some(tail);
                Some(Ok(batch))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

/// CRC-32C over attributes..end, as stored in the header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or(&[]))
}

/// What validation learnt about each batch of an append, in order: inline for the usual one
/// batch (Produce v3+ carries one batch per partition), so validating it allocates nothing.
pub type BatchInfos = smallvec::SmallVec<[BatchInfo; 1]>;

/// What validation learnt about one batch.
#[derive(Clone, Debug)]
pub struct BatchInfo {
    pub header: BatchHeader,
    pub size: usize,
    /// Largest record timestamp (from the records; the header's for a stored compressed
    /// batch, which is not decompressed again).
    pub max_timestamp: i64,
    /// Offset delta of the first record carrying `max_timestamp` (for a stored compressed
    /// batch: its last delta, as Kafka's recovery indexes it).
    pub max_timestamp_delta: i32,
}

/// Validates one batch as stored on disk (exactly one, `batch.len()` == its length): the
/// header fields against each other, CRC and, for uncompressed batches, the records. A
/// compressed batch is not decompressed: its records were walked when it was appended and
/// the CRC proves they are unchanged. Used by recovery and tools.
pub fn validate_batch(batch: &[u8], max_message_bytes: u32) -> Result<BatchInfo, StorageError> {
    let header = validate_header(batch, max_message_bytes)?;
    let size = header.total_size();
    let (max_timestamp, max_timestamp_delta) = if header.is_compressed() {
        (header.max_timestamp, header.last_offset_delta)
    } else {
        validate_records(batch, &header)?
    };
    Ok(BatchInfo {
        header,
        size,
        max_timestamp,
        max_timestamp_delta,
    })
}

/// Validates one batch a producer sent, as Kafka's `LogValidator` does: everything
/// `validate_batch` checks, plus the records of a compressed batch, streamed through its
/// decoder (at most `inflated_max` bytes inflated): the stream must decode and hold exactly
/// `record_count` well-framed records with offset deltas 0, 1, ...
pub fn validate_produced(
    batch: &[u8],
    max_message_bytes: u32,
    inflated_max: u64,
) -> Result<BatchInfo, StorageError> {
    validate_appended(batch, max_message_bytes, inflated_max, false)
}

fn validate_appended(
    batch: &[u8],
    max_message_bytes: u32,
    inflated_max: u64,
    control_allowed: bool,
) -> Result<BatchInfo, StorageError> {
    let header = validate_header(batch, max_message_bytes)?;
    check_offset_range(&header)?;
    if header.is_control() && !control_allowed {
        return Err(StorageError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    // Control batches (markers) carry the producer id without a sequence.
    if header.producer_id >= 0 && header.base_sequence < 0 && !header.is_control() {
        return Err(StorageError::InvalidRecord(format!(
            "producer id {} with base sequence {}",
            header.producer_id, header.base_sequence
        )));
    }
    let size = header.total_size();
    let (max_timestamp, max_timestamp_delta) = if header.is_compressed() {
        let s = crate::inflate::validate_compressed(batch, &header, inflated_max)?;
        (s.max_timestamp, s.max_timestamp_delta)
    } else {
        validate_records(batch, &header)?
    };
    Ok(BatchInfo {
        header,
        size,
        max_timestamp,
        max_timestamp_delta,
    })
}

/// What the header alone can tell: magic, length against the buffer and
/// `max.message.bytes`, CRC, a known codec, an offset range covering the record count.
fn validate_header(batch: &[u8], max_message_bytes: u32) -> Result<BatchHeader, StorageError> {
    let header = BatchHeader::parse(batch)?;
    let size = header.total_size();
    if size != batch.len() {
        return Err(StorageError::corrupt(format!(
            "batch length {size} does not match buffer {}",
            batch.len()
        )));
    }
    if size > max_message_bytes as usize {
        return Err(StorageError::BatchTooLarge {
            size,
            max: max_message_bytes,
        });
    }
    let crc = compute_crc(batch);
    if crc != header.crc {
        return Err(StorageError::corrupt(format!(
            "crc mismatch: header {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    if header.record_count <= 0 {
        return Err(StorageError::InvalidRecord(format!(
            "batch has {} records",
            header.record_count
        )));
    }
    if header.compression() > MAX_COMPRESSION_CODEC {
        return Err(StorageError::InvalidRecord(format!(
            "unknown compression codec {}",
            header.compression()
        )));
    }
    if header.last_offset_delta < header.record_count - 1 {
        return Err(StorageError::InvalidRecord(format!(
            "last offset delta {} with {} records",
            header.last_offset_delta, header.record_count
        )));
    }
    Ok(header)
}

/// Kafka's `LogValidator.validateBatch` for a batch from a client: the offset range must
/// agree with the record count exactly (`lastOffsetDelta == recordCount - 1`), compressed or
/// not, else INVALID_RECORD. (Stored batches are held only to `>=`: a compressed batch an
/// older broker accepted must not make recovery cut the log.)
fn check_offset_range(header: &BatchHeader) -> Result<(), StorageError> {
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
        return Err(StorageError::InvalidRecord(format!(
            "inconsistent batch offset range: last offset delta {} with {} records",
            header.last_offset_delta, header.record_count
        )));
    }
    Ok(())
}

/// Walks the records of an uncompressed batch; returns the largest timestamp and the offset
/// delta of the first record carrying it.
fn validate_records(batch: &[u8], header: &BatchHeader) -> Result<(i64, i32), StorageError> {
    let mut count: i32 = 0;
    let mut best = (i64::MIN, 0i32);
    for rec in records(batch)? {
        let rec = rec?;
        if rec.offset_delta != count {
            return Err(StorageError::InvalidRecord(format!(
                "record {count} has offset delta {}",
                rec.offset_delta
            )));
        }
        let ts = header.base_timestamp.wrapping_add(rec.timestamp_delta);
        if ts > best.0 {
            best = (ts, rec.offset_delta);
        }
        count += 1;
        if count > header.record_count {
            break;
        }
    }
    if count != header.record_count {
        return Err(StorageError::corrupt(format!(
            "header says {} records, batch holds {}{}",
            header.record_count,
            count,
            if count > header.record_count { "+" } else { "" }
        )));
    }
    Ok(best)
}

/// Validates every batch in `buf` (concatenated batches as in a produce request) with
/// `validate_produced`.
pub fn validate_all(
    buf: &[u8],
    max_message_bytes: u32,
    inflated_max: u64,
) -> Result<BatchInfos, StorageError> {
    validate_each(buf, max_message_bytes, inflated_max, false)
}

/// `validate_all` for the broker's own batches: control batches (transaction markers) allowed.
pub fn validate_all_control(
    buf: &[u8],
    max_message_bytes: u32,
    inflated_max: u64,
) -> Result<BatchInfos, StorageError> {
    validate_each(buf, max_message_bytes, inflated_max, true)
}

fn validate_each(
    buf: &[u8],
    max_message_bytes: u32,
    inflated_max: u64,
    control_allowed: bool,
) -> Result<BatchInfos, StorageError> {
    let mut out = BatchInfos::new();
    for batch in split_batches(buf) {
        out.push(validate_appended(
            batch?,
            max_message_bytes,
            inflated_max,
            control_allowed,
        )?);
    }
    if out.is_empty() {
        return Err(StorageError::InvalidRecord("no record batches".into()));
    }
    Ok(out)
}

/// Rewrites the base offset field (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(b) = batch.get_mut(0..8) {
        b.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Rewrites the partition leader epoch field (not covered by the CRC).
pub fn set_leader_epoch(batch: &mut [u8], epoch: i32) {
    if let Some(b) = batch.get_mut(LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4) {
        b.copy_from_slice(&epoch.to_be_bytes());
    }
}

// REWRITE_OUTSIDE_CRC: `set_base_offset` and `set_leader_epoch` write only below the CRC's
// range (attributes to the end), so they never invalidate a CRC; `Log::append`'s pre-write
// invariant relies on it. Checked at compile time.
const _: () = assert!(8 <= ATTRIBUTES_OFFSET && LEADER_EPOCH_OFFSET + 4 <= ATTRIBUTES_OFFSET);

/// CreateTime: the header's max timestamp := the records' (Kafka rewrites it the same way
/// when a producer got it wrong) and the timestamp type CreateTime, CRC recomputed. No-op
/// when both already match.
pub fn set_create_time_max(batch: &mut [u8], max_timestamp: i64) {
    let (header, rest) = split_header_mut(batch);
    stamp_create_time_max(header, rest, max_timestamp);
}

/// LogAppendTime: max timestamp := `now_ms`, timestamp-type bit set, CRC recomputed.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let (header, rest) = split_header_mut(batch);
    stamp_log_append_time(header, rest, now_ms);
}

/// A batch as its (mutable) fixed header and the bytes after it.
fn split_header_mut(batch: &mut [u8]) -> (&mut [u8], &[u8]) {
    let at = BATCH_HEADER_LEN.min(batch.len());
    let (header, rest) = batch.split_at_mut(at);
    (header, rest)
}

/// CRC-32C of a batch held as its fixed header and the rest (the same value as
/// [`compute_crc`] of the two back to back): the log stamps a copy of the header and writes
/// the received rest as it is, without joining them.
pub fn compute_crc_parts(header: &[u8], rest: &[u8]) -> u32 {
    let head = crc32c::crc32c(header.get(ATTRIBUTES_OFFSET..).unwrap_or(&[]));
    crc32c::crc32c_append(head, rest)
}

/// [`set_create_time_max`] of a batch held as `header` (mutable, the fixed 61 bytes) and
/// `rest` (its records, unchanged).
pub fn stamp_create_time_max(header: &mut [u8], rest: &[u8], max_timestamp: i64) {
    let attrs = be_i16(header, ATTRIBUTES_OFFSET).unwrap_or(0);
    if be_i64(header, MAX_TIMESTAMP_OFFSET) == Some(max_timestamp)
        && attrs & TIMESTAMP_TYPE_BIT == 0
    {
        return;
    }
    // A producer's LogAppendTime type is not kept on a CreateTime topic (Kafka's
    // `setMaxTimestamp(CREATE_TIME, ..)` rewrites the attributes).
    if let Some(b) = header.get_mut(ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2) {
        b.copy_from_slice(&(attrs & !TIMESTAMP_TYPE_BIT).to_be_bytes());
    }
    if let Some(b) = header.get_mut(MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8) {
        b.copy_from_slice(&max_timestamp.to_be_bytes());
    }
    set_crc(header, rest);
}

/// [`set_log_append_time`] of a batch held as `header` and `rest`.
pub fn stamp_log_append_time(header: &mut [u8], rest: &[u8], now_ms: i64) {
    let Some(attrs) = be_i16(header, ATTRIBUTES_OFFSET) else {
        return;
    };
    if let Some(b) = header.get_mut(ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2) {
        b.copy_from_slice(&(attrs | TIMESTAMP_TYPE_BIT).to_be_bytes());
    }
    if let Some(b) = header.get_mut(MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8) {
        b.copy_from_slice(&now_ms.to_be_bytes());
    }
    set_crc(header, rest);
}

/// Writes the CRC of `header` + `rest` into the header's CRC field.
fn set_crc(header: &mut [u8], rest: &[u8]) {
    let crc = compute_crc_parts(header, rest);
    if let Some(b) = header.get_mut(CRC_OFFSET..CRC_OFFSET + 4) {
        b.copy_from_slice(&crc.to_be_bytes());
    }
}

/// Whether the batch at the start of `batch` has the transactional attribute (Kafka's
/// `RecordBatch.isTransactional`); `false` when it is too short to hold the attributes.
/// Reads only the attributes field.
pub fn is_transactional(batch: &[u8]) -> bool {
    be_i16(batch, ATTRIBUTES_OFFSET).is_some_and(|a| a & TRANSACTIONAL_BIT != 0)
}

/// Reads a zigzag varint (Kafka `varint`, at most 5 bytes); returns value and bytes used.
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), StorageError> {
    let (v, n) = read_unsigned(buf, 5)?;
    let v = v as u32;
    Ok((((v >> 1) as i32) ^ -((v & 1) as i32), n))
}

/// Reads a zigzag varlong (Kafka `varlong`, at most 10 bytes); returns value and bytes used.
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), StorageError> {
    let (v, n) = read_unsigned(buf, 10)?;
    Ok((((v >> 1) as i64) ^ -((v & 1) as i64), n))
}

/// An unsigned varint of at most `max_len` bytes. The one- and two-byte forms (record
/// lengths up to 8 KiB, offset deltas up to 8191, key and value lengths, timestamp deltas
/// under 8 s) take the fast path: every record of a produced batch is walked (`validate_records`).
#[inline]
fn read_unsigned(buf: &[u8], max_len: usize) -> Result<(u64, usize), StorageError> {
    match buf {
        [b0, ..] if b0 & 0x80 == 0 => Ok((u64::from(*b0), 1)),
        [b0, b1, ..] if b1 & 0x80 == 0 && max_len >= 2 => {
            Ok((u64::from(b0 & 0x7f) | (u64::from(*b1) << 7), 2))
        }
        _ => read_unsigned_long(buf, max_len),
    }
}

/// `read_unsigned` for any length, and its errors.
fn read_unsigned_long(buf: &[u8], max_len: usize) -> Result<(u64, usize), StorageError> {
    let mut v: u64 = 0;
    for i in 0..max_len {
        let b = *buf
            .get(i)
            .ok_or_else(|| StorageError::corrupt("truncated varint"))?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(StorageError::corrupt("varint too long"))
}

/// Appends a zigzag varint.
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

/// Appends a zigzag varlong.
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// A cursor over bytes that fails (never panics) on truncation (also the cleaner's).
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn varint(&mut self) -> Result<i32, StorageError> {
        let (v, n) = read_varint(self.buf)?;
        self.buf = self.buf.get(n..).unwrap_or(&[]);
        Ok(v)
    }
    fn varlong(&mut self) -> Result<i64, StorageError> {
        let (v, n) = read_varlong(self.buf)?;
        self.buf = self.buf.get(n..).unwrap_or(&[]);
        Ok(v)
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if n > self.buf.len() {
            return Err(StorageError::corrupt(format!(
                "record field of {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, StorageError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
}

fn decode_record(body: &[u8]) -> Result<RecordView<'_>, StorageError> {
    decode_record_parts(body).map(|(view, _)| view)
}

/// Decodes one record body (after its length prefix): its fields, and the body from the
/// offset delta on (what the cleaner re-encodes behind a new timestamp delta). The one record
/// parser of the crate: the cleaner's walk uses it too. Fails, never panics, on bad bytes;
/// the body must hold exactly the record's fields.
pub(crate) fn decode_record_parts(body: &[u8]) -> Result<(RecordView<'_>, &[u8]), StorageError> {
    let mut c = Cursor { buf: body };
    let attributes = c.take(1)?.first().copied().unwrap_or(0) as i8;
    let timestamp_delta = c.varlong()?;
    let after_timestamp = c.buf;
    let offset_delta = c.varint()?;
    let key = c.nullable_bytes()?;
    let value = c.nullable_bytes()?;
    let header_count = c.varint()?;
    if header_count < 0 || header_count as usize > body.len() {
        return Err(StorageError::corrupt(format!(
            "record header count {header_count}"
        )));
    }
    let mut headers = Vec::with_capacity(header_count as usize);
    for _ in 0..header_count {
        let klen = c.varint()?;
        if klen < 0 {
            return Err(StorageError::corrupt("null record header key"));
        }
        let k = c.take(klen as usize)?;
        headers.push((k, c.nullable_bytes()?));
    }
    if !c.buf.is_empty() {
        return Err(StorageError::corrupt(format!(
            "record has {} trailing bytes",
            c.buf.len()
        )));
    }
    let view = RecordView {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    };
    Ok((view, after_timestamp))
}

/// Iterates the records of one uncompressed batch. Yields an error (and stops) on malformed
/// input; the iterator ends exactly at the end of the batch.
pub fn records(
    batch: &[u8],
) -> Result<impl Iterator<Item = Result<RecordView<'_>, StorageError>>, StorageError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_compressed() {
        return Err(StorageError::InvalidRecord(
            "cannot iterate records of a compressed batch".into(),
        ));
    }
    let end = header.total_size().min(batch.len());
    let mut rest = batch.get(BATCH_HEADER_LEN..end).unwrap_or(&[]);
    let mut failed = false;
    Ok(std::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        let mut c = Cursor { buf: rest };
        let item = c.varint().and_then(|len| {
            if len < 0 {
                return Err(StorageError::corrupt(format!("record length {len}")));
            }
            let body = c.take(len as usize)?;
            decode_record(body)
        });
        rest = c.buf;
        failed = item.is_err();
        Some(item)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{decode_batch, BatchBuilder};

    fn sample() -> Vec<u8> {
        BatchBuilder::new(1_000)
            .record(Some(b"k1"), Some(b"v1"), &[(b"h", b"x")])
            .record_at(1_005, None, Some(b"v2"), &[])
            .record_at(999, Some(b"k3"), None, &[])
            .build()
            .to_vec()
    }

    fn set_crc(b: &mut [u8]) {
        let crc = compute_crc(b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    /// The one- and two-byte fast paths of `read_unsigned` agree with the general loop on
    /// every two-byte prefix, followed by a byte or by nothing, for both length limits.
    #[test]
    fn varint_fast_paths_agree_with_the_loop() {
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                for buf in [&[b0, b1, 0x01][..], &[b0, b1][..], &[b0][..]] {
                    for max_len in [5, 10] {
                        let fast = read_unsigned(buf, max_len).ok();
                        let slow = read_unsigned_long(buf, max_len).ok();
                        assert_eq!(fast, slow, "{buf:?}, at most {max_len} bytes");
                    }
                }
            }
        }
        assert!(read_unsigned(&[], 5).is_err());
        assert!(read_unsigned(&[0x80], 5).is_err());
    }

    #[test]
    fn crc32c_known_vector() {
        // RFC 3720 test vector: 32 bytes of zeros.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn parse_and_validate_built_batch() {
        let b = sample();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_005);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.crc, compute_crc(&b));
        let info = validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(info.max_timestamp_delta, 1);
        let d = decode_batch(&b).unwrap();
        assert_eq!(d.records.len(), 3);
        assert_eq!(d.records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(
            d.records[0].headers,
            vec![(b"h".to_vec(), Some(b"x".to_vec()))]
        );
        assert_eq!(d.records[1].timestamp_ms, 1_005);
        assert_eq!(d.records[2].value, None);
    }

    #[test]
    fn rejects_bad_crc() {
        let mut b = sample();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(
            matches!(validate_batch(&b, 1 << 20), Err(StorageError::CorruptBatch(m)) if m.contains("crc"))
        );
    }

    #[test]
    fn rejects_truncated_batch() {
        let b = sample();
        assert!(matches!(
            validate_all(&b[..b.len() - 3], 1 << 20, 1 << 26),
            Err(StorageError::CorruptBatch(m)) if m.contains("truncated")
        ));
        assert!(matches!(
            validate_all(&b[..10], 1 << 20, 1 << 26),
            Err(StorageError::CorruptBatch(_))
        ));
        assert!(matches!(
            BatchHeader::parse(&b[..40]),
            Err(StorageError::CorruptBatch(_))
        ));
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut b = sample();
        b[16] = 1;
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::InvalidMagic(1))
        ));
    }

    #[test]
    fn rejects_absurd_lengths() {
        let mut b = sample();
        b[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::CorruptBatch(_))
        ));
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::CorruptBatch(_))
        ));
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::CorruptBatch(_))
        ));
    }

    #[test]
    fn rejects_too_large() {
        let b = sample();
        assert!(matches!(
            validate_all(&b, 50, 1 << 26),
            Err(StorageError::BatchTooLarge { max: 50, .. })
        ));
    }

    #[test]
    fn rejects_zero_records() {
        let b = BatchBuilder::new(5).build();
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_all(&[], 1 << 20, 1 << 26),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn rejects_count_mismatch() {
        let mut b = sample();
        b[57..61].copy_from_slice(&2i32.to_be_bytes());
        b[23..27].copy_from_slice(&1i32.to_be_bytes());
        set_crc(&mut b);
        assert!(
            matches!(validate_all(&b, 1 << 20, 1 << 26), Err(StorageError::CorruptBatch(m)) if m.contains("records"))
        );
        let mut b = sample();
        b[57..61].copy_from_slice(&4i32.to_be_bytes());
        b[23..27].copy_from_slice(&3i32.to_be_bytes());
        set_crc(&mut b);
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::CorruptBatch(_))
        ));
        // last offset delta inconsistent with the count
        let mut b = sample();
        b[23..27].copy_from_slice(&7i32.to_be_bytes());
        set_crc(&mut b);
        assert!(matches!(
            validate_all(&b, 1 << 20, 1 << 26),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn rejects_garbage_records_without_panicking() {
        let mut b = sample();
        for byte in b.iter_mut().skip(61) {
            *byte = 0xff;
        }
        set_crc(&mut b);
        assert!(validate_all(&b, 1 << 20, 1 << 26).is_err());
    }

    #[test]
    fn compressed_batches_trust_the_header_count() {
        let mut b = sample();
        b[21..23].copy_from_slice(&1i16.to_be_bytes()); // gzip: records are opaque
        set_crc(&mut b);
        let info = validate_batch(&b, 1 << 20).unwrap();
        assert!(info.header.is_compressed());
        assert_eq!(info.max_timestamp_delta, 2);
        b[21..23].copy_from_slice(&7i16.to_be_bytes());
        set_crc(&mut b);
        assert!(matches!(
            validate_batch(&b, 1 << 20),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn split_multiple_and_rewrites() {
        let a = sample();
        let mut buf = a.clone();
        buf.extend_from_slice(&a);
        let parts: Vec<_> = split_batches(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(validate_all(&buf, 1 << 20, 1 << 26).unwrap().len(), 2);
        let mut b = a.clone();
        set_base_offset(&mut b, 77);
        set_leader_epoch(&mut b, 5);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (77, 5));
        assert!(
            validate_batch(&b, 1 << 20).is_ok(),
            "offset/epoch are outside the CRC"
        );
        set_log_append_time(&mut b, 123_456);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.max_timestamp, 123_456);
        assert!(h.is_log_append_time());
        assert!(validate_batch(&b, 1 << 20).is_ok());
        assert_eq!(&b[61..], &a[61..], "records are never re-encoded");
    }

    /// The CRC of a batch held as header and rest is the contiguous batch's, and stamping
    /// the parts gives the bytes stamping the whole batch gives.
    #[test]
    fn stamping_a_header_apart_from_its_records_matches_stamping_the_batch() {
        let a = sample();
        assert_eq!(
            compute_crc_parts(&a[..BATCH_HEADER_LEN], &a[BATCH_HEADER_LEN..]),
            compute_crc(&a)
        );
        let mut whole = a.clone();
        set_log_append_time(&mut whole, 99);
        let mut header = a[..BATCH_HEADER_LEN].to_vec();
        stamp_log_append_time(&mut header, &a[BATCH_HEADER_LEN..], 99);
        assert_eq!(&header[..], &whole[..BATCH_HEADER_LEN]);
        let mut whole = a.clone();
        set_create_time_max(&mut whole, 4_242);
        let mut header = a[..BATCH_HEADER_LEN].to_vec();
        stamp_create_time_max(&mut header, &a[BATCH_HEADER_LEN..], 4_242);
        assert_eq!(&header[..], &whole[..BATCH_HEADER_LEN]);
        assert_eq!(compute_crc(&whole), BatchHeader::parse(&whole).unwrap().crc);
    }

    /// A producer's LogAppendTime bit on a CreateTime topic's batch is cleared, the max
    /// timestamp kept, the CRC recomputed (Kafka's `setMaxTimestamp(CREATE_TIME, ..)`).
    #[test]
    fn create_time_stamp_clears_a_producers_log_append_time_bit() {
        let mut batch = sample();
        let max = BatchHeader::parse(&batch).unwrap().max_timestamp;
        let attrs = be_i16(&batch, ATTRIBUTES_OFFSET).unwrap() | TIMESTAMP_TYPE_BIT;
        batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        set_create_time_max(&mut batch, max);
        let header = BatchHeader::parse(&batch).unwrap();
        assert!(!header.is_log_append_time());
        assert_eq!(header.max_timestamp, max);
        assert_eq!(compute_crc(&batch), header.crc);
    }

    #[test]
    fn transactional_attribute_is_read_from_the_header() {
        let plain = sample();
        assert!(!is_transactional(&plain));
        let mut txn = plain.clone();
        let attrs = be_i16(&txn, ATTRIBUTES_OFFSET).unwrap() | TRANSACTIONAL_BIT;
        txn[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        assert!(is_transactional(&txn));
        assert!(BatchHeader::parse(&txn).unwrap().is_transactional());
        assert!(
            !is_transactional(&txn[..ATTRIBUTES_OFFSET + 1]),
            "too short"
        );
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(read_varlong(&out).unwrap(), (v, out.len()));
            if let Ok(v32) = i32::try_from(v) {
                let mut out = Vec::new();
                write_varint(&mut out, v32);
                assert_eq!(read_varint(&out).unwrap(), (v32, out.len()));
            }
        }
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(read_varint(&[0x80]).is_err());
    }
}
