//! Accept-path benchmark: SO_REUSEPORT listener per shard vs one acceptor shard that hands
//! connections out round-robin (moving the fd to the owner's io_uring through the mesh).
//!
//! Each connection is a short round trip: the client connects, sends one byte, reads one byte
//! back, and resets (SO_LINGER 0, so 10^4 connections do not exhaust ports in TIME_WAIT).
//!
//! Run: `cargo run -p shards --release --example accept_bench -- [connections] [clients] [shards] [rounds]`
//! (defaults 5000, 4, available cores, 3).

// A measurement program, not part of the broker: a failure aborts the run loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::AsFd;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{select, Either};
use shards::{
    reuseport_listener, run_with_shutdown, Inbox, RuntimeConfig, ShardContext, ShardId, Shutdown,
};

const READY_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    ReusePort = 0,
    Acceptor = 1,
}

enum Msg {
    Addr(SocketAddr),
    Conn(StdTcpStream),
}

struct Report {
    elapsed: Duration,
    per_shard: Vec<usize>,
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let connections = args.first().copied().unwrap_or(5000);
    let clients = args.get(1).copied().unwrap_or(4).max(1);
    let shard_count = args
        .get(2)
        .copied()
        .unwrap_or_else(|| RuntimeConfig::default().resolved_shard_count());
    let rounds = args.get(3).copied().unwrap_or(3);
    println!("connections={connections} clients={clients} shards={shard_count} rounds={rounds}");
    // Total elapsed per mode over all rounds: [ReusePort, Acceptor].
    let mut totals = [Duration::ZERO; 2];
    for round in 1..=rounds {
        // Alternate which mode goes first, so warm-up and drift do not favour one.
        let order = if round % 2 == 1 {
            [Mode::ReusePort, Mode::Acceptor]
        } else {
            [Mode::Acceptor, Mode::ReusePort]
        };
        for mode in order {
            let report = bench(mode, shard_count, connections, clients);
            totals[mode as usize] += report.elapsed;
            let per_second = connections as f64 / report.elapsed.as_secs_f64();
            println!(
                "round={round} mode={mode:?} elapsed_ms={} accepts_per_s={per_second:.0} per_shard={:?}",
                report.elapsed.as_millis(),
                report.per_shard
            );
        }
    }
    for mode in [Mode::ReusePort, Mode::Acceptor] {
        let total = totals[mode as usize].as_secs_f64();
        let per_second = (connections * rounds) as f64 / total;
        println!("summary mode={mode:?} accepts_per_s={per_second:.0} over {rounds} rounds");
    }
}

fn bench(mode: Mode, shard_count: usize, connections: usize, clients: usize) -> Report {
    let config = RuntimeConfig {
        shard_count,
        ..RuntimeConfig::default()
    };
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..shard_count).map(|_| AtomicUsize::new(0)).collect());
    let shutdown = Shutdown::new();
    let (ready_tx, ready_rx) = mpsc::channel::<Option<SocketAddr>>();
    let runner = {
        let counts = Arc::clone(&counts);
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            run_with_shutdown(config, shutdown, move |ctx: ShardContext<Msg>, inbox| {
                let ready_tx = ready_tx.clone();
                let counts = Arc::clone(&counts);
                async move { shard(mode, ctx, inbox, ready_tx, counts).await }
            })
        })
    };
    // Every shard reports once it listens (or, as an acceptor-mode worker, once it is ready).
    let addrs: Vec<SocketAddr> = (0..shard_count)
        .filter_map(|_| ready_rx.recv_timeout(READY_WAIT).expect("shard ready"))
        .collect();
    let addr = *addrs.first().expect("shard 0 listens");

    let started = Instant::now();
    let client_threads: Vec<_> = (0..clients)
        .map(|client| {
            let share = connections / clients + usize::from(client < connections % clients);
            std::thread::spawn(move || (0..share).for_each(|_| round_trip(addr)))
        })
        .collect();
    for thread in client_threads {
        thread.join().expect("client thread");
    }
    let elapsed = started.elapsed();
    shutdown.trigger();
    runner.join().expect("runner").expect("shards ran");
    let per_shard = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    Report { elapsed, per_shard }
}

fn round_trip(addr: SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("client socket");
    socket.set_linger(Some(Duration::ZERO)).expect("linger");
    socket.set_tcp_nodelay(true).expect("nodelay");
    socket.connect(&addr.into()).expect("connect");
    let mut stream = StdTcpStream::from(socket);
    stream.write_all(&[7]).expect("client write");
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).expect("client read");
    assert_eq!(answer, [7]);
}

async fn shard(
    mode: Mode,
    ctx: ShardContext<Msg>,
    inbox: Inbox<Msg>,
    ready_tx: mpsc::Sender<Option<SocketAddr>>,
    counts: Arc<Vec<AtomicUsize>>,
) {
    let count = || counts[ctx.id.index()].fetch_add(1, Ordering::Relaxed);
    let listener = match (mode, ctx.id) {
        (_, ShardId(0)) => {
            let listener = reuseport_listener("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = listener.local_addr().expect("local addr");
            for other in ctx.mesh.shards().skip(1) {
                ctx.mesh
                    .send(other, Msg::Addr(addr))
                    .await
                    .expect("send addr");
            }
            Some(listener)
        }
        (Mode::ReusePort, _) => match inbox.recv().await {
            Some(Msg::Addr(addr)) => Some(reuseport_listener(addr).expect("bind shared port")),
            _ => panic!("expected the address first"),
        },
        (Mode::Acceptor, _) => match inbox.recv().await {
            Some(Msg::Addr(_)) => None,
            _ => panic!("expected the address first"),
        },
    };
    ready_tx
        .send(listener.as_ref().and_then(|l| l.local_addr().ok()))
        .expect("ready");
    match listener {
        Some(listener) => accept_loop(mode, &ctx, &listener, count).await,
        None => {
            while let Either::Left((Some(Msg::Conn(std_stream)), _)) =
                select(pin!(inbox.recv()), pin!(ctx.shutdown.wait())).await
            {
                count();
                let stream = TcpStream::from_std(std_stream).expect("adopt fd");
                compio::runtime::spawn(serve(stream)).detach();
            }
        }
    }
}

async fn accept_loop(
    mode: Mode,
    ctx: &ShardContext<Msg>,
    listener: &TcpListener,
    count: impl Fn() -> usize,
) {
    let mut next = 0usize;
    loop {
        let stream = match select(pin!(listener.accept()), pin!(ctx.shutdown.wait())).await {
            Either::Left((accepted, _)) => accepted.expect("accept").0,
            Either::Right(_) => return,
        };
        let owner = match mode {
            Mode::ReusePort => 0,
            Mode::Acceptor => {
                next = (next + 1) % ctx.mesh.shard_count();
                next
            }
        };
        if owner == 0 {
            count();
            compio::runtime::spawn(serve(stream)).detach();
            continue;
        }
        // compio 0.19.2 has no into_raw_fd: moving the connection costs a dup + close here and a
        // fresh registration on the owner's io_uring.
        let fd = stream.as_fd().try_clone_to_owned().expect("dup fd");
        drop(stream);
        let to = ShardId(owner as u16);
        ctx.mesh
            .send(to, Msg::Conn(StdTcpStream::from(fd)))
            .await
            .expect("hand off");
    }
}

async fn serve(mut stream: TcpStream) {
    let compio::BufResult(read, buf) = stream.read_exact(Vec::with_capacity(1)).await;
    if read.is_ok() {
        let _ = stream.write_all(buf).await;
    }
}
