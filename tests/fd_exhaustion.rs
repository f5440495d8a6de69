//! A broker out of file descriptors because of client connections keeps running: the log
//! cleaner, which opens files for every clean, gives the clean up and retries it later instead
//! of stopping the process as it does for a disk fault. Found by flooding a broker with idle
//! connections (20,000 = 2 shards x `max.connections.per.shard`, the whole default fd limit)
//! while a compacted topic was due for cleaning: the broker exited with
//! "fatal: log cleaner I/O error ... Too many open files".
//!
//! This test lowers its own process's fd limit (inherited by the broker it spawns), so it is the
//! only test of this file: a test binary is one process.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::Duration;

use common::kafka::{self, TestRecord};
use common::{unique_name, wait_until, Broker, BrokerOpts};

/// The fd limit (soft and hard) of this test process and of its broker.
const FD_LIMIT: u64 = 320;
/// Descriptors this process keeps for itself beyond the flood connections.
const OWN_FDS_RESERVE: u64 = 40;
const KEYS: usize = 10;
/// Records stay uncleanable this long, so the flood is in place before the first clean.
const MIN_COMPACTION_LAG_MS: u64 = 4_000;

fn lower_own_fd_limit(limit: u64) {
    let wanted = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit with a local struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn cleaner_out_of_fds_retries_instead_of_stopping_the_broker() {
    lower_own_fd_limit(FD_LIMIT);
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .config("\"log.cleaner.backoff.ms\" = 100\n"),
    );
    let topic = unique_name("fds");
    let lag = MIN_COMPACTION_LAG_MS.to_string();
    kafka::create_topic_with(
        &broker,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            // Each 50-record batch (~3.1 KB) fits one segment (a larger one is refused,
            // RECORD_LIST_TOO_LARGE, breaker B16) and two do not: one batch per segment.
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", &lag),
            // The lag counts from record timestamps: stamp them now.
            ("message.timestamp.type", "LogAppendTime"),
        ],
    );
    let records: Vec<TestRecord> = kafka::keyed_records(400, KEYS, 40);
    // One flush per chunk: each chunk is a batch filling most of a segment, so segments roll.
    let mut acked = HashMap::new();
    {
        let producer = kafka::producer(&broker, &[("linger.ms", "0")]);
        for chunk in records.chunks(50) {
            let deliveries = kafka::produce(&producer, &topic, chunk, Some(0));
            acked.extend(kafka::assert_all_acked(&deliveries));
        }
    }

    // Flood: more idle connections than the broker has descriptors left.
    let mut flood = Vec::new();
    for _ in 0..FD_LIMIT - OWN_FDS_RESERVE {
        match TcpStream::connect(broker.socket_addr()) {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    assert!(flood.len() > 200, "only {} connections", flood.len());
    wait_until(
        Duration::from_secs(30),
        "the cleaner ran out of fds",
        || broker.log_text().contains("log cleaner gave up a clean") || !broker.is_running(),
    );
    assert!(
        broker.is_running(),
        "broker stopped:\n{}",
        broker.log_text()
    );
    drop(flood);

    wait_until(Duration::from_secs(30), "a clean succeeded", || {
        broker.log_text().contains("cleaned log") || !broker.is_running()
    });
    assert!(
        broker.is_running(),
        "broker stopped:\n{}",
        broker.log_text()
    );

    // The latest acknowledged value of every key is there.
    let mut latest: HashMap<&str, (i64, &[u8])> = HashMap::new();
    for (id, (_, offset)) in &acked {
        let rec = &records[*id];
        let e = latest
            .entry(rec.key.as_str())
            .or_insert((*offset, rec.value.as_slice()));
        if *offset > e.0 {
            *e = (*offset, rec.value.as_slice());
        }
    }
    let got = kafka::consume_all(&broker, &topic, 1);
    assert!(got.len() < records.len(), "nothing was cleaned");
    for (key, (offset, value)) in latest {
        let r = got
            .iter()
            .find(|r| r.offset == offset)
            .unwrap_or_else(|| panic!("latest record of {key} (offset {offset}) lost"));
        assert_eq!(r.value.as_deref(), Some(value), "value of {key}");
    }
    broker.stop();
}
