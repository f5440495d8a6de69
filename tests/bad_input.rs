//! Malformed input over raw TCP must never take the broker down: garbage, absurd and
//! negative sizes, truncated frames, unknown API keys and unsupported versions each get a
//! closed connection or a Kafka error response, and afterwards the broker still serves real
//! clients with its earlier data intact.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::Shutdown;

use common::kafka;
use common::wire::{self, Outcome, API_VERSIONS, UNSUPPORTED_VERSION};
use common::{unique_name, Broker, BrokerOpts};

/// Produces a few records before the abuse and checks them (and new traffic) after it.
fn with_live_data(abuse: impl FnOnce(&mut Broker)) {
    let mut broker = Broker::start(BrokerOpts::default());
    let topic = unique_name("survivor");
    kafka::create_topic(&broker, &topic, 2);
    let before = kafka::keyed_records(1_000, 20, 100);
    let producer = kafka::producer(&broker, &[]);
    let acked = kafka::assert_all_acked(&kafka::produce(&producer, &topic, &before, None));
    drop(producer);

    abuse(&mut broker);

    assert!(
        broker.is_running(),
        "broker died; log:\n{}",
        broker.log_text()
    );
    assert_api_versions_v0_works(&broker);
    let received = kafka::consume_all(&broker, &topic, 2);
    kafka::assert_exactly_once(&before, &acked, &received);
    let fresh = unique_name("after-abuse");
    let records = kafka::keyed_records(500, 10, 100);
    kafka::round_trip(&broker, &fresh, 2, &records, &[]);
}

/// A well-formed ApiVersions v0 on a new connection is answered.
fn assert_api_versions_v0_works(broker: &Broker) {
    let mut conn = wire::connect(broker.socket_addr());
    wire::send(
        &mut conn,
        &wire::frame(&wire::request_header(API_VERSIONS, 0, 7, false)),
    );
    let Outcome::Response(body) = wire::read_outcome(&mut conn) else {
        panic!("ApiVersions v0 not answered");
    };
    let (correlation_id, error_code, keys) = wire::parse_api_versions_v0(&body);
    assert_eq!(correlation_id, 7);
    assert_eq!(error_code, 0);
    assert!(keys
        .iter()
        .any(|&(key, min, _)| key == API_VERSIONS && min == 0));
}

#[test]
fn garbage_bytes_close_the_connection() {
    with_live_data(|broker| {
        // "GET " read as a size is ~1.2 GB: far over any request limit.
        let mut conn = wire::connect(broker.socket_addr());
        wire::send(&mut conn, b"GET / HTTP/1.1\r\nHost: sluice\r\n\r\n");
        wire::assert_closed(&mut conn, "HTTP request");

        // A plausible size around random bytes: the header cannot be decoded.
        let mut conn = wire::connect(broker.socket_addr());
        let junk: Vec<u8> = (0..64_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut payload = vec![0x7f, 0x13, 0x00, 0x00];
        payload.extend_from_slice(&junk);
        wire::send(&mut conn, &wire::frame(&payload));
        let outcome = wire::read_outcome(&mut conn);
        assert_eq!(outcome, Outcome::Closed, "undecodable header");
    });
}

#[test]
fn absurd_sizes_close_the_connection() {
    with_live_data(|broker| {
        for size in [0x7fff_ffff_i32, -1, i32::MIN, 0] {
            let mut conn = wire::connect(broker.socket_addr());
            wire::send(&mut conn, &size.to_be_bytes());
            wire::send(&mut conn, &[0_u8; 16]);
            wire::assert_closed(&mut conn, &format!("size prefix {size:#x}"));
        }
    });
}

#[test]
fn truncated_requests_close_the_connection() {
    with_live_data(|broker| {
        // Size says 100 bytes, 10 arrive, then the client half-closes.
        let mut conn = wire::connect(broker.socket_addr());
        let header = wire::request_header(API_VERSIONS, 0, 1, false);
        let mut bytes = 100_i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&header[..10]);
        wire::send(&mut conn, &bytes);
        conn.shutdown(Shutdown::Write).ok();
        wire::assert_closed(&mut conn, "truncated frame then EOF");

        // A complete frame whose header stops inside client_id.
        let mut conn = wire::connect(broker.socket_addr());
        wire::send(&mut conn, &wire::frame(&header[..header.len() - 3]));
        wire::assert_closed(&mut conn, "header cut inside client_id");

        // Size prefix itself cut short.
        let mut conn = wire::connect(broker.socket_addr());
        wire::send(&mut conn, &[0, 0]);
        conn.shutdown(Shutdown::Write).ok();
        wire::assert_closed(&mut conn, "two bytes then EOF");
    });
}

