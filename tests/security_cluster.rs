//! Security in a 3-broker KRaft cluster: client quotas (`ClientQuotaRecord`) and ACLs
//! (`AccessControlEntryRecord`) changed through the controller reach every broker's image, so
//! a quota set on one broker is described and enforced on another, and both survive a
//! broker's restart (they come back from the metadata log, not from a local file); and
//! followers replicate over an SSL `inter.broker.listener.name` (`cluster::inter_broker`).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, CreateAclsRequest,
    CreateAclsResponse, DescribeAclsRequest, DescribeAclsResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use common::cluster::{leaders, Cluster, ClusterOpts, CLUSTER_READY_TIMEOUT};
use common::{wait_until, wire};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// AlterClientQuotas setting `producer_byte_rate` of client id `client`.
fn set_producer_rate(addr: SocketAddr, client: &str, rate: f64) -> Vec<i16> {
    let entry = EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("client-id"))
            .with_entity_name(Some(s(client)))])
        .with_ops(vec![OpData::default()
            .with_key(s("producer_byte_rate"))
            .with_value(rate)]);
    let resp: AlterClientQuotasResponse = wire::call(
        addr,
        ApiKey::AlterClientQuotas,
        1,
        &AlterClientQuotasRequest::default().with_entries(vec![entry]),
    );
    resp.entries.iter().map(|e| e.error_code).collect()
}

/// `producer_byte_rate` of client id `client` as `addr` describes it.
fn described_rate(addr: SocketAddr, client: &str) -> Option<f64> {
    let resp: DescribeClientQuotasResponse = wire::call(
        addr,
        ApiKey::DescribeClientQuotas,
        1,
        &DescribeClientQuotasRequest::default().with_components(vec![ComponentData::default()
            .with_entity_type(s("client-id"))
            .with_match_type(0)
            .with_match(Some(s(client)))]),
    );
    assert_eq!(resp.error_code, 0);
    resp.entries
        .unwrap_or_default()
        .iter()
        .flat_map(|e| e.values.iter())
        .find(|v| v.key.as_str() == "producer_byte_rate")
        .map(|v| v.value)
}

/// The principals of the ACLs `addr` describes.
fn described_acl_principals(addr: SocketAddr) -> Vec<String> {
    const ANY: i8 = 1;
    let resp: DescribeAclsResponse = wire::call(
        addr,
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(ANY)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY),
    );
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    resp.resources
        .iter()
        .flat_map(|r| r.acls.iter().map(|a| a.principal.as_str().to_owned()))
        .collect()
}

/// One Produce (acks=1) of `payload` bytes to `topic`/`partition` from `client_id`; answers
/// the partition's error code and the response's throttle time.
fn produce(
    addr: SocketAddr,
    client_id: &str,
    topic: &str,
    partition: i32,
    payload: usize,
) -> (i16, i32) {
    let value = vec![b'x'; payload];
    let records = storage::BatchBuilder::new(0)
        .record(None, Some(&value), &[])
        .build()
        .freeze();
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let mut stream = wire::connect(addr);
    wire::send(
        &mut stream,
        &wire::encode_request(ApiKey::Produce, 9, 1, client_id, &req),
    );
    let body = match wire::read_outcome(&mut stream) {
        wire::Outcome::Response(body) => body,
        other => panic!("no produce response: {other:?}"),
    };
    let resp: ProduceResponse = wire::decode_response(ApiKey::Produce, 9, 1, body);
    (
        resp.responses[0].partition_responses[0].error_code,
        resp.throttle_time_ms,
    )
}

