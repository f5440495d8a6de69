//! One shard's life: load the topic table, open the partitions it owns, listen on the shared
//! SO_REUSEPORT address, serve connections and the inbox, and on shutdown stop accepting,
//! let in-flight requests finish (bounded by `shutdown.timeout.ms`) and close every log.
//!
//! Invariants: all per-shard state lives in one `Shard` behind an `Rc` (never shared across
//! threads); other shards are reached only through the mesh; "ready" is logged once, by shard 0,
//! after every shard answered a ping, which each does only once it is listening.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::{Inbox, Mesh, Placement, ShardContext, ShardId, Shutdown};

use crate::config::BrokerConfig;
use crate::handlers::fetch_session::FetchSessions;
use crate::partition::PartitionMap;
use crate::router::{self, ShardMsg};
use crate::topics::{self, TopicTable};

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
    /// SCRAM credentials, shared by every shard (see `security::scram`).
    pub credentials: Arc<crate::security::scram::CredentialStore>,
    /// The authorizer and its ACLs, shared by every shard (see `security::acl_store`).
    pub authorizer: Arc<crate::security::acl_store::Authorizer>,
    /// Client quotas and their rates, shared by every shard (see `quotas`).
    pub quotas: Arc<crate::quotas::QuotaManager>,
    /// Listeners' dynamic configs (certificate reload), shared by every shard.
    pub listener_configs: Arc<crate::security::listener_configs::ListenerConfigs>,
    /// The previous process closed every log (its clean-shutdown marker was there).
    pub previous_shutdown_clean: bool,
    /// Set by a shard whose logs did not all close; then no clean-shutdown marker is written.
    pub close_failed: std::sync::atomic::AtomicBool,
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
    pub placement: Placement,
    pub config: Arc<BrokerConfig>,
    pub default_log: storage::LogConfig,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// See `Boot::previous_shutdown_clean`; how partition logs are opened.
    pub previous_shutdown_clean: bool,
    pub topics: RefCell<TopicTable>,
    /// Dynamic broker configs (topic config defaults changed at run time; see
    /// `topics::dynamic`); authoritative on shard 0, copies elsewhere.
    pub dynamic_configs: RefCell<topics::dynamic::DynamicConfigs>,
    pub partitions: PartitionMap,
    pub fetch_sessions: RefCell<FetchSessions>,
    /// The consumer groups this shard coordinates (see `groups`).
    pub groups: crate::groups::Coordinator,
    /// Producer ids for InitProducerId (this shard's block; shard 0 also persists the counter).
    pub producer_ids: crate::producers::IdAllocator,
    /// Held by shard 0 while it changes and persists the registry.
    pub registry_lock: futures_util::lock::Mutex<()>,
    pub shutdown: Shutdown,
    /// Request, byte and fsync metrics recorded on this shard (see `metrics`).
    pub metrics: crate::metrics::ShardMetrics,
    /// SCRAM credentials (shared by every shard).
    pub credentials: Arc<crate::security::scram::CredentialStore>,
    /// The authorizer and its ACLs (shared by every shard).
    pub authorizer: Arc<crate::security::acl_store::Authorizer>,
    /// Client quotas (shared by every shard).
    pub quotas: Arc<crate::quotas::QuotaManager>,
    /// Listeners' dynamic configs (shared by every shard).
    pub listener_configs: Arc<crate::security::listener_configs::ListenerConfigs>,
    connections: Cell<usize>,
}

impl Shard {
    pub fn connection_count(&self) -> usize {
        self.connections.get()
    }
}

/// Counts a live connection for the drain at shutdown; decrements on drop.
pub struct ConnectionGuard(Rc<Shard>);

