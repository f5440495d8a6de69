//! Writes a quota's throttle time into an already encoded response's `throttle_time_ms`
//! (KIP-219: the broker answers at once with the throttle time, then mutes the connection).
//!
//! Handlers encode with `throttle_time_ms = 0`; only a throttled response is touched. Where the
//! field is the body's first (most APIs, from the version that has it) or at a fixed offset
//! (OffsetDelete), its 4 bytes are overwritten in place, which also works for a Fetch whose
//! record bytes are file ranges. Produce (the field follows the responses) and ApiVersions
//! (it follows the API list) are decoded, changed and re-encoded: their bodies are small and
//! in memory. Responses without the field (SASL, old versions) are left as they are; the
//! connection is muted all the same. A throttled Fetch is replaced by Kafka's empty throttled
//! response (no partitions, no records) and its bytes are taken back out of the fetch rate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ProduceResponse};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::{BodyPart, HandlerError, HandlerFuture, Outcome};
use crate::quotas::Usage;
use crate::security::session::Session;
use crate::shard::Shard;

/// A handler's future that also sums the time spent inside its polls: the time the request
/// kept this shard's thread busy (Kafka's request-handler thread time), without the time it
/// waited on other shards, the disk or a long poll.
pub struct Timed {
    inner: HandlerFuture,
    busy: Duration,
}

pub fn timed(inner: HandlerFuture) -> Timed {
    Timed {
        inner,
        busy: Duration::ZERO,
    }
}

impl Future for Timed {
    type Output = (Result<Outcome, HandlerError>, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.busy += started.elapsed();
        polled.map(|outcome| (outcome, self.busy))
    }
}

/// Kafka's `sendResponseExemptThrottle` for inter-broker requests: a follower's Fetch
/// (replication has its own throttles, not the client's `consumer_byte_rate`) and
/// WriteTxnMarkers are recorded in no client quota and never throttled.
pub fn is_cluster_action(key: ApiKey, version: i16, body: &bytes::Bytes) -> bool {
    match key {
        ApiKey::WriteTxnMarkers => true,
        ApiKey::Fetch => super::fetch::is_from_follower(body, version),
        _ => false,
    }
}

/// After a handler: records the request in the client quotas (Produce: its size, Fetch: the
/// response's size, every API but SASL and acks=0 Produce: its handler time), writes the
/// throttle time into the response and marks the session to be muted for it.
#[allow(clippy::too_many_arguments)]
pub fn apply_quotas(
    shard: &Shard,
    session: &Session,
    key: ApiKey,
    version: i16,
    client_id: Option<&str>,
    request_bytes: usize,
    handler_time: Duration,
    outcome: &mut Result<Outcome, HandlerError>,
) {
    let Ok(response) = outcome else {
        return;
    };
    // Before SASL authentication completes (ApiVersions) nothing is measured, as in Kafka,
    // where the authenticator answers those requests outside the quota managers.
    if !shard.quotas.active() || !session.is_authenticated() {
        return;
    }
    let silent = matches!(response, Outcome::Silent);
    let exempt = silent || matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
    let usage = Usage {
        produced_bytes: (key == ApiKey::Produce).then_some(request_bytes),
        fetched_bytes: match response {
            Outcome::Body(parts) if key == ApiKey::Fetch => {
                Some(parts.iter().map(BodyPart::len).sum())
            }
            _ => None,
        },
        handler_time: (!exempt).then_some(handler_time),
    };
    let user = session.principal_name();
    let throttle_ms = shard.quotas.record(&user, client_id.unwrap_or(""), &usage);
    if throttle_ms == 0 {
        return;
    }
    let field = i32::try_from(throttle_ms).unwrap_or(i32::MAX);
    match (key, usage.fetched_bytes, &*response) {
        // Kafka's handleFetchRequest: a throttled fetch (over either quota) takes its bytes back
        // out of the fetch rate and is answered empty, with the throttle time; the records stay
        // for the fetch after the mute.
        (ApiKey::Fetch, Some(bytes), Outcome::Body(parts)) => {
            shard
                .quotas
                .unrecord_fetch(&user, client_id.unwrap_or(""), bytes);
            match super::fetch::throttled_response(parts, version, field) {
                Some(empty) => *response = Outcome::Body(empty),
                None => {
                    set_throttle_time(key, version, response, field);
                }
            }
        }
        _ => {
            set_throttle_time(key, version, response, field);
        }
    }
    session.throttle(throttle_ms);
}

/// Byte offset of `throttle_time_ms` in the response body, where it is fixed.
fn fixed_offset(key: ApiKey, version: i16) -> Option<usize> {
    use ApiKey as A;
    let first_from = match key {
        A::Fetch | A::FindCoordinator | A::Heartbeat | A::LeaveGroup | A::SyncGroup => 1,
        A::DescribeGroups | A::ListGroups | A::DeleteTopics => 1,
        A::ListOffsets | A::JoinGroup | A::CreateTopics | A::OffsetForLeaderEpoch => 2,
        A::Metadata | A::OffsetCommit | A::OffsetFetch => 3,
        A::DeleteRecords | A::InitProducerId | A::DescribeAcls | A::CreateAcls | A::DeleteAcls => 0,
        A::DescribeConfigs | A::AlterConfigs | A::IncrementalAlterConfigs => 0,
        A::CreatePartitions | A::DescribeCluster | A::ElectLeaders => 0,
        A::DescribeUserScramCredentials | A::AlterUserScramCredentials => 0,
        A::DescribeTopicPartitions | A::ListConfigResources => 0,
        A::DescribeClientQuotas | A::AlterClientQuotas => 0,
        // error_code (2 bytes) first.
        A::OffsetDelete => return Some(2),
        _ => return None,
    };
    (version >= first_from).then_some(0)
}

