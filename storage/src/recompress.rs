//! A topic's `compression.type` on produce (Kafka's `LogValidator`, the
//! `validateMessagesAndAssignOffsetsCompressed` path): when the topic names a codec other
//! than `producer` and a batch arrives in another codec, the broker stores it re-encoded in
//! the topic's codec. No I/O.
//!
//! Invariants: the incoming batch's CRC is checked before anything is re-encoded (a corrupt
//! batch must not come out with a fresh, valid CRC); the inflated records are bounded by the
//! caller's limit (`log.batch.inflated.max.bytes`); records are copied byte for byte into the
//! new batch, and every header field but the attributes' codec bits, the length and the CRC is
//! kept (offsets, timestamps, producer id/epoch/sequence), so the result is validated by the
//! ordinary append path like any produced batch.

use crate::batch::{compute_crc, BatchHeader};
use crate::cleaner::records::{encode_batch, records_section};
use crate::error::StorageError;

const COMPRESSION_MASK: i16 = 0x07;

/// Kafka's codec id for a `compression.type` value; `None` for `producer` (store as sent) and
/// for unknown values (refused earlier by the topic-config validator).
pub fn codec_for_compression_type(compression_type: &str) -> Option<i16> {
    match compression_type {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

/// `batch` (one whole v2 batch) re-encoded with `codec`, or `None` when it already is in that
/// codec or is a control batch (markers are never re-encoded).
pub fn recompress_batch(
    batch: &[u8],
    codec: i16,
    inflated_max: usize,
) -> Result<Option<Vec<u8>>, StorageError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() == codec || header.is_control() {
        return Ok(None);
    }
    let whole = batch
        .get(..header.total_size())
        .ok_or_else(|| StorageError::corrupt("batch shorter than its length field"))?;
    let crc = compute_crc(whole);
    if crc != header.crc {
        return Err(StorageError::corrupt(format!(
            "crc mismatch: header {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    let records = records_section(whole, &header, inflated_max)?;
    let mut target = header.clone();
    target.attributes = (header.attributes & !COMPRESSION_MASK) | (codec & COMPRESSION_MASK);
    encode_batch(&target, &records, header.record_count, None).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batch;
    use crate::builder::BatchBuilder;

    fn three(codec: i16) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000).compression(codec);
        for i in 0..3i64 {
            let value = format!("value {i}");
            b = b.record_at(1_000 + i, Some(b"k"), Some(value.as_bytes()), &[]);
        }
        b.build().to_vec()
    }

    #[test]
    fn every_codec_converts_to_every_other_keeping_the_records() {
        for from in 0..=4i16 {
            for to in 0..=4i16 {
                let original = three(from);
                let out = recompress_batch(&original, to, 1 << 20).expect("recompress");
                let Some(out) = out else {
                    assert_eq!(from, to, "only a batch already in the codec is left alone");
                    continue;
                };
                let info = validate_batch(&out, u32::MAX).expect("valid batch");
                assert_eq!(info.header.compression(), to);
                assert_eq!(info.header.record_count, 3);
                assert_eq!(info.header.base_timestamp, 1_000);
                let back = recompress_batch(&out, 0, 1 << 20)
                    .expect("decompress")
                    .unwrap_or(out.clone());
                assert_eq!(
                    back,
                    three(0),
                    "{from} -> {to} -> none keeps every record byte"
                );
            }
        }
    }

    #[test]
    fn a_corrupt_batch_is_refused_not_given_a_fresh_crc() {
        let mut batch = three(0);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(matches!(
            recompress_batch(&batch, 1, 1 << 20),
            Err(StorageError::CorruptBatch(_))
        ));
    }

    #[test]
    fn the_inflated_size_is_bounded() {
        assert!(recompress_batch(&three(4), 0, 8).is_err());
    }

    #[test]
    fn compression_type_names_map_to_kafka_codec_ids() {
        assert_eq!(codec_for_compression_type("producer"), None);
        assert_eq!(codec_for_compression_type("uncompressed"), Some(0));
        assert_eq!(codec_for_compression_type("zstd"), Some(4));
    }
}
