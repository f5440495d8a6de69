//! The fixed 61-byte header of a Kafka v2 record batch: its layout and parsing. No I/O.
//! `batch.rs` validates and rewrites whole batches; `inflate.rs` walks compressed records;
//! both read the header through this module (so neither needs the other's types).
//!
//! Layout (all big-endian): baseOffset i64 @0, batchLength i32 @8 (bytes after this field),
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..end),
//! attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35,
//! producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57,
//! records @61.

use crate::error::StorageError;

/// Size of the fixed v2 batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before (and including) the batch length field; `batch_length` counts what follows.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batch_length` (header without the first 12 bytes, no records).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only record batch format we store.
pub const MAGIC_V2: i8 = 2;

pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
pub(crate) const LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;
pub(crate) const MAX_COMPRESSION_CODEC: i16 = 4;

/// The parsed fixed header of a v2 record batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

pub(crate) fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    buf.get(at..at + 8)?.try_into().ok().map(i64::from_be_bytes)
}
pub(crate) fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    buf.get(at..at + 4)?.try_into().ok().map(i32::from_be_bytes)
}
pub(crate) fn be_i16(buf: &[u8], at: usize) -> Option<i16> {
    buf.get(at..at + 2)?.try_into().ok().map(i16::from_be_bytes)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (which may hold more than one batch).
    /// Checks only what the header alone can tell: magic and a sane length field.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, StorageError> {
        let magic = *buf.get(16).ok_or_else(|| {
            StorageError::corrupt(format!("truncated header: {} bytes", buf.len()))
        })? as i8;
        if magic != MAGIC_V2 {
            return Err(StorageError::InvalidMagic(magic));
        }
        let short = || StorageError::corrupt(format!("truncated header: {} bytes", buf.len()));
        let h = BatchHeader {
            base_offset: be_i64(buf, 0).ok_or_else(short)?,
            batch_length: be_i32(buf, 8).ok_or_else(short)?,
            partition_leader_epoch: be_i32(buf, 12).ok_or_else(short)?,
            magic,
            crc: be_i32(buf, CRC_OFFSET).ok_or_else(short)? as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET).ok_or_else(short)?,
            last_offset_delta: be_i32(buf, 23).ok_or_else(short)?,
            base_timestamp: be_i64(buf, 27).ok_or_else(short)?,
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET).ok_or_else(short)?,
            producer_id: be_i64(buf, 43).ok_or_else(short)?,
            producer_epoch: be_i16(buf, 51).ok_or_else(short)?,
            base_sequence: be_i32(buf, 53).ok_or_else(short)?,
            record_count: be_i32(buf, 57).ok_or_else(short)?,
        };
        if h.batch_length < MIN_BATCH_LENGTH {
            return Err(StorageError::corrupt(format!(
                "batch length {} below minimum {MIN_BATCH_LENGTH}",
                h.batch_length
            )));
        }
        Ok(h)
    }

    /// Whole batch size on the wire / on disk.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    /// Offset of the last record (base + last offset delta), at most `i64::MAX`: a damaged
    /// or hostile header near the end of the offset space must not overflow (found by the
    /// `recovery_scan` fuzz target).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }
    pub fn is_compressed(&self) -> bool {
        self.compression() != 0
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}
