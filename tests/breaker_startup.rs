//! Start-up faults found by trying to break Sluice as a new user: a second broker started on a
//! data directory or a port a running broker uses must refuse to start (as Kafka does: "Failed
//! to acquire lock on file .lock", BindException), not share them. Before the fix both brokers
//! ran: SO_REUSEPORT let the second one bind the same port, so the kernel split the clients'
//! connections between two brokers, and both appended to the same segment files.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::wire::{self, Outcome, API_VERSIONS};
use common::{Broker, BrokerOpts};

/// How long a refused broker may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a second `sluice` on `listen` and `data_dir` and waits for it to exit; returns whether
/// it exited with success and its log. Killed (and the test failed) if it keeps running.
fn second_broker(listen: &str, data_dir: &Path) -> (bool, String) {
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--listen",
            listen,
            "--admin-listen",
            "127.0.0.1:0",
            "--cores",
            "1",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            let log = std::fs::read_to_string(log_file.path()).unwrap();
            panic!("the second broker kept running; log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(log_file.path()).unwrap();
    (status.success(), log)
}

/// The first broker still runs and answers on its own port.
fn assert_still_serving(broker: &mut Broker) {
    assert!(broker.is_running(), "log:\n{}", broker.log_text());
    let mut conn = wire::connect(broker.socket_addr());
    wire::send(
        &mut conn,
        &wire::frame(&wire::request_header(API_VERSIONS, 0, 5, false)),
    );
    assert!(matches!(
        wire::read_outcome(&mut conn),
        Outcome::Response(_)
    ));
}

#[test]
fn a_second_broker_on_a_data_dir_in_use_refuses_to_start() {
    let mut first = Broker::start(BrokerOpts::default());
    let (ok, log) = second_broker("127.0.0.1:0", &first.data_dir());
    assert!(!ok, "started on a data dir in use; log:\n{log}");
    assert!(log.contains("cannot lock data directory"), "log:\n{log}");
    assert_still_serving(&mut first);
    // The lock goes with the process: a restart (even after kill -9) takes it again.
    first.kill9();
    first.start_again();
    assert_still_serving(&mut first);
}

#[test]
fn a_second_broker_on_a_port_in_use_refuses_to_start() {
    let mut first = Broker::start(BrokerOpts::default());
    let other_dir = tempfile::tempdir().unwrap();
    let (ok, log) = second_broker(&first.addr(), other_dir.path());
    assert!(!ok, "started on a port in use; log:\n{log}");
    assert!(log.contains("Address already in use"), "log:\n{log}");
    assert_still_serving(&mut first);
}
