//! The broker's side of forwarding (KIP-590, Kafka's `ForwardingManager` over its
//! `NodeToControllerChannelManager`): an admin request that reached a node which is not the
//! active controller travels to the active controller as an Envelope over the controller
//! channel (`quorum::network::KIND_ENVELOPE`); the controller runs it as the client's principal
//! and the answer comes back through here.
//!
//! A controller change does not fail the request: as Kafka's `NodeToControllerRequestThread`
//! puts a request answered NOT_CONTROLLER (the envelope's error, the channel's answer, or an
//! error code anywhere in the response, per item included: Kafka's
//! `responseBody().errorCounts().containsKey(NOT_CONTROLLER)`) or whose connection was lost
//! back at the head of its queue, the request is sent again to the controller this node knows
//! next, until `request.timeout.ms` passed since it arrived; then the caller answers the client
//! REQUEST_TIMED_OUT (Kafka's `onTimeout`). Between attempts
//! it waits for the image's next entry (a new active controller commits one as it takes over,
//! which every node applies) or for this node to name another controller, at most a backoff.
//!
//! Invariants: at most `forwarded.requests.max.in.flight` requests per node are forwarded or
//! waiting to be retried at once (beyond, the caller answers itself); each attempt waits at
//! most `controller.socket.timeout.ms`; idle connections to the controller are reused, at
//! most [`IDLE_CHANNELS_MAX`] per shard thread, so forwarding does not take one
//! `controller.max.connections` slot per request.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::EnvelopeResponse;
use kafka_protocol::protocol::Decodable;

use super::heartbeat::ControllerChannel;
use super::node::ClusterNode;
use super::quorum::lifecycle::{EnvelopeAnswer, LifecycleError};
use super::quorum::network::KIND_ENVELOPE;

/// Idle controller connections kept per shard thread for forwarding.
pub const IDLE_CHANNELS_MAX: usize = 4;
/// The first wait between attempts (Kafka's `retry.backoff.ms` default); it doubles.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between attempts (Kafka's `retry.backoff.max.ms` default).
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Kafka's NOT_CONTROLLER, as an envelope's error.
const NOT_CONTROLLER: i16 = 41;

thread_local! {
    static IDLE: RefCell<Vec<ControllerChannel>> = const { RefCell::new(Vec::new()) };
}

/// Why a request was not forwarded (the caller then answers the client itself).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0} forwarded requests in flight already")]
    TooManyInFlight(usize),
    #[error("no active controller answered within {waited:?} (last: {last})")]
    TimedOut { waited: Duration, last: String },
    #[error("the active controller answered the envelope with error {0}")]
    Envelope(i16),
    #[error("the active controller's answer does not decode: {0}")]
    Malformed(String),
}

/// Releases an in-flight slot when dropped.
struct Slot<'a>(&'a ClusterNode);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.forwarding_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one attempt came to.
enum Attempt {
    /// The response body the controller answered, and its metadata offset.
    Answered(Bytes, u64),
    /// A controller change or a lost connection: try again; `hinted` when the answer named
    /// the new controller (the channel follows that hint; a broker-only node's channel
    /// forgets a controller it cannot reach).
    Retry {
        why: String,
        hinted: bool,
    },
    Failed(ForwardError),
}

/// Where this node stood when an attempt began: a change of either ends the wait after it.
#[derive(Clone, Copy)]
struct Seen {
    image_offset: u64,
    controller: i32,
}

/// Sends `envelope` (an `EnvelopeRequest` v0) to the active controller, retried across
/// controller changes (see the module documentation) until `request.timeout.ms` after
/// `arrived` (when the request reached this node); the response body the controller answered,
/// once this node applied the metadata the controller had committed when it answered (bounded
/// by the same deadline: past it the answer is returned anyway). `not_controller` says whether
/// a response body carries NOT_CONTROLLER anywhere (the caller knows its API and version).
pub async fn forward(
    node: &Arc<ClusterNode>,
    envelope: Vec<u8>,
    arrived: Instant,
    not_controller: &dyn Fn(&Bytes) -> bool,
) -> Result<Bytes, ForwardError> {
    let max = node.forwarding_max_in_flight;
    if node.forwarding_in_flight.fetch_add(1, Ordering::AcqRel) >= max {
        node.forwarding_in_flight.fetch_sub(1, Ordering::AcqRel);
        return Err(ForwardError::TooManyInFlight(max));
    }
    let _slot = Slot(node);
    let deadline = arrived + node.forwarding_retry_timeout;
    let mut channel = IDLE
        .with(|idle| idle.borrow_mut().pop())
        .unwrap_or_else(|| ControllerChannel::new(node.clone()));
    let mut backoff = RETRY_BACKOFF_MIN;
    let mut followed_hint = false;
    let mut last = String::from("no attempt");
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ForwardError::TimedOut {
                waited: node.forwarding_retry_timeout,
                last,
            });
        }
        let seen = Seen {
            image_offset: node.image.offset(),
            controller: node.active_controller(),
        };
        channel.set_timeout(node.forwarding_timeout.min(remaining));
        let answer = channel
            .call::<_, EnvelopeAnswer>(KIND_ENVELOPE, &envelope)
            .await;
        let at_once = match attempt(answer, not_controller) {
            Attempt::Answered(response, metadata_offset) => {
                keep_idle(channel);
                wait_applied(node, metadata_offset, deadline).await;
                return Ok(response);
            }
            Attempt::Failed(e) => {
                keep_idle(channel);
                return Err(e);
            }
            Attempt::Retry { why, hinted } => {
                tracing::debug!(%why, "forwarded request: retrying against the next controller");
                last = why;
                hinted
            }
        };
        // A hint is followed at once, but not twice in a row (two nodes naming each other).
        if at_once && !followed_hint {
            followed_hint = true;
            continue;
        }
        followed_hint = false;
        channel.disconnect();
        let left = deadline.saturating_duration_since(Instant::now());
        controller_change(node, seen, backoff.min(left)).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}

