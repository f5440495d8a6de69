//! Producer threads: drive load through librdkafka (`ThreadedProducer`, one client per
//! producer, as OMB does), either as fast as librdkafka accepts messages or on a fixed-rate
//! schedule, and record publish-to-ack latency from each delivery report.
//!
//! The delivery report carries the message back, so the header in its payload (intended time,
//! sequence number) is all the bookkeeping needed: no per-message allocation or opaque.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::payload::{Header, KeyChooser, PayloadBuilder, ProducerId, Seq};
use crate::schedule::{FixedRateSchedule, RunClock};
use crate::stats::{LatencyHistogram, LiveCounters, SeqSet, SEQ_MAX};
use crate::workload::Workload;

/// Distinct error kinds kept per client; further kinds are folded into "other".
pub const ERROR_KINDS_MAX: usize = 32;
/// How long a producer waits for outstanding deliveries after its last send.
pub const FLUSH_TIMEOUT_S: u64 = 30;
/// Back-off when librdkafka's local queue is full (max-rate mode hits this constantly).
const QUEUE_FULL_BACKOFF_US: u64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("creating producer {0}: {1}")]
    Create(u32, KafkaError),
}

/// Error counts by kind, bounded.
#[derive(Debug, Default)]
pub struct ErrorKinds {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl ErrorKinds {
    /// Counts one error; returns true the first time a kind is seen (worth printing).
    pub fn count(&self, kind: String) -> bool {
        let mut counts = match self.counts.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let key = if counts.contains_key(&kind) || counts.len() < ERROR_KINDS_MAX {
            kind
        } else {
            "other".to_string()
        };
        let slot = counts.entry(key).or_insert(0);
        *slot += 1;
        *slot == 1
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        match self.counts.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// librdkafka client-level errors (broker down, all brokers failed, ...): counted, first of
/// each kind printed, since the default handler logs to a logger we do not install.
pub struct ClientErrors {
    pub label: String,
    pub kinds: Arc<ErrorKinds>,
}

impl ClientContext for ClientErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.kinds.count(format!("client: {error}")) {
            eprintln!("[{}] librdkafka: {error}: {reason}", self.label);
        }
    }
}

/// Consumers use the same context; the default rebalance/commit callbacks are fine.
impl rdkafka::consumer::ConsumerContext for ClientErrors {}

/// What the delivery callback accumulates; shared with the progress reporter.
#[derive(Debug, Default)]
pub struct DeliveryState {
    pub publish_latency: LatencyHistogram,
    pub acked: SeqSet,
}

pub struct DeliveryContext {
    client: ClientErrors,
    clock: RunClock,
    window_ns: (u64, u64),
    state: Arc<Mutex<DeliveryState>>,
    counters: Arc<LiveCounters>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now_ns = self.clock.now_ns();
        match result {
            Ok(message) => {
                let payload = message.payload().unwrap_or(&[]);
                LiveCounters::add(&self.counters.acked_msgs, 1);
                LiveCounters::add(&self.counters.acked_bytes, payload.len() as u64);
                // Our own payload, echoed back by librdkafka: the header is always there.
                let Ok(header) = Header::read_from(payload) else {
                    return;
                };
                let mut state = match self.state.lock() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if header.seq.0 < SEQ_MAX {
                    state.acked.insert(header.seq);
                }
                let (from, to) = self.window_ns;
                if (from..to).contains(&header.intended_ns) {
                    state
                        .publish_latency
                        .record_ns(now_ns.saturating_sub(header.intended_ns));
                }
            }
            Err((error, _)) => {
                LiveCounters::add(&self.counters.produce_errors, 1);
                if self.client.kinds.count(format!("delivery: {error}")) {
                    eprintln!("[{}] delivery failed: {error}", self.client.label);
                }
            }
        }
    }
}

/// Everything one producer thread needs.
pub struct ProducerPlan {
    pub id: ProducerId,
    /// Index among all producers (the fixed-rate schedule interleaves by it).
    pub index: u32,
    pub producer_count: u32,
    pub topic: String,
    pub bootstrap: String,
    pub workload: Arc<Workload>,
    pub clock: RunClock,
    pub run_tag: u32,
    pub start_ns: u64,
    pub measure_start_ns: u64,
    pub end_ns: u64,
    pub counters: Arc<LiveCounters>,
    pub errors: Arc<ErrorKinds>,
    pub stop: Arc<AtomicBool>,
    pub label: String,
}

