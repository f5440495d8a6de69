//! `run`: every shard starts once, shards talk over the mesh, shutdown ends `run`, and a
//! panicking shard turns into an error that also stops its peers.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::pin::pin;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::future::{select, Either};
use shards::{
    run, run_with_shutdown, Inbox, MeshError, Reply, RingSetup, RuntimeConfig, RuntimeError,
    ShardContext, ShardId, Shutdown,
};

const WAIT: Duration = Duration::from_secs(30);

fn config(shard_count: usize) -> RuntimeConfig {
    RuntimeConfig {
        shard_count,
        pin_threads: false,
        mailbox_capacity: 4,
        thread_name_prefix: "test-shard".into(),
        ring: RingSetup::default(),
        ..RuntimeConfig::default()
    }
}

/// Next inbox message, or None once shutdown is triggered.
async fn recv_or_shutdown<M>(inbox: &Inbox<M>, shutdown: &Shutdown) -> Option<M> {
    match select(pin!(inbox.recv()), pin!(shutdown.wait())).await {
        Either::Left((msg, _)) => msg,
        Either::Right(((), _)) => None,
    }
}

#[test]
fn every_shard_runs_once_with_its_id() {
    let (tx, rx) = mpsc::channel();
    let result = run(config(4), move |ctx: ShardContext<()>, _inbox| {
        let tx = tx.clone();
        async move {
            let name = std::thread::current().name().map(str::to_owned);
            tx.send((ctx.id, ctx.mesh.shard_count(), name))
                .expect("report");
        }
    });
    assert!(result.is_ok(), "{result:?}");
    let mut reports: Vec<_> = rx.try_iter().collect();
    reports.sort();
    let expected: Vec<_> = (0..4u16)
        .map(|i| (ShardId(i), 4, Some(format!("test-shard-{i}"))))
        .collect();
    assert_eq!(reports, expected);
}

#[test]
fn pinned_shards_default_count_run() {
    let (tx, rx) = mpsc::channel();
    let config = RuntimeConfig {
        pin_threads: true,
        ..RuntimeConfig::default()
    };
    let expected_count = config.resolved_shard_count();
    let result = run(config, move |ctx: ShardContext<()>, _inbox| {
        let tx = tx.clone();
        async move { tx.send(ctx.id).expect("report") }
    });
    assert!(result.is_ok(), "{result:?}");
    let mut ids: Vec<_> = rx.try_iter().collect();
    ids.sort();
    let expected: Vec<_> = (0..expected_count).map(|i| ShardId(i as u16)).collect();
    assert_eq!(ids, expected);
}

/// `iowq_bounded_workers_max` is in force on every shard's own ring (with SINGLE_ISSUER, where
/// only the shard's thread may register), read back from the kernel there.
#[test]
fn each_shard_gets_the_io_wq_worker_limit() {
    let (tx, rx) = mpsc::channel();
    let ring: RingSetup = "SINGLE_ISSUER,DEFER_TASKRUN".parse().unwrap();
    let config = RuntimeConfig {
        ring,
        iowq_bounded_workers_max: 3,
        ..config(2)
    };
    let result = run(config, move |ctx: ShardContext<()>, _inbox| {
        let tx = tx.clone();
        async move {
            let fd = compio::runtime::Runtime::with_current(std::os::fd::AsRawFd::as_raw_fd);
            // 0 changes nothing and returns the limit in force.
            let limits = shards::set_iowq_bounded_workers_max(fd, 0).expect("register");
            tx.send((ctx.id, limits[0])).expect("report");
        }
    });
    assert!(result.is_ok(), "{result:?}");
    let mut seen: Vec<_> = rx.try_iter().collect();
    seen.sort();
    assert_eq!(seen, vec![(ShardId(0), 3), (ShardId(1), 3)]);
}

enum Msg {
    Note(u32),
    Add(u32, u32, Reply<u32>),
    NotesSeen(Reply<Vec<u32>>),
}

#[test]
fn send_and_call_across_two_shards() {
    send_and_call(config(2));
}

/// The same with every optional io_uring setup flag: cross-thread wake-ups (mailboxes), timers
/// and shutdown still work when only the owning thread enters its ring and task work is
/// deferred until it does.
#[test]
fn send_and_call_with_single_issuer_and_deferred_task_work() {
    let ring: RingSetup = "SINGLE_ISSUER,DEFER_TASKRUN,COOP_TASKRUN".parse().unwrap();
    send_and_call(RuntimeConfig { ring, ..config(2) });
}

