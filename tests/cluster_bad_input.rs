//! Bad input to a KRaft cluster: garbage on the controller listener never crashes a controller;
//! a broker whose quorum cannot be reached says so and keeps retrying; a second broker with a
//! node.id already registered by a live broker is refused; a broker-only node follows the
//! committed image from the controllers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::cluster::{broker_only_toml, free_port, topics_view, Cluster, ClusterOpts};
use common::{wait_until, Broker, BrokerOpts};

fn garbage_frames() -> Vec<Vec<u8>> {
    let frame = |version: u8, kind: u8, payload: &[u8]| {
        let mut out = u32::try_from(payload.len() + 2)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.push(version);
        out.push(kind);
        out.extend_from_slice(payload);
        out
    };
    vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        u32::MAX.to_be_bytes().to_vec(),
        vec![0, 0, 0, 1, 0],
        frame(9, 1, b"x"),
        frame(0, 99, b"xyz"),
        // Every controller RPC kind with a payload that is not its message.
        frame(0, 1, &[0xFF; 64]),
        frame(0, 2, &[0x80; 3]),
        frame(0, 4, &[0xFF; 9]),
        frame(0, 5, &[0xFF; 40]),
        frame(0, 6, &[0xFF; 2]),
        frame(0, 7, &[]),
        frame(0, 8, &[0xFF; 11]),
        // A length announcing more than is sent, then silence.
        vec![0, 0, 16, 0, 0, 6, 1, 2],
    ]
}

#[test]
fn garbage_on_the_controller_listener_never_crashes_it() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    for i in 0..3 {
        for bytes in garbage_frames() {
            let mut stream = std::net::TcpStream::connect(cluster.controller_addr(i)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = stream.write_all(&bytes);
        }
    }
    for i in 0..3 {
        assert!(cluster.broker_mut(i).is_running(), "node {} died", i + 1);
    }
    assert_eq!(
        cluster.create_topic("still-works", 3, Duration::from_secs(30)),
        0
    );
    cluster.wait_all_registered();
}

#[test]
fn an_unreachable_quorum_is_retried_not_fatal() {
    let opts = ClusterOpts::default();
    let nobody = [free_port(), free_port()];
    let toml = broker_only_toml(&opts, 7, &nobody);
    let mut broker = Broker::start(BrokerOpts::default().cores(1).config(&toml));
    wait_until(
        Duration::from_secs(20),
        "the broker to say it retries",
        || {
            broker
                .log_text()
                .contains("cannot register with the controller quorum yet; retrying")
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        broker.is_running(),
        "the broker gave up:\n{}",
        broker.log_text()
    );
    // A controller whose peers are all down keeps campaigning, and its broker keeps trying.
    let port = free_port();
    let toml = common::cluster::node_toml(&opts, 1, &[port, nobody[0], nobody[1]]);
    let mut lonely = Broker::start(BrokerOpts::default().cores(1).config(&toml));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(lonely.is_running(), "{}", lonely.log_text());
    broker.stop();
    lonely.stop();
}

#[test]
fn a_duplicate_node_id_is_refused_and_broker_only_nodes_follow_the_image() {
    let cluster = Cluster::start(ClusterOpts::default());
    assert_eq!(cluster.create_topic("seen", 2, Duration::from_secs(30)), 0);
    let first = cluster.start_broker_only(4);
    wait_until(
        Duration::from_secs(30),
        "broker 4 to be listed and see the topic",
        || {
            let metadata = common::cluster::metadata(first.socket_addr());
            let listed = metadata.brokers.iter().any(|b| b.node_id.0 == 4);
            let view = topics_view(&metadata);
            listed && view == topics_view(&cluster.metadata(0))
        },
    );
    let mut second = cluster.start_broker_only(4);
    wait_until(
        Duration::from_secs(20),
        "the duplicate to be refused",
        || second.log_text().contains("DUPLICATE_BROKER_REGISTRATION"),
    );
    assert!(
        second.is_running(),
        "a refused broker keeps retrying, it does not crash"
    );
    // Broker 4 is still the first process.
    let metadata = cluster.metadata(0);
    let four = metadata.brokers.iter().find(|b| b.node_id.0 == 4).unwrap();
    assert_eq!(four.port, i32::from(first.socket_addr().port()));
    second.stop();
}

#[test]
fn a_controller_only_node_serves_a_broker_only_node() {
    let opts = ClusterOpts {
        nodes: 1,
        ..ClusterOpts::default()
    };
    let port = free_port();
    let controller_toml = common::cluster::node_toml(&opts, 1, &[port]).replace(
        "\"process.roles\" = \"broker,controller\"",
        "\"process.roles\" = \"controller\"",
    );
    let mut controller = Broker::start(BrokerOpts::default().cores(1).config(&controller_toml));
    wait_until(
        Duration::from_secs(10),
        "the controller-only ready line",
        || controller.log_text().contains("controller-only node"),
    );
    let toml = broker_only_toml(&opts, 2, &[port]);
    let mut broker = Broker::start(BrokerOpts::default().cores(1).config(&toml));
    wait_until(
        Duration::from_secs(30),
        "the broker registered and listed",
        || {
            let metadata = common::cluster::metadata(broker.socket_addr());
            metadata
                .brokers
                .iter()
                .map(|b| b.node_id.0)
                .collect::<Vec<_>>()
                == vec![2]
                && metadata.controller_id.0 == 2
        },
    );
    // A controller-only active controller runs forwarded requests on its one shard (no
    // client listener): the broker's CreateTopics is forwarded and succeeds
    // (tests/cluster_controller_only.rs covers failover and the other admin APIs).
    let addr = broker.socket_addr();
    let code =
        std::thread::spawn(move || common::cluster::create_topic(addr, "made-here", 1)).join();
    assert!(
        matches!(code, Ok(0)),
        "{code:?}\nbroker:\n{}\ncontroller:\n{}",
        broker.log_text(),
        controller.log_text()
    );
    assert_eq!(
        common::cluster::leaders(&common::cluster::metadata(addr), "made-here"),
        vec![2]
    );
    // The broker stops first (its controlled shutdown needs the controller), then the
    // controller: both cleanly.
    broker.stop();
    controller.stop();
}

#[test]
fn a_broker_of_another_cluster_id_is_refused_and_a_data_dir_of_another_cluster_too() {
    let opts = ClusterOpts {
        nodes: 1,
        ..ClusterOpts::default()
    };
    let cluster = Cluster::start(opts.clone());
    // Kafka's BrokerRegistration ClusterId check: INCONSISTENT_CLUSTER_ID, retried, never
    // registered.
    let toml = format!(
        "{}\"cluster.id\" = \"another-cluster\"\n",
        broker_only_toml(&opts, 2, &cluster.controller_ports)
    );
    let mut stranger = Broker::start(BrokerOpts::default().cores(1).config(&toml));
    wait_until(
        Duration::from_secs(30),
        "the registration refused with INCONSISTENT_CLUSTER_ID",
        || stranger.log_text().contains("INCONSISTENT_CLUSTER_ID"),
    );
    assert!(stranger.is_running(), "refused, retrying, not crashed");
    let listed: Vec<i32> = cluster
        .metadata(0)
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .collect();
    assert_eq!(listed, vec![1]);
    stranger.stop();
    // Kafka's meta.properties check: the stopped broker's data dir is of another cluster.
    let config = stranger.data_dir().with_file_name("other.toml");
    std::fs::write(&config, "\"cluster.id\" = \"a-third-cluster\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(stranger.data_dir())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("INCONSISTENT_CLUSTER_ID"), "{stderr}");
}
