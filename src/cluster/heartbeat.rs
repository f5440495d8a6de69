//! The broker's side of its lifecycle (Kafka's `BrokerLifecycleManager`), on shard 0:
//! register with the active controller, then heartbeat every `broker.heartbeat.interval.ms`
//! with the metadata offset this broker applied; register again when the controller no longer
//! knows the epoch. A broker-only node also fetches the committed image from a controller
//! (`fetch_images`). Producer-id blocks come from the active controller too.
//!
//! Invariants: a controller that cannot be reached, or answers NOT_CONTROLLER, is never fatal:
//! the broker logs it and retries (with the leader hint when there is one, else the next
//! bootstrap address), forever, with a bounded backoff. One request at a time per channel.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::node::ClusterNode;
use super::quorum::lifecycle::{
    AllocateProducerIdsRequest, Answer, AutoCreateOutcome, AutoCreateRequest, AutoCreateResponse,
    FetchImageResponse, FetchImageWaitRequest, HeartbeatRequest, HeartbeatResponse, LifecycleError,
    ProducerIdBlock, RegistrationRequest,
};
use super::quorum::network::{
    call_controller, KIND_ALLOCATE_PRODUCER_IDS, KIND_AUTO_CREATE_TOPICS, KIND_BROKER_HEARTBEAT,
    KIND_BROKER_REGISTRATION, KIND_FETCH_IMAGE_WAIT,
};
use super::quorum::shared_image::SharedImage;
use super::secure_stream::SecureStream;

/// Backoff between failed attempts to reach a controller.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long a broker-only node asks a controller to hold its metadata long poll when nothing
/// is newer (`lifecycle::FETCH_IMAGE_WAIT_MAX` caps it; kept under the request timeout).
const IMAGE_FETCH_WAIT_MAX: Duration = Duration::from_millis(500);
/// A failure is logged at most this often (a cluster starting logs little).
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A connection to the active controller, following NOT_CONTROLLER hints.
pub struct ControllerChannel {
    node: Arc<ClusterNode>,
    stream: Option<SecureStream>,
    target: Option<SocketAddr>,
    next_bootstrap: usize,
    /// Any controller will do (image fetches), not only the active one.
    any: bool,
    /// The bound of one call (connect, request, answer).
    timeout: Duration,
}

impl ControllerChannel {
    pub fn new(node: Arc<ClusterNode>) -> Self {
        let node_timeout = node.request_timeout;
        Self {
            node,
            stream: None,
            target: None,
            next_bootstrap: 0,
            any: false,
            timeout: node_timeout,
        }
    }

    /// The same channel with another bound per call (forwarded admin requests wait longer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the bound of the next calls.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Drops the connection and its target: the next call picks the active controller again.
    pub fn disconnect(&mut self) {
        self.reset(None);
    }

    fn pick(&mut self) -> Option<SocketAddr> {
        if let Some(target) = self.target {
            return Some(target);
        }
        let leader = self.node.active_controller();
        let hinted = self
            .node
            .settings
            .voters
            .iter()
            .find(|v| i64::from(leader) == i64::try_from(v.node_id).unwrap_or(-2))
            .map(|v| v.addr);
        let bootstrap = &self.node.settings.bootstrap;
        let target = hinted.or_else(|| {
            let addr = bootstrap
                .get(self.next_bootstrap % bootstrap.len().max(1))
                .copied();
            self.next_bootstrap = self.next_bootstrap.wrapping_add(1);
            addr
        });
        self.target = target;
        target
    }

    fn reset(&mut self, hint: Option<SocketAddr>) {
        self.stream = None;
        self.target = hint;
    }

