//! Breaker finding B15: on the copy paths (TLS listeners, `fetch.zero.copy = false`) a fetch
//! response's record bytes were read into memory whole before being written, so every client
//! that stopped reading held a whole response (up to `fetch.max.bytes`, 55 MiB) in the broker:
//! memory grew with stalled connections times fetch size (30 TLS connections with an unread
//! 20 MB fetch: +575 MiB RSS). Kafka's transport reads a file a buffer at a time. Now a file
//! range is read and written in pieces of `COPY_PIECE_BYTES_MAX` (1 MiB), so a stalled
//! connection holds about one piece.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::{kafka, unique_name, wire, Broker, BrokerOpts};
use kafka_protocol::messages::ApiKey;

const RECORDS: usize = 14;
const VALUE_BYTES: usize = 900_000;
const STALLED: usize = 16;
/// Without pieces each stalled connection holds its whole ~12.6 MB response: 16 of them grow
/// the broker by about 200 MiB. With them, about 16 MiB.
const GROWTH_MAX_BYTES: u64 = 64 << 20;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// A connection with a tiny receive buffer that asks for the whole partition and never reads.
fn stalled_fetch(broker: &Broker, topic: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&broker.socket_addr().into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let fetch = wire::fetch_one(topic, 0, 0, 0, 50 << 20);
    wire::send(
        &mut stream,
        &wire::encode_request(ApiKey::Fetch, 11, 1, "stalled", &fetch),
    );
    stream
}

#[test]
fn a_client_that_stops_reading_holds_one_piece_of_its_response() {
    let broker = Broker::start(BrokerOpts::default().cores(1).config(
        "\"fetch.zero.copy\" = false\n\"fetch.copy.pool.bytes\" = 1048576\n\
         \"connections.max.idle.ms\" = -1\n",
    ));
    let pid = broker.pid().unwrap();
    let topic = unique_name("slow-reader");
    kafka::create_topic(&broker, &topic, 1);
    kafka::wait_for_topic(&broker, &topic, 1);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(RECORDS, RECORDS, VALUE_BYTES);
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(0)));
    drop(producer);

    let before = rss_bytes(pid);
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| stalled_fetch(&broker, &topic))
        .collect();
    // Let every writer fill its socket buffers and stall (the growth only rises meanwhile).
    thread::sleep(Duration::from_secs(3));
    let after = rss_bytes(pid);
    let growth = after.saturating_sub(before);
    assert!(
        growth < GROWTH_MAX_BYTES,
        "{STALLED} stalled fetches grew the broker by {} MiB (at most {} MiB expected)",
        growth >> 20,
        GROWTH_MAX_BYTES >> 20
    );
    drop(stalled);
    // The broker still serves everything.
    let (log_start, high_watermark) = kafka::watermarks(&broker, &topic, 1)[0];
    assert_eq!((log_start, high_watermark), (0, RECORDS as i64));
}