#[test]
fn quotas_and_acls_set_on_the_controller_apply_on_every_broker_and_survive_a_restart() {
    let mut cluster = Cluster::start(ClusterOpts {
        extra_toml: "\"authorizer.class.name\" = \
                     \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
                     \"super.users\" = \"User:ANONYMOUS\"\n"
            .into(),
        ..ClusterOpts::default()
    });
    let controller = cluster.controller_index(0).expect("an active controller");
    let controller_addr = cluster.broker(controller).socket_addr();

    // A topic with a partition led by each broker, so a broker other than the controller
    // leads one.
    assert_eq!(
        cluster.create_topic("quota-cluster", 3, CLUSTER_READY_TIMEOUT),
        0
    );
    let mut led: Vec<(usize, i32)> = Vec::new();
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "every partition to have a leader",
        || {
            let leaders = leaders(&cluster.metadata(controller), "quota-cluster");
            led = leaders
                .iter()
                .enumerate()
                .filter_map(|(p, &l)| Some((usize::try_from(l).ok()?.checked_sub(1)?, p as i32)))
                .collect();
            leaders.len() == 3 && led.len() == 3
        },
    );
    let (other, partition) = *led
        .iter()
        .find(|(broker, _)| *broker != controller)
        .expect("a partition led by a broker other than the controller");
    let other_addr = cluster.broker(other).socket_addr();

    // Before any quota the other broker does not throttle (once it serves the partition).
    assert_eq!(
        cluster.wait_leader_serving(controller, "quota-cluster", partition),
        other
    );
    let answer = produce(other_addr, "slow", "quota-cluster", partition, 11_000);
    assert_eq!(answer, (0, 0));

    // 1000 B/s for client id "slow", set on the controller.
    assert_eq!(set_producer_rate(controller_addr, "slow", 1000.0), [0]);
    assert_eq!(described_rate(controller_addr, "slow"), Some(1000.0));
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "the quota to be described by every broker",
        || (0..3).all(|i| described_rate(cluster.broker(i).socket_addr(), "slow") == Some(1000.0)),
    );

    // Set through a broker that is not the active controller: forwarded (KIP-590), then
    // described by the controller.
    assert_eq!(set_producer_rate(other_addr, "forwarded", 2000.0), [0]);
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "the forwarded quota to be described by the controller",
        || described_rate(controller_addr, "forwarded") == Some(2000.0),
    );

    // Enforced on the other broker: a fresh rate spans ten 1 s windows, so one request of
    // more than 10 000 bytes is over 1000 B/s and throttled for about (bytes - 10 000) ms.
    let (code, throttle_ms) = produce(other_addr, "slow", "quota-cluster", partition, 11_000);
    assert_eq!(code, 0);
    assert!(
        throttle_ms > 500,
        "the broker that did not take the change did not throttle ({throttle_ms} ms)"
    );
    // Another client id is not throttled there.
    assert_eq!(
        produce(other_addr, "fast", "quota-cluster", partition, 11_000),
        (0, 0)
    );

    // An ACL created on the controller is described by every broker.
    let creation = AclCreation::default()
        .with_resource_type(2) // TOPIC
        .with_resource_name(s("quota-cluster"))
        .with_resource_pattern_type(3) // LITERAL
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(3) // READ
        .with_permission_type(3); // ALLOW
    let created: CreateAclsResponse = wire::call(
        controller_addr,
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(vec![creation]),
    );
    assert_eq!(created.results[0].error_code, 0);
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "the ACL to be described by every broker",
        || {
            (0..3).all(|i| {
                described_acl_principals(cluster.broker(i).socket_addr()) == ["User:alice"]
            })
        },
    );

    // The other broker restarts: quota and ACL come back from the metadata log.
    cluster.broker_mut(other).restart();
    cluster.wait_all_registered();
    let other_addr = cluster.broker(other).socket_addr();
    wait_until(
        Duration::from_secs(30),
        "the restarted broker to describe the quota and the ACL",
        || {
            described_rate(other_addr, "slow") == Some(1000.0)
                && described_acl_principals(other_addr) == ["User:alice"]
        },
    );
    assert!(
        !cluster
            .broker(other)
            .data_dir()
            .join("__cluster/client_quotas.toml")
            .exists(),
        "a KRaft broker keeps no quota file of its own"
    );
}

