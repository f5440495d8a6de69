//! Compressed v2 batches: streaming decompression (gzip, snappy, lz4, zstd) and a walk over
//! the records inside, used to validate a compressed batch on produce and to find a record
//! by timestamp. No I/O besides the in-memory decoders.
//!
//! Invariants: nothing here allocates in proportion to the inflated size. Decoders stream
//! through a fixed buffer (`WALK_BUFFER_BYTES`); keys, values and headers are skipped, never
//! copied (as Kafka's skip-key-value iterator does); the inflated stream is cut at the caller's
//! bound (`LogConfig::inflated_batch_bytes_max`), so a 32 KiB zstd frame declaring 1 GiB costs
//! at most that bound of decompression work, never the gigabyte. Snappy uses xerial framing
//! (Kafka's `SnappyInputStream`) and, like it, falls back to one raw snappy block when the
//! framing magic is absent.
//!
//! This module owns the codec ids and every decoder: the log cleaner
//! (`cleaner::codec::decompress`) reads through [`bounded_decoder`] too, and keeps only the
//! compressing side.

use std::io::{self, BufRead, BufReader, Read};

use crate::error::StorageError;
use crate::header::{BatchHeader, BATCH_HEADER_LEN};

/// Codec ids of the batch attributes (bits 0-2).
pub const CODEC_NONE: i16 = 0;
pub const CODEC_GZIP: i16 = 1;
pub const CODEC_SNAPPY: i16 = 2;
pub const CODEC_LZ4: i16 = 3;
pub const CODEC_ZSTD: i16 = 4;

/// Buffer between a decoder and the record walk.
const WALK_BUFFER_BYTES: usize = 32 * 1024;
/// xerial snappy-java framing: magic, version, compatible version.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// What a walk over the records of a batch learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Largest record timestamp (base timestamp + delta).
    pub max_timestamp: i64,
    /// Offset delta of the first record carrying `max_timestamp`.
    pub max_timestamp_delta: i32,
    /// Bytes of the inflated records section.
    pub inflated_bytes: u64,
}

/// One record's position in time, as the walk sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordStamp {
    pub offset_delta: i32,
    pub timestamp: i64,
}

/// Validates every record of the compressed batch `batch` (whole batch bytes): the stream
/// decodes, holds exactly `record_count` well-framed records with offset deltas 0, 1, ...,
/// and inflates to at most `inflated_max` bytes.
pub fn validate_compressed(
    batch: &[u8],
    header: &BatchHeader,
    inflated_max: u64,
) -> Result<RecordsSummary, StorageError> {
    let mut best = (i64::MIN, 0i32);
    let inflated = walk(batch, header, inflated_max, |stamp| {
        if stamp.timestamp > best.0 {
            best = (stamp.timestamp, stamp.offset_delta);
        }
        true
    })?;
    Ok(RecordsSummary {
        max_timestamp: best.0,
        max_timestamp_delta: best.1,
        inflated_bytes: inflated,
    })
}

/// The first record of the compressed batch `batch` for which `wanted` holds.
pub fn find_record(
    batch: &[u8],
    header: &BatchHeader,
    inflated_max: u64,
    mut wanted: impl FnMut(&RecordStamp) -> bool,
) -> Result<Option<RecordStamp>, StorageError> {
    let mut found = None;
    walk(batch, header, inflated_max, |stamp| {
        if wanted(&stamp) {
            found = Some(stamp);
            return false;
        }
        true
    })?;
    Ok(found)
}

