//! One shard's life: load the topic table, open the partitions it owns, listen on the shared
//! SO_REUSEPORT address, serve connections and the inbox, and on shutdown stop accepting,
//! let in-flight requests finish (bounded by `shutdown.timeout.ms`) and close every log.
//!
//! Invariants: all per-shard state lives in one `Shard` behind an `Rc` (never shared across
//! threads); other shards are reached only through the mesh; "ready" is logged once, by shard 0,
//! after every shard answered a ping, which each does only once it is listening.

mod contexts;
mod contexts_cluster;
mod contexts_txn;
pub mod msg;
pub mod state;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use shards::{Inbox, ShardContext};

pub use self::msg::ShardMsg;
pub use self::state::{Boot, BootListener, ConnectionGuard, Shard};
use crate::handlers::fetch_session::FetchSessions;
use crate::partition::PartitionService;
use crate::router;

pub async fn shard_main(boot: Arc<Boot>, ctx: ShardContext<ShardMsg>, inbox: Inbox<ShardMsg>) {
    storage::set_sealed_segment_files_open_max(boot.config.log.log_sealed_segment_files_open_max);
    storage::set_active_segment_files_open_max(boot.config.log.log_active_segment_files_open_max);
    let image = match &boot.cluster {
        // A KRaft node: the committed image (shard 0's follower keeps every shard current).
        Some(node) => node.image.current().image,
        None => {
            let mut image = crate::cluster::store::load(
                &boot.config.server.data_dir,
                boot.config.server.node_id,
            )
            .unwrap_or_else(|e| shards::fatal(format!("cannot load the metadata image: {e}")));
            if let Err(e) = image.apply(&registration(&boot)) {
                shards::fatal(format!("cannot register this broker: {e}"));
            }
            image
        }
    };
    let dynamic_configs = image.dynamic_configs(boot.config.server.node_id);
    // The broker's quota table (shared by the shards) takes the image's quotas; later changes
    // come through `controller::adopt_records`. Every shard sets the same map: idempotent.
    boot.quotas
        .set_quotas(image.security().client_quotas().clone());
    let metrics = Rc::new(crate::metrics::ShardMetrics::default());
    let partitions = PartitionService::new(
        ctx.shutdown.clone(),
        crate::clock::Clock::system(),
        metrics.clone(),
        boot.config.log.log_flush_on_acks_all,
    );
    let shard = Rc::new(Shard {
        id: ctx.id,
        placement: crate::router::placement::PlacementTable::new(ctx.mesh.shard_count()),
        mesh: ctx.mesh,
        config: boot.config.clone(),
        default_log: boot.default_log.clone(),
        advertised_host: boot.advertised_host.clone(),
        advertised_port: boot.advertised_port,
        previous_shutdown_clean: boot.previous_shutdown_clean,
        groups: crate::groups::Coordinator::new(&boot.config),
        txns: crate::txn::Coordinator::new(&boot.config),
        fetch_sessions: RefCell::new(FetchSessions::new(
            boot.config.fetch.fetch_session_cache_slots,
            boot.config.fetch.fetch_session_partitions_max,
            ctx.id,
        )),
        topics: RefCell::new(image),
        dynamic_configs: RefCell::new(dynamic_configs),
        partitions,
        producer_ids: crate::producers::IdAllocator::new(),
        registry_lock: futures_util::lock::Mutex::new(()),
        shutdown: ctx.shutdown,
        metrics,
        authorizer: boot.authorizer.clone(),
        on_topics_adopted: vec![
            |shard, changed| {
                Box::pin(
                    async move { crate::groups::adopted(&shard.group_context(), changed).await },
                )
            },
            |shard, changed| {
                Box::pin(async move { crate::txn::adopted(&shard.txn_context(), changed).await })
            },
        ],
        on_topics_deleted: vec![|shard, names| {
            Box::pin(async move {
                crate::groups::coordinator::topics_deleted(&shard.group_context(), names).await
            })
        }],
        quotas: boot.quotas.clone(),
        listener_configs: boot.listener_configs.clone(),
        connections: Cell::new(0),
        cluster: boot.cluster.clone(),
        cluster_synced: Cell::new(0),
        replica_fetchers: Default::default(),
        hw_checkpoint: boot.hw_checkpoint.clone(),
        stop_serving: boot.stop_serving.clone(),
    });
    if shard.id == router::REGISTRY_SHARD {
        crate::cluster::deletion::sweep_deleted(&shard.config.server.data_dir);
    }
    let metas: Vec<_> = shard.topics.borrow().iter().cloned().collect();
    crate::cluster::open::open_owned(&shard.open_context(), &metas).await;
    crate::groups::start(&shard.group_context()).await;
    crate::txn::start(&shard.txn_context()).await;
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
    let admin_task = start_admin(&shard).await;
    let cluster_tasks = match (&boot.cluster, shard.id == router::REGISTRY_SHARD) {
        (Some(node), true) => start_cluster_tasks(&shard, &boot, node),
        _ => (Vec::new(), Vec::new()),
    };
    if shard.id == router::REGISTRY_SHARD {
        if boot.cluster.is_none() {
            crate::groups::ensure_offsets_topic(&shard.group_routing_context()).await;
        }
        announce_ready(&shard, &boot).await;
    }
    let retention_task = compio::runtime::spawn(retention_loop(shard.clone()));
    let durability_task = compio::runtime::spawn(durability_watch(shard.clone()));
    let groups_shard = shard.clone();
    let groups_task = compio::runtime::spawn(async move {
        crate::groups::coordinator::timer_loop(groups_shard.group_context()).await
    });
    let txn_task = compio::runtime::spawn(contexts_txn::txn_timer_loop(shard.clone()));
    let cleaner_shard = shard.clone();
    let cleaner_task = compio::runtime::spawn(async move {
        crate::log_cleaner::run(cleaner_shard.cleaner_context()).await
    });
    let replication_task = boot.cluster.is_some().then(|| {
        let shard = shard.clone();
        compio::runtime::spawn(async move {
            crate::cluster::replicas::tick_loop(&shard.replicas_context()).await
        })
    });
    let checkpoint_task = boot.cluster.is_some().then(|| {
        let shard = shard.clone();
        compio::runtime::spawn(async move {
            crate::cluster::replicas::checkpoint_loop(&shard.replicas_context()).await
        })
    });
    let accepts = listeners
        .iter()
        .map(|(socket, context)| Box::pin(accept_loop(&shard, socket, context)));
    // A controller-only node has no client listener: `accepting` ends at once and `stopping`
    // keeps the shard up until the shutdown.
    // Connections are served until `stop_serving`: through the controlled shutdown.
    let accepting = futures_util::future::join_all(accepts);
    let (follow_tasks, lifecycle_tasks) = cluster_tasks;
    let stopping = async {
        shard.shutdown.wait().await;
        // Heartbeats (and controller duties) stop first, or one could unfence the broker
        // after its controlled shutdown; the image keeps being followed until it is done, so
        // this broker applies the leadership changes of its own shutdown.
        drop(lifecycle_tasks);
        if let (Some(node), true) = (&boot.cluster, shard.id == router::REGISTRY_SHARD) {
            if node.settings.roles.broker {
                let timeout =
                    Duration::from_millis(boot.config.controller.controlled_shutdown_timeout_ms);
                crate::cluster::heartbeat::controlled_shutdown(
                    &shard.cluster_synced,
                    node.clone(),
                    timeout,
                )
                .await;
            }
        }
        // Shard 0 ends the serving of every shard once leadership moved away (a single node
        // has no controlled shutdown: at once).
        if boot.cluster.is_none() || shard.id == router::REGISTRY_SHARD {
            shard.stop_serving.trigger();
        }
    };
    futures_util::future::join(accepting, stopping).await;
    drop(listeners);
    drop(follow_tasks);
    drain_connections(&shard).await;
    drop(admin_task);
    drop(retention_task);
    drop(durability_task);
    drop(groups_task);
    drop(txn_task);
    drop(cleaner_task);
    drop(replication_task);
    drop(checkpoint_task);
    drop(inbox_task);
    if boot.cluster.is_some() {
        // The last marks of this shard's partitions, written by `lib::run` once every shard
        // is done (Kafka's checkpoint at a clean shutdown).
        crate::cluster::replicas::publish_high_watermarks(&shard.replicas_context());
    }
    if !close_logs(&shard).await {
        boot.close_failed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// This broker's `RegisterBrokerRecord`: every listener as clients reach it.
fn registration(boot: &Boot) -> crate::cluster::MetadataRecord {
    let end_points = boot
        .listeners
        .iter()
        .map(|l| crate::cluster::records::BrokerEndpoint {
            name: l.context.name.clone(),
            host: l.context.advertised_host.clone(),
            port: l.context.advertised_port,
            security_protocol: l.context.protocol.name().to_owned(),
        })
        .collect();
    crate::cluster::store::register(
        boot.config.server.node_id,
        boot.config.server.broker_rack.clone(),
        end_points,
    )
}

/// Shard 0 of a KRaft node: follow the committed image, register and heartbeat, fetch images
/// (broker-only node) and the active controller's start-up duties.
/// (image-following tasks, lifecycle tasks): the first keep running during a controlled
/// shutdown, the second stop before it.
type ClusterTasks = (
    Vec<compio::runtime::JoinHandle<()>>,
    Vec<compio::runtime::JoinHandle<()>>,
);

fn start_cluster_tasks(
    shard: &Rc<Shard>,
    boot: &Boot,
    node: &Arc<crate::cluster::node::ClusterNode>,
) -> ClusterTasks {
    use crate::cluster::{follow, heartbeat};
    let (follow_shard, follow_node) = (shard.clone(), node.clone());
    let mut follow_tasks = vec![compio::runtime::spawn(async move {
        follow::run(&follow_shard.follow_context(), follow_node).await
    })];
    if node.quorum.is_none() {
        follow_tasks.push(compio::runtime::spawn(heartbeat::fetch_images(
            node.clone(),
        )));
    }
    let mut tasks = Vec::new();
    if node.settings.roles.broker {
        let request = match registration(boot) {
            crate::cluster::MetadataRecord::RegisterBroker(r) => {
                crate::cluster::quorum::lifecycle::RegistrationRequest {
                    cluster_id: boot.config.server.cluster_id.clone(),
                    broker_id: r.broker_id,
                    incarnation_id: r.incarnation_id,
                    end_points: r.end_points,
                    rack: r.rack,
                }
            }
            _ => shards::fatal("registration is a RegisterBrokerRecord"),
        };
        let (heartbeat_shard, heartbeat_node) = (shard.clone(), node.clone());
        tasks.push(compio::runtime::spawn(async move {
            heartbeat::run(&heartbeat_shard.cluster_synced, heartbeat_node, request).await
        }));
    }
    if node.quorum.is_some() {
        let (duties_shard, duties_node) = (shard.clone(), node.clone());
        tasks.push(compio::runtime::spawn(async move {
            let duties = contexts_cluster::duties_context(&duties_shard);
            crate::cluster::duties::run(&duties, duties_node).await
        }));
    }
    // Envelopes (KIP-590) the quorum member accepted while this node leads.
    let forwarded = node
        .forwarded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(calls) = forwarded {
        tasks.push(compio::runtime::spawn(
            crate::handlers::forward::serve_forwarded(
                shard.clone(),
                boot.forwarded_context.clone(),
                calls,
                node.forwarding_max_in_flight,
            ),
        ));
    }
    (follow_tasks, tasks)
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
    if boot.listeners.is_empty() {
        tracing::info!("ready listening={listen} (controller-only node: no client listener)");
        return;
    }
    tracing::info!(
        "ready listening={listen} shards={} topics={}",
        shard.mesh.shard_count(),
        shard.topics.borrow().len()
    );
}

async fn serve_inbox(shard: Rc<Shard>, inbox: Inbox<ShardMsg>) {
    while let Some(msg) = inbox.recv().await {
        compio::runtime::spawn(serve(shard.clone(), msg)).detach();
    }
}

async fn accept_loop(
    shard: &Rc<Shard>,
    listener: &compio::net::TcpListener,
    context: &Arc<crate::security::session::ListenerContext>,
) {
    let mut failures = shards::AcceptFailures::default();
    loop {
        let accept = Box::pin(listener.accept());
        let stop = Box::pin(shard.stop_serving.wait());
        let (stream, peer) = match futures_util::future::select(accept, stop).await {
            futures_util::future::Either::Left((Ok(accepted), _)) => accepted,
            futures_util::future::Either::Left((Err(e), _)) => {
                // EMFILE and friends: back off instead of spinning on the error, and log a
                // line per interval, not per retry.
                let (wait, log) = failures.failed(std::time::Instant::now());
                if let Some(unlogged) = log {
                    tracing::warn!(error = %e, unlogged, "accept failed (retrying with backoff)");
                }
                let stop = Box::pin(shard.stop_serving.wait());
                let sleep = Box::pin(compio::time::sleep(wait));
                if let futures_util::future::Either::Right(_) =
                    futures_util::future::select(sleep, stop).await
                {
                    return;
                }
                continue;
            }
            futures_util::future::Either::Right(_) => return,
        };
        failures.accepted();
        // Kafka's protected (inter-broker) listener is exempt from the broker-wide limits.
        if !context.protected
            && shard.connection_count() >= shard.config.socket.max_connections_per_shard
        {
            tracing::warn!(%peer, "connection limit reached, closing");
            continue;
        }
        let guard = ConnectionGuard::new(shard.clone());
        // KIP-612: the listener's and broker's connection-creation rates; over them Kafka's
        // acceptor waits before accepting more.
        let broker_rate = match context.protected {
            true => crate::quotas::connections::UNLIMITED_RATE,
            false => shard.config.socket.max_connection_creation_rate,
        };
        let delay_ms = shard.quotas.record_listener_connection(
            &context.name,
            context.max_connection_creation_rate,
            broker_rate,
        );
        if !sleep_unless_shutdown(shard, delay_ms).await {
            return;
        }
        // Then the IP's rate: over it, Kafka's delayed close (the socket is held, and counted,
        // for the throttle time).
        if let Some(close_after_ms) = shard.quotas.record_ip_connection(peer.ip()) {
            tracing::info!(%peer, close_after_ms, "connection creation rate of the IP exceeded, closing");
            let waiting = shard.clone();
            compio::runtime::spawn(async move {
                sleep_unless_shutdown(&waiting, close_after_ms).await;
                drop(stream);
                drop(guard);
            })
            .detach();
            continue;
        }
        let shard = shard.clone();
        let context = context.clone();
        compio::runtime::spawn(async move {
            crate::net::conn::serve(shard, stream, peer, context).await;
            drop(guard);
        })
        .detach();
    }
}

/// Sleeps `ms` (a quota's throttle); false when the broker stopped serving first.
async fn sleep_unless_shutdown(shard: &Shard, ms: u64) -> bool {
    if ms == 0 {
        return true;
    }
    let sleep = Box::pin(compio::time::sleep(Duration::from_millis(ms)));
    let stop = Box::pin(shard.stop_serving.wait());
    matches!(
        futures_util::future::select(sleep, stop).await,
        futures_util::future::Either::Left(_)
    )
}

async fn drain_connections(shard: &Shard) {
    let deadline = Instant::now() + Duration::from_millis(shard.config.server.shutdown_timeout_ms);
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
            partition.snapshot_producers().await;
            match partition.storage().close().await {
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
            if let Some(e) = partition.storage().durability_error() {
                shards::fatal(format!(
                    "storage I/O error on {}: {e}",
                    partition.tp.dir_name()
                ));
            }
        }
    }
}

async fn retention_loop(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.log.retention_check_interval_ms);
    loop {
        compio::time::sleep(interval).await;
        let now_ms = crate::clock::system_now_ms();
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
            match partition.storage().apply_retention(now_ms).await {
                Ok(0) => {}
                Ok(_) => {
                    let start = partition.storage().log_start_offset().0;
                    partition.producers.borrow_mut().evict_below(start);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp.dir_name(), error = %e, "retention failed")
                }
            }
        }
    }
}

