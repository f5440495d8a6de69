//! The admin endpoint's `/metrics` against a real broker: produce with librdkafka, scrape with a
//! raw HTTP/1.1 GET, parse the Prometheus text strictly and check the merged values; plus the
//! endpoint's answers to other paths and to malformed or oversized requests.
//!
//! Each test owns its broker (admin port chosen by the kernel, read from the broker's log).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::kafka;
use common::{unique_name, Broker, BrokerOpts};
use rdkafka::consumer::Consumer;
use sluice::metrics::text::{self, Exposition};

/// Deadline for one admin HTTP exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Partitions of the internal offsets topic in these tests (small: every shard opens them).
const OFFSETS_PARTITIONS: u32 = 3;

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is and reads the response until the server closes the connection.
fn http_exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect admin {addr}: {e}"));
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .unwrap_or_else(|e| panic!("set timeout: {e}"));
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("write request: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read response: {e}"));
    let raw = String::from_utf8(raw).unwrap_or_else(|e| panic!("response not UTF-8: {e}"));
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {line:?}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    };
    let length: usize = response
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    assert_eq!(
        length,
        response.body.len(),
        "Content-Length matches the body"
    );
    response
}

fn scrape(broker: &Broker) -> Exposition {
    let response = http_exchange(
        broker.admin_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(response.header("connection"), Some("close"));
    text::parse(&response.body)
        .unwrap_or_else(|e| panic!("invalid exposition: {e}\n{}", response.body))
}

fn broker_opts() -> BrokerOpts {
    BrokerOpts::default().config(&format!(
        "\"offsets.topic.num.partitions\" = {OFFSETS_PARTITIONS}\n"
    ))
}

#[test]
fn produce_traffic_shows_in_merged_metrics() {
    const MESSAGES: usize = 2_000;
    const PARTITIONS: i32 = 4;
    let broker = Broker::start(broker_opts());
    let before = scrape(&broker);
    assert_eq!(before.sum("sluice_messages_in_total", &[]), 0.0);

    let topic = unique_name("metrics");
    kafka::create_topic(&broker, &topic, PARTITIONS);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(MESSAGES, 50, 100);
    let deliveries = kafka::produce(&producer, &topic, &records, None);
    kafka::assert_all_acked(&deliveries);

    // The producer stays connected while scraping, so the connection gauge sees it.
    let m = scrape(&broker);
    let produce = [("api", "Produce")];
    assert!(m.sum("sluice_messages_in_total", &[]) >= MESSAGES as f64);
    let produce_requests = m.sum("sluice_requests_total", &produce);
    assert!(produce_requests > 0.0);
    assert_eq!(
        m.sum("sluice_request_duration_seconds_count", &produce),
        produce_requests
    );
    assert_eq!(
        m.sum(
            "sluice_request_duration_seconds_bucket",
            &[("api", "Produce"), ("le", "+Inf")]
        ),
        produce_requests
    );
    assert!(m.sum("sluice_request_duration_seconds_sum", &produce) > 0.0);
    assert_eq!(m.sum("sluice_request_errors_total", &produce), 0.0);
    assert!(m.sum("sluice_requests_total", &[("api", "Metadata")]) > 0.0);
    // Every record's value alone is 100 bytes.
    assert!(m.sum("sluice_received_bytes_total", &[]) > (MESSAGES * 100) as f64);
    assert!(m.sum("sluice_sent_bytes_total", &[]) > 0.0);
    assert!(m.sum("sluice_connections_active", &[]) >= 1.0);
    // acks=all: every produce waited for an fsync.
    assert!(m.sum("sluice_fsync_wait_seconds_count", &[]) > 0.0);
    assert!(m.sum("sluice_log_fsyncs_total", &[]) > 0.0);
    assert_eq!(m.sum("sluice_shards", &[]), common::default_cores() as f64);

    // Partitions owned, summed over shards, is every partition of every topic.
    let owned_per_shard: Vec<f64> = m
        .samples
        .iter()
        .filter(|s| s.name == "sluice_partitions_owned")
        .map(|s| s.value)
        .collect();
    assert_eq!(owned_per_shard.len(), common::default_cores());
    let expected = all_partitions(&broker);
    assert_eq!(
        expected,
        PARTITIONS as usize + OFFSETS_PARTITIONS as usize,
        "metadata lists the topic and __consumer_offsets"
    );
    assert_eq!(owned_per_shard.iter().sum::<f64>(), expected as f64);

    // Counters only grow between scrapes.
    let again = scrape(&broker);
    for name in [
        "sluice_messages_in_total",
        "sluice_received_bytes_total",
        "sluice_sent_bytes_total",
    ] {
        assert!(again.sum(name, &[]) >= m.sum(name, &[]), "{name}");
    }
    drop(producer);
}

/// Partitions of every topic Metadata lists (internal ones included).
fn all_partitions(broker: &Broker) -> usize {
    let consumer = kafka::consumer(broker);
    let md = consumer
        .fetch_metadata(None, kafka::CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    md.topics().iter().map(|t| t.partitions().len()).sum()
}

#[test]
fn admin_endpoint_answers_only_get_metrics_and_bounds_requests() {
    let broker = Broker::start(broker_opts());
    let admin = broker.admin_addr();
    for request in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /metricsz HTTP/1.1\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ] {
        let response = http_exchange(admin, request);
        assert_eq!(
            response.status,
            404,
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
    let garbage = http_exchange(admin, b"\x00\x01garbage\r\n\r\n");
    assert_eq!(garbage.status, 400);

    // A head far beyond the limit is refused without reading it all.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.resize(64 * 1024, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let refused = http_request_head_too_large(admin, &huge);
    assert!(refused, "oversized request head is refused");

    // The endpoint (and the broker) still serve afterwards.
    let m = scrape(&broker);
    assert_eq!(m.sum("sluice_shards", &[]), common::default_cores() as f64);
}

/// True if the server answers 431 or closes the connection while `request` is being sent.
fn http_request_head_too_large(addr: SocketAddr, request: &[u8]) -> bool {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect admin {addr}: {e}"));
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .unwrap_or_else(|e| panic!("set timeout: {e}"));
    // The server may close before taking everything: a write error is a refusal too.
    if stream.write_all(request).is_err() {
        return true;
    }
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => raw.is_empty() || raw.starts_with(b"HTTP/1.1 431"),
        // Reset because unread request bytes were left when the server closed.
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}