/// Streams the records of a compressed batch through `visit` (which returns whether to go
/// on); returns the inflated bytes read. A full walk also checks that nothing follows the
/// last record.
fn walk(
    batch: &[u8],
    header: &BatchHeader,
    inflated_max: u64,
    mut visit: impl FnMut(RecordStamp) -> bool,
) -> Result<u64, StorageError> {
    let payload = batch
        .get(BATCH_HEADER_LEN..header.total_size().min(batch.len()))
        .unwrap_or(&[]);
    let bounded = bounded_decoder(header.compression(), payload, inflated_max)?;
    let mut input = BufReader::with_capacity(WALK_BUFFER_BYTES, bounded);
    for expected in 0..header.record_count {
        let stamp = record(&mut input, header.base_timestamp)
            .map_err(|e| walk_error(e, expected, header.record_count))?;
        if stamp.offset_delta != expected {
            return Err(StorageError::InvalidRecord(format!(
                "record {expected} of a compressed batch has offset delta {}",
                stamp.offset_delta
            )));
        }
        if !visit(stamp) {
            return Ok(input.get_ref().read);
        }
    }
    let more = input
        .fill_buf()
        .map_err(|e| walk_error(e, header.record_count, header.record_count))?;
    if !more.is_empty() {
        return Err(StorageError::InvalidRecord(format!(
            "compressed batch holds more than its {} records",
            header.record_count
        )));
    }
    Ok(input.get_ref().read)
}

/// Maps a decoding failure to the error the producer sees: a stream that does not decode or
/// inflates past the bound is CORRUPT_MESSAGE, records that do not parse INVALID_RECORD.
fn walk_error(e: io::Error, at: i32, count: i32) -> StorageError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => StorageError::InvalidRecord(format!(
            "compressed batch ends inside record {at} of {count}"
        )),
        _ if e.get_ref().is_some_and(|inner| inner.is::<RecordFormat>()) => {
            StorageError::InvalidRecord(format!("record {at} of a compressed batch: {e}"))
        }
        _ => StorageError::corrupt(format!("compressed records do not decode: {e}")),
    }
}

/// A streaming decoder of the compressed records section `payload` for `codec` that fails
/// (an `io::Error`, never a panic) once it would yield more than `inflated_max` bytes, and
/// reports a truncated or otherwise undecodable stream as an error rather than a short read.
/// The bound error and decode errors are `io::ErrorKind::Other`; a record walk maps them to
/// CORRUPT_MESSAGE. An unknown codec is INVALID_RECORD.
pub fn bounded_decoder<'a>(
    codec: i16,
    payload: &'a [u8],
    inflated_max: u64,
) -> Result<Bounded<Box<dyn Read + 'a>>, StorageError> {
    let inner: Box<dyn Read + 'a> = match codec {
        CODEC_GZIP => Box::new(flate2::read::MultiGzDecoder::new(payload)),
        CODEC_SNAPPY => Box::new(SnappyReader::new(payload, inflated_max)),
        CODEC_LZ4 => Box::new(Lz4Reader {
            inner: Some(
                lz4::Decoder::new(payload)
                    .map_err(|e| StorageError::corrupt(format!("lz4 frame: {e}")))?,
            ),
        }),
        CODEC_ZSTD => Box::new(
            zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| StorageError::corrupt(format!("zstd frame: {e}")))?,
        ),
        other => {
            return Err(StorageError::InvalidRecord(format!(
                "unknown compression codec {other}"
            )))
        }
    };
    Ok(Bounded {
        inner,
        left: inflated_max,
        read: 0,
    })
}

/// An lz4 frame decoder that checks, at the end of its output, that the frame was complete:
/// the lz4 crate reads a truncated frame as a short stream, and only `finish` tells it apart.
struct Lz4Reader<'a> {
    inner: Option<lz4::Decoder<&'a [u8]>>,
}

impl Read for Lz4Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(dec) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = dec.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(dec) = self.inner.take() {
                dec.finish()
                    .1
                    .map_err(|e| io::Error::other(format!("lz4 frame: {e}")))?;
            }
        }
        Ok(n)
    }
}

/// Fails the stream once it yields more than `left` bytes (a decompression bomb).
pub struct Bounded<R> {
    inner: R,
    left: u64,
    read: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte beyond the bound so an overflow is seen, not mistaken for the end.
        let want = buf.len().min(
            usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        let n = self.inner.read(buf.get_mut(..want).unwrap_or(&mut []))?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!(
                "inflates beyond {} bytes (log.batch.inflated.max.bytes)",
                self.read + self.left
            )));
        }
        self.left -= n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

/// A record that does not parse (as opposed to a stream that does not decode).
#[derive(Debug)]
struct RecordFormat(String);

impl std::fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordFormat {}

