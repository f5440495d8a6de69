//! A 3-node cluster whose inter-broker traffic goes through fault proxies (`proxy::Proxy`), so
//! that a test can cut one broker off from the others while clients still reach it:
//!
//! - controller traffic (Raft between the voters, broker heartbeats, AlterPartition): node i
//!   names voter j (j != i) at the proxy of the route i -> j in its `controller.quorum.voters`,
//!   one proxy per directed route;
//! - replication: every broker has two listeners, `PLAINTEXT` (first, so the one followers
//!   fetch from, and Kafka's default inter-broker listener name) advertised at a proxy in front
//!   of it, and `CLIENT`, advertised at its own port, which the clients use (a broker answers
//!   Metadata with the endpoints of the listener asked, so clients never see the proxies).
//!
//! `isolate(i)` cuts every controller route from and to node i and the route in front of its
//! replication listener (nobody fetches from it); `heal` restores everything. A proxy sits in
//! front of a listener, not on a (source, destination) pair, so node i's own follower fetches
//! to the others still pass while it is isolated (a one-way cut of replication).
//!
//! Invariants: every port is picked at runtime; the proxies live as long as the cluster.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};

use super::cluster::{node_toml, Cluster, ClusterOpts};
use super::proxy::Proxy;
use super::{Broker, BrokerOpts};

/// See the module documentation.
pub struct SplitCluster {
    pub cluster: Cluster,
    /// (from, to) node indexes -> the proxy node `from` reaches voter `to` through.
    voter_routes: BTreeMap<(usize, usize), Proxy>,
    /// Per node index: the proxy in front of its replication (`PLAINTEXT`) listener.
    replication: Vec<Proxy>,
    /// Per node index: the port of its `CLIENT` listener.
    pub client_ports: Vec<u16>,
}

/// A loopback port bound now (kept until the listener is dropped), below the ephemeral range
/// so that no node's outgoing connection takes it once released (`cluster::free_port`).
fn hold_port() -> TcpListener {
    TcpListener::bind(("127.0.0.1", super::cluster::free_port()))
        .unwrap_or_else(|e| panic!("bind: {e}"))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl SplitCluster {
    pub fn start(opts: ClusterOpts) -> SplitCluster {
        let n = opts.nodes;
        // The brokers' ports stay bound until every proxy has its own port (a proxy binding
        // port 0 could otherwise be given one of them).
        let held: Vec<TcpListener> = (0..3 * n).map(|_| hold_port()).collect();
        let port = |i: usize| held[i].local_addr().map_or(0, |a| a.port());
        let controller_ports: Vec<u16> = (0..n).map(port).collect();
        let replication_ports: Vec<u16> = (n..2 * n).map(port).collect();
        let client_ports: Vec<u16> = (2 * n..3 * n).map(port).collect();
        let mut voter_routes = BTreeMap::new();
        for from in 0..n {
            for to in (0..n).filter(|to| *to != from) {
                let proxy = Proxy::start(loopback(controller_ports[to]));
                voter_routes.insert((from, to), proxy);
            }
        }
        let replication: Vec<Proxy> = replication_ports
            .iter()
            .map(|p| Proxy::start(loopback(*p)))
            .collect();
        drop(held);
        let brokers: Vec<Broker> = (0..n)
            .map(|i| {
                let voters: Vec<u16> = (0..n)
                    .map(|j| match voter_routes.get(&(i, j)) {
                        Some(proxy) => proxy.port(),
                        None => controller_ports[i],
                    })
                    .collect();
                let toml = format!(
                    "{}listeners = \"PLAINTEXT://127.0.0.1:{},CLIENT://127.0.0.1:{}\"\n\
                     \"advertised.listeners\" = \"PLAINTEXT://127.0.0.1:{},CLIENT://127.0.0.1:{}\"\n\
                     \"listener.security.protocol.map\" = \"PLAINTEXT:PLAINTEXT,CLIENT:PLAINTEXT\"\n",
                    node_toml(&opts, Cluster::node_id(i), &voters),
                    replication_ports[i],
                    client_ports[i],
                    replication[i].port(),
                    client_ports[i],
                );
                Broker::start(BrokerOpts::default().cores(opts.cores).config(&toml))
            })
            .collect();
        let cluster = Cluster {
            opts,
            brokers,
            controller_ports,
            client_ports: replication_ports,
        };
        cluster.wait_all_registered();
        SplitCluster {
            cluster,
            voter_routes,
            replication,
            client_ports,
        }
    }

    /// `bootstrap.servers` of the clients: every node's `CLIENT` listener.
    pub fn client_bootstrap(&self) -> String {
        let addrs: Vec<String> = self
            .client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        addrs.join(",")
    }

    pub fn client_addr(&self, index: usize) -> SocketAddr {
        loopback(self.client_ports[index])
    }

    /// Cuts node `index` off from every other node (see the module documentation).
    pub fn isolate(&self, index: usize) {
        eprintln!(
            "isolating node {} (controller ports {:?}, replication proxies {:?}, routes {:?})",
            index + 1,
            self.cluster.controller_ports,
            self.replication
                .iter()
                .map(|p| (p.port(), p.target().port()))
                .collect::<Vec<_>>(),
            self.voter_routes
                .iter()
                .map(|(k, p)| (*k, p.port(), p.target().port()))
                .collect::<Vec<_>>()
        );
        for ((from, to), proxy) in &self.voter_routes {
            if *from == index || *to == index {
                proxy.cut();
            }
        }
        self.replication[index].cut();
    }

    /// Restores every route.
    pub fn heal(&self) {
        for proxy in self.voter_routes.values() {
            proxy.heal();
        }
        for proxy in &self.replication {
            proxy.heal();
        }
    }
}