/// Classifies one attempt's answer.
fn attempt(
    answer: Result<EnvelopeAnswer, LifecycleError>,
    not_controller: &dyn Fn(&Bytes) -> bool,
) -> Attempt {
    let answer = match answer {
        Ok(answer) => answer,
        Err(LifecycleError::NotController { leader_id, .. }) => {
            return Attempt::Retry {
                why: format!("NOT_CONTROLLER (leader: {leader_id:?})"),
                hinted: leader_id.is_some(),
            }
        }
        // A lost or refused connection, a timed-out attempt, a full queue at the controller:
        // as Kafka's channel on a disconnect, the request waits for the next try.
        Err(e) => {
            return Attempt::Retry {
                why: e.to_string(),
                hinted: false,
            }
        }
    };
    let envelope = match EnvelopeResponse::decode(&mut Bytes::from(answer.response), 0) {
        Ok(envelope) => envelope,
        Err(e) => return Attempt::Failed(ForwardError::Malformed(format!("{e:#}"))),
    };
    match (envelope.error_code, envelope.response_data) {
        // A controller that did not turn a NOT_CONTROLLER inside its response into the
        // envelope's error (an older one): the same controller change (Kafka's request thread
        // looks at every error code of the response).
        (0, Some(body)) if not_controller(&body) => Attempt::Retry {
            why: "the response carries NOT_CONTROLLER".into(),
            hinted: false,
        },
        (0, Some(body)) => Attempt::Answered(body, answer.metadata_offset),
        // The controller lost its leadership while it ran the request (Kafka's
        // `shouldReturnNotController`).
        (NOT_CONTROLLER, _) => Attempt::Retry {
            why: "the envelope answered NOT_CONTROLLER".into(),
            hinted: false,
        },
        (0, None) => Attempt::Failed(ForwardError::Malformed("no response data".into())),
        (code, _) => Attempt::Failed(ForwardError::Envelope(code)),
    }
}

/// Waits at most `bound` until this node names another active controller than `seen` or
/// applied a newer image entry.
async fn controller_change(node: &ClusterNode, seen: Seen, bound: Duration) {
    if node.active_controller() != seen.controller {
        return;
    }
    node.image.wait_newer(seen.image_offset, bound).await;
}

/// Waits (until `deadline`) for every shard of this node to apply `metadata_offset`.
async fn wait_applied(node: &ClusterNode, metadata_offset: u64, deadline: Instant) {
    while node.applied_offset.load(Ordering::Acquire) < metadata_offset && Instant::now() < deadline
    {
        compio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn keep_idle(channel: ControllerChannel) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        if idle.len() < IDLE_CHANNELS_MAX {
            idle.push(channel);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::forward_errors;
    use bytes::BytesMut;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::{ApiKey, CreateTopicsResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// A controller's answer: `response` (CreateTopics v5) in an envelope with `envelope_error`.
    fn answer(envelope_error: i16, codes: &[i16]) -> Result<EnvelopeAnswer, LifecycleError> {
        let topics = codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                CreatableTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(format!("t{i}"))))
                    .with_error_code(*code)
            })
            .collect();
        let mut body = BytesMut::new();
        CreateTopicsResponse::default()
            .with_topics(topics)
            .encode(&mut body, 5)
            .unwrap();
        let envelope = EnvelopeResponse::default()
            .with_error_code(envelope_error)
            .with_response_data((envelope_error == 0).then(|| body.freeze()));
        let mut response = BytesMut::new();
        envelope.encode(&mut response, 0).unwrap();
        Ok(EnvelopeAnswer {
            response: response.to_vec(),
            metadata_offset: 9,
        })
    }

    fn create_topics_not_controller(body: &Bytes) -> bool {
        forward_errors::carries(ApiKey::CreateTopics, 5, body, NOT_CONTROLLER)
    }

    #[test]
    fn not_controller_per_item_inside_the_response_is_a_retry() {
        let answered = attempt(
            answer(0, &[0, NOT_CONTROLLER]),
            &create_topics_not_controller,
        );
        assert!(
            matches!(answered, Attempt::Retry { hinted: false, .. }),
            "a per-topic NOT_CONTROLLER was answered to the client"
        );
    }

    #[test]
    fn envelope_errors_and_clean_answers_are_classified() {
        let retry = attempt(answer(NOT_CONTROLLER, &[]), &create_topics_not_controller);
        assert!(matches!(retry, Attempt::Retry { .. }));
        let failed = attempt(answer(42, &[]), &create_topics_not_controller);
        assert!(matches!(
            failed,
            Attempt::Failed(ForwardError::Envelope(42))
        ));
        // Other per-topic errors are the controller's answer, not a controller change.
        match attempt(answer(0, &[0, 36]), &create_topics_not_controller) {
            Attempt::Answered(body, 9) => assert!(!create_topics_not_controller(&body)),
            _ => panic!("a plain answer was not answered"),
        }
        let lost = attempt(
            Err(LifecycleError::NotController {
                leader_id: Some(2),
                leader_addr: None,
            }),
            &create_topics_not_controller,
        );
        assert!(matches!(lost, Attempt::Retry { hinted: true, .. }));
    }
}
