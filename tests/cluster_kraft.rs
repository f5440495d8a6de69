//! A KRaft cluster of three `sluice` processes (every node `broker,controller`): every broker
//! answers Metadata with all brokers and the same topics; a broker killed with SIGKILL is
//! fenced and its partitions go leaderless on every broker within the session timeout, and
//! come back with their data when it restarts; killing the active controller elects another
//! and CreateTopics works again with nothing committed lost; a whole-cluster restart rebuilds
//! the same image on every broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{leaders, topics_view, Cluster, ClusterOpts};
use common::wait_until;
use rdkafka::consumer::Consumer;

/// The session timeout plus what fencing may take beyond it (a controller tick, one commit,
/// every broker applying it), generous for a loaded 2-core machine.
fn fence_bound(cluster: &Cluster) -> Duration {
    Duration::from_millis(cluster.opts.session_timeout_ms) + Duration::from_secs(10)
}

/// Waits until every running broker answers the same topics (ids, leaders, epochs).
fn wait_same_image(cluster: &Cluster, timeout: Duration) -> Vec<common::cluster::TopicView> {
    let mut last = Vec::new();
    wait_until(timeout, "every broker to answer the same topics", || {
        let views: Vec<_> = cluster
            .running()
            .iter()
            .map(|i| topics_view(&cluster.metadata(*i)))
            .collect();
        last = views[0].clone();
        views.iter().all(|v| *v == views[0])
    });
    last
}

#[test]
fn every_broker_lists_every_broker_and_the_same_topics() {
    let cluster = Cluster::start(ClusterOpts::default());
    assert_eq!(
        cluster.create_topic("spread", 6, Duration::from_secs(30)),
        0
    );
    let view = wait_same_image(&cluster, Duration::from_secs(20));
    let spread = view.iter().find(|t| t.0 == "spread").expect("topic listed");
    assert_eq!(spread.2.len(), 6);
    let mut hosts: Vec<i32> = spread.2.iter().map(|p| p.1).collect();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts, vec![1, 2, 3], "partitions spread over every broker");
    // Every broker knows the same active controller; the others forward CreateTopics to it
    // (KIP-590) and answer once they applied the topic themselves.
    let controller = cluster.controller_index(0).expect("a controller");
    let other = (controller + 1) % 3;
    let code = common::cluster::create_topic(cluster.broker(other).socket_addr(), "forwarded", 1);
    assert_eq!(code, 0);
    assert_eq!(leaders(&cluster.metadata(other), "forwarded").len(), 1);
    // Sluice's own CLI, given a broker that is not the controller, goes to the controller.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["topic", "create", "cli-made", "-p", "2"])
        .args(["--brokers", &cluster.broker(other).addr()])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    // CreatePartitions, configs and DeleteTopics commit through the quorum too, and every
    // broker applies them (a deleted topic's data goes on every broker).
    let admin = common::kafka::admin(cluster.broker(other));
    let opts = common::kafka::admin_opts();
    common::block_on(
        admin.create_partitions(&[rdkafka::admin::NewPartitions::new("spread", 8)], &opts),
    )
    .unwrap()
    .into_iter()
    .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    let config =
        rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic("spread"))
            .set("retention.ms", "12345");
    common::block_on(admin.alter_configs(&[config], &opts))
        .unwrap()
        .into_iter()
        .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    wait_until(
        Duration::from_secs(20),
        "8 partitions on every broker",
        || (0..3).all(|i| leaders(&cluster.metadata(i), "spread").len() == 8),
    );
    common::block_on(admin.delete_topics(&["spread"], &opts))
        .unwrap()
        .into_iter()
        .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    wait_until(
        Duration::from_secs(20),
        "the topic gone from every broker",
        || (0..3).all(|i| leaders(&cluster.metadata(i), "spread").is_empty()),
    );
    // Each broker moves the data away as it applies the deletion (just after its image
    // forgets the topic).
    for i in 0..3 {
        wait_until(
            Duration::from_secs(20),
            "the deleted topic's data gone",
            || {
                !common::list_files(&cluster.broker(i).data_dir())
                    .iter()
                    .any(|p| p.to_string_lossy().contains("spread-0/"))
            },
        );
    }
    // A topic auto-created by a producer's Metadata through a broker that is not the controller (the
    // broker asks the active controller, as Kafka's brokers forward it).
    let producer = common::kafka::producer(cluster.broker(other), &[]);
    let records = common::kafka::keyed_records(3, 1, 8);
    common::kafka::assert_all_acked(&common::kafka::produce(&producer, "auto", &records, None));
    wait_until(
        Duration::from_secs(20),
        "the auto-created topic everywhere",
        || (0..3).all(|i| leaders(&cluster.metadata(i), "auto").len() == 1),
    );
}

