//! Kafka's batch compression codecs for the log cleaner: decompress a batch's records section
//! to find keys, compress the retained records with the same codec.
//!
//! Codec ids are the batch attribute values: 1 gzip, 2 snappy (xerial framing as the Java
//! producer writes; raw snappy as librdkafka may write is also read), 3 lz4 (frame format),
//! 4 zstd. Invariant: decompression never produces more than `limit` bytes (a corrupt or
//! hostile batch cannot make the cleaner allocate without bound); any failure is a
//! `CorruptBatch` error, never a panic.

use std::io::{Read, Write};

use crate::error::StorageError;

pub const CODEC_NONE: i16 = 0;
pub const CODEC_GZIP: i16 = 1;
pub const CODEC_SNAPPY: i16 = 2;
pub const CODEC_LZ4: i16 = 3;
pub const CODEC_ZSTD: i16 = 4;

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

/// Reads all of `r`, failing once more than `limit` bytes come out.
fn read_bounded(mut r: impl Read, limit: usize, codec: i16) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    let got = r
        .by_ref()
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if got > limit {
        return Err(corrupt(
            codec,
            format!("decompresses to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Decompresses a records section written with `codec`, producing at most `limit` bytes.
pub fn decompress(codec: i16, data: &[u8], limit: usize) -> Result<Vec<u8>, StorageError> {
    match codec {
        CODEC_NONE => {
            if data.len() > limit {
                return Err(corrupt(codec, "records section too large"));
            }
            Ok(data.to_vec())
        }
        CODEC_GZIP => read_bounded(flate2::read::MultiGzDecoder::new(data), limit, codec),
        CODEC_SNAPPY => snappy_decompress(data, limit),
        CODEC_LZ4 => {
            let mut dec = lz4::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            let out = read_bounded(&mut dec, limit, codec)?;
            // A truncated frame reads as a short stream; `finish` tells it apart.
            dec.finish().1.map_err(|e| corrupt(codec, e))?;
            Ok(out)
        }
        CODEC_ZSTD => {
            let dec = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            read_bounded(dec, limit, codec)
        }
        other => Err(StorageError::InvalidRecord(format!(
            "unknown compression codec {other}"
        ))),
    }
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, StorageError> {
    let codec = CODEC_SNAPPY;
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), StorageError> {
        let n = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
        if out.len().saturating_add(n) > limit {
            return Err(corrupt(
                codec,
                format!("decompresses to more than {limit} bytes"),
            ));
        }
        let start = out.len();
        out.resize(start + n, 0);
        let dst = out.get_mut(start..).unwrap_or(&mut []);
        snap::raw::Decoder::new()
            .decompress(block, dst)
            .map_err(|e| corrupt(codec, e))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data.get(XERIAL_HEADER_LEN..).unwrap_or(&[]);
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt(codec, "truncated xerial block length"))?
            as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt(codec, "truncated xerial block"))?;
        raw(block, &mut out)?;
        rest = rest.get(4 + len..).unwrap_or(&[]);
    }
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
