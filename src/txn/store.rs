//! Persistence of transactional ids in `__transaction_state` through the shared coordinator
//! log: one record per transition (Kafka's key/value schemas, `codec`), a tombstone when an id
//! expires; at load, the last value per key wins.
//!
//! Invariants: a transition is answered only after its record is appended; a record that does
//! not decode during replay is skipped with a warning; after a load, ids found in
//! PrepareCommit/PrepareAbort are queued for their completion (their markers may be missing).

use std::collections::HashMap;

use super::codec;
use super::state::{TxnMetadata, TxnState};
use super::table::TxnEntry;
use super::TxnContext;
use super::{TxnError, TRANSACTION_STATE_TOPIC};
use crate::coordinator_log::{self as log, KeyValue};

/// The record of `meta` (a tombstone once Dead).
pub fn record(meta: &TxnMetadata) -> Result<KeyValue, TxnError> {
    let key = codec::encode_key(&meta.transactional_id)?;
    if meta.state == TxnState::Dead {
        return Ok((key, None));
    }
    Ok((key, Some(codec::encode_value(meta)?)))
}

/// Appends `meta`'s record to partition `index` under its lock.
pub async fn persist(
    shard: &TxnContext<'_>,
    index: u32,
    meta: &TxnMetadata,
) -> Result<(), TxnError> {
    let record = record(meta)?;
    log::io::append(
        &shard.log,
        TRANSACTION_STATE_TOPIC,
        shard.txns.loaded(),
        index,
        &[record],
    )
    .await?;
    Ok(())
}

/// Loads every `__transaction_state` partition this shard owns and has not loaded yet.
pub async fn load_owned(shard: &TxnContext<'_>) {
    for index in log::io::owned_unloaded(&shard.log, TRANSACTION_STATE_TOPIC, shard.txns.loaded()) {
        match load_partition(shard, index).await {
            Ok(count) => tracing::debug!(partition = index, count, "transaction log loaded"),
            Err(e) => {
                tracing::error!(partition = index, error = %e, "cannot load transaction log")
            }
        }
    }
}

async fn load_partition(shard: &TxnContext<'_>, index: u32) -> Result<usize, TxnError> {
    let mut replayed: HashMap<String, Option<TxnMetadata>> = HashMap::new();
    log::io::replay(&shard.log, TRANSACTION_STATE_TOPIC, index, |_, records| {
        for record in records {
            if let Err(e) = apply_record(&mut replayed, record.key, record.value) {
                tracing::warn!(partition = index, error = %e, "skipping transaction record");
            }
        }
    })
    .await?;
    let mut count = 0;
    let mut txns = shard.txns.txns.borrow_mut();
    let mut resume = shard.txns.to_resume.borrow_mut();
    for (id, meta) in replayed {
        let Some(meta) = meta else { continue };
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            resume.push(id.clone());
        }
        txns.insert(id, TxnEntry::new(meta, index));
        count += 1;
    }
    shard.txns.loaded().mark_loaded(index);
    Ok(count)
}

fn apply_record(
    replayed: &mut HashMap<String, Option<TxnMetadata>>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
) -> Result<(), TxnError> {
    let Some(key) = key else { return Ok(()) };
    let id = codec::decode_key(&key)?;
    let meta = value
        .map(|v| codec::decode_value(id.clone(), &v))
        .transpose()?;
    replayed.insert(id, meta);
    Ok(())
}
