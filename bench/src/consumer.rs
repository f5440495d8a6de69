//! Consumer threads: read every message back through librdkafka (`BaseConsumer` polled on a
//! dedicated thread), check it against the subscription's ledger (loss / duplicates) and
//! record end-to-end latency from the intended send time in the payload header.
//!
//! Two modes: `group` subscribes with a group id per subscription (the broker assigns
//! partitions); `assign` splits partitions round-robin among the subscription's consumers and
//! reads from offset 0 (topics are fresh per run). Nothing is committed in assign mode, so no
//! group coordinator is needed (librdkafka still wants a group id to accept `assign`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::payload::Header;
use crate::producer::{ClientErrors, ErrorKinds};
use crate::schedule::RunClock;
use crate::stats::{LatencyHistogram, LiveCounters, Receipt, SubscriptionLedger};
use crate::workload::{ConsumerMode, Workload};

/// One poll's wait; bounds how long a stop request takes to be noticed.
const POLL_TIMEOUT_MS: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("creating consumer {0}: {1}")]
    Create(String, KafkaError),
    #[error("consumer {0} subscribing/assigning: {1}")]
    Assign(String, KafkaError),
}

/// Everything one consumer thread needs.
pub struct ConsumerPlan {
    pub label: String,
    pub bootstrap: String,
    pub topic: String,
    /// Consumer index within its subscription.
    pub index: u32,
    pub group_id: Option<String>,
    pub workload: Arc<Workload>,
    pub clock: RunClock,
    pub run_tag: u32,
    /// The measured window, published when producers start (until then `u64::MAX`, so
    /// nothing is recorded).
    pub measure_from_ns: Arc<AtomicU64>,
    pub measure_to_ns: Arc<AtomicU64>,
    pub ledger: Arc<SubscriptionLedger>,
    pub counters: Arc<LiveCounters>,
    pub errors: Arc<ErrorKinds>,
    pub e2e_latency: Arc<Mutex<LatencyHistogram>>,
    /// Partitions currently assigned, for the "wait until the group is balanced" step.
    pub assigned_partitions: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
}

fn client_config(plan: &ConsumerPlan) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &plan.bootstrap)
        .set("client.id", format!("sluice-bench-{}", plan.label))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    match &plan.group_id {
        Some(group) => {
            config
                .set("group.id", group)
                .set("enable.auto.commit", "true");
        }
        None => {
            // librdkafka's assign() needs a group id, but nothing here makes it use the group:
            // offsets are explicit and never committed.
            config
                .set("group.id", format!("sluice-bench-assign-{}", plan.run_tag))
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false");
        }
    }
    for (k, v) in &plan.workload.consumer_config {
        config.set(k, v);
    }
    config
}

/// Creates the client and subscribes or assigns.
pub fn start(plan: &ConsumerPlan) -> Result<BaseConsumer<ClientErrors>, ConsumerError> {
    let context = ClientErrors {
        label: plan.label.clone(),
        kinds: plan.errors.clone(),
    };
    let consumer: BaseConsumer<ClientErrors> = client_config(plan)
        .create_with_context(context)
        .map_err(|e| ConsumerError::Create(plan.label.clone(), e))?;
    match plan.workload.consumer_mode {
        ConsumerMode::Group => consumer
            .subscribe(&[plan.topic.as_str()])
            .map_err(|e| ConsumerError::Assign(plan.label.clone(), e))?,
        ConsumerMode::Assign => {
            let partitions = assigned_partitions(
                plan.workload.partitions_per_topic,
                plan.workload.consumers_per_subscription,
                plan.index,
            );
            let mut list = TopicPartitionList::new();
            // Topics are created fresh for each run, so offset 0 is the beginning; naming it
            // spares a ListOffsets round trip before the first Fetch.
            for p in &partitions {
                list.add_partition_offset(&plan.topic, *p, Offset::Offset(0))
                    .map_err(|e| ConsumerError::Assign(plan.label.clone(), e))?;
            }
            consumer
                .assign(&list)
                .map_err(|e| ConsumerError::Assign(plan.label.clone(), e))?;
            plan.assigned_partitions
                .store(partitions.len(), Ordering::Relaxed);
        }
    }
    Ok(consumer)
}

/// Assign mode: consumer `index` of `consumers` takes partitions `index, index + consumers, ...`.
pub fn assigned_partitions(partitions: u32, consumers: u32, index: u32) -> Vec<i32> {
    assert!(index < consumers, "consumer index in range");
    (0..partitions)
        .filter(|p| p % consumers == index)
        .filter_map(|p| i32::try_from(p).ok())
        .collect()
}

/// The poll loop; returns when `stop` is set.
pub fn run_consumer(plan: ConsumerPlan, consumer: BaseConsumer<ClientErrors>) {
    let group_mode = plan.group_id.is_some();
    let mut polls = 0u64;
    while !plan.stop.load(Ordering::Relaxed) {
        let polled = consumer.poll(Duration::from_millis(POLL_TIMEOUT_MS));
        let now_ns = plan.clock.now_ns();
        match polled {
            None => {}
            Some(Err(e)) => {
                LiveCounters::add(&plan.counters.consume_errors, 1);
                if plan.errors.count(format!("consume: {e}")) {
                    eprintln!("[{}] consume error: {e}", plan.label);
                }
            }
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or(&[]);
                record_message(&plan, payload, now_ns);
            }
        }
        polls += 1;
        // Group membership changes inside poll; publish the assignment size now and then.
        if group_mode && polls % 64 == 1 {
            if let Ok(list) = consumer.assignment() {
                plan.assigned_partitions
                    .store(list.count(), Ordering::Relaxed);
            }
        }
    }
    if group_mode {
        // Leave the group promptly so a following run does not wait for a session timeout.
        consumer.unsubscribe();
    }
}

fn record_message(plan: &ConsumerPlan, payload: &[u8], now_ns: u64) {
    LiveCounters::add(&plan.counters.consumed_msgs, 1);
    LiveCounters::add(&plan.counters.consumed_bytes, payload.len() as u64);
    let header = match Header::read_from(payload) {
        Ok(h) if h.run_tag == plan.run_tag => h,
        _ => {
            plan.ledger.record_foreign();
            return;
        }
    };
    if plan.ledger.record(header.producer, header.seq) == Receipt::Foreign {
        return;
    }
    let from = plan.measure_from_ns.load(Ordering::Relaxed);
    let to = plan.measure_to_ns.load(Ordering::Relaxed);
    if (from..to).contains(&header.intended_ns) {
        let mut hist = match plan.e2e_latency.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        hist.record_ns(now_ns.saturating_sub(header.intended_ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_mode_covers_every_partition_once() {
        let mut all: Vec<i32> = (0..4).flat_map(|i| assigned_partitions(10, 4, i)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<i32>>());
        assert_eq!(assigned_partitions(10, 4, 0), vec![0, 4, 8]);
        // More consumers than partitions: the extras idle.
        assert!(assigned_partitions(2, 4, 3).is_empty());
    }
}