#[test]
fn unknown_api_key_is_refused() {
    with_live_data(|broker| {
        let mut conn = wire::connect(broker.socket_addr());
        wire::send(
            &mut conn,
            &wire::frame(&wire::request_header(999, 0, 42, false)),
        );
        // Kafka closes the connection; an error response with our correlation id is also fine.
        match wire::read_outcome(&mut conn) {
            Outcome::Closed => {}
            Outcome::Response(body) => {
                let mut c = wire::Cursor::new(&body);
                assert_eq!(c.i32(), 42, "correlation id");
                assert!(c.remaining() >= 2, "an error code follows");
                assert_ne!(c.i16(), 0, "an error, not success");
            }
            Outcome::Silent => panic!("unknown api key: neither closed nor answered"),
        }
    });
}

#[test]
fn api_versions_with_unsupported_version_answers_error_35() {
    with_live_data(|broker| {
        // What a newer client sends first: ApiVersions at a version the broker lacks, with the
        // flexible header and a v3-shaped body (client software name and version, no tags).
        let mut conn = wire::connect(broker.socket_addr());
        let mut payload = wire::request_header(API_VERSIONS, 99, 5, true);
        payload.extend_from_slice(&[6]);
        payload.extend_from_slice(b"tests");
        payload.extend_from_slice(&[4]);
        payload.extend_from_slice(b"1.0");
        payload.push(0);
        wire::send(&mut conn, &wire::frame(&payload));
        let Outcome::Response(body) = wire::read_outcome(&mut conn) else {
            panic!("ApiVersions v99 not answered");
        };
        let (correlation_id, error_code, keys) = wire::parse_api_versions_v0(&body);
        assert_eq!(correlation_id, 5);
        assert_eq!(error_code, UNSUPPORTED_VERSION);
        let own = keys.iter().find(|&&(key, _, _)| key == API_VERSIONS);
        assert!(
            matches!(own, Some(&(_, 0, max)) if max >= 3),
            "the v0 response still lists ApiVersions 0..=3+: {keys:?}"
        );
        // The connection stays usable: a supported version on it is answered normally.
        wire::send(
            &mut conn,
            &wire::frame(&wire::request_header(API_VERSIONS, 0, 6, false)),
        );
        let Outcome::Response(body) = wire::read_outcome(&mut conn) else {
            panic!("ApiVersions v0 after the error not answered");
        };
        let (correlation_id, error_code, _) = wire::parse_api_versions_v0(&body);
        assert_eq!((correlation_id, error_code), (6, 0));
    });
}

#[test]
fn many_bad_connections_at_once_leave_the_broker_serving() {
    with_live_data(|broker| {
        let mut conns: Vec<_> = (0..50)
            .map(|i| {
                let mut conn = wire::connect(broker.socket_addr());
                let bytes: Vec<u8> = match i % 3 {
                    0 => 0x7fff_ffff_i32.to_be_bytes().to_vec(),
                    1 => wire::frame(&wire::request_header(999, 0, i, false)),
                    _ => b"\xff\xff\xff\xfe garbage".to_vec(),
                };
                wire::send(&mut conn, &bytes);
                conn
            })
            .collect();
        for conn in &mut conns {
            assert_ne!(
                wire::read_outcome(conn),
                Outcome::Silent,
                "every bad connection handled"
            );
        }
    });
}
