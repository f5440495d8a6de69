//! Log compaction through the real broker with librdkafka: kill -9 while the cleaner runs
//! (throttled, so the kills land mid-clean) never corrupts the log or loses the latest record
//! of a key, and once the cleaner finishes a consumer sees one record per key of the sealed
//! segments, each at the offset its produce was acknowledged at.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::kafka::{self, Received, TestRecord};
use common::{block_on, unique_name, wait_until, Broker, BrokerOpts};
use rdkafka::admin::{AlterConfig, ResourceSpecifier};

const KEYS: usize = 40;

/// Checks what a consumer reads against what was acknowledged: every record is the one
/// produced at its offset (nothing corrupted or renumbered), in offset order, and the latest
/// acknowledged record of every key is there.
fn assert_consistent(sent: &[TestRecord], acked: &HashMap<usize, (i32, i64)>, got: &[Received]) {
    let by_offset: HashMap<i64, &TestRecord> =
        acked.iter().map(|(id, (_, o))| (*o, &sent[*id])).collect();
    let mut prev = -1;
    for r in got {
        assert!(
            r.offset > prev,
            "offsets in order: {} after {prev}",
            r.offset
        );
        prev = r.offset;
        let rec = by_offset
            .get(&r.offset)
            .unwrap_or_else(|| panic!("offset {} was never acknowledged", r.offset));
        assert_eq!(
            r.key.as_deref(),
            Some(rec.key.as_bytes()),
            "key at offset {}",
            r.offset
        );
        assert_eq!(
            r.value.as_deref(),
            Some(rec.value.as_slice()),
            "value at offset {}",
            r.offset
        );
    }
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for (id, (_, o)) in acked {
        let e = latest.entry(sent[*id].key.as_str()).or_insert(*o);
        *e = (*e).max(*o);
    }
    for (key, offset) in latest {
        assert!(
            got.iter().any(|r| r.offset == offset),
            "latest record of {key} (offset {offset}) lost"
        );
    }
}

#[test]
fn kill_9_during_cleaning_keeps_the_log_whole() {
    let config =
        "\"log.cleaner.backoff.ms\" = 50\n\"log.cleaner.io.max.bytes.per.second\" = 400000.0\n";
    let mut broker = Broker::start(BrokerOpts::default().cores(1).config(config));
    let topic = unique_name("compacted");
    // Not compacted while it fills, so the first clean has the whole log to do.
    let topic_config = [
        ("cleanup.policy", "delete"),
        ("segment.bytes", "32768"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("segment.ms", "300"),
    ];
    kafka::create_topic_with(&broker, &topic, 1, &topic_config);
    let mut sent = kafka::keyed_records(8_000, KEYS, 200);
    // The last record's CreateTime is well past segment.ms after the first one's, so it rolls
    // the segment (Kafka's timeWaitedForRoll compares record timestamps, not the wall clock)
    // and every earlier record is in a sealed, cleanable segment.
    if let Some(last) = sent.last_mut() {
        last.timestamp_ms += 10_000;
    }
    let producer = kafka::producer(
        &broker,
        &[
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("batch.size", "16384"),
        ],
    );
    let mut acked = kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &sent[..sent.len() - 1],
        Some(0),
    ));
    let last = kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &sent[sent.len() - 1..],
        Some(0),
    ));
    acked.extend(last);
    drop(producer);
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&topic));
    for (k, v) in topic_config {
        alter = alter.set(k, if k == "cleanup.policy" { "compact" } else { v });
    }
    let admin = kafka::admin(&broker);
    block_on(admin.alter_configs([&alter], &kafka::admin_opts()))
        .unwrap_or_else(|e| panic!("AlterConfigs: {e}"));
    drop(admin);

    for round in 0..3u64 {
        std::thread::sleep(Duration::from_millis(150 + 170 * round));
        let cleaning = broker.log_text().matches("cleaned log").count();
        broker.kill9();
        let restarted = std::time::SystemTime::now();
        broker.start_again();
        let text = broker.log_text();
        eprintln!(
            "round {round}: {cleaning} cleans before the kill; recovery: unfinished={} swap={}",
            text.matches("unfinished clean").count(),
            text.matches("interrupted cleaned-segment swap").count()
        );
        let got = kafka::consume_all(&broker, &topic, 1);
        assert_consistent(&sent, &acked, &got);
        for suffix in [".cleaned", ".swap"] {
            let left: Vec<_> = common::list_files(&broker.data_dir())
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                // A clean the restarted broker began may already be writing its own files.
                .filter(|p| {
                    std::fs::metadata(p)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t < restarted)
                })
                .collect();
            assert!(left.is_empty(), "round {round}: {left:?}");
        }
    }
    // Left alone, the cleaner finishes: one record per key in the sealed segments, plus the
    // last record alone in the active segment (never cleaned).
    let mut got = Vec::new();
    wait_until(Duration::from_secs(60), "log compacted", || {
        got = kafka::consume_all(&broker, &topic, 1);
        got.len() <= KEYS + 1
    });
    assert_consistent(&sent, &acked, &got);
    assert!(broker.log_text().contains("cleaned log"));
    // The cleaner's work shows in the metrics of this (restarted) broker. The kills may have
    // let the whole log be cleaned before the last restart, leaving this broker nothing to
    // do; a second round of updates to the same keys (sealed by size) gives it a clean.
    let more: Vec<TestRecord> = kafka::keyed_records(16_000, KEYS, 200).split_off(sent.len());
    // Batches within the 32 KiB segments (a larger one is refused, breaker B16).
    let producer = kafka::producer(
        &broker,
        &[
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("batch.size", "16384"),
        ],
    );
    acked.extend(kafka::assert_all_acked(&kafka::produce(
        &producer,
        &topic,
        &more,
        Some(0),
    )));
    drop(producer);
    sent.extend(more);
    wait_until(Duration::from_secs(60), "this broker cleaned", || {
        scrape(&broker).sum("sluice_log_cleaner_runs_total", &[]) >= 1.0
    });
    assert_consistent(&sent, &acked, &kafka::consume_all(&broker, &topic, 1));
    let exp = scrape(&broker);
    assert!(exp.sum("sluice_log_cleaner_read_bytes_total", &[]) > 0.0);
    assert!(exp.sum("sluice_log_cleaner_written_bytes_total", &[]) > 0.0);
    assert_eq!(exp.sum("sluice_log_cleaner_errors_total", &[]), 0.0);
    let ratio_series = exp
        .samples
        .iter()
        .filter(|s| {
            s.name == "sluice_log_cleaner_dirty_ratio" && s.label("topic") == Some(topic.as_str())
        })
        .count();
    assert_eq!(
        ratio_series, 1,
        "one dirty-ratio gauge for the compacted partition"
    );
}

fn scrape(broker: &Broker) -> sluice::metrics::text::Exposition {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(broker.admin_addr()).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    sluice::metrics::text::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}