    /// `target` did not answer: drop the connection. A broker-only node learns the active
    /// controller from answers only, so when `target` is where the one it knows lives, it
    /// forgets it: the next call asks the bootstrap controllers, whose NOT_CONTROLLER answers
    /// name the new one (else it would ask a dead controller forever).
    fn lost(&mut self, target: SocketAddr) {
        self.reset(None);
        if self.node.quorum.is_some() {
            return;
        }
        let known = self.node.known_controller.load(Ordering::Acquire);
        let lives_there = self
            .node
            .settings
            .voters
            .iter()
            .any(|v| i64::try_from(v.node_id) == Ok(known) && v.addr == target);
        if lives_there {
            let _ = self.node.known_controller.compare_exchange(
                known,
                -1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// One call; Err when the controller could not be reached or is not the active one (the
    /// next call tries the hinted leader or the next bootstrap address).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        kind: u8,
        request: &Req,
    ) -> Result<Resp, LifecycleError> {
        let target = self
            .pick()
            .ok_or_else(|| LifecycleError::Rejected("no controller address".into()))?;
        if self.stream.is_none() {
            // TLS when the controller listener is SSL (`controller_listener`).
            let tls = super::controller_listener::client_tls();
            let connect = SecureStream::connect(target, tls);
            match compio::time::timeout(self.timeout, connect).await {
                Ok(Ok(stream)) => {
                    self.stream = Some(stream);
                }
                Ok(Err(e)) => {
                    self.lost(target);
                    return Err(LifecycleError::Rejected(format!("connect {target}: {e}")));
                }
                Err(_) => {
                    self.lost(target);
                    return Err(LifecycleError::Rejected(format!(
                        "connect {target}: timed out"
                    )));
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(LifecycleError::Rejected("no connection".into()));
        };
        let (max, timeout) = (self.node.request_max_bytes, self.timeout);
        let answer: std::io::Result<Answer<Resp>> =
            call_controller(stream, kind, request, max, timeout).await;
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(LifecycleError::NotController {
                leader_id,
                leader_addr,
            })) if !self.any => {
                if let Some(id) = leader_id {
                    self.node
                        .known_controller
                        .store(i64::try_from(id).unwrap_or(-1), Ordering::Release);
                }
                // This node's own address of the named leader first (its
                // `controller.quorum.voters`, as Kafka's brokers do): the answering node's
                // address for it may be no route from here.
                let own = leader_id.and_then(|id| {
                    self.node
                        .settings
                        .voters
                        .iter()
                        .find(|v| v.node_id == id)
                        .map(|v| v.addr)
                });
                self.reset(own.or_else(|| leader_addr.and_then(|a| a.parse().ok())));
                Err(LifecycleError::NotController {
                    leader_id,
                    leader_addr: None,
                })
            }
            Ok(Err(e)) => Err(e),
            Err(e) => {
                self.lost(target);
                Err(LifecycleError::Rejected(format!(
                    "controller {target}: {e}"
                )))
            }
        }
    }
}

/// Registers, then heartbeats, forever (see the module documentation).
pub async fn run(cluster_synced: &Cell<u64>, node: Arc<ClusterNode>, request: RegistrationRequest) {
    let interval = Duration::from_millis(node.settings.heartbeat_interval_ms);
    let mut channel = ControllerChannel::new(node.clone());
    let mut last_log: Option<Instant> = None;
    let mut should_log = move || {
        let due = last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            last_log = Some(Instant::now());
        }
        due
    };
    loop {
        let epoch = match channel
            .call::<_, i64>(KIND_BROKER_REGISTRATION, &request)
            .await
        {
            Ok(epoch) => epoch,
            Err(LifecycleError::DuplicateBrokerRegistration(id)) => {
                if should_log() {
                    tracing::warn!(
                        node_id = id,
                        "registration refused: node.id {id} is already registered by a live \
                         broker (DUPLICATE_BROKER_REGISTRATION: another process with this \
                         node.id, or this node's previous process until its session expires); \
                         retrying"
                    );
                }
                compio::time::sleep(interval).await;
                continue;
            }
            Err(e @ LifecycleError::InconsistentClusterId { .. }) => {
                if should_log() {
                    tracing::error!(error = %e, "registration refused; retrying");
                }
                compio::time::sleep(interval).await;
                continue;
            }
            Err(e) => {
                if should_log() {
                    tracing::warn!(error = %e, "cannot register with the controller quorum yet; retrying");
                }
                compio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        node.broker_epoch.store(epoch, Ordering::Release);
        tracing::info!(
            broker_epoch = epoch,
            "registered with the active controller"
        );
        heartbeat_until_stale(cluster_synced, &node, &mut channel, epoch, interval).await;
        node.broker_epoch.store(-1, Ordering::Release);
    }
}

/// Heartbeats with `epoch` until the controller no longer knows it.
async fn heartbeat_until_stale(
    cluster_synced: &Cell<u64>,
    node: &ClusterNode,
    channel: &mut ControllerChannel,
    epoch: i64,
    interval: Duration,
) {
    let mut failing_since: Option<Instant> = None;
    loop {
        let request = HeartbeatRequest {
            broker_id: node.node_id(),
            broker_epoch: epoch,
            metadata_offset: cluster_synced.get(),
            want_shutdown: false,
        };
        let started = Instant::now();
        match channel
            .call::<_, HeartbeatResponse>(KIND_BROKER_HEARTBEAT, &request)
            .await
        {
            Ok(response) => {
                failing_since = None;
                node.controller_offset
                    .fetch_max(response.metadata_offset, Ordering::AcqRel);
                let fenced = i64::from(response.is_fenced);
                if node.fenced.swap(fenced, Ordering::AcqRel) != fenced {
                    tracing::info!(fenced = response.is_fenced, "broker fencing state");
                }
                // A fenced broker asks again soon: it is waiting to be unfenced.
                let wait = match response.is_fenced {
                    true => interval.min(Duration::from_millis(100)),
                    false => interval,
                };
                compio::time::sleep(wait.saturating_sub(started.elapsed())).await;
            }
            Err(LifecycleError::StaleBrokerEpoch) => {
                tracing::warn!("the controller does not know this broker epoch; registering again");
                return;
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= LOG_EVERY {
                    tracing::warn!(error = %e, "heartbeats to the controller quorum failing; retrying");
                    failing_since = Some(Instant::now());
                }
                compio::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}

/// Kafka's controlled shutdown (`BrokerLifecycleManager.beginControlledShutdown`): a heartbeat
/// with `want_shutdown`, so the controller moves leadership of this broker's partitions to
/// other ISR members and takes it out of every ISR (by fencing it) now, instead of after
/// `broker.session.timeout.ms`; then, as Kafka's broker waits for `shouldShutDown`, this
/// broker waits until it applied that change itself (its partitions resign: acks=all produces
/// still waiting get NOT_LEADER_OR_FOLLOWER, which clients retry at the new leader). Reaching
/// the controller is bounded by `controller.quorum.request.timeout.ms` (a cluster without a
/// quorum, e.g. its last node stopping, answers nothing), all of it by `timeout`
/// (`controlled.shutdown.timeout.ms`): past either the broker stops anyway.
pub async fn controlled_shutdown(
    cluster_synced: &Cell<u64>,
    node: Arc<ClusterNode>,
    timeout: Duration,
) {
    let epoch = node.broker_epoch();
    if epoch < 0 {
        return;
    }
    let request = HeartbeatRequest {
        broker_id: node.node_id(),
        broker_epoch: epoch,
        metadata_offset: cluster_synced.get(),
        want_shutdown: true,
    };
    let reach = timeout.min(node.request_timeout);
    let mut channel = ControllerChannel::new(node);
    let started = Instant::now();
    let attempt = async {
        loop {
            match channel
                .call::<_, HeartbeatResponse>(KIND_BROKER_HEARTBEAT, &request)
                .await
            {
                Ok(response) => return Some(response.metadata_offset),
                Err(LifecycleError::StaleBrokerEpoch) => return None,
                Err(_) => compio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    let fenced_at = match compio::time::timeout(reach, attempt).await {
        Ok(Some(offset)) => offset,
        Ok(None) => {
            tracing::info!("controlled shutdown: the controller had already fenced this broker");
            return;
        }
        Err(_) => {
            tracing::warn!("controlled shutdown: the controller did not answer; stopping anyway");
            return;
        }
    };
    while cluster_synced.get() < fenced_at && started.elapsed() < timeout {
        compio::time::sleep(Duration::from_millis(5)).await;
    }
    tracing::info!(
        applied = cluster_synced.get() >= fenced_at,
        took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "controlled shutdown: the controller fenced this broker and moved its leaderships"
    );
}

/// A broker-only node: keeps its committed image current from the controllers, by long
/// polls (the controller answers as soon as something newer is committed, or `Unchanged`
/// after the wait), so new metadata arrives within a round trip and an idle cluster costs
/// about two calls a second.
pub async fn fetch_images(node: Arc<ClusterNode>) {
    let mut channel = ControllerChannel::new(node.clone());
    channel.any = true;
    let max_wait = IMAGE_FETCH_WAIT_MAX.min(node.request_timeout / 2);
    let request = |known_offset| FetchImageWaitRequest {
        known_offset,
        max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
    };
    loop {
        let known = node.image.offset();
        match channel
            .call::<_, FetchImageResponse>(KIND_FETCH_IMAGE_WAIT, &request(known))
            .await
        {
            Ok(FetchImageResponse::Image(bytes)) => match SharedImage::decode(&bytes) {
                Ok(state) if state.offset > node.image.offset() => node.image.replace(state),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "metadata image from the controller does not decode");
                    compio::time::sleep(RETRY_BACKOFF).await;
                }
            },
            Ok(FetchImageResponse::Entries { offset, entries }) => {
                // Entries after an offset this node may have passed meanwhile apply only once.
                if node.image.offset() == known {
                    node.image.apply_entries(&entries, offset);
                }
            }
            Ok(FetchImageResponse::Unchanged) => {}
            Err(_) => compio::time::sleep(RETRY_BACKOFF).await,
        }
    }
}

/// Kafka's AllocateProducerIds from this broker to the active controller.
pub async fn allocate_producer_ids(node: Arc<ClusterNode>) -> Result<ProducerIdBlock, String> {
    let mut channel = ControllerChannel::new(node.clone());
    let mut last = String::from("not registered yet");
    for _ in 0..10 {
        let epoch = node.broker_epoch();
        if epoch < 0 {
            compio::time::sleep(RETRY_BACKOFF).await;
            continue;
        }
        let request = AllocateProducerIdsRequest {
            broker_id: node.node_id(),
            broker_epoch: epoch,
        };
        match channel
            .call::<_, ProducerIdBlock>(KIND_ALLOCATE_PRODUCER_IDS, &request)
            .await
        {
            Ok(block) => return Ok(block),
            Err(e) => last = e.to_string(),
        }
        compio::time::sleep(RETRY_BACKOFF).await;
    }
    Err(last)
}

/// Auto-creation of `names` by a broker that is not the active controller: asks the active
/// controller (as Kafka's brokers forward CreateTopics), then waits (bounded) until this node
/// applied the topics, so the Metadata answer that triggered it can already name them.
pub async fn auto_create_at_controller(
    node: Arc<ClusterNode>,
    names: Vec<String>,
    partitions: i32,
    replication_factor: i16,
) -> Vec<Result<(), crate::cluster::topics::TopicError>> {
    use crate::cluster::topics::TopicError;
    let request = AutoCreateRequest {
        names: names.clone(),
        partitions,
        replication_factor,
    };
    let mut channel = ControllerChannel::new(node.clone());
    let mut last = LifecycleError::Rejected("no controller".into());
    let mut answer: Option<AutoCreateResponse> = None;
    for _ in 0..10 {
        match channel
            .call::<_, AutoCreateResponse>(KIND_AUTO_CREATE_TOPICS, &request)
            .await
        {
            Ok(response) => {
                answer = Some(response);
                break;
            }
            Err(e) => last = e,
        }
        compio::time::sleep(RETRY_BACKOFF).await;
    }
    let Some(response) = answer else {
        tracing::debug!(error = %last, "auto-creation at the active controller failed");
        return names
            .iter()
            .map(|_| Err(TopicError::NotController))
            .collect();
    };
    let deadline = Instant::now() + node.request_timeout;
    while node.applied_offset.load(Ordering::Acquire) < response.offset && Instant::now() < deadline
    {
        compio::time::sleep(Duration::from_millis(5)).await;
    }
    names
        .into_iter()
        .zip(response.outcomes)
        .map(|(name, outcome)| match outcome {
            AutoCreateOutcome::Created => Ok(()),
            AutoCreateOutcome::AlreadyExists => Err(TopicError::AlreadyExists(name)),
            AutoCreateOutcome::Invalid(_) => Err(TopicError::InvalidName(name)),
            AutoCreateOutcome::InvalidReplicationFactor(m) => {
                Err(TopicError::InvalidReplicationFactor(m))
            }
        })
        .collect()
}
