//! Sluice: a Kafka-compatible event-streaming broker, thread-per-core on io_uring.
//!
//! A request flows through the modules in this order, and each layer only calls the next:
//! `net` (framing, connections) -> `handlers` (one file per Kafka API, no I/O) -> `router`
//! (which shard owns a partition, cross-shard calls) -> `partition` (per-partition state on its
//! owning shard) -> the `storage` crate (the log: segments, indexes, recovery).
//! `topics` holds the topic registry (authoritative on shard 0) and topic-config validation;
//! `shard` is one shard's life from start to clean shutdown; `config` the broker settings.

pub mod atomic_file;
pub mod checkpoint_file;
pub mod clean_shutdown;
/// The admin CLI (`sluice topic ...`): a Kafka client, outside the request flow above.
pub mod cli;
/// The one wall clock (injectable in tests).
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coordinator_log;
pub mod data_dir_lock;
pub mod groups;
pub mod handlers;
pub mod internal_topics;
pub mod log_cleaner;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod producers;
pub mod quotas;
pub mod replication;
pub mod router;
pub mod security;
pub mod shard;
pub mod txn;
/// Moved into `cluster`; the old path stays for the modules not yet rewritten to it.
pub use cluster::topics;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::shard::Boot;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] shards::RuntimeError),
    #[error("{0}")]
    Security(String),
    #[error("{0}")]
    Cluster(String),
    #[error(transparent)]
    Checkpoint(#[from] replication::checkpoint::CheckpointError),
    #[error("cannot lock data directory {path} (another broker is using it?): {source}")]
    DataDirLocked {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Checks every section of the broker config: the core settings (`BrokerConfig::validate`),
/// then those of the modules that read their own section (`security::config`). Config knows
/// no module above it; the modules validate what they own.
pub fn validate_config(config: &BrokerConfig) -> Result<(), config::ConfigError> {
    config.validate()?;
    cluster::kraft::settings(config)?;
    security::config::validate(config)
}

/// Runs the broker until SIGINT/SIGTERM; returns once every shard closed its logs.
pub fn run(mut config: BrokerConfig) -> Result<(), BrokerError> {
    validate_config(&config)?;
    raise_fd_limit();
    std::fs::create_dir_all(&config.server.data_dir).map_err(|source| BrokerError::DataDir {
        path: config.server.data_dir.clone(),
        source,
    })?;
    // Before anything in the directory is read: one broker per data directory.
    let _data_dir_lock = data_dir_lock::acquire(&config.server.data_dir).map_err(|source| {
        BrokerError::DataDirLocked {
            path: config.server.data_dir.clone(),
            source,
        }
    })?;
    // Kafka's meta.properties: a directory of another cluster (or node) is refused.
    let kraft_node_id = cluster::kraft::settings(&config)?.map(|s| s.node_id);
    cluster::meta_properties::ensure(
        &config.server.data_dir,
        &config.server.cluster_id,
        kraft_node_id,
    )
    .map_err(|e| BrokerError::Cluster(e.to_string()))?;
    // The controller listener's security (SSL per `controller.listener.names`), for the quorum
    // and every broker-to-controller RPC.
    cluster::controller_listener::install(&config)?;
    let controller_only =
        cluster::kraft::settings(&config)?.is_some_and(|s| s.roles.controller && !s.roles.broker);
    if controller_only {
        // One shard without client listeners: it runs the admin requests brokers forward
        // (KIP-590) while this node is the active controller, and the controller's duties.
        config.server.cores = 1;
    } else if cluster::kraft::settings(&config)?.is_some() {
        // A KRaft broker dials other brokers on the inter-broker listener (`inter.broker.*`).
        cluster::inter_broker::install(&config)?;
    }
    let previous_shutdown_clean = clean_shutdown::take(&config.server.data_dir);
    // A KRaft node starts its quorum member (snapshot and log read) before any shard, and
    // before port-0 listeners are reserved, so none of them can take its controller port.
    let cluster = cluster::node::ClusterNode::start(&config).map_err(BrokerError::Cluster)?;
    // Port 0: bind once here to learn the real port, keep the socket (bound, not listening, so
    // it never takes connections) until the shards have bound the same port with SO_REUSEPORT.
    let listener_dynamic = security::listener_configs::load(&config.server.data_dir)
        .map_err(|e| BrokerError::Security(e.to_string()))?;
    let (reservations, listeners, forwarded_context) = match (controller_only, &cluster) {
        (true, Some(node)) => {
            let context = controller_only_context(&config, node)?;
            (Vec::new(), Vec::new(), context)
        }
        _ => {
            let (reservations, listeners) = bind_listeners(&config, &listener_dynamic)?;
            let first = listeners.first().ok_or(config::ConfigError::Invalid {
                key: "listeners",
                reason: "no listener".into(),
            })?;
            let context = first.context.clone();
            (reservations, listeners, context)
        }
    };
    let listen = forwarded_context.bind;
    let (advertised_host, advertised_port) = (
        forwarded_context.advertised_host.clone(),
        forwarded_context.advertised_port,
    );
    // ACLs, SCRAM credentials and client quotas written before they were image records:
    // adopted once.
    cluster::security_store::migrate_legacy(&config.server.data_dir)
        .map_err(|e| BrokerError::Security(e.to_string()))?;
    let authorizer = security::acl_store::Authorizer::new(security::config::authorizer(&config)?);
    // Empty until the shards load the metadata image, whose quotas they put in force.
    let quotas = quotas::QuotaManager::new(
        quotas::window_config(&config)?,
        config.quota.quota_sensors_max,
    );
    let default_log = config.default_log_config()?;
    let runtime = shards::RuntimeConfig {
        shard_count: config.server.cores,
        pin_threads: config.server.pin_threads,
        mailbox_capacity: config.server.mailbox_capacity,
        thread_name_prefix: "sluice-shard".to_owned(),
        ring: config.ring_setup()?,
        iowq_bounded_workers_max: config.server.shard_io_wq_bounded_workers_max,
    };
    let tls_listeners = listeners.iter().filter_map(|l| {
        let slot = l.context.tls.clone()?;
        Some((l.context.name.clone(), slot))
    });
    let listener_configs = Arc::new(security::listener_configs::ListenerConfigs::new(
        &config,
        listener_dynamic,
        tls_listeners,
    ));
    // Kafka reads the high-watermark checkpoint before any log loads; an unreadable one stops
    // the broker (its only log directory would be offline).
    let hw_checkpoint = Arc::new(replication::checkpoint::HighWatermarkCheckpoint::open(
        &config.server.data_dir,
        config.server.cores,
    )?);
    let boot = Arc::new(Boot {
        config: Arc::new(config),
        default_log,
        listen,
        advertised_host,
        advertised_port,
        listeners,
        authorizer: Arc::new(authorizer),
        quotas: Arc::new(quotas),
        listener_configs,
        previous_shutdown_clean,
        close_failed: std::sync::atomic::AtomicBool::new(false),
        cluster,
        forwarded_context,
        hw_checkpoint,
        stop_serving: shards::Shutdown::new(),
    });
    let shards_boot = boot.clone();
    let result = shards::run(runtime, move |ctx, inbox| {
        shard::shard_main(shards_boot.clone(), ctx, inbox)
    });
    drop(reservations);
    result.map_err(BrokerError::from)?;
    if !boot.close_failed.load(std::sync::atomic::Ordering::SeqCst) {
        // Kafka checkpoints the high watermarks once more at a clean shutdown.
        if boot.cluster.is_some() {
            if let Err(e) = boot.hw_checkpoint.persist_blocking() {
                tracing::warn!(error = %e, "cannot write the high-watermark checkpoint at shutdown");
            }
        }
        clean_shutdown::mark(&boot.config.server.data_dir);
    }
    Ok(())
}

/// A controller-only node has no client listener: the context of its controller listener
/// (where brokers' forwarded requests arrive) is what the sessions of those requests report.
fn controller_only_context(
    config: &BrokerConfig,
    node: &cluster::node::ClusterNode,
) -> Result<Arc<security::session::ListenerContext>, BrokerError> {
    let bind = node
        .quorum
        .as_ref()
        .map(|q| q.local_addr())
        .ok_or_else(|| BrokerError::Cluster("a controller without its quorum member".into()))?;
    let own = security::config::listener_config(
        config,
        &node.settings.controller_listener,
        &Default::default(),
    )?;
    Ok(Arc::new(security::session::ListenerContext {
        name: node.settings.controller_listener.clone(),
        protocol: security::listener::SecurityProtocol::Plaintext,
        bind,
        advertised_host: bind.ip().to_string(),
        advertised_port: bind.port(),
        tls: None,
        principal_mapper: Arc::new(security::config::principal_mapper(&own)?),
        sasl_mechanisms: Vec::new(),
        oauth_jwks: None,
        max_connection_creation_rate: own.socket.max_connection_creation_rate,
        // Kafka's protected listener is the inter-broker one; this context only serves the
        // admin requests forwarded to a controller-only node.
        protected: false,
    }))
}

/// Resolves every listener's port (reserving port-0 ones), its advertised address, its settings
/// (`listener.name.<l>.*` overrides, then the dynamic ones persisted by AlterConfigs) and, for
/// TLS listeners, the rustls config (a bad key stops the broker here).
fn bind_listeners(
    config: &BrokerConfig,
    dynamic: &std::collections::BTreeMap<String, String>,
) -> Result<(Vec<socket2::Socket>, Vec<shard::BootListener>), BrokerError> {
    use security::session::ListenerContext;
    let specs = security::config::listeners(config)?;
    // One JWKS validator for every listener; an unreadable key set stops the broker.
    let oauth_jwks = match security::config::oauth_jwks(config)? {
        Some(jwks) => Some(Arc::new(
            security::oauth_jwks::JwksValidator::load(jwks).map_err(|e| {
                config::ConfigError::Invalid {
                    key: "sasl.oauthbearer.jwks.endpoint.url",
                    reason: e,
                }
            })?,
        )),
        None => None,
    };
    let mut reservations = Vec::new();
    let mut listeners = Vec::new();
    let several = specs.len() > 1;
    for spec in specs {
        if spec.bind.port() != 0 {
            probe_port(spec.bind)?;
        }
        let (reservation, bind) = reserve_port(spec.bind)?;
        reservations.extend(reservation);
        // Without `listeners`, the old `advertise` setting still names the address.
        let legacy = match (&config.listener.listeners, &config.server.advertise) {
            (None, Some(advertise)) => Some(config::parse_host_port("advertise", advertise)?),
            _ => None,
        };
        let (advertised_host, advertised_port) = match spec.advertised.clone().or(legacy) {
            Some(advertised) => advertised,
            None if bind.ip().is_unspecified() => ("localhost".to_owned(), bind.port()),
            None => (bind.ip().to_string(), bind.port()),
        };
        let own = security::config::listener_config(config, &spec.name, dynamic)?;
        let tls = match spec.protocol.uses_tls() {
            true => {
                let (server, leaf) = security::tls::server_config_and_leaf(&own)?;
                Some(Arc::new(security::tls::TlsSlot::new(server, leaf)))
            }
            false => None,
        };
        // Kafka's protected listener: the inter-broker one, when there are several.
        let protected =
            several && cluster::inter_broker::listener_name().is_some_and(|l| l == spec.name);
        let context = ListenerContext {
            name: spec.name,
            protocol: spec.protocol,
            bind,
            advertised_host,
            advertised_port,
            tls,
            principal_mapper: Arc::new(security::config::principal_mapper(&own)?),
            sasl_mechanisms: security::config::enabled_mechanisms(&own)?,
            oauth_jwks: oauth_jwks.clone(),
            max_connection_creation_rate: own.socket.max_connection_creation_rate,
            protected,
        };
        listeners.push(shard::BootListener {
            bind,
            context: Arc::new(context),
        });
    }
    Ok((reservations, listeners))
}

/// The shards bind with SO_REUSEPORT, which lets any process of the same user bind the same
/// port too, and the kernel would then split the connections between two brokers without an
/// error. A bind without SO_REUSEPORT fails while anything listens on the port, so the broker
/// refuses to start there, as Kafka's bind does (two listeners of one broker on one port are
/// refused by the config check, `security::listener::parse`).
fn probe_port(addr: SocketAddr) -> Result<(), BrokerError> {
    let bind_err = |source| BrokerError::Bind { addr, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(bind_err)?;
    // A connection of a previous run in TIME_WAIT does not hold the port.
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)
}

fn reserve_port(addr: SocketAddr) -> Result<(Option<socket2::Socket>, SocketAddr), BrokerError> {
    if addr.port() != 0 {
        return Ok((None, addr));
    }
    let bind_err = |source| BrokerError::Bind { addr, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.set_reuse_port(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    let local = socket
        .local_addr()
        .map_err(bind_err)?
        .as_socket()
        .ok_or_else(|| bind_err(std::io::Error::other("not an IP socket")))?;
    Ok((Some(socket), local))
}

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard limit, as Kafka's packaging
/// does with `ulimit -n`: every connection and every open segment file holds a descriptor, and
/// the usual soft default (1024) is far below `max.connections.per.shard` times the shards.
/// Logs what it did; failing to raise it is only a warning (the limits then stay as they were).
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a local rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    if limit.rlim_cur >= limit.rlim_max {
        tracing::info!(nofile = limit.rlim_cur, "open-file limit");
        return;
    }
    let soft = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), soft, "cannot raise the open-file limit");
        return;
    }
    tracing::info!(
        from = soft,
        to = limit.rlim_max,
        "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
    );
}