/// Replication over an SSL inter-broker listener: every broker has a PLAINTEXT client listener,
/// advertised on a port nobody listens on, and an `INTERNAL` SSL listener requiring client
/// certificates (`inter.broker.listener.name = "INTERNAL"`). A produce with acks=all to a
/// topic with `min.insync.replicas = 3` succeeds only if both followers fetched it, which they
/// can only do over INTERNAL, with TLS and the broker's certificate.
#[test]
fn followers_replicate_over_an_ssl_inter_broker_listener() {
    use common::cluster::{free_port, node_toml};
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

    let pki_dir = tempfile::tempdir().unwrap();
    let pki = common::certs::generate(pki_dir.path());
    let opts = ClusterOpts::default();
    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let internal_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let brokers = (0..3)
        .map(|i| {
            let toml = format!(
                "{}listeners = \"PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}\"\n\
                 \"advertised.listeners\" = \"PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}\"\n\
                 \"listener.security.protocol.map\" = \
                 \"PLAINTEXT:PLAINTEXT,INTERNAL:SSL,CONTROLLER:PLAINTEXT\"\n\
                 \"inter.broker.listener.name\" = \"INTERNAL\"\n\
                 \"ssl.keystore.location\" = \"{}\"\n\
                 \"ssl.truststore.location\" = \"{}\"\n\
                 \"ssl.client.auth\" = \"required\"\n",
                node_toml(&opts, Cluster::node_id(i), &controller_ports),
                client_ports[i],
                internal_ports[i],
                free_port(), // advertised PLAINTEXT: nobody listens there
                internal_ports[i],
                pki.broker.display(),
                pki.ca.display(),
            );
            common::Broker::start(common::BrokerOpts::default().cores(1).config(&toml))
        })
        .collect();
    let cluster = Cluster {
        opts,
        brokers,
        controller_ports,
        client_ports,
    };
    cluster.wait_all_registered();
    let controller = cluster.controller_index(0).expect("an active controller");
    let topic = CreatableTopic::default()
        .with_name(TopicName(s("replicated-ssl")))
        .with_num_partitions(1)
        .with_replication_factor(3)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("min.insync.replicas"))
            .with_value(Some(s("3")))]);
    let created: CreateTopicsResponse = wire::call(
        cluster.broker(controller).socket_addr(),
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let mut leader = None;
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "the partition to have a leader",
        || {
            leader = leaders(&cluster.metadata(controller), "replicated-ssl")
                .first()
                .and_then(|&l| usize::try_from(l).ok()?.checked_sub(1));
            leader.is_some()
        },
    );
    let leader_addr = cluster.broker(leader.unwrap()).socket_addr();
    let mut code = -1;
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "an acks=all produce to be replicated to all three brokers",
        || {
            code = produce_acks_all(leader_addr, "replicated-ssl");
            code == 0
        },
    );
    assert_eq!(code, 0);
}

/// One Produce with acks=all of a small record to partition 0; the partition's error code.
fn produce_acks_all(addr: SocketAddr, topic: &str) -> i16 {
    let records = storage::BatchBuilder::new(0)
        .record(None, Some(b"replicated"), &[])
        .build()
        .freeze();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp: ProduceResponse = wire::call(addr, ApiKey::Produce, 9, &req);
    resp.responses[0].partition_responses[0].error_code
}

