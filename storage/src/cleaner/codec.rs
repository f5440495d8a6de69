//! Kafka's batch compression codecs for the log cleaner: decompress a batch's records section
//! to find keys, compress the retained records with the same codec.
//!
//! Codec ids and decoding live in `crate::inflate` (one place for both): 1 gzip, 2 snappy
//! (xerial framing as the Java producer writes; raw snappy as librdkafka may write is also
//! read), 3 lz4 (frame format), 4 zstd. This module keeps only the compressing side.
//! Invariant: decompression never produces more than `limit` bytes (a corrupt or hostile
//! batch cannot make the cleaner allocate without bound); any failure is a `CorruptBatch`
//! error (an unknown codec `InvalidRecord`), never a panic.

use std::io::{Read, Write};

use crate::error::StorageError;
use crate::inflate::bounded_decoder;
pub use crate::inflate::{CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD};

/// The Java snappy-java ("xerial") stream header.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block (snappy-java's default block size).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// zstd level Kafka uses by default (compression.zstd.level = 3).
const ZSTD_LEVEL: i32 = 3;

fn corrupt(codec: i16, e: impl std::fmt::Display) -> StorageError {
    StorageError::corrupt(format!("codec {codec}: {e}"))
}

/// Decompresses a records section written with `codec`, producing at most `limit` bytes.
pub fn decompress(codec: i16, data: &[u8], limit: usize) -> Result<Vec<u8>, StorageError> {
    if codec == CODEC_NONE {
        if data.len() > limit {
            return Err(corrupt(codec, "records section too large"));
        }
        return Ok(data.to_vec());
    }
    let mut out = Vec::new();
    bounded_decoder(codec, data, limit as u64)?
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    Ok(out)
}

/// Compresses a records section with `codec` (as the Java producer would frame it).
pub fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, StorageError> {
    let io = |e: std::io::Error| corrupt(codec, e);
    match codec {
        CODEC_NONE => Ok(data.to_vec()),
        CODEC_GZIP => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(io)?;
            enc.finish().map_err(io)
        }
        CODEC_SNAPPY => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // min compatible version
            let mut enc = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK_BYTES) {
                let c = enc.compress_vec(block).map_err(|e| corrupt(codec, e))?;
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            Ok(out)
        }
        CODEC_LZ4 => {
            let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).map_err(io)?;
            enc.write_all(data).map_err(io)?;
            let (out, res) = enc.finish();
            res.map_err(io)?;
            Ok(out)
        }
        CODEC_ZSTD => zstd::bulk::compress(data, ZSTD_LEVEL).map_err(io),
        other => Err(StorageError::InvalidRecord(format!(
            "unknown compression codec {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_is_bounded() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let c = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &c, data.len()).unwrap(),
                data,
                "codec {codec}"
            );
            assert!(
                decompress(codec, &c, data.len() - 1).is_err(),
                "codec {codec} bound"
            );
            assert!(
                decompress(codec, &c[..c.len() / 2], data.len()).is_err() || codec == CODEC_NONE,
                "codec {codec} truncated"
            );
        }
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(CODEC_SNAPPY, &raw, data.len()).unwrap(), data);
        assert!(decompress(7, &data, data.len()).is_err());
    }
}
