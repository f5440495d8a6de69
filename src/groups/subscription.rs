//! Reads the topic list out of a consumer's JoinGroup metadata (Kafka's
//! ConsumerProtocolSubscription: `i16 version, [string topic], bytes user_data, ...`, the same
//! prefix in every version), for OffsetDelete's "is the group subscribed to this topic" check.
//!
//! Invariant: client bytes never panic here; anything unreadable is "no topics".

use bytes::Buf;

/// Topics named by a subscription; empty when the bytes are not a consumer subscription.
pub fn topics(metadata: &[u8]) -> Vec<String> {
    let mut buf = metadata;
    if buf.remaining() < 6 {
        return Vec::new();
    }
    let _version = buf.get_i16();
    let count = buf.get_i32();
    let Ok(count) = usize::try_from(count) else {
        return Vec::new();
    };
    let mut topics = Vec::with_capacity(count.min(buf.len() / 2));
    for _ in 0..count {
        if buf.remaining() < 2 {
            return Vec::new();
        }
        let Ok(len) = usize::try_from(buf.get_i16()) else {
            return Vec::new();
        };
        let Some((name, rest)) = buf.split_at_checked(len) else {
            return Vec::new();
        };
        topics.push(String::from_utf8_lossy(name).into_owned());
        buf = rest;
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_and_survives_garbage() {
        let mut meta = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        meta.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(topics(&meta), vec!["a".to_owned(), "bc".to_owned()]);
        for len in 0..meta.len() {
            let _ = topics(&meta[..len]);
        }
        assert!(topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }
}