/// The TOML of node `i` of the SASL_SSL cluster: a PLAINTEXT client listener, an `INTERNAL`
/// SASL_SSL inter-broker listener (SCRAM-SHA-512 only, sessions of 2 s so that replica
/// fetchers must re-authenticate, KIP-368), and an SSL controller listener requiring client
/// certificates. The broker logs in to the others as `broker` with `password`.
fn sasl_ssl_node_toml(
    cluster: &(Vec<u16>, Vec<u16>, Vec<u16>),
    pki: &common::certs::TestPki,
    i: usize,
    password: &str,
) -> String {
    use common::cluster::node_toml;
    let (controller_ports, client_ports, internal_ports) = cluster;
    let opts = ClusterOpts {
        extra_toml: "\"replica.lag.time.max.ms\" = 2000\n\
                     \"replica.fetch.wait.max.ms\" = 100\n\
                     \"connections.max.reauth.ms\" = 2000\n"
            .into(),
        ..ClusterOpts::default()
    };
    format!(
        "{}listeners = \"PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}\"\n\
         \"listener.security.protocol.map\" = \
         \"PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:SSL\"\n\
         \"inter.broker.listener.name\" = \"INTERNAL\"\n\
         \"sasl.mechanism.inter.broker.protocol\" = \"SCRAM-SHA-512\"\n\
         \"listener.name.internal.sasl.enabled.mechanisms\" = \"SCRAM-SHA-512\"\n\
         \"listener.name.internal.scram-sha-512.sasl.jaas.config\" = \
         'org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"broker\" password=\"{password}\";'\n\
         \"listener.name.controller.ssl.client.auth\" = \"required\"\n\
         \"ssl.keystore.location\" = \"{}\"\n\
         \"ssl.truststore.location\" = \"{}\"\n",
        node_toml(&opts, Cluster::node_id(i), controller_ports),
        client_ports[i],
        internal_ports[i],
        pki.broker.display(),
        pki.ca.display(),
    )
}

/// Whether `addr` describes a SCRAM credential of `user`.
fn has_scram_user(addr: SocketAddr, user: &str) -> bool {
    use kafka_protocol::messages::{
        DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    };
    let resp: DescribeUserScramCredentialsResponse = wire::call(
        addr,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(None),
    );
    resp.results
        .iter()
        .any(|r| r.user.as_str() == user && r.error_code == 0 && !r.credential_infos.is_empty())
}

/// The ISR of partition 0 of `topic` as node `index` describes it.
fn isr(cluster: &Cluster, index: usize, topic: &str) -> Vec<i32> {
    common::cluster::topics_view(&cluster.metadata(index))
        .into_iter()
        .find(|(name, _, _)| name == topic)
        .and_then(|(_, _, partitions)| partitions.first().map(|p| p.4.clone()))
        .unwrap_or_default()
}