#[test]
fn a_killed_broker_is_fenced_and_comes_back_with_its_data() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    assert_eq!(cluster.create_topic("kept", 3, Duration::from_secs(30)), 0);
    wait_same_image(&cluster, Duration::from_secs(20));
    // A broker that is not the active controller: its death must not need an election.
    let controller = cluster.controller_index(0).expect("a controller");
    let victim = (controller + 1) % 3;
    let victim_id = Cluster::node_id(victim);
    let led: Vec<usize> = leaders(&cluster.metadata(victim), "kept")
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == victim_id)
        .map(|(p, _)| p)
        .collect();
    assert!(!led.is_empty(), "the victim leads a partition");
    let partition = i32::try_from(led[0]).unwrap();
    // Idempotent: its producer id comes from the active controller (AllocateProducerIds).
    let producer =
        common::kafka::producer(cluster.broker(victim), &[("enable.idempotence", "true")]);
    let records = common::kafka::keyed_records(20, 5, 10);
    let acked = common::kafka::produce(&producer, "kept", &records, Some(partition));
    common::kafka::assert_all_acked(&acked);
    drop(producer);

    cluster.broker_mut(victim).kill9();
    let killed = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    for &i in &survivors {
        wait_until(
            fence_bound(&cluster),
            "the victim's partitions to go leaderless",
            || {
                let metadata = cluster.metadata(i);
                let listed = metadata.brokers.iter().any(|b| b.node_id.0 == victim_id);
                let leaders = leaders(&metadata, "kept");
                !listed && led.iter().all(|p| leaders[*p] == -1)
            },
        );
    }
    eprintln!("fenced after {:?}", killed.elapsed());
    let metrics = cluster.broker(survivors[0]).scrape();
    assert_eq!(metrics.sum("sluice_kraft_fenced_brokers", &[]), 1.0);
    assert!(metrics.sum("sluice_kraft_offline_partitions", &[]) >= led.len() as f64);
    assert_eq!(metrics.sum("sluice_kraft_controller_role", &[]), 1.0);

    cluster.broker_mut(victim).start_again();
    for &i in &[victim, survivors[0], survivors[1]] {
        wait_until(Duration::from_secs(30), "the victim to lead again", || {
            let leaders = leaders(&cluster.metadata(i), "kept");
            led.iter().all(|p| leaders[*p] == victim_id)
        });
    }
    let marks = common::kafka::watermarks(cluster.broker(victim), "kept", 3);
    assert_eq!(marks[led[0]].1, 20, "the data came back with the broker");
}

