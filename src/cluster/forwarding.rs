//! The broker's side of forwarding (KIP-590, Kafka's `ForwardingManager`): an admin request
//! that reached a node which is not the active controller travels to the active controller
//! as an Envelope over the controller channel (`quorum::network::KIND_ENVELOPE`); the
//! controller runs it as the client's principal and the answer comes back through here.
//!
//! Invariants: at most `forwarded.requests.max.in.flight` requests per node wait on the
//! controller at once (beyond, the caller answers itself); each waits at most
//! `controller.socket.timeout.ms`; idle connections to the controller are reused, at most
//! [`IDLE_CHANNELS_MAX`] per shard thread, so forwarding does not take one
//! `controller.max.connections` slot per request.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::heartbeat::ControllerChannel;
use super::node::ClusterNode;
use super::quorum::lifecycle::{EnvelopeAnswer, LifecycleError};
use super::quorum::network::KIND_ENVELOPE;

/// Idle controller connections kept per shard thread for forwarding.
pub const IDLE_CHANNELS_MAX: usize = 4;
/// Attempts per forwarded request (a controller change answers NOT_CONTROLLER with a hint).
const ATTEMPTS: usize = 3;

thread_local! {
    static IDLE: RefCell<Vec<ControllerChannel>> = const { RefCell::new(Vec::new()) };
}

/// Why a request was not forwarded (the caller then answers the client itself).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0} forwarded requests in flight already")]
    TooManyInFlight(usize),
    #[error("no answer from the active controller within {0:?}")]
    TimedOut(Duration),
    #[error("the active controller could not take it: {0}")]
    Controller(String),
}

/// Releases an in-flight slot when dropped.
struct Slot<'a>(&'a ClusterNode);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.forwarding_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends `envelope` (an `EnvelopeRequest` v0) to the active controller; its answer, once this
/// node applied the metadata the controller had committed when it answered (bounded by the
/// same timeout: past it the answer is returned anyway).
pub async fn forward(node: &Arc<ClusterNode>, envelope: Vec<u8>) -> Result<Vec<u8>, ForwardError> {
    let max = node.forwarding_max_in_flight;
    if node.forwarding_in_flight.fetch_add(1, Ordering::AcqRel) >= max {
        node.forwarding_in_flight.fetch_sub(1, Ordering::AcqRel);
        return Err(ForwardError::TooManyInFlight(max));
    }
    let _slot = Slot(node);
    let timeout = node.forwarding_timeout;
    let deadline = Instant::now() + timeout;
    let answer = compio::time::timeout(timeout, call(node, &envelope))
        .await
        .map_err(|_| ForwardError::TimedOut(timeout))??;
    while node.applied_offset.load(Ordering::Acquire) < answer.metadata_offset
        && Instant::now() < deadline
    {
        compio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(answer.response)
}

async fn call(node: &Arc<ClusterNode>, envelope: &Vec<u8>) -> Result<EnvelopeAnswer, ForwardError> {
    let mut channel = IDLE
        .with(|idle| idle.borrow_mut().pop())
        .unwrap_or_else(|| {
            ControllerChannel::new(node.clone()).with_timeout(node.forwarding_timeout)
        });
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        match channel
            .call::<_, EnvelopeAnswer>(KIND_ENVELOPE, envelope)
            .await
        {
            Ok(answer) => {
                IDLE.with(|idle| {
                    let mut idle = idle.borrow_mut();
                    if idle.len() < IDLE_CHANNELS_MAX {
                        idle.push(channel);
                    }
                });
                return Ok(answer);
            }
            // A controller change: the channel follows the hint on the next attempt.
            Err(e @ LifecycleError::NotController { .. }) => last = e.to_string(),
            Err(e) => return Err(ForwardError::Controller(e.to_string())),
        }
    }
    Err(ForwardError::Controller(last))
}
