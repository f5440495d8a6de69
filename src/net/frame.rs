//! Kafka framing: a 4-byte big-endian size, then the request header and body. Parses only what
//! the connection needs to decide how to answer, with checked access throughout.
//!
//! Invariants: a size prefix that is negative or above `socket.request.max.bytes` is rejected
//! before any allocation; header parsing never panics on arbitrary bytes (proptest below).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// The size prefix's length.
pub const SIZE_PREFIX_BYTES: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("request size {size} is negative or above socket.request.max.bytes {max}")]
    BadSize { size: i64, max: u32 },
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("malformed request header: {0}")]
    BadHeader(String),
}

/// Validates a size prefix; returns the frame length that follows it.
pub fn frame_len(prefix: [u8; 4], max: u32) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    match u32::try_from(size) {
        Ok(len) if len <= max => Ok(len as usize),
        _ => Err(FrameError::BadSize {
            size: i64::from(size),
            max,
        }),
    }
}

/// A parsed request header and the body after it.
#[derive(Debug)]
pub struct ParsedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Parses the header of one frame (without its size prefix).
pub fn parse_request(mut frame: Bytes) -> Result<ParsedRequest, FrameError> {
    let mut fixed = frame.get(..8).ok_or(FrameError::TooShort(frame.len()))?;
    let api_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let key = ApiKey::try_from(api_key).map_err(|()| FrameError::UnknownApiKey {
        api_key,
        correlation_id,
    })?;
    let header_version = key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::BadHeader(format!("{e:#}")))?;
    Ok(ParsedRequest {
        api_key: key,
        header,
        body: frame,
    })
}

/// The largest response prefix: size (4), correlation id (4), empty tagged fields (1 byte in
/// response header v1; a header with tagged fields would be longer, and Sluice writes none).
const RESPONSE_PREFIX_BYTES_MAX: usize = SIZE_PREFIX_BYTES + 5;

/// A response's size prefix and header, kept inline (no heap allocation per response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePrefix {
    bytes: [u8; RESPONSE_PREFIX_BYTES_MAX],
    len: usize,
}

impl ResponsePrefix {
    /// No prefix: the frame's parts carry their own (a raw SASL token).
    pub const NONE: Self = Self {
        bytes: [0; RESPONSE_PREFIX_BYTES_MAX],
        len: 0,
    };

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Encodes the size prefix and response header for a body of `body_len` bytes.
pub fn response_prefix(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body_len: usize,
) -> Option<ResponsePrefix> {
    let header_version = api_key.response_header_version(version);
    // Response header v0 is the correlation id; v1 adds tagged fields, none here (a 0 count).
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_len = header.compute_size(header_version).ok()?;
    let mut header_bytes = [0u8; RESPONSE_PREFIX_BYTES_MAX - SIZE_PREFIX_BYTES];
    let [c0, c1, c2, c3, ..] = &mut header_bytes;
    [*c0, *c1, *c2, *c3] = correlation_id.to_be_bytes();
    let written = if header_version >= 1 { 5 } else { 4 };
    if written != header_len {
        return None;
    }
    let total = u32::try_from(header_len + body_len).ok()?;
    let mut prefix = ResponsePrefix::NONE;
    let [s0, s1, s2, s3, rest @ ..] = &mut prefix.bytes;
    [*s0, *s1, *s2, *s3] = total.to_be_bytes();
    rest.copy_from_slice(&header_bytes);
    prefix.len = SIZE_PREFIX_BYTES + header_len;
    Some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn encode_request(key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        buf.extend_from_slice(body);
        buf.freeze()
    }

    #[test]
    fn size_prefix_bounds() {
        assert_eq!(frame_len(10i32.to_be_bytes(), 100), Ok(10));
        assert_eq!(frame_len(100i32.to_be_bytes(), 100), Ok(100));
        assert!(frame_len(101i32.to_be_bytes(), 100).is_err());
        assert!(frame_len((-1i32).to_be_bytes(), 100).is_err());
        assert!(frame_len(i32::MAX.to_be_bytes(), 104_857_600).is_err());
    }

    #[test]
    fn parses_v1_and_v2_headers() {
        let parsed = parse_request(encode_request(ApiKey::Metadata, 1, b"xyz")).unwrap();
        assert_eq!(parsed.api_key, ApiKey::Metadata);
        assert_eq!(parsed.header.correlation_id, 42);
        assert_eq!(parsed.header.client_id.as_deref(), Some("test"));
        assert_eq!(&parsed.body[..], b"xyz");
        // Metadata v9+ uses the flexible header (v2) with tagged fields.
        let parsed = parse_request(encode_request(ApiKey::Metadata, 12, b"b")).unwrap();
        assert_eq!(parsed.header.request_api_version, 12);
        assert_eq!(&parsed.body[..], b"b");
    }

    #[test]
    fn rejects_short_and_unknown() {
        assert_eq!(
            parse_request(Bytes::from_static(b"\0\0\0")).unwrap_err(),
            FrameError::TooShort(3)
        );
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 7]);
        assert_eq!(
            parse_request(unknown).unwrap_err(),
            FrameError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 7
            }
        );
    }

    #[test]
    fn response_prefix_counts_header_and_body() {
        let prefix = response_prefix(ApiKey::Metadata, 12, 5, 10).unwrap();
        // size(4) + correlation id(4) + empty tagged fields(1)
        assert_eq!(prefix.len(), 9);
        assert_eq!(prefix.as_slice(), &[0, 0, 0, 15, 0, 0, 0, 5, 0]);
        let prefix = response_prefix(ApiKey::ApiVersions, 3, 5, 10).unwrap();
        assert_eq!(
            prefix.len(),
            8,
            "ApiVersions responses always use header v0"
        );
    }

    #[test]
    fn response_prefix_matches_the_protocol_encoder() {
        for (key, version) in [
            (ApiKey::Produce, 8),
            (ApiKey::Produce, 9),
            (ApiKey::Fetch, 16),
        ] {
            let header_version = key.response_header_version(version);
            let mut expected = BytesMut::new();
            expected.extend_from_slice(&0u32.to_be_bytes());
            ResponseHeader::default()
                .with_correlation_id(-7)
                .encode(&mut expected, header_version)
                .unwrap();
            let body_len = 100;
            let total = (expected.len() - SIZE_PREFIX_BYTES + body_len) as u32;
            expected[..4].copy_from_slice(&total.to_be_bytes());
            let prefix = response_prefix(key, version, -7, body_len).unwrap();
            assert_eq!(prefix.as_slice(), &expected[..], "{key:?} v{version}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(Bytes::from(bytes));
        }

        // Decoding arbitrary bodies for every API and version must never panic or abort. This
        // found kafka-protocol 0.18's unchecked `Vec::with_capacity(n)` on array lengths, fixed
        // in vendor/kafka-protocol (see docs/decisions/0003-vendored-kafka-protocol.md).
        #[test]
        fn arbitrary_bodies_never_panic(key in 0i16..80, version in -1i16..20, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(api) = ApiKey::try_from(key) {
                let frame = encode_request(api, version, &body);
                if let Ok(parsed) = parse_request(frame) {
                    crate::handlers::decode_any(parsed.api_key, parsed.header.request_api_version, parsed.body);
                }
            }
        }
    }
}