#[test]
fn killing_the_active_controller_elects_another_and_loses_nothing() {
    let mut cluster = Cluster::start(ClusterOpts::default());
    for name in ["before-1", "before-2"] {
        assert_eq!(cluster.create_topic(name, 2, Duration::from_secs(30)), 0);
    }
    wait_same_image(&cluster, Duration::from_secs(20));
    let controller = cluster.controller_index(0).expect("a controller");
    cluster.broker_mut(controller).kill9();
    let killed = Instant::now();
    let survivor = (controller + 1) % 3;
    wait_until(Duration::from_secs(20), "another active controller", || {
        cluster
            .controller_index(survivor)
            .is_some_and(|c| c != controller)
    });
    eprintln!("failover took {:?}", killed.elapsed());
    assert_eq!(cluster.create_topic("after", 2, Duration::from_secs(30)), 0);
    let view = wait_same_image(&cluster, Duration::from_secs(20));
    let names: Vec<&str> = view.iter().map(|t| t.0.as_str()).collect();
    for name in ["before-1", "before-2", "after"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    // The old controller rejoins and catches up with what was committed without it.
    cluster.broker_mut(controller).start_again();
    cluster.wait_all_registered();
    wait_until(
        Duration::from_secs(30),
        "the old controller to catch up",
        || {
            let view = topics_view(&cluster.metadata(controller));
            view.iter().any(|t| t.0 == "after")
        },
    );
}

#[test]
fn a_restarted_cluster_rebuilds_the_same_image_on_every_broker() {
    // Snapshots every few entries: the restart rebuilds from a snapshot plus the log after it.
    let mut cluster = Cluster::start(ClusterOpts {
        extra_toml: "\"metadata.log.max.entries.between.snapshots\" = 4\n".into(),
        ..ClusterOpts::default()
    });
    for (name, partitions) in [("a", 1), ("b", 4), ("c", 2)] {
        assert_eq!(
            cluster.create_topic(name, partitions, Duration::from_secs(30)),
            0
        );
    }
    // The active controller creates the offsets topic on its own, shortly after start, and
    // the transaction log one duty turn after it (cluster/duties.rs): the "before" image must
    // hold both, or the restart's image gains the second.
    wait_until(Duration::from_secs(30), "the internal topics", || {
        let metadata = cluster.metadata(0);
        !leaders(&metadata, "__consumer_offsets").is_empty()
            && !leaders(&metadata, "__transaction_state").is_empty()
    });
    let before = wait_same_image(&cluster, Duration::from_secs(20));
    for i in 0..3 {
        cluster.broker_mut(i).stop();
    }
    for i in 0..3 {
        cluster.broker_mut(i).start_again();
    }
    cluster.wait_all_registered();
    // Leader epochs moved while brokers were fenced and unfenced; names, ids, placement stay.
    let strip = |view: Vec<common::cluster::TopicView>| {
        view.into_iter()
            .map(|(name, id, partitions)| {
                let placed: Vec<(i32, Vec<i32>)> =
                    partitions.into_iter().map(|p| (p.0, p.3)).collect();
                (name, id, placed)
            })
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(30), "every partition led again", || {
        topics_view(&cluster.metadata(0))
            .iter()
            .all(|t| t.2.iter().all(|p| p.1 > 0))
    });
    let after = wait_same_image(&cluster, Duration::from_secs(20));
    assert_eq!(strip(after), strip(before));
    for i in 0..3 {
        let dir = cluster.broker(i).data_dir().join("__cluster_metadata-0");
        let snapshots = common::list_files(&dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "snap"))
            .count();
        assert!(snapshots >= 1, "no metadata snapshot in {}", dir.display());
    }
}

#[test]
fn a_single_node_data_dir_is_adopted_by_a_kraft_node() {
    let mut broker = common::Broker::start(common::BrokerOpts::default().cores(1));
    common::kafka::create_topic(&broker, "old", 2);
    let producer = common::kafka::producer(&broker, &[]);
    let records = common::kafka::keyed_records(5, 2, 8);
    common::kafka::assert_all_acked(&common::kafka::produce(&producer, "old", &records, Some(1)));
    drop(producer);
    let before = topics_view(&common::cluster::metadata(broker.socket_addr()));
    broker.stop();
    let port = common::cluster::free_port();
    let opts = ClusterOpts {
        nodes: 1,
        ..ClusterOpts::default()
    };
    // node.id 0, as the single node was.
    broker.set_config(&common::cluster::node_toml(&opts, 0, &[]).replace(
        "\"controller.quorum.voters\" = \"\"",
        &format!("\"controller.quorum.voters\" = \"0@127.0.0.1:{port}\""),
    ));
    broker.start_again();
    wait_until(
        Duration::from_secs(30),
        "the old topic in the cluster image",
        || {
            let view = topics_view(&common::cluster::metadata(broker.socket_addr()));
            let old = |v: &[common::cluster::TopicView]| {
                v.iter().find(|t| t.0 == "old").map(|t| {
                    (
                        t.1.clone(),
                        t.2.iter().map(|p| p.3.clone()).collect::<Vec<_>>(),
                    )
                })
            };
            old(&view).is_some() && old(&view) == old(&before)
        },
    );
    wait_until(Duration::from_secs(30), "the old topic led again", || {
        leaders(&common::cluster::metadata(broker.socket_addr()), "old") == vec![0, 0]
    });
    // The partitions open just after the image names them: ask until they answer.
    let consumer = common::kafka::consumer(&broker);
    let mut high = None;
    wait_until(
        Duration::from_secs(30),
        "the old partition's watermarks",
        || {
            high = consumer
                .fetch_watermarks("old", 1, Duration::from_secs(5))
                .ok()
                .map(|(_, high)| high);
            high.is_some()
        },
    );
    assert_eq!(high, Some(5), "the data stayed");
}
