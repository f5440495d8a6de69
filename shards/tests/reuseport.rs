//! Two shards bind one port with SO_REUSEPORT; the kernel spreads connections over both.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::{SocketAddr, TcpStream};
use std::pin::pin;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::future::{select, Either};
use shards::{
    reuseport_listener, run_with_shutdown, RuntimeConfig, ShardContext, ShardId, Shutdown,
};

const WAIT: Duration = Duration::from_secs(30);
const CONNECTION_COUNT: usize = 200;

enum Event {
    Ready(ShardId, SocketAddr),
    Accepted(ShardId),
}

#[test]
fn connections_spread_over_shards_sharing_a_port() {
    let shutdown = Shutdown::new();
    let (event_tx, event_rx) = mpsc::channel();
    let config = RuntimeConfig {
        shard_count: 2,
        pin_threads: false,
        ..RuntimeConfig::default()
    };
    let handle = shutdown.clone();
    let runner = std::thread::spawn(move || {
        run_with_shutdown(
            config,
            handle,
            move |ctx: ShardContext<SocketAddr>, inbox| {
                let event_tx = event_tx.clone();
                async move {
                    // Shard 0 resolves port 0 once; the others bind the port it got.
                    let addr = if ctx.id == ShardId(0) {
                        "127.0.0.1:0".parse().expect("addr")
                    } else {
                        inbox.recv().await.expect("address from shard 0")
                    };
                    let listener = reuseport_listener(addr).expect("bind");
                    let addr = listener.local_addr().expect("local addr");
                    if ctx.id == ShardId(0) {
                        ctx.mesh.send(ShardId(1), addr).await.expect("send addr");
                    }
                    event_tx.send(Event::Ready(ctx.id, addr)).expect("ready");
                    loop {
                        match select(pin!(listener.accept()), pin!(ctx.shutdown.wait())).await {
                            Either::Left((accepted, _)) => {
                                accepted.expect("accept");
                                event_tx.send(Event::Accepted(ctx.id)).expect("report");
                            }
                            Either::Right(_) => return,
                        }
                    }
                }
            },
        )
    });
    let mut addrs = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..2 {
        match event_rx.recv_timeout(WAIT).expect("shard ready") {
            Event::Ready(shard, addr) => {
                ready.push(shard);
                addrs.push(addr);
            }
            Event::Accepted(_) => panic!("accept before any connection"),
        }
    }
    ready.sort();
    assert_eq!(ready, vec![ShardId(0), ShardId(1)]);
    assert_eq!(addrs[0], addrs[1], "both shards listen on one address");

    // Held open until counted, so nothing is closed before its accept.
    let clients: Vec<TcpStream> = (0..CONNECTION_COUNT)
        .map(|_| TcpStream::connect(addrs[0]).expect("connect"))
        .collect();
    let mut per_shard = [0usize; 2];
    for _ in 0..CONNECTION_COUNT {
        match event_rx.recv_timeout(WAIT).expect("accept reported") {
            Event::Accepted(shard) => per_shard[shard.index()] += 1,
            Event::Ready(..) => panic!("shard ready twice"),
        }
    }
    drop(clients);
    shutdown.trigger();
    let result = runner.join().expect("runner thread");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(per_shard.iter().sum::<usize>(), CONNECTION_COUNT);
    // Hash of 200 distinct source ports: all on one shard has probability 2^-199.
    assert!(per_shard.iter().all(|&count| count > 0), "{per_shard:?}");
}
