//! This process as a KRaft node (`process.roles` set): its settings, its committed image
//! (`SharedImage`), and, with the controller role, its quorum member. Built once in `run`
//! before the shards start, shared by every shard through `Boot`.
//!
//! Invariants: a controller node's image is driven by its quorum member (the committed log,
//! snapshot first at start); a broker-only node's by the committed images it fetches from the
//! controller (`heartbeat::fetch_images`). Either way shard 0 brings every shard up to it
//! (`follow`). The active controller is the quorum's leader; only it commits changes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::kraft::{self, KraftSettings};
use super::quorum::lifecycle::ForwardedCall;
use super::quorum::shared_image::SharedImage;
use super::quorum::{MetadataRecord, Quorum, QuorumError, QuorumHandle};
use crate::config::BrokerConfig;

/// See the module documentation.
pub struct ClusterNode {
    pub settings: KraftSettings,
    pub image: Arc<SharedImage>,
    pub quorum: Option<QuorumHandle>,
    /// The broker epoch of this node's registration (-1 until registered).
    pub broker_epoch: AtomicI64,
    /// 1 while the controller reports this broker fenced, 0 once unfenced, -1 before.
    pub fenced: AtomicI64,
    /// The active controller a broker-only node last heard of (-1: none).
    pub known_controller: AtomicI64,
    pub request_max_bytes: usize,
    pub request_timeout: Duration,
    /// The metadata offset every shard of this node applied (`follow`; shard 0's `cluster_synced`
    /// on shard 0), readable from any shard.
    pub applied_offset: std::sync::atomic::AtomicU64,
    /// The active controller's committed metadata offset, as its last heartbeat answer said.
    pub controller_offset: std::sync::atomic::AtomicU64,
    /// Envelopes for shard 0 to run (a controller node; taken once by shard 0).
    pub forwarded: std::sync::Mutex<Option<flume::Receiver<ForwardedCall>>>,
    /// Requests this node forwarded and awaits (`forwarded.requests.max.in.flight`).
    pub forwarding_in_flight: std::sync::atomic::AtomicUsize,
    pub forwarding_max_in_flight: usize,
    /// `controller.socket.timeout.ms`: the bound of one attempt of a forwarded request.
    pub forwarding_timeout: Duration,
    /// `request.timeout.ms`: how long a forwarded request is retried across controller changes.
    pub forwarding_retry_timeout: Duration,
}

impl ClusterNode {
    /// The node of `config`, None without `process.roles`. Starts the quorum member of a
    /// controller node (its snapshot and log are read before this returns).
    pub fn start(config: &BrokerConfig) -> Result<Option<Arc<Self>>, String> {
        let Some(settings) = kraft::settings(config).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let image = Arc::new(SharedImage::default());
        let in_flight = config.controller.forwarded_requests_max_in_flight.max(1);
        let (forwarded_tx, forwarded_rx) = flume::bounded(in_flight);
        let quorum = match settings.roles.controller {
            true => {
                let quorum_config = kraft::quorum_config(&settings, config);
                let session = Duration::from_millis(settings.session_timeout_ms);
                Some(
                    Quorum::start_controller(quorum_config, image.clone(), session, forwarded_tx)
                        .map_err(|e| e.to_string())?,
                )
            }
            false => None,
        };
        // Every controller runs forwarded requests on its shard 0 (a controller-only node
        // runs one shard without client listeners for it); a broker-only node has no quorum.
        let forwarded = quorum.is_some().then_some(forwarded_rx);
        tracing::info!(
            node_id = settings.node_id,
            broker = settings.roles.broker,
            controller = settings.roles.controller,
            voters = settings.voters.len(),
            "KRaft node"
        );
        Ok(Some(Arc::new(Self {
            settings,
            image,
            quorum,
            broker_epoch: AtomicI64::new(-1),
            fenced: AtomicI64::new(-1),
            known_controller: AtomicI64::new(-1),
            request_max_bytes: 100 * 1024 * 1024,
            request_timeout: Duration::from_millis(
                config
                    .controller
                    .controller_quorum_request_timeout_ms
                    .max(1),
            ),
            applied_offset: std::sync::atomic::AtomicU64::new(0),
            controller_offset: std::sync::atomic::AtomicU64::new(0),
            forwarded: std::sync::Mutex::new(forwarded),
            forwarding_in_flight: std::sync::atomic::AtomicUsize::new(0),
            forwarding_max_in_flight: in_flight,
            forwarding_timeout: Duration::from_millis(
                config.controller.controller_socket_timeout_ms.max(1),
            ),
            forwarding_retry_timeout: Duration::from_millis(
                config.controller.request_timeout_ms.max(1),
            ),
        })))
    }

    pub fn node_id(&self) -> i32 {
        self.settings.node_id
    }

    /// Whether this node's quorum member leads (only the active controller commits).
    pub fn is_active_controller(&self) -> bool {
        let own = u64::try_from(self.node_id()).ok();
        self.quorum
            .as_ref()
            .is_some_and(|q| q.leader() == own && own.is_some())
    }

    /// The active controller's node id as this node knows it; -1 when none is known.
    pub fn active_controller(&self) -> i32 {
        match &self.quorum {
            Some(q) => q
                .leader()
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(-1),
            None => i32::try_from(self.known_controller.load(Ordering::Acquire)).unwrap_or(-1),
        }
    }

    /// Commits `records` through the quorum; the metadata offset once applied on this node.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        match &self.quorum {
            Some(q) if self.is_active_controller() => q.propose(records).await,
            Some(q) => Err(QuorumError::NotController {
                leader_id: q.leader(),
            }),
            None => Err(QuorumError::NotController { leader_id: None }),
        }
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }
}