fn send_and_call(config: RuntimeConfig) {
    let (tx, rx) = mpsc::channel();
    let result = run(config, move |ctx: ShardContext<Msg>, inbox| {
        let tx = tx.clone();
        async move {
            if ctx.id == ShardId(1) {
                serve(&inbox, &ctx.shutdown).await;
                return;
            }
            // An io_uring timeout on this shard's ring completes.
            compio::time::sleep(Duration::from_millis(5)).await;
            let to = ShardId(1);
            ctx.mesh.send(to, Msg::Note(5)).await.expect("send");
            ctx.mesh.try_send(to, Msg::Note(6)).expect("try_send");
            let sum = ctx.mesh.call(to, |reply| Msg::Add(2, 3, reply)).await;
            let notes = ctx.mesh.call(to, Msg::NotesSeen).await;
            let unknown = ctx.mesh.call(ShardId(2), Msg::NotesSeen).await;
            tx.send((sum, notes, unknown.map(|_| ()))).expect("report");
            ctx.shutdown.trigger();
        }
    });
    assert!(result.is_ok(), "{result:?}");
    let (sum, notes, unknown) = rx.recv_timeout(WAIT).expect("shard 0 report");
    assert_eq!(sum, Ok(5));
    assert_eq!(notes, Ok(vec![5, 6]));
    assert_eq!(
        unknown,
        Err(MeshError::UnknownShard {
            shard: ShardId(2),
            shard_count: 2
        })
    );
}

async fn serve(inbox: &Inbox<Msg>, shutdown: &Shutdown) {
    let mut notes = Vec::new();
    while let Some(msg) = recv_or_shutdown(inbox, shutdown).await {
        match msg {
            Msg::Note(value) => notes.push(value),
            Msg::Add(a, b, reply) => reply.send(a + b),
            Msg::NotesSeen(reply) => reply.send(notes.clone()),
        }
    }
}

#[test]
fn call_to_a_shard_that_returned_is_closed() {
    let (tx, rx) = mpsc::channel();
    let result = run(config(2), move |ctx: ShardContext<Msg>, inbox| {
        let tx = tx.clone();
        async move {
            if ctx.id == ShardId(1) {
                // Returning drops this shard's inbox.
                drop(inbox);
                tx.send(None).expect("report");
                return;
            }
            // Whether the request is refused or queued and dropped with the inbox, the
            // answer is Closed, never a hang.
            let outcome = ctx.mesh.call(ShardId(1), Msg::NotesSeen).await.map(|_| ());
            tx.send(Some(outcome)).expect("report");
        }
    });
    assert!(result.is_ok(), "{result:?}");
    let reports: Vec<_> = rx.try_iter().collect();
    assert!(reports.contains(&None));
    assert!(
        reports.contains(&Some(Err(MeshError::Closed))),
        "{reports:?}"
    );
}

#[test]
fn shutdown_from_one_shard_ends_run() {
    let (tx, rx) = mpsc::channel();
    let result = run(config(3), move |ctx: ShardContext<()>, _inbox| {
        let tx = tx.clone();
        async move {
            if ctx.id == ShardId(2) {
                ctx.shutdown.trigger();
            }
            ctx.shutdown.wait().await;
            tx.send(ctx.id).expect("report cleanup");
        }
    });
    assert!(result.is_ok(), "{result:?}");
    let mut cleaned: Vec<_> = rx.try_iter().collect();
    cleaned.sort();
    assert_eq!(cleaned, vec![ShardId(0), ShardId(1), ShardId(2)]);
}

#[test]
fn external_shutdown_ends_run() {
    let shutdown = Shutdown::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = shutdown.clone();
    let runner = std::thread::spawn(move || {
        run_with_shutdown(config(2), handle, move |ctx: ShardContext<()>, _inbox| {
            let ready_tx = ready_tx.clone();
            async move {
                ready_tx.send(ctx.id).expect("ready");
                ctx.shutdown.wait().await;
            }
        })
    });
    for _ in 0..2 {
        ready_rx.recv_timeout(WAIT).expect("shard ready");
    }
    assert!(!runner.is_finished());
    shutdown.trigger();
    let result = runner.join().expect("runner thread");
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn panicking_shard_is_an_error_and_stops_the_others() {
    let (tx, rx) = mpsc::channel();
    let result = run(config(3), move |ctx: ShardContext<()>, _inbox| {
        let tx = tx.clone();
        async move {
            if ctx.id == ShardId(1) {
                panic!("shard one broke");
            }
            // Would hang forever if the panic did not trigger shutdown.
            ctx.shutdown.wait().await;
            tx.send(ctx.id).expect("report");
        }
    });
    match result {
        Err(RuntimeError::ShardPanicked { shard, message }) => {
            assert_eq!(shard, ShardId(1));
            assert!(message.contains("shard one broke"), "{message}");
        }
        other => panic!("expected ShardPanicked, got {other:?}"),
    }
    let mut stopped: Vec<_> = rx.try_iter().collect();
    stopped.sort();
    assert_eq!(stopped, vec![ShardId(0), ShardId(2)]);
}