/// Serves one inbox message on this shard (spawned, so a long poll never blocks the inbox).
async fn serve(shard: Rc<Shard>, msg: ShardMsg) {
    match msg {
        ShardMsg::Partition(msg) => shard.partitions.serve(msg).await,
        ShardMsg::Group(msg) => crate::groups::serve(&shard.group_context(), msg).await,
        ShardMsg::Txn(msg) => crate::txn::serve(&shard.txn_coordinator_context(), msg).await,
        ShardMsg::Ping { reply } => reply.send(()),
        ShardMsg::Metrics { reply } => reply.send(shard.metrics_snapshot()),
        ShardMsg::Run(task) => task(shard).await,
    }
}

/// On the registry shard: binds `admin.listen` (a bind failure stops the broker, as for the
/// Kafka listener) and serves `/metrics` until shutdown; the handle cancels the server when
/// dropped. Other shards serve no admin endpoint.
async fn start_admin(shard: &Rc<Shard>) -> Option<compio::runtime::JoinHandle<()>> {
    if shard.id != router::REGISTRY_SHARD {
        return None;
    }
    let addr = shard
        .config
        .admin_listen_addr()
        .unwrap_or_else(|e| shards::fatal(e));
    let listener = crate::metrics::http::bind(addr)
        .await
        .unwrap_or_else(|e| shards::fatal(e));
    let serve = crate::metrics::http::serve(shard.clone(), listener);
    Some(compio::runtime::spawn(serve))
}