impl ConnectionGuard {
    fn new(shard: Rc<Shard>) -> Self {
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

pub async fn shard_main(boot: Arc<Boot>, ctx: ShardContext<ShardMsg>, inbox: Inbox<ShardMsg>) {
    storage::set_sealed_segment_files_open_max(boot.config.log_sealed_segment_files_open_max);
    let table = topics::load(&boot.config.data_dir)
        .unwrap_or_else(|e| shards::fatal(format!("cannot load topic registry: {e}")));
    let dynamic_configs = topics::dynamic::load(&boot.config.data_dir)
        .unwrap_or_else(|e| shards::fatal(format!("cannot load dynamic broker configs: {e}")));
    let shard = Rc::new(Shard {
        id: ctx.id,
        placement: Placement::new(ctx.mesh.shard_count()),
        mesh: ctx.mesh,
        config: boot.config.clone(),
        default_log: boot.default_log.clone(),
        advertised_host: boot.advertised_host.clone(),
        advertised_port: boot.advertised_port,
        previous_shutdown_clean: boot.previous_shutdown_clean,
        groups: crate::groups::Coordinator::new(&boot.config),
        fetch_sessions: RefCell::new(FetchSessions::new(
            boot.config.fetch_session_cache_slots,
            boot.config.fetch_session_partitions_max,
            ctx.id,
        )),
        topics: RefCell::new(table),
        dynamic_configs: RefCell::new(dynamic_configs),
        partitions: PartitionMap::default(),
        producer_ids: crate::producers::IdAllocator::new(boot.config.data_dir.clone()),
        registry_lock: futures_util::lock::Mutex::new(()),
        shutdown: ctx.shutdown,
        metrics: crate::metrics::ShardMetrics::default(),
        credentials: boot.credentials.clone(),
        authorizer: boot.authorizer.clone(),
        quotas: boot.quotas.clone(),
        listener_configs: boot.listener_configs.clone(),
        connections: Cell::new(0),
    });
    if shard.id == router::REGISTRY_SHARD {
        router::admin::sweep_deleted(&shard.config.data_dir);
    }
    let metas: Vec<_> = shard.topics.borrow().iter().cloned().collect();
    router::local::open_owned(&shard, &metas).await;
    crate::groups::start(&shard).await;
    let listeners: Vec<_> = boot
        .listeners
        .iter()
        .map(|l| {
            let socket = shards::reuseport_listener(l.bind)
                .unwrap_or_else(|e| shards::fatal(format!("cannot listen on {}: {e}", l.bind)));
            (socket, l.context.clone())
        })
        .collect();
    let inbox_task = compio::runtime::spawn(serve_inbox(shard.clone(), inbox));
    let admin_task = crate::metrics::http::start(&shard).await;
    if shard.id == router::REGISTRY_SHARD {
        crate::groups::ensure_offsets_topic(&shard).await;
        announce_ready(&shard, &boot).await;
    }
    let retention_task = compio::runtime::spawn(retention_loop(shard.clone()));
    let durability_task = compio::runtime::spawn(durability_watch(shard.clone()));
    let groups_task = compio::runtime::spawn(crate::groups::coordinator::timer_loop(shard.clone()));
    let cleaner_task = compio::runtime::spawn(crate::log_cleaner::run(shard.clone()));
    let accepts = listeners
        .iter()
        .map(|(socket, context)| Box::pin(accept_loop(&shard, socket, context)));
    futures_util::future::join_all(accepts).await;
    drop(listeners);
    drain_connections(&shard).await;
    drop(admin_task);
    drop(retention_task);
    drop(durability_task);
    drop(groups_task);
    drop(cleaner_task);
    drop(inbox_task);
    if !close_logs(&shard).await {
        boot.close_failed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn announce_ready(shard: &Shard, boot: &Boot) {
    let listen = boot.listen;
    let pings = shard
        .mesh
        .shards()
        .map(|id| shard.mesh.call(id, |reply| ShardMsg::Ping { reply }));
    for result in futures_util::future::join_all(pings).await {
        if let Err(e) = result {
            shards::fatal(format!("a shard failed to start: {e}"));
        }
    }
    for l in &boot.listeners {
        tracing::info!(
            "listener name={} security.protocol={} listening={} advertised={}:{}",
            l.context.name,
            l.context.protocol.name(),
            l.bind,
            l.context.advertised_host,
            l.context.advertised_port
        );
    }
    tracing::info!(
        "ready listening={listen} shards={} topics={}",
        shard.mesh.shard_count(),
        shard.topics.borrow().len()
    );
}

async fn serve_inbox(shard: Rc<Shard>, inbox: Inbox<ShardMsg>) {
    while let Some(msg) = inbox.recv().await {
        compio::runtime::spawn(router::local::serve(shard.clone(), msg)).detach();
    }
}

async fn accept_loop(
    shard: &Rc<Shard>,
    listener: &compio::net::TcpListener,
    context: &Arc<crate::security::session::ListenerContext>,
) {
    loop {
        let accept = Box::pin(listener.accept());
        let stop = Box::pin(shard.shutdown.wait());
        let (stream, peer) = match futures_util::future::select(accept, stop).await {
            futures_util::future::Either::Left((Ok(accepted), _)) => accepted,
            futures_util::future::Either::Left((Err(e), _)) => {
                tracing::warn!(error = %e, "accept failed");
                // EMFILE and friends: back off instead of spinning on the error.
                compio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            futures_util::future::Either::Right(_) => return,
        };
        if shard.connection_count() >= shard.config.max_connections_per_shard {
            tracing::warn!(%peer, "connection limit reached, closing");
            continue;
        }
        let guard = ConnectionGuard::new(shard.clone());
        let shard = shard.clone();
        let context = context.clone();
        compio::runtime::spawn(async move {
            crate::net::conn::serve(shard, stream, peer, context).await;
            drop(guard);
        })
        .detach();
    }
}

async fn drain_connections(shard: &Shard) {
    let deadline = Instant::now() + Duration::from_millis(shard.config.shutdown_timeout_ms);
    while shard.connection_count() > 0 && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(10)).await;
    }
    if shard.connection_count() > 0 {
        tracing::warn!(shard = %shard.id, open = shard.connection_count(), "shutdown timeout, closing anyway");
    }
}

/// Partitions of one shard closed at the same time: their fsyncs are independent io_uring
/// operations, and an idle partition's close does no I/O at all.
const CLOSES_IN_FLIGHT_MAX: usize = 64;

/// Closes every log of the shard; false if any failed to close.
async fn close_logs(shard: &Shard) -> bool {
    use futures_util::stream::{self, StreamExt};
    let started = Instant::now();
    let partitions = shard.partitions.drain();
    let count = partitions.len();
    let failures = stream::iter(partitions)
        .map(|partition| async move {
            partition.notify_appended();
            match partition.log.close().await {
                Ok(()) => 0usize,
                Err(e) => {
                    tracing::error!(partition = %partition.tp.dir_name(), error = %e, "closing log failed");
                    1
                }
            }
        })
        .buffer_unordered(CLOSES_IN_FLIGHT_MAX)
        .fold(0usize, |sum, failed| async move { sum + failed })
        .await;
    tracing::info!(shard = %shard.id, partitions = count, elapsed_ms = started.elapsed().as_millis() as u64, "logs closed");
    failures == 0
}

/// How often each shard looks for a log whose background fsync failed.
const DURABILITY_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// A flush-policy fsync runs in the background with no producer waiting on it; if it fails, the
/// log refuses further appends, but nothing would stop the process until the next append to
/// that partition. The disk can no longer be trusted, so stop the whole broker now.
async fn durability_watch(shard: Rc<Shard>) {
    loop {
        compio::time::sleep(DURABILITY_CHECK_INTERVAL).await;
        for partition in shard.partitions.all() {
            if let Some(e) = partition.log.durability_error() {
                shards::fatal(format!(
                    "storage I/O error on {}: {e}",
                    partition.tp.dir_name()
                ));
            }
        }
    }
}

async fn retention_loop(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.retention_check_interval_ms);
    loop {
        compio::time::sleep(interval).await;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        for partition in shard.partitions.all() {
            // cleanup.policy=compact alone keeps data by key, not by time or size.
            let delete = shard
                .topics
                .borrow()
                .get(&partition.tp.topic)
                .is_none_or(|m| crate::topics::compaction::policy(&m.configs).delete);
            if !delete {
                continue;
            }
            match partition.log.apply_retention(now_ms).await {
                Ok(0) => {}
                Ok(_) => {
                    let start = partition.log.log_start_offset().0;
                    partition.producers.borrow_mut().evict_below(start);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp.dir_name(), error = %e, "retention failed")
                }
            }
        }
    }
}
