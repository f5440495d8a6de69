//! A cluster whose controllers are controller-only nodes (`process.roles = "controller"`),
//! Kafka's recommended production layout (issue 10): three controllers and two broker-only
//! nodes as separate processes on loopback. Brokers forward admin requests (KIP-590
//! Envelopes) to the active controller over the controller listener and it runs them on its
//! one shard without client listeners; Metadata and DescribeCluster name a broker as the
//! controller (the controller is not a broker, as Kafka answers); kill -9 the active
//! controller and another takes over: a CreateTopics sent at once succeeds (the broker retries
//! it against the new controller), nothing committed is lost.
//! One broker knows only `controller.quorum.bootstrap.servers` (no voters) and finds the
//! active controller through it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::{
    create_topic, create_topic_within, free_port, leaders, metadata, ClusterOpts, NOT_CONTROLLER,
};
use common::{wait_until, wire, Broker, BrokerOpts};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const TOPIC_RESOURCE: i8 = 2;
const BROKERS: [i32; 2] = [4, 5];

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn controller_toml(opts: &ClusterOpts, node_id: i32, ports: &[u16]) -> String {
    common::cluster::node_toml(opts, node_id, ports).replace(
        "\"process.roles\" = \"broker,controller\"",
        "\"process.roles\" = \"controller\"",
    )
}

/// The index (in `controllers`) of the one whose `sluice_kraft_active_controller` is 1.
fn active_controller(controllers: &mut [Broker]) -> Option<usize> {
    let active: Vec<usize> = (0..controllers.len())
        .filter(|i| {
            controllers[*i].pid().is_some()
                && controllers[*i]
                    .try_scrape(Duration::from_secs(2))
                    .is_some_and(|m| m.sum("sluice_kraft_active_controller", &[]) == 1.0)
        })
        .collect();
    match active.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// CreateTopics through `broker`, retried while the answer is NOT_CONTROLLER (a client's
/// retry while no controller is elected); the final error code.
fn create_retrying(broker: SocketAddr, name: &str, timeout: Duration) -> i16 {
    let deadline = Instant::now() + timeout;
    loop {
        let code = create_topic(broker, name, 3);
        if code != NOT_CONTROLLER || Instant::now() >= deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_retention(broker: SocketAddr, topic: &str, value: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(topic))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        wire::call(broker, ApiKey::IncrementalAlterConfigs, 1, &request);
    response.responses[0].error_code
}

fn retention(broker: SocketAddr, topic: &str) -> Option<String> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s("retention.ms")]))]);
    let response: DescribeConfigsResponse =
        wire::call(broker, ApiKey::DescribeConfigs, 4, &request);
    let result = response.results.first()?;
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .and_then(|c| c.value.as_ref().map(|v| v.as_str().to_owned()))
}