impl crate::metrics::http::Scrape for Shard {
    fn admin_auth_token(&self) -> Option<&str> {
        self.config.server.admin_auth_token.as_deref()
    }

    fn shutdown(&self) -> &shards::Shutdown {
        &self.shutdown
    }

    fn collect(&self) -> LocalBoxFuture<'_, Vec<crate::metrics::ShardSnapshot>> {
        Box::pin(collect_metrics(self))
    }

    fn more_text(&self) -> String {
        let context = self.metrics_context();
        let mut text = crate::cluster::kraft_metrics::render(&context);
        text.push_str(&crate::cluster::replication_metrics::render(&context));
        text
    }

    fn served_api_keys(&self) -> Vec<i16> {
        crate::handlers::REGISTRY
            .iter()
            .map(|entry| entry.key as i16)
            .collect()
    }
}

/// Every shard's snapshot (this shard's read directly), in shard order.
async fn collect_metrics(shard: &Shard) -> Vec<crate::metrics::ShardSnapshot> {
    use crate::metrics::http::SNAPSHOT_TIMEOUT;
    let calls = shard.mesh.shards().map(|id| async move {
        if id == shard.id {
            return Some(shard.metrics_snapshot());
        }
        let call = shard.mesh.call(id, |reply| ShardMsg::Metrics { reply });
        match compio::time::timeout(SNAPSHOT_TIMEOUT, call).await {
            Ok(Ok(snapshot)) => Some(snapshot),
            Ok(Err(e)) => {
                tracing::debug!(shard = %id, error = %e, "no metrics from shard");
                None
            }
            Err(_elapsed) => {
                tracing::warn!(shard = %id, "metrics snapshot timed out");
                None
            }
        }
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}