/// A 3-broker cluster whose brokers replicate over a SASL_SSL inter-broker listener
/// (SCRAM-SHA-512, `sasl.mechanism.inter.broker.protocol`, the login from
/// `listener.name.internal.scram-sha-512.sasl.jaas.config`) and whose quorum, registrations and
/// heartbeats run over an SSL controller listener with client certificates required. Broker 3
/// starts with a wrong inter-broker password: it cannot fetch (its log says why), leaves the
/// ISR, and brokers 1 and 2 keep serving acks=all produces and consumes; restarted with the
/// right password it catches up and rejoins the ISR. Broker 2's fetcher re-authenticates
/// in-band (2 s sessions) without a single failed fetch.
#[test]
fn followers_replicate_over_sasl_ssl_with_an_ssl_controller_listener() {
    use common::cluster::free_port;
    use common::kafka;
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, CreateTopicsResponse};
    use sluice::security::scram::Mechanism;

    const TOPIC: &str = "replicated-sasl";
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = common::certs::generate(pki_dir.path());
    let ports: (Vec<u16>, Vec<u16>, Vec<u16>) = (
        (0..3).map(|_| free_port()).collect(),
        (0..3).map(|_| free_port()).collect(),
        (0..3).map(|_| free_port()).collect(),
    );
    let passwords = ["broker-secret", "broker-secret", "not-the-password"];
    let brokers = (0..3)
        .map(|i| {
            let toml = sasl_ssl_node_toml(&ports, &pki, i, passwords[i]);
            common::Broker::start(common::BrokerOpts::default().cores(1).config(&toml))
        })
        .collect();
    let mut cluster = Cluster {
        opts: ClusterOpts::default(),
        brokers,
        controller_ports: ports.0.clone(),
        client_ports: ports.1.clone(),
    };
    // Registration and heartbeats go over the SSL controller listener.
    cluster.wait_all_registered();

    // The brokers' own user, created before any replica fetches (on the active controller:
    // no forwarding, which a loaded machine can time out).
    let mut controller = None;
    wait_until(CLUSTER_READY_TIMEOUT, "an active controller", || {
        controller = cluster.controller_index(0);
        controller.is_some()
    });
    let controller = controller.unwrap();
    common::sasl::create_user(
        cluster.broker(controller),
        "broker",
        "broker-secret",
        Mechanism::Sha512,
    );
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "every broker to know the SCRAM user",
        || (0..3).all(|i| has_scram_user(cluster.broker(i).socket_addr(), "broker")),
    );

    // A client quota on the brokers' own user: Kafka exempts replication (a follower's Fetch)
    // from client quotas, so 200 KB still replicate at once, not at 1000 B/s.
    let quota = EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("user"))
            .with_entity_name(Some(s("broker")))])
        .with_ops(vec![OpData::default()
            .with_key(s("consumer_byte_rate"))
            .with_value(1000.0)]);
    let altered: AlterClientQuotasResponse = wire::call(
        cluster.broker(controller).socket_addr(),
        ApiKey::AlterClientQuotas,
        1,
        &AlterClientQuotasRequest::default().with_entries(vec![quota]),
    );
    assert_eq!(altered.entries[0].error_code, 0);
    wait_until(CLUSTER_READY_TIMEOUT, "broker 1 to know the quota", || {
        let resp: DescribeClientQuotasResponse = wire::call(
            cluster.broker(0).socket_addr(),
            ApiKey::DescribeClientQuotas,
            1,
            &DescribeClientQuotasRequest::default().with_components(vec![ComponentData::default()
                .with_entity_type(s("user"))
                .with_match_type(0)
                .with_match(Some(s("broker")))]),
        );
        resp.entries.is_some_and(|e| !e.is_empty())
    });

    // Leader 1, followers 2 and 3.
    let topic = CreatableTopic::default()
        .with_name(TopicName(s(TOPIC)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])])
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("min.insync.replicas"))
            .with_value(Some(s("2")))]);
    let created: CreateTopicsResponse = wire::call(
        cluster.broker(controller).socket_addr(),
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
    );
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    wait_until(CLUSTER_READY_TIMEOUT, "broker 1 to lead", || {
        leaders(&cluster.metadata(0), TOPIC).first() == Some(&1)
    });

    // acks=all produce through librdkafka: acknowledged once broker 2 fetched it (broker 3
    // leaves the ISR after replica.lag.time.max.ms).
    let records = kafka::keyed_records(200, 4, 1000);
    let producer = kafka::producer(cluster.broker(0), &[]);
    kafka::assert_all_acked(&kafka::produce(&producer, TOPIC, &records, Some(0)));
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "the ISR to be brokers 1 and 2",
        || isr(&cluster, 0, TOPIC) == [1, 2],
    );
    let received = kafka::consume_all(cluster.broker(0), TOPIC, 1);
    assert_eq!(received.len(), records.len());
    for r in &received {
        kafka::assert_matches_sent(kafka::record_of(&records, r), r);
    }
    // Broker 3 says why it cannot replicate (and retries with backoff, never spinning).
    let refused = "SASL SCRAM-SHA-512 authentication as broker to the broker at";
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "broker 3 to log the refused login",
        || cluster.broker(2).log_text().contains(refused),
    );
    // Broker 3 runs one fetcher per source broker (broker 2 leads internal partitions), each
    // with its own backoff, so only lines of the same fetcher are compared, by the times the
    // broker stamped on them (a poll here after a stall would see two at once). A failed
    // round's backoff doubles from 50 ms to replica.fetch.backoff.ms (1000), so once it has
    // grown, failures of the fetcher from broker 1 are at least 1000 ms apart.
    let source = format!("connection to broker 1 at 127.0.0.1:{}:", ports.2[0]);
    let mut gaps = Vec::new();
    wait_until(
        CLUSTER_READY_TIMEOUT,
        "broker 3's fetcher from broker 1 to back off replica.fetch.backoff.ms three times in a row",
        || {
            gaps = failure_gaps_ms(&cluster.broker(2).log_text(), &source, refused);
            gaps.windows(3).any(|w| w.iter().all(|&gap| gap >= 950))
        },
    );
    assert!(
        gaps.iter().all(|&gap| gap >= 45),
        "retries closer than the first backoff (50 ms): {gaps:?}"
    );
    assert!(cluster
        .broker(0)
        .log_text()
        .contains("authentication failed"));

    // Broker 3 with the right password catches up and rejoins the ISR.
    let fixed = sasl_ssl_node_toml(&ports, &pki, 2, "broker-secret");
    cluster.broker_mut(2).set_config(&fixed);
    cluster.broker_mut(2).restart();
    let more = kafka::keyed_records(300, 4, 1000);
    kafka::assert_all_acked(&kafka::produce(&producer, TOPIC, &more[200..], Some(0)));
    wait_until(CLUSTER_READY_TIMEOUT, "broker 3 to rejoin the ISR", || {
        isr(&cluster, 0, TOPIC) == [1, 2, 3]
    });

    // Broker 2 fetched for the whole test over sessions of 2 s: it re-authenticated in-band
    // (an expired session would have been closed and the fetch failed).
    // (Its fetches from broker 3, which leads internal partitions and restarted, may fail.)
    let leader = format!("broker 1 at 127.0.0.1:{}", ports.2[0]);
    let follower_log = cluster.broker(1).log_text();
    let failed: Vec<&str> = follower_log
        .lines()
        .filter(|l| l.contains("replica fetch failed") && l.contains(&leader))
        .collect();
    assert!(
        failed.is_empty(),
        "broker 2's fetches from broker 1 failed: {failed:?}"
    );
}

