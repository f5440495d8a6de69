//! Transactional producers and read-back for the transaction tests (`tests/transactions.rs`,
//! `tests/txn_cluster.rs`): a librdkafka producer whose transactions are initialised, records
//! sent to a chosen partition, and a consumer's values read back from the start of every
//! partition.
//!
//! Invariants: every wait has a deadline (`kafka::CALL_TIMEOUT`, `kafka::CONSUME_TIMEOUT`);
//! values come back sorted, so tests compare sets of values whatever the partition order.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::cluster::{Cluster, ClusterOpts};
use super::kafka::{CALL_TIMEOUT, CONSUME_TIMEOUT};

pub type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// A three-node cluster's transaction settings for tests: few coordinator partitions, no
/// rebalance delay, transaction timeouts up to a minute.
const TXN_CLUSTER_TOML: &str = r#"
"group.initial.rebalance.delay.ms" = 0
"offsets.topic.num.partitions" = 3
"transaction.state.log.num.partitions" = 3
"transaction.max.timeout.ms" = 60000
"#;

/// A three-node cluster with [`TXN_CLUSTER_TOML`] and `extra_toml`.
pub fn txn_cluster(extra_toml: &str) -> Cluster {
    Cluster::start(ClusterOpts {
        extra_toml: format!("{TXN_CLUSTER_TOML}{extra_toml}"),
        ..ClusterOpts::default()
    })
}

/// How long a read waits with nothing new once it has what it expected, so that records
/// beyond the expected ones would be seen too.
const QUIET: Duration = Duration::from_secs(1);

/// A producer of `config` (which names `transactional.id`) with its transactions initialised.
pub fn transactional(config: &ClientConfig) -> TxnProducer {
    let producer: TxnProducer = config.create().expect("transactional producer");
    producer
        .init_transactions(CALL_TIMEOUT)
        .expect("init_transactions");
    producer
}

/// Enqueues `value` for `partition` of `topic`.
pub fn send(producer: &TxnProducer, topic: &str, partition: i32, value: &str) {
    producer
        .send(
            BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(value),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
}

/// Assigns `consumer` every partition of `topic` from the beginning.
fn assign_from_start(consumer: &BaseConsumer, topic: &str, partitions: i32) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap_or_else(|e| panic!("assign {topic}/{p}: {e}"));
    }
    consumer
        .assign(&tpl)
        .unwrap_or_else(|e| panic!("assign {topic}: {e}"));
}

/// When a read of [`read_values`] ends (or at [`CONSUME_TIMEOUT`]).
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// At least this many values, then a quiet second (so extra records would be seen).
    Quiet(usize),
    /// This many values.
    Count(usize),
}

/// The values of `topic` that `consumer` reads from the start of every partition until
/// `until`; sorted.
pub fn read_values(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    until: Until,
) -> Vec<String> {
    read_until(consumer, topic, partitions, |values, quiet| match until {
        Until::Quiet(expected) => values.len() >= expected && quiet > QUIET,
        Until::Count(count) => values.len() >= count,
    })
}

/// Reads `topic` from the start until `done(values, time since the last one)` or
/// [`CONSUME_TIMEOUT`]; sorted.
fn read_until(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    done: impl Fn(&[String], Duration) -> bool,
) -> Vec<String> {
    assign_from_start(consumer, topic, partitions);
    let mut values = Vec::new();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut last = Instant::now();
    while Instant::now() < deadline && !done(&values, last.elapsed()) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            values
                .push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).expect("UTF-8"));
            last = Instant::now();
        }
    }
    sorted(values)
}

pub fn sorted(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.into_iter().collect();
    v.sort();
    v
}
