//! An N-broker KRaft cluster of real `sluice` processes (every node `broker,controller`, node
//! ids 1..=N), for tests of the cluster and of replication.
//!
//! Invariants: the controller listener ports are picked by the kernel at runtime (bound to
//! port 0 and released just before the nodes start, since every node's config must name all
//! voters); client ports are read back from each broker's ready line (`Broker`); `start`
//! returns only once every broker's Metadata lists all N brokers; every wait has a deadline;
//! dropping the cluster kills every process and removes its directories.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{wait_until, wire, Broker, BrokerOpts};

/// How long a cluster may take to elect a controller and register every broker.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Kafka's NOT_CONTROLLER error code.
pub const NOT_CONTROLLER: i16 = 41;

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub nodes: usize,
    pub cores: usize,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// `controller.quorum.fetch.timeout.ms` and `election.timeout.ms`: how fast a dead
    /// controller is replaced.
    pub quorum_timeout_ms: u64,
    /// More TOML for every node (its own keys only: no `node.id`, roles, voters or listeners).
    pub extra_toml: String,
    /// More listeners after each node's PLAINTEXT one (`,SASL_PLAINTEXT://127.0.0.1:0`).
    pub extra_listeners: String,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            nodes: 3,
            cores: 1,
            session_timeout_ms: 3000,
            heartbeat_interval_ms: 300,
            quorum_timeout_ms: 500,
            extra_toml: String::new(),
            extra_listeners: String::new(),
        }
    }
}

/// A running cluster; `brokers[i]` is node id `i + 1`.
pub struct Cluster {
    pub opts: ClusterOpts,
    pub brokers: Vec<Broker>,
    pub controller_ports: Vec<u16>,
    /// Each node's client port, fixed for the cluster's life (a restarted node keeps it, and
    /// never takes a stopped node's controller port as a port-0 listener could).
    pub client_ports: Vec<u16>,
}

/// A loopback port free now and reserved across processes (`common::ports`), for a listener
/// a node binds later.
pub use super::ports::free_port;

/// The TOML of node `node_id` of a cluster whose controllers listen on `ports`.
pub fn node_toml(opts: &ClusterOpts, node_id: i32, ports: &[u16]) -> String {
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect();
    format!(
        "\"node.id\" = {node_id}\n\
         \"process.roles\" = \"broker,controller\"\n\
         \"controller.quorum.voters\" = \"{}\"\n\
         \"controller.listener.names\" = \"CONTROLLER\"\n\
         \"broker.session.timeout.ms\" = {}\n\
         \"broker.heartbeat.interval.ms\" = {}\n\
         \"controller.quorum.fetch.timeout.ms\" = {}\n\
         \"controller.quorum.election.timeout.ms\" = {}\n\
         \"pin.threads\" = false\n{}\n",
        voters.join(","),
        opts.session_timeout_ms,
        opts.heartbeat_interval_ms,
        opts.quorum_timeout_ms,
        opts.quorum_timeout_ms,
        opts.extra_toml,
    )
}

/// The TOML of a broker-only node `node_id` (not a voter) of a cluster whose controllers
/// listen on `ports`.
pub fn broker_only_toml(opts: &ClusterOpts, node_id: i32, ports: &[u16]) -> String {
    node_toml(opts, node_id, ports).replace(
        "\"process.roles\" = \"broker,controller\"",
        "\"process.roles\" = \"broker\"",
    )
}

impl Cluster {
    /// Starts a broker-only node `node_id` of this cluster (not one of `brokers`).
    pub fn start_broker_only(&self, node_id: i32) -> Broker {
        let toml = broker_only_toml(&self.opts, node_id, &self.controller_ports);
        Broker::start(BrokerOpts::default().cores(self.opts.cores).config(&toml))
    }

    /// Starts every node and waits until every broker's Metadata lists all of them.
    pub fn start(opts: ClusterOpts) -> Cluster {
        Self::start_with(opts, |_| String::new())
    }

    /// [`Cluster::start`] with more TOML for the node of index `i`: `node_toml(i)`.
    pub fn start_with(opts: ClusterOpts, node_toml_extra: impl Fn(usize) -> String) -> Cluster {
        let controller_ports: Vec<u16> = (0..opts.nodes).map(|_| free_port()).collect();
        let client_ports: Vec<u16> = (0..opts.nodes).map(|_| free_port()).collect();
        let brokers = (0..opts.nodes)
            .map(|i| {
                let toml = format!(
                    "{}listeners = \"PLAINTEXT://127.0.0.1:{}{}\"\n{}",
                    node_toml(&opts, Self::node_id(i), &controller_ports),
                    client_ports[i],
                    opts.extra_listeners,
                    node_toml_extra(i)
                );
                Broker::start(BrokerOpts::default().cores(opts.cores).config(&toml))
            })
            .collect();
        let cluster = Cluster {
            opts,
            brokers,
            controller_ports,
            client_ports,
        };
        cluster.wait_all_registered();
        cluster
    }