/// The gaps in ms between consecutive log lines holding both `source` and `what` (the times
/// the broker stamped on them).
fn failure_gaps_ms(log: &str, source: &str, what: &str) -> Vec<i64> {
    let times: Vec<i64> = log
        .lines()
        .filter(|l| l.contains(source) && l.contains(what))
        .filter_map(log_time_ms)
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// The UTC time a broker log line starts with ("2026-11-30T18:10:01.985510Z"), in ms since
/// 1970 (Hinnant's days-from-civil for the date).
fn log_time_ms(line: &str) -> Option<i64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (parts.next()??, parts.next()??, parts.next()??);
    let ms = format!("{fraction:0<3}").get(..3)?.parse::<i64>().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms)
}

#[test]
fn log_times_are_read_across_midnight_and_years() {
    let at = |s: &str| log_time_ms(&format!("{s}  WARN x")).unwrap();
    assert_eq!(at("1970-01-01T00:00:00.000000Z"), 0);
    assert_eq!(at("2026-11-30T18:10:01.985510Z"), 1_796_062_201_985);
    assert_eq!(
        at("2027-01-01T00:00:00.2Z") - at("2026-12-31T23:59:59.9Z"),
        300
    );
    assert_eq!(log_time_ms("no time here"), None);
}

/// Runs `sluice` with `toml` until it exits (it must refuse to start); its exit success and log.
fn refused_start(toml: &str) -> (bool, String) {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, toml).unwrap();
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--admin-listen", "127.0.0.1:0", "--cores", "1"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "the broker started with {toml}\nlog:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), std::fs::read_to_string(&log).unwrap())
}