fn invalid(msg: String) -> io::Error {
    io::Error::other(RecordFormat(msg))
}

fn read_u8(input: &mut impl BufRead) -> io::Result<u8> {
    let b = *input
        .fill_buf()?
        .first()
        .ok_or(io::ErrorKind::UnexpectedEof)?;
    input.consume(1);
    Ok(b)
}

/// Zigzag varint of at most `max_len` bytes; returns the value and its length.
fn read_zigzag(input: &mut impl BufRead, max_len: usize) -> io::Result<(i64, u64)> {
    let mut v: u64 = 0;
    for i in 0..max_len {
        let b = read_u8(input)?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((((v >> 1) as i64) ^ -((v & 1) as i64), i as u64 + 1));
        }
    }
    Err(invalid("varint too long".into()))
}

fn read_varint(input: &mut impl BufRead) -> io::Result<(i32, u64)> {
    let (v, n) = read_zigzag(input, 5)?;
    i32::try_from(v)
        .map(|v| (v, n))
        .map_err(|_| invalid(format!("varint {v} out of range")))
}

/// Skips `n` bytes of the stream.
fn skip(input: &mut impl BufRead, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let avail = input.fill_buf()?.len();
        if avail == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let step = avail.min(usize::try_from(n).unwrap_or(usize::MAX));
        input.consume(step);
        n -= step as u64;
    }
    Ok(())
}

/// A length-prefixed field: -1 is null (when `nullable`), else that many bytes; returns the
/// bytes the field took.
fn skip_field(input: &mut impl BufRead, nullable: bool, what: &str) -> io::Result<u64> {
    let (len, n) = read_varint(input)?;
    if len < 0 {
        if nullable && len == -1 {
            return Ok(n);
        }
        return Err(invalid(format!("{what} length {len}")));
    }
    skip(input, len as u64)?;
    Ok(n + len as u64)
}

/// Reads one record (length, attributes, timestamp delta, offset delta, key, value,
/// headers), checking that its fields fill exactly its declared length.
fn record(input: &mut impl BufRead, base_timestamp: i64) -> io::Result<RecordStamp> {
    let (len, _) = read_varint(input)?;
    if len < 1 {
        return Err(invalid(format!("record length {len}")));
    }
    let declared = len as u64;
    read_u8(input)?; // record attributes: unused in v2
    let (timestamp_delta, n_ts) = read_zigzag(input, 10)?;
    let (offset_delta, n_off) = read_varint(input)?;
    let mut used = 1 + n_ts + n_off;
    used += skip_field(input, true, "key")?;
    used += skip_field(input, true, "value")?;
    let (headers, n_hdr) = read_varint(input)?;
    if headers < 0 {
        return Err(invalid(format!("record header count {headers}")));
    }
    used += n_hdr;
    for _ in 0..headers {
        used += skip_field(input, false, "header key")?;
        used += skip_field(input, true, "header value")?;
        if used > declared {
            break;
        }
    }
    if used != declared {
        return Err(invalid(format!(
            "record declares {declared} bytes, its fields take {used}"
        )));
    }
    Ok(RecordStamp {
        offset_delta,
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
    })
}

/// xerial-framed snappy (`\x82SNAPPY\0`, version, compat, then `[u32 BE length][raw
/// block]`...) decoded one block at a time, or one raw block when the magic is absent. Raw
/// snappy cannot be streamed, so a block is inflated whole: its claimed size is checked
/// against the bound before allocating (snappy inflates at most ~21x, so a raw block of a
/// `max.message.bytes` batch stays far below the default bound).
struct SnappyReader<'a> {
    rest: &'a [u8],
    block_max: u64,
    framed: bool,
    block: Vec<u8>,
    at: usize,
    started: bool,
}

impl<'a> SnappyReader<'a> {
    fn new(payload: &'a [u8], block_max: u64) -> Self {
        SnappyReader {
            rest: payload,
            block_max,
            framed: false,
            block: Vec::new(),
            at: 0,
            started: false,
        }
    }