    pub fn node_id(index: usize) -> i32 {
        i32::try_from(index + 1).expect("node id fits i32")
    }

    pub fn broker(&self, index: usize) -> &Broker {
        &self.brokers[index]
    }

    pub fn broker_mut(&mut self, index: usize) -> &mut Broker {
        &mut self.brokers[index]
    }

    /// Every broker's address, comma-separated (a `bootstrap.servers`).
    pub fn bootstrap(&self) -> String {
        let addrs: Vec<String> = self.brokers.iter().map(Broker::addr).collect();
        addrs.join(",")
    }

    /// The controller listener of node index `index`.
    pub fn controller_addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.controller_ports[index]))
    }

    /// Metadata (all topics) from broker `index`.
    pub fn metadata(&self, index: usize) -> MetadataResponse {
        metadata(self.brokers[index].socket_addr())
    }

    /// Waits until every running broker lists all N brokers.
    pub fn wait_all_registered(&self) {
        let everyone: Vec<i32> = (0..self.opts.nodes).map(Self::node_id).collect();
        self.wait_brokers_listed(&self.running(), &everyone, CLUSTER_READY_TIMEOUT);
    }

    /// The indexes of the brokers running now.
    pub fn running(&self) -> Vec<usize> {
        (0..self.brokers.len())
            .filter(|i| self.brokers[*i].pid().is_some())
            .collect()
    }

    /// Waits until each broker of `on` lists exactly the brokers `expected` (alive, unfenced).
    pub fn wait_brokers_listed(&self, on: &[usize], expected: &[i32], timeout: Duration) {
        for &i in on {
            wait_until(
                timeout,
                &format!("broker {} to list brokers {expected:?}", Self::node_id(i)),
                || {
                    let mut ids: Vec<i32> = self
                        .metadata(i)
                        .brokers
                        .iter()
                        .map(|b| b.node_id.0)
                        .collect();
                    ids.sort_unstable();
                    ids == expected
                },
            );
        }
    }

    /// The active controller's index: the running node whose `sluice_kraft_active_controller`
    /// gauge is 1 (Metadata's controller id is a random alive broker, as in Kafka, so it no
    /// longer names the controller). `_asked` is kept for the callers written before.
    pub fn controller_index(&self, _asked: usize) -> Option<usize> {
        let active: Vec<usize> = self
            .running()
            .into_iter()
            .filter(|i| {
                self.brokers[*i]
                    .try_scrape(Duration::from_secs(2))
                    .is_some_and(|m| m.sum("sluice_kraft_active_controller", &[]) == 1.0)
            })
            .collect();
        match active.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Creates a topic through the active controller, retrying on NOT_CONTROLLER (as clients
    /// do) until `timeout`; answers the topic's error code (0 once created).
    pub fn create_topic(&self, name: &str, partitions: i32, timeout: Duration) -> i16 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let asked = self.running()[0];
            let code = match self.controller_index(asked) {
                Some(controller) => {
                    create_topic(self.brokers[controller].socket_addr(), name, partitions)
                }
                None => NOT_CONTROLLER,
            };
            if code != NOT_CONTROLLER || std::time::Instant::now() >= deadline {
                return code;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every topic of the cluster gets three replicas (append to `ClusterOpts::extra_toml`).
pub const RF3_TOML: &str = "\"default.replication.factor\" = 3\n";

impl Cluster {
    /// A three-node cluster whose topics get three replicas (`extra_toml` appended), with
    /// `topic` (one partition) created and led: the cluster and its leader's index.
    pub fn start_replicated(opts: ClusterOpts, topic: &str) -> (Cluster, usize) {
        let opts = ClusterOpts {
            extra_toml: format!("{RF3_TOML}{}", opts.extra_toml),
            ..opts
        };
        let cluster = Cluster::start(opts);
        assert_eq!(cluster.create_topic(topic, 1, Duration::from_secs(30)), 0);
        let leader = cluster.wait_leader(&[0, 1, 2], topic, -1);
        let index = usize::try_from(leader - 1).unwrap_or_else(|_| panic!("leader {leader}"));
        (cluster, index)
    }

    /// Two shards per broker and three replicas per topic (`extra_toml` appended), with
    /// `topic` of `partitions` created and every partition led with its full ISR on every
    /// broker: follower fetches cross shards on both sides.
    pub fn start_sharded(extra_toml: &str, topic: &str, partitions: i32) -> Cluster {
        let cluster = Cluster::start(ClusterOpts {
            cores: 2,
            extra_toml: format!("{RF3_TOML}{extra_toml}"),
            ..ClusterOpts::default()
        });
        assert_eq!(
            cluster.create_topic(topic, partitions, Duration::from_secs(30)),
            0
        );
        super::faults::wait_full_isr(&cluster, topic, partitions);
        cluster
    }

    /// (leader, replicas, ISR) of partition 0 of `topic` as broker `index` answers it.
    pub fn registration(&self, index: usize, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
        topics_view(&self.metadata(index))
            .into_iter()
            .find(|t| t.0 == topic)
            .and_then(|t| t.2.first().cloned())
            .map(|p| (p.1, p.3, p.4))
    }

    /// Waits until every broker of `on` answers the same registration of partition 0 of
    /// `topic` (three replicas) with a leader other than `not`, and that leader serves the
    /// partition ([`Cluster::serves`]); returns that leader.
    pub fn wait_leader(&self, on: &[usize], topic: &str, not: i32) -> i32 {
        let mut leader = -1;
        wait_until(
            Duration::from_secs(30),
            "one leader named by every broker, serving the partition",
            || {
                let views: Vec<_> = on.iter().map(|i| self.registration(*i, topic)).collect();
                match views.first() {
                    Some(Some((l, replicas, _))) if *l > 0 && *l != not && replicas.len() == 3 => {
                        leader = *l;
                        views.iter().all(|v| v == &views[0]) && self.serves(*l, topic, 0)
                    }
                    _ => false,
                }
            },
        );
        leader
    }

    /// Whether node `leader` answers ListOffsets (latest) for `partition` of `topic` without
    /// error: it applied its leadership. Another broker's image may name it a moment before
    /// (until then it answers NOT_LEADER_OR_FOLLOWER).
    pub fn serves(&self, leader: i32, topic: &str, partition: i32) -> bool {
        usize::try_from(leader - 1)
            .ok()
            .and_then(|i| self.brokers.get(i))
            .is_some_and(|b| list_offset(b.socket_addr(), topic, partition, -1).0 == 0)
    }

    /// Waits until the leader of `partition` of `topic` that broker `asked` names serves it
    /// ([`Cluster::serves`]); returns the leader's index.
    pub fn wait_leader_serving(&self, asked: usize, topic: &str, partition: i32) -> usize {
        let mut leader = -1;
        wait_until(
            CLUSTER_READY_TIMEOUT,
            &format!("the leader of {topic}-{partition} to serve it"),
            || {
                leader = topics_view(&self.metadata(asked))
                    .into_iter()
                    .find(|t| t.0 == topic)
                    .and_then(|t| t.2.into_iter().find(|p| p.0 == partition))
                    .map_or(-1, |p| p.1);
                self.serves(leader, topic, partition)
            },
        );
        usize::try_from(leader - 1).unwrap_or_else(|_| panic!("leader {leader}"))
    }

    /// Waits until every broker answers `topic` with all `partitions` led by brokers of the
    /// cluster and the same view (leaders, epochs, replicas, ISR); returns the view.
    pub fn wait_topic(&self, topic: &str, partitions: usize) -> TopicView {
        let mut found = None;
        let nodes = 1..=i32::try_from(self.opts.nodes).unwrap_or(i32::MAX);
        wait_until(
            CLUSTER_READY_TIMEOUT,
            &format!("every broker to agree on {topic}"),
            || {
                let views: Vec<Option<TopicView>> = (0..self.brokers.len())
                    .map(|i| {
                        topics_view(&self.metadata(i))
                            .into_iter()
                            .find(|t| t.0 == topic)
                    })
                    .collect();
                let Some(first) = views[0].clone() else {
                    return false;
                };
                let complete =
                    first.2.len() == partitions && first.2.iter().all(|p| nodes.contains(&p.1));
                found = Some(first.clone());
                complete && views.iter().all(|v| v.as_ref() == Some(&first))
            },
        );
        found.unwrap_or_else(|| panic!("no view of {topic}"))
    }

    /// Sends `request` until the answer's `code` is not NOT_CONTROLLER (the controller may
    /// be moving): to broker `to`, or to the active controller when `None`, as clients retry.
    pub fn call_retrying<Req, Resp>(
        &self,
        to: Option<usize>,
        key: ApiKey,
        version: i16,
        request: &Req,
        code: impl Fn(&Resp) -> i16,
    ) -> Resp
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        let mut answer = None;
        wait_until(
            CLUSTER_READY_TIMEOUT,
            &format!("{key:?} answered by a controller"),
            || {
                let Some(index) = to.or_else(|| self.controller_index(0)) else {
                    return false;
                };
                let response: Resp =
                    wire::call(self.brokers[index].socket_addr(), key, version, request);
                let done = code(&response) != NOT_CONTROLLER;
                answer = Some(response);
                done
            },
        );
        answer.unwrap_or_else(|| panic!("{key:?} never answered"))
    }
}

impl Broker {
    /// Sends `signal` (`-STOP`, `-CONT`) to the broker's process.
    pub fn send_signal(&self, signal: &str) {
        let pid = self
            .pid()
            .expect("send_signal on a broker that is not running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill {signal} {pid}: {e}"));
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// Metadata v12 for every topic.
pub fn metadata(addr: SocketAddr) -> MetadataResponse {
    let request = MetadataRequest::default().with_topics(None);
    wire::call(addr, ApiKey::Metadata, 12, &request)
}

/// (error code, offset) of ListOffsets v7 for `partition` of `topic` at `timestamp` (-1
/// latest, -2 earliest, -4 earliest local).
pub fn list_offset(addr: SocketAddr, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let answer: ListOffsetsResponse = wire::call(addr, ApiKey::ListOffsets, 7, &request);
    answer
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or((-1, -1), |p| (p.error_code, p.offset))
}

/// CreateTopics v5 of one topic (replication factor -1); the topic's error code.
pub fn create_topic(addr: SocketAddr, name: &str, partitions: i32) -> i16 {
    create_topic_within(addr, name, partitions, wire::REPLY_TIMEOUT)
}

/// [`create_topic`] answered within `within` (a broker retrying a forwarded request).
pub fn create_topic_within(addr: SocketAddr, name: &str, partitions: i32, within: Duration) -> i16 {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
        .with_num_partitions(partitions)
        .with_replication_factor(-1);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(10_000);
    let response: CreateTopicsResponse =
        wire::call_within(addr, ApiKey::CreateTopics, 5, &request, within);
    response.topics.first().map_or(-1, |t| t.error_code)
}

/// A comparable view of a Metadata answer: brokers (id, host, port), controller, and per topic
/// (name, id, partitions with leader, leader epoch, replicas, ISR), sorted.
pub type TopicView = (String, String, Vec<(i32, i32, i32, Vec<i32>, Vec<i32>)>);

pub fn topics_view(response: &MetadataResponse) -> Vec<TopicView> {
    let mut topics: Vec<TopicView> = response
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id.0,
                        p.leader_epoch,
                        p.replica_nodes.iter().map(|b: &BrokerId| b.0).collect(),
                        p.isr_nodes.iter().map(|b: &BrokerId| b.0).collect(),
                    )
                })
                .collect();
            partitions.sort();
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.topic_id.to_string(),
                partitions,
            )
        })
        .collect();
    topics.sort();
    topics
}