/// Bad inter-broker SASL and controller listener settings stop the broker at start with an
/// error naming the key (Kafka's `KafkaConfig` checks), before any listener serves.
#[test]
fn bad_inter_broker_sasl_settings_stop_the_broker_naming_the_key() {
    use common::cluster::free_port;
    let base = format!(
        "\"node.id\" = 1\n\"process.roles\" = \"broker,controller\"\n\
         \"controller.quorum.voters\" = \"1@127.0.0.1:{}\"\n\
         \"controller.listener.names\" = \"CONTROLLER\"\n\
         listeners = \"PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}\"\n\
         \"inter.broker.listener.name\" = \"INTERNAL\"\n",
        free_port(),
        free_port(),
        free_port()
    );
    let jaas = "\"sasl.jaas.config\" = 'org.apache.kafka.common.security.scram.ScramLoginModule \
                required username=\"broker\" password=\"secret\";'\n";
    let sasl_map = "\"listener.security.protocol.map\" = \
                    \"PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT\"\n";
    let cases = [
        // Kafka's default mechanism, GSSAPI, is not implemented.
        (format!("{base}{sasl_map}{jaas}"), "sasl.mechanism.inter.broker.protocol"),
        (
            format!("{base}{sasl_map}{jaas}\"sasl.mechanism.inter.broker.protocol\" = \"MD5\"\n"),
            "sasl.mechanism.inter.broker.protocol",
        ),
        // Not enabled on the inter-broker listener.
        (
            format!(
                "{base}{sasl_map}{jaas}\"sasl.mechanism.inter.broker.protocol\" = \"PLAIN\"\n\
                 \"listener.name.internal.sasl.enabled.mechanisms\" = \"SCRAM-SHA-512\"\n"
            ),
            "sasl.enabled.mechanisms",
        ),
        // No login.
        (
            format!("{base}{sasl_map}\"sasl.mechanism.inter.broker.protocol\" = \"SCRAM-SHA-512\"\n"),
            "listener.name.internal.scram-sha-512.sasl.jaas.config",
        ),
        // A login module without a password.
        (
            format!(
                "{base}{sasl_map}\"sasl.mechanism.inter.broker.protocol\" = \"SCRAM-SHA-512\"\n\
                 \"listener.name.internal.scram-sha-512.sasl.jaas.config\" = \
                 'org.apache.kafka.common.security.scram.ScramLoginModule required username=\"b\";'\n"
            ),
            "sasl.jaas.config",
        ),
        // SASL on the controller listener.
        (
            format!(
                "{base}\"listener.security.protocol.map\" = \
                 \"PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:SASL_SSL\"\n"
            ),
            "controller.listener.names",
        ),
    ];
    for (toml, key) in cases {
        let (success, log) = refused_start(&toml);
        assert!(!success, "exited with success:\n{toml}");
        let error = log
            .lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_default();
        assert!(
            error.contains(key),
            "the error does not name {key}:\n{error}\nconfig:\n{toml}\nlog:\n{log}"
        );
        assert!(!log.contains("secret"), "the password was logged:\n{log}");
    }
}

/// Kafka's protected listener (`ConnectionQuotas.protectedListener`): connections to the
/// inter-broker listener of a broker with several listeners are not delayed by the
/// broker-wide `max.connection.creation.rate`, which does delay the client listener's; only
/// its own listener rate applies (which, as Kafka's `valuesWithPrefixOverride`, is the broker's
/// value unless `listener.name.<l>.max.connection.creation.rate` sets it).
#[test]
fn the_inter_broker_listener_is_exempt_from_the_broker_connection_rate() {
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    let cluster = Cluster::start(ClusterOpts {
        nodes: 1,
        extra_listeners: ",INTERNAL://127.0.0.1:0".into(),
        extra_toml: "\"listener.security.protocol.map\" = \
                     \"PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\"\n\
                     \"inter.broker.listener.name\" = \"INTERNAL\"\n\
                     \"max.connection.creation.rate\" = 1\n\
                     \"listener.name.internal.max.connection.creation.rate\" = 1000\n"
            .into(),
        ..ClusterOpts::default()
    });
    let internal = common::sasl::listener(cluster.broker(0), "INTERNAL");
    let client = cluster.broker(0).socket_addr();
    // 15 connections: over 1/s in the 10 s a fresh rate spans after the 11th or so, each
    // further one waits up to a quota window (1 s) before it is served.
    let slow = |addr: SocketAddr| {
        (0..15)
            .filter(|_| {
                let started = std::time::Instant::now();
                let resp: ApiVersionsResponse =
                    wire::call(addr, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
                assert_eq!(resp.error_code, 0);
                started.elapsed() >= Duration::from_millis(400)
            })
            .count()
    };
    let internal_slow = slow(internal);
    let client_slow = slow(client);
    assert!(
        client_slow >= 3,
        "the client listener was not limited ({client_slow} slow)"
    );
    assert!(
        internal_slow <= 1,
        "{internal_slow} inter-broker connections were delayed"
    );
}
