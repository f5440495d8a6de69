//! Broker metrics: shard-local recording (`ShardMetrics`, one per shard in its state), a
//! plain-data per-shard `ShardSnapshot` that crosses the mesh, rendering merged snapshots as
//! Prometheus text (`text`), and the admin HTTP endpoint on shard 0 (`http`) that serves them.
//!
//! Invariants: recording touches only the current shard's `Cell`/`RefCell` state (no atomics, no
//! locks shared between shards); a `RefCell` borrow never lives across an `.await`; counters only
//! grow (saturating); merging happens only at scrape time, on the scraping shard. Every metric
//! is documented in docs/metrics.md. Metrics imports nothing above it: the shard hands it
//! gauges and snapshots (`Gauges`, `http::Scrape`), the partition service reports through
//! `partition::AppendObserver`.

pub mod cleaner;
pub mod histogram;
pub mod http;
pub mod text;

use std::cell::{Cell, RefCell};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use self::histogram::Histogram;

/// API keys are small non-negative numbers (Kafka's highest is below 100); requests with a key
/// at or beyond this are never routed to a handler, so they are never recorded.
pub const API_KEY_SLOTS: usize = 128;

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot bind admin address {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("admin request head exceeds {max} bytes")]
    RequestTooLarge { max: usize },
    #[error("admin request not complete within {0:?}")]
    RequestTimeout(Duration),
    #[error("malformed admin request: {0}")]
    BadRequest(&'static str),
    #[error("invalid exposition line {line}: {reason}")]
    Parse { line: usize, reason: String },
}

/// Requests, failures and latency of one API on one shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiStats {
    pub requests: u64,
    /// Requests whose handler failed (undecodable body and similar): the connection was closed.
    /// Kafka error codes inside a successful response are not failures here.
    pub errors: u64,
    pub latency: Histogram,
}

impl ApiStats {
    pub fn merge(&mut self, other: &ApiStats) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.latency.merge(&other.latency);
    }
}

/// What one shard records while it serves; lives in the shard's state, touched only on its
/// thread.
pub struct ShardMetrics {
    apis: RefCell<Vec<ApiStats>>,
    received_bytes: Cell<u64>,
    sent_bytes: Cell<u64>,
    messages_in: Cell<u64>,
    fsync_wait: RefCell<Histogram>,
    /// The shard's log cleaner (runs, bytes, time, dirty ratios).
    pub cleaner: cleaner::CleanerMetrics,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        Self {
            apis: RefCell::new(vec![ApiStats::default(); API_KEY_SLOTS]),
            received_bytes: Cell::new(0),
            sent_bytes: Cell::new(0),
            messages_in: Cell::new(0),
            fsync_wait: RefCell::new(Histogram::default()),
            cleaner: cleaner::CleanerMetrics::default(),
        }
    }
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().saturating_add(by));
}

impl ShardMetrics {
    /// One request handled by `key`'s handler, from dispatch to response encoded.
    pub fn record_request(&self, key: ApiKey, elapsed: Duration, failed: bool) {
        let mut apis = self.apis.borrow_mut();
        let Some(stats) = usize::try_from(key as i16)
            .ok()
            .and_then(|slot| apis.get_mut(slot))
        else {
            return;
        };
        stats.requests = stats.requests.saturating_add(1);
        stats.errors = stats.errors.saturating_add(u64::from(failed));
        stats.latency.record(elapsed);
    }

    /// Bytes of request frames read (size prefix included).
    pub fn add_received_bytes(&self, bytes: usize) {
        bump(&self.received_bytes, bytes as u64);
    }

    /// Bytes of response frames written to sockets (size prefix included).
    pub fn add_sent_bytes(&self, bytes: usize) {
        bump(&self.sent_bytes, bytes as u64);
    }

    /// Records appended by Produce (the batch headers' record counts).
    pub fn add_messages_in(&self, records: u32) {
        bump(&self.messages_in, u64::from(records));
    }

    /// Time one durability wait (fsync, joined or started) took.
    pub fn record_fsync_wait(&self, elapsed: Duration) {
        self.fsync_wait.borrow_mut().record(elapsed);
    }
}

impl crate::partition::AppendObserver for ShardMetrics {
    fn records_appended(&self, records: u32) {
        self.add_messages_in(records);
    }

    fn durable_waited(&self, elapsed: Duration) {
        self.record_fsync_wait(elapsed);
    }
}

/// One shard's metrics at one moment: plain data, so it can cross the mesh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardSnapshot {
    pub shard: u16,
    /// `(api key, stats)` for every API with at least one request.
    pub apis: Vec<(i16, ApiStats)>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub messages_in: u64,
    pub fsync_wait: Histogram,
    pub connections: u64,
    pub partitions_owned: u64,
    /// Data fsyncs of the logs this shard owns now, since each was opened.
    pub log_fsyncs: u64,
    pub cleaner: cleaner::CleanerSnapshot,
}

impl ShardMetrics {
    /// This shard's counters now, with the gauges the caller measured (connections,
    /// partitions owned, their fsyncs): plain data for a scrape.
    pub fn snapshot(&self, shard: u16, gauges: Gauges) -> ShardSnapshot {
        let apis = self
            .apis
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, stats)| stats.requests > 0)
            .filter_map(|(slot, stats)| Some((i16::try_from(slot).ok()?, stats.clone())))
            .collect();
        ShardSnapshot {
            shard,
            apis,
            received_bytes: self.received_bytes.get(),
            sent_bytes: self.sent_bytes.get(),
            messages_in: self.messages_in.get(),
            fsync_wait: self.fsync_wait.borrow().clone(),
            connections: gauges.connections,
            partitions_owned: gauges.partitions_owned,
            log_fsyncs: gauges.log_fsyncs,
            cleaner: self.cleaner.snapshot(),
        }
    }
}

/// What the shard measures at scrape time and hands to [`ShardMetrics::snapshot`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub connections: u64,
    pub partitions_owned: u64,
    pub log_fsyncs: u64,
}