/// Sets `throttle_time_ms` in `outcome` (a response body of `key` at `version`); returns
/// whether the response carries it.
pub fn set_throttle_time(
    key: ApiKey,
    version: i16,
    outcome: &mut Outcome,
    throttle_ms: i32,
) -> bool {
    let Outcome::Body(parts) = outcome else {
        return false;
    };
    if let Some(offset) = fixed_offset(key, version) {
        return overwrite(parts, offset, throttle_ms);
    }
    match key {
        ApiKey::Produce => reencode::<ProduceResponse>(parts, version, |r| {
            r.throttle_time_ms = throttle_ms;
        }),
        ApiKey::ApiVersions if version >= 1 => {
            reencode::<ApiVersionsResponse>(parts, version, |r| r.throttle_time_ms = throttle_ms)
        }
        _ => false,
    }
}

/// Writes `value` unless the handler already wrote a larger throttle time (the controller
/// mutation quota's, KIP-599): Kafka answers the larger of the two.
fn overwrite(parts: &mut [BodyPart], offset: usize, value: i32) -> bool {
    let Some(BodyPart::Bytes(first)) = parts.first_mut() else {
        return false;
    };
    if first.len() < offset + 4 {
        return false;
    }
    let mut patched = BytesMut::from(&first[..]);
    if let Some(field) = patched.get_mut(offset..offset + 4) {
        let written = <[u8; 4]>::try_from(&*field).map_or(0, i32::from_be_bytes);
        field.copy_from_slice(&value.max(written).to_be_bytes());
    }
    *first = patched.freeze();
    true
}

fn reencode<T: Decodable + Encodable>(
    parts: &mut Vec<BodyPart>,
    version: i16,
    change: impl FnOnce(&mut T),
) -> bool {
    let mut body = BytesMut::new();
    for part in parts.iter() {
        match part {
            BodyPart::Bytes(b) => body.put_slice(b),
            BodyPart::File(_) => return false,
        }
    }
    let mut bytes: Bytes = body.freeze();
    let Ok(mut message) = T::decode(&mut bytes, version) else {
        return false;
    };
    if bytes.has_remaining() {
        return false;
    }
    change(&mut message);
    let mut out = BytesMut::new();
    if message.encode(&mut out, version).is_err() {
        return false;
    }
    *parts = vec![BodyPart::Bytes(out.freeze())];
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::TopicProduceResponse;
    use kafka_protocol::messages::{MetadataResponse, OffsetDeleteResponse};

    fn encoded<T: Encodable>(message: &T, version: i16) -> Outcome {
        Outcome::encoded(message, version).unwrap()
    }

    fn body(outcome: &Outcome) -> Bytes {
        let Outcome::Body(parts) = outcome else {
            panic!("silent")
        };
        let mut out = BytesMut::new();
        for p in parts {
            let BodyPart::Bytes(b) = p else {
                panic!("file")
            };
            out.put_slice(b);
        }
        out.freeze()
    }

    #[test]
    fn every_kind_of_position_is_patched() {
        let mut m = encoded(&MetadataResponse::default(), 12);
        assert!(set_throttle_time(ApiKey::Metadata, 12, &mut m, 1234));
        let r = MetadataResponse::decode(&mut body(&m), 12).unwrap();
        assert_eq!(r.throttle_time_ms, 1234);

        let mut o = encoded(&OffsetDeleteResponse::default().with_error_code(7), 0);
        assert!(set_throttle_time(ApiKey::OffsetDelete, 0, &mut o, 55));
        let r = OffsetDeleteResponse::decode(&mut body(&o), 0).unwrap();
        assert_eq!((r.error_code, r.throttle_time_ms), (7, 55));

        for version in [3, 8, 9, 12] {
            let produce =
                ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()]);
            let mut p = encoded(&produce, version);
            assert!(set_throttle_time(ApiKey::Produce, version, &mut p, 999));
            let r = ProduceResponse::decode(&mut body(&p), version).unwrap();
            assert_eq!((r.throttle_time_ms, r.responses.len()), (999, 1));
        }

        let mut a = encoded(&ApiVersionsResponse::default(), 3);
        assert!(set_throttle_time(ApiKey::ApiVersions, 3, &mut a, 10));
        let r = ApiVersionsResponse::decode(&mut body(&a), 3).unwrap();
        assert_eq!(r.throttle_time_ms, 10);

        // A larger throttle time the handler wrote (KIP-599) is kept.
        let created =
            kafka_protocol::messages::CreateTopicsResponse::default().with_throttle_time_ms(5_000);
        let mut c = encoded(&created, 7);
        assert!(set_throttle_time(ApiKey::CreateTopics, 7, &mut c, 100));
        let r = kafka_protocol::messages::CreateTopicsResponse::decode(&mut body(&c), 7).unwrap();
        assert_eq!(r.throttle_time_ms, 5_000);

        // Metadata v0 has no throttle time.
        let mut old = encoded(&MetadataResponse::default(), 0);
        assert!(!set_throttle_time(ApiKey::Metadata, 0, &mut old, 1));
    }
}
