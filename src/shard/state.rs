//! One shard's state: what its tasks share (`Shard`), and what every shard starts from
//! (`Boot`).
//!
//! Invariants: a `Shard` lives behind an `Rc` on its own thread, never shared across threads;
//! other shards are reached only through the mesh.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use shards::{Mesh, ShardId, Shutdown};

use super::ShardMsg;
use crate::config::BrokerConfig;
use crate::handlers::fetch_session::FetchSessions;
use crate::partition::PartitionService;
use crate::topics;

/// What every shard starts from (built once in `run`).
pub struct Boot {
    pub config: Arc<BrokerConfig>,
    pub default_log: storage::LogConfig,
    /// The resolved listen address (port 0 already replaced by the real port).
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Every listener (the first is `listen` above), bound by every shard.
    pub listeners: Vec<BootListener>,
    /// The authorizer's settings (its ACLs are in each shard's image; see `security::acl_store`).
    pub authorizer: Arc<crate::security::acl_store::Authorizer>,
    /// Client quotas and their rates, shared by every shard (see `quotas`).
    pub quotas: Arc<crate::quotas::QuotaManager>,
    /// Listeners' dynamic configs (certificate reload), shared by every shard.
    pub listener_configs: Arc<crate::security::listener_configs::ListenerConfigs>,
    /// The previous process closed every log (its clean-shutdown marker was there).
    pub previous_shutdown_clean: bool,
    /// Set by a shard whose logs did not all close; then no clean-shutdown marker is written.
    pub close_failed: std::sync::atomic::AtomicBool,
    /// This process as a KRaft node (`process.roles` set); None: the single node of old.
    pub cluster: Option<Arc<crate::cluster::node::ClusterNode>>,
    /// The listener forwarded requests' sessions report: the first listener, or on a
    /// controller-only node (no client listener) its controller listener.
    pub forwarded_context: Arc<crate::security::session::ListenerContext>,
    /// The data directory's `replication-offset-checkpoint`, shared by the shards.
    pub hw_checkpoint: Arc<crate::replication::checkpoint::HighWatermarkCheckpoint>,
    /// Triggered once the broker stops serving connections: at SIGTERM for a single node,
    /// after the controlled shutdown moved leadership away for a KRaft broker (Kafka keeps its
    /// socket server up until then, so clients see NOT_LEADER_OR_FOLLOWER redirects, not
    /// closed connections).
    pub stop_serving: shards::Shutdown,
}

/// One listener to bind: its resolved address and what its connections see.
pub struct BootListener {
    pub bind: SocketAddr,
    pub context: Arc<crate::security::session::ListenerContext>,
}

