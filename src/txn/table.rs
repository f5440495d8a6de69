//! The transactional ids one shard coordinates and the `__transaction_state` partitions it has
//! loaded: plain shard-local state (the operations on it are in `coordinator`).

use std::cell::RefCell;
use std::collections::HashMap;

use futures_channel::oneshot;

use super::state::TxnMetadata;
use crate::config::BrokerConfig;

/// One transactional id.
pub struct TxnEntry {
    pub meta: TxnMetadata,
    /// The `__transaction_state` partition holding its records.
    pub partition: u32,
    /// A transition is being written: other requests get CONCURRENT_TRANSACTIONS.
    pub pending: bool,
    /// A completion (markers, then CompleteCommit/CompleteAbort) is running.
    pub completing: bool,
    /// EndTxn answers waiting for the completion.
    pub waiters: Vec<oneshot::Sender<()>>,
}

impl TxnEntry {
    pub fn new(meta: TxnMetadata, partition: u32) -> Self {
        Self {
            meta,
            partition,
            pending: false,
            completing: false,
            waiters: Vec::new(),
        }
    }
}

/// Limits from the broker config.
#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    pub max_timeout_ms: i32,
    pub ids_max: usize,
    pub id_expiration_ms: i64,
    pub abort_check_interval_ms: u64,
    pub expiry_check_interval_ms: u64,
}

pub struct Coordinator {
    pub(super) limits: TxnLimits,
    pub(super) txns: RefCell<HashMap<String, TxnEntry>>,
    /// The `__transaction_state` partitions this shard has replayed.
    pub(super) logs: crate::coordinator_log::Loaded,
    /// Ids loaded in PrepareCommit/PrepareAbort whose completion the timer must resume.
    pub(super) to_resume: RefCell<Vec<String>>,
    /// Markers queued for partition leaders on other brokers.
    pub(super) channels: super::channel::MarkerChannels,
    /// Connections to other brokers' coordinators for transaction verification.
    pub(super) verify_connections: super::channel::VerifyConnections,
}

impl Coordinator {
    pub fn new(config: &BrokerConfig) -> Self {
        Self {
            limits: TxnLimits {
                max_timeout_ms: config.transaction.transaction_max_timeout_ms,
                ids_max: config.transaction.transaction_max_count_per_shard,
                id_expiration_ms: config.transaction.transactional_id_expiration_ms,
                abort_check_interval_ms: config
                    .transaction
                    .transaction_abort_timed_out_transaction_cleanup_interval_ms,
                expiry_check_interval_ms: config
                    .transaction
                    .transaction_remove_expired_transaction_cleanup_interval_ms,
            },
            txns: RefCell::new(HashMap::new()),
            logs: crate::coordinator_log::Loaded::default(),
            to_resume: RefCell::new(Vec::new()),
            channels: super::channel::MarkerChannels::new(
                config.transaction.transaction_marker_queue_max_entries,
            ),
            verify_connections: super::channel::VerifyConnections::default(),
        }
    }

    pub fn loaded(&self) -> &crate::coordinator_log::Loaded {
        &self.logs
    }

    /// The `__transaction_state` partitions loaded here.
    pub fn loaded_partitions(&self) -> Vec<u32> {
        self.logs.indexes()
    }

    /// Forgets a `__transaction_state` partition and its ids (Kafka's
    /// `removeTransactionsForTxnTopicPartition`: another broker leads it now and reloads them
    /// from its log, completing what was in flight); EndTxn answers waiting on their markers
    /// are released (the outcome is logged already). Answers how many ids went.
    pub fn unload(&self, index: u32) -> usize {
        self.logs.remove(index);
        let mut waiters = Vec::new();
        let mut gone = 0;
        self.txns.borrow_mut().retain(|_, entry| {
            let keep = entry.partition != index;
            if !keep {
                waiters.append(&mut entry.waiters);
                gone += 1;
            }
            keep
        });
        for waiter in waiters {
            let _gone_is_fine = waiter.send(());
        }
        gone
    }

    pub fn count(&self) -> usize {
        self.txns.borrow().len()
    }
}