    /// Decodes the next block into `self.block`; false at the end of the stream.
    fn next_block(&mut self) -> io::Result<bool> {
        if !self.started {
            self.started = true;
            if self.rest.len() >= XERIAL_HEADER_LEN && self.rest.starts_with(XERIAL_MAGIC) {
                self.framed = true;
                self.rest = self.rest.get(XERIAL_HEADER_LEN..).unwrap_or(&[]);
            } else {
                let raw = std::mem::take(&mut self.rest);
                return self.decode(raw).map(|()| true);
            }
        }
        if !self.framed || self.rest.is_empty() {
            return Ok(false);
        }
        let len = self
            .rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| io::Error::other("truncated snappy block length"))?;
        let end = 4usize.saturating_add(len as usize);
        let raw = self
            .rest
            .get(4..end)
            .ok_or_else(|| io::Error::other("truncated snappy block"))?;
        self.rest = self.rest.get(end..).unwrap_or(&[]);
        self.decode(raw).map(|()| true)
    }

    fn decode(&mut self, raw: &[u8]) -> io::Result<()> {
        let n = snap::raw::decompress_len(raw).map_err(io::Error::other)?;
        if n as u64 > self.block_max {
            return Err(io::Error::other(format!(
                "snappy block inflates to {n} bytes, beyond {} (log.batch.inflated.max.bytes)",
                self.block_max
            )));
        }
        self.block.resize(n, 0);
        let got = snap::raw::Decoder::new()
            .decompress(raw, &mut self.block)
            .map_err(io::Error::other)?;
        self.block.truncate(got);
        self.at = 0;
        Ok(())
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let avail = self.block.get(self.at..).unwrap_or(&[]);
        let n = avail.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or(&mut [])
            .copy_from_slice(avail.get(..n).unwrap_or(&[]));
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{compute_crc, validate_batch, validate_produced};
    use crate::builder::{compress, BatchBuilder};

    const T: i64 = 1_700_000_000_000;
    const MAX: u64 = 1 << 26;

    fn five(codec: i16) -> Vec<u8> {
        let mut b = BatchBuilder::new(T).compression(codec);
        for i in 0..5 {
            b = b.record_at(T + i * 1000, Some(b"k"), Some(b"value"), &[(b"h", b"v")]);
        }
        b.build().to_vec()
    }

    /// A batch whose header claims `count` records around an arbitrary payload.
    fn with_payload(codec: i16, payload: &[u8], count: i32) -> Vec<u8> {
        let mut b = BatchBuilder::new(T)
            .record(None, Some(b"x"), &[])
            .build()
            .to_vec();
        b.truncate(BATCH_HEADER_LEN);
        b.extend_from_slice(payload);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&codec.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// The uncompressed records section of a batch of `n` records.
    fn raw_records(n: i64) -> Vec<u8> {
        let mut b = BatchBuilder::new(T);
        for i in 0..n {
            b = b.record_at(T + i, None, Some(b"abc"), &[]);
        }
        b.build()[BATCH_HEADER_LEN..].to_vec()
    }

    #[test]
    fn every_codec_validates_and_finds_records_by_time() {
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let b = five(codec);
            let info = validate_produced(&b, 1 << 20, MAX).unwrap();
            assert_eq!(info.header.compression(), codec);
            assert_eq!(
                (info.max_timestamp, info.max_timestamp_delta),
                (T + 4000, 4)
            );
            let h = &info.header;
            let hit = find_record(&b, h, MAX, |r| r.timestamp >= T + 1500).unwrap();
            assert_eq!(
                hit,
                Some(RecordStamp {
                    offset_delta: 2,
                    timestamp: T + 2000
                }),
                "codec {codec}"
            );
            assert_eq!(
                find_record(&b, h, MAX, |r| r.timestamp > T + 4000).unwrap(),
                None
            );
        }
    }

    #[test]
    fn raw_snappy_without_xerial_framing_is_accepted() {
        let raw = raw_records(3);
        let payload = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let b = with_payload(CODEC_SNAPPY, &payload, 3);
        let info = validate_produced(&b, 1 << 20, MAX).unwrap();
        assert_eq!(info.max_timestamp_delta, 2);
    }

    #[test]
    fn undecodable_streams_are_corrupt() {
        let mut junk = vec![0x1f, 0x8b];
        junk.extend((0..64u8).map(|i| i.wrapping_mul(37)));
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let b = with_payload(codec, &junk, 1);
            let err = validate_produced(&b, 1 << 20, MAX).unwrap_err();
            assert!(
                matches!(err, StorageError::CorruptBatch(_)),
                "codec {codec}: {err}"
            );
            // As stored (recovery), the header and CRC are all that is checked.
            assert!(validate_batch(&b, 1 << 20).is_ok());
        }
    }

    /// A zstd frame inflating to one record whose value is `total` zero bytes: the record's
    /// prefix in a raw block, then RLE blocks (4 bytes per 128 KiB of zeros).
    fn zstd_bomb(total: usize) -> Vec<u8> {
        let mut prefix = vec![0u8, 0, 0, 1]; // attributes, ts delta, offset delta, null key
        crate::batch::write_varint(&mut prefix, total as i32);
        let mut record = Vec::new();
        crate::batch::write_varint(&mut record, (prefix.len() + total + 1) as i32);
        record.extend_from_slice(&prefix);
        let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58];
        let raw_hdr = (record.len() as u32) << 3;
        out.extend_from_slice(&raw_hdr.to_le_bytes()[..3]);
        out.extend_from_slice(&record);
        let mut left = total;
        while left > 0 {
            let n = left.min(128 * 1024);
            left -= n;
            let hdr = u32::from(left == 0) | (1 << 1) | ((n as u32) << 3);
            out.extend_from_slice(&hdr.to_le_bytes()[..3]);
            out.push(0);
        }
        out
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_bound() {
        let b = with_payload(CODEC_ZSTD, &zstd_bomb(1 << 30), 1);
        assert!(b.len() < 64 * 1024);
        let started = std::time::Instant::now();
        let err = validate_produced(&b, 1 << 20, 1 << 20).unwrap_err();
        assert!(
            matches!(err, StorageError::CorruptBatch(ref m) if m.contains("inflates beyond")),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Below the bound the same shape is a valid (if large) record, walked in a fixed
        // buffer; it lacks only its header count, which a last RLE block cannot carry.
        let big = with_payload(CODEC_ZSTD, &zstd_bomb(8 << 20), 1);
        let err = validate_produced(&big, 1 << 20, MAX).unwrap_err();
        assert!(matches!(err, StorageError::InvalidRecord(_)), "{err}");
    }

    #[test]
    fn record_count_and_offsets_must_match_the_header() {
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let payload = compress(codec, &raw_records(2)).unwrap();
            let ok = with_payload(codec, &payload, 2);
            assert!(validate_produced(&ok, 1 << 20, MAX).is_ok());
            for claimed in [1, 3] {
                let b = with_payload(codec, &payload, claimed);
                let err = validate_produced(&b, 1 << 20, MAX).unwrap_err();
                assert!(
                    matches!(err, StorageError::InvalidRecord(_)),
                    "{codec}/{claimed}: {err}"
                );
            }
        }
        // Offset deltas 0, 2 instead of 0, 1.
        let mut raw = raw_records(2);
        let second = 1 + raw[0] as usize / 2; // past record 0 (1-byte length varint)
                                              // record 1: length, attributes, timestamp delta (1 byte), offset delta
        raw[second + 3] = 4; // zigzag(2)
        let b = with_payload(CODEC_GZIP, &compress(CODEC_GZIP, &raw).unwrap(), 2);
        let err = validate_produced(&b, 1 << 20, MAX).unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidRecord(ref m) if m.contains("offset delta")),
            "{err}"
        );
    }

    #[test]
    fn header_offset_range_must_match_the_count() {
        let mut b = five(CODEC_GZIP);
        b[23..27].copy_from_slice(&2_147_483_646i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let res = validate_produced(&b, 1 << 20, MAX);
        assert!(
            matches!(res, Err(StorageError::InvalidRecord(ref m)) if m.contains("offset range"))
        );
        // A stored batch an older broker accepted does not make recovery cut the log.
        assert!(validate_batch(&b, 1 << 20).is_ok());
    }
}