/// Per-shard state shared by the shard's tasks.
pub struct Shard {
    pub id: ShardId,
    pub mesh: Mesh<ShardMsg>,
    /// Which shard owns each partition (see `router::placement`).
    pub placement: crate::router::placement::PlacementTable,
    pub config: Arc<BrokerConfig>,
    pub default_log: storage::LogConfig,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// See `Boot::previous_shutdown_clean`; how partition logs are opened.
    pub previous_shutdown_clean: bool,
    /// The metadata image (brokers, topics, partition registrations, configs, producer-id
    /// blocks; see `cluster`): the controller's on shard 0, a copy kept by the same records on
    /// the others. (Named for what it held before; topic look-ups read as before.)
    pub topics: RefCell<crate::cluster::MetadataImage>,
    /// Dynamic broker configs (topic config defaults changed at run time; see
    /// `topics::dynamic`): the image's BROKER configs for this node, kept beside it for the
    /// readers (updated by `cluster::controller::adopt_records`).
    pub dynamic_configs: RefCell<topics::dynamic::DynamicConfigs>,
    /// The partition service: the partitions this shard leads (see `partition`).
    pub partitions: PartitionService,
    pub fetch_sessions: RefCell<FetchSessions>,
    /// The consumer groups this shard coordinates (see `groups`).
    pub groups: crate::groups::Coordinator,
    /// The transactional ids this shard coordinates (see `txn`).
    pub txns: crate::txn::Coordinator,
    /// Producer ids for InitProducerId (this shard's block; shard 0 also persists the counter).
    pub producer_ids: crate::producers::IdAllocator,
    /// Held by shard 0 while it changes and persists the registry.
    pub registry_lock: futures_util::lock::Mutex<()>,
    pub shutdown: Shutdown,
    /// Request, byte and fsync metrics recorded on this shard (see `metrics`).
    pub metrics: Rc<crate::metrics::ShardMetrics>,
    /// The authorizer's settings (it checks the ACLs of this shard's image).
    pub authorizer: Arc<crate::security::acl_store::Authorizer>,
    /// Client quotas (shared by every shard).
    pub quotas: Arc<crate::quotas::QuotaManager>,
    /// Listeners' dynamic configs (shared by every shard).
    pub listener_configs: Arc<crate::security::listener_configs::ListenerConfigs>,
    /// Run on this shard after it adopted new or changed topics (and opened their partitions
    /// it owns): how modules above the registry hear of topics without the registry naming
    /// them.
    pub on_topics_adopted: Vec<TopicsAdopted>,
    /// Run on this shard after it removed deleted topics (names): how modules above the
    /// registry drop what they keep per topic (the group coordinator's committed offsets).
    pub on_topics_deleted: Vec<TopicsDeleted>,
    pub(super) connections: Cell<usize>,
    /// See `Boot::cluster`.
    pub cluster: Option<Arc<crate::cluster::node::ClusterNode>>,
    /// Shard 0 of a KRaft node: the metadata offset every shard's image reflects
    /// (`cluster::follow`).
    pub cluster_synced: Cell<u64>,
    /// The replica fetchers of the partitions this shard follows (`cluster::replicas`).
    pub replica_fetchers: crate::cluster::replica_fetchers::ReplicaFetchers,
    /// See `Boot::hw_checkpoint`.
    pub hw_checkpoint: Arc<crate::replication::checkpoint::HighWatermarkCheckpoint>,
    /// See `Boot::stop_serving`: connections and accepts end on it, not on `shutdown`.
    pub stop_serving: shards::Shutdown,
}

/// A hook run after a shard adopted topics (see `Shard::on_topics_adopted`).
pub type TopicsAdopted = for<'a> fn(&'a Shard, &'a [topics::TopicMeta]) -> LocalBoxFuture<'a, ()>;

/// A hook run after a shard removed deleted topics (see `Shard::on_topics_deleted`).
pub type TopicsDeleted =
    for<'a> fn(&'a Shard, &'a std::collections::HashSet<String>) -> LocalBoxFuture<'a, ()>;

impl Shard {
    /// The controller id clients are told (Metadata, DescribeCluster): on a KRaft node a random
    /// alive (unfenced) broker, as Kafka's `getRandomAliveBrokerId` (clients cannot reach the
    /// controller quorum; brokers forward admin requests to it, `handlers::forward`), else the
    /// image's choice. -1 when no broker is alive.
    pub fn controller_id(&self) -> i32 {
        let image = self.topics.borrow();
        if self.cluster.is_none() {
            return image.controller_id();
        }
        let alive: Vec<i32> = image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect();
        let pick = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize / 1000);
        match alive.len() {
            0 => -1,
            n => alive.get(pick % n).copied().unwrap_or(-1),
        }
    }

    /// A user's SCRAM credential for a mechanism, from this shard's metadata image.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: crate::security::scram::Mechanism,
    ) -> Option<crate::security::scram::Credential> {
        self.topics
            .borrow()
            .security()
            .scram_credential(user, mechanism)
    }

    pub fn connection_count(&self) -> usize {
        self.connections.get()
    }

    /// This shard's metrics now, with its gauges (connections, partitions, their fsyncs).
    pub fn metrics_snapshot(&self) -> crate::metrics::ShardSnapshot {
        let partitions = self.partitions.all();
        let gauges = crate::metrics::Gauges {
            connections: self.connection_count() as u64,
            partitions_owned: partitions.len() as u64,
            log_fsyncs: partitions.iter().map(|p| p.storage().fsync_count()).sum(),
        };
        self.metrics.snapshot(self.id.0, gauges)
    }
}

/// Counts a live connection for the drain at shutdown; decrements on drop.
pub struct ConnectionGuard(Rc<Shard>);

impl ConnectionGuard {
    pub(super) fn new(shard: Rc<Shard>) -> Self {
        shard.connections.set(shard.connections.get() + 1);
        Self(shard)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0
            .connections
            .set(self.0.connections.get().saturating_sub(1));
    }
}