/// The leader of each partition of `topic` in `response` (by index).
pub fn leaders(response: &MetadataResponse, topic: &str) -> Vec<i32> {
    topics_view(response)
        .into_iter()
        .find(|(name, _, _)| name == topic)
        .map(|(_, _, partitions)| partitions.iter().map(|p| p.1).collect())
        .unwrap_or_default()
}

impl Broker {
    /// Replaces the broker's config file for its next start (`start_again`).
    pub fn set_config(&mut self, toml: &str) {
        std::fs::write(self.dir.path().join("sluice.toml"), toml)
            .unwrap_or_else(|e| panic!("write config: {e}"));
        self.opts.config_toml = Some(toml.to_owned());
    }

    /// GET /metrics, parsed; None when the broker does not answer within `timeout` (stopped).
    pub fn try_scrape(&self, timeout: Duration) -> Option<sluice::metrics::text::Exposition> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&self.admin_addr(), timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        sluice::metrics::text::parse(body).ok()
    }

    /// GET /metrics, parsed.
    pub fn scrape(&self) -> sluice::metrics::text::Exposition {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect_timeout(&self.admin_addr(), Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("connect admin: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .unwrap_or_else(|e| panic!("read: {e}"));
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {raw:?}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        sluice::metrics::text::parse(body)
            .unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
    }
}