pub fn client_config(plan: &ProducerPlan) -> ClientConfig {
    let w = &plan.workload;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &plan.bootstrap)
        .set("client.id", format!("sluice-bench-p{}", plan.id.0))
        .set("acks", &w.acks)
        .set("batch.size", w.batch_size_bytes.to_string())
        .set("linger.ms", w.linger_ms.to_string())
        .set("compression.type", w.compression.librdkafka_name())
        .set(
            "message.max.bytes",
            (w.message_size_bytes as u64 + 1024)
                .max(1_000_000)
                .to_string(),
        );
    for (k, v) in &w.producer_config {
        config.set(k, v);
    }
    config
}

/// Creates the client; the caller runs [`run_producer`] on its own thread.
pub fn start(
    plan: &ProducerPlan,
) -> Result<(ThreadedProducer<DeliveryContext>, Arc<Mutex<DeliveryState>>), ProducerError> {
    let state = Arc::new(Mutex::new(DeliveryState::default()));
    let context = DeliveryContext {
        client: ClientErrors {
            label: plan.label.clone(),
            kinds: plan.errors.clone(),
        },
        clock: plan.clock,
        window_ns: (plan.measure_start_ns, plan.end_ns),
        state: state.clone(),
        counters: plan.counters.clone(),
    };
    let producer = client_config(plan)
        .create_with_context(context)
        .map_err(|e| ProducerError::Create(plan.id.0, e))?;
    Ok((producer, state))
}

/// The send loop; returns after the last delivery report (or the flush timeout).
pub fn run_producer(plan: ProducerPlan, producer: ThreadedProducer<DeliveryContext>) {
    let mut rng = fastrand::Rng::with_seed(u64::from(plan.id.0) ^ u64::from(plan.run_tag) << 32);
    let mut payloads = PayloadBuilder::new(&plan.workload, &mut rng);
    let mut keys = KeyChooser::new(&plan.workload, plan.id);
    let mut schedule = plan.workload.is_fixed_rate().then(|| {
        FixedRateSchedule::new(
            plan.start_ns,
            plan.workload.producer_rate_msgs_per_s,
            plan.index,
            plan.producer_count,
        )
    });
    let mut seq = 0u64;
    loop {
        let intended_ns = match schedule.as_mut() {
            Some(s) => s.next_intended_ns(),
            None => plan.clock.now_ns(),
        };
        if intended_ns >= plan.end_ns || plan.stop.load(Ordering::Relaxed) || seq >= SEQ_MAX {
            break;
        }
        if schedule.is_some() {
            FixedRateSchedule::wait_until(&plan.clock, intended_ns);
        }
        let header = Header {
            producer: plan.id,
            seq: Seq(seq),
            intended_ns,
            run_tag: plan.run_tag,
        };
        let key = keys.next_key(&mut rng);
        let payload = payloads.build(&header);
        let mut record = BaseRecord::to(&plan.topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        send_one(&plan, &producer, record);
        seq += 1;
    }
    if let Err(e) = producer.flush(Duration::from_secs(FLUSH_TIMEOUT_S)) {
        plan.errors.count(format!("flush: {e}"));
        eprintln!("[{}] flush: {e}", plan.label);
    }
}

fn send_one(
    plan: &ProducerPlan,
    producer: &ThreadedProducer<DeliveryContext>,
    mut record: BaseRecord<'_, str, [u8], ()>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => {
                LiveCounters::add(&plan.counters.sent_msgs, 1);
                return;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // Local queue full: the broker (or network) is the limit right now.
                if plan.stop.load(Ordering::Relaxed) {
                    return;
                }
                record = back;
                std::thread::sleep(Duration::from_micros(QUEUE_FULL_BACKOFF_US));
            }
            Err((e, _)) => {
                LiveCounters::add(&plan.counters.produce_errors, 1);
                if plan.errors.count(format!("send: {e}")) {
                    eprintln!("[{}] send failed: {e}", plan.label);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_bounded() {
        let kinds = ErrorKinds::default();
        assert!(kinds.count("a".into()));
        assert!(!kinds.count("a".into()));
        for i in 0..100 {
            kinds.count(format!("k{i}"));
        }
        let snap = kinds.snapshot();
        assert_eq!(snap.len(), ERROR_KINDS_MAX + 1, "capped plus 'other'");
        assert_eq!(snap.get("a"), Some(&2));
        assert!(snap.get("other").copied().unwrap_or(0) > 0);
    }
}