#[test]
fn brokers_forward_admin_requests_to_a_controller_only_active_controller() {
    let opts = ClusterOpts {
        nodes: 3,
        ..ClusterOpts::default()
    };
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut controllers: Vec<Broker> = (1..=3)
        .map(|id| {
            let toml = controller_toml(&opts, id, &ports);
            Broker::start(BrokerOpts::default().cores(1).config(&toml))
        })
        .collect();
    // The ready line says "controller-only node"; the log file may show it a moment after the
    // start returned, so wait for it rather than read it once.
    for c in &controllers {
        wait_until(
            Duration::from_secs(30),
            "the controller-only ready line",
            || c.log_text().contains("controller-only node"),
        );
    }
    // Broker 4 names the voters (`controller.quorum.voters`); broker 5 only where to ask
    // (`controller.quorum.bootstrap.servers`, KIP-853): it finds the active controller from
    // the answers, now and after the failover below.
    let voters_line = |toml: &str| {
        toml.lines()
            .find(|l| l.starts_with("\"controller.quorum.voters\""))
            .unwrap()
            .to_owned()
    };
    let bootstrap: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let brokers: Vec<Broker> = BROKERS
        .iter()
        .map(|id| {
            let mut toml = common::cluster::broker_only_toml(&opts, *id, &ports);
            if *id == 5 {
                toml = toml.replace(
                    &voters_line(&toml),
                    &format!(
                        "\"controller.quorum.bootstrap.servers\" = \"{}\"",
                        bootstrap.join(",")
                    ),
                );
                assert!(!toml.contains("quorum.voters"), "{toml}");
            }
            Broker::start(BrokerOpts::default().cores(1).config(&toml))
        })
        .collect();
    let addrs: Vec<SocketAddr> = brokers.iter().map(Broker::socket_addr).collect();
    for addr in &addrs {
        wait_until(Duration::from_secs(60), "both brokers listed", || {
            let mut ids: Vec<i32> = metadata(*addr)
                .brokers
                .iter()
                .map(|b| b.node_id.0)
                .collect();
            ids.sort_unstable();
            ids == BROKERS
        });
    }
    // The controller is not a broker: Metadata and DescribeCluster name an alive broker as
    // the controller (Kafka's getRandomAliveBrokerId), never a controller-only node.
    for addr in &addrs {
        let m = metadata(*addr);
        assert!(
            BROKERS.contains(&m.controller_id.0),
            "{:?}",
            m.controller_id
        );
        let described: DescribeClusterResponse = wire::call(
            *addr,
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        );
        assert_eq!(described.error_code, 0);
        assert!(
            BROKERS.contains(&described.controller_id.0),
            "{described:?}"
        );
        let mut ids: Vec<i32> = described.brokers.iter().map(|b| b.broker_id.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, BROKERS);
    }
    // CreateTopics through either broker: forwarded, run by the controller-only leader.
    assert_eq!(
        create_retrying(addrs[0], "made-via-4", Duration::from_secs(30)),
        0
    );
    assert_eq!(
        create_retrying(addrs[1], "made-via-5", Duration::from_secs(30)),
        0
    );
    for addr in &addrs {
        wait_until(
            Duration::from_secs(30),
            "both topics on every broker",
            || {
                let m = metadata(*addr);
                leaders(&m, "made-via-4").len() == 3 && leaders(&m, "made-via-5").len() == 3
            },
        );
    }
    let placed = leaders(&metadata(addrs[0]), "made-via-4");
    assert!(placed.iter().all(|l| BROKERS.contains(l)), "{placed:?}");
    // Configs (IncrementalAlterConfigs, forwarded) and DeleteTopics (forwarded).
    assert_eq!(set_retention(addrs[1], "made-via-4", "123456"), 0);
    wait_until(
        Duration::from_secs(30),
        "the config on the other broker",
        || retention(addrs[0], "made-via-4").as_deref() == Some("123456"),
    );
    let delete = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(TopicName(s("made-via-5"))))
    ]);
    let deleted: DeleteTopicsResponse = wire::call(addrs[0], ApiKey::DeleteTopics, 6, &delete);
    assert_eq!(deleted.responses[0].error_code, 0, "{deleted:?}");
    wait_until(Duration::from_secs(30), "the topic gone on both", || {
        addrs
            .iter()
            .all(|a| leaders(&metadata(*a), "made-via-5").is_empty())
    });
    // Kill -9 the active controller: another controller-only node takes over.
    let mut active = None;
    wait_until(Duration::from_secs(30), "an active controller", || {
        active = active_controller(&mut controllers);
        active.is_some()
    });
    let old = active.unwrap();
    controllers[old].kill9();
    // Sent at once, while the others elect a new leader: broker 4 forwards it to the dead
    // controller, forgets it (it knows the controller from answers only, and would otherwise
    // ask that voter forever), finds the new one and retries there (B12), so the client's one
    // request succeeds.
    assert_eq!(
        create_topic_within(addrs[0], "after-failover", 3, Duration::from_secs(40)),
        0
    );
    wait_until(Duration::from_secs(30), "a new active controller", || {
        active_controller(&mut controllers).is_some_and(|i| i != old)
    });
    for addr in &addrs {
        wait_until(
            Duration::from_secs(30),
            "the new topic and the old one",
            || {
                let m = metadata(*addr);
                leaders(&m, "after-failover").len() == 3 && leaders(&m, "made-via-4").len() == 3
            },
        );
    }
    assert_eq!(retention(addrs[0], "made-via-4").as_deref(), Some("123456"));
    drop(brokers);
    drop(controllers);
}
