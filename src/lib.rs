//! Sluice: a Kafka-compatible event-streaming broker, thread-per-core on io_uring.
//!
//! A request flows through the modules in this order, and each layer only calls the next:
//! `net` (framing, connections) -> `handlers` (one file per Kafka API, no I/O) -> `router`
//! (which shard owns a partition, cross-shard calls) -> `partition` (per-partition state on its
//! owning shard) -> the `storage` crate (the log: segments, indexes, recovery).
//! `topics` holds the topic registry (authoritative on shard 0) and topic-config validation;
//! `shard` is one shard's life from start to clean shutdown; `config` the broker settings.

pub mod atomic_file;
pub mod clean_shutdown;
pub mod config;
pub mod groups;
pub mod handlers;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod producers;
pub mod router;
pub mod shard;
pub mod topics;

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
}

/// Runs the broker until SIGINT/SIGTERM; returns once every shard closed its logs.
pub fn run(config: BrokerConfig) -> Result<(), BrokerError> {
    config.validate()?;
    raise_fd_limit();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| BrokerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let previous_shutdown_clean = clean_shutdown::take(&config.data_dir);
    let wanted = config.listen_addr()?;
    // Port 0: bind once here to learn the real port, keep the socket (bound, not listening, so
    // it never takes connections) until the shards have bound the same port with SO_REUSEPORT.
    let (reservation, listen) = reserve_port(wanted)?;
    let (advertised_host, advertised_port) = match &config.advertise {
        Some(advertise) => config::parse_host_port("advertise", advertise)?,
        None if listen.ip().is_unspecified() => ("localhost".to_owned(), listen.port()),
        None => (listen.ip().to_string(), listen.port()),
    };
    let default_log = config.default_log_config()?;
    let runtime = shards::RuntimeConfig {
        shard_count: config.cores,
        pin_threads: config.pin_threads,
        mailbox_capacity: config.mailbox_capacity,
        thread_name_prefix: "sluice-shard".to_owned(),
    };
    let boot = Arc::new(Boot {
        config: Arc::new(config),
        default_log,
        listen,
        advertised_host,
        advertised_port,
        previous_shutdown_clean,
        close_failed: std::sync::atomic::AtomicBool::new(false),
    });
    let shards_boot = boot.clone();
    let result = shards::run(runtime, move |ctx, inbox| {
        shard::shard_main(shards_boot.clone(), ctx, inbox)
    });
    drop(reservation);
    result.map_err(BrokerError::from)?;
    if !boot.close_failed.load(std::sync::atomic::Ordering::SeqCst) {
        clean_shutdown::mark(&boot.config.data_dir);
    }
    Ok(())
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
