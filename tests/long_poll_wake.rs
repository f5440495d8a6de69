//! A long-polling Fetch is answered when a record is appended to one of its partitions, not
//! at its `max_wait_ms`: the append wakes the waiting fetch whether the partition lives on the
//! connection's shard or on another one (the cross-shard `Wait`). Each round parks a sessionless
//! Fetch (min_bytes 1, max_wait_ms 8 s, under the test wire client's 10 s reply timeout) on every partition at its log end, appends one record
//! to one partition, and checks that the fetch came back after the append, well before its
//! deadline, with that record and nothing else.
//!
//! The bound is generous (a missed wake-up shows as the 8 s deadline, not as a few ms): this
//! pins the wake-up, not a speed (latency is measured in BENCHMARKS.md, "Low-load latency").

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::kafka::{self, TestRecord};
use common::{unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Enough partitions that both shards of a 2-core broker own some.
const PARTITIONS: i32 = 4;
/// The fetch's max_wait_ms: what a missed wake-up would wait for.
const MAX_WAIT_MS: i32 = 8_000;
/// Time from the append to the fetch's answer that counts as woken (far below MAX_WAIT_MS,
/// far above a loaded 2-core test machine's scheduling noise).
const WOKEN_WITHIN: Duration = Duration::from_secs(4);
/// How long the fetch gets to reach the broker and park before the append (the client cannot
/// see the park; a fetch that has not parked yet still gets the record, just without waiting).
const PARK_TIME: Duration = Duration::from_millis(300);

fn long_poll(broker: &Broker, topic: &str, offsets: &[i64]) -> FetchResponse {
    let partitions = offsets
        .iter()
        .enumerate()
        .map(|(p, offset)| {
            FetchPartition::default()
                .with_partition(p as i32)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions)]);
    wire::call(broker.socket_addr(), ApiKey::Fetch, 11, &request)
}

fn record(id: usize) -> TestRecord {
    TestRecord {
        id,
        key: format!("k{id}"),
        seq: id as u64,
        value: vec![b'v'; 100],
        headers: Vec::new(),
        timestamp_ms: 1_700_000_000_000,
    }
}

#[test]
fn append_wakes_a_long_polling_fetch_on_any_shard() {
    let broker = Broker::start(BrokerOpts::default().cores(2));
    let topic = unique_name("long-poll-wake");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    kafka::wait_for_topic(&broker, &topic, PARTITIONS);
    let producer = kafka::producer(&broker, &[("linger.ms", "0")]);
    let mut log_ends = vec![0i64; PARTITIONS as usize];
    for (round, target) in (0..PARTITIONS).chain(0..PARTITIONS).enumerate() {
        let fetch = thread::scope(|scope| {
            let offsets = log_ends.clone();
            let (broker, topic) = (&broker, topic.as_str());
            let waiting = scope.spawn(move || {
                let response = long_poll(broker, topic, &offsets);
                (response, Instant::now())
            });
            thread::sleep(PARK_TIME);
            let appended_at = Instant::now();
            kafka::send_one(&producer, topic, &record(round), Some(target));
            let deliveries = kafka::flush_all(&producer, 1);
            kafka::assert_all_acked(&deliveries);
            let (response, answered_at) = waiting.join().expect("fetch thread");
            (response, appended_at, answered_at)
        });
        let (response, appended_at, answered_at) = fetch;
        let waited = answered_at.saturating_duration_since(appended_at);
        assert!(
            answered_at > appended_at,
            "round {round}: the fetch was answered before the append"
        );
        assert!(
            waited < WOKEN_WITHIN,
            "round {round}: the fetch was answered {waited:?} after the append to partition \
             {target} (max_wait_ms {MAX_WAIT_MS}): the append did not wake it"
        );
        assert_eq!(response.error_code, 0);
        let with_records: Vec<i32> = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(with_records, vec![target], "round {round}");
        log_ends[target as usize] += 1;
    }
}
