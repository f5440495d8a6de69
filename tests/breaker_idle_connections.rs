//! Breaker finding B13: Kafka's `connections.max.idle.ms` (default 10 minutes). Sluice had no
//! idle expiry at all: a connection that sent nothing (a client gone without a FIN, or one that
//! stopped half-way through a frame) was held forever, and `max.connections.per.shard` of them
//! locked every new client out. Now an idle connection is closed after the limit, while a
//! connection that keeps sending requests, or whose request is a long poll longer than the
//! limit, stays open. A client that never reads its responses holds a blocked write: as
//! Kafka's selector counts only bytes moved, it is closed after the limit too.

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
use std::time::{Duration, Instant};

use common::wire::{self, Outcome};
use common::{kafka, unique_name, Broker, BrokerOpts};
use kafka_protocol::messages::ApiKey;

const IDLE_MS: u64 = 1_000;
/// A long poll well past the idle limit.
const LONG_POLL_MS: i32 = 2_500;

fn api_versions(stream: &mut TcpStream, correlation_id: i32) -> Outcome {
    let request = wire::frame(&wire::request_header(
        wire::API_VERSIONS,
        0,
        correlation_id,
        false,
    ));
    wire::send(stream, &request);
    wire::read_outcome(stream)
}

/// Waits for the broker to close `stream` and returns how long that took.
fn time_to_close(stream: &mut TcpStream, what: &str) -> Duration {
    let started = Instant::now();
    wire::assert_closed(stream, what);
    started.elapsed()
}

#[test]
fn idle_connections_are_closed_and_busy_ones_are_kept() {
    let broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .config(&format!("\"connections.max.idle.ms\" = {IDLE_MS}\n")),
    );
    let addr = broker.socket_addr();

    // A connection that never sends a byte.
    let mut silent = wire::connect(addr);
    let took = time_to_close(&mut silent, "a connection that sent nothing");
    assert!(
        took >= Duration::from_millis(IDLE_MS * 8 / 10),
        "closed after {took:?}, before connections.max.idle.ms"
    );

    // A connection that stopped inside a frame's size prefix.
    let mut partial = wire::connect(addr);
    wire::send(&mut partial, &[0, 0]);
    time_to_close(&mut partial, "a connection that stopped inside a frame");

    // A connection sending a request every quarter of the limit, for three limits.
    let mut busy = wire::connect(addr);
    let until = Instant::now() + Duration::from_millis(IDLE_MS * 3);
    let mut correlation_id = 0;
    while Instant::now() < until {
        correlation_id += 1;
        let outcome = api_versions(&mut busy, correlation_id);
        assert!(
            matches!(outcome, Outcome::Response(_)),
            "a busy connection was not answered: {outcome:?}"
        );
        thread::sleep(Duration::from_millis(IDLE_MS / 4));
    }

    // A long poll longer than the limit is answered, and the connection stays usable.
    let topic = unique_name("idle-long-poll");
    kafka::create_topic(&broker, &topic, 1);
    kafka::wait_for_topic(&broker, &topic, 1);
    let mut polling = wire::connect(addr);
    let fetch = wire::fetch_one(&topic, 0, 0, LONG_POLL_MS, 1 << 20);
    let started = Instant::now();
    wire::send(
        &mut polling,
        &wire::encode_request(ApiKey::Fetch, 11, 1, "idle-test", &fetch),
    );
    let outcome = wire::read_outcome(&mut polling);
    assert!(
        matches!(outcome, Outcome::Response(_)),
        "the long poll was not answered: {outcome:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(IDLE_MS),
        "the long poll did not wait past the idle limit"
    );
    let outcome = api_versions(&mut polling, 2);
    assert!(
        matches!(outcome, Outcome::Response(_)),
        "the connection was closed after its long poll: {outcome:?}"
    );
}

/// Reads what the broker sent until it closes the connection (true) or sends nothing more
/// for two seconds (false); the bytes read.
fn drain(stream: &mut TcpStream) -> (usize, bool) {
    use std::io::{ErrorKind, Read};
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = vec![0_u8; 1 << 16];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (total, false)
            }
            Err(_) => return (total, true),
        }
    }
}

#[test]
fn a_client_that_never_reads_its_response_is_closed_after_the_limit() {
    const RECORDS: usize = 8;
    const VALUE_BYTES: usize = 900_000;
    let broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .config(&format!("\"connections.max.idle.ms\" = {IDLE_MS}\n")),
    );
    let topic = unique_name("idle-never-reads");
    kafka::create_topic(&broker, &topic, 1);
    kafka::wait_for_topic(&broker, &topic, 1);
    let producer = kafka::producer(&broker, &[]);
    let records = kafka::keyed_records(RECORDS, RECORDS, VALUE_BYTES);
    kafka::assert_all_acked(&kafka::produce(&producer, &topic, &records, Some(0)));
    drop(producer);
    let open = || broker.scrape().sum("sluice_connections_active", &[]);
    common::wait_until(
        Duration::from_secs(30),
        "the producer's connections to close",
        || open() == 0.0,
    );

    // A 4 KiB receive window: the ~7 MB response blocks the broker's write at once.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&broker.socket_addr().into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let fetch = wire::fetch_one(&topic, 0, 0, 0, 50 << 20);
    let started = Instant::now();
    wire::send(
        &mut stream,
        &wire::encode_request(ApiKey::Fetch, 11, 1, "never-reads", &fetch),
    );
    common::wait_until(Duration::from_secs(1), "the connection to open", || {
        open() == 1.0
    });
    common::wait_until(
        Duration::from_secs(30),
        "the broker to close a connection whose client never reads",
        || open() == 0.0,
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(IDLE_MS * 8 / 10),
        "closed after {took:?}, before connections.max.idle.ms"
    );
    let (read, closed) = drain(&mut stream);
    assert!(closed, "the broker did not close the connection");
    assert!(
        read < RECORDS * VALUE_BYTES,
        "the whole response ({read} bytes) was written: the write never blocked"
    );
}
