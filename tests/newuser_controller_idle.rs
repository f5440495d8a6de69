//! Idle sockets on a controller listener: a client that connects to the controller port and
//! sends nothing must not hold one of the `controller.max.connections` slots for the whole
//! `connections.max.idle.ms` (10 min), locking out the brokers' and peers' new connections (an
//! idempotent producer's InitProducerId then answered COORDINATOR_NOT_AVAILABLE: no producer id
//! block from the controller). Found trying the cluster as a new user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOpts};

/// The controller listener's limit in this test (`controller.max.connections`, small so the test
/// fills it quickly).
const CONNECTIONS_MAX: usize = 8;
/// `controller.quorum.request.timeout.ms` here: a first frame must start within it.
const REQUEST_TIMEOUT_MS: u64 = 1000;

#[test]
fn idle_controller_connections_are_closed_and_do_not_lock_peers_out() {
    let cluster = Cluster::start(ClusterOpts {
        extra_toml: format!(
            "\"controller.max.connections\" = {CONNECTIONS_MAX}\n\
             \"controller.quorum.request.timeout.ms\" = {REQUEST_TIMEOUT_MS}\n"
        ),
        ..ClusterOpts::default()
    });
    let controller = cluster.controller_index(0).expect("a controller");
    let addr = cluster.controller_addr(controller);
    // Fill every slot (the peers' own connections hold some; the rest are refused at once).
    let held: Vec<TcpStream> = (0..CONNECTIONS_MAX)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let opened = Instant::now();
    let accepted = held.len();
    let mut closed_by_server = 0;
    for mut socket in held {
        socket
            .set_read_timeout(Some(Duration::from_millis(REQUEST_TIMEOUT_MS) * 5))
            .expect("read timeout");
        let mut byte = [0u8; 1];
        match socket.read(&mut byte) {
            Ok(0) => closed_by_server += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed_by_server += 1,
            Ok(_) => panic!("the controller sent bytes to a silent client"),
            Err(e) => panic!(
                "a silent connection stayed open {:?}: {e}",
                opened.elapsed()
            ),
        }
    }
    assert_eq!(closed_by_server, accepted);

    // A broker that is not the controller can reach it again: an idempotent producer there
    // gets its producer id (AllocateProducerIds on a new controller connection).
    let other = (controller + 1) % 3;
    assert_eq!(
        cluster.create_topic("after-idle", 1, Duration::from_secs(30)),
        0
    );
    let producer =
        common::kafka::producer(cluster.broker(other), &[("enable.idempotence", "true")]);
    let records = common::kafka::keyed_records(5, 1, 10);
    let acked = common::kafka::produce(&producer, "after-idle", &records, None);
    common::kafka::assert_all_acked(&acked);
}
